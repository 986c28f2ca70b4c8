//! The lock inside each channel: a futex lock whose release is a plain store while nobody has
//! had to sleep on it.
//!
//! A channel operation holds its channel's lock for a few dozen instructions, and almost always
//! finds it free. `std::sync::Mutex` then costs two atomic read-modify-writes per hold: the
//! acquiring CAS, and the releasing swap that learns whether anyone sleeps on the lock. On this
//! project's machines each costs about 5 ns, as much as the rest of a channel operation. Here,
//! until a thread first has to sleep on the lock, the release is a store (free on x86) followed
//! by a look at the lock's mode; the store-then-load order that look needs is the light side
//! of an asymmetric barrier ([`crate::barrier`]), and the first thread that has to sleep pays
//! the heavy side once, switching the lock for good to the classic futex protocol (a release is
//! a swap that tells whether to wake someone). A lock that sees contention thus behaves like
//! `std`'s from then on; one that never does keeps the cheaper release.
//!
//! # Protocol
//!
//! `state` is 0 (free), 1 (held) or 2 (held, and someone may sleep on it); `mode` is `FAST`,
//! `ARMING` or `ARMED`, and only ever moves forward.
//!
//! - Acquire: CAS `state` 0 → 1. If that fails, watch `state` for a short while (the holder
//!   releases within nanoseconds unless it was preempted) and CAS again if it was freed; then:
//!   A1. unless `mode` is `ARMED`: store `ARMING` (if `FAST`), heavy barrier, store `ARMED`;
//!   A2. swap `state` to 2: acquired if it was 0;
//!   A3. else futex-wait while `state` is 2, watch it a short while again, and go to A2.
//!   (This is `std`'s futex mutex, with the arming step added.)
//! - Release in mode `FAST`: R1. store `state` = 0; R2. light barrier; R3. if `mode` is no
//!   longer `FAST`, futex-wake one.
//! - Release otherwise: swap `state` to 0; if it was 2, futex-wake one.
//!
//! No sleeper is missed. After mode `ARMED`, this is the classic protocol: a sleeper marks
//! `state` 2 before it waits, the futex-wait compares `state` with 2 inside the kernel, and a
//! release that clears a 2 wakes one (who marks 2 again as it retries). What remains is a
//! release that took the `FAST` path while a sleeper armed the lock. Say the sleeper's A2
//! found the lock held: the release R1 of that hold cannot have been globally visible before
//! the heavy barrier of A1 ran on the releaser's CPU (A2 comes after A1 and still found the
//! lock held), so the releaser's R2–R3 come after that barrier and see `mode` past `FAST`
//! (stored before the barrier): it wakes one. A sleeper that skipped the barrier saw `ARMED`,
//! stored after a completed barrier, so the same holds for it. Every woken sleeper either takes
//! the lock (and, having marked it 2, wakes the next as it releases) or waits again behind a
//! holder whose release will wake one.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use crate::barrier;

/// How many times an acquire looks at a held lock before it sleeps.
const SPINS: u32 = 100;

/// Nobody has slept on the lock: releases are stores.
const FAST: u8 = 0;
/// A thread is switching the lock to the classic protocol (its heavy barrier is under way).
const ARMING: u8 = 1;
/// The lock follows the classic protocol for good.
const ARMED: u8 = 2;

