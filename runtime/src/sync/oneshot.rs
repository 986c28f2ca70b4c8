//! A channel for exactly one value: the reply to one request.
//!
//! [`channel`] gives a [`Sender`] and a [`Receiver`]. [`Sender::send`] consumes the sender and
//! never blocks; the receiver waits for the value, or learns that none will come once every
//! sender is dropped unsent. An actor's `ask` uses one for its reply. It costs one small
//! allocation and, on its common path, one lock hold on each side: less than a
//! [`sync_channel(1)`](super::mpsc::sync_channel), whose buffer, sender queue and selector
//! registrations a single value never needs. It takes no part in
//! [`Select`](crate::select::Select).
//!
//! Blocking calls park the calling coroutine, or block the calling thread outside coact, as
//! [`mpsc`](super::mpsc)'s do; the error types are `std::sync::mpsc`'s.
//!
//! ```
//! use std::time::Duration;
//! use coact_runtime::sync::oneshot;
//!
//! coact_runtime::run(|| {
//!     let (tx, rx) = oneshot::channel();
//!     let answerer = coact_runtime::spawn(move || tx.send(6 * 7).unwrap());
//!     assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(42));
//!     answerer.join().unwrap();
//!     // The one value has been taken, and its sender is gone.
//!     assert!(rx.recv().is_err());
//! });
//! ```
//!
//! # How it works
//!
//! A [`FastLock`] guards who is left (the sender count, whether the receiver lives) and the
//! receiver's waiter while it waits. The value sits beside the lock with an atomic `done`
//! flag: whoever ends the exchange (the send, or the drop of the last sender) fills the value
//! or leaves it empty, takes the waiter and wakes it, and sets `done` last, all in one lock
//! hold. A receiver that sees `done` owns the value without taking the lock, so a woken
//! receiver, and a `try_recv`, read it lock-free. A waiting receiver withdraws its waiter under
//! the lock on every other way out (timeout, cancellation, unwinding), so a waker only ever
//! wakes a receiver still in its wait (the rule a fiber's waiter record asks for).

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};

use crate::park::{self, Park, Unparker, Waiter};
use crate::sync::FastLock;

/// Who is left, and who waits; behind the lock.
struct State {
    /// Live senders, counted until the exchange is over (then nobody needs the count).
    senders: usize,
    /// Whether the receiver lives.
    receiver: bool,
    /// The receiver, while it waits.
    waiter: Option<Waiter>,
}

/// What both ends share.
struct Inner<T> {
    state: FastLock<State>,
    /// The value. Written only under the lock while `done` is false; once `done` is set, only
    /// the receiver touches it.
    value: UnsafeCell<Option<T>>,
    /// The exchange is over: the value is in (or was taken), or every sender is gone.
    done: AtomicBool,
}

// SAFETY: `value` is written by a sender only under the lock and before `done`, and read or
// taken by the one receiver (which is not `Sync`) only after seeing `done`, or under the lock:
// the ends share nothing but a `T` moved between them, and the rest is behind the lock.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Inner<T> {}

impl<T> Inner<T> {
    /// Ends the exchange with `value` (`None`: the last sender left) and wakes the receiver.
    /// Call with the lock held and `done` not set; the returned unparker is to be called once
    /// the lock is released.
    fn finish(&self, s: &mut State, value: Option<T>) -> Option<Unparker> {
        if value.is_some() {
            // SAFETY: lock held and `done` not set: nobody else touches the value.
            unsafe { *self.value.get() = value };
        }
        // SAFETY: lock held, and the waiter is published: the receiver is still in its wait.
        let wake = s.waiter.take().and_then(|w| unsafe { w.wake() });
        self.done.store(true, Ordering::Release);
        wake
    }

    /// Takes the value once `done` is seen: `Err` if there is none (never sent, or taken).
    ///
    /// # Safety
    /// Called by the receiver, after it saw `done` set.
    unsafe fn take_done(&self) -> Result<T, RecvTimeoutError> {
        // SAFETY: `done` is set, and the caller is the receiver: the value is its own.
        unsafe { (*self.value.get()).take() }.ok_or(RecvTimeoutError::Disconnected)
    }
}

/// Makes a one-value channel: the [`Sender`] may be cloned (the first send wins), the
/// [`Receiver`] may not.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: FastLock::new(State {
            senders: 1,
            receiver: true,
            waiter: None,
        }),
        value: UnsafeCell::new(None),
        done: AtomicBool::new(false),
    });
    (
        Sender {
            inner: inner.clone(),
        },
        Receiver {
            inner,
            _not_sync: PhantomData,
        },
    )
}

