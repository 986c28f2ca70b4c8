//! Sockets in coroutines: `coact::net` over loopback (issue 3).
//!
//! What these tests prove, each bounded (10 s socket timeouts, and the watchdog of
//! `common::on_workers`/`bounded`) so that a bug fails a test instead of hanging `cargo test`:
//! - lesson 1 (mioco #155, read stalls): `read` returns what has arrived without waiting to
//!   fill the buffer, whether the peer is a coroutine or a plain thread with std sockets; the
//!   non-blocking calls (`try_read`, `try_accept`, `try_recv_from`) never park.
//! - lesson 4 (mioco #144, `try_clone`): a clone is a real duplicate with its own registration,
//!   usable on another worker and after the original is dropped; socket types are `Send` and
//!   not `Sync` (checked at compile time).
//! - the proxy of `examples/proxy.rs` relays 4 MiB each way at once, in order, and its
//!   half-close lets both directions finish; split halves and moved streams work across
//!   workers and plain threads.
//! - 2,000 concurrent connections to `examples/echo.rs`; a 1,500-connection burst waits in a
//!   listener's backlog; error kinds (refused, reset, timed out); select over a socket and a
//!   channel; UDP.
//!
//! Events are ordered by handshakes (channels, joins, peeks), never by sleeps.

mod common;

#[allow(dead_code)]
#[path = "../examples/echo.rs"]
mod echo;

#[allow(dead_code)]
#[path = "../examples/proxy.rs"]
mod proxy;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use coact::net::{ReadHalf, TcpListener, TcpStream, UdpSocket, WriteHalf, LISTEN_BACKLOG};
use coact::select::Select;
use coact::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use common::{bounded, on_workers, runtime};

/// Every socket a test waits on gives up after this long, so a lost wake-up is an error.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Binds a listener on a free loopback port.
fn listen() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let addr = l.local_addr().expect("listener address");
    (l, addr)
}

/// Sets both timeouts of `s` to [`IO_TIMEOUT`].
fn bound_io(s: &TcpStream) {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
}

/// Connects to `addr` with [`IO_TIMEOUT`] on both directions.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect over loopback");
    bound_io(&s);
    s
}

/// Accepts one connection, or fails with `TimedOut` after `timeout`. (`accept` has no
/// timeout of its own: this waits with a `Select` on the listener, then `try_accept`s.)
fn accept_within(listener: &TcpListener, timeout: Duration) -> io::Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    let mut sel = Select::new();
    sel.readable(listener);
    loop {
        match listener.try_accept() {
            Ok((s, _)) => {
                bound_io(&s);
                return Ok(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if sel.ready_timeout(left).is_err() {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                "no connection to accept",
            ));
        }
    }
}

/// A connected pair `(client, server side)` over loopback, from a coroutine or a thread.
fn pair() -> (TcpStream, TcpStream) {
    let (l, addr) = listen();
    let c = connect(addr);
    let s = accept_within(&l, IO_TIMEOUT).expect("accept the pair's connection");
    (c, s)
}

/// Starts `examples/echo.rs`'s server on a free port of the caller's runtime; returns the port.
fn echo_server() -> SocketAddr {
    let (l, addr) = listen();
    // Detached: it is cancelled when the test's runtime is dropped.
    drop(coact::spawn(move || echo::serve(l)));
    addr
}

/// Byte `i` of the test stream `seed`: position-dependent, so a lost, repeated or reordered
/// chunk shows up at its offset.
fn pattern(seed: u8, i: u64) -> u8 {
    ((i ^ (i >> 8) ^ (i >> 16)) as u8)
        .wrapping_mul(31)
        .wrapping_add(seed)
}

/// An order-sensitive checksum (64-bit FNV-1a).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Writes `len` bytes of stream `seed` in chunks of varying sizes; returns their checksum.
fn write_pattern(w: &mut impl Write, seed: u8, len: u64) -> io::Result<Fnv> {
    let mut sum = Fnv::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    let mut k = 0u64;
    while off < len {
        // 1 B .. 64 KiB, varying, so that writes and reads do not line up.
        let chunk = (((k * 7919) % 65_536) + 1).min(len - off) as usize;
        for (j, b) in buf[..chunk].iter_mut().enumerate() {
            *b = pattern(seed, off + j as u64);
        }
        w.write_all(&buf[..chunk])?;
        sum.update(&buf[..chunk]);
        off += chunk as u64;
        k += 1;
    }
    Ok(sum)
}

/// What [`read_checked`] saw.
#[derive(Debug)]
struct Received {
    /// Bytes of the pattern received (all checked in order).
    len: u64,
    sum: Fnv,
    /// Whatever came after the first `expect` bytes.
    tail: Vec<u8>,
}

