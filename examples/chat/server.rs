//! The chat server: IRC over coact actors.
//!
//! * **One coroutine per connection** keeps the client's state (nick, channels), reads its
//!   commands and turns them into messages to other actors. What is sent to a client goes
//!   into its bounded outbound buffer ([`Outbound`]), shared by every actor that writes to the
//!   client, and out through non-blocking writes by whoever flushes it: a channel writes a
//!   burst's lines to each member once, through the [`Flusher`], without waking the member's
//!   coroutine. The connection takes over only when the client's socket is full, and
//!   then stops reading the client's commands until it has drained. A client that stops
//!   reading fills its buffer and is disconnected ("SendQ exceeded") without slowing anyone
//!   else. One coroutine (one stack) per connection is what lets a process hold tens of
//!   thousands of clients under the kernel's map limit.
//! * **One handler actor per channel** ([`Channel`]) owns the members, topic, modes and bans,
//!   and fans messages out. Because one actor handles all of a channel's messages in turn,
//!   every member sees them in the same order. It queues a burst's lines for its members and
//!   hands them to the [`Flusher`] in [`Actor::idle`], which writes each buffer once per turn of
//!   the server, so at load a member gets several lines per write.
//! * **One directory actor** ([`Directory`]) owns the nickname registry and the channel list;
//!   it creates channel actors on first JOIN and forgets them when they empty.
//!
//! A client's own earlier messages are delivered before the server answers its later PING:
//! before answering, the connection asks each channel it has written to since the last PING
//! to confirm (a channel handles one sender's messages in order, and flushes its members'
//! buffers before it confirms, so the confirmation comes after the fan-out of everything that
//! client sent earlier).

use std::collections::{HashMap, HashSet};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use coact::actor::{self, Actor, Addr, AskError, Ctx, ReplyTo, StopReason};
use coact::net::{Closer, ReadHalf, TcpListener, TcpStream, WriteHalf};
use coact::select::Select;
use coact::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::irc::{self, fold, num, Frame, Framer};

/// How long a connection waits for another actor before it gives up on the request.
const ASK: Duration = Duration::from_secs(10);

/// Server settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The name the server gives itself in replies.
    pub name: String,
    /// Lines of the message of the day.
    pub motd: Vec<String>,
    /// Idle time after which the server PINGs a client.
    pub ping_interval: Duration,
    /// How far a client may fall behind, in lines: past `sendq` full-length lines (512
    /// bytes each) waiting for it, it counts as not reading and is disconnected.
    pub sendq: usize,
    /// Lines a client may send in a burst, and per second after that; `None`: unlimited.
    pub flood: Option<(u32, u32)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "coact.chat".into(),
            motd: vec!["Welcome to coact chat: an IRC server built from coact actors.".into()],
            ping_interval: Duration::from_secs(60),
            sendq: 4096,
            flood: Some((20, 10)),
        }
    }
}

/// A running server.
pub struct ServerHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections open now.
    pub connections: Arc<AtomicUsize>,
    shared: Arc<Shared>,
}

/// How a [`ServerHandle::shutdown`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections open when the shutdown began (or accepted during it).
    pub connections: usize,
    /// Of those, the ones still open at the end of the grace period, closed without waiting
    /// for their goodbye to be written.
    pub cut_off: usize,
}

/// What the accept loop, the connections and the handle share for a shutdown.
struct Shared {
    /// Set once, by [`ServerHandle::shutdown`]; a connection checks it at the top of its loop
    /// and again right before it waits, after taking its stall token (see `Client::serve`),
    /// and only after it has registered in `live` (so a connection that registers after the
    /// shutdown's sweep of `live` still sees it).
    closing: AtomicBool,
    live: coact::sync::Mutex<Live>,
    /// Notified when a connection leaves `live` or the accept loop ends.
    changed: coact::sync::Condvar,
    /// Wakes the accept loop to stop it. (Held here, not by the handle: the server keeps
    /// serving when its handle is dropped.)
    stop_accepting: SyncSender<()>,
}

#[derive(Default)]
struct Live {
    next_id: u64,
    /// Each open connection: how to cut it off, and how to wake its loop.
    conns: HashMap<u64, (Arc<Conn>, SyncSender<()>)>,
    /// Connections that registered since the shutdown began.
    late: usize,
    /// Whether the accept loop still holds the listener.
    accepting: bool,
}

impl Shared {
    /// Adds a connection; returns its id in `live`.
    fn register(&self, conn: Arc<Conn>, wake: SyncSender<()>) -> u64 {
        let mut live = self.live.lock().unwrap();
        let id = live.next_id;
        live.next_id += 1;
        live.conns.insert(id, (conn, wake));
        if self.closing.load(Ordering::Acquire) {
            live.late += 1;
        }
        id
    }

    fn unregister(&self, id: u64) {
        self.live.lock().unwrap().conns.remove(&id);
        self.changed.notify_all();
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .field("closing", &self.shared.is_closing())
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Shuts the server down: stops accepting (the listening socket is closed when this
    /// returns), tells every client `ERROR :Closing link: ... (Server shutting down)` after
    /// what was queued for it, and closes its connection. Members of a channel are not sent
    /// each other's QUIT, since they all go. Waits at most `grace` for the goodbyes to be
    /// written; connections still open then (a client that does not read) are cut off.
    /// Callable from a coroutine or a plain thread; a second call finds nothing left to do.
    pub fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let deadline = Instant::now() + grace;
        self.shared.closing.store(true, Ordering::Release);
        let _ = self.shared.stop_accepting.try_send(());
        let mut live = self.shared.live.lock().unwrap();
        let mut connections = live.conns.len();
        for (_, wake) in live.conns.values() {
            // Wakes the connection's `Select` (its stall signal; a spurious one costs a
            // look at an empty buffer); the loop then sees `closing`.
            let _ = wake.try_send(());
        }
        while live.accepting || !live.conns.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            live = self.shared.changed.wait_timeout(live, left).unwrap().0;
        }
        connections += std::mem::take(&mut live.late);
        let cut_off = live.conns.len();
        for (conn, _) in live.conns.values() {
            conn.kill("Server shutting down");
        }
        ShutdownReport {
            connections,
            cut_off,
        }
    }
}

/// Starts serving on `listener` from the current runtime; returns at once.
pub fn start(listener: TcpListener, config: Config) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let config = Arc::new(config);
    let directory = actor::spawn_with_capacity(
        1024,
        Directory {
            config: config.clone(),
            flushes: Flushes::start(),
            users: HashMap::new(),
            channels: HashMap::new(),
        },
    );
    let connections = Arc::new(AtomicUsize::new(0));
    let (stop_accepting, stop_rx) = sync_channel(1);
    let shared = Arc::new(Shared {
        closing: AtomicBool::new(false),
        live: coact::sync::Mutex::new(Live {
            accepting: true,
            ..Live::default()
        }),
        changed: coact::sync::Condvar::new(),
        stop_accepting,
    });
    let open = connections.clone();
    let shared2 = shared.clone();
    coact::spawn_detached(move || {
        let shared = shared2;
        accept_loop(&listener, &stop_rx, |stream, peer| {
            let dir = directory.clone();
            let config = config.clone();
            let open = open.clone();
            let shared = shared.clone();
            coact::spawn_detached(move || {
                open.fetch_add(1, Ordering::Relaxed);
                connection(stream, peer, dir, config, &shared);
                open.fetch_sub(1, Ordering::Relaxed);
            });
        });
        drop(listener);
        shared.live.lock().unwrap().accepting = false;
        shared.changed.notify_all();
    });
    Ok(ServerHandle {
        addr,
        connections,
        shared,
    })
}

