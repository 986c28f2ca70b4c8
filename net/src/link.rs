//! Links: the handshake, and per connection a reader and a writer coroutine.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use coact_actor::wire::{PendingReply, ReplySink};
use coact_actor::{ActorId, Down, Monitor, StopReason};
use coact_runtime::net::{TcpListener, TcpStream, WriteHalf};
use coact_runtime::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use coact_runtime::{CoroutineId, Handle};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::frame::{
    decode, decode_send, encode_frame, read_frame, Frame, FrameReader, LookupAnswer, ReadError,
    SendIn, MAGIC, VERSION,
};
use crate::node::{ExportCache, NodeInner};
use crate::outq::{OutQueue, PushError, Wait};

/// The writer gathers queued frames into one write of about this many bytes.
const BATCH: usize = 64 << 10;
/// The largest frame accepted before the handshake is done.
const HANDSHAKE_MAX_FRAME: usize = 64 << 10;
/// The label every handshake MAC starts with.
const MAC_LABEL: &[u8] = b"coact-handshake/1";

/// Locks a std mutex, ignoring poisoning (no critical section here can leave a broken state).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reports a link event: a `tracing` warning (target `coact_net`) naming the node.
pub(crate) fn log(node: &str, what: std::fmt::Arguments<'_>) {
    tracing::warn!(target: "coact_net", node, "{what}");
}

/// What crossed a link after its handshakes: frames and bytes (length prefixes included),
/// each way. Heartbeats count too.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames written.
    pub frames_sent: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Frames read.
    pub frames_received: u64,
    /// Bytes read.
    pub bytes_received: u64,
}

/// The live counters behind [`LinkStats`], shared by the sessions of one link.
#[derive(Default)]
pub(crate) struct Counters {
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> LinkStats {
        LinkStats {
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            frames_received: self.frames_received.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
        }
    }
}

/// One authenticated connection, from the end of its handshake until it closes. Addresses
/// looked up over it, pending replies and monitors all belong to it: when it closes they all
/// learn at once.
pub(crate) struct Session {
    pub(crate) peer_name: String,
    pub(crate) max_frame: usize,
    counters: Arc<Counters>,
    out: OutQueue,
    /// Set with `state.closed`; read by the reader on every frame.
    closing: AtomicBool,
    /// How long a graceful close may take before the connection is cut.
    linger: Duration,
    handle: Handle,
    state: Mutex<SessionState>,
    /// A duplicate of the socket, to shut the connection down from anywhere.
    socket: Mutex<Option<TcpStream>>,
}

#[derive(Default)]
struct SessionState {
    closed: Option<String>,
    next_id: u64,
    replies: HashMap<u64, PendingReply>,
    lookups: HashMap<u64, SyncSender<LookupAnswer>>,
    monitors: Vec<(ActorId, SyncSender<Down>)>,
}

impl Session {
    /// Why the session closed, if it has.
    pub(crate) fn closed(&self) -> Option<String> {
        lock(&self.state).closed.clone()
    }

    /// Why the session closed, for a link that found its queue closed.
    fn closed_reason(&self) -> String {
        self.closed()
            .unwrap_or_else(|| "the link closed".to_owned())
    }

    /// Registers replies under the ids already chosen for them (encoded into a message that is
    /// about to be queued). If the session has closed, they fail at once.
    pub(crate) fn register_replies(&self, pending: Vec<(u64, PendingReply)>) {
        if pending.is_empty() {
            return;
        }
        let mut st = lock(&self.state);
        if st.closed.is_some() {
            drop(st);
            for (_, p) in pending {
                p(None);
            }
            return;
        }
        st.replies.extend(pending);
    }

    /// Forgets pending replies (their askers fail at once with `NoReply`, or timed out).
    pub(crate) fn cancel_replies(&self, ids: &[u64]) {
        let dropped: Vec<_> = {
            let mut st = lock(&self.state);
            ids.iter().filter_map(|id| st.replies.remove(id)).collect()
        };
        drop(dropped);
    }

    fn complete_reply(&self, id: u64, payload: Option<&[u8]>) {
        let p = lock(&self.state).replies.remove(&id);
        if let Some(p) = p {
            p(payload);
        }
    }

