//! Multi-producer, single-consumer channels with `std::sync::mpsc`'s API and semantics.
//!
//! * [`channel`] is unbounded: `send` never blocks.
//! * [`sync_channel(n)`](sync_channel) is bounded: `send` parks the sender while `n` messages
//!   wait; `sync_channel(0)` is a rendezvous, where `send` returns only once the receiver has
//!   taken the message.
//!
//! The error types are std's own. Blocking calls park the calling coroutine, or block the
//! calling thread outside coact, and both kinds of caller can share one channel:
//!
//! ```
//! use coact_runtime::sync::mpsc::sync_channel;
//!
//! let (tx, rx) = sync_channel::<u32>(1);
//! let from_thread = std::thread::spawn(move || rx.iter().sum::<u32>());
//! coact_runtime::run(move || {
//!     for i in 0..100 {
//!         tx.send(i).unwrap(); // parks this coroutine while the thread catches up
//!     }
//! });
//! assert_eq!(from_thread.join().unwrap(), 4950);
//! ```
//!
//! # How it works
//!
//! One lock per channel guards its state (a futex lock whose release is a plain store, see
//! `fastlock.rs`): the buffer, the waiting receiver (there
//! is at most one, since the [`Receiver`] is neither `Clone` nor `Sync`; the same channel
//! serves [`mpmc`](super::mpmc), whose receivers wait in line), the queue of waiting
//! senders, and the persistent registrations of [`Select`](crate::select::Select)s. (The sender
//! count is an atomic beside it, so cloning and dropping senders takes no lock.) A blocked
//! party keeps its *packet* (the message slot, its waiter and an atomic `done` flag) on its own
//! stack and publishes a pointer to it in the state. The other side, under the lock,
//! unpublishes the packet, fills it, wakes the waiter (a fiber of the same worker is queued at
//! once, without touching a reference count; any other waiter is unparked after unlocking) and
//! sets `done` last. A woken waiter that sees `done` owns its packet again and returns without
//! taking the lock; otherwise it re-checks under the lock, so spurious and late wakes are
//! harmless. A drop guard removes the packet from the state on every way out (timeout,
//! cancellation, unwinding) before its stack frame goes away.
//!
//! A message sent by a blocked sender moves into the buffer as soon as there is room, in
//! arrival order, so FIFO order holds across blocked and unblocked sends.

use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

use crate::park::{self, Park, Waiter, Wakes};
use crate::select::{Kind, Signal};
use crate::sync::fastlock::{FastGuard, FastLock};

/// An error of [`SyncSender::send_timeout`]; either way the message comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// The channel stayed full until the timeout.
    Timeout(T),
    /// The receiver is gone.
    Disconnected(T),
}

impl<T> SendTimeoutError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(t) | SendTimeoutError::Disconnected(t) => t,
        }
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting on send operation"),
            SendTimeoutError::Disconnected(_) => f.write_str("sending on a closed channel"),
        }
    }
}

impl<T> std::error::Error for SendTimeoutError<T> {}

/// The packet of a blocked receiver.
///
/// Fields other than `done` are touched only under the channel lock while the packet is
/// published, or by its owner once it has seen `done` (see [`complete`]).
struct RecvPacket<T> {
    /// Filled by a sender; `None` with `done` means the senders are all gone.
    slot: UnsafeCell<Option<T>>,
    waiter: UnsafeCell<Option<Waiter>>,
    done: AtomicBool,
    /// The links of [`RecvQueue`] while the packet is published.
    prev: UnsafeCell<Option<NonNull<RecvPacket<T>>>>,
    next: UnsafeCell<Option<NonNull<RecvPacket<T>>>>,
}

impl<T> RecvPacket<T> {
    /// A packet not yet published; its waiter is set as it is.
    fn new() -> Self {
        RecvPacket {
            slot: UnsafeCell::new(None),
            waiter: UnsafeCell::new(None),
            done: AtomicBool::new(false),
            prev: UnsafeCell::new(None),
            next: UnsafeCell::new(None),
        }
    }
}

/// The blocked receivers, oldest first. The oldest has a slot of its own (`first`), so that
/// the one receiver of an `mpsc` channel costs a store to wait and a load to serve; any more
/// (an `mpmc` channel's) wait behind it in a list linked through their packets, so that a
/// wait allocates nothing and one that ends early (timeout, cancellation) unlinks itself at
/// once.
///
/// It lives in the channel state, so it is only touched under the channel lock, and a packet
/// is linked exactly while it is published and its `done` flag is clear: every linked packet is
/// alive (its owner unlinks it, under the lock, before its frame can go away). `first` is
/// `None` only when the list is empty too.
struct RecvQueue<T> {
    first: Option<NonNull<RecvPacket<T>>>,
    /// The rest, in a list through `RecvPacket::{prev, next}` (only touched while linked).
    head: Option<NonNull<RecvPacket<T>>>,
    tail: Option<NonNull<RecvPacket<T>>>,
}

impl<T> RecvQueue<T> {
    fn new() -> Self {
        RecvQueue {
            first: None,
            head: None,
            tail: None,
        }
    }

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Links `p`, a packet not linked before. Without `MULTI` (an `mpsc` channel) the queue
    /// is empty: its one receiver is not blocked already.
    #[inline(always)]
    fn push_back<const MULTI: bool>(&mut self, p: NonNull<RecvPacket<T>>) {
        if !MULTI || self.first.is_none() {
            self.first = Some(p);
        } else {
            self.push_list(p);
        }
    }

    #[cold]
    fn push_list(&mut self, p: NonNull<RecvPacket<T>>) {
        // SAFETY: `p` and the tail are alive (see the type's docs) and their links are only
        // touched under the lock the caller holds.
        unsafe {
            *p.as_ref().prev.get() = self.tail;
            *p.as_ref().next.get() = None;
            match self.tail {
                Some(t) => *t.as_ref().next.get() = Some(p),
                None => self.head = Some(p),
            }
        }
        self.tail = Some(p);
    }

