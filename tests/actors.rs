//! `coact::actor`: mailboxes, ask, monitors and stop reasons, supervision, the registry, timers,
//! process actors, and scale (a million idle handler actors; actors spread over workers).
//!
//! Events are ordered with handshakes (monitors, asks, channels), never with sleeps. Sleeps and
//! timeouts appear only where a timer or a timeout is what is under test, and are checked from
//! below (elapsed >= delay) or against very generous bounds.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coact::actor::registry::{self, RegisterError};
use coact::actor::timer::{send_after, send_interval};
use coact::actor::{
    spawn, spawn_process, spawn_with_capacity, Actor, AskError, Ctx, Failure, Inbox, ReplyTo,
    StopReason, Strategy, Supervisor, TrySendError,
};
use coact::select::Select;
use coact::sync::mpsc::{
    channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError,
};
use common::{on_workers, on_workers_within, spin_work, DropCounter, WORKER_COUNTS};

/// A bound for "this must happen": only a hang would reach it.
const GENEROUS: Duration = Duration::from_secs(30);

/// A gate the test holds shut: a handler waiting on it stays in its handler until released.
fn gate() -> (SyncSender<()>, Receiver<()>) {
    sync_channel(1)
}

// ---------------------------------------------------------------------------------------------
// The end of a burst
// ---------------------------------------------------------------------------------------------

/// Counts messages and reports, from `idle`, how many each burst had.
struct Burst {
    in_burst: u32,
    reports: Sender<u32>,
}

enum BurstMsg {
    /// Counts, after waiting for the gate (if any) to open.
    Item(Option<Receiver<()>>),
}

impl Actor for Burst {
    type Msg = BurstMsg;
    fn handle(&mut self, msg: BurstMsg, _ctx: &mut Ctx<'_, BurstMsg>) {
        let BurstMsg::Item(gate) = msg;
        if let Some(g) = gate {
            g.recv().unwrap();
        }
        self.in_burst += 1;
    }
    fn idle(&mut self, _ctx: &mut Ctx<'_, BurstMsg>) {
        self.reports
            .send(std::mem::take(&mut self.in_burst))
            .unwrap();
    }
}

#[test]
fn idle_runs_once_per_burst_after_its_last_message() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (reports_tx, reports) = channel();
            let a = spawn(Burst {
                in_burst: 0,
                reports: reports_tx,
            });
            // The first message holds the actor in its handler while nine more queue up:
            // the ten are one burst, and `idle` runs once, after the tenth.
            let (open, gate) = gate();
            a.send(BurstMsg::Item(Some(gate))).unwrap();
            for _ in 0..9 {
                a.send(BurstMsg::Item(None)).unwrap();
            }
            open.send(()).unwrap();
            assert_eq!(reports.recv_timeout(GENEROUS), Ok(10));
            // A lone message later is a burst of its own.
            a.send(BurstMsg::Item(None)).unwrap();
            assert_eq!(reports.recv_timeout(GENEROUS), Ok(1));
            // Nothing more: an actor with an empty mailbox does not run `idle` again.
            let down = a.monitor();
            a.stop();
            assert!(down.recv_timeout(GENEROUS).is_some());
            assert_eq!(reports.try_recv(), Err(TryRecvError::Disconnected));
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Mailbox order and backpressure
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct FifoChecker {
    next: HashMap<u32, u64>,
    violations: u64,
    total: u64,
}

enum FifoMsg {
    Item { sender: u32, seq: u64 },
    Report(ReplyTo<(u64, u64, HashMap<u32, u64>)>),
}

impl Actor for FifoChecker {
    type Msg = FifoMsg;
    fn handle(&mut self, msg: FifoMsg, _ctx: &mut Ctx<'_, FifoMsg>) {
        match msg {
            FifoMsg::Item { sender, seq } => {
                let next = self.next.entry(sender).or_insert(0);
                if seq != *next {
                    self.violations += 1;
                }
                *next = seq + 1;
                self.total += 1;
            }
            FifoMsg::Report(r) => {
                r.send((self.violations, self.total, self.next.clone()));
            }
        }
    }
}

#[test]
fn messages_from_each_sender_arrive_in_the_order_sent() {
    const COROUTINES: u32 = 6;
    const PER_SENDER: u64 = 2_000;
    for n in WORKER_COUNTS {
        on_workers(n, || {
            // A small mailbox, so that senders park and resume many times.
            let checker = spawn_with_capacity(8, FifoChecker::default());
            let mut joins = Vec::new();
            for s in 0..COROUTINES {
                let a = checker.clone();
                joins.push(coact::spawn(move || {
                    for seq in 0..PER_SENDER {
                        a.send(FifoMsg::Item { sender: s, seq }).unwrap();
                        if seq % 97 == 0 {
                            coact::yield_now();
                        }
                    }
                }));
            }
            // One more sender on a plain OS thread.
            let (thread_done_tx, thread_done_rx) = sync_channel::<()>(1);
            let a = checker.clone();
            let thread = std::thread::spawn(move || {
                for seq in 0..PER_SENDER {
                    a.send(FifoMsg::Item {
                        sender: COROUTINES,
                        seq,
                    })
                    .unwrap();
                }
                thread_done_tx.send(()).unwrap();
            });
            for j in joins {
                j.join().unwrap();
            }
            thread_done_rx.recv().unwrap();
            let (violations, total, next) = checker.ask(FifoMsg::Report, GENEROUS).unwrap();
            assert_eq!(violations, 0, "some sender's messages arrived out of order");
            assert_eq!(total, u64::from(COROUTINES + 1) * PER_SENDER);
            assert_eq!(next.len(), COROUTINES as usize + 1);
            assert!(next.values().all(|&v| v == PER_SENDER));
            thread.join().unwrap();
        });
    }
}

#[test]
fn send_batch_keeps_each_senders_order_through_a_full_mailbox() {
    const COROUTINES: u32 = 4;
    const PER_SENDER: u64 = 3_000;
    // Batches of 1 to 37 messages, with single sends between them, into a mailbox of 8: most
    // batches fill it part-way and park for the rest.
    fn feed(a: &coact::actor::Addr<FifoMsg>, sender: u32) {
        let mut seq = 0;
        let mut size = 1;
        while seq < PER_SENDER {
            let end = (seq + size).min(PER_SENDER);
            let mut batch: std::collections::VecDeque<FifoMsg> = (seq..end)
                .map(|seq| FifoMsg::Item { sender, seq })
                .collect();
            a.send_batch(&mut batch).unwrap();
            assert!(batch.is_empty());
            seq = end;
            if seq < PER_SENDER {
                a.send(FifoMsg::Item { sender, seq }).unwrap();
                seq += 1;
            }
            size = size % 37 + 1;
        }
    }
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let checker = spawn_with_capacity(8, FifoChecker::default());
            let joins: Vec<_> = (0..COROUTINES)
                .map(|s| {
                    let a = checker.clone();
                    coact::spawn(move || feed(&a, s))
                })
                .collect();
            // The thread says it is done through a coact channel: joining it from this
            // coroutine while it still sends would block the worker its actor needs.
            let (thread_done_tx, thread_done_rx) = sync_channel::<()>(1);
            let a = checker.clone();
            let thread = std::thread::spawn(move || {
                feed(&a, COROUTINES);
                thread_done_tx.send(()).unwrap();
            });
            for j in joins {
                j.join().unwrap();
            }
            thread_done_rx.recv().unwrap();
            thread.join().unwrap();
            let (violations, total, next) = checker.ask(FifoMsg::Report, GENEROUS).unwrap();
            assert_eq!(violations, 0, "some sender's messages arrived out of order");
            assert_eq!(total, u64::from(COROUTINES + 1) * PER_SENDER);
            assert!(next.values().all(|&v| v == PER_SENDER));
        });
    }
}

