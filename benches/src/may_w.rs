//! Peer: may 0.3 stackful coroutines on one worker (`may::config().set_workers(1)`).
//!
//! may has no bounded mpsc channel, so W1 pairs its unbounded `mpsc` with a `Semphore` of 1
//! (the emulation used for the peer table in RUNTIME-NOTES §10). W2 uses a persistent
//! `cqueue` (one select coroutine per channel, kept across iterations); may's `select!`
//! macro spawns three coroutines per call (~11 µs), so W2m is not run for may.
//!
//! Spawning goes through `may::go!`: may marks `coroutine::spawn` unsafe because coroutine
//! migration between workers can break thread-local storage; the macro wraps that call
//! inside may itself, and with one worker and no thread-locals here nothing migrates.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use may::cqueue;
use may::go;
use may::sync::{mpsc, Semphore};

use crate::{Workload, BATCH};

/// Configures may's global scheduler with one worker; call before any other may use.
pub fn init() {
    may::config().set_workers(1);
}

/// Runs workload `w` with `n` ops inside a may coroutine.
pub fn run(w: Workload, n: u64) -> Option<Duration> {
    if w == Workload::W2Macro {
        return None;
    }
    let handle = go!(move || match w {
        Workload::W1 => w1(n),
        Workload::W2 | Workload::W2Macro => w2(n),
        Workload::W3 => w3(n),
        Workload::W4 => w4(n),
    });
    Some(handle.join().expect("may workload coroutine panicked"))
}

fn w1(n: u64) -> Duration {
    let (tx, rx) = mpsc::channel::<u64>();
    let slots = Arc::new(Semphore::new(1));
    let start = Instant::now();
    let producer_slots = Arc::clone(&slots);
    let producer = go!(move || {
        for i in 0..n {
            producer_slots.wait();
            tx.send(i).unwrap();
        }
    });
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(rx.recv().unwrap());
        slots.post();
    }
    producer.join().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    elapsed
}

fn w2(n: u64) -> Duration {
    let mut elapsed = Duration::ZERO;
    cqueue::scope(|cq| {
        for token in 0..3usize {
            let (tx, rx) = mpsc::channel::<u64>();
            tx.send(token as u64).unwrap();
            // Top half: wait for a message; bottom half (run by `poll`): refill the channel.
            drop(cq.add(token, move |es| loop {
                let v = rx.recv().unwrap();
                es.send(0);
                tx.send(v).unwrap();
            }));
        }
        let start = Instant::now();
        for _ in 0..n {
            cq.poll(None).expect("cqueue poll");
        }
        elapsed = start.elapsed();
        // Leaving the scope cancels the three select coroutines.
    });
    elapsed
}

fn w3(n: u64) -> Duration {
    let (req_tx, req_rx) = mpsc::channel::<u64>();
    let (rep_tx, rep_rx) = mpsc::channel::<u64>();
    let start = Instant::now();
    let responder = go!(move || {
        for v in req_rx.iter() {
            rep_tx.send(v + 1).unwrap();
        }
    });
    for i in 0..n {
        req_tx.send(i).unwrap();
        assert_eq!(rep_rx.recv().unwrap(), i + 1);
    }
    drop(req_tx);
    responder.join().unwrap();
    start.elapsed()
}

fn w4(n: u64) -> Duration {
    let (tx, rx) = mpsc::channel::<u64>();
    let start = Instant::now();
    for _ in 0..n / BATCH {
        for _ in 0..BATCH {
            let tx = tx.clone();
            drop(go!(move || tx.send(1).unwrap()));
        }
        let mut got = 0;
        for _ in 0..BATCH {
            got += rx.recv().unwrap();
        }
        assert_eq!(got, BATCH);
    }
    start.elapsed()
}
