//! Scoped coroutines: coroutines that borrow from the caller's stack, all joined before
//! [`scope`] returns, as [`std::thread::scope`] does for threads.
//!
//! # Why borrowing is sound here
//!
//! A scoped coroutine's closure borrows data that lives only as long as the `scope` call, but
//! the runtime takes `'static` tasks. The closure is handed over with its lifetime erased
//! (the one `unsafe` block below), which is sound because nothing it borrows can end before
//! the closure, and everything the coroutine keeps of it, has been dropped:
//!
//! * `scope` does not return, nor unwind, before `running` is zero: it waits for that without
//!   taking a cancellation (the runtime ending), since unwinding past the scope while a
//!   coroutine still holds a borrow would free what it borrows.
//! * `running` goes down once per coroutine, when its [`Packet`] is dropped, that is, after both
//!   the coroutine's task and its [`ScopedJoinHandle`] are gone. The task drops the closure
//!   before its reference to the packet (whether it ran the closure or was dropped unstarted
//!   because the runtime ended), and the packet drops the result, which may borrow too, before
//!   it counts itself out.
//! * A coroutine stuck forever (a destructor that never returns when the runtime ends) keeps
//!   the scope waiting forever; the runtime then leaks both stacks instead of freeing them, so
//!   the borrowed data stays where it is.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use crate::park::{self, Unparker};
use crate::runtime::try_spawn_in;
use crate::sync::lock;
use crate::worker::Shared;
use crate::{Cancelled, JoinHandle};

/// Runs `f` with a [`Scope`] on which it can spawn coroutines that borrow from the caller's
/// stack; returns once every one of them has finished.
///
/// Like [`std::thread::scope`]: a coroutine that was not joined and panicked makes `scope`
/// panic once all have finished; a panic in `f` is raised again, also once all have finished.
/// Called in a coroutine, the waits park only that coroutine; on a thread of a runtime's
/// offload pool, they block the thread.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let words = coact_runtime::run(|| {
///     let mut words = vec!["scoped", "coroutines", "borrow"];
///     let total = AtomicUsize::new(0);
///     coact_runtime::scope(|s| {
///         for w in &words {
///             s.spawn(|| total.fetch_add(w.len(), Ordering::Relaxed));
///         }
///     });
///     assert_eq!(total.into_inner(), 22);
///     // Mutable borrows too, one coroutine per element; a handle gives back a value.
///     let longest = coact_runtime::scope(|s| {
///         for w in words.iter_mut() {
///             s.spawn(move || *w = if w.len() > 6 { "long" } else { "short" });
///         }
///         s.spawn(|| "the end").join().unwrap()
///     });
///     assert_eq!(longest, "the end");
///     words
/// });
/// assert_eq!(words, ["short", "long", "short"]);
/// ```
///
/// # Panics
/// Outside a runtime (a plain thread with no runtime has nowhere to run the coroutines), in an
/// alarm's callback (which must not wait), and as said above.
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let shared = crate::worker::current_shared()
        .or_else(crate::offload::current_runtime)
        .expect(
            "coact: scope called outside a runtime; call it in a coroutine (or in a job \
             handed to offload)",
        );
    let scope = Scope {
        data: Arc::new(ScopeData {
            running: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            owner: park::current(),
            shared,
        }),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    scope.data.wait_all();
    match result {
        Err(payload) => resume_unwind(payload),
        Ok(_) if scope.data.panicked.load(Ordering::Relaxed) => {
            panic!("coact: a scoped coroutine panicked")
        }
        Ok(value) => value,
    }
}

/// Spawns coroutines that may borrow anything that outlives the [`scope`] call; see there.
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    /// Invariant in both lifetimes, as std's: a scope cannot be passed off as a shorter or
    /// longer one.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// What a scope shares with its coroutines' packets.
struct ScopeData {
    /// Packets not yet dropped.
    running: AtomicUsize,
    /// A coroutine panicked and nobody joined it.
    panicked: AtomicBool,
    /// The caller of `scope`, woken when `running` reaches zero.
    owner: Unparker,
    shared: Arc<Shared>,
}

impl ScopeData {
    /// Waits until every packet is dropped. Not cancellable: see the module docs.
    fn wait_all(&self) {
        while self.running.load(Ordering::Acquire) != 0 {
            park::park_uncancellable(None);
        }
    }