/// Reads until end of stream, checking that the first `expect` bytes are stream `seed` in
/// order (panics at the first wrong byte, naming its offset) and keeping the rest as `tail`.
fn read_checked(r: &mut impl Read, seed: u8, expect: u64) -> io::Result<Received> {
    let mut buf = vec![0u8; 48 * 1024];
    let mut got = Received {
        len: 0,
        sum: Fnv::new(),
        tail: Vec::new(),
    };
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(got);
        }
        let body = ((expect - got.len) as usize).min(n);
        for (j, &b) in buf[..body].iter().enumerate() {
            let at = got.len + j as u64;
            assert_eq!(
                b,
                pattern(seed, at),
                "stream {seed}: wrong byte at offset {at}"
            );
        }
        got.sum.update(&buf[..body]);
        got.len += body as u64;
        got.tail.extend_from_slice(&buf[body..n]);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// `n` parked coroutines, each having reported the worker it runs on (a started coroutine
/// never changes workers), ready to run one job each. This lets a test hand work to a
/// coroutine on a *different* worker when the scheduler happened to start one there; it cannot
/// force that, so tests only report which workers were used.
struct Crew {
    members: Vec<(Option<usize>, Sender<Job>)>,
}

impl Crew {
    /// The most members a crew starts.
    const MAX: usize = 64;

    /// Starts at least `n` members; more (up to [`Crew::MAX`]) while they have all landed on
    /// the caller's worker, to give the scheduler a chance to place some on another.
    fn new(n: usize) -> Crew {
        let here = coact::current_worker();
        let (report_tx, report_rx) = channel::<(usize, Option<usize>)>();
        let mut senders = Vec::new();
        let mut members = Vec::new();
        let deadline = Instant::now() + IO_TIMEOUT;
        while members.len() < n
            || (members.iter().all(|(w, _)| *w == here) && senders.len() < Self::MAX)
        {
            // A batch of 4 more, spawned from a plain thread: such spawns go to the shared
            // injector and wake a *sleeping* worker, and this one is kept busy meanwhile.
            let first = senders.len();
            let mut batch = Vec::new();
            for id in first..first + 4 {
                let (job_tx, job_rx) = channel::<Job>();
                let report_tx = report_tx.clone();
                batch.push(move || {
                    report_tx.send((id, coact::current_worker())).unwrap();
                    if let Ok(job) = job_rx.recv() {
                        job();
                    }
                });
                senders.push(Some(job_tx));
            }
            let handle = coact::Handle::current().expect("a crew is made on a runtime");
            thread::spawn(move || {
                for member in batch {
                    drop(handle.spawn(member));
                }
            });
            // Wait by yielding, not parking, so that this worker does not sleep.
            while members.len() < senders.len() {
                match report_rx.try_recv() {
                    Ok((id, worker)) => {
                        members.push((worker, senders[id].take().expect("one report each")))
                    }
                    Err(_) => {
                        assert!(Instant::now() < deadline, "crew members did not start");
                        coact::yield_now();
                    }
                }
            }
        }
        Crew { members }
    }

    /// Runs `f` on a member, preferring one whose worker is not `avoid`; returns that worker
    /// and a receiver for `f`'s result.
    fn run<T: Send + 'static>(
        &mut self,
        avoid: Option<usize>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> (Option<usize>, Receiver<T>) {
        let i = self
            .members
            .iter()
            .position(|(w, _)| *w != avoid)
            .unwrap_or(0);
        let (worker, job_tx) = self.members.swap_remove(i);
        let (tx, rx) = sync_channel(1);
        job_tx
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .expect("crew member waiting");
        (worker, rx)
    }
}

/// The number of descriptors this process may open, from `/proc/self/limits` (Linux).
fn fd_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Lesson 1 (mioco #155): reads return what is there; try_* never park
// ---------------------------------------------------------------------------------------------

/// 23 bytes, sent in one write.
const REQUEST: &[u8; 23] = b"twenty-three bytes here";
const REPLY: &[u8] = b"got them";

/// Accepts one connection, reads once with a 1,024-byte buffer and replies; returns how many
/// bytes that one read gave.
fn lesson1_server(listener: &TcpListener) -> usize {
    let mut conn = accept_within(listener, IO_TIMEOUT).expect("accept");
    let mut buf = [0u8; 1024];
    // The peer sent 23 bytes and now waits for the reply: a read that waited to fill `buf`
    // would time out here (TimedOut after 10 s) instead of returning.
    let n = conn.read(&mut buf).expect("one read returns the 23 bytes");
    assert_eq!(&buf[..n], REQUEST, "the read returns exactly what was sent");
    conn.write_all(REPLY).expect("reply");
    n
}

#[test]
fn lesson1_read_returns_partial_data_at_once() {
    // Both ends coroutines, on one worker and on two.
    for workers in [1, 2] {
        let n = on_workers(workers, || {
            let (listener, addr) = listen();
            let server = coact::spawn(move || lesson1_server(&listener));
            let mut c = connect(addr);
            c.write_all(REQUEST).unwrap();
            let mut reply = [0u8; REPLY.len()];
            c.read_exact(&mut reply).expect("the reply arrives");
            assert_eq!(&reply, REPLY);
            server.join().expect("server coroutine")
        });
        assert_eq!(n, REQUEST.len(), "workers={workers}");
    }

    // The client a plain thread with std's socket, the server a coroutine.
    let n = bounded(|| {
        let rt = runtime(1);
        let (listener, addr) = listen();
        let server = rt.spawn(move || lesson1_server(&listener));
        let client = thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            c.write_all(REQUEST).unwrap();
            let mut reply = [0u8; REPLY.len()];
            c.read_exact(&mut reply).expect("the reply arrives");
            assert_eq!(&reply, REPLY);
        });
        client.join().expect("std client thread");
        server.join().expect("server coroutine")
    });
    assert_eq!(n, REQUEST.len());
}

