//! Helpers shared by the integration tests in `tests/*.rs` (a module, not a test crate).
//!
//! - [`on_workers`] runs a closure as the first coroutine of a fresh runtime with `n` workers and
//!   drops the runtime afterwards, all under a watchdog.
//! - [`bounded`] runs any test body on its own thread and turns a hang (a lost wake-up, a deadlock)
//!   into a named test failure after a generous limit instead of a stuck `cargo test`.
//! - [`DropCounter`] counts destructors, so tests can assert exact drop counts.
//! - [`TempDir`] is a directory of a test's own, removed when dropped.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// The worker counts most tests are repeated on.
pub const WORKER_COUNTS: [usize; 3] = [1, 2, 4];

/// How long a single test body may take before the watchdog calls it hung. Far above what a
/// correct runtime needs, even in debug mode on 2 busy cores.
pub const LIMIT: Duration = Duration::from_secs(120);

/// Builds a runtime with `workers` worker threads.
pub fn runtime(workers: usize) -> coact::Runtime {
    coact::Runtime::builder()
        .workers(workers)
        .build()
        .expect("building a coact runtime")
}

/// Builds a runtime with `n` workers, runs `f` as its first coroutine, drops the runtime and
/// returns `f`'s value. Fails the test if this takes longer than [`LIMIT`].
pub fn on_workers<F, T>(n: usize, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    on_workers_within(n, LIMIT, f)
}

/// [`on_workers`] with an explicit watchdog limit.
pub fn on_workers_within<F, T>(n: usize, limit: Duration, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    with_runtime(n, limit, move |rt| rt.block_on(f))
}

/// Runs `body` with a fresh runtime of `n` workers, dropped afterwards, under the watchdog.
fn with_runtime<B, T>(n: usize, limit: Duration, body: B) -> T
where
    B: FnOnce(&coact::Runtime) -> T + Send + 'static,
    T: Send + 'static,
{
    let name = format!("{} [workers={n}]", current_name());
    bounded_named(name, limit, move || {
        let rt = runtime(n);
        let value = body(&rt);
        drop(rt);
        value
    })
}

/// Like [`on_workers`], but says whether `f` panicked (its panic reached `block_on`'s caller)
/// instead of re-raising it; the runtime is dropped either way.
pub fn panics_on_workers<F, T>(n: usize, f: F) -> bool
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    with_runtime(n, LIMIT, move |rt| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(f))).is_err()
    })
}

/// Runs `f` on a fresh thread and returns its value; re-raises its panic; fails if `f` has not
/// finished within [`LIMIT`] (the stuck thread is left behind and dies with the test process).
pub fn bounded<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    bounded_named(current_name(), LIMIT, f)
}

/// [`bounded`] with an explicit limit.
pub fn bounded_within<F, T>(limit: Duration, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    bounded_named(current_name(), limit, f)
}

fn bounded_named<F, T>(name: String, limit: Duration, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let body = thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let value = f();
            let _ = done_tx.send(());
            value
        })
        .expect("spawning the test body thread");
    match done_rx.recv_timeout(limit) {
        // Finished (Ok) or panicked (Disconnected): either way the thread is ending, join it.
        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match body.join() {
            Ok(value) => value,
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("`{name}` did not finish within {limit:?}: a hang (lost wake-up or deadlock?)")
        }
    }
}

fn current_name() -> String {
    thread::current().name().unwrap_or("test").to_string()
}

/// Increments its counter when dropped.
pub struct DropCounter(pub Arc<AtomicUsize>);

impl DropCounter {
    pub fn new(counter: &Arc<AtomicUsize>) -> Self {
        DropCounter(Arc::clone(counter))
    }
}

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A small deterministic permutation of `0..n` (no `rand` dependency needed).
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x = seed | 1;
    for i in (1..n).rev() {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// Burns a little CPU in a way the optimiser cannot remove.
pub fn spin_work(rounds: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..rounds {
        acc = std::hint::black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    acc
}

/// Spawns on `rt` a coroutine that runs `first`, then parks in a `recv` that only the
/// runtime's end can interrupt, holding what `first` returned (a guard, say) meanwhile;
/// returns once the coroutine has run `first`. For tests of what a cancellation unwinds.
pub fn park_until_runtime_ends<G: 'static>(
    rt: &coact::Runtime,
    first: impl FnOnce() -> G + Send + 'static,
) {
    let (started_tx, started) = coact::sync::mpsc::channel::<()>();
    // Detached: its `JoinHandle` would wait for it, and it waits for the runtime's end.
    let _ = rt.spawn(move || {
        let _held = first();
        let (_keep_open, never) = coact::sync::mpsc::channel::<()>();
        started_tx.send(()).unwrap();
        let _ = never.recv();
    });
    started
        .recv_timeout(Duration::from_secs(30))
        .expect("the coroutine started");
}

/// A directory of one test's own under the system's temporary directory (named after
/// `prefix`, the process and a counter); removed with what it holds when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("coact-{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
