//! coact: actors on stackful coroutines.
//!
//! Actor code is plain blocking-style Rust — receive, lock, sleep, wait on several channels —
//! with no `async` colouring, and still runs thousands of coroutines on a few threads. This
//! crate is the facade: it re-exports the layers below it.
//!
//! ```
//! use coact::sync::mpsc::sync_channel;
//!
//! let n = coact::run(|| {
//!     let (tx, rx) = sync_channel(1);
//!     coact::spawn(move || for i in 0..10 { tx.send(i).unwrap() });
//!     rx.iter().count()
//! });
//! assert_eq!(n, 10);
//! ```
//!
//! See [`coact_runtime`] for the guide to runtimes, coroutines, channels, `Mutex` and select.
#![forbid(unsafe_code)]

/// Coroutine-local values: `thread_local!` for coroutines (see [`local`]).
pub use coact_runtime::coroutine_local;
/// `select` is both the module of `Select` and the `select!` macro; `barrier` holds the
/// asymmetric memory barriers the runtime and the actors build on.
pub use coact_runtime::{
    barrier, fs, local, metrics, offload, process, select, signal, sync, time,
};
pub use coact_runtime::{
    current_coroutine, current_worker, in_coroutine, live_coroutines, panic_text, panicking, run,
    scope, set_label, spawn, spawn_detached, spawn_on, try_spawn, try_spawn_on, yield_now, Builder,
    Cancelled, CoroutineId, CoroutineIdSlot, Handle, JoinHandle, Label, Runnable, Runtime, Scope,
    ScopedJoinHandle, Stall, DEFAULT_OFFLOAD_KEEP_ALIVE, DEFAULT_OFFLOAD_THREADS,
    DEFAULT_STACK_SIZE,
};

/// Networking: the coroutine-aware sockets of [`coact_runtime::net`] (`TcpStream`,
/// `TcpListener`, `UdpSocket`...) and distribution from [`coact_net`]: [`Node`](net::Node)s
/// linked over authenticated TCP, and [`RemoteAddr`](net::RemoteAddr)esses of actors on other
/// nodes.
pub mod net {
    pub use coact_net::*;
    pub use coact_runtime::net::*;
}

/// Actors: typed bounded mailboxes, ask, monitors, supervision, a registry and timers.
pub use coact_actor as actor;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
