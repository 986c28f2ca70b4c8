//! Actors whose addresses are all gone stop by themselves (handler and process kinds), and a
//! supervisor's shutdown kills a child that stays blocked past the grace period.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coact::actor::{spawn, spawn_process, Actor, AskError, Ctx, Inbox, ReplyTo, StopReason};
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

/// An actor that counts its `stopped` calls and answers pings.
struct Counted {
    stops: Arc<AtomicUsize>,
    _guard: DropCounter,
}

impl Actor for Counted {
    type Msg = ReplyTo<()>;
    fn handle(&mut self, reply: ReplyTo<()>, _ctx: &mut Ctx<'_, Self::Msg>) {
        reply.send(());
    }
    fn stopped(&mut self, reason: &StopReason) {
        assert_eq!(*reason, StopReason::Killed);
        self.stops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Two counters from zero: of `stopped` calls and of dropped states.
fn tallies() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)))
}

fn counted(stops: &Arc<AtomicUsize>, drops: &Arc<AtomicUsize>) -> Counted {
    Counted {
        stops: Arc::clone(stops),
        _guard: DropCounter::new(drops),
    }
}

/// An actor idle when its runtime ends has no coroutine to cancel; the end stops it all the
/// same, as a killed one. Its askers then get an error at once (they used to wait out their
/// whole timeout, the request queued for an activation that could never start), sends fail,
/// monitors are told, and its state is dropped with the last address (it used to keep itself
/// alive for good).
#[test]
fn an_actor_idle_when_its_runtime_ended_is_stopped_by_the_end() {
    for workers in [1, 2] {
        common::bounded(move || {
            let (stops, drops) = tallies();
            let rt = common::runtime(workers);
            let a = rt.block_on({
                let (stops, drops) = (stops.clone(), drops.clone());
                move || {
                    let a = spawn(counted(&stops, &drops));
                    a.ask(|r| r, Duration::from_secs(30)).unwrap();
                    a
                }
            });
            drop(rt);
            assert_eq!(a.stopped(), Some(StopReason::Killed), "workers={workers}");
            assert_eq!(stops.load(Ordering::SeqCst), 1, "`stopped` ran once");
            assert_eq!(
                a.ask(|r| r, Duration::from_secs(60)),
                Err(AskError::Closed),
                "its mailbox is closed"
            );
            assert_eq!(
                a.monitor()
                    .recv_timeout(Duration::from_secs(30))
                    .unwrap()
                    .reason,
                StopReason::Killed
            );
            drop(a);
            assert_eq!(drops.load(Ordering::SeqCst), 1, "its state was dropped");
        });
    }
}