    /// Registers a lookup; `None` if the session has closed.
    pub(crate) fn register_lookup(&self) -> Option<(u64, Receiver<LookupAnswer>)> {
        let mut st = lock(&self.state);
        st.closed.is_none().then(|| {
            st.next_id += 1;
            let id = st.next_id;
            let (tx, rx) = sync_channel(1);
            st.lookups.insert(id, tx);
            (id, rx)
        })
    }

    pub(crate) fn cancel_lookup(&self, id: u64) {
        lock(&self.state).lookups.remove(&id);
    }

    fn complete_lookup(&self, id: u64, answer: LookupAnswer) {
        if let Some(tx) = lock(&self.state).lookups.remove(&id) {
            let _ = tx.try_send(answer);
        }
    }

    /// A monitor that gets `Down { id, NodeDown }` when the session closes (at once if it has).
    pub(crate) fn watch(&self, id: ActorId) -> Monitor {
        let (tx, rx) = sync_channel(1);
        let mut st = lock(&self.state);
        match &st.closed {
            Some(why) => {
                let reason = StopReason::NodeDown(why.clone());
                let _ = tx.try_send(Down { id, reason });
            }
            None => st.monitors.push((id, tx)),
        }
        Monitor::from_receiver(rx)
    }

    /// Closes the session: cuts the connection, fails every pending reply and lookup, tells
    /// every monitor. Idempotent; never parks (it runs in destructors too).
    pub(crate) fn close(&self, why: &str) {
        self.mark_closed(why);
        self.cut();
        self.out.close(); // wakes an idle writer, which then exits
    }

    /// Closes the session politely: everything waiting on it learns at once, as with
    /// [`close`](Self::close), but the frames already queued (replies, say) are still written
    /// before the write side is shut; the connection is cut at the latest `linger` later.
    pub(crate) fn close_gracefully(self: &Arc<Self>, why: &str) {
        if !self.mark_closed(why) {
            return;
        }
        if self.out.is_closed() {
            self.cut(); // the writer is gone: nothing will flush
            return;
        }
        self.out.finish();
        let s = self.clone();
        self.handle.spawn_detached(move || {
            coact_runtime::time::sleep(s.linger);
            s.cut();
        });
    }

    /// Shuts the connection down both ways and lets go of this session's descriptor.
    fn cut(&self) {
        if let Some(s) = lock(&self.socket).take() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Whether the session has closed (or is closing gracefully); no lock.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Records why the session closed and tells everyone waiting on it; false if it had
    /// closed already.
    fn mark_closed(&self, why: &str) -> bool {
        let (replies, lookups, monitors) = {
            let mut st = lock(&self.state);
            if st.closed.is_some() {
                return false;
            }
            st.closed = Some(why.to_owned());
            self.closing.store(true, Ordering::Release);
            (
                std::mem::take(&mut st.replies),
                std::mem::take(&mut st.lookups),
                std::mem::take(&mut st.monitors),
            )
        };
        for p in replies.into_values() {
            p(None);
        }
        drop(lookups);
        for (id, tx) in monitors {
            let reason = StopReason::NodeDown(why.to_owned());
            let _ = tx.try_send(Down { id, reason });
        }
        true
    }

    /// Queues an encoded frame, parking while the outbound queue is full.
    pub(crate) fn queue(&self, frame: &[u8]) -> Result<(), PushError> {
        self.push(frame, Wait::Forever)
    }

    /// Queues an encoded frame, waiting for room as `wait` allows.
    pub(crate) fn push(&self, frame: &[u8], wait: Wait) -> Result<(), PushError> {
        if self.is_closing() {
            return Err(PushError::Closed);
        }
        self.out.push(frame, wait)
    }

    /// Where the answer to the remote asker's reply id `id` goes: a `Reply` frame on this link.
    pub(crate) fn reply_sink(self: &Arc<Self>, id: u64) -> ReplySink {
        let s = self.clone();
        Box::new(move |payload| {
            let payload = payload.filter(|p| p.len() + 64 <= s.max_frame);
            let Ok(bytes) = encode_frame(&Frame::Reply { id, payload }) else {
                return;
            };
            // Dropped while its holder unwinds (an actor that panicked or was killed): queue
            // the answer only if there is room, rather than hold up the unwinding behind a
            // full link.
            let wait = if coact_runtime::panicking() {
                Wait::No
            } else {
                Wait::Forever
            };
            let _ = s.push(&bytes, wait);
        })
    }
}

/// Closes a session when dropped (when its coroutine ends, returns or unwinds), unless
/// disarmed.
struct CloseOnDrop(Option<Arc<Session>>, &'static str);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.close(self.1);
        }
    }
}

