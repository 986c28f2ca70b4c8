//! Timers: `coact::time::sleep`/`sleep_until` and `recv_timeout` inside coroutines.
//!
//! Proves: a sleep lasts at least what was asked (and ends within a very generous bound); a past
//! deadline returns at once; on a plain thread `sleep` behaves like `thread::sleep`; many
//! concurrent sleepers wake no earlier than their deadlines and roughly in deadline order
//! (order is only checked between deadlines 250 ms apart); a sleeping coroutine parks only
//! itself, and a short timer is not held up by a long one on the same worker; `recv_timeout`
//! in many coroutines at once times out no earlier than asked, or returns the message;
//! `tick` delivers on schedule without drift and never a burst to a slow receiver, in a
//! persistent `Select` too; `after` fires once, then disconnects; both work on plain threads.
//! Alarms run on the worker that set them, no earlier than their deadline; periodic ones run
//! until their callback says stop; a cancel (from any thread) drops the callback at once and
//! it never runs; a callback that tries to block panics instead, and a panicking one ends only
//! itself; alarms set in an offload job run on a worker; alarms end with their runtime.
//!
//! Only lower bounds are exact; upper bounds are seconds, far above any scheduling delay.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use coact::select::Select;
use coact::sync::mpsc::{channel, sync_channel, RecvTimeoutError};
use coact::time::{after, alarm, alarm_after, alarm_every, sleep, sleep_until, tick};
use common::{on_workers, shuffled, WORKER_COUNTS};

/// Far above any expected delay; only a missed timer would reach it.
const LATE: Duration = Duration::from_secs(5);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn sleep_lasts_at_least_the_requested_duration() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            for d in [ms(0), ms(1), ms(7), ms(20), ms(50)] {
                let start = Instant::now();
                sleep(d);
                let elapsed = start.elapsed();
                assert!(elapsed >= d, "sleep({d:?}) returned after {elapsed:?}");
                assert!(elapsed < d + LATE, "sleep({d:?}) took {elapsed:?}");
            }
        });
    }
}

#[test]
fn sleep_until_reaches_its_deadline() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            for d in [ms(1), ms(15), ms(40)] {
                let deadline = Instant::now() + d;
                sleep_until(deadline);
                let now = Instant::now();
                assert!(now >= deadline, "woke {:?} early", deadline - now);
                assert!(now < deadline + LATE);
            }
            // A deadline in the past returns at once.
            let past = Instant::now();
            sleep(ms(2));
            let start = Instant::now();
            sleep_until(past);
            assert!(start.elapsed() < LATE);
        });
    }
}

#[test]
fn sleep_on_a_plain_thread_blocks_the_thread() {
    let d = ms(30);
    let start = Instant::now();
    sleep(d);
    assert!(start.elapsed() >= d);
    let deadline = Instant::now() + d;
    sleep_until(deadline);
    assert!(Instant::now() >= deadline);
}

