//! `coact::sync::mpmc`: every message reaches exactly one of many receivers, from coroutines
//! and plain threads, on 1, 2 and 4 workers; blocked receivers that leave the line (timeout,
//! cancellation, unwinding) leave it whole; disconnection from either side; and a selected
//! receive holds its message against the other receivers until it is completed or dropped.
//!
//! Ordering between parties is set by handshakes and joins, never by sleeps. Where a test wants
//! a coroutine parked before it acts, the coroutine says "ready" just before its blocking call
//! ([`spawn_ready`]): on one worker, a coroutine runs until it parks, so by the time the test's
//! coroutine has the word, the other is parked. On more workers either order gives the same
//! outcome; the handshake only chooses which path is tested, never whether the test passes.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use coact::select::Select;
use coact::sync::mpmc::{self, RecvError, RecvTimeoutError, SendError, TryRecvError};
use coact::sync::mpsc;
use common::{on_workers, DropCounter, WORKER_COUNTS};

/// A long bound for "this must succeed": only a hang would reach it.
const GENEROUS: Duration = Duration::from_secs(30);

/// Spawns `f`, which is about to block, after it has said so on `ready`.
fn spawn_ready<T: Send + 'static>(
    ready: &mpsc::Sender<()>,
    f: impl FnOnce() -> T + Send + 'static,
) -> coact::JoinHandle<T> {
    let ready = ready.clone();
    coact::spawn(move || {
        ready.send(()).unwrap();
        f()
    })
}

/// Waits for `n` coroutines of [`spawn_ready`] to be (on one worker: to have parked) in their
/// blocking call.
fn wait_ready(ready: &mpsc::Receiver<()>, n: usize) {
    assert_eq!(ready.iter().take(n).count(), n);
}

/// A receiver blocked in `recv`, and its id (to cancel it).
type Waiting = (
    coact::JoinHandle<Result<u32, RecvError>>,
    coact::CoroutineId,
);

/// Lines up `n` coroutines blocked in `rx.recv()`, in this order: on one worker each parks
/// before the next is spawned.
fn line_up(rx: &mpmc::Receiver<u32>, n: usize) -> Vec<Waiting> {
    let (ids_tx, ids) = mpsc::channel();
    (0..n)
        .map(|_| {
            let (rx, ids_tx) = (rx.clone(), ids_tx.clone());
            let h = coact::spawn(move || {
                ids_tx.send(coact::current_coroutine().unwrap()).unwrap();
                rx.recv()
            });
            (h, ids.recv().unwrap())
        })
        .collect()
}

#[test]
fn every_message_reaches_exactly_one_receiver() {
    const PRODUCERS: u64 = 4;
    const EACH: u64 = 2_500;
    for n in WORKER_COUNTS {
        let mut got = on_workers(n, || {
            let (tx, rx) = mpmc::sync_channel::<u64>(8);
            let (out_tx, out) = mpsc::channel::<Vec<u64>>();
            let mut consumers = Vec::new();
            for _ in 0..6 {
                let (rx, out_tx) = (rx.clone(), out_tx.clone());
                consumers.push(coact::spawn(move || {
                    out_tx.send(rx.iter().collect()).unwrap();
                }));
            }
            let mut threads = Vec::new();
            for _ in 0..2 {
                let (rx, out_tx) = (rx.clone(), out_tx.clone());
                threads.push(thread::spawn(move || {
                    out_tx.send(rx.iter().collect()).unwrap();
                }));
            }
            drop((rx, out_tx));
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|p| {
                    let tx = tx.clone();
                    coact::spawn(move || {
                        for i in 0..EACH {
                            tx.send(p * EACH + i).unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            for h in producers.into_iter().chain(consumers) {
                h.join().unwrap();
            }
            for t in threads {
                t.join().unwrap();
            }
            out.iter().flatten().collect::<Vec<u64>>()
        });
        got.sort_unstable();
        assert_eq!(
            got,
            (0..PRODUCERS * EACH).collect::<Vec<_>>(),
            "{n} workers"
        );
    }
}

#[test]
fn each_receiver_keeps_the_order_it_takes_messages_in() {
    // One producer: whatever subset a receiver gets, it gets it in sending order.
    for n in WORKER_COUNTS {
        let seqs = on_workers(n, || {
            let (tx, rx) = mpmc::sync_channel::<u32>(4);
            let takers: Vec<_> = (0..3)
                .map(|_| {
                    let rx = rx.clone();
                    coact::spawn(move || rx.iter().collect::<Vec<u32>>())
                })
                .collect();
            drop(rx);
            for i in 0..3_000 {
                tx.send(i).unwrap();
            }
            drop(tx);
            takers
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        for s in &seqs {
            assert!(s.windows(2).all(|w| w[0] < w[1]), "{n} workers: {s:?}");
        }
        assert_eq!(seqs.iter().map(Vec::len).sum::<usize>(), 3_000);
    }
}

#[test]
fn buffered_messages_outlive_the_senders_then_every_receiver_sees_the_end() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = mpmc::channel::<u32>();
            let rx2 = rx.clone();
            for i in 0..3 {
                tx.send(i).unwrap();
            }
            drop(tx);
            assert_eq!(rx.len(), 3);
            assert_eq!(rx2.recv(), Ok(0));
            assert_eq!(rx.recv(), Ok(1));
            assert_eq!(rx2.try_recv(), Ok(2));
            assert_eq!(rx.recv(), Err(RecvError));
            assert_eq!(rx2.try_recv(), Err(TryRecvError::Disconnected));
            assert_eq!(
                rx2.recv_timeout(GENEROUS),
                Err(RecvTimeoutError::Disconnected)
            );
        });
    }
}

#[test]
fn dropping_the_last_sender_wakes_every_blocked_receiver() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = mpmc::sync_channel::<u32>(0);
            let tx2 = tx.clone();
            let (ready_tx, ready) = mpsc::channel();
            let waiting: Vec<_> = (0..5)
                .map(|_| {
                    let rx = rx.clone();
                    spawn_ready(&ready_tx, move || rx.recv())
                })
                .collect();
            let from_thread = {
                let rx = rx.clone();
                thread::spawn(move || rx.recv_timeout(GENEROUS))
            };
            wait_ready(&ready, 5);
            drop(tx);
            // One sender is left: nobody may see the end yet.
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
            drop(tx2);
            for h in waiting {
                assert_eq!(h.join().unwrap(), Err(RecvError));
            }
            assert_eq!(
                from_thread.join().unwrap(),
                Err(RecvTimeoutError::Disconnected)
            );
        });
    }
}

