//! Waiting on several channel operations at once, shaped like crossbeam-channel's `Select`.
//!
//! ```
//! use std::time::Duration;
//! use coact_runtime::select::Select;
//! use coact_runtime::sync::mpsc::{channel, sync_channel};
//!
//! coact_runtime::run(|| {
//!     let (tx1, rx1) = channel::<u32>();
//!     let (tx2, rx2) = sync_channel::<&str>(1);
//!     coact_runtime::spawn(move || tx2.send("two").unwrap());
//!     let mut sel = Select::new();
//!     let a = sel.recv(&rx1);
//!     let b = sel.recv(&rx2);
//!     let op = sel.select_timeout(Duration::from_secs(10)).expect("a message within 10 s");
//!     assert_eq!(op.index(), b);
//!     assert_eq!(op.recv(&rx2), Ok("two"));
//!     let _ = (a, tx1);
//! });
//! ```
//!
//! # Persistent registrations
//!
//! The first time a `Select` has to wait, it registers with each of its channels, and the
//! registrations stay until the `Select` (or that operation, through [`Select::remove`]) is
//! dropped. A `Select` kept across the iterations of a loop therefore costs no registration per
//! iteration ([`Select::registrations`] counts them), and readiness that arrives while the
//! owner is busy between two selects is seen by the next one: each select starts by checking
//! every operation, and a channel event during the wait sets the `Select`'s pending flag.
//!
//! # Waiting
//!
//! A select (1) checks every operation, starting after the one chosen last time so that
//! always-ready operations take turns (a new `Select` starts at a pseudo-random one, so that
//! `select!`, which builds a set per call, treats its arms alike); (2) arms its signal
//! (pending = false, waiter = me); (3) checks every operation again, which closes the race
//! with an event between (1) and (2); (4) parks until a channel event sets pending, then
//! starts over. A ready send reserves its slot (or, on a rendezvous channel, a waiting
//! receiver), and a ready receive on an [`mpmc`] channel reserves its
//! message (other receivers could take it otherwise), so that the [`SelectedOperation`] it
//! returns can always complete; dropping the operation uncompleted gives the reservation back
//! and panics, as crossbeam's does.
//!
//! Receives work on [`mpsc`](crate::sync::mpsc), [`mpmc`] and
//! [`broadcast`] receivers and timers; sends on `mpsc` and `mpmc`
//! senders; [`Select::readable`] and [`Select::writable`] wait on sockets, pipes, child
//! processes and signals.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::net::unix::{self, UnixListener, UnixStream};
use crate::net::{ReadHalf, TcpListener, TcpStream, UdpSocket, WriteHalf};
use crate::park::{self, Park, Unparker};
use crate::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use crate::reactor::Direction;
use crate::signal::Signals;
use crate::sync::broadcast::{self, Cursor};
use crate::sync::lock;
use crate::sync::mpmc;
use crate::sync::mpsc::{Chan, Receiver, RecvError, Reservation, SendError, Sender, SyncSender};
use crate::time::Timer;

/// Which side of a channel an operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A receive.
    Recv,
    /// A send.
    Send,
}

/// How channels tell a waiting `Select` that something changed.
///
/// `armed` lets an event skip the lock while nobody waits, which is the common case for a
/// `Select` kept in a busy loop (every send into one of its channels notifies it). The
/// protocol, with both fences `SeqCst`:
///
/// ```text
/// select                                    notifier
/// A1. lock: pending = false, waiter = me,   N1. change the state (under the channel's lock,
///     armed = true                              publishing the message count), or the
/// A2. fence                                     socket's readiness sequence
/// A3. check every operation again           N2. fence
/// A4. park                                  N3. if armed: lock: pending = true, take the
///                                               waiter, armed = false; unpark it
/// ```
/// Either A3 sees N1's change (and the select does not park), or N3 sees A1's `armed` (and
/// wakes it). `armed` goes back to false when the waiter is taken (by N3 or by `disarm`), so
/// once one event has been delivered the rest skip the lock until the select arms again.
pub(crate) struct Signal {
    state: Mutex<SignalState>,
    armed: AtomicBool,
}

struct SignalState {
    pending: bool,
    waiter: Option<Unparker>,
}

impl Signal {
    /// Called by a channel (under its lock) when operation `index` may have become ready.
    pub(crate) fn notify(&self, _index: usize) {
        // Steps N2–N3 (see the type's docs).
        fence(Ordering::SeqCst);
        if !self.armed.load(Ordering::Relaxed) {
            return;
        }
        let w = {
            let mut s = lock(&self.state);
            s.pending = true;
            self.armed.store(false, Ordering::Relaxed);
            s.waiter.take()
        };
        if let Some(w) = w {
            w.unpark();
        }
    }

