//! Thread-blocking calls without stalling a worker: [`offload`].
//!
//! Some calls block their thread and have no coroutine-aware form: file I/O (epoll cannot watch
//! a regular file), a host-name lookup (`getaddrinfo`), a blocking FFI call, a long computation.
//! Made from a coroutine, such a call stalls every other coroutine of its worker, and the
//! worker's sockets, until it returns (the watchdog reports it). [`offload`] runs the closure on
//! a thread of the runtime's offload pool instead, and parks only the calling coroutine until
//! the closure returns.
//!
//! ```
//! use coact_runtime::offload;
//!
//! coact_runtime::run(|| {
//!     let path = std::env::temp_dir().join(format!("coact-offload-{}", std::process::id()));
//!     let p = path.clone();
//!     offload(move || std::fs::write(&p, "hello")).unwrap();
//!     let text = offload(move || std::fs::read_to_string(&path)).unwrap();
//!     assert_eq!(text, "hello");
//! });
//! ```
//!
//! # The pool
//!
//! Each runtime has its own pool, with no thread until the first `offload`. A job that finds no
//! idle thread starts one, up to [`Builder::offload_threads`](crate::Builder::offload_threads)
//! (default [`DEFAULT_OFFLOAD_THREADS`]); past that, jobs wait in order of arrival. A thread
//! left idle for [`Builder::offload_keep_alive`](crate::Builder::offload_keep_alive) (default
//! [`DEFAULT_OFFLOAD_KEEP_ALIVE`]) exits, so a runtime that stops offloading holds no pool
//! threads.
//!
//! Dropping the runtime first ends its coroutines, then waits for every job already accepted,
//! running or queued, to return: nothing handed to the pool is dropped unrun, and what the jobs
//! do (a file written, a record flushed) is done when [`run`](crate::run) returns. A job that
//! never returns therefore keeps the drop waiting: give such calls a timeout of their own, or
//! end the runtime with [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout), and do
//! not offload a job that waits for a coroutine of the same runtime (the runtime's end cancels
//! that coroutine, and the job would wait for good).
//!
//! A job runs on a plain thread, where coact's blocking calls block the thread. It knows its
//! runtime: [`Handle::current`](crate::Handle::current) returns it there, so a job can spawn
//! coroutines (with [`Handle::spawn`](crate::Handle::spawn)) and actors onto it. (The free
//! [`spawn`](crate::spawn()) is for coroutines: it panics on any other thread.)
//!
//! # Panics and cancellation
//!
//! A panic in the closure is caught on the pool thread and raised again in the caller, with
//! its payload. A coroutine whose runtime ends while it waits is cancelled as in any other
//! blocking call (it unwinds at once); its job still runs to its end, and the value is dropped.
//! A coroutine that offloads while it unwinds (from a destructor) waits for the job whatever
//! happens, since it has no way to give up.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use crate::park::{self, Park, Unparker};
use crate::sync::lock;
use crate::worker::{self, Shared};

/// Offload threads a runtime may run at once unless
/// [`Builder::offload_threads`](crate::Builder::offload_threads) says otherwise.
pub const DEFAULT_OFFLOAD_THREADS: usize = 64;

/// How long an idle offload thread waits for a job before it exits, unless
/// [`Builder::offload_keep_alive`](crate::Builder::offload_keep_alive) says otherwise.
pub const DEFAULT_OFFLOAD_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Runs `f` where it may block its thread, and returns its value: on a thread of the
/// runtime's offload pool when called from a coroutine (only the coroutine waits), and right
/// here on a plain thread, which may block anyway. See the [module docs](self).
///
/// # Panics
/// Raises again a panic of `f`, with its payload. A coroutine cancelled while it waits unwinds,
/// as in every blocking call.
pub fn offload<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let pool = if crate::in_coroutine() {
        worker::with_current_shared(|s| s.pool.clone())
    } else {
        None
    };
    let Some(pool) = pool else {
        return f();
    };
    let handoff = Arc::new(Handoff {
        state: Mutex::new(HandoffState {
            result: None,
            waiter: None,
        }),
    });
    let job: Box<dyn Job> = Box::new(Call {
        f: Some(f),
        result: None,
        handoff: handoff.clone(),
    });
    if let Err(mut job) = pool.submit(job) {
        // No pool thread exists and none could be started: better late here than never.
        tracing::warn!(
            target: "coact::offload",
            "coact: could not start an offload thread; running the job on the worker"
        );
        job.run();
        if let Some(w) = job.finish() {
            w.unpark();
        }
    }
    match handoff.wait() {
        Ok(v) => v,
        Err(payload) => resume_unwind(payload),
    }
}

