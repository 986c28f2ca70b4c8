//! `coact::select::Select` and `coact::select!` over coact channels, from coroutines (1, 2 and 4
//! workers) and from plain threads.
//!
//! Proves: receive and send operations complete the chosen operation; `default` and
//! `default(timeout)` arms; a disconnected channel counts as ready (its operation then reports
//! the disconnection); `remove` takes an operation out; `ready`/`try_ready`/`ready_timeout` only
//! report readiness; two always-ready operations are both chosen over 1,000 selections, and
//! each of three always-ready `select!` arms in a loop; a set of nine operations with two
//! removed; a send to
//! a zero-capacity channel is selectable exactly when a receiver waits; a plain thread can select
//! on channels fed by coroutines.

mod common;

use std::time::{Duration, Instant};

use coact::select::Select;
use coact::sync::mpsc::{channel, sync_channel, RecvError, SendError, TryRecvError};
use common::{on_workers, WORKER_COUNTS};

const GENEROUS: Duration = Duration::from_secs(30);

#[test]
fn select_receives_from_the_ready_channel() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (_a_tx, a_rx) = channel::<u32>();
            let (b_tx, b_rx) = sync_channel::<u32>(1);
            b_tx.send(8).unwrap();
            let mut sel = Select::new();
            let ia = sel.recv(&a_rx);
            let ib = sel.recv(&b_rx);
            assert_ne!(ia, ib);
            let oper = sel.select();
            assert_eq!(oper.index(), ib);
            assert_eq!(oper.recv(&b_rx), Ok(8));
        });
    }
}

#[test]
fn select_parks_until_a_coroutine_sends() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (a_tx, a_rx) = channel::<u32>();
            let (b_tx, b_rx) = sync_channel::<u32>(0);
            let (go_tx, go_rx) = channel::<()>();
            let peer = coact::spawn(move || {
                go_rx.recv().unwrap();
                b_tx.send(5).unwrap(); // rendezvous with the select below
                a_tx
            });
            let mut sel = Select::new();
            let _ia = sel.recv(&a_rx);
            let ib = sel.recv(&b_rx);
            go_tx.send(()).unwrap();
            let oper = sel.select();
            assert_eq!(oper.index(), ib);
            assert_eq!(oper.recv(&b_rx), Ok(5));
            let _a_tx = peer.join().unwrap();
        });
    }
}

#[test]
fn select_sends_on_the_ready_channel() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (full_tx, _full_rx) = sync_channel::<u32>(1);
            full_tx.send(0).unwrap(); // no room: its send is not ready
            let (room_tx, room_rx) = sync_channel::<u32>(1);
            let mut sel = Select::new();
            let i_full = sel.send(&full_tx);
            let i_room = sel.send(&room_tx);
            assert_ne!(i_full, i_room);
            let oper = sel.select();
            assert_eq!(oper.index(), i_room);
            oper.send(&room_tx, 3).unwrap();
            assert_eq!(room_rx.try_recv(), Ok(3));

            // An unbounded Sender is always ready.
            let (tx, rx) = channel::<u32>();
            let mut sel = Select::new();
            let i = sel.send(&tx);
            let oper = sel.try_select().expect("an unbounded send is always ready");
            assert_eq!(oper.index(), i);
            oper.send(&tx, 4).unwrap();
            assert_eq!(rx.try_recv(), Ok(4));
        });
    }
}

#[test]
fn select_mixes_send_and_recv_operations() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            // A coroutine echoes what it gets; we alternate sending and receiving through one Select.
            let (req_tx, req_rx) = sync_channel::<u32>(1);
            let (resp_tx, resp_rx) = sync_channel::<u32>(1);
            let echo = coact::spawn(move || {
                for v in req_rx.iter() {
                    resp_tx.send(v + 1000).unwrap();
                }
            });
            let mut sent = 0u32;
            let mut got = Vec::new();
            let mut sel = Select::new();
            let is = sel.send(&req_tx);
            let ir = sel.recv(&resp_rx);
            while got.len() < 100 {
                let oper = sel.select();
                if oper.index() == is {
                    oper.send(&req_tx, sent).unwrap();
                    sent += 1;
                    if sent == 100 {
                        sel.remove(is); // nothing more to send
                    }
                } else {
                    assert_eq!(oper.index(), ir);
                    got.push(oper.recv(&resp_rx).unwrap());
                }
            }
            drop(sel);
            drop(req_tx);
            echo.join().unwrap();
            assert_eq!(sent, 100);
            assert_eq!(got, (1000..1100).collect::<Vec<_>>());
        });
    }
}