    /// Unlinks the oldest. Without `MULTI` (an `mpsc` channel), it is the only one.
    #[inline(always)]
    fn pop_front<const MULTI: bool>(&mut self) -> Option<NonNull<RecvPacket<T>>> {
        let p = self.first?;
        self.first = match self.head {
            _ if !MULTI => None,
            None => None,
            Some(h) => {
                self.unlink(h);
                Some(h)
            }
        };
        Some(p)
    }

    /// Unlinks `p`, which must be linked.
    fn remove(&mut self, p: NonNull<RecvPacket<T>>) {
        if self.first == Some(p) {
            self.pop_front::<true>();
        } else {
            self.unlink(p);
        }
    }

    /// Unlinks `p`, which must be in the list behind `first`.
    fn unlink(&mut self, p: NonNull<RecvPacket<T>>) {
        // SAFETY: `p` is in the list (the contract), so it and its neighbours are alive, and
        // links are only touched under the lock.
        unsafe {
            let prev = *p.as_ref().prev.get();
            let next = *p.as_ref().next.get();
            match prev {
                Some(q) => *q.as_ref().next.get() = next,
                None => self.head = next,
            }
            match next {
                Some(q) => *q.as_ref().prev.get() = prev,
                None => self.tail = prev,
            }
        }
    }

    /// The linked packets, oldest first.
    fn iter(&self) -> impl Iterator<Item = NonNull<RecvPacket<T>>> + '_ {
        let rest = std::iter::successors(self.head, |p| {
            // SAFETY: linked packets are alive and their links are only touched under the
            // lock, which the borrow of the queue proves held.
            unsafe { *p.as_ref().next.get() }
        });
        self.first.into_iter().chain(rest)
    }
}

/// The packet of a blocked sender (field access as for [`RecvPacket`]).
struct SendPacket<T> {
    /// Taken by the receiver; still `Some` with `done` means the receiver is gone.
    msg: UnsafeCell<Option<T>>,
    waiter: UnsafeCell<Option<Waiter>>,
    done: AtomicBool,
}

/// Ends a blocked party's wait: wakes it (or queues the wake in `wakes`) and sets its `done`
/// flag, the last touch of its packet. Once it sees `done`, the owner reads its packet without
/// the lock and may return, popping the packet's frame: so the wake is prepared first, while
/// the wait is certainly still on.
///
/// # Safety
/// The channel lock is held, and the packet was published until the caller unpublished it
/// under this same lock hold.
#[inline(always)]
unsafe fn complete(waiter: &UnsafeCell<Option<Waiter>>, done: &AtomicBool, wakes: &mut Wakes) {
    // SAFETY: lock held and the packet was published (the contract): nobody else touches it.
    if let Some(w) = unsafe { (*waiter.get()).take() } {
        // SAFETY: the record is ours under the lock and its owner is still waiting.
        wakes.push(unsafe { w.wake() });
    }
    done.store(true, Ordering::Release);
}

/// A blocking send's outcome from what its packet holds at the end: the message, given back,
/// if the receiver went away before taking it.
fn sent<T>(msg: Option<T>) -> Result<(), SendTimeoutError<T>> {
    match msg {
        None => Ok(()),
        Some(m) => Err(SendTimeoutError::Disconnected(m)),
    }
}

/// A `Select` that keeps a registration with this channel.
struct Observer {
    signal: Arc<Signal>,
    index: usize,
    kind: Kind,
}

/// Everything the channel lock guards.
struct State<T> {
    buf: VecDeque<T>,
    /// The bound: `usize::MAX` for `channel()`, 0 for a rendezvous.
    cap: usize,
    /// Buffer slots reserved by selected send operations not yet completed.
    reserved: usize,
    /// Live receivers: 1 for an `mpsc` channel until its `Receiver` drops; any number for an
    /// `mpmc` one.
    receivers: usize,
    /// The blocked receivers. One is blocked only while every waiting message is held for a
    /// selected receive (`recv_reserved`), which without such receives means none waits.
    recv_waiters: RecvQueue<T>,
    /// How many blocked receivers selected sends have claimed: the first `recv_claimed` of
    /// `recv_waiters`. A claimed receiver waits for its selected send, past its deadline too.
    recv_claimed: usize,
    /// Waiting messages held for selected receives (`Reservation::Message`, `mpmc` only):
    /// other receives take only what is beyond this count. The count, not particular
    /// messages: a receive always takes the oldest.
    recv_reserved: usize,
    /// Blocked senders, oldest first.
    send_waiters: VecDeque<NonNull<SendPacket<T>>>,
    /// Persistent `Select` registrations.
    observers: Vec<Observer>,
}

/// The channel shared by both ends.
pub(crate) struct Chan<T, const MULTI: bool = false> {
    state: FastLock<State<T>>,
    /// Live `Sender`s and `SyncSender`s. Kept outside the lock, so that cloning and dropping
    /// a sender cost one atomic operation; the drop that takes it to zero then takes the lock
    /// to disconnect. Readers load it under the lock: a drop to zero either happened before
    /// the reader's lock hold (and is seen) or takes the lock after it (and finds the
    /// receiver's registration to complete).
    senders: AtomicUsize,
    /// The number of waiting messages (buffered, or held by blocked senders), published by
    /// every lock hold as it ends (see [`ChanGuard`]): so `len`, `is_empty` and a `try_recv`
    /// that finds nothing need no lock.
    len: AtomicUsize,
    /// `State::cap` again, outside the lock, for `capacity` and `is_full` (it never changes).
    bound: usize,
}

/// The channel lock, held. Releasing it first publishes the message count in `Chan::len`,
/// so every change made under the lock is reflected there before the lock is free.
struct ChanGuard<'a, T, const MULTI: bool> {
    state: FastGuard<'a, State<T>>,
    chan: &'a Chan<T, MULTI>,
}

impl<T, const MULTI: bool> std::ops::Deref for ChanGuard<'_, T, MULTI> {
    type Target = State<T>;
    fn deref(&self) -> &State<T> {
        &self.state
    }
}

