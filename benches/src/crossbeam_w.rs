//! Peer: crossbeam-channel on OS threads (no scheduler: every block is a futex wait).

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, unbounded, Receiver, Select, Sender};

use crate::{Workload, BATCH};

/// OS-thread hand-offs cost microseconds, so W1 and W4 run a tenth of the ops.
pub fn divisor(w: Workload) -> u64 {
    match w {
        Workload::W1 | Workload::W4 => 10,
        _ => 1,
    }
}

/// Runs workload `w` with `n` ops on OS threads and returns the elapsed time.
pub fn run(w: Workload, n: u64) -> Option<Duration> {
    Some(match w {
        Workload::W1 => w1(n),
        Workload::W2 => w2_select(n),
        Workload::W2Macro => w2_macro(n),
        Workload::W3 => w3(n),
        Workload::W4 => w4(n),
    })
}

fn w1(n: u64) -> Duration {
    let (tx, rx) = bounded::<u64>(1);
    let start = Instant::now();
    let producer = thread::spawn(move || {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(rx.recv().unwrap());
    }
    producer.join().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    elapsed
}

type Pair = (Sender<u64>, Receiver<u64>);

fn three_loaded() -> [Pair; 3] {
    let chans = [bounded(1), bounded(1), bounded(1)];
    for (i, (tx, _)) in chans.iter().enumerate() {
        tx.send(i as u64).unwrap();
    }
    chans
}

fn w2_select(n: u64) -> Duration {
    let chans = three_loaded();
    let mut sel = Select::new();
    for (_, rx) in &chans {
        sel.recv(rx);
    }
    let start = Instant::now();
    for _ in 0..n {
        let op = sel.select();
        let i = op.index();
        let v = op.recv(&chans[i].1).unwrap();
        chans[i].0.send(v).unwrap();
    }
    start.elapsed()
}

fn w2_macro(n: u64) -> Duration {
    let [(s0, r0), (s1, r1), (s2, r2)] = three_loaded();
    let start = Instant::now();
    for _ in 0..n {
        select! {
            recv(r0) -> v => s0.send(v.unwrap()).unwrap(),
            recv(r1) -> v => s1.send(v.unwrap()).unwrap(),
            recv(r2) -> v => s2.send(v.unwrap()).unwrap(),
        }
    }
    start.elapsed()
}

fn w3(n: u64) -> Duration {
    let (req_tx, req_rx) = bounded::<u64>(1);
    let (rep_tx, rep_rx) = bounded::<u64>(1);
    let start = Instant::now();
    let responder = thread::spawn(move || {
        for v in req_rx {
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
    let (tx, rx) = unbounded::<u64>();
    let mut handles = Vec::with_capacity(BATCH as usize);
    let start = Instant::now();
    for _ in 0..n / BATCH {
        for _ in 0..BATCH {
            let tx = tx.clone();
            handles.push(thread::spawn(move || tx.send(1).unwrap()));
        }
        let mut got = 0;
        for _ in 0..BATCH {
            got += rx.recv().unwrap();
        }
        assert_eq!(got, BATCH);
        // Join so exited threads do not pile up across batches.
        for h in handles.drain(..) {
            h.join().unwrap();
        }
    }
    start.elapsed()
}
