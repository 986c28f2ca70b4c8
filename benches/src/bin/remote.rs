//! coact-net across two processes on loopback, against a raw `std::net` TCP floor.
//!
//! `remote [--quick] [--runs N] [--workers W]`
//!
//! The binary re-executes itself twice: `--role server` (a coact node exporting a counting
//! handler actor) and `--role raw-server` (plain `std::net`, one OS thread per connection).
//! Each child prints `ADDR=<addr>` and lives until its stdin closes. Cases:
//!
//! 1. one-way throughput: N messages carrying 64 bytes, sent as fast as backpressure allows,
//!    ended by one ask (raw: one request) that returns the count; messages/s.
//! 2. round-trip latency: sequential asks of a small request (raw: request/response); p50/p99.
//!
//! The raw floor uses the same framing (u32 big-endian length, then a bincode-like payload:
//! a variant byte, a length byte and 64 bytes), writes through a `BufWriter`, reads through a
//! `BufReader`, `TCP_NODELAY` on. Each figure is the median of `--runs` runs.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coact::actor::{spawn, Actor, Ctx, Recipient, ReplyTo};
use coact::net::{Node, NodeConfig, RemoteAddr};
use coact::sync::mpsc::sync_channel;
use serde::{Deserialize, Serialize};

/// The cluster secret of the benchmark nodes.
const SECRET: &str = "remote bench secret";
/// The line a server prints with its address.
const ADDR_LINE: &str = "ADDR=";
/// Timeout of lookups and asks.
const T: Duration = Duration::from_secs(60);
/// Payload bytes per message.
const PAYLOAD: usize = 64;

/// What the remote counter understands.
#[derive(Serialize, Deserialize)]
enum Msg {
    /// One 64-byte message to count, its payload marked as a byte string (`serde_bytes`), as
    /// byte payloads should be: bincode then copies it in one piece.
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The count so far (then reset to zero).
    Count(ReplyTo<u64>),
    /// An echo, for round-trip latency.
    Ping(u64, ReplyTo<u64>),
    /// One 64-byte message to count, as a plain `Vec<u8>` (the same bytes on the wire; serde
    /// encodes and decodes it one byte at a time).
    Plain(Vec<u8>),
}

/// The remote handler actor: counts `Data` messages.
struct Counter {
    /// `Data` messages since the last `Count`.
    n: u64,
}

impl Actor for Counter {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, _ctx: &mut Ctx<'_, Msg>) {
        match msg {
            Msg::Data(p) | Msg::Plain(p) => self.n += (p.len() == PAYLOAD) as u64,
            Msg::Count(r) => {
                r.send(std::mem::take(&mut self.n));
            }
            Msg::Ping(x, r) => {
                r.send(x);
            }
        }
    }
}

/// Command-line options.
struct Opts {
    /// Messages per throughput run.
    n: u64,
    /// Asks per latency run.
    asks: usize,
    /// Runs per case.
    runs: usize,
    /// Worker threads of each coact runtime (`None`: the default, one per core).
    workers: Option<usize>,
    /// Only the one-way runs with byte-string payloads: no plain `Vec<u8>` runs, no asks (for
    /// profiling the one-way path alone).
    one_way_only: bool,
}

/// One run's figures.
#[derive(Clone, Copy, Default)]
struct Figures {
    /// One-way messages per second.
    mps: f64,
    /// One-way messages per second with plain `Vec<u8>` payloads (coact only).
    plain: f64,
    /// Round-trip p50, µs.
    p50: f64,
    /// Round-trip p99, µs.
    p99: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args
        .iter()
        .position(|a| a == "--role")
        .map(|i| args.get(i + 1))
    {
        Some(Some(r)) if r == "server" => return coact_server(workers_arg(&args)),
        Some(Some(r)) if r == "raw-server" => return raw_server(),
        Some(_) => panic!("--role takes server or raw-server"),
        None => {}
    }
    let mut o = Opts {
        n: 2_000_000,
        asks: 100_000,
        runs: 3,
        workers: workers_arg(&args),
        one_way_only: false,
    };
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {
                o.n = 200_000;
                o.asks = 10_000;
            }
            "--runs" => {
                o.runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&r| r > 0)
                    .expect("--runs takes a number >= 1")
            }
            "--one-way-only" => o.one_way_only = true,
            "--workers" => {
                it.next(); // read by workers_arg
            }
            _ => panic!("unknown argument {a:?} (remote [--quick] [--runs N] [--workers W] [--one-way-only])"),
        }
    }
    driver(&o);
}