    /// Steps A1–A2: the caller checks every operation after this, then parks.
    fn arm(&self) {
        {
            let mut s = lock(&self.state);
            s.pending = false;
            s.waiter = Some(park::current());
            self.armed.store(true, Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
    }

    fn disarm(&self) {
        let mut s = lock(&self.state);
        s.waiter = None;
        self.armed.store(false, Ordering::Relaxed);
    }

    /// Whether an event came since `arm` (after a spurious wake the select stays armed: only
    /// an event takes the waiter, and it sets `pending` as it does).
    fn check(&self) -> bool {
        let mut s = lock(&self.state);
        if s.pending {
            s.waiter = None;
            self.armed.store(false, Ordering::Relaxed);
            return true;
        }
        debug_assert!(s.waiter.is_some(), "an armed select lost its waiter");
        false
    }
}

/// The channel operations a `Select` needs, with the message type erased.
trait Handle: Sync {
    fn poll(&self, kind: Kind) -> Option<Reservation>;
    fn release(&self, r: Reservation);
    fn register(&self, signal: &Arc<Signal>, index: usize, kind: Kind);
    fn unregister(&self, signal: &Arc<Signal>, index: usize);
}

impl<T: Send, const MULTI: bool> Handle for Chan<T, MULTI> {
    fn poll(&self, kind: Kind) -> Option<Reservation> {
        self.poll_select(kind)
    }
    fn release(&self, r: Reservation) {
        Chan::release(self, r)
    }
    fn register(&self, signal: &Arc<Signal>, index: usize, kind: Kind) {
        Chan::register(self, signal, index, kind)
    }
    fn unregister(&self, signal: &Arc<Signal>, index: usize) {
        Chan::unregister(self, signal, index)
    }
}

impl<T: Clone + Send> Handle for Cursor<T> {
    fn poll(&self, _kind: Kind) -> Option<Reservation> {
        self.ready().then_some(Reservation::None)
    }
    fn release(&self, _r: Reservation) {}
    fn register(&self, signal: &Arc<Signal>, index: usize, _kind: Kind) {
        Cursor::register(self, signal, index)
    }
    fn unregister(&self, signal: &Arc<Signal>, index: usize) {
        Cursor::unregister(self, signal, index)
    }
}

impl Handle for Direction {
    fn poll(&self, _kind: Kind) -> Option<Reservation> {
        self.is_ready().then_some(Reservation::None)
    }
    fn release(&self, _r: Reservation) {}
    fn register(&self, signal: &Arc<Signal>, index: usize, _kind: Kind) {
        self.add_observer(signal, index)
    }
    fn unregister(&self, signal: &Arc<Signal>, index: usize) {
        self.remove_observer(signal, index)
    }
}

/// A socket a `Select` can wait to read from: [`TcpStream`], [`ReadHalf`], [`TcpListener`]
/// (ready to accept), [`UdpSocket`], or their Unix counterparts ([`UnixStream`],
/// [`unix::ReadHalf`], [`UnixListener`]); a child's [`ChildStdout`] or [`ChildStderr`]; a
/// [`Child`] (it has exited: take its status with [`Child::try_wait`]; where exits are watched
/// through `SIGCHLD`, another child's exit wakes it too); or [`Signals`] (a signal has arrived;
/// take it with [`Signals::try_recv`]).
#[allow(private_interfaces)]
pub trait SelectReadable: sealed::Sealed {
    /// The readiness state of the read direction.
    #[doc(hidden)]
    fn read_dir(&self) -> &Direction;
}

/// A socket a `Select` can wait to write to: [`TcpStream`], [`WriteHalf`], [`UnixStream`],
/// [`unix::WriteHalf`], or a child's [`ChildStdin`].
#[allow(private_interfaces)]
pub trait SelectWritable: sealed::Sealed {
    /// The readiness state of the write direction.
    #[doc(hidden)]
    fn write_dir(&self) -> &Direction;
}

macro_rules! io_select {
    ($tr:ident $m:ident $inner:ident: $($t:ty),*) => {$(
        #[allow(private_interfaces)]
        impl $tr for $t {
            fn $m(&self) -> &Direction {
                self.$inner()
            }
        }
    )*};
}
io_select!(SelectReadable read_dir read_direction: TcpStream, ReadHalf, TcpListener, UdpSocket,
    UnixStream, unix::ReadHalf, UnixListener, Signals, Child, ChildStdout, ChildStderr);
io_select!(SelectWritable write_dir write_direction: TcpStream, WriteHalf, UnixStream,
    unix::WriteHalf, ChildStdin);

/// A receiving half a `Select` can use: an [`mpsc::Receiver`](Receiver), an
/// [`mpmc::Receiver`], a [`broadcast::Receiver`], or a [`Timer`].
///
/// [`mpmc::Receiver`]: crate::sync::mpmc::Receiver
/// [`broadcast::Receiver`]: crate::sync::broadcast::Receiver
#[allow(private_interfaces)]
pub trait SelectRecv<T>: sealed::Sealed {
    /// What a completed receive gives: `Result<T, RecvError>`, with the error type of the
    /// receiver's channel.
    type Output;
    /// A receive on the channel behind the receiver.
    #[doc(hidden)]
    fn recv_op(&self) -> Op<'_>;
    /// Completes a receive selected with the reservation `r`.
    #[doc(hidden)]
    fn recv_selected(&self, r: Reservation) -> Self::Output;
}

/// A sending half a `Select` can use: [`Sender`], [`SyncSender`] or an [`mpmc::Sender`].
///
/// [`mpmc::Sender`]: crate::sync::mpmc::Sender
#[allow(private_interfaces)]
pub trait SelectSend<T>: sealed::Sealed {
    /// A send on the channel behind the sender.
    #[doc(hidden)]
    fn send_op(&self) -> Op<'_>;
    /// Completes a send selected with the reservation `r`.
    #[doc(hidden)]
    fn send_selected(&self, msg: T, r: Reservation) -> Result<(), SendError<T>>;
}

macro_rules! select_recv {
    ($($t:ty),*) => {$(
        #[allow(private_interfaces)]
        impl<T: Send> SelectRecv<T> for $t {
            type Output = Result<T, RecvError>;
            #[inline]
            fn recv_op(&self) -> Op<'_> {
                Op::chan(&**self.chan(), Kind::Recv)
            }
            #[inline]
            fn recv_selected(&self, r: Reservation) -> Result<T, RecvError> {
                self.chan().recv_selected(r)
            }
        }
    )*};
}
select_recv!(Receiver<T>, mpmc::Receiver<T>);

#[allow(private_interfaces)]
impl<T: Clone + Send> SelectRecv<T> for broadcast::Receiver<T> {
    type Output = Result<T, broadcast::RecvError>;
    #[inline]
    fn recv_op(&self) -> Op<'_> {
        let cursor = self.cursor();
        Op::new(
            cursor,
            cursor as *const Cursor<T> as *const (),
            Kind::Recv,
            false,
        )
    }
    #[inline]
    fn recv_selected(&self, _r: Reservation) -> Result<T, broadcast::RecvError> {
        self.cursor().recv_selected()
    }
}