/// Actors spawned on a runtime that has ended (from a plain thread, through its handle) stop
/// at once, handler and process kinds alike, and say so; none waits for a start that cannot
/// come.
#[test]
fn actors_spawned_on_an_ended_runtime_stop_at_once() {
    common::bounded(|| {
        let (stops, drops) = tallies();
        let rt = common::runtime(2);
        let h = rt.handle();
        drop(rt);
        let a = coact::actor::spawn_on(&h, 8, counted(&stops, &drops));
        assert_eq!(a.stopped(), Some(StopReason::Killed));
        assert_eq!(a.ask(|r| r, Duration::from_secs(60)), Err(AskError::Closed));
        assert_eq!(stops.load(Ordering::SeqCst), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// A process actor spawned just before its runtime ends may never start: its monitors are
/// told all the same (it is killed, as a process cancelled while it ran is).
#[test]
fn a_process_spawned_just_before_the_end_is_reported_killed() {
    for workers in [1, 2] {
        common::bounded(move || {
            let rt = common::runtime(workers);
            // The addresses are kept: a process whose addresses are all gone ends normally.
            let processes = rt.block_on(|| {
                (0..20)
                    .map(|_| spawn_process(|inbox: Inbox<u32>| while inbox.recv().is_some() {}))
                    .map(|p| (p.monitor(), p))
                    .collect::<Vec<_>>()
            });
            drop(rt);
            for (m, _p) in processes {
                let down = m.recv_timeout(Duration::from_secs(30));
                assert_eq!(
                    down.map(|d| d.reason),
                    Some(StopReason::Killed),
                    "workers={workers}"
                );
            }
        });
    }
}

/// When a runtime ends, an idle actor reachable only from coroutines that the end cancels is
/// stopped as they let go of its address, and its state is dropped: actor trees do not outlive
/// their runtime.
#[test]
fn idle_actors_held_by_cancelled_coroutines_are_dropped_with_their_runtime() {
    for workers in [1, 2] {
        common::bounded(move || {
            let (stops, drops) = tallies();
            let rt = common::runtime(workers);
            rt.block_on({
                let (stops, drops) = (stops.clone(), drops.clone());
                move || {
                    let (parked_tx, parked) = coact::sync::mpsc::sync_channel(0);
                    for _ in 0..10 {
                        let a = spawn(counted(&stops, &drops));
                        a.ask(|r| r, Duration::from_secs(30)).unwrap();
                        let parked_tx = parked_tx.clone();
                        // Holds the only address, parked until the runtime ends.
                        drop(coact::spawn(move || {
                            let _a = a;
                            parked_tx.send(()).unwrap();
                            coact::time::sleep(Duration::from_secs(3600));
                        }));
                        parked.recv().unwrap();
                    }
                }
            });
            drop(rt);
            assert_eq!(drops.load(Ordering::SeqCst), 10, "workers={workers}");
            assert_eq!(stops.load(Ordering::SeqCst), 10, "workers={workers}");
        });
    }
}

/// When a runtime ends, every handler actor still alive on it stops, idle ones included: its
/// `stopped` runs, its monitors are told and its registered names are released, even while
/// addresses to it live on (here, in the registry and in the thread that ran the runtime). A
/// name can then be registered again on the next runtime.
#[test]
fn the_end_of_a_runtime_stops_its_idle_actors_and_releases_their_names() {
    for workers in [1, 2] {
        common::bounded(move || {
            let (stops, drops) = tallies();
            let name = format!("actors-lifecycle/end/{workers}");
            let rt = common::runtime(workers);
            let (kept, monitors) = rt.block_on({
                let (stops, drops, name) = (stops.clone(), drops.clone(), name.clone());
                move || {
                    let kept: Vec<_> = (0..10).map(|_| spawn(counted(&stops, &drops))).collect();
                    for a in &kept {
                        a.ask(|r| r, Duration::from_secs(30)).unwrap();
                    }
                    coact::actor::registry::register(name, &kept[0]).unwrap();
                    let monitors: Vec<_> = kept.iter().map(|a| a.monitor()).collect();
                    (kept, monitors)
                }
            });
            drop(rt);
            assert_eq!(stops.load(Ordering::SeqCst), 10, "workers={workers}");
            for m in monitors {
                assert_eq!(
                    m.recv_timeout(Duration::from_secs(30)).map(|d| d.reason),
                    Some(StopReason::Killed)
                );
            }
            assert!(kept.iter().all(|a| a.stopped() == Some(StopReason::Killed)));
            assert!(coact::actor::registry::whereis::<ReplyTo<()>>(&name).is_none());
            drop(kept);
            assert_eq!(drops.load(Ordering::SeqCst), 10, "workers={workers}");
            let rt = common::runtime(workers);
            let (stops, drops) = (stops.clone(), drops.clone());
            rt.block_on(move || {
                let a = spawn(counted(&stops, &drops));
                assert_eq!(coact::actor::registry::register(name, &a), Ok(()));
            });
        });
    }
}

/// Blocks in its handler on the receiver it is given, until the runtime ends.
struct Blocker {
    _guard: DropCounter,
}

impl Actor for Blocker {
    type Msg = coact::sync::mpsc::Receiver<()>;
    fn handle(&mut self, rx: Self::Msg, _ctx: &mut Ctx<'_, Self::Msg>) {
        let _ = rx.recv();
    }
}

/// The end of a runtime stops every actor on it, whatever it was doing: idle handler actors,
/// handlers blocked in a call, process actors waiting on their inbox, a supervisor and its
/// children, and an actor whose mailbox is full with a plain thread blocked sending to it (the
/// thread's send fails instead of waiting for good). Every monitor hears `Killed`, every state
/// is dropped, and the blocked thread returns.
#[test]
fn the_end_of_a_runtime_stops_every_actor_on_it() {
    for workers in [1, 2] {
        common::bounded(move || {
            let (stops, drops) = tallies();
            let rt = common::runtime(workers);
            let h = rt.handle();
            let (monitors, full, keep) = rt.block_on({
                let (stops, drops) = (stops.clone(), drops.clone());
                move || {
                    let mut monitors = Vec::new();
                    let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
                    for _ in 0..20 {
                        let a = spawn(counted(&stops, &drops));
                        a.ask(|r| r, Duration::from_secs(30)).unwrap();
                        monitors.push(a.monitor());
                        keep.push(Box::new(a));
                    }
                    let (hold_tx, hold_rx) = coact::sync::mpsc::channel::<()>();
                    for _ in 0..5 {
                        let a = spawn(Blocker {
                            _guard: DropCounter::new(&drops),
                        });
                        let (tx, rx) = coact::sync::mpsc::channel::<()>();
                        a.send(rx).unwrap();
                        keep.push(Box::new(tx));
                        monitors.push(a.monitor());
                        keep.push(Box::new(a));
                    }
                    keep.push(Box::new((hold_tx, hold_rx)));
                    for _ in 0..5 {
                        let guard = DropCounter::new(&drops);
                        let p = spawn_process(move |inbox: Inbox<u32>| {
                            let _guard = guard;
                            while inbox.recv().is_some() {}
                        });
                        monitors.push(p.monitor());
                        keep.push(Box::new(p));
                    }
                    let mut sup = coact::actor::Supervisor::new(coact::actor::Strategy::OneForOne);
                    for _ in 0..3 {
                        let (stops, drops) = (stops.clone(), drops.clone());
                        let c = sup.child(move || counted(&stops, &drops));
                        monitors.push(c.monitor());
                        keep.push(Box::new(c));
                    }
                    let sup = sup.start();
                    monitors.push(sup.monitor());
                    keep.push(Box::new(sup));
                    // A mailbox of one, filled behind a handler that blocks.
                    let full = coact::actor::spawn_with_capacity(
                        1,
                        Blocker {
                            _guard: DropCounter::new(&drops),
                        },
                    );
                    let (tx, rx) = coact::sync::mpsc::channel::<()>();
                    full.send(rx).unwrap();
                    let (_tx2, rx2) = coact::sync::mpsc::channel::<()>();
                    full.send(rx2).unwrap();
                    keep.push(Box::new(tx));
                    monitors.push(full.monitor());
                    (monitors, full, keep)
                }
            });
            let (sending_tx, sending) = std::sync::mpsc::channel();
            let sender = std::thread::spawn(move || {
                let (_tx, rx) = coact::sync::mpsc::channel::<()>();
                sending_tx.send(()).unwrap();
                // Blocks: the mailbox is full and its handler never returns.
                full.send(rx).is_err()
            });
            sending.recv().unwrap();
            drop(rt);
            assert!(sender.join().unwrap(), "the blocked send failed");
            for m in monitors {
                let down = m.recv_timeout(Duration::from_secs(30)).map(|d| d.reason);
                assert_eq!(down, Some(StopReason::Killed), "workers={workers}");
            }
            drop(keep);
            drop(h);
            // 20 idle + 3 children (+ none restarted: the end stops them for good).
            assert_eq!(stops.load(Ordering::SeqCst), 23, "workers={workers}");
            assert_eq!(
                drops.load(Ordering::SeqCst),
                20 + 5 + 5 + 3 + 1,
                "workers={workers}"
            );
        });
    }
}

/// Answers pings; counts its drop.
struct Answering {
    _guard: DropCounter,
}

impl Actor for Answering {
    type Msg = ReplyTo<()>;
    fn handle(&mut self, reply: ReplyTo<()>, _ctx: &mut Ctx<'_, Self::Msg>) {
        reply.send(());
    }
}

fn answering(drops: &Arc<AtomicUsize>) -> Answering {
    Answering {
        _guard: DropCounter::new(drops),
    }
}

/// Actors spawned, asked and stopped from coroutines on every worker and from a plain thread
/// while the runtime ends: every one of them ends up stopped with its state dropped, whether
/// it stopped before the end, was stopped by it, or was spawned after it.
#[test]
fn actors_spawned_and_stopped_while_the_runtime_ends_all_stop() {
    for trial in 0..20 {
        let workers = 1 + trial % 3;
        common::bounded(move || {
            let drops = Arc::new(AtomicUsize::new(0));
            let rt = common::runtime(workers);
            let h = rt.handle();
            let (monitors_tx, monitors) = std::sync::mpsc::channel();
            let (started_tx, started) = std::sync::mpsc::channel();
            for w in 0..workers {
                let drops = drops.clone();
                let (monitors_tx, started_tx) = (monitors_tx.clone(), started_tx.clone());
                drop(h.spawn_on(w, move || {
                    let mut keep = Vec::new();
                    for i in 0.. {
                        let a = spawn(answering(&drops));
                        monitors_tx.send(a.monitor()).unwrap();
                        if i == 4 {
                            started_tx.send(()).unwrap();
                        }
                        match i % 3 {
                            0 => a.stop(),
                            1 => {
                                let _ = a.ask(|r| r, Duration::from_secs(30));
                                keep.push(a);
                            }
                            _ => keep.push(a),
                        }
                        coact::yield_now();
                    }
                }));
            }
            let thread = {
                let (drops, h) = (drops.clone(), h.clone());
                std::thread::spawn(move || {
                    let mut keep = Vec::new();
                    for _ in 0..200 {
                        let a = coact::actor::spawn_on(&h, 4, answering(&drops));
                        monitors_tx.send(a.monitor()).unwrap();
                        keep.push(a);
                    }
                    keep
                })
            };
            for _ in 0..workers {
                started.recv().unwrap();
            }
            drop(rt);
            let keep = thread.join().unwrap();
            let monitors: Vec<_> = monitors.try_iter().collect();
            let n = monitors.len();
            for m in monitors {
                let down = m.recv_timeout(Duration::from_secs(30)).map(|d| d.reason);
                assert!(
                    matches!(down, Some(StopReason::Killed | StopReason::Stopped)),
                    "trial {trial}: {down:?}"
                );
            }
            drop(keep);
            drop(h);
            assert_eq!(drops.load(Ordering::SeqCst), n, "trial {trial}");
        });
    }
}

/// Panics when dropped (unless the thread is unwinding already, which would abort).
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("a bomb went off in a destructor");
        }
    }
}

/// Whose `stopped`, and whose state's destructor, panic.
struct Fragile {
    _bomb: Bomb,
    _guard: DropCounter,
}

enum FragileMsg {
    /// Holds the handler until the sender is dropped.
    Hold(coact::sync::mpsc::Receiver<()>),
    Ping(ReplyTo<()>),
    /// A message whose destructor panics.
    Bomb(#[allow(dead_code)] Bomb),
}

impl Actor for Fragile {
    type Msg = FragileMsg;
    fn handle(&mut self, msg: FragileMsg, _ctx: &mut Ctx<'_, FragileMsg>) {
        match msg {
            FragileMsg::Hold(rx) => {
                let _ = rx.recv();
            }
            FragileMsg::Ping(r) => {
                r.send(());
            }
            FragileMsg::Bomb(b) => std::mem::forget(b),
        }
    }
    fn stopped(&mut self, _reason: &StopReason) {
        panic!("`stopped` panicked");
    }
}

/// User code that runs as an actor stops (its `stopped`, its state's destructor, the
/// destructors of the messages still queued) may panic: the stop goes on, the monitors hear
/// the reason it stopped for, and the state is gone. Both ways to stop: asked to, with a
/// message queued behind the one it was handling, and by the end of its runtime, idle, beside
/// another such actor (the end stops each of them).
#[test]
fn panics_in_an_actors_stop_do_not_keep_its_monitors_waiting() {
    for workers in [1, 2] {
        common::bounded(move || {
            let drops = Arc::new(AtomicUsize::new(0));
            let fragile = |drops: &Arc<AtomicUsize>| Fragile {
                _bomb: Bomb,
                _guard: DropCounter::new(drops),
            };
            let rt = common::runtime(workers);
            let idle = rt.block_on({
                let drops = drops.clone();
                move || {
                    // Asked to stop while a message with a panicking destructor is queued.
                    let a = spawn(fragile(&drops));
                    let m = a.monitor();
                    let (hold, held) = coact::sync::mpsc::channel();
                    a.send(FragileMsg::Hold(held)).unwrap();
                    a.send(FragileMsg::Bomb(Bomb)).unwrap();
                    a.stop();
                    drop(hold);
                    assert_eq!(
                        m.recv_timeout(Duration::from_secs(30)).map(|d| d.reason),
                        Some(StopReason::Stopped),
                        "workers={workers}"
                    );
                    // Idle when the runtime ends.
                    let idle: Vec<_> = (0..2).map(|_| spawn(fragile(&drops))).collect();
                    for i in &idle {
                        i.ask(FragileMsg::Ping, Duration::from_secs(30)).unwrap();
                    }
                    let monitors: Vec<_> = idle.iter().map(|i| i.monitor()).collect();
                    // Their addresses outlive the runtime (dropping them would stop them).
                    (idle, monitors)
                }
            });
            let (idle, monitors) = idle;
            drop(rt);
            for m in monitors {
                assert_eq!(
                    m.recv_timeout(Duration::from_secs(30)).map(|d| d.reason),
                    Some(StopReason::Killed),
                    "workers={workers}"
                );
            }
            drop(idle);
            assert_eq!(drops.load(Ordering::SeqCst), 3, "workers={workers}");
        });
    }
}