/// 40 coroutines, spawned in shuffled order, sleep until deadlines 15 ms apart. Each must wake
/// no earlier than its deadline, and a sleeper must not wake after another whose deadline is at
/// least 250 ms later.
#[test]
fn concurrent_sleepers_wake_in_deadline_order() {
    const SLEEPERS: usize = 40;
    const STEP: Duration = Duration::from_millis(15);
    const SLACK: Duration = Duration::from_millis(250);
    for n in [1, 2, 4] {
        let mut results = on_workers(n, || {
            let base = Instant::now() + ms(30);
            let handles: Vec<_> = shuffled(SLEEPERS, 0x9e37_79b9 + SLEEPERS as u64)
                .into_iter()
                .map(|k| {
                    let deadline = base + STEP * k as u32;
                    coact::spawn(move || {
                        if k % 2 == 0 {
                            sleep_until(deadline);
                        } else {
                            sleep(deadline.saturating_duration_since(Instant::now()));
                        }
                        (k, deadline, Instant::now())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        results.sort_by_key(|r| r.0);
        for &(k, deadline, woke) in &results {
            assert!(
                woke >= deadline,
                "workers={n}: sleeper {k} woke {:?} early",
                deadline - woke
            );
            assert!(
                woke < deadline + LATE,
                "workers={n}: sleeper {k} woke {:?} late",
                woke - deadline
            );
        }
        for (i, &(ki, di, wi)) in results.iter().enumerate() {
            for &(kj, dj, wj) in &results[i + 1..] {
                if dj >= di + SLACK {
                    assert!(
                        wi <= wj,
                        "workers={n}: sleeper {ki} (deadline +{:?}) woke after sleeper {kj} \
                         (deadline +{:?})",
                        di - results[0].1,
                        dj - results[0].1
                    );
                }
            }
        }
    }
}

/// On one worker, a coroutine in a one-hour sleep leaves the worker free: another coroutine
/// runs, and a short sleep alongside it is not held up by the long one. The long sleeper is
/// cancelled when the runtime ends (the test does not last an hour).
#[test]
fn a_sleeping_coroutine_parks_only_itself() {
    for n in [1, 2] {
        on_workers(n, || {
            let (started_tx, started_rx) = channel::<()>();
            let _long = coact::spawn(move || {
                started_tx.send(()).unwrap();
                sleep(Duration::from_secs(3600));
            });
            started_rx.recv().unwrap();
            let busy = coact::spawn(|| {
                for _ in 0..1_000 {
                    coact::yield_now();
                }
                "done"
            });
            assert_eq!(busy.join().unwrap(), "done");
            for _ in 0..3 {
                let start = Instant::now();
                sleep(ms(20));
                let elapsed = start.elapsed();
                assert!(
                    elapsed >= ms(20) && elapsed < LATE,
                    "short sleep took {elapsed:?}"
                );
            }
        });
    }
}

/// An earlier timer added from another worker (or a fresh coroutine) while a worker waits on a
/// later one must still fire on time.
#[test]
fn an_earlier_timer_is_not_held_up_by_a_later_one() {
    for n in [1, 2, 4] {
        on_workers(n, || {
            let (started_tx, started_rx) = channel::<()>();
            let long: Vec<_> = (0..4)
                .map(|_| {
                    let started_tx = started_tx.clone();
                    coact::spawn(move || {
                        started_tx.send(()).unwrap();
                        sleep(Duration::from_secs(3600));
                    })
                })
                .collect();
            for _ in 0..4 {
                started_rx.recv().unwrap();
            }
            let short: Vec<_> = (0..8u64)
                .map(|i| {
                    coact::spawn(move || {
                        let d = ms(5 + i * 5);
                        let start = Instant::now();
                        sleep(d);
                        (d, start.elapsed())
                    })
                })
                .collect();
            for h in short {
                let (d, elapsed) = h.join().unwrap();
                assert!(
                    elapsed >= d && elapsed < d + LATE,
                    "sleep({d:?}) took {elapsed:?}"
                );
            }
            drop(long); // detached; cancelled when the runtime ends
        });
    }
}

#[test]
fn many_coroutines_rearm_timers_repeatedly() {
    const COROUTINES: u64 = 50;
    const SLEEPS: u64 = 10;
    for n in [1, 2] {
        on_workers(n, || {
            let handles: Vec<_> = (0..COROUTINES)
                .map(|c| {
                    coact::spawn(move || {
                        let start = Instant::now();
                        let mut asked = Duration::ZERO;
                        for s in 0..SLEEPS {
                            let d = ms(1 + (c + s) % 3);
                            sleep(d);
                            asked += d;
                        }
                        (asked, start.elapsed())
                    })
                })
                .collect();
            for h in handles {
                let (asked, elapsed) = h.join().unwrap();
                assert!(elapsed >= asked, "slept {elapsed:?} < {asked:?}");
                assert!(elapsed < asked + LATE);
            }
        });
    }
}

#[test]
fn recv_timeout_in_many_coroutines_times_out_no_earlier_than_asked() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let handles: Vec<_> = (0..20u64)
                .map(|i| {
                    coact::spawn(move || {
                        let (_tx, rx) = channel::<u32>();
                        let (_stx, srx) = sync_channel::<u32>(0);
                        let t = ms(5 + i * 3);
                        let start = Instant::now();
                        let r1 = rx.recv_timeout(t);
                        let e1 = start.elapsed();
                        let start = Instant::now();
                        let r2 = srx.recv_timeout(t);
                        let e2 = start.elapsed();
                        (t, r1, e1, r2, e2)
                    })
                })
                .collect();
            for h in handles {
                let (t, r1, e1, r2, e2) = h.join().unwrap();
                assert_eq!(r1, Err(RecvTimeoutError::Timeout));
                assert_eq!(r2, Err(RecvTimeoutError::Timeout));
                assert!(e1 >= t && e1 < t + LATE, "recv_timeout({t:?}) took {e1:?}");
                assert!(e2 >= t && e2 < t + LATE, "recv_timeout({t:?}) took {e2:?}");
            }
        });
    }
}

/// 20 coroutines wait in `recv_timeout` with a long timeout; a feeder (a coroutine for half of
/// them, a plain thread for the other half) sends to each once all are waiting. Every one gets its
/// message, and none waited anywhere near the timeout.
#[test]
fn recv_timeout_in_many_coroutines_gets_messages() {
    const WAITERS: u32 = 20;
    for n in WORKER_COUNTS {
        let (thread_feed_tx, thread_feed_rx) = channel::<Vec<coact::sync::mpsc::SyncSender<u32>>>();
        let feeder_thread = thread::spawn(move || {
            let txs = thread_feed_rx.recv().unwrap();
            for (i, tx) in txs.into_iter().enumerate() {
                tx.send(1000 + i as u32).unwrap();
            }
        });
        on_workers(n, move || {
            let (ready_tx, ready_rx) = channel::<()>();
            let mut txs = Vec::new();
            let handles: Vec<_> = (0..WAITERS)
                .map(|_| {
                    let (tx, rx) = sync_channel::<u32>(1);
                    txs.push(tx);
                    let ready_tx = ready_tx.clone();
                    coact::spawn(move || {
                        ready_tx.send(()).unwrap();
                        let start = Instant::now();
                        let r = rx.recv_timeout(Duration::from_secs(60));
                        (r, start.elapsed())
                    })
                })
                .collect();
            for _ in 0..WAITERS {
                ready_rx.recv().unwrap();
            }
            let thread_half = txs.split_off(WAITERS as usize / 2);
            thread_feed_tx.send(thread_half).unwrap();
            let feeder = coact::spawn(move || {
                for (i, tx) in txs.into_iter().enumerate() {
                    tx.send(i as u32).unwrap();
                }
            });
            for (i, h) in handles.into_iter().enumerate() {
                let (r, elapsed) = h.join().unwrap();
                let i = i as u32;
                let expected = if i < WAITERS / 2 {
                    i
                } else {
                    1000 + i - WAITERS / 2
                };
                assert_eq!(r, Ok(expected));
                assert!(
                    elapsed < Duration::from_secs(30),
                    "waited {elapsed:?} for a sent message"
                );
            }
            feeder.join().unwrap();
        });
        feeder_thread.join().unwrap();
    }
}

/// Two coroutines handing a message back and forth through rendezvous channels never give the
/// worker loop a turn of their own accord: each one that parks lends its turn to the other,
/// which wakes it (see "Lending" in `worker.rs`). Their worker must still fire a timer and
/// take a wake from a plain thread while they run, as it does between rounds: what they lend
/// counts against the round's budget. (Without that the sleep below never ends and the pair
/// stops at its deadline.)
#[test]
fn a_timer_and_a_wake_from_a_thread_are_served_while_two_coroutines_hand_off() {
    let (rounds, by_deadline) = on_workers(1, || {
        let stop = Arc::new(AtomicBool::new(false));
        let (ping_tx, ping_rx) = sync_channel::<u64>(0);
        let (pong_tx, pong_rx) = sync_channel::<u64>(0);
        let deadline = Instant::now() + LATE;
        let stop2 = stop.clone();
        let pinger = coact::spawn(move || {
            let mut rounds = 0u64;
            while !stop2.load(Ordering::Acquire) {
                if Instant::now() >= deadline {
                    return (rounds, true);
                }
                ping_tx.send(rounds).unwrap();
                assert_eq!(pong_rx.recv().unwrap(), rounds + 1);
                rounds += 1;
            }
            (rounds, false)
        });
        let ponger = coact::spawn(move || {
            for v in ping_rx {
                pong_tx.send(v + 1).unwrap();
            }
        });
        sleep(ms(20));
        let (tx, rx) = sync_channel::<()>(0);
        let from_thread = thread::spawn(move || tx.send(()).unwrap());
        rx.recv().unwrap();
        from_thread.join().unwrap();
        stop.store(true, Ordering::Release);
        let r = pinger.join().unwrap();
        ponger.join().unwrap();
        r
    });
    assert!(
        !by_deadline,
        "the pair ran until its deadline: the worker was starved"
    );
    assert!(rounds > 0, "the pair handed off while the timer ran");
}

#[test]
fn tick_delivers_each_period_without_drift() {
    for &n in &WORKER_COUNTS {
        on_workers(n, || {
            let start = Instant::now();
            let ticks = tick(ms(10));
            for k in 1..=5u32 {
                let at = ticks.recv_timeout(LATE).expect("a tick");
                // The k-th tick is due k periods after the start: never earlier.
                assert!(at >= start + ms(10) * k, "tick {k} came early");
            }
            assert!(start.elapsed() >= ms(50));
        });
    }
}

#[test]
fn a_slow_receiver_gets_one_waiting_tick_not_a_burst() {
    on_workers(1, || {
        let ticks = tick(ms(5));
        // The timer under test fires about ten times meanwhile.
        sleep(ms(60));
        assert!(ticks.try_recv().is_ok(), "one tick waits");
        assert!(ticks.try_recv().is_err(), "the missed ones were dropped");
        // The next comes at its own deadline, within a period or so.
        let waited = Instant::now();
        ticks.recv_timeout(LATE).expect("the next tick");
        assert!(waited.elapsed() < LATE);
    });
}

#[test]
fn after_fires_once_then_disconnects() {
    on_workers(2, || {
        let start = Instant::now();
        let once = after(ms(20));
        let at = once.recv_timeout(LATE).expect("it fires");
        assert!(at >= start + ms(20));
        assert_eq!(once.recv_timeout(LATE), Err(RecvTimeoutError::Disconnected));
    });
}

#[test]
fn a_persistent_select_waits_on_ticks_and_a_channel() {
    let (beats, msgs, registrations) = on_workers(2, || {
        let (tx, rx) = channel::<u32>();
        let beat = tick(ms(2));
        for i in 0..10 {
            tx.send(i).unwrap();
        }
        let mut sel = Select::new();
        let b = sel.recv(&beat);
        let m = sel.recv(&rx);
        let (mut beats, mut msgs) = (0, 0);
        while beats < 5 || msgs < 10 {
            let op = sel
                .select_timeout(LATE)
                .expect("a tick or a message within 5 s");
            if op.index() == b {
                op.recv(&beat).unwrap();
                beats += 1;
            } else {
                assert_eq!(op.index(), m);
                op.recv(&rx).unwrap();
                msgs += 1;
            }
        }
        (beats, msgs, sel.registrations())
    });
    assert!(beats >= 5);
    assert_eq!(msgs, 10);
    assert!(registrations <= 2, "{registrations} registrations");
}

#[test]
fn timers_work_on_a_plain_thread() {
    common::bounded(|| {
        let start = Instant::now();
        let once = after(ms(10));
        assert!(once.recv().unwrap() >= start + ms(10));
        let ticks = tick(ms(5));
        for _ in 0..3 {
            ticks.recv_timeout(LATE).expect("a tick");
        }
    });
}

/// Sets a flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn an_alarm_runs_once_no_earlier_than_its_deadline_on_the_worker_that_set_it() {
    for &n in &WORKER_COUNTS {
        let (set_on, ran_on, late) = on_workers(n, || {
            let (tx, rx) = sync_channel(1);
            let start = Instant::now();
            let deadline = start + ms(10);
            let set_on = coact::current_worker();
            let a = alarm(deadline, move |now| {
                tx.try_send((coact::current_worker(), now)).unwrap();
            });
            let (ran_on, now) = rx.recv_timeout(LATE).expect("the alarm ran");
            // Run once, its callback (and sender) is gone.
            assert_eq!(rx.recv_timeout(LATE), Err(RecvTimeoutError::Disconnected));
            assert!(!a.is_pending());
            (
                set_on,
                ran_on,
                now.checked_duration_since(deadline).is_none(),
            )
        });
        assert!(set_on.is_some());
        assert_eq!(set_on, ran_on);
        assert!(!late, "the alarm ran before its deadline");
    }
}

#[test]
fn alarm_every_runs_each_period_until_its_callback_says_stop() {
    on_workers(2, || {
        let (tx, rx) = sync_channel(8);
        let start = Instant::now();
        let mut n = 0u32;
        let beat = alarm_every(ms(5), move |now| {
            n += 1;
            tx.try_send((n, now)).unwrap();
            n < 4
        });
        let got: Vec<_> = rx.iter().collect();
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
        for (k, at) in got {
            assert!(at >= start + ms(5) * k, "run {k} came early");
        }
        assert!(!beat.is_pending());
    });
}

#[test]
fn a_cancelled_alarm_drops_its_callback_at_once_and_never_runs() {
    for &n in &WORKER_COUNTS {
        on_workers(n, || {
            let (tx, rx) = sync_channel::<&str>(4);
            let dropped = Arc::new(AtomicBool::new(false));
            let flag = DropFlag(dropped.clone());
            let tx1 = tx.clone();
            let doomed = alarm(Instant::now() + ms(10), move |_| {
                let _flag = &flag;
                tx1.try_send("cancelled").unwrap();
            });
            assert!(doomed.is_pending());
            // Cancelled from a plain thread; the callback is dropped before `cancel` returns.
            thread::spawn(move || doomed.cancel()).join().unwrap();
            assert!(dropped.load(Ordering::SeqCst));
            let tx2 = tx.clone();
            drop(alarm(Instant::now() + ms(10), move |_| {
                tx2.try_send("dropped").unwrap();
            }));
            alarm(Instant::now() + ms(60), move |_| {
                tx.try_send("marker").unwrap();
            })
            .detach();
            assert_eq!(rx.recv_timeout(LATE), Ok("marker"));
            assert_eq!(rx.recv_timeout(LATE), Err(RecvTimeoutError::Disconnected));
        });
    }
}

#[test]
fn an_alarm_that_tries_to_block_panics_and_its_worker_goes_on() {
    let (blocked, next) = on_workers(1, || {
        let (tx, rx) = sync_channel(2);
        let (_never_tx, never) = sync_channel::<()>(0);
        let now = Instant::now();
        let tx1 = tx.clone();
        alarm(now + ms(1), move |_| {
            let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| never.recv()));
            tx1.try_send(waited.is_err()).unwrap();
        })
        .detach();
        // A callback that panics ends its own alarm, nothing else.
        alarm(now + ms(2), |_| panic!("this alarm panics on purpose")).detach();
        alarm(now + ms(3), move |_| tx.try_send(true).unwrap()).detach();
        let blocked = rx.recv_timeout(LATE).expect("the first alarm");
        let next = rx.recv_timeout(LATE).expect("the third alarm");
        (blocked, next)
    });
    assert!(
        blocked,
        "a blocking recv in an alarm panicked instead of blocking"
    );
    assert!(next);
}

