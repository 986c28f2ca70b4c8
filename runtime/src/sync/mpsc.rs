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
//! is at most one, since the [`Receiver`] is neither `Clone` nor `Sync`), the queue of waiting
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
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

use crate::park::{self, Park, Unparker, Waiter};
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
#[inline]
unsafe fn complete(waiter: &UnsafeCell<Option<Waiter>>, done: &AtomicBool, wakes: &mut Wakes) {
    // SAFETY: lock held and the packet was published (the contract): nobody else touches it.
    if let Some(w) = unsafe { (*waiter.get()).take() } {
        // SAFETY: the record is ours under the lock and its owner is still waiting.
        wakes.push(unsafe { w.wake() });
    }
    done.store(true, Ordering::Release);
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
    /// Whether the `Receiver` is alive.
    receiver: bool,
    /// The blocked receiver, if any. Only ever set while `buf` is empty.
    recv_waiter: Option<NonNull<RecvPacket<T>>>,
    /// A selected send on a rendezvous channel has claimed the blocked receiver.
    recv_claimed: bool,
    /// Blocked senders, oldest first.
    send_waiters: VecDeque<NonNull<SendPacket<T>>>,
    /// Persistent `Select` registrations.
    observers: Vec<Observer>,
}

/// The channel shared by both ends.
pub(crate) struct Chan<T> {
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
}

/// The channel lock, held. Releasing it first publishes the message count in `Chan::len`,
/// so every change made under the lock is reflected there before the lock is free.
struct ChanGuard<'a, T> {
    state: FastGuard<'a, State<T>>,
    chan: &'a Chan<T>,
}

impl<T> std::ops::Deref for ChanGuard<'_, T> {
    type Target = State<T>;
    fn deref(&self) -> &State<T> {
        &self.state
    }
}

impl<T> std::ops::DerefMut for ChanGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut State<T> {
        &mut self.state
    }
}

impl<T> Drop for ChanGuard<'_, T> {
    fn drop(&mut self) {
        self.publish_len();
    }
}

// SAFETY: the raw packet pointers in `State` are dereferenced only with the channel lock held,
// and each points at a packet on the stack of a party blocked in this channel, which removes
// its pointer (under the same lock) before its frame can go away (see the drop guards). So
// sharing the channel between threads shares nothing but `T`s moved under the lock.
unsafe impl<T: Send> Send for Chan<T> {}
// SAFETY: as above: all access to the state, packets included, goes through the mutex.
unsafe impl<T: Send> Sync for Chan<T> {}

/// Unparkers to call once the channel lock is released (at most two on the hot paths).
///
/// It has no drop glue in release builds, so that a channel operation that woke nobody (the
/// common case: a fiber of this worker is queued at once, with no unparker) pays for neither a
/// drop nor a move: every `Wakes` must end with [`Wakes::run`], or its unparkers leak (a missed
/// wake). Debug builds check that on drop, so the test suite catches a path that forgets.
#[derive(Default)]
struct Wakes {
    first: ManuallyDrop<Option<Unparker>>,
    more: ManuallyDrop<Vec<Unparker>>,
}

impl Wakes {
    #[inline]
    fn push(&mut self, u: Option<Unparker>) {
        if let Some(u) = u {
            if self.first.is_none() {
                *self.first = Some(u);
            } else {
                self.more.push(u);
            }
        }
    }