/// A reference to a receiver is selected as the receiver (`select!` takes its arms' receivers
/// by reference, so `recv(rx)` with `rx: &Receiver<T>` comes here).
#[allow(private_interfaces)]
impl<T, R: SelectRecv<T> + ?Sized> SelectRecv<T> for &R {
    type Output = R::Output;
    #[inline]
    fn recv_op(&self) -> Op<'_> {
        (**self).recv_op()
    }
    #[inline]
    fn recv_selected(&self, r: Reservation) -> R::Output {
        (**self).recv_selected(r)
    }
}

/// As for receivers, a reference to a sender is selected as the sender.
#[allow(private_interfaces)]
impl<T, S: SelectSend<T> + ?Sized> SelectSend<T> for &S {
    #[inline]
    fn send_op(&self) -> Op<'_> {
        (**self).send_op()
    }
    #[inline]
    fn send_selected(&self, msg: T, r: Reservation) -> Result<(), SendError<T>> {
        (**self).send_selected(msg, r)
    }
}

/// A [`Timer`] is selected as the receiver it derefs to (a generic parameter is not
/// deref-coerced, so it needs its own impl to be passed as it is).
#[allow(private_interfaces)]
impl SelectRecv<Instant> for Timer {
    type Output = Result<Instant, RecvError>;
    #[inline]
    fn recv_op(&self) -> Op<'_> {
        (**self).recv_op()
    }
    #[inline]
    fn recv_selected(&self, r: Reservation) -> Result<Instant, RecvError> {
        (**self).recv_selected(r)
    }
}

macro_rules! select_send {
    ($($t:ty),*) => {$(
        #[allow(private_interfaces)]
        impl<T: Send> SelectSend<T> for $t {
            #[inline]
            fn send_op(&self) -> Op<'_> {
                Op::chan(&**self.chan(), Kind::Send)
            }
            #[inline]
            fn send_selected(&self, msg: T, r: Reservation) -> Result<(), SendError<T>> {
                self.chan().send_selected(msg, r)
            }
        }
    )*};
}
select_send!(Sender<T>, SyncSender<T>, mpmc::Sender<T>);

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for super::Sender<T> {}
    impl<T> Sealed for super::SyncSender<T> {}
    impl<T> Sealed for super::Receiver<T> {}
    impl<T> Sealed for super::mpmc::Sender<T> {}
    impl<T> Sealed for super::mpmc::Receiver<T> {}
    impl Sealed for super::Timer {}
    impl<T> Sealed for super::broadcast::Receiver<T> {}
    impl<S: Sealed + ?Sized> Sealed for &S {}
    impl Sealed for super::TcpStream {}
    impl Sealed for super::ReadHalf {}
    impl Sealed for super::WriteHalf {}
    impl Sealed for super::TcpListener {}
    impl Sealed for super::UdpSocket {}
    impl Sealed for super::UnixStream {}
    impl Sealed for super::unix::ReadHalf {}
    impl Sealed for super::unix::WriteHalf {}
    impl Sealed for super::UnixListener {}
    impl Sealed for super::Signals {}
    impl Sealed for super::ChildStdin {}
    impl Sealed for super::Child {}
    impl Sealed for super::ChildStdout {}
    impl Sealed for super::ChildStderr {}
}

/// One operation of a set (or one arm of a [`select!`](crate::select!) call, which makes them
/// through `__macro_recv` and `__macro_send`). Not public API.
#[doc(hidden)]
pub struct Op<'a> {
    chan: &'a dyn Handle,
    /// Identifies the channel, to check the end passed to `SelectedOperation`.
    id: *const (),
    kind: Kind,
    /// A socket readiness operation (nothing to complete or reserve).
    io: bool,
    registered: bool,
}

