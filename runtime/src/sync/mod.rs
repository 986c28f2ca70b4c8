//! Synchronisation that works from coroutines and plain threads alike.
//!
//! [`mpsc`] mirrors `std::sync::mpsc`; [`Mutex`], [`Condvar`], [`RwLock`] and [`Barrier`]
//! mirror their namesakes in `std::sync`; [`oneshot`] carries exactly one value (a reply). A
//! blocking call made from a coroutine parks only that coroutine (its worker runs others
//! meanwhile); made from a plain thread, it blocks the thread. Both kinds of caller can share
//! one channel or lock.
//!
//! Use these, not std's, in coroutines: a std lock or condition variable that blocks blocks the
//! whole worker thread, and every coroutine on it (the watchdog reports such stalls).

mod barrier;
mod condvar;
mod fastlock;
pub mod mpsc;
mod mutex;
pub mod oneshot;
mod rwlock;
mod ticket;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use fastlock::{FastGuard, FastLock};
pub use mutex::{Mutex, MutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

/// Locks an internal std mutex, ignoring poison: our critical sections never panic midway
/// through an update, so the data is consistent even if a panic passed through.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