impl<T, const MULTI: bool> std::ops::DerefMut for ChanGuard<'_, T, MULTI> {
    fn deref_mut(&mut self) -> &mut State<T> {
        &mut self.state
    }
}

impl<T, const MULTI: bool> Drop for ChanGuard<'_, T, MULTI> {
    fn drop(&mut self) {
        self.publish_len();
    }
}

// SAFETY: the raw packet pointers in `State` are dereferenced only with the channel lock held,
// and each points at a packet on the stack of a party blocked in this channel, which removes
// its pointer (under the same lock) before its frame can go away (see the drop guards). So
// sharing the channel between threads shares nothing but `T`s moved under the lock.
unsafe impl<T: Send, const MULTI: bool> Send for Chan<T, MULTI> {}
// SAFETY: as above: all access to the state, packets included, goes through the mutex.
unsafe impl<T: Send, const MULTI: bool> Sync for Chan<T, MULTI> {}

impl<T> State<T> {
    fn room(&self) -> bool {
        self.buf.len() + self.reserved < self.cap
    }

    /// Messages waiting: buffered, or held by blocked senders.
    #[inline]
    fn waiting(&self) -> usize {
        self.buf.len() + self.send_waiters.len()
    }

    /// Whether a blocked receiver is not claimed by a selected send.
    #[inline]
    fn has_free_receiver(&self) -> bool {
        !self.recv_waiters.is_empty()
            && (self.recv_claimed == 0 || self.recv_waiters.iter().nth(self.recv_claimed).is_some())
    }

    /// Unlinks the oldest blocked receiver not claimed by a selected send.
    #[inline(always)]
    fn pop_free_receiver<const MULTI: bool>(&mut self) -> Option<NonNull<RecvPacket<T>>> {
        if self.recv_claimed == 0 {
            self.recv_waiters.pop_front::<MULTI>()
        } else {
            self.pop_free_receiver_slow()
        }
    }

    #[cold]
    fn pop_free_receiver_slow(&mut self) -> Option<NonNull<RecvPacket<T>>> {
        let p = self.recv_waiters.iter().nth(self.recv_claimed)?;
        self.recv_waiters.remove(p);
        Some(p)
    }

    /// Whether the blocked receiver `p` is claimed by a selected send.
    fn is_claimed(&self, p: NonNull<RecvPacket<T>>) -> bool {
        self.recv_waiters
            .iter()
            .take(self.recv_claimed)
            .any(|q| q == p)
    }

    /// Unlinks the blocked receiver `p` (still linked: its wait is not done), leaving its
    /// claim, if it had one, to the next receiver in line, if there is one.
    fn remove_receiver(&mut self, p: NonNull<RecvPacket<T>>) {
        self.recv_waiters.remove(p);
        if self.recv_claimed > 0 {
            self.recv_claimed = self.recv_claimed.min(self.recv_waiters.iter().count());
        }
    }

    /// Unlinks the blocked sender `p` (still linked: its wait is not done). Its message may
    /// have been held for a selected receive, which then finds the next one, or none.
    fn remove_sender(&mut self, p: NonNull<SendPacket<T>>) {
        self.send_waiters.retain(|q| *q != p);
        self.recv_reserved = self.recv_reserved.min(self.waiting());
    }

    fn notify(&self, kind: Kind) {
        for o in &self.observers {
            if o.kind == kind {
                o.signal.notify(o.index);
            }
        }
    }
}

