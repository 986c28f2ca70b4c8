//! The hand-over slot: one message passed to an idle actor without a lock.
//!
//! This is the actor crate's only `unsafe` code. The slot needs no lock because the schedule
//! protocol (see `cell.rs`) already makes its users take turns: exactly one party holds the
//! actor's schedule at any time, either the sender that won the `IDLE -> SCHEDULED` CAS (until
//! it spawns the activation) or the activation itself (until it stores `IDLE`), and only that
//! party reads or writes the slot's contents. Everyone else may only look at [`Slot::is_full`].
//!
//! The turns are ordered by the schedule word itself: the activation gives the schedule up with
//! a CAS that releases and the next holder takes it with a CAS that acquires, and spawning the
//! activation passes the sender's writes on through the runtime's task queue (which
//! synchronises like a channel). A lock around the
//! slot would only repeat that ordering, at two atomic read-modify-writes per use: four per
//! hop of a message between two actors.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// A one-message slot whose contents only the holder of an actor's schedule touches.
pub(crate) struct Slot<T> {
    value: UnsafeCell<Option<T>>,
    /// Whether `value` holds a message; readable by anyone.
    full: AtomicBool,
}

// SAFETY: the contents move between threads (so `T: Send`), but are only reached through
// `put` and `take`, whose callers hold the schedule (module docs): accesses never overlap.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T> Slot<T> {
    /// An empty slot.
    pub(crate) fn new() -> Slot<T> {
        Slot {
            value: UnsafeCell::new(None),
            full: AtomicBool::new(false),
        }
    }

    /// Whether a message waits in the slot. Anyone may ask; the answer is exact for the
    /// holder of the schedule.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// Puts `msg` in the slot, or gives it back if the slot is full.
    ///
    /// # Safety
    /// The caller holds the actor's schedule (module docs).
    #[inline]
    pub(crate) unsafe fn put(&self, msg: T) -> Result<(), T> {
        if self.full.load(Ordering::Relaxed) {
            return Err(msg);
        }
        // SAFETY: the caller holds the schedule, so no other reference to the contents exists.
        unsafe { *self.value.get() = Some(msg) };
        self.full.store(true, Ordering::Release);
        Ok(())
    }

    /// Takes the message out of the slot, if there is one.
    ///
    /// # Safety
    /// The caller holds the actor's schedule (module docs).
    #[inline]
    pub(crate) unsafe fn take(&self) -> Option<T> {
        if !self.full.load(Ordering::Acquire) {
            return None;
        }
        self.full.store(false, Ordering::Relaxed);
        // SAFETY: the caller holds the schedule, so no other reference to the contents exists.
        unsafe { (*self.value.get()).take() }
    }
}

/// State that only the holder of an actor's schedule touches: the actor itself, its mailbox's
/// receiving end and the rest of what its activation works with.
///
/// A lock here would never be contended (an actor has at most one activation), yet cost two
/// atomic read-modify-writes per activation; the schedule already orders the activations.
pub(crate) struct Held<T> {
    value: UnsafeCell<T>,
}

// SAFETY: the contents move between threads with the schedule (so `T: Send`), and are only
// reached through `get`, whose callers hold the schedule (module docs): accesses never overlap.
unsafe impl<T: Send> Sync for Held<T> {}

impl<T> Held<T> {
    /// Wraps `value`.
    pub(crate) fn new(value: T) -> Held<T> {
        Held {
            value: UnsafeCell::new(value),
        }
    }

    /// The contents.
    ///
    /// # Safety
    /// The caller holds the actor's schedule (module docs), or the actor has not been shared
    /// yet, and stops using the reference before it lets go of the schedule.
    #[inline]
    #[allow(clippy::mut_from_ref)] // the schedule, not the borrow, makes the access exclusive
    pub(crate) unsafe fn get(&self) -> &mut T {
        // SAFETY: forwarded from this function's contract.
        unsafe { &mut *self.value.get() }
    }
}
