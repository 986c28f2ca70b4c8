//! Runtimes, spawning and joining.

use std::fmt;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::fiber::{self, Resume, SharedTask, Task};
use crate::join::{joint, JoinCell, Reservation};
use crate::park;
use crate::stack;
use crate::watchdog::{self, Stall, StallHook};
use crate::worker::{self, Shared};

/// Usable bytes of a coroutine stack unless [`Builder::stack_size`] says otherwise: 64 KiB, or
/// 256 KiB in builds with debug assertions, whose unoptimised code uses several times more stack.
pub const DEFAULT_STACK_SIZE: usize = if cfg!(debug_assertions) {
    256 * 1024
} else {
    64 * 1024
};

/// Configures and builds a [`Runtime`].
///
/// ```
/// let rt = coact_runtime::Runtime::builder().workers(2).stack_size(128 * 1024).build()?;
/// assert_eq!(rt.block_on(|| 6 * 7), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Builder {
    workers: Option<usize>,
    stack_size: usize,
    max_stacks: Option<usize>,
    stall_threshold: Option<Duration>,
    on_stall: StallHook,
    offload_threads: usize,
    offload_keep_alive: Duration,
    thread_name: String,
    on_worker_start: Option<WorkerHook>,
    on_worker_stop: Option<WorkerHook>,
}

/// A hook run on each worker thread, given the worker's index.
type WorkerHook = Arc<dyn Fn(usize) + Send + Sync>;

