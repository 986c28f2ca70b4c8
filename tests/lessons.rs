//! Regression tests named after the failures of coact's predecessor, mioco (RUNTIME-NOTES.md §9).
//!
//! What they prove about coact's runtime core:
//! - lesson 2 (mioco #153, `sync_channel` at 2 msg/s): a sender parked on a full bounded channel is
//!   woken by the receiver, not by a timer tick; 1,000,000 messages through `sync_channel(1)`
//!   complete (the watchdog, not a timing assertion, is the guard), on 1 and 2 workers.
//! - lesson 3 (mioco #150, flaky mutex test): `coact::sync::Mutex` and the channels are exact when
//!   shared by coroutines and plain threads at once; every party is joined before asserting.
//! - lesson 5 (mioco #127, select re-registration): a `Select` kept across a loop registers once
//!   per channel, and readiness that arrives while the owner is outside `select` is not lost.
//!
//! Lessons 1 and 4 concern sockets and are tested with the net layer.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use coact::select::Select;
use coact::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use coact::sync::Mutex;
use common::{on_workers, on_workers_within, runtime};

/// mioco #153: a full `send` spun on `try_send` + `yield_now` and only ran again after a 100 ms
/// timer tick. Here 1,000,000 messages must go through a one-slot channel between two coroutines.
#[test]
fn lesson2_sync_channel_1_producer_consumer_runs_at_cpu_speed() {
    const N: u64 = 1_000_000;
    for workers in [1, 2] {
        let start = std::time::Instant::now();
        let (count, sum) = on_workers_within(workers, Duration::from_secs(600), || {
            let (tx, rx) = sync_channel::<u64>(1);
            let producer = coact::spawn(move || {
                for i in 0..N {
                    tx.send(i).expect("consumer alive");
                }
            });
            let consumer = coact::spawn(move || {
                let mut count = 0u64;
                let mut sum = 0u64;
                for v in rx.iter() {
                    count += 1;
                    sum += v;
                }
                (count, sum)
            });
            producer.join().expect("producer panicked");
            consumer.join().expect("consumer panicked")
        });
        assert_eq!(count, N, "workers={workers}");
        assert_eq!(sum, N * (N - 1) / 2, "workers={workers}");
        // Informational only (shown with --nocapture); no assertion on time.
        eprintln!(
            "lesson2: {N} msgs on {workers} worker(s) in {:?}",
            start.elapsed()
        );
    }
}

/// mioco #150: the mutex test raced because native threads were never joined before asserting.
/// 8 coroutines and 4 plain threads increment one `coact::sync::Mutex`; coroutines sometimes hold
/// the lock across `yield_now` so that threads and coroutines really contend.
#[test]
fn lesson3_mutex_shared_by_coroutines_and_threads_counts_exactly() {
    const COROUTINES: u64 = 8;
    const THREADS: u64 = 4;
    const ITERS: u64 = 10_000;
    for workers in [1, 2] {
        common::bounded(move || {
            let counter = Arc::new(Mutex::new(0u64));
            let rt = runtime(workers);
            let threads: Vec<_> = (0..THREADS)
                .map(|_| {
                    let counter = Arc::clone(&counter);
                    thread::spawn(move || {
                        for _ in 0..ITERS {
                            *counter.lock().unwrap() += 1;
                        }
                    })
                })
                .collect();
            let coroutines: Vec<_> = (0..COROUTINES)
                .map(|k| {
                    let counter = Arc::clone(&counter);
                    rt.spawn(move || {
                        for i in 0..ITERS {
                            let mut guard = counter.lock().unwrap();
                            *guard += 1;
                            if (i + k) % 64 == 0 {
                                // Hold the lock across a switch: others must wait, not race.
                                coact::yield_now();
                            }
                            drop(guard);
                        }
                    })
                })
                .collect();
            // Join every party (JoinHandle::join works from a plain thread) before asserting.
            for h in coroutines {
                h.join().expect("coroutine panicked");
            }
            for t in threads {
                t.join().expect("thread panicked");
            }
            drop(rt);
            assert_eq!(
                *counter.lock().unwrap(),
                (COROUTINES + THREADS) * ITERS,
                "workers={workers}"
            );
            assert!(!counter.is_poisoned());
        });
    }
}