#[test]
fn lesson1_try_read_never_parks() {
    // One worker: a coroutine spawned here can run only if this one parks or yields. So if the
    // flag is still unset after the calls, none of them parked.
    on_workers(1, || {
        let (listener, addr) = listen();
        let mut c = connect(addr);
        let mut peer = accept_within(&listener, IO_TIMEOUT).unwrap();
        let mut buf = [0u8; 64];

        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let bystander = coact::spawn(move || flag.store(true, Ordering::SeqCst));

        // Fresh: never registered with a poll.
        let start = Instant::now();
        let e = c.try_read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        let e = listener.try_accept().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "nothing to accept");
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(!ran.load(Ordering::SeqCst), "try_read or try_accept parked");

        // Registered: a blocking read parks (letting the bystander run) and times out.
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let e = c.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "an idle read times out");
        assert!(ran.load(Ordering::SeqCst), "a blocking read parks");
        bystander.join().unwrap();
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();

        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let bystander = coact::spawn(move || flag.store(true, Ordering::SeqCst));
        let start = Instant::now();
        for _ in 0..100 {
            let e = c.try_read(&mut buf).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WouldBlock);
        }
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(!ran.load(Ordering::SeqCst), "try_read parked");
        bystander.join().unwrap();

        // Data arrives: once the socket is readable, try_read returns it.
        peer.write_all(b"now").unwrap();
        let mut sel = Select::new();
        sel.readable(&c);
        let n = loop {
            sel.ready_timeout(IO_TIMEOUT).expect("readable within 10 s");
            match c.try_read(&mut buf) {
                Ok(n) => break n,
                // Readiness may be spurious (a fresh socket starts ready): wait again.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("try_read: {e}"),
            }
        };
        assert_eq!(&buf[..n], b"now");
        drop(sel);

        // The halves behave the same.
        let (r, w) = c.split();
        let e = r.try_read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        assert_eq!(
            w.try_write(b"x").unwrap(),
            1,
            "an empty send buffer takes a byte"
        );
        let mut one = [0u8; 1];
        peer.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
    });

    // From a plain thread too.
    bounded(|| {
        let (c, _peer) = pair();
        let mut buf = [0u8; 8];
        let e = c.try_read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
    });
}

// ---------------------------------------------------------------------------------------------
// Lesson 4 (mioco #144): try_clone is a real clone; sockets are Send, not Sync
// ---------------------------------------------------------------------------------------------

fn assert_send<T: Send>() {}

/// `<T as AmbiguousIfSync<_>>::some_item()` compiles only if `T` is *not* `Sync`: for a `Sync`
/// type both impls apply and the `_` is ambiguous (the trick of `static_assertions`).
trait AmbiguousIfSync<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSync<()> for T {}
impl<T: ?Sized + Sync> AmbiguousIfSync<u8> for T {}

/// Checked when this file compiles; called so that it is not dead code.
fn socket_types_are_send_not_sync() {
    assert_send::<TcpStream>();
    assert_send::<ReadHalf>();
    assert_send::<WriteHalf>();
    assert_send::<TcpListener>();
    assert_send::<UdpSocket>();
    <TcpStream as AmbiguousIfSync<_>>::some_item();
    <ReadHalf as AmbiguousIfSync<_>>::some_item();
    <WriteHalf as AmbiguousIfSync<_>>::some_item();
    <TcpListener as AmbiguousIfSync<_>>::some_item();
    <UdpSocket as AmbiguousIfSync<_>>::some_item();
}

/// Writes `msg` and reads the echo of it back.
fn exchange(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).expect("write to the echo server");
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("read the echo");
    assert_eq!(back, msg);
}

