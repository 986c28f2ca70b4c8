//! Distribution: nodes linked over loopback TCP, through the facade's `coact::net`.
//!
//! Several nodes run in one process (one runtime, several `Node`s on 127.0.0.1:0); one test
//! runs a node in a child process (this test binary, re-run with an environment variable) and
//! kills it. Every wait is bounded; nothing sleeps to order events.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coact::actor::{
    spawn, spawn_process, try_spawn_process, Actor, AskError, Ctx, Inbox, Recipient, ReplyTo,
    StopReason,
};
use coact::net::{LookupError, Node, NodeConfig, Peer};
use coact::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use serde::{Deserialize, Serialize};

const T: Duration = Duration::from_secs(10);
const SECRET: &str = "test cluster secret";

/// Everything coact logged in this test process (through `tracing`), from the first call on.
/// The subscriber is process-wide (links log from worker threads), so a test looks for lines
/// of its own.
fn logs() -> &'static std::sync::Mutex<Vec<u8>> {
    use std::sync::{Mutex, OnceLock};
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        struct Sink(&'static Mutex<Vec<u8>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        tracing_subscriber::fmt()
            .with_writer(move || Sink(buf))
            .without_time()
            .with_ansi(false)
            .try_init()
            .expect("the first subscriber of this test process");
        buf
    })
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn config(name: &str) -> NodeConfig {
    let mut c = NodeConfig::new(name, local(), SECRET);
    c.reconnect = (Duration::from_millis(10), Duration::from_millis(200));
    c
}

fn node(name: &str) -> Node {
    Node::start(config(name)).expect("start a node")
}

#[derive(Serialize, Deserialize, Debug)]
enum Msg {
    Add(u64),
    Get(ReplyTo<u64>),
    /// The actor drops the ReplyTo without answering.
    Ignore(ReplyTo<u64>),
    /// The actor keeps the ReplyTo and never answers; it tells the test it has it.
    Hold(ReplyTo<u64>),
    /// How many asks the actor holds (for a test in another process than the actor).
    Held(ReplyTo<usize>),
    Echo(String, ReplyTo<String>),
}

struct Counter {
    n: u64,
    held: Vec<ReplyTo<u64>>,
    holding: Option<Sender<()>>,
}

impl Counter {
    fn new() -> Self {
        Counter {
            n: 0,
            held: Vec::new(),
            holding: None,
        }
    }
}

impl Actor for Counter {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, _ctx: &mut Ctx<'_, Msg>) {
        match msg {
            Msg::Add(k) => self.n += k,
            Msg::Get(r) => {
                r.send(self.n);
            }
            Msg::Ignore(r) => drop(r),
            Msg::Hold(r) => {
                self.held.push(r);
                if let Some(tx) = &self.holding {
                    let _ = tx.send(());
                }
            }
            Msg::Echo(s, r) => {
                r.send(s);
            }
            Msg::Held(r) => {
                r.send(self.held.len());
            }
        }
    }
}

/// Two nodes, `a` exporting a counter as "counter", and `b`'s peer to `a`.
fn pair() -> (Node, Node, Peer) {
    let a = node("a");
    let b = node("b");
    a.export("counter", spawn(Counter::new()));
    let peer = b.connect(a.local_addr());
    (a, b, peer)
}

#[test]
fn remote_send_and_ask() {
    common::on_workers(2, || {
        let (_a, _b, peer) = pair();
        assert!(peer.wait_up(T));
        assert_eq!(peer.name().as_deref(), Some("a"));
        let counter = peer.lookup::<Msg>("counter", T).unwrap();
        for _ in 0..10 {
            counter.send(Msg::Add(4)).unwrap();
        }
        counter.try_send(Msg::Add(1)).unwrap();
        counter.send_timeout(Msg::Add(1), T).unwrap();
        assert_eq!(counter.ask(Msg::Get, T), Ok(42));
        let echo = counter.ask(|r| Msg::Echo("hi".into(), r), T);
        assert_eq!(echo.as_deref(), Ok("hi"));
    });
}

