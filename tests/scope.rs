//! `coact::scope`: coroutines that borrow from the caller's stack.
//!
//! Proves (on 1, 2 and 4 workers): scoped coroutines read and write borrowed data and every one
//! has finished when `scope` returns; `join` gives a value or the panic, and a joined panic
//! does not reach the scope; an unjoined panic makes the scope panic, but only after the others
//! finished; a panic in the scope's own closure waits for the coroutines, then propagates;
//! scoped coroutines spawn more on the same scope; `scope` works in an offload job and refuses
//! a thread with no runtime; when the runtime ends while a scope waits on a coroutine that
//! never finishes, that coroutine is unwound before the scope's caller unwinds past what it
//! borrows.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coact::sync::mpsc::{channel, sync_channel};
use common::{bounded, on_workers, WORKER_COUNTS};

#[test]
fn scoped_coroutines_borrow_and_all_finish_before_scope_returns() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let mut slots = vec![0u64; 1_000];
            let finished = AtomicUsize::new(0);
            let base = 7u64;
            coact::scope(|s| {
                for (i, slot) in slots.iter_mut().enumerate() {
                    let (finished, base) = (&finished, &base);
                    s.spawn(move || {
                        // A park or two on the way, so that coroutines interleave.
                        coact::yield_now();
                        *slot = i as u64 * *base;
                        finished.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
            assert_eq!(finished.load(Ordering::Relaxed), 1_000);
            assert!(slots.iter().enumerate().all(|(i, v)| *v == i as u64 * 7));
        });
    }
}

#[test]
fn join_gives_the_value_or_the_panic_and_a_joined_panic_stays_there() {
    on_workers(2, || {
        let text = String::from("borrowed");
        let (len, err) = coact::scope(|s| {
            let ok = s.spawn(|| text.len());
            let bad = s.spawn(|| -> usize { panic!("joined on purpose") });
            (ok.join().unwrap(), bad.join().unwrap_err())
        });
        assert_eq!(len, 8);
        assert_eq!(err.downcast_ref::<&str>(), Some(&"joined on purpose"));
    });
}

#[test]
fn an_unjoined_panic_makes_the_scope_panic_after_the_others_finished() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let finished = AtomicBool::new(false);
            let (release, gate) = sync_channel::<()>(0);
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                coact::scope(|s| {
                    s.spawn(|| panic!("unjoined on purpose"));
                    let finished = &finished;
                    s.spawn(move || {
                        gate.recv().unwrap();
                        finished.store(true, Ordering::Relaxed);
                    });
                    release.send(()).unwrap();
                })
            }));
            let payload = outcome.expect_err("the scope panics");
            assert_eq!(
                payload.downcast_ref::<&str>(),
                Some(&"coact: a scoped coroutine panicked")
            );
            assert!(
                finished.load(Ordering::Relaxed),
                "the other one finished first"
            );
        });
    }
}

#[test]
fn a_panic_in_the_scope_closure_waits_for_the_coroutines_then_propagates() {
    on_workers(2, || {
        let finished = AtomicBool::new(false);
        let (release, gate) = sync_channel::<()>(1);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            coact::scope(|s| {
                let finished = &finished;
                s.spawn(move || {
                    gate.recv().unwrap();
                    finished.store(true, Ordering::Relaxed);
                });
                release.send(()).unwrap();
                panic!("the scope's closure panics");
            })
        }));
        let payload = outcome.expect_err("the panic comes out");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"the scope's closure panics")
        );
        assert!(finished.load(Ordering::Relaxed));
    });
}

#[test]
fn scoped_coroutines_spawn_more_on_the_same_scope() {
    on_workers(2, || {
        let count = AtomicUsize::new(0);
        coact::scope(|s| {
            for _ in 0..10 {
                s.spawn(|| {
                    for _ in 0..10 {
                        s.spawn(|| count.fetch_add(1, Ordering::Relaxed));
                    }
                });
            }
        });
        assert_eq!(count.load(Ordering::Relaxed), 100);
    });
}

#[test]
fn scope_works_in_an_offload_job_and_not_on_a_thread_with_no_runtime() {
    let sum = on_workers(2, || {
        coact::offload(|| {
            let data: Vec<u64> = (1..=100).collect();
            coact::scope(|s| {
                let halves: Vec<_> = data
                    .chunks(50)
                    .map(|c| s.spawn(move || c.iter().sum::<u64>()))
                    .collect();
                halves.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            })
        })
    });
    assert_eq!(sum, 5050);
    let refused = bounded(|| catch_unwind(|| coact::scope(|_| ())).is_err());
    assert!(refused, "scope outside a runtime panics");
}

/// Raises `violated` if dropped while the scoped coroutine still holds its borrow.
struct Borrowed {
    in_use: AtomicBool,
    violated: Arc<AtomicBool>,
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        if self.in_use.load(Ordering::SeqCst) {
            self.violated.store(true, Ordering::SeqCst);
        }
    }
}

/// Lowers the flag of the `Borrowed` it borrows when it is dropped (by the unwinding).
struct Holder<'a>(&'a Borrowed);

impl Drop for Holder<'_> {
    fn drop(&mut self) {
        // A little work in the destructor, so that a caller that did not wait would get ahead.
        for _ in 0..3 {
            coact::yield_now();
        }
        self.0.in_use.store(false, Ordering::SeqCst);
    }
}

#[test]
fn when_the_runtime_ends_a_waiting_scope_unwinds_only_after_its_coroutines() {
    for n in WORKER_COUNTS {
        let violated = Arc::new(AtomicBool::new(false));
        let unwound = Arc::new(AtomicUsize::new(0));
        let rt = common::runtime(n);
        let (started_tx, started) = channel::<()>();
        {
            let (violated, unwound) = (violated.clone(), unwound.clone());
            // Detached: its JoinHandle would wait for it, and it waits forever.
            let _ = rt.spawn(move || {
                let borrowed = Borrowed {
                    in_use: AtomicBool::new(true),
                    violated,
                };
                let (_never_tx, never) = channel::<()>();
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    coact::scope(|s| {
                        let borrowed = &borrowed;
                        s.spawn(move || {
                            let _holder = Holder(borrowed);
                            started_tx.send(()).unwrap();
                            let _ = never.recv(); // until the runtime ends
                        });
                    })
                }));
                assert!(outcome.is_err(), "cancelled, so unwound");
                unwound.fetch_add(1, Ordering::SeqCst);
            });
        }
        started
            .recv_timeout(Duration::from_secs(30))
            .expect("the scoped coroutine started");
        drop(rt);
        assert!(
            !violated.load(Ordering::SeqCst),
            "the scope's caller dropped what a coroutine still borrowed"
        );
        assert_eq!(unwound.load(Ordering::SeqCst), 1);
    }
}