impl<'a> Op<'a> {
    /// A receive or send on `chan`, not registered.
    #[inline]
    fn chan<T: Send + 'a, const MULTI: bool>(chan: &'a Chan<T, MULTI>, kind: Kind) -> Op<'a> {
        Op::new(
            chan,
            chan as *const Chan<T, MULTI> as *const (),
            kind,
            false,
        )
    }

    /// An operation on `handle`, identified by `id` (the address of what it stands for), not
    /// registered; `io` for a readiness wait (nothing to complete or reserve).
    #[inline]
    fn new(handle: &'a dyn Handle, id: *const (), kind: Kind, io: bool) -> Op<'a> {
        Op {
            chan: handle,
            id,
            kind,
            io,
            registered: false,
        }
    }

    /// This operation, chosen at `index` with the reservation `r`, as the caller completes it.
    #[inline]
    fn selected(&self, index: usize, r: Reservation) -> SelectedOperation<'a> {
        SelectedOperation {
            index,
            chan: self.chan,
            id: self.id,
            reservation: if self.io { None } else { Some(r) },
            _not_send: PhantomData,
        }
    }
}

/// Where a new `Select` (or a `select!` call) starts its first scan: a different operation
/// from one call to the next (a thread-local xorshift), so that `select!` in a loop does not
/// always choose its first ready arm over the others.
#[inline]
fn first_scan_start() -> usize {
    thread_local! {
        static STATE: std::cell::Cell<u32> = const { std::cell::Cell::new(0x9e37_79b9) };
    }
    STATE.with(|c| {
        let mut x = c.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c.set(x);
        x as usize
    })
}

/// A set of channel operations to wait on; see the module docs.
///
/// When several operations are ready, a set takes them in turn, starting after the one it
/// chose last; a new set starts at a pseudo-random one. A set made with
/// [`Select::new_biased`] takes the first ready one in the order they were added instead.
pub struct Select<'a> {
    ops: Vec<Option<Op<'a>>>,
    /// Made the first time the set has to wait: a select that finds an operation ready at
    /// once (the common case for `select!`, which builds a set per call) allocates none.
    signal: Option<Arc<Signal>>,
    registrations: u64,
    /// Where the next scan starts, modulo the number of operations: after the last chosen
    /// operation, or a pseudo-random one before the first choice.
    next: usize,
    /// Every scan starts at the first operation (see [`Select::new_biased`]).
    biased: bool,
}

// SAFETY: `id` is only compared, never dereferenced; every other field is Send (the handles
// are `&dyn Handle` with `Handle: Sync`).
unsafe impl Send for Select<'_> {}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field(
                "operations",
                &self.ops.iter().filter(|o| o.is_some()).count(),
            )
            .field("registrations", &self.registrations)
            .finish()
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// `try_select` found no operation ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrySelectError;
/// No operation became ready before the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectTimeoutError;
/// `try_ready` found no operation ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryReadyError;
/// No operation became ready before the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyTimeoutError;

macro_rules! error_display {
    ($($t:ty => $msg:literal),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str($msg) }
        }
        impl std::error::Error for $t {}
    )*};
}
error_display!(
    TrySelectError => "all operations in select would block",
    SelectTimeoutError => "timed out waiting on select",
    TryReadyError => "all operations in select would block",
    ReadyTimeoutError => "timed out waiting on ready"
);

impl<'a> Select<'a> {
    /// An empty set.
    #[inline]
    pub fn new() -> Self {
        Select {
            ops: Vec::new(),
            signal: None,
            registrations: 0,
            next: first_scan_start(),
            biased: false,
        }
    }

    /// An empty set that, when several operations are ready, always takes the one added
    /// first: for priorities, such as a stop channel that must win over a busy work queue.
    /// (A plain set takes ready operations in turn, so that none is starved; this one can
    /// starve the later ones while an earlier one stays ready.)
    ///
    /// ```
    /// use coact_runtime::select::Select;
    /// use coact_runtime::sync::mpsc::channel;
    ///
    /// let (stop_tx, stop) = channel::<()>();
    /// let (work_tx, work) = channel::<u32>();
    /// work_tx.send(1).unwrap();
    /// stop_tx.send(()).unwrap();
    /// let mut sel = Select::new_biased();
    /// let s = sel.recv(&stop);
    /// sel.recv(&work);
    /// let op = sel.select();
    /// assert_eq!(op.index(), s);
    /// op.recv(&stop).unwrap();
    /// ```
    #[inline]
    pub fn new_biased() -> Self {
        Select {
            ops: Vec::new(),
            signal: None,
            registrations: 0,
            next: 0,
            biased: true,
        }
    }