/// Runs a worker hook; a panic in it is printed by the panic hook and otherwise ignored.
fn run_hook(hook: &Option<WorkerHook>, index: usize) {
    if let Some(h) = hook {
        let _ = catch_unwind(AssertUnwindSafe(|| h(index)));
    }
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &self.workers)
            .field("stack_size", &self.stack_size)
            .field("max_stacks", &self.max_stacks)
            .field("stall_threshold", &self.stall_threshold)
            .field("offload_threads", &self.offload_threads)
            .field("offload_keep_alive", &self.offload_keep_alive)
            .field("thread_name", &self.thread_name)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Sets the number of worker threads (default: one per available core). Must be at least 1.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Sets the usable size of every coroutine stack, in bytes (default
    /// [`DEFAULT_STACK_SIZE`]). Each stack also has one guard page below it; a coroutine that
    /// overflows its stack makes the process print a message naming the problem and abort.
    /// A coroutine that parks may resume another one from its own stack (the worker's
    /// "lending", which saves a trip through the scheduler): leave room for a few frames of
    /// the runtime's own below the deepest blocking call.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Caps the number of coroutines alive at once in this process (each holds a guarded
    /// stack, which costs two of the kernel's `vm.max_map_count` mappings). The default is 40 %
    /// of that limit: 13,106 coroutines with the usual 65,530. A spawn past the cap fails with a
    /// clear error ([`try_spawn`] returns it, [`spawn`] panics with it).
    pub fn max_stacks(mut self, n: usize) -> Self {
        self.max_stacks = Some(n);
        self
    }

    /// Reports a worker that runs one coroutine for longer than `threshold` without it blocking
    /// or yielding (a thread-blocking call or a long computation stalls every coroutine on
    /// that worker); `None` turns the watchdog off. Default: 100 ms.
    pub fn stall_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.stall_threshold = threshold;
        self
    }

    /// Calls `f` with each stall the watchdog finds, instead of emitting it as a `tracing`
    /// warning (target `coact::watchdog`).
    pub fn on_stall(mut self, f: impl Fn(&Stall) + Send + Sync + 'static) -> Self {
        self.on_stall = Arc::new(f);
        self
    }

    /// Names the worker threads `{prefix}-{index}` (default prefix `coact-worker`), as
    /// debuggers, `top -H` and panic messages show them.
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// Runs `f` on each worker thread as it starts, before it runs any coroutine, with the
    /// worker's index: to pin the thread to a CPU, set its priority, or set up per-thread
    /// state such as a logging context. A panic in `f` is printed and otherwise ignored.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let started = Arc::new(Mutex::new(Vec::new()));
    /// let seen = started.clone();
    /// let rt = coact_runtime::Runtime::builder()
    ///     .workers(2)
    ///     .thread_name("game-loop")
    ///     .on_worker_start(move |i| {
    ///         let name = std::thread::current().name().map(String::from);
    ///         seen.lock().unwrap().push((i, name));
    ///     })
    ///     .build()?;
    /// drop(rt); // joins the workers, so both hooks have run
    /// let mut started = started.lock().unwrap().clone();
    /// started.sort();
    /// assert_eq!(started, [(0, Some("game-loop-0".into())), (1, Some("game-loop-1".into()))]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_worker_start(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_worker_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each worker thread as it stops, after its last coroutine (the runtime
    /// ends), with the worker's index. A panic in `f` is printed and otherwise ignored.
    pub fn on_worker_stop(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_worker_stop = Some(Arc::new(f));
        self
    }

    /// Caps the threads of the runtime's offload pool, which runs the closures given to
    /// [`offload`](crate::offload()) (default [`DEFAULT_OFFLOAD_THREADS`]; at least 1). Jobs
    /// past the cap wait for a thread in order of arrival.
    ///
    /// [`DEFAULT_OFFLOAD_THREADS`]: crate::DEFAULT_OFFLOAD_THREADS
    pub fn offload_threads(mut self, n: usize) -> Self {
        self.offload_threads = n.max(1);
        self
    }

    /// Sets how long an idle offload thread waits for a job before it exits (default
    /// [`DEFAULT_OFFLOAD_KEEP_ALIVE`]).
    ///
    /// [`DEFAULT_OFFLOAD_KEEP_ALIVE`]: crate::DEFAULT_OFFLOAD_KEEP_ALIVE
    pub fn offload_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.offload_keep_alive = keep_alive;
        self
    }

    /// Starts the worker threads (and the watchdog thread).
    pub fn build(self) -> io::Result<Runtime> {
        let workers = match self.workers {
            Some(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "coact: a runtime needs at least one worker",
                ))
            }
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, |n| n.get()),
        };
        stack::install_overflow_handler();
        // Before any worker thread exists, so that the light barriers on hot paths (an actor's
        // activation, a channel's release) take their cheap branch from the start.
        crate::barrier::init();
        let max_stacks = self.max_stacks.unwrap_or_else(stack::default_max_stacks);
        let (shared, parts) = Shared::new(
            workers,
            self.stack_size,
            max_stacks,
            (self.offload_threads, self.offload_keep_alive),
        )?;
        // Built first, so that an error below tears down what already started (by dropping
        // it) before it is reported.
        let mut rt = Runtime {
            shared,
            threads: Vec::with_capacity(workers),
            watchdog: None,
            ended: false,
        };
        for (i, part) in parts.into_iter().enumerate() {
            let sh = rt.shared.clone();
            let (start, stop) = (self.on_worker_start.clone(), self.on_worker_stop.clone());
            let t = thread::Builder::new()
                .name(format!("{}-{i}", self.thread_name))
                .spawn(move || {
                    run_hook(&start, i);
                    worker::run_worker(sh, part);
                    run_hook(&stop, i);
                })?;
            rt.threads.push(t);
        }
        if let Some(t) = self.stall_threshold {
            rt.watchdog = Some(watchdog::start(rt.shared.clone(), t, self.on_stall)?);
        }
        Ok(rt)
    }
}

/// A set of worker threads running coroutines.
///
/// Dropping the runtime ends it: every coroutine still alive is cancelled (the blocking call
/// it waits in unwinds its stack, so its destructors run), unstarted ones are dropped, the
/// worker threads are joined, and then the drop waits for the jobs handed to
/// [`offload`](crate::offload()) to return (see [the module docs](mod@crate::offload) on the pool).
///
/// ```
/// use coact_runtime::{Runtime, spawn};
///
/// let rt = Runtime::builder().workers(2).build()?;
/// let total = rt.block_on(|| {
///     let parts: Vec<_> = (0..10u64).map(|i| spawn(move || i * i)).collect();
///     parts.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
/// });
/// assert_eq!(total, 285);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
    watchdog: Option<thread::JoinHandle<()>>,
    /// Ended already (by [`Runtime::shutdown_timeout`]): the drop has nothing left to do.
    ended: bool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.threads.len())
            .finish()
    }
}

