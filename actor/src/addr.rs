//! Addresses: how anyone sends to, asks, watches, stops or kills an actor.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coact_runtime::sync::mpsc::{self, sync_channel, Receiver, SyncSender};
use coact_runtime::sync::oneshot;

use crate::cell::{Control, Mailbox, KILL, STOP};
use crate::reason::{ActorId, Down, StopReason};

/// A typed, cheap-to-clone handle to an actor's mailbox. `Send` and `Sync`.
///
/// Messages from one sender arrive in the order sent. The mailbox is bounded: [`send`]
/// parks the caller while it is full (backpressure; nothing is dropped and nothing grows
/// without bound).
///
/// [`send`]: Addr::send
pub struct Addr<M> {
    tx: SyncSender<M>,
    ctl: Arc<dyn Mailbox<M>>,
    /// Whether this address counts as a reference from outside the actor. The actor's own
    /// address (in its `Ctx` or `Inbox`) does not: once no counted address is left and its
    /// mailbox is empty, nothing can ever reach the actor and it stops (`Normal`).
    counted: bool,
}

impl<M> Clone for Addr<M> {
    fn clone(&self) -> Self {
        // Every clone counts, even one made from the actor's own address: it may be handed out.
        self.ctl
            .common()
            .external
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Addr {
            tx: self.tx.clone(),
            ctl: self.ctl.clone(),
            counted: true,
        }
    }
}

impl<M> Drop for Addr<M> {
    fn drop(&mut self) {
        if self.counted
            && self
                .ctl
                .common()
                .external
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
                == 1
        {
            self.ctl.request(crate::cell::ORPHANED);
        }
    }
}

impl<M> fmt::Debug for Addr<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Addr({})", self.ctl.common().id)
    }
}

/// `send` failed: the actor has stopped. The message comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<M>(pub M);

/// `try_send` failed; the message comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<M> {
    /// The mailbox is full.
    Full(M),
    /// The actor has stopped.
    Closed(M),
}

/// `send_timeout` failed; the message comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<M> {
    /// The mailbox stayed full until the timeout.
    Timeout(M),
    /// The actor has stopped.
    Closed(M),
}

macro_rules! msg_error {
    ($($t:ident),*) => {$(
        impl<M> fmt::Debug for $t<M> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl<M> std::error::Error for $t<M> {}
    )*};
}
msg_error!(SendError, TrySendError, SendTimeoutError);

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the actor has stopped")
    }
}

impl<M> fmt::Display for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "the actor's mailbox is full",
            TrySendError::Closed(_) => "the actor has stopped",
        })
    }
}

impl<M> fmt::Display for SendTimeoutError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendTimeoutError::Timeout(_) => "the actor's mailbox stayed full until the timeout",
            SendTimeoutError::Closed(_) => "the actor has stopped",
        })
    }
}

impl<M> SendError<M> {
    /// The message that was not delivered.
    pub fn into_inner(self) -> M {
        self.0
    }
}

impl<M> TrySendError<M> {
    /// The message that was not delivered.
    pub fn into_inner(self) -> M {
        match self {
            TrySendError::Full(m) | TrySendError::Closed(m) => m,
        }
    }
}

impl<M> SendTimeoutError<M> {
    /// The message that was not delivered.
    pub fn into_inner(self) -> M {
        match self {
            SendTimeoutError::Timeout(m) | SendTimeoutError::Closed(m) => m,
        }
    }
}

/// Why an [`ask`](Addr::ask) got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskError {
    /// The actor had stopped before the request reached it.
    Closed,
    /// The actor dropped the request without replying: it stopped, panicked or was killed
    /// while the request was queued or being handled. Reported as soon as that happens.
    NoReply,
    /// No reply came before the timeout.
    Timeout,
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AskError::Closed => "the actor has stopped",
            AskError::NoReply => "the actor dropped the request without replying",
            AskError::Timeout => "no reply before the timeout",
        })
    }
}

impl std::error::Error for AskError {}

/// The reply slot of an [`ask`](Addr::ask): put it in the request message; the actor answers
/// with [`ReplyTo::send`]. Dropping it unanswered fails the ask at once with
/// [`AskError::NoReply`].
pub struct ReplyTo<R> {
    pub(crate) inner: ReplyInner<R>,
}

/// Where a reply goes.
pub(crate) enum ReplyInner<R> {
    /// To an asker in this process.
    Local(oneshot::Sender<R>),
    /// Back over a link to an asker on another node (see the `serde` feature).
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    Remote(Box<dyn RemoteReply<R>>),
}

/// A reply path to another node, made by a transport.
pub(crate) trait RemoteReply<R>: Send {
    /// Sends the reply; false if it cannot be delivered.
    fn reply(self: Box<Self>, r: R) -> bool;
}