/// An idle link stays up: each side sends heartbeats while it has nothing else to say, so
/// neither declares the other down after `down_after`. (The idle time is what is under test.)
#[test]
fn an_idle_link_stays_up_on_heartbeats() {
    common::on_workers(2, || {
        let quick = |name: &str| {
            let mut c = config(name);
            c.heartbeat = Duration::from_millis(50);
            c.down_after = Duration::from_millis(800);
            Node::start(c).expect("start a node")
        };
        let (a, b) = (quick("a"), quick("b"));
        a.export("counter", spawn(Counter::new()));
        let peer = b.connect(a.local_addr());
        let counter = peer.lookup::<Msg>("counter", T).unwrap();
        let down = counter.monitor();
        let before = peer.stats();
        // Idle for three times `down_after`.
        coact::time::sleep(Duration::from_millis(2400));
        assert!(down.try_recv().is_none(), "the link went down while idle");
        assert!(counter.is_up());
        let after = peer.stats();
        assert!(
            after.frames_sent > before.frames_sent
                && after.frames_received > before.frames_received,
            "heartbeats crossed both ways: {before:?} -> {after:?}"
        );
        counter.send(Msg::Add(2)).unwrap();
        assert_eq!(counter.ask(Msg::Get, T), Ok(2));
    });
}

#[test]
fn a_dropped_reply_fails_the_remote_ask_promptly() {
    common::on_workers(2, || {
        let (_a, _b, peer) = pair();
        let counter = peer.lookup::<Msg>("counter", T).unwrap();
        let start = Instant::now();
        assert_eq!(counter.ask(Msg::Ignore, T), Err(AskError::NoReply));
        assert!(start.elapsed() < T / 2, "took {:?}", start.elapsed());
    });
}

#[test]
fn ten_thousand_messages_arrive_in_order() {
    common::on_workers(2, || {
        const N: u64 = 10_000;
        let a = node("a");
        let b = node("b");
        let (done_tx, done_rx) = sync_channel(1);
        let seq = spawn_process(move |inbox: Inbox<u64>| {
            let mut expect = 0;
            while let Some(n) = inbox.recv() {
                assert_eq!(n, expect, "out of order");
                expect += 1;
                if expect == N {
                    done_tx.send(expect).unwrap();
                }
            }
        });
        a.export("seq", seq);
        let peer = b.connect(a.local_addr());
        let seq = peer.lookup::<u64>("seq", T).unwrap();
        for i in 0..N {
            seq.send(i).unwrap();
        }
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(60)), Ok(N));
    });
}

#[test]
fn a_blocked_remote_actor_makes_the_sender_park() {
    common::on_workers(2, || {
        let a = node("a");
        let mut cb = config("b");
        cb.outbound = 8;
        let b = Node::start(cb).unwrap();
        let (gate_tx, gate_rx) = sync_channel::<()>(1);
        let (count_tx, count_rx) = channel::<usize>();
        let sink = try_spawn_process(1, move |inbox: Inbox<Vec<u8>>| {
            gate_rx.recv().unwrap(); // blocked until the test opens the gate
            let mut n = 0;
            while inbox.recv().is_some() {
                n += 1;
                count_tx.send(n).unwrap();
            }
        })
        .unwrap();
        a.export("sink", sink);
        let peer = b.connect(a.local_addr());
        let sink = peer.lookup::<Vec<u8>>("sink", T).unwrap();
        let chunk = vec![7u8; 64 << 10];
        let mut sent = 0;
        let parked = loop {
            assert!(sent < 20_000, "the sender never parked");
            let start = Instant::now();
            match sink.send_timeout(chunk.clone(), Duration::from_millis(300)) {
                Ok(()) => sent += 1,
                Err(coact::actor::SendTimeoutError::Timeout(_)) => break start.elapsed(),
                Err(e) => panic!("{e}"),
            }
        };
        assert!(parked >= Duration::from_millis(250), "parked {parked:?}");
        // Open the gate: everything that was accepted arrives.
        gate_tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut got = 0;
        while got < sent {
            got = count_rx
                .recv_deadline(deadline)
                .expect("all accepted messages arrive");
        }
        assert_eq!(got, sent);
    });
}