#[test]
fn send_batch_to_a_stopped_actor_gives_the_messages_back() {
    on_workers(1, || {
        let a = spawn(FifoChecker::default());
        let down = a.monitor();
        a.stop();
        assert_eq!(down.recv().reason, StopReason::Stopped);
        let mut batch: std::collections::VecDeque<FifoMsg> =
            (0..5).map(|seq| FifoMsg::Item { sender: 0, seq }).collect();
        assert!(a.send_batch(&mut batch).is_err());
        assert_eq!(batch.len(), 5);
    });
}

struct Slow {
    seen: Vec<u32>,
    /// Where each item is also sent, if anywhere.
    out: Option<Sender<u32>>,
}

enum SlowMsg {
    /// Tell the test we are in the handler, then wait on the gate.
    Block {
        entered: SyncSender<()>,
        gate: Receiver<()>,
    },
    Item(u32),
    Seen(ReplyTo<Vec<u32>>),
}

impl Actor for Slow {
    type Msg = SlowMsg;
    fn handle(&mut self, msg: SlowMsg, _ctx: &mut Ctx<'_, SlowMsg>) {
        match msg {
            SlowMsg::Block { entered, gate } => {
                entered.send(()).unwrap();
                gate.recv().unwrap();
            }
            SlowMsg::Item(i) => {
                self.seen.push(i);
                if let Some(out) = &self.out {
                    let _ = out.send(i);
                }
            }
            SlowMsg::Seen(r) => {
                r.send(self.seen.clone());
            }
        }
    }
}

#[test]
fn a_full_mailbox_parks_the_sender_until_the_actor_catches_up() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let slow = spawn_with_capacity(
                4,
                Slow {
                    seen: Vec::new(),
                    out: None,
                },
            );
            let (entered_tx, entered_rx) = sync_channel(1);
            let (gate_tx, gate_rx) = gate();
            slow.send(SlowMsg::Block {
                entered: entered_tx,
                gate: gate_rx,
            })
            .unwrap();
            entered_rx.recv().unwrap(); // the actor is in its handler; the mailbox is empty

            for i in 0..4 {
                assert!(slow.try_send(SlowMsg::Item(i)).is_ok(), "room for item {i}");
            }
            match slow.try_send(SlowMsg::Item(99)) {
                Err(TrySendError::Full(SlowMsg::Item(99))) => {}
                other => panic!(
                    "expected Full(Item(99)), got {:?}",
                    other.map_err(|e| e.to_string())
                ),
            }

            // A sender that has to park: it only completes after the actor is released.
            let released = Arc::new(AtomicBool::new(false));
            let (ready_tx, ready_rx) = sync_channel(1);
            let (done_tx, done_rx) = sync_channel(1);
            let sender = {
                let slow = slow.clone();
                let released = released.clone();
                coact::spawn(move || {
                    ready_tx.send(()).unwrap();
                    slow.send(SlowMsg::Item(4)).unwrap();
                    done_tx.send(released.load(Ordering::SeqCst)).unwrap();
                })
            };
            ready_rx.recv().unwrap();
            // Not a way of ordering anything: a check that the sender stays parked meanwhile.
            assert_eq!(
                done_rx.recv_timeout(Duration::from_millis(100)),
                Err(RecvTimeoutError::Timeout),
                "the sender went through a full mailbox"
            );
            // The mailbox never holds more than its capacity.
            assert!(matches!(
                slow.try_send(SlowMsg::Item(98)),
                Err(TrySendError::Full(_))
            ));

            released.store(true, Ordering::SeqCst);
            gate_tx.send(()).unwrap();
            assert_eq!(
                done_rx.recv_timeout(GENEROUS),
                Ok(true),
                "the parked sender completed only once the actor was released"
            );
            sender.join().unwrap();
            assert_eq!(
                slow.ask(SlowMsg::Seen, GENEROUS).unwrap(),
                vec![0, 1, 2, 3, 4]
            );
        });
    }
}

#[test]
fn a_message_to_an_idle_actor_is_handed_over_without_taking_mailbox_room() {
    // One worker: nothing runs between the sends below, so the actor stays as they leave it.
    on_workers(1, || {
        let slow = spawn_with_capacity(
            1,
            Slow {
                seen: Vec::new(),
                out: None,
            },
        );
        // Its first activation (which runs `started`) is over once it has answered.
        assert_eq!(
            slow.ask(SlowMsg::Seen, GENEROUS).unwrap(),
            Vec::<u32>::new()
        );
        // Idle, with an empty mailbox: the first message goes straight to the actor (it is
        // as good as taken, and handled first), so the mailbox's one place is still free.
        assert!(slow.try_send(SlowMsg::Item(1)).is_ok(), "handed over");
        assert!(
            slow.try_send(SlowMsg::Item(2)).is_ok(),
            "the mailbox's one place"
        );
        match slow.try_send(SlowMsg::Item(3)) {
            Err(TrySendError::Full(SlowMsg::Item(3))) => {}
            other => panic!(
                "expected Full(Item(3)), got {:?}",
                other.map_err(|e| e.to_string())
            ),
        }
        assert_eq!(
            slow.ask(SlowMsg::Seen, GENEROUS).unwrap(),
            vec![1, 2],
            "the handed-over message first, then the queued one"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Ask
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Answerer {
    held: Vec<ReplyTo<u32>>,
}

enum AskMsg {
    Double(u32, ReplyTo<u32>),
    /// Keep the reply slot and never answer.
    Hold(ReplyTo<u32>),
    /// Enter, then wait on the gate (holding the reply slot, if any).
    Park {
        reply: Option<ReplyTo<u32>>,
        entered: SyncSender<()>,
        gate: Receiver<()>,
    },
    /// Panic while holding the reply slot.
    Panic(ReplyTo<u32>),
}

impl Actor for Answerer {
    type Msg = AskMsg;
    fn handle(&mut self, msg: AskMsg, _ctx: &mut Ctx<'_, AskMsg>) {
        match msg {
            AskMsg::Double(n, r) => {
                r.send(n * 2);
            }
            AskMsg::Hold(r) => self.held.push(r),
            AskMsg::Park {
                reply,
                entered,
                gate,
            } => {
                let _reply = reply;
                entered.send(()).unwrap();
                let _ = gate.recv();
            }
            AskMsg::Panic(_r) => panic!("answerer panics on purpose"),
        }
    }
}

#[test]
fn ask_gets_the_reply() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let a = spawn(Answerer::default());
            for i in 0..100 {
                assert_eq!(a.ask(|r| AskMsg::Double(i, r), GENEROUS), Ok(2 * i));
            }
        });
    }
}