    /// Adds a receive on `r` (an [`mpsc`](crate::sync::mpsc) or [`mpmc`] receiver, or a
    /// [`Timer`]); returns the operation's index. On an `mpmc` channel, a selected receive holds
    /// its message until it is completed or dropped: another receiver cannot take it first.
    pub fn recv<T: Send + 'a, R: SelectRecv<T>>(&mut self, r: &'a R) -> usize {
        self.push(r.recv_op())
    }

    /// Adds a send on `s` (a [`Sender`], [`SyncSender`] or [`mpmc::Sender`]); returns the
    /// operation's index.
    pub fn send<T: Send + 'a, S: SelectSend<T>>(&mut self, s: &'a S) -> usize {
        self.push(s.send_op())
    }

    fn push(&mut self, op: Op<'a>) -> usize {
        self.ops.push(Some(op));
        self.ops.len() - 1
    }

    /// Adds a wait for `s` to be readable (for a listener: to have a connection to accept);
    /// returns the operation's index. Once selected, read with the socket's own calls.
    pub fn readable<S: SelectReadable>(&mut self, s: &'a S) -> usize {
        self.push_io(s.read_dir(), Kind::Recv)
    }

    /// Adds a wait for `s` to be writable; returns the operation's index.
    pub fn writable<S: SelectWritable>(&mut self, s: &'a S) -> usize {
        self.push_io(s.write_dir(), Kind::Send)
    }

    fn push_io(&mut self, dir: &'a Direction, kind: Kind) -> usize {
        self.ops.push(Some(Op::new(
            dir,
            dir as *const Direction as *const (),
            kind,
            true,
        )));
        self.ops.len() - 1
    }

    /// Removes the operation at `index`, and its registration.
    ///
    /// # Panics
    /// If there is no operation at `index`.
    pub fn remove(&mut self, index: usize) {
        let op = self
            .ops
            .get_mut(index)
            .and_then(Option::take)
            .expect("coact: no operation with this index in the Select");
        if op.registered {
            if let Some(signal) = &self.signal {
                op.chan.unregister(signal, index);
            }
        }
    }

    /// How many channel registrations this `Select` has made so far: one per operation, the
    /// first time it has to wait, however many times it is used.
    pub fn registrations(&self) -> u64 {
        self.registrations
    }

    /// Checks every operation once, in turn from after the last chosen one.
    fn scan(&mut self) -> Option<(usize, Reservation)> {
        if self.biased {
            self.next = 0;
        }
        scan(&self.ops, &mut self.next)
    }

    /// Makes the set's signal if it has none yet.
    fn ensure_signal(&mut self) {
        self.signal.get_or_insert_with(|| {
            Arc::new(Signal {
                state: Mutex::new(SignalState {
                    pending: false,
                    waiter: None,
                }),
                armed: AtomicBool::new(false),
            })
        });
    }

    fn register_all(&mut self) {
        self.ensure_signal();
        let signal = self.signal.as_ref().expect("made above");
        for (i, op) in self.ops.iter_mut().enumerate() {
            if let Some(op) = op {
                if !op.registered {
                    op.chan.register(signal, i, op.kind);
                    op.registered = true;
                    self.registrations += 1;
                }
            }
        }
    }

    /// The wait loop; `block == false` only scans.
    fn wait(&mut self, block: bool, deadline: Option<Instant>) -> Option<(usize, Reservation)> {
        if block {
            crate::worker::spend_coop();
        }
        if let Some(found) = self.scan() {
            return Some(found);
        }
        if !block {
            return None;
        }
        self.wait_registered(deadline)
    }

    /// The wait loop past a first look that found nothing: registers, arms, looks again
    /// (which closes the race with an event before the arming) and parks.
    fn wait_registered(&mut self, deadline: Option<Instant>) -> Option<(usize, Reservation)> {
        self.register_all();
        let signal = self.signal.as_ref().expect("register_all makes it");
        loop {
            signal.arm();
            if let Some(found) = scan(&self.ops, &mut self.next) {
                signal.disarm();
                return Some(found);
            }
            loop {
                if park::park(deadline) == Park::Cancelled {
                    signal.disarm();
                    park::cancelled();
                    return None;
                }
                if signal.check() {
                    break;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    signal.disarm();
                    return None;
                }
            }
        }
    }

    fn selected(&self, (index, r): (usize, Reservation)) -> SelectedOperation<'a> {
        self.ops[index]
            .as_ref()
            .expect("a chosen operation exists")
            .selected(index, r)
    }

    /// Waits until an operation is ready and returns it, to be completed with
    /// [`SelectedOperation::recv`] or [`SelectedOperation::send`].
    ///
    /// # Panics
    /// When the coroutine is cancelled while waiting, it unwinds (as every blocking call does).
    pub fn select(&mut self) -> SelectedOperation<'a> {
        crate::worker::spend_coop();
        // The common case inline: an operation is ready at the first look.
        if let Some(found) = self.scan() {
            return self.selected(found);
        }
        self.select_wait()
    }

    /// The rest of [`select`](Select::select) when nothing was ready: out of line, so the
    /// common case does not pay for the wait's frame.
    #[inline(never)]
    fn select_wait(&mut self) -> SelectedOperation<'a> {
        match self.wait_registered(None) {
            Some(found) => self.selected(found),
            None => panic!("coact: select gave up because the coroutine was cancelled"),
        }
    }

    /// Returns a ready operation if there is one now.
    pub fn try_select(&mut self) -> Result<SelectedOperation<'a>, TrySelectError> {
        self.wait(false, None)
            .map(|f| self.selected(f))
            .ok_or(TrySelectError)
    }

    /// Like [`select`](Select::select), but gives up after `timeout`.
    pub fn select_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(d) => self.select_deadline(d),
            None => Ok(self.select()),
        }
    }

    /// Like [`select`](Select::select), but gives up at `deadline`.
    pub fn select_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        self.wait(true, Some(deadline))
            .map(|f| self.selected(f))
            .ok_or(SelectTimeoutError)
    }

    fn index_only(&mut self, found: Option<(usize, Reservation)>) -> Option<usize> {
        found.map(|(i, r)| {
            if let Some(op) = &self.ops[i] {
                op.chan.release(r);
            }
            i
        })
    }

    /// Waits until an operation is ready and returns its index, without performing it (the
    /// operation may be taken by someone else before the caller gets to it).
    pub fn ready(&mut self) -> usize {
        let found = self.wait(true, None);
        self.index_only(found)
            .unwrap_or_else(|| panic!("coact: ready gave up because the coroutine was cancelled"))
    }

    /// The index of an operation ready now, if any.
    pub fn try_ready(&mut self) -> Result<usize, TryReadyError> {
        let found = self.wait(false, None);
        self.index_only(found).ok_or(TryReadyError)
    }

    /// Like [`ready`](Select::ready), but gives up after `timeout`.
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, ReadyTimeoutError> {
        let found = self.wait(true, Instant::now().checked_add(timeout));
        self.index_only(found).ok_or(ReadyTimeoutError)
    }
}

