//! Workers: one OS thread each, running its own fibers, timers and I/O poll.
//!
//! # What a worker owns
//!
//! * a fiber table (a slab keyed by `u32`, each entry tagged with a generation),
//! * a local run queue of fiber keys (a `VecDeque`: nothing atomic on the same-worker path),
//! * its unstarted tasks (`tasks.rs`: a deque idle peers may steal from, or a plain queue when
//!   it has no peers), and a one-task slot in front of them for the task its own coroutines
//!   submitted last,
//! * its timers, its stack pool and its `mio::Poll`.
//!
//! Other threads reach a worker only through its [`Remote`]: an inbox of wake-ups, a queue of
//! tasks placed on it (`spawn_on`), a `sleeping` flag and a `mio::Waker`. Other unstarted
//! tasks travel through the shared injector or are stolen; started fibers never move (see
//! `fiber.rs`).
//!
//! # Fiber states
//!
//! ```text
//!            unpark            worker (or a lending fiber) resumes it
//!   Idle ───────────────▶ Scheduled ─────────────────▶ Running
//!    ▲                                                   │  park(): state = Idle, suspend
//!    └───────────────────────────────────────────────────┘  yield_now(): Scheduled, re-queued
//!                            park() while another fiber is runnable:
//!                            Running ──▶ Lending ──▶ Running (woken meanwhile) or Idle
//! ```
//! `notified` is the park permit: an unpark that finds the fiber `Running`, `Lending` or
//! already `Scheduled` sets it, and the fiber's next park consumes it and returns without
//! suspending. So a fiber is in the run queue at most once, and a wake is never lost, only (at
//! worst) delivered once too often, which parks tolerate (`park.rs`).
//!
//! # Lending: a parking fiber runs the next one itself
//!
//! corosensei's switches are asymmetric: a fiber suspends to whoever resumed it. Parking to
//! the worker loop and resuming the next fiber from there costs two switches and a trip
//! through the loop; in a request and reply between two fibers of one worker that happens
//! twice per round trip. So a fiber that parks, if another fiber is runnable, resumes that
//! one itself, from its own stack (`Local::lend`), and is `Lending` meanwhile: a wake only
//! sets its permit. With no fiber runnable it starts the worker's next waiting task instead,
//! if there is one (after an ask, the activation of the actor asked). When the nested fiber
//! suspends, control comes back to the lender, which carries on if it was woken (the common
//! case: the other side answered) and otherwise suspends to the loop as usual. W3 takes one
//! switch pair per round trip instead of two, W1 one per three messages instead of two.
//!
//! Bounds: only a fiber the loop resumed lends (a nested fiber parks to its lender, so the
//! nesting is one deep and the lender's stack holds only the nested resume's frames); a
//! fiber that is unwinding does not lend (the thread's panic count is its own); nothing is
//! lent during shutdown; and every nested resume counts against the round's [`BUDGET`], so a
//! pair of fibers that keep waking each other still let the loop poll, fire timers and take
//! wakes from other threads every [`BUDGET`] resumes. The nested fiber is the run queue's
//! front, the next to run anyway; what changes is that a lender woken meanwhile carries on
//! ahead of fibers queued before its wake, which the budget bounds as well.
//!
//! # Where a switch sits: in the blocking call's own frame
//!
//! A switch desynchronises the CPU's return-address predictor: the fiber resumed returns
//! through frames its own stack called, but the predictor offers the other stack's. Each
//! such return mispredicts (about 10 ns here), on both sides of every switch. What avoids it
//! is a switch with no frame between it and the code that blocks. Then the resumed fiber runs
//! on until its next suspend without a return, and the lender's frames are still on the
//! predictor's stack when control comes back. So [`park_fiber`] is inline, around an
//! out-of-line `park_begin` and `park_end`; `park::park` is inline too; and a channel's
//! blocking `send` and `recv` are inline into their caller, with only the rare ends of a
//! wait out of line. With that, W3 went from 145 to 80 ns (BENCHMARKS.md, session 19). A new
//! blocking call on a hot path should keep its park inline the same way.
//!
//! # The sleep/wake protocol (cross-thread wakes)
//!
//! A worker may sleep in `epoll_wait` only when it has nothing to run, and only until its
//! nearest timer. The numbered steps, on the worker and on any waker:
//!
//! ```text
//! worker                                        waker (any thread)
//! W1. run queue, task deque and inbox empty     S1. inbox.push(wake) (or placed.push(task))
//! W2. sleeping.store(true)                      S2. fence(SeqCst)
//! W3. fence(SeqCst)                             S3. if sleeping.load() && sleeping.swap(false):
//! W4. if inbox, placed (or injector) not empty:          waker.wake()   (an eventfd write)
//!         poll with timeout 0
//! W5. poll(timeout); sleeping.store(false)
//! ```
//! Why no wake is lost: the two fences order W2 before W4's load and S1 before S3's load, so
//! either W4 sees the pushed wake (and does not sleep), or S3 sees `sleeping == true` (and
//! writes the eventfd). The eventfd is sticky: a write that lands between W4 and W5 makes the
//! poll in W5 return at once. The `swap` makes only one of several concurrent wakers pay the
//! syscall. A stale wake costs one empty poll.
//!
//! # Spawns racing the end of the runtime
//!
//! A spawn from outside the workers checks that the runtime has not ended, then queues its
//! task (in the injector, or a worker's `placed` queue). The end sets `shutdown`, and once
//! the workers have exited it drops what is still queued (`Shared::drain_unstarted`). A
//! spawn that checked before the end and queued after the drain would leave its task queued
//! for as long as a `Handle` keeps the queues alive, and its `join` would wait for good. So
//! the spawner checks again after it queues, the same pattern as above:
//!
//! ```text
//! end of the runtime                            spawner (any thread)
//! E1. shutdown.store(true)                      P1. queue.push(task)
//! E2. workers exit                              P2. fence(SeqCst)
//! E3. fence(SeqCst); drop what is queued        P3. if shutdown.load(): drop what is queued
//! ```
//! Either E3 takes the task, or P3 sees `shutdown` and drops it itself (both may drain;
//! each task is taken once). A dropped task makes its `join` return an error.
//!
//! # Fairness
//!
//! A worker resumes at most [`BUDGET`] fibers between two polls, so I/O and timers are served
//! even when fibers are always runnable (the poll then has a zero timeout; a worker with no
//! socket registered skips it, as only sockets can have events for it), and it moves up to
//! [`START_PER_ROUND`] waiting tasks into the run queue at the start of each round, so a busy
//! set of fibers cannot starve new ones. If tasks are still waiting after a full round, it
//! wakes one sleeping peer, which steals half of them once they are old enough (below).
//!
//! Rounds of long resumes (coroutines that compute for milliseconds between yields) would make
//! a round long too, so within one the worker takes in wake-ups from other threads, and tasks
//! placed on it, before each resume, and, while a timer or alarm is pending, reads the clock
//! every 8th resume and ends the round once one is due.
//!
//! That bounds the worker's turns, not a fiber's: a coroutine whose blocking calls never
//! have to block (a receiver that always finds a message, a select over channels that stay
//! ready) would keep the worker to itself, timers and sockets included. So each blocking
//! channel call and select first spends one unit of [`COOP_BUDGET`], which every resume
//! refills; a call that finds it spent yields first ([`spend_coop`]). A fiber that parks
//! never notices; one that never parks yields every [`COOP_BUDGET`] calls. (Socket calls
//! keep a budget of their own in `reactor.rs`.)
//!
//! # Stealing: only a backlog that has waited
//!
//! A task that moves to another worker costs more than a short task's whole run: its memory
//! (the task, the stack, what it captured) is cold in the thief's cache, its allocation is
//! freed on another thread, and whatever it touches next (the channel it answers on, its join
//! state) bounces between the cores. W4 (a thousand coroutines spawned, each sending one
//! message back) measured 165–198 ns per spawn on one worker and 521–596 on two when idle peers
//! stole at once, and an actor fanning out to a thousand others 4× its one-worker time. So a
//! peer steals only tasks that have waited: each worker stamps its stealable tasks when they
//! go from none to some (`Remote::backlog_since`), and an idle peer takes half of them only
//! once that stamp is [`STEAL_AFTER`] old, then stamps them again, so it takes from the same
//! worker at most once per [`STEAL_AFTER`] while that worker keeps up. A peer with nothing to
//! do but a young backlog to watch sleeps with a timer for the moment it will be old enough
//! (`Remote::watching`), and backlog wake-ups skip a peer that already watches. Short tasks
//! mostly run where they were spawned; a backlog that lasts (long computations, a worker
//! that falls behind) is shared after [`STEAL_AFTER`] by a peer that is awake, and after
//! about a millisecond (the poll's granularity) by one that sleeps. That delay is the price:
//! a task queued behind a long computation may wait that long for a peer to take it.
//!
//! # Chaining: a finished fiber runs the next waiting task
//!
//! A fiber whose task has ended takes the next unstarted task of its worker and runs it on
//! the same stack, as a new coroutine (a new generation), at most [`CHAIN`] times per resume
//! (see [`chain_task`]). That saves a stack from the pool, a fresh coroutine, two table
//! entries and two trips through the loop per short task: the shape of an actor activation.
//!
//! When nothing is left to chain, one such fiber per worker stays suspended as the worker's
//! *spare* instead of ending ([`wait_as_spare`]): the next task the worker starts is handed to
//! it, again as a new coroutine, rather than to a fresh fiber. That serves tasks that start one
//! at a time, such as the asked actor's activation in an `ask` (the asker parks, lends its
//! turn, and the activation starts). A spare holds one pooled stack; it ends when the runtime
//! does, resumed with a cancellation like every other suspended fiber.
//!
//! # The task slot: the newest task goes next
//!
//! A task submitted by one of the worker's own coroutines waits in a slot of its own, not in
//! the deque (an actor's activation or a detached coroutine; a coroutine spawned with a
//! `JoinHandle` on a worker with peers goes to the deque, see [`submit`]); submitting another
//! moves the older one to the deque. The next task started (by the loop or by chaining) is
//! the slot's. In message passing that task is the activation of
//! the actor just sent to, so a hop costs no operation on the shared deque (ping-pong between
//! two actors: 235 to 166 ns per round trip with this and allocation-free activations). Two
//! costs, bounded: the slot's task goes ahead of older ones at most [`SLOT_STREAK`] times in a
//! row, and peers cannot steal it, so a coroutine that computes long without blocking holds
//! back the one task its worker got last (every earlier one is in the deque, stealable).
//!
//! # Before sleeping: a short, adaptive spin
//!
//! Between W1 and W2 an idle worker watches its inbox, the injector and (with zero-timeout
//! polls) its sockets for up to [`SPIN`]: a reply from a fiber on another worker, or from
//! another process, usually comes within microseconds, and catching it saves both sides an
//! eventfd write and an `epoll_wait` wake-up. The spin is bounded in time and earns its keep:
//! spins that catch work earn credit, fruitless ones spend it, and without credit the worker
//! spins on one idle turn in 16 only. On an oversubscribed machine a fruitless spin would only
//! steal the CPU from whoever is about to send the work.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_deque::{Injector, Steal, Stealer, Worker as Deque};
use crossbeam_queue::SegQueue;
use slab::Slab;

