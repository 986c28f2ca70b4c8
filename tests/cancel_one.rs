//! Cancelling one coroutine from elsewhere (`CoroutineId::cancel`), and detached spawns.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use coact::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use coact::{CoroutineId, JoinHandle};
use common::DropCounter;

/// Spawns a coroutine that sends its id, then parks in `recv` until it is cancelled (it holds
/// the only sender itself); `drops` counts its destructor. Returns its handle and its id's
/// receiver.
fn spawn_parked_until_cancelled(
    drops: &Arc<AtomicUsize>,
) -> (JoinHandle<()>, Receiver<CoroutineId>) {
    let (id_tx, id_rx) = sync_channel(1);
    let (never_tx, never_rx) = channel::<()>();
    let d = drops.clone();
    let h = coact::spawn(move || {
        let _guard = DropCounter::new(&d);
        let _sender = never_tx;
        id_tx.send(coact::current_coroutine().unwrap()).unwrap();
        let _ = never_rx.recv(); // parks until cancelled
        unreachable!("a cancelled coroutine does not return from its wait");
    });
    (h, id_rx)
}

/// Spawns a coroutine that sends its id on `ids`, returns the first value received on the
/// returned `go` sender, but only after parking until cancelled (it holds a receiver whose
/// sender, the returned `stop`, nobody uses); `drops` counts its destructor.
fn spawn_go_then_parked(
    ids: Sender<CoroutineId>,
    drops: &Arc<AtomicUsize>,
) -> (JoinHandle<u32>, SyncSender<u32>, SyncSender<u32>) {
    let (go_tx, go_rx) = sync_channel::<u32>(0);
    let (stop_tx, stop_rx) = sync_channel::<u32>(0);
    let guard = DropCounter::new(drops);
    let h = coact::spawn(move || {
        let _guard = guard;
        ids.send(coact::current_coroutine().unwrap()).unwrap();
        let got = go_rx.recv().unwrap();
        // Parks here until cancelled.
        let _ = stop_rx.recv();
        got
    });
    (h, go_tx, stop_tx)
}

#[test]
fn cancel_unwinds_a_parked_coroutine_from_another_coroutine_or_thread() {
    for workers in [1, 2] {
        common::on_workers(workers, move || {
            let drops = Arc::new(AtomicUsize::new(0));
            for from_thread in [false, true] {
                let (h, id_rx) = spawn_parked_until_cancelled(&drops);
                let id = id_rx.recv().unwrap();
                if from_thread {
                    std::thread::spawn(move || id.cancel()).join().unwrap();
                } else {
                    id.cancel();
                }
                let err = h.join().unwrap_err();
                assert!(err.downcast_ref::<coact::Cancelled>().is_some());
            }
            assert_eq!(drops.load(Ordering::SeqCst), 2);
        });
    }
}

#[test]
fn cancelling_a_finished_coroutine_does_nothing_to_its_successors() {
    common::on_workers(1, || {
        let id = coact::spawn(|| coact::current_coroutine().unwrap())
            .join()
            .unwrap();
        // The slot is reused by the next coroutine; the generation protects it.
        let (tx, rx) = sync_channel::<u32>(0);
        let h = coact::spawn(move || rx.recv().unwrap());
        id.cancel();
        tx.send(7).unwrap();
        assert_eq!(h.join().unwrap(), 7);
    });
}

#[test]
fn a_coroutine_run_on_a_finished_ones_fiber_is_a_new_coroutine() {
    // Two coroutines queued back to back on one worker: when the first ends, the second runs
    // on the same fiber and stack (the worker chains waiting tasks). It must still be a new
    // coroutine: a different id, untouched by cancelling the first one's id, and cancellable
    // through its own.
    common::on_workers(1, || {
        let (ids_tx, ids_rx) = channel();
        let drops = Arc::new(AtomicUsize::new(0));
        let first = {
            let ids_tx = ids_tx.clone();
            coact::spawn(move || ids_tx.send(coact::current_coroutine().unwrap()).unwrap())
        };
        let (second, go_tx, stop_tx) = spawn_go_then_parked(ids_tx, &drops);
        let a = ids_rx.recv().unwrap();
        let b = ids_rx.recv().unwrap();
        assert_ne!(a, b, "each coroutine has its own id");
        first.join().unwrap();
        a.cancel();
        go_tx.send(5).unwrap(); // the second still runs normally
        b.cancel();
        let r = second.join();
        assert!(r.is_err(), "cancelling the second's own id unwinds it");
        assert_eq!(drops.load(Ordering::SeqCst), 1, "its destructors ran");
        drop(stop_tx);
    });
}

