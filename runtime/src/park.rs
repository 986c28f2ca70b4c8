//! Parking and unparking: the one blocking primitive every other wait is built on.
//!
//! A blocked party is either a fiber or a plain thread. [`current`] gives an [`Unparker`] for
//! the caller; the caller publishes it where a waker will find it (a channel's waiter list,
//! a mutex queue) and then calls [`park`] in a loop until the condition it waits for holds.
//!
//! The contract, the same as [`std::thread::park`]'s:
//! * An unpark that happens before the park is not lost: the fiber keeps a `notified` permit
//!   (a thread uses std's own), and the next park consumes it and returns at once.
//! * Parks may return spuriously; every caller re-checks its condition in a loop, under the
//!   lock that guards it. This is what lets a waker unpark after it released that lock, and
//!   lets a stale unpark (for a wait that already ended) be harmless.
//!
//! Fiber unparkers carry the fiber's generation: a wake for a fiber that has finished, whose
//! slot now holds another fiber, is dropped by the owning worker.

use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::thread::Thread;
use std::time::Instant;

use crate::worker::{self, Shared};

/// How a park ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Park {
    /// Unparked, or timed out, or spurious: re-check the condition.
    Woken,
    /// The runtime is ending and this fiber is cancelled: give up the wait.
    Cancelled,
}

/// The payload a cancelled coroutine unwinds with; a [`JoinHandle`](crate::JoinHandle) of a
/// coroutine that was cancelled when its runtime ended returns it as the `Err` of `join`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the coroutine was cancelled because its runtime ended")
    }
}

impl std::error::Error for Cancelled {}

/// A handle that wakes one parked fiber or thread.
#[derive(Clone)]
pub(crate) enum Unparker {
    /// A fiber: (runtime, worker index, slab key, generation).
    Fiber(FiberRef),
    /// A plain thread.
    Thread(Thread),
}

/// The address of one fiber.
#[derive(Clone)]
pub(crate) struct FiberRef {
    pub(crate) shared: Arc<Shared>,
    pub(crate) worker: u32,
    pub(crate) key: u32,
    pub(crate) gen: u32,
}

impl Unparker {
    /// Wakes the parked party (or leaves it a permit if it is not parked yet).
    pub(crate) fn unpark(self) {
        match self {
            Unparker::Fiber(f) => worker::unpark(f),
            Unparker::Thread(t) => t.unpark(),
        }
    }
}

/// Who waits, as recorded in a wait record that other parties reach under a lock.
///
/// Cheaper than an [`Unparker`]: recording a fiber copies four words and touches no reference
/// count. The price is a rule: [`Waiter::wake`] may only be called while the record holding
/// the waiter is still published under the lock that guards it (the waiting fiber cannot have
/// left its wait, so its worker, and the runtime, are alive).
pub(crate) enum Waiter {
    /// A fiber.
    Fiber(FiberAddr),
    /// A plain thread.
    Thread(Thread),
}

/// A fiber's address without a reference to its runtime (see [`Waiter`]).
#[derive(Clone, Copy)]
pub(crate) struct FiberAddr {
    pub(crate) shared: *const Shared,
    pub(crate) worker: u32,
    pub(crate) key: u32,
    pub(crate) gen: u32,
}

impl Waiter {
    /// The caller, as a waiter.
    #[inline]
    pub(crate) fn current() -> Waiter {
        match worker::current_addr() {
            Some(a) => Waiter::Fiber(a),
            None => Waiter::Thread(std::thread::current()),
        }
    }

    /// Wakes the waiter: a fiber of the calling worker is queued at once; any other waiter is
    /// returned as an [`Unparker`] to call once the lock is released.
    ///
    /// # Safety
    /// The caller holds the lock that guards the wait record this waiter was taken from, and
    /// the record was still published when it was taken: the waiting party has not left its
    /// wait, so a fiber's runtime is alive.
    #[inline]
    pub(crate) unsafe fn wake(self) -> Option<Unparker> {
        match self {
            // SAFETY: forwarded from this function's contract.
            Waiter::Fiber(a) => unsafe { worker::wake_addr(a) }.map(Unparker::Fiber),
            Waiter::Thread(t) => Some(Unparker::Thread(t)),
        }
    }
}

