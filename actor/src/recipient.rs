//! Location transparency: code generic over where an actor lives.

use std::time::Duration;

use crate::{Addr, AskError, ReplyTo, SendError, SendTimeoutError, TrySendError};

/// Something messages of type `M` can be sent to: a local [`Addr`], or an address on another
/// node (coact-net's remote address implements it too). Write code against this trait to be
/// generic over both.
///
/// ```
/// use coact_actor::{spawn_process, Inbox, Recipient};
///
/// fn greet_all<R: Recipient<String>>(to: &[R]) {
///     for r in to {
///         r.send("hello".to_owned()).unwrap();
///     }
/// }
///
/// coact_runtime::run(|| {
///     let (tx, rx) = coact_runtime::sync::mpsc::channel();
///     let a = spawn_process(move |inbox: Inbox<String>| while let Some(m) = inbox.recv() {
///         tx.send(m).unwrap();
///     });
///     greet_all(&[a]);
///     assert_eq!(rx.recv().unwrap(), "hello");
/// });
/// ```
pub trait Recipient<M>: Clone + Send + Sync {
    /// Sends, parking while the receiving side is full; see [`Addr::send`].
    fn send(&self, msg: M) -> Result<(), SendError<M>>;
    /// Sends if there is room now; see [`Addr::try_send`].
    fn try_send(&self, msg: M) -> Result<(), TrySendError<M>>;
    /// Sends, parking at most `timeout`; see [`Addr::send_timeout`].
    fn send_timeout(&self, msg: M, timeout: Duration) -> Result<(), SendTimeoutError<M>>;
    /// Request and reply with a timeout; see [`Addr::ask`].
    fn ask<R: Send + 'static>(
        &self,
        make: impl FnOnce(ReplyTo<R>) -> M,
        timeout: Duration,
    ) -> Result<R, AskError>;
}

impl<M: Send + 'static> Recipient<M> for Addr<M> {
    fn send(&self, msg: M) -> Result<(), SendError<M>> {
        Addr::send(self, msg)
    }
    fn try_send(&self, msg: M) -> Result<(), TrySendError<M>> {
        Addr::try_send(self, msg)
    }
    fn send_timeout(&self, msg: M, timeout: Duration) -> Result<(), SendTimeoutError<M>> {
        Addr::send_timeout(self, msg, timeout)
    }
    fn ask<R: Send + 'static>(
        &self,
        make: impl FnOnce(ReplyTo<R>) -> M,
        timeout: Duration,
    ) -> Result<R, AskError> {
        Addr::ask(self, make, timeout)
    }
}
