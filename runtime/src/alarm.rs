//! Alarms: callbacks a worker runs at a deadline, with no coroutine (and so no stack) of
//! their own.
//!
//! A timer written as a coroutine parked on a deadline holds a stack, two kernel mappings,
//! for as long as it waits: ten thousand actors each with a heartbeat would need ten thousand
//! stacks. An alarm is an entry in its worker's alarm heap instead, about a hundred bytes with
//! its callback. The worker runs the callbacks that are due after each poll, between
//! coroutines, the way it fires its coroutines' timeouts.
//!
//! # Cancellation
//!
//! [`Alarm`] is `Send`: dropping it on another thread cancels it. The callback sits in a
//! mutex beside a `cancelled` flag. `cancel` sets the flag and then takes the callback out
//! under the lock, so the callback (and what it owns, a message, a sender) is dropped at
//! once. A worker running an alarm takes the callback out under the same lock, calls it
//! unlocked, and puts it back under the lock only if the flag is still clear; otherwise it
//! drops it. Either the worker's put-back comes first and `cancel` takes the callback, or
//! `cancel`'s flag comes first and the worker sees it: a cancelled alarm never runs again
//! after `cancel` returns, except for a call already under way.
//!
//! A cancelled alarm's heap entry is left behind and skipped when it is due. So that a loop
//! that sets and cancels long alarms keeps the heap small, the heap drops its cancelled
//! entries whenever it has doubled since the last such sweep.
//!
//! What a callback may do is in [`alarm`]'s docs.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::sync::lock;
use crate::worker;

/// What an alarm runs: given the time it runs at, it returns its next deadline, or `None`
/// when it is done.
type Callback = Box<dyn FnMut(Instant) -> Option<Instant> + Send>;

/// A pending [`alarm`] or [`alarm_every`]. Dropping it cancels the alarm, as [`cancel`]
/// does; [`detach`] lets it run on its own instead.
///
/// [`cancel`]: Alarm::cancel
/// [`detach`]: Alarm::detach
#[must_use = "dropping an Alarm cancels it; call detach() to let it run"]
pub struct Alarm {
    ctl: Option<Arc<Ctl>>,
}

impl Alarm {
    /// Cancels the alarm and drops its callback. It does not run after this returns, unless a
    /// run had already started on its worker (that run completes).
    pub fn cancel(mut self) {
        if let Some(ctl) = self.ctl.take() {
            ctl.cancel();
        }
    }

    /// Lets the alarm run on its own; it can no longer be cancelled.
    pub fn detach(mut self) {
        self.ctl = None;
    }

    /// Whether the alarm is still to run (again), or running now: false once a one-shot alarm
    /// has run, once a periodic one has stopped, and after a panic in its callback.
    pub fn is_pending(&self) -> bool {
        self.ctl.as_ref().is_some_and(|c| {
            !c.cancelled.load(Ordering::Relaxed) && !c.done.load(Ordering::Acquire)
        })
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some(ctl) = self.ctl.take() {
            ctl.cancel();
        }
    }
}

impl fmt::Debug for Alarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alarm")
            .field("pending", &self.is_pending())
            .finish()
    }
}

/// Runs `f` once at `deadline` (or as soon after it as the worker gets to it), with no
/// coroutine of its own: the cheap way to hold many timers. A coroutine parked on a deadline
/// holds a stack while it waits; an alarm is an entry in its worker's alarm heap, about a
/// hundred bytes with its callback.
///
/// Called on a worker (from a coroutine, or from another alarm), the alarm runs on that
/// worker. On another thread of a runtime (its offload pool) it is handed to a worker; outside
/// any runtime it gets a thread of its own. It ends with its runtime, unrun.
///
/// # What the callback may do
///
/// It runs on the worker thread between coroutines, so it must not wait: `try_send`,
/// `try_recv`, spawning a coroutine and setting another alarm are fine, and for anything that
/// waits, spawn a coroutine. A wait on a channel, lock, join or sleep in it panics with a
/// message saying so, rather than stall every coroutine of the worker. A panic in a callback
/// is printed by the panic hook and ends that alarm, nothing else.
///
/// ```
/// use std::time::{Duration, Instant};
/// use coact_runtime::{sync::mpsc::sync_channel, time};
///
/// coact_runtime::run(|| {
///     let (tx, rx) = sync_channel(1);
///     let start = Instant::now();
///     time::alarm(start + Duration::from_millis(5), move |_| {
///         let _ = tx.try_send("ring");
///     })
///     .detach();
///     assert_eq!(rx.recv(), Ok("ring"));
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
pub fn alarm<F>(deadline: Instant, f: F) -> Alarm
where
    F: FnOnce(Instant) + Send + 'static,
{
    set(Some(deadline), once(f))
}

