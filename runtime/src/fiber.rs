//! Fibers: the only module that touches corosensei.
//!
//! A fiber is a [`corosensei::Coroutine`] running one spawned task on a pooled, guarded stack
//! (see `stack.rs`). The worker resumes it with a [`Resume`] value; the fiber gives control back
//! by calling [`suspend`] from anywhere down its call stack.
//!
//! # Which threads may run a fiber
//!
//! A started fiber runs only on the worker thread that started it, for its whole life.
//! corosensei coroutines are `!Send`, and for good reason: compiled code caches the address of
//! thread-locals in callee-saved registers across a call, so a coroutine suspended on thread A
//! and resumed on thread B keeps using A's thread-locals (measured in release builds; see
//! RUNTIME-NOTES §3). We therefore never implement `Send` for [`Fiber`]. Balancing happens
//! before a task starts (an unstarted task is a `Send` closure that any worker may steal), and
//! wake-ups from other threads are routed to the owning worker by id.
//!
//! # How a fiber finds its yielder
//!
//! corosensei hands the coroutine body a `&Yielder`. Blocking calls deep in user code need it
//! without threading it through every signature, so the running fiber publishes a pointer to
//! its yielder in the thread-local `YIELDER`: the body sets it when it starts, [`suspend`] sets
//! it again each time the fiber is resumed (another fiber may have run in between), and the
//! worker clears it after every resume returns. So `YIELDER` is non-null exactly while a fiber
//! runs on this thread, and then it points at that fiber's own yielder.
//!
//! # Cancellation
//!
//! A fiber is never dropped while suspended (that would unwind it through corosensei's forced
//! unwind, on whatever thread drops it). To end one early the worker resumes it with
//! [`Resume::Cancel`]; the blocking call that was suspended sees it and unwinds the stack with
//! the [`Cancelled`](crate::Cancelled) payload, running every destructor on the way, and the task
//! finishes normally.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};

use crate::join::Joined;
use crate::runtime::Runnable;

/// What the worker passes to a fiber when it resumes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Carry on.
    Run,
    /// The runtime is ending: unwind and finish.
    Cancel,
}

/// The work a fiber runs: it must catch its own panics (the spawn wrappers do).
pub(crate) enum Task {
    /// A coroutine nobody joins.
    Detached(Box<dyn FnOnce() + Send + 'static>),
    /// A coroutine with a `JoinHandle`: closure and result slot in one allocation.
    Joined(Joined),
    /// A shared task started again and again (see [`Runnable`]): no allocation per start.
    Shared(SharedTask),
}

/// A [`Runnable`] on its way to a coroutine. Dropped without running (the runtime ended
/// first), it tells the task so through [`Runnable::abandoned`].
pub(crate) struct SharedTask(Option<Arc<dyn Runnable>>);

impl SharedTask {
    pub(crate) fn new(task: Arc<dyn Runnable>) -> SharedTask {
        SharedTask(Some(task))
    }

    #[inline]
    fn run(mut self) {
        if let Some(task) = self.0.take() {
            task.run();
        }
    }
}

impl Drop for SharedTask {
    #[inline]
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            abandon(task);
        }
    }
}

/// Out of line: dropping a task unstarted is rare, and the inlined call grew every function
/// that may drop a `Task` (callgrind quick W4 +4 %, the spawn path inlined differently).
#[cold]
#[inline(never)]
fn abandon(task: Arc<dyn Runnable>) {
    task.abandoned();
}

impl Task {
    /// Runs the task to its end. Inline: out of line it cost every actor activation a call
    /// and its frame (the ring benchmark's hop, 17 instructions under callgrind).
    #[inline]
    pub(crate) fn run(self) {
        match self {
            Task::Detached(f) => f(),
            Task::Joined(j) => j.run(),
            Task::Shared(r) => r.run(),
        }
    }
}

/// Runs one task as a coroutine of this fiber. A panic stops here (a joined task has caught
/// its own to deliver it; a detached or shared task's is printed by the panic hook and goes
/// no further), and the guard drops the task's coroutine-local values as it ends, while a
/// panicking or cancelled task still unwinds (a joined task dropped them already, before its
/// result went out). Inlined into both call sites: out of line, W4 (spawns) cost 5 % more
/// instructions under callgrind (80.65M against 76.72M).
#[inline(always)]
fn run_task(task: Task) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _locals = crate::worker::LocalsGuard;
        task.run()
    }));
}

type Co = Coroutine<Resume, (), (), DefaultStack>;

thread_local! {
    /// The yielder of the fiber running on this thread, or null (see the module docs).
    static YIELDER: Cell<*const Yielder<Resume, ()>> = const { Cell::new(std::ptr::null()) };
}

/// A task bound to its own stack, started or not.
pub(crate) struct Fiber {
    co: Co,
}

impl Fiber {
    /// Prepares `task` to run on `stack`; nothing runs until the first [`Fiber::resume`].
    pub(crate) fn new(stack: DefaultStack, task: Task) -> Fiber {
        let co = Coroutine::with_stack(stack, move |y: &Yielder<Resume, ()>, first: Resume| {
            YIELDER.with(|c| c.set(y));
            if first == Resume::Run {
                let mut task = task;
                loop {
                    run_task(task);
                    // Then run waiting tasks of this worker here, on this stack, as new
                    // coroutines (see `worker::chain_task`), instead of ending and starting a
                    // fresh fiber.
                    while let Some(next) = crate::worker::chain_task() {
                        run_task(next);
                    }
                    // With nothing left to chain, wait as the worker's spare fiber for the next
                    // task it starts (see `worker::wait_as_spare`), or end.
                    match crate::worker::wait_as_spare() {
                        Some(next) => task = next,
                        None => break,
                    }
                }
            }
        });
        Fiber { co }
    }

    /// Runs the fiber until it suspends (`false`) or finishes (`true`).
    pub(crate) fn resume(&mut self, input: Resume) -> bool {
        let r = self.co.resume(input);
        YIELDER.with(|c| c.set(std::ptr::null()));
        matches!(r, CoroutineResult::Return(()))
    }

    /// The stack of a finished fiber, for reuse.
    pub(crate) fn into_stack(self) -> DefaultStack {
        self.co.into_stack()
    }
}

/// Runs `f`, which resumes another fiber of this worker, from inside the running fiber (see
/// "Lending" in `worker.rs`), then publishes the running fiber's yielder again: the nested
/// [`Fiber::resume`] clears `YIELDER` when it returns.
#[inline]
pub(crate) fn lend<R>(f: impl FnOnce() -> R) -> R {
    let y = YIELDER.with(|c| c.get());
    debug_assert!(!y.is_null(), "coact: lending from outside a coroutine");
    let r = f();
    YIELDER.with(|c| c.set(y));
    r
}

/// Whether the caller runs inside a fiber.
#[inline]
pub(crate) fn in_fiber() -> bool {
    YIELDER.with(|c| !c.get().is_null())
}

/// Suspends the running fiber until its worker resumes it; returns what the worker passed.
///
/// # Panics
/// Outside a fiber.
#[inline]
pub(crate) fn suspend() -> Resume {
    let y = YIELDER.with(|c| c.get());
    assert!(!y.is_null(), "coact: suspend called outside a coroutine");
    // SAFETY: `YIELDER` is non-null only while the fiber that published it is running on this
    // thread (module docs), and we are that fiber; its yielder lives on its own stack frame
    // for as long as the body runs, which outlasts this call.
    let input = unsafe { &*y }.suspend(());
    YIELDER.with(|c| c.set(y));
    input
}
