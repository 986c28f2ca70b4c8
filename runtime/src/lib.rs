//! The coroutine runtime under coact.
//!
//! Code runs in *coroutines*: stackful fibers that look like threads (plain blocking calls,
//! no `async`) but cost a few hundred bytes of bookkeeping and a pooled stack. A blocking call
//! made in a coroutine — receiving from a channel, taking a lock, sleeping, joining — parks
//! only that coroutine; its worker thread runs others meanwhile, and sleeps in its I/O poll
//! only when none is runnable.
//!
//! # A first program
//!
//! ```
//! use coact_runtime::sync::mpsc::sync_channel;
//!
//! let total = coact_runtime::run(|| {
//!     let (tx, rx) = sync_channel(1); // room for one message: the producer waits for the consumer
//!     let producer = coact_runtime::spawn(move || {
//!         for i in 0..1_000u64 {
//!             tx.send(i).unwrap();
//!         }
//!     });
//!     let sum: u64 = rx.iter().sum(); // ends when the producer drops `tx`
//!     producer.join().unwrap();
//!     sum
//! });
//! assert_eq!(total, 499_500);
//! ```
//!
//! # Runtimes and workers
//!
//! [`run`] starts a runtime with one worker thread per core, runs its closure as the first
//! coroutine and ends the runtime when it returns; coroutines still alive then are cancelled:
//! their stacks unwind, so their destructors run. [`Runtime::builder`] sets the number of
//! workers and the stack size. [`spawn`] starts a coroutine on the caller's runtime; a
//! [`JoinHandle`] gives its result, or the payload of its panic:
//!
//! ```
//! let rt = coact_runtime::Runtime::builder().workers(2).build()?;
//! let h = rt.spawn(|| -> u32 { panic!("boom") });
//! let err = h.join().unwrap_err(); // a panic is reported, never fatal to the runtime
//! assert_eq!(err.downcast_ref::<&str>(), Some(&"boom"));
//! assert_eq!(rt.block_on(|| 1 + 1), 2);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`scope`] spawns coroutines that borrow from the caller's stack, all joined before it
//! returns, as [`std::thread::scope`] does for threads:
//!
//! ```
//! let mut squares = [1u64, 2, 3, 4];
//! coact_runtime::run(move || {
//!     coact_runtime::scope(|s| {
//!         for x in squares.iter_mut() {
//!             s.spawn(move || *x *= *x);
//!         }
//!     });
//!     assert_eq!(squares, [1, 4, 9, 16]);
//! });
//! ```
//!
//! A started coroutine stays on the worker that started it (a suspended stack must not move
//! between threads), so spawns are balanced instead: a worker with unstarted coroutines
//! waiting wakes an idle peer, which steals half of them once they have waited 100 µs (a
//! burst of short coroutines is cheaper to run where it was spawned than to move). Coroutines
//! that start at once and live long (a pool of consumers) all start where they were spawned;
//! [`spawn_on`] places each on a worker of your choice.
//!
//! # Blocking calls, in and out of coroutines
//!
//! [`sync::mpsc`] (with [`sync::mpmc`], whose receivers clone, and [`sync::broadcast`],
//! where every receiver gets every message), [`sync::Mutex`], [`sync::Condvar`], [`sync::RwLock`], [`sync::Barrier`],
//! [`sync::Once`], [`sync::OnceLock`] and [`sync::LazyLock`] mirror std's and work from coroutines and from
//! plain threads at once, as do [`sync::oneshot`], a channel for one value (a reply), and
//! [`sync::Semaphore`], which lets at most N holders in at a time;
//! [`select::Select`] and [`select!`] wait on several channels; [`time::sleep`] parks a
//! coroutine. From a plain thread each of them blocks the thread, as std's would.
//! [`time::alarm`] runs a callback at a deadline on the worker itself, holding no coroutine
//! while it waits: the way to keep thousands of timers.
//!
//! ```
//! use std::time::Duration;
//! use coact_runtime::sync::mpsc::{channel, RecvTimeoutError};
//!
//! coact_runtime::run(|| {
//!     let (tx, rx) = channel::<()>();
//!     assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Err(RecvTimeoutError::Timeout));
//!     drop(tx);
//!     assert_eq!(rx.recv(), Err(std::sync::mpsc::RecvError));
//! });
//! ```
//!
//! [`signal::Signals`] receives Unix signals the same way: a server's main coroutine parks in
//! `recv` until `SIGTERM` or `SIGINT` arrives, then shuts down in order. [`process::Command`]
//! starts child processes whose waits and pipes park only the calling coroutine.
//!
//! Scheduling is cooperative: a coroutine gives up its worker when it blocks. One whose
//! blocking calls never have to block (a receiver whose messages are always there, a select
//! over channels that stay ready) still yields every 128 such calls, so the other coroutines
//! of its worker, its timers and its sockets get their turn; the socket calls do the same
//! every 32. A long computation with no blocking call in it holds its worker until it
//! returns: call [`yield_now`] in its loop, or hand it to [`offload()`].
//!
//! # What not to do in a coroutine
//!
//! Calls that block the OS thread (`std::sync::Mutex::lock` under contention, std's `Condvar`
//! waits, `std::thread::sleep`, blocking file or DNS I/O) stall every coroutine of that worker.
//! Use this crate's versions: [`fs`] runs std's file calls on the runtime's pool of threads
//! while only the calling coroutine waits, and [`net`]'s sockets look host names up there
//! themselves; for a call that has none (a blocking FFI call, a long computation),
//! [`offload()`] runs any closure there. The watchdog reports a worker stalled anyway, with the
//! [`Label`] its coroutine gave itself. A stack overflow aborts the process with a message
//! naming it; give coroutines that recurse deeply a bigger [`Builder::stack_size`].
//! A `thread_local!` value is shared by every coroutine of a worker;
//! [`coroutine_local!`] declares values that belong to one coroutine instead.
//! `std::thread::panicking()` belongs to the worker thread: another coroutine parked
//! mid-unwind on that worker raises it for all of them; [`panicking()`] answers for the
//! calling coroutine (see its caveat).
//!
//! # Logs
//!
//! The runtime prints nothing. What it has to report goes out as
//! [`tracing`](https://docs.rs/tracing) events: the watchdog's stall warnings (target
//! `coact::watchdog`; [`Builder::on_stall`] takes them instead), and, target `coact`, running
//! out of coroutine stacks and coroutines still stuck in destructors when a runtime ends;
//! target `coact::offload`, an offload thread that could not be started.
//! Install a `tracing` subscriber to see them. (A stack overflow is the exception: it aborts
//! the process with a message on stderr, since nothing else can run at that point.)

mod addr;
mod alarm;
pub mod barrier;
mod fiber;
pub mod fs;
mod join;
mod label;
pub mod local;
pub mod metrics;
pub mod net;
pub mod offload;
mod park;
pub mod process;
mod reactor;
mod runtime;
mod scope;
pub mod select;
pub mod signal;
mod stack;
pub mod sync;
mod tasks;
pub mod time;
mod watchdog;
mod worker;

pub use label::{set_label, Label};
pub use offload::{offload, DEFAULT_OFFLOAD_KEEP_ALIVE, DEFAULT_OFFLOAD_THREADS};
pub use park::Cancelled;
pub use runtime::{
    current_coroutine, current_worker, in_coroutine, panic_text, panicking, run, spawn,
    spawn_detached, spawn_on, try_spawn, try_spawn_on, yield_now, Builder, CoroutineId,
    CoroutineIdSlot, Handle, JoinHandle, Runnable, Runtime, DEFAULT_STACK_SIZE,
};
pub use scope::{scope, Scope, ScopedJoinHandle};
pub use stack::live_coroutines;
pub use watchdog::Stall;