/// The value of `--workers`, if given.
fn workers_arg(args: &[String]) -> Option<usize> {
    let i = args.iter().position(|a| a == "--workers")?;
    let w = args
        .get(i + 1)
        .and_then(|v| v.parse().ok())
        .filter(|&w| w > 0);
    Some(w.expect("--workers takes a number >= 1"))
}

/// A coact runtime with `workers` worker threads (`None`: the default).
fn runtime(workers: Option<usize>) -> coact::Runtime {
    let mut b = coact::Runtime::builder();
    if let Some(w) = workers {
        b = b.workers(w);
    }
    b.build().expect("start a coact runtime")
}

/// Starts this executable with `--role role` (and `extra` arguments) and reads the address
/// it prints.
fn start_server(role: &str, extra: &[String]) -> (Child, SocketAddr) {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .args(["--role", role])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a server process");
    let out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let addr = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix(ADDR_LINE).and_then(|a| a.parse().ok()));
    match addr {
        Some(a) => (child, a),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the {role} process exited before printing its address");
        }
    }
}

/// Closes a server's stdin (its signal to stop) and waits for it.
fn stop_server(mut child: Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

/// Blocks until stdin closes (the driver is done or died).
fn wait_stdin_closed() {
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// The coact server: a node exporting a [`Counter`] as `counter`.
fn coact_server(workers: Option<usize>) {
    let (stop_tx, stop_rx) = sync_channel::<()>(1);
    std::thread::spawn(move || {
        wait_stdin_closed();
        let _ = stop_tx.send(());
    });
    runtime(workers).block_on(move || {
        let cfg = NodeConfig::new("server", "127.0.0.1:0".parse().unwrap(), SECRET);
        let node = Node::start(cfg).expect("start the server node");
        node.export("counter", spawn(Counter { n: 0 }));
        println!("{ADDR_LINE}{}", node.local_addr());
        std::io::stdout().flush().unwrap();
        let _ = stop_rx.recv();
        drop(node);
    });
}

/// Raw payload kinds (the first payload byte, like a bincode variant index).
const DATA: u8 = 0;
/// Asks for the count (then resets it); the reply payload is the count, 8 bytes.
const COUNT: u8 = 1;
/// Echo request; the reply is the same frame.
const PING: u8 = 2;

/// Reads one frame (u32 big-endian length, payload) into `buf`.
fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 1 << 20 {
        return Err(std::io::Error::other("frame too long"));
    }
    buf.resize(len, 0);
    r.read_exact(buf)
}

/// Writes one frame.
fn write_frame(w: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&(payload.len() as u32).to_be_bytes())?;
    w.write_all(payload)
}

/// A data payload: variant byte, length byte, 64 bytes (what bincode makes of `Data(Vec<u8>)`).
fn data_payload() -> Vec<u8> {
    let mut p = vec![DATA, PAYLOAD as u8];
    p.extend_from_slice(&[7u8; PAYLOAD]);
    p
}

/// The raw server: a thread per connection, counting data frames and answering requests.
fn raw_server() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("{ADDR_LINE}{}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = raw_serve(conn);
            });
        }
    });
    wait_stdin_closed();
}

/// Serves one raw connection until it closes.
fn raw_serve(conn: TcpStream) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut rd = BufReader::with_capacity(64 << 10, conn.try_clone()?);
    let mut wr = BufWriter::with_capacity(64 << 10, conn);
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        read_frame(&mut rd, &mut buf)?;
        match buf.first() {
            Some(&DATA) => n += (buf.len() == PAYLOAD + 2 && buf[1] as usize == PAYLOAD) as u64,
            Some(&COUNT) => {
                write_frame(&mut wr, &std::mem::take(&mut n).to_le_bytes())?;
                wr.flush()?;
            }
            Some(&PING) => {
                write_frame(&mut wr, &buf)?;
                wr.flush()?;
            }
            _ => return Err(std::io::Error::other("bad frame")),
        }
    }
}

