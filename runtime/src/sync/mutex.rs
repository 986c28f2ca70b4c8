//! A mutual-exclusion lock with `std::sync::Mutex`'s API, usable from coroutines and plain
//! threads at once.
//!
//! A coroutine waiting for the lock parks (its worker runs other coroutines); a thread waiting
//! for it blocks. Holding the guard across a blocking call (a channel receive, a sleep) is fine,
//! unlike with `std::sync::Mutex`, which would block the whole worker thread.
//!
//! # Protocol
//!
//! `state` holds two bits: `LOCKED`, and `QUEUED`, set exactly while `queue` (a small internal
//! std mutex) holds waiters' tickets (see `ticket.rs`); `QUEUED` only changes under `queue`.
//! * Lock: flip `state` from 0 to `LOCKED` (one compare-exchange: the uncontended case).
//!   Failing that, take `queue` and look again: take the lock if it is free, or else set
//!   `QUEUED` (by compare-exchange: the holder may be releasing), queue a ticket and wait.
//! * Unlock: flip `state` from `LOCKED` to 0. That fails only if `QUEUED` is set: then take
//!   `queue`, take the oldest ticket out (clearing `QUEUED` if that empties the queue), release
//!   the lock and wake that waiter, which tries again.
//!
//! A locker sets `QUEUED` under `queue` before it queues, and an unlocker that sees `QUEUED`
//! wakes a waiter under `queue`: a release can never slip between a failed try and the enqueue
//! (the unlocker's compare-exchange fails, or the locker's does and it looks again).
//!
//! A free lock goes to whoever takes it first, so a coroutine that releases and takes the lock
//! again in a loop keeps it while the woken waiter is still on its way (a strict hand-over to
//! each waiter in turn would cost a wake-up, often on another worker, per critical section:
//! four coroutines contending on two workers ran 14× slower than std's mutex that way). A
//! waiter that loses such a race queues again at the front, and once it has waited
//! [`FAIR_AFTER`], the lock is handed over to it directly instead (`LOCKED` stays set for it),
//! so no waiter starves. A waiter that gives up (it is being cancelled) after it was woken
//! passes the wake-up on, or the lock if it was handed the lock; its drop guard does that.
//!
//! Poisoning follows std: a guard dropped while its holder panics marks the mutex poisoned.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::{Duration, Instant};

use crate::park;
use crate::sync::lock;
use crate::sync::ticket::{Ticket, Wait};

const LOCKED: u8 = 1;
const QUEUED: u8 = 2;

/// How long a waiter may lose the lock to others before it is handed the lock directly.
const FAIR_AFTER: Duration = if cfg!(test) {
    // This crate's unit tests hand over at the first lost race, to exercise that path.
    Duration::ZERO
} else {
    Duration::from_millis(1)
};

/// A queued waiter.
struct Waiting {
    ticket: Ticket,
    /// Hand the lock over to this waiter (`LOCKED` stays set), instead of waking it to race.
    hand_over: bool,
}

/// A lock protecting a `T`; see the module docs.
///
/// ```
/// use std::sync::Arc;
/// use coact_runtime::sync::Mutex;
///
/// let count = Arc::new(Mutex::new(0));
/// coact_runtime::run({
///     let count = count.clone();
///     move || {
///         let hs: Vec<_> = (0..10)
///             .map(|_| {
///                 let count = count.clone();
///                 coact_runtime::spawn(move || {
///                     let mut g = count.lock().unwrap();
///                     coact_runtime::yield_now(); // others run, and wait for the lock
///                     *g += 1;
///                 })
///             })
///             .collect();
///         hs.into_iter().for_each(|h| h.join().unwrap());
///     }
/// });
/// assert_eq!(*count.lock().unwrap(), 10);
/// ```
pub struct Mutex<T: ?Sized> {
    /// `LOCKED` and `QUEUED` (see the module docs).
    state: AtomicU8,
    poisoned: AtomicBool,
    queue: std::sync::Mutex<VecDeque<Waiting>>,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `data` only to the single holder of `LOCKED`, so it
// can be sent and shared whenever `T` can be sent, exactly like std's Mutex.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Proof of holding the lock; the data is reachable through it. Dropping it unlocks.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    /// Whether the holder was already panicking when it took the lock (std's rule: only a
    /// panic that starts while the guard is held poisons).
    panicking: bool,
    /// Shares `T` the way `&mut T` does: the guard is `Sync` only if `T` is.
    _data: PhantomData<&'a mut T>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    pub const fn new(t: T) -> Self {
        Mutex {
            state: AtomicU8::new(0),
            poisoned: AtomicBool::new(false),
            queue: std::sync::Mutex::new(VecDeque::new()),
            data: UnsafeCell::new(t),
        }
    }

    /// The data, consuming the mutex.
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poisoned.load(Ordering::Relaxed);
        let t = self.data.into_inner();
        if poisoned {
            Err(PoisonError::new(t))
        } else {
            Ok(t)
        }
    }
}

