//! `coact::sync::mpsc` keeps `std::sync::mpsc`'s semantics when used from coroutines, from plain
//! threads, and from both at once, on 1, 2 and 4 workers.
//!
//! Written from the documented behaviour of `std::sync::mpsc` (not ported from std's or
//! crossbeam's test suites). Covered: both constructors, FIFO order, the capacity-0 rendezvous, a
//! full bounded channel parking its sender, the `try_*` error grid (errors give the message back),
//! `recv_timeout`/`recv_deadline`, disconnection from either side (buffered messages are still
//! delivered; parked parties are woken), the three iterators, `Sender` clones, destructors of
//! buffered messages, and `SyncSender::send_timeout`.
//!
//! Ordering between parties is always established with handshakes, never with sleeps; timeouts
//! are only checked from below (elapsed >= timeout) or against very generous bounds.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use coact::sync::mpsc::{
    channel, sync_channel, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use common::{on_workers, DropCounter, WORKER_COUNTS};

/// A long bound for "this must succeed": only a hang would reach it.
const GENEROUS: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Basics and order
// ---------------------------------------------------------------------------------------------

#[test]
fn channel_send_then_recv_in_one_coroutine() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = channel::<String>();
            tx.send("one".to_string()).unwrap();
            tx.send("two".to_string()).unwrap();
            assert_eq!(rx.recv().unwrap(), "one");
            assert_eq!(rx.try_recv().unwrap(), "two");
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        });
    }
}

#[test]
fn channel_between_two_coroutines() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = channel::<u32>();
            let consumer = coact::spawn(move || rx.recv().unwrap() + rx.recv().unwrap());
            tx.send(40).unwrap();
            tx.send(2).unwrap();
            assert_eq!(consumer.join().unwrap(), 42);
        });
    }
}

#[test]
fn sync_channel_within_capacity_does_not_block() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = sync_channel::<u32>(3);
            tx.send(1).unwrap();
            tx.send(2).unwrap();
            tx.try_send(3).unwrap();
            assert!(matches!(tx.try_send(4), Err(TrySendError::Full(4))));
            assert_eq!(rx.recv(), Ok(1));
            assert_eq!(rx.recv(), Ok(2));
            assert_eq!(rx.recv(), Ok(3));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        });
    }
}

#[test]
fn messages_arrive_in_send_order_between_coroutines() {
    const N: u32 = 2_000;
    for n in WORKER_COUNTS {
        on_workers(n, || {
            for capacity in [None, Some(0), Some(1), Some(3)] {
                let (send, rx): (Box<dyn Fn(u32) + Send>, _) = match capacity {
                    None => {
                        let (tx, rx) = channel();
                        (Box::new(move |v| tx.send(v).unwrap()), rx)
                    }
                    Some(c) => {
                        let (tx, rx) = sync_channel(c);
                        (Box::new(move |v| tx.send(v).unwrap()), rx)
                    }
                };
                let producer = coact::spawn(move || (0..N).for_each(send));
                for expected in 0..N {
                    assert_eq!(rx.recv(), Ok(expected), "capacity {capacity:?}");
                }
                producer.join().unwrap();
                assert_eq!(rx.recv(), Err(RecvError), "capacity {capacity:?}");
            }
        });
    }
}