#[test]
fn lesson4_try_clone_is_a_real_clone() {
    socket_types_are_send_not_sync();

    let (here, there) = on_workers(2, || {
        let addr = echo_server();
        let mut original = connect(addr);
        exchange(&mut original, b"first");
        // Make sure the original is registered with this worker's poll before cloning (mioco's
        // clone inherited that binding and could not be registered elsewhere).
        let mut sel = Select::new();
        sel.readable(&original);
        drop(sel);

        let mut clone = original.try_clone().expect("try_clone");
        assert_eq!(clone.peer_addr().unwrap(), original.peer_addr().unwrap());
        assert_eq!(clone.local_addr().unwrap(), original.local_addr().unwrap());
        assert_eq!(
            clone.read_timeout().unwrap(),
            Some(IO_TIMEOUT),
            "timeouts are copied"
        );
        exchange(&mut clone, b"from the clone");
        exchange(&mut original, b"from the original");

        // The clone on another coroutine (on the other worker if the crew has one there).
        let here = coact::current_worker();
        let mut crew = Crew::new(8);
        let (there, done) = crew.run(here, move || {
            exchange(&mut clone, b"on another coroutine");
            clone
        });
        let mut clone = done
            .recv_timeout(IO_TIMEOUT)
            .expect("the clone's coroutine");

        // Dropping the original closes its descriptor only: the connection lives on.
        drop(original);
        exchange(&mut clone, b"after the original is dropped");
        let (_, done) = crew.run(here, move || {
            exchange(&mut clone, b"and moved once more");
            clone
        });
        let mut clone = done
            .recv_timeout(IO_TIMEOUT)
            .expect("the clone's coroutine");

        // Closing the clone's write side is what ends the connection.
        clone.shutdown(Shutdown::Write).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(
            clone.read(&mut buf).unwrap(),
            0,
            "the echo server saw EOF and closed"
        );
        (here, there)
    });
    eprintln!("lesson4: original on worker {here:?}, clone used on worker {there:?}");
}

// ---------------------------------------------------------------------------------------------
// The proxy example: two coroutines per connection, half-close
// ---------------------------------------------------------------------------------------------

