//! A joinable coroutine's task and its result slot, in one allocation.
//!
//! A spawn with a [`JoinHandle`](crate::JoinHandle) needs the closure to run, somewhere for the
//! result, and a way for the joiner to wait. One [`Joint`] holds all three behind one lock:
//! the worker's task and the handle are two references to it, so a spawn allocates once.
//!
//! The task side is a [`Joined`]: running it takes the closure out, runs it and stores the
//! result; dropping it unrun (the runtime ended first) closes the slot, so the joiner learns at
//! once instead of waiting forever.
//!
//! The closure lives outside the lock: only the one `Joined` ever touches it (it runs or
//! abandons the task once, by value), so taking it costs no atomic operation. The lock guards
//! what the two sides share, the result and the joiner's waiter; it is a [`FastLock`], whose
//! release is a plain store, since a spawn is on the hot path of coroutine-heavy code.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;

use crate::park::{self, Cancelled, Park, Unparker};
use crate::stack;
use crate::sync::FastLock;

/// Holds one slot of the live-coroutine cap until the task finishes or is dropped.
pub(crate) struct Reservation;

impl Drop for Reservation {
    fn drop(&mut self) {
        stack::release();
    }
}

/// What the task and the joiner share.
struct State<T> {
    value: Option<thread::Result<T>>,
    /// The task was dropped without running.
    closed: bool,
    /// Whoever waits in `recv`.
    waiter: Option<Unparker>,
}

/// The closure of a joinable coroutine and its result slot.
pub(crate) struct Joint<F, T> {
    /// The closure, until it runs (or is dropped unrun), with its slot of the cap. Touched
    /// only through the task's one [`Joined`].
    task: UnsafeCell<Option<(F, Reservation)>>,
    state: FastLock<State<T>>,
}

// SAFETY: `task` is touched only by the one `Joined` (see `JoinTask`), which may move between
// threads before it runs: that moves an `F`, which is `Send`. Everything else is behind the
// lock.
unsafe impl<F: Send, T: Send> Sync for Joint<F, T> {}

/// The worker's view of a [`Joint`]: something to run once.
///
/// # Safety
/// Only the one [`Joined`] made with the joint calls these, and only one of them, once: the
/// task's closure is read without a lock.
pub(crate) trait JoinTask: Send + Sync {
    /// Runs the closure (catching its panic) and stores the result.
    ///
    /// # Safety
    /// See the trait: called once, by the joint's `Joined`, and not after `abandon`.
    unsafe fn run(&self);
    /// Drops the closure unrun and closes the slot.
    ///
    /// # Safety
    /// See the trait: called once, by the joint's `Joined`, and not after `run`.
    unsafe fn abandon(&self);
}

/// The joiner's view of a [`Joint`].
pub(crate) trait JoinCell<T>: Send + Sync {
    /// Waits for the result.
    fn recv(&self) -> thread::Result<T>;
    /// Whether the result is there (or will never come).
    fn is_done(&self) -> bool;
}

/// A joinable task, as the worker queues it. Dropping it unrun abandons it.
pub(crate) struct Joined(Option<Arc<dyn JoinTask>>);

impl Joined {
    /// Runs the task.
    pub(crate) fn run(mut self) {
        if let Some(r) = self.0.take() {
            // SAFETY: this is the joint's one `Joined`, consumed here: the only call.
            unsafe { r.run() };
        }
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            // SAFETY: this is the joint's one `Joined`, and it did not run (`run` took the
            // joint out): the only call.
            unsafe { r.abandon() };
        }
    }
}

/// A task running `f` under `reservation`, and the cell its result goes to.
pub(crate) fn joint<F, T>(f: F, reservation: Reservation) -> (Joined, Arc<dyn JoinCell<T>>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let j = Arc::new(Joint {
        task: UnsafeCell::new(Some((f, reservation))),
        state: FastLock::new(State {
            value: None,
            closed: false,
            waiter: None,
        }),
    });
    (Joined(Some(j.clone())), j)
}

impl<F, T> Joint<F, T> {
    /// Stores the outcome (`None`: dropped unrun) and wakes the joiner.
    fn finish(&self, v: Option<thread::Result<T>>) {
        let waiter = {
            let mut s = self.state.lock();
            match v {
                Some(v) => s.value = Some(v),
                None => s.closed = true,
            }
            s.waiter.take()
        };
        if let Some(w) = waiter {
            w.unpark();
        }
    }
}

impl<F, T> JoinTask for Joint<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    unsafe fn run(&self) {
        // SAFETY: the caller is the one `Joined`, calling once (the trait's contract): nobody
        // else touches `task`.
        let Some((f, reservation)) = (unsafe { (*self.task.get()).take() }) else {
            return;
        };
        let r = catch_unwind(AssertUnwindSafe(f));
        self.finish(Some(r));
        drop(reservation);
    }

    unsafe fn abandon(&self) {
        // SAFETY: as in `run`.
        let task = unsafe { (*self.task.get()).take() };
        if task.is_some() {
            // The closure's destructors run here, outside the lock.
            drop(task);
            self.finish(None);
        }
    }
}

impl<F, T> JoinCell<T> for Joint<F, T>
where
    F: Send,
    T: Send,
{
    fn recv(&self) -> thread::Result<T> {
        loop {
            {
                let mut s = self.state.lock();
                if let Some(v) = s.value.take() {
                    return v;
                }
                if s.closed {
                    let msg: Box<dyn Any + Send> =
                        Box::new("coact: the coroutine was dropped before it started (runtime ended or no stack could be mapped)");
                    return Err(msg);
                }
                s.waiter = Some(park::current());
            }
            if park::park(None) == Park::Cancelled {
                self.state.lock().waiter = None;
                park::cancelled();
                return Err(Box::new(Cancelled));
            }
        }
    }

    fn is_done(&self) -> bool {
        let s = self.state.lock();
        s.value.is_some() || s.closed
    }
}
