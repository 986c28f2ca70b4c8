//! `locks`: coact's `Mutex`, `RwLock`, `Condvar` and `Barrier` against std's on OS threads.
//!
//! std's primitives on threads are what a program without coact would use; inside coact they
//! would block a worker, so the comparison is coact's coroutines (one worker unless a row says
//! two) against std's threads, each doing the same work. Each cell is a whole run divided by
//! its operation count; the cells of one round run one after another, rounds repeat `--runs`
//! times (default 5) and the median of each cell is printed.
//!
//! Usage: `cargo run --release -p coact-benches --bin locks [-- --runs N] [--quick] [--only
//! SUBSTR]` (`--only` keeps the rows whose name contains SUBSTR).

#![forbid(unsafe_code)]

#[path = "../args.rs"]
mod args;

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The work of one cell: run it with `n` operations, return the elapsed time.
type Cell = fn(u64) -> Duration;

struct Row {
    name: &'static str,
    unit: &'static str,
    n: u64,
    coact: Cell,
    std: Cell,
}

fn coact_on<T: Send + 'static>(workers: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    coact::Runtime::builder()
        .workers(workers)
        .build()
        .expect("build a coact runtime")
        .block_on(f)
}

/// Writes one case once for both sides: `$coact` runs `$body` as the first coroutine of a
/// runtime with `$workers` workers, with `sync` naming `coact::sync` and `spawn` naming
/// `coact::spawn`; `$std` runs it on the calling thread with `std::sync` and
/// `std::thread::spawn`. `$body` gets the operation count as `$n` and returns the elapsed time.
macro_rules! case {
    ($coact:ident, $std:ident, $workers:expr, |$n:ident| $body:block) => {
        fn $coact($n: u64) -> Duration {
            coact_on($workers, move || {
                #[allow(unused_imports)]
                use coact::{spawn, sync};
                $body
            })
        }

        fn $std($n: u64) -> Duration {
            #[allow(unused_imports)]
            use std::{sync, thread::spawn};
            $body
        }
    };
}

