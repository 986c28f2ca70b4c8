//! A work queue over every core: one `mpmc` channel of jobs, a pool of consumer coroutines
//! placed on each worker with `spawn_on`, and a `broadcast` channel that tells the whole pool
//! to stop early.
//!
//! The jobs are ranges of numbers whose primes are counted (CPU work, no I/O). The producer
//! parks whenever the bounded queue is full, so it never runs ahead of the pool. With
//! `--stop-after N` the main coroutine broadcasts "stop" once N jobs are done: each consumer
//! waits on the stop channel and the queue at once (a `biased` `select!`, so that the stop
//! goes first) and leaves before its next job.
//! At the end it prints the primes found, how many jobs each worker ran, and the time. (On
//! two workers it takes about half the time it takes on one: `--workers 1`.)
//!
//! ```text
//! cargo run --release --example work_queue -- [--jobs N] [--consumers N] [--workers N] [--stop-after N]
//! ```

use std::time::Instant;

use coact::sync::{broadcast, mpmc, mpsc};

/// Numbers per job.
const SPAN: u64 = 20_000;

struct Options {
    jobs: u64,
    consumers: usize,
    workers: usize,
    stop_after: Option<u64>,
}

fn options() -> Options {
    let mut o = Options {
        jobs: 400,
        consumers: 8,
        workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        stop_after: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .unwrap_or_else(|| usage(&format!("{flag} needs a positive number")))
        };
        match flag.as_str() {
            "--jobs" => o.jobs = value(),
            "--consumers" => o.consumers = value() as usize,
            "--workers" => o.workers = value() as usize,
            "--stop-after" => o.stop_after = Some(value()),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    o
}

fn usage(why: &str) -> ! {
    eprintln!(
        "work_queue: {why}\nusage: work_queue [--jobs N] [--consumers N] [--workers N] [--stop-after N]"
    );
    std::process::exit(2)
}

/// The primes in `from..from + SPAN`, by trial division (deliberately plain CPU work).
fn primes_in(from: u64) -> u64 {
    (from.max(2)..from + SPAN)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}

/// What one consumer did.
struct Report {
    worker: Option<usize>,
    jobs: u64,
    primes: u64,
}

fn main() {
    let o = options();
    let rt = coact::Runtime::builder()
        .workers(o.workers)
        .build()
        .unwrap_or_else(|e| usage(&format!("cannot start the runtime: {e}")));
    let start = Instant::now();
    let (reports, stopped_early) = rt.block_on(move || {
        let (jobs, queue) = mpmc::sync_channel::<u64>(2 * o.consumers);
        let (stop, _) = broadcast::channel::<()>(1);
        let (done_tx, done) = mpsc::channel::<()>();
        let consumers: Vec<_> = (0..o.consumers)
            .map(|i| {
                let (queue, stop, done_tx) = (queue.clone(), stop.subscribe(), done_tx.clone());
                // Round-robin over the workers: a plain `spawn` would start them all on this
                // worker, where they would share one core.
                coact::spawn_on(i % o.workers, move || {
                    let mut r = Report {
                        worker: coact::current_worker(),
                        jobs: 0,
                        primes: 0,
                    };
                    loop {
                        coact::select! {
                            // `biased`: a stop wins over a job when both are there (a plain
                            // `select!` picks at random among arms ready together).
                            biased;
                            recv(stop) -> _ => return r, // "stop", or the stop channel closed
                            recv(queue) -> job => match job {
                                Ok(from) => {
                                    r.primes += primes_in(from);
                                    r.jobs += 1;
                                    let _ = done_tx.send(());
                                    // A job is milliseconds of CPU work. A channel call that
                                    // does not wait yields only every 128 calls, so let the
                                    // others on this worker (the counting main coroutine) in.
                                    coact::yield_now();
                                }
                                Err(_) => return r, // the queue is closed and empty
                            },
                        }
                    }
                })
            })
            .collect();
        drop((queue, done_tx));
        let producer = coact::spawn(move || {
            for j in 0..o.jobs {
                if jobs.send(j * SPAN).is_err() {
                    break; // every consumer has left
                }
            }
        });
        let mut stopped_early = false;
        if let Some(n) = o.stop_after {
            if done.iter().take(n as usize).count() as u64 == n && n < o.jobs {
                let _ = stop.send(());
                stopped_early = true;
            }
        }
        let reports: Vec<Report> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        // Every consumer is gone: a producer still parked on a full queue gets an error now.
        producer.join().unwrap();
        (reports, stopped_early)
    });
    let elapsed = start.elapsed();

    let jobs: u64 = reports.iter().map(|r| r.jobs).sum();
    let primes: u64 = reports.iter().map(|r| r.primes).sum();
    println!(
        "{jobs} of {} jobs done{} in {elapsed:.2?} by {} consumers on {} workers: {primes} primes \
         in the {jobs} ranges of {SPAN} numbers done",
        o.jobs,
        if stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        o.consumers,
        o.workers,
    );
    let mut per_worker = vec![0u64; o.workers];
    for r in &reports {
        if let Some(w) = r.worker {
            per_worker[w] += r.jobs;
        }
    }
    for (w, n) in per_worker.iter().enumerate() {
        println!("  worker {w}: {n} jobs");
    }
}
