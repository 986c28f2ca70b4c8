//! `broadcast`: `coact::sync::broadcast` against `tokio::sync::broadcast`, one sender fanning
//! out to many receivers (a chat room).
//!
//! Each row sends `n` `u64` messages to `R` receivers; the channel keeps all `n`, so no receiver
//! lags and each checks that it got all of them. coact runs the receivers as coroutines on one
//! worker and on two (placed round-robin with `coact::spawn_on`); tokio as tasks on a
//! current-thread runtime and on a multi-thread runtime with two workers. A figure is a whole
//! run divided by `n × R` (ns per message delivered); rounds repeat `--runs` times (default
//! 5) and the median of each cell is printed, with coact's ratio to tokio.
//!
//! Usage: `cargo run --release -p coact-benches --bin broadcast [-- --runs N] [--quick]
//! [--only SUBSTR]`.

#![forbid(unsafe_code)]

#[path = "../args.rs"]
mod args;

use std::time::{Duration, Instant};

struct Row {
    name: &'static str,
    receivers: u64,
    n: u64,
}

const ROWS: &[Row] = &[
    Row {
        name: "1 sender → 4 receivers",
        receivers: 4,
        n: 200_000,
    },
    Row {
        name: "1 sender → 64 receivers",
        receivers: 64,
        n: 20_000,
    },
];

fn coact_run(row: &Row, workers: usize, n: u64) -> Duration {
    let receivers = row.receivers;
    coact::Runtime::builder()
        .workers(workers)
        .build()
        .expect("build a coact runtime")
        .block_on(move || {
            let (tx, rx) = coact::sync::broadcast::channel::<u64>(n as usize);
            let (ready_tx, ready) = coact::sync::mpsc::channel::<()>();
            let start = Instant::now();
            let takers: Vec<_> = (0..receivers)
                .map(|r| {
                    let (rx, ready_tx) = (rx.resubscribe(), ready_tx.clone());
                    coact::spawn_on(r as usize % workers, move || {
                        ready_tx.send(()).unwrap();
                        let mut sum = 0u64;
                        while let Ok(v) = rx.recv() {
                            sum += v;
                        }
                        sum
                    })
                })
                .collect();
            drop(rx);
            ready.iter().take(receivers as usize).for_each(drop);
            for i in 0..n {
                tx.send(i).unwrap();
                // As tokio's side does (a send never waits, so it never yields by itself).
                if i % 1024 == 1023 {
                    coact::yield_now();
                }
            }
            drop(tx);
            for t in takers {
                assert_eq!(t.join().unwrap(), n * (n - 1) / 2);
            }
            start.elapsed()
        })
}

fn tokio_run(row: &Row, workers: usize, n: u64) -> Duration {
    let receivers = row.receivers;
    let rt = if workers == 1 {
        tokio::runtime::Builder::new_current_thread().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .build()
    }
    .expect("build a tokio runtime");
    rt.block_on(async move {
        let (tx, _) = tokio::sync::broadcast::channel::<u64>(n as usize);
        let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel::<()>();
        let start = Instant::now();
        let takers: Vec<_> = (0..receivers)
            .map(|_| {
                let (mut rx, ready_tx) = (tx.subscribe(), ready_tx.clone());
                tokio::spawn(async move {
                    ready_tx.send(()).unwrap();
                    let mut sum = 0u64;
                    while let Ok(v) = rx.recv().await {
                        sum += v;
                    }
                    sum
                })
            })
            .collect();
        for _ in 0..receivers {
            ready.recv().await.unwrap();
        }
        for i in 0..n {
            tx.send(i).unwrap();
            // A current-thread runtime runs the receivers only when the sender yields.
            if i % 1024 == 1023 {
                tokio::task::yield_now().await;
            }
        }
        drop(tx);
        for t in takers {
            assert_eq!(t.await.unwrap(), n * (n - 1) / 2);
        }
        start.elapsed()
    })
}

fn main() {
    let a = args::parse("broadcast", 5, true);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("## broadcast: coact::sync::broadcast against tokio::sync::broadcast\n");
    println!(
        "runs per cell: {} (median shown); quick: {}; {cpus} CPUs; ns per message delivered\n",
        a.runs, a.quick
    );
    println!(
        "| row | coact 1 worker | coact 2 workers | tokio ct | tokio mt (2) | 1w / tokio ct | 2w / tokio mt |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for row in ROWS.iter().filter(|r| a.keeps(r.name)) {
        let n = if a.quick { row.n / 10 } else { row.n };
        let per = |d: Duration| d.as_nanos() as f64 / (n * row.receivers) as f64;
        let mut cells: [Vec<f64>; 4] = Default::default();
        for _ in 0..a.runs {
            cells[0].push(per(coact_run(row, 1, n)));
            cells[1].push(per(coact_run(row, 2, n)));
            cells[2].push(per(tokio_run(row, 1, n)));
            cells[3].push(per(tokio_run(row, 2, n)));
        }
        let [c1, c2, t1, t2] = cells.map(args::median);
        println!(
            "| {} | {c1:.1} | {c2:.1} | {t1:.1} | {t2:.1} | {:.2} | {:.2} |",
            row.name,
            c1 / t1,
            c2 / t2
        );
    }
}
