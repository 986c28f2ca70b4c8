//! When the runtime ends, every coroutine still alive is cancelled: its stack unwinds from the
//! point where it was parked and its destructors run; the code after the blocking call never runs.
//!
//! Each test parks coroutines in one blocking operation — `recv`, `send` on a full channel (and
//! on a rendezvous), `select`, a one-hour `sleep`, `Mutex::lock` on a mutex held by another
//! parked coroutine, `Condvar::wait`, `RwLock::read` and `write`, `Barrier::wait`,
//! `JoinHandle::join`, `offload` — with whatever could release them (senders, receivers) kept
//! alive *outside* the runtime, so that cancellation is the only way out. Each coroutine owns a `DropCounter`; after
//! `drop(Runtime)` (or the end of `coact::run`) the count must be exact.
//!
//! Also: a panicking coroutine is reported through `join` as `Err(payload)` and the runtime keeps
//! working; a panic in `coact::run`'s closure propagates out of `coact::run`.

mod common;

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coact::panic_text;
use coact::select::Select;
use coact::sync::mpsc::{channel, sync_channel, Sender};
use coact::sync::{oneshot, Barrier, Condvar, Mutex, RwLock};
use common::{bounded, runtime, DropCounter};

/// What a test's setup hands to the coroutines it parks.
#[derive(Clone)]
struct Probe {
    /// Incremented by each coroutine's `DropCounter` when its stack unwinds.
    drops: Arc<AtomicUsize>,
    /// Incremented by code placed after a blocking call; cancellation must never let it run.
    resumed: Arc<AtomicUsize>,
}

impl Probe {
    fn new() -> Self {
        Probe {
            drops: Arc::new(AtomicUsize::new(0)),
            resumed: Arc::new(AtomicUsize::new(0)),
        }
    }
    fn guard(&self) -> DropCounter {
        DropCounter::new(&self.drops)
    }
    fn resumed_after_block(&self) {
        self.resumed.fetch_add(1, Ordering::SeqCst);
    }
    fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
    fn resumed(&self) -> usize {
        self.resumed.load(Ordering::SeqCst)
    }
}

/// Things that must outlive the runtime so that nothing but cancellation releases the parked
/// coroutines.
type Keep = Box<dyn Any + Send>;

/// A setup runs as the first coroutine: it parks some coroutines (waiting for each to say it is
/// about to block), and returns what must be kept alive plus how many guards it created.
type Setup = fn(&Probe) -> (Keep, usize);

/// Runs `setup` on a runtime with `workers` workers, then drops the runtime and checks that
/// every guard was dropped exactly once and no parked call returned.
fn cancelled_by_runtime_drop(workers: usize, setup: Setup) {
    bounded(move || {
        let probe = Probe::new();
        let rt = runtime(workers);
        let p = probe.clone();
        let (keep, guards) = rt.block_on(move || setup(&p));
        assert_eq!(
            probe.drops(),
            0,
            "a parked coroutine was dropped while the runtime lived"
        );
        drop(rt);
        assert_eq!(
            probe.drops(),
            guards,
            "workers={workers}: destructors run after drop(Runtime)"
        );
        assert_eq!(
            probe.resumed(),
            0,
            "workers={workers}: a parked call returned during shutdown"
        );
        drop(keep);
        assert_eq!(probe.drops(), guards);
    });
}

/// Same with `coact::run` (default worker count): the coroutines are cancelled before it returns.
fn cancelled_by_end_of_run(setup: Setup) {
    bounded(move || {
        let probe = Probe::new();
        let p = probe.clone();
        let (keep, guards) = coact::run(move || setup(&p));
        assert_eq!(
            probe.drops(),
            guards,
            "destructors run before coact::run returns"
        );
        assert_eq!(probe.resumed(), 0, "a parked call returned during shutdown");
        drop(keep);
    });
}

fn check(setup: Setup) {
    for workers in [1, 2] {
        cancelled_by_runtime_drop(workers, setup);
    }
    cancelled_by_end_of_run(setup);
}