/// Runs `$party` (a closure; each party gets a clone) in `PARTIES` parties started with
/// `spawn`, joins them all and returns their results.
macro_rules! in_parties {
    ($party:expr) => {{
        let party = $party;
        let hs: Vec<_> = (0..PARTIES)
            .map(|_| {
                let party = party.clone();
                spawn(move || party())
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    }};
}

// ---------------------------------------------------------------------------------------------
// Uncontended: one party locks and unlocks
// ---------------------------------------------------------------------------------------------

case!(coact_mutex_uncontended, std_mutex_uncontended, 1, |n| {
    let m = sync::Mutex::new(0u64);
    let start = Instant::now();
    for _ in 0..n {
        *black_box(&m).lock().unwrap() += 1;
    }
    assert_eq!(*m.lock().unwrap(), n);
    start.elapsed()
});

case!(coact_read_uncontended, std_read_uncontended, 1, |n| {
    let l = sync::RwLock::new(1u64);
    let start = Instant::now();
    let mut sum = 0u64;
    for _ in 0..n {
        sum += *black_box(&l).read().unwrap();
    }
    assert_eq!(sum, n);
    start.elapsed()
});

case!(coact_write_uncontended, std_write_uncontended, 1, |n| {
    let l = sync::RwLock::new(0u64);
    let start = Instant::now();
    for _ in 0..n {
        *black_box(&l).write().unwrap() += 1;
    }
    assert_eq!(*l.read().unwrap(), n);
    start.elapsed()
});

// ---------------------------------------------------------------------------------------------
// Condvar: a turn passed back and forth, and a bounded queue
// ---------------------------------------------------------------------------------------------

case!(coact_condvar_ping_pong, std_condvar_ping_pong, 1, |n| {
    // Whose turn: false = ping, true = pong.
    let state = Arc::new((sync::Mutex::new(false), sync::Condvar::new()));
    let s2 = state.clone();
    let start = Instant::now();
    let pong = spawn(move || {
        let (m, cv) = &*s2;
        for _ in 0..n {
            let mut g = cv.wait_while(m.lock().unwrap(), |t| !*t).unwrap();
            *g = false;
            drop(g);
            cv.notify_one();
        }
    });
    let (m, cv) = &*state;
    for _ in 0..n {
        *m.lock().unwrap() = true;
        cv.notify_one();
        let _g = cv.wait_while(m.lock().unwrap(), |t| *t).unwrap();
    }
    pong.join().unwrap();
    start.elapsed()
});

case!(coact_condvar_queue, std_condvar_queue, 1, |n| {
    const CAP: usize = 4;
    let q = Arc::new((
        sync::Mutex::new(VecDeque::<u64>::new()),
        sync::Condvar::new(), // not empty
        sync::Condvar::new(), // not full
    ));
    let q2 = q.clone();
    let start = Instant::now();
    let producer = spawn(move || {
        let (m, not_empty, not_full) = &*q2;
        for i in 0..n {
            let mut g = not_full
                .wait_while(m.lock().unwrap(), |q| q.len() >= CAP)
                .unwrap();
            g.push_back(i);
            drop(g);
            not_empty.notify_one();
        }
    });
    let (m, not_empty, not_full) = &*q;
    let mut sum = 0u64;
    for _ in 0..n {
        let mut g = not_empty
            .wait_while(m.lock().unwrap(), |q| q.is_empty())
            .unwrap();
        sum += g.pop_front().unwrap();
        drop(g);
        not_full.notify_one();
    }
    producer.join().unwrap();
    assert_eq!(sum, n * (n - 1) / 2);
    start.elapsed()
});

// For reference: the same queue as a channel (`sync_channel(4)`).
case!(coact_channel_queue, std_channel_queue, 1, |n| {
    let (tx, rx) = sync::mpsc::sync_channel::<u64>(4);
    let start = Instant::now();
    let producer = spawn(move || {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    let sum: u64 = rx.iter().sum();
    producer.join().unwrap();
    assert_eq!(sum, n * (n - 1) / 2);
    start.elapsed()
});

// ---------------------------------------------------------------------------------------------
// Contended: four parties
// ---------------------------------------------------------------------------------------------

const PARTIES: u64 = 4;

case!(coact_mutex_contended, std_mutex_contended, 2, |n| {
    let per = n / PARTIES;
    let m = Arc::new(sync::Mutex::new(0u64));
    let start = Instant::now();
    let _: Vec<()> = in_parties!({
        let m = m.clone();
        move || (0..per).for_each(|_| *m.lock().unwrap() += 1)
    });
    assert_eq!(*m.lock().unwrap(), PARTIES * per);
    start.elapsed()
});

case!(coact_rwlock_writes, std_rwlock_writes, 2, |n| {
    let per = n / PARTIES;
    let l = Arc::new(sync::RwLock::new(0u64));
    let start = Instant::now();
    let _: Vec<()> = in_parties!({
        let l = l.clone();
        move || (0..per).for_each(|_| *l.write().unwrap() += 1)
    });
    assert_eq!(*l.read().unwrap(), PARTIES * per);
    start.elapsed()
});

// Each party writes once every 100 operations and reads otherwise.
case!(coact_read_mostly, std_read_mostly, 2, |n| {
    let per = n / PARTIES;
    let l = Arc::new(sync::RwLock::new(0u64));
    let start = Instant::now();
    let _: Vec<()> = in_parties!({
        let l = l.clone();
        move || {
            for i in 0..per {
                if i % 100 == 0 {
                    *l.write().unwrap() += 1;
                } else {
                    black_box(*l.read().unwrap());
                }
            }
        }
    });
    assert_eq!(*l.read().unwrap(), PARTIES * per.div_ceil(100));
    start.elapsed()
});

case!(coact_barrier, std_barrier, 1, |n| {
    let b = Arc::new(sync::Barrier::new(PARTIES as usize));
    let start = Instant::now();
    let led: u64 = in_parties!({
        let b = b.clone();
        move || (0..n).filter(|_| b.wait().is_leader()).count() as u64
    })
    .into_iter()
    .sum();
    assert_eq!(led, n);
    start.elapsed()
});

fn main() {
    let args = args::parse("locks", 5, true);
    let (runs, scale) = (args.runs, if args.quick { 10 } else { 1 });
    let rows = [
        Row {
            name: "Mutex lock + unlock, uncontended",
            unit: "ns/op",
            n: 10_000_000,
            coact: coact_mutex_uncontended,
            std: std_mutex_uncontended,
        },
        Row {
            name: "RwLock read + unlock, uncontended",
            unit: "ns/op",
            n: 10_000_000,
            coact: coact_read_uncontended,
            std: std_read_uncontended,
        },
        Row {
            name: "RwLock write + unlock, uncontended",
            unit: "ns/op",
            n: 10_000_000,
            coact: coact_write_uncontended,
            std: std_write_uncontended,
        },
        Row {
            name: "Condvar ping-pong (2 parties), round trip",
            unit: "ns/round trip",
            n: 200_000,
            coact: coact_condvar_ping_pong,
            std: std_condvar_ping_pong,
        },
        Row {
            name: "Condvar queue of 4 (1 producer, 1 consumer), item",
            unit: "ns/item",
            n: 1_000_000,
            coact: coact_condvar_queue,
            std: std_condvar_queue,
        },
        Row {
            name: "for reference: sync_channel(4), same queue, item",
            unit: "ns/item",
            n: 1_000_000,
            coact: coact_channel_queue,
            std: std_channel_queue,
        },
        Row {
            name: "Mutex, 4 parties incrementing (coact: 2 workers), increment",
            unit: "ns/op",
            n: 4_000_000,
            coact: coact_mutex_contended,
            std: std_mutex_contended,
        },
        Row {
            name: "RwLock, 4 parties writing (coact: 2 workers), write",
            unit: "ns/op",
            n: 4_000_000,
            coact: coact_rwlock_writes,
            std: std_rwlock_writes,
        },
        Row {
            name: "RwLock, 4 parties, 99 reads a write (coact: 2 workers), op",
            unit: "ns/op",
            n: 4_000_000,
            coact: coact_read_mostly,
            std: std_read_mostly,
        },
        Row {
            name: "Barrier of 4 parties, round",
            unit: "ns/round",
            n: 100_000,
            coact: coact_barrier,
            std: std_barrier,
        },
    ];
    let rows: Vec<Row> = rows.into_iter().filter(|r| args.keeps(r.name)).collect();
    let mut times = vec![(Vec::new(), Vec::new()); rows.len()];
    for _ in 0..runs {
        for (row, t) in rows.iter().zip(times.iter_mut()) {
            let n = (row.n / scale).max(PARTIES * 100);
            t.0.push((row.coact)(n).as_nanos() as f64 / n as f64);
            t.1.push((row.std)(n).as_nanos() as f64 / n as f64);
        }
    }
    println!("locks: median of {runs} runs; coact on coroutines, std on OS threads");
    println!("| case | unit | coact | std | coact / std |");
    println!("|---|---|--:|--:|--:|");
    for (row, (c, s)) in rows.iter().zip(times) {
        let (c, s) = (args::median(c), args::median(s));
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.2} |",
            row.name,
            row.unit,
            c,
            s,
            c / s
        );
    }
}
