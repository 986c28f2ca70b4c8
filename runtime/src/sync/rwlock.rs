//! A reader-writer lock with `std::sync::RwLock`'s API, usable from coroutines and plain threads
//! at once.
//!
//! # Protocol
//!
//! `state` is one word: the number of readers (times `READER`), a `WRITER` bit, and a `QUEUED`
//! bit set exactly while `queue` (a small internal std mutex) holds waiting parties, oldest
//! first, each with a [`Ticket`]. `QUEUED` only changes under `queue`.
//! * The uncontended cases are one atomic operation each: a reader adds `READER` while neither
//!   `WRITER` nor `QUEUED` is set; a writer flips 0 to `WRITER`; a reader leaving subtracts
//!   `READER`; a writer leaving flips `WRITER` to 0.
//! * Otherwise the newcomer takes `queue` and looks again. A reader goes in if no writer holds
//!   the lock and nobody waits, so a stream of readers cannot starve a waiting writer; a
//!   writer goes in if no one holds the lock, even past waiters (*barging*, below). Failing
//!   that, it sets `QUEUED` by compare-exchange (so a release racing with it is seen by one
//!   side or the other) and queues.
//! * A release that sees `QUEUED` (a writer whose flip fails; the last reader, whose
//!   subtraction leaves exactly `QUEUED`) serves the queue under `queue`, as does a waiter that
//!   takes its ticket back: from the front, readers are let in (counted in `state` for them)
//!   while no writer holds the lock; a writer, once no one holds it, is woken to race for it;
//!   serving stops there. `QUEUED` is cleared when the queue empties. While `QUEUED` is set,
//!   besides parties holding `queue`, only releases and writers woken to race change the
//!   state, so a server lets parties in by compare-exchange (a bench caught two writers in at
//!   once when it read the state and then added to it).
//! * Barging: a writer that releases the lock and takes it again in a loop keeps it while the
//!   woken writer is on its way (a strict hand-over to each waiting writer in turn cost a
//!   wake-up, often on another worker, per write: four coroutines writing on two workers ran
//!   50× slower than std's lock). A woken writer that loses the race queues again at the
//!   front, and once it has waited `FAIR_AFTER` (1 ms, `ticket.rs`), is handed the lock
//!   directly instead. A waiter that gives up (it is cancelled) after it was let in gives the
//!   lock back, and a writer woken to race passes the wake-up on, in its drop guard.
//!
//! Poisoning follows std: a write guard dropped while its holder panics marks the lock
//! poisoned; read guards never do.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LockResult, TryLockError, TryLockResult};