#[test]
fn a_wrong_secret_is_refused_and_reaches_no_actor() {
    common::on_workers(2, || {
        let a = node("a");
        let (tx, rx) = channel::<u64>();
        let spy = spawn_process(move |inbox: Inbox<u64>| {
            while let Some(m) = inbox.recv() {
                tx.send(m).unwrap();
            }
        });
        a.export("spy", spy);
        let mut cb = config("intruder");
        cb.secret = b"not the secret".to_vec();
        let b = Node::start(cb).unwrap();
        let peer = b.connect(a.local_addr());
        assert!(!peer.wait_up(Duration::from_millis(500)));
        let r = peer.lookup::<u64>("spy", Duration::from_millis(500));
        assert!(
            matches!(r, Err(LookupError::Down | LookupError::Timeout)),
            "{r:?}"
        );
        // The good peer still gets through, and the spy saw nothing before it.
        let c = node("c");
        let good = c.connect(a.local_addr());
        let spy = good.lookup::<u64>("spy", T).unwrap();
        spy.send(99).unwrap();
        assert_eq!(rx.recv_timeout(T), Ok(99));
        assert!(rx.try_recv().is_err());
    });
}

#[test]
fn unexported_names_and_wrong_types_are_refused() {
    common::on_workers(2, || {
        let (a, _b, peer) = pair();
        assert_eq!(
            peer.lookup::<Msg>("nobody", T).unwrap_err(),
            LookupError::NotExported
        );
        match peer.lookup::<String>("counter", T) {
            Err(LookupError::WrongType { expected, found }) => {
                assert_eq!(expected, std::any::type_name::<String>());
                assert!(found.ends_with("Msg"), "{found}");
            }
            other => panic!("{other:?}"),
        }
        // Unexported after the lookup: messages are dropped and asks fail at once.
        let counter = peer.lookup::<Msg>("counter", T).unwrap();
        assert!(a.unexport("counter"));
        assert_eq!(counter.ask(Msg::Get, T), Err(AskError::NoReply));
        assert_eq!(
            peer.lookup::<Msg>("counter", T).unwrap_err(),
            LookupError::NotExported
        );
    });
}

/// Exports under `name` on `node` a process actor that passes `what` of each message on;
/// returns where they go.
fn export_forwarder<M, R>(node: &Node, name: &str, what: fn(M) -> R) -> Receiver<R>
where
    M: Serialize + serde::de::DeserializeOwned + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = channel::<R>();
    node.export(
        name,
        spawn_process(move |inbox: Inbox<M>| {
            while let Some(m) = inbox.recv() {
                tx.send(what(m)).unwrap();
            }
        }),
    );
    rx
}

#[test]
fn a_message_of_the_wrong_type_closes_only_that_link() {
    let logs = logs();
    common::on_workers(2, || {
        let a = node("wrong-type-a");
        let b = node("b");
        let c = node("c");
        let rx = export_forwarder(&a, "x", |m: u64| m);
        a.export("counter", spawn(Counter::new()));
        let peer = b.connect(a.local_addr());
        let x = peer.lookup::<u64>("x", T).unwrap();
        x.send(1).unwrap();
        assert_eq!(rx.recv_timeout(T), Ok(1));
        // "x" now takes `Msg`: b's next u64 (variant 200 of `Msg`) does not decode there.
        a.export("x", spawn(Counter::new()));
        let watch = x.monitor();
        x.send(200).unwrap();
        let down = watch.recv_timeout(T).expect("the link goes down");
        assert!(matches!(down.reason, StopReason::NodeDown(_)), "{down:?}");
        // Node a logged why it closed the link (before closing it, so before the monitor heard).
        let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        assert!(
            logged.lines().any(|l| l.contains("WARN")
                && l.contains("node=\"wrong-type-a\"")
                && l.contains("bad input: a message for \"x\" does not decode")),
            "no warning with the reason in the log:\n{logged}"
        );
        // The node serves other peers, and b's link comes back.
        let other = c.connect(a.local_addr());
        let counter = other.lookup::<Msg>("counter", T).unwrap();
        assert_eq!(counter.ask(Msg::Get, T), Ok(0));
        assert!(peer.wait_up(T));
        let counter = peer.lookup::<Msg>("counter", T).unwrap();
        assert_eq!(counter.ask(Msg::Get, T), Ok(0));
    });
}