/// Spawns a coroutine that creates a guard, says "ready", then runs `block`.
fn park<F>(probe: &Probe, ready: &Sender<()>, block: F) -> coact::JoinHandle<()>
where
    F: FnOnce() + Send + 'static,
{
    let probe = probe.clone();
    let ready = ready.clone();
    coact::spawn(move || {
        let _guard = probe.guard();
        ready.send(()).unwrap();
        block();
        probe.resumed_after_block();
    })
}

// ---------------------------------------------------------------------------------------------
// One blocking operation per test
// ---------------------------------------------------------------------------------------------

fn setup_recv(probe: &Probe) -> (Keep, usize) {
    let (ready_tx, ready_rx) = channel();
    let (tx, rx) = channel::<u32>();
    let (stx, srx) = sync_channel::<u32>(0);
    let h1 = park(probe, &ready_tx, move || {
        let _ = rx.recv();
    });
    let h2 = park(probe, &ready_tx, move || {
        let _ = srx.recv_timeout(Duration::from_secs(3600));
    });
    ready_rx.recv().unwrap();
    ready_rx.recv().unwrap();
    (Box::new((tx, stx, h1, h2)), 2)
}

#[test]
fn coroutine_parked_in_recv_is_unwound() {
    check(setup_recv);
}

fn setup_oneshot(probe: &Probe) -> (Keep, usize) {
    let (ready_tx, ready_rx) = channel();
    let (tx, rx) = oneshot::channel::<u32>();
    let (ttx, trx) = oneshot::channel::<u32>();
    let h1 = park(probe, &ready_tx, move || {
        let _ = rx.recv();
    });
    let h2 = park(probe, &ready_tx, move || {
        let _ = trx.recv_timeout(Duration::from_secs(3600));
    });
    ready_rx.recv().unwrap();
    ready_rx.recv().unwrap();
    (Box::new((tx, ttx, h1, h2)), 2)
}

#[test]
fn coroutine_parked_in_oneshot_recv_is_unwound() {
    check(setup_oneshot);
}

fn setup_send(probe: &Probe) -> (Keep, usize) {
    let (ready_tx, ready_rx) = channel();
    // The message held by a parked send is counted too: cancelling the send must drop it (and
    // never deliver it). Each parked sender therefore accounts for 2 guards.
    let (tx, rx) = sync_channel::<Option<DropCounter>>(1);
    let (ztx, zrx) = sync_channel::<Option<DropCounter>>(0);
    let p = probe.clone();
    let h1 = park(probe, &ready_tx, move || {
        tx.send(None).unwrap(); // fills the only slot
        let _ = tx.send(Some(p.guard()));
    });
    let p = probe.clone();
    let h2 = park(probe, &ready_tx, move || {
        let _ = ztx.send(Some(p.guard())); // a rendezvous nobody will take
    });
    ready_rx.recv().unwrap();
    ready_rx.recv().unwrap();
    (Box::new((rx, zrx, h1, h2)), 4)
}

#[test]
fn coroutine_parked_in_send_on_a_full_channel_is_unwound() {
    check(setup_send);
}

fn setup_select(probe: &Probe) -> (Keep, usize) {
    let (ready_tx, ready_rx) = channel();
    let (a_tx, a_rx) = channel::<u32>();
    let (b_tx, b_rx) = sync_channel::<u32>(1);
    let (full_tx, full_rx) = sync_channel::<u32>(0);
    let h = park(probe, &ready_tx, move || {
        let mut sel = Select::new();
        sel.recv(&a_rx);
        sel.recv(&b_rx);
        sel.send(&full_tx);
        let oper = sel.select(); // parks: nothing is ever ready
        let _ = oper.recv(&a_rx);
    });
    ready_rx.recv().unwrap();
    (Box::new((a_tx, b_tx, full_rx, h)), 1)
}

#[test]
fn coroutine_parked_in_select_is_unwound() {
    check(setup_select);
}