impl Runtime {
    /// A builder with the default settings.
    pub fn builder() -> Builder {
        Builder {
            workers: None,
            stack_size: DEFAULT_STACK_SIZE,
            max_stacks: None,
            stall_threshold: Some(Duration::from_millis(100)),
            on_stall: Arc::new(watchdog::print_stall),
            offload_threads: crate::offload::DEFAULT_OFFLOAD_THREADS,
            offload_keep_alive: crate::offload::DEFAULT_OFFLOAD_KEEP_ALIVE,
            thread_name: "coact-worker".into(),
            on_worker_start: None,
            on_worker_stop: None,
        }
    }

    /// A runtime with the default settings.
    pub fn new() -> io::Result<Runtime> {
        Runtime::builder().build()
    }

    /// Runs `f` as a coroutine and blocks the calling thread until it returns its value.
    /// A panic in `f` is raised again here. Other coroutines keep running afterwards.
    ///
    /// # Panics
    /// When called from inside a coroutine (it would block the worker); use [`spawn`] and
    /// [`JoinHandle::join`] there.
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        assert!(
            !crate::in_coroutine(),
            "coact: block_on called from inside a coroutine; use spawn(..).join() instead"
        );
        match self.spawn(f).join() {
            Ok(v) => v,
            Err(p) => resume_unwind(p),
        }
    }

    /// Spawns a coroutine on this runtime, from any thread.
    ///
    /// # Panics
    /// When the cap on live coroutines is reached; see [`Runtime::try_spawn`].
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle().spawn(f)
    }

    /// Spawns a coroutine on this runtime, or says why it cannot.
    pub fn try_spawn<F, T>(&self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle().try_spawn(f)
    }

    /// Spawns a coroutine on worker `worker`, where it stays; see [`Handle::spawn_on`].
    ///
    /// # Panics
    /// If there is no worker `worker`, or when the cap on live coroutines is reached.
    pub fn spawn_on<F, T>(&self, worker: usize, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle().spawn_on(worker, f)
    }

    /// [`Runtime::spawn_on`], or says why it cannot.
    pub fn try_spawn_on<F, T>(&self, worker: usize, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle().try_spawn_on(worker, f)
    }

    /// A snapshot of the runtime's load (see [`crate::metrics`]).
    pub fn metrics(&self) -> crate::metrics::Metrics {
        crate::metrics::snapshot(&self.shared)
    }

    /// A handle that spawns onto this runtime from anywhere.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.shared.remotes.len()
    }

    /// The number of offload pool threads alive now (see [`offload`](crate::offload())).
    pub fn offload_threads(&self) -> usize {
        self.shared.pool.threads()
    }
}

impl Runtime {
    /// Ends the runtime as dropping it does, but waits at most `timeout` for the jobs handed
    /// to [`offload`](crate::offload()) (a drop waits for them however long they take). Returns
    /// whether every job had returned; jobs still running are left to their threads, which
    /// exit once the jobs return. Coroutines are cancelled and the workers joined first, as in
    /// a drop, which `timeout` does not bound.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = coact_runtime::Runtime::new()?;
    /// rt.block_on(|| coact_runtime::offload(|| 2 + 2));
    /// assert!(rt.shutdown_timeout(Duration::from_secs(10))); // nothing was left running
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> bool {
        let done = self.end(Instant::now().checked_add(timeout));
        self.ended = true;
        done
    }

    /// Ends the runtime; waits for offloaded jobs until `jobs_until` (`None`: for good).
    /// Returns whether they had all returned.
    fn end(&mut self, jobs_until: Option<Instant>) -> bool {
        self.shared.shutdown();
        let own = worker::current_shared().is_some_and(|s| Arc::ptr_eq(&s, &self.shared));
        if let Some(w) = self.watchdog.take() {
            w.thread().unpark();
            if !own {
                let _ = w.join();
            }
        }
        if own {
            // Joining our own worker would deadlock: the workers finish on their own, and so
            // do the offload threads once their jobs are done. The end hooks run now, while
            // the other coroutines are being cancelled: what they reach finds the runtime
            // ending, as it would after.
            self.shared.run_end_hooks();
            return self.shared.pool.close_and_wait(Some(Instant::now()));
        }
        for t in self.threads.drain(..) {
            // A worker never panics on its own; if one did, the report was already printed.
            let _ = t.join();
        }
        self.shared.drain_unstarted();
        self.shared.run_end_hooks();
        // After the workers and the hooks: destructors of cancelled coroutines, and hooks,
        // may offload too.
        self.shared.pool.close_and_wait(jobs_until)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.ended {
            self.end(None);
        }
    }
}

