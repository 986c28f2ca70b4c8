//! Coroutine-local storage: [`coroutine_local!`](crate::coroutine_local) is `thread_local!`
//! for coroutines.
//!
//! Coroutines share their worker's thread, so a `thread_local!` value is shared by every
//! coroutine of that worker, and a value set before a blocking call may be another
//! coroutine's by the time the call returns. A coroutine-local value belongs to one
//! coroutine: made on its first use there, dropped when the coroutine ends (in the coroutine,
//! before a [`JoinHandle::join`](crate::JoinHandle::join) of it returns).
//!
//! ```
//! use std::cell::Cell;
//!
//! coact_runtime::coroutine_local! {
//!     /// The id of the request this coroutine serves, for its log lines.
//!     static REQUEST: Cell<u32> = Cell::new(0);
//! }
//!
//! coact_runtime::run(|| {
//!     let handles: Vec<_> = (1..=3)
//!         .map(|id| {
//!             coact_runtime::spawn(move || {
//!                 REQUEST.with(|r| r.set(id));
//!                 coact_runtime::yield_now(); // the others run and set theirs meanwhile
//!                 REQUEST.with(|r| r.get())
//!             })
//!         })
//!         .collect();
//!     let seen: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
//!     assert_eq!(seen, [1, 2, 3]);
//!     REQUEST.with(|r| assert_eq!(r.get(), 0)); // this coroutine's own, untouched
//! });
//! ```
//!
//! On a plain thread (outside any coroutine) the value is that thread's, as with
//! `thread_local!`. Values need not be `Send`: a coroutine never changes threads.
//!
//! An actor's turns are coroutines of their own (an idle actor holds no coroutine), so an
//! actor's coroutine-local values last one turn; keep what must last in the actor.

use std::cell::OnceCell;
use std::fmt;

use crate::worker;

/// A key to a coroutine-local value, declared with
/// [`coroutine_local!`](crate::coroutine_local); see the [module docs](self).
pub struct CoroutineLocal<T: 'static> {
    init: fn() -> T,
    /// The value of a plain thread, which has no coroutine.
    on_thread: &'static std::thread::LocalKey<OnceCell<T>>,
}

impl<T: 'static> CoroutineLocal<T> {
    /// Made by [`coroutine_local!`](crate::coroutine_local). Not public API.
    #[doc(hidden)]
    pub const fn __new(
        init: fn() -> T,
        on_thread: &'static std::thread::LocalKey<OnceCell<T>>,
    ) -> Self {
        CoroutineLocal { init, on_thread }
    }

    /// Calls `f` with the calling coroutine's value, made first if this is its first use
    /// there (on a plain thread: with the thread's value).
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let key = self as *const Self as usize;
        match worker::fiber_local(key, &|| Box::new((self.init)())) {
            Some(value) => {
                // SAFETY: the value is boxed in the running coroutine's own list, which keeps
                // it, unmoved, until that coroutine's task has ended; this call is made by the
                // task, so the value outlives it.
                let value = unsafe { &*value };
                f(value
                    .downcast_ref::<T>()
                    .expect("coact: a coroutine-local value of another type under this key"))
            }
            None => self.on_thread.with(|cell| f(cell.get_or_init(self.init))),
        }
    }
}

impl<T: 'static> fmt::Debug for CoroutineLocal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoroutineLocal").finish_non_exhaustive()
    }
}

/// Declares coroutine-local values, as `thread_local!` declares thread-local ones: each
/// coroutine that uses one gets its own, made by the initializer on first use and dropped when
/// the coroutine ends. See the [`local`](crate::local) module.
///
/// ```
/// use std::cell::RefCell;
///
/// coact_runtime::coroutine_local! {
///     static TRAIL: RefCell<Vec<&'static str>> = RefCell::new(Vec::new());
///     pub static DEPTH: std::cell::Cell<u8> = std::cell::Cell::new(0);
/// }
///
/// coact_runtime::run(|| {
///     TRAIL.with(|t| t.borrow_mut().push("main"));
///     let other = coact_runtime::spawn(|| TRAIL.with(|t| t.borrow().len())).join().unwrap();
///     assert_eq!(other, 0);
///     assert_eq!(TRAIL.with(|t| t.borrow().clone()), ["main"]);
/// });
/// ```
#[macro_export]
macro_rules! coroutine_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $crate::__coroutine_local_inner!($(#[$attr])* $vis $name, $t, $init);
        $crate::coroutine_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $crate::__coroutine_local_inner!($(#[$attr])* $vis $name, $t, $init);
    };
}

/// One declaration of [`coroutine_local!`](crate::coroutine_local). Not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __coroutine_local_inner {
    ($(#[$attr:meta])* $vis:vis $name:ident, $t:ty, $init:expr) => {
        $(#[$attr])*
        $vis static $name: $crate::local::CoroutineLocal<$t> = {
            fn __coact_init() -> $t {
                $init
            }
            ::std::thread_local! {
                static __COACT_ON_THREAD: ::std::cell::OnceCell<$t> =
                    const { ::std::cell::OnceCell::new() };
            }
            $crate::local::CoroutineLocal::__new(__coact_init, &__COACT_ON_THREAD)
        };
    };
}
