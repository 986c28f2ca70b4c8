//! Load on the scheduler: totals stay exact and nothing hangs.
//!
//! Proves: ~200 coroutines in pipelines and a fan-in over bounded channels (capacities 1..8)
//! deliver every message in per-source order on 2 and 4 workers; plain threads waking parked
//! coroutines 100,000 times lose no wake-up (the test completes under its watchdog); coroutine
//! pairs ping-pong across workers; spawning works from plain threads through `Handle`s;
//! `current_worker`, `in_coroutine`, `is_finished` and spawning outside a coroutine behave as
//! documented. (Spreading CPU-bound coroutines over the workers is in `balance.rs`, the stack
//! cap in `stack_cap.rs`: each needs its binary to itself.)

mod common;

use std::panic::catch_unwind;
use std::thread;

use coact::sync::mpsc::{channel, sync_channel, Receiver};
use common::{bounded, on_workers, runtime};

#[test]
fn pipelines_and_fan_in_of_200_coroutines_keep_exact_totals() {
    const PIPELINES: usize = 10;
    const STAGES: usize = 18; // + 1 source + 1 forwarder into the fan-in = 20 per pipeline
    const MSGS: u64 = 200;
    for workers in [2, 4] {
        let (count, sum) = on_workers(workers, || {
            let (out_tx, out_rx) = sync_channel::<(usize, u64)>(4);
            let mut handles = Vec::new();
            for p in 0..PIPELINES {
                let (src_tx, mut prev) = sync_channel::<u64>(1 + p % 8);
                handles.push(coact::spawn(move || {
                    (0..MSGS).for_each(|i| src_tx.send(i).unwrap())
                }));
                for s in 0..STAGES {
                    let (tx, rx) = sync_channel::<u64>(1 + (p + s) % 8);
                    let input: Receiver<u64> = prev;
                    handles.push(coact::spawn(move || {
                        for v in input.iter() {
                            tx.send(v + 1).unwrap();
                        }
                    }));
                    prev = rx;
                }
                let out = out_tx.clone();
                handles.push(coact::spawn(move || {
                    for v in prev.iter() {
                        out.send((p, v)).unwrap();
                    }
                }));
            }
            drop(out_tx);
            assert_eq!(handles.len(), PIPELINES * (STAGES + 2));
            let mut next = [0u64; PIPELINES];
            let (mut count, mut sum) = (0u64, 0u64);
            for (p, v) in out_rx.iter() {
                assert_eq!(v, next[p] + STAGES as u64, "pipeline {p} out of order");
                next[p] += 1;
                count += 1;
                sum += v;
            }
            for h in handles {
                h.join().unwrap();
            }
            (count, sum)
        });
        let per_pipeline = MSGS * (MSGS - 1) / 2 + MSGS * STAGES as u64;
        assert_eq!(count, PIPELINES as u64 * MSGS, "workers={workers}");
        assert_eq!(sum, PIPELINES as u64 * per_pipeline, "workers={workers}");
    }
}

/// Each plain thread sends to a coroutine that is parked (or just parking) in `recv`, and waits
/// for its answer: 4 × 25,000 = 100,000 cross-thread wake-ups of parked coroutines, and as many
/// wake-ups of parked threads by coroutines. A lost wake-up hangs, which the watchdog reports.
#[test]
fn plain_threads_wake_parked_coroutines_100_000_times() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 25_000;
    bounded(|| {
        let rt = runtime(2);
        let mut threads = Vec::new();
        let mut coroutines = Vec::new();
        for t in 0..THREADS {
            // Vary the flavour of the thread-to-coroutine channel.
            let (to_co_tx, to_co_rx) = sync_channel::<u64>(t as usize % 2);
            let (to_th_tx, to_th_rx) = channel::<u64>();
            coroutines.push(rt.spawn(move || {
                let mut n = 0u64;
                for v in to_co_rx.iter() {
                    to_th_tx.send(v + 1).unwrap();
                    n += 1;
                }
                n
            }));
            threads.push(thread::spawn(move || {
                for i in 0..ROUNDS {
                    to_co_tx.send(i).unwrap();
                    assert_eq!(to_th_rx.recv(), Ok(i + 1));
                }
            }));
        }
        for t in threads {
            t.join().expect("thread panicked");
        }
        let total: u64 = coroutines.into_iter().map(|h| h.join().unwrap()).sum();
        drop(rt);
        assert_eq!(total, THREADS * ROUNDS);
    });
}

/// Plain threads flood one coroutine that parks whenever its channel runs dry.
#[test]
fn plain_threads_flood_a_parking_coroutine() {
    const THREADS: u64 = 2;
    const EACH: u64 = 50_000;
    for workers in [1, 2] {
        let (tx, rx) = channel::<u64>();
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let tx = tx.clone();
                thread::spawn(move || (0..EACH).for_each(|i| tx.send(t * EACH + i).unwrap()))
            })
            .collect();
        drop(tx);
        let (count, sum) = on_workers(workers, move || {
            rx.iter().fold((0u64, 0u64), |(c, s), v| (c + 1, s + v))
        });
        threads.into_iter().for_each(|t| t.join().unwrap());
        let total = THREADS * EACH;
        assert_eq!(count, total, "workers={workers}");
        assert_eq!(sum, total * (total - 1) / 2, "workers={workers}");
    }
}