#[test]
fn ask_times_out_when_the_actor_keeps_the_request_unanswered() {
    on_workers(2, || {
        let a = spawn(Answerer::default());
        let t = Duration::from_millis(100);
        let start = Instant::now();
        assert_eq!(a.ask(AskMsg::Hold, t), Err(AskError::Timeout));
        assert!(
            start.elapsed() >= t,
            "timed out early: {:?}",
            start.elapsed()
        );
        // The actor is fine and still answers.
        assert_eq!(a.ask(|r| AskMsg::Double(4, r), GENEROUS), Ok(8));
    });
}

/// How long an ask with a 60 s timeout may take to fail when the actor dies: far less.
const PROMPT: Duration = Duration::from_secs(30);
const LONG_ASK: Duration = Duration::from_secs(60);

#[test]
fn ask_fails_promptly_when_the_actor_dies_while_handling_the_request() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            // Killed while it holds the request.
            let a = spawn(Answerer::default());
            let (entered_tx, entered_rx) = sync_channel(1);
            let (_gate_tx, gate_rx) = gate();
            let asker = {
                let a = a.clone();
                coact::spawn(move || {
                    let start = Instant::now();
                    let r = a.ask(
                        |r| AskMsg::Park {
                            reply: Some(r),
                            entered: entered_tx,
                            gate: gate_rx,
                        },
                        LONG_ASK,
                    );
                    (r, start.elapsed())
                })
            };
            entered_rx.recv().unwrap();
            a.kill();
            let (r, elapsed) = asker.join().unwrap();
            assert_eq!(r, Err(AskError::NoReply));
            assert!(elapsed < PROMPT, "took {elapsed:?}");

            // Panics while it holds the request.
            let b = spawn(Answerer::default());
            let start = Instant::now();
            assert_eq!(b.ask(AskMsg::Panic, LONG_ASK), Err(AskError::NoReply));
            assert!(start.elapsed() < PROMPT);
            assert_eq!(
                b.monitor().recv().reason,
                StopReason::Panicked("answerer panics on purpose".into())
            );
        });
    }
}

#[test]
fn ask_fails_promptly_when_the_actor_dies_with_the_request_queued() {
    // One worker: the asker runs from `make` (which signals) through queueing its request to
    // parking for the reply without an interruption, so the request is queued when the test
    // coroutine runs again.
    on_workers(1, || {
        let a = spawn(Answerer::default());
        let (entered_tx, entered_rx) = sync_channel(1);
        let (_gate_tx, gate_rx) = gate();
        a.send(AskMsg::Park {
            reply: None,
            entered: entered_tx,
            gate: gate_rx,
        })
        .unwrap();
        entered_rx.recv().unwrap(); // busy in its handler until killed

        let (queued_tx, queued_rx) = channel();
        let asker = {
            let a = a.clone();
            coact::spawn(move || {
                let start = Instant::now();
                let r = a.ask(
                    |r| {
                        queued_tx.send(()).unwrap();
                        AskMsg::Double(1, r)
                    },
                    LONG_ASK,
                );
                (r, start.elapsed())
            })
        };
        queued_rx.recv().unwrap();
        a.kill();
        let (r, elapsed) = asker.join().unwrap();
        assert_eq!(r, Err(AskError::NoReply));
        assert!(elapsed < PROMPT, "took {elapsed:?}");
    });
}

#[test]
fn ask_to_a_stopped_actor_is_closed() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let a = spawn(Answerer::default());
            let down = a.monitor();
            a.stop();
            assert_eq!(down.recv().reason, StopReason::Stopped);
            assert_eq!(
                a.ask(|r| AskMsg::Double(1, r), GENEROUS),
                Err(AskError::Closed)
            );
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Stop reasons and monitors
// ---------------------------------------------------------------------------------------------

struct Mortal {
    _state: Option<DropCounter>,
    log: Option<Sender<u32>>,
}

enum MortalMsg {
    StopYourself,
    Panic(String),
    /// Enter, then wait on the gate holding `guard`; then log `n`.
    Park {
        n: u32,
        guard: DropCounter,
        entered: SyncSender<()>,
        gate: Receiver<()>,
    },
    /// Log `n` and drop the payload.
    Work(u32, DropCounter),
    Ping(ReplyTo<()>),
}

impl Actor for Mortal {
    type Msg = MortalMsg;
    fn handle(&mut self, msg: MortalMsg, ctx: &mut Ctx<'_, MortalMsg>) {
        match msg {
            MortalMsg::StopYourself => ctx.stop(),
            MortalMsg::Panic(text) => panic!("{text}"),
            MortalMsg::Park {
                n,
                guard,
                entered,
                gate,
            } => {
                let _guard = guard;
                entered.send(()).unwrap();
                let _ = gate.recv();
                if let Some(log) = &self.log {
                    log.send(n).unwrap();
                }
            }
            MortalMsg::Work(n, _payload) => {
                if let Some(log) = &self.log {
                    log.send(n).unwrap();
                }
            }
            MortalMsg::Ping(r) => {
                r.send(());
            }
        }
    }
}

fn mortal() -> Mortal {
    Mortal {
        _state: None,
        log: None,
    }
}

#[test]
fn monitors_learn_every_stop_reason_exactly_once() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            // Normal: the actor stops itself.
            let a = spawn(mortal());
            let monitors: Vec<_> = (0..3).map(|_| a.monitor()).collect();
            a.send(MortalMsg::StopYourself).unwrap();
            for m in &monitors {
                let down = m.recv();
                assert_eq!(down.id, a.id());
                assert_eq!(down.reason, StopReason::Normal);
                assert_eq!(m.try_recv(), None, "a second notice");
            }
            assert_eq!(a.stopped(), Some(StopReason::Normal));

            // Stopped: someone asked it to stop.
            let b = spawn(mortal());
            let mb = b.monitor();
            b.ask(MortalMsg::Ping, GENEROUS).unwrap();
            b.stop();
            assert_eq!(mb.recv().reason, StopReason::Stopped);

            // Panicked, with the panic message.
            let c = spawn(mortal());
            let mc = c.monitor();
            c.send(MortalMsg::Panic(format!("boom number {}", 7)))
                .unwrap();
            assert_eq!(
                mc.recv().reason,
                StopReason::Panicked("boom number 7".into())
            );
            assert_eq!(mc.try_recv(), None);

            // A monitor made after the stop is told at once, once.
            for (addr, reason) in [
                (&a, StopReason::Normal),
                (&b, StopReason::Stopped),
                (&c, StopReason::Panicked("boom number 7".into())),
            ] {
                let late = addr.monitor();
                let down = late.try_recv().expect("told at once");
                assert_eq!(down.reason, reason);
                assert_eq!(down.id, addr.id());
                assert_eq!(late.try_recv(), None);
            }
        });
    }
}

#[test]
fn kill_unwinds_a_handler_blocked_in_a_call_and_runs_destructors() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let drops = Arc::new(AtomicUsize::new(0));
            let a = spawn(Mortal {
                _state: Some(DropCounter::new(&drops)),
                log: None,
            });
            let down = a.monitor();
            let (entered_tx, entered_rx) = sync_channel(1);
            let (gate_tx, gate_rx) = gate();
            a.send(MortalMsg::Park {
                n: 0,
                guard: DropCounter::new(&drops),
                entered: entered_tx,
                gate: gate_rx,
            })
            .unwrap();
            entered_rx.recv().unwrap();
            for i in 1..=2 {
                a.send(MortalMsg::Work(i, DropCounter::new(&drops)))
                    .unwrap();
            }
            a.kill();
            let d = down.recv();
            assert_eq!(d.reason, StopReason::Killed);
            assert_eq!(down.try_recv(), None);
            // The handler's frame, the actor's state and both queued messages.
            assert_eq!(drops.load(Ordering::SeqCst), 4);
            assert!(a.send(MortalMsg::StopYourself).is_err());
            drop(gate_tx);
        });
    }
}

