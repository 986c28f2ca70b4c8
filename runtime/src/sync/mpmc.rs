//! Multi-producer, multi-consumer channels: [`mpsc`](super::mpsc) with a [`Receiver`] that
//! can be cloned and shared, shaped like `std::sync::mpmc` (unstable in std as of this
//! writing).
//!
//! Each message goes to exactly one receiver. That makes a work queue: any number of
//! coroutines (or threads) take jobs from one channel, and a busy one takes no more until it
//! asks. Blocked receivers are served oldest first.
//!
//! * [`channel`] is unbounded: `send` never blocks.
//! * [`sync_channel(n)`](sync_channel) is bounded: `send` parks the sender while `n` messages
//!   wait; `sync_channel(0)` is a rendezvous, where `send` returns only once a receiver has
//!   taken the message.
//!
//! The channel disconnects for receivers once every [`Sender`] is gone and the messages are
//! taken, and for senders once every [`Receiver`] is gone. Blocking calls park the calling
//! coroutine, or block the calling thread outside coact, as everywhere in [`sync`](super).
//!
//! ```
//! use coact_runtime::sync::mpmc;
//!
//! let total = coact_runtime::run(|| {
//!     let (jobs, queue) = mpmc::sync_channel::<u64>(16);
//!     let (done, results) = coact_runtime::sync::mpsc::channel();
//!     for _ in 0..4 {
//!         let (queue, done) = (queue.clone(), done.clone());
//!         // Each worker takes jobs until the channel disconnects.
//!         coact_runtime::spawn(move || {
//!             for n in queue {
//!                 done.send(n * n).unwrap();
//!             }
//!         });
//!     }
//!     drop((queue, done));
//!     for n in 1..=100 {
//!         jobs.send(n).unwrap();
//!     }
//!     drop(jobs);
//!     results.iter().sum::<u64>()
//! });
//! assert_eq!(total, (1..=100u64).map(|n| n * n).sum());
//! ```
//!
//! In a [`Select`](crate::select::Select) or [`select!`](crate::select!), a selected receive
//! on an `mpmc` channel holds its message until the operation is completed (or dropped): the
//! other receivers leave it alone meanwhile, so the completion never waits.
//!
//! A pool's consumers that should use every core are spawned with
//! [`spawn_on`](crate::spawn_on): a plain `spawn` starts them all on the spawner's worker.

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use super::mpsc::SendTimeoutError;
pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

use super::mpsc::Chan;

/// Creates an unbounded channel: `send` never blocks.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    pair(usize::MAX)
}

/// Creates a channel that holds at most `bound` messages; `send` parks while it is full, and
/// with `bound == 0` until a receiver takes the message.
pub fn sync_channel<T>(bound: usize) -> (Sender<T>, Receiver<T>) {
    pair(bound)
}

fn pair<T>(bound: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Chan::new(bound);
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The sending half of an `mpmc` channel. Clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T, true>>,
}

impl<T> Sender<T> {
    /// Sends a message; on a full bounded channel, parks until there is room (on a rendezvous
    /// channel, until a receiver takes it). Fails, giving the message back, once every
    /// receiver is gone.
    #[inline]
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        // Made by `sync_channel`: it may park.
        if self.chan.capacity().is_some() {
            self.chan
                .send_inline(msg, None)
                .map_err(|e| SendError(e.into_inner()))
        } else {
            // Never full: no wait, and no yield either (as `mpsc::Sender::send`).
            self.chan.try_send(msg).map_err(|e| match e {
                TrySendError::Full(m) | TrySendError::Disconnected(m) => SendError(m),
            })
        }
    }

    /// Sends a message if there is room now (on a rendezvous channel: if a receiver waits),
    /// else gives it back.
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(msg)
    }

    /// Like [`send`](Sender::send), but gives up after `timeout`.
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan
            .send_deadline(msg, Instant::now().checked_add(timeout))
    }

    /// Like [`send`](Sender::send), but gives up at `deadline`.
    pub fn send_deadline(&self, msg: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.send_deadline(msg, Some(deadline))
    }

    /// How many messages wait in the channel now (buffered, or held by blocked senders).
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether no message waits in the channel now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a send would wait now: the bound is reached (always, for a rendezvous
    /// channel; never, for an unbounded one).
    pub fn is_full(&self) -> bool {
        self.capacity().is_some_and(|cap| self.len() >= cap)
    }

    /// The bound given to [`sync_channel`]; `None` for a [`channel`].
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// Whether `other` sends on the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }

    pub(crate) fn chan(&self) -> &Arc<Chan<T, true>> {
        &self.chan
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.add_sender();
        Sender {
            chan: self.chan.clone(),
        }
    }
}

sender_glue!(Sender);

/// The receiving half of an `mpmc` channel. Clone it, or share it by reference, for more
/// consumers; each message goes to one of them.
pub struct Receiver<T> {
    chan: Arc<Chan<T, true>>,
}

impl<T> Receiver<T> {
    /// The bound given to [`sync_channel`]; `None` for a [`channel`].
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// Whether `other` receives from the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }

    pub(crate) fn chan(&self) -> &Arc<Chan<T, true>> {
        &self.chan
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.add_receiver();
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

receiver_api!();
