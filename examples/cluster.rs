//! A word count across three processes: one coordinator and two workers, each a coact node
//! on loopback.
//!
//! ```sh
//! cargo run --release --example cluster
//! ```
//!
//! The coordinator re-runs this executable twice with the `worker` role. Each worker exports a
//! counter actor; the coordinator splits a text into chunks, sends them to the counters in
//! turn, asks each for its counts, merges them (and checks them against a local count), prints
//! what crossed the wire, then shuts its node down, closes the workers' stdin (their signal to
//! stop) and waits for them to exit.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coact::actor::{spawn, Actor, Ctx, Recipient, ReplyTo};
use coact::net::{Node, NodeConfig, RemoteAddr};
use coact::sync::mpsc::sync_channel;
use serde::{Deserialize, Serialize};

const SECRET: &str = "cluster example secret";
const ADDR_LINE: &str = "NODE_ADDR=";
const T: Duration = Duration::from_secs(10);

/// What a counter understands.
#[derive(Serialize, Deserialize)]
enum Count {
    /// Count the words of this chunk.
    Text(String),
    /// The counts so far, and how many chunks they came from.
    Report(ReplyTo<(u64, HashMap<String, u64>)>),
}

struct Counter {
    chunks: u64,
    words: HashMap<String, u64>,
}

impl Actor for Counter {
    type Msg = Count;
    fn handle(&mut self, msg: Count, _ctx: &mut Ctx<'_, Count>) {
        match msg {
            Count::Text(text) => {
                self.chunks += 1;
                for w in words(&text) {
                    *self.words.entry(w).or_default() += 1;
                }
            }
            Count::Report(r) => {
                r.send((self.chunks, self.words.clone()));
            }
        }
    }
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

fn config(name: &str) -> NodeConfig {
    NodeConfig::new(name, "127.0.0.1:0".parse().unwrap(), SECRET)
}

/// A worker: a node exporting a counter, until the coordinator closes our stdin (when it is
/// done, or if it dies).
fn worker(name: &str) {
    let (stop_tx, stop_rx) = sync_channel::<()>(1);
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = stop_tx.send(()); // coact channels work from plain threads too
    });
    let name = name.to_owned();
    coact::run(move || {
        let node = Node::start(config(&name)).expect("start the worker node");
        let counter = Counter {
            chunks: 0,
            words: HashMap::new(),
        };
        node.export("counter", spawn(counter));
        println!("{ADDR_LINE}{}", node.local_addr());
        std::io::stdout().flush().unwrap();
        let _ = stop_rx.recv();
        drop(node);
    });
}

/// Starts a worker process and reads the address its node listens on.
fn start_worker(name: &str) -> (Child, SocketAddr) {
    let exe = std::env::current_exe().expect("the example's own path");
    let mut child = Command::new(exe)
        .args(["worker", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a worker process");
    let out = BufReader::new(child.stdout.take().unwrap());
    let addr = out
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix(ADDR_LINE).and_then(|a| a.parse().ok()));
    match addr {
        Some(addr) => (child, addr),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("worker {name} exited before printing its address");
        }
    }
}

/// A text to count: 40,000 words drawn from a small vocabulary.
fn text() -> Vec<String> {
    const VOCAB: &[&str] = &[
        "actor",
        "mailbox",
        "coroutine",
        "stack",
        "node",
        "link",
        "frame",
        "reply",
        "ask",
        "send",
        "monitor",
        "down",
        "supervisor",
        "restart",
        "backpressure",
        "queue",
        "socket",
        "heartbeat",
        "handshake",
        "secret",
        "the",
        "a",
        "of",
        "and",
        "to",
        "in",
    ];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut line = Vec::new();
    let mut chunks = Vec::new();
    for i in 0..40_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Skewed: low indices are common, like in real text.
        let r = x % 1000;
        let k = (r * r * VOCAB.len() as u64 / 1_000_000) as usize;
        line.push(VOCAB[k]);
        if i % 500 == 499 {
            chunks.push(line.join(" "));
            line.clear();
        }
    }
    chunks
}

fn coordinator() {
    let started = Instant::now();
    let (mut w1, a1) = start_worker("w1");
    let (mut w2, a2) = start_worker("w2");
    println!(
        "workers: w1 (pid {}) on {a1}, w2 (pid {}) on {a2}",
        w1.id(),
        w2.id()
    );

    coact::run(move || {
        let node = Node::start(config("coordinator")).expect("start the coordinator node");
        let peers = [node.connect(a1), node.connect(a2)];
        let counters: Vec<RemoteAddr<Count>> = peers
            .iter()
            .map(|p| p.lookup("counter", T).expect("look up a counter"))
            .collect();

        let chunks = text();
        let mut local: HashMap<String, u64> = HashMap::new();
        for (i, chunk) in chunks.iter().enumerate() {
            for w in words(chunk) {
                *local.entry(w).or_default() += 1;
            }
            counters[i % counters.len()]
                .send(Count::Text(chunk.clone()))
                .expect("send a chunk");
        }
        let mut total: HashMap<String, u64> = HashMap::new();
        for (c, p) in counters.iter().zip(&peers) {
            let (n, counts) = c.ask(Count::Report, T).expect("a counter's report");
            println!(
                "{}: {n} chunks, {} words",
                p.name().unwrap_or_default(),
                counts.values().sum::<u64>()
            );
            for (w, k) in counts {
                *total.entry(w).or_default() += k;
            }
        }
        assert_eq!(total, local, "the distributed count matches a local one");
        let mut top: Vec<_> = total.iter().collect();
        top.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
        let shown: Vec<_> = top
            .iter()
            .take(8)
            .map(|(w, k)| format!("{w} {k}"))
            .collect();
        println!(
            "{} words, {} distinct; top: {}",
            total.values().sum::<u64>(),
            total.len(),
            shown.join(", ")
        );

        let mut sum = coact::net::LinkStats::default();
        for p in &peers {
            let s = p.stats();
            println!(
                "wire to {}: sent {} frames / {} bytes, received {} frames / {} bytes",
                p.addr(),
                s.frames_sent,
                s.bytes_sent,
                s.frames_received,
                s.bytes_received
            );
            sum.frames_sent += s.frames_sent;
            sum.bytes_sent += s.bytes_sent;
            sum.frames_received += s.frames_received;
            sum.bytes_received += s.bytes_received;
        }
        println!(
            "wire in all: {} messages / {} bytes out, {} messages / {} bytes in",
            sum.frames_sent, sum.bytes_sent, sum.frames_received, sum.bytes_received
        );
        drop(counters);
        drop(peers);
        drop(node);
    });

    for (name, child) in [("w1", &mut w1), ("w2", &mut w2)] {
        drop(child.stdin.take());
        let status = child.wait().expect("wait for a worker");
        println!("{name} exited: {status}");
    }
    println!("done in {:?}", started.elapsed());
}

fn main() {
    // coact reports link events through `tracing`; show them on stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("worker") => worker(args.get(2).map_or("worker", String::as_str)),
        _ => coordinator(),
    }
}