#[test]
fn order_is_kept_per_sender_with_many_senders() {
    const SENDERS: usize = 8;
    const EACH: usize = 300;
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = sync_channel::<(usize, usize)>(4);
            let producers: Vec<_> = (0..SENDERS)
                .map(|s| {
                    let tx = tx.clone();
                    coact::spawn(move || (0..EACH).for_each(|i| tx.send((s, i)).unwrap()))
                })
                .collect();
            drop(tx);
            let mut next = [0usize; SENDERS];
            for (s, i) in rx.iter() {
                assert_eq!(i, next[s], "sender {s} out of order");
                next[s] += 1;
            }
            assert_eq!(next, [EACH; SENDERS]);
            producers.into_iter().for_each(|p| p.join().unwrap());
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Coroutines and plain threads mixed
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_thread_sends_to_coroutine_in_order() {
    const N: u64 = 5_000;
    for n in WORKER_COUNTS {
        for capacity in [0, 1, 16] {
            let (tx, rx) = sync_channel::<u64>(capacity);
            let producer = thread::spawn(move || (0..N).for_each(|i| tx.send(i).unwrap()));
            let received = on_workers(n, move || {
                let mut expected = 0;
                for v in rx.iter() {
                    assert_eq!(v, expected);
                    expected += 1;
                }
                expected
            });
            producer.join().unwrap();
            assert_eq!(received, N, "workers={n} capacity={capacity}");
        }
    }
}

#[test]
fn coroutine_sends_to_plain_thread_in_order() {
    const N: u64 = 5_000;
    for n in WORKER_COUNTS {
        for capacity in [None, Some(0), Some(2)] {
            let (tx, rx) = channel::<u64>();
            let (stx, srx) = sync_channel::<u64>(capacity.unwrap_or(0));
            let consumer = thread::spawn(move || {
                let rx_iter: Box<dyn Iterator<Item = u64>> = match capacity {
                    None => Box::new(rx.into_iter()),
                    Some(_) => Box::new(srx.into_iter()),
                };
                let mut expected = 0;
                for v in rx_iter {
                    assert_eq!(v, expected);
                    expected += 1;
                }
                expected
            });
            on_workers(n, move || {
                for i in 0..N {
                    match capacity {
                        None => tx.send(i).unwrap(),
                        Some(_) => stx.send(i).unwrap(),
                    }
                }
            });
            assert_eq!(
                consumer.join().unwrap(),
                N,
                "workers={n} capacity={capacity:?}"
            );
        }
    }
}

#[test]
fn many_threads_and_coroutines_send_to_one_coroutine() {
    const EACH: u64 = 1_000;
    for n in WORKER_COUNTS {
        let (tx, rx) = channel::<u64>();
        let threads: Vec<_> = (0..3)
            .map(|t| {
                let tx = tx.clone();
                thread::spawn(move || (0..EACH).for_each(|i| tx.send(t * EACH + i).unwrap()))
            })
            .collect();
        let (count, sum) = on_workers(n, move || {
            let coroutines: Vec<_> = (3..6)
                .map(|c| {
                    let tx = tx.clone();
                    coact::spawn(move || (0..EACH).for_each(|i| tx.send(c * EACH + i).unwrap()))
                })
                .collect();
            drop(tx);
            let (mut count, mut sum) = (0u64, 0u64);
            for v in rx.iter() {
                count += 1;
                sum += v;
            }
            coroutines.into_iter().for_each(|h| h.join().unwrap());
            (count, sum)
        });
        threads.into_iter().for_each(|t| t.join().unwrap());
        let total = 6 * EACH;
        assert_eq!(count, total, "workers={n}");
        assert_eq!(sum, total * (total - 1) / 2, "workers={n}");
    }
}

// ---------------------------------------------------------------------------------------------
// Capacity 0 rendezvous and full channels
// ---------------------------------------------------------------------------------------------

/// The sender reports "before" and "after" its rendezvous `send` on a progress channel; the
/// receiver, having seen "before", switches many times and must still not see "after" until it
/// has itself received.
#[test]
fn zero_capacity_send_completes_only_when_received() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = sync_channel::<u32>(0);
            let (progress_tx, progress) = channel::<&'static str>();
            let sent = Arc::new(AtomicBool::new(false));
            let sent2 = Arc::clone(&sent);
            let sender = coact::spawn(move || {
                progress_tx.send("before").unwrap();
                tx.send(7).unwrap();
                sent2.store(true, Ordering::SeqCst);
                progress_tx.send("after").unwrap();
            });
            assert_eq!(progress.recv(), Ok("before"));
            for _ in 0..200 {
                coact::yield_now();
                assert_eq!(
                    progress.try_recv(),
                    Err(TryRecvError::Empty),
                    "send finished unreceived"
                );
                assert!(!sent.load(Ordering::SeqCst), "send finished unreceived");
            }
            assert_eq!(rx.recv(), Ok(7));
            assert_eq!(progress.recv(), Ok("after"));
            sender.join().unwrap();
        });
    }
}