/// The state of an outbound link, shared by its coroutine and its `Peer`s.
pub(crate) struct LinkCore {
    pub(crate) target: SocketAddr,
    pub(crate) id: ActorId,
    pub(crate) counters: Arc<Counters>,
    state: Mutex<CoreState>,
}

#[derive(Default)]
struct CoreState {
    stopped: bool,
    coroutine: Option<CoroutineId>,
    current: Option<Arc<Session>>,
    waiters: Vec<SyncSender<()>>,
}

impl LinkCore {
    pub(crate) fn new(target: SocketAddr) -> LinkCore {
        LinkCore {
            target,
            id: ActorId::fresh(),
            counters: Arc::default(),
            state: Mutex::new(CoreState::default()),
        }
    }

    /// The session now up, if any.
    pub(crate) fn current(&self) -> Option<Arc<Session>> {
        lock(&self.state).current.clone()
    }

    /// Waits until a session is up, at most until `deadline`.
    pub(crate) fn wait_up(&self, deadline: Option<Instant>) -> Option<Arc<Session>> {
        let rx = {
            let mut st = lock(&self.state);
            if let Some(s) = &st.current {
                return Some(s.clone());
            }
            if st.stopped {
                return None;
            }
            let (tx, rx) = sync_channel(1);
            st.waiters.push(tx);
            rx
        };
        let _ = match deadline {
            Some(d) => rx.recv_deadline(d).ok(),
            None => rx.recv().ok(),
        };
        self.current()
    }

    /// Stops the link for good: no more reconnects; the session now up closes gracefully
    /// (its coroutine then ends by itself), or the coroutine is cancelled where it waits.
    pub(crate) fn stop(&self, why: &str) {
        let (co, cur) = {
            let mut st = lock(&self.state);
            st.stopped = true;
            st.waiters.clear();
            (st.coroutine.take(), st.current.take())
        };
        if let Some(s) = cur {
            s.close_gracefully(why);
            return;
        }
        if let Some(co) = co {
            if coact_runtime::current_coroutine().as_ref() != Some(&co) {
                co.cancel();
            }
        }
    }

    fn is_stopped(&self) -> bool {
        lock(&self.state).stopped
    }

    fn set_up(&self, s: &Arc<Session>) -> bool {
        let waiters = {
            let mut st = lock(&self.state);
            if st.stopped {
                return false;
            }
            st.current = Some(s.clone());
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            let _ = w.try_send(());
        }
        true
    }

    fn set_down(&self, s: &Arc<Session>) {
        let mut st = lock(&self.state);
        if st.current.as_ref().is_some_and(|c| Arc::ptr_eq(c, s)) {
            st.current = None;
        }
    }
}

/// The coroutine of an outbound link: dial, handshake, run, and again with backoff, until
/// stopped.
pub(crate) fn link_loop(node: Arc<NodeInner>, core: Arc<LinkCore>) {
    {
        let mut st = lock(&core.state);
        if st.stopped {
            return;
        }
        st.coroutine = coact_runtime::current_coroutine();
    }
    let (min, max) = node.config.reconnect;
    let mut backoff = min;
    loop {
        if core.is_stopped() || node.is_closed() {
            return;
        }
        let connect_timeout = node.config.down_after.max(Duration::from_millis(1));
        match TcpStream::connect_timeout(&core.target, connect_timeout) {
            Ok(stream) => {
                if run_connection(&node, stream, Role::Dialer, Some(&core)) {
                    backoff = min;
                }
            }
            Err(e) => {
                let _ = e; // refused or unreachable: retried after the backoff, quietly
            }
        }
        if core.is_stopped() || node.is_closed() {
            return;
        }
        coact_runtime::time::sleep(backoff);
        backoff = (backoff * 2).min(max).max(min);
    }
}

