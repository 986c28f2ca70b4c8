//! Peers and the addresses of actors on them.

use std::any::type_name;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coact_actor::wire::{self, PendingReply, Registrar};
use coact_actor::{
    ActorId, AskError, Down, Monitor, Recipient, ReplyTo, SendError, SendTimeoutError, StopReason,
    TrySendError,
};
use coact_runtime::sync::mpsc::{sync_channel, RecvTimeoutError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::frame::{self, encode_frame, Frame, LookupAnswer};
use crate::link::{LinkCore, LinkStats, Session};
use crate::outq::{PushError, Wait};

/// The scratch buffer of a thread's encodings is kept between messages up to this size.
const SCRATCH_KEEP: usize = 64 << 10;

/// Reply ids: unique in the process, so unique on every link.
static NEXT_REPLY_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Where a thread builds a message's frame (reused, so encoding allocates nothing).
    static FRAME: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// The replies registered by the encoding under way on this thread, with their ids.
    static PENDING: RefCell<Vec<(u64, PendingReply)>> = const { RefCell::new(Vec::new()) };
}

/// The thread's reused frame buffer ([`FRAME`]), taken for as long as it is
/// needed and given back when dropped (kept if not too large). A send that parks for room
/// keeps its frame buffer meanwhile; another send on the thread then makes its own.
struct Scratch {
    home: &'static std::thread::LocalKey<Cell<Vec<u8>>>,
    buf: Vec<u8>,
}

impl Scratch {
    fn take(home: &'static std::thread::LocalKey<Cell<Vec<u8>>>) -> Scratch {
        let mut buf = home.with(Cell::take);
        buf.clear();
        Scratch { home, buf }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.capacity() <= SCRATCH_KEEP {
            self.home.with(|c| c.set(buf));
        }
    }
}

/// Stops its link when the last [`Peer`] clone and the last [`RemoteAddr`] made through it are
/// dropped.
struct PeerGuard {
    core: Arc<LinkCore>,
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        self.core.stop("the peer handle was dropped");
    }
}

/// A link to another node, made by [`Node::connect`](crate::Node::connect). Cheap to clone.
///
/// The link redials with backoff whenever it is down. Each time it comes up is a new
/// *session*: addresses looked up and monitors taken during one session report the node
/// down when that session ends, and stay down (look the name up again after a reconnect).
#[derive(Clone)]
pub struct Peer {
    guard: Arc<PeerGuard>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("addr", &self.guard.core.target)
            .field("up", &self.is_up())
            .finish()
    }
}

/// Why a [`Peer::lookup`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The peer exports nothing under that name.
    NotExported,
    /// The peer exports an actor under that name, for another message type.
    WrongType {
        /// The type asked for.
        expected: String,
        /// The type the peer exported.
        found: String,
    },
    /// The link is down (or went down during the lookup).
    Down,
    /// No answer came before the timeout.
    Timeout,
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NotExported => f.write_str("nothing is exported under that name"),
            LookupError::WrongType { expected, found } => {
                write!(f, "the actor takes {found}, not {expected}")
            }
            LookupError::Down => f.write_str("the link to the node is down"),
            LookupError::Timeout => f.write_str("no answer before the timeout"),
        }
    }
}

impl std::error::Error for LookupError {}

impl Peer {
    pub(crate) fn new(core: Arc<LinkCore>) -> Peer {
        Peer {
            guard: Arc::new(PeerGuard { core }),
        }
    }

    /// The address the link dials.
    pub fn addr(&self) -> SocketAddr {
        self.guard.core.target
    }

    /// Whether the link is up (handshake done, not yet down).
    pub fn is_up(&self) -> bool {
        self.guard.core.current().is_some()
    }

    /// The name the peer node gave in the handshake, while the link is up.
    pub fn name(&self) -> Option<String> {
        self.guard.core.current().map(|s| s.peer_name.clone())
    }

    /// What crossed the link so far, over all its sessions (after their handshakes).
    pub fn stats(&self) -> LinkStats {
        self.guard.core.counters.snapshot()
    }

    /// Waits at most `timeout` for the link to be up; returns whether it is.
    pub fn wait_up(&self, timeout: Duration) -> bool {
        self.guard
            .core
            .wait_up(Instant::now().checked_add(timeout))
            .is_some()
    }

