//! The life of one actor: its schedule state, its control flags, and the activation loop that
//! runs its handler on a borrowed coroutine.
//!
//! # Stack on demand
//!
//! A handler actor owns no coroutine. Between messages it is its state, its mailbox and two
//! atomic bytes. When a message arrives and the actor is idle, the sender schedules an
//! *activation*: a detached coroutine (on a pooled stack) that drains the mailbox through the
//! handler and ends when the mailbox is empty, giving the stack back. A handler that blocks
//! (asks another actor, reads a socket, sleeps) keeps its activation's stack until it returns.
//!
//! # The schedule protocol
//!
//! `sched` is `IDLE`, `SCHEDULED` (an activation exists, running or queued; a sender may add
//! the `DIRTY` mark to it) or `DONE`. Whoever moves it from `IDLE` to `SCHEDULED` holds the
//! schedule and spawns the activation, which holds it from then on until it gives it up.
//!
//! ```text
//! sender                                   activation, mailbox found empty
//! S1. push the message (channel lock)      A1. look at the mailbox and the control flags:
//!     or set a control flag                    work there: go on handling
//! S2. one CAS on sched:                    A2. put the lease back (see `Cell::lease`)
//!     IDLE -> SCHEDULED: spawn the         A3. CAS(SCHEDULED -> IDLE): done, the activation ends
//!       activation                         A4. it failed (DIRTY): take the lease back, swap the
//!     SCHEDULED (marked or not) ->             mark off, back to A1
//!       SCHEDULED | DIRTY
//!     DONE: nothing
//! ```
//! Every step that decides (S2, A3, A4) is a read-modify-write of `sched`, so they fall in one
//! order. A sender's S2 either comes before the activation's last A4 (which acquires the
//! sender's message, and A1 then sees it), or between that A4 and A3 (its mark fails A3), or
//! after A3 (it finds `IDLE` and starts an activation itself). So there is never more than one
//! activation and never a message left with none, and neither side needs a fence: an earlier
//! version stored `IDLE` and checked the mailbox behind a `SeqCst` fence on both sides, which
//! cost as much as the CAS each side now does and needed a CAS on top.
//!
//! # Hand-over: a message to an idle actor skips the mailbox
//!
//! A send to an idle handler actor whose mailbox is empty does not queue the message: the
//! sender wins the `IDLE -> SCHEDULED` CAS of the schedule protocol itself, puts the message in
//! the cell's `direct` slot and spawns the activation, which handles that message before
//! anything in the mailbox. Nothing can be older than it (the mailbox was empty, and the
//! sender's own earlier messages were either handled or waiting there), and everything sent
//! after the CAS sees `SCHEDULED` and queues behind it, so per-sender order holds. A message
//! handed over is as good as taken from the mailbox at once: it does not count against the
//! capacity, as a message being handled does not. It saves a channel operation on each side
//! of the hop, which is the whole message path of request/response between actors (ping-pong
//! between two actors: 1,518 to 1,204 instructions and about 150 to 111 ns per round trip).
//!
//! # No lock and no reference count on the message path
//!
//! The hand-over slot and the state an activation works with (the actor, its mailbox's
//! receiving end) sit in cells that only the holder of the schedule touches (`slot.rs`), not
//! behind mutexes: the schedule already lets one party at a time near them, and each lock cost
//! two atomic read-modify-writes, about 6 ns apiece on this project's machines. Likewise the
//! activation's reference to the cell is not cloned from the cell and dropped per activation:
//! it is lent (`Cell::lease`) by the activation that ends to whoever schedules the next one. A
//! hop from one actor to another is then two atomic read-modify-writes: the sender's CAS and the
//! activation's closing CAS. Ping-pong between two actors went from about 160 to 94 ns per
//! round trip with these changes (alternating runs, one worker, one machine). Recording the
//! activation's coroutine for `kill` (`Common::set_running`) takes no fence either: its
//! handshake with `kill` is an asymmetric one (`coact_runtime::barrier`), where the rare
//! `kill` pays for the fence with a system call. So an activation
//! gives the schedule up (`go_idle`) only after its last use of that state, and sees whether
//! its mailbox is empty through a sender of its own (`Cell::probe`) rather than through the
//! receiver that the next activation may already hold.
//!
//! # Control flags
//!
//! `STOP`, `KILL` and `RESTART` are requests, set by anyone and acted on by the activation at
//! the top of its loop (a `KILL` also cancels a running activation's coroutine, so a handler
//! blocked in a call unwinds at once). `FAILED` marks a supervised actor whose handler panicked:
//! it handles nothing until its supervisor restarts it (its mailbox keeps every message).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use coact_runtime::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use coact_runtime::{barrier, Cancelled, CoroutineId, CoroutineIdSlot, Handle, Label};