/// A job of the pool, in two steps: `run` does the work (catching the closure's panic) and
/// `finish` hands the result over and returns the waiter to wake. A pool thread finishes a
/// job with the pool's lock held, so that the caller, who often offloads again at once, finds
/// that thread waiting for its next job instead of starting another.
trait Job: Send {
    fn run(&mut self);
    fn finish(self: Box<Self>) -> Option<Unparker>;
}

/// The job `offload` makes of its closure.
struct Call<F, T> {
    f: Option<F>,
    result: Option<thread::Result<T>>,
    handoff: Arc<Handoff<T>>,
}

impl<F, T> Job for Call<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn run(&mut self) {
        if let Some(f) = self.f.take() {
            self.result = Some(catch_unwind(AssertUnwindSafe(f)));
        }
    }

    fn finish(self: Box<Self>) -> Option<Unparker> {
        let Call {
            result, handoff, ..
        } = *self;
        let mut s = lock(&handoff.state);
        s.result = result;
        s.waiter.take()
    }
}

thread_local! {
    /// On a pool thread, its runtime.
    static RUNTIME: RefCell<Weak<Shared>> = const { RefCell::new(Weak::new()) };
}

/// The runtime whose offload pool runs the calling thread, if it is a pool thread and the
/// runtime is alive: a job may spawn onto its runtime, as code on the runtime's workers does.
pub(crate) fn current_runtime() -> Option<Arc<Shared>> {
    RUNTIME.with(|r| r.borrow().upgrade())
}

/// Where a job leaves its result for the coroutine that waits for it.
struct Handoff<T> {
    state: Mutex<HandoffState<T>>,
}

struct HandoffState<T> {
    result: Option<thread::Result<T>>,
    /// The waiting coroutine, published while it is parked (or about to park).
    waiter: Option<Unparker>,
}

impl<T> Handoff<T> {
    /// Parks until the job has left its result. Cancellation ends the wait by unwinding,
    /// unless the coroutine is unwinding already; then it waits on, uncancellably.
    fn wait(&self) -> thread::Result<T> {
        let mut cancellable = true;
        loop {
            {
                let mut s = lock(&self.state);
                if let Some(r) = s.result.take() {
                    return r;
                }
                // Published before the park and re-checked under the lock above: a result
                // left after this point finds the waiter and unparks it (the permit is kept
                // if the park has not begun yet).
                s.waiter = Some(park::current());
            }
            if !cancellable {
                park::park_uncancellable(None);
            } else if park::park(None) == Park::Cancelled {
                lock(&self.state).waiter = None;
                // Unwinds with `Cancelled` unless the coroutine is unwinding already.
                park::cancelled();
                cancellable = false;
            }
        }
    }
}

/// A runtime's offload pool (see the module docs).
pub(crate) struct Pool {
    state: Mutex<PoolState>,
    /// Idle threads wait here for a job, or for the pool to close.
    work: Condvar,
    /// [`Pool::close_and_wait`] waits here for the last thread to exit.
    gone: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    /// The runtime, for its id (in thread names) and for the jobs (see [`current_runtime`]).
    runtime: Weak<Shared>,
}

struct PoolState {
    /// Jobs no thread has taken yet, oldest first.
    queue: VecDeque<Box<dyn Job>>,
    /// Live pool threads.
    threads: usize,
    /// Threads waiting for a job. Each covers one queued job: a job that would leave more
    /// queued jobs than idle threads starts a thread (below the cap).
    idle: usize,
    /// The runtime is gone: threads run what is queued and exit.
    closing: bool,
    /// Threads started so far, for their names.
    started: u64,
}