    /// Counts one packet out; the last wakes the owner (a permit, if it has not parked yet).
    fn packet_dropped(&self, unhandled_panic: bool) {
        if unhandled_panic {
            self.panicked.store(true, Ordering::Relaxed);
        }
        if self.running.fetch_sub(1, Ordering::Release) == 1 {
            self.owner.clone().unpark();
        }
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns a coroutine that may borrow from outside the scope; see [`scope`].
    ///
    /// # Panics
    /// When the cap on live coroutines is reached or the runtime has ended (use
    /// [`try_spawn`](Scope::try_spawn) to get that as an error).
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.try_spawn(f).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Spawns a coroutine that may borrow from outside the scope, or says why it cannot (the
    /// cap on live coroutines is reached, or the runtime has ended).
    pub fn try_spawn<F, T>(&'scope self, f: F) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.data.running.fetch_add(1, Ordering::Relaxed);
        let packet = Arc::new(Packet {
            scope: self.data.clone(),
            result: Mutex::new(None),
            _scope: PhantomData,
        });
        let task = ScopedTask {
            f: Some(f),
            packet: packet.clone(),
        };
        let run: Box<dyn FnOnce() + Send + 'scope> = Box::new(move || task.run());
        // SAFETY: only the lifetime changes (the two types have the same layout). The task
        // borrows nothing past its packet's drop, and the scope outlives every packet: see
        // "Why borrowing is sound here" in the module docs.
        let run: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(run) };
        // On an error the task is dropped here unstarted, which counts its packet out once
        // `packet` goes too.
        let inner = try_spawn_in(&self.data.shared, run)?;
        Ok(ScopedJoinHandle {
            inner,
            packet,
            _scope: PhantomData,
        })
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("running", &self.data.running.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The result of one scoped coroutine, shared by its task and its handle.
struct Packet<'scope, T> {
    scope: Arc<ScopeData>,
    result: Mutex<Option<thread::Result<T>>>,
    _scope: PhantomData<&'scope ()>,
}

impl<T> Drop for Packet<'_, T> {
    fn drop(&mut self) {
        let result = self
            .result
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let unhandled_panic = matches!(result, Some(Err(_)));
        // The result may borrow from the scope: it goes before the scope may end.
        if catch_unwind(AssertUnwindSafe(|| drop(result.take()))).is_err() {
            // Unwinding on from here would skip counting the packet out, and the scope would
            // wait forever; std aborts in the same place.
            eprintln!("coact: the result of a scoped coroutine panicked while being dropped");
            std::process::abort();
        }
        self.scope.packet_dropped(unhandled_panic);
    }
}

/// The task of one scoped coroutine.
struct ScopedTask<'scope, F, T> {
    f: Option<F>,
    packet: Arc<Packet<'scope, T>>,
}

impl<F: FnOnce() -> T, T> ScopedTask<'_, F, T> {
    fn run(mut self) {
        if let Some(f) = self.f.take() {
            let result = catch_unwind(AssertUnwindSafe(f));
            *lock(&self.packet.result) = Some(result);
        }
    }
}

impl<F, T> Drop for ScopedTask<'_, F, T> {
    fn drop(&mut self) {
        // The closure (and what it borrows) first, then the reference to the packet.
        drop(self.f.take());
    }
}

/// Owns the right to wait for a scoped coroutine's result. Dropping it leaves the coroutine
/// to be joined by the scope (so, as with std's, it need not be kept).
pub struct ScopedJoinHandle<'scope, T> {
    inner: JoinHandle<()>,
    packet: Arc<Packet<'scope, T>>,
    _scope: PhantomData<&'scope ()>,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the coroutine to finish and returns its value, or `Err` with the panic
    /// payload if it panicked (a coroutine the runtime's end cancelled, or never started,
    /// gives [`Cancelled`]). A panic taken here does not make the scope panic.
    pub fn join(self) -> thread::Result<T> {
        let _ = self.inner.join();
        let result = lock(&self.packet.result).take();
        result.unwrap_or_else(|| Err(Box::new(Cancelled)))
    }

    /// Whether the coroutine has finished (so `join` would not wait).
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
