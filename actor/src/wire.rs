//! Replies across nodes: how a [`ReplyTo`] is serialised (feature `serde`).
//!
//! A transport (coact-net) encodes a message inside [`encoding`], which gives every `ReplyTo`
//! in it a place to register: the `ReplyTo` becomes an id on the wire, and the transport keeps
//! the [`PendingReply`] it was given under that id; the pending reply decodes the answer and
//! hands it to the local asker. On the receiving node the transport decodes inside
//! [`decoding`]: each id becomes a `ReplyTo` whose answer is encoded and given to the
//! transport's [`ReplySink`]. A reply dropped unanswered gives the sink `None`, so the asker
//! fails at once instead of at its timeout. Answers are encoded with bincode's standard
//! configuration.
//!
//! Outside these two scopes a `ReplyTo` refuses to be serialised, with an error that says so.

use std::cell::RefCell;

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::ser::{Error as _, Serializer};
use serde::{Deserialize, Serialize};

use crate::addr::{RemoteReply, ReplyInner};
use crate::ReplyTo;

/// A reply the local asker waits for: give it the encoded answer, or `None` if none will come.
pub type PendingReply = Box<dyn FnOnce(Option<&[u8]>) + Send>;
/// Where the remote side's answer goes: the encoded answer, or `None` if it was dropped.
pub type ReplySink = Box<dyn FnOnce(Option<Vec<u8>>) + Send>;
/// Registers a pending reply and returns the id that stands for it on the wire.
pub type Registrar = Box<dyn FnMut(PendingReply) -> u64>;
/// Makes the sink for the reply with a given id.
pub type SinkMaker = Box<dyn FnMut(u64) -> ReplySink>;

thread_local! {
    static ENCODER: RefCell<Option<Registrar>> = const { RefCell::new(None) };
    static DECODER: RefCell<Option<SinkMaker>> = const { RefCell::new(None) };
}

/// Runs `f` (which serialises messages) with `registrar` receiving their `ReplyTo`s.
pub fn encoding<T>(registrar: Registrar, f: impl FnOnce() -> T) -> T {
    let old = ENCODER.with(|c| c.replace(Some(registrar)));
    let r = f();
    ENCODER.with(|c| *c.borrow_mut() = old);
    r
}

/// Runs `f` (which deserialises messages) with `sinks` making their `ReplyTo`s.
pub fn decoding<T>(sinks: SinkMaker, f: impl FnOnce() -> T) -> T {
    let old = DECODER.with(|c| c.replace(Some(sinks)));
    let r = f();
    DECODER.with(|c| *c.borrow_mut() = old);
    r
}

/// A reply slot for an asker in this process, and the receiver its answer arrives on: what a
/// transport's `ask` puts in the request it encodes. The receiver reports disconnection as soon
/// as every copy of the slot is dropped unanswered.
pub fn local_reply<R>() -> (ReplyTo<R>, coact_runtime::sync::oneshot::Receiver<R>) {
    let (tx, rx) = coact_runtime::sync::oneshot::channel();
    (
        ReplyTo {
            inner: ReplyInner::Local(tx),
        },
        rx,
    )
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

impl<R: DeserializeOwned + Send + 'static> Serialize for ReplyTo<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ReplyInner::Local(tx) = &self.inner else {
            return Err(S::Error::custom(
                "a ReplyTo received from another node cannot be forwarded",
            ));
        };
        let tx = tx.clone();
        let pending: PendingReply = Box::new(move |bytes| {
            if let Some(b) = bytes {
                if let Ok((r, _)) = bincode::serde::decode_from_slice::<R, _>(b, config()) {
                    let _ = tx.send(r);
                }
            }
            // `None`, or an answer that does not decode: dropping `tx` fails the ask now.
        });
        let id = ENCODER.with(|c| c.borrow_mut().as_mut().map(|reg| reg(pending)));
        match id {
            Some(id) => s.serialize_u64(id),
            None => Err(S::Error::custom(
                "a ReplyTo can only be serialised by a coact-net link",
            )),
        }
    }
}

impl<'de, R: Serialize + Send + 'static> Deserialize<'de> for ReplyTo<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = u64::deserialize(d)?;
        let sink = DECODER.with(|c| c.borrow_mut().as_mut().map(|make| make(id)));
        match sink {
            Some(sink) => Ok(ReplyTo {
                inner: ReplyInner::Remote(Box::new(Remote::<R> {
                    sink: Some(sink),
                    _r: std::marker::PhantomData,
                })),
            }),
            None => Err(D::Error::custom(
                "a ReplyTo can only be deserialised by a coact-net link",
            )),
        }
    }
}

/// A reply that goes back over a link.
struct Remote<R> {
    sink: Option<ReplySink>,
    _r: std::marker::PhantomData<fn(R)>,
}

impl<R: Serialize + Send> RemoteReply<R> for Remote<R> {
    fn reply(mut self: Box<Self>, r: R) -> bool {
        let Some(sink) = self.sink.take() else {
            return false;
        };
        match bincode::serde::encode_to_vec(&r, config()) {
            Ok(bytes) => {
                sink(Some(bytes));
                true
            }
            Err(_) => {
                sink(None);
                false
            }
        }
    }
}

impl<R> Drop for Remote<R> {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink(None);
        }
    }
}
