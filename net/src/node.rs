//! Nodes: a listener, the exported actors, and the links to other nodes.

use std::any::type_name;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use coact_actor::wire::{self, SinkMaker};
use coact_actor::Addr;
use coact_runtime::net::TcpListener;
use coact_runtime::sync::mpsc::{sync_channel, Receiver};
use coact_runtime::{CoroutineId, Handle};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::frame::{self, LookupAnswer};
use crate::link::{self, lock, LinkCore, Session};
use crate::remote::Peer;

/// How a [`Node`] runs. [`NodeConfig::new`] fills in the defaults.
#[derive(Clone)]
pub struct NodeConfig {
    /// The node's name, told to peers in the handshake (and shown in logs).
    pub name: String,
    /// Where to listen (`127.0.0.1:0` picks a free port; see [`Node::local_addr`]).
    pub listen: SocketAddr,
    /// The secret every node of the cluster shares; links are authenticated with it
    /// (HMAC-SHA256 over fresh challenges). It never crosses the wire.
    pub secret: Vec<u8>,
    /// A link that sent nothing for this long sends a heartbeat. Default 1 s.
    pub heartbeat: Duration,
    /// A link that heard nothing (frame or heartbeat) for this long is declared down, and so is
    /// a handshake that takes longer. Default 3 s. Keep it well above `heartbeat`.
    pub down_after: Duration,
    /// The largest frame accepted; a longer length prefix closes the link. Default 16 MiB.
    pub max_frame: usize,
    /// Frames queued per link before senders park (backpressure). Default 1024.
    pub outbound: usize,
    /// The reconnect backoff of outbound links: it starts at the first and doubles up to the
    /// second. Default 50 ms to 2 s.
    pub reconnect: (Duration, Duration),
}

impl NodeConfig {
    /// A configuration with the defaults.
    pub fn new(name: impl Into<String>, listen: SocketAddr, secret: impl Into<Vec<u8>>) -> Self {
        NodeConfig {
            name: name.into(),
            listen,
            secret: secret.into(),
            heartbeat: Duration::from_secs(1),
            down_after: Duration::from_secs(3),
            max_frame: 16 << 20,
            outbound: 1024,
            reconnect: (Duration::from_millis(50), Duration::from_secs(2)),
        }
    }
}

impl NodeConfig {
    fn validate(&self) -> io::Result<()> {
        let bad = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()));
        if self.heartbeat.is_zero() || self.down_after <= self.heartbeat {
            return bad("coact-net: heartbeat must be above zero and below down_after");
        }
        if self.max_frame < 1024 || self.max_frame > u32::MAX as usize {
            return bad("coact-net: max_frame must be between 1 KiB and 4 GiB");
        }
        if self.outbound == 0 {
            return bad("coact-net: outbound must be at least 1");
        }
        if self.reconnect.0.is_zero() || self.reconnect.1 < self.reconnect.0 {
            return bad("coact-net: reconnect must be (min, max) with 0 < min <= max");
        }
        Ok(())
    }
}

impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfig")
            .field("name", &self.name)
            .field("listen", &self.listen)
            .field("secret", &"<hidden>")
            .field("heartbeat", &self.heartbeat)
            .field("down_after", &self.down_after)
            .field("max_frame", &self.max_frame)
            .field("outbound", &self.outbound)
            .field("reconnect", &self.reconnect)
            .finish()
    }
}

/// A link reader's inbox for one exported actor: decodes the messages of `Send` frames and
/// delivers them in batches (see [`Inbox::push`]).
pub(crate) trait Inbox: Send {
    /// Decodes a message (its payload, and the reply ids the sender listed in it) and holds it
    /// for the next [`flush`](Inbox::flush), flushing first (and then yielding the reader's
    /// coroutine) when [`BATCH`] are held. An error
    /// (the message does not decode) closes the link with that reason.
    fn push(
        &mut self,
        payload: &[u8],
        replies: &[u64],
        session: &Arc<Session>,
    ) -> Result<(), String>;
    /// Delivers the messages held, oldest first, parking while the actor's mailbox is full.
    /// An actor that has stopped drops them (and their `ReplyTo`s: their askers fail at once).
    fn flush(&mut self);
}

/// The most messages an [`Inbox`] holds before it delivers them. A reader also delivers before
/// each read that may wait and before any frame that is not a message, so a batch never
/// outwaits the bytes at hand, and delivery keeps the order of the link's frames. After a full
/// batch the reader yields, so the actor (and whatever else shares the worker) runs before it
/// decodes more: a 64 KiB read holds about 800 small messages, and handling each batch while
/// it is fresh in the cache measured 7 % faster one way than decoding the whole read first.
pub(crate) const BATCH: usize = 64;