/// A cheap, clonable handle to a [`Runtime`], usable from any thread.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// The handle of the runtime running the caller, if it runs on one: on one of its workers,
    /// or on a thread of its offload pool (a job handed to [`offload`](crate::offload())).
    pub fn current() -> Option<Handle> {
        worker::current_shared()
            .or_else(crate::offload::current_runtime)
            .map(|shared| Handle { shared })
    }

    /// A snapshot of the runtime's load: per worker, stacks in use, tasks waiting to start,
    /// alarms, and counts of turns, idle sleeps and steals (see [`crate::metrics`]).
    pub fn metrics(&self) -> crate::metrics::Metrics {
        crate::metrics::snapshot(&self.shared)
    }

    /// The number of worker threads of the runtime (to keep one helper per worker, say).
    ///
    /// ```
    /// let rt = coact_runtime::Runtime::builder().workers(3).build().unwrap();
    /// let n = rt.block_on(|| coact_runtime::Handle::current().unwrap().workers());
    /// assert_eq!(n, 3);
    /// ```
    pub fn workers(&self) -> usize {
        self.shared.remotes.len()
    }

    /// The number of offload pool threads alive now (see [`offload`](crate::offload())).
    pub fn offload_threads(&self) -> usize {
        self.shared.pool.threads()
    }

    /// Spawns a coroutine on the runtime.
    ///
    /// # Panics
    /// When the cap on live coroutines is reached; see [`Handle::try_spawn`].
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.try_spawn(f).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Spawns a coroutine on the runtime, or says why it cannot (the cap on live coroutines
    /// is reached, or the runtime has ended).
    pub fn try_spawn<F, T>(&self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        try_spawn_in(&self.shared, f)
    }

    /// Spawns a coroutine on worker `worker` (`0..workers()`, as [`current_worker`] numbers
    /// them): it starts there and, like every started coroutine, stays there; peers never take
    /// it. For a pool whose members should use every core (a work queue's consumers, which a
    /// plain [`spawn`](Handle::spawn) starts where it runs until a backlog builds up), or for
    /// state sharded by worker.
    ///
    /// ```
    /// let rt = coact_runtime::Runtime::builder().workers(2).build().unwrap();
    /// let h = rt.handle();
    /// let on: Vec<_> = (0..2).map(|w| h.spawn_on(w, coact_runtime::current_worker)).collect();
    /// let on: Vec<_> = on.into_iter().map(|j| j.join().unwrap()).collect();
    /// assert_eq!(on, [Some(0), Some(1)]);
    /// ```
    ///
    /// # Panics
    /// If there is no worker `worker`, or when the cap on live coroutines is reached; see
    /// [`Handle::try_spawn_on`].
    pub fn spawn_on<F, T>(&self, worker: usize, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.try_spawn_on(worker, f)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Handle::spawn_on`], or says why it cannot (no such worker, the cap on live
    /// coroutines is reached, or the runtime has ended).
    pub fn try_spawn_on<F, T>(&self, worker: usize, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        try_spawn_placed(&self.shared, worker, f)
    }
}

impl Handle {
    /// A number that identifies this runtime among those the process has made (never
    /// reused).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Runs `f` once the runtime has ended: after its coroutines were cancelled and the tasks
    /// that never started were given up, on the thread that ended it (the one that dropped the
    /// [`Runtime`] or called [`Runtime::shutdown_timeout`]; when a coroutine of the runtime
    /// ends it, `f` runs there and then, while the others are being cancelled). If the
    /// runtime has ended already, `f` runs now, here. For layers that keep state per runtime
    /// and must close it down, as `coact-actor` stops the actors that were idle at the end.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let rt = coact_runtime::Runtime::new().unwrap();
    /// let ended = Arc::new(AtomicBool::new(false));
    /// let e = ended.clone();
    /// rt.handle().on_end(move || e.store(true, Ordering::SeqCst));
    /// assert!(!ended.load(Ordering::SeqCst));
    /// drop(rt);
    /// assert!(ended.load(Ordering::SeqCst));
    /// ```
    pub fn on_end(&self, f: impl FnOnce() + Send + 'static) {
        self.shared.on_end(Box::new(f));
    }

    /// Spawns a coroutine nobody joins: it takes no slot of the live-coroutine cap (so any
    /// number may wait to start and none is refused; once it runs, its stack counts toward the
    /// limit on mapped stacks, and with none to map it waits to start), and a panic in it is
    /// printed by the panic hook and otherwise ignored. For layers that track their coroutines
    /// themselves. Once the runtime has ended, `f` is dropped without running.
    pub fn spawn_detached<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        if self.shared.is_shutting_down() {
            // Nothing will run it; dropping it now runs its destructors and breaks any cycle
            // through the runtime's queues.
            drop(f);
            return;
        }
        // Its panic, and its coroutine-local values, are seen to by the fiber that runs it
        // (`fiber::run_task`).
        let task = Task::Detached(Box::new(f));
        worker::submit(&self.shared, task);
    }

    /// Like [`spawn_detached`](Handle::spawn_detached) for a task that is started again and
    /// again, such as an actor's activation: the coroutine runs `task.run()` and holds the
    /// `Arc` meanwhile, so a start allocates nothing. A panic in `run` is printed by the panic
    /// hook and otherwise ignored. Once the runtime has ended, `task` does not run: it is
    /// given up at once with [`Runnable::abandoned`], here, and so is a task still waiting to
    /// start when the runtime ends.
    pub fn spawn_runnable(&self, task: Arc<dyn Runnable>) {
        if self.shared.is_shutting_down() {
            task.abandoned();
            return;
        }
        worker::submit(&self.shared, Task::Shared(SharedTask::new(task)));
    }
}

