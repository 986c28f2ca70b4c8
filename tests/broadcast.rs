//! `coact::sync::broadcast`: every receiver gets every message in order, from coroutines and
//! plain threads, on 1, 2 and 4 workers; a receiver that falls behind is told exactly how much
//! it missed; new receivers start at the newest end; the channel closes for receivers once
//! every sender is gone and they have taken what is left; blocked receivers are woken by a
//! send, by the end, by their timeout, and unwound when the runtime ends; and a receiver works
//! in `Select` and `select!`.
//!
//! Ordering between parties comes from handshakes and joins, never from sleeps.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use coact::select::Select;
use coact::sync::broadcast::{self, RecvError, RecvTimeoutError, SendError, TryRecvError};
use coact::sync::mpsc;
use common::{on_workers, DropCounter, WORKER_COUNTS};

/// A long bound for "this must succeed": only a hang would reach it.
const GENEROUS: Duration = Duration::from_secs(30);

/// Takes messages until the channel closes; a lag fails the test.
fn take_all(rx: broadcast::Receiver<u32>) -> Vec<u32> {
    let mut got = Vec::new();
    loop {
        match rx.recv() {
            Ok(v) => got.push(v),
            Err(RecvError::Closed) => return got,
            Err(RecvError::Lagged(n)) => panic!("lagged by {n} with room for every message"),
        }
    }
}

#[test]
fn every_receiver_gets_every_message_in_order() {
    const N: u32 = 2_000;
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, first) = broadcast::channel::<u32>(N as usize);
            let coroutines: Vec<_> = (0..4)
                .map(|_| {
                    let rx = tx.subscribe();
                    coact::spawn(move || take_all(rx))
                })
                .collect();
            let from_thread = {
                let rx = tx.subscribe();
                thread::spawn(move || take_all(rx))
            };
            let first = coact::spawn(move || take_all(first));
            assert_eq!(tx.receiver_count(), 6);
            for i in 0..N {
                assert_eq!(tx.send(i), Ok(6));
            }
            drop(tx);
            let want: Vec<u32> = (0..N).collect();
            for h in coroutines.into_iter().chain([first]) {
                assert_eq!(h.join().unwrap(), want);
            }
            assert_eq!(from_thread.join().unwrap(), want);
        });
    }
}

#[test]
fn a_receiver_that_falls_behind_is_told_how_much_it_missed() {
    on_workers(1, || {
        let (tx, rx) = broadcast::channel::<u32>(4);
        for i in 0..10 {
            tx.send(i).unwrap();
        }
        assert_eq!(tx.len(), 4);
        assert_eq!(rx.len(), 4, "what it missed is not counted");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Lagged(6)));
        assert_eq!(rx.recv(), Ok(6));
        tx.send(10).unwrap();
        tx.send(11).unwrap();
        // 7 and 8 are dropped now (the channel keeps 9..=12); the receiver is told once.
        tx.send(12).unwrap();
        assert_eq!(rx.recv_timeout(GENEROUS), Err(RecvTimeoutError::Lagged(2)));
        assert_eq!(
            (0..4).map(|_| rx.recv().unwrap()).collect::<Vec<_>>(),
            [9, 10, 11, 12]
        );
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        drop(tx);
        assert_eq!(rx.recv(), Err(RecvError::Closed));
    });
}

#[test]
fn new_receivers_start_at_the_newest_end() {
    on_workers(1, || {
        let (tx, rx) = broadcast::channel::<&str>(8);
        tx.send("before").unwrap();
        let late = tx.subscribe();
        let later = rx.resubscribe();
        tx.send("after").unwrap();
        assert_eq!(rx.recv(), Ok("before"));
        assert_eq!(rx.recv(), Ok("after"));
        assert_eq!(late.recv(), Ok("after"));
        assert_eq!(later.try_recv(), Ok("after"));
        assert!(late.same_channel(&later) && tx.same_channel(&tx.clone()));
        assert!(late.is_empty());
    });
}

#[test]
fn a_send_with_no_receiver_fails_and_gives_the_message_back() {
    let (tx, rx) = broadcast::channel::<String>(2);
    drop(rx);
    assert_eq!(tx.receiver_count(), 0);
    assert_eq!(tx.send("lost?".into()), Err(SendError("lost?".to_string())));
    let rx = tx.subscribe();
    assert_eq!(tx.send("kept".into()), Ok(1));
    assert_eq!(rx.try_recv().as_deref(), Ok("kept"));
}

#[test]
fn a_blocked_receiver_is_woken_by_a_send_and_by_the_end() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = broadcast::channel::<u32>(4);
            let other = tx.subscribe();
            let (ready_tx, ready) = mpsc::channel();
            let waiting = coact::spawn(move || {
                ready_tx.send(()).unwrap();
                let first = rx.recv();
                let second = rx.recv();
                (first, second)
            });
            let on_thread = thread::spawn(move || other.recv_timeout(GENEROUS));
            ready.recv().unwrap();
            tx.send(1).unwrap();
            let tx2 = tx.clone();
            drop(tx);
            // One sender is left: the receivers still wait.
            drop(tx2);
            assert_eq!(waiting.join().unwrap(), (Ok(1), Err(RecvError::Closed)));
            assert_eq!(on_thread.join().unwrap(), Ok(1));
        });
    }
}

#[test]
fn a_receive_with_a_timeout_gives_up_on_time() {
    on_workers(2, || {
        let (_tx, rx) = broadcast::channel::<u32>(4);
        let start = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(20)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(
            rx.recv_deadline(Instant::now()),
            Err(RecvTimeoutError::Timeout)
        );
    });
}