/// Checks every operation once, in turn from `*next` on; moves `*next` past the chosen one.
/// Inline: `select!`'s first look calls it from the user's crate, where the channels' types
/// are known; out of line it cost W2m 40 more instructions per iteration under callgrind.
#[inline]
fn scan(ops: &[Option<Op<'_>>], next: &mut usize) -> Option<(usize, Reservation)> {
    let n = ops.len();
    for k in 0..n {
        let i = (*next + k) % n;
        if let Some(op) = &ops[i] {
            if let Some(r) = op.chan.poll(op.kind) {
                *next = i + 1;
                return Some((i, r));
            }
        }
    }
    None
}

impl Drop for Select<'_> {
    fn drop(&mut self) {
        for (i, op) in self.ops.iter().enumerate() {
            if let Some(op) = op {
                if let (true, Some(signal)) = (op.registered, &self.signal) {
                    op.chan.unregister(signal, i);
                }
            }
        }
    }
}

/// A ready operation chosen by a [`Select`]; complete it with [`recv`](Self::recv) or
/// [`send`](Self::send) on the same channel end that was added.
#[must_use = "a selected operation must be completed with recv or send"]
pub struct SelectedOperation<'a> {
    index: usize,
    chan: &'a dyn Handle,
    id: *const (),
    reservation: Option<Reservation>,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for SelectedOperation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectedOperation")
            .field("index", &self.index)
            .finish()
    }
}

impl SelectedOperation<'_> {
    /// The index the operation got when it was added.
    pub fn index(&self) -> usize {
        self.index
    }

    #[inline]
    fn check(&self, op: Op<'_>) {
        assert!(
            std::ptr::eq(self.id, op.id),
            "coact: the channel passed to SelectedOperation is not the one that was selected"
        );
    }

    /// Completes a selected receive. Fails if the channel is disconnected and empty.
    pub fn recv<T, R: SelectRecv<T>>(mut self, r: &R) -> R::Output {
        self.check(r.recv_op());
        let res = self.reservation.take().unwrap_or(Reservation::None);
        r.recv_selected(res)
    }

    /// Completes a selected send. Fails, giving the message back, if the receiver is gone.
    pub fn send<T, S: SelectSend<T>>(mut self, s: &S, msg: T) -> Result<(), SendError<T>> {
        self.check(s.send_op());
        let r = self
            .reservation
            .take()
            .expect("a selected operation is completed once");
        s.send_selected(msg, r)
    }
}

impl Drop for SelectedOperation<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.reservation.take() {
            self.chan.release(r);
            // std's thread-wide flag, not `crate::panicking()`: a wrong "not unwinding" here
            // would panic during unwinding, which aborts.
            if !std::thread::panicking() {
                panic!("coact: a SelectedOperation was dropped without being completed");
            }
        }
    }
}

/// A receive arm of [`select!`](crate::select!). Not public API.
#[doc(hidden)]
#[inline]
pub fn __macro_recv<'a, T: Send + 'a, R: SelectRecv<T>>(r: &'a R) -> Option<Op<'a>> {
    Some(r.recv_op())
}

/// A send arm of [`select!`](crate::select!). Not public API.
#[doc(hidden)]
#[inline]
pub fn __macro_send<'a, T: Send + 'a, S: SelectSend<T>>(s: &'a S) -> Option<Op<'a>> {
    Some(s.send_op())
}

/// The first look of [`select!`](crate::select!): an arm ready now, scanned as a new set would
/// (from a pseudo-random one on, or from the first when `biased`), without building a
/// [`Select`] (no allocation, nothing registered). Only when none is ready does the macro
/// build a set and wait. Not public API.
#[doc(hidden)]
#[inline]
pub fn __macro_ready<'a>(arms: &[Option<Op<'a>>], biased: bool) -> Option<SelectedOperation<'a>> {
    let mut next = if biased { 0 } else { first_scan_start() };
    let (index, r) = scan(arms, &mut next)?;
    Some(
        arms[index]
            .as_ref()
            .expect("a chosen arm exists")
            .selected(index, r),
    )
}

/// The start of a [`select!`](crate::select!) that may wait: one unit of the coroutine's
/// fairness budget, as every blocking call spends. Not public API.
#[doc(hidden)]
#[inline]
pub fn __macro_coop() {
    crate::worker::spend_coop();
}