/// A number that refuses to decode when it is 13 (it encodes as a plain `u64`): bad input a
/// well-behaved node can send.
#[derive(Serialize)]
struct Picky(u64);

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d)? {
            13 => Err(serde::de::Error::custom("13 is refused")),
            n => Ok(Picky(n)),
        }
    }
}

#[test]
fn messages_before_a_frame_that_does_not_decode_are_all_delivered() {
    // The link reader decodes messages in batches: the good ones read before the bad one,
    // even in the same read, reach the actor before the link closes.
    common::on_workers(2, || {
        const N: u64 = 1_000;
        let a = node("picky-a");
        let b = node("b");
        let rx = export_forwarder(&a, "picky", |Picky(n)| n);
        let peer = b.connect(a.local_addr());
        let picky = peer.lookup::<Picky>("picky", T).unwrap();
        let watch = picky.monitor();
        for n in (100..100 + N).chain([13]) {
            picky.send(Picky(n)).unwrap();
        }
        let down = watch.recv_timeout(T).expect("the link goes down");
        assert!(matches!(down.reason, StopReason::NodeDown(_)), "{down:?}");
        for n in 100..100 + N {
            assert_eq!(rx.recv_timeout(T), Ok(n));
        }
    });
}

/// A recursive message: a newtype around an option of itself.
#[derive(Serialize, Deserialize)]
struct Nest(Option<Box<Nest>>);

impl Nest {
    fn new(levels: usize) -> Nest {
        (0..levels).fold(Nest(None), |inner, _| Nest(Some(Box::new(inner))))
    }

    fn levels(&self) -> usize {
        let mut n = 0;
        let mut at = self;
        while let Some(inner) = &at.0 {
            n += 1;
            at = inner;
        }
        n
    }
}

#[test]
fn a_message_nested_too_deep_closes_only_its_link_and_a_deep_one_within_the_bound_arrives() {
    let logs = logs();
    common::on_workers(2, || {
        let a = node("nest-a");
        let b = node("b");
        let rx = export_forwarder(&a, "nest", |n: Nest| n.levels());
        let peer = b.connect(a.local_addr());
        let nest = peer.lookup::<Nest>("nest", T).unwrap();
        // 31 levels are 62 levels of nesting for the decoder, within its bound of 64: they
        // decode on the link reader's coroutine stack (the default size) and arrive.
        nest.send(Nest::new(31)).unwrap();
        assert_eq!(rx.recv_timeout(T), Ok(31));
        // 20,000 levels: refused, and only this link closes (no stack overflow). Built, sent
        // and dropped on a thread with a large stack: encoding and dropping recurse too.
        let watch = nest.monitor();
        let deep = nest.clone();
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || deep.send(Nest::new(20_000)).unwrap())
            .unwrap()
            .join()
            .unwrap();
        let down = watch.recv_timeout(T).expect("the link goes down");
        assert!(matches!(down.reason, StopReason::NodeDown(_)), "{down:?}");
        let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        assert!(
            logged
                .lines()
                .any(|l| l.contains("node=\"nest-a\"") && l.contains("nested deeper")),
            "no warning with the reason in the log:\n{logged}"
        );
        // The node carries on: the link comes back and a message gets through.
        assert!(peer.wait_up(T));
        let nest = peer.lookup::<Nest>("nest", T).unwrap();
        nest.send(Nest::new(3)).unwrap();
        assert_eq!(rx.recv_timeout(T), Ok(3));
    });
}

