//! Peer: tokio tasks with `tokio::sync::mpsc`, on the current-thread and the multi-thread
//! (2 workers) schedulers. The workload body runs as a spawned task so that, on the
//! multi-thread runtime, it runs on a worker rather than on the `block_on` thread.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};
use tokio::sync::mpsc;

use crate::{Workload, BATCH};

/// Runs workload `w` with `n` ops on a current-thread runtime.
pub fn run_current_thread(w: Workload, n: u64) -> Option<Duration> {
    if w == Workload::W2Macro {
        return None;
    }
    let rt = Builder::new_current_thread()
        .build()
        .expect("build tokio runtime");
    Some(run_on(&rt, w, n))
}

/// Runs workload `w` with `n` ops on a multi-thread runtime with 2 workers.
pub fn run_multi_thread(w: Workload, n: u64) -> Option<Duration> {
    if w == Workload::W2Macro {
        return None;
    }
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("build tokio runtime");
    Some(run_on(&rt, w, n))
}

fn run_on(rt: &Runtime, w: Workload, n: u64) -> Duration {
    rt.block_on(async move {
        tokio::spawn(async move {
            match w {
                // tokio's only select is the macro: it fills the W2 row, W2m is "—".
                Workload::W2 | Workload::W2Macro => w2(n).await,
                Workload::W1 => w1(n).await,
                Workload::W3 => w3(n).await,
                Workload::W4 => w4(n).await,
            }
        })
        .await
        .expect("tokio workload task panicked")
    })
}

async fn w1(n: u64) -> Duration {
    let (tx, mut rx) = mpsc::channel::<u64>(1);
    let start = Instant::now();
    let producer = tokio::spawn(async move {
        for i in 0..n {
            tx.send(i).await.unwrap();
        }
    });
    let mut sum = 0u64;
    while let Some(v) = rx.recv().await {
        sum = sum.wrapping_add(v);
    }
    producer.await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    elapsed
}

async fn w2(n: u64) -> Duration {
    let (s0, mut r0) = mpsc::channel::<u64>(1);
    let (s1, mut r1) = mpsc::channel::<u64>(1);
    let (s2, mut r2) = mpsc::channel::<u64>(1);
    s0.send(0).await.unwrap();
    s1.send(1).await.unwrap();
    s2.send(2).await.unwrap();
    let start = Instant::now();
    for _ in 0..n {
        tokio::select! {
            v = r0.recv() => s0.send(v.unwrap()).await.unwrap(),
            v = r1.recv() => s1.send(v.unwrap()).await.unwrap(),
            v = r2.recv() => s2.send(v.unwrap()).await.unwrap(),
        }
    }
    start.elapsed()
}

async fn w3(n: u64) -> Duration {
    let (req_tx, mut req_rx) = mpsc::channel::<u64>(1);
    let (rep_tx, mut rep_rx) = mpsc::channel::<u64>(1);
    let start = Instant::now();
    let responder = tokio::spawn(async move {
        while let Some(v) = req_rx.recv().await {
            rep_tx.send(v + 1).await.unwrap();
        }
    });
    for i in 0..n {
        req_tx.send(i).await.unwrap();
        assert_eq!(rep_rx.recv().await.unwrap(), i + 1);
    }
    drop(req_tx);
    responder.await.unwrap();
    start.elapsed()
}

async fn w4(n: u64) -> Duration {
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    let start = Instant::now();
    for _ in 0..n / BATCH {
        for _ in 0..BATCH {
            let tx = tx.clone();
            // Detached, like the coact and may rows.
            drop(tokio::spawn(async move { tx.send(1).unwrap() }));
        }
        let mut got = 0;
        for _ in 0..BATCH {
            got += rx.recv().await.unwrap();
        }
        assert_eq!(got, BATCH);
    }
    start.elapsed()
}
