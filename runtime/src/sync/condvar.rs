//! A condition variable with `std::sync::Condvar`'s API, for coact's [`Mutex`](super::Mutex),
//! usable from coroutines and plain threads at once.
//!
//! # Protocol
//!
//! `waiters` (a small internal std mutex) holds one [`Ticket`] per waiting party, oldest first.
//! * Wait: queue a ticket *while still holding the mutex*, then release the mutex, wait for the
//!   ticket, and take the mutex again. A notifier changes the condition under the mutex, so it
//!   can only do so after the waiter's ticket is queued: no notification that follows the change
//!   is missed.
//! * Notify: take `waiters`, grant the oldest ticket (or all of them), and unpark after letting
//!   go. `queued` mirrors the queue's length, so a notification with nobody waiting (the common
//!   case in a loop that notifies on every change) takes no lock: a waiter's ticket is counted
//!   before it releases the mutex, and the notifier took that mutex after it, so the count is
//!   visible to it.
//! * A waiter whose wait ends without a grant (its timeout, a cancellation) takes its ticket
//!   back; one that finds it was granted meanwhile reports a wake-up if it returns, or passes
//!   the notification on to the next waiter if it unwinds, so that no `notify_one` is lost.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LockResult;
use std::time::{Duration, Instant};

use crate::park;
use crate::sync::lock;
use crate::sync::ticket::{Ticket, Wait};
use crate::sync::MutexGuard;

/// Waits for a condition guarded by a [`Mutex`](super::Mutex); see the module docs.
///
/// As with std, a wait may return without a notification (spuriously), so wait in a loop that
/// checks the condition, or use [`wait_while`](Condvar::wait_while):
///
/// ```
/// use std::sync::Arc;
/// use coact_runtime::sync::{Condvar, Mutex};
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// coact_runtime::run(move || {
///     let pair2 = Arc::clone(&pair);
///     coact_runtime::spawn(move || {
///         let (ready, cv) = &*pair2;
///         *ready.lock().unwrap() = true;
///         cv.notify_one();
///     });
///     let (ready, cv) = &*pair;
///     let guard = cv.wait_while(ready.lock().unwrap(), |r| !*r).unwrap(); // parks this coroutine
///     assert!(*guard);
/// });
/// ```
pub struct Condvar {
    waiters: std::sync::Mutex<VecDeque<Ticket>>,
    /// The length of `waiters`, written under its lock (see the module docs).
    queued: AtomicUsize,
}

/// Whether a timed wait on a [`Condvar`] ended because its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// `true` if the wait ended because its timeout passed, without a notification.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// A condition variable with nobody waiting.
    pub const fn new() -> Condvar {
        Condvar {
            waiters: std::sync::Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
        }
    }

    /// Releases the mutex behind `guard`, parks the coroutine (or blocks the thread) until
    /// notified, and takes the mutex again. May return spuriously.
    ///
    /// Errs (with the guard) if the mutex is poisoned when it is taken again, like std.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        map_guard(self.wait_until(guard, None), |(g, _)| g)
    }

    /// Waits while `condition` holds for the data (checked first, and after each wake-up);
    /// returns with the mutex held and `condition` false.
    pub fn wait_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Like [`wait`](Condvar::wait), giving up after `timeout`.
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        self.wait_until(guard, Instant::now().checked_add(timeout))
    }

    /// Like [`wait_while`](Condvar::wait_while), giving up after `timeout` in all; the result
    /// says whether it gave up (then `condition` may still hold).
    pub fn wait_timeout_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            guard = self.wait_until(guard, deadline)?.0;
        }
    }

    /// Wakes the longest-waiting party, if any.
    pub fn notify_one(&self) {
        if self.queued.load(Ordering::Acquire) == 0 {
            return;
        }
        let next = {
            let mut q = lock(&self.waiters);
            let t = q.pop_front();
            self.queued.store(q.len(), Ordering::Release);
            t.and_then(|t| t.grant())
        };
        if let Some(u) = next {
            u.unpark();
        }
    }

    /// Wakes every waiting party.
    pub fn notify_all(&self) {
        if self.queued.load(Ordering::Acquire) == 0 {
            return;
        }
        let wakes: Vec<_> = {
            let mut q = lock(&self.waiters);
            self.queued.store(0, Ordering::Release);
            q.drain(..).filter_map(|t| t.grant()).collect()
        };
        for u in wakes {
            u.unpark();
        }
    }

    /// The wait itself: `Ok((guard, timed out))`.
    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let ticket = Ticket::new();
        {
            let mut q = lock(&self.waiters);
            q.push_back(ticket.clone());
            self.queued.store(q.len(), Ordering::Release);
        }
        let mutex = guard.release();
        let mut withdraw = Withdraw {
            cv: self,
            ticket: &ticket,
            armed: true,
        };
        // While unwinding (a destructor that waits), the wait cannot be cancelled: a second
        // panic would abort.
        let outcome = ticket.wait(deadline, !std::thread::panicking());
        if outcome == Wait::Cancelled {
            // The guard takes the ticket back, passing on a notification it got meanwhile.
            drop(withdraw);
            park::cancelled();
            unreachable!("a cancellable wait is only made when not unwinding");
        }
        // Returning: a notification that arrived as the time ran out counts as a wake-up.
        withdraw.armed = false;
        let notified = withdraw.take_back();
        drop(withdraw);
        ticket.recycle();
        let timed_out = WaitTimeoutResult(!notified);
        map_guard(mutex.lock(), |g| (g, timed_out))
    }
}

/// Takes a waiter's ticket back when its wait ends (see the module docs).
struct Withdraw<'a> {
    cv: &'a Condvar,
    ticket: &'a Ticket,
    /// Dropped armed (the waiter unwinds), the guard takes the ticket back and passes a
    /// notification granted meanwhile on to the next waiter.
    armed: bool,
}

impl Withdraw<'_> {
    /// Takes the ticket out of the queue if it is still there; whether it was granted.
    fn take_back(&self) -> bool {
        // A granted ticket is out of the queue already (the grant comes after the removal).
        if self.ticket.granted() {
            return true;
        }
        let mut q = lock(&self.cv.waiters);
        if self.ticket.granted() {
            return true;
        }
        q.retain(|t| !t.is(self.ticket));
        self.cv.queued.store(q.len(), Ordering::Release);
        false
    }
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        if self.armed && self.take_back() {
            self.cv.notify_one();
        }
    }
}

fn map_guard<G, U>(r: LockResult<G>, f: impl FnOnce(G) -> U) -> LockResult<U> {
    match r {
        Ok(g) => Ok(f(g)),
        Err(e) => Err(std::sync::PoisonError::new(f(e.into_inner()))),
    }
}

impl Default for Condvar {
    fn default() -> Condvar {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
