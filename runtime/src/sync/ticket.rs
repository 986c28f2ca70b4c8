//! A waiting party's place in a queue that is served by whoever releases what it waits for:
//! the shared piece of [`Mutex`](super::Mutex), [`Condvar`](super::Condvar) and
//! [`RwLock`](super::RwLock); also the state-word steps and the queueing policy the two locks
//! share (see "Protocol" in `mutex.rs`).
//!
//! # Protocol
//!
//! The owner of the queue (a lock, a condition variable) keeps its [`Ticket`]s under its own
//! internal lock. A waiter makes a ticket, queues a clone under that lock (after checking, under
//! the same hold, that it has to wait), releases the lock and calls [`Ticket::wait`]. A releaser,
//! under the same lock, takes the ticket out of the queue and [`grant`](Ticket::grant)s it, which
//! hands it the thing waited for (the lock, a notification) and returns its unparker; the
//! releaser calls that once its own lock is free.
//!
//! A grant is never lost: the granter takes the waiter's unparker, then sets `granted`; the
//! waiter checks `granted` before each park, and the unpark that follows a grant either finds
//! the waiter parked or leaves it a permit (see `park`), so its next park returns at once. A waiter
//! that stops waiting without being granted (a deadline, a cancellation) must take its ticket
//! out of the queue under the owner's lock, and if it finds it was granted in the meantime, pass
//! on what it was given: every owner does that in a drop guard, so an unwinding waiter does it
//! too.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::park::{self, Park, Unparker};
use crate::sync::lock;

/// One waiter's place (cloned: one copy in the owner's queue, one with the waiter).
#[derive(Clone)]
pub(crate) struct Ticket {
    cell: Arc<Cell>,
}

struct Cell {
    /// Taken by the grant (the lock is only ever taken that once).
    unparker: std::sync::Mutex<Option<Unparker>>,
    granted: AtomicBool,
}

/// How [`Ticket::wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Granted,
    /// The deadline passed first.
    TimedOut,
    /// The runtime is ending and the waiting coroutine is cancelled.
    Cancelled,
}

thread_local! {
    /// A ticket's cell left by the last wait on this thread, for the next one (a wait in a loop
    /// then allocates nothing). Kept without an unparker, so it holds no runtime alive.
    static SPARE: std::cell::Cell<Option<Arc<Cell>>> = const { std::cell::Cell::new(None) };
}

impl Ticket {
    /// A ticket for the caller (a coroutine or a plain thread).
    pub(crate) fn new() -> Ticket {
        let unparker = Some(park::current());
        if let Some(mut cell) = SPARE.take() {
            if let Some(c) = Arc::get_mut(&mut cell) {
                *c.unparker.get_mut().unwrap_or_else(|e| e.into_inner()) = unparker;
                *c.granted.get_mut() = false;
                return Ticket { cell };
            }
        }
        Ticket {
            cell: Arc::new(Cell {
                unparker: std::sync::Mutex::new(unparker),
                granted: AtomicBool::new(false),
            }),
        }
    }

    /// Leaves the ticket's cell for this thread's next wait, if no copy of it is left anywhere
    /// (the owner's queue may still hold one for a moment after the grant: then it is freed).
    pub(crate) fn recycle(self) {
        let mut cell = self.cell;
        if let Some(c) = Arc::get_mut(&mut cell) {
            *c.unparker.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
            SPARE.set(Some(cell));
        }
    }

    /// Whether `self` and `other` are copies of one ticket.
    pub(crate) fn is(&self, other: &Ticket) -> bool {
        Arc::ptr_eq(&self.cell, &other.cell)
    }

    /// Grants the ticket; the returned unparker must be called, after the owner's lock is
    /// released. Called under the owner's lock, once the ticket is out of its queue.
    #[must_use = "the waiter sleeps until it is unparked"]
    pub(crate) fn grant(&self) -> Option<Unparker> {
        let u = lock(&self.cell.unparker).take();
        self.cell.granted.store(true, Ordering::Release);
        u
    }