use crate::alarm::{self, Alarms};
use crate::fiber::{self, Fiber, Resume, Task};
use crate::join::JointCache;
use crate::park::{FiberAddr, FiberRef, Park};
use crate::reactor::{Reactor, WAKE_TOKEN};
use crate::stack::{self, Guard, StackPool};
use crate::tasks::Tasks;
use crate::time::Timers;

/// Fibers resumed between two polls of the reactor.
const BUDGET: usize = 61;
/// Blocking channel calls and selects a fiber may make in one resume before the next one
/// yields (see "Fairness" in the module docs).
const COOP_BUDGET: u32 = 128;
/// How long a shutting-down worker polls between checks.
const SHUTDOWN_TICK: Duration = Duration::from_millis(50);
/// Waiting tasks started at the beginning of each round.
const START_PER_ROUND: usize = 16;
/// How long an idle worker watches its inbox before it announces sleep. A reply from a fiber
/// on another worker usually comes within a few microseconds; catching it here saves both
/// sides the eventfd write and the `epoll_wait` wake-up (about 1–20 µs on these VMs). The
/// spin is bounded in time, never open-ended: a preempted vCPU must not make it longer.
const SPIN: Duration = Duration::from_micros(20);
/// How long a peer's unstarted tasks must have waited before an idle worker steals them, and
/// how often it may steal from the same peer while they keep waiting (see "Stealing" in the
/// module docs).
const STEAL_AFTER: Duration = Duration::from_micros(100);
/// Unstarted tasks a fiber may run one after another on its own stack, once its task is done,
/// before it ends and hands control back to the worker loop (see [`chain_task`]).
const CHAIN: u32 = 8;
/// Times in a row the task slot may go ahead of older waiting tasks (see [`Local::slot`]).
const SLOT_STREAK: u32 = 16;
/// How soon a worker that found no stack to map tries again.
const STARVED_RETRY: Duration = Duration::from_millis(1);
/// Idle shutdown ticks after which fibers still blocked in destructors are leaked.
const SHUTDOWN_PATIENCE: u32 = 40;
const NONE: u32 = u32::MAX;

/// State shared by all workers of one runtime and every handle to it.
pub(crate) struct Shared {
    /// One per worker, by index.
    pub(crate) remotes: Box<[Remote]>,
    /// Tasks spawned from outside the workers.
    injector: Injector<Task>,
    /// Set once, when the runtime is dropped.
    shutdown: AtomicBool,
    /// Usable bytes of every fiber stack.
    pub(crate) stack_size: usize,
    /// The cap on live coroutines.
    pub(crate) max_stacks: usize,
    /// Unique among the runtimes of this process (see [`runtime_by_id`]).
    pub(crate) id: u64,
    /// The origin of the workers' backlog stamps (`Remote::backlog_since`).
    epoch: Instant,
    /// Threads for thread-blocking calls (see [`crate::offload`]).
    pub(crate) pool: Arc<crate::offload::Pool>,
    /// What to run once the runtime has ended (`Handle::on_end`); `None` once it has run.
    end_hooks: std::sync::Mutex<Option<Vec<EndHook>>>,
}

/// A function to run once a runtime has ended.
pub(crate) type EndHook = Box<dyn FnOnce() + Send>;

/// Every runtime of the process that is still alive, by id: how a [`CoroutineId`], which
/// holds no reference to its runtime (so that taking one is cheap), reaches its worker.
///
/// [`CoroutineId`]: crate::CoroutineId
static RUNTIMES: std::sync::Mutex<Vec<(u64, std::sync::Weak<Shared>)>> =
    std::sync::Mutex::new(Vec::new());

/// The runtime with this id, if it is still alive.
pub(crate) fn runtime_by_id(id: u64) -> Option<Arc<Shared>> {
    crate::sync::lock(&RUNTIMES)
        .iter()
        .find(|(i, _)| *i == id)
        .and_then(|(_, w)| w.upgrade())
}

impl Drop for Shared {
    fn drop(&mut self) {
        let id = self.id;
        crate::sync::lock(&RUNTIMES).retain(|(i, _)| *i != id);
    }
}

/// The part of a worker other threads may touch.
pub(crate) struct Remote {
    /// Wake-ups (fiber key, generation, cancel) sent from other threads.
    inbox: SegQueue<(u32, u32, bool)>,
    /// Tasks placed on this worker ([`place`]): they start here, and peers never take them.
    placed: SegQueue<Task>,
    /// True while the worker is about to sleep or sleeping in its poll (protocol step W2).
    sleeping: AtomicBool,
    /// Interrupts the worker's poll.
    waker: mio::Waker,
    /// Steals from this worker's unstarted tasks.
    stealer: Stealer<Task>,
    /// When (nanoseconds after `Shared::epoch`) this worker's stealable tasks last went from
    /// none to some, or a peer last stole from them: peers steal only once it is
    /// [`STEAL_AFTER`] old. A hint for balance, never needed for progress: the owner runs its
    /// own tasks in any case.
    backlog_since: AtomicU64,
    /// True while the worker sleeps with a timer set to steal a peer's backlog once it is old
    /// enough: waking it for a backlog would only make it sleep again.
    watching: AtomicBool,
    /// Bumped before and after every fiber resume, so it is odd exactly while a fiber runs
    /// (read by the watchdog).
    pub(crate) progress: AtomicU64,
    /// The last label a fiber of this worker set (see `label.rs`): its id in the high half,
    /// and in the low half the low half of `progress` then. The watchdog names a stall with
    /// it only if `progress` has not moved since: the label was set by the very resume that
    /// stalls. Written only by `set_label`, so the resume path pays nothing for it.
    pub(crate) label: AtomicU64,
    /// The worker's figures for [`crate::metrics`].
    pub(crate) stats: Stats,
}

/// A worker's published figures (see `metrics.rs`): written by the worker alone with plain
/// stores of its own counts, read by anyone.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) stacks: AtomicUsize,
    pub(crate) alarms: AtomicUsize,
    pub(crate) turns: AtomicU64,
    pub(crate) sleeps: AtomicU64,
    pub(crate) steals: AtomicU64,
}

/// Adds one to a count of the worker's [`Stats`]: a load and a plain store, since only the
/// worker writes it (no read-modify-write on the worker's path).
#[inline]
fn bump(count: &AtomicU64) {
    count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl Remote {
    /// Unstarted tasks of this worker: those peers could steal now, and those placed on it
    /// that it has not taken in yet.
    pub(crate) fn queued_tasks(&self) -> usize {
        self.stealer.len() + self.placed.len()
    }

    /// Whether wake-ups or placed tasks wait for the worker to take them in.
    fn has_mail(&self) -> bool {
        !self.inbox.is_empty() || !self.placed.is_empty()
    }

    /// Steps S1–S3 of the protocol.
    fn push_wake(&self, key: u32, gen: u32, cancel: bool) {
        self.inbox.push((key, gen, cancel));
        fence(Ordering::SeqCst);
        self.wake_if_sleeping();
    }

    /// How long until this worker's stealable tasks are old enough for a peer to steal
    /// (zero: now), at `now` (nanoseconds after `Shared::epoch`).
    fn steal_after(&self, now: u64) -> Duration {
        let age = now.saturating_sub(self.backlog_since.load(Ordering::Relaxed));
        STEAL_AFTER.saturating_sub(Duration::from_nanos(age))
    }

    /// Wakes the worker if it announced sleep; true if this call did.
    fn wake_if_sleeping(&self) -> bool {
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            // An error here means the eventfd is gone, i.e. the worker has exited.
            let _ = self.waker.wake();
            return true;
        }
        false
    }
}

