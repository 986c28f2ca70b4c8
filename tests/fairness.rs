//! Fairness: a coroutine whose blocking calls never have to block does not keep its worker to
//! itself.
//!
//! Proves, on one worker: a loop of `recv`, of `send` on a bounded channel, of `select!`, of
//! `Select::select`, each over channels that are always ready, and of socket reads and writes
//! that never have to wait, still lets another coroutine of
//! the worker start and its timer fire (every blocking call spends a unit of a per-resume
//! budget and yields when it is spent). A `try_recv` loop is the caller's own busy loop and is
//! not checked here. Each loop is capped at a step count the sleeper's wake ends long before:
//! reaching the cap is the failure.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::io::{Read, Write};

use coact::net::unix::UnixStream;
use coact::select;
use coact::select::Select;
use coact::sync::mpsc::{channel, sync_channel};
use common::on_workers;

/// Steps a busy loop may take; at debug speed tens of seconds, so the sleeper's 1 ms timer
/// ends a fair loop a great many steps earlier.
const CAP: u64 = 20_000_000;

/// Runs `step` in a loop on one worker beside a coroutine that sleeps 1 ms and then raises a
/// flag; returns the steps taken until the flag was seen (or `CAP`).
fn steps_until_a_sleeper_wakes(
    mut make_step: impl FnMut() -> Box<dyn FnMut()> + Send + 'static,
) -> u64 {
    on_workers(1, move || {
        let woke = Arc::new(AtomicBool::new(false));
        let sleeper = {
            let woke = woke.clone();
            coact::spawn(move || {
                coact::time::sleep(Duration::from_millis(1));
                woke.store(true, Ordering::Relaxed);
            })
        };
        let mut step = make_step();
        let mut steps = 0;
        while !woke.load(Ordering::Relaxed) && steps < CAP {
            step();
            steps += 1;
        }
        sleeper.join().unwrap();
        steps
    })
}

fn assert_fair(steps: u64) {
    assert!(
        steps < CAP,
        "the loop ran {steps} steps without letting the sleeper's timer fire"
    );
}

#[test]
fn a_recv_loop_that_never_waits_lets_a_timer_fire() {
    assert_fair(steps_until_a_sleeper_wakes(|| {
        let (tx, rx) = channel::<u64>();
        tx.send(0).unwrap();
        Box::new(move || {
            let v = rx.recv().unwrap();
            tx.send(v + 1).unwrap();
        })
    }));
}

#[test]
fn a_bounded_send_loop_that_never_waits_lets_a_timer_fire() {
    assert_fair(steps_until_a_sleeper_wakes(|| {
        let (tx, rx) = sync_channel::<u64>(1);
        Box::new(move || {
            tx.send(1).unwrap();
            rx.try_recv().unwrap();
        })
    }));
}

#[test]
fn a_select_macro_loop_that_never_waits_lets_a_timer_fire() {
    assert_fair(steps_until_a_sleeper_wakes(|| {
        let (tx, rx) = channel::<u64>();
        let (other_tx, other) = channel::<u64>();
        tx.send(0).unwrap();
        Box::new(move || {
            let _keep_open = &other_tx;
            select! {
                recv(rx) -> v => tx.send(v.unwrap() + 1).unwrap(),
                recv(other) -> _ => unreachable!(),
            }
        })
    }));
}

#[test]
fn a_persistent_select_loop_that_never_waits_lets_a_timer_fire() {
    assert_fair(steps_until_a_sleeper_wakes(|| {
        let (tx, rx) = channel::<u64>();
        let rx: &'static _ = Box::leak(Box::new(rx));
        tx.send(0).unwrap();
        let mut sel = Select::new();
        sel.recv(rx);
        Box::new(move || {
            let op = sel.select();
            let v = op.recv(rx).unwrap();
            tx.send(v + 1).unwrap();
        })
    }));
}

#[test]
fn a_socket_loop_that_never_waits_lets_a_timer_fire() {
    assert_fair(steps_until_a_sleeper_wakes(|| {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        Box::new(move || {
            a.write_all(b"x").unwrap();
            let mut byte = [0u8; 1];
            b.read_exact(&mut byte).unwrap();
        })
    }));
}