#[test]
fn stop_finishes_the_current_message_then_drops_the_queue() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let drops = Arc::new(AtomicUsize::new(0));
            let (log_tx, log_rx) = channel();
            let a = spawn_with_capacity(
                4,
                Mortal {
                    _state: None,
                    log: Some(log_tx),
                },
            );
            let down = a.monitor();
            let (entered_tx, entered_rx) = sync_channel(1);
            let (gate_tx, gate_rx) = gate();
            a.send(MortalMsg::Park {
                n: 1,
                guard: DropCounter::new(&drops),
                entered: entered_tx,
                gate: gate_rx,
            })
            .unwrap();
            entered_rx.recv().unwrap();
            for i in 2..=5 {
                a.send(MortalMsg::Work(i, DropCounter::new(&drops)))
                    .unwrap();
            }
            // The mailbox is full: this sender parks, and fails once the actor stops.
            let parked = {
                let a = a.clone();
                let drops = drops.clone();
                coact::spawn(move || {
                    a.send(MortalMsg::Work(6, DropCounter::new(&drops)))
                        .map_err(|e| drop(e.into_inner()))
                        .is_err()
                })
            };
            a.stop();
            gate_tx.send(()).unwrap(); // let message 1 finish
            assert_eq!(down.recv().reason, StopReason::Stopped);
            assert!(parked.join().unwrap(), "the parked sender got SendError");
            assert_eq!(
                log_rx.try_iter().collect::<Vec<_>>(),
                vec![1],
                "the current message finished, no queued one ran"
            );
            // Message 1 after its handler, 2..=5 dropped from the queue, 6 given back.
            assert_eq!(drops.load(Ordering::SeqCst), 6);
            let err = a
                .send(MortalMsg::Work(7, DropCounter::new(&drops)))
                .unwrap_err();
            assert!(matches!(err.into_inner(), MortalMsg::Work(7, _)));
            assert_eq!(drops.load(Ordering::SeqCst), 7);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Supervision
// ---------------------------------------------------------------------------------------------

struct Kid {
    generation: usize,
}

#[derive(Debug)]
enum KidMsg {
    Generation(ReplyTo<usize>),
    Boom(String),
    Work(u32, Sender<u32>),
}

impl Actor for Kid {
    type Msg = KidMsg;
    fn handle(&mut self, msg: KidMsg, _ctx: &mut Ctx<'_, KidMsg>) {
        match msg {
            KidMsg::Generation(r) => {
                r.send(self.generation);
            }
            KidMsg::Boom(text) => panic!("{text}"),
            KidMsg::Work(n, out) => out.send(n).unwrap(),
        }
    }

    fn describe(msg: &KidMsg) -> Option<String> {
        Some(match msg {
            KidMsg::Generation(_) => "Generation".to_owned(),
            KidMsg::Boom(text) => format!("Boom({text})"),
            KidMsg::Work(n, _) => format!("Work({n})"),
        })
    }
}

/// A factory that counts its calls (the child's generation) and reports each on `events`.
fn kid_factory(index: usize, events: Sender<(usize, usize)>) -> impl FnMut() -> Kid + Send {
    let calls = Arc::new(AtomicUsize::new(0));
    move || {
        let generation = calls.fetch_add(1, Ordering::SeqCst) + 1;
        events.send((index, generation)).unwrap();
        Kid { generation }
    }
}

/// A supervisor that allows `max_restarts` restarts a minute and restarts after 1 ms.
fn quick_supervisor(strategy: Strategy, max_restarts: usize) -> Supervisor {
    Supervisor::new(strategy)
        .intensity(max_restarts, Duration::from_secs(60))
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
}

/// Four children; child `failing` panics; exactly the children in `restarted` must restart.
fn check_strategy(strategy: Strategy, failing: usize, restarted: &[usize]) {
    const KIDS: usize = 4;
    let (events_tx, events_rx) = channel();
    let mut sup = quick_supervisor(strategy, 10);
    let kids: Vec<_> = (0..KIDS)
        .map(|i| sup.child(kid_factory(i, events_tx.clone())))
        .collect();
    let sup = sup.start();
    for _ in 0..KIDS {
        assert_eq!(events_rx.recv().unwrap().1, 1, "first generation");
    }
    kids[failing]
        .send(KidMsg::Boom("strategy test".into()))
        .unwrap();
    // Wait for exactly the expected restarts (each factory call reports itself).
    let mut seen = HashSet::new();
    while seen.len() < restarted.len() {
        let (i, generation) = events_rx.recv_timeout(GENEROUS).expect("a restart");
        assert!(restarted.contains(&i), "{strategy:?} restarted child {i}");
        assert_eq!(generation, 2);
        assert!(seen.insert(i), "child {i} restarted twice");
    }
    for (i, kid) in kids.iter().enumerate() {
        let want = if restarted.contains(&i) { 2 } else { 1 };
        assert_eq!(
            kid.ask(KidMsg::Generation, GENEROUS),
            Ok(want),
            "{strategy:?}: generation of child {i}"
        );
    }
    assert_eq!(
        events_rx.try_recv(),
        Err(TryRecvError::Empty),
        "extra restarts"
    );
    sup.shutdown();
}

#[test]
fn one_for_one_restarts_only_the_failed_child() {
    for n in WORKER_COUNTS {
        on_workers(n, || check_strategy(Strategy::OneForOne, 1, &[1]));
    }
}

#[test]
fn one_for_all_restarts_every_child() {
    for n in WORKER_COUNTS {
        on_workers(n, || check_strategy(Strategy::OneForAll, 1, &[0, 1, 2, 3]));
    }
}

#[test]
fn rest_for_one_restarts_the_failed_child_and_later_ones() {
    for n in WORKER_COUNTS {
        on_workers(n, || check_strategy(Strategy::RestForOne, 1, &[1, 2, 3]));
    }
}

/// A supervised actor without `describe`.
struct Plain;

impl Actor for Plain {
    type Msg = &'static str;
    fn handle(&mut self, msg: &'static str, _ctx: &mut Ctx<'_, &'static str>) {
        panic!("plain: {msg}");
    }
}

