//! Coroutines that stay blocked in a destructor after their runtime ended are given up on
//! (their stacks are leaked) without corrupting the process-wide count of live coroutines. In a binary
//! of its own: the count is process-wide, and other tests would move it meanwhile.

mod common;

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use coact::sync::mpsc::channel;
use coact::sync::Mutex;

/// Takes `lock` when dropped: blocks for as long as someone else holds it.
struct LocksOnDrop(Arc<Mutex<()>>);

impl Drop for LocksOnDrop {
    fn drop(&mut self) {
        let _g = self.0.lock().unwrap();
    }
}

#[test]
fn coroutines_stuck_in_destructors_at_shutdown_keep_the_live_count_exact() {
    common::bounded(|| {
        let before = coact::live_coroutines();
        let lock = Arc::new(Mutex::new(()));
        // A plain thread holds the lock until told to let go.
        let (held_tx, held_rx) = std_mpsc::channel();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let holder = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                let _g = lock.lock().unwrap();
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            })
        };
        held_rx.recv().unwrap();
        let rt = common::runtime(1);
        let (ready_tx, ready_rx) = channel::<()>();
        let (_never_tx, never_rx) = channel::<()>();
        let guard = LocksOnDrop(lock.clone());
        // Detached: it holds no slot of the live-coroutine cap.
        rt.handle().spawn_detached(move || {
            let _guard = guard;
            ready_tx.send(()).unwrap();
            let _ = never_rx.recv(); // parks until the runtime ends and cancels it
        });
        // And a joinable one (its handle dropped), which holds a slot while it runs.
        let (joined_ready_tx, joined_ready_rx) = channel::<()>();
        let (_never_tx2, never_rx2) = channel::<()>();
        let guard = LocksOnDrop(lock.clone());
        drop(rt.spawn(move || {
            let _guard = guard;
            joined_ready_tx.send(()).unwrap();
            let _ = never_rx2.recv();
        }));
        ready_rx.recv().unwrap();
        joined_ready_rx.recv().unwrap();
        // Cancelled, each coroutine unwinds into `LocksOnDrop`, which waits for the lock the
        // thread holds: the runtime gives up on both after its shutdown patience.
        drop(rt);
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        // The detached coroutine held no slot, so none is given back for it; the joinable
        // one's slot stays taken, as its stack stays mapped: it is leaked, not ended.
        assert_eq!(coact::live_coroutines(), before + 1);
    });
}