impl<T, const MULTI: bool> ChanGuard<'_, T, MULTI> {
    /// Publishes the number of waiting messages in `Chan::len`.
    fn publish_len(&self) {
        let n = self.state.buf.len() + self.state.send_waiters.len();
        self.chan.len.store(n, Ordering::Release);
    }

    /// Tells receive-side selectors that a message may be there. The message count is
    /// published first: a selector polls receive readiness without the lock (it reads `len`),
    /// so what it is told about must be visible in `len` before it is told.
    fn notify_recv(&self) {
        if self.observers.is_empty() {
            return;
        }
        self.publish_len();
        self.notify(Kind::Recv);
    }

    /// Hands `msg` to a blocked receiver or buffers it; `Err` gives it back when full.
    /// A `reserved` send uses the slot its selection reserved. Inline: it is most of a send,
    /// and out of line it costs W1 6 % more instructions (the compiler's choice flipped with
    /// unrelated changes), so it is forced.
    #[inline(always)]
    fn deliver(&mut self, msg: T, reserved: bool, wakes: &mut Wakes) -> Result<(), T> {
        if let Some(p) = self.pop_free_receiver::<MULTI>() {
            if reserved {
                self.reserved -= 1;
            }
            // SAFETY: lock held; the receiver's packet was linked until just now, hence alive,
            // and nobody else touches it until `done`.
            unsafe {
                let p = p.as_ref();
                *p.slot.get() = Some(msg);
                complete(&p.waiter, &p.done, wakes);
            }
            return Ok(());
        }
        if reserved {
            self.reserved -= 1;
        } else if !self.room() {
            return Err(msg);
        }
        self.buf.push_back(msg);
        self.notify_recv();
        Ok(())
    }

    /// Puts back a message a receiver was handed but did not take (its wait was cancelled):
    /// to a free blocked receiver, or at the front of the buffer, as the oldest message
    /// again. The buffer may hold one more than its bound until it is taken.
    #[cold]
    fn requeue(&mut self, msg: T, wakes: &mut Wakes) {
        if let Some(p) = self.pop_free_receiver::<MULTI>() {
            // SAFETY: lock held; the receiver's packet was linked until just now, hence alive,
            // and nobody else touches it until `done`.
            unsafe {
                let p = p.as_ref();
                *p.slot.get() = Some(msg);
                complete(&p.waiter, &p.done, wakes);
            }
        } else {
            self.buf.push_front(msg);
            self.notify_recv();
        }
    }

    /// Takes the oldest waiting message, refilling the buffer from blocked senders.
    #[inline(always)]
    fn pop_message(&mut self, wakes: &mut Wakes) -> Option<T> {
        if let Some(v) = self.buf.pop_front() {
            self.pump(wakes);
            return Some(v);
        }
        let p = self.send_waiters.pop_front()?;
        // A rendezvous (or a buffer fully reserved): take straight from the sender.
        // SAFETY: lock held; the sender's packet was registered until just now, hence alive,
        // and nobody else touches it until `done`.
        let v = unsafe {
            let p = p.as_ref();
            let v = (*p.msg.get()).take();
            complete(&p.waiter, &p.done, wakes);
            v
        };
        Some(v.expect("coact: a waiting sender without a message"))
    }

    /// Takes the next message no selected receive holds. The sender count is read here,
    /// under the lock (see `Chan::senders`).
    #[inline(always)]
    fn take(&mut self, wakes: &mut Wakes) -> Result<T, TryRecvError> {
        if !MULTI || self.recv_reserved == 0 || self.waiting() > self.recv_reserved {
            if let Some(v) = self.pop_message(wakes) {
                return Ok(v);
            }
        }
        if self.chan.senders.load(Ordering::Acquire) == 0 && self.waiting() == 0 {
            Err(TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Moves blocked senders' messages into free room (or to a free blocked receiver, when
    /// no selected receive holds them); tells send-side selectors about room that is left.
    /// Inline is only the test for neither (no blocked sender, no selector): with all of it out
    /// of line, W1 cost 2 % and W2 8 % more instructions.
    #[inline(always)]
    fn pump(&mut self, wakes: &mut Wakes) {
        if !self.send_waiters.is_empty() || !self.observers.is_empty() {
            self.pump_slow(wakes);
        }
    }

    #[inline(never)]
    fn pump_slow(&mut self, wakes: &mut Wakes) {
        while !self.send_waiters.is_empty() {
            let to_receiver = self.has_free_receiver()
                && (!MULTI || self.recv_reserved == 0 || self.waiting() > self.recv_reserved);
            if !to_receiver && !self.room() {
                return;
            }
            let p = self.send_waiters.pop_front().expect("checked above");
            // SAFETY: lock held; the sender's packet was registered until just now, hence
            // alive, and nobody else touches it until `done`.
            let msg = unsafe {
                let p = p.as_ref();
                let msg = (*p.msg.get()).take();
                complete(&p.waiter, &p.done, wakes);
                msg
            };
            let msg = msg.expect("coact: a waiting sender without a message");
            if self.deliver(msg, false, wakes).is_err() {
                unreachable!("room or a receiver was checked under the same lock");
            }
        }
        if self.room() {
            self.notify(Kind::Send);
        }
    }

    /// Brings blocked receivers up to date after the hold on messages, or a claim on a
    /// receiver, was given up: hands them the messages no selected receive holds, and ends
    /// their waits (disconnected) once nothing waits and every sender is gone. Tells
    /// receive-side selectors about messages that are left free.
    fn settle_receivers(&mut self, wakes: &mut Wakes) {
        while self.has_free_receiver() {
            let give = self.waiting() > self.recv_reserved;
            if !give && (self.waiting() > 0 || self.chan.senders.load(Ordering::Acquire) > 0) {
                break;
            }
            let p = self.pop_free_receiver::<MULTI>().expect("checked above");
            // The oldest message; refilling the buffer may serve other free receivers too.
            let msg = if give { self.pop_message(wakes) } else { None };
            // SAFETY: lock held; the receiver's packet was linked until just now, hence alive,
            // and nobody else touches it until `done`.
            unsafe {
                let p = p.as_ref();
                *p.slot.get() = msg;
                complete(&p.waiter, &p.done, wakes);
            }
        }
        if self.waiting() > self.recv_reserved {
            self.notify_recv();
        }
    }
}

/// `MULTI` is for an `mpmc` channel, whose receivers may be many: a selected receive then
/// holds its message (`State::recv_reserved`), and blocked receivers wait in a line. An
/// `mpsc` channel's code is compiled without either.
impl<T, const MULTI: bool> Chan<T, MULTI> {
    /// A channel with one sender and one receiver.
    pub(crate) fn new(cap: usize) -> Arc<Chan<T, MULTI>> {
        Arc::new(Chan {
            state: FastLock::new(State {
                buf: VecDeque::new(),
                cap,
                reserved: 0,
                receivers: 1,
                recv_waiters: RecvQueue::new(),
                recv_claimed: 0,
                recv_reserved: 0,
                send_waiters: VecDeque::new(),
                observers: Vec::new(),
            }),
            senders: AtomicUsize::new(1),
            len: AtomicUsize::new(0),
            bound: cap,
        })
    }

    /// The bound: `None` for an unbounded channel.
    #[inline]
    pub(crate) fn capacity(&self) -> Option<usize> {
        (self.bound != usize::MAX).then_some(self.bound)
    }

    /// Waiting messages, as last published.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn lock(&self) -> ChanGuard<'_, T, MULTI> {
        ChanGuard {
            state: self.state.lock(),
            chan: self,
        }
    }

    pub(crate) fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        let mut wakes = Wakes::default();
        let r = {
            let mut s = self.lock();
            if s.receivers == 0 {
                return Err(TrySendError::Disconnected(msg));
            }
            s.deliver(msg, false, &mut wakes)
                .map_err(TrySendError::Full)
        };
        wakes.run();
        r
    }

    /// Moves messages off the front of `msgs` while each finds room or a waiting receiver,
    /// all under one lock hold; `Err` (nothing moved) once the receiver is gone.
    fn try_send_from(&self, msgs: &mut VecDeque<T>) -> Result<usize, SendError<()>> {
        let mut wakes = Wakes::default();
        let mut moved = 0;
        {
            let mut s = self.lock();
            if s.receivers == 0 {
                return Err(SendError(()));
            }
            while let Some(msg) = msgs.pop_front() {
                if let Err(msg) = s.deliver(msg, false, &mut wakes) {
                    msgs.push_front(msg);
                    break;
                }
                moved += 1;
            }
        }
        wakes.run();
        Ok(moved)
    }

    /// Sends, parking while the channel is full, until `deadline`: the shared copy of
    /// [`send_inline`](Chan::send_inline), for the less common ways to send.
    pub(crate) fn send_deadline(
        &self,
        msg: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        self.send_inline(msg, deadline)
    }

    /// Sends, parking while the channel is full, until `deadline`. Inline, with only the rare
    /// ends of a wait out of line, as [`recv_inline`](Chan::recv_inline) is.
    #[inline(always)]
    pub(crate) fn send_inline(
        &self,
        msg: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        crate::worker::spend_coop();
        let mut wakes = Wakes::default();
        let mut s = self.lock();
        if s.receivers == 0 {
            return Err(SendTimeoutError::Disconnected(msg));
        }
        let msg = match s.deliver(msg, false, &mut wakes) {
            Ok(()) => {
                drop(s);
                wakes.run();
                return Ok(());
            }
            Err(msg) => msg,
        };
        // A refused delivery woke nobody, but every `Wakes` ends with `run` (it is one test).
        wakes.run();
        // No clock read here: a deadline already past is found by the park below (which
        // returns at once) and the check after it, and reading the clock costs more than a
        // wait that ends in time saves.
        let packet = SendPacket {
            msg: UnsafeCell::new(Some(msg)),
            waiter: UnsafeCell::new(None),
            done: AtomicBool::new(false),
        };
        let guard = self.send_publish(s, &packet);
        loop {
            let p = park::park(deadline);
            // The common way out: the receiver completed the wait, and the packet is ours
            // again without taking the lock.
            if p == Park::Woken && packet.done.load(Ordering::Acquire) {
                guard.armed.set(false);
                // SAFETY: `done` is set: the other side no longer touches the packet.
                return sent(unsafe { (*packet.msg.get()).take() });
            }
            if let Some(r) = self.send_rewait(&packet, &guard, p, deadline) {
                return r;
            }
        }
    }

    /// Publishes `packet` as a blocked sender, under the lock that found no room, and
    /// releases the lock. Out of line: it runs once per wait, and the inline part of a send
    /// is copied into every caller.
    #[inline(never)]
    fn send_publish<'a>(
        &'a self,
        mut s: ChanGuard<'a, T, MULTI>,
        packet: &SendPacket<T>,
    ) -> SendGuard<'a, T, MULTI> {
        // SAFETY: the packet is not published yet: it is ours.
        unsafe { *packet.waiter.get() = Some(Waiter::current()) };
        let ptr = NonNull::from(packet);
        s.send_waiters.push_back(ptr);
        s.notify_recv();
        drop(s);
        SendGuard {
            chan: self,
            ptr,
            armed: Cell::new(true),
        }
    }

    /// After a park that did not end the wait the common way: cancellation, completion seen
    /// under the lock, the deadline, or a spurious wake. `Some` ends the send.
    #[inline(never)]
    fn send_rewait(
        &self,
        packet: &SendPacket<T>,
        guard: &SendGuard<'_, T, MULTI>,
        p: Park,
        deadline: Option<Instant>,
    ) -> Option<Result<(), SendTimeoutError<T>>> {
        let ptr = NonNull::from(packet);
        let mut s = self.lock();
        let done = packet.done.load(Ordering::Acquire);
        // Cancellation wins over completion: a cancelled coroutine must not carry on.
        if p == Park::Cancelled {
            if !done {
                s.remove_sender(ptr);
            }
            guard.armed.set(false);
            // SAFETY: lock held and the packet unpublished (or done): it is ours.
            let m = unsafe { (*packet.msg.get()).take() };
            drop(s);
            park::cancelled();
            return Some(sent(m));
        }
        if done {
            guard.armed.set(false);
            // SAFETY: `done` is set: the other side no longer touches the packet.
            return Some(sent(unsafe { (*packet.msg.get()).take() }));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            s.remove_sender(ptr);
            guard.armed.set(false);
            // SAFETY: lock held and the packet unpublished: it is ours.
            let m = unsafe { (*packet.msg.get()).take() };
            return Some(Err(SendTimeoutError::Timeout(
                m.expect("an undelivered message"),
            )));
        }
        // SAFETY: lock held; the packet is published and only touched under the lock.
        unsafe {
            let w = &mut *packet.waiter.get();
            if w.is_none() {
                *w = Some(Waiter::current());
            }
        }
        None
    }

    /// Ends a receive whose wait was cancelled, with the lock held on entry: unlinks the
    /// packet, or, if a message came just as the wait was cancelled (`done`), puts it back at
    /// the front of the channel, for another receiver (or this one's next receive).
    #[cold]
    #[inline(never)]
    fn leave_cancelled(mut s: ChanGuard<'_, T, MULTI>, packet: &RecvPacket<T>, done: bool) {
        let mut wakes = Wakes::default();
        if !done {
            s.remove_receiver(NonNull::from(packet));
        } else {
            // SAFETY: `done` is set: the other side no longer touches the packet.
            if let Some(msg) = unsafe { (*packet.slot.get()).take() } {
                s.requeue(msg, &mut wakes);
            }
        }
        drop(s);
        wakes.run();
    }

    /// Receive readiness without the lock: `Some(Empty)` or `Some(Disconnected)` when nothing
    /// waits, `None` when a message may be taken. The sender count is read first: a count of
    /// zero then proves that every message ever sent is already counted in `len`. A message
    /// pushed under a lock not yet released is not seen; its sender notifies selectors after
    /// publishing the count (see `notify_recv`).
    fn nothing_waiting(&self) -> Option<TryRecvError> {
        let senders = self.senders.load(Ordering::Acquire);
        if self.len.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(if senders == 0 {
            TryRecvError::Disconnected
        } else {
            TryRecvError::Empty
        })
    }

    #[inline]
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        if let Some(e) = self.nothing_waiting() {
            return Err(e);
        }
        let mut wakes = Wakes::default();
        let r = {
            let mut s = self.lock();
            s.take(&mut wakes)
        };
        wakes.run();
        r
    }

    /// Receives, parking while nothing waits, until `deadline`: the shared copy of
    /// [`recv_inline`](Chan::recv_inline), for the less common ways to receive.
    pub(crate) fn recv_deadline(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        self.recv_inline(deadline)
    }

    /// Receives, parking while nothing waits, until `deadline`.
    ///
    /// Inline, with only the rare ends of a wait out of line: the park's switch then sits in
    /// the frame of the caller's `recv` (see "Where a switch sits" in `worker.rs`: a fiber
    /// resumed here returns through no frame the other fiber did not call). Only the plain
    /// blocking `recv` and `send` (and the blocking iterators) use the inline copies; they
    /// made the chat example's code 6 % larger (BENCHMARKS.md, session 19).
    #[inline(always)]
    pub(crate) fn recv_inline(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        crate::worker::spend_coop();
        let mut wakes = Wakes::default();
        let mut s = self.lock();
        match s.take(&mut wakes) {
            Ok(v) => {
                drop(s);
                wakes.run();
                return Ok(v);
            }
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        // No clock read here (see `send_deadline`): a past deadline is found after the park.
        // Nothing was taken, so nobody was woken; every `Wakes` ends with `run`.
        wakes.run();
        let packet = RecvPacket::new();
        let guard = self.recv_publish(s, &packet);
        // While a selected send has claimed this receiver, the deadline waits for it.
        let mut wait_until = deadline;
        loop {
            let p = park::park(wait_until);
            // The common way out: a sender completed the wait, and the packet is ours again
            // without taking the lock.
            if p == Park::Woken && packet.done.load(Ordering::Acquire) {
                guard.armed.set(false);
                // SAFETY: `done` is set: the other side no longer touches the packet.
                return unsafe { (*packet.slot.get()).take() }
                    .ok_or(RecvTimeoutError::Disconnected);
            }
            if let Some(r) = self.recv_rewait(&packet, &guard, p, deadline, &mut wait_until) {
                return r;
            }
        }
    }

    /// Publishes `packet` as a blocked receiver, under the lock that found nothing, and
    /// releases the lock (out of line, as `send_publish` is).
    #[inline(never)]
    fn recv_publish<'a>(
        &'a self,
        mut s: ChanGuard<'a, T, MULTI>,
        packet: &RecvPacket<T>,
    ) -> RecvGuard<'a, T, MULTI> {
        // SAFETY: the packet is not published yet: it is ours.
        unsafe { *packet.waiter.get() = Some(Waiter::current()) };
        let ptr = NonNull::from(packet);
        debug_assert!(
            MULTI || s.recv_waiters.is_empty(),
            "two receivers blocked on one mpsc channel"
        );
        s.recv_waiters.push_back::<MULTI>(ptr);
        s.notify(Kind::Send);
        drop(s);
        RecvGuard {
            chan: self,
            ptr,
            armed: Cell::new(true),
        }
    }

    /// After a park that did not end the wait the common way: cancellation, completion seen
    /// under the lock, the deadline, or a spurious wake. `Some` ends the receive.
    #[inline(never)]
    fn recv_rewait(
        &self,
        packet: &RecvPacket<T>,
        guard: &RecvGuard<'_, T, MULTI>,
        p: Park,
        deadline: Option<Instant>,
        wait_until: &mut Option<Instant>,
    ) -> Option<Result<T, RecvTimeoutError>> {
        let ptr = NonNull::from(packet);
        let mut s = self.lock();
        let done = packet.done.load(Ordering::Acquire);
        // Cancellation wins over completion: a cancelled coroutine must not carry on.
        if p == Park::Cancelled {
            guard.armed.set(false);
            Self::leave_cancelled(s, packet, done);
            park::cancelled();
            return Some(Err(RecvTimeoutError::Disconnected));
        }
        if done {
            guard.armed.set(false);
            // SAFETY: `done` is set: the other side no longer touches the packet.
            return Some(
                unsafe { (*packet.slot.get()).take() }.ok_or(RecvTimeoutError::Disconnected),
            );
        }
        let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
        if timed_out && s.is_claimed(ptr) {
            *wait_until = None;
        } else if timed_out {
            s.remove_receiver(ptr);
            guard.armed.set(false);
            return Some(Err(RecvTimeoutError::Timeout));
        }
        // SAFETY: lock held; the packet is published and only touched under the lock.
        unsafe {
            let w = &mut *packet.waiter.get();
            if w.is_none() {
                *w = Some(Waiter::current());
            }
        }
        None
    }

    pub(crate) fn add_sender(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    /// One more receiver (`mpmc`).
    pub(crate) fn add_receiver(&self) {
        self.lock().receivers += 1;
    }

    pub(crate) fn drop_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The last sender is gone: disconnect (see `Chan::senders`).
        let mut wakes = Wakes::default();
        {
            let mut s = self.lock();
            // No claim is left (a selected send borrows its sender): the receivers blocked
            // are told, unless messages held for selected receives may yet come free.
            s.recv_claimed = 0;
            s.settle_receivers(&mut wakes);
            s.notify(Kind::Recv);
        }
        wakes.run();
    }

    pub(crate) fn drop_receiver(&self) {
        let mut wakes = Wakes::default();
        let buffered = {
            let mut s = self.lock();
            s.receivers -= 1;
            if s.receivers > 0 {
                return;
            }
            while let Some(p) = s.send_waiters.pop_front() {
                // SAFETY: lock held; the sender's packet was registered until just now.
                unsafe {
                    let p = p.as_ref();
                    complete(&p.waiter, &p.done, &mut wakes);
                }
            }
            s.notify(Kind::Send);
            std::mem::take(&mut s.buf)
        };
        wakes.run();
        // Buffered messages are dropped outside the lock: their destructors may use channels.
        drop(buffered);
    }

    /// Readiness of one select operation; for a send, a `Ready` result holds a reservation
    /// that [`Chan::send_selected`] or [`Chan::release`] must consume.
    pub(crate) fn poll_select(&self, kind: Kind) -> Option<Reservation> {
        match kind {
            // Without the lock; a message this misses is announced to the selector's signal.
            Kind::Recv => match self.nothing_waiting() {
                Some(TryRecvError::Empty) => None,
                _ if MULTI => self.reserve_message(),
                _ => Some(Reservation::None),
            },
            Kind::Send => {
                let mut s = self.lock();
                if s.receivers == 0 {
                    Some(Reservation::None)
                } else if s.has_free_receiver() {
                    s.recv_claimed += 1;
                    Some(Reservation::Receiver)
                } else if s.room() {
                    s.reserved += 1;
                    Some(Reservation::Slot)
                } else {
                    None
                }
            }
        }
    }

    /// Receive readiness on an `mpmc` channel, where receivers may be many: holds a message
    /// for this one.
    #[cold]
    fn reserve_message(&self) -> Option<Reservation> {
        let mut s = self.lock();
        if s.waiting() > s.recv_reserved {
            s.recv_reserved += 1;
            Some(Reservation::Message)
        } else if s.waiting() == 0 && self.senders.load(Ordering::Acquire) == 0 {
            Some(Reservation::None)
        } else {
            None
        }
    }

    /// Completes a selected send with its reservation.
    pub(crate) fn send_selected(&self, msg: T, r: Reservation) -> Result<(), SendError<T>> {
        let mut wakes = Wakes::default();
        let res = {
            let mut s = self.lock();
            match r {
                Reservation::Slot if s.receivers > 0 => s
                    .deliver(msg, true, &mut wakes)
                    .map_err(|_| unreachable!("a reserved slot")),
                Reservation::Receiver if s.receivers > 0 && s.recv_claimed > 0 => {
                    // The claims are the first blocked receivers: one fewer, and the message
                    // goes to the first receiver past them.
                    s.recv_claimed -= 1;
                    s.deliver(msg, false, &mut wakes)
                        .map_err(|_| unreachable!("a claimed receiver"))
                }
                _ => {
                    Self::release_locked(&mut s, r, &mut wakes);
                    if s.receivers == 0 {
                        Err(SendError(msg))
                    } else {
                        // The claimed receiver left (cancelled): fall back to a plain send,
                        // after the wakes the release made.
                        drop(s);
                        wakes.run();
                        return self
                            .send_deadline(msg, None)
                            .map_err(|e| SendError(e.into_inner()));
                    }
                }
            }
        };
        wakes.run();
        res
    }

    /// Completes a selected receive with its reservation.
    #[inline]
    pub(crate) fn recv_selected(&self, r: Reservation) -> Result<T, RecvError> {
        let got = if MULTI && r == Reservation::Message {
            self.take_reserved()
        } else {
            self.try_recv()
        };
        match got {
            Ok(v) => Ok(v),
            Err(TryRecvError::Disconnected) => Err(RecvError),
            // Only when a rendezvous sender gave up (timed out) right after being seen.
            Err(TryRecvError::Empty) => self.recv_deadline(None).map_err(|_| RecvError),
        }
    }

    /// Takes the message a selected receive holds (or, if a blocked sender took its message
    /// back meanwhile, any message no other holds).
    #[cold]
    fn take_reserved(&self) -> Result<T, TryRecvError> {
        let mut wakes = Wakes::default();
        let got = {
            let mut s = self.lock();
            if s.recv_reserved > 0 {
                s.recv_reserved -= 1;
                let v = s.pop_message(&mut wakes);
                // The last held message may leave blocked receivers to be told of the end.
                s.settle_receivers(&mut wakes);
                v.ok_or(TryRecvError::Empty)
            } else {
                s.take(&mut wakes)
            }
        };
        wakes.run();
        got
    }

    /// Gives back a reservation whose selected operation was not completed.
    pub(crate) fn release(&self, r: Reservation) {
        let mut wakes = Wakes::default();
        Self::release_locked(&mut self.lock(), r, &mut wakes);
        wakes.run();
    }

    fn release_locked(s: &mut ChanGuard<'_, T, MULTI>, r: Reservation, wakes: &mut Wakes) {
        match r {
            Reservation::None => {}
            Reservation::Slot => {
                s.reserved -= 1;
                s.pump(wakes);
            }
            Reservation::Message => {
                s.recv_reserved = s.recv_reserved.saturating_sub(1);
                s.settle_receivers(wakes);
            }
            Reservation::Receiver => {
                if s.recv_claimed > 0 {
                    s.recv_claimed -= 1;
                    s.pump(wakes);
                    // A message may have come (buffered) while the receiver was claimed.
                    s.settle_receivers(wakes);
                    // A receiver no longer claimed may have a deadline to honour now.
                    if let Some(p) = s.recv_waiters.iter().nth(s.recv_claimed) {
                        // SAFETY: lock held; the receiver's packet is linked, hence alive,
                        // and only touched under the lock; its owner is still waiting.
                        unsafe {
                            if let Some(w) = (*p.as_ref().waiter.get()).take() {
                                wakes.push(w.wake());
                            }
                        }
                    }
                }
            }
        }
    }

    /// Registers a select operation; it stays until [`Chan::unregister`].
    pub(crate) fn register(&self, signal: &Arc<Signal>, index: usize, kind: Kind) {
        self.lock().observers.push(Observer {
            signal: signal.clone(),
            index,
            kind,
        });
    }

    /// Removes a registration made by [`Chan::register`].
    pub(crate) fn unregister(&self, signal: &Arc<Signal>, index: usize) {
        self.lock()
            .observers
            .retain(|o| !(Arc::ptr_eq(&o.signal, signal) && o.index == index));
    }
}

