//! W5 load client: `w5_client <addr> [--conns 100] [--secs 5] [--warmup 1]`.
//!
//! One OS thread per connection, blocking std sockets with `TCP_NODELAY`. Each connection
//! writes 64 bytes, reads the 64 echoed bytes back, and repeats. After `--warmup` seconds the
//! client prints `start` on stdout, after `--secs` more it prints `stop`; round trips that begin
//! and end inside that window are counted and their latencies kept. It then prints a
//! `fairness ...` line (round trips per connection, mean latency) and
//! `result <round trips> <secs> <msgs/s> <p50 µs> <p99 µs>`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Bytes per request (and per response).
const MSG: usize = 64;

struct Args {
    addr: SocketAddr,
    conns: usize,
    secs: f64,
    warmup: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut addr = None;
    let mut conns = 100usize;
    let mut secs = 5.0f64;
    let mut warmup = 1.0f64;
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--conns" => {
                conns = value("--conns")?
                    .parse()
                    .map_err(|e| format!("--conns: {e}"))?
            }
            "--secs" => {
                secs = value("--secs")?
                    .parse()
                    .map_err(|e| format!("--secs: {e}"))?
            }
            "--warmup" => {
                warmup = value("--warmup")?
                    .parse()
                    .map_err(|e| format!("--warmup: {e}"))?
            }
            s if addr.is_none() && !s.starts_with('-') => {
                addr = Some(s.parse().map_err(|e| format!("bad address `{s}`: {e}"))?)
            }
            s => return Err(format!("unknown argument `{s}`")),
        }
    }
    let addr = addr.ok_or("usage: w5_client <addr> [--conns N] [--secs S] [--warmup S]")?;
    if conns == 0 || secs <= 0.0 || warmup < 0.0 {
        return Err("need --conns >= 1, --secs > 0, --warmup >= 0".into());
    }
    Ok(Args {
        addr,
        conns,
        secs,
        warmup,
    })
}

/// Runs one connection until `end`; returns the latencies (ns) of round trips inside
/// `[from, end]`.
fn connection(
    mut s: TcpStream,
    barrier: &Barrier,
    warmup: Duration,
    window: Duration,
) -> io::Result<Vec<u32>> {
    let req = [0x5au8; MSG];
    let mut resp = [0u8; MSG];
    let mut lat = Vec::with_capacity(1 << 16);
    barrier.wait();
    let t0 = Instant::now();
    let from = t0 + warmup;
    let end = from + window;
    loop {
        let a = Instant::now();
        if a >= end {
            return Ok(lat);
        }
        s.write_all(&req)?;
        s.read_exact(&mut resp)?;
        let b = Instant::now();
        if a >= from && b <= end {
            lat.push(u32::try_from((b - a).as_nanos()).unwrap_or(u32::MAX));
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("w5_client: {e}");
            std::process::exit(2);
        }
    };
    let warmup = Duration::from_secs_f64(args.warmup);
    let window = Duration::from_secs_f64(args.secs);
    // Connect everything first, so connection setup is outside the timed part.
    let mut streams = Vec::with_capacity(args.conns);
    for _ in 0..args.conns {
        let s = TcpStream::connect(args.addr).unwrap_or_else(|e| {
            eprintln!("w5_client: connect {}: {e}", args.addr);
            std::process::exit(1);
        });
        s.set_nodelay(true).expect("set_nodelay");
        streams.push(s);
    }
    let barrier = Arc::new(Barrier::new(args.conns + 1));
    let threads: Vec<_> = streams
        .into_iter()
        .map(|s| {
            let barrier = Arc::clone(&barrier);
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || connection(s, &barrier, warmup, window))
                .expect("spawn client thread")
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    std::thread::sleep(warmup);
    println!("start");
    io::stdout().flush().expect("flush");
    std::thread::sleep((t0 + warmup + window).saturating_duration_since(Instant::now()));
    println!("stop");
    io::stdout().flush().expect("flush");
    let mut all = Vec::new();
    let mut per_conn = Vec::with_capacity(args.conns);
    for t in threads {
        match t.join().expect("client thread panicked") {
            Ok(v) => {
                per_conn.push(v.len());
                all.extend(v);
            }
            Err(e) => {
                eprintln!("w5_client: connection error: {e}");
                std::process::exit(1);
            }
        }
    }
    all.sort_unstable();
    per_conn.sort_unstable();
    let n = all.len();
    let mean_us = all.iter().map(|&x| f64::from(x)).sum::<f64>() / n.max(1) as f64 / 1000.0;
    println!(
        "fairness round trips per connection min {} median {} max {}; mean latency {mean_us:.1} µs",
        per_conn[0],
        per_conn[per_conn.len() / 2],
        per_conn[per_conn.len() - 1]
    );
    println!(
        "result {n} {:.3} {:.0} {:.1} {:.1}",
        args.secs,
        n as f64 / args.secs,
        percentile(&all, 0.50),
        percentile(&all, 0.99)
    );
}