/// Runs `f` once, `delay` from now; see [`alarm`]. A delay that reaches past the end of
/// `Instant` never comes: the alarm keeps `f` (and what it owns) until it is cancelled.
pub fn alarm_after<F>(delay: Duration, f: F) -> Alarm
where
    F: FnOnce(Instant) + Send + 'static,
{
    set(Instant::now().checked_add(delay), once(f))
}

/// A one-shot callback: runs `f`, then is done.
fn once<F>(f: F) -> Callback
where
    F: FnOnce(Instant) + Send + 'static,
{
    let mut f = Some(f);
    Box::new(move |now| {
        if let Some(f) = f.take() {
            f(now);
        }
        None
    })
}

/// Runs `f` every `period`, the first time one period from now, until it returns `false` or
/// the [`Alarm`] is cancelled, with no coroutine of its own (see [`alarm`] for where it runs
/// and what the callback may do).
///
/// Deadlines do not drift: the n-th run is due n periods after the call. Runs that would fall
/// while the worker could not get to the alarm are skipped, not made up in a burst: the next
/// run is at the next multiple of the period after the late one.
///
/// ```
/// use std::time::Duration;
/// use coact_runtime::{sync::mpsc::sync_channel, time};
///
/// coact_runtime::run(|| {
///     let (tx, rx) = sync_channel(8);
///     let mut n = 0;
///     let beat = time::alarm_every(Duration::from_millis(2), move |_| {
///         n += 1;
///         tx.try_send(n).is_ok() && n < 3
///     });
///     assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2, 3]);
///     assert!(!beat.is_pending());
/// });
/// ```
///
/// # Panics
/// If `period` is zero.
pub fn alarm_every<F>(period: Duration, mut f: F) -> Alarm
where
    F: FnMut(Instant) -> bool + Send + 'static,
{
    assert!(
        !period.is_zero(),
        "coact: an alarm period must be longer than zero"
    );
    let start = Instant::now();
    // The deadline of the k-th run (k periods after the start), if `Instant` reaches it.
    let due = move |k: u128| {
        let nanos = k.checked_mul(period.as_nanos())?;
        start.checked_add(Duration::from_nanos(u64::try_from(nanos).ok()?))
    };
    let mut k: u128 = 1;
    // `None`: a period so long that the first run would fall after the end of `Instant`.
    set(
        due(1),
        Box::new(move |now| {
            if !f(now) {
                return None;
            }
            // The first deadline after now: runs missed while this could not run are skipped.
            let periods = now.saturating_duration_since(start).as_nanos() / period.as_nanos();
            k = (periods + 1).max(k + 1);
            due(k)
        }),
    )
}

/// Sets an alarm on the caller's worker, its runtime or a thread of its own; one with no
/// deadline never runs, but keeps its callback until it is cancelled.
fn set(deadline: Option<Instant>, callback: Callback) -> Alarm {
    let ctl = Arc::new(Ctl {
        cancelled: AtomicBool::new(false),
        done: AtomicBool::new(false),
        callback: Mutex::new(Some(callback)),
        thread: OnceLock::new(),
    });
    let alarm = Alarm {
        ctl: Some(ctl.clone()),
    };
    let Some(deadline) = deadline else {
        return alarm;
    };
    let Err(ctl) = worker::add_alarm(deadline, ctl) else {
        return alarm;
    };
    match crate::Handle::current() {
        // An offload thread: a worker takes the alarm in (a coroutine of a moment).
        Some(h) => h.spawn_detached(move || {
            // The runtime ends: the alarm ends with it.
            let _ = worker::add_alarm(deadline, ctl);
        }),
        None => on_thread(deadline, ctl),
    }
    alarm
}

