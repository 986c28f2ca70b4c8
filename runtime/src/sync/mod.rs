//! Synchronisation that works from coroutines and plain threads alike.
//!
//! [`mpsc`] mirrors `std::sync::mpsc`, and [`mpmc`] is the same with receivers that can be
//! cloned (a work queue); [`broadcast`] gives every receiver every message (a chat room);
//! [`Mutex`], [`Condvar`], [`RwLock`], [`Barrier`],
//! [`Once`], [`OnceLock`] and [`LazyLock`] mirror their namesakes in `std::sync`; [`oneshot`]
//! carries exactly one value (a reply); [`Semaphore`] lets at most N holders at a time. A blocking call made from a coroutine parks only that
//! coroutine (its worker runs others meanwhile); made from a plain thread, it blocks the
//! thread. Both kinds of caller can share one channel or lock.
//!
//! Use these, not std's, in coroutines: a std lock or condition variable that blocks blocks the
//! whole worker thread, and every coroutine on it (the watchdog reports such stalls); a std
//! `Once`, `OnceLock` or `LazyLock` whose initialiser parks deadlocks the worker when a second
//! coroutine of it touches the cell meanwhile.

/// What every sender of `mpsc` and `mpmc` has alike, for a `$name<T>` with a `chan` field:
/// `Drop` (one sender fewer; the last disconnects the channel) and a `Debug` that shows nothing
/// of the channel.
macro_rules! sender_glue {
    ($name:ident) => {
        impl<T> Drop for $name<T> {
            fn drop(&mut self) {
                self.chan.drop_sender();
            }
        }

        impl<T> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), " { .. }"))
            }
        }
    };
}

/// The receiving API `mpsc` and `mpmc` share, for a `Receiver<T>` with a `chan` field:
/// `recv`, `try_recv`, the timeouts, `len`, `is_empty`, the three iterators, and `Drop`,
/// `Debug` and `IntoIterator`.
macro_rules! receiver_api {
    () => {
        impl<T> Receiver<T> {
            /// Waits for a message. Fails once the channel is empty and every sender is gone.
            #[inline]
            pub fn recv(&self) -> Result<T, RecvError> {
                self.chan.recv_inline(None).map_err(|_| RecvError)
            }

            /// Takes a message if one is there now.
            pub fn try_recv(&self) -> Result<T, TryRecvError> {
                self.chan.try_recv()
            }

            /// Like [`recv`](Receiver::recv), but gives up after `timeout`.
            pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
                self.chan.recv_deadline(Instant::now().checked_add(timeout))
            }

            /// Like [`recv`](Receiver::recv), but gives up at `deadline`.
            pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
                self.chan.recv_deadline(Some(deadline))
            }

            /// How many messages wait in the channel now (buffered, or held by blocked
            /// senders). Not in std's API; useful for schedulers and metrics.
            pub fn len(&self) -> usize {
                self.chan.len()
            }

            /// Whether no message waits in the channel now.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// An iterator that waits for messages and ends when the channel disconnects.
            pub fn iter(&self) -> Iter<'_, T> {
                Iter { rx: self }
            }

            /// An iterator over the messages that are there now.
            pub fn try_iter(&self) -> TryIter<'_, T> {
                TryIter { rx: self }
            }
        }

        impl<T> Drop for Receiver<T> {
            fn drop(&mut self) {
                self.chan.drop_receiver();
            }
        }

        impl<T> std::fmt::Debug for Receiver<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Receiver { .. }")
            }
        }

        /// Waits for messages; see [`Receiver::iter`].
        #[derive(Debug)]
        pub struct Iter<'a, T> {
            rx: &'a Receiver<T>,
        }

        impl<T> Iterator for Iter<'_, T> {
            type Item = T;
            #[inline]
            fn next(&mut self) -> Option<T> {
                self.rx.recv().ok()
            }
        }

        /// Takes the messages there now; see [`Receiver::try_iter`].
        #[derive(Debug)]
        pub struct TryIter<'a, T> {
            rx: &'a Receiver<T>,
        }

        impl<T> Iterator for TryIter<'_, T> {
            type Item = T;
            fn next(&mut self) -> Option<T> {
                self.rx.try_recv().ok()
            }
        }

        /// The owning form of [`Iter`].
        #[derive(Debug)]
        pub struct IntoIter<T> {
            rx: Receiver<T>,
        }

        impl<T> Iterator for IntoIter<T> {
            type Item = T;
            #[inline]
            fn next(&mut self) -> Option<T> {
                self.rx.recv().ok()
            }
        }

        impl<T> IntoIterator for Receiver<T> {
            type Item = T;
            type IntoIter = IntoIter<T>;
            fn into_iter(self) -> IntoIter<T> {
                IntoIter { rx: self }
            }
        }

        impl<'a, T> IntoIterator for &'a Receiver<T> {
            type Item = T;
            type IntoIter = Iter<'a, T>;
            fn into_iter(self) -> Iter<'a, T> {
                self.iter()
            }
        }
    };
}