#[test]
fn try_select_and_select_timeout_on_nothing_ready() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (_tx, rx) = channel::<u32>();
            let (full_tx, _full_rx) = sync_channel::<u32>(0); // no receiver waiting
            let mut sel = Select::new();
            sel.recv(&rx);
            sel.send(&full_tx);
            assert!(sel.try_select().is_err());
            let timeout = Duration::from_millis(30);
            let start = Instant::now();
            assert!(sel.select_timeout(timeout).is_err());
            let elapsed = start.elapsed();
            assert!(
                elapsed >= timeout,
                "select_timeout returned after {elapsed:?}"
            );
            assert!(elapsed < GENEROUS);
        });
    }
}

#[test]
fn disconnected_channels_are_ready() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            // Receiving side: all senders gone.
            let (tx, rx) = channel::<u32>();
            let (_live_tx, live_rx) = channel::<u32>();
            drop(tx);
            let mut sel = Select::new();
            let _il = sel.recv(&live_rx);
            let ir = sel.recv(&rx);
            let oper = sel
                .select_timeout(GENEROUS)
                .expect("a disconnected channel is ready");
            assert_eq!(oper.index(), ir);
            assert_eq!(oper.recv(&rx), Err(RecvError));

            // Sending side: the receiver is gone; the message comes back.
            let (stx, srx) = sync_channel::<String>(0);
            drop(srx);
            let mut sel = Select::new();
            let is = sel.send(&stx);
            let oper = sel.try_select().expect("a disconnected channel is ready");
            assert_eq!(oper.index(), is);
            assert_eq!(
                oper.send(&stx, "back".to_string()),
                Err(SendError("back".to_string()))
            );

            // A selector parked on a channel is woken when it disconnects.
            let (tx, rx) = channel::<u32>();
            let (ready_tx, ready_rx) = channel::<()>();
            let selector = coact::spawn(move || {
                let mut sel = Select::new();
                let i = sel.recv(&rx);
                ready_tx.send(()).unwrap();
                let oper = sel.select();
                assert_eq!(oper.index(), i);
                oper.recv(&rx)
            });
            ready_rx.recv().unwrap();
            drop(tx);
            assert_eq!(selector.join().unwrap(), Err(RecvError));
        });
    }
}

#[test]
fn removed_operations_are_never_selected() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (a_tx, a_rx) = channel::<u32>();
            let (b_tx, b_rx) = channel::<u32>();
            a_tx.send(1).unwrap(); // a is ready
            let mut sel = Select::new();
            let ia = sel.recv(&a_rx);
            let ib = sel.recv(&b_rx);
            sel.remove(ia);
            assert!(
                sel.try_select().is_err(),
                "a removed operation was selected"
            );
            b_tx.send(2).unwrap();
            for _ in 0..10 {
                let oper = sel.select_timeout(GENEROUS).expect("b is ready");
                assert_eq!(oper.index(), ib);
                assert_eq!(oper.recv(&b_rx), Ok(2));
                b_tx.send(2).unwrap();
            }
            // a's message was never taken.
            assert_eq!(a_rx.try_recv(), Ok(1));
            assert_eq!(b_rx.try_recv(), Ok(2));
        });
    }
}