#[test]
fn receivers_parked_when_the_runtime_ends_are_unwound() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let (tx, rx) = broadcast::channel::<u32>(4);
    on_workers(2, move || {
        let (started_tx, started) = mpsc::channel();
        for _ in 0..6 {
            let (rx, started_tx, d) = (rx.resubscribe(), started_tx.clone(), d.clone());
            // Detached: a join would wait for the runtime's end.
            let _ = coact::spawn(move || {
                let _counted = DropCounter::new(&d);
                started_tx.send(()).unwrap();
                let _ = rx.recv();
            });
        }
        assert_eq!(started.iter().take(6).count(), 6);
    });
    assert_eq!(drops.load(Ordering::SeqCst), 6);
    // Their receivers went with them, and the first with the closure that held it.
    assert_eq!(tx.receiver_count(), 0);
}

#[test]
fn messages_are_dropped_once_overwritten_or_with_the_channel() {
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let (tx, rx) = broadcast::channel::<Arc<DropCounter>>(3);
        for _ in 0..5 {
            tx.send(Arc::new(DropCounter::new(&drops))).unwrap();
        }
        assert_eq!(drops.load(Ordering::SeqCst), 2, "two overwritten");
        assert!(matches!(rx.recv(), Err(RecvError::Lagged(2))));
        let taken = rx.recv().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 2, "a clone keeps it alive");
        drop(taken);
    }
    assert_eq!(drops.load(Ordering::SeqCst), 5);
}

#[test]
fn a_persistent_select_waits_on_a_broadcast_receiver_and_a_channel() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = broadcast::channel::<u32>(64);
            let (ctl_tx, ctl) = mpsc::channel::<&str>();
            let listener = coact::spawn(move || {
                let mut sel = Select::new();
                let b = sel.recv(&rx);
                let c = sel.recv(&ctl);
                let (mut got, mut ctl_seen) = (Vec::new(), Vec::new());
                loop {
                    let op = sel.select();
                    match op.index() {
                        i if i == b => match op.recv(&rx) {
                            Ok(v) => got.push(v),
                            Err(RecvError::Closed) => break,
                            Err(RecvError::Lagged(n)) => panic!("lagged by {n}"),
                        },
                        i if i == c => ctl_seen.push(op.recv(&ctl).unwrap()),
                        _ => unreachable!(),
                    }
                }
                (got, ctl_seen, sel.registrations())
            });
            for i in 0..50 {
                tx.send(i).unwrap();
                if i % 10 == 0 {
                    ctl_tx.send("tick").unwrap();
                }
            }
            drop(tx);
            let (got, ctl_seen, registrations) = listener.join().unwrap();
            assert_eq!(got, (0..50).collect::<Vec<_>>());
            assert_eq!(ctl_seen.len(), 5);
            assert!(registrations <= 2, "registered once per operation");
        });
    }
}

#[test]
fn select_reports_a_lag_and_the_end() {
    on_workers(1, || {
        let (tx, rx) = broadcast::channel::<u32>(2);
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        let next = |rx: &broadcast::Receiver<u32>| {
            coact::select! {
                recv(rx) -> r => r,
                default(GENEROUS) => panic!("a broadcast receive timed out"),
            }
        };
        assert_eq!(next(&rx), Err(RecvError::Lagged(3)));
        assert_eq!(next(&rx), Ok(3));
        assert_eq!(next(&rx), Ok(4));
        drop(tx);
        assert_eq!(next(&rx), Err(RecvError::Closed));
    });
}

#[test]
fn under_load_each_receiver_accounts_for_every_message() {
    // A small capacity and busy receivers: each may lag, but what it takes plus what it is
    // told it missed is exactly what was sent, and what it takes is in order.
    const N: u64 = 20_000;
    on_workers(4, || {
        let (tx, rx) = broadcast::channel::<u64>(32);
        let receivers: Vec<_> = (0..6)
            .map(|k| {
                let rx = rx.resubscribe();
                coact::spawn(move || {
                    let (mut taken, mut missed, mut last) = (0u64, 0u64, None::<u64>);
                    let mut sel = Select::new();
                    sel.recv(&rx);
                    loop {
                        let r = match k % 3 {
                            0 => rx.recv(),
                            1 => match rx.recv_timeout(Duration::from_millis(1)) {
                                Ok(v) => Ok(v),
                                Err(RecvTimeoutError::Timeout) => continue,
                                Err(RecvTimeoutError::Lagged(n)) => Err(RecvError::Lagged(n)),
                                Err(RecvTimeoutError::Closed) => Err(RecvError::Closed),
                            },
                            _ => sel.select().recv(&rx),
                        };
                        match r {
                            Ok(v) => {
                                if let Some(l) = last {
                                    assert!(v > l, "out of order: {v} after {l}");
                                }
                                last = Some(v);
                                taken += 1;
                            }
                            Err(RecvError::Lagged(n)) => missed += n,
                            Err(RecvError::Closed) => return (taken, missed),
                        }
                    }
                })
            })
            .collect();
        drop(rx);
        let sender = coact::spawn(move || {
            for i in 0..N {
                tx.send(i).unwrap();
                if i % 64 == 0 {
                    coact::yield_now();
                }
            }
        });
        sender.join().unwrap();
        for h in receivers {
            let (taken, missed) = h.join().unwrap();
            assert_eq!(taken + missed, N);
        }
    });
}
