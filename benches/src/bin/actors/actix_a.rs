//! actix: every actor on the one `System` arbiter thread; messages by `do_send`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix::{Actor, Addr, Context, Handler, Message};
use tokio::sync::oneshot;

use super::{finish, rss_kb, Case, FAN_WORKERS, RING_SIZE};

/// Runs `case` of size `n`; returns only for no such case (`ask` from inside an actor is not
/// idiomatic actix: it needs a response future per request).
pub fn run(case: Case, n: u64) {
    if case == Case::PingPongAsk {
        return;
    }
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        match case {
            Case::PingPong => ping_pong(n).await,
            Case::Ring => ring(n).await,
            Case::FanOut => fan_out(n).await,
            Case::Spawn => spawn_idle(n).await,
            Case::PingPongAsk => unreachable!(),
        }
    });
}

/// Start `n` round trips.
#[derive(Message)]
#[rtype(result = "()")]
struct Start(u64, Option<oneshot::Sender<()>>);

/// B's answer.
#[derive(Message)]
#[rtype(result = "()")]
struct Pong;

/// A's request, with whom to answer.
#[derive(Message)]
#[rtype(result = "()")]
struct Peer(Addr<A>);

/// A's request.
#[derive(Message)]
#[rtype(result = "()")]
struct Ping;

struct A {
    b: Addr<B>,
    left: u64,
    done: Option<oneshot::Sender<()>>,
}

impl Actor for A {
    type Context = Context<Self>;
}

impl Handler<Start> for A {
    type Result = ();
    fn handle(&mut self, msg: Start, _ctx: &mut Context<Self>) {
        self.left = msg.0;
        self.done = msg.1;
        self.b.do_send(Ping);
    }
}

impl Handler<Pong> for A {
    type Result = ();
    fn handle(&mut self, _msg: Pong, _ctx: &mut Context<Self>) {
        self.left -= 1;
        if self.left == 0 {
            if let Some(d) = self.done.take() {
                let _ = d.send(());
            }
        } else {
            self.b.do_send(Ping);
        }
    }
}

struct B {
    a: Option<Addr<A>>,
}

impl Actor for B {
    type Context = Context<Self>;
}

impl Handler<Peer> for B {
    type Result = ();
    fn handle(&mut self, msg: Peer, _ctx: &mut Context<Self>) {
        self.a = Some(msg.0);
    }
}

impl Handler<Ping> for B {
    type Result = ();
    fn handle(&mut self, _msg: Ping, _ctx: &mut Context<Self>) {
        if let Some(a) = &self.a {
            a.do_send(Pong);
        }
    }
}

async fn ping_pong(n: u64) {
    let b = B { a: None }.start();
    let a = A {
        b: b.clone(),
        left: 0,
        done: None,
    }
    .start();
    b.do_send(Peer(a.clone()));
    let (tx, rx) = oneshot::channel();
    let base = rss_kb();
    let t = Instant::now();
    a.do_send(Start(n, Some(tx)));
    rx.await.unwrap();
    finish(t.elapsed(), base)
}

/// The node to pass the token to.
#[derive(Message)]
#[rtype(result = "()")]
struct Next(Addr<Node>);

/// The token with the hops still to go.
#[derive(Message)]
#[rtype(result = "()")]
struct Token(u64);

struct Node {
    next: Option<Addr<Node>>,
    done: Option<tokio::sync::mpsc::UnboundedSender<()>>,
}

impl Actor for Node {
    type Context = Context<Self>;
}

impl Handler<Next> for Node {
    type Result = ();
    fn handle(&mut self, msg: Next, _ctx: &mut Context<Self>) {
        self.next = Some(msg.0);
    }
}

impl Handler<Token> for Node {
    type Result = ();
    fn handle(&mut self, msg: Token, _ctx: &mut Context<Self>) {
        if msg.0 == 0 {
            if let Some(d) = &self.done {
                let _ = d.send(());
            }
        } else if let Some(next) = &self.next {
            next.do_send(Token(msg.0 - 1));
        }
    }
}

async fn ring(n: u64) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let nodes: Vec<Addr<Node>> = (0..RING_SIZE)
        .map(|_| {
            Node {
                next: None,
                done: Some(tx.clone()),
            }
            .start()
        })
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        node.do_send(Next(nodes[(i + 1) % RING_SIZE].clone()));
    }
    let base = rss_kb();
    let t = Instant::now();
    nodes[0].do_send(Token(n));
    rx.recv().await.unwrap();
    finish(t.elapsed(), base)
}

/// Run `rounds` rounds over these workers.
#[derive(Message)]
#[rtype(result = "()")]
struct FanStart(u64, Vec<Addr<Worker>>, Option<oneshot::Sender<()>>);

/// A worker's answer.
#[derive(Message)]
#[rtype(result = "()")]
struct Done;

/// A worker's request.
#[derive(Message)]
#[rtype(result = "()")]
struct Work;

struct Coord {
    workers: Vec<Addr<Worker>>,
    rounds: u64,
    pending: usize,
    done: Option<oneshot::Sender<()>>,
}

impl Coord {
    fn broadcast(&mut self) {
        self.pending = self.workers.len();
        for w in &self.workers {
            w.do_send(Work);
        }
    }
}

impl Actor for Coord {
    type Context = Context<Self>;
}

impl Handler<FanStart> for Coord {
    type Result = ();
    fn handle(&mut self, msg: FanStart, _ctx: &mut Context<Self>) {
        self.rounds = msg.0;
        self.workers = msg.1;
        self.done = msg.2;
        self.broadcast();
    }
}

impl Handler<Done> for Coord {
    type Result = ();
    fn handle(&mut self, _msg: Done, _ctx: &mut Context<Self>) {
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

struct Worker {
    coord: Addr<Coord>,
}

impl Actor for Worker {
    type Context = Context<Self>;
}

impl Handler<Work> for Worker {
    type Result = ();
    fn handle(&mut self, _msg: Work, _ctx: &mut Context<Self>) {
        self.coord.do_send(Done);
    }
}

async fn fan_out(rounds: u64) {
    let coord = Coord {
        workers: Vec::new(),
        rounds: 0,
        pending: 0,
        done: None,
    }
    .start();
    let workers: Vec<Addr<Worker>> = (0..FAN_WORKERS)
        .map(|_| {
            Worker {
                coord: coord.clone(),
            }
            .start()
        })
        .collect();
    let (tx, rx) = oneshot::channel();
    let base = rss_kb();
    let t = Instant::now();
    coord.do_send(FanStart(rounds, workers, Some(tx)));
    rx.await.unwrap();
    finish(t.elapsed(), base)
}

static STARTED: AtomicU64 = AtomicU64::new(0);

/// An idle actor that counts its start.
struct Idle;

impl Actor for Idle {
    type Context = Context<Self>;
    fn started(&mut self, _ctx: &mut Context<Self>) {
        STARTED.fetch_add(1, Ordering::Relaxed);
    }
}

async fn spawn_idle(n: u64) {
    let mut addrs: Vec<Addr<Idle>> = Vec::with_capacity(n as usize);
    let base = rss_kb();
    let t = Instant::now();
    for _ in 0..n {
        addrs.push(Idle.start());
    }
    while STARTED.load(Ordering::Relaxed) < n {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let elapsed = t.elapsed();
    std::hint::black_box(&addrs);
    finish(elapsed, base)
}