#[test]
fn ready_reports_without_performing_the_operation() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (a_tx, a_rx) = channel::<u32>();
            let (b_tx, b_rx) = sync_channel::<u32>(1);
            let mut sel = Select::new();
            let ia = sel.recv(&a_rx);
            let ib = sel.recv(&b_rx);

            assert!(sel.try_ready().is_err());
            let timeout = Duration::from_millis(20);
            let start = Instant::now();
            assert!(sel.ready_timeout(timeout).is_err());
            assert!(start.elapsed() >= timeout);

            b_tx.send(9).unwrap();
            assert_eq!(sel.try_ready().ok(), Some(ib));
            assert_eq!(sel.ready(), ib);
            // Still there: ready() did not receive it.
            assert_eq!(b_rx.try_recv(), Ok(9));

            // ready() parks until a peer makes something ready.
            let (go_tx, go_rx) = channel::<()>();
            let peer = coact::spawn(move || {
                go_rx.recv().unwrap();
                a_tx.send(4).unwrap();
                (a_tx, b_tx)
            });
            go_tx.send(()).unwrap();
            // ready() may wake spuriously (like crossbeam's), so loop until `a` really is ready.
            let mut rounds = 0;
            loop {
                rounds += 1;
                assert!(
                    rounds < 100_000,
                    "ready() kept returning without a ready operation"
                );
                let i = sel.ready_timeout(GENEROUS).expect("a becomes ready");
                if i == ia {
                    match a_rx.try_recv() {
                        Ok(v) => {
                            assert_eq!(v, 4);
                            break;
                        }
                        Err(TryRecvError::Empty) => continue,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
            let _keep = peer.join().unwrap();
        });
    }
}

#[test]
fn two_always_ready_channels_are_both_chosen() {
    const ROUNDS: usize = 1_000;
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (a_tx, a_rx) = channel::<u32>();
            let (b_tx, b_rx) = channel::<u32>();
            for _ in 0..ROUNDS {
                a_tx.send(0).unwrap();
                b_tx.send(1).unwrap();
            }
            let mut sel = Select::new();
            let ia = sel.recv(&a_rx);
            let ib = sel.recv(&b_rx);
            let mut picked = [0usize; 2];
            for _ in 0..ROUNDS {
                let oper = sel.select();
                let k = if oper.index() == ia {
                    oper.recv(&a_rx).unwrap()
                } else {
                    assert_eq!(oper.index(), ib);
                    oper.recv(&b_rx).unwrap()
                };
                picked[k as usize] += 1;
            }
            assert!(
                picked[0] >= ROUNDS / 10 && picked[1] >= ROUNDS / 10,
                "select is unfair between two ready channels: {picked:?}"
            );
        });
    }
}

#[test]
fn select_macro_in_a_loop_chooses_every_ready_arm() {
    // `select!` builds a new set per call; with all three arms always ready, a loop around it
    // must still serve each of them (crossbeam's picks at random; a set that always started
    // its scan at the first arm would take only that one).
    const ROUNDS: usize = 3_000;
    for n in WORKER_COUNTS {
        let picked = on_workers(n, || {
            let [(t0, r0), (t1, r1), (t2, r2)] = [(); 3].map(|_| channel::<u32>());
            for (k, tx) in [&t0, &t1, &t2].into_iter().enumerate() {
                tx.send(k as u32).unwrap();
            }
            let mut picked = [0usize; 3];
            for _ in 0..ROUNDS {
                // Take the message and put it back, so every arm stays ready.
                let k = coact::select! {
                    recv(r0) -> v => { let v = v.unwrap(); t0.send(v).unwrap(); v }
                    recv(r1) -> v => { let v = v.unwrap(); t1.send(v).unwrap(); v }
                    recv(r2) -> v => { let v = v.unwrap(); t2.send(v).unwrap(); v }
                };
                picked[k as usize] += 1;
            }
            picked
        });
        assert_eq!(picked.iter().sum::<usize>(), ROUNDS);
        assert!(
            picked.iter().all(|&p| p >= ROUNDS / 10),
            "select! is unfair between three ready arms: {picked:?} (workers={n})"
        );
    }
}

#[test]
fn a_select_of_nine_operations_with_two_removed() {
    // Indices stay stable across removals, each remaining operation registers once, and
    // every filled channel is chosen exactly once.
    const N: usize = 9;
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let chans: Vec<_> = (0..N).map(|_| sync_channel::<usize>(1)).collect();
            let mut sel = Select::new();
            let idx: Vec<usize> = chans.iter().map(|(_, rx)| sel.recv(rx)).collect();
            assert_eq!(idx, (0..N).collect::<Vec<_>>());
            sel.remove(2);
            sel.remove(7);
            assert!(sel.try_select().is_err(), "nothing is ready yet");
            // A wait that times out registers every operation left, once.
            assert!(sel.select_timeout(Duration::from_millis(1)).is_err());
            assert_eq!(sel.registrations(), (N - 2) as u64);
            // Fill every channel from another coroutine while this one waits in the select.
            let senders: Vec<_> = chans.iter().map(|(tx, _)| tx.clone()).collect();
            let filler = coact::spawn(move || {
                for (k, tx) in senders.iter().enumerate() {
                    tx.send(k).unwrap();
                }
            });
            let mut got = Vec::new();
            for _ in 0..N - 2 {
                let oper = sel.select_timeout(GENEROUS).expect("a filled channel");
                let i = oper.index();
                assert_eq!(oper.recv(&chans[i].1), Ok(i));
                got.push(i);
            }
            filler.join().unwrap();
            assert_eq!(sel.registrations(), (N - 2) as u64);
            got.sort_unstable();
            assert_eq!(got, vec![0, 1, 3, 4, 5, 6, 8]);
            assert!(
                sel.try_select().is_err(),
                "the removed channels are never chosen"
            );
            assert_eq!(chans[2].1.try_recv(), Ok(2));
            assert_eq!(chans[7].1.try_recv(), Ok(7));
        });
    }
}

