//! Broadcast channels: every receiver gets every message, as a chat room's members or a game
//! lobby's players do.
//!
//! [`channel(capacity)`](channel) keeps the last `capacity` messages. Sending never waits: a
//! receiver that falls more than `capacity` messages behind loses the oldest, and its next
//! receive says how many with [`RecvError::Lagged`] before it goes on from the oldest message
//! still kept. So a slow member cannot hold up the room, and finds out what it missed.
//!
//! Each receiver clones what it takes (`T: Clone`), under the channel's lock: keep the clone
//! cheap and free of anything that waits (an `Arc` makes a large message cheap to share). A receiver sees the messages sent after it was made: [`Sender::subscribe`] and
//! [`Receiver::resubscribe`] start at the newest end. Once every [`Sender`] is gone, a receiver
//! takes what is left for it and then gets [`RecvError::Closed`].
//!
//! Blocking calls park the calling coroutine, or block the calling thread outside coact; a
//! [`Receiver`] also works in a [`Select`](crate::select::Select) or
//! [`select!`](crate::select!), where a completed receive gives a `Result<T, RecvError>`.
//!
//! ```
//! use coact_runtime::sync::broadcast::{self, RecvError};
//!
//! coact_runtime::run(|| {
//!     let (tx, first) = broadcast::channel::<String>(16);
//!     let listeners: Vec<_> = [first, tx.subscribe()]
//!         .into_iter()
//!         .map(|rx| coact_runtime::spawn(move || {
//!             let mut heard = Vec::new();
//!             while let Ok(line) = rx.recv() {
//!                 heard.push(line);
//!             }
//!             heard
//!         }))
//!         .collect();
//!     assert_eq!(tx.send("hello".to_string()), Ok(2)); // two receivers
//!     tx.send("bye".to_string()).unwrap();
//!     drop(tx); // the room closes once each has heard everything
//!     for l in listeners {
//!         assert_eq!(l.join().unwrap(), ["hello", "bye"]);
//!     }
//!
//!     // A receiver that falls behind is told how much it missed.
//!     let (tx, rx) = broadcast::channel(2);
//!     for i in 0..5 {
//!         tx.send(i).unwrap();
//!     }
//!     assert_eq!(rx.recv(), Err(RecvError::Lagged(3)));
//!     assert_eq!(rx.recv(), Ok(3));
//!     assert_eq!(rx.recv(), Ok(4));
//! });
//! ```

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use std::sync::mpsc::SendError;

use crate::park::{self, Park, Waiter, Wakes};
use crate::select::Signal;
use crate::sync::fastlock::{FastGuard, FastLock};

/// Why [`Receiver::recv`] returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Every sender is gone and the receiver has taken every message left for it.
    Closed,
    /// The receiver fell behind and this many messages were dropped before it took them; the
    /// next receive goes on from the oldest message still kept.
    Lagged(u64),
}

/// Why [`Receiver::try_recv`] returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// No new message now.
    Empty,
    /// Every sender is gone and the receiver has taken every message left for it.
    Closed,
    /// As [`RecvError::Lagged`].
    Lagged(u64),
}

/// Why [`Receiver::recv_timeout`] returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// No new message came in time.
    Timeout,
    /// Every sender is gone and the receiver has taken every message left for it.
    Closed,
    /// As [`RecvError::Lagged`].
    Lagged(u64),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str("receiving on a closed broadcast channel"),
            RecvError::Lagged(n) => write!(f, "the receiver lagged behind by {n} messages"),
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty broadcast channel"),
            TryRecvError::Closed => RecvError::Closed.fmt(f),
            TryRecvError::Lagged(n) => RecvError::Lagged(*n).fmt(f),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on a broadcast channel"),
            RecvTimeoutError::Closed => RecvError::Closed.fmt(f),
            RecvTimeoutError::Lagged(n) => RecvError::Lagged(*n).fmt(f),
        }
    }
}

impl std::error::Error for RecvError {}
impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvTimeoutError {}

/// Creates a broadcast channel that keeps the last `capacity` messages.
///
/// # Panics
/// If `capacity` is 0: a message nobody could ever take would be dropped at once.
pub fn channel<T: Clone>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        capacity > 0,
        "coact: a broadcast channel needs a capacity of at least 1"
    );
    let shared = Arc::new(Shared {
        state: FastLock::new(State {
            kept: VecDeque::with_capacity(capacity.min(1024)),
            first: 0,
            capacity,
            senders: 1,
            receivers: 1,
            waiting: Vec::new(),
            next_wait: 0,
            observers: Vec::new(),
        }),
    });
    let rx = Receiver::new(shared.clone(), 0);
    (Sender { shared }, rx)
}

/// What the sending and receiving halves share: the state, behind a lock held only for a few
/// instructions (and a clone), never across a wait.
struct Shared<T> {
    state: FastLock<State<T>>,
}