#[test]
fn try_send_from_moves_what_fits_in_order_and_no_more() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            // A bound of 3: three of five move, the rest stay, in order.
            let (tx, rx) = sync_channel::<u32>(3);
            let mut batch: std::collections::VecDeque<u32> = (1..=5).collect();
            assert_eq!(tx.try_send_from(&mut batch), Ok(3));
            assert_eq!(batch, [4, 5]);
            assert_eq!(
                tx.try_send_from(&mut batch),
                Ok(0),
                "no room, nothing moves"
            );
            assert_eq!((rx.recv(), rx.recv()), (Ok(1), Ok(2)));
            assert_eq!(tx.try_send_from(&mut batch), Ok(2));
            assert!(batch.is_empty());
            assert_eq!(rx.try_iter().collect::<Vec<_>>(), [3, 4, 5]);

            // A rendezvous: one message goes to a receiver blocked in `recv`, and only one.
            let (tx, rx) = sync_channel::<u32>(0);
            let receiver = coact::spawn(move || rx.recv());
            let mut batch: std::collections::VecDeque<u32> = (10..13).collect();
            let mut tries = 0;
            while tx.try_send_from(&mut batch) == Ok(0) {
                tries += 1;
                assert!(tries < 100_000, "the receiver never blocked");
                coact::yield_now();
            }
            assert_eq!(batch, [11, 12]);
            assert_eq!(receiver.join().unwrap(), Ok(10));

            // Once the receiver is gone, nothing moves.
            assert!(tx.try_send_from(&mut batch).is_err());
            assert_eq!(batch, [11, 12]);
        });
    }
}

/// Same rendezvous with a plain thread on each side in turn.
#[test]
fn zero_capacity_rendezvous_between_thread_and_coroutine() {
    for n in WORKER_COUNTS {
        // Thread sends, coroutine receives.
        let (tx, rx) = sync_channel::<u32>(0);
        let (progress_tx, progress) = channel::<&'static str>();
        let sender = thread::spawn(move || {
            progress_tx.send("before").unwrap();
            tx.send(11).unwrap();
            progress_tx.send("after").unwrap();
        });
        on_workers(n, move || {
            assert_eq!(progress.recv(), Ok("before"));
            for _ in 0..200 {
                coact::yield_now();
                assert_eq!(
                    progress.try_recv(),
                    Err(TryRecvError::Empty),
                    "send finished unreceived"
                );
            }
            assert_eq!(rx.recv(), Ok(11));
            assert_eq!(progress.recv(), Ok("after"));
        });
        sender.join().unwrap();

        // Coroutine sends, thread receives.
        let (tx, rx) = sync_channel::<u32>(0);
        let (progress_tx, progress) = channel::<&'static str>();
        let (go_tx, go) = channel::<()>();
        let receiver = thread::spawn(move || {
            assert_eq!(progress.recv(), Ok("before"));
            for _ in 0..50 {
                thread::yield_now();
                assert_eq!(
                    progress.try_recv(),
                    Err(TryRecvError::Empty),
                    "send finished unreceived"
                );
            }
            go_tx.send(()).unwrap();
            let v = rx.recv().unwrap();
            assert_eq!(progress.recv(), Ok("after"));
            v
        });
        on_workers(n, move || {
            progress_tx.send("before").unwrap();
            // Park in a rendezvous send; the thread receives only after its own checks.
            tx.send(12).unwrap();
            progress_tx.send("after").unwrap();
            go.recv().unwrap();
        });
        assert_eq!(receiver.join().unwrap(), 12, "workers={n}");
    }
}

#[test]
fn zero_capacity_try_send_without_waiting_receiver_is_full() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = sync_channel::<String>(0);
            match tx.try_send("x".to_string()) {
                Err(TrySendError::Full(msg)) => assert_eq!(msg, "x"),
                other => panic!("expected Full(\"x\"), got {other:?}"),
            }
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        });
    }
}

#[test]
fn full_sync_channel_parks_sender_until_recv() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = sync_channel::<u32>(2);
            let (progress_tx, progress) = channel::<&'static str>();
            let sender = coact::spawn(move || {
                tx.send(0).unwrap();
                tx.send(1).unwrap();
                progress_tx.send("full").unwrap();
                tx.send(2).unwrap(); // parks: no room
                progress_tx.send("sent 2").unwrap();
            });
            assert_eq!(progress.recv(), Ok("full"));
            for _ in 0..200 {
                coact::yield_now();
                assert_eq!(
                    progress.try_recv(),
                    Err(TryRecvError::Empty),
                    "sent into a full channel"
                );
            }
            assert_eq!(rx.recv(), Ok(0)); // frees one slot: the sender must be woken
            assert_eq!(progress.recv(), Ok("sent 2"));
            assert_eq!(rx.recv(), Ok(1));
            assert_eq!(rx.recv(), Ok(2));
            sender.join().unwrap();
            assert_eq!(rx.recv(), Err(RecvError));
        });
    }
}