/// A task that can be started as a detached coroutine any number of times without
/// allocating; see [`Handle::spawn_runnable`].
///
/// ```
/// use std::sync::Arc;
/// use coact_runtime::sync::mpsc::{sync_channel, SyncSender};
///
/// /// Reports each run on a channel.
/// struct Ping(SyncSender<u32>);
///
/// impl coact_runtime::Runnable for Ping {
///     fn run(self: Arc<Self>) {
///         self.0.send(1).unwrap();
///     }
/// }
///
/// let runs: u32 = coact_runtime::run(|| {
///     let (tx, rx) = sync_channel(3);
///     let ping = Arc::new(Ping(tx));
///     let h = coact_runtime::Handle::current().unwrap();
///     for _ in 0..3 {
///         h.spawn_runnable(ping.clone());
///     }
///     drop(ping); // the channel ends when the last run lets go of the task
///     rx.iter().sum()
/// });
/// assert_eq!(runs, 3);
/// ```
pub trait Runnable: Send + Sync + 'static {
    /// Runs the task on a coroutine (it may block, like any coroutine).
    fn run(self: Arc<Self>);

    /// Called instead of [`run`](Runnable::run) for a start that will never happen: the task
    /// was spawned after its runtime had ended, or was still waiting to start when it ended.
    /// It runs on the thread that gave the start up (the spawner's, or the one ending the
    /// runtime), not on a coroutine. For a task that must let others know it is gone, such as
    /// an actor whose askers would otherwise wait for a reply. By default it does nothing.
    fn abandoned(self: Arc<Self>) {}
}

/// Spawns a detached coroutine on the caller's runtime; see [`Handle::spawn_detached`].
///
/// # Panics
/// Outside a runtime.
pub fn spawn_detached<F>(f: F)
where
    F: FnOnce() + Send + 'static,
{
    Handle::current()
        .expect("coact: spawn_detached called outside a runtime; use Handle::spawn_detached")
        .spawn_detached(f)
}