use crate::park::{self, Unparker};
use crate::sync::ticket::{enter_or_mark, update, Ticket, Turn, Wait};
use crate::sync::{debug_lock, lock, poison_if, Poison};

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
    /// Readers, `WRITER` and `QUEUED` (see the module docs).
    state: AtomicUsize,
    queue: std::sync::Mutex<VecDeque<Waiting>>,
    poison: Poison,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&T` only to readers while no writer holds it, and `&mut T` only
// to the single writer while no reader holds it, so it is shared and sent exactly as std's
// `RwLock` is: sending it sends the `T`, sharing it shares `&T` between readers and moves a `T`
// between writers.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

// As std's: a writer's panic poisons the lock, so code that catches the panic sees that the
// data may be half-updated.
impl<T: ?Sized> std::panic::UnwindSafe for RwLock<T> {}
impl<T: ?Sized> std::panic::RefUnwindSafe for RwLock<T> {}

/// What a waiting party wants.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// A queued party.
struct Waiting {
    ticket: Ticket,
    access: Access,
    /// A writer to hand the lock to (`WRITER` set for it), instead of waking it to race.
    hand_over: bool,
}

const WRITER: usize = 1;
const QUEUED: usize = 2;
/// One reader.
const READER: usize = 4;

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
            state: AtomicUsize::new(0),
            queue: std::sync::Mutex::new(VecDeque::new()),
            poison: Poison::new(),
            data: UnsafeCell::new(t),
        }
    }

    /// The data, consuming the lock.
    pub fn into_inner(self) -> LockResult<T> {
        poison_if(self.poison.is_set(), self.data.into_inner())
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Takes shared access, parking the coroutine (or blocking the thread) while a writer holds
    /// the lock or waits for it.
    ///
    /// Errs (still holding the access) if a writer panicked, like std.
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        self.acquire(Access::Read);
        self.poison.check(RwLockReadGuard {
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
        self.poison.check(self.write_guard())
    }

    /// Takes shared access if that can be done now: no writer holds the lock and nobody waits
    /// for it (a reader does not go past a waiting writer, as with std's).
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        if !self.try_read_now() {
            return Err(TryLockError::WouldBlock);
        }
        self.poison
            .check(RwLockReadGuard {
                lock: self,
                _data: PhantomData,
            })
            .map_err(TryLockError::Poisoned)
    }

    /// Takes exclusive access if that can be done now: nobody holds the lock or waits for it.
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        if !self.try_write_now() {
            return Err(TryLockError::WouldBlock);
        }
        self.poison
            .check(self.write_guard())
            .map_err(TryLockError::Poisoned)
    }

    /// Whether a writer panicked while holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.poison.is_set()
    }

    /// Clears the poison flag.
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// The data, through exclusive access to the lock (no locking needed).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.poison.check(self.data.get_mut())
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, T> {
        RwLockWriteGuard {
            lock: self,
            panicking: Poison::enter(),
            _data: PhantomData,
        }
    }

    /// Adds a reader while no writer holds the lock and nobody waits.
    #[inline]
    fn try_read_now(&self) -> bool {
        update(&self.state, |s| {
            (s & (WRITER | QUEUED) == 0).then_some(s + READER)
        })
    }

    /// Takes the lock as a writer if nobody holds it or waits.
    #[inline]
    fn try_write_now(&self) -> bool {
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Returns once the caller holds `access`.
    #[inline]
    fn acquire(&self, access: Access) {
        let now = match access {
            Access::Read => self.try_read_now(),
            Access::Write => self.try_write_now(),
        };
        if !now {
            self.wait_for(access);
        }
    }

    /// The slow path of [`acquire`](Self::acquire): goes in under `queue`, or queues and waits
    /// (see the module docs).
    #[cold]
    fn wait_for(&self, access: Access) {
        let mut turn = Turn::default();
        loop {
            let (ticket, hand_over) = {
                let mut q = lock(&self.queue);
                if enter_or_mark(&self.state, QUEUED, |s| match access {
                    // Behind nobody: with `QUEUED` clear, `queue` is empty.
                    Access::Read => (s & (WRITER | QUEUED) == 0).then_some(s + READER),
                    // A free lock, even past waiters (see "barging" in the module docs).
                    Access::Write => (s & !QUEUED == 0).then_some(s | WRITER),
                }) {
                    return;
                }
                let ticket = Ticket::new();
                let hand_over = turn.queue(&mut q, |hand_over| Waiting {
                    ticket: ticket.clone(),
                    access,
                    hand_over,
                });
                (ticket, hand_over)
            };
            let mut withdraw = Withdraw {
                lock: self,
                ticket: &ticket,
                access,
                hand_over,
                armed: true,
            };
            // A cancelled coroutine that is unwinding still needs the lock (there is no error
            // to return), so it waits like any other.
            if ticket.wait(None, !std::thread::panicking()) != Wait::Granted {
                // The guard gives up our place (or passes on what we were given).
                drop(withdraw);
                park::cancelled();
                unreachable!("a cancellable wait is only made when not unwinding")
            }
            withdraw.armed = false;
            drop(withdraw);
            ticket.recycle();
            // Readers and handed-over writers hold the lock already; a writer woken to race
            // takes it if it is still free.
            if access == Access::Read || hand_over || self.try_write_free() {
                return;
            }
        }
    }

    /// Takes the lock as a writer if no one holds it, whether or not others wait.
    fn try_write_free(&self) -> bool {
        update(&self.state, |s| (s & !QUEUED == 0).then_some(s | WRITER))
    }

    /// Gives back `access`; serves the queue if anyone waits.
    #[inline]
    fn unlock(&self, access: Access) {
        match access {
            Access::Read => {
                // The last reader out with waiters queued serves them.
                if self.state.fetch_sub(READER, Ordering::Release) == READER | QUEUED {
                    self.release_and_serve(None);
                }
            }
            Access::Write => {
                if self
                    .state
                    .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed)
                    .is_err()
                {
                    self.release_and_serve(Some(Access::Write));
                }
            }
        }
    }

    /// Under `queue`: gives back `access` (if any: a reader that already left passes `None`)
    /// and serves the queue.
    #[cold]
    fn release_and_serve(&self, access: Option<Access>) {
        let wakes = {
            let mut q = lock(&self.queue);
            if let Some(a) = access {
                self.release_locked(a);
            }
            self.serve(&mut q)
        };
        for u in wakes {
            u.unpark();
        }
    }

    /// Gives back `access` with `queue` held.
    fn release_locked(&self, access: Access) {
        match access {
            Access::Read => {
                self.state.fetch_sub(READER, Ordering::Release);
            }
            Access::Write => {
                self.state.fetch_and(!WRITER, Ordering::Release);
            }
        }
    }

    /// Serves the queue from the front (see the module docs): readers are let in (counted in
    /// `state` for them) while no writer holds the lock; a writer, once no one holds it, is
    /// woken to race for it, or handed it (`WRITER` set for it) if it has lost for long
    /// enough; serving stops there. Clears `QUEUED` if the queue empties. Returns the
    /// unparkers to call once `queue` is released.
    #[must_use = "the served waiters sleep until they are unparked"]
    fn serve(&self, q: &mut VecDeque<Waiting>) -> Vec<Unparker> {
        let mut wakes = Vec::new();
        while let Some(w) = q.front() {
            let (access, hand_over) = (w.access, w.hand_over);
            // By compare-exchange: a writer woken earlier may take the lock at any moment.
            let served = match access {
                Access::Read => update(&self.state, |s| (s & WRITER == 0).then_some(s + READER)),
                Access::Write if hand_over => {
                    update(&self.state, |s| (s & !QUEUED == 0).then_some(s | WRITER))
                }
                Access::Write => self.state.load(Ordering::Acquire) & !QUEUED == 0,
            };
            if !served {
                break;
            }
            let w = q.pop_front().expect("checked above");
            wakes.extend(w.ticket.grant());
            if access == Access::Write {
                break;
            }
        }
        if q.is_empty() {
            self.state.fetch_and(!QUEUED, Ordering::Relaxed);
        }
        wakes
    }
}

/// Takes a waiter's ticket out of the queue when its wait ends other than by a grant (or gives
/// back the access granted meanwhile), then serves the queue: a writer that leaves the front
/// may let the readers behind it in, and a writer woken to race passes the wake-up on.
struct Withdraw<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    ticket: &'a Ticket,
    access: Access,
    hand_over: bool,
    armed: bool,
}

impl<T: ?Sized> Drop for Withdraw<'_, T> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let wakes = {
            let mut q = lock(&self.lock.queue);
            if !self.ticket.granted() {
                q.retain(|w| !w.ticket.is(self.ticket));
            } else if self.access == Access::Read || self.hand_over {
                // Given the lock: give it back.
                self.lock.release_locked(self.access);
            }
            self.lock.serve(&mut q)
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

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// Turns exclusive access into shared access without letting go: no writer can come in
    /// between, and readers waiting at the front of the queue are let in with it.
    pub fn downgrade(guard: Self) -> RwLockReadGuard<'a, T> {
        let lock = guard.lock;
        // Not a release: no poisoning, no unlock.
        std::mem::forget(guard);
        // `WRITER` is set (it is ours): adding `READER - WRITER` swaps it for one reader,
        // keeping `QUEUED`.
        let before = lock.state.fetch_add(READER - WRITER, Ordering::Release);
        if before & QUEUED != 0 {
            lock.release_and_serve(None);
        }
        RwLockReadGuard {
            lock,
            _data: PhantomData,
        }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.poison.leave(self.panicking);
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
        debug_lock(f, "RwLock", self.try_read(), self.is_poisoned())
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