#[test]
fn proxy_relays_4_mib_each_way_at_once_and_half_closes() {
    const LEN: u64 = 4 << 20;
    const UP: u8 = 1;
    const DOWN: u8 = 2;
    const TRAILER: &[u8] = b"sent after the client's EOF";

    on_workers(2, || {
        let (sink_listener, sink_addr) = listen();
        let (proxy_listener, proxy_addr) = listen();

        // The proxy, as examples/proxy.rs runs it for each connection.
        let relay = coact::spawn(move || {
            let client = accept_within(&proxy_listener, IO_TIMEOUT).expect("proxy accept");
            proxy::handle(client, sink_addr)
        });

        // The far side: receives the client's stream while sending its own; after the
        // client's EOF comes through, it still sends a trailer, then closes.
        let sink = coact::spawn(move || {
            let conn = accept_within(&sink_listener, IO_TIMEOUT).expect("sink accept");
            let (mut r, mut w) = conn.split();
            let writer = coact::spawn(move || {
                let sum = write_pattern(&mut w, DOWN, LEN).expect("sink writes");
                (w, sum)
            });
            let got = read_checked(&mut r, UP, LEN).expect("sink reads to EOF");
            let (mut w, sent) = writer.join().expect("sink writer");
            w.write_all(TRAILER)
                .expect("the half-closed connection still carries data back");
            w.shutdown().unwrap();
            (got, sent)
        });

        let client = connect(proxy_addr);
        let (mut r, mut w) = client.split();
        let writer = coact::spawn(move || {
            let sum = write_pattern(&mut w, UP, LEN).expect("client writes");
            w.shutdown().expect("client half-close");
            sum
        });
        let reader = coact::spawn(move || read_checked(&mut r, DOWN, LEN).expect("client reads"));

        let sent_up = writer.join().expect("client writer");
        let got_down = reader.join().expect("client reader");
        let (got_up, sent_down) = sink.join().expect("sink");
        let moved = relay.join().expect("proxy coroutine").expect("proxy relay");

        assert_eq!(got_up.len, LEN, "client to sink: everything arrived");
        assert!(got_up.tail.is_empty(), "client to sink: nothing extra");
        assert_eq!(got_up.sum, sent_up, "client to sink: checksum");
        assert_eq!(got_down.len, LEN, "sink to client: everything arrived");
        assert_eq!(got_down.sum, sent_down, "sink to client: checksum");
        assert_eq!(
            got_down.tail, TRAILER,
            "sink to client: the trailer after the half-close"
        );
        assert_eq!(
            moved,
            (LEN, LEN + TRAILER.len() as u64),
            "bytes the proxy moved"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Split halves and moved streams across workers and threads
// ---------------------------------------------------------------------------------------------

#[test]
fn split_halves_on_coroutines_of_different_workers() {
    const LEN: u64 = 1 << 20;
    let (reader_worker, writer_worker) = on_workers(2, || {
        let addr = echo_server();
        let (mut r, mut w) = connect(addr).split();
        // The read half goes to a coroutine on the other worker (when the crew has one
        // there); the write half stays on this coroutine.
        let writer_worker = coact::current_worker();
        let mut crew = Crew::new(4);
        let (reader_worker, read) = crew.run(writer_worker, move || read_checked(&mut r, 7, LEN));
        let sent = write_pattern(&mut w, 7, LEN).expect("writer half");
        w.shutdown().expect("half-close");
        let got = read.recv_timeout(IO_TIMEOUT).unwrap().expect("reader half");
        assert_eq!(got.len, LEN);
        assert!(got.tail.is_empty());
        assert_eq!(got.sum, sent);
        (reader_worker, writer_worker)
    });
    eprintln!(
        "split: read half on worker {reader_worker:?}, write half on worker {writer_worker:?}"
    );
}

#[test]
fn stream_moves_between_coroutines_workers_and_threads() {
    let workers = on_workers(2, || {
        let addr = echo_server();
        let mut s = connect(addr);
        let first = coact::current_worker();
        exchange(&mut s, b"on the first coroutine");
        // Registered with the first worker's poll, for the rest of the stream's life.
        let mut sel = Select::new();
        sel.readable(&s);
        drop(sel);

        // Moved to another coroutine (on the other worker if the crew has one there).
        let mut crew = Crew::new(8);
        let (second, done) = crew.run(first, move || {
            exchange(&mut s, b"on a second coroutine");
            s
        });
        let s = done.recv_timeout(IO_TIMEOUT).expect("second coroutine");

        // Moved to a plain thread, which blocks on it.
        let (tx, rx) = sync_channel(1);
        thread::spawn(move || {
            let mut s = s;
            exchange(&mut s, b"on a plain thread");
            tx.send(s).unwrap();
        });
        let mut s = rx.recv_timeout(IO_TIMEOUT).expect("the plain thread");

        // And back, used on the first coroutine again.
        exchange(&mut s, b"back on the first coroutine");
        (first, second)
    });
    eprintln!(
        "moved stream: used on worker {:?} then {:?}",
        workers.0, workers.1
    );

    // A stream registered by a plain thread (with the background poll), then used by a
    // coroutine.
    bounded(|| {
        let rt = runtime(2);
        let addr = rt.block_on(echo_server);
        let mut s = connect(addr);
        exchange(&mut s, b"on a plain thread first");
        let mut sel = Select::new();
        sel.readable(&s);
        drop(sel);
        let s = rt
            .spawn(move || {
                let mut s = s;
                exchange(&mut s, b"then on a coroutine");
                s
            })
            .join()
            .expect("coroutine");
        drop(s);
    });
}

// ---------------------------------------------------------------------------------------------
// Many connections; a burst waiting in the backlog
// ---------------------------------------------------------------------------------------------

#[test]
fn many_concurrent_connections_to_the_echo_server() {
    const MESSAGES: usize = 5;
    // Each connection takes two descriptors (client and server side) in this process.
    let wanted = 2_000u64;
    let conns = match fd_limit() {
        Some(limit) if limit < 2 * wanted + 200 => {
            let n = (limit.saturating_sub(200) / 2).max(10);
            eprintln!(
                "many connections: the fd limit is {limit}; running {n} connections, not {wanted}"
            );
            n
        }
        _ => wanted,
    } as usize;

    let start = Instant::now();
    let answered = on_workers(2, move || {
        let addr = echo_server();
        let (ready_tx, ready_rx) = channel::<usize>();
        let mut go = Vec::with_capacity(conns);
        let mut clients = Vec::with_capacity(conns);
        for id in 0..conns {
            let (go_tx, go_rx) = sync_channel::<()>(1);
            go.push(go_tx);
            let ready_tx = ready_tx.clone();
            clients.push(coact::spawn(move || {
                let mut s = connect(addr);
                s.set_nodelay(true).unwrap();
                let msg = |k: usize| format!("client {id} message {k}\n").into_bytes();
                exchange(&mut s, &msg(0));
                // Hold the connection open until every client has connected.
                ready_tx.send(id).unwrap();
                go_rx.recv_timeout(IO_TIMEOUT).expect("the go signal");
                for k in 1..MESSAGES {
                    exchange(&mut s, &msg(k));
                }
                s.shutdown(Shutdown::Write).unwrap();
                let mut buf = [0u8; 8];
                assert_eq!(
                    s.read(&mut buf).unwrap(),
                    0,
                    "the server closes after our EOF"
                );
                MESSAGES
            }));
        }
        drop(ready_tx);
        let mut open = vec![false; conns];
        for _ in 0..conns {
            let id = ready_rx
                .recv_timeout(IO_TIMEOUT)
                .expect("every client connects and gets its first answer");
            assert!(!open[id]);
            open[id] = true;
        }
        // All `conns` connections are open at this point.
        for g in go {
            g.send(()).unwrap();
        }
        clients
            .into_iter()
            .map(|c| c.join().expect("client coroutine"))
            .sum::<usize>()
    });
    assert_eq!(answered, conns * MESSAGES);
    eprintln!(
        "many connections: {conns} x {MESSAGES} messages in {:?}",
        start.elapsed()
    );
}

#[test]
fn a_burst_of_connects_waits_in_the_listen_backlog() {
    const N: usize = 1_500;
    assert!(N < LISTEN_BACKLOG as usize);
    if let Ok(max) = std::fs::read_to_string("/proc/sys/net/core/somaxconn") {
        // The kernel caps every backlog at somaxconn.
        let max: usize = max.trim().parse().unwrap_or(0);
        assert!(
            max > N,
            "net.core.somaxconn is {max}: too small for this test"
        );
    }
    bounded(|| {
        let rt = runtime(2);
        let (listener, addr) = listen();
        let (gate_tx, gate_rx) = channel::<()>();
        let acceptor = rt.spawn(move || {
            // Not accepting anything until the plain thread has connected N times.
            gate_rx.recv().expect("the gate opens");
            let mut seen = vec![false; N];
            for _ in 0..N {
                let mut s = accept_within(&listener, IO_TIMEOUT).expect("a queued connection");
                let mut id = [0u8; 4];
                s.read_exact(&mut id).expect("the client's index");
                let id = u32::from_le_bytes(id) as usize;
                assert!(!seen[id], "connection {id} accepted twice");
                seen[id] = true;
            }
            let e = listener.try_accept().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WouldBlock, "exactly N were queued");
            seen.iter().filter(|&&s| s).count()
        });

        // A plain thread (std sockets) connects N times in a burst; the kernel completes each
        // handshake and queues the connection.
        let clients = thread::spawn(move || {
            (0..N)
                .map(|i| {
                    let mut s = std::net::TcpStream::connect_timeout(&addr, IO_TIMEOUT)
                        .unwrap_or_else(|e| panic!("connect #{i} while nobody accepts: {e}"));
                    s.write_all(&(i as u32).to_le_bytes()).unwrap();
                    s
                })
                .collect::<Vec<_>>()
        })
        .join()
        .expect("the connecting thread");
        assert_eq!(clients.len(), N);

        gate_tx.send(()).unwrap();
        assert_eq!(acceptor.join().expect("acceptor"), N);
        drop(clients);
    });
}

// ---------------------------------------------------------------------------------------------
// Errors and timeouts
// ---------------------------------------------------------------------------------------------

#[test]
fn connect_to_a_closed_port_is_refused() {
    // A port that was just free: bind, note it, close it.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let kind = on_workers(1, move || TcpStream::connect(addr).unwrap_err().kind());
    assert_eq!(kind, ErrorKind::ConnectionRefused, "from a coroutine");
    let kind = bounded(move || TcpStream::connect(addr).unwrap_err().kind());
    assert_eq!(kind, ErrorKind::ConnectionRefused, "from a plain thread");
}

#[test]
fn end_of_stream_queued_behind_a_short_read_is_seen() {
    // A read that returns fewer bytes than asked ends the socket's readiness (the next read
    // waits for an event instead of hearing `WouldBlock`). But when the peer's FIN was
    // already queued behind those bytes, no further event comes: the read after the short one
    // must still see the end of stream at once.
    //
    // The reader first gets one byte (a short read: readiness ends, and the socket is
    // registered), then tells the peer, which writes ten bytes and closes in one go, so data
    // and FIN arrive together, in one event.
    for workers in [1, 2] {
        let reads = on_workers(workers, || {
            let (mut client, mut server) = pair();
            let (ack_tx, ack_rx) = sync_channel::<()>(0);
            let peer = coact::spawn(move || {
                server.write_all(b"x").unwrap();
                ack_rx.recv().unwrap();
                server.write_all(b"0123456789").unwrap();
                server.shutdown(Shutdown::Write).unwrap();
                server
            });
            let mut buf = [0u8; 1024];
            let mut reads = vec![client.read(&mut buf).expect("the first byte")];
            ack_tx.send(()).unwrap();
            loop {
                let n = client.read(&mut buf).expect("read within the timeout");
                reads.push(n);
                if n == 0 {
                    break;
                }
            }
            drop(peer.join().expect("peer"));
            reads
        });
        assert_eq!(
            reads.iter().sum::<usize>(),
            11,
            "workers={workers}: {reads:?}"
        );
        assert_eq!(reads.last(), Some(&0), "workers={workers}: ends with EOF");
    }
}

#[test]
fn a_reset_by_the_peer_wakes_the_blocked_reader_with_an_error() {
    for workers in [1, 2] {
        // The peer is a plain thread with std's socket. It waits (peek) until our bytes are in
        // its receive buffer, then closes without reading them: Linux answers with RST.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let peer = thread::spawn(move || {
            let (s, _) = std_listener.accept().unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut b = [0u8; 1];
            assert_eq!(s.peek(&mut b).unwrap(), 1);
            drop(s); // unread data: RST
        });

        let kind = on_workers(workers, move || {
            let (mut r, mut w) = connect(addr).split();
            let reader = coact::spawn(move || {
                let mut buf = [0u8; 64];
                r.read(&mut buf)
            });
            // Give the reader the chance to park first (on one worker it does; either way it
            // must end with the reset, not with EOF or a hang).
            coact::yield_now();
            w.write_all(b"never read by the peer").unwrap();
            let r = reader.join().expect("reader coroutine");
            r.map(|n| panic!("read {n} bytes instead of an error"))
                .unwrap_err()
                .kind()
        });
        peer.join().unwrap();
        assert_eq!(kind, ErrorKind::ConnectionReset, "workers={workers}");
    }
}

#[test]
fn read_and_write_timeouts_give_timed_out() {
    on_workers(2, || {
        let (mut c, mut peer) = pair();
        let mut buf = [0u8; 16];

        let t = Duration::from_millis(50);
        c.set_read_timeout(Some(t)).unwrap();
        assert_eq!(c.read_timeout().unwrap(), Some(t));
        let start = Instant::now();
        let e = c.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        let waited = start.elapsed();
        assert!(waited >= t, "gave up after {waited:?}, before the timeout");
        assert!(waited < IO_TIMEOUT);

        // The stream still works after a timeout.
        peer.write_all(b"late").unwrap();
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        c.read_exact(&mut buf[..4]).unwrap();
        assert_eq!(&buf[..4], b"late");

        // Like std, a zero timeout is refused.
        let e = c.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);

        // Writes: the peer reads nothing, so the buffers fill up and a write times out.
        c.set_write_timeout(Some(t)).unwrap();
        let chunk = vec![0u8; 256 * 1024];
        let mut written = 0usize;
        let e = loop {
            match c.write(&chunk) {
                Ok(n) => written += n,
                Err(e) => break e,
            }
            assert!(
                written < 1 << 30,
                "1 GiB written to a peer that reads nothing"
            );
        };
        assert_eq!(e.kind(), ErrorKind::TimedOut, "after {written} bytes");

        // A UDP receive with nothing to receive.
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(t)).unwrap();
        let e = u.recv_from(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
    });
}