fn setup_sleep(probe: &Probe) -> (Keep, usize) {
    let (ready_tx, ready_rx) = channel();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            park(probe, &ready_tx, || {
                coact::time::sleep(Duration::from_secs(3600))
            })
        })
        .collect();
    for _ in 0..4 {
        ready_rx.recv().unwrap();
    }
    (Box::new(handles), 4)
}

#[test]
fn coroutine_parked_in_a_one_hour_sleep_is_unwound() {
    check(setup_sleep);
}

fn setup_mutex(probe: &Probe) -> (Keep, usize) {
    let (ready_tx, ready_rx) = channel();
    let mutex = Arc::new(Mutex::new(0u32));
    let (locked_tx, locked_rx) = channel::<()>();
    let (release_tx, release_rx) = channel::<()>();
    let m = Arc::clone(&mutex);
    let holder = park(probe, &ready_tx, move || {
        let _guard = m.lock().unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv(); // parks holding the lock
    });
    ready_rx.recv().unwrap();
    locked_rx.recv().unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let m = Arc::clone(&mutex);
            park(probe, &ready_tx, move || {
                let _g = m.lock(); // parks: the holder never lets go
            })
        })
        .collect();
    for _ in 0..3 {
        ready_rx.recv().unwrap();
    }
    (Box::new((release_tx, mutex, holder, waiters)), 4)
}

#[test]
fn coroutines_parked_in_mutex_lock_are_unwound() {
    check(setup_mutex);
}

fn setup_condvar(probe: &Probe) -> (Keep, usize) {
    let (ready_tx, ready_rx) = channel();
    let state = Arc::new((Mutex::new(()), Condvar::new()));
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let state = Arc::clone(&state);
            park(probe, &ready_tx, move || {
                let (m, cv) = &*state;
                let g = m.lock().unwrap();
                // Parks: nobody notifies.
                if i == 0 {
                    let _ = cv.wait_timeout(g, Duration::from_secs(3600));
                } else {
                    let _ = cv.wait(g);
                }
            })
        })
        .collect();
    for _ in 0..3 {
        ready_rx.recv().unwrap();
    }
    (Box::new((state, waiters)), 3)
}

#[test]
fn coroutines_parked_in_condvar_wait_are_unwound() {
    check(setup_condvar);
}

fn setup_rwlock(probe: &Probe) -> (Keep, usize) {
    let (ready_tx, ready_rx) = channel();
    let lock = Arc::new(RwLock::new(0u32));
    let (held_tx, held_rx) = channel::<()>();
    let (release_tx, release_rx) = channel::<()>();
    let l = Arc::clone(&lock);
    let reader = park(probe, &ready_tx, move || {
        let _g = l.read().unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv(); // parks holding a read lock
    });
    ready_rx.recv().unwrap();
    held_rx.recv().unwrap();
    let l = Arc::clone(&lock);
    let writer = park(probe, &ready_tx, move || {
        let _g = l.write(); // parks: the reader never lets go
    });
    ready_rx.recv().unwrap();
    let l = Arc::clone(&lock);
    let late_reader = park(probe, &ready_tx, move || {
        let _g = l.read(); // parks behind the writer
    });
    ready_rx.recv().unwrap();
    (Box::new((release_tx, lock, reader, writer, late_reader)), 3)
}

#[test]
fn coroutines_parked_in_rwlock_read_and_write_are_unwound() {
    check(setup_rwlock);
}

fn setup_barrier(probe: &Probe) -> (Keep, usize) {
    let (ready_tx, ready_rx) = channel();
    let barrier = Arc::new(Barrier::new(4));
    let parties: Vec<_> = (0..3)
        .map(|_| {
            let b = Arc::clone(&barrier);
            park(probe, &ready_tx, move || {
                b.wait(); // parks: the fourth party never comes
            })
        })
        .collect();
    for _ in 0..3 {
        ready_rx.recv().unwrap();
    }
    (Box::new((barrier, parties)), 3)
}

#[test]
fn coroutines_parked_at_a_barrier_are_unwound() {
    check(setup_barrier);
}

