//! kameo on tokio: `tell` (fire and forget) and `ask` (request/response); bounded mailboxes
//! of kameo's default capacity (64), the coordinator's sized to a round of answers.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kameo::actor::{ActorRef, Spawn as _};
use kameo::message::{Context, Message};
use kameo::Actor;
use tokio::sync::oneshot;

use super::{finish, rss_kb, Case, FAN_WORKERS, RING_SIZE};

/// Runs `case` of size `n` on a current-thread (1) or multi-thread (2) tokio runtime.
pub fn run(case: Case, n: u64, workers: usize) {
    let rt = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    rt.block_on(async move {
        tokio::spawn(async move {
            match case {
                Case::PingPong => ping_pong(n, false).await,
                Case::PingPongAsk => ping_pong(n, true).await,
                Case::Ring => ring(n).await,
                Case::FanOut => fan_out(n).await,
                Case::Spawn => spawn_idle(n).await,
            }
        })
        .await
        .expect("driver task");
    });
}

/// Start `n` round trips (by tell or by ask), then signal.
struct Start(u64, bool, Option<oneshot::Sender<()>>);
/// B's answer to a plain `Ping`.
struct Pong;
/// Whom B answers.
struct Peer(ActorRef<A>);
/// A plain request, answered with `Pong`.
struct Ping;
/// A request answered through `ask`'s reply.
struct AskPing;

#[derive(Actor)]
struct A {
    b: ActorRef<B>,
    left: u64,
    done: Option<oneshot::Sender<()>>,
}

impl Message<Start> for A {
    type Reply = ();
    async fn handle(&mut self, msg: Start, _ctx: &mut Context<Self, ()>) {
        if msg.1 {
            for _ in 0..msg.0 {
                self.b.ask(AskPing).await.expect("B answers");
            }
            if let Some(d) = msg.2 {
                let _ = d.send(());
            }
        } else {
            self.left = msg.0;
            self.done = msg.2;
            self.b.tell(Ping).await.expect("B alive");
        }
    }
}

impl Message<Pong> for A {
    type Reply = ();
    async fn handle(&mut self, _msg: Pong, _ctx: &mut Context<Self, ()>) {
        self.left -= 1;
        if self.left == 0 {
            if let Some(d) = self.done.take() {
                let _ = d.send(());
            }
        } else {
            self.b.tell(Ping).await.expect("B alive");
        }
    }
}

#[derive(Actor)]
struct B {
    a: Option<ActorRef<A>>,
}

impl Message<Peer> for B {
    type Reply = ();
    async fn handle(&mut self, msg: Peer, _ctx: &mut Context<Self, ()>) {
        self.a = Some(msg.0);
    }
}

impl Message<Ping> for B {
    type Reply = ();
    async fn handle(&mut self, _msg: Ping, _ctx: &mut Context<Self, ()>) {
        if let Some(a) = &self.a {
            a.tell(Pong).await.expect("A alive");
        }
    }
}

impl Message<AskPing> for B {
    type Reply = ();
    async fn handle(&mut self, _msg: AskPing, _ctx: &mut Context<Self, ()>) {}
}

async fn ping_pong(n: u64, ask: bool) {
    let b = B::spawn(B { a: None });
    let a = A::spawn(A {
        b: b.clone(),
        left: 0,
        done: None,
    });
    b.tell(Peer(a.clone())).await.unwrap();
    let (tx, rx) = oneshot::channel();
    let base = rss_kb();
    let t = Instant::now();
    a.tell(Start(n, ask, Some(tx))).await.unwrap();
    rx.await.unwrap();
    finish(t.elapsed(), base)
}

/// The node to pass the token to.
struct Next(ActorRef<Node>);
/// The token with the hops still to go.
struct Token(u64);