#[test]
fn messages_queued_behind_a_failure_survive_the_restart_and_failures_are_reported() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (fail_tx, fail_rx) = channel::<Failure>();
            let (events_tx, _events_rx) = channel();
            let mut sup = Supervisor::new(Strategy::OneForOne)
                // A long backoff: the ten messages are queued while the child is failed.
                .backoff(Duration::from_millis(50), Duration::from_millis(50))
                .on_failure(move |f| fail_tx.send(f.clone()).unwrap());
            let kid = sup.child(kid_factory(0, events_tx));
            let plain = sup.child(|| Plain);
            let sup = sup.start();

            let (out_tx, out_rx) = channel();
            kid.send(KidMsg::Boom("bad input 7".into())).unwrap();
            for i in 0..10 {
                kid.send(KidMsg::Work(i, out_tx.clone())).unwrap();
            }
            let got: Vec<u32> = (0..10)
                .map(|_| out_rx.recv_timeout(GENEROUS).expect("a queued message"))
                .collect();
            assert_eq!(got, (0..10).collect::<Vec<_>>(), "all ten, in order");
            assert_eq!(kid.ask(KidMsg::Generation, GENEROUS), Ok(2));

            let f = fail_rx.recv_timeout(GENEROUS).expect("a failure report");
            assert_eq!(f.child, 0);
            assert_eq!(f.id, kid.id());
            assert_eq!(f.panic, "bad input 7");
            assert_eq!(f.message.as_deref(), Some("Boom(bad input 7)"));
            assert!(f.to_string().contains("bad input 7"), "{f}");

            plain.send("oops").unwrap();
            let f = fail_rx.recv_timeout(GENEROUS).expect("a failure report");
            assert_eq!((f.child, f.id), (1, plain.id()));
            assert_eq!(f.panic, "plain: oops");
            assert_eq!(f.message, None, "no describe, no message text");
            sup.shutdown();
        });
    }
}

#[test]
fn too_many_restarts_stop_the_supervisor_and_its_children() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (events_tx, _events_rx) = channel();
            let mut sup = quick_supervisor(Strategy::OneForOne, 2);
            let kid = sup.child(kid_factory(0, events_tx.clone()));
            let sibling = sup.child(kid_factory(1, events_tx));
            let sup = sup.start();
            let sup_down = sup.monitor();
            let kid_down = kid.monitor();
            let sibling_down = sibling.monitor();
            // Two failures are restarted; the third is more than the intensity allows.
            for i in 0..3 {
                kid.send(KidMsg::Boom(format!("failure {i}"))).unwrap();
            }
            let down = sup_down
                .recv_timeout(GENEROUS)
                .expect("the supervisor gave up");
            assert_eq!(down.id, sup.id());
            match &down.reason {
                StopReason::Panicked(text) => {
                    assert!(text.contains("restart intensity"), "{text}");
                    assert!(text.contains("failure 2"), "{text}");
                }
                other => panic!("expected Panicked, got {other:?}"),
            }
            // Its children stopped before it did.
            assert_eq!(
                kid_down.try_recv().map(|d| d.reason),
                Some(StopReason::Stopped)
            );
            assert_eq!(
                sibling_down.try_recv().map(|d| d.reason),
                Some(StopReason::Stopped)
            );
            assert!(kid.send(KidMsg::Boom("late".into())).is_err());
        });
    }
}

/// A subtree that exceeds its restart intensity reports to its parent instead of stopping;
/// the parent restarts it, which restarts every actor in it at the same address, with the
/// messages already accepted still there.
#[test]
fn a_subtree_past_its_intensity_is_restarted_by_its_parent() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (events_tx, events_rx) = channel();
            let (failures_tx, failures_rx) = channel();
            let mut pool = quick_supervisor(Strategy::OneForOne, 1);
            let kid = pool.child(kid_factory(0, events_tx.clone()));
            let sibling = pool.child(kid_factory(1, events_tx));
            let mut root = quick_supervisor(Strategy::OneForOne, 5)
                .on_failure(move |f| failures_tx.send(f.clone()).unwrap());
            let pool = root.supervisor(pool);
            let root = root.start();
            let (pool_down, root_down) = (pool.monitor(), root.monitor());
            for _ in 0..2 {
                assert_eq!(events_rx.recv().unwrap().1, 1, "first generation");
            }
            // One failure the pool restarts itself; the second is past its intensity.
            kid.send(KidMsg::Boom("first".into())).unwrap();
            assert_eq!(events_rx.recv_timeout(GENEROUS), Ok((0, 2)));
            kid.send(KidMsg::Boom("second".into())).unwrap();
            // Queued behind the failure: handled after the restarts, not lost.
            let (out_tx, out_rx) = channel();
            kid.send(KidMsg::Work(7, out_tx)).unwrap();
            let report = failures_rx
                .recv_timeout(GENEROUS)
                .expect("the pool reports");
            assert_eq!(report.child, 0);
            assert_eq!(report.id, pool.id());
            assert!(report.panic.contains("restart intensity"), "{report}");
            assert!(report.panic.contains("second"), "{report}");
            // The root restarts the pool: both of its actors start over.
            let mut restarted: Vec<_> = (0..2)
                .map(|_| events_rx.recv_timeout(GENEROUS).expect("a restart"))
                .collect();
            restarted.sort();
            assert_eq!(restarted, vec![(0, 3), (1, 2)]);
            assert_eq!(out_rx.recv_timeout(GENEROUS), Ok(7));
            assert_eq!(kid.ask(KidMsg::Generation, GENEROUS), Ok(3));
            assert_eq!(sibling.ask(KidMsg::Generation, GENEROUS), Ok(2));
            // The pool never stopped, and its intensity starts afresh: one more failure is
            // its own to restart.
            assert!(pool_down.try_recv().is_none());
            kid.send(KidMsg::Boom("third".into())).unwrap();
            assert_eq!(events_rx.recv_timeout(GENEROUS), Ok((0, 4)));
            assert!(failures_rx.try_recv().is_err(), "the root heard of it");
            root.shutdown();
            assert!(pool_down.try_recv().is_some());
            assert!(root_down.try_recv().is_some());
        });
    }
}

/// Shutting a tree down stops it from the leaves up: an actor stops while its supervisor
/// still runs, and that supervisor stops before the root.
#[test]
fn a_tree_shuts_down_leaves_first() {
    struct Leaf {
        log: Arc<Mutex<Vec<String>>>,
        pool: Arc<Mutex<Option<coact::actor::Monitor>>>,
    }
    impl Actor for Leaf {
        type Msg = ();
        fn handle(&mut self, _m: (), _ctx: &mut Ctx<'_, ()>) {}
        fn stopped(&mut self, reason: &StopReason) {
            let pool_running = self
                .pool
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|m| m.try_recv().is_none());
            self.log
                .lock()
                .unwrap()
                .push(format!("leaf {reason:?}, pool running: {pool_running}"));
        }
    }
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let log = Arc::new(Mutex::new(Vec::new()));
            let pool_watch = Arc::new(Mutex::new(None));
            let mut pool = Supervisor::new(Strategy::OneForOne);
            let (l, p) = (log.clone(), pool_watch.clone());
            let leaf = pool.child(move || Leaf {
                log: l.clone(),
                pool: p.clone(),
            });
            let mut root = Supervisor::new(Strategy::OneForAll);
            let pool = root.supervisor(pool);
            *pool_watch.lock().unwrap() = Some(pool.monitor());
            let root = root.start();
            let (pool_down, root_down) = (pool.monitor(), root.monitor());
            leaf.send(()).unwrap();
            root.shutdown();
            assert_eq!(
                *log.lock().unwrap(),
                vec!["leaf Stopped, pool running: true".to_owned()]
            );
            let pool_reason = pool_down.try_recv().expect("the pool stopped").reason;
            assert_eq!(pool_reason, StopReason::Stopped);
            assert_eq!(
                root_down.try_recv().expect("the root stopped").reason,
                StopReason::Stopped
            );
        });
    }
}

struct Recorder {
    index: usize,
    order: Arc<Mutex<Vec<usize>>>,
}