    /// Calls the unparkers, leaving `self` empty; one test when there are none.
    #[inline(always)]
    fn run(&mut self) {
        if self.first.is_some() {
            self.run_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn run_slow(&mut self) {
        if let Some(u) = self.first.take() {
            u.unpark();
        }
        // `more` is only pushed to while `first` is taken.
        for u in std::mem::take(&mut *self.more) {
            u.unpark();
        }
    }
}

#[cfg(debug_assertions)]
impl Drop for Wakes {
    fn drop(&mut self) {
        // Not while unwinding: a panic between a push and `run` is reported already.
        if !std::thread::panicking() {
            debug_assert!(
                self.first.is_none(),
                "coact: channel wakes dropped without run"
            );
        }
    }
}

impl<T> State<T> {
    fn room(&self) -> bool {
        self.buf.len() + self.reserved < self.cap
    }

    fn notify(&self, kind: Kind) {
        for o in &self.observers {
            if o.kind == kind {
                o.signal.notify(o.index);
            }
        }
    }
}

impl<T> ChanGuard<'_, T> {
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

    /// Hands `msg` to the blocked receiver or buffers it; `Err` gives it back when full.
    /// A `reserved` send uses the slot its selection reserved. Inline: it is most of a send,
    /// and out of line it costs W1 6 % more instructions (the compiler's choice flipped with
    /// unrelated changes).
    #[inline]
    fn deliver(&mut self, msg: T, reserved: bool, wakes: &mut Wakes) -> Result<(), T> {
        if let Some(p) = self.recv_waiter {
            if !self.recv_claimed {
                self.recv_waiter = None;
                if reserved {
                    self.reserved -= 1;
                }
                // SAFETY: lock held; the receiver's packet was registered until just now, hence
                // alive, and nobody else touches it until `done`.
                unsafe {
                    let p = p.as_ref();
                    *p.slot.get() = Some(msg);
                    complete(&p.waiter, &p.done, wakes);
                }
                return Ok(());
            }
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

    /// Takes the next message, refilling the buffer from blocked senders. The sender count
    /// is read here, under the lock (see `Chan::senders`).
    #[inline]
    fn take(&mut self, wakes: &mut Wakes) -> Result<T, TryRecvError> {
        if let Some(v) = self.buf.pop_front() {
            self.pump(wakes);
            return Ok(v);
        }
        if let Some(p) = self.send_waiters.pop_front() {
            // A rendezvous (or a buffer fully reserved): take straight from the sender.
            // SAFETY: lock held; the sender's packet was registered until just now, hence
            // alive, and nobody else touches it until `done`.
            let v = unsafe {
                let p = p.as_ref();
                let v = (*p.msg.get()).take();
                complete(&p.waiter, &p.done, wakes);
                v
            };
            return Ok(v.expect("coact: a waiting sender without a message"));
        }
        if self.chan.senders.load(Ordering::Acquire) == 0 {
            Err(TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Moves blocked senders' messages into free room (or to an unclaimed blocked receiver);
    /// tells send-side selectors about room that is left.
    fn pump(&mut self, wakes: &mut Wakes) {
        while !self.send_waiters.is_empty() {
            let to_receiver = self.recv_waiter.is_some() && !self.recv_claimed;
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
}

impl<T> Chan<T> {
    fn new(cap: usize) -> Arc<Chan<T>> {
        Arc::new(Chan {
            state: FastLock::new(State {
                buf: VecDeque::new(),
                cap,
                reserved: 0,
                receiver: true,
                recv_waiter: None,
                recv_claimed: false,
                send_waiters: VecDeque::new(),
                observers: Vec::new(),
            }),
            senders: AtomicUsize::new(1),
            len: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> ChanGuard<'_, T> {
        ChanGuard {
            state: self.state.lock(),
            chan: self,
        }
    }

    fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        let mut wakes = Wakes::default();
        let r = {
            let mut s = self.lock();
            if !s.receiver {
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
            if !s.receiver {
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

    fn send_deadline(&self, msg: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        crate::worker::spend_coop();
        let mut wakes = Wakes::default();
        let mut s = self.lock();
        if !s.receiver {
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
            waiter: UnsafeCell::new(Some(Waiter::current())),
            done: AtomicBool::new(false),
        };
        let ptr = NonNull::from(&packet);
        s.send_waiters.push_back(ptr);
        s.notify_recv();
        drop(s);
        let guard = SendGuard {
            chan: self,
            ptr,
            armed: Cell::new(true),
        };
        // Reads the packet's message once the receiver side is done with it.
        let outcome = |m: Option<T>| match m {
            None => Ok(()),
            Some(m) => Err(SendTimeoutError::Disconnected(m)),
        };
        loop {
            let p = park::park(deadline);
            // The common way out: the receiver completed the wait, and the packet is ours
            // again without taking the lock.
            if p == Park::Woken && packet.done.load(Ordering::Acquire) {
                guard.armed.set(false);
                // SAFETY: `done` is set: the other side no longer touches the packet.
                return outcome(unsafe { (*packet.msg.get()).take() });
            }
            let mut s = self.lock();
            let done = packet.done.load(Ordering::Acquire);
            // Cancellation wins over completion: a cancelled coroutine must not carry on.
            if p == Park::Cancelled {
                if !done {
                    s.send_waiters.retain(|q| *q != ptr);
                }
                guard.armed.set(false);
                // SAFETY: lock held and the packet unpublished (or done): it is ours.
                let m = unsafe { (*packet.msg.get()).take() };
                drop(s);
                park::cancelled();
                return outcome(m);
            }
            if done {
                guard.armed.set(false);
                // SAFETY: `done` is set: the other side no longer touches the packet.
                return outcome(unsafe { (*packet.msg.get()).take() });
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                s.send_waiters.retain(|q| *q != ptr);
                guard.armed.set(false);
                // SAFETY: lock held and the packet unpublished: it is ours.
                let m = unsafe { (*packet.msg.get()).take() };
                return Err(SendTimeoutError::Timeout(
                    m.expect("an undelivered message"),
                ));
            }
            // SAFETY: lock held; the packet is published and only touched under the lock.
            unsafe {
                let w = &mut *packet.waiter.get();
                if w.is_none() {
                    *w = Some(Waiter::current());
                }
            }
        }
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
    fn try_recv(&self) -> Result<T, TryRecvError> {
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

    fn recv_deadline(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
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
        let packet = RecvPacket {
            slot: UnsafeCell::new(None),
            waiter: UnsafeCell::new(Some(Waiter::current())),
            done: AtomicBool::new(false),
        };
        let ptr = NonNull::from(&packet);
        debug_assert!(
            s.recv_waiter.is_none(),
            "two receivers blocked on one channel"
        );
        s.recv_waiter = Some(ptr);
        s.notify(Kind::Send);
        drop(s);
        wakes.run();
        let guard = RecvGuard {
            chan: self,
            armed: Cell::new(true),
        };
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
            let mut s = self.lock();
            let done = packet.done.load(Ordering::Acquire);
            // Cancellation wins over completion: a cancelled coroutine must not carry on.
            if p == Park::Cancelled {
                if !done {
                    s.recv_waiter = None;
                    s.recv_claimed = false;
                }
                guard.armed.set(false);
                drop(s);
                park::cancelled();
                return Err(RecvTimeoutError::Disconnected);
            }
            if done {
                guard.armed.set(false);
                // SAFETY: `done` is set: the other side no longer touches the packet.
                return unsafe { (*packet.slot.get()).take() }
                    .ok_or(RecvTimeoutError::Disconnected);
            }
            let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
            if timed_out && s.recv_claimed {
                wait_until = None;
            } else if timed_out {
                s.recv_waiter = None;
                guard.armed.set(false);
                return Err(RecvTimeoutError::Timeout);
            }
            // SAFETY: lock held; the packet is published and only touched under the lock.
            unsafe {
                let w = &mut *packet.waiter.get();
                if w.is_none() {
                    *w = Some(Waiter::current());
                }
            }
        }
    }

    fn add_sender(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    fn drop_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The last sender is gone: disconnect (see `Chan::senders`).
        let mut wakes = Wakes::default();
        {
            let mut s = self.lock();
            if let Some(p) = s.recv_waiter.take() {
                s.recv_claimed = false;
                // SAFETY: lock held; the receiver's packet was registered until just now.
                unsafe {
                    let p = p.as_ref();
                    complete(&p.waiter, &p.done, &mut wakes);
                }
            }
            s.notify(Kind::Recv);
        }
        wakes.run();
    }

    fn drop_receiver(&self) {
        let mut wakes = Wakes::default();
        let buffered = {
            let mut s = self.lock();
            s.receiver = false;
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
                _ => Some(Reservation::None),
            },
            Kind::Send => {
                let mut s = self.lock();
                if !s.receiver {
                    Some(Reservation::None)
                } else if s.recv_waiter.is_some() && !s.recv_claimed {
                    s.recv_claimed = true;
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

    /// Completes a selected send with its reservation.
    fn send_selected(&self, msg: T, r: Reservation) -> Result<(), SendError<T>> {
        let mut wakes = Wakes::default();
        let res = {
            let mut s = self.lock();
            match r {
                Reservation::Slot if s.receiver => s
                    .deliver(msg, true, &mut wakes)
                    .map_err(|_| unreachable!("a reserved slot")),
                Reservation::Receiver if s.receiver && s.recv_claimed => {
                    s.recv_claimed = false;
                    s.deliver(msg, false, &mut wakes)
                        .map_err(|_| unreachable!("a claimed receiver"))
                }
                _ => {
                    Self::release_locked(&mut s, r, &mut wakes);
                    if !s.receiver {
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

    /// Gives back a reservation whose selected operation was not completed.
    pub(crate) fn release(&self, r: Reservation) {
        let mut wakes = Wakes::default();
        Self::release_locked(&mut self.lock(), r, &mut wakes);
        wakes.run();
    }

    fn release_locked(s: &mut ChanGuard<'_, T>, r: Reservation, wakes: &mut Wakes) {
        match r {
            Reservation::None => {}
            Reservation::Slot => {
                s.reserved -= 1;
                s.pump(wakes);
            }
            Reservation::Receiver => {
                if s.recv_claimed {
                    s.recv_claimed = false;
                    s.pump(wakes);
                    // The receiver may have a deadline to honour now.
                    if let Some(p) = s.recv_waiter {
                        // SAFETY: lock held; the receiver's packet is registered, hence alive,
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
    /// The blocked receiver of a rendezvous channel.
    Receiver,
}

/// Removes a blocked receiver's packet if the wait is left some other way (unwinding).
struct RecvGuard<'a, T> {
    chan: &'a Chan<T>,
    armed: Cell<bool>,
}

impl<T> Drop for RecvGuard<'_, T> {
    fn drop(&mut self) {
        if self.armed.get() {
            let mut s = self.chan.lock();
            s.recv_waiter = None;
            s.recv_claimed = false;
        }
    }
}

/// Removes a blocked sender's packet if the wait is left some other way (unwinding).
struct SendGuard<'a, T> {
    chan: &'a Chan<T>,
    ptr: NonNull<SendPacket<T>>,
    armed: Cell<bool>,
}

impl<T> Drop for SendGuard<'_, T> {
    fn drop(&mut self) {
        if self.armed.get() {
            let ptr = self.ptr;
            self.chan.lock().send_waiters.retain(|q| *q != ptr);
        }
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

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender { .. }")
    }
}

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
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        self.chan
            .send_deadline(t, None)
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

impl<T> Drop for SyncSender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> fmt::Debug for SyncSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SyncSender { .. }")
    }
}

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

    /// Waits for a message. Fails once the channel is empty and every sender is gone.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv_deadline(None).map_err(|_| RecvError)
    }

    /// Takes a message if one is there now.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    /// Like [`recv`](Receiver::recv), but gives up after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan.recv_deadline(Instant::now().checked_add(timeout))
    }

    /// Like [`recv`](Receiver::recv), but gives up at `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.chan.recv_deadline(Some(deadline))
    }

    /// How many messages wait in the channel now (buffered, or held by blocked senders).
    /// Not in std's API; useful for schedulers and metrics.
    pub fn len(&self) -> usize {
        self.chan.len.load(Ordering::Acquire)
    }

    /// Whether no message waits in the channel now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An iterator that waits for messages and ends when the channel disconnects.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the messages that are there now.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    pub(crate) fn chan(&self) -> &Arc<Chan<T>> {
        &self.chan
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.drop_receiver();
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver { .. }")
    }
}

/// Waits for messages; see [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Takes the messages there now; see [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// The owning form of [`Iter`].
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// Completes a selected send; used by `SelectedOperation::send`.
pub(crate) fn send_selected<T>(chan: &Chan<T>, msg: T, r: Reservation) -> Result<(), SendError<T>> {
    chan.send_selected(msg, r)
}