/// A plain thread blocked on a full channel is released by a coroutine's `recv`, and a coroutine
/// parked on a full channel is released by a plain thread's `recv`.
#[test]
fn full_sync_channel_between_thread_and_coroutine() {
    const N: u32 = 2_000;
    for n in WORKER_COUNTS {
        let (tx, rx) = sync_channel::<u32>(1);
        let (back_tx, back_rx) = sync_channel::<u32>(1);
        // The thread forwards everything back; both directions keep filling one-slot channels.
        let relay = thread::spawn(move || {
            for v in rx.iter() {
                back_tx.send(v * 2).unwrap();
            }
        });
        let sum = on_workers(n, move || {
            let producer = coact::spawn(move || (0..N).for_each(|i| tx.send(i).unwrap()));
            let mut sum = 0u64;
            for expected in 0..N {
                let v = back_rx.recv().unwrap();
                assert_eq!(v, expected * 2);
                sum += u64::from(v);
            }
            producer.join().unwrap();
            sum
        });
        relay.join().unwrap();
        assert_eq!(sum, u64::from(N) * u64::from(N - 1), "workers={n}");
    }
}

// ---------------------------------------------------------------------------------------------
// The try_* error grid
// ---------------------------------------------------------------------------------------------

#[test]
fn try_send_full_and_disconnected_give_the_message_back() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = sync_channel::<Box<u32>>(1);
            tx.try_send(Box::new(1)).unwrap();
            match tx.try_send(Box::new(2)) {
                Err(TrySendError::Full(b)) => assert_eq!(*b, 2),
                other => panic!("expected Full(2), got {other:?}"),
            }
            drop(rx);
            match tx.try_send(Box::new(3)) {
                Err(TrySendError::Disconnected(b)) => assert_eq!(*b, 3),
                other => panic!("expected Disconnected(3), got {other:?}"),
            }
        });
    }
}

#[test]
fn try_recv_empty_then_value_then_disconnected() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = channel::<u32>();
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
            tx.send(5).unwrap();
            drop(tx);
            // Buffered messages are still delivered after disconnection.
            assert_eq!(rx.try_recv(), Ok(5));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));

            let (stx, srx) = sync_channel::<u32>(0);
            assert_eq!(srx.try_recv(), Err(TryRecvError::Empty));
            drop(stx);
            assert_eq!(srx.try_recv(), Err(TryRecvError::Disconnected));
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------------

#[test]
fn recv_timeout_times_out_on_an_empty_channel() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (_tx, rx) = channel::<u32>();
            let timeout = Duration::from_millis(30);
            let start = Instant::now();
            assert_eq!(rx.recv_timeout(timeout), Err(RecvTimeoutError::Timeout));
            let elapsed = start.elapsed();
            assert!(
                elapsed >= timeout,
                "returned after {elapsed:?} < {timeout:?}"
            );
            assert!(elapsed < GENEROUS);

            let (_stx, srx) = sync_channel::<u32>(0);
            let start = Instant::now();
            let deadline = start + timeout;
            assert_eq!(srx.recv_deadline(deadline), Err(RecvTimeoutError::Timeout));
            assert!(Instant::now() >= deadline);
        });
    }
}

#[test]
fn recv_timeout_returns_a_message_sent_while_waiting() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = channel::<u32>();
            let (go_tx, go_rx) = channel::<()>();
            // The peer sends only after being told, and it is told just before we start waiting.
            let peer = coact::spawn(move || {
                go_rx.recv().unwrap();
                tx.send(99).unwrap();
                tx
            });
            go_tx.send(()).unwrap();
            let start = Instant::now();
            assert_eq!(rx.recv_timeout(GENEROUS), Ok(99));
            assert!(start.elapsed() < GENEROUS);
            let _tx = peer.join().unwrap();
            assert_eq!(
                rx.recv_deadline(Instant::now() + Duration::from_millis(1)),
                Err(RecvTimeoutError::Timeout)
            );
        });
    }
}

