//! One-time initialisation with `std::sync::Once`'s, `OnceLock`'s and `LazyLock`'s API, for
//! coroutines and plain threads at once.
//!
//! std's versions make every other caller wait for a running initialiser by blocking its
//! thread. In a coroutine that is a deadlock as soon as the initialiser parks (reads from a
//! channel, sleeps, waits on a socket): a second coroutine of the same worker that touches the
//! cell blocks the worker thread, and the first can never be resumed to finish. Here the
//! initialisers are serialised by a coact [`Mutex`], so the others park instead.
//!
//! The value itself lives in a std `OnceLock`, which is only ever written under that mutex (so
//! its own wait never happens) and read without any lock once set.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sync::{Condvar, Mutex};

/// Runs one closure once, however many callers ask; see the module docs.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use coact_runtime::sync::Once;
///
/// static SETUP: Once = Once::new();
/// static RUNS: AtomicUsize = AtomicUsize::new(0);
///
/// coact_runtime::run(|| {
///     let hs: Vec<_> = (0..4)
///         .map(|_| {
///             coact_runtime::spawn(|| {
///                 SETUP.call_once(|| {
///                     coact_runtime::yield_now(); // the others park until this returns
///                     RUNS.fetch_add(1, Ordering::SeqCst);
///                 })
///             })
///         })
///         .collect();
///     hs.into_iter().for_each(|h| h.join().unwrap());
/// });
/// assert!(SETUP.is_completed());
/// assert_eq!(RUNS.load(Ordering::SeqCst), 1);
/// ```
pub struct Once {
    done: AtomicBool,
    /// A closure panicked (or its coroutine was cancelled) before the first one completed.
    poisoned: AtomicBool,
    /// Held while a closure runs.
    run: Mutex<()>,
    /// Notified when a closure completes or panics, for [`Once::wait`].
    ended: Condvar,
}

/// What [`Once::call_once_force`] tells its closure.
#[derive(Debug)]
pub struct OnceState {
    poisoned: bool,
}

impl OnceState {
    /// Whether an earlier closure of this `Once` panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

impl Once {
    /// A `Once` whose closure has not run.
    pub const fn new() -> Once {
        Once {
            done: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            run: Mutex::new(()),
            ended: Condvar::new(),
        }
    }

    /// Runs `f` if no closure of this `Once` has completed yet; returns once one has (another
    /// caller's running meanwhile is waited for: the coroutine parks, a thread blocks).
    ///
    /// # Panics
    /// If an earlier closure panicked (the `Once` is poisoned), as std's does.
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if !self.is_completed() {
            self.call(false, |_| f());
        }
    }

    /// Like [`call_once`](Once::call_once), but runs `f` even if the `Once` is poisoned (it is
    /// told so); completing clears the poison.
    pub fn call_once_force<F: FnOnce(&OnceState)>(&self, f: F) {
        if !self.is_completed() {
            self.call(true, f);
        }
    }

    /// Whether a closure has completed.
    pub fn is_completed(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Waits (parking a coroutine, blocking a thread) until a closure has completed, without
    /// running one.
    ///
    /// # Panics
    /// If the `Once` is poisoned, or becomes so while this waits.
    pub fn wait(&self) {
        self.wait_inner(false);
    }

    /// Like [`wait`](Once::wait), but also returns when the `Once` is poisoned.
    pub fn wait_force(&self) {
        self.wait_inner(true);
    }

    fn wait_inner(&self, force: bool) {
        if self.is_completed() {
            return;
        }
        let mut run = self.run.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.is_completed() {
                return;
            }
            if self.poisoned.load(Ordering::Relaxed) {
                if force {
                    return;
                }
                panic!("coact: Once instance has previously been poisoned");
            }
            run = self.ended.wait(run).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn call(&self, force: bool, f: impl FnOnce(&OnceState)) {
        // The mutex's own poison is ours to judge, by `poisoned`.
        let _run = self.run.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_completed() {
            return;
        }
        let poisoned = self.poisoned.load(Ordering::Relaxed);
        if poisoned && !force {
            panic!("coact: Once instance has previously been poisoned");
        }
        /// Poisons the `Once` if the closure does not return, and tells the waiters.
        struct Unwinding<'a>(&'a Once);
        impl Drop for Unwinding<'_> {
            fn drop(&mut self) {
                self.0.poisoned.store(true, Ordering::Relaxed);
                self.0.ended.notify_all();
            }
        }
        let unwinding = Unwinding(self);
        f(&OnceState { poisoned });
        std::mem::forget(unwinding);
        self.poisoned.store(false, Ordering::Relaxed);
        self.done.store(true, Ordering::Release);
        self.ended.notify_all();
    }
}