/// Asks `Hold` in a coroutine (the actor keeps the reply) and returns when the actor has it.
fn pending_ask(
    counter: &coact::net::RemoteAddr<Msg>,
    holding: &Receiver<()>,
) -> coact::JoinHandle<(Result<u64, AskError>, Instant)> {
    let c = counter.clone();
    let h = coact::spawn(move || {
        let r = c.ask(Msg::Hold, Duration::from_secs(60));
        (r, Instant::now())
    });
    holding.recv_timeout(T).expect("the actor holds the ask");
    h
}

#[test]
fn a_dropped_node_is_seen_down_and_its_pending_asks_fail() {
    common::on_workers(2, || {
        let a = node("a");
        let b = node("b");
        let (held_tx, held_rx) = channel();
        let mut counter = Counter::new();
        counter.holding = Some(held_tx);
        a.export("counter", spawn(counter));
        let peer = b.connect(a.local_addr());
        let counter = peer.lookup::<Msg>("counter", T).unwrap();
        let watch = counter.monitor();
        let peer_watch = peer.monitor();
        let ask = pending_ask(&counter, &held_rx);
        let dropped = Instant::now();
        drop(a);
        let down = watch.recv_timeout(T).expect("the monitor fires");
        assert_eq!(down.id, counter.id());
        assert!(matches!(down.reason, StopReason::NodeDown(_)), "{down:?}");
        assert!(matches!(
            peer_watch.recv_timeout(T).map(|d| d.reason),
            Some(StopReason::NodeDown(_))
        ));
        let (r, at) = ask.join().unwrap();
        assert_eq!(r, Err(AskError::NoReply));
        assert!(at - dropped < T / 2, "{:?}", at - dropped);
        assert!(!counter.is_up());
        assert!(counter.send(Msg::Add(1)).is_err());
        assert_eq!(counter.ask(Msg::Get, T), Err(AskError::Closed));
    });
}

#[test]
fn a_reply_sent_just_before_the_node_shuts_down_still_arrives() {
    common::on_workers(2, || {
        let a = node("a");
        let b = node("b");
        let (replied_tx, replied_rx) = channel();
        let echo = spawn_process(move |inbox: Inbox<(String, ReplyTo<String>)>| {
            while let Some((s, r)) = inbox.recv() {
                r.send(s);
                replied_tx.send(()).unwrap();
            }
        });
        a.export("echo", echo);
        let peer = b.connect(a.local_addr());
        let echo = peer.lookup::<(String, ReplyTo<String>)>("echo", T).unwrap();
        let asking = coact::spawn(move || echo.ask(|r| ("bye".to_owned(), r), T));
        replied_rx.recv_timeout(T).expect("the actor replied");
        drop(a); // the reply is queued on a's link: a graceful close still writes it
        assert_eq!(asking.join().unwrap().as_deref(), Ok("bye"));
    });
}

#[test]
fn a_link_reconnects_when_the_peer_comes_back() {
    common::on_workers(2, || {
        let a = node("a");
        let addr = a.local_addr();
        a.export("counter", spawn(Counter::new()));
        let b = node("b");
        let peer = b.connect(addr);
        let counter = peer.lookup::<Msg>("counter", T).unwrap();
        counter.send(Msg::Add(5)).unwrap();
        assert_eq!(counter.ask(Msg::Get, T), Ok(5));
        let watch = peer.monitor();
        drop(a);
        assert!(watch.recv_timeout(T).is_some());

        let mut ca = config("a2");
        ca.listen = addr;
        let a2 = Node::start(ca).expect("rebind the same address");
        a2.export("counter", spawn(Counter::new()));
        assert!(peer.wait_up(T), "the link came back");
        assert_eq!(peer.name().as_deref(), Some("a2"));
        let counter = peer.lookup::<Msg>("counter", T).unwrap();
        counter.send(Msg::Add(7)).unwrap();
        assert_eq!(counter.ask(Msg::Get, T), Ok(7));
    });
}