/// Identifies a running coroutine so that it can be cancelled from anywhere.
///
/// Plain data (`Copy`): taking one is cheap and holds no reference to the runtime, which it
/// reaches again only to cancel.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CoroutineId {
    runtime: u64,
    worker: u32,
    key: u32,
    gen: u32,
}

impl fmt::Debug for CoroutineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoroutineId")
            .field("runtime", &self.runtime)
            .field("worker", &self.worker)
            .field("key", &self.key)
            .field("generation", &self.gen)
            .finish()
    }
}

impl CoroutineId {
    /// Cancels the coroutine: the blocking call it is parked in (or its next one) unwinds its
    /// stack with [`Cancelled`](crate::Cancelled), running its destructors. A coroutine that
    /// has finished is not affected, nor is one that reused its slot, nor anything once its
    /// runtime has ended.
    pub fn cancel(&self) {
        worker::cancel_id(self.runtime, self.worker, self.key, self.gen)
    }
}

/// A place for the id of the coroutine doing something right now (an actor's current
/// activation, say), which one party updates and anyone may read, without a lock.
///
/// Storing takes no atomic read-modify-write: a few plain stores, which do not wait for the
/// cache line, so a slot that is cold (one of thousands of actors) costs no stall to update. A
/// reader gets an id that was stored, never a mix of two.
///
/// Stores must not overlap: callers serialise them (the actor crate stores only from the
/// actor's one running activation). Overlapping stores cannot break memory safety, but a
/// reader could then see a mix of the two ids and, say, cancel the wrong coroutine.
///
/// ```
/// use coact_runtime::{current_coroutine, CoroutineIdSlot};
///
/// let slot = CoroutineIdSlot::new();
/// assert_eq!(slot.get(), None);
/// coact_runtime::run(move || {
///     slot.set(current_coroutine());
///     assert_eq!(slot.get(), current_coroutine());
/// });
/// ```
pub struct CoroutineIdSlot {
    /// Odd while a store is under way; bumped by two per store.
    seq: AtomicU32,
    /// The runtime's id, 0 for none (runtime ids start at 1).
    runtime: AtomicU64,
    /// The worker in the high half, the fiber key in the low.
    place: AtomicU64,
    gen: AtomicU32,
}

impl CoroutineIdSlot {
    /// An empty slot.
    pub const fn new() -> CoroutineIdSlot {
        CoroutineIdSlot {
            seq: AtomicU32::new(0),
            runtime: AtomicU64::new(0),
            place: AtomicU64::new(0),
            gen: AtomicU32::new(0),
        }
    }

    /// Stores `id` (see the type's docs: stores must not overlap).
    #[inline]
    pub fn set(&self, id: Option<CoroutineId>) {
        let (runtime, place, gen) = match id {
            Some(c) => (
                c.runtime,
                (u64::from(c.worker) << 32) | u64::from(c.key),
                c.gen,
            ),
            None => (0, 0, 0),
        };
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.runtime.store(runtime, Ordering::Relaxed);
        self.place.store(place, Ordering::Relaxed);
        self.gen.store(gen, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// The id stored last.
    pub fn get(&self) -> Option<CoroutineId> {
        loop {
            let s = self.seq.load(Ordering::Acquire);
            if s & 1 == 0 {
                let runtime = self.runtime.load(Ordering::Relaxed);
                let place = self.place.load(Ordering::Relaxed);
                let gen = self.gen.load(Ordering::Relaxed);
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s {
                    return (runtime != 0).then_some(CoroutineId {
                        runtime,
                        worker: (place >> 32) as u32,
                        key: place as u32,
                        gen,
                    });
                }
            }
            // A store is under way: a handful of instructions, unless its thread was
            // preempted in the middle; let that thread run.
            thread::yield_now();
        }
    }
}

impl Default for CoroutineIdSlot {
    fn default() -> Self {
        CoroutineIdSlot::new()
    }
}

impl fmt::Debug for CoroutineIdSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CoroutineIdSlot").field(&self.get()).finish()
    }
}