/// Accepts connections until `stop` says to, handing each to `serve`.
/// One persistent `Select` waits for both.
fn accept_loop(
    listener: &TcpListener,
    stop: &Receiver<()>,
    mut serve: impl FnMut(TcpStream, SocketAddr),
) {
    let mut sel = Select::new();
    let incoming = sel.readable(listener);
    sel.recv(stop);
    let mut out_of_fds = false;
    loop {
        if sel.ready() != incoming {
            return;
        }
        // Everything waiting, until the listener would block (it is edge-triggered).
        loop {
            match listener.try_accept() {
                Ok((stream, peer)) => {
                    out_of_fds = false;
                    serve(stream, peer);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // Out of descriptors (EMFILE = 24, ENFILE = 23): the waiting connection stays
                // queued and the listener stays readable, so retrying at once would spin; wait
                // for connections to close. Said once per stretch, not once per retry.
                Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) => {
                    if !out_of_fds {
                        eprintln!("chat: accept failed: {e}; retrying every 10 ms");
                        out_of_fds = true;
                    }
                    if stop.recv_timeout(Duration::from_millis(10)).is_ok() {
                        return;
                    }
                }
                // A peer that vanished during the handshake: keep serving.
                Err(e) => eprintln!("chat: accept failed: {e}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Outbound queues
// ---------------------------------------------------------------------------------------------

/// What all handles to one connection share.
struct Conn {
    /// Closes the connection from anywhere (no descriptor of its own: a clone of the socket
    /// kept for this would double the server's descriptors per client).
    closer: Closer,
    dead: AtomicBool,
    why: Mutex<Option<String>>,
}

impl Conn {
    /// Closes the connection (both directions): its reader and writer end promptly.
    fn kill(&self, why: &str) {
        if !self.dead.swap(true, Ordering::AcqRel) {
            *self.why.lock().unwrap() = Some(why.to_owned());
            let _ = self.closer.shutdown(Shutdown::Both);
        }
    }
}

/// A client's outbound buffer, shared by every actor that writes to the client (cloning a
/// handle is one reference count). Writing never blocks the writer: lines are appended under
/// a short lock and written with non-blocking writes, by whoever flushes. A channel appends a
/// burst's lines to its members' buffers and hands them to the [`Flusher`], which writes each
/// once per turn of the server, with no wake-up of the members' connection coroutines. Only
/// when a client's socket stops taking bytes does its connection coroutine take over the
/// writing (see [`Outbound::drain`]); past `limit` waiting bytes the client counts as not
/// reading and is disconnected ("SendQ exceeded") without slowing anyone else.
///
/// No lock is held across a system call: a writer takes the socket's write half and the
/// waiting bytes out of the shared state (the write half is the token that makes it the only
/// writer), writes without the lock, and puts back the half and whatever the socket did not
/// take, in front of what was appended meanwhile. With the write inside the lock, a channel
/// appending to a client whose bytes another worker was writing blocked its worker thread for
/// the length of a `sendto`, and for tens of milliseconds whenever the kernel preempted the
/// writer (seen at 10,000 clients on 2 workers: p99 latency over a second).
#[derive(Clone)]
pub struct Outbound(Arc<OutQ>);

/// What all handles to one client's outbound buffer share.
struct OutQ {
    state: Mutex<OutState>,
    conn: Arc<Conn>,
    /// Channels (folded names) the client was removed from by others (KICK), for its
    /// connection to forget.
    left: Left,
    /// Handed to the [`Flusher`] (or marked by a channel for it) and not written by it yet.
    pending: AtomicBool,
    /// Bytes that may wait before the client counts as not reading.
    limit: usize,
    /// Tells the connection coroutine that the socket stopped taking bytes.
    stalled_tx: SyncSender<()>,
}

struct OutState {
    /// Bytes not yet handed to the socket, oldest first (after those in flight).
    buf: Vec<u8>,
    /// An empty buffer to swap in when a writer takes `buf` (keeps its allocation).
    spare: Vec<u8>,
    /// The write half of the client's socket; `None` while a writer has it (see
    /// [`Outbound`]): the flusher or a flush for a moment, the connection coroutine while it
    /// drains a stalled socket.
    sock: Option<WriteHalf>,
    /// Bytes a writer took out and has not put back yet (they count against the limit).
    in_flight: usize,
    /// The connection coroutine waits in [`Outbound::drain`] for the write half to come
    /// back: whoever puts it back signals it.
    drain_waits: bool,
}

/// How a write of what waits ended.
enum Wrote {
    /// All of it.
    All,
    /// The socket took part (the count) and is full now.
    Stalled(usize),
    /// The connection is broken.
    Failed,
}

/// Writes `bytes` until the socket is full, without parking.
fn write_some(sock: &WriteHalf, bytes: &[u8]) -> Wrote {
    let mut written = 0;
    while written < bytes.len() {
        match sock.try_write(&bytes[written..]) {
            Ok(n) if n > 0 => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Wrote::Stalled(written),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A write of nothing, or an error: the connection is broken.
            _ => return Wrote::Failed,
        }
    }
    Wrote::All
}

impl Outbound {
    fn new(sock: WriteHalf, conn: Arc<Conn>, sendq: usize) -> (Outbound, Receiver<()>) {
        let (stalled_tx, stalled_rx) = sync_channel(1);
        let q = OutQ {
            state: Mutex::new(OutState {
                buf: Vec::new(),
                spare: Vec::new(),
                sock: Some(sock),
                in_flight: 0,
                drain_waits: false,
            }),
            conn,
            left: Left::default(),
            pending: AtomicBool::new(false),
            // `sendq` lines of at most 512 bytes each.
            limit: sendq.saturating_mul(irc::MAX_LINE),
            stalled_tx,
        };
        (Outbound(Arc::new(q)), stalled_rx)
    }

    fn conn(&self) -> &Conn {
        &self.0.conn
    }

    fn left(&self) -> &Left {
        &self.0.left
    }

    /// Appends a line unless the client is gone or the line would pass the limit (then the
    /// client is disconnected); returns the lock, still held, if it appended.
    fn append(&self, line: &str) -> Option<MutexGuard<'_, OutState>> {
        if self.conn().dead.load(Ordering::Acquire) {
            return None;
        }
        let mut st = self.0.state.lock().unwrap();
        if st.in_flight + st.buf.len() + line.len() > self.0.limit {
            drop(st);
            self.conn().kill("SendQ exceeded");
            return None;
        }
        st.buf.extend_from_slice(line.as_bytes());
        Some(st)
    }

    /// Appends a line without writing it, for the [`Flusher`] to write: the buffer goes into
    /// `dirty` (the caller's list for the flusher) unless it is in such a list already.
    fn queue(&self, line: &str, dirty: &mut Vec<Outbound>) {
        if self.append(line).is_some() && !self.0.pending.swap(true, Ordering::AcqRel) {
            dirty.push(self.clone());
        }
    }

    /// Appends a line and writes it now, in one hold of the lock.
    fn send(&self, line: &str) {
        if let Some(st) = self.append(line) {
            self.write_out(st);
        }
    }

    /// [`Outbound::send`] of a formatted line.
    fn text(&self, s: String) {
        self.send(&s);
    }

    /// Writes, for the one whose list holds this buffer (see [`Outbound::queue`]), what was
    /// queued: a later `queue` puts the buffer in a list again.
    fn flush_queued(&self) {
        self.0.pending.store(false, Ordering::Release);
        self.flush();
    }

    /// Writes what is waiting, as far as the socket takes it now.
    fn flush(&self) {
        self.write_out(self.0.state.lock().unwrap());
    }

    /// The body of [`Outbound::flush`], from the lock held: writes what waits, as far as the
    /// socket takes it, outside the lock (see [`Outbound`]). If another writer has the write
    /// half, there is nothing to do: it writes what was appended meanwhile before it lets go.
    /// If the socket takes less than what waits, the connection coroutine is told to finish
    /// the job when the socket is writable again.
    fn write_out<'a>(&'a self, mut st: MutexGuard<'a, OutState>) {
        loop {
            if st.buf.is_empty() {
                return;
            }
            let Some(sock) = st.sock.take() else {
                return;
            };
            let spare = std::mem::take(&mut st.spare);
            let mut bytes = std::mem::replace(&mut st.buf, spare);
            st.in_flight = bytes.len();
            drop(st);
            let wrote = write_some(&sock, &bytes);
            st = self.0.state.lock().unwrap();
            st.sock = Some(sock);
            st.in_flight = 0;
            let unwritten = match wrote {
                Wrote::All => 0,
                Wrote::Stalled(n) => bytes.len() - n,
                Wrote::Failed => bytes.len(),
            };
            if unwritten > 0 {
                // What the socket did not take goes back in front of what came meanwhile.
                bytes.drain(..bytes.len() - unwritten);
                let newer = std::mem::replace(&mut st.buf, bytes);
                st.buf.extend_from_slice(&newer);
                st.spare = newer;
                st.spare.clear();
            } else if bytes.capacity() <= 16 * 1024 {
                // A burst may have grown the buffer; an idle client keeps only a little.
                bytes.clear();
                st.spare = bytes;
            }
            let drain_waits = std::mem::take(&mut st.drain_waits);
            if matches!(wrote, Wrote::All) && !drain_waits {
                continue; // write what was appended meanwhile
            }
            drop(st);
            if matches!(wrote, Wrote::Failed) {
                self.conn().kill("Write error");
            }
            // The socket is full (its connection drains it when it is writable), the
            // connection waits to drain, or it is dead (a waiting drain sees that): tell it
            // (full means told already).
            let _ = self.0.stalled_tx.try_send(());
            return;
        }
    }

    /// Appends one of the connection's own replies without writing it. Replies do not count
    /// against the limit, which is for what other actors send: the connection stops reading
    /// while its socket is full instead (see `Client::serve`).
    fn own(&self, line: &str) {
        let mut st = self.0.state.lock().unwrap();
        st.buf.extend_from_slice(line.as_bytes());
    }

    /// Writes everything waiting, parking the calling coroutine (the client's connection)
    /// while the socket is full, until nothing waits; gives up after [`WRITE_STALL`] without
    /// progress. Meanwhile the write half is out of the shared state, so other writers only
    /// append. If another writer has the half, waits on `signal` (the connection's stall
    /// signal) for it to come back, so that what was queued before the call is written when
    /// this returns.
    fn drain(&self, signal: &Receiver<()>) -> std::io::Result<()> {
        loop {
            let (sock, bytes) = {
                let mut st = self.0.state.lock().unwrap();
                match st.sock.take() {
                    Some(sock) if st.buf.is_empty() => {
                        st.sock = Some(sock);
                        return Ok(());
                    }
                    Some(sock) => {
                        let bytes = std::mem::take(&mut st.buf);
                        st.in_flight = bytes.len();
                        (sock, bytes)
                    }
                    None => {
                        st.drain_waits = true;
                        drop(st);
                        if self.conn().dead.load(Ordering::Acquire) {
                            return Err(std::io::ErrorKind::BrokenPipe.into());
                        }
                        if signal.recv_timeout(WRITE_STALL).is_err() {
                            return Err(std::io::ErrorKind::TimedOut.into());
                        }
                        continue;
                    }
                }
            };
            let r = write_all(&sock, &bytes);
            let mut st = self.0.state.lock().unwrap();
            st.sock = Some(sock);
            st.in_flight = 0;
            r?;
        }
    }
}

/// Channels a client was removed from by others; `any` spares the connection a lock per
/// command when there is nothing to read.
#[derive(Default)]
struct Left {
    any: AtomicBool,
    names: Mutex<Vec<String>>,
}

impl Left {
    fn push(&self, folded: String) {
        self.names.lock().unwrap().push(folded);
        self.any.store(true, Ordering::Release);
    }

    fn take(&self) -> Vec<String> {
        if !self.any.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.names.lock().unwrap())
    }
}

/// How long a write may wait for the client's socket to take more bytes.
const WRITE_STALL: Duration = Duration::from_secs(30);

/// Writes all of `buf`, parking while the socket is full; gives up after [`WRITE_STALL`]
/// without progress.
fn write_all(sock: &WriteHalf, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match sock.try_write(buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut sel = Select::new();
                sel.writable(sock);
                if sel.ready_timeout(WRITE_STALL).is_err() {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes the buffers that channels queued lines into, at the end of the server's turn. A
/// channel hands over the members it queued lines for when its burst of messages ends
/// ([`Actor::idle`]); the flusher first lets every other runnable actor and connection take
/// its turn (one `yield_now`), then writes each buffer once. At load, a client thus gets one
/// write for everything queued for it during the turn, as an event-loop server writes once per
/// loop iteration; when the server is idle, the turn is empty and the write follows at once.
///
/// There is one flusher per worker, and a channel hands over to the flusher of the worker it
/// runs on, so the writes of a busy server are spread over its workers. A flusher yields after
/// every [`FLUSH_CHUNK`] buffers, so its worker keeps reading and routing meanwhile. (With one
/// flusher writing everything in one turn, a 10,000-client server on 2 workers spent 100 to
/// 200 ms per turn in `sendto`, during which its worker served nothing else, and delivery
/// latency had tails of seconds.)
struct Flusher {
    list: Arc<Mutex<FlushList>>,
}

/// Buffers a flusher writes between two yields.
const FLUSH_CHUNK: usize = 256;

#[derive(Default)]
struct FlushList {
    dirty: Vec<Outbound>,
    /// A wake-up is in the flusher's mailbox.
    scheduled: bool,
}

impl FlushList {
    /// Takes every buffer handed over so far and writes each; the next hand-over schedules
    /// the flusher again.
    fn write_all(list: &Mutex<FlushList>) {
        let batch = {
            let mut l = list.lock().unwrap();
            l.scheduled = false;
            std::mem::take(&mut l.dirty)
        };
        for (i, out) in batch.iter().enumerate() {
            if i > 0 && i % FLUSH_CHUNK == 0 {
                coact::yield_now();
            }
            out.flush_queued();
        }
    }
}

/// How channels reach the [`Flusher`]s: one per worker.
#[derive(Clone)]
pub struct Flushes(Arc<[FlusherRef]>);

/// One [`Flusher`]: its list and its address.
struct FlusherRef {
    list: Arc<Mutex<FlushList>>,
    addr: Addr<()>,
}

impl Flushes {
    fn start() -> Flushes {
        let workers = coact::Handle::current().map_or(1, |h| h.workers()).max(1);
        let flushers = (0..workers)
            .map(|_| {
                let list = Arc::new(Mutex::new(FlushList::default()));
                let addr = actor::spawn_with_capacity(1, Flusher { list: list.clone() });
                FlusherRef { list, addr }
            })
            .collect();
        Flushes(flushers)
    }

    /// Hands `dirty` (buffers queued into with [`Outbound::queue`]) to the flusher of the
    /// caller's worker.
    fn hand_over(&self, dirty: &mut Vec<Outbound>) {
        let f = &self.0[coact::current_worker().unwrap_or(0) % self.0.len()];
        let mut l = f.list.lock().unwrap();
        l.dirty.append(dirty);
        if l.scheduled {
            return;
        }
        l.scheduled = true;
        drop(l);
        if f.addr.try_send(()).is_err() {
            // The flusher is gone (the runtime is ending): write them here.
            FlushList::write_all(&f.list);
        }
    }
}

impl Actor for Flusher {
    type Msg = ();

    fn handle(&mut self, (): (), _ctx: &mut Ctx<'_, ()>) {
        coact::yield_now();
        FlushList::write_all(&self.list);
    }
}

// ---------------------------------------------------------------------------------------------
// Identities
// ---------------------------------------------------------------------------------------------

/// Who a client is, as other clients see it: a shared, immutable record (cloning it is one
/// reference count), with its `nick!user@host` prefix formatted once.
#[derive(Clone, Debug)]
pub struct Who(Arc<WhoData>);

/// The fields of a [`Who`].
#[derive(Debug)]
pub struct WhoData {
    nick: String,
    user: String,
    host: String,
    realname: String,
    prefix: String,
}

impl Who {
    fn new(nick: String, user: String, host: String, realname: String) -> Who {
        let prefix = format!("{nick}!{user}@{host}");
        Who(Arc::new(WhoData {
            nick,
            user,
            host,
            realname,
            prefix,
        }))
    }

    fn prefix(&self) -> &str {
        &self.0.prefix
    }

    /// The same client under a new nick.
    fn renamed(&self, nick: &str) -> Who {
        Who::new(
            nick.to_owned(),
            self.user.clone(),
            self.host.clone(),
            self.realname.clone(),
        )
    }
}

impl std::ops::Deref for Who {
    type Target = WhoData;
    fn deref(&self) -> &WhoData {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------------
// The directory: nicknames and channels
// ---------------------------------------------------------------------------------------------

struct UserEntry {
    who: Who,
    out: Outbound,
    away: Option<String>,
    invisible: bool,
}

/// What a lookup of a nickname returns.
#[derive(Clone)]
pub struct UserView {
    who: Who,
    out: Outbound,
    away: Option<String>,
}

struct ChanEntry {
    name: String,
    addr: Addr<ChanMsg>,
    members: usize,
    topic: String,
    secret: bool,
}

/// Messages to the directory.
pub enum DirMsg {
    /// Claims a nickname for a new client; false if it is taken.
    Register {
        who: Who,
        out: Outbound,
        reply: ReplyTo<bool>,
    },
    /// Renames a client; false if the new nick is taken.
    Rename {
        old: String,
        new: String,
        reply: ReplyTo<bool>,
    },
    /// Looks a nickname up.
    Find {
        nick: String,
        reply: ReplyTo<Option<UserView>>,
    },
    /// The channel's actor; made if `create` and absent.
    Channel {
        name: String,
        create: bool,
        reply: ReplyTo<Option<Addr<ChanMsg>>>,
    },
    /// A channel's summary changed (members 0: it is gone).
    ChanInfo {
        name: String,
        id: actor::ActorId,
        members: usize,
        topic: String,
        secret: bool,
    },
    /// The channel list, for LIST: (name, members, topic, secret).
    List {
        reply: ReplyTo<Vec<(String, usize, String, bool)>>,
    },
    /// Sets or clears a client's away message.
    Away { nick: String, away: Option<String> },
    /// Sets a client's invisible mode.
    Invisible { nick: String, on: bool },
    /// A client left.
    Leave { nick: String },
}

/// The directory actor.
pub struct Directory {
    config: Arc<Config>,
    flushes: Flushes,
    users: HashMap<String, UserEntry>,
    channels: HashMap<String, ChanEntry>,
}

impl Actor for Directory {
    type Msg = DirMsg;

    fn handle(&mut self, msg: DirMsg, ctx: &mut Ctx<'_, DirMsg>) {
        match msg {
            DirMsg::Register { who, out, reply } => {
                let key = fold(&who.nick);
                let free = !self.users.contains_key(&key);
                if free {
                    self.users.insert(
                        key,
                        UserEntry {
                            who,
                            out,
                            away: None,
                            invisible: false,
                        },
                    );
                }
                reply.send(free);
            }
            DirMsg::Rename { old, new, reply } => {
                let (ko, kn) = (fold(&old), fold(&new));
                let free = ko == kn || !self.users.contains_key(&kn);
                if free {
                    if let Some(mut e) = self.users.remove(&ko) {
                        e.who = e.who.renamed(&new);
                        self.users.insert(kn, e);
                    }
                }
                reply.send(free);
            }
            DirMsg::Find { nick, reply } => {
                let v = self.users.get(&fold(&nick)).map(|e| UserView {
                    who: e.who.clone(),
                    out: e.out.clone(),
                    away: e.away.clone(),
                });
                reply.send(v);
            }
            DirMsg::Channel {
                name,
                create,
                reply,
            } => {
                let key = fold(&name);
                let live = self
                    .channels
                    .get(&key)
                    .is_some_and(|c| c.addr.stopped().is_none());
                if !live && create {
                    let addr = actor::spawn_with_capacity(
                        1024,
                        Channel::new(
                            name.clone(),
                            self.config.clone(),
                            ctx.addr().clone(),
                            self.flushes.clone(),
                        ),
                    );
                    self.channels.insert(
                        key.clone(),
                        ChanEntry {
                            name,
                            addr,
                            members: 0,
                            topic: String::new(),
                            secret: false,
                        },
                    );
                } else if !live {
                    self.channels.remove(&key);
                }
                reply.send(self.channels.get(&key).map(|c| c.addr.clone()));
            }
            DirMsg::ChanInfo {
                name,
                id,
                members,
                topic,
                secret,
            } => {
                let key = fold(&name);
                if let Some(c) = self.channels.get_mut(&key) {
                    if c.addr.id() == id {
                        if members == 0 {
                            self.channels.remove(&key);
                        } else {
                            c.members = members;
                            c.topic = topic;
                            c.secret = secret;
                        }
                    }
                }
            }
            DirMsg::List { reply } => {
                let mut v: Vec<_> = self
                    .channels
                    .values()
                    .map(|c| (c.name.clone(), c.members, c.topic.clone(), c.secret))
                    .collect();
                v.sort();
                reply.send(v);
            }
            DirMsg::Away { nick, away } => {
                if let Some(e) = self.users.get_mut(&fold(&nick)) {
                    e.away = away;
                }
            }
            DirMsg::Invisible { nick, on } => {
                if let Some(e) = self.users.get_mut(&fold(&nick)) {
                    e.invisible = on;
                }
            }
            DirMsg::Leave { nick } => {
                self.users.remove(&fold(&nick));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------------------------

struct Member {
    who: Who,
    out: Outbound,
    op: bool,
    voice: bool,
}

#[derive(Default)]
struct Modes {
    topic_ops: bool,
    no_external: bool,
    moderated: bool,
    secret: bool,
    key: Option<String>,
    limit: Option<usize>,
}

/// Members already told about a quit or a nick change that spans several channels.
pub type Notified = Arc<Mutex<HashSet<String>>>;

/// Messages to a channel.
pub enum ChanMsg {
    /// A client joins (result: Ok, or the numeric that refuses it).
    Join {
        who: Who,
        out: Outbound,
        key: Option<String>,
        reply: ReplyTo<Result<(), u16>>,
    },
    /// A client leaves.
    Part {
        who: Who,
        out: Outbound,
        reason: Option<String>,
    },
    /// PRIVMSG or NOTICE to the channel.
    Say {
        who: Who,
        out: Outbound,
        text: String,
        notice: bool,
    },
    /// TOPIC query or change.
    Topic {
        who: Who,
        out: Outbound,
        topic: Option<String>,
    },
    /// MODE query or change.
    Mode {
        who: Who,
        out: Outbound,
        args: Vec<String>,
    },
    /// KICK.
    Kick {
        who: Who,
        out: Outbound,
        target: String,
        reason: Option<String>,
    },
    /// NAMES.
    Names { nick: String, out: Outbound },
    /// WHO.
    WhoList { nick: String, out: Outbound },
    /// A member quits; members in `notified` were told already, and with `quiet` none is.
    Quit {
        who: Who,
        reason: String,
        quiet: bool,
        notified: Notified,
        reply: ReplyTo<()>,
    },
    /// A member changes nick.
    Renamed {
        old: Who,
        new: String,
        notified: Notified,
        reply: ReplyTo<()>,
    },
    /// Replies once everything sent before it has been handled.
    Sync { reply: ReplyTo<()> },
}

/// A channel actor.
pub struct Channel {
    name: String,
    config: Arc<Config>,
    directory: Addr<DirMsg>,
    members: HashMap<String, Member>,
    topic: Option<String>,
    modes: Modes,
    bans: Vec<String>,
    /// Buffers this channel queued lines into since its last hand-over to the flusher.
    dirty: Vec<Outbound>,
    flushes: Flushes,
}

impl Channel {
    fn new(name: String, config: Arc<Config>, directory: Addr<DirMsg>, flushes: Flushes) -> Self {
        let modes = Modes {
            topic_ops: true,
            no_external: true,
            ..Modes::default()
        };
        Channel {
            name,
            config,
            directory,
            members: HashMap::new(),
            topic: None,
            modes,
            bans: Vec::new(),
            dirty: Vec::new(),
            flushes,
        }
    }

    fn num(&self, out: &Outbound, code: u16, nick: &str, params: &[&str], text: &str) {
        out.text(irc::numeric(&self.config.name, code, nick, params, text));
    }

    fn not_on_channel(&self, out: &Outbound, nick: &str) {
        self.num(
            out,
            num::ERR_NOTONCHANNEL,
            nick,
            &[&self.name],
            "You're not on that channel",
        );
    }

    fn not_operator(&self, out: &Outbound, nick: &str) {
        let text = "You're not channel operator";
        self.num(out, num::ERR_CHANOPRIVSNEEDED, nick, &[&self.name], text);
    }

    fn send_topic(&self, out: &Outbound, nick: &str) {
        match &self.topic {
            Some(t) => self.num(out, num::RPL_TOPIC, nick, &[&self.name], t),
            None => self.num(
                out,
                num::RPL_NOTOPIC,
                nick,
                &[&self.name],
                "No topic is set",
            ),
        }
    }

    /// Queues `line` for every member (but `except`); the [`Flusher`] writes it after this
    /// channel's burst ends.
    fn broadcast(&mut self, line: &str, except: Option<&str>) {
        for (k, m) in &self.members {
            if Some(k.as_str()) != except {
                m.out.queue(line, &mut self.dirty);
            }
        }
    }

    /// Writes what this channel queued for its members, now.
    fn flush(&mut self) {
        for m in self.members.values() {
            m.out.flush();
        }
    }

    fn names(&self, nick: &str, out: &Outbound) {
        let symbol = if self.modes.secret { "@" } else { "=" };
        let mut list = String::new();
        for m in self.members.values() {
            if list.len() > 400 {
                self.num(out, num::RPL_NAMREPLY, nick, &[symbol, &self.name], &list);
                list.clear();
            }
            if !list.is_empty() {
                list.push(' ');
            }
            if m.op {
                list.push('@');
            } else if m.voice {
                list.push('+');
            }
            list.push_str(&m.who.nick);
        }
        if !list.is_empty() {
            self.num(out, num::RPL_NAMREPLY, nick, &[symbol, &self.name], &list);
        }
        self.num(
            out,
            num::RPL_ENDOFNAMES,
            nick,
            &[&self.name],
            "End of /NAMES list.",
        );
    }

    fn mode_string(&self, show_key: bool) -> String {
        let mut s = String::from("+");
        let mut args = Vec::new();
        for (on, c) in [
            (self.modes.moderated, 'm'),
            (self.modes.no_external, 'n'),
            (self.modes.secret, 's'),
            (self.modes.topic_ops, 't'),
        ] {
            if on {
                s.push(c);
            }
        }
        if let Some(k) = &self.modes.key {
            s.push('k');
            args.push(if show_key { k.clone() } else { "*".to_owned() });
        }
        if let Some(l) = self.modes.limit {
            s.push('l');
            args.push(l.to_string());
        }
        for a in args {
            s.push(' ');
            s.push_str(&a);
        }
        s
    }

    /// Tells the directory how the channel looks now.
    fn report(&self, ctx: &Ctx<'_, ChanMsg>) {
        let _ = self.directory.try_send(DirMsg::ChanInfo {
            name: self.name.clone(),
            id: ctx.id(),
            members: self.members.len(),
            topic: self.topic.clone().unwrap_or_default(),
            secret: self.modes.secret,
        });
    }

    fn leave(&mut self, key: &str, ctx: &mut Ctx<'_, ChanMsg>) {
        if let Some(m) = self.members.remove(key) {
            // It may have lines of this burst waiting (its own PART or KICK).
            m.out.flush();
        }
        if self.members.is_empty() {
            // The directory forgets us; JOINs already queued here fail and are retried there.
            let _ = self.directory.send(DirMsg::ChanInfo {
                name: self.name.clone(),
                id: ctx.id(),
                members: 0,
                topic: String::new(),
                secret: false,
            });
            ctx.stop();
        } else {
            self.report(ctx);
        }
    }

    fn apply_modes(&mut self, who: &Who, out: &Outbound, args: &[String]) {
        let nick = &who.nick;
        let Some(spec) = args.first() else { return };
        let mut params = args[1..].iter();
        let mut adding = true;
        let (mut applied, mut applied_args) = (String::new(), Vec::<String>::new());
        let mut last_sign = ' ';
        let mut push = |sign: char, c: char, arg: Option<String>, applied: &mut String| {
            if sign != last_sign {
                applied.push(sign);
                last_sign = sign;
            }
            applied.push(c);
            if let Some(a) = arg {
                applied_args.push(a);
            }
        };
        for c in spec.chars() {
            let sign = if adding { '+' } else { '-' };
            match c {
                '+' => adding = true,
                '-' => adding = false,
                'b' if params.len() == 0 => {
                    for b in &self.bans {
                        self.num(out, num::RPL_BANLIST, nick, &[&self.name, b], "");
                    }
                    self.num(
                        out,
                        num::RPL_ENDOFBANLIST,
                        nick,
                        &[&self.name],
                        "End of channel ban list",
                    );
                }
                'o' | 'v' | 'b' | 'k' | 'l' | 't' | 'n' | 'm' | 's' => {
                    if !self.members.get(&fold(nick)).is_some_and(|m| m.op) {
                        self.not_operator(out, nick);
                        return;
                    }
                    match c {
                        'o' | 'v' => {
                            let Some(target) = params.next() else {
                                continue;
                            };
                            match self.members.get_mut(&fold(target)) {
                                Some(m) => {
                                    if c == 'o' {
                                        m.op = adding;
                                    } else {
                                        m.voice = adding;
                                    }
                                    push(sign, c, Some(m.who.nick.clone()), &mut applied);
                                }
                                None => self.num(
                                    out,
                                    num::ERR_USERNOTINCHANNEL,
                                    nick,
                                    &[target, &self.name],
                                    "They aren't on that channel",
                                ),
                            }
                        }
                        'b' => {
                            let Some(mask) = params.next() else { continue };
                            if adding && !self.bans.contains(mask) {
                                self.bans.push(mask.clone());
                            } else if !adding {
                                self.bans.retain(|b| b != mask);
                            }
                            push(sign, c, Some(mask.clone()), &mut applied);
                        }
                        'k' => {
                            if adding {
                                let Some(k) = params.next() else { continue };
                                if self.modes.key.is_some() {
                                    self.num(
                                        out,
                                        num::ERR_KEYSET,
                                        nick,
                                        &[&self.name],
                                        "Channel key already set",
                                    );
                                    continue;
                                }
                                self.modes.key = Some(k.clone());
                                push(sign, c, Some(k.clone()), &mut applied);
                            } else {
                                let _ = params.next();
                                self.modes.key = None;
                                push(sign, c, Some("*".into()), &mut applied);
                            }
                        }
                        'l' => {
                            if adding {
                                let Some(n) = params.next().and_then(|l| l.parse::<usize>().ok())
                                else {
                                    continue;
                                };
                                self.modes.limit = Some(n);
                                push(sign, c, Some(n.to_string()), &mut applied);
                            } else {
                                self.modes.limit = None;
                                push(sign, c, None, &mut applied);
                            }
                        }
                        _ => {
                            let flag = match c {
                                't' => &mut self.modes.topic_ops,
                                'n' => &mut self.modes.no_external,
                                'm' => &mut self.modes.moderated,
                                _ => &mut self.modes.secret,
                            };
                            if *flag != adding {
                                *flag = adding;
                                push(sign, c, None, &mut applied);
                            }
                        }
                    }
                }
                other => {
                    let s = other.to_string();
                    self.num(
                        out,
                        num::ERR_UNKNOWNMODE,
                        nick,
                        &[&s],
                        "is unknown mode char to me",
                    );
                }
            }
        }
        if !applied.is_empty() {
            let mut line = format!(":{} MODE {} {}", who.prefix(), self.name, applied);
            for a in applied_args {
                line.push(' ');
                line.push_str(&a);
            }
            line.push_str("\r\n");
            self.broadcast(&line, None);
        }
    }
}

impl Actor for Channel {
    type Msg = ChanMsg;

    /// The end of a burst of messages: the flusher writes what it queued.
    fn idle(&mut self, _ctx: &mut Ctx<'_, ChanMsg>) {
        if !self.dirty.is_empty() {
            self.flushes.hand_over(&mut self.dirty);
        }
    }

    fn stopped(&mut self, _reason: &StopReason) {
        for out in std::mem::take(&mut self.dirty) {
            out.flush_queued();
        }
    }

    fn handle(&mut self, msg: ChanMsg, ctx: &mut Ctx<'_, ChanMsg>) {
        match msg {
            ChanMsg::Join {
                who,
                out,
                key,
                reply,
            } => {
                let k = fold(&who.nick);
                if self.members.contains_key(&k) {
                    reply.send(Ok(()));
                    return;
                }
                let mask = who.prefix();
                let refused = if self.bans.iter().any(|b| irc::mask_matches(b, mask)) {
                    Some(num::ERR_BANNEDFROMCHAN)
                } else if self.modes.key.is_some() && self.modes.key != key {
                    Some(num::ERR_BADCHANNELKEY)
                } else if self.modes.limit.is_some_and(|l| self.members.len() >= l) {
                    Some(num::ERR_CHANNELISFULL)
                } else {
                    None
                };
                if let Some(code) = refused {
                    reply.send(Err(code));
                    return;
                }
                let op = self.members.is_empty();
                self.members.insert(
                    k,
                    Member {
                        who: who.clone(),
                        out: out.clone(),
                        op,
                        voice: false,
                    },
                );
                self.broadcast(&format!(":{} JOIN {}\r\n", who.prefix(), self.name), None);
                self.send_topic(&out, &who.nick);
                self.names(&who.nick, &out);
                self.report(ctx);
                reply.send(Ok(()));
            }
            ChanMsg::Part { who, out, reason } => {
                let k = fold(&who.nick);
                if !self.members.contains_key(&k) {
                    self.not_on_channel(&out, &who.nick);
                    return;
                }
                let line = match reason {
                    Some(r) => format!(":{} PART {} :{}\r\n", who.prefix(), self.name, r),
                    None => format!(":{} PART {}\r\n", who.prefix(), self.name),
                };
                self.broadcast(&line, None);
                self.leave(&k, ctx);
            }
            ChanMsg::Say {
                who,
                out,
                text,
                notice,
            } => {
                let k = fold(&who.nick);
                let member = self.members.get(&k);
                let allowed = match member {
                    None => !self.modes.no_external && !self.modes.moderated,
                    Some(m) => !self.modes.moderated || m.op || m.voice,
                };
                if !allowed {
                    if !notice {
                        self.num(
                            &out,
                            num::ERR_CANNOTSENDTOCHAN,
                            &who.nick,
                            &[&self.name],
                            "Cannot send to channel",
                        );
                    }
                    return;
                }
                let cmd = if notice { "NOTICE" } else { "PRIVMSG" };
                let line = format!(":{} {} {} :{}\r\n", who.prefix(), cmd, self.name, text);
                self.broadcast(&line, Some(&k));
            }
            ChanMsg::Topic { who, out, topic } => {
                let k = fold(&who.nick);
                let Some(m) = self.members.get(&k) else {
                    self.not_on_channel(&out, &who.nick);
                    return;
                };
                match topic {
                    None => self.send_topic(&out, &who.nick),
                    Some(_) if self.modes.topic_ops && !m.op => self.not_operator(&out, &who.nick),
                    Some(t) => {
                        self.broadcast(
                            &format!(":{} TOPIC {} :{}\r\n", who.prefix(), self.name, t),
                            None,
                        );
                        self.topic = (!t.is_empty()).then_some(t);
                        self.report(ctx);
                    }
                }
            }
            ChanMsg::Mode { who, out, args } => {
                if args.is_empty() {
                    let member = self.members.contains_key(&fold(&who.nick));
                    let modes = self.mode_string(member);
                    self.num(
                        &out,
                        num::RPL_CHANNELMODEIS,
                        &who.nick,
                        &[&self.name, &modes],
                        "",
                    );
                } else {
                    self.apply_modes(&who, &out, &args);
                    self.report(ctx);
                }
            }
            ChanMsg::Kick {
                who,
                out,
                target,
                reason,
            } => {
                let k = fold(&who.nick);
                let Some(m) = self.members.get(&k) else {
                    self.not_on_channel(&out, &who.nick);
                    return;
                };
                if !m.op {
                    self.not_operator(&out, &who.nick);
                    return;
                }
                let tk = fold(&target);
                let Some(t) = self.members.get(&tk) else {
                    self.num(
                        &out,
                        num::ERR_USERNOTINCHANNEL,
                        &who.nick,
                        &[&target, &self.name],
                        "They aren't on that channel",
                    );
                    return;
                };
                t.out.left().push(fold(&self.name));
                let reason = reason.unwrap_or_else(|| who.nick.clone());
                let line = format!(
                    ":{} KICK {} {} :{}\r\n",
                    who.prefix(),
                    self.name,
                    t.who.nick,
                    reason
                );
                self.broadcast(&line, None);
                self.leave(&tk, ctx);
            }
            ChanMsg::Names { nick, out } => {
                if self.modes.secret && !self.members.contains_key(&fold(&nick)) {
                    self.num(
                        &out,
                        num::RPL_ENDOFNAMES,
                        &nick,
                        &[&self.name],
                        "End of /NAMES list.",
                    );
                } else {
                    self.names(&nick, &out);
                }
            }
            ChanMsg::WhoList { nick, out } => {
                for m in self.members.values() {
                    let flags = if m.op { "H@" } else { "H" };
                    let w = &m.who;
                    let params = [
                        self.name.as_str(),
                        &w.user,
                        &w.host,
                        &self.config.name,
                        &w.nick,
                        flags,
                    ];
                    self.num(
                        &out,
                        num::RPL_WHOREPLY,
                        &nick,
                        &params,
                        &format!("0 {}", w.realname),
                    );
                }
                self.num(
                    &out,
                    num::RPL_ENDOFWHO,
                    &nick,
                    &[&self.name],
                    "End of /WHO list.",
                );
            }
            ChanMsg::Quit {
                who,
                reason,
                quiet,
                notified,
                reply,
            } => {
                let k = fold(&who.nick);
                if self.members.contains_key(&k) {
                    if !quiet {
                        let line = format!(":{} QUIT :{}\r\n", who.prefix(), reason);
                        let mut told = notified.lock().unwrap();
                        for (mk, m) in &self.members {
                            if *mk != k && told.insert(mk.clone()) {
                                m.out.queue(&line, &mut self.dirty);
                            }
                        }
                    }
                    self.leave(&k, ctx);
                }
                reply.send(());
            }
            ChanMsg::Renamed {
                old,
                new,
                notified,
                reply,
            } => {
                let k = fold(&old.nick);
                if let Some(mut m) = self.members.remove(&k) {
                    let line = format!(":{} NICK :{}\r\n", old.prefix(), new);
                    let mut told = notified.lock().unwrap();
                    for (mk, other) in &self.members {
                        if told.insert(mk.clone()) {
                            other.out.queue(&line, &mut self.dirty);
                        }
                    }
                    drop(told);
                    m.who = m.who.renamed(&new);
                    self.members.insert(fold(&new), m);
                }
                reply.send(());
            }
            ChanMsg::Sync { reply } => {
                // What the asker sent before is on its way to the members' sockets first.
                self.flush();
                reply.send(());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// A token bucket: `burst` lines at once, then `rate` per second.
struct Bucket {
    tokens: f64,
    last: Instant,
    burst: u32,
    rate: u32,
}

impl Bucket {
    /// Takes a token; if none is there, how long until one is.
    fn take(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * f64::from(self.rate);
        self.tokens = (self.tokens + refill).min(f64::from(self.burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64(
                (1.0 - self.tokens) / f64::from(self.rate.max(1)),
            ))
        }
    }
}

/// One client's connection state, owned by its reader coroutine.
struct Client {
    config: Arc<Config>,
    dir: Addr<DirMsg>,
    out: Outbound,
    host: String,
    nick: Option<String>,
    user: Option<(String, String)>,
    registered: bool,
    /// Joined channels: folded name → (name, actor).
    channels: HashMap<String, (String, Addr<ChanMsg>)>,
    /// Channels written to since the last PING.
    touched: HashMap<String, Addr<ChanMsg>>,
    quit: Option<String>,
    /// `who()`, cached until the nick or user changes.
    identity: std::cell::RefCell<Option<Who>>,
    /// User mode +i.
    invisible: bool,
}

/// Serves one connection until it closes: one coroutine that reads the client's commands
/// and waits, in one persistent `Select`, for its socket to be readable or for word that the
/// socket stopped taking what others write to the client (then it drains the buffer).
fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    dir: Addr<DirMsg>,
    config: Arc<Config>,
    shared: &Shared,
) {
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Conn {
        closer: stream.closer(),
        dead: AtomicBool::new(false),
        why: Mutex::new(None),
    });
    let (reader, writer) = stream.split();
    let (out, stalled) = Outbound::new(writer, conn.clone(), config.sendq);
    // Leaves `live` however this ends (a panic included), so a shutdown does not wait for it;
    // normally just before the socket closes (below), so that a client that saw its
    // connection end is never counted by a shutdown that starts after that.
    struct Registered<'a>(&'a Shared, u64);
    impl Drop for Registered<'_> {
        fn drop(&mut self) {
            self.0.unregister(self.1);
        }
    }
    let registered = Registered(
        shared,
        shared.register(conn.clone(), out.0.stalled_tx.clone()),
    );
    let mut client = Client {
        out,
        host: peer.ip().to_string(),
        config,
        dir,
        nick: None,
        user: None,
        registered: false,
        channels: HashMap::new(),
        touched: HashMap::new(),
        quit: None,
        identity: std::cell::RefCell::new(None),
        invisible: false,
    };
    let reason = client.serve(&reader, &stalled, shared);
    client.cleanup(&reason, shared.is_closing());
    // What is queued still goes out (unless the client is the problem), then the goodbye.
    if !conn.dead.load(Ordering::Acquire) {
        let out = &client.out;
        out.own(&format!(
            "ERROR :Closing link: {} ({})\r\n",
            client.host, reason
        ));
        let _ = out.drain(&stalled);
    }
    drop(client);
    drop(registered);
    let _ = reader.shutdown();
    conn.kill("closed");
}

impl Client {
    fn nick(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }

    /// The client's identity, built once per nick/user change (every message carries it).
    fn who(&self) -> Who {
        let mut cached = self.identity.borrow_mut();
        if let Some(w) = cached.as_ref() {
            return w.clone();
        }
        let (user, realname) = self.user.clone().unwrap_or_default();
        let w = Who::new(self.nick().to_owned(), user, self.host.clone(), realname);
        *cached = Some(w.clone());
        w
    }

    fn set_nick(&mut self, nick: Option<String>) {
        self.nick = nick;
        self.identity.replace(None);
    }

    fn num(&self, code: u16, params: &[&str], text: &str) {
        let line = irc::numeric(&self.config.name, code, self.nick(), params, text);
        self.reply(line);
    }

    /// Queues one of the connection's own replies, in order with what others send the client;
    /// it goes out at the latest when the command is done.
    fn reply(&self, line: String) {
        self.out.own(&line);
    }

    /// Why the connection was closed from elsewhere, or `otherwise`.
    fn why(&self, otherwise: &str) -> String {
        self.out
            .conn()
            .why
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| otherwise.to_owned())
    }

    /// Handles the client until it leaves; returns why.
    ///
    /// Input is handled as the flood limit allows; while a client waits for tokens, its
    /// socket is not read (the flood backs up into its own TCP window) but what others send it
    /// keeps flowing out.
    fn serve(&mut self, stream: &ReadHalf, stalled: &Receiver<()>, shared: &Shared) -> String {
        let mut framer = Framer::default();
        let mut pending: std::collections::VecDeque<Frame> = std::collections::VecDeque::new();
        let mut fresh = Vec::new();
        // IRC lines are at most 512 bytes: a small read buffer per connection is plenty.
        let mut buf = vec![0u8; 1024];
        let mut awaiting_pong = false;
        let mut last_heard = Instant::now();
        let mut bucket = self.config.flood.map(|(burst, rate)| Bucket {
            tokens: f64::from(burst),
            last: Instant::now(),
            burst,
            rate,
        });
        let mut sel = Select::new();
        let readable = sel.readable(stream);
        sel.recv(stalled);
        let mut sel_out = Select::new();
        sel_out.recv(stalled);
        loop {
            if self.out.conn().dead.load(Ordering::Acquire) {
                return self.why("Connection closed");
            }
            if shared.is_closing() {
                return "Server shutting down".into();
            }
            // Handle what was read, as far as the flood limit allows.
            let mut throttled = None;
            while !pending.is_empty() {
                if let Some(wait) = bucket.as_mut().and_then(Bucket::take) {
                    throttled = Some(wait);
                    break;
                }
                match pending.pop_front().expect("not empty") {
                    Frame::TooLong => {
                        self.num(num::ERR_INPUTTOOLONG, &[], "Input line was too long")
                    }
                    Frame::Line(line) => {
                        if let Some(msg) = irc::parse(&line) {
                            self.command(msg.command, msg.params);
                        }
                    }
                }
                if let Some(q) = self.quit.take() {
                    return q;
                }
            }
            // The client's own replies go out now; if its socket is full, they (and what
            // others sent) are drained before more of its input is read: a client that does
            // not read its replies stops being served.
            self.out.flush();
            if stalled.try_recv().is_ok() && self.out.drain(stalled).is_err() {
                return self.why("Write error");
            }
            // Checked again after the stall signal was taken (above, or in `drain`): a
            // shutdown's wake-up may have been taken with it, and the shutdown set `closing`
            // before it sent the wake-up, so it shows here; a later wake-up ends the wait below.
            if shared.is_closing() {
                return "Server shutting down".into();
            }
            if let Some(wait) = throttled {
                // Only a stalled socket is served (above, next turn) until a token is due.
                let _ = sel_out.ready_timeout(wait);
                continue;
            }
            let idle_until = last_heard + self.config.ping_interval;
            let ready = sel.ready_timeout(idle_until.saturating_duration_since(Instant::now()));
            let Ok(op) = ready else {
                if awaiting_pong {
                    return "Ping timeout".into();
                }
                awaiting_pong = true;
                last_heard = Instant::now();
                self.reply(format!("PING :{}\r\n", self.config.name));
                continue;
            };
            if op != readable {
                // The socket stalled: drained above, next turn.
                continue;
            }
            let n = match stream.try_read(&mut buf) {
                // A kill shuts the socket down: its reason wins.
                Ok(0) => return self.why("Connection closed"),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return self.why("Connection reset"),
            };
            awaiting_pong = false;
            last_heard = Instant::now();
            framer.push(&buf[..n], &mut fresh);
            pending.extend(fresh.drain(..));
        }
    }

    fn ask<R>(&self, make: impl FnOnce(ReplyTo<R>) -> DirMsg) -> Option<R> {
        self.dir.ask(make, ASK).ok()
    }

    fn command(&mut self, cmd: String, p: Vec<String>) {
        let kicked = self.out.left().take();
        for k in kicked {
            self.channels.remove(&k);
            self.touched.remove(&k);
        }
        let need = |n: usize| p.len() >= n;
        match cmd.as_str() {
            "CAP" => match p.first().map(|s| s.to_ascii_uppercase()).as_deref() {
                Some("LS") | Some("LIST") => self.reply(format!(
                    ":{} CAP {} LS :\r\n",
                    self.config.name,
                    self.nick()
                )),
                Some("REQ") => {
                    let caps = p.get(1).cloned().unwrap_or_default();
                    self.reply(format!(
                        ":{} CAP {} NAK :{}\r\n",
                        self.config.name,
                        self.nick(),
                        caps
                    ))
                }
                _ => {}
            },
            "PASS" => {
                if self.registered {
                    self.num(num::ERR_ALREADYREGISTERED, &[], "You may not reregister");
                }
            }
            "NICK" => self.nick_cmd(p.first().cloned()),
            "USER" => {
                if self.registered {
                    self.num(num::ERR_ALREADYREGISTERED, &[], "You may not reregister");
                } else if !need(4) {
                    self.num(num::ERR_NEEDMOREPARAMS, &["USER"], "Not enough parameters");
                } else {
                    self.user = Some((p[0].chars().take(10).collect(), p[3].clone()));
                    self.identity.replace(None);
                    self.try_register();
                }
            }
            "PING" => {
                if let Some(token) = p.first() {
                    // Everything this client sent to channels before this PING is delivered
                    // before the PONG: each channel confirms after handling it.
                    for (_, ch) in self.touched.drain() {
                        let _ = ch.ask(|r| ChanMsg::Sync { reply: r }, ASK);
                    }
                    self.out
                        .text(format!(":{0} PONG {0} :{1}\r\n", self.config.name, token));
                } else {
                    self.num(num::ERR_NEEDMOREPARAMS, &["PING"], "Not enough parameters");
                }
            }
            "PONG" => {}
            "QUIT" => {
                self.quit = Some(match p.first() {
                    Some(m) => format!("Quit: {m}"),
                    None => "Client Quit".into(),
                })
            }
            _ if !self.registered => {
                self.num(num::ERR_NOTREGISTERED, &[], "You have not registered")
            }
            "JOIN" if need(1) => self.join(&p),
            "PART" if need(1) => {
                for name in p[0].split(',') {
                    match self.channels.remove(&fold(name)) {
                        Some((_, ch)) => {
                            let _ = ch.send(ChanMsg::Part {
                                who: self.who(),
                                out: self.out.clone(),
                                reason: p.get(1).cloned(),
                            });
                        }
                        None => {
                            self.num(num::ERR_NOTONCHANNEL, &[name], "You're not on that channel")
                        }
                    }
                }
            }
            "PRIVMSG" | "NOTICE" => self.say(&p, cmd == "NOTICE"),
            "TOPIC" if need(1) => {
                if let Some(ch) = self.channel(&p[0]) {
                    let _ = ch.send(ChanMsg::Topic {
                        who: self.who(),
                        out: self.out.clone(),
                        topic: p.get(1).cloned(),
                    });
                }
            }
            "NAMES" => {
                let names: Vec<String> = match p.first() {
                    Some(list) => list.split(',').map(str::to_owned).collect(),
                    None => self.channels.values().map(|(n, _)| n.clone()).collect(),
                };
                for name in names {
                    match self.channel(&name) {
                        Some(ch) => {
                            let _ = ch.send(ChanMsg::Names {
                                nick: self.nick().to_owned(),
                                out: self.out.clone(),
                            });
                        }
                        None => self.num(num::RPL_ENDOFNAMES, &[&name], "End of /NAMES list."),
                    }
                }
            }
            "LIST" => {
                self.num(num::RPL_LISTSTART, &["Channel"], "Users  Name");
                for (name, members, topic, secret) in
                    self.ask(|r| DirMsg::List { reply: r }).unwrap_or_default()
                {
                    if !secret || self.channels.contains_key(&fold(&name)) {
                        self.num(num::RPL_LIST, &[&name, &members.to_string()], &topic);
                    }
                }
                self.num(num::RPL_LISTEND, &[], "End of /LIST");
            }
            "KICK" if need(2) => {
                if let Some(ch) = self.channel(&p[0]) {
                    let _ = ch.send(ChanMsg::Kick {
                        who: self.who(),
                        out: self.out.clone(),
                        target: p[1].clone(),
                        reason: p.get(2).cloned(),
                    });
                }
            }
            "MODE" if need(1) => {
                if irc::valid_channel(&p[0]) {
                    if let Some(ch) = self.channel(&p[0]) {
                        let _ = ch.send(ChanMsg::Mode {
                            who: self.who(),
                            out: self.out.clone(),
                            args: p[1..].to_vec(),
                        });
                    }
                } else if fold(&p[0]) != fold(self.nick()) {
                    self.num(
                        num::ERR_USERSDONTMATCH,
                        &[],
                        "Cannot change mode for other users",
                    );
                } else if let Some(spec) = p.get(1) {
                    let mut adding = true;
                    for c in spec.chars() {
                        match c {
                            '+' => adding = true,
                            '-' => adding = false,
                            'i' => {
                                let _ = self.dir.send(DirMsg::Invisible {
                                    nick: self.nick().to_owned(),
                                    on: adding,
                                });
                                self.invisible = adding;
                                let sign = if adding { '+' } else { '-' };
                                self.reply(format!(
                                    ":{} MODE {} :{}i\r\n",
                                    self.nick(),
                                    self.nick(),
                                    sign
                                ));
                            }
                            _ => self.num(num::ERR_UMODEUNKNOWNFLAG, &[], "Unknown MODE flag"),
                        }
                    }
                } else {
                    let modes = if self.invisible { "+i" } else { "+" };
                    self.num(num::RPL_UMODEIS, &[modes], "");
                }
            }
            "WHO" => {
                let mask = p.first().cloned().unwrap_or_else(|| "*".into());
                if irc::valid_channel(&mask) {
                    if let Some(ch) = self.channel(&mask) {
                        let _ = ch.send(ChanMsg::WhoList {
                            nick: self.nick().to_owned(),
                            out: self.out.clone(),
                        });
                        return;
                    }
                } else if let Some(Some(u)) = self.ask(|r| DirMsg::Find {
                    nick: mask.clone(),
                    reply: r,
                }) {
                    let flags = if u.away.is_some() { "G" } else { "H" };
                    let w = &u.who;
                    let params = [
                        "*",
                        w.user.as_str(),
                        &w.host,
                        &self.config.name,
                        &w.nick,
                        flags,
                    ];
                    self.num(num::RPL_WHOREPLY, &params, &format!("0 {}", w.realname));
                }
                self.num(num::RPL_ENDOFWHO, &[&mask], "End of /WHO list.");
            }
            "WHOIS" if need(1) => {
                let target = p.last().cloned().unwrap_or_default();
                match self
                    .ask(|r| DirMsg::Find {
                        nick: target.clone(),
                        reply: r,
                    })
                    .flatten()
                {
                    Some(u) => {
                        let w = &u.who;
                        self.num(
                            num::RPL_WHOISUSER,
                            &[&w.nick, &w.user, &w.host, "*"],
                            &w.realname,
                        );
                        self.num(
                            num::RPL_WHOISSERVER,
                            &[&w.nick, &self.config.name],
                            "coact chat",
                        );
                        if let Some(a) = &u.away {
                            self.num(num::RPL_AWAY, &[&w.nick], a);
                        }
                    }
                    None => self.num(num::ERR_NOSUCHNICK, &[&target], "No such nick/channel"),
                }
                self.num(num::RPL_ENDOFWHOIS, &[&target], "End of /WHOIS list.");
            }
            "AWAY" => {
                let away = p.first().filter(|m| !m.is_empty()).cloned();
                let now_away = away.is_some();
                let _ = self.dir.send(DirMsg::Away {
                    nick: self.nick().to_owned(),
                    away,
                });
                if now_away {
                    self.num(num::RPL_NOWAWAY, &[], "You have been marked as being away");
                } else {
                    self.num(
                        num::RPL_UNAWAY,
                        &[],
                        "You are no longer marked as being away",
                    );
                }
            }
            "JOIN" | "PART" | "TOPIC" | "KICK" | "MODE" | "WHOIS" => {
                self.num(num::ERR_NEEDMOREPARAMS, &[&cmd], "Not enough parameters")
            }
            _ => self.num(num::ERR_UNKNOWNCOMMAND, &[&cmd], "Unknown command"),
        }
    }

    /// A joined channel's actor, or (for a channel we are not on) the directory's; tells the
    /// client if there is no such channel.
    fn channel(&self, name: &str) -> Option<Addr<ChanMsg>> {
        if let Some((_, ch)) = self.channels.get(&fold(name)) {
            return Some(ch.clone());
        }
        let found = self
            .ask(|r| DirMsg::Channel {
                name: name.to_owned(),
                create: false,
                reply: r,
            })
            .flatten();
        if found.is_none() {
            self.num(num::ERR_NOSUCHCHANNEL, &[name], "No such channel");
        }
        found
    }

    fn nick_cmd(&mut self, new: Option<String>) {
        let Some(new) = new.filter(|n| !n.is_empty()) else {
            self.num(num::ERR_NONICKNAMEGIVEN, &[], "No nickname given");
            return;
        };
        if !irc::valid_nick(&new) {
            self.num(num::ERR_ERRONEUSNICKNAME, &[&new], "Erroneous nickname");
            return;
        }
        if !self.registered {
            self.set_nick(Some(new));
            self.try_register();
            return;
        }
        let old = self.who();
        if self.ask(|r| DirMsg::Rename {
            old: old.nick.clone(),
            new: new.clone(),
            reply: r,
        }) != Some(true)
        {
            self.num(
                num::ERR_NICKNAMEINUSE,
                &[&new],
                "Nickname is already in use",
            );
            return;
        }
        self.out
            .text(format!(":{} NICK :{}\r\n", old.prefix(), new));
        let notified: Notified = Arc::new(Mutex::new(HashSet::from([fold(&old.nick)])));
        for (_, ch) in self.channels.values() {
            let _ = ch.ask(
                |r| ChanMsg::Renamed {
                    old: old.clone(),
                    new: new.clone(),
                    notified: notified.clone(),
                    reply: r,
                },
                ASK,
            );
        }
        self.set_nick(Some(new));
    }

    fn try_register(&mut self) {
        let (Some(nick), Some(_)) = (self.nick.clone(), self.user.as_ref()) else {
            return;
        };
        let who = self.who();
        if self.ask(|r| DirMsg::Register {
            who,
            out: self.out.clone(),
            reply: r,
        }) != Some(true)
        {
            self.num(
                num::ERR_NICKNAMEINUSE,
                &[&nick],
                "Nickname is already in use",
            );
            self.set_nick(None);
            return;
        }
        self.registered = true;
        let name = self.config.name.clone();
        let prefix = self.who().prefix().to_owned();
        self.num(
            num::RPL_WELCOME,
            &[],
            &format!("Welcome to the coact IRC network {prefix}"),
        );
        self.num(
            num::RPL_YOURHOST,
            &[],
            &format!("Your host is {name}, running coact-chat"),
        );
        self.num(num::RPL_CREATED, &[], "This server was created just now");
        self.num(num::RPL_MYINFO, &[&name, "coact-chat", "i", "bklmnost"], "");
        self.num(
            num::RPL_ISUPPORT,
            &[
                "CASEMAPPING=rfc1459",
                "CHANTYPES=#&",
                "CHANMODES=b,k,l,mnst",
                "PREFIX=(ov)@+",
                "NICKLEN=30",
            ],
            "are supported by this server",
        );
        self.num(
            num::RPL_MOTDSTART,
            &[],
            &format!("- {name} Message of the day -"),
        );
        for line in self.config.motd.clone() {
            self.num(num::RPL_MOTD, &[], &format!("- {line}"));
        }
        self.num(num::RPL_ENDOFMOTD, &[], "End of /MOTD command.");
    }

    fn join(&mut self, p: &[String]) {
        if p[0] == "0" {
            let who = self.who();
            for (_, (_, ch)) in self.channels.drain() {
                let _ = ch.send(ChanMsg::Part {
                    who: who.clone(),
                    out: self.out.clone(),
                    reason: None,
                });
            }
            return;
        }
        let keys: Vec<&str> = p.get(1).map(|k| k.split(',').collect()).unwrap_or_default();
        for (i, name) in p[0].split(',').enumerate() {
            if !irc::valid_channel(name) {
                self.num(num::ERR_NOSUCHCHANNEL, &[name], "No such channel");
                continue;
            }
            let key = keys.get(i).map(|k| (*k).to_owned());
            // A channel that just emptied may stop under us: ask the directory again.
            for _attempt in 0..5 {
                let Some(Some(ch)) = self.ask(|r| DirMsg::Channel {
                    name: name.to_owned(),
                    create: true,
                    reply: r,
                }) else {
                    break;
                };
                let r = ch.ask(
                    |r| ChanMsg::Join {
                        who: self.who(),
                        out: self.out.clone(),
                        key: key.clone(),
                        reply: r,
                    },
                    ASK,
                );
                match r {
                    Ok(Ok(())) => {
                        self.channels.insert(fold(name), (name.to_owned(), ch));
                        break;
                    }
                    Ok(Err(code)) => {
                        let text = match code {
                            num::ERR_BANNEDFROMCHAN => "Cannot join channel (+b)",
                            num::ERR_BADCHANNELKEY => "Cannot join channel (+k)",
                            _ => "Cannot join channel (+l)",
                        };
                        self.num(code, &[name], text);
                        break;
                    }
                    Err(AskError::Closed) | Err(AskError::NoReply) => continue,
                    Err(AskError::Timeout) => break,
                }
            }
        }
    }

    fn say(&mut self, p: &[String], notice: bool) {
        let cmd = if notice { "NOTICE" } else { "PRIVMSG" };
        let Some(targets) = p.first() else {
            if !notice {
                self.num(
                    num::ERR_NORECIPIENT,
                    &[],
                    &format!("No recipient given ({cmd})"),
                );
            }
            return;
        };
        let Some(text) = p.get(1).filter(|t| !t.is_empty()) else {
            if !notice {
                self.num(num::ERR_NOTEXTTOSEND, &[], "No text to send");
            }
            return;
        };
        for target in targets.split(',') {
            if irc::valid_channel(target) {
                let Some(ch) = self.channel(target) else {
                    continue;
                };
                let msg = ChanMsg::Say {
                    who: self.who(),
                    out: self.out.clone(),
                    text: text.clone(),
                    notice,
                };
                if ch.send(msg).is_ok() {
                    self.touched.insert(fold(target), ch);
                }
            } else {
                match self
                    .ask(|r| DirMsg::Find {
                        nick: target.to_owned(),
                        reply: r,
                    })
                    .flatten()
                {
                    Some(u) => {
                        u.out.text(format!(
                            ":{} {} {} :{}\r\n",
                            self.who().prefix(),
                            cmd,
                            u.who.nick,
                            text
                        ));
                        if let (Some(away), false) = (&u.away, notice) {
                            self.num(num::RPL_AWAY, &[&u.who.nick], away);
                        }
                    }
                    None if !notice => {
                        self.num(num::ERR_NOSUCHNICK, &[target], "No such nick/channel")
                    }
                    None => {}
                }
            }
        }
    }

    /// Leaves every channel (each member told once) and frees the nickname.
    /// Leaves the client's channels and frees its nick. `quiet`: the other members are not
    /// sent its QUIT (the server is shutting down: they are all leaving).
    fn cleanup(&mut self, reason: &str, quiet: bool) {
        if !self.registered {
            return;
        }
        let who = self.who();
        let notified: Notified = Arc::new(Mutex::new(HashSet::new()));
        for (_, (_, ch)) in self.channels.drain() {
            let _ = ch.ask(
                |r| ChanMsg::Quit {
                    who: who.clone(),
                    reason: reason.to_owned(),
                    quiet,
                    notified: notified.clone(),
                    reply: r,
                },
                ASK,
            );
        }
        let _ = self.dir.send(DirMsg::Leave {
            nick: who.nick.clone(),
        });
    }
}