/// Makes a link reader's inbox for an export.
type OpenInbox = dyn Fn() -> Box<dyn Inbox> + Send + Sync;

/// A link reader's memory of the last export it delivered to: the name, the exports'
/// generation it was looked up in, and its inbox for that export. Saves a lock and a hash per
/// message. Flush the inbox before dropping or replacing it (`NodeInner::export_cached` does).
pub(crate) type ExportCache = Option<(String, u64, Box<dyn Inbox>)>;

#[derive(Clone)]
pub(crate) struct Export {
    type_name: &'static str,
    open: Arc<OpenInbox>,
}

/// The inbox of an export of actors taking `M`.
struct TypedInbox<M> {
    addr: Addr<M>,
    /// The export's name, for error messages.
    name: Arc<str>,
    held: VecDeque<M>,
}

impl<M> Inbox for TypedInbox<M>
where
    M: DeserializeOwned + Send + 'static,
{
    fn push(
        &mut self,
        payload: &[u8],
        replies: &[u64],
        session: &Arc<Session>,
    ) -> Result<(), String> {
        let decoded = if replies.is_empty() {
            // No reply slot inside (one the sender did not list fails to decode).
            frame::decode(payload)
        } else {
            let s = session.clone();
            let sinks: SinkMaker = Box::new(move |id| s.reply_sink(id));
            wire::decoding(sinks, || frame::decode(payload))
        };
        let msg: M = decoded.map_err(|e| {
            format!(
                "bad input: a message for {:?} does not decode as {}: {e}",
                self.name,
                type_name::<M>()
            )
        })?;
        if self.held.len() >= BATCH {
            self.flush();
            // See `BATCH`.
            coact_runtime::yield_now();
        }
        self.held.push_back(msg);
        Ok(())
    }

    fn flush(&mut self) {
        if !self.held.is_empty() && self.addr.send_batch(&mut self.held).is_err() {
            self.held.clear();
        }
    }
}

pub(crate) struct NodeInner {
    pub(crate) config: NodeConfig,
    pub(crate) handle: Handle,
    local: SocketAddr,
    closed: AtomicBool,
    exports: Mutex<HashMap<String, Export>>,
    /// Bumped (under the `exports` lock) whenever an export is added, replaced or removed.
    exports_gen: AtomicU64,
    accept: Mutex<Option<CoroutineId>>,
    links: Mutex<Vec<Weak<LinkCore>>>,
    inbound: Mutex<Vec<Weak<Session>>>,
}

impl NodeInner {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The export under `name`, through the reader's `cache` (which it refreshes when the
    /// exports have changed since, or the name differs).
    /// A name that is not UTF-8 is bad input.
    pub(crate) fn export_cached<'c>(
        &self,
        name: &[u8],
        cache: &'c mut ExportCache,
    ) -> Result<Option<&'c mut Box<dyn Inbox>>, String> {
        let gen = self.exports_gen.load(Ordering::Acquire);
        let hit = matches!(cache, Some((n, g, _)) if *g == gen && n.as_bytes() == name);
        if !hit {
            // What the old inbox holds arrived first: it goes out first.
            if let Some((_, _, inbox)) = cache {
                inbox.flush();
            }
            let name = std::str::from_utf8(name).map_err(|_| {
                "bad input: a frame that does not decode: a name that is not UTF-8".to_owned()
            })?;
            let export = {
                let exports = lock(&self.exports);
                let gen = self.exports_gen.load(Ordering::Acquire);
                exports.get(name).map(|e| (gen, e.open.clone()))
            };
            *cache = export.map(|(gen, open)| (name.to_owned(), gen, open()));
        }
        Ok(cache.as_mut().map(|(_, _, inbox)| inbox))
    }

    pub(crate) fn lookup_answer(&self, name: &str, type_name: &str) -> LookupAnswer {
        match lock(&self.exports).get(name) {
            None => LookupAnswer::NotExported,
            Some(e) if e.type_name == type_name => LookupAnswer::Found,
            Some(e) => LookupAnswer::WrongType(e.type_name.to_owned()),
        }
    }

    pub(crate) fn add_inbound(&self, s: &Arc<Session>) {
        let mut v = lock(&self.inbound);
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(s));
        drop(v);
        if self.is_closed() {
            s.close("the node shut down");
        }
    }
}