/// The identity of the calling coroutine, if the caller is one.
#[inline]
pub fn current_coroutine() -> Option<CoroutineId> {
    worker::current_id().map(|(runtime, worker, key, gen)| CoroutineId {
        runtime,
        worker,
        key,
        gen,
    })
}

/// Owns the right to wait for a coroutine's result.
///
/// Dropping it detaches the coroutine, which keeps running.
#[must_use = "dropping a JoinHandle detaches the coroutine; call join() to wait for it"]
pub struct JoinHandle<T> {
    cell: Arc<dyn JoinCell<T>>,
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> JoinHandle<T> {
    /// Waits for the coroutine to finish and returns its value, or `Err` with the panic
    /// payload if it panicked (a coroutine cancelled at shutdown gives
    /// [`Cancelled`](crate::Cancelled)). From a coroutine this parks only the caller; from a
    /// plain thread it blocks the thread.
    pub fn join(self) -> thread::Result<T> {
        self.cell.recv()
    }

    /// Whether the coroutine has finished (so `join` would not wait).
    pub fn is_finished(&self) -> bool {
        self.cell.is_done()
    }
}

/// Spawns a coroutine on the runtime running the caller.
///
/// ```
/// let v = coact_runtime::run(|| coact_runtime::spawn(|| "hello").join().unwrap());
/// assert_eq!(v, "hello");
/// ```
///
/// # Panics
/// Outside a runtime (use [`Runtime::spawn`] or [`Handle::spawn`] there), or when the cap on
/// live coroutines is reached (use [`try_spawn`] to get that as an error).
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    try_spawn(f).unwrap_or_else(|e| panic!("{e}"))
}

/// Spawns a coroutine on the runtime running the caller, or says why it cannot.
///
/// # Panics
/// Outside a runtime.
pub fn try_spawn<F, T>(f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // Through the worker's own reference to the runtime: cloning a `Handle` and dropping it
    // would cost two atomic read-modify-writes on a counter every worker shares.
    worker::with_current_shared(|shared| try_spawn_in(shared, f)).expect(
        "coact: spawn called outside a coroutine; use Runtime::spawn or Handle::spawn \
         (in an offloaded job, Handle::current() gives the job's runtime)",
    )
}

/// Spawns a coroutine on worker `worker` of the runtime running the caller: it starts there
/// and stays there (see [`Handle::spawn_on`]).
///
/// ```
/// use coact_runtime::sync::mpmc;
///
/// // A work queue whose consumers use both workers.
/// let rt = coact_runtime::Runtime::builder().workers(2).build().unwrap();
/// let sum = rt.block_on(|| {
///     let (jobs, queue) = mpmc::sync_channel::<u64>(64);
///     let consumers: Vec<_> = (0..4)
///         .map(|i| {
///             let queue = queue.clone();
///             coact_runtime::spawn_on(i % 2, move || queue.iter().map(|n| n * 2).sum::<u64>())
///         })
///         .collect();
///     drop(queue);
///     (1..=1000).for_each(|n| jobs.send(n).unwrap());
///     drop(jobs);
///     consumers.into_iter().map(|c| c.join().unwrap()).sum::<u64>()
/// });
/// assert_eq!(sum, 1000 * 1001);
/// ```
///
/// # Panics
/// Outside a runtime, if there is no worker `worker`, or when the cap on live coroutines is
/// reached (use [`try_spawn_on`] to get the last two as errors).
pub fn spawn_on<F, T>(worker: usize, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    try_spawn_on(worker, f).unwrap_or_else(|e| panic!("{e}"))
}

/// [`spawn_on`], or says why it cannot (no such worker, or the cap on live coroutines).
///
/// # Panics
/// Outside a runtime.
pub fn try_spawn_on<F, T>(worker: usize, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    worker::with_current_shared(|shared| try_spawn_placed(shared, worker, f)).expect(
        "coact: spawn_on called outside a coroutine; use Runtime::spawn_on or Handle::spawn_on",
    )
}

