//! Actors whose addresses are all gone stop by themselves (handler and process kinds), and a
//! supervisor's shutdown kills a child that stays blocked past the grace period.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coact::actor::{spawn, spawn_process, Actor, Ctx, Inbox, ReplyTo, StopReason};
use common::DropCounter;

struct Holder {
    _guard: DropCounter,
}

enum Msg {
    Ping(ReplyTo<()>),
    Keep(coact::sync::mpsc::SyncSender<coact::actor::Addr<Msg>>),
}

impl Actor for Holder {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, ctx: &mut Ctx<'_, Msg>) {
        match msg {
            Msg::Ping(r) => {
                r.send(());
            }
            // Hands out a new address to itself: the actor stays reachable.
            Msg::Keep(tx) => {
                let _ = tx.send(ctx.addr().clone());
            }
        }
    }
}

#[test]
fn a_handler_actor_stops_once_every_address_is_dropped() {
    common::on_workers(2, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = spawn(Holder {
            _guard: DropCounter::new(&drops),
        });
        a.ask(Msg::Ping, Duration::from_secs(10)).unwrap();
        let down = a.monitor();
        drop(a);
        let d = down
            .recv_timeout(Duration::from_secs(30))
            .expect("the actor stopped");
        assert_eq!(d.reason, StopReason::Normal);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "its state was dropped");
    });
}

#[test]
fn an_address_handed_out_by_the_actor_keeps_it_alive() {
    common::on_workers(1, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = spawn(Holder {
            _guard: DropCounter::new(&drops),
        });
        let (tx, rx) = coact::sync::mpsc::sync_channel(1);
        a.send(Msg::Keep(tx)).unwrap();
        let b = rx.recv().unwrap();
        drop(a);
        // Still reachable through the address it handed out.
        b.ask(Msg::Ping, Duration::from_secs(10)).unwrap();
        assert!(b.stopped().is_none());
        let down = b.monitor();
        drop(b);
        assert_eq!(
            down.recv_timeout(Duration::from_secs(30)).unwrap().reason,
            StopReason::Normal
        );
    });
}

#[test]
fn a_process_sees_the_end_of_its_inbox_once_every_address_is_dropped() {
    common::on_workers(2, || {
        let (done_tx, done_rx) = coact::sync::mpsc::sync_channel(1);
        let p = spawn_process(move |inbox: Inbox<u32>| {
            let mut n = 0;
            while let Some(v) = inbox.recv() {
                n += v;
            }
            done_tx.send(n).unwrap();
        });
        p.send(40).unwrap();
        p.send(2).unwrap();
        drop(p);
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(30)), Ok(42));
    });
}

struct Stuck;

impl Actor for Stuck {
    /// Says it has started on the first, then waits on the second.
    type Msg = (
        coact::sync::mpsc::SyncSender<()>,
        coact::sync::mpsc::Receiver<()>,
    );
    fn handle(&mut self, (started, rx): Self::Msg, _ctx: &mut Ctx<'_, Self::Msg>) {
        let _ = started.send(());
        let _ = rx.recv(); // never returns on its own
    }
}

#[test]
fn supervisor_shutdown_kills_a_child_blocked_past_the_grace_period() {
    common::on_workers(1, || {
        let mut sup = coact::actor::Supervisor::new(coact::actor::Strategy::OneForOne);
        let child = sup.child(|| Stuck);
        let sup = sup.start();
        let (_keep, rx) = coact::sync::mpsc::channel::<()>();
        let (started_tx, started) = coact::sync::mpsc::sync_channel(1);
        let down = child.monitor();
        child.send((started_tx, rx)).unwrap();
        // The child is blocked inside its handler (a stop would otherwise find it idle).
        started.recv().unwrap();
        sup.shutdown(); // returns after the grace period, with the child killed
        assert_eq!(
            down.recv_timeout(Duration::from_secs(30)).unwrap().reason,
            StopReason::Killed
        );
    });
}