    /// Whether the ticket was granted.
    pub(crate) fn granted(&self) -> bool {
        self.cell.granted.load(Ordering::Acquire)
    }

    /// Parks until the ticket is granted, `deadline` passes or the coroutine is cancelled. A
    /// wait that is not `cancellable` (one made while unwinding, which must not unwind twice)
    /// ignores cancellation and ends only by a grant or its deadline.
    ///
    /// The clock is read only after a park: a deadline already past makes the park return at
    /// once (as the channels' waits do), and most waits end by a grant before their deadline.
    pub(crate) fn wait(&self, deadline: Option<Instant>, cancellable: bool) -> Wait {
        // A spurious or stale unpark leaves the unparker in place: only the grant takes it, so
        // parking again needs no new registration.
        while !self.granted() {
            if cancellable {
                if park::park(deadline) == Park::Cancelled {
                    return Wait::Cancelled;
                }
            } else {
                park::park_uncancellable(deadline);
            }
            if self.granted() {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Wait::TimedOut;
            }
        }
        // Granted, but the runtime is ending: a coroutine that had not parked yet when another
        // one, unwinding, released what it waited for must not carry on as if nothing
        // happened (no blocking call completes normally during shutdown). Its owner passes the
        // grant on, as for any cancelled wait that was granted meanwhile.
        if cancellable && crate::worker::runtime_ending() {
            return Wait::Cancelled;
        }
        Wait::Granted
    }
}

/// How long a lock's waiter, woken to race for the free lock, may keep losing it to others
/// before it is handed the lock directly. Zero in this crate's unit tests, so that every lost
/// race is followed by a hand-over and that path is exercised.
pub(crate) const FAIR_AFTER: Duration = if cfg!(test) {
    Duration::ZERO
} else {
    Duration::from_millis(1)
};

/// Where a lock's waiter queues, over the rounds of one wait: at the back the first time; at
/// the front after it was woken to race for the lock and beaten to it, and marked to be handed
/// the lock once it has waited [`FAIR_AFTER`].
#[derive(Default)]
pub(crate) struct Turn {
    since: Option<Instant>,
}

impl Turn {
    /// Queues `entry(hand_over)` in `q` for this round; returns `hand_over`.
    pub(crate) fn queue<E>(&mut self, q: &mut VecDeque<E>, entry: impl FnOnce(bool) -> E) -> bool {
        match self.since {
            None => {
                self.since = Some(Instant::now());
                q.push_back(entry(false));
                false
            }
            Some(t) => {
                let hand_over = t.elapsed() >= FAIR_AFTER;
                q.push_front(entry(hand_over));
                hand_over
            }
        }
    }
}

/// Moves `state` to `next(state)` by compare-exchange while `next` gives a value (looking again
/// whenever the state changed meanwhile); whether it did.
#[inline]
pub(crate) fn update(state: &AtomicUsize, next: impl Fn(usize) -> Option<usize>) -> bool {
    let mut s = state.load(Ordering::Relaxed);
    while let Some(n) = next(s) {
        match state.compare_exchange_weak(s, n, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(now) => s = now,
        }
    }
    false
}

/// For a lock's slow path, under its queue's lock: moves `state` to `enter(state)` if that
/// gives a value (the caller is in: `true`), or else sets the `queued` bit (the caller must
/// queue: `false`), by compare-exchange, looking again whenever the state changed meanwhile (a
/// holder releasing sees the bit, or the caller sees the release).
pub(crate) fn enter_or_mark(
    state: &AtomicUsize,
    queued: usize,
    enter: impl Fn(usize) -> Option<usize>,
) -> bool {
    let mut s = state.load(Ordering::Relaxed);
    loop {
        let (next, entered) = match enter(s) {
            Some(n) => (n, true),
            None => (s | queued, false),
        };
        match state.compare_exchange_weak(s, next, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return entered,
            Err(now) => s = now,
        }
    }
}
