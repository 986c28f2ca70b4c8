//! A snapshot of a runtime's load: per worker, the stacks in use, the tasks waiting to start,
//! the alarms set, whether a coroutine runs now, and counts of scheduler turns, idle sleeps
//! and steals. For logs, dashboards and tests; reading it touches no worker's hot path (each
//! worker publishes its figures with plain stores as it goes).
//!
//! ```
//! let rt = coact_runtime::Runtime::builder().workers(2).build()?;
//! let m = rt.block_on(|| coact_runtime::Handle::current().unwrap().metrics());
//! assert_eq!(m.workers.len(), 2);
//! // The coroutine that took the snapshot was running, on a stack of its worker's.
//! assert!(m.workers.iter().any(|w| w.running && w.stacks >= 1));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::sync::atomic::Ordering;

use crate::worker::Shared;

/// A runtime's figures at one moment; see [`Handle::metrics`](crate::Handle::metrics). Each
/// figure is read on its own, so they are not exactly simultaneous.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Metrics {
    /// One entry per worker, by index (as [`current_worker`](crate::current_worker) numbers
    /// them).
    pub workers: Vec<WorkerMetrics>,
    /// Tasks spawned from outside the workers that no worker has taken yet.
    pub injected_tasks: usize,
    /// Coroutines alive in the process, over all runtimes (see
    /// [`live_coroutines`](crate::live_coroutines)).
    pub live_coroutines: usize,
}

/// One worker's figures; see [`Metrics`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Coroutine stacks in use on this worker: its started coroutines, running, runnable or
    /// parked, and at most one more kept suspended to start the next task on.
    pub stacks: usize,
    /// Tasks spawned here and not started yet, which idle peers may steal (the task spawned
    /// last, which only this worker starts, is not counted).
    pub queued_tasks: usize,
    /// [Alarms](crate::time::alarm) set on this worker, including cancelled ones whose entries
    /// have not been swept yet.
    pub alarms: usize,
    /// Whether a coroutine runs on the worker at this moment.
    pub running: bool,
    /// Scheduler turns so far (each runs up to a few dozen coroutines, then looks at sockets
    /// and timers).
    pub turns: u64,
    /// Turns that ended with the worker waiting for work: a count of the times it went idle.
    pub sleeps: u64,
    /// Times it took tasks that were waiting at a busy peer.
    pub steals: u64,
}

/// Reads the figures of `shared`'s workers.
pub(crate) fn snapshot(shared: &Shared) -> Metrics {
    let workers = shared
        .remotes
        .iter()
        .map(|r| WorkerMetrics {
            stacks: r.stats.stacks.load(Ordering::Relaxed),
            queued_tasks: r.queued_tasks(),
            alarms: r.stats.alarms.load(Ordering::Relaxed),
            running: r.progress.load(Ordering::Relaxed) % 2 == 1,
            turns: r.stats.turns.load(Ordering::Relaxed),
            sleeps: r.stats.sleeps.load(Ordering::Relaxed),
            steals: r.stats.steals.load(Ordering::Relaxed),
        })
        .collect();
    Metrics {
        workers,
        injected_tasks: shared.injected_len(),
        live_coroutines: crate::live_coroutines(),
    }
}