impl<R> ReplyTo<R> {
    /// Answers the request. Returns `false` if the asker has given up (timed out) or cannot
    /// be reached any more.
    pub fn send(self, reply: R) -> bool {
        match self.inner {
            ReplyInner::Local(tx) => tx.send(reply).is_ok(),
            ReplyInner::Remote(r) => r.reply(reply),
        }
    }
}

impl<R> fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyTo")
    }
}

/// A monitor: receives one [`Down`] when the watched actor stops.
#[derive(Debug)]
pub struct Monitor {
    rx: Receiver<Down>,
}

impl Monitor {
    /// A monitor fed by a channel of the caller's: for transports that watch actors elsewhere.
    pub fn from_receiver(rx: Receiver<Down>) -> Monitor {
        Monitor { rx }
    }

    /// Waits for the actor to stop.
    pub fn recv(&self) -> Down {
        self.rx
            .recv()
            .expect("coact: the monitored actor's notice was lost")
    }

    /// Waits for the actor to stop, at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Down> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The notice, if the actor has stopped.
    pub fn try_recv(&self) -> Option<Down> {
        self.rx.try_recv().ok()
    }

    /// The channel the notice arrives on, to wait on it in a
    /// [`Select`](coact_runtime::select::Select) with other events.
    pub fn receiver(&self) -> &Receiver<Down> {
        &self.rx
    }
}

impl<M> Addr<M> {
    /// The first external address of a new actor.
    pub(crate) fn new(tx: SyncSender<M>, ctl: Arc<dyn Mailbox<M>>) -> Self {
        ctl.common()
            .external
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Addr {
            tx,
            ctl,
            counted: true,
        }
    }

    /// The actor's own address, which does not keep it alive.
    pub(crate) fn own(&self) -> Self {
        Addr {
            tx: self.tx.clone(),
            ctl: self.ctl.clone(),
            counted: false,
        }
    }

    /// The actor's identity.
    pub fn id(&self) -> ActorId {
        self.ctl.common().id
    }

    /// Sends a message, parking the caller while the mailbox is full. Fails, giving the
    /// message back, if the actor has stopped.
    pub fn send(&self, msg: M) -> Result<(), SendError<M>> {
        let Err(msg) = self.ctl.hand_over(msg, &self.tx) else {
            return Ok(());
        };
        self.tx.send(msg).map_err(|e| SendError(e.0))?;
        self.ctl.notify();
        Ok(())
    }

    /// Sends every message in `msgs`, oldest first, parking the caller while the mailbox is
    /// full: the same as [`send`](Addr::send) of each in turn, but the mailbox's lock is taken
    /// once for each run of messages that fit, and the actor is woken once per run. Fails if
    /// the actor has stopped, leaving the messages not sent in `msgs`.
    ///
    /// ```
    /// use coact_actor::{spawn, Actor, Ctx, ReplyTo};
    /// use std::collections::VecDeque;
    /// use std::time::Duration;
    ///
    /// struct Sum(u64);
    /// enum Msg { Add(u64), Get(ReplyTo<u64>) }
    /// impl Actor for Sum {
    ///     type Msg = Msg;
    ///     fn handle(&mut self, msg: Msg, _ctx: &mut Ctx<'_, Msg>) {
    ///         match msg {
    ///             Msg::Add(n) => self.0 += n,
    ///             Msg::Get(reply) => { reply.send(self.0); }
    ///         }
    ///     }
    /// }
    ///
    /// coact_runtime::run(|| {
    ///     let sum = spawn(Sum(0));
    ///     let mut batch: VecDeque<Msg> = (1..=100).map(Msg::Add).collect();
    ///     sum.send_batch(&mut batch).unwrap();
    ///     assert!(batch.is_empty());
    ///     assert_eq!(sum.ask(Msg::Get, Duration::from_secs(5)), Ok(5050));
    /// });
    /// ```
    pub fn send_batch(&self, msgs: &mut VecDeque<M>) -> Result<(), SendError<()>> {
        if let Some(first) = msgs.pop_front() {
            if let Err(first) = self.ctl.hand_over(first, &self.tx) {
                msgs.push_front(first);
            }
        }
        while !msgs.is_empty() {
            if self.tx.try_send_from(msgs).map_err(|_| SendError(()))? > 0 {
                self.ctl.notify();
            }
            // Whatever is left found the mailbox full (the notifications above scheduled the
            // actor to empty it): wait for room with one message, then fill again.
            if let Some(msg) = msgs.pop_front() {
                self.tx.send(msg).map_err(|e| {
                    msgs.push_front(e.0);
                    SendError(())
                })?;
                self.ctl.notify();
            }
        }
        Ok(())
    }