/// Waits on several channel operations, like crossbeam-channel's `select!`.
///
/// Arms are `recv(receiver) -> result => body`, `send(sender, message) -> result => body`,
/// and at most one of `default => body` (do not wait) or `default(timeout) => body`. The
/// message expression is evaluated only if its send is chosen; each channel expression is
/// evaluated once. At most 32 channel arms. When several arms are ready, which one is chosen
/// varies from call to call (pseudo-randomly), so a loop around `select!` serves them all.
/// Starting with `biased;`, the first ready arm in the written order is chosen instead (as
/// [`Select::new_biased`](crate::select::Select::new_biased) does): for priorities, such as a
/// stop channel that must win over a busy work queue.
///
/// ```
/// use coact_runtime::select;
/// use coact_runtime::sync::mpsc::{channel, sync_channel};
/// use std::time::Duration;
///
/// coact_runtime::run(|| {
///     let (tx, rx) = channel::<i32>();
///     let (out_tx, out_rx) = sync_channel::<i32>(1);
///     tx.send(20).unwrap();
///     let got = select! {
///         recv(rx) -> msg => msg.unwrap(),
///         default(Duration::from_secs(5)) => -1,
///     };
///     select! {
///         send(out_tx, got + 1) -> res => res.unwrap(),
///         default => panic!("there is room"),
///     }
///     assert_eq!(out_rx.recv(), Ok(21));
/// });
/// ```
#[macro_export]
macro_rules! select {
    (biased; $($tokens:tt)*) => {
        $crate::__coact_select!(
            @munch [$($tokens)*] [biased]
            [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31]
            []
        )
    };
    ($($tokens:tt)*) => {
        $crate::__coact_select!(
            @munch [$($tokens)*] []
            [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31]
            []
        )
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __coact_select {
    // ---- collect arms: [rest] [arms] [free indices] [default] ----
    // A leading `biased` in the arms says how the set scans (see `select!`).
    (@munch [] [biased $($arms:tt)*] [$($free:tt)*] [$($default:tt)*]) => {
        $crate::__coact_select!(@build biased [$($arms)*] [$($default)*])
    };
    (@munch [] [$($arms:tt)*] [$($free:tt)*] [$($default:tt)*]) => {
        $crate::__coact_select!(@build fair [$($arms)*] [$($default)*])
    };
    (@munch [recv($r:expr) -> $res:pat => $body:block, $($rest:tt)*] [$($arms:tt)*] [$i:tt $($free:tt)*] $d:tt) => {
        $crate::__coact_select!(@munch [$($rest)*] [$($arms)* [recv $i ($r) () ($res) $body]] [$($free)*] $d)
    };
    (@munch [recv($r:expr) -> $res:pat => $body:block $($rest:tt)*] [$($arms:tt)*] [$i:tt $($free:tt)*] $d:tt) => {
        $crate::__coact_select!(@munch [$($rest)*] [$($arms)* [recv $i ($r) () ($res) $body]] [$($free)*] $d)
    };
    (@munch [recv($r:expr) -> $res:pat => $body:expr, $($rest:tt)*] [$($arms:tt)*] [$i:tt $($free:tt)*] $d:tt) => {
        $crate::__coact_select!(@munch [$($rest)*] [$($arms)* [recv $i ($r) () ($res) ($body)]] [$($free)*] $d)
    };
    (@munch [recv($r:expr) -> $res:pat => $body:expr] [$($arms:tt)*] [$i:tt $($free:tt)*] $d:tt) => {
        $crate::__coact_select!(@munch [] [$($arms)* [recv $i ($r) () ($res) ($body)]] [$($free)*] $d)
    };
    (@munch [send($s:expr, $m:expr) -> $res:pat => $body:block, $($rest:tt)*] [$($arms:tt)*] [$i:tt $($free:tt)*] $d:tt) => {
        $crate::__coact_select!(@munch [$($rest)*] [$($arms)* [send $i ($s) ($m) ($res) $body]] [$($free)*] $d)
    };
    (@munch [send($s:expr, $m:expr) -> $res:pat => $body:block $($rest:tt)*] [$($arms:tt)*] [$i:tt $($free:tt)*] $d:tt) => {
        $crate::__coact_select!(@munch [$($rest)*] [$($arms)* [send $i ($s) ($m) ($res) $body]] [$($free)*] $d)
    };
    (@munch [send($s:expr, $m:expr) -> $res:pat => $body:expr, $($rest:tt)*] [$($arms:tt)*] [$i:tt $($free:tt)*] $d:tt) => {
        $crate::__coact_select!(@munch [$($rest)*] [$($arms)* [send $i ($s) ($m) ($res) ($body)]] [$($free)*] $d)
    };
    (@munch [send($s:expr, $m:expr) -> $res:pat => $body:expr] [$($arms:tt)*] [$i:tt $($free:tt)*] $d:tt) => {
        $crate::__coact_select!(@munch [] [$($arms)* [send $i ($s) ($m) ($res) ($body)]] [$($free)*] $d)
    };
    (@munch [default => $body:block $(,)? $($rest:tt)*] $arms:tt $free:tt []) => {
        $crate::__coact_select!(@munch [$($rest)*] $arms $free [now $body])
    };
    (@munch [default => $body:expr $(, $($rest:tt)*)?] $arms:tt $free:tt []) => {
        $crate::__coact_select!(@munch [$($($rest)*)?] $arms $free [now ($body)])
    };
    (@munch [default($t:expr) => $body:block $(,)? $($rest:tt)*] $arms:tt $free:tt []) => {
        $crate::__coact_select!(@munch [$($rest)*] $arms $free [timeout ($t) $body])
    };
    (@munch [default($t:expr) => $body:expr $(, $($rest:tt)*)?] $arms:tt $free:tt []) => {
        $crate::__coact_select!(@munch [$($($rest)*)?] $arms $free [timeout ($t) ($body)])
    };
    (@munch [default $($rest:tt)*] $arms:tt $free:tt [$($d:tt)+]) => {
        compile_error!("coact::select!: more than one default arm")
    };
    (@munch [$($rest:tt)+] $arms:tt [] $d:tt) => {
        compile_error!("coact::select!: more than 32 channel arms")
    };
    // ---- build ----
    // First a look at the arms without building a `Select` (`__macro_ready`); only when none
    // is ready is a set built, registered and waited on.
    (@build $bias:ident [$([$kind:ident $i:tt ($c:expr) $m:tt $res:tt $body:tt])*] $default:tt) => {{
        let __coact_chans = ($(&$c,)*);
        $crate::__coact_select!(@coop $default);
        let __coact_ready = $crate::select::__macro_ready(
            &[$( $crate::__coact_select!(@first $kind __coact_chans $i) ),*],
            $crate::__coact_select!(@is_biased $bias),
        );
        $crate::__coact_select!(@run $bias __coact_ready __coact_chans $default
            [$([$kind $i $m $res $body])*])
    }};
    (@is_biased biased) => { true };
    (@is_biased fair) => { false };
    (@new biased) => { $crate::select::Select::new_biased() };
    (@new fair) => { $crate::select::Select::new() };
    // A select that may wait spends fairness budget (see `__macro_coop`); `default` does not.
    (@coop [now $body:tt]) => {};
    (@coop $default:tt) => { $crate::select::__macro_coop() };
    (@first recv $chans:ident $i:tt) => { $crate::select::__macro_recv($chans.$i) };
    (@first send $chans:ident $i:tt) => { $crate::select::__macro_send($chans.$i) };
    (@add $sel:ident recv $chans:ident $i:tt) => { $sel.recv($chans.$i) };
    (@add $sel:ident send $chans:ident $i:tt) => { $sel.send($chans.$i) };
    (@set $bias:ident $chans:ident [$([$kind:ident $i:tt $m:tt $res:tt $body:tt])*]) => {{
        let mut __coact_sel = $crate::__coact_select!(@new $bias);
        $( $crate::__coact_select!(@add __coact_sel $kind $chans $i); )*
        __coact_sel
    }};
    // The outcome is bound before the match: a temporary in the scrutinee would live to the end
    // of the statement around the macro, past the channels of a block whose tail it is.
    (@run $bias:ident $ready:ident $chans:ident [] $arms:tt) => {{
        let __coact_op = match $ready {
            ::std::option::Option::Some(__coact_op) => __coact_op,
            ::std::option::Option::None => {
                let mut __coact_sel = $crate::__coact_select!(@set $bias $chans $arms);
                __coact_sel.select()
            }
        };
        $crate::__coact_select!(@dispatch __coact_op $chans $arms)
    }};
    // Nothing ready at the first look is what `try_select` would have found.
    (@run $bias:ident $ready:ident $chans:ident [now $body:tt] $arms:tt) => {{
        match $ready {
            ::std::option::Option::Some(__coact_op) => $crate::__coact_select!(@dispatch __coact_op $chans $arms),
            ::std::option::Option::None => $body,
        }
    }};
    (@run $bias:ident $ready:ident $chans:ident [timeout ($t:expr) $body:tt] $arms:tt) => {{
        let __coact_outcome = match $ready {
            ::std::option::Option::Some(__coact_op) => ::std::result::Result::Ok(__coact_op),
            ::std::option::Option::None => {
                let mut __coact_sel = $crate::__coact_select!(@set $bias $chans $arms);
                __coact_sel.select_timeout($t)
            }
        };
        match __coact_outcome {
            ::std::result::Result::Ok(__coact_op) => $crate::__coact_select!(@dispatch __coact_op $chans $arms),
            ::std::result::Result::Err(_) => $body,
        }
    }};
    (@dispatch $op:ident $chans:ident [$([$kind:ident $i:tt $m:tt $res:tt $body:tt])*]) => {{
        match $op.index() {
            $( $i => $crate::__coact_select!(@complete $op $chans $kind $i $m $res $body), )*
            _ => ::std::unreachable!(),
        }
    }};
    (@complete $op:ident $chans:ident recv $i:tt () ($res:pat) $body:tt) => {{
        #[allow(clippy::let_unit_value)]
        let $res = $op.recv($chans.$i);
        $body
    }};
    (@complete $op:ident $chans:ident send $i:tt ($m:expr) ($res:pat) $body:tt) => {{
        #[allow(clippy::let_unit_value)]
        let $res = $op.send($chans.$i, $m);
        $body
    }};
}