// SAFETY: the state is only reached through the lock. Besides `T`s (moved, or cloned under the
// lock), it holds waiters, whose fiber addresses are used only by `Waiter::wake`, under the
// lock, while the record is published (the fiber still waits, so its runtime is alive): the
// rule of `Waiter`. So sharing the channel between threads shares nothing but `T`s.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above; a receiver clones a `T` under the lock, one party at a time.
unsafe impl<T: Send> Sync for Shared<T> {}

struct State<T> {
    /// The last `capacity` messages, oldest first.
    kept: VecDeque<T>,
    /// The number of the oldest kept message (messages are numbered from 0 in sending order).
    first: u64,
    capacity: usize,
    senders: usize,
    receivers: usize,
    /// Blocked receivers, by wait number: all are woken by the next message or the end. A
    /// record is here only while its receiver waits (it removes the record, under the lock,
    /// before it leaves its wait), so a waiter taken from here may be woken.
    waiting: Vec<(u64, Waiter)>,
    /// The number of the next wait.
    next_wait: u64,
    /// Persistent `Select` registrations: (signal, operation index).
    observers: Vec<(Arc<Signal>, usize)>,
}

impl<T> State<T> {
    /// The number the next message will get.
    fn end(&self) -> u64 {
        self.first + self.kept.len() as u64
    }

    /// Something changed for every receiver (a message, or the end): ends every wait, and
    /// tells the selectors. Returns the unparkers to call once the lock is released.
    fn wake_all(&mut self) -> Wakes {
        let mut later = Wakes::default();
        for (_, w) in self.waiting.drain(..) {
            // SAFETY: the lock is held and the record was here until now: its receiver has
            // not left its wait (see `waiting`).
            later.push(unsafe { w.wake() });
        }
        for (signal, index) in &self.observers {
            signal.notify(*index);
        }
        later
    }
}

impl<T> Shared<T> {
    /// The state, locked. A panicking `T::clone` (the only code run under it that can panic)
    /// leaves the state as it was, and the lock is released as the panic unwinds.
    fn lock(&self) -> FastGuard<'_, State<T>> {
        self.state.lock()
    }
}

/// The sending half of a broadcast channel. Clone it for more senders.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T: Clone> Sender<T> {
    /// Sends `msg` to every receiver; never waits. Returns how many receivers there are;
    /// fails, giving the message back, when there are none.
    pub fn send(&self, msg: T) -> Result<usize, SendError<T>> {
        let (dropped, receivers, mut later) = {
            let mut s = self.shared.lock();
            if s.receivers == 0 {
                return Err(SendError(msg));
            }
            s.kept.push_back(msg);
            let dropped = if s.kept.len() > s.capacity {
                s.first += 1;
                s.kept.pop_front()
            } else {
                None
            };
            let later = s.wake_all();
            (dropped, s.receivers, later)
        };
        later.run();
        // The dropped message's destructor runs outside the lock: it may use channels too.
        drop(dropped);
        Ok(receivers)
    }

    /// A new receiver, which gets the messages sent from now on.
    pub fn subscribe(&self) -> Receiver<T> {
        let end = {
            let mut s = self.shared.lock();
            s.receivers += 1;
            s.end()
        };
        Receiver::new(self.shared.clone(), end)
    }
}

impl<T> Sender<T> {
    /// How many receivers there are now.
    pub fn receiver_count(&self) -> usize {
        self.shared.lock().receivers
    }

    /// How many messages the channel keeps now (at most its capacity).
    pub fn len(&self) -> usize {
        self.shared.lock().kept.len()
    }

    /// Whether the channel keeps no message now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `other` sends on the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut later = {
            let mut s = self.shared.lock();
            s.senders -= 1;
            if s.senders > 0 {
                return;
            }
            s.wake_all()
        };
        later.run();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("broadcast::Sender { .. }")
    }
}

/// A receiver's place in the channel, apart from the receiver so that a `Select` can hold it
/// (it is `Sync`; the [`Receiver`] is not, so only one party at a time takes from a place).
pub(crate) struct Cursor<T> {
    shared: Arc<Shared<T>>,
    /// The number of the next message to take; only changed under the channel's lock.
    next: AtomicU64,
}

impl<T: Clone> Cursor<T> {
    /// The next message for this receiver, if one is there: `None` if there is none yet.
    fn take(&self, s: &State<T>) -> Option<Result<T, RecvError>> {
        let next = self.next.load(Ordering::Relaxed);
        if next < s.first {
            self.next.store(s.first, Ordering::Relaxed);
            return Some(Err(RecvError::Lagged(s.first - next)));
        }
        if next < s.end() {
            let msg = s.kept[(next - s.first) as usize].clone();
            self.next.store(next + 1, Ordering::Relaxed);
            return Some(Ok(msg));
        }
        (s.senders == 0).then_some(Err(RecvError::Closed))
    }

