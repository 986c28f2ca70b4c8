//! Spawned CPU-bound coroutines are spread over more than one worker.
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
