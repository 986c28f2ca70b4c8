//! `work_queue`: `coact::sync::mpmc` as a work queue (producers → one channel → several
//! consumers) against crossbeam-channel's `bounded` on OS threads, the usual choice without
//! coact.
//!
//! Each row moves `n` `u64` messages through one bounded channel from `P` producers to `C`
//! consumers and checks the total; coact runs them as coroutines on 1 and on 2 workers
//! (placed round-robin with `coact::spawn_on`), crossbeam as `P + C` threads. A figure is a whole run divided by `n`; rounds repeat `--runs`
//! times (default 5) and the median of each cell is printed, with coact's ratio to crossbeam.
//!
//! Usage: `cargo run --release -p coact-benches --bin work_queue [-- --runs N] [--quick]
//! [--only SUBSTR]`.

#![forbid(unsafe_code)]

#[path = "../args.rs"]
mod args;

use std::hint::black_box;
use std::time::{Duration, Instant};

struct Row {
    name: &'static str,
    producers: u64,
    consumers: u64,
    cap: usize,
    /// Rounds of busy work per message in the consumer (0: none).
    work: u64,
    n: u64,
}

const ROWS: &[Row] = &[
    Row {
        name: "1 producer → 4 consumers, cap 64",
        producers: 1,
        consumers: 4,
        cap: 64,
        work: 0,
        n: 2_000_000,
    },
    Row {
        name: "4 producers → 4 consumers, cap 64",
        producers: 4,
        consumers: 4,
        cap: 64,
        work: 0,
        n: 2_000_000,
    },
    Row {
        name: "1 producer → 4 consumers, rendezvous",
        producers: 1,
        consumers: 4,
        cap: 0,
        work: 0,
        n: 500_000,
    },
    Row {
        name: "1 producer → 4 consumers, cap 64, 300 rounds of work (~0.4 µs)",
        producers: 1,
        consumers: 4,
        cap: 64,
        work: 300,
        n: 200_000,
    },
];

/// About `rounds` dependent multiply-adds, which the optimiser cannot skip.
fn work(rounds: u64, seed: u64) -> u64 {
    let mut acc = seed;
    for i in 0..rounds {
        acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    acc
}

/// What a consumer does with message `v`: `rounds` of work, then `v` to add up.
fn consume(v: u64, rounds: u64) -> u64 {
    black_box(work(rounds, v));
    v
}

/// The messages producer `p` of `producers` sends: every `producers`-th from `p`.
fn share(p: u64, producers: u64, n: u64) -> impl Iterator<Item = u64> {
    (p..n).step_by(producers as usize)
}

fn coact_run(row: &Row, workers: usize, n: u64) -> Duration {
    let (producers, consumers, cap, rounds) = (row.producers, row.consumers, row.cap, row.work);
    coact::Runtime::builder()
        .workers(workers)
        .build()
        .expect("build a coact runtime")
        .block_on(move || {
            let (tx, rx) = coact::sync::mpmc::sync_channel::<u64>(cap);
            let start = Instant::now();
            let takers: Vec<_> = (0..consumers)
                .map(|c| {
                    let rx = rx.clone();
                    coact::spawn_on(c as usize % workers, move || {
                        rx.iter().map(|v| consume(v, rounds)).sum::<u64>()
                    })
                })
                .collect();
            drop(rx);
            let senders: Vec<_> = (0..producers)
                .map(|p| {
                    let tx = tx.clone();
                    coact::spawn_on(p as usize % workers, move || {
                        share(p, producers, n).for_each(|v| tx.send(v).unwrap())
                    })
                })
                .collect();
            drop(tx);
            senders.into_iter().for_each(|h| h.join().unwrap());
            let sum: u64 = takers.into_iter().map(|h| h.join().unwrap()).sum();
            let elapsed = start.elapsed();
            assert_eq!(sum, n * (n - 1) / 2);
            elapsed
        })
}

fn crossbeam_run(row: &Row, n: u64) -> Duration {
    let (producers, consumers, rounds) = (row.producers, row.consumers, row.work);
    let (tx, rx) = crossbeam_channel::bounded::<u64>(row.cap);
    let start = Instant::now();
    let takers: Vec<_> = (0..consumers)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || rx.iter().map(|v| consume(v, rounds)).sum::<u64>())
        })
        .collect();
    drop(rx);
    let senders: Vec<_> = (0..producers)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || share(p, producers, n).for_each(|v| tx.send(v).unwrap()))
        })
        .collect();
    drop(tx);
    senders.into_iter().for_each(|h| h.join().unwrap());
    let sum: u64 = takers.into_iter().map(|h| h.join().unwrap()).sum();
    let elapsed = start.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    elapsed
}

fn main() {
    let a = args::parse("work_queue", 5, true);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("## work_queue: coact::sync::mpmc against crossbeam-channel on threads\n");
    println!(
        "runs per cell: {} (median shown); quick: {}; {cpus} CPUs; ns per message\n",
        a.runs, a.quick
    );
    println!("| row | coact 1 worker | coact 2 workers | crossbeam threads | 1w / crossbeam | 2w / crossbeam |");
    println!("|---|--:|--:|--:|--:|--:|");
    for row in ROWS.iter().filter(|r| a.keeps(r.name)) {
        let n = if a.quick { row.n / 10 } else { row.n };
        let per = |d: Duration| d.as_nanos() as f64 / n as f64;
        let (mut one, mut two, mut cb) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..a.runs {
            one.push(per(coact_run(row, 1, n)));
            two.push(per(coact_run(row, 2, n)));
            cb.push(per(crossbeam_run(row, n)));
        }
        let (one, two, cb) = (args::median(one), args::median(two), args::median(cb));
        println!(
            "| {} | {one:.1} | {two:.1} | {cb:.1} | {:.2} | {:.2} |",
            row.name,
            one / cb,
            two / cb
        );
    }
}