/// What a ready select operation holds until it is completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reservation {
    /// Nothing (a receive, or a send to a closed channel).
    None,
    /// One buffer slot.
    Slot,
    /// A blocked receiver (claimed: see `State::recv_claimed`).
    Receiver,
    /// One waiting message, for a receive on an `mpmc` channel (see `State::recv_reserved`).
    Message,
}

/// Removes a blocked receiver's packet if the wait is left some other way (unwinding).
struct RecvGuard<'a, T, const MULTI: bool> {
    chan: &'a Chan<T, MULTI>,
    ptr: NonNull<RecvPacket<T>>,
    armed: Cell<bool>,
}

impl<T, const MULTI: bool> Drop for RecvGuard<'_, T, MULTI> {
    /// One test on the common way out (disarmed); the rest out of line.
    #[inline(always)]
    fn drop(&mut self) {
        if self.armed.get() {
            self.unlink();
        }
    }
}

impl<T, const MULTI: bool> RecvGuard<'_, T, MULTI> {
    #[cold]
    #[inline(never)]
    fn unlink(&self) {
        let mut s = self.chan.lock();
        // SAFETY: the packet lives in the frame that owns this guard, dropped after it.
        let done = unsafe { self.ptr.as_ref() }.done.load(Ordering::Acquire);
        if !done {
            s.remove_receiver(self.ptr);
        }
    }
}