#[test]
fn a_coroutine_carried_by_the_spare_fiber_is_a_new_coroutine() {
    // A coroutine that ends with nothing queued to chain stays suspended as its worker's spare
    // fiber, and the next coroutine started there runs on it. It must be a new coroutine: a
    // different id, untouched by cancelling the finished one's id (before and after it is
    // carried), and cancellable through its own.
    common::on_workers(1, || {
        let first = coact::spawn(|| coact::current_coroutine().unwrap())
            .join()
            .unwrap();
        // The spare holds the finished coroutine's entry under a new generation already.
        first.cancel();
        let (id_tx, id_rx) = channel();
        let drops = Arc::new(AtomicUsize::new(0));
        let (second, go_tx, stop_tx) = spawn_go_then_parked(id_tx, &drops);
        let id = id_rx.recv().unwrap();
        assert_ne!(first, id, "each coroutine has its own id");
        first.cancel();
        go_tx.send(5).unwrap(); // still runs normally
        id.cancel();
        let r = second.join();
        assert!(r.is_err(), "cancelling its own id unwinds it");
        assert_eq!(drops.load(Ordering::SeqCst), 1, "its destructors ran");
        drop(stop_tx);
    });
}

/// A coroutine parked in `recv` on a one-worker runtime lends its turn to the next runnable
/// coroutine (see "Lending" in `worker.rs`); that one cancels it while it lends. The cancelled
/// coroutine must unwind from its wait once the other parks, not return from it.
#[test]
fn a_coroutine_cancelled_while_it_lends_its_turn_unwinds() {
    common::on_workers(1, || {
        let drops = Arc::new(AtomicUsize::new(0));
        // Both are started before either runs: the first parks with the second runnable.
        let (waiter, id_rx) = spawn_parked_until_cancelled(&drops);
        let canceller = coact::spawn(move || {
            id_rx.recv().unwrap().cancel();
            // Parks (the waiter then sees its cancellation) and comes back.
            coact::yield_now();
        });
        canceller.join().unwrap();
        let err = waiter.join().unwrap_err();
        assert!(err.downcast_ref::<coact::Cancelled>().is_some());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn detached_coroutines_run_and_do_not_count_until_started() {
    common::on_workers(2, || {
        let (tx, rx) = channel::<usize>();
        for i in 0..10_000 {
            let tx = tx.clone();
            coact::spawn_detached(move || tx.send(i).unwrap());
        }
        drop(tx);
        let mut seen: Vec<usize> = rx.iter().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10_000).collect::<Vec<_>>());
    });
}

/// A destructor that cancels a coroutine and waits for it, run while its own coroutine unwinds
/// from a panic: the wait parks the unwinding coroutine, so the worker thread's panic count
/// (`std::thread::panicking()`) stays raised while the other coroutine runs. The cancelled
/// coroutine must still unwind with `Cancelled` (it was not unwinding when it parked); it once
/// took the thread-wide flag for its own, returned from its sleep as if woken, and a loop
/// around such a wait (a node's accept loop) spun forever, so the panic never reached `run`.
#[test]
fn a_coroutine_cancelled_while_another_unwinds_on_its_worker_still_unwinds() {
    struct CancelAndJoin {
        id: coact::CoroutineId,
        handle: Option<coact::JoinHandle<()>>,
        outcome: Arc<std::sync::Mutex<Option<String>>>,
    }
    impl Drop for CancelAndJoin {
        fn drop(&mut self) {
            assert!(std::thread::panicking(), "dropped while unwinding");
            self.id.cancel();
            let result = self.handle.take().unwrap().join(); // parks mid-unwind
            *self.outcome.lock().unwrap() = Some(match result {
                Err(p) if p.is::<coact::Cancelled>() => "unwound with Cancelled".into(),
                Err(_) => "panicked otherwise".into(),
                Ok(()) => "returned from its sleep".into(),
            });
        }
    }
    // One worker: the sleeper and the unwinding coroutine share the thread.
    let outcome = Arc::new(std::sync::Mutex::new(None));
    let seen = outcome.clone();
    let panicked = common::panics_on_workers(1, move || {
        let (id_tx, id_rx) = sync_channel(1);
        let handle = coact::spawn(move || {
            id_tx.send(coact::current_coroutine().unwrap()).unwrap();
            coact::time::sleep(std::time::Duration::from_secs(3600));
        });
        let id = id_rx.recv().unwrap();
        coact::yield_now(); // the sleeper parks
        let _guard = CancelAndJoin {
            id,
            handle: Some(handle),
            outcome: seen,
        };
        panic!("the first coroutine fails");
    });
    assert!(panicked, "the panic reaches block_on's caller");
    assert_eq!(
        outcome.lock().unwrap().as_deref(),
        Some("unwound with Cancelled")
    );
}

/// A coact `Mutex` is poisoned by a panic of the coroutine holding it, not by another
/// coroutine of the same worker that happens to be parked mid-unwind when the guard drops
/// (the thread's panic flag is raised for both).
#[test]
fn a_mutex_is_not_poisoned_by_another_coroutines_unwinding() {
    struct SignalAndWait {
        go: coact::sync::mpsc::SyncSender<()>,
        done: coact::sync::mpsc::Receiver<()>,
    }
    impl Drop for SignalAndWait {
        fn drop(&mut self) {
            self.go.send(()).unwrap();
            self.done.recv().unwrap(); // parks mid-unwind while the holder unlocks
        }
    }
    let mutex = Arc::new(coact::sync::Mutex::new(0u32));
    let m = mutex.clone();
    let panicked = common::panics_on_workers(1, move || {
        let (locked_tx, locked_rx) = sync_channel(1);
        let (go_tx, go_rx) = sync_channel(1);
        let (done_tx, done_rx) = sync_channel(1);
        let holder = coact::spawn(move || {
            let mut g = m.lock().unwrap();
            locked_tx.send(()).unwrap();
            go_rx.recv().unwrap(); // parks holding the lock
            *g += 1;
            drop(g); // the other coroutine is parked mid-unwind now
            done_tx.send(()).unwrap();
        });
        locked_rx.recv().unwrap();
        let _wait = SignalAndWait {
            go: go_tx,
            done: done_rx,
        };
        let _keep = holder;
        panic!("the first coroutine fails");
    });
    assert!(panicked);
    assert!(
        !mutex.is_poisoned(),
        "a guard dropped without a panic of its own poisoned the mutex"
    );
    assert_eq!(*mutex.lock().unwrap(), 1);
}

/// `CoroutineIdSlot`: one writer storing two ids in turn while threads read; every read is one
/// of the ids stored (or the empty start), never a mix of two.
#[test]
fn a_coroutine_id_slot_never_yields_a_mix_of_two_ids() {
    let slot = Arc::new(coact::CoroutineIdSlot::new());
    // Ids that differ in every part (runtime, fiber key, generation), so that a read mixing
    // parts of the two would match neither: `b` comes from another runtime, taken while
    // other coroutines hold the first fiber slots.
    let a = common::on_workers(1, || coact::spawn(coact::current_coroutine).join().unwrap());
    let b = common::on_workers(1, || {
        // Ten coroutines alive at once hold ten fiber slots; the last has a key and a
        // generation of its own.
        let (id_tx, id_rx) = channel();
        let (go_tx, go_rx) = channel::<()>();
        let go_rx = Arc::new(coact::sync::Mutex::new(go_rx));
        let live: Vec<_> = (0..10)
            .map(|_| {
                let (id_tx, go_rx) = (id_tx.clone(), go_rx.clone());
                coact::spawn(move || {
                    id_tx.send(coact::current_coroutine()).unwrap();
                    let _ = go_rx.lock().unwrap().recv();
                })
            })
            .collect();
        let ids: Vec<_> = (0..10).map(|_| id_rx.recv().unwrap()).collect();
        drop(go_tx);
        for h in live {
            h.join().unwrap();
        }
        ids[9]
    });
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(format!("{a:?}"), format!("{b:?}"));
    // The readers read a fixed number of times while the writer keeps writing until both are
    // done: the two overlap however the threads are scheduled (no timing assumed).
    const READS: u64 = 100_000;
    let start = Arc::new(std::sync::Barrier::new(3));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (slot, start, done) = (slot.clone(), start.clone(), done.clone());
            std::thread::spawn(move || {
                start.wait();
                // Counted as done even if an assertion fails, so the writer stops.
                let read = std::panic::catch_unwind(|| {
                    for _ in 0..READS {
                        let got = slot.get();
                        assert!(got.is_none() || got == Some(a) || got == Some(b), "{got:?}");
                    }
                });
                done.fetch_add(1, Ordering::Release);
                if let Err(p) = read {
                    std::panic::resume_unwind(p);
                }
                READS
            })
        })
        .collect();
    start.wait();
    let mut i = 0u64;
    while done.load(Ordering::Acquire) < 2 {
        slot.set(Some(if i % 2 == 0 { a } else { b }));
        i += 1;
    }
    let seen: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(seen, 2 * READS);
    slot.set(None);
    assert_eq!(slot.get(), None);
}
