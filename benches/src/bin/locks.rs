//! `locks`: coact's `Mutex`, `RwLock`, `Condvar` and `Barrier` against std's on OS threads.
//!
//! std's primitives on threads are what a program without coact would use; inside coact they
//! would block a worker, so the comparison is coact's coroutines (one worker unless a row says
//! two) against std's threads, each doing the same work. Each cell is a whole run divided by
//! its operation count; the cells of one round run one after another, rounds repeat `--runs`
//! times (default 5) and the median of each cell is printed.
//!
//! Usage: `cargo run --release -p coact-benches --bin locks [-- --runs N] [--quick]`.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::thread;
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

// ---------------------------------------------------------------------------------------------
// Uncontended: one party locks and unlocks
// ---------------------------------------------------------------------------------------------

fn coact_mutex_uncontended(n: u64) -> Duration {
    coact_on(1, move || {
        let m = coact::sync::Mutex::new(0u64);
        let start = Instant::now();
        for _ in 0..n {
            *m.lock().unwrap() += 1;
        }
        assert_eq!(*black_box(&m).lock().unwrap(), n);
        start.elapsed()
    })
}

fn std_mutex_uncontended(n: u64) -> Duration {
    let m = std::sync::Mutex::new(0u64);
    let start = Instant::now();
    for _ in 0..n {
        *m.lock().unwrap() += 1;
    }
    assert_eq!(*black_box(&m).lock().unwrap(), n);
    start.elapsed()
}

fn coact_read_uncontended(n: u64) -> Duration {
    coact_on(1, move || {
        let l = coact::sync::RwLock::new(1u64);
        let start = Instant::now();
        let mut sum = 0u64;
        for _ in 0..n {
            sum += *black_box(&l).read().unwrap();
        }
        assert_eq!(sum, n);
        start.elapsed()
    })
}

fn std_read_uncontended(n: u64) -> Duration {
    let l = std::sync::RwLock::new(1u64);
    let start = Instant::now();
    let mut sum = 0u64;
    for _ in 0..n {
        sum += *black_box(&l).read().unwrap();
    }
    assert_eq!(sum, n);
    start.elapsed()
}

fn coact_write_uncontended(n: u64) -> Duration {
    coact_on(1, move || {
        let l = coact::sync::RwLock::new(0u64);
        let start = Instant::now();
        for _ in 0..n {
            *black_box(&l).write().unwrap() += 1;
        }
        assert_eq!(*l.read().unwrap(), n);
        start.elapsed()
    })
}