    /// Sends a message if there is room now.
    pub fn try_send(&self, msg: M) -> Result<(), TrySendError<M>> {
        let Err(msg) = self.ctl.hand_over(msg, &self.tx) else {
            return Ok(());
        };
        self.tx.try_send(msg).map_err(|e| match e {
            mpsc::TrySendError::Full(m) => TrySendError::Full(m),
            mpsc::TrySendError::Disconnected(m) => TrySendError::Closed(m),
        })?;
        self.ctl.notify();
        Ok(())
    }

    /// Sends a message, parking at most `timeout` for room.
    pub fn send_timeout(&self, msg: M, timeout: Duration) -> Result<(), SendTimeoutError<M>> {
        let Err(msg) = self.ctl.hand_over(msg, &self.tx) else {
            return Ok(());
        };
        self.tx.send_timeout(msg, timeout).map_err(|e| match e {
            mpsc::SendTimeoutError::Timeout(m) => SendTimeoutError::Timeout(m),
            mpsc::SendTimeoutError::Disconnected(m) => SendTimeoutError::Closed(m),
        })?;
        self.ctl.notify();
        Ok(())
    }

    /// Sends a request built by `make` around a [`ReplyTo`] and waits at most `timeout` for
    /// the reply. The timeout covers the whole exchange, the wait for mailbox room included.
    ///
    /// ```
    /// use coact_actor::{spawn, Actor, Ctx, ReplyTo};
    /// use std::time::Duration;
    ///
    /// struct Counter(u64);
    /// enum Msg { Add(u64), Get(ReplyTo<u64>) }
    /// impl Actor for Counter {
    ///     type Msg = Msg;
    ///     fn handle(&mut self, msg: Msg, _ctx: &mut Ctx<'_, Msg>) {
    ///         match msg {
    ///             Msg::Add(n) => self.0 += n,
    ///             Msg::Get(reply) => { reply.send(self.0); }
    ///         }
    ///     }
    /// }
    ///
    /// coact_runtime::run(|| {
    ///     let counter = spawn(Counter(0));
    ///     counter.send(Msg::Add(40)).unwrap();
    ///     counter.send(Msg::Add(2)).unwrap();
    ///     assert_eq!(counter.ask(Msg::Get, Duration::from_secs(5)), Ok(42));
    /// });
    /// ```
    pub fn ask<R>(
        &self,
        make: impl FnOnce(ReplyTo<R>) -> M,
        timeout: Duration,
    ) -> Result<R, AskError> {
        let deadline = Instant::now().checked_add(timeout);
        let (tx, rx) = oneshot::channel();
        let msg = make(ReplyTo {
            inner: ReplyInner::Local(tx),
        });
        if let Err(msg) = self.ctl.hand_over(msg, &self.tx) {
            let sent = match deadline {
                Some(d) => self.tx.send_deadline(msg, d).map_err(|e| match e {
                    mpsc::SendTimeoutError::Timeout(_) => AskError::Timeout,
                    mpsc::SendTimeoutError::Disconnected(_) => AskError::Closed,
                }),
                None => self.tx.send(msg).map_err(|_| AskError::Closed),
            };
            sent?;
            self.ctl.notify();
        }
        match deadline {
            Some(d) => rx.recv_deadline(d).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => AskError::Timeout,
                mpsc::RecvTimeoutError::Disconnected => AskError::NoReply,
            }),
            None => rx.recv().map_err(|_| AskError::NoReply),
        }
    }

    /// Asks the actor to stop after the message it is handling (if any): queued messages are
    /// dropped, monitors get [`StopReason::Stopped`].
    pub fn stop(&self) {
        self.ctl.request(STOP);
    }

    /// Stops the actor now: a handler blocked in a call unwinds where it stands (destructors
    /// run), monitors get [`StopReason::Killed`]. A handler busy computing is stopped at its
    /// next blocking call or when it returns.
    ///
    /// A kill costs a system call (an asymmetric barrier that keeps every message's activation
    /// free of a fence, see `coact_runtime::barrier`): microseconds, where a send costs
    /// nanoseconds.
    pub fn kill(&self) {
        self.ctl.request(KILL);
    }

    /// Watches the actor: the monitor receives one [`Down`] when it stops (at once if it
    /// already has).
    pub fn monitor(&self) -> Monitor {
        let (tx, rx) = sync_channel(1);
        self.ctl.common().watch(tx);
        Monitor { rx }
    }

    /// Whether the actor has stopped, and why.
    pub fn stopped(&self) -> Option<StopReason> {
        self.ctl.common().stopped_with()
    }

    pub(crate) fn control(&self) -> Arc<dyn Control> {
        self.ctl.clone()
    }

    pub(crate) fn common(&self) -> &crate::cell::Common {
        self.ctl.common()
    }
}