fn setup_join(probe: &Probe) -> (Keep, usize) {
    let (ready_tx, ready_rx) = channel();
    let (tx, rx) = channel::<u32>();
    let inner = park(probe, &ready_tx, move || {
        let _ = rx.recv();
    });
    ready_rx.recv().unwrap();
    let outer = park(probe, &ready_tx, move || {
        let _ = inner.join(); // parks: inner never finishes
    });
    ready_rx.recv().unwrap();
    (Box::new((tx, outer)), 2)
}

/// The job blocks until its coroutine is unwound (the coroutine holds the job's release and
/// drops it as it unwinds): the wait must end by cancellation, not by the job's return. The
/// runtime's drop then waits for the job (`offload.rs` checks that).
fn setup_offload(probe: &Probe) -> (Keep, usize) {
    let (ready_tx, ready_rx) = channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let h = park(probe, &ready_tx, move || {
        let _release = release_tx;
        coact::offload(move || {
            let _ = release_rx.recv();
        });
    });
    ready_rx.recv().unwrap();
    (Box::new(h), 1)
}

#[test]
fn coroutine_parked_in_offload_is_unwound() {
    check(setup_offload);
}

#[test]
fn coroutine_parked_in_join_is_unwound() {
    check(setup_join);
}

/// Every kind at once, many times over, mixed with runnable (yielding) coroutines.
fn setup_everything(probe: &Probe) -> (Keep, usize) {
    let mut keep: Vec<Keep> = Vec::new();
    let mut guards = 0;
    for _ in 0..10 {
        let setups: [Setup; 9] = [
            setup_recv,
            setup_send,
            setup_select,
            setup_sleep,
            setup_mutex,
            setup_condvar,
            setup_rwlock,
            setup_join,
            setup_offload,
        ];
        for setup in setups {
            let (k, g) = setup(probe);
            keep.push(k);
            guards += g;
        }
    }
    // Coroutines that never park: they are runnable when the runtime ends.
    let (ready_tx, ready_rx) = channel();
    for _ in 0..10 {
        keep.push(Box::new(park(probe, &ready_tx, || loop {
            coact::yield_now();
        })));
        guards += 1;
    }
    for _ in 0..10 {
        ready_rx.recv().unwrap();
    }
    (Box::new(keep), guards)
}

#[test]
fn many_coroutines_parked_in_every_way_are_all_unwound() {
    check(setup_everything);
}

/// A coroutine spawned just before the runtime ends may not have started: its closure (and what
/// it captured) must be dropped all the same.
#[test]
fn coroutines_spawned_just_before_the_end_are_dropped() {
    for workers in [1, 2] {
        bounded(move || {
            let drops = Arc::new(AtomicUsize::new(0));
            let rt = runtime(workers);
            let d = Arc::clone(&drops);
            rt.block_on(move || {
                for _ in 0..20 {
                    let guard = DropCounter::new(&d);
                    let h = coact::spawn(move || {
                        let _guard = guard;
                        coact::time::sleep(Duration::from_secs(3600));
                    });
                    drop(h); // detach
                }
            });
            drop(rt);
            assert_eq!(drops.load(Ordering::SeqCst), 20, "workers={workers}");
        });
    }
}

/// Joining such a coroutine after the runtime has ended returns at once with an error, whether
/// it had started (and was cancelled) or was dropped before it started.
#[test]
fn joining_a_coroutine_the_end_of_the_runtime_dropped_returns_an_error() {
    for workers in [1, 2] {
        bounded(move || {
            let drops = Arc::new(AtomicUsize::new(0));
            let rt = runtime(workers);
            let d = Arc::clone(&drops);
            let handles = rt.block_on(move || {
                (0..20)
                    .map(|_| {
                        let guard = DropCounter::new(&d);
                        coact::spawn(move || {
                            let _guard = guard;
                            coact::time::sleep(Duration::from_secs(3600));
                        })
                    })
                    .collect::<Vec<_>>()
            });
            drop(rt);
            assert_eq!(drops.load(Ordering::SeqCst), 20, "workers={workers}");
            for h in handles {
                assert!(h.is_finished());
                let e = h.join().expect_err("the coroutine never returned");
                let cancelled = e.is::<coact::Cancelled>();
                let unstarted = e
                    .downcast_ref::<&str>()
                    .is_some_and(|m| m.contains("dropped before it started"));
                assert!(cancelled || unstarted, "workers={workers}");
            }
        });
    }
}