impl Pool {
    /// A pool with no threads yet.
    pub(crate) fn new(max_threads: usize, keep_alive: Duration, runtime: Weak<Shared>) -> Pool {
        Pool {
            state: Mutex::new(PoolState {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                closing: false,
                started: 0,
            }),
            work: Condvar::new(),
            gone: Condvar::new(),
            max_threads: max_threads.max(1),
            keep_alive,
            runtime,
        }
    }

    /// Queues `job` and makes sure a thread will run it; `Err` gives it back when the pool
    /// has no thread and cannot start one.
    fn submit(self: &Arc<Self>, job: Box<dyn Job>) -> Result<(), Box<dyn Job>> {
        let mut s = lock(&self.state);
        s.queue.push_back(job);
        if s.queue.len() <= s.idle {
            self.work.notify_one();
            return Ok(());
        }
        if s.threads >= self.max_threads {
            // Every thread is busy: the job waits for the first one done.
            return Ok(());
        }
        // Started under the lock, so that a failure can take back the job just queued (it is
        // still last: nobody else can queue or take while the lock is held).
        match self.start_thread(s.started) {
            Ok(()) => {
                s.threads += 1;
                s.started += 1;
                Ok(())
            }
            Err(e) if s.threads == 0 => {
                tracing::warn!(target: "coact::offload", "coact: offload thread: {e}");
                Err(s.queue.pop_back().expect("queued above"))
            }
            // The threads there are will get to it.
            Err(e) => {
                tracing::warn!(target: "coact::offload", "coact: offload thread: {e}");
                Ok(())
            }
        }
    }

    fn start_thread(self: &Arc<Self>, n: u64) -> io::Result<()> {
        let pool = self.clone();
        let id = self.runtime.upgrade().map_or(0, |s| s.id);
        thread::Builder::new()
            .name(format!("coact-offload-{id}-{n}"))
            .spawn(move || {
                RUNTIME.with(|r| *r.borrow_mut() = pool.runtime.clone());
                pool.serve()
            })
            .map(drop)
    }

    /// A pool thread's life: run queued jobs, wait for more, exit when idle too long or when
    /// the pool closes with nothing left to run.
    fn serve(&self) {
        let mut s = lock(&self.state);
        loop {
            if let Some(mut job) = s.queue.pop_front() {
                drop(s);
                // `run` catches the closure's panic itself; this keeps the thread (and its
                // place in the count that the runtime's drop waits on) safe from anything else.
                let ran = catch_unwind(AssertUnwindSafe(|| job.run())).is_ok();
                s = lock(&self.state);
                // Finished under the pool's lock (see `Job`): the caller can see the result
                // only once this thread is back in its loop, where it takes the next job.
                if ran {
                    if let Some(w) = job.finish() {
                        w.unpark();
                    }
                }
                continue;
            }
            if s.closing {
                break;
            }
            s.idle += 1;
            let (g, waited) = self
                .work
                .wait_timeout(s, self.keep_alive)
                .unwrap_or_else(PoisonError::into_inner);
            s = g;
            s.idle -= 1;
            if waited.timed_out() && s.queue.is_empty() && !s.closing {
                break;
            }
        }
        s.threads -= 1;
        if s.threads == 0 {
            self.gone.notify_all();
        }
    }

    /// Tells the threads that the runtime is gone: they run what is queued, then exit.
    pub(crate) fn close(&self) {
        lock(&self.state).closing = true;
        self.work.notify_all();
    }

    /// Closes the pool and waits until every accepted job has run and every thread is gone,
    /// or until `until` (`None`: for good). Returns whether they had.
    pub(crate) fn close_and_wait(&self, until: Option<Instant>) -> bool {
        self.close();
        let mut s = lock(&self.state);
        while s.threads > 0 {
            s = match until {
                None => self.gone.wait(s).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    self.gone
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        true
    }

    /// Live pool threads.
    pub(crate) fn threads(&self) -> usize {
        lock(&self.state).threads
    }
}