mod barrier;
pub mod broadcast;
mod condvar;
mod fastlock;
pub mod mpmc;
pub mod mpsc;
mod mutex;
mod once;
pub mod oneshot;
mod rwlock;
mod semaphore;
mod ticket;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use fastlock::{FastGuard, FastLock};
pub use mutex::{Mutex, MutexGuard};
pub use once::{LazyLock, Once, OnceLock, OnceState};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

/// A lock's poison flag, with std's rule: a holder that starts to panic while it holds the lock
/// poisons it. (For coroutines, "starts to panic" is judged by [`crate::panicking`], which does
/// not count other coroutines of the worker parked mid-unwind.)
pub(crate) struct Poison(std::sync::atomic::AtomicBool);

impl Poison {
    pub(crate) const fn new() -> Poison {
        Poison(std::sync::atomic::AtomicBool::new(false))
    }

    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn clear(&self) {
        self.0.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// `t`, as an error if the lock is poisoned.
    #[inline]
    pub(crate) fn check<T>(&self, t: T) -> LockResult<T> {
        poison_if(self.is_set(), t)
    }

    /// Whether the caller is panicking as it takes the lock: its guard keeps it for
    /// [`Poison::leave`].
    #[inline]
    pub(crate) fn enter() -> bool {
        crate::panicking()
    }

    /// For a guard's drop: poisons the lock if its holder began to panic while holding it.
    #[inline]
    pub(crate) fn leave(&self, panicking_at_enter: bool) {
        if !panicking_at_enter && crate::panicking() {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// `t`, as an error if `poisoned`.
#[inline]
pub(crate) fn poison_if<T>(poisoned: bool, t: T) -> LockResult<T> {
    if poisoned {
        Err(PoisonError::new(t))
    } else {
        Ok(t)
    }
}

/// `Debug` for a lock named `name`: its data if `now` (a `try_` attempt) got in, and whether it
/// is poisoned.
pub(crate) fn debug_lock<G>(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    now: TryLockResult<G>,
    poisoned: bool,
) -> std::fmt::Result
where
    G: std::ops::Deref,
    G::Target: std::fmt::Debug,
{
    let mut d = f.debug_struct(name);
    match now {
        Ok(g) => d.field("data", &&*g),
        Err(TryLockError::Poisoned(e)) => d.field("data", &&*e.into_inner()),
        Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
    };
    d.field("poisoned", &poisoned).finish_non_exhaustive()
}

/// Locks an internal std mutex, ignoring poison: our critical sections never panic midway
/// through an update, so the data is consistent even if a panic passed through.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::{Mutex, RwLock};

    const WRITES: u64 = 100_000;

    /// Runs `write` `WRITES` times in each of four coroutines on two workers and two plain
    /// threads; `write` gets the running count of its caller and must check it is alone.
    fn six_writers(write: impl Fn(u64) + Clone + Send + 'static) {
        let rt = crate::Runtime::builder().workers(2).build().unwrap();
        rt.block_on(move || {
            let run = move |write: &dyn Fn(u64)| (0..WRITES).for_each(write);
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let w = write.clone();
                    std::thread::spawn(move || run(&w))
                })
                .collect();
            let coroutines: Vec<_> = (0..4)
                .map(|_| {
                    let w = write.clone();
                    crate::spawn(move || run(&w))
                })
                .collect();
            coroutines.into_iter().for_each(|c| c.join().unwrap());
            threads.into_iter().for_each(|t| t.join().unwrap());
        });
    }

    /// The body of one write: alone inside, now and then across a coroutine switch.
    fn alone(inside: &AtomicUsize, i: u64, count: &mut u64) {
        assert_eq!(
            inside.fetch_add(1, Ordering::SeqCst),
            0,
            "two writers at once"
        );
        *count += 1;
        if i % 512 == 0 && crate::in_coroutine() {
            crate::yield_now();
        }
        inside.fetch_sub(1, Ordering::SeqCst);
    }

    // `FAIR_AFTER` is zero in unit tests: every waiter that loses a race for a free lock is
    // handed the lock the next time, so these exercise the hand-over path along with races.

    #[test]
    fn mutex_hand_overs_and_races_keep_holders_alone() {
        let (lock, inside) = (Arc::new(Mutex::new(0u64)), Arc::new(AtomicUsize::new(0)));
        let (l, n) = (lock.clone(), inside.clone());
        six_writers(move |i| alone(&n, i, &mut l.lock().unwrap()));
        assert_eq!(*lock.lock().unwrap(), 6 * WRITES);
    }

    #[test]
    fn rwlock_hand_overs_and_races_keep_writers_alone() {
        let (lock, inside) = (Arc::new(RwLock::new(0u64)), Arc::new(AtomicUsize::new(0)));
        let (l, n) = (lock.clone(), inside.clone());
        six_writers(move |i| alone(&n, i, &mut l.write().unwrap()));
        assert_eq!(*lock.read().unwrap(), 6 * WRITES);
    }
}