#[test]
fn recv_timeout_from_a_thread_gets_a_coroutines_message() {
    for n in WORKER_COUNTS {
        let (tx, rx) = sync_channel::<u32>(0);
        let (go_tx, go_rx) = channel::<()>();
        let waiter = thread::spawn(move || {
            go_tx.send(()).unwrap();
            rx.recv_timeout(GENEROUS)
        });
        on_workers(n, move || {
            go_rx.recv().unwrap();
            tx.send(5).unwrap();
        });
        assert_eq!(waiter.join().unwrap(), Ok(5), "workers={n}");
    }
}

#[test]
fn recv_timeout_reports_disconnection() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = channel::<u32>();
            tx.send(1).unwrap();
            drop(tx);
            assert_eq!(rx.recv_timeout(GENEROUS), Ok(1));
            let start = Instant::now();
            assert_eq!(
                rx.recv_timeout(GENEROUS),
                Err(RecvTimeoutError::Disconnected)
            );
            assert!(start.elapsed() < GENEROUS);

            // A receiver parked in recv_timeout is woken by the last sender's drop.
            let (tx, rx) = channel::<u32>();
            let (ready_tx, ready_rx) = channel::<()>();
            let waiter = coact::spawn(move || {
                ready_tx.send(()).unwrap();
                rx.recv_timeout(GENEROUS)
            });
            ready_rx.recv().unwrap();
            drop(tx);
            assert_eq!(waiter.join().unwrap(), Err(RecvTimeoutError::Disconnected));
        });
    }
}

#[test]
fn send_timeout_times_out_succeeds_and_disconnects() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            // Timeout: the message comes back.
            let (tx, rx) = sync_channel::<String>(1);
            tx.send("a".into()).unwrap();
            let timeout = Duration::from_millis(30);
            let start = Instant::now();
            match tx.send_timeout("b".into(), timeout) {
                Err(SendTimeoutError::Timeout(msg)) => assert_eq!(msg, "b"),
                other => panic!("expected Timeout(\"b\"), got {other:?}"),
            }
            let elapsed = start.elapsed();
            assert!(
                elapsed >= timeout,
                "timed out after {elapsed:?} < {timeout:?}"
            );

            // Success: a receive frees the slot while the sender waits.
            let (ready_tx, ready_rx) = channel::<()>();
            let sender = coact::spawn(move || {
                ready_tx.send(()).unwrap();
                let r = tx
                    .send_timeout("c".into(), GENEROUS)
                    .map_err(|e| format!("{e:?}"));
                (r, tx)
            });
            ready_rx.recv().unwrap();
            assert_eq!(rx.recv().unwrap(), "a");
            let (r, tx) = sender.join().unwrap();
            assert_eq!(r, Ok(()));
            assert_eq!(rx.recv().unwrap(), "c");

            // Disconnected: the receiver is gone, the message comes back at once.
            drop(rx);
            let start = Instant::now();
            match tx.send_timeout("d".into(), GENEROUS) {
                Err(SendTimeoutError::Disconnected(msg)) => assert_eq!(msg, "d"),
                other => panic!("expected Disconnected(\"d\"), got {other:?}"),
            }
            assert!(start.elapsed() < GENEROUS);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Disconnection
// ---------------------------------------------------------------------------------------------

#[test]
fn recv_drains_buffered_messages_after_all_senders_drop() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = channel::<u32>();
            let tx2 = tx.clone();
            tx.send(1).unwrap();
            tx2.send(2).unwrap();
            drop(tx);
            tx2.send(3).unwrap(); // one clone is enough to stay connected
            drop(tx2);
            assert_eq!(rx.recv(), Ok(1));
            assert_eq!(rx.recv(), Ok(2));
            assert_eq!(rx.recv(), Ok(3));
            assert_eq!(rx.recv(), Err(RecvError));
            assert_eq!(rx.recv(), Err(RecvError));

            let (stx, srx) = sync_channel::<u32>(2);
            stx.send(1).unwrap();
            stx.send(2).unwrap();
            drop(stx);
            assert_eq!(srx.recv(), Ok(1));
            assert_eq!(srx.recv(), Ok(2));
            assert_eq!(srx.recv(), Err(RecvError));
        });
    }
}