impl Actor for Recorder {
    type Msg = ReplyTo<()>;
    fn handle(&mut self, msg: ReplyTo<()>, _ctx: &mut Ctx<'_, ReplyTo<()>>) {
        msg.send(());
    }
    fn stopped(&mut self, _reason: &StopReason) {
        self.order.lock().unwrap().push(self.index);
    }
}

#[test]
fn shutdown_stops_children_last_started_first() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let order = Arc::new(Mutex::new(Vec::new()));
            let mut sup = Supervisor::new(Strategy::OneForAll);
            let kids: Vec<_> = (0..5)
                .map(|index| {
                    let order = order.clone();
                    sup.child(move || Recorder {
                        index,
                        order: order.clone(),
                    })
                })
                .collect();
            let sup = sup.start();
            for k in &kids {
                k.ask(|r| r, GENEROUS).unwrap();
            }
            let downs: Vec<_> = kids.iter().map(|k| k.monitor()).collect();
            let sup_down = sup.monitor();
            sup.shutdown();
            assert_eq!(*order.lock().unwrap(), vec![4, 3, 2, 1, 0]);
            for d in &downs {
                assert_eq!(d.try_recv().map(|d| d.reason), Some(StopReason::Stopped));
            }
            assert_eq!(
                sup_down.try_recv().map(|d| d.reason),
                Some(StopReason::Stopped)
            );
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Registry (process-wide: every test uses its own names)
// ---------------------------------------------------------------------------------------------

#[test]
fn registry_names_actors_until_they_stop() {
    on_workers(2, || {
        let a = spawn(mortal());
        let b = spawn(mortal());
        let n1 = "actors-test/registry/one";
        let n2 = "actors-test/registry/two";

        assert_eq!(registry::register(n1, &a), Ok(()));
        assert_eq!(
            registry::whereis::<MortalMsg>(n1).map(|x| x.id()),
            Some(a.id())
        );
        assert!(registry::whereis::<u64>(n1).is_none(), "wrong message type");
        assert!(registry::whereis::<MortalMsg>("actors-test/registry/none").is_none());
        assert_eq!(
            registry::register(n1, &b),
            Err(RegisterError::Taken(a.id()))
        );

        // A found address works.
        let found = registry::whereis::<MortalMsg>(n1).unwrap();
        found.ask(MortalMsg::Ping, GENEROUS).unwrap();

        assert!(registry::unregister(n1));
        assert!(!registry::unregister(n1));
        assert!(registry::whereis::<MortalMsg>(n1).is_none());
        assert_eq!(registry::register(n1, &b), Ok(()));

        // Released when the actor stops.
        assert_eq!(registry::register(n2, &a), Ok(()));
        let down = a.monitor();
        a.stop();
        down.recv();
        assert!(registry::whereis::<MortalMsg>(n2).is_none());
        assert_eq!(registry::register(n2, &a), Err(RegisterError::Stopped));
        assert!(registry::whereis::<MortalMsg>(n2).is_none());
        assert_eq!(registry::register(n2, &b), Ok(()));

        let down = b.monitor();
        b.stop();
        down.recv();
        assert!(registry::whereis::<MortalMsg>(n1).is_none());
        assert!(registry::whereis::<MortalMsg>(n2).is_none());
    });
}

// ---------------------------------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------------------------------

/// Forwards every message it gets, with the time it got it.
struct Forwarder<M> {
    out: Sender<(M, Instant)>,
}

impl<M: Send + 'static> Actor for Forwarder<M> {
    type Msg = M;
    fn handle(&mut self, msg: M, _ctx: &mut Ctx<'_, M>) {
        let _ = self.out.send((msg, Instant::now()));
    }
}

fn forwarder<M: Send + 'static>() -> (coact::actor::Addr<M>, Receiver<(M, Instant)>) {
    let (out, rx) = channel();
    (spawn(Forwarder { out }), rx)
}

#[test]
fn send_after_delivers_after_the_delay() {
    on_workers(2, || {
        let (a, rx) = forwarder::<&'static str>();
        let delay = Duration::from_millis(50);
        let start = Instant::now();
        let t = send_after(&a, delay, "later");
        let (msg, at) = rx.recv_timeout(GENEROUS).expect("the timer fired");
        assert_eq!(msg, "later");
        assert!(at - start >= delay, "fired after {:?}", at - start);
        drop(t);
        // A detached timer fires too.
        send_after(&a, Duration::from_millis(1), "detached").detach();
        assert_eq!(rx.recv_timeout(GENEROUS).unwrap().0, "detached");
    });
}

#[test]
fn a_cancelled_or_dropped_timer_never_delivers() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (a, rx) = forwarder::<&'static str>();
            send_after(&a, Duration::from_millis(10), "cancelled").cancel();
            drop(send_after(&a, Duration::from_millis(10), "dropped"));
            let marker = send_after(&a, Duration::from_millis(200), "marker");
            let (first, _) = rx.recv_timeout(GENEROUS).expect("the marker");
            assert_eq!(first, "marker");
            drop(marker);
            assert_eq!(rx.try_recv().map(|m| m.0), Err(TryRecvError::Empty));
        });
    }
}

#[test]
fn send_interval_ticks_until_cancelled() {
    on_workers(2, || {
        let (a, rx) = forwarder::<u32>();
        let period = Duration::from_millis(20);
        let start = Instant::now();
        let mut n = 0;
        let ticker = send_interval(&a, period, move || {
            n += 1;
            n
        });
        for want in 1..=5 {
            let (tick, at) = rx.recv_timeout(GENEROUS).expect("a tick");
            assert_eq!(tick, want);
            assert!(
                at - start >= period * want,
                "tick {want} at {:?}",
                at - start
            );
        }
        ticker.cancel();
        // Ten periods later: at most one tick that was already on its way.
        send_after(&a, period * 10, 1_000).detach();
        let mut extra = 0;
        loop {
            let (m, _) = rx.recv_timeout(GENEROUS).expect("the marker");
            if m == 1_000 {
                break;
            }
            extra += 1;
        }
        assert!(extra <= 1, "{extra} ticks after cancel");
    });
}

/// A `Slow` actor with a one-message mailbox that forwards its items, blocked in its handler:
/// (address, its items, the gate to open).
fn blocked_slow() -> (coact::actor::Addr<SlowMsg>, Receiver<u32>, SyncSender<()>) {
    let (out, items) = channel();
    let a = spawn_with_capacity(
        1,
        Slow {
            seen: Vec::new(),
            out: Some(out),
        },
    );
    let (entered_tx, entered) = sync_channel(1);
    let (open, gate) = gate();
    a.send(SlowMsg::Block {
        entered: entered_tx,
        gate,
    })
    .unwrap();
    entered.recv().unwrap();
    (a, items, open)
}

#[test]
fn a_timer_message_for_a_full_mailbox_waits_for_room_and_is_not_lost() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (a, items, open) = blocked_slow();
            a.send(SlowMsg::Item(1)).unwrap(); // the mailbox's one place
            let timer = send_after(&a, Duration::from_millis(1), SlowMsg::Item(2));
            // The timer under test fires meanwhile and finds the mailbox full.
            coact::time::sleep(Duration::from_millis(30));
            open.send(()).unwrap();
            assert_eq!(items.recv_timeout(GENEROUS), Ok(1));
            assert_eq!(items.recv_timeout(GENEROUS), Ok(2));
            drop(timer);
        });
    }
}