    /// Watches the link's current session: the monitor receives one [`Down`] with
    /// [`StopReason::NodeDown`] when it ends (at once if the link is not up now).
    pub fn monitor(&self) -> Monitor {
        let id = self.guard.core.id;
        match self.guard.core.current() {
            Some(s) => s.watch(id),
            None => {
                let (tx, rx) = sync_channel(1);
                let reason = StopReason::NodeDown("the link is not up".to_owned());
                let _ = tx.try_send(Down { id, reason });
                Monitor::from_receiver(rx)
            }
        }
    }

    /// Looks up the actor the peer exports under `name`, for messages of type `M`; waits for
    /// the link to come up, all within `timeout`.
    pub fn lookup<M>(&self, name: &str, timeout: Duration) -> Result<RemoteAddr<M>, LookupError>
    where
        M: Serialize + DeserializeOwned + Send + 'static,
    {
        let deadline = Instant::now().checked_add(timeout);
        let session = self.guard.core.wait_up(deadline).ok_or(LookupError::Down)?;
        let (id, rx) = session.register_lookup().ok_or(LookupError::Down)?;
        let frame = Frame::Lookup {
            id,
            name: name.to_owned(),
            type_name: type_name::<M>().to_owned(),
        };
        let bytes = encode_frame(&frame).map_err(|_| LookupError::Down)?;
        let wait = deadline.map_or(Wait::Forever, Wait::Until);
        let sent = session.push(&bytes, wait).map_err(|e| match e {
            PushError::Timeout | PushError::Full => LookupError::Timeout,
            PushError::Closed => LookupError::Down,
        });
        if let Err(e) = sent {
            session.cancel_lookup(id);
            return Err(e);
        }
        let answer = match deadline {
            Some(d) => rx.recv_deadline(d),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match answer {
            Ok(LookupAnswer::Found) => Ok(RemoteAddr {
                guard: self.guard.clone(),
                session,
                name: name.into(),
                id: ActorId::fresh(),
                _m: PhantomData,
            }),
            Ok(LookupAnswer::NotExported) => Err(LookupError::NotExported),
            Ok(LookupAnswer::WrongType(found)) => Err(LookupError::WrongType {
                expected: type_name::<M>().to_owned(),
                found,
            }),
            Err(RecvTimeoutError::Timeout) => {
                session.cancel_lookup(id);
                Err(LookupError::Timeout)
            }
            Err(RecvTimeoutError::Disconnected) => Err(LookupError::Down),
        }
    }
}

/// The address of an actor on another node, from [`Peer::lookup`]. Cheap to clone; `Send`
/// and `Sync`. Implements [`Recipient`], so code written against it works with local
/// [`Addr`](coact_actor::Addr)s too.
///
/// Messages go on the link's bounded outbound queue: [`send`](Recipient::send) parks while it
/// is full (and it fills when the remote actor's mailbox is full and the connection backs up),
/// so backpressure reaches the sender. Messages from one sender arrive in the order sent.
/// When the link's session ends, the address is down for good: sends fail, pending asks fail
/// at once with [`AskError::NoReply`], and [`monitor`](RemoteAddr::monitor)s get
/// [`StopReason::NodeDown`].
pub struct RemoteAddr<M> {
    guard: Arc<PeerGuard>,
    session: Arc<Session>,
    name: Arc<str>,
    id: ActorId,
    _m: PhantomData<fn(M)>,
}

impl<M> Clone for RemoteAddr<M> {
    fn clone(&self) -> Self {
        RemoteAddr {
            guard: self.guard.clone(),
            session: self.session.clone(),
            name: self.name.clone(),
            id: self.id,
            _m: PhantomData,
        }
    }
}

impl<M> fmt::Debug for RemoteAddr<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemoteAddr({:?} on {} at {})",
            self.name, self.session.peer_name, self.guard.core.target
        )
    }
}

impl<M: Serialize> RemoteAddr<M> {
    /// The name the actor is exported under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This address's identity (made up locally: it names the address, for [`Down`]s).
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// Whether the link session this address belongs to is still up.
    pub fn is_up(&self) -> bool {
        self.session.closed().is_none()
    }

    /// Watches the address: one [`Down`] with [`StopReason::NodeDown`] when its link session
    /// ends (at once if it has). It does not report the remote actor stopping.
    pub fn monitor(&self) -> Monitor {
        self.session.watch(self.id)
    }