impl Default for Once {
    fn default() -> Once {
        Once::new()
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once")
            .field("completed", &self.is_completed())
            .finish_non_exhaustive()
    }
}

/// A cell written at most once; see the module docs.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use coact_runtime::sync::OnceLock;
///
/// let config: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
/// coact_runtime::run({
///     let config = config.clone();
///     move || {
///         let readers: Vec<_> = (0..3)
///             .map(|_| {
///                 let config = config.clone();
///                 coact_runtime::spawn(move || {
///                     config
///                         .get_or_init(|| {
///                             // Parks: the other readers park too, waiting for this one.
///                             coact_runtime::time::sleep(Duration::from_millis(10));
///                             String::from("loaded")
///                         })
///                         .len()
///                 })
///             })
///             .collect();
///         assert!(readers.into_iter().all(|r| r.join().unwrap() == 6));
///     }
/// });
/// assert_eq!(config.get().map(String::as_str), Some("loaded"));
/// ```
pub struct OnceLock<T> {
    value: std::sync::OnceLock<T>,
    /// Held while an initialiser runs or a value is set.
    init: Mutex<()>,
}

impl<T> OnceLock<T> {
    /// An empty cell.
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            value: std::sync::OnceLock::new(),
            init: Mutex::new(()),
        }
    }

    /// The value, if set; never waits.
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// The value, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.value.get_mut()
    }

    /// Sets the value if the cell is empty; otherwise gives `value` back. Parks while an
    /// initialiser runs.
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("taken only here"));
        match value {
            None => Ok(()),
            Some(v) => Err(v),
        }
    }

    /// The value, running `f` to set it if the cell is empty. Another caller's initialiser
    /// running meanwhile is waited for (parking a coroutine, blocking a thread), and only one
    /// initialiser runs at a time. If `f` panics, the panic goes to this caller and the cell
    /// stays empty for the next one.
    ///
    /// Calling it from inside `f` on the same cell deadlocks, as with std.
    pub fn get_or_init<F>(&self, f: F) -> &T
    where
        F: FnOnce() -> T,
    {
        if let Some(v) = self.value.get() {
            return v;
        }
        // Poison means an earlier initialiser panicked: the cell is still empty, which is all
        // the lock protects, so carry on.
        let _init = self.init.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = self.value.get() {
            return v;
        }
        let v = f();
        // Written only under `init`, so std's cell never waits here.
        self.value.get_or_init(|| v)
    }

    /// The value, consuming the cell.
    pub fn into_inner(self) -> Option<T> {
        self.value.into_inner()
    }

    /// Takes the value out, leaving the cell empty.
    pub fn take(&mut self) -> Option<T> {
        self.value.take()
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T> From<T> for OnceLock<T> {
    fn from(value: T) -> OnceLock<T> {
        OnceLock {
            value: std::sync::OnceLock::from(value),
            init: Mutex::new(()),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

/// A value computed on first use by `F`; see the module docs.
///
/// ```
/// use coact_runtime::sync::LazyLock;
///
/// static TABLE: LazyLock<Vec<u64>> = LazyLock::new(|| (0..10).map(|i| i * i).collect());
///
/// let sum = coact_runtime::run(|| {
///     let hs: Vec<_> = (0..4).map(|_| coact_runtime::spawn(|| TABLE[9])).collect();
///     hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
/// });
/// assert_eq!(sum, 4 * 81);
/// ```
pub struct LazyLock<T, F = fn() -> T> {
    cell: OnceLock<T>,
    /// Taken by the one initialisation; gone for good if it panicked (the lock is poisoned
    /// then, as std's is).
    init: Mutex<Option<F>>,
}

impl<T, F: FnOnce() -> T> LazyLock<T, F> {
    /// A lazy value that `f` computes on first use.
    pub const fn new(f: F) -> LazyLock<T, F> {
        LazyLock {
            cell: OnceLock::new(),
            init: Mutex::new(Some(f)),
        }
    }

    /// The value, computing it first if needed (see [`OnceLock::get_or_init`] for who waits).
    ///
    /// # Panics
    /// If the initialiser panicked, in that call and in every later one.
    pub fn force(this: &LazyLock<T, F>) -> &T {
        this.cell.get_or_init(|| {
            let f = this
                .init
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .expect("coact: LazyLock instance has previously been poisoned");
            f()
        })
    }
}

impl<T, F: FnOnce() -> T> std::ops::Deref for LazyLock<T, F> {
    type Target = T;
    fn deref(&self) -> &T {
        LazyLock::force(self)
    }
}

impl<T: fmt::Debug, F> fmt::Debug for LazyLock<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("LazyLock");
        match self.cell.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

impl<T: Default> Default for LazyLock<T> {
    fn default() -> LazyLock<T> {
        LazyLock::new(T::default)
    }
}