/// Removes a blocked sender's packet if the wait is left some other way (unwinding).
struct SendGuard<'a, T, const MULTI: bool> {
    chan: &'a Chan<T, MULTI>,
    ptr: NonNull<SendPacket<T>>,
    armed: Cell<bool>,
}

impl<T, const MULTI: bool> Drop for SendGuard<'_, T, MULTI> {
    /// One test on the common way out (disarmed); the rest out of line.
    #[inline(always)]
    fn drop(&mut self) {
        if self.armed.get() {
            self.unlink();
        }
    }
}

impl<T, const MULTI: bool> SendGuard<'_, T, MULTI> {
    #[cold]
    #[inline(never)]
    fn unlink(&self) {
        self.chan.lock().remove_sender(self.ptr);
    }
}

/// Creates an unbounded channel: `send` never blocks.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Chan::new(usize::MAX);
    (Sender { chan: chan.clone() }, Receiver::new(chan))
}

/// Creates a channel that holds at most `bound` messages; `send` parks while it is full, and
/// with `bound == 0` until the receiver takes the message.
pub fn sync_channel<T>(bound: usize) -> (SyncSender<T>, Receiver<T>) {
    let chan = Chan::new(bound);
    (SyncSender { chan: chan.clone() }, Receiver::new(chan))
}