    /// Encodes a `Send` frame for `msg`; returns it and the reply ids registered for it.
    fn encode(&self, msg: &M) -> Result<(Scratch, Vec<u64>), String> {
        // Taken, not borrowed: a `Serialize` impl that sends through another address while
        // being encoded then gets a buffer of its own.
        let mut out = Scratch::take(&FRAME);
        let head = frame::begin_send(&mut out.buf, &self.name);
        let mark = PENDING.with(|p| p.borrow().len());
        let registrar: Registrar = Box::new(|p| {
            let id = NEXT_REPLY_ID.fetch_add(1, Ordering::Relaxed);
            PENDING.with(|v| v.borrow_mut().push((id, p)));
            id
        });
        let encoded = wire::encoding(registrar, || {
            bincode::serde::encode_into_std_write(msg, &mut out.buf, frame::config())
        });
        // On an error below, the pending replies are dropped: their askers fail at once.
        let pending = PENDING.with(|p| p.borrow_mut().split_off(mark));
        let ids: Vec<u64> = pending.iter().map(|(id, _)| *id).collect();
        encoded.map_err(|e| e.to_string())?;
        head.finish(&mut out.buf, &ids)?;
        let len = out.buf.len() - 4;
        if len > self.session.max_frame {
            return Err(format!("a message of {len} bytes is over max_frame"));
        }
        // Registered before the frame can be queued, so a reply cannot beat it.
        self.session.register_replies(pending);
        Ok((out, ids))
    }

    /// Encodes `msg` and queues its frame, waiting for room as `wait` allows; returns the
    /// reply ids registered for it. A message that cannot be encoded (logged) or a closing
    /// link is `Closed`; a failed push fails the registered replies.
    fn encode_and_queue(&self, msg: &M, wait: Wait) -> Result<Vec<u64>, PushError> {
        let (frame, ids) = self.encode_or_log(msg).ok_or(PushError::Closed)?;
        match self.session.push(&frame.buf, wait) {
            Ok(()) => Ok(ids),
            Err(e) => {
                self.session.cancel_replies(&ids);
                Err(e)
            }
        }
    }

    fn encode_or_log(&self, msg: &M) -> Option<(Scratch, Vec<u64>)> {
        if self.session.is_closing() {
            return None;
        }
        match self.encode(msg) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(
                    target: "coact_net",
                    "a message for {:?} ({}) cannot be sent: {e}",
                    self.name,
                    type_name::<M>()
                );
                None
            }
        }
    }
}

impl<M: Serialize + Send + 'static> Recipient<M> for RemoteAddr<M> {
    fn send(&self, msg: M) -> Result<(), SendError<M>> {
        match self.encode_and_queue(&msg, Wait::Forever) {
            Ok(_) => Ok(()),
            Err(_) => Err(SendError(msg)),
        }
    }

    fn try_send(&self, msg: M) -> Result<(), TrySendError<M>> {
        match self.encode_and_queue(&msg, Wait::No) {
            Ok(_) => Ok(()),
            Err(PushError::Full) => Err(TrySendError::Full(msg)),
            Err(PushError::Timeout | PushError::Closed) => Err(TrySendError::Closed(msg)),
        }
    }

    fn send_timeout(&self, msg: M, timeout: Duration) -> Result<(), SendTimeoutError<M>> {
        let wait = Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until);
        match self.encode_and_queue(&msg, wait) {
            Ok(_) => Ok(()),
            Err(PushError::Timeout | PushError::Full) => Err(SendTimeoutError::Timeout(msg)),
            Err(PushError::Closed) => Err(SendTimeoutError::Closed(msg)),
        }
    }

    fn ask<R: Send + 'static>(
        &self,
        make: impl FnOnce(ReplyTo<R>) -> M,
        timeout: Duration,
    ) -> Result<R, AskError> {
        let deadline = Instant::now().checked_add(timeout);
        let (reply, rx) = wire::local_reply::<R>();
        let msg = make(reply);
        let wait = deadline.map_or(Wait::Forever, Wait::Until);
        let sent = self.encode_and_queue(&msg, wait);
        drop(msg); // the pending reply holds the only way to answer now
        let ids = sent.map_err(|e| match e {
            PushError::Timeout | PushError::Full => AskError::Timeout,
            PushError::Closed => AskError::Closed,
        })?;
        let answer = match deadline {
            Some(d) => rx.recv_deadline(d),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        answer.map_err(|e| match e {
            RecvTimeoutError::Timeout => {
                self.session.cancel_replies(&ids);
                AskError::Timeout
            }
            RecvTimeoutError::Disconnected => AskError::NoReply,
        })
    }
}