/// A mutual-exclusion lock for short critical sections that never block while the lock is
/// held (see the module's docs): coact's channels use it, and so may code that guards a few
/// instructions' worth of work on a hot path. A waiter spins briefly and then blocks its
/// thread (not only its coroutine), so holding the guard across anything that can wait is a
/// mistake; use [`Mutex`](crate::sync::Mutex) for that. There is no poisoning: a panic while
/// the guard is held releases the lock.
///
/// ```
/// use coact_runtime::sync::FastLock;
///
/// let queue = FastLock::new(Vec::new());
/// queue.lock().push(1);
/// assert_eq!(*queue.lock(), [1]);
/// ```
///
/// A guard can be shared between threads only if the data can (`T: Sync`), as with `std`:
///
/// ```compile_fail
/// use std::cell::Cell;
/// use coact_runtime::sync::FastLock;
///
/// fn shared<S: Sync>(_: &S) {}
/// let lock = FastLock::new(Cell::new(0));
/// shared(&lock.lock());
/// ```
pub struct FastLock<T> {
    /// 0: free; 1: held; 2: held, and someone may sleep on it.
    state: AtomicU32,
    /// `FAST`, `ARMING` or `ARMED`.
    mode: AtomicU8,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `data` to one guard at a time (the CAS or swap that
// takes `state` from 0, and the release in the guard's drop), so sharing the lock shares
// nothing but `T`s moved under it.
unsafe impl<T: Send> Send for FastLock<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for FastLock<T> {}

impl<T> FastLock<T> {
    /// A free lock around `data`.
    pub const fn new(data: T) -> Self {
        FastLock {
            state: AtomicU32::new(0),
            mode: AtomicU8::new(FAST),
            data: UnsafeCell::new(data),
        }
    }

    /// Acquires the lock, blocking the thread while another holds it.
    #[inline]
    pub fn lock(&self) -> FastGuard<'_, T> {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        FastGuard {
            lock: self,
            _not_auto: PhantomData,
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut state = self.spin();
        if state == 0
            && self
                .state
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        // A1.
        if self.mode.load(Ordering::Acquire) != ARMED {
            let _ = self
                .mode
                .compare_exchange(FAST, ARMING, Ordering::SeqCst, Ordering::Relaxed);
            barrier::heavy();
            self.mode.store(ARMED, Ordering::Release);
            state = self.state.load(Ordering::Relaxed);
        }
        loop {
            // A2 (a `state` of 2 already says that the holder's release wakes someone).
            if state != 2 && self.state.swap(2, Ordering::Acquire) == 0 {
                return;
            }
            // A3.
            futex::wait(&self.state, 2);
            state = self.spin();
        }
    }

    /// Waits a little while the lock is held by someone with nobody asleep on it (the holder
    /// is likely running and about to release); returns the state last seen.
    fn spin(&self) -> u32 {
        let mut left = SPINS;
        loop {
            let state = self.state.load(Ordering::Relaxed);
            if state != 1 || left == 0 {
                return state;
            }
            std::hint::spin_loop();
            left -= 1;
        }
    }

    #[inline]
    fn unlock(&self) {
        if self.mode.load(Ordering::Relaxed) == FAST {
            // R1–R3.
            self.state.store(0, Ordering::Release);
            barrier::light();
            if self.mode.load(Ordering::Relaxed) != FAST {
                futex::wake_one(&self.state);
            }
        } else if self.state.swap(0, Ordering::Release) == 2 {
            futex::wake_one(&self.state);
        }
    }
}

/// Access to a [`FastLock`]'s data; releases the lock when dropped.
pub struct FastGuard<'a, T> {
    lock: &'a FastLock<T>,
    /// Opts out of the automatic `Send` and `Sync` (a shared reference to the lock is `Sync`
    /// for any `T: Send`, but sharing the guard shares `&T`): both are declared below.
    _not_auto: PhantomData<*const ()>,
}

// SAFETY: moving the guard to another thread moves the access to `T` there (needing
// `T: Send`); the lock may be released from any thread (a futex word, no owner).
unsafe impl<T: Send> Send for FastGuard<'_, T> {}
// SAFETY: sharing the guard shares `&T` (through `Deref`), which needs `T: Sync`, as for
// `std::sync::MutexGuard`.
unsafe impl<T: Sync> Sync for FastGuard<'_, T> {}

impl<T> Deref for FastGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its lock is held by it.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for FastGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for FastGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

#[cfg(target_os = "linux")]
mod futex {
    use std::sync::atomic::AtomicU32;

    /// Sleeps while `*word == expected` (or until woken, or spuriously).
    pub(super) fn wait(word: &AtomicU32, expected: u32) {
        // SAFETY: FUTEX_WAIT reads the 32-bit word at a valid, aligned address that outlives
        // the call; a null timeout waits without one. Errors (EAGAIN when the word differs,
        // EINTR) only make the caller look again.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                expected,
                std::ptr::null::<libc::timespec>(),
            );
        }
    }

    /// Wakes one thread sleeping in [`wait`] on `word`. Out of line: every release of a
    /// channel's lock is inlined where the channel is used, and this is its rare end.
    #[cold]
    #[inline(never)]
    pub(super) fn wake_one(word: &AtomicU32) {
        // SAFETY: FUTEX_WAKE only uses the address as a key; it reads and writes no memory.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                1i32,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod futex {
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Without futexes a sleeper yields its time slice and looks again.
    pub(super) fn wait(word: &AtomicU32, expected: u32) {
        if word.load(Ordering::Relaxed) == expected {
            std::thread::yield_now();
        }
    }

    pub(super) fn wake_one(_word: &AtomicU32) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Threads that fight over the lock (so that some sleep in it) count exactly: 4 threads ×
    /// 50,000 increments of a plain integer under the lock.
    #[test]
    fn contended_lock_counts_exactly() {
        crate::barrier::init();
        let lock = Arc::new(FastLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..50_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a counting thread");
        }
        assert_eq!(*lock.lock(), 200_000);
        assert_eq!(lock.state.load(Ordering::Relaxed), 0);
    }

    /// A holder that keeps the lock across a long pause makes the others sleep (past the
    /// spins), and its release wakes them: every thread gets through, 200 rounds.
    #[test]
    fn sleepers_are_woken_by_the_release() {
        crate::barrier::init();
        let lock = Arc::new(FastLock::new(Vec::new()));
        for round in 0..200 {
            let guard = lock.lock();
            let waiters: Vec<_> = (0..3)
                .map(|i| {
                    let lock = lock.clone();
                    std::thread::spawn(move || lock.lock().push(i))
                })
                .collect();
            // Let them pass their spins and sleep (not needed for correctness: either way each
            // must get the lock once it is released).
            std::thread::yield_now();
            drop(guard);
            for w in waiters {
                w.join().expect("a waiting thread");
            }
            let mut got = std::mem::take(&mut *lock.lock());
            got.sort_unstable();
            assert_eq!(got, [0, 1, 2], "round {round}");
        }
    }
}