/// The coroutine that accepts connections for a node.
pub(crate) fn accept_loop(node: Arc<NodeInner>, listener: TcpListener) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let n = node.clone();
                node.handle.spawn_detached(move || {
                    run_connection(&n, stream, Role::Acceptor, None);
                });
            }
            // The node is shutting down (its drop cancels this coroutine): stop. A cancelled
            // coroutine's every wait returns at once, so retrying would spin.
            Err(_) if node.is_closed() => return,
            Err(e) => {
                log(&node.config.name, format_args!("accept failed: {e}"));
                coact_runtime::time::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Which end of the connection this side is: part of the handshake MAC, so that a proof
/// reflected back at its sender does not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Dialer,
    Acceptor,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Dialer => b'D',
            Role::Acceptor => b'A',
        }
    }
    fn other(self) -> Role {
        match self {
            Role::Dialer => Role::Acceptor,
            Role::Acceptor => Role::Dialer,
        }
    }
}

fn mac(
    secret: &[u8],
    role: Role,
    peer_ch: &[u8; 32],
    own_ch: &[u8; 32],
    own_name: &str,
) -> Hmac<Sha256> {
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(MAC_LABEL);
    m.update(&[role.byte()]);
    m.update(peer_ch);
    m.update(own_ch);
    m.update(own_name.as_bytes());
    m
}

fn write_frame(s: &mut impl Write, f: &Frame) -> Result<(), String> {
    let bytes = encode_frame(f)?;
    s.write_all(&bytes)
        .map_err(|e| format!("write failed: {e}"))
}

fn refuse(s: &mut impl Write, reason: &str) -> String {
    let _ = write_frame(
        s,
        &Frame::Refused {
            reason: reason.to_owned(),
        },
    );
    reason.to_owned()
}

/// Runs the handshake on `s`: both sides send `Hello`, then a `Proof`, and each verifies the
/// other's. Returns the peer's node name. Nothing but `Hello`, `Proof` and `Refused` is
/// accepted before both proofs are verified.
pub(crate) fn handshake<S: Read + Write>(
    s: &mut S,
    name: &str,
    secret: &[u8],
    role: Role,
    challenge: [u8; 32],
) -> Result<String, String> {
    let hello = Frame::Hello {
        magic: MAGIC,
        version: VERSION,
        node: name.to_owned(),
        challenge,
    };
    write_frame(s, &hello)?;
    let read = |s: &mut S| read_frame(s, HANDSHAKE_MAX_FRAME).map_err(|e| e.to_string());
    let (peer_name, peer_ch) = match read(s)? {
        Frame::Hello {
            magic,
            version,
            node,
            challenge: pc,
        } => {
            if magic != MAGIC {
                return Err(refuse(s, "not a coact node (bad magic)"));
            }
            if version != VERSION {
                return Err(refuse(
                    s,
                    &format!(
                        "protocol version mismatch: we speak {VERSION}, peer speaks {version}"
                    ),
                ));
            }
            if pc == challenge {
                return Err(refuse(s, "authentication failed"));
            }
            (node, pc)
        }
        Frame::Refused { reason } => return Err(format!("the peer refused the link: {reason}")),
        other => {
            let why = format!("expected Hello, got {}", other.kind());
            refuse(s, &why);
            return Err(why);
        }
    };
    let proof = mac(secret, role, &peer_ch, &challenge, name)
        .finalize()
        .into_bytes()
        .to_vec();
    write_frame(s, &Frame::Proof { mac: proof })?;
    match read(s)? {
        Frame::Proof { mac: theirs } => {
            let expected = mac(secret, role.other(), &challenge, &peer_ch, &peer_name);
            if expected.verify_slice(&theirs).is_err() {
                refuse(s, "authentication failed");
                return Err(format!("{peer_name:?} failed authentication"));
            }
        }
        Frame::Refused { reason } => return Err(format!("the peer refused the link: {reason}")),
        other => {
            let why = format!("expected Proof, got {}", other.kind());
            refuse(s, &why);
            return Err(why);
        }
    }
    Ok(peer_name)
}

