//! `coact::sync::oneshot`: one value, from coroutines and plain threads, on 1, 2 and 4 workers.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coact::sync::mpsc::{RecvTimeoutError, TryRecvError};
use coact::sync::oneshot;
use common::{bounded, on_workers, DropCounter, WORKER_COUNTS};

#[test]
fn a_value_sent_from_a_coroutine_reaches_a_waiting_coroutine() {
    for workers in WORKER_COUNTS {
        on_workers(workers, || {
            let (tx, rx) = oneshot::channel();
            let (started_tx, started_rx) = oneshot::channel::<()>();
            let receiver = coact::spawn(move || {
                started_tx.send(()).unwrap();
                rx.recv()
            });
            started_rx.recv().unwrap();
            tx.send(String::from("reply")).unwrap();
            assert_eq!(receiver.join().unwrap(), Ok(String::from("reply")));
        });
    }
}

#[test]
fn plain_threads_and_coroutines_exchange_both_ways() {
    for workers in WORKER_COUNTS {
        on_workers(workers, || {
            // Thread to coroutine.
            let (tx, rx) = oneshot::channel();
            let t = std::thread::spawn(move || tx.send(7u32).unwrap());
            assert_eq!(rx.recv(), Ok(7));
            t.join().unwrap();
            // Coroutine to thread.
            let (tx, rx) = oneshot::channel();
            let t = std::thread::spawn(move || rx.recv_timeout(Duration::from_secs(60)));
            tx.send(8u32).unwrap();
            assert_eq!(t.join().unwrap(), Ok(8));
        });
    }
    // Between two plain threads, no runtime at all.
    bounded(|| {
        let (tx, rx) = oneshot::channel();
        let t = std::thread::spawn(move || rx.recv());
        tx.send(9u32).unwrap();
        assert_eq!(t.join().unwrap(), Ok(9));
    });
}

#[test]
fn dropping_every_sender_unsent_wakes_the_receiver_with_an_error() {
    for workers in WORKER_COUNTS {
        on_workers(workers, || {
            let (tx, rx) = oneshot::channel::<u32>();
            let tx2 = tx.clone();
            let (started_tx, started_rx) = oneshot::channel::<()>();
            let receiver = coact::spawn(move || {
                started_tx.send(()).unwrap();
                rx.recv_timeout(Duration::from_secs(60))
            });
            started_rx.recv().unwrap();
            drop(tx);
            // One sender is still alive: the receiver keeps waiting until it goes too.
            assert!(!receiver.is_finished());
            std::thread::spawn(move || drop(tx2)).join().unwrap();
            assert_eq!(
                receiver.join().unwrap(),
                Err(RecvTimeoutError::Disconnected)
            );
        });
    }
}

#[test]
fn the_first_of_several_senders_wins() {
    on_workers(1, || {
        let (tx, rx) = oneshot::channel();
        let tx2 = tx.clone();
        assert!(!tx2.is_closed());
        tx.send(1u32).unwrap();
        assert!(tx2.is_closed());
        assert_eq!(tx2.send(2), Err(2));
        assert_eq!(rx.recv(), Ok(1));
        assert!(rx.recv().is_err(), "the one value was taken already");
    });
}

#[test]
fn try_recv_is_empty_then_the_value_then_disconnected() {
    let (tx, rx) = oneshot::channel();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(5u32).unwrap();
    assert_eq!(rx.try_recv(), Ok(5));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    let (tx, rx) = oneshot::channel::<u32>();
    drop(tx);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn a_timed_out_receiver_still_gets_a_later_value() {
    for workers in [1, 2] {
        on_workers(workers, || {
            let (tx, rx) = oneshot::channel();
            let start = Instant::now();
            assert_eq!(
                rx.recv_timeout(Duration::from_millis(30)),
                Err(RecvTimeoutError::Timeout)
            );
            assert!(start.elapsed() >= Duration::from_millis(30));
            // The timed-out wait withdrew itself: a send now neither wakes a stale waiter nor
            // loses the value.
            tx.send(3u32).unwrap();
            assert_eq!(rx.recv_timeout(Duration::from_secs(60)), Ok(3));
        });
    }
}

#[test]
fn a_send_to_a_dropped_receiver_gives_the_value_back_and_loses_nothing() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = oneshot::channel();
    drop(rx);
    assert!(tx.is_closed());
    let Err(back) = tx.send(DropCounter::new(&drops)) else {
        panic!("a send to a dropped receiver succeeded");
    };
    assert_eq!(drops.load(Ordering::SeqCst), 0, "the value came back whole");
    drop(back);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    // A value sent but never received is dropped with the receiver, once.
    let (tx, rx) = oneshot::channel();
    let keep = tx.clone();
    assert!(tx.send(DropCounter::new(&drops)).is_ok());
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    drop(keep);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

/// Many exchanges whose two ends run on different workers and plain threads, each receiver
/// waiting before its value is sent as often as not: every value arrives exactly once (a lost
/// wake-up would hang the test, which `on_workers` turns into a failure).
#[test]
fn many_exchanges_across_workers_and_threads_all_arrive() {
    const N: u64 = 2_000;
    for workers in [2, 4] {
        on_workers(workers, || {
            let (to_thread_tx, to_thread_rx) = std::sync::mpsc::channel::<oneshot::Sender<u64>>();
            let thread = std::thread::spawn(move || {
                for (i, tx) in to_thread_rx.into_iter().enumerate() {
                    tx.send(i as u64).unwrap();
                }
            });
            let mut handles = Vec::new();
            for part in 0..4u64 {
                let to_thread = to_thread_tx.clone();
                handles.push(coact::spawn(move || {
                    let mut sum = 0;
                    for i in 0..N {
                        let (tx, rx) = oneshot::channel();
                        if i % 2 == 0 {
                            // Answered by another coroutine, wherever it runs.
                            drop(coact::spawn(move || tx.send(part * N + i).unwrap())); // detached
                            sum += rx.recv().unwrap() - part * N;
                        } else {
                            to_thread.send(tx).unwrap();
                            let _ = rx.recv().unwrap();
                            sum += i;
                        }
                    }
                    sum
                }));
            }
            drop(to_thread_tx);
            let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            thread.join().unwrap();
            assert_eq!(total, 4 * (N * (N - 1) / 2));
        });
    }
}