#[test]
fn parked_receiver_wakes_when_last_sender_drops() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            for capacity in [None, Some(0), Some(4)] {
                let (ready_tx, ready_rx) = channel::<()>();
                let (drop_senders, waiter) = match capacity {
                    None => {
                        let (tx, rx) = channel::<u32>();
                        let h = coact::spawn(move || {
                            ready_tx.send(()).unwrap();
                            rx.recv()
                        });
                        (Box::new(tx) as Box<dyn Send>, h)
                    }
                    Some(c) => {
                        let (tx, rx) = sync_channel::<u32>(c);
                        let h = coact::spawn(move || {
                            ready_tx.send(()).unwrap();
                            rx.recv()
                        });
                        (Box::new(tx) as Box<dyn Send>, h)
                    }
                };
                ready_rx.recv().unwrap();
                drop(drop_senders);
                assert_eq!(
                    waiter.join().unwrap(),
                    Err(RecvError),
                    "capacity {capacity:?}"
                );
            }
        });
    }
}

#[test]
fn send_after_receiver_dropped_gives_the_value_back() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = channel::<String>();
            drop(rx);
            let SendError(back) = tx.send("lost?".to_string()).unwrap_err();
            assert_eq!(back, "lost?");

            for capacity in [0, 3] {
                let (stx, srx) = sync_channel::<String>(capacity);
                drop(srx);
                let SendError(back) = stx.send("no".to_string()).unwrap_err();
                assert_eq!(back, "no");
            }
        });
    }
}

#[test]
fn parked_sender_wakes_with_its_value_when_receiver_drops() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            for capacity in [0, 1] {
                let (tx, rx) = sync_channel::<u32>(capacity);
                let (ready_tx, ready_rx) = channel::<()>();
                let sender = coact::spawn(move || {
                    for i in 0..capacity as u32 {
                        tx.send(i).unwrap(); // fill the channel
                    }
                    ready_tx.send(()).unwrap();
                    tx.send(77) // parks: full (or no receiver at the rendezvous)
                });
                ready_rx.recv().unwrap();
                drop(rx);
                assert_eq!(
                    sender.join().unwrap(),
                    Err(SendError(77)),
                    "capacity {capacity}"
                );
            }
        });
    }
}

#[test]
fn disconnection_crosses_between_threads_and_coroutines() {
    for n in WORKER_COUNTS {
        // A coroutine parked in recv is woken by a thread dropping the last sender.
        let (tx, rx) = channel::<u32>();
        let (ready_tx, ready_rx) = channel::<()>();
        let dropper = thread::spawn(move || {
            ready_rx.recv().unwrap();
            drop(tx);
        });
        let r = on_workers(n, move || {
            ready_tx.send(()).unwrap();
            rx.recv()
        });
        dropper.join().unwrap();
        assert_eq!(r, Err(RecvError), "workers={n}");

        // A thread blocked in a full send is woken by a coroutine dropping the receiver.
        let (tx, rx) = sync_channel::<u32>(0);
        let (ready_tx, ready_rx) = channel::<()>();
        let sender = thread::spawn(move || {
            ready_tx.send(()).unwrap();
            tx.send(3)
        });
        on_workers(n, move || {
            ready_rx.recv().unwrap();
            drop(rx);
        });
        assert_eq!(sender.join().unwrap(), Err(SendError(3)), "workers={n}");
    }
}

// ---------------------------------------------------------------------------------------------
// Iterators and clones
// ---------------------------------------------------------------------------------------------

#[test]
fn iter_blocks_until_disconnection() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = sync_channel::<u32>(2);
            let producer = coact::spawn(move || (0..100).for_each(|i| tx.send(i).unwrap()));
            let got: Vec<u32> = rx.iter().collect();
            assert_eq!(got, (0..100).collect::<Vec<_>>());
            producer.join().unwrap();
        });
    }
}

#[test]
fn try_iter_takes_only_what_is_buffered() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = channel::<u32>();
            assert_eq!(rx.try_iter().count(), 0);
            (0..5).for_each(|i| tx.send(i).unwrap());
            // Returns without waiting although the sender is still alive.
            assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
            assert_eq!(rx.try_iter().next(), None);
            tx.send(5).unwrap();
            assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![5]);
        });
    }
}

