//! Spawned CPU-bound coroutines are spread over more than one worker, and tasks queued
//! behind a coroutine that computes without yielding are taken by an idle peer.
//!
//! Alone in its test binary: a peer steals only a backlog that has waited (see "Stealing" in
//! `runtime/src/worker.rs`), so the spread depends on the peer getting a CPU in time, and the
//! other tests of a shared binary would compete for the machine's cores with it.

mod common;

use std::collections::HashSet;

use common::{on_workers, spin_work};

#[test]
fn cpu_bound_coroutines_run_on_more_than_one_worker() {
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let (main_worker, ran_on) = on_workers(2, || {
        let done = Arc::new(AtomicUsize::new(0));
        let ran_on = Arc::new(Mutex::new(Vec::new()));
        // Three tasks: the newest stays in the spawning worker's slot (never stolen), the
        // other two wait in its deque, fewer than the backlog that makes a worker ask for help.
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let (done, ran_on) = (done.clone(), ran_on.clone());
                coact::spawn(move || {
                    let w = coact::current_worker().expect("inside a coroutine");
                    ran_on.lock().unwrap().push(w);
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        let main_worker = coact::current_worker().expect("inside a coroutine");
        // Compute without blocking or yielding: this worker runs nothing else meanwhile, so
        // the two queued tasks can only run if the other worker takes them. Bounded: without
        // that, this loop would only end at the limit.
        let start = Instant::now();
        while done.load(Ordering::SeqCst) < 2 {
            std::hint::black_box(spin_work(1_000));
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "queued tasks were not taken while their worker computed"
            );
        }
        let ran_on = ran_on.lock().unwrap().clone();
        for h in handles {
            h.join().unwrap();
        }
        (main_worker, ran_on)
    });
    assert!(ran_on.len() >= 2, "{ran_on:?}");
    assert!(
        ran_on[..2].iter().all(|&w| w != main_worker),
        "the tasks that ran while worker {main_worker} computed ran on {ran_on:?}"
    );
}

#[test]
fn a_spawned_coroutine_runs_beside_its_spawner_while_the_spawner_computes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

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
        let start = Instant::now();
        while !ran.load(Ordering::SeqCst) {
            std::hint::black_box(spin_work(1_000));
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the spawned coroutine did not run while its spawner computed"
            );
        }
        (main_worker, forked.join().unwrap())
    });
    assert_ne!(main_worker, forked_on);
}
