//! Distribution for coact: nodes that link over TCP, and actors that send to, ask and watch
//! actors on other nodes, still in plain blocking Rust.
//!
//! # A guide
//!
//! A [`Node`] listens on a socket and serves the actors it [`export`](Node::export)s. Another
//! node [`connect`](Node::connect)s to it, which gives a [`Peer`]; a
//! [`lookup`](Peer::lookup) on the peer gives a [`RemoteAddr`], which implements
//! [`Recipient`](coact_actor::Recipient) like a local [`Addr`](coact_actor::Addr) does:
//! `send`, `try_send`, `send_timeout` and `ask`. Messages cross the wire with serde and
//! bincode, a [`ReplyTo`](coact_actor::ReplyTo) included.
//!
//! Two nodes in one process:
//!
//! ```
//! use std::time::Duration;
//! use coact_actor::{spawn, Actor, Ctx, Recipient, ReplyTo};
//! use coact_net::{Node, NodeConfig};
//! use serde::{Deserialize, Serialize};
//!
//! struct Counter(u64);
//!
//! #[derive(Serialize, Deserialize)]
//! enum Msg { Add(u64), Get(ReplyTo<u64>) }
//!
//! impl Actor for Counter {
//!     type Msg = Msg;
//!     fn handle(&mut self, msg: Msg, _ctx: &mut Ctx<'_, Msg>) {
//!         match msg {
//!             Msg::Add(n) => self.0 += n,
//!             Msg::Get(reply) => { reply.send(self.0); }
//!         }
//!     }
//! }
//!
//! coact_runtime::run(|| {
//!     let local = "127.0.0.1:0".parse().unwrap();
//!     let a = Node::start(NodeConfig::new("a", local, "shared secret")).unwrap();
//!     let b = Node::start(NodeConfig::new("b", local, "shared secret")).unwrap();
//!     a.export("counter", spawn(Counter(0)));
//!
//!     let peer = b.connect(a.local_addr()); // returns at once; the link comes up behind it
//!     let t = Duration::from_secs(5);
//!     let counter = peer.lookup::<Msg>("counter", t).unwrap(); // waits for the link
//!     counter.send(Msg::Add(40)).unwrap();
//!     counter.send(Msg::Add(2)).unwrap();
//!     assert_eq!(counter.ask(Msg::Get, t), Ok(42)); // in order, after the two adds
//! });
//! ```
//!
//! # Failure
//!
//! A link that hears nothing for [`NodeConfig::down_after`] (peers send heartbeats every
//! [`NodeConfig::heartbeat`]), or whose connection fails, is down: every pending ask over it
//! fails at once with [`AskError::NoReply`](coact_actor::AskError), its remote addresses stop
//! accepting messages, and their monitors get [`StopReason::NodeDown`](coact_actor::StopReason).
//! The link then redials with backoff; look names up again once it is back.
//!
//! ```
//! use std::time::Duration;
//! use coact_actor::{spawn_process, Inbox, StopReason};
//! use coact_net::{Node, NodeConfig};
//!
//! coact_runtime::run(|| {
//!     let local = "127.0.0.1:0".parse().unwrap();
//!     let a = Node::start(NodeConfig::new("a", local, "s")).unwrap();
//!     let b = Node::start(NodeConfig::new("b", local, "s")).unwrap();
//!     a.export("sink", spawn_process(|inbox: Inbox<String>| while inbox.recv().is_some() {}));
//!     let peer = b.connect(a.local_addr());
//!     let sink = peer.lookup::<String>("sink", Duration::from_secs(5)).unwrap();
//!     let watch = sink.monitor();
//!     drop(a); // node a shuts down
//!     let down = watch.recv_timeout(Duration::from_secs(5)).expect("b sees a go down");
//!     assert!(matches!(down.reason, StopReason::NodeDown(_)));
//! });
//! ```
//!
//! # The wire
//!
//! Frames are a `u32` big-endian length and a payload in bincode 2's standard format (encoded
//! by bincode, decoded by coact's own deserializer for that format, which allocates each byte
//! string once and never more than the frame's bytes, and refuses values nested more than 64
//! deep, options, sequences, structs and enums counted alike, so that a recursive message type
//! cannot overflow the reader's stack); a length over
//! [`NodeConfig::max_frame`] closes the link before anything is allocated. A link starts
//! with a handshake in which both sides prove, with HMAC-SHA256 over fresh random challenges,
//! that they know the cluster's [`NodeConfig::secret`]; nothing else is processed before both
//! proofs verify, and the secret never crosses the wire. Exported actors are matched by name
//! and by the [`type_name`](std::any::type_name) of their message type, so build the nodes
//! of a cluster from the same source with the same compiler. Bad input on a link (a bad length,
//! a frame or a message that does not decode) closes that link with a logged reason; the node
//! and its other links carry on. The wire is not encrypted.
//!
//! # Logs
//!
//! Link events (a link refused at the handshake, a link down and why, bad input) are
//! [`tracing`](https://docs.rs/tracing) warnings with target `coact_net` and the node's name
//! in a `node` field; a message that cannot be encoded is an error event. Install a
//! `tracing` subscriber to see them; without one they cost nothing.
//!
//! # Speed
//!
//! Messages queued on a link while its writer is busy leave in one write, and the reader
//! takes many frames per read and hands each run of messages for one actor to its mailbox in
//! one go ([`Addr::send_batch`](coact_actor::Addr::send_batch)); encoding and decoding a
//! message are the per-message work left.
//! Mark byte payloads as byte strings (`#[serde(with = "serde_bytes")]` on a `Vec<u8>` field,
//! with the `serde_bytes` crate): the bytes on the wire are the same, but serde then copies
//! them in one piece instead of one byte at a time, which doubled the one-way rate of 64-byte
//! messages in coact's benchmark (BENCHMARKS.md).

mod de;
mod frame;
mod link;
mod node;
mod outq;
mod remote;
#[cfg(test)]
mod testing;

pub use link::LinkStats;
pub use node::{Node, NodeConfig};
pub use remote::{LookupError, Peer, RemoteAddr};

#[doc(hidden)]
pub use frame::decode_frame_for_fuzzing;
#[doc(hidden)]
pub use link::handshake_for_fuzzing;