/// Lesson 3 for channels: coroutines and plain threads all send into one bounded channel, and
/// coroutines and plain threads all receive from it (the receiver shared through a coact Mutex).
/// Every message is received exactly once.
#[test]
fn lesson3_channel_shared_by_coroutines_and_threads_counts_exactly() {
    const PER_SENDER: u64 = 5_000;
    const CO_SENDERS: u64 = 4;
    const TH_SENDERS: u64 = 2;
    const CO_RECEIVERS: usize = 2;
    const TH_RECEIVERS: usize = 2;
    // Each receiver takes the lock for one `recv` at a time and stops on disconnection.
    fn drain(rx: &Mutex<Receiver<u64>>) -> (u64, u64) {
        let (mut count, mut sum) = (0, 0);
        loop {
            let next = rx.lock().unwrap().recv();
            match next {
                Ok(v) => {
                    count += 1;
                    sum += v;
                }
                Err(_) => return (count, sum),
            }
        }
    }
    fn feed(tx: SyncSender<u64>, id: u64) {
        for i in 0..PER_SENDER {
            tx.send(id * PER_SENDER + i).expect("receivers alive");
        }
    }

    for workers in [1, 2] {
        common::bounded(move || {
            let (tx, rx) = sync_channel::<u64>(2);
            let rx = Arc::new(Mutex::new(rx));
            let rt = runtime(workers);
            let th_senders: Vec<_> = (0..TH_SENDERS)
                .map(|id| {
                    let tx = tx.clone();
                    thread::spawn(move || feed(tx, id))
                })
                .collect();
            let th_receivers: Vec<_> = (0..TH_RECEIVERS)
                .map(|_| {
                    let rx = Arc::clone(&rx);
                    thread::spawn(move || drain(&rx))
                })
                .collect();
            let co_senders: Vec<_> = (0..CO_SENDERS)
                .map(|id| {
                    let tx = tx.clone();
                    rt.spawn(move || feed(tx, TH_SENDERS + id))
                })
                .collect();
            let co_receivers: Vec<_> = (0..CO_RECEIVERS)
                .map(|_| {
                    let rx = Arc::clone(&rx);
                    rt.spawn(move || drain(&rx))
                })
                .collect();
            drop(tx); // only the senders' clones keep the channel open now

            // Join every party before asserting.
            let mut results = Vec::new();
            for h in co_senders {
                h.join().expect("sender coroutine panicked");
            }
            for t in th_senders {
                t.join().expect("sender thread panicked");
            }
            for h in co_receivers {
                results.push(h.join().expect("receiver coroutine panicked"));
            }
            for t in th_receivers {
                results.push(t.join().expect("receiver thread panicked"));
            }
            drop(rt);
            let count: u64 = results.iter().map(|r| r.0).sum();
            let sum: u64 = results.iter().map(|r| r.1).sum();
            let total = (CO_SENDERS + TH_SENDERS) * PER_SENDER;
            assert_eq!(count, total, "workers={workers}");
            assert_eq!(sum, total * (total - 1) / 2, "workers={workers}");
        });
    }
}

/// mioco #127: each blocking select registered every arm and each wake deregistered them all.
/// A `Select` kept across 100,000 iterations over three channels must register at most once per
/// channel, and deliver every message exactly once.
#[test]
fn lesson5_persistent_select_registers_once_per_channel() {
    const ITERATIONS: u64 = 100_000;
    for workers in [1, 2] {
        on_workers(workers, || {
            // Three flavours: one-slot, small bounded, unbounded.
            let (tx0, rx0) = sync_channel::<u64>(1);
            let (tx1, rx1) = sync_channel::<u64>(8);
            let (tx2, rx2) = channel::<u64>();
            let shares = [
                ITERATIONS / 3 + ITERATIONS % 3,
                ITERATIONS / 3,
                ITERATIONS / 3,
            ];
            // Producers hand their sender back through join, so no channel disconnects (and
            // turns always-ready) before the loop has received everything.
            let p0 = coact::spawn(move || {
                for i in 0..shares[0] {
                    tx0.send(i).unwrap();
                }
                tx0
            });
            let p1 = coact::spawn(move || {
                for i in 0..shares[1] {
                    tx1.send(i).unwrap();
                }
                tx1
            });
            let p2 = coact::spawn(move || {
                for i in 0..shares[2] {
                    tx2.send(i).unwrap();
                    if i % 16 == 0 {
                        coact::yield_now(); // let the selector catch up and park sometimes
                    }
                }
                tx2
            });

            let rxs = [rx0, rx1, rx2];
            let mut sel = Select::new();
            let idx: Vec<usize> = rxs.iter().map(|rx| sel.recv(rx)).collect();
            let mut counts = [0u64; 3];
            let mut sums = [0u64; 3];
            for _ in 0..ITERATIONS {
                let oper = sel.select();
                let k = idx
                    .iter()
                    .position(|&i| i == oper.index())
                    .expect("select returned an index it never handed out");
                let v = oper
                    .recv(&rxs[k])
                    .expect("producers keep their senders alive");
                // Each channel is FIFO: the values arrive as 0, 1, 2, ...
                assert_eq!(v, counts[k], "channel {k} out of order");
                counts[k] += 1;
                sums[k] += v;
            }
            let registrations = sel.registrations();
            drop(sel);
            let _senders = (p0.join().unwrap(), p1.join().unwrap(), p2.join().unwrap());
            for k in 0..3 {
                assert_eq!(counts[k], shares[k], "channel {k} count");
                assert_eq!(sums[k], shares[k] * (shares[k] - 1) / 2, "channel {k} sum");
                assert!(rxs[k].try_recv().is_err(), "channel {k} has extra messages");
            }
            assert!(
                registrations <= 3,
                "a persistent Select over 3 channels made {registrations} registrations"
            );
        });
    }
}