/// An unparker for the caller.
pub(crate) fn current() -> Unparker {
    match worker::current_fiber() {
        Some(f) => Unparker::Fiber(f),
        None => Unparker::Thread(std::thread::current()),
    }
}

/// Parks the caller until unparked, until `deadline` (if any) passes, or spuriously.
///
/// Always inline, as `worker::park_fiber` is: a fiber's switch then sits in the frame of the
/// blocking call that parks (see there); a plain thread's wait is out of line.
#[inline(always)]
pub(crate) fn park(deadline: Option<Instant>) -> Park {
    if crate::in_coroutine() {
        return worker::park_fiber(deadline, true);
    }
    park_thread(deadline)
}

/// [`park`] for a plain thread.
#[inline(never)]
fn park_thread(deadline: Option<Instant>) -> Park {
    crate::alarm::forbid_blocking();
    match deadline {
        None => std::thread::park(),
        Some(d) => {
            let now = Instant::now();
            if d > now {
                std::thread::park_timeout(d - now);
            }
        }
    }
    Park::Woken
}

/// Parks like [`park`], but a cancelled fiber still waits for a real wake (or its deadline).
/// For waits that cannot fail, such as taking a lock while unwinding.
pub(crate) fn park_uncancellable(deadline: Option<Instant>) {
    if crate::in_coroutine() {
        worker::park_fiber(deadline, false);
    } else {
        park_thread(deadline);
    }
}

/// Reacts to [`Park::Cancelled`] in a wait that has no error to return: starts unwinding the
/// fiber with [`Cancelled`], unless it is unwinding already (a second panic would abort), in
/// which case the caller gives up its wait and returns. Call it right after the park that
/// returned `Cancelled`: whether the fiber is unwinding is judged as of that park's start
/// (`worker::unwinding_at_park`), since the thread-wide `std::thread::panicking()` also counts
/// other fibers of the worker that are parked in the middle of unwinding.
pub(crate) fn cancelled() {
    let unwinding = worker::unwinding_at_park().unwrap_or_else(std::thread::panicking);
    if !unwinding {
        std::panic::resume_unwind(Box::new(Cancelled));
    }
}

/// Unparkers to call once a lock is released (a channel's: at most two on its hot paths).
///
/// It has no drop glue in release builds, so that a channel operation that woke nobody (the
/// common case: a fiber of this worker is queued at once, with no unparker) pays for neither a
/// drop nor a move: every `Wakes` must end with [`Wakes::run`], or its unparkers leak (a missed
/// wake). Debug builds check that on drop, so the test suite catches a path that forgets.
#[derive(Default)]
pub(crate) struct Wakes {
    first: ManuallyDrop<Option<Unparker>>,
    /// An `Option`, so that making an empty `Wakes` stores one word here, not a `Vec`'s three.
    more: ManuallyDrop<Option<Vec<Unparker>>>,
}

impl Wakes {
    #[inline]
    pub(crate) fn push(&mut self, u: Option<Unparker>) {
        if let Some(u) = u {
            if self.first.is_none() {
                *self.first = Some(u);
            } else {
                self.more.get_or_insert_with(Vec::new).push(u);
            }
        }
    }

    /// Calls the unparkers, leaving `self` empty; one test when there are none.
    #[inline(always)]
    pub(crate) fn run(&mut self) {
        if self.first.is_some() {
            self.run_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn run_slow(&mut self) {
        if let Some(u) = self.first.take() {
            u.unpark();
        }
        // `more` is only pushed to while `first` is taken.
        for u in self.more.take().into_iter().flatten() {
            u.unpark();
        }
    }
}

#[cfg(debug_assertions)]
impl Drop for Wakes {
    fn drop(&mut self) {
        // Not while unwinding: a panic between a push and `run` is reported already.
        if !std::thread::panicking() {
            debug_assert!(
                self.first.is_none(),
                "coact: channel wakes dropped without run"
            );
        }
    }
}