#[test]
fn senders_fail_only_once_every_receiver_is_gone() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = mpmc::sync_channel::<u32>(1);
            let rx2 = rx.clone();
            drop(rx);
            tx.send(1).unwrap();
            // Full: a sender parks; dropping the last receiver fails it with its message.
            let (ready_tx, ready) = mpsc::channel();
            let parked = {
                let tx = tx.clone();
                spawn_ready(&ready_tx, move || tx.send(2))
            };
            wait_ready(&ready, 1);
            drop(rx2);
            assert_eq!(parked.join().unwrap(), Err(SendError(2)));
            assert_eq!(tx.send(3), Err(SendError(3)));
        });
    }
}

#[test]
fn a_rendezvous_send_returns_once_some_receiver_took_the_message() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = mpmc::sync_channel::<u64>(0);
            let taken = Arc::new(AtomicUsize::new(0));
            let takers: Vec<_> = (0..3)
                .map(|_| {
                    let (rx, taken) = (rx.clone(), taken.clone());
                    coact::spawn(move || {
                        let mut sum = 0;
                        for v in rx.iter() {
                            taken.fetch_add(1, Ordering::SeqCst);
                            sum += v;
                        }
                        sum
                    })
                })
                .collect();
            drop(rx);
            assert!(tx.is_full(), "a rendezvous channel is always full");
            for i in 1..=300u64 {
                tx.send(i).unwrap();
                // A receiver counts what it took before it can take more: at most one
                // message per receiver is taken but not yet counted.
                assert!(taken.load(Ordering::SeqCst) as u64 >= i.saturating_sub(3));
            }
            drop(tx);
            let sum: u64 = takers.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, 300 * 301 / 2);
            assert_eq!(taken.load(Ordering::SeqCst), 300);
        });
    }
}

#[test]
fn receivers_that_time_out_leave_the_line_whole() {
    // Timed-out receivers at the head, in the middle and at the tail of the line of blocked
    // receivers: the ones still waiting are served, the ones gone are not.
    on_workers(1, || {
        let (tx, rx) = mpmc::sync_channel::<u32>(0);
        let (ready_tx, ready) = mpsc::channel();
        let mut quitters = Vec::new();
        let mut stayers = Vec::new();
        for i in 0..6 {
            let rx = rx.clone();
            // Each parks before the next is spawned, so the line is in this order.
            if i % 2 == 0 {
                quitters.push(spawn_ready(&ready_tx, move || {
                    rx.recv_timeout(Duration::from_millis(20))
                }));
            } else {
                stayers.push(spawn_ready(&ready_tx, move || rx.recv()));
            }
            wait_ready(&ready, 1);
        }
        for q in quitters {
            assert_eq!(q.join().unwrap(), Err(RecvTimeoutError::Timeout));
        }
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        let mut got: Vec<u32> = stayers
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
    });
}

