//! A reader-writer lock with `std::sync::RwLock`'s API, usable from coroutines and plain threads
//! at once.
//!
//! # Protocol
//!
//! `state` (a small internal std mutex) holds the count of readers, whether a writer holds the
//! lock, and the queue of waiting parties, oldest first, each with a [`Ticket`].
//! * The lock is fair: a party that arrives while others wait queues behind them, so a stream
//!   of readers cannot starve a writer. A reader goes straight in while no writer holds the lock
//!   and nobody waits; a writer while nobody holds it and nobody waits.
//! * Whoever changes the state (a release, or a waiter taking its ticket back) then serves the
//!   queue from the front under the same lock hold: a writer once the lock is free, readers while
//!   no writer holds it, stopping at the first party that cannot go in yet. Serving hands the
//!   lock over directly (the counts already include the granted party), so a waiter that gives
//!   up after it was granted (it is cancelled) releases what it was given, in its drop guard.
//!
//! Poisoning follows std: a write guard dropped while its holder panics marks the lock
//! poisoned; read guards never do.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

use crate::park::{self, Unparker};
use crate::sync::lock;
use crate::sync::ticket::{Ticket, Wait};

/// A lock that lets many readers or one writer at a time reach a `T`; see the module docs.
///
/// ```
/// use std::sync::Arc;
/// use coact_runtime::sync::RwLock;
///
/// let config = Arc::new(RwLock::new(String::from("v1")));
/// coact_runtime::run({
///     let config = config.clone();
///     move || {
///         let readers: Vec<_> = (0..4)
///             .map(|_| {
///                 let config = config.clone();
///                 coact_runtime::spawn(move || config.read().unwrap().clone())
///             })
///             .collect();
///         // Parks while readers hold the lock; readers that come later wait for it.
///         config.write().unwrap().push_str("-final");
///         for r in readers {
///             let seen = r.join().unwrap();
///             assert!(seen == "v1" || seen == "v1-final", "never half a write");
///         }
///     }
/// });
/// assert_eq!(*config.read().unwrap(), "v1-final");
/// ```
pub struct RwLock<T: ?Sized> {
    state: std::sync::Mutex<State>,
    poisoned: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&T` only to readers while no writer holds it, and `&mut T` only
// to the single writer while no reader holds it, so it is shared and sent exactly as std's
// `RwLock` is: sending it sends the `T`, sharing it shares `&T` between readers and moves a `T`
// between writers.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// What a waiting party wants.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

struct State {
    readers: usize,
    writer: bool,
    queue: VecDeque<(Ticket, Access)>,
}

impl State {
    /// Hands the lock to the parties at the front of the queue that can go in now; returns
    /// their unparkers, to call once the state's lock is released.
    #[must_use = "the granted waiters sleep until they are unparked"]
    fn serve(&mut self) -> Vec<Unparker> {
        let mut wakes = Vec::new();
        while let Some((_, access)) = self.queue.front() {
            let can = match access {
                Access::Read => !self.writer,
                Access::Write => !self.writer && self.readers == 0,
            };
            if !can {
                break;
            }
            let (ticket, access) = self.queue.pop_front().expect("checked above");
            match access {
                Access::Read => self.readers += 1,
                Access::Write => self.writer = true,
            }
            wakes.extend(ticket.grant());
        }
        wakes
    }

    /// Gives back one party's access.
    fn release(&mut self, access: Access) {
        match access {
            Access::Read => self.readers -= 1,
            Access::Write => self.writer = false,
        }
    }
}

/// Shared access to the data of an [`RwLock`]; dropping it releases it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _data: PhantomData<&'a T>,
}

/// Exclusive access to the data of an [`RwLock`]; dropping it releases it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    /// Whether the holder was already panicking when it took the lock (std's rule: only a
    /// panic that starts while the guard is held poisons).
    panicking: bool,
    _data: PhantomData<&'a mut T>,
}

impl<T> RwLock<T> {
    /// A new unlocked lock.
    pub const fn new(t: T) -> Self {
        RwLock {
            state: std::sync::Mutex::new(State {
                readers: 0,
                writer: false,
                queue: VecDeque::new(),
            }),
            poisoned: AtomicBool::new(false),
            data: UnsafeCell::new(t),
        }
    }

    /// The data, consuming the lock.
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

impl<T: ?Sized> RwLock<T> {
    /// Takes shared access, parking the coroutine (or blocking the thread) while a writer holds
    /// the lock or waits for it.
    ///
    /// Errs (still holding the access) if a writer panicked, like std.
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        self.acquire(Access::Read);
        self.poison_check(RwLockReadGuard {
            lock: self,
            _data: PhantomData,
        })
    }

    /// Takes exclusive access, parking the coroutine (or blocking the thread) until no reader or
    /// writer holds the lock and those that came before have had their turn.
    ///
    /// Errs (still holding the access) if a writer panicked, like std.
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        self.acquire(Access::Write);
        self.poison_check(self.write_guard())
    }

    /// Takes shared access if that can be done now.
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        {
            let mut s = lock(&self.state);
            if s.writer || !s.queue.is_empty() {
                return Err(TryLockError::WouldBlock);
            }
            s.readers += 1;
        }
        self.poison_check(RwLockReadGuard {
            lock: self,
            _data: PhantomData,
        })
        .map_err(TryLockError::Poisoned)
    }

    /// Takes exclusive access if that can be done now.
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        {
            let mut s = lock(&self.state);
            if s.writer || s.readers > 0 {
                return Err(TryLockError::WouldBlock);
            }
            s.writer = true;
        }
        self.poison_check(self.write_guard())
            .map_err(TryLockError::Poisoned)
    }

    /// Whether a writer panicked while holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    /// Clears the poison flag.
    pub fn clear_poison(&self) {
        self.poisoned.store(false, Ordering::Relaxed);
    }

    /// The data, through exclusive access to the lock (no locking needed).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.poisoned.load(Ordering::Relaxed);
        let t = self.data.get_mut();
        if poisoned {
            Err(PoisonError::new(t))
        } else {
            Ok(t)
        }
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, T> {
        RwLockWriteGuard {
            lock: self,
            // The coroutine's own panics poison, not those of another coroutine of the worker
            // parked mid-unwind (see `crate::panicking`).
            panicking: crate::panicking(),
            _data: PhantomData,
        }
    }

    fn poison_check<G>(&self, guard: G) -> LockResult<G> {
        if self.poisoned.load(Ordering::Relaxed) {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    /// Returns once the caller holds `access`.
    fn acquire(&self, access: Access) {
        let ticket = {
            let mut s = lock(&self.state);
            let now = s.queue.is_empty()
                && match access {
                    Access::Read => !s.writer,
                    Access::Write => !s.writer && s.readers == 0,
                };
            if now {
                match access {
                    Access::Read => s.readers += 1,
                    Access::Write => s.writer = true,
                }
                return;
            }
            let ticket = Ticket::new();
            s.queue.push_back((ticket.clone(), access));
            ticket
        };
        let mut withdraw = Withdraw {
            lock: self,
            ticket: &ticket,
            access,
            armed: true,
        };
        // A cancelled coroutine that is unwinding still needs the lock (there is no error to
        // return), so it waits like any other.
        match ticket.wait(None, !std::thread::panicking()) {
            Wait::Granted => withdraw.armed = false,
            Wait::Cancelled | Wait::TimedOut => {
                // The guard gives up our place (or the access granted meanwhile).
                drop(withdraw);
                park::cancelled();
                unreachable!("a cancellable wait is only made when not unwinding")
            }
        }
    }

    /// Gives back `access` and serves the queue.
    fn unlock(&self, access: Access) {
        let wakes = {
            let mut s = lock(&self.state);
            s.release(access);
            s.serve()
        };
        for u in wakes {
            u.unpark();
        }
    }
}

/// Takes a waiter's ticket out of the queue when its wait ends other than by a grant (or gives
/// back the access granted meanwhile), then serves the queue: a writer that leaves the front
/// may let the readers behind it in.
struct Withdraw<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    ticket: &'a Ticket,
    access: Access,
    armed: bool,
}

impl<T: ?Sized> Drop for Withdraw<'_, T> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let wakes = {
            let mut s = lock(&self.lock.state);
            if self.ticket.granted() {
                s.release(self.access);
            } else {
                s.queue.retain(|(t, _)| !t.is(self.ticket));
            }
            s.serve()
        };
        for u in wakes {
            u.unpark();
        }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock(Access::Read);
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        if !self.panicking && crate::panicking() {
            self.lock.poisoned.store(true, Ordering::Relaxed);
        }
        self.lock.unlock(Access::Write);
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard exists only while its holder counts among the readers, and no
        // writer holds the lock while any reader does: only shared references are live.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a write guard exists only while its holder is the one writer, and no reader
        // holds the lock meanwhile: no other reference to the data is live.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only use of the guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(g) => d.field("data", &&*g),
            Err(TryLockError::Poisoned(e)) => d.field("data", &&*e.into_inner()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.is_poisoned())
            .finish_non_exhaustive()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(t: T) -> Self {
        RwLock::new(t)
    }
}
