//! The lock inside each channel: a futex lock whose release is a plain store.
//!
//! A channel operation holds its channel's lock for a few dozen instructions, and almost always
//! finds it free. `std::sync::Mutex` then costs two atomic read-modify-writes per hold: the
//! acquiring CAS, and the releasing swap that learns whether anyone sleeps on the lock. On this
//! project's machines each costs about 6 ns, as much as the rest of a channel operation. Here
//! the release is a store (free on x86) followed by a look at a separate count of sleepers;
//! the store-then-load order that look needs is the light side of an asymmetric barrier
//! ([`crate::barrier`]), whose heavy side is paid by a thread about to sleep on the lock,
//! which is rare and already about to make a system call.
//!
//! # Protocol
//!
//! - Acquire: CAS `state` 0 → 1. If that fails, retry for a short while (the holder releases
//!   within nanoseconds unless it was preempted), then sleep:
//!   S1. add one to `sleepers`;
//!   S2. heavy barrier;
//!   S3. CAS `state` 0 → 1: done if it succeeds (take the count back);
//!   S4. else futex-wait while `state` is 1, and go to S3.
//! - Release: R1. store `state` = 0; R2. light barrier; R3. if `sleepers` is not 0, futex-wake
//!   one.
//!
//! No sleeper is missed: take a sleeper whose S3 read 1, and the release R that follows the
//! holding it saw. R's store R1 cannot have been globally visible before S2's barrier ran on
//! R's CPU (S3 comes after S2 and still read 1), so R's R2–R3 come after that barrier and R3
//! reads the count S1 raised before S2: R wakes a sleeper. The futex-wait in S4 compares
//! `state` with 1 inside the kernel, so a release between S3 and S4 makes it return at once.
//! Every woken sleeper either takes the lock (and its own release wakes the next) or sleeps
//! again behind a holder whose release will wake one: nobody sleeps forever.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::barrier;

/// How many times an acquire retries before it sleeps.
const SPINS: u32 = 100;

/// A mutual-exclusion lock for short critical sections (see the module's docs).
pub(crate) struct FastLock<T> {
    /// 0: free; 1: held.
    state: AtomicU32,
    /// Threads in the sleeping part of an acquire (S1 to S3).
    sleepers: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `data` to one guard at a time (the CAS in `lock` and
// the release in the guard's drop), so sharing the lock shares nothing but `T`s moved under it.
unsafe impl<T: Send> Send for FastLock<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for FastLock<T> {}

impl<T> FastLock<T> {
    pub(crate) const fn new(data: T) -> Self {
        FastLock {
            state: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            data: UnsafeCell::new(data),
        }
    }

    /// Acquires the lock, blocking the thread while another holds it.
    #[inline]
    pub(crate) fn lock(&self) -> FastGuard<'_, T> {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        FastGuard { lock: self }
    }

    #[cold]
    fn lock_contended(&self) {
        for _ in 0..SPINS {
            std::hint::spin_loop();
            if self.state.load(Ordering::Relaxed) == 0
                && self
                    .state
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        // S1, S2.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        barrier::heavy();
        loop {
            // S3.
            if self
                .state
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                self.sleepers.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            // S4.
            futex::wait(&self.state, 1);
        }
    }

    /// R1–R3.
    #[inline]
    fn unlock(&self) {
        self.state.store(0, Ordering::Release);
        barrier::light();
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            futex::wake_one(&self.state);
        }
    }
}

/// Access to a [`FastLock`]'s data; releases the lock when dropped.
pub(crate) struct FastGuard<'a, T> {
    lock: &'a FastLock<T>,
}

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

    /// Wakes one thread sleeping in [`wait`] on `word`.
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
        assert_eq!(lock.sleepers.load(Ordering::Relaxed), 0);
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