#[test]
fn a_cancelled_receiver_leaves_the_line_whole() {
    on_workers(1, || {
        let (tx, rx) = mpmc::sync_channel::<u32>(0);
        let handles = line_up(&rx, 3);
        handles[1].1.cancel();
        let handles: Vec<_> = handles.into_iter().map(|(h, _)| h).collect();
        let mut handles = handles.into_iter();
        let (first, middle, last) = (
            handles.next().unwrap(),
            handles.next().unwrap(),
            handles.next().unwrap(),
        );
        assert!(middle.join().is_err(), "the cancelled receiver unwinds");
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        let mut got = [
            first.join().unwrap().unwrap(),
            last.join().unwrap().unwrap(),
        ];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}

#[test]
fn receivers_parked_when_the_runtime_ends_are_unwound() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let (tx, rx) = mpmc::sync_channel::<u32>(0);
    on_workers(2, move || {
        let (started_tx, started) = mpsc::channel();
        for _ in 0..8 {
            let (rx, started_tx, d) = (rx.clone(), started_tx.clone(), d.clone());
            // Detached: a join would wait for the runtime's end.
            let _ = coact::spawn(move || {
                let _counted = DropCounter::new(&d);
                started_tx.send(()).unwrap();
                let _ = rx.recv();
            });
        }
        assert_eq!(started.iter().take(8).count(), 8);
    });
    assert_eq!(drops.load(Ordering::SeqCst), 8);
    // The line is empty again: nobody takes a rendezvous message.
    assert_eq!(
        tx.try_send(1),
        Err(coact::sync::mpmc::TrySendError::Disconnected(1))
    );
}

#[test]
fn a_selected_receive_holds_its_message_against_other_receivers() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = mpmc::sync_channel::<u32>(4);
            let other = rx.clone();
            tx.send(7).unwrap();
            let mut sel = Select::new();
            let i = sel.recv(&rx);
            let op = sel.select();
            assert_eq!(op.index(), i);
            // Held: the other receiver finds nothing it may take, though the message waits.
            assert_eq!(other.try_recv(), Err(TryRecvError::Empty));
            assert_eq!(other.len(), 1);
            assert_eq!(op.recv(&rx), Ok(7));
            // `ready` holds nothing: the message stays free for anyone.
            tx.send(8).unwrap();
            assert_eq!(sel.ready(), i);
            assert_eq!(other.try_recv(), Ok(8));
        });
    }
}

#[test]
fn a_held_message_goes_to_a_blocked_receiver_when_its_holder_unwinds() {
    on_workers(1, || {
        let (tx, rx) = mpmc::sync_channel::<u32>(1);
        let (ready_tx, ready) = mpsc::channel();
        let (held_tx, held) = mpsc::channel::<()>();
        let (go_tx, go) = mpsc::channel::<()>();
        let holder = {
            let rx = rx.clone();
            coact::spawn(move || {
                let mut sel = Select::new();
                sel.recv(&rx);
                let _op = sel.select();
                held_tx.send(()).unwrap();
                go.recv().unwrap();
                panic!("the holder fails before completing its receive");
            })
        };
        tx.send(5).unwrap();
        held.recv().unwrap();
        // Blocked: the only message is held.
        let waiter = {
            let rx = rx.clone();
            spawn_ready(&ready_tx, move || rx.recv_timeout(GENEROUS))
        };
        wait_ready(&ready, 1);
        go_tx.send(()).unwrap();
        assert!(holder.join().is_err());
        assert_eq!(waiter.join().unwrap(), Ok(5));
    });
}

#[test]
fn selected_sends_claim_one_blocked_receiver_each() {
    on_workers(1, || {
        let (tx, rx) = mpmc::sync_channel::<u32>(0);
        let (ready_tx, ready) = mpsc::channel();
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                spawn_ready(&ready_tx, move || rx.recv())
            })
            .collect();
        wait_ready(&ready, 2);
        let mut first = Select::new();
        first.send(&tx);
        let mut second = Select::new();
        second.send(&tx);
        let a = first.select();
        let b = second.select();
        a.send(&tx, 1).unwrap();
        b.send(&tx, 2).unwrap();
        let mut got: Vec<u32> = takers
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}

#[test]
fn a_claim_on_a_cancelled_receiver_passes_to_the_next_in_line() {
    on_workers(1, || {
        let (tx, rx) = mpmc::sync_channel::<u32>(0);
        let takers = line_up(&rx, 2);
        let mut sel = Select::new();
        sel.send(&tx);
        // Claims the first receiver in line.
        let op = sel.select();
        let mut takers = takers.into_iter();
        let (first, first_id) = takers.next().unwrap();
        let (second, _) = takers.next().unwrap();
        first_id.cancel();
        assert!(first.join().is_err(), "the claimed receiver was cancelled");
        op.send(&tx, 7).unwrap();
        assert_eq!(second.join().unwrap(), Ok(7));
    });
}

