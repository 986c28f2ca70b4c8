//! coact: handler actors (`coact::actor::spawn`), blocking-style handlers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use coact::actor::{spawn, spawn_with_capacity, Actor, Addr, Ctx, ReplyTo};
use coact::sync::mpsc::{sync_channel, SyncSender};

use super::{finish, rss_kb, Case, ASK_TIMEOUT, FAN_WORKERS, RING_SIZE};

/// Runs `case` of size `n` on a runtime of `workers` threads; returns only for no such case.
pub fn run(case: Case, n: u64, workers: usize) {
    let rt = coact::Runtime::builder()
        .workers(workers)
        .build()
        .expect("coact runtime");
    rt.block_on(move || match case {
        Case::PingPong => ping_pong(n, false),
        Case::PingPongAsk => ping_pong(n, true),
        Case::Ring => ring(n),
        Case::FanOut => fan_out(n),
        Case::Spawn => spawn_idle(n),
    });
}

/// Messages of the pinging actor A.
enum AMsg {
    /// Do `n` round trips (by send or by ask), then signal.
    Start(u64, bool, SyncSender<()>),
    /// B's answer to a plain `Ping`.
    Pong,
}

/// Messages of the answering actor B.
enum BMsg {
    /// Whom to answer plain pings.
    Peer(Addr<AMsg>),
    /// Answer with `AMsg::Pong`.
    Ping,
    /// Answer through the reply slot.
    Ask(ReplyTo<()>),
}

struct A {
    b: Addr<BMsg>,
    left: u64,
    done: Option<SyncSender<()>>,
}

impl Actor for A {
    type Msg = AMsg;
    fn handle(&mut self, msg: AMsg, _ctx: &mut Ctx<'_, AMsg>) {
        match msg {
            AMsg::Start(n, false, done) => {
                self.left = n;
                self.done = Some(done);
                self.b.send(BMsg::Ping).expect("B alive");
            }
            AMsg::Start(n, true, done) => {
                for _ in 0..n {
                    self.b.ask(BMsg::Ask, ASK_TIMEOUT).expect("B answers");
                }
                let _ = done.send(());
            }
            AMsg::Pong => {
                self.left -= 1;
                if self.left == 0 {
                    if let Some(d) = self.done.take() {
                        let _ = d.send(());
                    }
                } else {
                    self.b.send(BMsg::Ping).expect("B alive");
                }
            }
        }
    }
}

struct B {
    a: Option<Addr<AMsg>>,
}

impl Actor for B {
    type Msg = BMsg;
    fn handle(&mut self, msg: BMsg, _ctx: &mut Ctx<'_, BMsg>) {
        match msg {
            BMsg::Peer(a) => self.a = Some(a),
            BMsg::Ping => {
                if let Some(a) = &self.a {
                    a.send(AMsg::Pong).expect("A alive");
                }
            }
            BMsg::Ask(reply) => {
                reply.send(());
            }
        }
    }
}

fn ping_pong(n: u64, ask: bool) {
    let b = spawn(B { a: None });
    let a = spawn(A {
        b: b.clone(),
        left: 0,
        done: None,
    });
    b.send(BMsg::Peer(a.clone())).unwrap();
    let (tx, rx) = sync_channel(1);
    let base = rss_kb();
    let t = Instant::now();
    a.send(AMsg::Start(n, ask, tx)).unwrap();
    rx.recv().unwrap();
    finish(t.elapsed(), base)
}

/// Messages of a ring node.
enum RingMsg {
    /// The node to pass the token to.
    Next(Addr<RingMsg>),
    /// The token with the hops still to go.
    Token(u64),
}

struct Node {
    next: Option<Addr<RingMsg>>,
    done: SyncSender<()>,
}

impl Actor for Node {
    type Msg = RingMsg;
    fn handle(&mut self, msg: RingMsg, _ctx: &mut Ctx<'_, RingMsg>) {
        match msg {
            RingMsg::Next(a) => self.next = Some(a),
            RingMsg::Token(0) => {
                let _ = self.done.send(());
            }
            RingMsg::Token(k) => {
                if let Some(next) = &self.next {
                    next.send(RingMsg::Token(k - 1)).expect("next alive");
                }
            }
        }
    }
}

