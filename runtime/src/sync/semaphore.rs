//! A counting semaphore: at most N holders at once, the rest parked in arrival order. Not in
//! std; what limits how many coroutines use something at a time (connections to a database,
//! requests in flight to a peer, memory for buffers).
//!
//! # Protocol
//!
//! `state` (a small internal std mutex) holds the free permits and the waiting parties, oldest
//! first, each with its [`Ticket`] and the number of permits it asked for.
//! * Acquire: under the lock, take the permits if nobody waits and enough are free; otherwise
//!   queue a ticket, release the lock and wait for it. Nobody jumps the queue, so a large
//!   request at its head holds back smaller ones behind it until it is served: no request
//!   starves.
//! * Release: under the lock, add the permits, then serve waiters from the front for as long
//!   as the free permits cover the front one: each is granted with its permits already taken
//!   for it, and unparked once the lock is released.
//! * A waiter whose wait ends without a grant (its timeout, a cancellation) takes its ticket
//!   out under the lock, then serves the queue again (it may have been the large request that
//!   held the others back); one that finds it was granted meanwhile gives the permits back
//!   (through a release) if it does not return them to its caller.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::park::{self, Unparker};
use crate::sync::lock;
use crate::sync::ticket::{Ticket, Wait};

/// A counting semaphore for coroutines and plain threads; see the module docs.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use coact_runtime::sync::Semaphore;
///
/// coact_runtime::run(|| {
///     let connections = Semaphore::new(3); // at most three at a time
///     let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
///     coact_runtime::scope(|s| {
///         for _ in 0..20 {
///             s.spawn(|| {
///                 let _permit = connections.acquire(); // parks while three are out
///                 peak.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
///                 coact_runtime::time::sleep(std::time::Duration::from_millis(1));
///                 now.fetch_sub(1, Ordering::SeqCst);
///             }); // the permit goes back when it is dropped
///         }
///     });
///     assert!(peak.into_inner() <= 3);
/// });
/// ```
pub struct Semaphore {
    state: std::sync::Mutex<State>,
}

struct State {
    permits: usize,
    waiters: VecDeque<(Ticket, usize)>,
}

impl State {
    /// Grants the waiters at the front whose requests the free permits cover; their unparkers
    /// go into `wakes`, to call once the lock is released.
    fn serve(&mut self, wakes: &mut Vec<Unparker>) {
        while let Some(&(_, need)) = self.waiters.front() {
            if need > self.permits {
                break;
            }
            self.permits -= need;
            if let Some((ticket, _)) = self.waiters.pop_front() {
                wakes.extend(ticket.grant());
            }
        }
    }
}