impl Shared {
    /// Builds the shared state and, per worker, what its thread will own.
    pub(crate) fn new(
        workers: usize,
        stack_size: usize,
        max_stacks: usize,
        offload: (usize, Duration),
    ) -> std::io::Result<(Arc<Shared>, Vec<WorkerParts>)> {
        let mut remotes = Vec::with_capacity(workers);
        let mut parts = Vec::with_capacity(workers);
        for index in 0..workers {
            let reactor = Reactor::new()?;
            let waker = mio::Waker::new(reactor.registry(), WAKE_TOKEN)?;
            let deque = Deque::new_fifo();
            remotes.push(Remote {
                inbox: SegQueue::new(),
                placed: SegQueue::new(),
                sleeping: AtomicBool::new(false),
                waker,
                stealer: deque.stealer(),
                backlog_since: AtomicU64::new(0),
                watching: AtomicBool::new(false),
                progress: AtomicU64::new(0),
                label: AtomicU64::new(0),
                stats: Stats::default(),
            });
            parts.push(WorkerParts {
                index,
                reactor,
                deque,
            });
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let remotes = remotes.into_boxed_slice();
        // The pool's threads reach the runtime through a weak reference: they must not keep
        // it alive, and they let jobs spawn onto it (see `offload::current_runtime`).
        let shared = Arc::new_cyclic(|me| Shared {
            remotes,
            injector: Injector::new(),
            shutdown: AtomicBool::new(false),
            stack_size,
            max_stacks,
            id,
            epoch: Instant::now(),
            pool: Arc::new(crate::offload::Pool::new(offload.0, offload.1, me.clone())),
            end_hooks: std::sync::Mutex::new(Some(Vec::new())),
        });
        crate::sync::lock(&RUNTIMES).push((id, Arc::downgrade(&shared)));
        Ok((shared, parts))
    }

    /// Queues a task from a thread that is not one of this runtime's workers.
    fn inject(&self, task: Task) {
        self.injector.push(task);
        fence(Ordering::SeqCst);
        if self.is_shutting_down() {
            // P3 in "Spawns racing the end of the runtime".
            self.drain_unstarted();
            return;
        }
        self.wake_one(usize::MAX);
    }

    /// Wakes one sleeping worker other than `except`.
    fn wake_one(&self, except: usize) {
        for (i, r) in self.remotes.iter().enumerate() {
            if i != except && r.wake_if_sleeping() {
                return;
            }
        }
    }

    /// Tells a sleeping peer of `owner`'s backlog: wakes one that sleeps without a timer for
    /// it (a peer already watching a backlog wakes on its own when the tasks are old enough).
    fn wake_for_backlog(&self, owner: usize) {
        for (i, r) in self.remotes.iter().enumerate() {
            if i != owner && !r.watching.load(Ordering::Relaxed) && r.wake_if_sleeping() {
                return;
            }
        }
    }

    /// Nanoseconds since this runtime's epoch (for backlog stamps).
    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Starts the shutdown: every worker cancels its fibers and exits.
    pub(crate) fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for r in self.remotes.iter() {
            let _ = r.waker.wake();
        }
    }

    /// Drops tasks that no worker started, injected or placed: called after the workers
    /// exited, and by a spawner that finds the runtime ending after it queued its task (see
    /// "Spawns racing the end of the runtime").
    pub(crate) fn drain_unstarted(&self) {
        fence(Ordering::SeqCst);
        loop {
            match self.injector.steal() {
                Steal::Success(t) => drop(t),
                Steal::Empty => break,
                Steal::Retry => {}
            }
        }
        for r in self.remotes.iter() {
            while let Some(t) = r.placed.pop() {
                drop(t);
            }
        }
    }

    /// Adds a function to run once the runtime has ended; runs it now if the hooks have run.
    pub(crate) fn on_end(&self, hook: EndHook) {
        let mut hooks = crate::sync::lock(&self.end_hooks);
        match hooks.as_mut() {
            Some(list) => list.push(hook),
            None => {
                drop(hooks);
                hook();
            }
        }
    }

    /// Runs the end hooks, once; a hook that panics is reported and the others still run.
    pub(crate) fn run_end_hooks(&self) {
        let Some(hooks) = crate::sync::lock(&self.end_hooks).take() else {
            return;
        };
        for hook in hooks {
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook)) {
                let msg = crate::panic_text(&*p);
                tracing::error!(target: "coact", "a runtime end hook panicked: {msg}");
            }
        }
    }

    /// Tasks injected from outside the workers and not taken yet.
    pub(crate) fn injected_len(&self) -> usize {
        self.injector.len()
    }

    /// Whether the runtime is shutting down.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Called by the watchdog for a worker it saw run one coroutine for a whole tick: that
    /// worker will not start its waiting tasks soon, and it wakes a peer only at a backlog of
    /// [`START_PER_ROUND`] or at the end of a round. So if it has stealable tasks, a sleeping
    /// peer is woken (even one watching a backlog): they have waited a tick, so it takes half.
    pub(crate) fn rescue_backlog(&self, owner: usize) {
        if !self.remotes[owner].stealer.is_empty() {
            self.wake_one(owner);
        }
    }
}

/// What one worker thread takes with it when it starts.
pub(crate) struct WorkerParts {
    index: usize,
    reactor: Reactor,
    deque: Deque<Task>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Idle,
    Scheduled,
    Running,
    /// Parked, and running another fiber of this worker from its own stack until that one
    /// suspends (see "Lending" in the module docs). A wake sets `notified`.
    Lending,
}

/// One fiber in the table: its coroutine and its scheduling state.
struct Entry {
    /// The coroutine; out of the table (`None`) while it runs, since a fiber that lends its
    /// turn resumes another from inside its own resume (so the table is not kept borrowed
    /// across one).
    fiber: Option<Fiber>,
    guard: Guard,
    gen: u32,
    state: State,
    /// The park permit.
    notified: bool,
    /// The runtime is ending: resume with `Resume::Cancel` from now on.
    cancelled: bool,
    /// Sequence number of the fiber's armed timer, or 0.
    timer: u64,
    /// The coroutine-local values of its current task (see `local.rs`), made on first use.
    locals: Option<Box<LocalMap>>,
}

/// Coroutine-local values by key (the address of their `CoroutineLocal`). Each value is boxed,
/// so it stays where it is while the list grows.
type LocalMap = Vec<(usize, Box<dyn std::any::Any>)>;

impl Entry {
    /// Marks the fiber running and says how it goes on, for a resume by the loop or a lender
    /// woken while it lent. Once the runtime ends, every resume is a cancellation, even one
    /// caused by a wake from a fiber unwinding on another worker that started shutting down
    /// first: no blocked call may complete normally during shutdown.
    #[inline]
    fn run(&mut self, shutting_down: bool) -> Resume {
        self.state = State::Running;
        if shutting_down {
            self.cancelled = true;
        }
        if self.cancelled {
            Resume::Cancel
        } else {
            Resume::Run
        }
    }
}

/// A worker's own state, reachable from its thread through `LOCAL`.
pub(crate) struct Local {
    index: usize,
    shared: Arc<Shared>,
    fibers: RefCell<Slab<Entry>>,
    /// This worker's copy of `Remote::progress` (it is the only writer).
    progress: Cell<u64>,
    /// Tasks the running fiber has chained since it was resumed (see [`chain_task`]).
    chained: Cell<u32>,
    /// Resumes left in this round before the next poll, nested ones included (see [`BUDGET`]
    /// and "Lending" in the module docs).
    budget: Cell<usize>,
    /// A fiber is lending its turn: the running one is nested and lends no further.
    lending: Cell<bool>,
    runq: RefCell<VecDeque<u32>>,
    tasks: Tasks,
    /// The task this worker's coroutines submitted last, kept out of `tasks`: the next one
    /// to start here. In message passing it is the activation of the actor just sent to, so a
    /// hop costs no operation on the shared deque. Submitting another pushes this one to
    /// `tasks`, where peers can steal it; only the newest is never stolen. It goes ahead of
    /// older tasks at most [`SLOT_STREAK`] times in a row, so two actors bouncing a message
    /// cannot hold the rest back.
    slot: Cell<Option<Task>>,
    /// Tasks placed on this worker (taken in from `Remote::placed`) that wait for a stack.
    pinned: RefCell<VecDeque<Task>>,
    /// Times in a row the slot went first while `tasks` had waiting tasks.
    slot_streak: Cell<u32>,
    timers: RefCell<Timers>,
    /// Callbacks due at deadlines, run between fibers (see `alarm.rs`).
    alarms: RefCell<Alarms>,
    pool: RefCell<StackPool>,
    /// Key of the running fiber, or `NONE`.
    current: Cell<u32>,
    /// Generation of the running fiber.
    current_gen: Cell<u32>,
    /// The last start found no stack to map: wait a little before trying again.
    starved: Cell<bool>,
    /// Whether the running fiber was unwinding when its last park began (see
    /// [`unwinding_at_park`]).
    park_unwinding: Cell<bool>,
    /// Fibers of this worker parked while unwinding: while there are any, the thread's panic
    /// flag is raised for every fiber (see [`unwinding_now`]).
    unwinding_parked: Cell<u32>,
    /// How much recent idle spins paid off (see `spin_for_work`).
    spin_credit: Cell<u8>,
    /// Idle turns that skipped spinning for lack of credit.
    spin_skipped: Cell<u32>,
    next_gen: Cell<u32>,
    /// A fiber whose tasks are done, kept suspended to carry the next task started here
    /// (see [`wait_as_spare`]), or `NONE`.
    spare: Cell<u32>,
    /// Join states kept for this worker's next spawns (see "Recycling" in `join.rs`).
    joints: JointCache,
    /// The task handed to the spare fiber, until it resumes and takes it.
    handoff: Cell<Option<Task>>,
    pub(crate) reactor: Reactor,
}