/// Sorted latencies → (p50, p99) in µs.
fn percentiles(mut lat: Vec<Duration>) -> (f64, f64) {
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

/// Raw one-way throughput over `conn`: N frames through a `BufWriter`, then a count request.
fn raw_throughput(conn: &TcpStream, n: u64) -> f64 {
    let mut wr = BufWriter::with_capacity(64 << 10, conn.try_clone().unwrap());
    let mut rd = BufReader::new(conn.try_clone().unwrap());
    let p = data_payload();
    let mut buf = Vec::new();
    let t0 = Instant::now();
    for _ in 0..n {
        write_frame(&mut wr, &p).unwrap();
    }
    write_frame(&mut wr, &[COUNT]).unwrap();
    wr.flush().unwrap();
    read_frame(&mut rd, &mut buf).unwrap();
    let dt = t0.elapsed();
    let got = u64::from_le_bytes(buf[..8].try_into().unwrap());
    assert_eq!(got, n, "the raw server counted every message");
    n as f64 / dt.as_secs_f64()
}

/// Raw round trips over `conn`: a ping frame written with one `write`, the echo read back.
fn raw_latency(conn: &TcpStream, asks: usize) -> (f64, f64) {
    let mut wr = conn.try_clone().unwrap();
    let mut rd = BufReader::new(conn.try_clone().unwrap());
    let mut buf = Vec::new();
    let mut lat = Vec::with_capacity(asks);
    for i in 0..(asks + asks / 10) as u64 {
        let mut f = Vec::with_capacity(13);
        f.extend_from_slice(&9u32.to_be_bytes());
        f.push(PING);
        f.extend_from_slice(&i.to_le_bytes());
        let t0 = Instant::now();
        wr.write_all(&f).unwrap();
        read_frame(&mut rd, &mut buf).unwrap();
        let dt = t0.elapsed();
        assert_eq!(buf[1..], i.to_le_bytes(), "the echo");
        if i >= (asks / 10) as u64 {
            lat.push(dt); // the first tenth warms up
        }
    }
    percentiles(lat)
}

/// coact one-way throughput: N `Data` (or `Plain`) sends, then one ask for the count.
fn coact_throughput(c: &RemoteAddr<Msg>, n: u64, plain: bool) -> f64 {
    let t0 = Instant::now();
    for _ in 0..n {
        let p = vec![7u8; PAYLOAD];
        c.send(if plain { Msg::Plain(p) } else { Msg::Data(p) })
            .expect("send");
    }
    let got = c.ask(Msg::Count, T).expect("the count");
    let dt = t0.elapsed();
    assert_eq!(got, n, "the remote actor counted every message");
    n as f64 / dt.as_secs_f64()
}

/// coact round trips: sequential asks of `Ping`.
fn coact_latency(c: &RemoteAddr<Msg>, asks: usize) -> (f64, f64) {
    let mut lat = Vec::with_capacity(asks);
    for i in 0..(asks + asks / 10) as u64 {
        let t0 = Instant::now();
        let r = c.ask(|rt| Msg::Ping(i, rt), T).expect("a ping reply");
        let dt = t0.elapsed();
        assert_eq!(r, i);
        if i >= (asks / 10) as u64 {
            lat.push(dt);
        }
    }
    percentiles(lat)
}

/// The median of `xs`.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Runs both servers, all cases, and prints the report.
fn driver(o: &Opts) {
    let extra: Vec<String> = o
        .workers
        .map(|w| vec!["--workers".to_owned(), w.to_string()])
        .unwrap_or_default();
    let (coact_child, coact_addr) = start_server("server", &extra);
    let (raw_child, raw_addr) = start_server("raw-server", &[]);
    eprintln!(
        "servers: coact pid {} on {coact_addr}, raw pid {} on {raw_addr}",
        coact_child.id(),
        raw_child.id()
    );
    let (n, runs) = (o.n, o.runs);
    let one_way_only = o.one_way_only;
    let asks = if one_way_only { 0 } else { o.asks };
    let (coact_runs, raw_runs, wire) = runtime(o.workers).block_on(move || {
        let cfg = NodeConfig::new("client", "127.0.0.1:0".parse().unwrap(), SECRET);
        let node = Node::start(cfg).expect("start the client node");
        let peer = node.connect(coact_addr);
        let c: RemoteAddr<Msg> = peer.lookup("counter", T).expect("look up the counter");
        let (mut cr, mut rr) = (Vec::new(), Vec::new());
        // Warm-up of both paths (not reported).
        coact_throughput(&c, n / 20, false);
        raw_case(raw_addr, move |s| Figures {
            mps: raw_throughput(s, n / 20),
            ..Figures::default()
        });
        let before = peer.stats();
        for run in 0..runs {
            eprintln!("run {}/{runs}", run + 1);
            let mut cf = Figures {
                mps: coact_throughput(&c, n, false),
                plain: if one_way_only {
                    0.0
                } else {
                    coact_throughput(&c, n, true)
                },
                ..Figures::default()
            };
            eprintln!(
                "  coact one-way: {:.0} msgs/s (plain Vec<u8>: {:.0})",
                cf.mps, cf.plain
            );
            let mps = raw_case(raw_addr, move |s| Figures {
                mps: raw_throughput(s, n),
                ..Figures::default()
            })
            .mps;
            eprintln!("  raw one-way:   {mps:.0} msgs/s");
            let mut l = Figures::default();
            if asks > 0 {
                (cf.p50, cf.p99) = coact_latency(&c, asks);
                eprintln!(
                    "  coact ask:     p50 {:.1} µs, p99 {:.1} µs",
                    cf.p50, cf.p99
                );
                l = raw_case(raw_addr, move |s| {
                    let (p50, p99) = raw_latency(s, asks);
                    Figures {
                        p50,
                        p99,
                        ..Figures::default()
                    }
                });
                eprintln!("  raw rtt:       p50 {:.1} µs, p99 {:.1} µs", l.p50, l.p99);
            }
            cr.push(cf);
            rr.push(Figures {
                mps,
                plain: mps,
                p50: l.p50,
                p99: l.p99,
            });
        }
        let after = peer.stats();
        let sent = after.frames_sent - before.frames_sent;
        let bytes = after.bytes_sent - before.bytes_sent;
        (cr, rr, (sent, bytes))
    });
    stop_server(coact_child);
    stop_server(raw_child);
    report(o, &coact_runs, &raw_runs, wire);
}

/// Runs one raw case on a fresh connection, on an OS thread (no coact scheduling touches it);
/// the calling coroutine parks on a coact channel meanwhile instead of blocking its worker.
fn raw_case<F>(addr: SocketAddr, f: F) -> Figures
where
    F: FnOnce(&TcpStream) -> Figures + Send + 'static,
{
    let (tx, rx) = sync_channel(1);
    std::thread::spawn(move || {
        let conn = TcpStream::connect(addr).expect("connect to the raw server");
        conn.set_nodelay(true).unwrap();
        let _ = tx.send(f(&conn));
    });
    rx.recv().expect("the raw client thread finished")
}

/// Prints the markdown report.
fn report(o: &Opts, c: &[Figures], r: &[Figures], wire: (u64, u64)) {
    let med = |xs: &[Figures], f: fn(&Figures) -> f64| median(xs.iter().map(f).collect());
    let (cm, rm) = (med(c, |f| f.mps), med(r, |f| f.mps));
    let cp = med(c, |f| f.plain);
    let (c50, r50) = (med(c, |f| f.p50), med(r, |f| f.p50));
    let (c99, r99) = (med(c, |f| f.p99), med(r, |f| f.p99));
    println!(
        "# coact-net vs raw std TCP, two processes on loopback ({} msgs one way, {} asks; median of {} runs; coact workers per process: {}{})\n",
        o.n,
        o.asks,
        o.runs,
        o.workers.map_or("default (one per core)".to_owned(), |w| w.to_string()),
        if cfg!(debug_assertions) { "; DEBUG BUILD" } else { "" }
    );
    println!("| case | coact-net | raw std TCP | ratio (coact cost ÷ raw cost) |");
    println!("|---|---|---|---|");
    println!(
        "| one-way 64 B, msgs/s | {cm:.0} | {rm:.0} | {:.2}× |",
        rm / cm
    );
    println!(
        "| one-way 64 B as a plain `Vec<u8>`, msgs/s | {cp:.0} | {rm:.0} | {:.2}× |",
        rm / cp
    );
    println!(
        "| round trip p50, µs | {c50:.1} | {r50:.1} | {:.2}× |",
        c50 / r50
    );
    println!(
        "| round trip p99, µs | {c99:.1} | {r99:.1} | {:.2}× |",
        c99 / r99
    );
    println!();
    let (frames, bytes) = wire;
    if frames > 0 {
        println!(
            "coact wire, client→server over the timed runs: {frames} frames, {:.1} bytes/frame (raw: {} bytes/frame)",
            bytes as f64 / frames as f64,
            4 + 2 + PAYLOAD
        );
    }
    let t1 = cm >= 1_000_000.0;
    let t2 = rm / cm <= 2.0;
    let t3 = c50 < 50.0;
    println!(
        "targets: ≥ 1,000,000 msgs/s one way: {}; within 2× of raw: {}; ask p50 < 50 µs: {}",
        if t1 { "met" } else { "NOT met" },
        if t2 { "met" } else { "NOT met" },
        if t3 { "met" } else { "NOT met" }
    );
    println!("\nraw runs (coact mps / coact plain mps / raw mps / coact p50,p99 / raw p50,p99):");
    for (a, b) in c.iter().zip(r) {
        println!(
            "- {:.0} / {:.0} / {:.0} / {:.1},{:.1} / {:.1},{:.1}",
            a.mps, a.plain, b.mps, a.p50, a.p99, b.p50, b.p99
        );
    }
}