/// A tiny seeded PRNG (xorshift64*), for the property-style test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Sends `bytes` on a raw std socket, closes the write side, and waits (bounded) for the node
/// to close the connection. Returns what the node sent back.
fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut back = Vec::new();
    let start = Instant::now();
    match s.read_to_end(&mut back) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the node did not close the connection: {e}"),
    }
    assert!(start.elapsed() < T);
    back
}

#[test]
fn malformed_input_closes_only_its_connection() {
    common::bounded(|| {
        let rt = common::runtime(2);
        let (a, b, peer) = rt.block_on(pair);
        let counter = rt.block_on(move || peer.lookup::<Msg>("counter", T).unwrap());
        let check = |what: &str| {
            let c = counter.clone();
            let r = rt.block_on(move || c.ask(|r| Msg::Echo("ok".into(), r), T));
            assert_eq!(r.as_deref(), Ok("ok"), "after {what}");
        };
        let addr = a.local_addr();

        // A huge length prefix: refused before anything is allocated for it.
        raw(addr, &[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]);
        check("a 4 GiB length prefix");
        // Over the handshake limit.
        raw(addr, &(1u32 << 20).to_be_bytes());
        check("a 1 MiB length prefix before the handshake");
        // Garbage.
        raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        check("an HTTP request");
        // Truncated frames: a length with fewer bytes behind it, and half a length.
        raw(addr, &[0, 0, 0, 100, 1, 2, 3]);
        check("a truncated frame");
        raw(addr, &[0, 0]);
        check("half a length prefix");
        raw(addr, &[]);
        check("an empty connection");
        // A zero-length frame, and a frame that is not a Hello.
        raw(addr, &[0, 0, 0, 0]);
        check("an empty frame");
        raw(addr, &[0, 0, 0, 1, 7]); // variant 7: Heartbeat, before the handshake
        check("a heartbeat before the handshake");

        // Random bytes, some behind a plausible length prefix.
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..300 {
            let len = rng.below(200) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if case % 2 == 0 {
                let claimed = rng.below(len as u64 + 8) as u32;
                let mut framed = claimed.to_be_bytes().to_vec();
                framed.append(&mut bytes);
                bytes = framed;
            }
            raw(addr, &bytes);
            check(&format!("random case {case}: {bytes:?}"));
        }
        rt.block_on(move || drop((a, b)));
    });
}

const CHILD: &str = "COACT_NET_CHILD";
const ADDR_LINE: &str = "COACT_NET_CHILD_ADDR=";

/// The child's side: a node exporting a counter, until the parent kills it (or closes stdin).
fn child_node() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0); // the parent went away
    });
    coact::run(|| {
        let mut c = config("child");
        c.heartbeat = Duration::from_millis(200);
        let a = Node::start(c).unwrap();
        a.export("counter", spawn(Counter::new()));
        println!("{ADDR_LINE}{}", a.local_addr());
        std::io::stdout().flush().unwrap();
        loop {
            coact::time::sleep(Duration::from_secs(3600));
        }
    });
}

/// Runs this test binary as a child node (for the test named `test`); returns it and its
/// node's address.
fn spawn_child_node(test: &str) -> (std::process::Child, SocketAddr) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child node");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may have printed "test name ... " on the same line first.
            if let Some(i) = line.find(ADDR_LINE) {
                let a = line[i + ADDR_LINE.len()..].trim();
                let _ = tx.send(a.parse::<SocketAddr>().unwrap());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child prints its address");
    (child, addr)
}

/// Links to the child's counter; returns it after a first exchange, and an ask the child's
/// actor holds (it never answers).
type HeldAsk = coact::JoinHandle<(Result<u64, AskError>, Instant)>;