impl<T: ?Sized> Mutex<T> {
    /// The uncontended lock: `state` from 0 to `LOCKED`.
    #[inline]
    fn try_acquire(&self) -> bool {
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the lock if it is free, whether or not others wait.
    fn try_barge(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & LOCKED == 0 {
            match self.state.compare_exchange_weak(
                s,
                s | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    fn guard(&self) -> LockResult<MutexGuard<'_, T>> {
        let g = MutexGuard {
            mutex: self,
            // The coroutine's own panics poison, not those of another coroutine of the worker
            // parked mid-unwind (see `crate::panicking`).
            panicking: crate::panicking(),
            _data: PhantomData,
        };
        if self.poisoned.load(Ordering::Relaxed) {
            Err(PoisonError::new(g))
        } else {
            Ok(g)
        }
    }

    /// Takes the lock, parking the coroutine (or blocking the thread) until it is free.
    ///
    /// Errs (still holding the lock) if a holder panicked, like std.
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        if !self.try_acquire() {
            self.lock_slow();
        }
        self.guard()
    }

    /// Queues and waits until the lock is taken (see the module docs).
    #[cold]
    fn lock_slow(&self) {
        // When this caller first queued: a waiter woken to race again and losing keeps it.
        let mut queued_at: Option<Instant> = None;
        loop {
            let (ticket, hand_over) = {
                let mut q = lock(&self.queue);
                let mut s = self.state.load(Ordering::Relaxed);
                loop {
                    let (next, got) = if s & LOCKED == 0 {
                        (s | LOCKED, true)
                    } else {
                        (s | QUEUED, false)
                    };
                    match self.state.compare_exchange_weak(
                        s,
                        next,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) if got => return,
                        Ok(_) => break,
                        Err(now) => s = now,
                    }
                }
                let ticket = Ticket::new();
                let waiting = match queued_at {
                    None => {
                        queued_at = Some(Instant::now());
                        q.push_back(Waiting {
                            ticket: ticket.clone(),
                            hand_over: false,
                        });
                        false
                    }
                    Some(t) => {
                        // Woken, and the lock was taken first: back to the front.
                        let hand_over = t.elapsed() >= FAIR_AFTER;
                        q.push_front(Waiting {
                            ticket: ticket.clone(),
                            hand_over,
                        });
                        hand_over
                    }
                };
                (ticket, waiting)
            };
            let mut withdraw = Withdraw {
                mutex: self,
                ticket: &ticket,
                hand_over,
                done: false,
            };
            // A cancelled coroutine that is unwinding still needs the lock (there is no error
            // to return), so it waits like any other; the holder releases it as its own stack
            // unwinds.
            match ticket.wait(None, !std::thread::panicking()) {
                Wait::Granted => {
                    withdraw.done = true;
                    if hand_over {
                        return;
                    }
                    // Woken to race for the free lock.
                    if self.try_barge() {
                        return;
                    }
                }
                Wait::Cancelled | Wait::TimedOut => {
                    // The guard gives up our place (or passes on a wake or lock we got).
                    drop(withdraw);
                    park::cancelled();
                    unreachable!("a cancellable wait is only made when not unwinding")
                }
            }
        }
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        if self.try_barge() {
            self.guard().map_err(TryLockError::Poisoned)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Whether a holder panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    /// Clears the poison flag.
    pub fn clear_poison(&self) {
        self.poisoned.store(false, Ordering::Relaxed);
    }

    /// The data, through exclusive access to the mutex (no locking needed).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.poisoned.load(Ordering::Relaxed);
        let t = self.data.get_mut();
        if poisoned {
            Err(PoisonError::new(t))
        } else {
            Ok(t)
        }
    }

    /// Releases the lock, waking the oldest waiter if any (or handing the lock to it).
    #[inline]
    fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    /// Releases the lock with `QUEUED` set. Only the holder and parties holding `queue` change
    /// `state` now, so plain stores do.
    #[cold]
    fn unlock_slow(&self) {
        let next = {
            let mut q = lock(&self.queue);
            match q.pop_front() {
                Some(w) => {
                    let rest = if q.is_empty() { 0 } else { QUEUED };
                    let locked = if w.hand_over { LOCKED } else { 0 };
                    self.state.store(locked | rest, Ordering::Release);
                    w.ticket.grant()
                }
                None => {
                    // The last waiter withdrew after this holder saw `QUEUED`.
                    self.state.store(0, Ordering::Release);
                    return;
                }
            }
        };
        if let Some(u) = next {
            u.unpark();
        }
    }
}

/// Takes a waiter's ticket out of the queue when its wait ends other than by a grant, and
/// passes on what it got meanwhile: the lock (handed over), or a wake-up to race for it.
struct Withdraw<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    ticket: &'a Ticket,
    hand_over: bool,
    done: bool,
}

impl<T: ?Sized> Drop for Withdraw<'_, T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let granted = {
            let mut q = lock(&self.mutex.queue);
            q.retain(|w| !w.ticket.is(self.ticket));
            if q.is_empty() {
                self.mutex.state.fetch_and(!QUEUED, Ordering::Relaxed);
            }
            self.ticket.granted()
        };
        if granted && (self.hand_over || self.mutex.try_barge()) {
            // Holding the lock: releasing it wakes the next waiter, if any.
            self.mutex.unlock();
        }
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// Releases the lock as dropping the guard does, and gives back the mutex: for a
    /// [`Condvar`](super::Condvar), which takes it again after its wait.
    pub(crate) fn release(self) -> &'a Mutex<T> {
        let mutex = self.mutex;
        drop(self);
        mutex
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        if !self.panicking && crate::panicking() {
            self.mutex.poisoned.store(true, Ordering::Relaxed);
        }
        self.mutex.unlock();
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its holder owns the lock, so no other reference
        // to the data is live.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only use of the guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(g) => d.field("data", &&*g),
            Err(TryLockError::Poisoned(e)) => d.field("data", &&*e.into_inner()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.is_poisoned())
            .finish_non_exhaustive()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(t: T) -> Self {
        Mutex::new(t)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::Mutex;

    /// Writers on two workers and plain threads, with every lost race turned into a hand-over
    /// (`FAIR_AFTER` is zero here): never two inside at once, and an exact count.
    #[test]
    fn hand_overs_and_races_keep_writers_alone() {
        const WRITES: u64 = 100_000;
        fn write(lock: &Mutex<u64>, inside: &AtomicUsize) {
            for i in 0..WRITES {
                let mut g = lock.lock().unwrap();
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two writers at once"
                );
                *g += 1;
                if i % 512 == 0 && crate::in_coroutine() {
                    crate::yield_now();
                }
                inside.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let lock = Arc::new(Mutex::new(0u64));
        let inside = Arc::new(AtomicUsize::new(0));
        let rt = crate::Runtime::builder().workers(2).build().unwrap();
        let (l, i) = (lock.clone(), inside.clone());
        rt.block_on(move || {
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (l, i) = (l.clone(), i.clone());
                    std::thread::spawn(move || write(&l, &i))
                })
                .collect();
            let coroutines: Vec<_> = (0..4)
                .map(|_| {
                    let (l, i) = (l.clone(), i.clone());
                    crate::spawn(move || write(&l, &i))
                })
                .collect();
            for c in coroutines {
                c.join().unwrap();
            }
            for t in threads {
                t.join().unwrap();
            }
        });
        drop(rt);
        assert_eq!(*lock.lock().unwrap(), 6 * WRITES);
    }
}
