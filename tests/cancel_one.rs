//! Cancelling one coroutine from elsewhere (`CoroutineId::cancel`), and detached spawns.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use coact::sync::mpsc::{channel, sync_channel};
use common::DropCounter;

#[test]
fn cancel_unwinds_a_parked_coroutine_from_another_coroutine_or_thread() {
    for workers in [1, 2] {
        common::on_workers(workers, move || {
            let drops = Arc::new(AtomicUsize::new(0));
            for from_thread in [false, true] {
                let (id_tx, id_rx) = sync_channel(1);
                let (_never_tx, never_rx) = channel::<()>();
                let d = drops.clone();
                let h = coact::spawn(move || {
                    let _guard = DropCounter::new(&d);
                    id_tx.send(coact::current_coroutine().unwrap()).unwrap();
                    let _ = never_rx.recv(); // parks until cancelled
                    unreachable!("a cancelled coroutine does not return from its wait");
                });
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