use crate::census;
use crate::reason::{ActorId, Down, StopReason};
use crate::slot::{Held, Slot};
use crate::supervisor::Failure;
use crate::{Actor, Addr, Ctx};
use coact_runtime::panic_text;

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const DONE: u8 = 2;
/// Added to `SCHEDULED` by a sender: look at the mailbox again before going idle.
const DIRTY: u8 = 4;

pub(crate) const STOP: u8 = 1;
pub(crate) const KILL: u8 = 2;
pub(crate) const RESTART: u8 = 4;
pub(crate) const FAILED: u8 = 8;
/// The last external address was dropped: stop once the mailbox is empty (if still so).
pub(crate) const ORPHANED: u8 = 16;

/// Messages an activation handles before it lets other coroutines on its worker run.
const BATCH: u32 = 64;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What every kind of actor shares, whatever its message type.
pub(crate) struct Common {
    pub(crate) id: ActorId,
    /// Monitors to tell when the actor stops.
    watchers: Mutex<Vec<SyncSender<Down>>>,
    /// Set once, when the actor stops.
    reason: Mutex<Option<StopReason>>,
    /// The coroutine of the latest activation (to kill it; stale once that one has ended,
    /// which makes a cancel of it do nothing).
    running: CoroutineIdSlot,
    /// Names registered for this actor, released when it stops.
    pub(crate) names: Mutex<Vec<String>>,
    pub(crate) flags: AtomicU8,
    /// Addresses held outside the actor (see `Addr::counted`).
    pub(crate) external: std::sync::atomic::AtomicUsize,
}