/// [`Handle::try_spawn_on`] on a runtime's shared state.
fn try_spawn_placed<F, T>(shared: &Arc<Shared>, worker: usize, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let workers = shared.remotes.len();
    if worker >= workers {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("coact: cannot spawn on worker {worker}: the runtime has {workers}"),
        ));
    }
    if shared.is_shutting_down() {
        return Err(io::Error::other(
            "coact: cannot spawn: the runtime has ended",
        ));
    }
    stack::reserve(shared.max_stacks)?;
    let (task, cell) = joint(f, Reservation);
    worker::place(shared, worker, Task::Joined(task));
    Ok(JoinHandle { cell })
}

/// [`Handle::try_spawn`] on a runtime's shared state.
pub(crate) fn try_spawn_in<F, T>(shared: &Arc<Shared>, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if shared.is_shutting_down() {
        return Err(io::Error::other(
            "coact: cannot spawn: the runtime has ended",
        ));
    }
    stack::reserve(shared.max_stacks)?;
    let (task, cell) = joint(f, Reservation);
    worker::submit(shared, Task::Joined(task));
    Ok(JoinHandle { cell })
}

/// Starts a runtime with the default settings, runs `f` as its first coroutine and returns its
/// value once `f` returns. Coroutines still alive then are cancelled cleanly (their stacks
/// unwind and destructors run) before `run` returns. A panic in `f` is raised again here.
///
/// ```
/// use coact_runtime::sync::mpsc::sync_channel;
///
/// let sum = coact_runtime::run(|| {
///     let (tx, rx) = sync_channel(1);
///     coact_runtime::spawn(move || for i in 1..=100u32 { tx.send(i).unwrap() });
///     rx.iter().sum::<u32>()
/// });
/// assert_eq!(sum, 5050);
/// ```
///
/// # Panics
/// If the runtime cannot start (no thread can be spawned), or when `f` panics.
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let rt = Runtime::new().unwrap_or_else(|e| panic!("coact: cannot start the runtime: {e}"));
    let r = rt.spawn(f).join();
    drop(rt);
    match r {
        Ok(v) => v,
        Err(p) => resume_unwind(p),
    }
}

/// Lets other runnable coroutines run before the caller continues. On a plain thread it is
/// [`std::thread::yield_now`].
#[inline]
pub fn yield_now() {
    if !fiber::in_fiber() {
        thread::yield_now();
        return;
    }
    if worker::yield_fiber() == Resume::Cancel {
        park::cancelled();
    }
}

/// Whether the caller runs inside a coact coroutine.
#[inline]
pub fn in_coroutine() -> bool {
    fiber::in_fiber()
}

/// Whether the caller is unwinding from a panic: `std::thread::panicking()` for coroutines.
///
/// Coroutines share their worker's thread, and std counts panics per thread: while one
/// coroutine is parked in the middle of unwinding (a destructor that waits for something),
/// `std::thread::panicking()` is true in every other coroutine of that worker too. This
/// answers for the calling coroutine: exactly, unless another coroutine of the worker is
/// parked mid-unwind; then with the caller's own state as of its last blocking call, since a
/// panic begun after that cannot be told from the other's. Outside coroutines it is
/// `std::thread::panicking()`.
///
/// Use it where a wrong `true` does harm: coact's `Mutex` decides poisoning with it, so a
/// guard dropped by a coroutine that is not unwinding does not poison the mutex. Where a wrong
/// `false` would do harm, as in a destructor deciding whether it may panic itself (a panic
/// during unwinding aborts the process), keep `std::thread::panicking()`, which errs the safe
/// way.
///
/// ```
/// coact_runtime::run(|| assert!(!coact_runtime::panicking()));
/// ```
#[inline]
pub fn panicking() -> bool {
    worker::unwinding_now().unwrap_or_else(std::thread::panicking)
}

/// The text of a panic payload, such as the `Err` of [`JoinHandle::join`]: the message of a
/// `panic!` with a string or a format, or a placeholder for any other payload.
///
/// ```
/// let err = coact_runtime::run(|| coact_runtime::spawn(|| panic!("boom {}", 1)).join())
///     .unwrap_err();
/// assert_eq!(coact_runtime::panic_text(&*err), "boom 1");
/// ```
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// The index of the worker thread running the caller, or `None` on other threads.
pub fn current_worker() -> Option<usize> {
    worker::current_index()
}