/// The sending end of a [`oneshot`](self) channel.
pub struct Sender<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Sender<T> {
    /// Sends the value, consuming this sender; never blocks. `Err` gives the value back if the
    /// receiver is gone or another sender already sent.
    pub fn send(self, value: T) -> Result<(), T> {
        let wake = {
            let mut s = self.inner.state.lock();
            if !s.receiver || self.inner.done.load(Ordering::Relaxed) {
                drop(s);
                return Err(value); // this sender's drop takes it off the count
            }
            self.inner.finish(&mut s, Some(value))
        };
        // This sender's drop now sees `done` and takes no lock.
        drop(self);
        if let Some(u) = wake {
            u.unpark();
        }
        Ok(())
    }

    /// Whether a send is bound to fail: the receiver is gone, or a value was sent already.
    pub fn is_closed(&self) -> bool {
        !self.inner.state.lock().receiver || self.inner.done.load(Ordering::Acquire)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.inner.state.lock().senders += 1;
        Sender {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    #[inline]
    fn drop(&mut self) {
        // Once the exchange is over, who is left no longer matters (`done` is final).
        if !self.inner.done.load(Ordering::Relaxed) {
            self.leave();
        }
    }
}

impl<T> Sender<T> {
    /// Takes this sender off the count; the last one to go ends the exchange without a value.
    #[inline(never)]
    fn leave(&mut self) {
        let wake = {
            let mut s = self.inner.state.lock();
            s.senders -= 1;
            if s.senders == 0 && !self.inner.done.load(Ordering::Relaxed) {
                self.inner.finish(&mut s, None)
            } else {
                None
            }
        };
        if let Some(u) = wake {
            u.unpark();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot::Sender { .. }")
    }
}

/// The receiving end of a [`oneshot`](self) channel. Not `Sync`: one place receives.
pub struct Receiver<T> {
    inner: Arc<Inner<T>>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> Receiver<T> {
    /// Waits for the value; `Err` once every sender is gone without sending (or the value
    /// was already received).
    pub fn recv(&self) -> Result<T, RecvError> {
        self.wait(None).map_err(|_| RecvError)
    }

    /// Takes the value if it is there, without waiting.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        if !self.inner.done.load(Ordering::Acquire) {
            return Err(TryRecvError::Empty);
        }
        // SAFETY: `done` is set and this is the receiver.
        unsafe { self.inner.take_done() }.map_err(|_| TryRecvError::Disconnected)
    }

    /// Waits for the value at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.wait(Instant::now().checked_add(timeout))
    }

    /// Waits for the value until `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.wait(Some(deadline))
    }

    fn wait(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let inner = &*self.inner;
        if inner.done.load(Ordering::Acquire) {
            // SAFETY: `done` is set and this is the receiver.
            return unsafe { inner.take_done() };
        }
        {
            let mut s = inner.state.lock();
            if inner.done.load(Ordering::Acquire) {
                drop(s);
                // SAFETY: `done` is set and this is the receiver.
                return unsafe { inner.take_done() };
            }
            s.waiter = Some(Waiter::current());
        }
        let guard = WaitGuard {
            inner,
            armed: Cell::new(true),
        };
        loop {
            let p = park::park(deadline);
            // The common way out: the exchange ended, and the value is ours without the lock.
            if p == Park::Woken && inner.done.load(Ordering::Acquire) {
                guard.armed.set(false);
                // SAFETY: `done` is set and this is the receiver.
                return unsafe { inner.take_done() };
            }
            let mut s = inner.state.lock();
            let done = inner.done.load(Ordering::Acquire);
            // Cancellation wins over completion: a cancelled coroutine must not carry on.
            if p == Park::Cancelled {
                s.waiter = None;
                guard.armed.set(false);
                drop(s);
                park::cancelled();
                return Err(RecvTimeoutError::Disconnected);
            }
            if done {
                guard.armed.set(false);
                drop(s);
                // SAFETY: `done` is set and this is the receiver.
                return unsafe { inner.take_done() };
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                s.waiter = None;
                guard.armed.set(false);
                return Err(RecvTimeoutError::Timeout);
            }
            // Still published (only the end of the exchange takes it); a spurious wake.
            if s.waiter.is_none() {
                s.waiter = Some(Waiter::current());
            }
        }
    }
}

/// Withdraws a waiting receiver's waiter if its wait is left by unwinding.
struct WaitGuard<'a, T> {
    inner: &'a Inner<T>,
    armed: Cell<bool>,
}

impl<T> Drop for WaitGuard<'_, T> {
    fn drop(&mut self) {
        if self.armed.get() {
            self.inner.state.lock().waiter = None;
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // Alone (every sender gone): nothing to tell; the value goes with the allocation.
        if Arc::strong_count(&self.inner) == 1 {
            return;
        }
        let value = {
            let mut s = self.inner.state.lock();
            s.receiver = false;
            if self.inner.done.load(Ordering::Acquire) {
                // SAFETY: `done` is set and this is the receiver.
                unsafe { (*self.inner.value.get()).take() }
            } else {
                None
            }
        };
        // A value nobody will read is dropped here, outside the lock.
        drop(value);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot::Receiver { .. }")
    }
}
