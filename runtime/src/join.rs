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
//!
//! # Recycling
//!
//! A coroutine whose handle was dropped before it finished (a detached spawn) has nobody to
//! give its result to: it drops the result at once, without the lock, and its joint, now
//! referenced by nothing else and as clean as a new one, goes to its worker's [`JointCache`]
//! for the next spawn of the same closure and result types there. A joiner on a worker that
//! took the result of a coroutine already done with the joint recycles it the same way.
//! Spawning in bursts (a thousand at a time) otherwise frees and allocates past the
//! allocator's per-thread cache, which made `malloc` and `free` a fifth of a spawn's
//! instructions.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::thread;

use crate::park::{self, Cancelled, Park, Unparker};
use crate::stack;
use crate::sync::FastLock;
use crate::worker;

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
    /// Runs the closure (catching its panic) and stores the result, or, if the handle is
    /// gone, drops the result and recycles the joint (see "Recycling" in the module docs).
    ///
    /// # Safety
    /// See the trait: called once, by the joint's `Joined`, and not after `abandon`.
    unsafe fn run(self: Arc<Self>);
    /// Drops the closure unrun and closes the slot.
    ///
    /// # Safety
    /// See the trait: called once, by the joint's `Joined`, and not after `run`.
    unsafe fn abandon(&self);
}

/// The joiner's view of a [`Joint`].
pub(crate) trait JoinCell<T>: Send + Sync {
    /// Waits for the result; a joint left with no other reference afterwards is recycled
    /// (see "Recycling" in the module docs).
    fn recv(self: Arc<Self>) -> thread::Result<T>;
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
    let j = match worker::with_joint_cache(|c| c.take::<Joint<F, T>>()).flatten() {
        Some(j) => {
            // SAFETY: a joint comes out of the cache referenced by nothing else (only a joint
            // whose other reference was gone is put there, and the cache gave it up), with no
            // task and its state as new (see `JoinTask::run`): nobody else can touch `task`.
            unsafe { *j.task.get() = Some((f, reservation)) };
            j
        }
        None => Arc::new(Joint {
            task: UnsafeCell::new(Some((f, reservation))),
            state: FastLock::new(State {
                value: None,
                closed: false,
                waiter: None,
            }),
        }),
    };
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
    unsafe fn run(self: Arc<Self>) {
        // SAFETY: the caller is the one `Joined`, calling once (the trait's contract): nobody
        // else touches `task`.
        let Some((f, reservation)) = (unsafe { (*self.task.get()).take() }) else {
            return;
        };
        // The coroutine-local values go before the result does, as a thread's locals go
        // before its join returns (see `LocalsGuard` for why inside the catch).
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _locals = worker::LocalsGuard;
            f()
        }));
        if alone(&self) {
            // The handle is gone, and no new one can be made: nobody will ask for the result.
            // The state was never touched since the joint was made clean (only the handle and
            // `finish` touch it), so the joint is as good as new.
            drop(r);
            drop(reservation);
            worker::with_joint_cache(|c| c.put(self));
            return;
        }
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
    F: Send + 'static,
    T: Send + 'static,
{
    fn recv(self: Arc<Self>) -> thread::Result<T> {
        loop {
            {
                let mut s = self.state.lock();
                if let Some(v) = s.value.take() {
                    drop(s);
                    if alone(&self) {
                        // The task is done with the joint, whose state is clean again: the
                        // value is taken, and a waiter this joiner published was taken by
                        // `finish`.
                        worker::with_joint_cache(|c| c.put(self));
                    }
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

/// Whether `j` is the joint's only reference, the other side's last use of it happening before
/// anything the caller does next. The count cannot rise again once it is one (a joint has no
/// weak references, and its two sides are never cloned), and the fence pairs with the release
/// of the other side's decrement.
fn alone<J>(j: &Arc<J>) -> bool {
    if Arc::strong_count(j) != 1 {
        return false;
    }
    fence(Ordering::Acquire);
    true
}

/// Clean joints of finished coroutines (detached, or joined), kept by a worker for its next
/// spawns (see "Recycling" in the module docs). Bounded: at most [`CACHE_BYTES`] of joints, of at most
/// [`CACHE_KINDS`] types; a worker empties it when it goes idle.
pub(crate) struct JointCache {
    kinds: RefCell<Vec<Kind>>,
    bytes: Cell<usize>,
}

/// The cached joints of one type.
struct Kind {
    id: TypeId,
    size: usize,
    free: Vec<Arc<dyn Any + Send + Sync>>,
}

/// The most a worker's cache holds: a burst of a thousand small spawns fits.
const CACHE_BYTES: usize = 256 * 1024;
/// The most joint types a worker's cache holds.
const CACHE_KINDS: usize = 8;

impl JointCache {
    /// An empty cache.
    pub(crate) fn new() -> JointCache {
        JointCache {
            kinds: RefCell::new(Vec::new()),
            bytes: Cell::new(0),
        }
    }

    /// A cached joint of type `J`, if there is one.
    fn take<J: Any + Send + Sync>(&self) -> Option<Arc<J>> {
        let id = TypeId::of::<J>();
        let mut kinds = self.kinds.borrow_mut();
        let kind = kinds.iter_mut().find(|k| k.id == id)?;
        let j = kind.free.pop()?;
        self.bytes.set(self.bytes.get() - kind.size);
        Some(
            j.downcast::<J>()
                .unwrap_or_else(|_| unreachable!("cached under its type id")),
        )
    }

    /// Keeps `j` for a later spawn, or drops it if the cache is full.
    fn put<J: Any + Send + Sync>(&self, j: Arc<J>) {
        // The allocation: the joint and the two reference counts.
        let size = std::mem::size_of::<J>() + 2 * std::mem::size_of::<usize>();
        if self.bytes.get() + size > CACHE_BYTES {
            return;
        }
        let id = TypeId::of::<J>();
        let mut kinds = self.kinds.borrow_mut();
        let kind = match kinds.iter().position(|k| k.id == id) {
            Some(i) => &mut kinds[i],
            None if kinds.len() < CACHE_KINDS => {
                kinds.push(Kind {
                    id,
                    size,
                    free: Vec::new(),
                });
                kinds.last_mut().expect("just pushed")
            }
            None => return,
        };
        kind.free.push(j);
        self.bytes.set(self.bytes.get() + size);
    }

    /// Frees every cached joint.
    pub(crate) fn clear(&self) {
        if self.bytes.get() != 0 {
            self.kinds.borrow_mut().clear();
            self.bytes.set(0);
        }
    }
}