#[test]
fn coroutine_pairs_ping_pong_across_workers() {
    const PAIRS: usize = 8;
    const ROUNDS: u32 = 5_000;
    for workers in [2, 4] {
        on_workers(workers, || {
            let mut handles = Vec::new();
            for _ in 0..PAIRS {
                let (ping_tx, ping_rx) = sync_channel::<u32>(0);
                let (pong_tx, pong_rx) = sync_channel::<u32>(1);
                handles.push(coact::spawn(move || {
                    for v in ping_rx.iter() {
                        pong_tx.send(v).unwrap();
                    }
                    0
                }));
                handles.push(coact::spawn(move || {
                    for i in 0..ROUNDS {
                        ping_tx.send(i).unwrap();
                        assert_eq!(pong_rx.recv(), Ok(i));
                    }
                    ROUNDS
                }));
            }
            let total: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(total, PAIRS as u32 * ROUNDS);
        });
    }
}

#[test]
fn many_short_coroutines_spawned_and_joined() {
    const BATCHES: u64 = 20;
    const BATCH: u64 = 500;
    for workers in [1, 2, 4] {
        let sum = on_workers(workers, || {
            let mut sum = 0u64;
            for b in 0..BATCHES {
                let handles: Vec<_> = (0..BATCH)
                    .map(|i| coact::spawn(move || b * BATCH + i))
                    .collect();
                sum += handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>();
            }
            sum
        });
        let n = BATCHES * BATCH;
        assert_eq!(sum, n * (n - 1) / 2, "workers={workers}");
    }
}

/// Detached coroutines leave their join state to their worker for the next spawns of the same
/// closure (see "Recycling" in `runtime/src/join.rs`): joinable spawns of that closure, mixed
/// in, must each get their own result, never a stale one, and every result must be dropped
/// exactly once (a detached one when its coroutine ends, a joined one by its joiner).
#[test]
fn detached_and_joined_spawns_of_one_closure_keep_their_own_results() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    const ROUNDS: u64 = 20;
    const BATCH: u64 = 400;
    /// A result that counts its drops.
    struct Counted(u64, Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn job(
        i: u64,
        tx: coact::sync::mpsc::Sender<u64>,
        drops: Arc<AtomicUsize>,
    ) -> coact::JoinHandle<Counted> {
        coact::spawn(move || {
            tx.send(i).unwrap();
            Counted(i * 3, drops)
        })
    }
    for workers in [1, 2] {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        on_workers(workers, move || {
            let (tx, rx) = channel();
            for round in 0..ROUNDS {
                let mut joined = Vec::new();
                for i in 0..BATCH {
                    let n = round * BATCH + i;
                    let h = job(n, tx.clone(), d.clone());
                    if (n + round) % 3 == 0 {
                        joined.push((n, h));
                    } else {
                        drop(h); // detached
                    }
                }
                let mut sent: Vec<u64> = (0..BATCH).map(|_| rx.recv().unwrap()).collect();
                sent.sort_unstable();
                assert_eq!(
                    sent,
                    (round * BATCH..(round + 1) * BATCH).collect::<Vec<_>>()
                );
                for (n, h) in joined {
                    assert_eq!(
                        h.join().unwrap().0,
                        n * 3,
                        "a joined spawn got its own result"
                    );
                }
            }
        });
        let total = (ROUNDS * BATCH) as usize;
        assert_eq!(drops.load(Ordering::SeqCst), total, "workers={workers}");
    }
}

#[test]
fn plain_threads_spawn_through_handles() {
    const THREADS: u64 = 4;
    const EACH: u64 = 250;
    bounded(|| {
        let rt = runtime(2);
        let base = rt.handle();
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let handle = base.clone(); // Handle: Clone + Send
                thread::spawn(move || {
                    let hs: Vec<_> = (0..EACH)
                        .map(|i| {
                            handle.spawn(move || {
                                assert!(coact::in_coroutine());
                                coact::yield_now();
                                t * EACH + i
                            })
                        })
                        .collect();
                    hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
                })
            })
            .collect();
        let sum: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        drop(rt);
        let n = THREADS * EACH;
        assert_eq!(sum, n * (n - 1) / 2);
    });
}

#[test]
fn in_coroutine_and_current_worker() {
    assert!(!coact::in_coroutine());
    assert_eq!(coact::current_worker(), None);
    for workers in [1, 2, 4] {
        on_workers(workers, move || {
            assert!(coact::in_coroutine());
            let w = coact::current_worker().expect("a coroutine runs on a worker");
            assert!(w < workers, "worker {w} of {workers}");
            let other = coact::spawn(move || {
                (
                    coact::in_coroutine(),
                    coact::current_worker().map(|w| w < workers),
                )
            });
            assert_eq!(other.join().unwrap(), (true, Some(true)));
            // A plain thread started from a coroutine is not a coroutine.
            let (tx, rx) = channel();
            let t = thread::spawn(move || {
                tx.send((coact::in_coroutine(), coact::current_worker()))
                    .unwrap();
            });
            assert_eq!(rx.recv(), Ok((false, None)));
            t.join().unwrap(); // the thread has already sent its last message
        });
    }
}

#[test]
fn spawn_outside_a_coroutine_panics() {
    let r = catch_unwind(|| {
        let _h = coact::spawn(|| 1);
    });
    assert!(r.is_err(), "coact::spawn outside a coroutine must panic");
}

#[test]
fn is_finished_turns_true_after_the_coroutine_returns() {
    for workers in [1, 2] {
        on_workers(workers, || {
            let (go_tx, go_rx) = channel::<()>();
            let (done_tx, done_rx) = channel::<()>();
            let h = coact::spawn(move || {
                go_rx.recv().unwrap();
                done_tx.send(()).unwrap();
                5
            });
            assert!(!h.is_finished());
            go_tx.send(()).unwrap();
            done_rx.recv().unwrap(); // the coroutine is returning
            let mut spins = 0u32;
            while !h.is_finished() {
                spins += 1;
                assert!(spins < 1_000_000, "is_finished never became true");
                coact::yield_now();
            }
            assert_eq!(h.join().unwrap(), 5);
        });
    }
}
