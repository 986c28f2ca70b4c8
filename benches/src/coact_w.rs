//! coact: coroutines on a `Runtime` with 1 or 2 workers, `coact::sync::mpsc` channels and a
//! persistent `coact::select::Select` (W2) or the `coact::select!` macro (W2m).

use std::hint::black_box;
use std::time::{Duration, Instant};

use coact::select::Select;
use coact::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use coact::Runtime;

use crate::{note, Workload, BATCH};

/// Runs workload `w` with `n` ops on a fresh coact runtime with `workers` workers.
/// Building and dropping the runtime is not timed.
pub fn run(workers: usize, w: Workload, n: u64) -> Option<Duration> {
    let rt = Runtime::builder()
        .workers(workers)
        .build()
        .expect("build coact runtime");
    let elapsed = rt.block_on(move || match w {
        Workload::W1 => w1(n, workers),
        Workload::W2 => w2_select(n, workers),
        Workload::W2Macro => w2_macro(n),
        Workload::W3 => w3(n, workers),
        Workload::W4 => w4(n),
    });
    drop(rt);
    Some(elapsed)
}

/// Notes on which workers the two sides ran (start and end), to explain 2-worker figures.
fn note_placement(
    label: &str,
    workers: usize,
    here: [Option<usize>; 2],
    there: [Option<usize>; 2],
) {
    note(format!(
        "coact {workers}w {label}: main side on worker {here:?} (start, end), helper on worker {there:?}"
    ));
}

fn w1(n: u64, workers: usize) -> Duration {
    let (tx, rx) = sync_channel::<u64>(1);
    let here_start = coact::current_worker();
    let start = Instant::now();
    let producer = coact::spawn(move || {
        let first = coact::current_worker();
        for i in 0..n {
            tx.send(i).unwrap();
        }
        [first, coact::current_worker()]
    });
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(rx.recv().unwrap());
    }
    let there = producer.join().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    note_placement("W1", workers, [here_start, coact::current_worker()], there);
    elapsed
}

type Pair = (SyncSender<u64>, Receiver<u64>);

fn three_loaded() -> [Pair; 3] {
    let chans = [sync_channel(1), sync_channel(1), sync_channel(1)];
    for (i, (tx, _)) in chans.iter().enumerate() {
        tx.send(i as u64).unwrap();
    }
    chans
}

fn w2_select(n: u64, workers: usize) -> Duration {
    let chans = three_loaded();
    let mut sel = Select::new();
    for (_, rx) in &chans {
        sel.recv(rx);
    }
    let mut hits = [0u64; 3];
    let start = Instant::now();
    for _ in 0..n {
        let op = sel.select();
        let i = op.index();
        let v = op.recv(&chans[i].1).unwrap();
        chans[i].0.send(v).unwrap();
        hits[i] += 1;
    }
    let elapsed = start.elapsed();
    // A persistent Select should register a handful of times, not once per iteration.
    note(format!(
        "coact {workers}w W2: Select made {} registrations over {n} iterations; picks per channel {hits:?}",
        sel.registrations()
    ));
    elapsed
}

fn w2_macro(n: u64) -> Duration {
    let [(s0, r0), (s1, r1), (s2, r2)] = three_loaded();
    let start = Instant::now();
    for _ in 0..n {
        coact::select! {
            recv(r0) -> v => s0.send(v.unwrap()).unwrap(),
            recv(r1) -> v => s1.send(v.unwrap()).unwrap(),
            recv(r2) -> v => s2.send(v.unwrap()).unwrap(),
        }
    }
    start.elapsed()
}

fn w3(n: u64, workers: usize) -> Duration {
    let (req_tx, req_rx) = sync_channel::<u64>(1);
    let (rep_tx, rep_rx) = sync_channel::<u64>(1);
    let here_start = coact::current_worker();
    let start = Instant::now();
    let responder = coact::spawn(move || {
        let first = coact::current_worker();
        for v in req_rx {
            rep_tx.send(v + 1).unwrap();
        }
        [first, coact::current_worker()]
    });
    for i in 0..n {
        req_tx.send(i).unwrap();
        assert_eq!(rep_rx.recv().unwrap(), i + 1);
    }
    drop(req_tx);
    let there = responder.join().unwrap();
    let elapsed = start.elapsed();
    note_placement("W3", workers, [here_start, coact::current_worker()], there);
    elapsed
}

fn w4(n: u64) -> Duration {
    let (tx, rx) = channel::<u64>();
    let start = Instant::now();
    for _ in 0..n / BATCH {
        for _ in 0..BATCH {
            let tx = tx.clone();
            // Detached: dropping the JoinHandle lets the coroutine finish on its own.
            drop(coact::spawn(move || tx.send(1).unwrap()));
        }
        let mut got = 0;
        for _ in 0..BATCH {
            got += rx.recv().unwrap();
        }
        assert_eq!(got, BATCH);
    }
    start.elapsed()
}
