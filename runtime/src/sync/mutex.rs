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
//! `FAIR_AFTER` (1 ms, `ticket.rs`), the lock is handed over to it directly instead (`LOCKED`
//! stays set for it), so no waiter starves. A waiter that gives up (it is being cancelled)
//! after it was woken passes the wake-up on, or the lock if it was handed the lock; its drop
//! guard does that.
//!
//! Poisoning follows std: a guard dropped while its holder panics marks the mutex poisoned.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LockResult, TryLockError, TryLockResult};

use crate::park;
use crate::sync::ticket::{enter_or_mark, update, Ticket, Turn, Wait};
use crate::sync::{debug_lock, lock, poison_if, Poison};

const LOCKED: usize = 1;
const QUEUED: usize = 2;

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
    state: AtomicUsize,
    poison: Poison,
    queue: std::sync::Mutex<VecDeque<Waiting>>,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `data` only to the single holder of `LOCKED`, so it
// can be sent and shared whenever `T` can be sent, exactly like std's Mutex.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

// As std's: a panic while the lock is held poisons it, so code that catches the panic sees that
// the data may be half-updated.
impl<T: ?Sized> std::panic::UnwindSafe for Mutex<T> {}
impl<T: ?Sized> std::panic::RefUnwindSafe for Mutex<T> {}

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
            state: AtomicUsize::new(0),
            poison: Poison::new(),
            queue: std::sync::Mutex::new(VecDeque::new()),
            data: UnsafeCell::new(t),
        }
    }

    /// The data, consuming the mutex.
    pub fn into_inner(self) -> LockResult<T> {
        poison_if(self.poison.is_set(), self.data.into_inner())
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
        update(&self.state, |s| (s & LOCKED == 0).then_some(s | LOCKED))
    }

    fn guard(&self) -> LockResult<MutexGuard<'_, T>> {
        self.poison.check(MutexGuard {
            mutex: self,
            panicking: Poison::enter(),
            _data: PhantomData,
        })
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
        let mut turn = Turn::default();
        loop {
            let (ticket, hand_over) = {
                let mut q = lock(&self.queue);
                // A free lock is taken even past waiters (see "Protocol").
                if enter_or_mark(&self.state, QUEUED, |s| {
                    (s & LOCKED == 0).then_some(s | LOCKED)
                }) {
                    return;
                }
                let ticket = Ticket::new();
                let hand_over = turn.queue(&mut q, |hand_over| Waiting {
                    ticket: ticket.clone(),
                    hand_over,
                });
                (ticket, hand_over)
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
            if ticket.wait(None, !std::thread::panicking()) != Wait::Granted {
                // The guard gives up our place (or passes on a wake or lock we got).
                drop(withdraw);
                park::cancelled();
                unreachable!("a cancellable wait is only made when not unwinding")
            }
            withdraw.done = true;
            drop(withdraw);
            ticket.recycle();
            // Handed the lock, or woken to race for it while it is free.
            if hand_over || self.try_barge() {
                return;
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
        self.poison.is_set()
    }

    /// Clears the poison flag.
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// The data, through exclusive access to the mutex (no locking needed).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.poison.check(self.data.get_mut())
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
        self.mutex.poison.leave(self.panicking);
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
        debug_lock(f, "Mutex", self.try_lock(), self.is_poisoned())
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
