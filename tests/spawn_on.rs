//! `spawn_on`: a coroutine placed on a worker starts there and stays there, from a coroutine
//! or a plain thread; a worker that does not exist, or a runtime that has ended, is an error;
//! placed coroutines are cancelled like any other when the runtime ends; and consumers placed
//! on each worker share a work queue, every message counted once.

mod common;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coact::sync::{mpmc, mpsc};
use common::{on_workers, runtime, spin_work, DropCounter};

/// Where a coroutine runs, looked at after each kind of wait.
fn places_seen() -> Vec<Option<usize>> {
    let mut seen = vec![coact::current_worker()];
    coact::yield_now();
    seen.push(coact::current_worker());
    coact::time::sleep(Duration::from_millis(1));
    seen.push(coact::current_worker());
    let (tx, rx) = mpsc::sync_channel(0);
    let helper = coact::spawn(move || tx.send(()).unwrap());
    rx.recv().unwrap();
    helper.join().unwrap();
    seen.push(coact::current_worker());
    seen
}

#[test]
fn a_placed_coroutine_starts_and_stays_on_its_worker() {
    on_workers(4, || {
        for w in 0..4 {
            let seen = coact::spawn_on(w, places_seen).join().unwrap();
            assert!(seen.iter().all(|&s| s == Some(w)), "worker {w}: {seen:?}");
        }
    });
}

#[test]
fn a_plain_thread_places_coroutines_through_a_handle() {
    let rt = runtime(3);
    let handle = rt.handle();
    let seen = std::thread::spawn(move || {
        (0..3)
            .map(|w| handle.spawn_on(w, places_seen))
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    for (w, s) in seen.iter().enumerate() {
        assert!(s.iter().all(|&x| x == Some(w)), "worker {w}: {s:?}");
    }
    assert_eq!(
        rt.spawn_on(2, coact::current_worker).join().unwrap(),
        Some(2)
    );
}

#[test]
fn a_worker_that_does_not_exist_is_an_error() {
    on_workers(2, || {
        let err = coact::try_spawn_on(2, || ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("worker 2"), "{err}");
        let placing = coact::spawn(|| coact::spawn_on(7, || ()).join());
        assert!(
            placing.join().is_err(),
            "spawn_on panics where try_spawn_on errs"
        );
    });
}

#[test]
fn placing_on_a_runtime_that_has_ended_is_an_error() {
    let rt = runtime(2);
    let handle = rt.handle();
    drop(rt);
    assert!(handle.try_spawn_on(0, || ()).is_err());
}

#[test]
fn placed_coroutines_parked_when_the_runtime_ends_are_unwound() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    on_workers(2, move || {
        let (started_tx, started) = mpsc::channel();
        for i in 0..6 {
            let (started_tx, d) = (started_tx.clone(), d.clone());
            // Detached: a join would wait for the runtime's end.
            let _ = coact::spawn_on(i % 2, move || {
                let _counted = DropCounter::new(&d);
                let (_keep_open, never) = mpsc::channel::<()>();
                started_tx.send(()).unwrap();
                let _ = never.recv();
            });
        }
        assert_eq!(started.iter().take(6).count(), 6);
    });
    assert_eq!(drops.load(Ordering::SeqCst), 6);
}

#[test]
fn consumers_placed_on_each_worker_share_a_work_queue() {
    const N: u64 = 4_000;
    let (places, total) = on_workers(2, || {
        let (tx, rx) = mpmc::sync_channel::<u64>(16);
        let consumers: Vec<_> = (0..4)
            .map(|i| {
                let rx = rx.clone();
                coact::spawn_on(i % 2, move || {
                    let (mut count, mut sum) = (0u64, 0u64);
                    for v in rx.iter() {
                        std::hint::black_box(spin_work(200));
                        count += 1;
                        sum += v;
                    }
                    (coact::current_worker(), count, sum)
                })
            })
            .collect();
        drop(rx);
        for v in 0..N {
            tx.send(v).unwrap();
        }
        drop(tx);
        let results: Vec<_> = consumers.into_iter().map(|h| h.join().unwrap()).collect();
        let places: Vec<_> = results.iter().map(|r| r.0).collect();
        let total = results.iter().fold((0, 0), |(c, s), r| (c + r.1, s + r.2));
        (places, total)
    });
    assert_eq!(places, [Some(0), Some(1), Some(0), Some(1)]);
    assert_eq!(total, (N, N * (N - 1) / 2));
}