thread_local! {
    /// This thread's worker, or null. A plain pointer with no destructor, so that reaching it
    /// costs one thread-local load (a `thread_local!` with a destructor checks its
    /// registration state on every access). `run_worker` owns the `Local` and sets the pointer
    /// for exactly as long as the `Local` lives.
    static LOCAL: Cell<*const Local> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with this thread's worker, if it is one.
#[inline]
pub(crate) fn with_local<R>(f: impl FnOnce(&Local) -> R) -> Option<R> {
    let p = LOCAL.with(Cell::get);
    if p.is_null() {
        return None;
    }
    // SAFETY: `LOCAL` is non-null only between the two stores in `run_worker`, which keeps
    // the `Local` alive (and unmoved, behind its `Box`) for that whole span, on this thread.
    Some(f(unsafe { &*p }))
}

/// The body of a worker thread.
pub(crate) fn run_worker(shared: Arc<Shared>, parts: WorkerParts) {
    stack::ensure_altstack();
    let local = Box::new(Local {
        index: parts.index,
        fibers: RefCell::new(Slab::new()),
        progress: Cell::new(0),
        chained: Cell::new(0),
        budget: Cell::new(0),
        lending: Cell::new(false),
        runq: RefCell::new(VecDeque::new()),
        tasks: Tasks::new(parts.deque, shared.remotes.len() > 1),
        slot: Cell::new(None),
        pinned: RefCell::new(VecDeque::new()),
        slot_streak: Cell::new(0),
        timers: RefCell::new(Timers::new()),
        alarms: RefCell::new(Alarms::new()),
        pool: RefCell::new(StackPool::new(shared.stack_size)),
        current: Cell::new(NONE),
        current_gen: Cell::new(0),
        starved: Cell::new(false),
        park_unwinding: Cell::new(false),
        unwinding_parked: Cell::new(0),
        spin_credit: Cell::new(4),
        spin_skipped: Cell::new(0),
        next_gen: Cell::new(0),
        spare: Cell::new(NONE),
        joints: JointCache::new(),
        handoff: Cell::new(None),
        reactor: parts.reactor,
        shared,
    });
    LOCAL.with(|c| {
        assert!(c.get().is_null(), "coact: this thread is already a worker");
        c.set(&*local);
    });
    local.run();
    // Sockets registered here may outlive the runtime: hand the poll over.
    local.reactor.hand_over();
    LOCAL.with(|c| c.set(std::ptr::null()));
    drop(local);
}

impl Local {
    fn remote(&self) -> &Remote {
        &self.shared.remotes[self.index]
    }

    /// The scheduling loop (see the module docs for the protocol).
    fn run(&self) {
        let mut cancelled_all = false;
        let mut idle_ticks = 0u32;
        loop {
            self.drain_inbox();
            if self.tasks.is_empty() && !self.shared.injector.is_empty() {
                let _ = self.shared.injector.steal_batch(self.tasks.deque());
                self.stamp_backlog();
            }
            let shutting_down = self.shared.shutdown.load(Ordering::Acquire);
            if shutting_down {
                // Unstarted tasks are dropped, never started, once the runtime ends.
                drop(self.slot.take());
                while let Some(t) = self.tasks.pop() {
                    drop(t);
                }
                self.pinned.borrow_mut().clear();
                if !cancelled_all {
                    self.cancel_all();
                    // Alarms end with the runtime; their callbacks are dropped here.
                    let alarms = self.alarms.borrow_mut().take_all();
                    alarms.iter().for_each(|a| a.cancel());
                    cancelled_all = true;
                }
            }

            // New tasks join the run queue at the start of every round, so coroutines that
            // stay runnable (yielding in a loop) cannot hold them back; those placed here
            // first, all of them (their placer chose this worker).
            if !shutting_down {
                self.start_pinned();
                for _ in 0..START_PER_ROUND {
                    if self.starved.get() {
                        break;
                    }
                    match self.pop_local() {
                        Some(t) => self.start(t),
                        None => break,
                    }
                }
            }
            self.budget.set(BUDGET);
            let mut progressed = false;
            let mut since_clock = 0u32;
            while self.budget.get() > 0 {
                // Timers due in a round of long resumes (CPU work that yields now and then):
                // every 8th time round, if a timer or alarm is pending, a look at the clock
                // ends the round once one is due, so the timers fire next instead of after up
                // to BUDGET resumes. (No clock read while none is pending.)
                since_clock += 1;
                if since_clock == 8 {
                    since_clock = 0;
                    if self.next_deadline().is_some_and(|d| d <= Instant::now()) {
                        break;
                    }
                }
                // Wake-ups from other threads, and tasks placed here, join the run queue
                // between resumes, not only once a round: a round of long resumes (CPU work
                // that yields now and then) would otherwise hold them back for all of it.
                if self.remote().has_mail() {
                    self.drain_inbox();
                    if !shutting_down {
                        self.start_pinned();
                    }
                }
                let next = self.runq.borrow_mut().pop_front();
                match next {
                    Some(key) => {
                        // Counts itself, and every resume it lends its turn to, in `budget`.
                        self.run_fiber(key);
                        progressed = true;
                    }
                    None if shutting_down => break,
                    None if self.starved.get() => break,
                    None => match self.next_task() {
                        Some(t) => self.start(t),
                        None => break,
                    },
                }
            }
            if self.budget.get() == 0 && !shutting_down && !self.starved.get() {
                if let Some(t) = self.pop_local() {
                    self.start(t);
                }
                if !self.tasks.is_empty() {
                    self.shared.wake_for_backlog(self.index);
                }
            }

            if shutting_down {
                if self.fibers.borrow().is_empty() {
                    break;
                }
                if progressed {
                    idle_ticks = 0;
                } else {
                    idle_ticks += 1;
                    if idle_ticks > SHUTDOWN_PATIENCE {
                        self.leak_stuck_fibers();
                        break;
                    }
                }
            }

            let busy = !self.runq.borrow().is_empty()
                || ((self.has_local_task() || !self.pinned.borrow().is_empty())
                    && !self.starved.get());
            let mut timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            if shutting_down {
                timeout = Some(timeout.map_or(SHUTDOWN_TICK, |t| t.min(SHUTDOWN_TICK)));
            } else if self.starved.get() {
                // Retry starting the waiting tasks soon; a finishing fiber frees a stack.
                self.starved.set(false);
                timeout = Some(timeout.map_or(STARVED_RETRY, |t| t.min(STARVED_RETRY)));
            }
            if timeout != Some(Duration::ZERO) && !shutting_down && self.spin_for_work() {
                timeout = Some(Duration::ZERO);
            }
            if timeout != Some(Duration::ZERO) {
                self.pool.borrow_mut().trim();
                self.joints.clear();
                // Protocol steps W2–W4.
                self.remote().sleeping.store(true, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                if self.remote().has_mail()
                    || !self.shared.injector.is_empty()
                    || (!shutting_down && self.shared.shutdown.load(Ordering::Relaxed))
                {
                    timeout = Some(Duration::ZERO);
                } else if !shutting_down {
                    // A peer's backlog: steal now if it is old enough, else sleep no longer
                    // than until it is.
                    match self.steal_wait() {
                        Some(Duration::ZERO) => timeout = Some(Duration::ZERO),
                        Some(wait) => {
                            timeout = Some(timeout.map_or(wait, |t| t.min(wait)));
                            self.remote().watching.store(true, Ordering::Relaxed);
                        }
                        None => {}
                    }
                }
            }
            let stats = &self.remote().stats;
            bump(&stats.turns);
            if timeout != Some(Duration::ZERO) {
                bump(&stats.sleeps);
            }
            // Step W5 (a poll that would not wait is skipped while no socket is registered
            // here: `Reactor::poll`).
            self.reactor.poll(timeout);
            self.remote().sleeping.store(false, Ordering::Relaxed);
            self.remote().watching.store(false, Ordering::Relaxed);
            self.fire_timers();
        }
        self.pool.borrow_mut().trim();
    }

    /// Watches the inbox, the injector and the sockets for up to [`SPIN`]; true if work
    /// arrived.
    ///
    /// Adaptive: a spin that catches work earns credit, one that does not spends it, and with
    /// no credit left the worker spins only on every 16th idle turn (to notice when spinning
    /// pays again). On an oversubscribed machine a fruitless spin only steals the CPU from
    /// whoever would have sent the work.
    fn spin_for_work(&self) -> bool {
        let credit = self.spin_credit.get();
        if credit == 0 {
            let skipped = self.spin_skipped.get().wrapping_add(1);
            self.spin_skipped.set(skipped);
            if skipped % 16 != 0 {
                return false;
            }
        }
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                if self.remote().has_mail() || !self.shared.injector.is_empty() {
                    self.spin_credit.set((credit + 2).min(8));
                    return true;
                }
                std::hint::spin_loop();
            }
            // Socket readiness counts too: a reply from another process arrives that way.
            self.reactor.poll(Some(Duration::ZERO));
            if !self.runq.borrow().is_empty() {
                self.spin_credit.set((credit + 2).min(8));
                return true;
            }
            if start.elapsed() >= SPIN {
                self.spin_credit.set(credit.saturating_sub(1));
                return false;
            }
        }
    }

    /// When this worker may steal from a peer: `None` if no peer holds unstarted tasks,
    /// `Some(Duration::ZERO)` if one holds a backlog old enough to steal from now, else how
    /// long until the oldest is.
    fn steal_wait(&self) -> Option<Duration> {
        let mut now = None;
        let mut wait: Option<Duration> = None;
        for (i, r) in self.shared.remotes.iter().enumerate() {
            if i == self.index || r.stealer.is_empty() {
                continue;
            }
            let left = r.steal_after(*now.get_or_insert_with(|| self.shared.now_ns()));
            wait = Some(wait.map_or(left, |w| w.min(left)));
        }
        wait
    }

    /// Queues a task behind this worker's others, stamping the backlog if it starts one;
    /// true if it did (only a worker with peers has stealable tasks).
    fn queue_task(&self, task: Task) -> bool {
        let starts_backlog = self.tasks.stealable() && self.tasks.is_empty();
        self.tasks.push(task);
        if starts_backlog {
            self.stamp_backlog();
        }
        starts_backlog
    }

    /// Records that this worker's stealable tasks, none a moment ago, are a backlog from now.
    fn stamp_backlog(&self) {
        if self.tasks.stealable() && !self.tasks.is_empty() {
            self.remote()
                .backlog_since
                .store(self.shared.now_ns(), Ordering::Relaxed);
        }
    }

    /// A task to start: local first, then the injector, then a peer's.
    fn next_task(&self) -> Option<Task> {
        if let Some(t) = self.pop_local() {
            return Some(t);
        }
        loop {
            let mut retry = false;
            match self.shared.injector.steal_batch_and_pop(self.tasks.deque()) {
                Steal::Success(t) => {
                    self.stamp_backlog();
                    return Some(t);
                }
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let n = self.shared.remotes.len();
            let mut now = None;
            for off in 1..n {
                let r = &self.shared.remotes[(self.index + off) % n];
                if r.stealer.is_empty() {
                    continue;
                }
                // Only a backlog that has waited (see "Stealing" in the module docs).
                let now = *now.get_or_insert_with(|| self.shared.now_ns());
                if !r.steal_after(now).is_zero() {
                    continue;
                }
                // Half of what waits there (an old backlog is worth sharing evenly).
                match r
                    .stealer
                    .steal_batch_with_limit_and_pop(self.tasks.deque(), usize::MAX)
                {
                    Steal::Success(t) => {
                        // The peer's next steal waits again; what came here is a backlog
                        // of this worker's, new to its peers.
                        r.backlog_since.store(now, Ordering::Relaxed);
                        self.remote().backlog_since.store(now, Ordering::Relaxed);
                        let stats = &self.remote().stats;
                        bump(&stats.steals);
                        return Some(t);
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// This worker's next task: the slot's, unless it went first [`SLOT_STREAK`] times in a
    /// row while older tasks wait; else the deque's next.
    fn pop_local(&self) -> Option<Task> {
        let streak = self.slot_streak.get();
        if streak < SLOT_STREAK {
            if let Some(t) = self.slot.take() {
                // A streak only counts while older tasks wait behind the slot.
                let waiting = !self.tasks.is_empty();
                self.slot_streak.set(if waiting { streak + 1 } else { 0 });
                return Some(t);
            }
        }
        self.slot_streak.set(0);
        self.tasks.pop().or_else(|| self.slot.take())
    }

    /// Whether a task waits in the slot or the deque.
    fn has_local_task(&self) -> bool {
        let t = self.slot.take();
        let some = t.is_some();
        self.slot.set(t);
        some || !self.tasks.is_empty()
    }

    fn drain_inbox(&self) {
        let remote = self.remote();
        while let Some((key, gen, cancel)) = remote.inbox.pop() {
            if cancel {
                self.cancel_local(key, gen);
            } else {
                self.unpark_local(key, gen);
            }
        }
        if !remote.placed.is_empty() {
            let mut pinned = self.pinned.borrow_mut();
            while let Some(t) = remote.placed.pop() {
                pinned.push_back(t);
            }
        }
    }

    /// Starts the tasks placed on this worker, in order, while stacks last; the rest wait in
    /// `pinned` (never in the deque, where peers would take them).
    fn start_pinned(&self) {
        while !self.starved.get() {
            let Some(task) = self.pinned.borrow_mut().pop_front() else {
                return;
            };
            if let Err(task) = self.try_start(task) {
                self.pinned.borrow_mut().push_front(task);
            }
        }
    }

    /// Makes a fiber for `task` and queues it to run; with no stack to map now, the task waits
    /// in the deque (running fibers give their stacks back when they finish).
    fn start(&self, task: Task) {
        if let Err(task) = self.try_start(task) {
            let _ = self.queue_task(task);
        }
    }

    /// [`Local::start`], giving the task back when no stack can be mapped now: to the spare
    /// fiber if there is one, else to a new fiber.
    #[inline]
    fn try_start(&self, task: Task) -> Result<(), Task> {
        if self.spare.get() != NONE && !self.shared.shutdown.load(Ordering::Relaxed) {
            match self.hand_to_spare(task) {
                None => Ok(()),
                Some(task) => self.try_start_fresh(task),
            }
        } else {
            self.try_start_fresh(task)
        }
    }

    /// Schedules the spare fiber to carry `task`; gives the task back if the one handoff
    /// place is still taken (the spare before it has not run yet).
    fn hand_to_spare(&self, task: Task) -> Option<Task> {
        let waiting = self.handoff.take();
        if waiting.is_some() {
            self.handoff.set(waiting);
            return Some(task);
        }
        self.handoff.set(Some(task));
        let key = self.spare.replace(NONE);
        self.fibers.borrow_mut()[key as usize].state = State::Scheduled;
        self.runq.borrow_mut().push_back(key);
        None
    }

    /// Starts `task` on a new fiber; gives it back when no stack can be mapped now.
    fn try_start_fresh(&self, task: Task) -> Result<(), Task> {
        let stack = match self.pool.borrow_mut().take() {
            Ok(s) => s,
            Err(e) => {
                // No stack can be mapped now: say so once.
                self.starved.set(true);
                static WARNED: AtomicBool = AtomicBool::new(false);
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "coact",
                        "{e}; new coroutines wait for a free stack"
                    );
                }
                return Err(task);
            }
        };
        self.starved.set(false);
        let guard = stack::guard_of(&stack);
        let gen = self.next_gen.get().wrapping_add(1);
        self.next_gen.set(gen);
        let fiber = Fiber::new(stack, task);
        let key = self.fibers.borrow_mut().insert(Entry {
            fiber: Some(fiber),
            guard,
            gen,
            state: State::Scheduled,
            notified: false,
            cancelled: false,
            timer: 0,
            locals: None,
        });
        let key = u32::try_from(key).expect("coact: more than 4 billion fibers on one worker");
        self.publish_stacks();
        self.runq.borrow_mut().push_back(key);
        Ok(())
    }

    /// Resumes one scheduled fiber until it parks, yields or finishes: from the worker loop,
    /// or nested, from a fiber that lends its turn (see [`Local::lend`]), whose identity is
    /// restored afterwards.
    fn run_fiber(&self, key: u32) {
        let outer = self.current.get();
        let outer_gen = self.current_gen.get();
        let outer_chained = self.chained.get();
        self.budget.set(self.budget.get().saturating_sub(1));
        let (guard, input, gen, mut fiber) = {
            let mut fibers = self.fibers.borrow_mut();
            let e = &mut fibers[key as usize];
            debug_assert_eq!(e.state, State::Scheduled);
            let input = e.run(self.shared.shutdown.load(Ordering::Relaxed));
            let fiber = e.fiber.take().expect("coact: a running fiber resumed");
            (e.guard, input, e.gen, fiber)
        };
        self.current.set(key);
        self.current_gen.set(gen);
        stack::set_current_guard(guard);
        // Plain stores (this thread is the only writer): the watchdog's view of progress,
        // odd while a fiber runs (a nested resume steps by two: a fiber runs throughout).
        let step = if outer == NONE { 1 } else { 2 };
        let progress = &self.remote().progress;
        let p = self.progress.get().wrapping_add(step);
        progress.store(p, Ordering::Relaxed);
        self.progress.set(p);
        self.chained.set(0);
        refill_coop();
        let done = fiber.resume(input);
        // An outer fiber goes on from a park (it lent its turn): a fresh budget too.
        refill_coop();
        let p = self.progress.get().wrapping_add(step);
        progress.store(p, Ordering::Relaxed);
        self.progress.set(p);
        if outer == NONE {
            stack::set_current_guard(Guard::default());
        } else {
            stack::set_current_guard(self.fibers.borrow()[outer as usize].guard);
            self.current_gen.set(outer_gen);
            self.chained.set(outer_chained);
        }
        self.current.set(outer);
        if done {
            self.fibers.borrow_mut().remove(key as usize);
            self.publish_stacks();
            self.pool.borrow_mut().give(fiber.into_stack());
        } else {
            let mut fibers = self.fibers.borrow_mut();
            let e = &mut fibers[key as usize];
            debug_assert_ne!(e.state, State::Running, "a fiber suspended without parking");
            e.fiber = Some(fiber);
        }
    }

    /// Publishes the number of fibers (stacks in use) for [`crate::metrics`].
    #[inline]
    fn publish_stacks(&self) {
        let n = self.fibers.borrow().len();
        self.remote().stats.stacks.store(n, Ordering::Relaxed);
    }

    /// Makes the running fiber a new coroutine to the outside world, in `state`: a new
    /// generation (wakes, cancels and timers addressed to its last task are dropped), no park
    /// permit, no cancellation, no timer. For a fiber that goes on to another task on the same
    /// stack (a chained task, or the spare). Returns its key.
    fn renew_current(&self, state: State) -> u32 {
        let key = self.current.get();
        let gen = self.next_gen.get().wrapping_add(1);
        self.next_gen.set(gen);
        {
            let mut fibers = self.fibers.borrow_mut();
            let e = &mut fibers[key as usize];
            e.gen = gen;
            e.notified = false;
            e.cancelled = false;
            e.timer = 0;
            e.state = state;
        }
        self.current_gen.set(gen);
        key
    }

    /// Applies one unpark to a fiber of this worker.
    fn unpark_local(&self, key: u32, gen: u32) {
        let mut fibers = self.fibers.borrow_mut();
        let Some(e) = fibers.get_mut(key as usize) else {
            return;
        };
        if e.gen != gen {
            return;
        }
        match e.state {
            State::Idle => {
                e.state = State::Scheduled;
                self.runq.borrow_mut().push_back(key);
            }
            State::Running | State::Scheduled | State::Lending => e.notified = true,
        }
    }

    /// Lends the parking fiber `key`'s turn (see "Lending" in the module docs): resumes the
    /// next runnable fiber from here, if there is one, the round's budget allows and nothing
    /// is lent already. `Some(input)` if `key` was woken meanwhile (it carries on running,
    /// as if resumed with `input`); `None` if it is still parked and must suspend.
    fn lend(&self, key: u32) -> Option<Resume> {
        if self.lending.get()
            || self.budget.get() == 0
            || self.shared.shutdown.load(Ordering::Relaxed)
        {
            return None;
        }
        let queued = self.runq.borrow_mut().pop_front();
        let next = match queued {
            Some(next) => next,
            None => {
                // No fiber is runnable: start this worker's next task (an actor's activation,
                // often the one this fiber just sent to), unless stacks ran out.
                if self.starved.get() {
                    return None;
                }
                let task = self.pop_local()?;
                self.start(task);
                self.runq.borrow_mut().pop_front()?
            }
        };
        self.fibers.borrow_mut()[key as usize].state = State::Lending;
        self.lending.set(true);
        fiber::lend(|| self.run_fiber(next));
        self.lending.set(false);
        let mut fibers = self.fibers.borrow_mut();
        let e = &mut fibers[key as usize];
        if !e.notified {
            e.state = State::Idle;
            return None;
        }
        e.notified = false;
        Some(e.run(self.shared.shutdown.load(Ordering::Relaxed)))
    }

    /// Cancels one fiber of this worker: its blocking call unwinds it.
    fn cancel_local(&self, key: u32, gen: u32) {
        {
            let mut fibers = self.fibers.borrow_mut();
            match fibers.get_mut(key as usize) {
                Some(e) if e.gen == gen => e.cancelled = true,
                _ => return,
            }
        }
        self.unpark_local(key, gen);
    }

    /// The earliest deadline of a fiber's timer or an alarm.
    fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.borrow().next_deadline();
        let alarm = self.alarms.borrow().next_deadline();
        match (timer, alarm) {
            (Some(t), Some(a)) => Some(t.min(a)),
            (t, a) => t.or(a),
        }
    }

    /// Wakes the fibers whose timers are due and runs the alarms that are.
    fn fire_timers(&self) {
        let Some(first) = self.next_deadline() else {
            return;
        };
        let now = Instant::now();
        if first > now {
            return;
        }
        loop {
            let due = self.timers.borrow_mut().pop_due(now);
            let Some((key, gen, seq)) = due else { break };
            let live = {
                let mut fibers = self.fibers.borrow_mut();
                match fibers.get_mut(key as usize) {
                    Some(e) if e.gen == gen && e.timer == seq => {
                        e.timer = 0;
                        true
                    }
                    _ => false,
                }
            };
            if live {
                self.unpark_local(key, gen);
            } else {
                self.timers.borrow_mut().popped_stale();
            }
        }
        if self
            .alarms
            .borrow()
            .next_deadline()
            .is_some_and(|d| d <= now)
        {
            // Taken out first and run with the heap unborrowed: a callback may set alarms,
            // and one that is due again at once waits for the next check.
            let mut due = Vec::new();
            self.alarms.borrow_mut().take_due(now, &mut due);
            let mut again = Vec::new();
            alarm::run_due(&mut due, now, &mut again);
            let mut alarms = self.alarms.borrow_mut();
            for (at, ctl) in again {
                alarms.add(at, ctl);
            }
            let n = alarms.len();
            self.remote().stats.alarms.store(n, Ordering::Relaxed);
        }
    }

    /// Marks every fiber cancelled and schedules the parked ones, so each unwinds.
    fn cancel_all(&self) {
        let mut fibers = self.fibers.borrow_mut();
        let mut runq = self.runq.borrow_mut();
        for (key, e) in fibers.iter_mut() {
            e.cancelled = true;
            if e.state == State::Idle {
                e.state = State::Scheduled;
                runq.push_back(key as u32);
            }
        }
    }

    /// Gives up on fibers that stay blocked (in a destructor) long after cancellation.
    ///
    /// A leaked fiber keeps what it holds, its stack's mapping and, if it runs a joinable
    /// coroutine, that coroutine's slot of the live-coroutine cap: both stay in use for good,
    /// and the counts say so. (Giving the slot back here once released slots that fibers of
    /// detached coroutines and actor activations never held, and the process-wide count
    /// wrapped below zero: every later spawn failed.)
    fn leak_stuck_fibers(&self) {
        let stuck: Vec<Entry> = self.fibers.borrow_mut().drain().collect();
        tracing::error!(
            target: "coact",
            worker = self.index,
            stuck = stuck.len(),
            "coroutines stayed blocked in destructors after the runtime ended; leaking their stacks"
        );
        for f in stuck.into_iter().filter_map(|e| e.fiber) {
            // Dropping a suspended fiber would unwind it a second time; forgetting it only
            // leaks its stack and what lives on it (corosensei documents forget as safe).
            std::mem::forget(f);
        }
    }
}

/// Parks the running fiber (see `park.rs`). `cancellable`: a cancelled fiber returns
/// `Park::Cancelled` at once instead of suspending.
///
/// Only the switch itself is inline, so that it sits in the frame of the blocking call (a
/// channel's `recv`, say) rather than one call below it (see "Where a switch sits" in the
/// module docs); the work before and after it is out of line.
#[inline(always)]
pub(crate) fn park_fiber(deadline: Option<Instant>, cancellable: bool) -> Park {
    match park_begin(deadline, cancellable) {
        Begin::Done(p) => p,
        Begin::Suspend { unwinding } => {
            let input = fiber::suspend();
            park_end(input, unwinding, deadline.is_some(), cancellable)
        }
    }
}

/// How [`park_begin`] left a park.
enum Begin {
    /// The park is over (it was not needed, or the fiber lent its turn and was woken).
    Done(Park),
    /// The fiber must suspend to its worker; `unwinding` as read before.
    Suspend { unwinding: bool },
}

/// The part of a park before the switch: the fiber's state, then lending its turn (see
/// "Lending" in the module docs), or arming its timer before it suspends.
#[inline(never)]
fn park_begin(deadline: Option<Instant>, cancellable: bool) -> Begin {
    with_local(|l| {
        let key = l.current.get();
        {
            let mut fibers = l.fibers.borrow_mut();
            let e = &mut fibers[key as usize];
            if cancellable && e.cancelled {
                // The fiber has run since its last park: only the thread-wide flag is left.
                l.park_unwinding.set(std::thread::panicking());
                return Begin::Done(Park::Cancelled);
            }
            if e.notified {
                e.notified = false;
                return Begin::Done(Park::Woken);
            }
            e.state = State::Idle;
        }
        // Read before switching away, while the thread's panic count is this fiber's own or
        // that of fibers parked earlier (see `unwinding_at_park`).
        let unwinding = std::thread::panicking();
        if unwinding {
            l.unwinding_parked.set(l.unwinding_parked.get() + 1);
        }
        // A fiber unwinding does not lend: the thread's panic flag is its own.
        if !unwinding {
            if let Some(input) = l.lend(key) {
                return Begin::Done(l.park_end(input, false, deadline.is_some(), cancellable));
            }
        }
        if let Some(d) = deadline {
            // Armed only now: a wait that ended while this fiber lent its turn (an ask's
            // reply, as a rule) never needed a timer, and no timer can fire while it lends.
            // No clock read either: a deadline that has already passed fires at the worker's
            // next timer check, a moment later. Waits that end before their deadline are the
            // common case, and the clock read was a sixth of an actor ask.
            let mut fibers = l.fibers.borrow_mut();
            let e = &mut fibers[key as usize];
            e.timer = l.timers.borrow_mut().add(d, key, e.gen);
        }
        Begin::Suspend { unwinding }
    })
    .expect("coact: park_fiber called outside a worker")
}

/// The part of a park after the fiber is resumed (see [`Local::park_end`]).
#[inline(never)]
fn park_end(input: Resume, unwinding: bool, timed: bool, cancellable: bool) -> Park {
    with_local(|l| l.park_end(input, unwinding, timed, cancellable))
        .expect("coact: park_fiber called outside a worker")
}

impl Local {
    /// Ends a park once the fiber runs again with `input`: the thread-wide unwinding state,
    /// the timer of a `timed` park, and the outcome.
    fn park_end(&self, input: Resume, unwinding: bool, timed: bool, cancellable: bool) -> Park {
        if unwinding {
            self.unwinding_parked.set(self.unwinding_parked.get() - 1);
        }
        self.park_unwinding.set(unwinding);
        // Only a park with a deadline arms a timer.
        let had_timer = timed && {
            let mut fibers = self.fibers.borrow_mut();
            let e = &mut fibers[self.current.get() as usize];
            std::mem::replace(&mut e.timer, 0) != 0
        };
        if had_timer {
            let fibers = self.fibers.borrow();
            self.timers.borrow_mut().cancelled(|k, g, s| {
                fibers
                    .get(k as usize)
                    .is_some_and(|e| e.gen == g && e.timer == s)
            });
        }
        if cancellable && input == Resume::Cancel {
            Park::Cancelled
        } else {
            Park::Woken
        }
    }
}

/// Records a label set by the running fiber, with the progress count of its current resume;
/// nothing outside a fiber.
#[inline]
pub(crate) fn set_label(id: u32) {
    with_local(|l| {
        if l.current.get() != NONE {
            let word = (u64::from(id) << 32) | (l.progress.get() & 0xffff_ffff);
            l.remote().label.store(word, Ordering::Relaxed);
        }
    });
}

/// Whether the running fiber was unwinding (a panic in flight) when the park it just returned
/// from began; `None` outside a fiber.
///
/// `std::thread::panicking()` reads a count kept per thread, and coroutines share their
/// worker's thread: while one fiber is parked in the middle of unwinding (a destructor that
/// waits for something), every other fiber of that worker sees `panicking() == true`. A fiber
/// runs no code while it is parked, so the flag read when its park began is its own unless
/// another fiber was already parked mid-unwind then: a fiber that parked before another one
/// began to unwind (an accept loop, an idle actor) is told correctly that it is not unwinding,
/// and can be cancelled. In the remaining ambiguous case it counts as unwinding, which keeps a
/// cancellation from panicking inside a destructor (that would abort the process).
pub(crate) fn unwinding_at_park() -> Option<bool> {
    if !crate::in_coroutine() {
        return None;
    }
    with_local(|l| l.park_unwinding.get())
}

/// Whether the caller is unwinding, for a fiber: `std::thread::panicking()`, unless other
/// fibers of this worker are parked mid-unwind (their panics raise the thread's flag too);
/// then the answer is the caller's own as of its last park (it may have begun to unwind since,
/// which this cannot see). `None` outside a fiber, where the thread's flag is exact.
#[inline]
pub(crate) fn unwinding_now() -> Option<bool> {
    if !std::thread::panicking() {
        return Some(false);
    }
    if !crate::in_coroutine() {
        return None;
    }
    with_local(|l| l.unwinding_parked.get() == 0 || l.park_unwinding.get())
}

/// The next unstarted task of this worker, for the running fiber to run on its own stack now
/// that its task is done, or `None` (then the fiber ends).
///
/// Starting a task costs a fiber (a stack from the pool, a fresh coroutine, two table entries)
/// and two switches through the worker loop; a fiber whose task just ended has all of that in
/// hand. So it takes the worker's next task itself (the slot's, else the deque's: see
/// `Local::pop_local`), at most [`CHAIN`] times per resume (the worker's poll and its runnable
/// fibers are not held back for long), never while the runtime shuts down. Chained tasks never
/// end one of the loop's rounds, which is where a backlog makes the worker wake a sleeping
/// peer to steal; so a chain that leaves tasks waiting wakes one itself (a test caught all 100
/// busy actors of a 2-worker runtime on one worker). The fiber takes a new generation first,
/// so it is a new coroutine to the outside world: wakes, cancels and timers addressed to the
/// finished task's identity are dropped, and the new task starts with no park permit and no
/// cancellation.
pub(crate) fn chain_task() -> Option<Task> {
    with_local(|l| {
        let chained = l.chained.get();
        if chained >= CHAIN || l.shared.shutdown.load(Ordering::Relaxed) {
            return None;
        }
        let task = l.pop_local()?;
        l.chained.set(chained + 1);
        // More tasks wait behind this one: a sleeping peer should know, as the worker loop
        // would tell it after a full round (chained tasks never end a round), and take its
        // share if they are still waiting when they are old enough.
        if !l.tasks.is_empty() {
            l.shared.wake_for_backlog(l.index);
        }
        l.renew_current(State::Running);
        // The watchdog sees progress: this is a new coroutine (the count stays odd).
        let p = l.progress.get().wrapping_add(2);
        l.progress.set(p);
        l.remote().progress.store(p, Ordering::Relaxed);
        Some(task)
    })
    .flatten()
}

/// Keeps the running fiber, whose tasks are done, as this worker's spare: it suspends until
/// [`Local::start`] hands it the next task to carry (returned here), or until the runtime ends
/// (`None`: the fiber finishes). `None` at once if the worker has a spare already or is
/// shutting down.
///
/// Starting a task on a fresh fiber costs a stack from the pool, a new coroutine and a table
/// entry, and finishing one gives them back; the spare skips all of that. It matters where
/// tasks start one at a time with nothing to chain, as in an actor's `ask`: the asker parks,
/// its turn starts the asked actor's activation, which answers and ends. Like a chained task
/// (see [`chain_task`]), the spare takes a new generation first: it is a new coroutine to the
/// outside world, and wakes, cancels and timers addressed to its last task are dropped.
pub(crate) fn wait_as_spare() -> Option<Task> {
    let key = with_local(|l| {
        if l.spare.get() != NONE || l.shared.shutdown.load(Ordering::Relaxed) {
            return None;
        }
        let key = l.renew_current(State::Idle);
        l.spare.set(key);
        Some(key)
    })
    .flatten()?;
    let input = fiber::suspend();
    with_local(|l| {
        if l.spare.get() == key {
            // Resumed as the spare (the runtime is ending), not by a handoff.
            l.spare.set(NONE);
            return None;
        }
        let task = l.handoff.take();
        if input == Resume::Cancel {
            // Handed a task, then the runtime ended before it ran: it is dropped unstarted,
            // as every task still waiting then is.
            drop(task);
            return None;
        }
        debug_assert!(
            task.is_some(),
            "coact: a spare fiber resumed without a task"
        );
        task
    })
    .flatten()
}

/// Runs `f` with this worker's cache of join states, if the caller runs on a worker.
#[inline]
pub(crate) fn with_joint_cache<R>(f: impl FnOnce(&JointCache) -> R) -> Option<R> {
    with_local(|l| f(&l.joints))
}

thread_local! {
    /// Blocking calls the running fiber may still begin before one yields (see [`spend_coop`]).
    /// A thread-local of its own rather than a field of [`Local`]: one `%fs`-relative
    /// decrement on the hot path instead of a pointer load, a null check and a field.
    static COOP_LEFT: Cell<u32> = const { Cell::new(COOP_BUDGET) };
}

/// Refills the running fiber's [`COOP_BUDGET`] (at each resume).
#[inline]
fn refill_coop() {
    COOP_LEFT.with(|c| c.set(COOP_BUDGET));
}

/// Spends one unit of the running fiber's [`COOP_BUDGET`]; yields first if it is spent, so
/// that a fiber whose blocking calls never block still lets the others, its worker's timers
/// and its sockets have their turn. Called at the start of each blocking channel call and
/// select (before anything is taken, so a cancellation at the yield loses nothing). On a
/// plain thread the count runs down too, and is only refilled.
#[inline]
pub(crate) fn spend_coop() {
    let spent = COOP_LEFT.with(|c| {
        let left = c.get().wrapping_sub(1);
        c.set(left);
        left == 0
    });
    if spent {
        coop_yield();
    }
}

#[cold]
#[inline(never)]
fn coop_yield() {
    // A resume refills the budget; a plain thread (or a worker between fibers) refills it here.
    refill_coop();
    if fiber::in_fiber() {
        crate::yield_now();
    }
}

/// The running fiber's value for the coroutine-local `key`, made by `init` on its first use
/// by the current task; `None` outside a fiber. The pointer stays valid until the task ends
/// (see [`LocalsGuard`]).
pub(crate) fn fiber_local(
    key: usize,
    init: &dyn Fn() -> Box<dyn std::any::Any>,
) -> Option<*const dyn std::any::Any> {
    with_local(|l| {
        let current = l.current.get();
        if current == NONE {
            return None;
        }
        let find = || -> Option<*const dyn std::any::Any> {
            let fibers = l.fibers.borrow();
            let map = fibers[current as usize].locals.as_ref()?;
            let (_, v) = map.iter().find(|(k, _)| *k == key)?;
            Some(&**v as *const dyn std::any::Any)
        };
        if let Some(found) = find() {
            return Some(found);
        }
        // Made with nothing borrowed: `init` may use other coroutine locals, or park (the
        // fiber, and so `current`, is the same when it returns).
        let value = init();
        if let Some(found) = find() {
            // `init` used this very local and made it already: that value stays.
            drop(value);
            return Some(found);
        }
        let mut fibers = l.fibers.borrow_mut();
        let map = fibers[current as usize].locals.get_or_insert_with(|| {
            LOCAL_MAPS.with(|c| c.set(c.get() + 1));
            Box::default()
        });
        map.push((key, value));
        map.last().map(|(_, v)| &**v as *const dyn std::any::Any)
    })
    .flatten()
}

/// Drops the running fiber's coroutine-local values when it goes out of scope: held around a
/// task's body, so that the values go when the task ends, while a cancelled (or panicking)
/// task is still unwinding. A destructor that blocks then gives up its wait as every
/// destructor run by a cancellation does, instead of being cancelled with a panic of its own.
pub(crate) struct LocalsGuard;

impl Drop for LocalsGuard {
    #[inline]
    fn drop(&mut self) {
        // Most tasks never make one: a thread-local count keeps their ends to one load.
        if LOCAL_MAPS.with(Cell::get) != 0 {
            drop_fiber_locals();
        }
    }
}

thread_local! {
    /// Fibers of this worker holding coroutine-local values.
    static LOCAL_MAPS: Cell<u32> = const { Cell::new(0) };
}

/// Takes the running fiber's coroutine-local values out of its entry.
fn take_fiber_locals() -> Option<Box<LocalMap>> {
    let map = with_local(|l| {
        let current = l.current.get();
        if current == NONE {
            return None;
        }
        l.fibers.borrow_mut()[current as usize].locals.take()
    })
    .flatten();
    if map.is_some() {
        LOCAL_MAPS.with(|c| c.set(c.get() - 1));
    }
    map
}

/// Drops the running fiber's coroutine-local values (its task has ended), in the fiber, so
/// their destructors may block; values those destructors make are dropped too, for a few
/// rounds, after which what is left is leaked rather than passed to the fiber's next task.
#[cold]
#[inline(never)]
fn drop_fiber_locals() {
    for _ in 0..8 {
        match take_fiber_locals() {
            Some(map) => drop(map),
            None => return,
        }
    }
    if let Some(map) = take_fiber_locals() {
        tracing::warn!(
            target: "coact",
            "coact: coroutine-local destructors kept making new values; leaking {}",
            map.len()
        );
        std::mem::forget(map);
    }
}

/// Re-queues the running fiber behind the others that are runnable.
///
/// Keeps the same unwinding records as a park (see [`unwinding_at_park`]): a fiber that yields
/// in a destructor while it unwinds from a cancellation must be told so when it resumes with
/// `Resume::Cancel`, or the caller would start a second unwind inside that destructor, which
/// aborts the process.
#[inline]
pub(crate) fn yield_fiber() -> Resume {
    let unwinding = std::thread::panicking();
    with_local(|l| {
        let key = l.current.get();
        l.fibers.borrow_mut()[key as usize].state = State::Scheduled;
        l.runq.borrow_mut().push_back(key);
        if unwinding {
            l.unwinding_parked.set(l.unwinding_parked.get() + 1);
        }
    });
    let input = fiber::suspend();
    with_local(|l| {
        if unwinding {
            l.unwinding_parked.set(l.unwinding_parked.get() - 1);
        }
        l.park_unwinding.set(unwinding);
    });
    input
}

/// The address of the running fiber, if the caller is one.
pub(crate) fn current_fiber() -> Option<FiberRef> {
    with_local(|l| {
        let key = l.current.get();
        if key == NONE {
            return None;
        }
        Some(FiberRef {
            shared: l.shared.clone(),
            worker: l.index as u32,
            key,
            gen: l.current_gen.get(),
        })
    })
    .flatten()
}

/// The running fiber as (runtime id, worker, key, generation), if the caller is one.
#[inline]
pub(crate) fn current_id() -> Option<(u64, u32, u32, u32)> {
    with_local(|l| {
        let key = l.current.get();
        (key != NONE).then(|| (l.shared.id, l.index as u32, key, l.current_gen.get()))
    })
    .flatten()
}

/// Cancels the fiber with this id, directly if it lives on this worker, else through its
/// worker's inbox; nothing happens if its runtime is gone.
pub(crate) fn cancel_id(rt: u64, worker: u32, key: u32, gen: u32) {
    let done = with_local(|l| {
        if l.shared.id == rt && l.index == worker as usize {
            l.cancel_local(key, gen);
            true
        } else {
            false
        }
    });
    if done != Some(true) {
        if let Some(shared) = runtime_by_id(rt) {
            if let Some(r) = shared.remotes.get(worker as usize) {
                r.push_wake(key, gen, true);
            }
        }
    }
}

/// The address of the running fiber, if the caller is one (no reference count touched).
#[inline]
pub(crate) fn current_addr() -> Option<FiberAddr> {
    with_local(|l| {
        let key = l.current.get();
        (key != NONE).then(|| FiberAddr {
            shared: Arc::as_ptr(&l.shared),
            worker: l.index as u32,
            key,
            gen: l.current_gen.get(),
        })
    })
    .flatten()
}

/// Wakes the fiber at `a` now if it lives on this worker; otherwise returns a reference to
/// wake it with later.
///
/// # Safety
/// The fiber at `a` is alive and blocked in a wait whose record the caller holds under a
/// lock (see [`Waiter::wake`](crate::park::Waiter::wake)): its worker holds a strong
/// reference to `a.shared` until that wait ends.
#[inline]
pub(crate) unsafe fn wake_addr(a: FiberAddr) -> Option<FiberRef> {
    let done = with_local(|l| {
        if l.index == a.worker as usize && std::ptr::eq(Arc::as_ptr(&l.shared), a.shared) {
            l.unpark_local(a.key, a.gen);
            true
        } else {
            false
        }
    });
    if done == Some(true) {
        return None;
    }
    // SAFETY: `a.shared` came from `Arc::as_ptr` of a runtime that is alive (the contract),
    // so taking one more strong reference to it is sound.
    let shared = unsafe {
        Arc::increment_strong_count(a.shared);
        Arc::from_raw(a.shared)
    };
    Some(FiberRef {
        shared,
        worker: a.worker,
        key: a.key,
        gen: a.gen,
    })
}

/// Wakes a fiber, directly if it lives on this worker, else through its worker's inbox.
pub(crate) fn unpark(f: FiberRef) {
    let done = with_local(|l| {
        if l.index == f.worker as usize && Arc::ptr_eq(&l.shared, &f.shared) {
            l.unpark_local(f.key, f.gen);
            true
        } else {
            false
        }
    });
    if done != Some(true) {
        f.shared.remotes[f.worker as usize].push_wake(f.key, f.gen, false);
    }
}

/// Queues a task on `shared`'s runtime: on the calling worker if it belongs to it, else
/// through the injector.
///
/// A worker that builds up a backlog of its own spawns ([`START_PER_ROUND`] waiting tasks or
/// more) tells a sleeping peer at once, rather than only when a full round of its loop ends:
/// the peer then sleeps until the backlog is old enough to steal (see "Stealing" in the
/// module docs), and takes half of what still waits then. A short queue (one activation, a
/// reply) wakes nobody, so message passing stays on one worker.
///
/// A coroutine spawned with a `JoinHandle` on a worker with peers skips the slot (which peers
/// cannot steal from): it is often half of a fork and join (spawn, compute, join), which
/// should run in parallel. It goes where peers can steal it, and when it starts a backlog a
/// sleeping peer is told, so one takes it if it is still waiting [`STEAL_AFTER`] later.
pub(crate) fn submit(shared: &Arc<Shared>, task: Task) {
    // One look at the thread's worker; the task is still here afterwards if it is not one of
    // this runtime's.
    let mut task = Some(task);
    with_local(|l| {
        if !Arc::ptr_eq(&l.shared, shared) {
            return;
        }
        let task = task.take().expect("the closure runs at most once");
        let forked = l.tasks.stealable() && matches!(task, Task::Joined(_));
        let queued = if forked {
            task
        } else {
            let Some(older) = l.slot.replace(Some(task)) else {
                return;
            };
            older
        };
        let started_backlog = l.queue_task(queued);
        if (forked && started_backlog) || l.tasks.len() >= START_PER_ROUND {
            l.shared.wake_for_backlog(l.index);
        }
    });
    if let Some(task) = task {
        shared.inject(task);
    }
}

/// Queues a task on worker `index` of `shared`'s runtime, to start there (see
/// `Remote::placed`); protocol steps S1–S3, as for a wake-up.
pub(crate) fn place(shared: &Shared, index: usize, task: Task) {
    let r = &shared.remotes[index];
    r.placed.push(task);
    fence(Ordering::SeqCst);
    if shared.is_shutting_down() {
        // P3 in "Spawns racing the end of the runtime".
        shared.drain_unstarted();
        return;
    }
    r.wake_if_sleeping();
}

/// Sets an alarm on the calling worker; gives it back if the caller is not a worker. Once the
/// runtime is ending the alarm is cancelled instead.
pub(crate) fn add_alarm(at: Instant, ctl: Arc<alarm::Ctl>) -> Result<(), Arc<alarm::Ctl>> {
    let mut ctl = Some(ctl);
    with_local(|l| {
        let ctl = ctl.take().expect("the closure runs at most once");
        if l.shared.is_shutting_down() {
            ctl.cancel();
        } else {
            let mut alarms = l.alarms.borrow_mut();
            alarms.add(at, ctl);
            let n = alarms.len();
            l.remote().stats.alarms.store(n, Ordering::Relaxed);
        }
    });
    ctl.map_or(Ok(()), Err)
}

/// Runs `f` with the runtime the caller runs on, if it is a worker thread (no reference count
/// is taken).
#[inline]
pub(crate) fn with_current_shared<R>(f: impl FnOnce(&Arc<Shared>) -> R) -> Option<R> {
    with_local(|l| f(&l.shared))
}

/// Whether the caller is a worker of a runtime that is ending.
pub(crate) fn runtime_ending() -> bool {
    with_local(|l| l.shared.is_shutting_down()).unwrap_or(false)
}

/// The runtime the caller runs on, if it is a worker thread.
pub(crate) fn current_shared() -> Option<Arc<Shared>> {
    with_local(|l| l.shared.clone())
}

/// The index of the worker running the caller.
pub(crate) fn current_index() -> Option<usize> {
    with_local(|l| l.index)
}