/// Unparks what a [`State::serve`] granted.
fn wake_all(wakes: Vec<Unparker>) {
    for u in wakes {
        u.unpark();
    }
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            state: std::sync::Mutex::new(State {
                permits,
                waiters: VecDeque::new(),
            }),
        }
    }

    /// The permits free now (a hint: others may take or return some at any moment).
    pub fn available_permits(&self) -> usize {
        lock(&self.state).permits
    }

    /// Adds `n` permits (a release without a permit to drop, or a bigger limit), serving the
    /// waiters they are enough for.
    pub fn add_permits(&self, n: usize) {
        let mut wakes = Vec::new();
        {
            let mut s = lock(&self.state);
            s.permits = s
                .permits
                .checked_add(n)
                .expect("coact: a semaphore's permits overflowed");
            s.serve(&mut wakes);
        }
        wake_all(wakes);
    }

    /// Takes one permit, parking the coroutine (or blocking the thread) until one is free.
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.acquire_many(1)
    }

    /// Takes `n` permits at once, waiting until that many are free (and every earlier
    /// request has been served).
    ///
    /// # Panics
    /// When the coroutine is cancelled while waiting (it unwinds, as every blocking call does).
    pub fn acquire_many(&self, n: usize) -> SemaphorePermit<'_> {
        match self.acquire_until(n, None) {
            Some(()) => SemaphorePermit { sem: self, n },
            None => unreachable!("a cancellable wait is only made when not unwinding"),
        }
    }

    /// Takes one permit if one is free now and nobody waits for one.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are free now and nobody waits for permits.
    pub fn try_acquire_many(&self, n: usize) -> Option<SemaphorePermit<'_>> {
        let mut s = lock(&self.state);
        if s.waiters.is_empty() && s.permits >= n {
            s.permits -= n;
            return Some(SemaphorePermit { sem: self, n });
        }
        None
    }

    /// Like [`acquire`](Semaphore::acquire), giving up after `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.acquire_many_timeout(1, timeout)
    }

    /// Like [`acquire_many`](Semaphore::acquire_many), giving up after `timeout`.
    pub fn acquire_many_timeout(&self, n: usize, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.acquire_until(n, Instant::now().checked_add(timeout))
            .map(|()| SemaphorePermit { sem: self, n })
    }

    /// [`acquire`](Semaphore::acquire) for a semaphore in an `Arc`: the permit keeps the
    /// semaphore alive, so it can move into another coroutine.
    pub fn acquire_owned(self: &Arc<Self>) -> OwnedSemaphorePermit {
        self.acquire_many_owned(1)
    }

    /// [`acquire_many`](Semaphore::acquire_many) with an owned permit (see
    /// [`acquire_owned`](Semaphore::acquire_owned)).
    pub fn acquire_many_owned(self: &Arc<Self>, n: usize) -> OwnedSemaphorePermit {
        self.acquire_many(n).forget();
        OwnedSemaphorePermit {
            sem: self.clone(),
            n,
        }
    }

    /// [`try_acquire`](Semaphore::try_acquire) with an owned permit.
    pub fn try_acquire_owned(self: &Arc<Self>) -> Option<OwnedSemaphorePermit> {
        self.try_acquire().map(|p| {
            p.forget();
            OwnedSemaphorePermit {
                sem: self.clone(),
                n: 1,
            }
        })
    }

    /// Takes `n` permits, waiting until `deadline` at most: `Some(())` with them taken.
    /// Cancellation unwinds the coroutine (a wait made while already unwinding ignores it).
    fn acquire_until(&self, n: usize, deadline: Option<Instant>) -> Option<()> {
        let ticket = {
            let mut s = lock(&self.state);
            if s.waiters.is_empty() && s.permits >= n {
                s.permits -= n;
                return Some(());
            }
            let ticket = Ticket::new();
            s.waiters.push_back((ticket.clone(), n));
            ticket
        };
        // As a lock's wait: one made while unwinding must not unwind again, so it ignores
        // cancellation; any other unwinds on it.
        match ticket.wait(deadline, !std::thread::panicking()) {
            Wait::Granted => {
                ticket.recycle();
                Some(())
            }
            end => {
                let granted = {
                    let mut s = lock(&self.state);
                    match s.waiters.iter().position(|(t, _)| t.is(&ticket)) {
                        Some(i) => {
                            s.waiters.remove(i);
                            false
                        }
                        // Granted after the wait gave up: the permits are ours.
                        None => true,
                    }
                };
                if granted && end == Wait::TimedOut {
                    // Served just as time ran out: take it.
                    return Some(());
                }
                if granted {
                    // Cancelled: hand them on.
                    self.add_permits(n);
                } else {
                    // Leaving may unblock those behind (if this one was the large request
                    // at the front).
                    self.add_permits(0);
                }
                if end == Wait::Cancelled {
                    park::cancelled();
                }
                None
            }
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("Semaphore")
            .field("permits", &s.permits)
            .field("waiting", &s.waiters.len())
            .finish()
    }
}

/// Permits taken from a [`Semaphore`]; dropping it gives them back.
#[must_use = "dropping the permit gives it back at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    n: usize,
}

impl SemaphorePermit<'_> {
    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// Keeps the permits taken for good (the semaphore has that many fewer from now on).
    pub fn forget(mut self) {
        self.n = 0;
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.sem.add_permits(self.n);
        }
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.n)
            .finish()
    }
}

/// Permits taken from a [`Semaphore`] in an `Arc`, which they keep alive; dropping it gives
/// them back.
#[must_use = "dropping the permit gives it back at once"]
pub struct OwnedSemaphorePermit {
    sem: Arc<Semaphore>,
    n: usize,
}

impl OwnedSemaphorePermit {
    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// The semaphore the permits came from.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }

    /// Keeps the permits taken for good.
    pub fn forget(mut self) {
        self.n = 0;
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        if self.n > 0 {
            self.sem.add_permits(self.n);
        }
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.n)
            .finish()
    }
}