/// Runs an alarm on a thread of its own (outside any runtime).
fn on_thread(deadline: Instant, ctl: Arc<Ctl>) {
    let run = {
        let ctl = ctl.clone();
        move || {
            // Published before the first look at `cancelled`; `cancel` sets `cancelled`
            // before it looks for the thread. The fences order each side's store before its
            // load, so at least one side sees the other: a cancel is never missed.
            let _ = ctl.thread.set(std::thread::current());
            fence(Ordering::SeqCst);
            let mut at = deadline;
            loop {
                loop {
                    if ctl.cancelled.load(Ordering::Relaxed) {
                        return;
                    }
                    let now = Instant::now();
                    if now >= at {
                        break;
                    }
                    std::thread::park_timeout(at - now);
                }
                match ctl.run(Instant::now()) {
                    Some(next) => at = next,
                    None => return,
                }
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("coact-alarm".into())
        .spawn(run)
    {
        tracing::warn!(target: "coact", "coact: could not start an alarm thread: {e}");
        ctl.cancel();
    }
}

/// The state an [`Alarm`] shares with the heap entry (or thread) that runs it.
pub(crate) struct Ctl {
    cancelled: AtomicBool,
    /// Its callback said it was done, or panicked.
    done: AtomicBool,
    /// `None` while it runs, and once it is done or cancelled.
    callback: Mutex<Option<Callback>>,
    /// The thread of an alarm run outside a runtime, woken by a cancel.
    thread: OnceLock<Thread>,
}

impl Ctl {
    /// Cancels the alarm and drops its callback (see "Cancellation" above).
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let callback = lock(&self.callback).take();
        drop(callback); // unlocked: its destructor may do anything
        fence(Ordering::SeqCst);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Runs the callback once, at `now`; its next deadline if the alarm goes on.
    fn run(&self, now: Instant) -> Option<Instant> {
        let mut f = lock(&self.callback).take()?;
        // After a panic (the panic hook has printed it) the alarm ends.
        let next = catch_unwind(AssertUnwindSafe(|| f(now))).unwrap_or_default();
        if next.is_some() {
            let mut slot = lock(&self.callback);
            if !self.cancelled.load(Ordering::SeqCst) {
                *slot = Some(f);
                return next;
            }
        }
        if next.is_none() {
            self.done.store(true, Ordering::Release);
        }
        drop(f); // unlocked, as in `cancel`
        None
    }
}

thread_local! {
    /// True while this worker runs an alarm's callback (see [`forbid_blocking`]).
    static IN_ALARM: Cell<bool> = const { Cell::new(false) };
}

/// Panics if the caller is an alarm's callback, which must not block its worker. Called by
/// the blocking waits of plain threads, the path a callback's wait would take.
#[inline]
pub(crate) fn forbid_blocking() {
    if IN_ALARM.with(Cell::get) {
        panic!(
            "coact: an alarm's callback tried to block; it runs on its worker between \
             coroutines and may only use calls that do not wait (try_send, try_recv, spawn)"
        );
    }
}

/// One alarm in a worker's heap, due at `at`; `seq` keeps alarms due at the same time in the
/// order they were set.
struct Due {
    at: Instant,
    seq: u64,
    ctl: Arc<Ctl>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A worker's alarms.
pub(crate) struct Alarms {
    heap: BinaryHeap<Reverse<Due>>,
    next_seq: u64,
    /// The heap size at which cancelled entries are swept next.
    sweep_at: usize,
}

/// Heap size below which cancelled entries are never swept.
const SWEEP_MIN: usize = 64;

impl Alarms {
    pub(crate) fn new() -> Self {
        Alarms {
            heap: BinaryHeap::new(),
            next_seq: 0,
            sweep_at: SWEEP_MIN,
        }
    }

    /// Adds an alarm due at `at`.
    pub(crate) fn add(&mut self, at: Instant, ctl: Arc<Ctl>) {
        if self.heap.len() >= self.sweep_at {
            self.heap
                .retain(|Reverse(d)| !d.ctl.cancelled.load(Ordering::Relaxed));
            self.sweep_at = (self.heap.len() * 2).max(SWEEP_MIN);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Due { at, seq, ctl }));
    }

    /// The earliest deadline, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(d)| d.at)
    }

    /// Takes out every alarm due at `now`.
    pub(crate) fn take_due(&mut self, now: Instant, into: &mut Vec<Arc<Ctl>>) {
        while self.heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
            if let Some(Reverse(d)) = self.heap.pop() {
                into.push(d.ctl);
            }
        }
    }

    /// Takes out every alarm (the runtime ends).
    pub(crate) fn take_all(&mut self) -> Vec<Arc<Ctl>> {
        std::mem::take(&mut self.heap)
            .into_vec()
            .into_iter()
            .map(|Reverse(d)| d.ctl)
            .collect()
    }

    /// Number of entries (pending and cancelled).
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

/// Runs the alarms `due` at `now` on the calling worker; returns those that go on, with their
/// next deadlines.
pub(crate) fn run_due(due: &mut Vec<Arc<Ctl>>, now: Instant, again: &mut Vec<(Instant, Arc<Ctl>)>) {
    for ctl in due.drain(..) {
        IN_ALARM.with(|c| c.set(true));
        let next = ctl.run(now);
        IN_ALARM.with(|c| c.set(false));
        if let Some(next) = next {
            again.push((next, ctl));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctl() -> Arc<Ctl> {
        Arc::new(Ctl {
            cancelled: AtomicBool::new(false),
            done: AtomicBool::new(false),
            callback: Mutex::new(Some(Box::new(|_| None))),
            thread: OnceLock::new(),
        })
    }

    #[test]
    fn alarms_come_due_in_deadline_then_setting_order() {
        let mut a = Alarms::new();
        let now = Instant::now();
        let (x, y, z) = (ctl(), ctl(), ctl());
        a.add(now + Duration::from_millis(20), x.clone());
        a.add(now + Duration::from_millis(10), y.clone());
        a.add(now + Duration::from_millis(10), z.clone());
        assert_eq!(a.next_deadline(), Some(now + Duration::from_millis(10)));
        let mut due = Vec::new();
        a.take_due(now + Duration::from_millis(15), &mut due);
        assert_eq!(due.len(), 2);
        assert!(Arc::ptr_eq(&due[0], &y) && Arc::ptr_eq(&due[1], &z));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn cancelled_alarms_are_swept_as_the_heap_doubles() {
        let mut a = Alarms::new();
        let far = Instant::now() + Duration::from_secs(3600);
        let mut peak = 0;
        for _ in 0..10_000 {
            let c = ctl();
            a.add(far, c.clone());
            c.cancel();
            peak = peak.max(a.len());
        }
        assert!(peak <= SWEEP_MIN + 1, "the heap grew to {peak}");
        let kept: Vec<_> = (0..1_000).map(|_| ctl()).collect();
        for c in &kept {
            a.add(far, c.clone());
        }
        assert!(a.len() <= 1_000 + SWEEP_MIN + 1);
    }

    #[test]
    fn ten_thousand_timers_hold_no_stacks() {
        let rt = crate::Runtime::builder().workers(1).build().unwrap();
        let (mapped, ticked) = rt.block_on(|| {
            let timers: Vec<_> = (0..10_000)
                .map(|_| crate::time::tick(Duration::from_millis(1)))
                .collect();
            let ticked = timers
                .iter()
                .filter(|t| t.recv_timeout(Duration::from_secs(30)).is_ok())
                .count();
            (crate::stack::mapped(), ticked)
        });
        assert_eq!(ticked, 10_000);
        // One for the coroutine above, a few for other tests of this binary; a timer that
        // parked a coroutine would hold one each.
        assert!(mapped < 1_000, "{mapped} stacks mapped");
    }
}