#[test]
fn an_alarm_set_in_an_offload_job_runs_on_a_worker() {
    let on_worker = on_workers(2, || {
        let (tx, rx) = sync_channel(1);
        coact::offload(move || {
            alarm(Instant::now() + ms(1), move |_| {
                tx.try_send(coact::current_worker().is_some()).unwrap();
            })
            .detach();
        });
        rx.recv_timeout(LATE).expect("the alarm ran")
    });
    assert!(on_worker);
}

#[test]
fn alarms_end_with_their_runtime_and_drop_their_callbacks() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    on_workers(2, move || {
        alarm(Instant::now() + Duration::from_secs(3600), move |_| {
            let _flag = &flag;
            unreachable!("an hour passed");
        })
        .detach();
    });
    assert!(dropped.load(Ordering::SeqCst));
}

#[test]
fn alarm_after_runs_after_its_delay_and_one_past_the_end_of_time_never_does() {
    on_workers(2, || {
        let (tx, rx) = sync_channel(1);
        let start = Instant::now();
        alarm_after(ms(10), move |now| tx.try_send(now).unwrap()).detach();
        let at = rx.recv_timeout(LATE).expect("the alarm ran");
        assert!(at >= start + ms(10));
        // Never due: it keeps its callback, and what that owns, until cancelled.
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(dropped.clone());
        let never = alarm_after(Duration::MAX, move |_| {
            let _flag = &flag;
            unreachable!("the end of time came");
        });
        assert!(never.is_pending());
        assert!(!dropped.load(Ordering::SeqCst));
        never.cancel();
        assert!(dropped.load(Ordering::SeqCst));
    });
}