fn ring(n: u64) {
    let (tx, rx) = sync_channel(1);
    let nodes: Vec<Addr<RingMsg>> = (0..RING_SIZE)
        .map(|_| {
            spawn(Node {
                next: None,
                done: tx.clone(),
            })
        })
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        node.send(RingMsg::Next(nodes[(i + 1) % RING_SIZE].clone()))
            .unwrap();
    }
    let base = rss_kb();
    let t = Instant::now();
    nodes[0].send(RingMsg::Token(n)).unwrap();
    rx.recv().unwrap();
    finish(t.elapsed(), base)
}

/// Messages of the fan-out coordinator.
enum CoordMsg {
    /// Run `rounds` rounds over these workers, then signal.
    Start(u64, Vec<Addr<WorkMsg>>, SyncSender<()>),
    /// A worker's answer.
    Done,
}

/// A worker's only message.
struct WorkMsg;

struct Coord {
    workers: Vec<Addr<WorkMsg>>,
    rounds: u64,
    pending: usize,
    done: Option<SyncSender<()>>,
}

impl Coord {
    fn broadcast(&mut self) {
        self.pending = self.workers.len();
        for w in &self.workers {
            w.send(WorkMsg).expect("worker alive");
        }
    }
}

impl Actor for Coord {
    type Msg = CoordMsg;
    fn handle(&mut self, msg: CoordMsg, _ctx: &mut Ctx<'_, CoordMsg>) {
        match msg {
            CoordMsg::Start(rounds, workers, done) => {
                self.workers = workers;
                self.rounds = rounds;
                self.done = Some(done);
                self.broadcast();
            }
            CoordMsg::Done => {
                self.pending -= 1;
                if self.pending == 0 {
                    self.rounds -= 1;
                    if self.rounds == 0 {
                        if let Some(d) = self.done.take() {
                            let _ = d.send(());
                        }
                    } else {
                        self.broadcast();
                    }
                }
            }
        }
    }
}

struct Worker {
    coord: Addr<CoordMsg>,
}

impl Actor for Worker {
    type Msg = WorkMsg;
    fn handle(&mut self, _msg: WorkMsg, _ctx: &mut Ctx<'_, WorkMsg>) {
        self.coord.send(CoordMsg::Done).expect("coordinator alive");
    }
}

fn fan_out(rounds: u64) {
    // The coordinator's mailbox holds a whole round of answers, so workers never wait.
    let coord = spawn_with_capacity(
        FAN_WORKERS,
        Coord {
            workers: Vec::new(),
            rounds: 0,
            pending: 0,
            done: None,
        },
    );
    let workers: Vec<Addr<WorkMsg>> = (0..FAN_WORKERS)
        .map(|_| {
            spawn(Worker {
                coord: coord.clone(),
            })
        })
        .collect();
    let (tx, rx) = sync_channel(1);
    let base = rss_kb();
    let t = Instant::now();
    coord.send(CoordMsg::Start(rounds, workers, tx)).unwrap();
    rx.recv().unwrap();
    finish(t.elapsed(), base)
}

static STARTED: AtomicU64 = AtomicU64::new(0);

/// An idle actor that counts its start.
struct Idle;

impl Actor for Idle {
    type Msg = ();
    fn handle(&mut self, _msg: (), _ctx: &mut Ctx<'_, ()>) {}
    fn started(&mut self, _ctx: &mut Ctx<'_, ()>) {
        STARTED.fetch_add(1, Ordering::Relaxed);
    }
}

fn spawn_idle(n: u64) {
    let mut addrs: Vec<Addr<()>> = Vec::with_capacity(n as usize);
    let base = rss_kb();
    let t = Instant::now();
    for _ in 0..n {
        addrs.push(spawn(Idle));
    }
    while STARTED.load(Ordering::Relaxed) < n {
        // Parked, not yielding: a yielding coroutine would keep the run queue non-empty,
        // and the worker starts new tasks (activations) only once per round then.
        coact::time::sleep(std::time::Duration::from_millis(1));
    }
    let elapsed = t.elapsed();
    std::hint::black_box(&addrs);
    finish(elapsed, base)
}