#[test]
fn an_interval_into_a_blocked_actor_skips_ticks_instead_of_piling_them_up() {
    on_workers(2, || {
        let (a, items, open) = blocked_slow();
        let made = Arc::new(AtomicU32::new(0));
        let period = Duration::from_millis(2);
        let ticker = send_interval(&a, period, {
            let made = made.clone();
            move || SlowMsg::Item(made.fetch_add(1, Ordering::Relaxed) + 1)
        });
        // One tick fills the mailbox and one waits for room...
        let start = Instant::now();
        while made.load(Ordering::Relaxed) < 2 && start.elapsed() < GENEROUS {
            coact::time::sleep(period);
        }
        // ...and twenty more periods of the timer under test call `make` for none.
        coact::time::sleep(period * 20);
        assert_eq!(made.load(Ordering::Relaxed), 2);
        ticker.cancel();
        open.send(()).unwrap();
        assert_eq!(items.recv_timeout(GENEROUS), Ok(1));
        assert_eq!(items.recv_timeout(GENEROUS), Ok(2));
    });
}

// ---------------------------------------------------------------------------------------------
// Process actors
// ---------------------------------------------------------------------------------------------

enum SumMsg {
    Add(u64),
    Total(ReplyTo<u64>),
}

#[test]
fn a_process_receives_in_a_loop_until_stopped() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (ended_tx, ended_rx) = sync_channel(1);
            let p = spawn_process(move |inbox: Inbox<SumMsg>| {
                let mut total = 0;
                while let Some(m) = inbox.recv() {
                    match m {
                        SumMsg::Add(x) => total += x,
                        SumMsg::Total(r) => {
                            r.send(total);
                        }
                    }
                }
                ended_tx.send(total).unwrap();
            });
            let down = p.monitor();
            for i in 1..=100 {
                p.send(SumMsg::Add(i)).unwrap();
            }
            assert_eq!(p.ask(SumMsg::Total, GENEROUS), Ok(5050));
            p.stop();
            assert_eq!(ended_rx.recv(), Ok(5050), "recv returned None after stop");
            assert_eq!(down.recv().reason, StopReason::Stopped);
            assert!(p.send(SumMsg::Add(1)).is_err());
        });
    }
}

#[test]
fn a_process_recv_timeout_times_out_and_sees_stop() {
    on_workers(2, || {
        let (out_tx, out_rx) = channel();
        let p = spawn_process(move |inbox: Inbox<u32>| {
            let start = Instant::now();
            let first = inbox.recv_timeout(Duration::from_millis(50));
            out_tx.send((first, start.elapsed())).unwrap();
            let second = inbox.recv_timeout(GENEROUS);
            out_tx.send((second, start.elapsed())).unwrap();
            let start = Instant::now();
            let third = inbox.recv_timeout(Duration::from_secs(60));
            out_tx.send((third, start.elapsed())).unwrap();
        });
        let down = p.monitor();
        let (first, elapsed) = out_rx.recv().unwrap();
        assert_eq!(first, Err(RecvTimeoutError::Timeout));
        assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
        p.send(7).unwrap();
        assert_eq!(out_rx.recv().unwrap().0, Ok(7));
        p.stop();
        let (third, elapsed) = out_rx.recv().unwrap();
        assert_eq!(
            third,
            Err(RecvTimeoutError::Disconnected),
            "stop ends recv_timeout"
        );
        assert!(elapsed < PROMPT);
        assert_eq!(down.recv().reason, StopReason::Stopped);
    });
}

#[test]
fn kill_unwinds_a_process_blocked_outside_its_inbox() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let drops = Arc::new(AtomicUsize::new(0));
            let (entered_tx, entered_rx) = sync_channel(1);
            let (gate_tx, gate_rx) = gate();
            let frame_drops = drops.clone();
            let p = spawn_process(move |_inbox: Inbox<DropCounter>| {
                let _guard = DropCounter::new(&frame_drops);
                entered_tx.send(()).unwrap();
                let _ = gate_rx.recv(); // never released
                unreachable!("the gate is never opened");
            });
            let down = p.monitor();
            entered_rx.recv().unwrap();
            p.send(DropCounter::new(&drops)).unwrap();
            p.send(DropCounter::new(&drops)).unwrap();
            // stop() does not interrupt a process that is not in recv; kill() does.
            p.kill();
            assert_eq!(down.recv().reason, StopReason::Killed);
            // The frame's guard and the two messages left in its inbox.
            assert_eq!(drops.load(Ordering::SeqCst), 3);
            drop(gate_tx);
        });
    }
}

