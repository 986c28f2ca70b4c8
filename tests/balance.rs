//! Spawned CPU-bound coroutines are spread over more than one worker; tasks queued behind a
//! coroutine that computes without yielding are taken by an idle peer, and so is a coroutine
//! its spawner forks before computing (spawn, compute, join runs in parallel).
//!
//! Alone in its test binary, and its tests take turns: a peer steals only a backlog that has
//! waited (see "Stealing" in `runtime/src/worker.rs`), so the spread depends on the peer
//! getting a CPU in time, and tests running beside it would compete for the machine's cores.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use coact::sync::mpsc::channel;
use common::{on_workers, spin_work};

/// Held by each test for its whole run (see the module docs).
fn alone() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Computes on the calling coroutine, never blocking or yielding (so its worker runs nothing
/// else meanwhile), until `done()`; fails with `what` after 20 seconds.
fn compute_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        std::hint::black_box(spin_work(1_000));
        assert!(start.elapsed() < Duration::from_secs(20), "{what}");
    }
}

#[test]
fn cpu_bound_coroutines_run_on_more_than_one_worker() {
    let _alone = alone();
    const COROUTINES: usize = 64;
    let seen = on_workers(2, || {
        let handles: Vec<_> = (0..COROUTINES)
            .map(|_| {
                coact::spawn(|| {
                    let mut seen = HashSet::new();
                    for _ in 0..40 {
                        spin_work(20_000);
                        seen.insert(coact::current_worker().expect("inside a coroutine"));
                        coact::yield_now();
                    }
                    seen
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            all.extend(h.join().unwrap());
        }
        all
    });
    assert!(
        seen.iter().all(|&w| w < 2),
        "worker index out of range: {seen:?}"
    );
    assert!(
        seen.len() > 1,
        "64 CPU-bound coroutines all ran on worker(s) {seen:?} of 2"
    );
}

#[test]
fn tasks_queued_behind_a_long_computation_are_taken_by_an_idle_peer() {
    let _alone = alone();
    let (main_worker, ran_on) = on_workers(2, || {
        let (tx, rx) = channel::<usize>();
        // Three detached tasks (as actor activations are): the newest stays in the spawning
        // worker's slot (never stolen), the other two wait where peers can steal them, fewer
        // than the backlog that makes a worker ask for help. (A coroutine spawned with a
        // handle would tell a sleeping peer itself: see the fork test below.)
        let handle = coact::Handle::current().expect("inside a runtime");
        for _ in 0..3 {
            let tx = tx.clone();
            handle.spawn_detached(move || {
                let w = coact::current_worker().expect("inside a coroutine");
                tx.send(w).unwrap();
            });
        }
        let main_worker = coact::current_worker().expect("inside a coroutine");
        // This worker runs nothing else meanwhile, so the two queued tasks can only run if
        // the other worker takes them.
        let mut ran_on = Vec::new();
        compute_until(
            "queued tasks were not taken while their worker computed",
            || {
                ran_on.extend(rx.try_iter());
                ran_on.len() >= 2
            },
        );
        // The third, from the slot, runs once this coroutine waits.
        ran_on.push(rx.recv().unwrap());
        (main_worker, ran_on)
    });
    assert_eq!(ran_on.len(), 3, "{ran_on:?}");
    assert!(
        ran_on[..2].iter().all(|&w| w != main_worker),
        "the tasks that ran while worker {main_worker} computed ran on {ran_on:?}"
    );
}

#[test]
fn a_spawned_coroutine_runs_beside_its_spawner_while_the_spawner_computes() {
    let _alone = alone();
    let (main_worker, forked_on) = on_workers(2, || {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        // Fork and join: the forked half must not wait for the spawner to block.
        let forked = coact::spawn(move || {
            let w = coact::current_worker().expect("inside a coroutine");
            flag.store(true, Ordering::SeqCst);
            w
        });
        let main_worker = coact::current_worker().expect("inside a coroutine");
        compute_until(
            "the spawned coroutine did not run while its spawner computed",
            || ran.load(Ordering::SeqCst),
        );
        (main_worker, forked.join().unwrap())
    });
    assert_ne!(main_worker, forked_on);
}