impl Common {
    pub(crate) fn new() -> Common {
        Common {
            id: ActorId::next(),
            watchers: Mutex::new(Vec::new()),
            reason: Mutex::new(None),
            running: CoroutineIdSlot::new(),
            names: Mutex::new(Vec::new()),
            flags: AtomicU8::new(0),
            external: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Adds a monitor; if the actor already stopped, it is told at once.
    pub(crate) fn watch(&self, tx: SyncSender<Down>) {
        let reason = lock(&self.reason).clone();
        match reason {
            Some(reason) => {
                let _ = tx.try_send(Down {
                    id: self.id,
                    reason,
                });
            }
            None => {
                let mut w = lock(&self.watchers);
                // Re-check under the watcher lock: `finish` takes the list under it.
                match lock(&self.reason).clone() {
                    Some(reason) => {
                        let _ = tx.try_send(Down {
                            id: self.id,
                            reason,
                        });
                    }
                    None => w.push(tx),
                }
            }
        }
    }

    /// Records the coroutine of a new activation (or none). The light barrier, paired with the
    /// heavy one in `cancel_running`, orders the record before the caller's next read of the
    /// request flags: a `KILL` set meanwhile is either seen there or finds this record. (The
    /// pair is as strong as a `fence(SeqCst)` on each side; the activation, which runs per
    /// message, pays nothing, and `kill` pays a system call.) Records never overlap: an actor
    /// has one activation (or one process coroutine) at a time.
    pub(crate) fn set_running(&self, id: Option<CoroutineId>) {
        self.running.set(id);
        barrier::light();
    }

    /// Cancels the running coroutine, if any. Called after setting `KILL`.
    pub(crate) fn cancel_running(&self) {
        barrier::heavy();
        if let Some(id) = self.running.get() {
            id.cancel();
        }
    }

    pub(crate) fn stopped_with(&self) -> Option<StopReason> {
        lock(&self.reason).clone()
    }

    /// Records the reason, tells every monitor once, and releases the actor's names.
    pub(crate) fn finish(&self, reason: StopReason) {
        let watchers = {
            let mut w = lock(&self.watchers);
            *lock(&self.reason) = Some(reason.clone());
            std::mem::take(&mut *w)
        };
        for tx in watchers {
            let _ = tx.try_send(Down {
                id: self.id,
                reason: reason.clone(),
            });
        }
        crate::registry::release(self.id, &std::mem::take(&mut *lock(&self.names)));
    }
}

/// The type-erased control surface an [`Addr`] holds.
pub(crate) trait Control: Send + Sync {
    fn common(&self) -> &Common;
    /// A message was queued: make sure something will handle it.
    fn notify(&self);
    /// Sets a request flag and makes sure the actor acts on it.
    fn request(&self, flag: u8);
}

/// What an [`Addr`] holds: the control surface, and the typed hand-over to an idle actor.
pub(crate) trait Mailbox<M>: Control {
    /// Gives `msg` straight to the actor if it is idle and its mailbox (`tx`'s channel) is
    /// empty, scheduling an activation for it; gives it back otherwise (the caller then sends
    /// it through the mailbox). See "Hand-over" in the module docs.
    fn hand_over(&self, msg: M, _tx: &SyncSender<M>) -> Result<(), M> {
        Err(msg)
    }
}

/// A handler actor.
pub(crate) struct Cell<A: Actor> {
    common: Common,
    sched: AtomicU8,
    /// A message handed over to the idle actor (see [`Mailbox::hand_over`]), for its next
    /// activation to handle before anything in the mailbox.
    direct: Slot<A::Msg>,
    /// The activation's own reference to the cell while the actor is idle: whoever wins the
    /// schedule takes it out to spawn the activation with, and the activation puts it back when
    /// it gives the schedule up, so a hop between actors touches no reference count. (While
    /// idle the cell keeps itself alive this way, as it does through its own address in
    /// `Inner::self_addr`; both go when the actor stops.)
    lease: Held<Option<Arc<Cell<A>>>>,
    handle: Handle,
    /// What the activation works with (see [`Held`]).
    inner: Held<Inner<A>>,
    /// The actor's key in its runtime's census (see `census.rs`), given back as it stops.
    census_key: AtomicU32,
    /// A sender on the actor's own mailbox, to see from outside the actor's state whether it
    /// is empty (see `go_idle`). The actor's own address keeps the mailbox open anyway, so this
    /// changes nothing about when it disconnects.
    probe: SyncSender<A::Msg>,
}

/// What only the activation touches (there is at most one activation at a time).
struct Inner<A: Actor> {
    actor: Option<A>,
    rx: Option<Receiver<A::Msg>>,
    /// The actor's own address, for its `Ctx`; dropped when it stops (it points back here).
    self_addr: Option<Addr<A::Msg>>,
    /// Makes a fresh state on restart (supervised actors only).
    factory: Option<Box<dyn FnMut() -> A + Send>>,
    /// Where a supervised actor reports a panic.
    supervisor: Option<(usize, SyncSender<Failure>)>,
    started: bool,
}

/// Builds a handler actor's cell and its address; schedules nothing yet.
pub(crate) fn new_cell<A: Actor>(
    actor: A,
    tx: SyncSender<A::Msg>,
    rx: Receiver<A::Msg>,
    handle: Handle,
    factory: Option<Box<dyn FnMut() -> A + Send>>,
    supervisor: Option<(usize, SyncSender<Failure>)>,
) -> Addr<A::Msg> {
    let cell = Arc::new(Cell {
        common: Common::new(),
        sched: AtomicU8::new(IDLE),
        direct: Slot::new(),
        lease: Held::new(None),
        handle,
        census_key: AtomicU32::new(census::NOT_COUNTED),
        probe: tx.clone(),
        inner: Held::new(Inner {
            actor: Some(actor),
            rx: Some(rx),
            self_addr: None,
            factory,
            supervisor,
            started: false,
        }),
    });
    let addr = Addr::new(tx, cell.clone());
    // SAFETY: no activation exists yet and the cell is not shared: nobody else can reach it.
    unsafe { cell.inner.get() }.self_addr = Some(addr.own());
    // SAFETY: as above.
    *unsafe { cell.lease.get() } = Some(cell.clone());
    // Counted only now that it is whole: from here on the end of the runtime may schedule it
    // (see `census.rs`), which takes the lease. Its key is stored after, hence the atomic: a
    // stop that runs meanwhile (the runtime ending on another thread) reads no key, and needs
    // none, as the census it would remove it from has let go of its entries already.
    let weak: std::sync::Weak<dyn Control> = Arc::downgrade(&cell) as _;
    let key = census::count(&cell.handle, weak);
    cell.census_key.store(key, Ordering::Relaxed);
    // Run `started` now rather than at the first message.
    cell.request(0);
    addr
}

impl<A: Actor> Control for Cell<A> {
    fn common(&self) -> &Common {
        &self.common
    }

    fn notify(&self) {
        // Step S2 of the schedule protocol.
        let mut cur = self.sched.load(Ordering::Relaxed);
        loop {
            let next = match cur {
                IDLE => SCHEDULED,
                DONE => return,
                // SCHEDULED, with or without the mark: mark it (again).
                _ => cur | DIRTY,
            };
            match self
                .sched
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) if cur == IDLE => {
                    // SAFETY: winning IDLE -> SCHEDULED gave this party the schedule.
                    let cell = unsafe { self.lease.get() }
                        .take()
                        .expect("an idle actor's lease is in its cell");
                    self.handle.spawn_runnable(cell);
                    return;
                }
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    fn request(&self, flag: u8) {
        self.common.flags.fetch_or(flag, Ordering::AcqRel);
        if flag & KILL != 0 {
            self.common.cancel_running();
        }
        self.notify();
    }
}

impl<A: Actor> Mailbox<A::Msg> for Cell<A> {
    fn hand_over(&self, msg: A::Msg, tx: &SyncSender<A::Msg>) -> Result<(), A::Msg> {
        // Only an idle actor with nothing waiting: then this message is the oldest one, and
        // whatever is sent after the CAS below sees SCHEDULED and queues behind it.
        if self.sched.load(Ordering::Relaxed) != IDLE || !tx.is_empty() {
            return Err(msg);
        }
        if self.common.flags.load(Ordering::Relaxed) & FAILED != 0
            || self
                .sched
                .compare_exchange(IDLE, SCHEDULED, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return Err(msg);
        }
        // Winning the CAS makes this the one party that schedules the next activation, and
        // no activation runs its loop meanwhile: nobody else touches `direct` now.
        // SAFETY: as above, this sender holds the schedule until the spawn below.
        let cell = unsafe { self.lease.get() }
            .take()
            .expect("an idle actor's lease is in its cell");
        // A message handed over earlier may still wait (its actor failed and awaits a
        // restart): this one queues behind it, in the mailbox. (Read after the CAS, which
        // acquired what the last activation published when it went idle.)
        // SAFETY: winning the CAS gave this sender the schedule until the spawn below.
        let queued = unsafe { self.direct.put(msg) };
        // The activation is ours to start either way (senders that queued meanwhile left it to
        // us); after an `Err` the caller queues its message and notifies as usual.
        self.handle.spawn_runnable(cell);
        queued
    }
}

impl<A: Actor> coact_runtime::Runnable for Cell<A> {
    fn run(self: Arc<Self>) {
        activate(self);
    }

    /// The runtime ended before this activation could start: the actor stops as a running
    /// one does when its coroutine is cancelled ([`StopReason::Killed`]), so that its askers
    /// and monitors learn it now rather than never. An actor idle when the runtime ended
    /// comes here too: the end schedules it (see `census.rs`).
    fn abandoned(self: Arc<Self>) {
        // SAFETY: the activation that will never run held the schedule, and so does this
        // party in its place; `inner` is this cell's.
        unsafe {
            let inner = self.inner.get();
            stop(&self, inner, StopReason::Killed);
        }
    }
}

/// What the activation loop ended with.
enum Outcome {
    /// The mailbox is empty (or the actor waits for its supervisor): the activation ends.
    Idle,
    /// The actor stops.
    Stop(StopReason),
}

/// Runs one activation: handles messages until the mailbox is empty or the actor stops.
fn activate<A: Actor>(mut cell: Arc<Cell<A>>) {
    let me = coact_runtime::current_coroutine();
    cell.common.set_running(me);
    // A handler that stalls the worker is reported by the actor's name (the label lasts until
    // the activation first parks; see `Label`).
    coact_runtime::set_label(Some(Label::of::<A>()));
    // Messages handled by this activation (it yields to its worker every `BATCH`).
    let mut handled = 0u32;
    loop {
        // SAFETY: this activation holds the schedule (it was spawned by the party that won it,
        // or won it back in `go_idle`), and it stops using `inner` before `go_idle` lets go.
        let inner = unsafe { cell.inner.get() };
        let outcome = match catch_unwind(AssertUnwindSafe(|| run(&cell, inner, &mut handled))) {
            Ok(o) => o,
            // A kill (or the end of the runtime) cancelled us outside a handler call.
            Err(p) if p.is::<Cancelled>() => Outcome::Stop(StopReason::Killed),
            Err(p) => Outcome::Stop(StopReason::Panicked(panic_text(&*p))),
        };
        // The record of this activation stays until the next one replaces it: cancelling a
        // coroutine that has finished does nothing (ids carry a generation), so a kill that
        // reads it late is harmless, and ending an activation costs no lock.
        match outcome {
            Outcome::Idle => match go_idle(cell) {
                Some(c) => cell = c,
                None => return,
            },
            Outcome::Stop(reason) => {
                // SAFETY: the activation holds the schedule (see above).
                unsafe { stop(&cell, inner, reason) };
                return;
            }
        }
    }
}

/// Stops the actor for good: runs its `stopped` hook, closes its mailbox and tells its
/// monitors.
///
/// # Safety
/// The caller holds the schedule (an activation, or a start given up; see
/// `Runnable::abandoned`), and `inner` is the cell's.
unsafe fn stop<A: Actor>(cell: &Cell<A>, inner: &mut Inner<A>, reason: StopReason) {
    // DONE is never left: from here on nobody else touches the actor's state.
    cell.sched.store(DONE, Ordering::Release);
    // The user's code below (`stopped`, the state's destructor, the destructors of queued
    // messages and of the factory) may panic: each part is caught and logged, and the stop
    // goes on, so that the census, the registry and the monitors always learn of it.
    if let Some(mut actor) = inner.actor.take() {
        contain("`stopped`", || actor.stopped(&reason));
        contain("state's destructor", move || drop(actor));
    }
    // Closing the mailbox drops what is queued (askers learn at once) and fails senders.
    let rx = inner.rx.take();
    // SAFETY: the caller holds the schedule (the contract).
    let direct = unsafe { cell.direct.take() };
    contain("queued messages' destructors", move || drop((rx, direct)));
    inner.self_addr = None;
    let factory = inner.factory.take();
    contain("factory's destructor", move || drop(factory));
    inner.supervisor = None;
    let key = cell.census_key.swap(census::NOT_COUNTED, Ordering::Relaxed);
    census::uncount(&cell.handle, key);
    cell.common.finish(reason);
}

/// Runs `f`, part of an actor's stop that runs the user's code; a panic is logged (naming
/// `what`) and goes no further.
pub(crate) fn contain(what: &str, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        let text = panic_text(&*p);
        // The payload's own destructor is the user's code too.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(p)));
        tracing::error!(target: "coact", "an actor's {what} panicked as it stopped: {text}");
    }
}

/// The activation loop proper.
fn run<A: Actor>(cell: &Cell<A>, inner: &mut Inner<A>, handled: &mut u32) -> Outcome {
    // A message was handled since `Actor::idle` last ran.
    let mut burst = false;
    loop {
        let flags = cell.common.flags.load(Ordering::Acquire);
        if flags & KILL != 0 {
            return Outcome::Stop(StopReason::Killed);
        }
        if flags & RESTART != 0 {
            cell.common
                .flags
                .fetch_and(!(RESTART | FAILED), Ordering::AcqRel);
            if let Some(f) = inner.factory.as_mut() {
                inner.actor = Some(f());
                inner.started = false;
            }
            continue;
        }
        if flags & STOP != 0 {
            return Outcome::Stop(StopReason::Stopped);
        }
        if flags & FAILED != 0 {
            // Wait for the supervisor's restart: the mailbox keeps what comes meanwhile.
            return Outcome::Idle;
        }
        let Inner {
            actor,
            rx,
            self_addr,
            supervisor,
            started,
            ..
        } = inner;
        let (Some(actor), Some(rx), Some(me)) = (actor.as_mut(), rx.as_ref(), self_addr.as_ref())
        else {
            return Outcome::Stop(StopReason::Normal);
        };
        let mut ctx = Ctx {
            addr: me,
            stop: false,
        };
        if !*started {
            *started = true;
            if let Some(o) = call(cell, supervisor, || actor.started(&mut ctx), None) {
                return o;
            }
            if ctx.stop {
                return Outcome::Stop(StopReason::Normal);
            }
            continue;
        }
        // SAFETY: a running activation holds the schedule.
        let next = match unsafe { cell.direct.take() } {
            Some(msg) => Ok(msg),
            None => rx.try_recv(),
        };
        match next {
            Ok(msg) => {
                let desc = if supervisor.is_some() {
                    A::describe(&msg)
                } else {
                    None
                };
                if let Some(o) = call(cell, supervisor, || actor.handle(msg, &mut ctx), desc) {
                    return o;
                }
                if ctx.stop {
                    return Outcome::Stop(StopReason::Normal);
                }
                *handled += 1;
                burst = true;
                if *handled % BATCH == 0 {
                    coact_runtime::yield_now();
                }
            }
            Err(TryRecvError::Empty) => {
                if burst {
                    // The end of a burst: the actor finishes its batched work. Messages that
                    // come meanwhile are found by `go_idle`, which looks at the mailbox again.
                    if let Some(o) = call(cell, supervisor, || actor.idle(&mut ctx), None) {
                        return o;
                    }
                    if ctx.stop {
                        return Outcome::Stop(StopReason::Normal);
                    }
                }
                if orphaned(&cell.common) {
                    return Outcome::Stop(StopReason::Normal);
                }
                // `activate` lets go of the schedule (`go_idle`) once this borrow of the
                // state has ended.
                return Outcome::Idle;
            }
            Err(TryRecvError::Disconnected) => return Outcome::Stop(StopReason::Normal),
        }
    }
}

/// Runs one handler call; a panic either stops the actor or, when supervised, marks it failed
/// and reports to the supervisor (the loop then waits for the restart).
fn call<A: Actor>(
    cell: &Cell<A>,
    supervisor: &Option<(usize, SyncSender<Failure>)>,
    f: impl FnOnce(),
    message: Option<String>,
) -> Option<Outcome> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => None,
        Err(p) if p.is::<Cancelled>() => Some(Outcome::Stop(StopReason::Killed)),
        Err(p) => {
            let text = panic_text(&*p);
            match supervisor {
                Some((child, tx)) => {
                    cell.common.flags.fetch_or(FAILED, Ordering::AcqRel);
                    let failure = Failure {
                        child: *child,
                        id: cell.common.id,
                        panic: text,
                        message,
                    };
                    if tx.send(failure).is_err() {
                        // The supervisor is gone: nobody will restart us.
                        return Some(Outcome::Stop(StopReason::Panicked(
                            "supervisor gone".into(),
                        )));
                    }
                    None
                }
                None => Some(Outcome::Stop(StopReason::Panicked(text))),
            }
        }
    }
}