fn std_write_uncontended(n: u64) -> Duration {
    let l = std::sync::RwLock::new(0u64);
    let start = Instant::now();
    for _ in 0..n {
        *black_box(&l).write().unwrap() += 1;
    }
    assert_eq!(*l.read().unwrap(), n);
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------
// Condvar: a turn passed back and forth, and a bounded queue
// ---------------------------------------------------------------------------------------------

macro_rules! ping_pong {
    ($mutex:ty, $condvar:ty, $spawn:path, $join:ident, $n:expr) => {{
        let n = $n;
        // (whose turn: false = ping, true = pong; rounds done)
        let state = Arc::new((<$mutex>::new(false), <$condvar>::new()));
        let s2 = state.clone();
        let start = Instant::now();
        let pong = $spawn(move || {
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
        pong.$join().unwrap();
        start.elapsed()
    }};
}

fn coact_condvar_ping_pong(n: u64) -> Duration {
    coact_on(1, move || {
        ping_pong!(
            coact::sync::Mutex<bool>,
            coact::sync::Condvar,
            coact::spawn,
            join,
            n
        )
    })
}

fn std_condvar_ping_pong(n: u64) -> Duration {
    ping_pong!(
        std::sync::Mutex<bool>,
        std::sync::Condvar,
        thread::spawn,
        join,
        n
    )
}

macro_rules! condvar_queue {
    ($mutex:ty, $condvar:ty, $spawn:path, $n:expr) => {{
        const CAP: usize = 4;
        let n = $n;
        let q = Arc::new((
            <$mutex>::new(VecDeque::<u64>::new()),
            <$condvar>::new(), // not empty
            <$condvar>::new(), // not full
        ));
        let q2 = q.clone();
        let start = Instant::now();
        let producer = $spawn(move || {
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
    }};
}

fn coact_condvar_queue(n: u64) -> Duration {
    coact_on(1, move || {
        condvar_queue!(
            coact::sync::Mutex<VecDeque<u64>>,
            coact::sync::Condvar,
            coact::spawn,
            n
        )
    })
}

fn std_condvar_queue(n: u64) -> Duration {
    condvar_queue!(
        std::sync::Mutex<VecDeque<u64>>,
        std::sync::Condvar,
        thread::spawn,
        n
    )
}

/// For reference: the same queue as coact's channel (`sync_channel(4)`).
fn coact_channel_queue(n: u64) -> Duration {
    coact_on(1, move || {
        let (tx, rx) = coact::sync::mpsc::sync_channel::<u64>(4);
        let start = Instant::now();
        let producer = coact::spawn(move || {
            for i in 0..n {
                tx.send(i).unwrap();
            }
        });
        let sum: u64 = rx.iter().sum();
        producer.join().unwrap();
        assert_eq!(sum, n * (n - 1) / 2);
        start.elapsed()
    })
}

/// For reference: std's channel on threads.
fn std_channel_queue(n: u64) -> Duration {
    let (tx, rx) = std::sync::mpsc::sync_channel::<u64>(4);
    let start = Instant::now();
    let producer = thread::spawn(move || {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    let sum: u64 = rx.iter().sum();
    producer.join().unwrap();
    assert_eq!(sum, n * (n - 1) / 2);
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------
// Contended: four parties
// ---------------------------------------------------------------------------------------------

const PARTIES: u64 = 4;

macro_rules! contended_mutex {
    ($mutex:ty, $spawn:path, $n:expr) => {{
        let per = $n / PARTIES;
        let m = Arc::new(<$mutex>::new(0u64));
        let start = Instant::now();
        let hs: Vec<_> = (0..PARTIES)
            .map(|_| {
                let m = m.clone();
                $spawn(move || {
                    for _ in 0..per {
                        *m.lock().unwrap() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock().unwrap(), per * PARTIES);
        start.elapsed()
    }};
}

fn coact_mutex_contended(n: u64) -> Duration {
    coact_on(2, move || {
        contended_mutex!(coact::sync::Mutex<u64>, coact::spawn, n)
    })
}

fn std_mutex_contended(n: u64) -> Duration {
    contended_mutex!(std::sync::Mutex<u64>, thread::spawn, n)
}

macro_rules! contended_writes {
    ($lock:ty, $spawn:path, $n:expr) => {{
        let per = $n / PARTIES;
        let l = Arc::new(<$lock>::new(0u64));
        let start = Instant::now();
        let hs: Vec<_> = (0..PARTIES)
            .map(|_| {
                let l = l.clone();
                $spawn(move || {
                    for _ in 0..per {
                        *l.write().unwrap() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*l.read().unwrap(), per * PARTIES);
        start.elapsed()
    }};
}

fn coact_rwlock_writes(n: u64) -> Duration {
    coact_on(2, move || {
        contended_writes!(coact::sync::RwLock<u64>, coact::spawn, n)
    })
}

fn std_rwlock_writes(n: u64) -> Duration {
    contended_writes!(std::sync::RwLock<u64>, thread::spawn, n)
}

/// Four parties, each reading 99 times for every write.
macro_rules! read_mostly {
    ($lock:ty, $spawn:path, $n:expr) => {{
        let per = $n / PARTIES;
        let l = Arc::new(<$lock>::new(0u64));
        let start = Instant::now();
        let hs: Vec<_> = (0..PARTIES)
            .map(|_| {
                let l = l.clone();
                $spawn(move || {
                    let mut seen = 0u64;
                    for i in 0..per {
                        if i % 100 == 0 {
                            *l.write().unwrap() += 1;
                        } else {
                            seen = seen.max(*l.read().unwrap());
                        }
                    }
                    black_box(seen);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*l.read().unwrap(), PARTIES * per.div_ceil(100));
        start.elapsed()
    }};
}

fn coact_read_mostly(n: u64) -> Duration {
    coact_on(2, move || {
        read_mostly!(coact::sync::RwLock<u64>, coact::spawn, n)
    })
}

fn std_read_mostly(n: u64) -> Duration {
    read_mostly!(std::sync::RwLock<u64>, thread::spawn, n)
}

macro_rules! barrier_rounds {
    ($barrier:ty, $spawn:path, $n:expr) => {{
        let rounds = $n;
        let b = Arc::new(<$barrier>::new(PARTIES as usize));
        let start = Instant::now();
        let hs: Vec<_> = (0..PARTIES)
            .map(|_| {
                let b = b.clone();
                $spawn(move || {
                    let mut led = 0u64;
                    for _ in 0..rounds {
                        led += b.wait().is_leader() as u64;
                    }
                    led
                })
            })
            .collect();
        let led: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(led, rounds);
        start.elapsed()
    }};
}

fn coact_barrier(n: u64) -> Duration {
    coact_on(1, move || {
        barrier_rounds!(coact::sync::Barrier, coact::spawn, n)
    })
}

fn std_barrier(n: u64) -> Duration {
    barrier_rounds!(std::sync::Barrier, thread::spawn, n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut runs = 5usize;
    let mut scale = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&r| r > 0)
                    .expect("--runs needs a positive number")
            }
            "--quick" => scale = 10,
            other => panic!("locks: unknown argument {other}; usage: locks [--runs N] [--quick]"),
        }
    }
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
        let (c, s) = (median(c), median(s));
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