#[test]
fn zero_capacity_send_is_selectable_when_a_receiver_waits() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = sync_channel::<u32>(0);
            let (_never_tx, never_rx) = channel::<u32>();
            let mut sel = Select::new();
            let is = sel.send(&tx);
            let _in = sel.recv(&never_rx);
            // No receiver yet: the rendezvous send is not ready.
            assert!(sel.try_select().is_err());

            let (ready_tx, ready_rx) = channel::<()>();
            let receiver = coact::spawn(move || {
                ready_tx.send(()).unwrap();
                rx.recv()
            });
            ready_rx.recv().unwrap();
            // The receiver is waiting (or about to): select completes the rendezvous.
            let oper = sel.select();
            assert_eq!(oper.index(), is);
            oper.send(&tx, 42).unwrap();
            assert_eq!(receiver.join().unwrap(), Ok(42));
        });
    }
}

#[test]
fn zero_capacity_recv_is_selectable_when_a_sender_waits() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = sync_channel::<u32>(0);
            let (_never_tx, never_rx) = channel::<u32>();
            let mut sel = Select::new();
            let _in = sel.recv(&never_rx);
            let ir = sel.recv(&rx);
            assert!(sel.try_select().is_err());
            let sender = coact::spawn(move || tx.send(6));
            let oper = sel.select();
            assert_eq!(oper.index(), ir);
            assert_eq!(oper.recv(&rx), Ok(6));
            assert_eq!(sender.join().unwrap(), Ok(()));
        });
    }
}

#[test]
fn plain_thread_selects_over_channels_fed_by_coroutines() {
    const N: u32 = 500;
    for n in WORKER_COUNTS {
        let rt = common::runtime(n);
        let (a_tx, a_rx) = channel::<u32>();
        let (b_tx, b_rx) = sync_channel::<u32>(0);
        let (c_tx, c_rx) = sync_channel::<u32>(2);
        // Each producer hands its sender back so no channel disconnects early.
        let pa = rt.spawn(move || {
            (0..N).for_each(|i| a_tx.send(i).unwrap());
            a_tx
        });
        let pb = rt.spawn(move || {
            (0..N).for_each(|i| b_tx.send(i).unwrap());
            b_tx
        });
        let pc = rt.spawn(move || {
            (0..N).for_each(|i| c_tx.send(i).unwrap());
            c_tx
        });
        let counts = common::bounded(move || {
            let rxs = [a_rx, b_rx, c_rx];
            let mut sel = Select::new();
            let idx: Vec<usize> = rxs.iter().map(|r| sel.recv(r)).collect();
            let mut next = [0u32; 3];
            for _ in 0..3 * N {
                let oper = sel.select();
                let k = idx.iter().position(|&i| i == oper.index()).unwrap();
                assert_eq!(oper.recv(&rxs[k]), Ok(next[k]), "channel {k} out of order");
                next[k] += 1;
            }
            next
        });
        let senders = (pa.join().unwrap(), pb.join().unwrap(), pc.join().unwrap());
        drop(senders);
        drop(rt);
        assert_eq!(counts, [N; 3], "workers={n}");
    }
}

