//! `offload`: what handing a thread-blocking call to a pool thread costs, coact's
//! `coact::offload` against tokio's `spawn_blocking` and against a thread per call.
//!
//! Rows (each a whole run divided by its call count; rounds repeat `--runs` times, default 5,
//! and the median of each cell is printed):
//! - **one caller**: one coroutine (one tokio task, one thread) offloads an empty closure
//!   again and again: the round trip to a pool thread and back, with the pool warm;
//! - **16 callers**: 16 coroutines (tasks) on one worker do the same at once: how the pool
//!   serves concurrent callers (each waits only for its own call);
//! - **1 ms sleeps, 64 callers**: 64 callers each offload a 1 ms `std::thread::sleep` (a stand-
//!   in for a slow blocking call): with enough pool threads, the calls overlap and the time per
//!   call is about 1 ms / 64 (ns per call; the pool's cap is 64 in both runtimes here).
//!
//! The thread-per-call column spawns and joins a `std::thread` for each call (what a runtime
//! without a pool does; mioco did).
//!
//! Usage: `cargo run --release -p coact-benches --bin offload [-- --runs N] [--quick] [--only
//! SUBSTR]` (`--only` keeps the rows whose name contains SUBSTR).

#![forbid(unsafe_code)]

#[path = "../args.rs"]
mod args;

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Callers in the concurrent rows.
const CALLERS: u64 = 16;
/// Callers in the sleep row, and the pool cap both runtimes get.
const SLEEPERS: u64 = 64;
const SLEEP: Duration = Duration::from_millis(1);

fn coact_rt() -> coact::Runtime {
    coact::Runtime::builder()
        .workers(1)
        .offload_threads(SLEEPERS as usize)
        .build()
        .expect("build a coact runtime")
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(SLEEPERS as usize)
        .build()
        .expect("build a tokio runtime")
}

/// `callers` coroutines each offload `each` calls of `work`; the time from the first to the
/// last.
fn coact_calls(callers: u64, each: u64, work: fn() -> u64) -> Duration {
    coact_rt().block_on(move || {
        // Warm the pool (threads started, as a long-running service has them).
        let warm: Vec<_> = (0..callers)
            .map(|_| coact::spawn(move || coact::offload(|| 0u64)))
            .collect();
        warm.into_iter().for_each(|h| drop(h.join()));
        let start = Instant::now();
        let hs: Vec<_> = (0..callers)
            .map(|_| {
                coact::spawn(move || {
                    let mut sum = 0u64;
                    for _ in 0..each {
                        sum = sum.wrapping_add(coact::offload(work));
                    }
                    sum
                })
            })
            .collect();
        let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        black_box(sum);
        start.elapsed()
    })
}

fn tokio_calls(callers: u64, each: u64, work: fn() -> u64) -> Duration {
    tokio_rt().block_on(async move {
        let warm: Vec<_> = (0..callers)
            .map(|_| tokio::task::spawn_blocking(|| 0u64))
            .collect();
        for h in warm {
            let _ = h.await;
        }
        let start = Instant::now();
        let hs: Vec<_> = (0..callers)
            .map(|_| {
                tokio::spawn(async move {
                    let mut sum = 0u64;
                    for _ in 0..each {
                        sum = sum.wrapping_add(tokio::task::spawn_blocking(work).await.unwrap());
                    }
                    sum
                })
            })
            .collect();
        let mut sum = 0u64;
        for h in hs {
            sum = sum.wrapping_add(h.await.unwrap());
        }
        black_box(sum);
        start.elapsed()
    })
}

fn thread_calls(callers: u64, each: u64, work: fn() -> u64) -> Duration {
    let start = Instant::now();
    let hs: Vec<_> = (0..callers)
        .map(|_| {
            std::thread::spawn(move || {
                let mut sum = 0u64;
                for _ in 0..each {
                    sum = sum.wrapping_add(std::thread::spawn(work).join().unwrap());
                }
                sum
            })
        })
        .collect();
    let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    black_box(sum);
    start.elapsed()
}

fn empty() -> u64 {
    black_box(1)
}

fn sleep() -> u64 {
    std::thread::sleep(SLEEP);
    1
}

struct Row {
    name: &'static str,
    callers: u64,
    calls: u64,
    work: fn() -> u64,
}

fn main() {
    let args = args::parse("offload", 5, true);
    let (runs, scale) = (args.runs, if args.quick { 10 } else { 1u64 });
    let rows = [
        Row {
            name: "one caller, empty closure",
            callers: 1,
            calls: 20_000,
            work: empty,
        },
        Row {
            name: "16 callers on one worker, empty closure",
            callers: CALLERS,
            calls: 40_000,
            work: empty,
        },
        Row {
            name: "64 callers, 1 ms sleep each",
            callers: SLEEPERS,
            calls: 6_400,
            work: sleep,
        },
    ];
    let rows: Vec<Row> = rows.into_iter().filter(|r| args.keeps(r.name)).collect();
    type Side = (&'static str, fn(u64, u64, fn() -> u64) -> Duration);
    let sides: [Side; 3] = [
        ("coact offload", coact_calls),
        ("tokio spawn_blocking", tokio_calls),
        ("thread per call", thread_calls),
    ];
    let mut cells = vec![vec![Vec::new(); sides.len()]; rows.len()];
    for _ in 0..runs {
        for (r, row) in rows.iter().enumerate() {
            let calls = (row.calls / scale).max(row.callers);
            let each = calls / row.callers;
            for (s, (_, f)) in sides.iter().enumerate() {
                let t = f(row.callers, each, row.work);
                cells[r][s].push(t.as_nanos() as f64 / (each * row.callers) as f64);
            }
        }
    }
    println!(
        "offload: median of {runs} run(s){}; ns per call, lower is better\n",
        if scale > 1 { ", --quick" } else { "" }
    );
    print!("| row |");
    for (name, _) in &sides {
        print!(" {name} |");
    }
    println!(" coact ÷ tokio |");
    println!("|---|---:|---:|---:|---:|");
    for (r, row) in rows.iter().enumerate() {
        let m: Vec<f64> = cells[r].iter().map(|v| args::median(v.clone())).collect();
        print!("| {} |", row.name);
        for v in &m {
            print!(" {v:.0} |");
        }
        println!(" {:.2} |", m[0] / m[1]);
    }
    println!("\nRaw runs (ns per call):");
    for (r, row) in rows.iter().enumerate() {
        for (s, (name, _)) in sides.iter().enumerate() {
            let v: Vec<String> = cells[r][s].iter().map(|x| format!("{x:.0}")).collect();
            println!("- {} / {name}: {}", row.name, v.join(", "));
        }
    }
}
