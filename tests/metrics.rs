//! `Handle::metrics`: a runtime's figures per worker.
//!
//! Proves: parked coroutines count as stacks in use on their worker, and stop counting once
//! they finish; alarms set on a worker are counted there; turns and idle sleeps grow while
//! the runtime idles through a timer; the worker of the coroutine taking the snapshot shows it
//! running; a runtime read from a plain thread gives one entry per worker.

mod common;

use std::time::{Duration, Instant};

use coact::sync::mpsc::{channel, sync_channel};
use common::on_workers;

#[test]
fn parked_coroutines_are_stacks_in_use_until_they_finish() {
    let (parked, after) = on_workers(1, || {
        let h = coact::Handle::current().unwrap();
        let (open, gate) = sync_channel::<()>(0);
        let gate = std::sync::Arc::new(coact::sync::Mutex::new(gate));
        let (ready_tx, ready) = channel::<()>();
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let (gate, ready_tx) = (gate.clone(), ready_tx.clone());
                coact::spawn(move || {
                    ready_tx.send(()).unwrap();
                    let _ = gate.lock().unwrap().recv();
                })
            })
            .collect();
        for _ in 0..100 {
            ready.recv().unwrap();
        }
        let parked = h.metrics().workers[0].stacks;
        for _ in 0..100 {
            open.send(()).unwrap();
        }
        for w in waiters {
            w.join().unwrap();
        }
        (parked, h.metrics().workers[0].stacks)
    });
    // The 100, and the coroutine asking.
    assert!(
        parked >= 101,
        "{parked} stacks while 100 coroutines were parked"
    );
    // The one asking, and at most one kept to start the next task on.
    assert!(after <= 2, "{after} stacks after they finished");
}

#[test]
fn alarms_are_counted_on_the_worker_that_set_them() {
    let (counted, worker) = on_workers(2, || {
        let far = Instant::now() + Duration::from_secs(3600);
        let alarms: Vec<_> = (0..10).map(|_| coact::time::alarm(far, |_| {})).collect();
        let w = coact::current_worker().unwrap();
        let m = coact::Handle::current().unwrap().metrics();
        drop(alarms);
        (m.workers[w].alarms, w)
    });
    assert_eq!(counted, 10, "on worker {worker}");
}

#[test]
fn turns_and_sleeps_grow_while_the_runtime_idles_through_a_timer() {
    let (before, after) = on_workers(1, || {
        let h = coact::Handle::current().unwrap();
        let before = h.metrics().workers[0].clone();
        coact::time::sleep(Duration::from_millis(20));
        (before, h.metrics().workers[0].clone())
    });
    assert!(after.turns > before.turns);
    assert!(
        after.sleeps > before.sleeps,
        "the worker slept through the timer"
    );
}

#[test]
fn running_shows_the_askers_worker() {
    let rt = common::runtime(2);
    let (m, w) = rt.block_on(|| {
        let m = coact::Handle::current().unwrap().metrics();
        (m, coact::current_worker().unwrap())
    });
    assert!(m.workers[w].running);
    assert!(m.workers[w].stacks >= 1);
    // From a plain thread (the coroutine that ran `block_on`'s closure may still be on its
    // way out: whether anything runs is not asked here).
    let outside = rt.metrics();
    assert_eq!(outside.workers.len(), 2);
    assert_eq!(outside.injected_tasks, 0);
}