/// Whether no external address is left (the flag is a hint; the count decides, since the
/// actor may have handed out a new address after the flag was set).
pub(crate) fn orphaned(common: &Common) -> bool {
    common.flags.load(Ordering::Acquire) & ORPHANED != 0
        && common.external.load(Ordering::Acquire) == 0
}

/// Steps A1–A4 of the schedule protocol: gives the schedule up unless there is work, in which
/// case the activation goes on with the lease it is given back. The caller no longer uses the
/// actor's state: once the schedule is given up another activation may hold it.
fn go_idle<A: Actor>(mut cell: Arc<Cell<A>>) -> Option<Arc<Cell<A>>> {
    loop {
        // A1.
        let flags = cell.common.flags.load(Ordering::Acquire);
        let work = flags & (STOP | KILL | RESTART) != 0
            || orphaned(&cell.common)
            || (flags & FAILED == 0 && (cell.direct.is_full() || !cell.probe.is_empty()));
        if work {
            return Some(cell);
        }
        // A2: the lease goes back into the cell; from the successful A3 on, this activation
        // touches nothing of the cell.
        let this: *const Cell<A> = Arc::as_ptr(&cell);
        // SAFETY: the activation still holds the schedule (`sched` is SCHEDULED, perhaps
        // marked, and no other party makes it anything but a marked SCHEDULED).
        let lease = unsafe { (*this).lease.get() };
        *lease = Some(cell);
        // SAFETY: the cell keeps its lease, which keeps the cell alive until the schedule is
        // given up; this reference is last used by the CAS that gives it up.
        let sched = unsafe { &(*this).sched };
        // A3.
        if sched
            .compare_exchange(SCHEDULED, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return None;
        }
        // A4: a sender marked the schedule since A1. Take the lease back, and the mark off
        // with an RMW (it acquires what every sender that marked queued before marking, and
        // a sender that marks after it fails the next A3); then look again.
        // SAFETY: the CAS failed, so the schedule is still this activation's.
        cell = unsafe { (*this).lease.get() }
            .take()
            .expect("the lease was put back above");
        cell.sched.swap(SCHEDULED, Ordering::AcqRel);
    }
}