/// A node: listens for links from other nodes, serves the actors it exports over every link,
/// and dials other nodes ([`Node::connect`]).
///
/// Dropping it shuts it down: the listener closes, and every link it accepted or dialed goes
/// down (their peers see the node down at once).
pub struct Node {
    inner: Arc<NodeInner>,
    accept_done: Receiver<()>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.inner.config.name)
            .field("local_addr", &self.inner.local)
            .finish()
    }
}

impl Node {
    /// Starts a node: binds its listener and spawns its accept loop. Call it inside a coact
    /// runtime (the node's coroutines run there).
    ///
    /// Fails if the configuration is inconsistent (`InvalidInput`), outside a runtime, or if
    /// the address cannot be bound.
    pub fn start(config: NodeConfig) -> io::Result<Node> {
        config.validate()?;
        let handle = Handle::current().ok_or_else(|| {
            io::Error::other("coact-net: Node::start must be called inside a coact runtime")
        })?;
        let listener = TcpListener::bind(config.listen)?;
        let local = listener.local_addr()?;
        let inner = Arc::new(NodeInner {
            config,
            handle: handle.clone(),
            local,
            closed: AtomicBool::new(false),
            exports: Mutex::new(HashMap::new()),
            exports_gen: AtomicU64::new(0),
            accept: Mutex::new(None),
            links: Mutex::new(Vec::new()),
            inbound: Mutex::new(Vec::new()),
        });
        let (done_tx, accept_done) = sync_channel::<()>(1);
        let (id_tx, id_rx) = sync_channel(1);
        let n = inner.clone();
        handle.spawn_detached(move || {
            let _done = done_tx; // dropped when the loop ends or unwinds
            let _ = id_tx.send(coact_runtime::current_coroutine());
            drop(id_tx);
            link::accept_loop(n, listener);
        });
        let id = id_rx.recv().ok().flatten();
        *lock(&inner.accept) = id;
        Ok(Node { inner, accept_done })
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// Exports an actor under `name` (replacing what was exported under it): peers may look it
    /// up and send to it. The message type's name ([`std::any::type_name`]) is recorded too; a
    /// lookup for another type fails with [`LookupError::WrongType`](crate::LookupError).
    /// Messages are delivered with [`Addr::send`], so a full mailbox slows the link down
    /// (backpressure) instead of growing a queue.
    pub fn export<M>(&self, name: impl Into<String>, addr: Addr<M>)
    where
        M: Serialize + DeserializeOwned + Send + 'static,
    {
        let name = name.into();
        let shown: Arc<str> = name.as_str().into();
        let open = move || -> Box<dyn Inbox> {
            Box::new(TypedInbox {
                addr: addr.clone(),
                name: shown.clone(),
                held: VecDeque::new(),
            })
        };
        let export = Export {
            type_name: type_name::<M>(),
            open: Arc::new(open),
        };
        let mut exports = lock(&self.inner.exports);
        exports.insert(name, export);
        self.inner.exports_gen.fetch_add(1, Ordering::Release);
    }

    /// Withdraws the export under `name`; later messages to it are dropped (their askers fail
    /// with `NoReply`) and lookups find nothing. Returns whether something was exported.
    pub fn unexport(&self, name: &str) -> bool {
        let mut exports = lock(&self.inner.exports);
        self.inner.exports_gen.fetch_add(1, Ordering::Release);
        exports.remove(name).is_some()
    }

    /// Links to the node at `addr`. Returns at once: a coroutine dials, authenticates, carries
    /// the link, and redials with backoff when it goes down, for as long as this node and the
    /// [`Peer`] (or an address looked up through it) live. See [`Peer::wait_up`].
    pub fn connect(&self, addr: SocketAddr) -> Peer {
        let core = Arc::new(LinkCore::new(addr));
        {
            let mut links = lock(&self.inner.links);
            links.retain(|w| w.strong_count() > 0);
            links.push(Arc::downgrade(&core));
        }
        let (n, c) = (self.inner.clone(), core.clone());
        self.inner
            .handle
            .spawn_detached(move || link::link_loop(n, c));
        if self.inner.is_closed() {
            core.stop("the node shut down");
        }
        Peer::new(core)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Release);
        if let Some(id) = lock(&inner.accept).take() {
            id.cancel();
        }
        let links: Vec<_> = lock(&inner.links).drain(..).collect();
        for l in links.iter().filter_map(Weak::upgrade) {
            l.stop("the node shut down");
        }
        let inbound: Vec<_> = lock(&inner.inbound).drain(..).collect();
        for s in inbound.iter().filter_map(Weak::upgrade) {
            s.close_gracefully("the node shut down");
        }
        // Wait until the listener is closed, so that the port can be bound again at once.
        let _ = self.accept_done.recv();
    }
}
