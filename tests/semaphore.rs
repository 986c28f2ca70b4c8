//! `coact::sync::Semaphore`: at most N permits out, waiters served in arrival order.
//!
//! Proves: coroutines (on 1, 2 and 4 workers) and plain threads taking 1–3 permits at a time
//! never hold more than there are, and every permit comes back; a large request at the head of
//! the queue holds back later small ones, and nobody jumps the queue with `try_acquire`; a
//! request that times out at the head lets those behind it through; owned permits move into
//! other coroutines, `forget` keeps permits, `add_permits` serves waiters; coroutines parked
//! in `acquire` when the runtime ends are unwound and leave the queue.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use coact::sync::mpsc::channel;
use coact::sync::Semaphore;
use common::{on_workers, DropCounter, WORKER_COUNTS};

const GENEROUS: Duration = Duration::from_secs(30);

#[test]
fn holders_never_exceed_the_permits_and_every_permit_comes_back() {
    const PERMITS: usize = 5;
    for n in WORKER_COUNTS {
        let sem = Arc::new(Semaphore::new(PERMITS));
        let held = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let take = {
            let (sem, held, peak) = (sem.clone(), held.clone(), peak.clone());
            move |i: usize| {
                for round in 0..20 {
                    let want = 1 + (i + round) % 3;
                    let permit = sem.acquire_many(want);
                    let now = held.fetch_add(want, Ordering::SeqCst) + want;
                    peak.fetch_max(now, Ordering::SeqCst);
                    coact::yield_now();
                    held.fetch_sub(want, Ordering::SeqCst);
                    drop(permit);
                }
            }
        };
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let take = take.clone();
                thread::spawn(move || take(1_000 + i))
            })
            .collect();
        on_workers(n, move || {
            let handles: Vec<_> = (0..100)
                .map(|i| {
                    let take = take.clone();
                    coact::spawn(move || take(i))
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        });
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= PERMITS);
        assert_eq!(sem.available_permits(), PERMITS);
    }
}

#[test]
fn a_large_request_at_the_head_holds_back_smaller_ones_behind_it() {
    // One worker: a coroutine runs until it parks, so "it has queued" is known without a wait.
    let order = on_workers(1, || {
        let sem = Arc::new(Semaphore::new(2));
        let (p1, p2) = (sem.acquire(), sem.acquire());
        let (events, seen) = channel();
        let (queued_tx, queued) = channel();
        let spawn_waiter = |name: &'static str, want: usize| {
            let (sem, events, queued_tx) = (sem.clone(), events.clone(), queued_tx.clone());
            coact::spawn(move || {
                queued_tx.send(()).unwrap();
                let permit = sem.acquire_many(want);
                events.send(name).unwrap();
                drop(permit);
            })
        };
        let a = spawn_waiter("A wants 2", 2);
        queued.recv().unwrap();
        drop(p1);
        // One permit is free, but A waits for two: nobody may take it ahead of A.
        assert!(sem.try_acquire().is_none());
        let b = spawn_waiter("B wants 1", 1);
        queued.recv().unwrap();
        drop(p2);
        a.join().unwrap();
        b.join().unwrap();
        drop(events);
        assert_eq!(sem.available_permits(), 2);
        seen.iter().collect::<Vec<_>>()
    });
    assert_eq!(order, ["A wants 2", "B wants 1"]);
}

#[test]
fn a_request_that_times_out_at_the_head_lets_those_behind_through() {
    // One worker, so that the large request has queued when the permit is given back.
    on_workers(1, || {
        let sem = Arc::new(Semaphore::new(1));
        let held = sem.acquire();
        let (queued_tx, queued) = channel();
        let big = {
            let (sem, queued_tx) = (sem.clone(), queued_tx.clone());
            coact::spawn(move || {
                queued_tx.send(()).unwrap();
                let start = Instant::now();
                // More than there are: it can only time out (the timer under test).
                let got = sem
                    .acquire_many_timeout(2, Duration::from_millis(50))
                    .is_some();
                (got, start.elapsed())
            })
        };
        queued.recv().unwrap();
        drop(held);
        let small = {
            let sem = sem.clone();
            coact::spawn(move || sem.acquire_timeout(GENEROUS).is_some())
        };
        let (got, waited) = big.join().unwrap();
        assert!(!got);
        assert!(waited >= Duration::from_millis(50));
        assert!(small.join().unwrap(), "served once the large request left");
        assert_eq!(sem.available_permits(), 1);
    });
}

#[test]
fn owned_permits_move_forget_keeps_and_add_permits_serves() {
    on_workers(2, || {
        let sem = Arc::new(Semaphore::new(2));
        let permit = sem.acquire_owned();
        assert_eq!(permit.num_permits(), 1);
        let moved = coact::spawn(move || {
            let n = permit.semaphore().available_permits();
            drop(permit);
            n
        });
        assert_eq!(moved.join().unwrap(), 1);
        assert_eq!(sem.available_permits(), 2);
        sem.acquire().forget();
        assert_eq!(sem.available_permits(), 1);
        let all = sem.acquire_many_owned(1);
        let waiter = {
            let sem = sem.clone();
            coact::spawn(move || sem.acquire_many(3).num_permits())
        };
        sem.add_permits(2);
        drop(all);
        assert_eq!(waiter.join().unwrap(), 3);
        assert_eq!(sem.available_permits(), 3);
        assert!(sem.try_acquire_owned().is_some());
    });
}

#[test]
fn coroutines_parked_in_acquire_are_unwound_when_the_runtime_ends() {
    let sem = Arc::new(Semaphore::new(1));
    let held = sem.acquire();
    let drops = Arc::new(AtomicUsize::new(0));
    let rt = common::runtime(2);
    let (queued_tx, queued) = channel();
    for _ in 0..10 {
        let (sem, drops, queued_tx) = (sem.clone(), drops.clone(), queued_tx.clone());
        let _ = rt.spawn(move || {
            let _counter = DropCounter::new(&drops);
            queued_tx.send(()).unwrap();
            let _permit = sem.acquire();
            unreachable!("the permit is held outside the runtime");
        });
    }
    for _ in 0..10 {
        queued.recv_timeout(GENEROUS).unwrap();
    }
    drop(rt);
    assert_eq!(drops.load(Ordering::SeqCst), 10);
    drop(held);
    // Nobody is left in the queue: the permit is free for a plain `try_acquire`.
    assert!(sem.try_acquire().is_some());
}