#[test]
fn select_macro_recv_and_send_arms() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (a_tx, a_rx) = channel::<u32>();
            let (_b_tx, b_rx) = channel::<u32>();
            a_tx.send(10).unwrap();
            let got = coact::select! {
                recv(a_rx) -> msg => msg.unwrap(),
                recv(b_rx) -> _msg => panic!("b was never sent to"),
            };
            assert_eq!(got, 10);

            let (s_tx, s_rx) = sync_channel::<u32>(1);
            let (full_tx, _full_rx) = sync_channel::<u32>(0);
            let which = coact::select! {
                send(full_tx, 1) -> _res => "full",
                send(s_tx, 2) -> res => { res.unwrap(); "room" },
            };
            assert_eq!(which, "room");
            assert_eq!(s_rx.try_recv(), Ok(2));

            // A parked select! woken by another coroutine.
            let (c_tx, c_rx) = sync_channel::<u32>(0);
            let peer = coact::spawn(move || c_tx.send(3).unwrap());
            let got = coact::select! {
                recv(c_rx) -> msg => msg,
                recv(b_rx) -> msg => msg,
            };
            assert_eq!(got, Ok(3));
            peer.join().unwrap();
        });
    }
}

#[test]
fn select_macro_default_arm_runs_when_nothing_is_ready() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = channel::<u32>();
            let r = coact::select! {
                recv(rx) -> msg => Some(msg.unwrap()),
                default => None,
            };
            assert_eq!(r, None);
            tx.send(1).unwrap();
            let r = coact::select! {
                recv(rx) -> msg => Some(msg.unwrap()),
                default => None,
            };
            assert_eq!(r, Some(1));
        });
    }
}

#[test]
fn select_macro_timeout_arm() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (_tx, rx) = channel::<u32>();
            let timeout = Duration::from_millis(30);
            let start = Instant::now();
            let timed_out = coact::select! {
                recv(rx) -> _msg => false,
                default(timeout) => true,
            };
            assert!(timed_out);
            let elapsed = start.elapsed();
            assert!(
                elapsed >= timeout,
                "timeout arm ran after {elapsed:?} < {timeout:?}"
            );
            assert!(elapsed < GENEROUS);

            // A message arriving during the wait wins over the timeout.
            let (tx2, rx2) = sync_channel::<u32>(0);
            let (go_tx, go_rx) = channel::<()>();
            let peer = coact::spawn(move || {
                go_rx.recv().unwrap();
                tx2.send(8).unwrap();
            });
            go_tx.send(()).unwrap();
            let got = coact::select! {
                recv(rx2) -> msg => msg.ok(),
                default(GENEROUS) => None,
            };
            assert_eq!(got, Some(8));
            peer.join().unwrap();
        });
    }
}

#[test]
fn select_macro_from_a_plain_thread() {
    for n in WORKER_COUNTS {
        let rt = common::runtime(n);
        let (tx, rx) = sync_channel::<u32>(0);
        let producer = rt.spawn(move || (0..100).for_each(|i| tx.send(i).unwrap()));
        let sum = common::bounded(move || {
            let mut sum = 0;
            loop {
                let msg = coact::select! {
                    recv(rx) -> msg => msg,
                };
                match msg {
                    Ok(v) => sum += v,
                    Err(_) => break, // the producer finished and dropped its sender
                }
            }
            sum
        });
        producer.join().unwrap();
        drop(rt);
        assert_eq!(sum, 4950, "workers={n}");
    }
}

/// `select!` with a default or timeout arm can be the tail expression of a block whose own
/// locals it selects over (the macro's outcome once lived in a temporary that outlived them,
/// a borrow error in edition 2021). Compiling is most of the test.
#[test]
fn select_macro_as_the_tail_expression_of_a_block() {
    fn poll_once() -> Option<u32> {
        let (tx, rx) = coact::sync::mpsc::channel::<u32>();
        tx.send(7).unwrap();
        coact::select! {
            recv(rx) -> v => v.ok(),
            default => None,
        }
    }
    fn wait_briefly() -> Option<u32> {
        let (_tx, rx) = coact::sync::mpsc::channel::<u32>();
        coact::select! {
            recv(rx) -> v => v.ok(),
            default(std::time::Duration::from_millis(1)) => None,
        }
    }
    assert_eq!(poll_once(), Some(7));
    assert_eq!(wait_briefly(), None);
}