/// mioco 0.9-pre lost readiness that arrived while the fiber was outside `select`. Here a message
/// is sent (and acknowledged through a handshake) while the selecting coroutine is between two
/// selects; the next select must see it at once.
#[test]
fn lesson5_select_sees_readiness_that_arrived_between_selects() {
    for workers in [1, 2] {
        on_workers(workers, || {
            let (a_tx, a_rx) = channel::<u32>();
            let (b_tx, b_rx) = sync_channel::<u32>(1);
            let (go_tx, go_rx) = channel::<u32>();
            let (ack_tx, ack_rx) = channel::<()>();
            // The peer sends on `a` or `b` when told to, then acknowledges.
            let peer = coact::spawn(move || {
                for step in go_rx.iter() {
                    match step {
                        0 | 2 => a_tx.send(step).unwrap(),
                        _ => b_tx.send(step).unwrap(),
                    }
                    ack_tx.send(()).unwrap();
                }
            });
            let mut sel = Select::new();
            let ia = sel.recv(&a_rx);
            let ib = sel.recv(&b_rx);

            // Step 0: a normal blocking select, so the Select has registered and parked once.
            go_tx.send(0).unwrap();
            let oper = sel.select();
            assert_eq!(oper.index(), ia);
            assert_eq!(oper.recv(&a_rx), Ok(0));
            ack_rx.recv().unwrap();

            // Step 1: `b` becomes ready while we are outside select.
            go_tx.send(1).unwrap();
            ack_rx.recv().unwrap();
            let oper = sel
                .try_select()
                .expect("readiness that arrived between selects was lost (try_select)");
            assert_eq!(oper.index(), ib);
            assert_eq!(oper.recv(&b_rx), Ok(1));

            // Step 2: same for `a`, observed through select_timeout with a generous bound.
            go_tx.send(2).unwrap();
            ack_rx.recv().unwrap();
            let oper = sel
                .select_timeout(Duration::from_secs(10))
                .expect("readiness that arrived between selects was lost (select_timeout)");
            assert_eq!(oper.index(), ia);
            assert_eq!(oper.recv(&a_rx), Ok(2));

            // Nothing else is pending.
            assert!(sel.try_select().is_err());
            drop(go_tx);
            peer.join().unwrap();
        });
    }
}

/// Lesson 5 across threads: the readiness is produced by a plain thread while the coroutine is
/// outside select.
#[test]
fn lesson5_select_sees_readiness_from_a_thread_that_arrived_between_selects() {
    for workers in [1, 2] {
        let (a_tx, a_rx) = channel::<u32>();
        let (go_tx, go_rx) = channel::<u32>();
        let (ack_tx, ack_rx) = channel::<()>();
        let peer = thread::spawn(move || {
            for step in go_rx.iter() {
                a_tx.send(step).unwrap();
                ack_tx.send(()).unwrap();
            }
        });
        on_workers(workers, move || {
            let (_never_tx, never_rx) = channel::<u32>();
            let mut sel = Select::new();
            let ia = sel.recv(&a_rx);
            let _in = sel.recv(&never_rx);
            for step in 0..100 {
                go_tx.send(step).unwrap();
                ack_rx.recv().unwrap();
                let oper = sel
                    .try_select()
                    .expect("readiness from a thread that arrived between selects was lost");
                assert_eq!(oper.index(), ia);
                assert_eq!(oper.recv(&a_rx), Ok(step));
            }
            assert!(sel.registrations() <= 2);
        });
        peer.join().unwrap();
    }
}
