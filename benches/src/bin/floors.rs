//! `floors`: what the primitives under coact's hot paths cost on this machine.
//!
//! Usage: `cargo run --release -p coact-benches --bin floors [-- --runs N]`. Prints, as the
//! median of the runs:
//! - **rmw**: an atomic compare-exchange then swap on one thread's own word (what taking and
//!   releasing `std`'s mutex costs uncontended), and a `fetch_add`, ns each;
//! - **syscall**: `getppid` through `std::os::unix::process::parent_id`, ns per call (a system
//!   call's entry and exit);
//! - **clock**: `Instant::now`, ns per call (what a timed wait reads);
//! - **heavy barrier**: `coact::barrier::heavy` (`membarrier`), ns per call, with no other
//!   thread running and with a thread computing on the other CPU;
//! - **contended channel**: four plain threads each sending 500,000 `u64`s into one coact
//!   `channel()` while the main thread receives them, ns per message.
#![forbid(unsafe_code)]

#[path = "../args.rs"]
mod args;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use coact::sync::mpsc::channel;

/// One measurement: its name, and a run that returns its figure.
type Case = (&'static str, fn() -> f64);

/// ns per iteration of `f` over `n` iterations.
fn per_op(n: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn rmw_pair() -> f64 {
    let word = AtomicU64::new(0);
    per_op(10_000_000, || {
        // (Atomic operations are never optimised away; a `black_box` here would add a store
        // that each locked instruction then waits to drain.)
        let _ = word.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed);
        word.swap(0, Ordering::Release);
    })
}

fn fetch_add() -> f64 {
    let word = AtomicU64::new(0);
    per_op(10_000_000, || {
        word.fetch_add(1, Ordering::AcqRel);
    })
}

fn syscall() -> f64 {
    per_op(1_000_000, || {
        black_box(std::os::unix::process::parent_id());
    })
}

fn clock() -> f64 {
    per_op(2_000_000, || {
        black_box(Instant::now());
    })
}

fn heavy_alone() -> f64 {
    per_op(10_000, coact::barrier::heavy)
}

/// `heavy` while another thread computes (so the barrier must interrupt its CPU).
fn heavy_beside_a_busy_thread() -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        })
    };
    let ns = per_op(10_000, coact::barrier::heavy);
    stop.store(true, Ordering::Relaxed);
    busy.join().expect("the busy thread");
    ns
}

fn contended_channel() -> f64 {
    const SENDERS: u64 = 4;
    const EACH: u64 = 500_000;
    let (tx, rx) = channel::<u64>();
    let start = Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    tx.send(i).expect("the receiver lives");
                }
            })
        })
        .collect();
    drop(tx);
    let sum: u64 = rx.iter().sum();
    for s in senders {
        s.join().expect("a sender");
    }
    assert_eq!(sum, SENDERS * EACH * (EACH - 1) / 2);
    start.elapsed().as_nanos() as f64 / (SENDERS * EACH) as f64
}

fn main() {
    let runs = args::parse("floors", 5, false).runs;
    // Registers the expedited barrier, as any coact program does.
    let _rt = coact::Runtime::builder()
        .workers(1)
        .build()
        .expect("a runtime");
    println!(
        "floors: median of {runs} runs; expedited barrier: {}",
        coact::barrier::is_expedited()
    );
    let cases: [Case; 7] = [
        ("rmw: compare-exchange + swap, ns", rmw_pair),
        ("rmw: fetch_add, ns", fetch_add),
        ("syscall: getppid, ns", syscall),
        ("clock: Instant::now, ns", clock),
        ("heavy barrier, no other thread running, ns", heavy_alone),
        (
            "heavy barrier, a thread computing beside, ns",
            heavy_beside_a_busy_thread,
        ),
        (
            "contended channel, 4 threads -> 1, ns/message",
            contended_channel,
        ),
    ];
    for (name, f) in cases {
        let all: Vec<f64> = (0..runs).map(|_| f()).collect();
        let shown: Vec<String> = all.iter().map(|v| format!("{v:.1}")).collect();
        println!(
            "| {name} | {:.1} | {} |",
            args::median(all.clone()),
            shown.join(", ")
        );
    }
}