fn link_to_child(b: &Node, addr: SocketAddr) -> (Peer, coact::net::RemoteAddr<Msg>, HeldAsk) {
    let peer = b.connect(addr);
    let counter = peer.lookup::<Msg>("counter", T).unwrap();
    counter.send(Msg::Add(2)).unwrap();
    assert_eq!(counter.ask(Msg::Get, T), Ok(2));
    let c = counter.clone();
    let held = coact::spawn(move || {
        let r = c.ask(Msg::Hold, Duration::from_secs(60));
        (r, Instant::now())
    });
    // The spawned coroutine may send its Hold after anything sent from here, so ask the
    // actor until it says it holds it: each ask is a round trip on the link, and the loop
    // is bounded by `T`.
    let deadline = Instant::now() + T;
    while counter.ask(Msg::Held, T) != Ok(1) {
        assert!(
            Instant::now() < deadline,
            "the child's actor holds the ask within {T:?}"
        );
    }
    let e = counter.ask(|r| Msg::Echo("x".into(), r), T);
    assert_eq!(e.as_deref(), Ok("x"));
    (peer, counter, held)
}

#[test]
fn a_killed_node_process_is_seen_down_within_down_after() {
    const NAME: &str = "a_killed_node_process_is_seen_down_within_down_after";
    if std::env::var_os(CHILD).is_some() {
        child_node();
        return;
    }
    common::bounded(|| {
        let (mut child, addr) = spawn_child_node(NAME);
        let down_after = config("x").down_after;
        coact::run(move || {
            let b = node("parent");
            let (_peer, counter, held) = link_to_child(&b, addr);
            let watch = counter.monitor();
            let killed = Instant::now();
            child.kill().unwrap();
            let slack = Duration::from_secs(5);
            let down = watch
                .recv_timeout(down_after + slack)
                .expect("the node is seen down");
            assert!(matches!(down.reason, StopReason::NodeDown(_)), "{down:?}");
            assert!(killed.elapsed() < down_after + slack);
            let (r, at) = held.join().unwrap();
            assert_eq!(r, Err(AskError::NoReply));
            assert!(at - killed < down_after + slack);
            let _ = child.wait();
        });
    });
}

#[test]
fn a_frozen_node_process_is_seen_down_by_heartbeat_timeout() {
    const NAME: &str = "a_frozen_node_process_is_seen_down_by_heartbeat_timeout";
    if std::env::var_os(CHILD).is_some() {
        child_node();
        return;
    }
    common::bounded(|| {
        let (mut child, addr) = spawn_child_node(NAME);
        coact::run(move || {
            let mut c = config("parent");
            c.heartbeat = Duration::from_millis(200);
            c.down_after = Duration::from_secs(2);
            let down_after = c.down_after;
            let b = Node::start(c).unwrap();
            let (_peer, counter, held) = link_to_child(&b, addr);
            let watch = counter.monitor();
            // SIGSTOP: the socket stays open, but no heartbeat comes any more.
            let stopped = Instant::now();
            let st = Command::new("kill")
                .args(["-STOP", &child.id().to_string()])
                .status()
                .expect("run kill -STOP");
            assert!(st.success());
            let slack = Duration::from_secs(5);
            let down = watch
                .recv_timeout(down_after + slack)
                .expect("the frozen node is seen down");
            let took = stopped.elapsed();
            assert!(
                matches!(&down.reason, StopReason::NodeDown(why) if why.contains("heartbeat")),
                "{down:?}"
            );
            assert!(took >= down_after / 2, "down after only {took:?}");
            let (r, _) = held.join().unwrap();
            assert_eq!(r, Err(AskError::NoReply));
            child.kill().unwrap();
            let _ = child.wait();
        });
    });
}

/// A panic in the coroutine that owns two linked nodes drops them while it unwinds; each
/// node's drop cancels its accept loop and waits for it. The panic reaches `block_on`'s caller
/// at once: it once hung there for good, the accept loop retrying its cancelled accept in a
/// tight loop.
#[test]
fn a_panic_in_the_coroutine_owning_the_nodes_reaches_the_caller() {
    for workers in [1, 2] {
        let panicked = common::panics_on_workers(workers, || {
            let (_a, _b, peer) = pair();
            let counter = peer.lookup::<Msg>("counter", T).unwrap();
            counter.send(Msg::Add(1)).unwrap();
            assert_eq!(counter.ask(Msg::Get, T), Ok(1));
            panic!("the owner of the nodes fails");
        });
        assert!(panicked, "[workers={workers}] the panic reaches the caller");
    }
}