/// Runs one connection: handshake, then reader (here) and writer (its own coroutine) until
/// it closes. Returns whether the handshake succeeded.
pub(crate) fn run_connection(
    node: &Arc<NodeInner>,
    mut stream: TcpStream,
    role: Role,
    core: Option<&LinkCore>,
) -> bool {
    let cfg = &node.config;
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(cfg.down_after)).is_err() {
        return false;
    }
    let mut challenge = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut challenge) {
        log(
            &cfg.name,
            format_args!("no randomness for a challenge: {e}"),
        );
        return false;
    }
    let peer_name = match handshake(&mut stream, &cfg.name, &cfg.secret, role, challenge) {
        Ok(n) => n,
        Err(why) => {
            log(&cfg.name, format_args!("link with {peer} refused: {why}"));
            return false;
        }
    };
    if node.is_closed() {
        return false;
    }
    let Ok(dup) = stream.try_clone() else {
        return false;
    };
    let (out, bell) = OutQueue::new(cfg.outbound);
    let session = Arc::new(Session {
        peer_name,
        max_frame: cfg.max_frame,
        counters: core.map(|c| c.counters.clone()).unwrap_or_default(),
        out,
        closing: AtomicBool::new(false),
        linger: cfg.down_after,
        handle: node.handle.clone(),
        state: Mutex::new(SessionState::default()),
        socket: Mutex::new(Some(dup)),
    });
    let _guard = CloseOnDrop(Some(session.clone()), "the link was stopped");
    match core {
        Some(core) => {
            if !core.set_up(&session) {
                return true;
            }
        }
        None => node.add_inbound(&session),
    }
    tracing::info!(
        target: "coact_net",
        node = %cfg.name,
        "link with {} ({peer}) up",
        session.peer_name
    );
    let (mut rd, wr) = stream.split();
    let (ws, heartbeat) = (session.clone(), cfg.heartbeat);
    node.handle
        .spawn_detached(move || writer(wr, bell, ws, heartbeat));
    let why = reader(&mut rd, node, &session);
    if !session.is_closing() {
        log(
            &cfg.name,
            format_args!("link with {} ({peer}) down: {why}", session.peer_name),
        );
    }
    session.close(&why);
    if let Some(core) = core {
        core.set_down(&session);
    }
    true
}