#[test]
fn a_message_handed_to_a_receiver_cancelled_before_it_ran_goes_back() {
    on_workers(1, || {
        let (tx, rx) = mpmc::sync_channel::<u32>(2);
        // Parked (one worker): the send hands the message to it, and it has not run since.
        let (first, first_id) = line_up(&rx, 1).pop().unwrap();
        let other = rx;
        tx.send(1).unwrap();
        first_id.cancel();
        assert!(first.join().is_err(), "the receiver was cancelled");
        // Not lost with it: the next receiver gets it, ahead of later messages.
        tx.send(2).unwrap();
        assert_eq!(other.try_recv(), Ok(1));
        assert_eq!(other.try_recv(), Ok(2));
    });
}

#[test]
fn select_macro_takes_from_an_mpmc_receiver() {
    on_workers(2, || {
        let (tx, rx) = mpmc::channel::<u32>();
        let (_keep, idle) = mpsc::channel::<u32>();
        tx.send(3).unwrap();
        let got = coact::select! {
            recv(idle) -> _ => unreachable!("nothing was sent there"),
            recv(rx) -> v => v.unwrap(),
        };
        assert_eq!(got, 3);
    });
}

#[test]
fn mpsc_receiver_claimed_by_a_dropped_selected_send_gets_a_message_buffered_meanwhile() {
    // A selected send claims the blocked receiver; a plain send buffers meanwhile; the
    // selected send's holder unwinds without completing. The receiver must be handed the
    // buffered message, not parked on with it waiting.
    on_workers(1, || {
        let (tx, rx) = mpsc::sync_channel::<u32>(1);
        let (ready_tx, ready) = mpsc::channel();
        let receiver = spawn_ready(&ready_tx, move || rx.recv_timeout(GENEROUS));
        wait_ready(&ready, 1);
        let (claimed_tx, claimed) = mpsc::channel::<()>();
        let (go_tx, go) = mpsc::channel::<()>();
        let holder = {
            let tx = tx.clone();
            coact::spawn(move || {
                let mut sel = Select::new();
                sel.send(&tx);
                let _op = sel.select();
                claimed_tx.send(()).unwrap();
                go.recv().unwrap();
                panic!("the holder fails before completing its send");
            })
        };
        claimed.recv().unwrap();
        tx.try_send(9).unwrap();
        go_tx.send(()).unwrap();
        assert!(holder.join().is_err());
        assert_eq!(receiver.join().unwrap(), Ok(9));
    });
}

#[test]
fn many_receivers_of_every_kind_under_load_count_exactly() {
    const PRODUCERS: u64 = 3;
    const EACH: u64 = 10_000;
    on_workers(4, || {
        let (tx, rx) = mpmc::sync_channel::<u64>(2);
        let (sum_tx, sums) = mpsc::channel::<(u64, u64)>();
        let mut handles = Vec::new();
        for k in 0..8 {
            let (rx, sum_tx) = (rx.clone(), sum_tx.clone());
            handles.push(coact::spawn(move || {
                let (mut count, mut sum) = (0, 0);
                let mut take = |v: u64| {
                    count += 1;
                    sum += v;
                };
                match k % 3 {
                    0 => rx.iter().for_each(take),
                    1 => loop {
                        match rx.recv_timeout(Duration::from_millis(1)) {
                            Ok(v) => take(v),
                            Err(RecvTimeoutError::Timeout) => {}
                            Err(RecvTimeoutError::Disconnected) => break,
                        }
                    },
                    _ => {
                        let mut sel = Select::new();
                        sel.recv(&rx);
                        while let Ok(v) = sel.select().recv(&rx) {
                            take(v);
                        }
                    }
                }
                sum_tx.send((count, sum)).unwrap();
            }));
        }
        drop((rx, sum_tx));
        for p in 0..PRODUCERS {
            let tx = tx.clone();
            handles.push(coact::spawn(move || {
                for i in 0..EACH {
                    tx.send(p * EACH + i).unwrap();
                }
            }));
        }
        drop(tx);
        for h in handles {
            h.join().unwrap();
        }
        let (count, sum) = sums
            .iter()
            .fold((0, 0), |(c, s), (c2, s2)| (c + c2, s + s2));
        let n = PRODUCERS * EACH;
        assert_eq!((count, sum), (n, n * (n - 1) / 2));
    });
}

#[test]
fn a_dropped_selected_operation_on_mpmc_is_reported_and_frees_its_message() {
    on_workers(1, || {
        let (tx, rx) = mpmc::channel::<u32>();
        tx.send(4).unwrap();
        let mut sel = Select::new();
        sel.recv(&rx);
        let dropped = panic::catch_unwind(AssertUnwindSafe(|| drop(sel.select())));
        assert!(
            dropped.is_err(),
            "dropping a selected operation is a bug, reported"
        );
        assert_eq!(rx.try_recv(), Ok(4));
    });
}