/// Spawns `n` coroutines on worker 0 that compute in chunks, yielding after each and counting
/// them in `chunks`, until `stop` (bounded: only a wake or timer that never comes would keep
/// them going to the end).
fn spawn_busy(
    n: usize,
    chunks: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
) -> Vec<coact::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let (chunks, stop) = (chunks.clone(), stop.clone());
            coact::spawn_on(0, move || {
                for _ in 0..2_000_000u32 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::hint::black_box(common::spin_work(2_000));
                    chunks.fetch_add(1, Ordering::Relaxed);
                    coact::yield_now();
                }
            })
        })
        .collect()
}

/// The median of what the trials counted.
fn median(mut lags: Vec<u64>) -> u64 {
    lags.sort_unstable();
    lags[lags.len() / 2]
}

/// A wake from another worker reaches a worker whose coroutines run long between yields (CPU
/// work in chunks) within a few resumes: the worker takes in wake-ups between resumes, not only
/// once per round of up to 61. Counted in chunks, not time: each trial records how many chunks
/// the busy coroutines finished between the send and the wake. (The coroutines are placed with
/// `spawn_on`, so they start at once, between resumes, too.)
#[test]
fn a_wake_from_another_worker_does_not_wait_for_a_busy_round_to_end() {
    const BUSY: usize = 4;
    const TRIALS: usize = 20;
    let lags = on_workers(2, || {
        let chunks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let busy = spawn_busy(BUSY, &chunks, &stop);
        let (tx, rx) = sync_channel::<u64>(0);
        let (ack_tx, ack) = channel::<()>();
        let waiter = {
            let chunks = chunks.clone();
            coact::spawn_on(0, move || {
                let mut lags = Vec::new();
                for _ in 0..TRIALS {
                    let sent_at = rx.recv().unwrap();
                    lags.push(chunks.load(Ordering::Relaxed) - sent_at);
                    ack_tx.send(()).unwrap();
                }
                lags
            })
        };
        let sender = coact::spawn_on(1, move || {
            for _ in 0..TRIALS {
                tx.send(chunks.load(Ordering::Relaxed)).unwrap();
                ack.recv().unwrap();
            }
        });
        sender.join().unwrap();
        let lags = waiter.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        busy.into_iter().for_each(|h| h.join().unwrap());
        lags
    });
    // The median: a trial whose sender thread was preempted between reading the count and
    // sending counts the chunks run meanwhile too. Measured: 4–6 chunks a trial (the busy
    // coroutines ahead of the waiter in the run queue); 58–60 when wake-ups were taken in
    // once a round.
    assert!(
        median(lags.clone()) <= 4 * BUSY as u64,
        "wakes lagged by {lags:?} chunks"
    );
}

/// A timer that falls due while a worker's coroutines run long between yields fires within a
/// few resumes, not at the end of a round of up to 61: the round looks at the clock every 8th
/// resume while a timer is pending. Counted in chunks, as above.
#[test]
fn a_timer_due_in_a_busy_round_fires_within_a_few_resumes() {
    const BUSY: usize = 4;
    const TRIALS: usize = 20;
    let lags = on_workers(1, || {
        let chunks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let busy = spawn_busy(BUSY, &chunks, &stop);
        let mut lags = Vec::new();
        for _ in 0..TRIALS {
            let before = chunks.load(Ordering::Relaxed);
            // Due at once: what is measured is how long the worker takes to notice.
            coact::time::sleep(Duration::from_micros(1));
            lags.push(chunks.load(Ordering::Relaxed) - before);
        }
        stop.store(true, Ordering::Relaxed);
        busy.into_iter().for_each(|h| h.join().unwrap());
        lags
    });
    // Up to 8 resumes before the clock is read, then the busy coroutines ahead in the queue.
    // Measured: 7–10 chunks a trial; 60–62 when timers were looked at once a round.
    assert!(
        median(lags.clone()) <= 6 * BUSY as u64,
        "timers fired {lags:?} chunks late"
    );
}