#[test]
fn a_process_selects_over_its_inbox_and_another_channel() {
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (side_tx, side_rx) = sync_channel::<String>(1);
            let (out_tx, out_rx) = channel::<String>();
            let p = spawn_process(move |inbox: Inbox<u32>| {
                let mut sel = Select::new();
                let from_inbox = sel.recv(inbox.receiver());
                let from_side = sel.recv(&side_rx);
                loop {
                    let op = sel.select();
                    if op.index() == from_inbox {
                        match op.recv(inbox.receiver()) {
                            Ok(m) => out_tx.send(format!("inbox {m}")).unwrap(),
                            Err(_) => break,
                        }
                    } else {
                        assert_eq!(op.index(), from_side);
                        match op.recv(&side_rx) {
                            Ok(s) => out_tx.send(format!("side {s}")).unwrap(),
                            Err(_) => break, // the side channel closed: done
                        }
                    }
                }
            });
            let down = p.monitor();
            p.send(1).unwrap();
            assert_eq!(out_rx.recv().unwrap(), "inbox 1");
            side_tx.send("a".into()).unwrap();
            assert_eq!(out_rx.recv().unwrap(), "side a");
            p.send(2).unwrap();
            assert_eq!(out_rx.recv().unwrap(), "inbox 2");
            side_tx.send("b".into()).unwrap();
            assert_eq!(out_rx.recv().unwrap(), "side b");
            drop(side_tx);
            assert_eq!(down.recv().reason, StopReason::Normal);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Scale
// ---------------------------------------------------------------------------------------------

/// Peak resident set size, from /proc/self/status (Linux).
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

struct Tally {
    handled: AtomicUsize,
    id_sum: AtomicU64,
    expected: usize,
    done: SyncSender<()>,
}

struct Tiny(u32);

impl Actor for Tiny {
    type Msg = Arc<Tally>;
    fn handle(&mut self, t: Arc<Tally>, _ctx: &mut Ctx<'_, Arc<Tally>>) {
        t.id_sum.fetch_add(u64::from(self.0), Ordering::Relaxed);
        if t.handled.fetch_add(1, Ordering::AcqRel) + 1 == t.expected {
            t.done.try_send(()).unwrap();
        }
    }
}

#[test]
fn a_million_idle_actors() {
    // A million in debug builds too: 3-8 s on two busy cores, ~570 MB peak RSS (whole process).
    let n: u32 = 1_000_000;
    on_workers_within(2, Duration::from_secs(600), move || {
        let start = Instant::now();
        let actors: Vec<_> = (0..n).map(|i| spawn_with_capacity(1, Tiny(i))).collect();
        let spawned = start.elapsed();
        let (done_tx, done_rx) = sync_channel(1);
        let tally = Arc::new(Tally {
            handled: AtomicUsize::new(0),
            id_sum: AtomicU64::new(0),
            expected: n as usize,
            done: done_tx,
        });
        for a in &actors {
            a.send(tally.clone()).unwrap();
        }
        done_rx
            .recv_timeout(Duration::from_secs(300))
            .expect("all handled");
        let total = start.elapsed();
        assert_eq!(tally.handled.load(Ordering::SeqCst), n as usize);
        let n64 = u64::from(n);
        assert_eq!(tally.id_sum.load(Ordering::SeqCst), n64 * (n64 - 1) / 2);
        println!(
            "{n} actors: spawned in {spawned:.2?}, all {n} messages handled after {total:.2?}; \
             peak RSS (VmHWM) {}",
            peak_rss()
        );
    });
}

struct Cruncher;

impl Actor for Cruncher {
    type Msg = SyncSender<Option<usize>>;
    fn handle(&mut self, out: Self::Msg, _ctx: &mut Ctx<'_, Self::Msg>) {
        std::hint::black_box(spin_work(if cfg!(debug_assertions) {
            200_000
        } else {
            2_000_000
        }));
        out.send(coact::current_worker()).unwrap();
    }
}

#[test]
fn actors_run_on_every_worker() {
    on_workers(2, || {
        let actors: Vec<_> = (0..100).map(|_| spawn(Cruncher)).collect();
        let (out_tx, out_rx) = sync_channel(100);
        for a in &actors {
            a.send(out_tx.clone()).unwrap();
        }
        let mut per_worker: HashMap<usize, usize> = HashMap::new();
        for _ in 0..100 {
            let w = out_rx
                .recv_timeout(GENEROUS)
                .expect("a result")
                .expect("on a worker");
            *per_worker.entry(w).or_default() += 1;
        }
        println!("handlers per worker: {per_worker:?}");
        assert_eq!(per_worker.values().sum::<usize>(), 100);
        assert_eq!(
            per_worker.len(),
            2,
            "both workers ran handlers: {per_worker:?}"
        );
    });
}

/// A ball two actors hit back and forth: each hit goes to the other actor.
struct Ball {
    hits: u64,
    back: coact::actor::Addr<Ball>,
}

/// Hits every ball back to where it came from, until told to stop.
struct Bouncer {
    stop: Arc<AtomicBool>,
}

impl Actor for Bouncer {
    type Msg = Ball;
    fn handle(&mut self, ball: Ball, ctx: &mut Ctx<'_, Ball>) {
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        let _ = ball.back.send(Ball {
            hits: ball.hits + 1,
            back: ctx.addr().clone(),
        });
    }
}

/// Two actors bouncing a message forever keep the worker's newest-task slot full (each hop's
/// activation goes there and runs next): tasks spawned earlier must still start. (Two things
/// see to it: the worker loop starts waiting tasks at the top of each round, and the slot goes
/// ahead of older tasks at most 16 times in a row; this checks the outcome, not which one.)
#[test]
fn bouncing_actors_do_not_starve_older_tasks() {
    for workers in [1, 2] {
        on_workers(workers, || {
            let stop = Arc::new(AtomicBool::new(false));
            let a = spawn(Bouncer { stop: stop.clone() });
            let b = spawn(Bouncer { stop: stop.clone() });
            a.send(Ball { hits: 0, back: b }).unwrap();
            let (tx, rx) = sync_channel(64);
            for i in 0..64u32 {
                let tx = tx.clone();
                drop(coact::spawn(move || tx.send(i).unwrap()));
            }
            let mut seen: Vec<u32> = (0..64)
                .map(|_| rx.recv_timeout(GENEROUS).expect("a spawned task ran"))
                .collect();
            stop.store(true, Ordering::Relaxed);
            seen.sort_unstable();
            assert_eq!(seen, (0..64).collect::<Vec<_>>());
        });
    }
}

/// A rally between two actors that ends after a set number of hits, reported by the last one.
struct Rally {
    done: SyncSender<u64>,
}

/// One hit of a rally: `left` more to go.
struct Shot {
    left: u64,
    back: coact::actor::Addr<Shot>,
}

impl Actor for Rally {
    type Msg = Shot;
    fn handle(&mut self, shot: Shot, ctx: &mut Ctx<'_, Shot>) {
        if shot.left == 0 {
            self.done.send(shot.left).unwrap();
            return;
        }
        shot.back
            .send(Shot {
                left: shot.left - 1,
                back: ctx.addr().clone(),
            })
            .unwrap();
    }
}

/// Every hop of a rally goes to an actor that has just gone idle (or is about to), so it
/// exercises the hand-over of the schedule between the activation that gives it up and the
/// sender that takes it, on several workers at once, with extra senders pushing through the
/// mailboxes meanwhile (a plain thread and coroutines). A message left with no activation, or
/// two activations of one actor, would hang a rally or lose a count.
#[test]
fn rallies_across_workers_lose_no_hit() {
    const RALLIES: usize = 24;
    const HITS: u64 = 2_000;
    const EXTRA: u64 = 500;
    for n in WORKER_COUNTS {
        on_workers(n, || {
            let (done_tx, done_rx) = sync_channel(RALLIES);
            let counted = Arc::new(AtomicU64::new(0));
            let mut pairs = Vec::new();
            for _ in 0..RALLIES {
                let a = spawn(Rally {
                    done: done_tx.clone(),
                });
                let b = spawn(Rally {
                    done: done_tx.clone(),
                });
                pairs.push((a, b));
            }
            for (a, b) in &pairs {
                a.send(Shot {
                    left: HITS,
                    back: b.clone(),
                })
                .unwrap();
            }
            // Extra traffic into the same actors' mailboxes: shots that end at once, from a
            // plain thread and from coroutines, while the rallies run.
            let sinks: Vec<_> = pairs.iter().map(|(a, _)| a.clone()).collect();
            let (extra_tx, extra_rx) = sync_channel::<()>(1);
            let thread_sinks = sinks.clone();
            let thread = std::thread::spawn(move || {
                for i in 0..EXTRA {
                    let a = &thread_sinks[i as usize % thread_sinks.len()];
                    a.send(Shot {
                        left: 0,
                        back: a.clone(),
                    })
                    .unwrap();
                }
                extra_tx.send(()).unwrap();
            });
            let coroutines: Vec<_> = (0..4)
                .map(|k| {
                    let sinks = sinks.clone();
                    coact::spawn(move || {
                        for i in 0..EXTRA {
                            let a = &sinks[(i as usize + k) % sinks.len()];
                            a.send(Shot {
                                left: 0,
                                back: a.clone(),
                            })
                            .unwrap();
                            if i % 64 == 0 {
                                coact::yield_now();
                            }
                        }
                    })
                })
                .collect();
            let expected = RALLIES as u64 + 5 * EXTRA;
            for _ in 0..expected {
                done_rx
                    .recv_timeout(GENEROUS)
                    .expect("every rally and every extra shot ends");
                counted.fetch_add(1, Ordering::Relaxed);
            }
            extra_rx.recv().unwrap();
            for c in coroutines {
                c.join().unwrap();
            }
            thread.join().unwrap();
            assert_eq!(counted.load(Ordering::Relaxed), expected);
            assert!(
                done_rx.try_recv().is_err(),
                "no shot ends twice (no message handled by two activations)"
            );
        });
    }
}