#[test]
fn connect_timeout_to_a_listening_loopback_port() {
    on_workers(1, || {
        let (listener, addr) = listen();
        let mut c = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect_timeout");
        bound_io(&c);
        let mut s = accept_within(&listener, IO_TIMEOUT).unwrap();
        assert_eq!(c.peer_addr().unwrap(), addr);
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
        c.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");

        let e = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidInput,
            "a zero timeout is refused, like std"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Select over a socket and a channel
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Socket(Vec<u8>),
    Channel(String),
    SocketEof,
}

/// A coroutine that never blocks (it yields in a loop) does not keep its worker from serving
/// sockets: a read parked on the same worker completes while the loop runs. A busy worker
/// polls with a zero timeout between rounds only while sockets are registered with it, so
/// this also holds the count of registrations to what is there.
#[test]
fn a_worker_kept_busy_still_serves_its_sockets() {
    let (turns, by_deadline, got) = on_workers(1, || {
        let (client, mut server) = pair();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let writer = thread::spawn(move || {
            let mut client = client;
            go_rx.recv().expect("the spinner starts");
            client
                .write_all(b"ping")
                .expect("write from a plain thread");
            client
        });
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        // On one worker the spinner first runs once this coroutine has parked in `read`.
        let spinner = coact::spawn(move || {
            go_tx.send(()).expect("the writer waits");
            let deadline = Instant::now() + IO_TIMEOUT;
            let mut turns = 0u64;
            while !stop2.load(Ordering::Acquire) {
                if Instant::now() >= deadline {
                    return (turns, true);
                }
                coact::yield_now();
                turns += 1;
            }
            (turns, false)
        });
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).expect("the bytes arrive");
        stop.store(true, Ordering::Release);
        let (turns, by_deadline) = spinner.join().expect("spinner");
        drop(writer.join().expect("writer thread"));
        (turns, by_deadline, buf)
    });
    assert_eq!(&got, b"ping");
    assert!(!by_deadline, "the read waited for the spinner's deadline");
    assert!(turns > 0, "the spinner ran while the read waited");
}

#[test]
fn select_over_a_socket_and_a_channel() {
    on_workers(2, || {
        let (mut c, s) = pair();
        let (tx, rx) = channel::<String>();
        let (seen_tx, seen_rx) = channel::<Seen>();

        // One loop, one Select kept across iterations, woken by either source.
        let selector = coact::spawn(move || {
            let mut sel = Select::new();
            let sock = sel.readable(&s);
            let chan = sel.recv(&rx);
            let mut buf = [0u8; 256];
            loop {
                let op = sel
                    .select_timeout(IO_TIMEOUT)
                    .expect("socket data or a message within 10 s");
                let i = op.index();
                if i == sock {
                    drop(op); // a readiness operation: nothing to complete
                    loop {
                        match s.try_read(&mut buf) {
                            Ok(0) => {
                                seen_tx.send(Seen::SocketEof).unwrap();
                                return sel.registrations();
                            }
                            Ok(n) => seen_tx.send(Seen::Socket(buf[..n].to_vec())).unwrap(),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) => panic!("try_read: {e}"),
                        }
                    }
                } else {
                    assert_eq!(i, chan);
                    let msg = op.recv(&rx).expect("the sender is alive");
                    seen_tx.send(Seen::Channel(msg)).unwrap();
                }
            }
        });

        let next = || {
            seen_rx
                .recv_timeout(IO_TIMEOUT)
                .expect("the selector reports")
        };
        // Reads the socket reports until `want` bytes came (a write may arrive in pieces).
        let socket_bytes = |want: &[u8], mut first: Seen| {
            let mut got = Vec::new();
            loop {
                match first {
                    Seen::Socket(b) => got.extend_from_slice(&b),
                    other => panic!("expected socket data, saw {other:?}"),
                }
                if got.len() >= want.len() {
                    assert_eq!(got, want);
                    return;
                }
                first = next();
            }
        };

        for round in 0..20 {
            let data = format!("socket round {round}");
            c.write_all(data.as_bytes()).unwrap();
            socket_bytes(data.as_bytes(), next());

            let msg = format!("channel round {round}");
            tx.send(msg.clone()).unwrap();
            assert_eq!(next(), Seen::Channel(msg));
        }

        // Both at once: both are seen, in either order.
        c.write_all(b"both").unwrap();
        tx.send("both".to_string()).unwrap();
        let mut socket = Vec::new();
        let mut channel_seen = false;
        while socket.len() < 4 || !channel_seen {
            match next() {
                Seen::Socket(b) => socket.extend_from_slice(&b),
                Seen::Channel(m) => {
                    assert_eq!(m, "both");
                    channel_seen = true;
                }
                Seen::SocketEof => panic!("early EOF"),
            }
        }
        assert_eq!(socket, b"both");

        // End of stream is readiness too.
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(next(), Seen::SocketEof);
        let registrations = selector.join().expect("selector");
        assert_eq!(
            registrations, 2,
            "one registration per operation, for the whole loop"
        );
        drop(tx);
    });
}