#[test]
fn into_iter_consumes_the_receiver() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = channel::<u32>();
            let consumer = coact::spawn(move || {
                let mut all = Vec::new();
                for v in rx {
                    all.push(v);
                }
                all
            });
            (0..10).for_each(|i| tx.send(i).unwrap());
            drop(tx);
            assert_eq!(consumer.join().unwrap(), (0..10).collect::<Vec<_>>());

            let (stx, srx) = sync_channel::<u32>(3);
            (0..3).for_each(|i| stx.send(i).unwrap());
            drop(stx);
            assert_eq!(srx.into_iter().sum::<u32>(), 3);
        });
    }
}

#[test]
fn sender_clones_keep_the_channel_open_until_the_last_one_drops() {
    const CLONES: u32 = 16;
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = channel::<u32>();
            let (stx, srx) = sync_channel::<u32>(1);
            let (release_tx, release_rx) = channel::<()>();
            let release_rx = Arc::new(coact::sync::Mutex::new(release_rx));
            let senders: Vec<_> = (0..CLONES)
                .map(|i| {
                    let (tx, stx) = (tx.clone(), stx.clone());
                    let release_rx = Arc::clone(&release_rx);
                    coact::spawn(move || {
                        tx.send(i).unwrap();
                        stx.send(i).unwrap();
                        // Keep both clones alive until released.
                        let _ = release_rx.lock().unwrap().recv();
                    })
                })
                .collect();
            drop((tx, stx));
            let mut seen = 0u32;
            for _ in 0..CLONES {
                seen += rx.recv().unwrap() + srx.recv().unwrap();
            }
            assert_eq!(seen, CLONES * (CLONES - 1));
            // All clones alive and idle: empty, not disconnected.
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
            assert_eq!(srx.try_recv(), Err(TryRecvError::Empty));
            // Release them one at a time; only after the last is the channel disconnected.
            for k in 0..CLONES {
                release_tx.send(()).unwrap();
                if k + 1 < CLONES {
                    assert_ne!(rx.try_recv(), Err(TryRecvError::Disconnected));
                }
            }
            senders.into_iter().for_each(|h| h.join().unwrap());
            assert_eq!(rx.recv(), Err(RecvError));
            assert_eq!(srx.recv(), Err(RecvError));
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Destructors of buffered messages
// ---------------------------------------------------------------------------------------------

#[test]
fn buffered_messages_are_dropped_with_the_receiver() {
    for n in WORKER_COUNTS {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = Arc::clone(&drops);
        on_workers(n, move || {
            let count = |expected: usize, what: &str| {
                assert_eq!(d.load(Ordering::SeqCst), expected, "{what}");
            };
            // Unbounded: 10 buffered, 1 received and dropped, then the receiver goes.
            let (tx, rx) = channel::<DropCounter>();
            for _ in 0..10 {
                tx.send(DropCounter::new(&d)).unwrap();
            }
            count(0, "nothing dropped while buffered");
            drop(rx.recv().unwrap());
            count(1, "the received message");
            drop(rx);
            count(10, "buffered messages dropped with the receiver");
            let SendError(back) = tx.send(DropCounter::new(&d)).unwrap_err();
            count(10, "a refused message is handed back, not dropped");
            drop(back);
            count(11, "the handed-back message");
            drop(tx);
            count(11, "nothing left");

            // Bounded and full.
            let (stx, srx) = sync_channel::<DropCounter>(5);
            for _ in 0..5 {
                stx.send(DropCounter::new(&d)).unwrap();
            }
            let full = stx.try_send(DropCounter::new(&d));
            assert!(matches!(full, Err(TrySendError::Full(_))));
            drop(full);
            count(12, "the message refused as Full");
            drop(srx);
            count(17, "buffered messages dropped with the bounded receiver");
            drop(stx);
            count(17, "nothing left");
        });
        assert_eq!(drops.load(Ordering::SeqCst), 17, "workers={n}");
    }
}

#[test]
fn buffered_messages_are_dropped_when_both_ends_go() {
    for n in WORKER_COUNTS {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = Arc::clone(&drops);
        on_workers(n, move || {
            let (tx, rx) = channel::<DropCounter>();
            let (stx, srx) = sync_channel::<DropCounter>(8);
            let producer = coact::spawn(move || {
                for _ in 0..8 {
                    tx.send(DropCounter::new(&d)).unwrap();
                    stx.send(DropCounter::new(&d)).unwrap();
                }
            });
            producer.join().unwrap();
            drop((rx, srx));
        });
        assert_eq!(drops.load(Ordering::SeqCst), 16, "workers={n}");
    }
}
