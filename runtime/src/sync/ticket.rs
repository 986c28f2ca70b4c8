//! A waiting party's place in a queue that is served by whoever releases what it waits for:
//! the shared piece of [`Mutex`](super::Mutex), [`Condvar`](super::Condvar) and
//! [`RwLock`](super::RwLock).
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

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

impl Ticket {
    /// A ticket for the caller (a coroutine or a plain thread).
    pub(crate) fn new() -> Ticket {
        Ticket {
            cell: Arc::new(Cell {
                unparker: std::sync::Mutex::new(Some(park::current())),
                granted: AtomicBool::new(false),
            }),
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
    pub(crate) fn wait(&self, deadline: Option<Instant>, cancellable: bool) -> Wait {
        loop {
            // A spurious or stale unpark leaves the unparker in place: only the grant takes it.
            if self.granted() {
                return Wait::Granted;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Wait::TimedOut;
            }
            if cancellable {
                if park::park(deadline) == Park::Cancelled {
                    return Wait::Cancelled;
                }
            } else {
                park::park_uncancellable(deadline);
            }
        }
    }
}