fn writer(mut wr: WriteHalf, bell: Receiver<()>, session: Arc<Session>, heartbeat: Duration) {
    let mut guard = CloseOnDrop(Some(session.clone()), "the link's writer ended");
    let beat = encode_frame(&Frame::Heartbeat).expect("a heartbeat encodes");
    let mut buf = Vec::with_capacity(BATCH);
    loop {
        match bell.recv_timeout(heartbeat.max(Duration::from_millis(1))) {
            Ok(()) => {}
            // Idle for a heartbeat period: queue a heartbeat and write it like any frame (a
            // full or closing queue has frames of its own to write, which do as well).
            Err(RecvTimeoutError::Timeout) => {
                let _ = session.out.push(&beat, Wait::No);
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Write batches until the queue is empty (frames queued meanwhile ring the bell
        // again only once it was seen empty).
        while let Some(batch) = session.out.take(&mut buf) {
            if !buf.is_empty() {
                if let Err(e) = wr.write_all(&buf) {
                    session.close(&format!("write failed: {e}"));
                    return;
                }
                let c = &session.counters;
                c.frames_sent.fetch_add(batch.frames, Ordering::Relaxed);
                c.bytes_sent.fetch_add(buf.len() as u64, Ordering::Relaxed);
            }
            if batch.finish {
                // The last frame is written (a graceful close): shut the write side politely.
                if wr.shutdown().is_ok() {
                    guard.0 = None;
                }
                return;
            }
            // Emptied with its capacity kept: the next `take` hands it to the queue, whose
            // senders then fill it without growing it again.
            buf.clear();
            if buf.capacity() > 4 * BATCH {
                buf = Vec::with_capacity(BATCH);
            }
        }
        if session.out.is_closed() && session.is_closing() {
            return; // closed abruptly: nothing more will be written
        }
    }
}

/// Delivers a `Send` frame to the export under `name` (through the reader's cache); a name
/// not (or no longer) exported drops the message and fails its askers. An error closes the
/// link with that reason (bad input, or the session's queue closed).
fn deliver_send(
    node: &NodeInner,
    session: &Arc<Session>,
    cache: &mut ExportCache,
    send: &SendIn<'_>,
) -> Result<(), String> {
    match node.export_cached(send.name, cache)? {
        Some(inbox) => inbox.push(send.payload, &send.replies, session),
        None => {
            for &id in send.replies.iter() {
                if let Ok(b) = encode_frame(&Frame::Reply { id, payload: None }) {
                    session.queue(&b).map_err(|_| session.closed_reason())?;
                }
            }
            Ok(())
        }
    }
}

/// Reads and acts on frames until the link fails or closes; returns why. Messages that arrived
/// are delivered even when a later frame ends the link (bad input loses nothing accepted).
fn reader(rd: &mut impl Read, node: &Arc<NodeInner>, session: &Arc<Session>) -> String {
    let mut cache: ExportCache = None;
    let why = read_frames(rd, node, session, &mut cache);
    flush(&mut cache);
    why
}

/// Delivers what the reader's inbox holds.
fn flush(cache: &mut ExportCache) {
    if let Some((_, _, inbox)) = cache {
        inbox.flush();
    }
}

fn read_frames(
    rd: &mut impl Read,
    node: &Arc<NodeInner>,
    session: &Arc<Session>,
    cache: &mut ExportCache,
) -> String {
    let max = session.max_frame;
    // Frames are small and many: read the socket in large chunks (one syscall for many
    // frames), and decode `Send` frames in place.
    let mut frames = FrameReader::new(64 * 1024);
    let c = &session.counters;
    // Frames read but not yet added to the counters (they are published before each read
    // that may wait, so an idle link's counters are exact).
    let mut uncounted = 0;
    loop {
        if !frames.has_frame() {
            // The next read may wait: deliver what is held first.
            flush(cache);
            if uncounted > 0 {
                c.frames_received.fetch_add(uncounted, Ordering::Relaxed);
                uncounted = 0;
            }
        }
        let body = frames.next(rd, max, |n| {
            c.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
        });
        let body = match body {
            Ok(b) => b,
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => {
                return format!(
                    "no frame for {:?} (heartbeat timeout)",
                    node.config.down_after
                )
            }
            Err(e) => return e.to_string(),
        };
        uncounted += 1;
        if session.is_closing() {
            continue; // closed gracefully: read on until the peer closes, but act on nothing
        }
        let bad = |e: String| format!("bad input: a frame that does not decode: {e}");
        if let Some(send) = decode_send(body) {
            let delivered = send
                .map_err(bad)
                .and_then(|send| deliver_send(node, session, cache, &send));
            match delivered {
                Ok(()) => continue,
                Err(why) => return why,
            }
        }
        // Any other frame (a reply, a lookup) acts at once: messages before it go first.
        flush(cache);
        let frame = match decode::<Frame>(body) {
            Ok(f) => f,
            Err(e) => return bad(e),
        };
        let queued = match frame {
            Frame::Heartbeat => Ok(()),
            Frame::Lookup {
                id,
                name,
                type_name,
            } => {
                let result = node.lookup_answer(&name, &type_name);
                match encode_frame(&Frame::LookupReply { id, result }) {
                    Ok(b) => session.queue(&b).map_err(drop),
                    Err(e) => return e,
                }
            }
            Frame::LookupReply { id, result } => {
                session.complete_lookup(id, result);
                Ok(())
            }
            Frame::Send {
                name,
                payload,
                replies,
            } => {
                let send = SendIn {
                    name: name.as_bytes(),
                    payload: &payload,
                    replies,
                };
                if let Err(why) = deliver_send(node, session, cache, &send) {
                    return why;
                }
                Ok(())
            }
            Frame::Reply { id, payload } => {
                session.complete_reply(id, payload.as_deref());
                Ok(())
            }
            Frame::Refused { reason } => return format!("the peer closed the link: {reason}"),
            f @ (Frame::Hello { .. } | Frame::Proof { .. }) => {
                return format!("bad input: an unexpected {} after the handshake", f.kind())
            }
        };
        if queued.is_err() {
            return session.closed_reason();
        }
    }
}

/// Runs the handshake as the acceptor against `data` (what a peer would send), for fuzzing:
/// it must end with an error or a peer name, never panic.
#[doc(hidden)]
pub fn handshake_for_fuzzing(data: &[u8]) -> Result<String, String> {
    struct Duplex<'a> {
        input: &'a [u8],
        output: Vec<u8>,
    }
    impl Read for Duplex<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }
    impl Write for Duplex<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut d = Duplex {
        input: data,
        output: Vec::new(),
    };
    handshake(&mut d, "fuzz", b"secret", Role::Acceptor, [0x5a; 32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn both(secret_a: &'static [u8], secret_b: &'static [u8]) -> [Result<String, String>; 2] {
        let (mut x, mut y) = UnixStream::pair().unwrap();
        let t =
            std::thread::spawn(move || handshake(&mut y, "b", secret_b, Role::Acceptor, [2; 32]));
        let a = handshake(&mut x, "a", secret_a, Role::Dialer, [1; 32]);
        [a, t.join().unwrap()]
    }

    #[test]
    fn the_same_secret_authenticates_both_ways() {
        let [a, b] = both(b"k", b"k");
        assert_eq!(a.as_deref(), Ok("b"));
        assert_eq!(b.as_deref(), Ok("a"));
    }

    #[test]
    fn a_different_secret_fails_both_ways() {
        let [a, b] = both(b"k", b"not k");
        assert!(a.is_err() && b.is_err(), "{a:?} {b:?}");
    }

    #[test]
    fn a_version_mismatch_is_refused_with_both_versions() {
        let (mut x, mut y) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || handshake(&mut y, "b", b"k", Role::Acceptor, [2; 32]));
        let hello = Frame::Hello {
            magic: MAGIC,
            version: 2,
            node: "future".into(),
            challenge: [1; 32],
        };
        write_frame(&mut x, &hello).unwrap();
        let why = t.join().unwrap().unwrap_err();
        assert_eq!(why, "protocol version mismatch: we speak 1, peer speaks 2");
        assert!(matches!(
            read_frame(&mut x, 1 << 16),
            Ok(Frame::Hello { .. })
        ));
        match read_frame(&mut x, 1 << 16) {
            Ok(Frame::Refused { reason }) => assert_eq!(reason, why),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reflected_hello_or_proof_does_not_authenticate() {
        // The fuzzing entry point's acceptor uses challenge [0x5a; 32] and name "fuzz".
        let hello = Frame::Hello {
            magic: MAGIC,
            version: VERSION,
            node: "fuzz".into(),
            challenge: [0x5a; 32],
        };
        let input = encode_frame(&hello).unwrap();
        assert!(handshake_for_fuzzing(&input).is_err());
        // Another challenge, and the proof the acceptor itself would send, reflected.
        let hello = Frame::Hello {
            magic: MAGIC,
            version: VERSION,
            node: "fuzz".into(),
            challenge: [0x11; 32],
        };
        let own = mac(b"secret", Role::Acceptor, &[0x11; 32], &[0x5a; 32], "fuzz");
        let proof = Frame::Proof {
            mac: own.finalize().into_bytes().to_vec(),
        };
        let mut input = encode_frame(&hello).unwrap();
        input.extend(encode_frame(&proof).unwrap());
        assert!(handshake_for_fuzzing(&input).is_err());
        // The dialer's proof with the same secret does verify: the check above is the role.
        let theirs = mac(b"secret", Role::Dialer, &[0x5a; 32], &[0x11; 32], "fuzz");
        let proof = Frame::Proof {
            mac: theirs.finalize().into_bytes().to_vec(),
        };
        let mut input = encode_frame(&hello).unwrap();
        input.extend(encode_frame(&proof).unwrap());
        assert_eq!(handshake_for_fuzzing(&input).as_deref(), Ok("fuzz"));
    }

    #[test]
    fn garbage_never_panics_the_decoders() {
        let mut x: u64 = 0x1234_5678_9ABC_DEF1;
        for _ in 0..2000 {
            let len = (x % 300) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = crate::frame::decode_frame_for_fuzzing(&data);
            assert!(handshake_for_fuzzing(&data).is_err());
        }
    }
}