    fn try_recv(&self) -> Result<T, TryRecvError> {
        let s = self.shared.lock();
        match self.take(&s) {
            Some(Ok(msg)) => Ok(msg),
            Some(Err(RecvError::Closed)) => Err(TryRecvError::Closed),
            Some(Err(RecvError::Lagged(n))) => Err(TryRecvError::Lagged(n)),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Waits with no deadline: the wait ends only with a message, a lag or the end.
    fn recv(&self) -> Result<T, RecvError> {
        self.recv_deadline(None).map_err(|e| match e {
            RecvTimeoutError::Lagged(n) => RecvError::Lagged(n),
            RecvTimeoutError::Closed | RecvTimeoutError::Timeout => RecvError::Closed,
        })
    }

    fn recv_deadline(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        crate::worker::spend_coop();
        loop {
            let id = {
                let mut s = self.shared.lock();
                match self.take(&s) {
                    Some(Ok(msg)) => return Ok(msg),
                    Some(Err(RecvError::Closed)) => return Err(RecvTimeoutError::Closed),
                    Some(Err(RecvError::Lagged(n))) => return Err(RecvTimeoutError::Lagged(n)),
                    None => {}
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(RecvTimeoutError::Timeout);
                }
                let id = s.next_wait;
                s.next_wait += 1;
                s.waiting.push((id, Waiter::current()));
                id
            };
            // Removes the record on every way out of the wait, unwinding included.
            let wait = Wait {
                shared: &self.shared,
                id,
            };
            let p = park::park(deadline);
            drop(wait);
            if p == Park::Cancelled {
                park::cancelled();
                return Err(RecvTimeoutError::Closed);
            }
        }
    }
}

/// A receiver's record in `State::waiting` while it waits; dropping it removes the record
/// (a message or the end may have taken it already).
struct Wait<'a, T> {
    shared: &'a Shared<T>,
    id: u64,
}

impl<T> Drop for Wait<'_, T> {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        // Usually empty: what woke this receiver took every record.
        if let Some(i) = s.waiting.iter().position(|(id, _)| *id == self.id) {
            s.waiting.swap_remove(i);
        }
    }
}

/// The receiving half of a broadcast channel: it gets every message sent after it was made.
/// More receivers come from [`Sender::subscribe`] or [`Receiver::resubscribe`]. It can move
/// between threads and coroutines but not be shared (`!Sync`), like an `mpsc` receiver.
pub struct Receiver<T> {
    cursor: Cursor<T>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> Receiver<T> {
    fn new(shared: Arc<Shared<T>>, next: u64) -> Self {
        Receiver {
            cursor: Cursor {
                shared,
                next: AtomicU64::new(next),
            },
            _not_sync: PhantomData,
        }
    }

    /// How many messages wait for this receiver now (those it lagged past not counted).
    pub fn len(&self) -> usize {
        let s = self.cursor.shared.lock();
        let next = self.cursor.next.load(Ordering::Relaxed).max(s.first);
        (s.end() - next) as usize
    }

    /// Whether no message waits for this receiver now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `other` receives from the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.cursor.shared, &other.cursor.shared)
    }

    /// A new receiver on the same channel, which gets the messages sent from now on.
    pub fn resubscribe(&self) -> Receiver<T> {
        let end = {
            let mut s = self.cursor.shared.lock();
            s.receivers += 1;
            s.end()
        };
        Receiver::new(self.cursor.shared.clone(), end)
    }

    pub(crate) fn cursor(&self) -> &Cursor<T> {
        &self.cursor
    }
}

impl<T: Clone> Receiver<T> {
    /// Waits for the next message. Fails with [`RecvError::Lagged`] if the receiver fell
    /// behind (the next call goes on from the oldest message kept), and with
    /// [`RecvError::Closed`] once every sender is gone and nothing is left for it.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.cursor.recv()
    }

    /// Takes the next message if one is there now.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.cursor.try_recv()
    }

    /// Like [`recv`](Receiver::recv), but gives up after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.cursor
            .recv_deadline(Instant::now().checked_add(timeout))
    }

    /// Like [`recv`](Receiver::recv), but gives up at `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.cursor.recv_deadline(Some(deadline))
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.cursor.shared.lock().receivers -= 1;
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Receiver")
            .field("next", &self.cursor.next.load(Ordering::Relaxed))
            .finish()
    }
}

// The select side (see `select.rs`).
impl<T: Clone> Cursor<T> {
    /// Whether a receive would not wait: a message, a lag to report, or the end.
    pub(crate) fn ready(&self) -> bool {
        let s = self.shared.lock();
        self.next.load(Ordering::Relaxed) < s.end() || s.senders == 0
    }

    /// Completes a selected receive.
    pub(crate) fn recv_selected(&self) -> Result<T, RecvError> {
        match self.try_recv() {
            Ok(msg) => Ok(msg),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            // Not reached: only this receiver moves its place, and nothing takes a message
            // back. Waiting is still right if it were.
            Err(TryRecvError::Empty) => self.recv(),
        }
    }

    pub(crate) fn register(&self, signal: &Arc<Signal>, index: usize) {
        self.shared.lock().observers.push((signal.clone(), index));
    }

    pub(crate) fn unregister(&self, signal: &Arc<Signal>, index: usize) {
        self.shared
            .lock()
            .observers
            .retain(|(s, i)| !(Arc::ptr_eq(s, signal) && *i == index));
    }
}