/// Stress for the wake protocol of a `Select` (an event skips the signal's lock while the
/// select is not waiting, and must still wake it when it is): one persistent `Select` in a
/// coroutine receives everything four producers send through one-slot channels, so it parks
/// and is woken over and over, by coroutines (on any worker) and plain threads. A lost wake-up
/// would hang the test (its time bound fails it); every message arrives once, in order.
#[test]
fn a_persistent_select_woken_from_other_threads_never_misses_a_message() {
    const N: u32 = 20_000;
    for n in WORKER_COUNTS {
        let counts = on_workers(n, || {
            let chans: Vec<_> = (0..4).map(|_| sync_channel::<u32>(1)).collect();
            let (txs, rxs): (Vec<_>, Vec<_>) = chans.into_iter().unzip();
            let mut producers = Vec::new();
            let mut threads = Vec::new();
            for (k, tx) in txs.into_iter().enumerate() {
                let produce = move || {
                    for i in 0..N {
                        tx.send(i).unwrap();
                    }
                };
                if k % 2 == 0 {
                    producers.push(coact::spawn(produce));
                } else {
                    threads.push(std::thread::spawn(produce));
                }
            }
            let mut sel = Select::new();
            let idx: Vec<usize> = rxs.iter().map(|r| sel.recv(r)).collect();
            let mut next = [0u32; 4];
            let mut open = 4;
            while open > 0 {
                let oper = sel.select();
                let k = idx.iter().position(|&i| i == oper.index()).unwrap();
                match oper.recv(&rxs[k]) {
                    Ok(v) => {
                        assert_eq!(v, next[k], "channel {k} out of order");
                        next[k] += 1;
                    }
                    Err(RecvError) => {
                        sel.remove(idx[k]);
                        open -= 1;
                    }
                }
            }
            for p in producers {
                p.join().unwrap();
            }
            for t in threads {
                t.join().unwrap();
            }
            next
        });
        assert_eq!(counts, [N; 4], "workers={n}");
    }
}

/// Two unbounded channels, each holding 0..100, as (sender, receiver) pairs.
type Pair = (
    coact::sync::mpsc::Sender<u32>,
    coact::sync::mpsc::Receiver<u32>,
);

fn two_loaded() -> (Pair, Pair) {
    let (first, second) = (channel::<u32>(), channel::<u32>());
    for i in 0..100 {
        first.0.send(i).unwrap();
        second.0.send(i).unwrap();
    }
    (first, second)
}

#[test]
fn a_biased_select_takes_the_first_ready_operation_every_time() {
    on_workers(1, || {
        let ((_first_tx, first), (second_tx, second)) = two_loaded();
        // A persistent set: the first operation wins while it is ready...
        let mut sel = Select::new_biased();
        let a = sel.recv(&first);
        let b = sel.recv(&second);
        for i in 0..50 {
            let op = sel.select();
            assert_eq!(op.index(), a);
            assert_eq!(op.recv(&first), Ok(i));
        }
        // ...and `select!` with `biased;` in written order, with and without a default.
        for i in 50..100 {
            let got = coact::select! {
                biased;
                recv(first) -> v => v.unwrap(),
                recv(second) -> _ => unreachable!("the first arm is ready"),
            };
            assert_eq!(got, i);
        }
        // Once the first is empty, the second.
        let op = sel.select();
        assert_eq!(op.index(), b);
        assert_eq!(op.recv(&second), Ok(0));
        let got = coact::select! {
            biased;
            recv(first) -> _ => unreachable!("empty"),
            recv(second) -> v => v.unwrap(),
            default => unreachable!("the second arm is ready"),
        };
        assert_eq!(got, 1);
        drop(second_tx);
        let timed_out = coact::select! {
            biased;
            recv(first) -> _ => false,
            default(Duration::from_millis(1)) => true,
        };
        assert!(timed_out);
    });
}

#[test]
fn a_fair_select_takes_ready_operations_in_turn() {
    on_workers(1, || {
        let ((_first_tx, first), (_second_tx, second)) = two_loaded();
        let mut sel = Select::new();
        let a = sel.recv(&first);
        sel.recv(&second);
        let mut from_first = 0;
        for _ in 0..100 {
            let op = sel.select();
            if op.index() == a {
                op.recv(&first).unwrap();
                from_first += 1;
            } else {
                op.recv(&second).unwrap();
            }
        }
        assert_eq!(from_first, 50, "two always-ready operations alternate");
    });
}
