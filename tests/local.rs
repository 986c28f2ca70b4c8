//! `coact::coroutine_local!`: values that belong to one coroutine.
//!
//! Proves (on 1, 2 and 4 workers): many coroutines on one worker that set a value and park keep
//! their own values across the park; a value is made on first use and dropped exactly once
//! when its coroutine ends, before a `join` of that coroutine returns, in that coroutine (its
//! destructor may block); a coroutine that runs after another on the same stack starts fresh;
//! an initializer may use other coroutine locals; a plain thread gets its own value; a
//! coroutine cancelled at the runtime's end drops its values too.

mod common;

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use coact::sync::mpsc::{channel, sync_channel, Sender};
use common::{on_workers, WORKER_COUNTS};

coact::coroutine_local! {
    static ID: Cell<u64> = Cell::new(0);
}

#[test]
fn each_coroutine_keeps_its_own_value_across_parks() {
    for n in WORKER_COUNTS {
        let bad = on_workers(n, || {
            let handles: Vec<_> = (1..=200u64)
                .map(|id| {
                    coact::spawn(move || {
                        let mut bad = 0;
                        for round in 0..20 {
                            ID.with(|v| v.set(id * 100 + round));
                            coact::yield_now();
                            coact::time::sleep(Duration::from_micros(50));
                            if ID.with(Cell::get) != id * 100 + round {
                                bad += 1;
                            }
                        }
                        bad
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
        });
        assert_eq!(bad, 0, "{bad} reads saw another coroutine's value");
    }
}

/// Counts its drops, and says on which coroutine it was dropped.
struct Tracked {
    drops: Arc<AtomicUsize>,
    dropped_on: Arc<StdMutex<Vec<Option<coact::CoroutineId>>>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // A destructor that parks: it runs in its coroutine, so it may.
        coact::time::sleep(Duration::from_millis(1));
        self.dropped_on
            .lock()
            .unwrap()
            .push(coact::current_coroutine());
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

coact::coroutine_local! {
    static TRACKED: RefCell<Option<Tracked>> = RefCell::new(None);
}

#[test]
fn a_value_is_dropped_once_in_its_coroutine_before_join_returns() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let drops = Arc::new(AtomicUsize::new(0));
            let dropped_on = Arc::new(StdMutex::new(Vec::new()));
            let (id_tx, id_rx) = sync_channel(1);
            let h = {
                let (drops, dropped_on) = (drops.clone(), dropped_on.clone());
                coact::spawn(move || {
                    TRACKED.with(|t| *t.borrow_mut() = Some(Tracked { drops, dropped_on }));
                    id_tx.send(coact::current_coroutine()).unwrap();
                })
            };
            let id = id_rx.recv().unwrap();
            h.join().unwrap();
            assert_eq!(
                drops.load(Ordering::SeqCst),
                1,
                "dropped before join returned"
            );
            assert_eq!(*dropped_on.lock().unwrap(), vec![id]);
            // Detached coroutines drop theirs too.
            let (done_tx, done) = channel::<()>();
            {
                let (drops, dropped_on) = (drops.clone(), dropped_on.clone());
                coact::spawn_detached(move || {
                    TRACKED.with(|t| *t.borrow_mut() = Some(Tracked { drops, dropped_on }));
                    keep_until_dropped(done_tx);
                });
            }
            assert!(done.recv().is_err(), "the sender went with the coroutine");
            let start = std::time::Instant::now();
            while drops.load(Ordering::SeqCst) < 2 && start.elapsed() < Duration::from_secs(30) {
                coact::yield_now();
            }
            assert_eq!(drops.load(Ordering::SeqCst), 2);
        });
    }
}

coact::coroutine_local! {
    static KEEP: RefCell<Option<Sender<()>>> = RefCell::new(None);
}

/// Keeps `tx` as a coroutine-local value: it is dropped with the coroutine's values.
fn keep_until_dropped(tx: Sender<()>) {
    KEEP.with(|k| *k.borrow_mut() = Some(tx));
}

#[test]
fn a_coroutine_run_after_another_on_the_same_stack_starts_fresh() {
    // One worker, many short coroutines: most run on a stack another just finished on.
    let fresh = on_workers(1, || {
        let handles: Vec<_> = (0..1_000u64)
            .map(|i| {
                coact::spawn(move || {
                    let was = ID.with(Cell::get);
                    ID.with(|v| v.set(i + 1));
                    was == 0
                })
            })
            .collect();
        handles
            .into_iter()
            .filter(|_| true)
            .all(|h| h.join().unwrap())
    });
    assert!(fresh, "a coroutine saw a value of one that ran before it");
}

coact::coroutine_local! {
    static BASE: Cell<u64> = Cell::new(40);
    static DERIVED: Cell<u64> = Cell::new(BASE.with(Cell::get) + 2);
}

#[test]
fn an_initializer_may_use_other_coroutine_locals() {
    let v = on_workers(2, || {
        coact::spawn(|| DERIVED.with(Cell::get)).join().unwrap()
    });
    assert_eq!(v, 42);
}

#[test]
fn a_plain_thread_has_its_own_value() {
    let rt = common::runtime(2);
    ID.with(|v| v.set(7));
    let in_coroutine = rt.block_on(|| ID.with(Cell::get));
    let other_thread = std::thread::spawn(|| ID.with(Cell::get)).join().unwrap();
    assert_eq!((ID.with(Cell::get), in_coroutine, other_thread), (7, 0, 0));
}

#[test]
fn a_coroutine_cancelled_at_the_runtime_end_drops_its_values() {
    let count = Arc::new(AtomicUsize::new(0));
    let (drops, dropped_on) = (count.clone(), Arc::new(StdMutex::new(Vec::new())));
    let rt = common::runtime(2);
    common::park_until_runtime_ends(&rt, move || {
        TRACKED.with(|t| *t.borrow_mut() = Some(Tracked { drops, dropped_on }));
    });
    drop(rt);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}