/// The sending half of [`channel`]. Clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends a message; it never blocks. Fails, giving the message back, once the receiver is
    /// gone.
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        self.chan.try_send(t).map_err(|e| match e {
            TrySendError::Full(t) | TrySendError::Disconnected(t) => SendError(t),
        })
    }

    pub(crate) fn chan(&self) -> &Arc<Chan<T>> {
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

/// The sending half of [`sync_channel`]. Clone it for more producers.
pub struct SyncSender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> SyncSender<T> {
    /// Whether no message waits in the channel now (buffered, or held by blocked senders).
    /// Not in std's API; a hint, since others may send or receive at any moment.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.chan.len.load(Ordering::Acquire) == 0
    }

    /// Sends a message, parking while the channel is full (for a rendezvous channel, until the
    /// receiver takes it). Fails, giving the message back, once the receiver is gone.
    #[inline]
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        self.chan
            .send_inline(t, None)
            .map_err(|e| SendError(e.into_inner()))
    }

    /// Sends a message if there is room now (for a rendezvous channel: if the receiver is
    /// waiting), else gives it back.
    pub fn try_send(&self, t: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(t)
    }

    /// Moves messages off the front of `msgs` into the channel for as long as there is room
    /// (or a receiver waiting for one), in order and under one hold of the channel's lock, and
    /// returns how many moved. Never parks: what did not fit stays in `msgs`. Fails, moving
    /// nothing, once the receiver is gone. Not in std's API: a producer with many messages at
    /// hand pays the channel's lock once per batch instead of once per message.
    ///
    /// ```
    /// use std::collections::VecDeque;
    /// use coact_runtime::sync::mpsc::sync_channel;
    ///
    /// let (tx, rx) = sync_channel(2);
    /// let mut batch: VecDeque<u32> = (1..=3).collect();
    /// assert_eq!(tx.try_send_from(&mut batch), Ok(2));
    /// assert_eq!(batch, [3]);
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
    /// drop(rx);
    /// assert!(tx.try_send_from(&mut batch).is_err());
    /// assert_eq!(batch, [3]);
    /// ```
    pub fn try_send_from(&self, msgs: &mut VecDeque<T>) -> Result<usize, SendError<()>> {
        self.chan.try_send_from(msgs)
    }

    /// Like [`send`](SyncSender::send), but gives up after `timeout`.
    pub fn send_timeout(&self, t: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan
            .send_deadline(t, Instant::now().checked_add(timeout))
    }

    /// Like [`send`](SyncSender::send), but gives up at `deadline`.
    pub fn send_deadline(&self, t: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.send_deadline(t, Some(deadline))
    }

    pub(crate) fn chan(&self) -> &Arc<Chan<T>> {
        &self.chan
    }
}

impl<T> Clone for SyncSender<T> {
    fn clone(&self) -> Self {
        self.chan.add_sender();
        SyncSender {
            chan: self.chan.clone(),
        }
    }
}

sender_glue!(SyncSender);

/// The receiving half of a channel. There is exactly one; it can move between threads and
/// coroutines but not be shared (`!Sync`), like std's.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> Receiver<T> {
    fn new(chan: Arc<Chan<T>>) -> Self {
        Receiver {
            chan,
            _not_sync: PhantomData,
        }
    }

    pub(crate) fn chan(&self) -> &Arc<Chan<T>> {
        &self.chan
    }
}

receiver_api!();