/// A plain thread spawning through a `Handle` while the runtime ends: every spawn either fails
/// (the runtime has ended) or gives a handle whose `join` returns, whether the coroutine ran,
/// was cancelled, or was dropped unstarted. A spawn that passed the "has it ended" check just
/// before the end, and queued its task after the runtime had emptied its queues, used to leave
/// the task in the queue for as long as any `Handle` lived, and its `join` blocked for good.
#[test]
fn spawns_racing_the_end_of_the_runtime_are_run_or_dropped_never_stranded() {
    for trial in 0..120 {
        let workers = 1 + trial % 2;
        let placed = trial % 4 >= 2;
        bounded(move || {
            let rt = runtime(workers);
            let h = rt.handle();
            let (started_tx, started_rx) = std::sync::mpsc::channel();
            let spammer = std::thread::spawn(move || {
                let drops = Arc::new(AtomicUsize::new(0));
                let mut handles = Vec::new();
                loop {
                    let guard = DropCounter::new(&drops);
                    let f = move || drop(guard);
                    let spawned = if placed {
                        h.try_spawn_on(handles.len() % workers, f)
                    } else {
                        h.try_spawn(f)
                    };
                    match spawned {
                        Ok(j) => handles.push(j),
                        Err(_) => break,
                    }
                    if handles.len() == 8 {
                        let _ = started_tx.send(());
                    }
                }
                let n = handles.len();
                // Each one ran (Ok), was cancelled or was dropped before it started (Err);
                // none may block.
                for j in handles {
                    let _ = j.join();
                }
                // All closures dropped, the one refused by the failed spawn included.
                assert_eq!(drops.load(Ordering::SeqCst), n + 1);
                n
            });
            started_rx.recv().expect("the spawning thread started");
            drop(rt);
            let n = spammer.join().expect("the spawning thread finished");
            assert!(n >= 8, "trial {trial}: {n} spawns");
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------------------------

#[test]
fn panic_in_a_coroutine_is_reported_by_join_and_the_runtime_keeps_working() {
    for workers in [1, 2] {
        common::on_workers(workers, || {
            let drops = Arc::new(AtomicUsize::new(0));
            let d = Arc::clone(&drops);
            let h = coact::spawn(move || {
                let _guard = DropCounter::new(&d);
                panic!("coroutine failed with code {}", 42);
            });
            let payload = h.join().expect_err("join must report the panic");
            assert_eq!(panic_text(&*payload), "coroutine failed with code 42");
            assert_eq!(
                drops.load(Ordering::SeqCst),
                1,
                "the panicking stack was unwound"
            );

            let h = coact::spawn(|| -> u32 { panic!("static message") });
            let payload = h.join().unwrap_err();
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"static message"));

            // The runtime still works: channels, spawns and joins.
            let (tx, rx) = sync_channel::<u32>(1);
            let workers_: Vec<_> = (0..10)
                .map(|i| {
                    let tx = tx.clone();
                    coact::spawn(move || tx.send(i).unwrap())
                })
                .collect();
            drop(tx);
            assert_eq!(rx.iter().sum::<u32>(), 45);
            for w in workers_ {
                w.join().unwrap();
            }
        });
    }
}

#[test]
fn panic_in_a_coroutine_is_reported_to_a_joining_plain_thread() {
    for workers in [1, 2] {
        bounded(move || {
            let rt = runtime(workers);
            let h = rt.spawn(|| -> u32 { panic!("seen from a thread") });
            let payload = h.join().unwrap_err();
            assert_eq!(panic_text(&*payload), "seen from a thread");
            // A parked joiner coroutine learns of it too.
            let (go_tx, go_rx) = channel::<()>();
            let failing = rt.spawn(move || -> u32 {
                go_rx.recv().unwrap();
                panic!("after the joiner parked");
            });
            let joiner = rt.spawn(move || failing.join().map_err(|p| panic_text(&*p)));
            go_tx.send(()).unwrap();
            assert_eq!(
                joiner.join().unwrap(),
                Err("after the joiner parked".to_string())
            );
            assert_eq!(rt.block_on(|| 7), 7, "runtime still usable");
        });
    }
}

#[test]
fn panic_in_runs_closure_propagates_out_of_run() {
    bounded(|| {
        let result = catch_unwind(|| coact::run(|| -> u32 { panic!("run closure failed") }));
        let payload = result.expect_err("the panic must propagate out of coact::run");
        assert_eq!(panic_text(&*payload), "run closure failed");

        // Other coroutines are still cancelled and unwound when run ends by a panic.
        let probe = Probe::new();
        let p = probe.clone();
        let result = catch_unwind(AssertUnwindSafe(move || {
            coact::run(move || {
                let (keep, guards) = setup_recv(&p);
                assert_eq!(guards, 2);
                std::mem::forget(keep); // leak the senders: only cancellation can end the parked recvs
                panic!("with parked coroutines")
            })
        }));
        assert_eq!(panic_text(&*result.unwrap_err()), "with parked coroutines");
        assert_eq!(
            probe.drops(),
            2,
            "parked coroutines unwound despite the panic"
        );
        assert_eq!(probe.resumed(), 0);

        // And coact::run is usable again afterwards.
        assert_eq!(coact::run(|| 5), 5);
    });
}

/// Yields three times when dropped, then counts itself.
struct YieldsOnDrop(Arc<AtomicUsize>);

impl Drop for YieldsOnDrop {
    fn drop(&mut self) {
        for _ in 0..3 {
            coact::yield_now();
        }
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A yield in a destructor that runs while the coroutine unwinds from its cancellation must
/// not start a second unwind there (that aborts the process): a yield once lost track of the
/// unwinding that a park keeps.
#[test]
fn a_destructor_that_yields_while_its_coroutine_is_cancelled_completes() {
    for workers in [1, 2] {
        let dropped = Arc::new(AtomicUsize::new(0));
        let rt = runtime(workers);
        let guard = YieldsOnDrop(dropped.clone());
        common::park_until_runtime_ends(&rt, move || guard);
        drop(rt);
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    }
}

/// `Handle::on_end` runs its functions once the runtime has ended, after its coroutines were
/// cancelled (their destructors have run), each once, even when one of them panics; a
/// function added after the end runs at once.
#[test]
fn end_hooks_run_once_after_the_coroutines_are_cancelled() {
    bounded(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let rt = runtime(2);
        let h = rt.handle();
        let d = Arc::clone(&drops);
        rt.block_on(move || {
            let guard = DropCounter::new(&d);
            drop(coact::spawn(move || {
                let _guard = guard;
                coact::time::sleep(Duration::from_secs(3600));
            }));
        });
        let (seen_tx, seen) = std::sync::mpsc::channel();
        for i in 0..3 {
            let (drops, seen_tx) = (Arc::clone(&drops), seen_tx.clone());
            h.on_end(move || {
                seen_tx.send((i, drops.load(Ordering::SeqCst))).unwrap();
                if i == 1 {
                    panic!("a hook that fails");
                }
            });
        }
        assert!(seen.try_recv().is_err(), "nothing runs before the end");
        drop(rt);
        let ran: Vec<_> = seen.try_iter().collect();
        assert_eq!(
            ran,
            [(0, 1), (1, 1), (2, 1)],
            "each once, after the unwinding"
        );
        h.on_end(move || seen_tx.send((3, 0)).unwrap());
        assert_eq!(
            seen.try_iter().collect::<Vec<_>>(),
            [(3, 0)],
            "at once after the end"
        );
    });
}