#[derive(Actor)]
struct Node {
    next: Option<ActorRef<Node>>,
    done: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Message<Next> for Node {
    type Reply = ();
    async fn handle(&mut self, msg: Next, _ctx: &mut Context<Self, ()>) {
        self.next = Some(msg.0);
    }
}

impl Message<Token> for Node {
    type Reply = ();
    async fn handle(&mut self, msg: Token, _ctx: &mut Context<Self, ()>) {
        if msg.0 == 0 {
            let _ = self.done.send(());
        } else if let Some(next) = &self.next {
            next.tell(Token(msg.0 - 1)).await.expect("next alive");
        }
    }
}

async fn ring(n: u64) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let nodes: Vec<ActorRef<Node>> = (0..RING_SIZE)
        .map(|_| {
            Node::spawn(Node {
                next: None,
                done: tx.clone(),
            })
        })
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        node.tell(Next(nodes[(i + 1) % RING_SIZE].clone()))
            .await
            .unwrap();
    }
    let base = rss_kb();
    let t = Instant::now();
    nodes[0].tell(Token(n)).await.unwrap();
    rx.recv().await.unwrap();
    finish(t.elapsed(), base)
}

/// Run `rounds` rounds over these workers, then signal.
struct FanStart(u64, Vec<ActorRef<Worker>>, Option<oneshot::Sender<()>>);
/// A worker's answer.
struct Done;
/// A worker's request.
struct Work;

#[derive(Actor)]
struct Coord {
    workers: Vec<ActorRef<Worker>>,
    rounds: u64,
    pending: usize,
    done: Option<oneshot::Sender<()>>,
}

impl Coord {
    async fn broadcast(&mut self) {
        self.pending = self.workers.len();
        for w in &self.workers {
            w.tell(Work).await.expect("worker alive");
        }
    }
}

impl Message<FanStart> for Coord {
    type Reply = ();
    async fn handle(&mut self, msg: FanStart, _ctx: &mut Context<Self, ()>) {
        self.rounds = msg.0;
        self.workers = msg.1;
        self.done = msg.2;
        self.broadcast().await;
    }
}

impl Message<Done> for Coord {
    type Reply = ();
    async fn handle(&mut self, _msg: Done, _ctx: &mut Context<Self, ()>) {
        self.pending -= 1;
        if self.pending == 0 {
            self.rounds -= 1;
            if self.rounds == 0 {
                if let Some(d) = self.done.take() {
                    let _ = d.send(());
                }
            } else {
                self.broadcast().await;
            }
        }
    }
}

#[derive(Actor)]
struct Worker {
    coord: ActorRef<Coord>,
}

impl Message<Work> for Worker {
    type Reply = ();
    async fn handle(&mut self, _msg: Work, _ctx: &mut Context<Self, ()>) {
        self.coord.tell(Done).await.expect("coordinator alive");
    }
}

async fn fan_out(rounds: u64) {
    // The coordinator's mailbox holds a whole round of answers, so workers never wait.
    let coord = Coord::spawn_with_mailbox(
        Coord {
            workers: Vec::new(),
            rounds: 0,
            pending: 0,
            done: None,
        },
        kameo::mailbox::bounded(FAN_WORKERS),
    );
    let workers: Vec<ActorRef<Worker>> = (0..FAN_WORKERS)
        .map(|_| {
            Worker::spawn(Worker {
                coord: coord.clone(),
            })
        })
        .collect();
    let (tx, rx) = oneshot::channel();
    let base = rss_kb();
    let t = Instant::now();
    coord
        .tell(FanStart(rounds, workers, Some(tx)))
        .await
        .unwrap();
    rx.await.unwrap();
    finish(t.elapsed(), base)
}

static STARTED: AtomicU64 = AtomicU64::new(0);

/// An idle actor that counts its start.
struct Idle;

impl Actor for Idle {
    type Args = Self;
    type Error = Infallible;
    async fn on_start(args: Self, _me: ActorRef<Self>) -> Result<Self, Infallible> {
        STARTED.fetch_add(1, Ordering::Relaxed);
        Ok(args)
    }
}

async fn spawn_idle(n: u64) {
    let mut refs: Vec<ActorRef<Idle>> = Vec::with_capacity(n as usize);
    let base = rss_kb();
    let t = Instant::now();
    for _ in 0..n {
        refs.push(Idle::spawn(Idle));
    }
    while STARTED.load(Ordering::Relaxed) < n {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let elapsed = t.elapsed();
    std::hint::black_box(&refs);
    finish(elapsed, base)
}