// ---------------------------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------------------------

#[test]
fn udp_send_to_and_recv_from_between_coroutines() {
    const ROUNDS: usize = 100;
    on_workers(2, || {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        b.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let a_addr = a.local_addr().unwrap();
        let b_addr = b.local_addr().unwrap();

        let mut buf = [0u8; 64];
        let e = a.try_recv_from(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "nothing queued yet");

        // b answers every datagram with it reversed, to whoever sent it.
        let responder = coact::spawn(move || {
            let mut buf = [0u8; 64];
            for _ in 0..ROUNDS {
                let (n, from) = b.recv_from(&mut buf).expect("a datagram for b");
                assert_eq!(from, a_addr);
                buf[..n].reverse();
                assert_eq!(b.send_to(&buf[..n], from).unwrap(), n);
            }
            b
        });
        for i in 0..ROUNDS {
            let msg = format!("datagram {i}");
            assert_eq!(a.send_to(msg.as_bytes(), b_addr).unwrap(), msg.len());
            let (n, from) = a.recv_from(&mut buf).expect("the answer");
            assert_eq!(from, b_addr);
            let want: Vec<u8> = msg.bytes().rev().collect();
            assert_eq!(&buf[..n], &want[..]);
        }
        let b = responder.join().expect("responder");

        // Connected sockets: send and recv.
        a.connect(b_addr).unwrap();
        b.connect(a_addr).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);
        let echo = coact::spawn(move || {
            let mut buf = [0u8; 16];
            let n = b.recv(&mut buf).unwrap();
            b.send(&buf[..n]).unwrap();
        });
        a.send(b"connected").unwrap();
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"connected");
        echo.join().unwrap();
    });
}

#[test]
fn a_closer_shuts_the_connection_from_another_thread_without_keeping_it_open() {
    let rt = runtime(2);
    // The server side's reader parks in a coroutine; a plain thread shuts the connection.
    let (read_tx, read_rx) = sync_channel(1);
    let (mut client, w, closer, reader) = rt.block_on(move || {
        let (client, server_side) = pair();
        let (mut r, w) = server_side.split();
        let closer = r.closer();
        let reader = coact::spawn(move || {
            let mut buf = [0u8; 64];
            let first = r.read(&mut buf).map(|n| buf[..n].to_vec());
            read_tx.send(()).unwrap();
            let second = r.read(&mut buf);
            (first, second, r)
        });
        (client, w, closer, reader)
    });
    assert!(closer.is_open());
    client.write_all(b"hi").unwrap();
    read_rx.recv_timeout(IO_TIMEOUT).expect("the first read");
    let from_thread = closer.clone();
    thread::spawn(move || from_thread.shutdown(Shutdown::Both).unwrap())
        .join()
        .unwrap();
    let (first, second, r) = reader.join().expect("the reader coroutine");
    assert_eq!(first.unwrap(), b"hi");
    assert_eq!(
        second.unwrap(),
        0,
        "a shut down connection reads end of stream"
    );
    let mut w = w;
    assert!(
        w.write_all(b"after the shutdown").is_err(),
        "a shut down connection refuses writes"
    );
    let mut buf = [0u8; 8];
    assert_eq!(client.read(&mut buf).unwrap(), 0, "the peer sees the close");
    // The handle does not hold the descriptor: it closes with the last half.
    drop((r, w));
    assert!(!closer.is_open());
    closer
        .shutdown(Shutdown::Both)
        .expect("a shutdown of a closed connection does nothing");
}
