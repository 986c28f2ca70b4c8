//! ractor on tokio: `cast` (fire and forget) and `call` (request/response).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
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

type Res = Result<(), ActorProcessingErr>;

/// Messages of the pinging actor A.
enum AMsg {
    /// Do `n` round trips (by cast or by call), then signal.
    Start(u64, bool, oneshot::Sender<()>),
    /// B's answer to a plain `Ping`.
    Pong,
}

/// Messages of the answering actor B.
enum BMsg {
    /// Whom to answer plain pings.
    Peer(ActorRef<AMsg>),
    /// Answer with `AMsg::Pong`.
    Ping,
    /// Answer through the reply port.
    Ask(RpcReplyPort<()>),
}

struct A;

/// A's state.
struct AState {
    b: ActorRef<BMsg>,
    left: u64,
    done: Option<oneshot::Sender<()>>,
}

impl Actor for A {
    type Msg = AMsg;
    type State = AState;
    type Arguments = AState;
    async fn pre_start(
        &self,
        _me: ActorRef<AMsg>,
        st: AState,
    ) -> Result<AState, ActorProcessingErr> {
        Ok(st)
    }
    async fn handle(&self, _me: ActorRef<AMsg>, msg: AMsg, st: &mut AState) -> Res {
        match msg {
            AMsg::Start(n, false, done) => {
                st.left = n;
                st.done = Some(done);
                st.b.cast(BMsg::Ping)?;
            }
            AMsg::Start(n, true, done) => {
                for _ in 0..n {
                    st.b.call(BMsg::Ask, None).await?;
                }
                let _ = done.send(());
            }
            AMsg::Pong => {
                st.left -= 1;
                if st.left == 0 {
                    if let Some(d) = st.done.take() {
                        let _ = d.send(());
                    }
                } else {
                    st.b.cast(BMsg::Ping)?;
                }
            }
        }
        Ok(())
    }
}

struct B;

impl Actor for B {
    type Msg = BMsg;
    type State = Option<ActorRef<AMsg>>;
    type Arguments = ();
    async fn pre_start(
        &self,
        _me: ActorRef<BMsg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(None)
    }
    async fn handle(&self, _me: ActorRef<BMsg>, msg: BMsg, a: &mut Self::State) -> Res {
        match msg {
            BMsg::Peer(p) => *a = Some(p),
            BMsg::Ping => {
                if let Some(a) = a {
                    a.cast(AMsg::Pong)?;
                }
            }
            BMsg::Ask(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

async fn ping_pong(n: u64, ask: bool) {
    let (b, _) = Actor::spawn(None, B, ()).await.expect("spawn B");
    let (a, _) = Actor::spawn(
        None,
        A,
        AState {
            b: b.clone(),
            left: 0,
            done: None,
        },
    )
    .await
    .expect("spawn A");
    b.cast(BMsg::Peer(a.clone())).unwrap();
    let (tx, rx) = oneshot::channel();
    let base = rss_kb();
    let t = Instant::now();
    a.cast(AMsg::Start(n, ask, tx)).unwrap();
    rx.await.unwrap();
    finish(t.elapsed(), base)
}

/// Messages of a ring node.
enum RingMsg {
    /// The node to pass the token to.
    Next(ActorRef<RingMsg>),
    /// The token with the hops still to go.
    Token(u64),
}

struct Node;

/// A ring node's state.
struct NodeState {
    next: Option<ActorRef<RingMsg>>,
    done: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Actor for Node {
    type Msg = RingMsg;
    type State = NodeState;
    type Arguments = NodeState;
    async fn pre_start(
        &self,
        _me: ActorRef<RingMsg>,
        st: NodeState,
    ) -> Result<NodeState, ActorProcessingErr> {
        Ok(st)
    }
    async fn handle(&self, _me: ActorRef<RingMsg>, msg: RingMsg, st: &mut NodeState) -> Res {
        match msg {
            RingMsg::Next(a) => st.next = Some(a),
            RingMsg::Token(0) => {
                let _ = st.done.send(());
            }
            RingMsg::Token(k) => {
                if let Some(next) = &st.next {
                    next.cast(RingMsg::Token(k - 1))?;
                }
            }
        }
        Ok(())
    }
}

async fn ring(n: u64) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut nodes = Vec::with_capacity(RING_SIZE);
    for _ in 0..RING_SIZE {
        let st = NodeState {
            next: None,
            done: tx.clone(),
        };
        nodes.push(Actor::spawn(None, Node, st).await.expect("spawn node").0);
    }
    for (i, node) in nodes.iter().enumerate() {
        node.cast(RingMsg::Next(nodes[(i + 1) % RING_SIZE].clone()))
            .unwrap();
    }
    let base = rss_kb();
    let t = Instant::now();
    nodes[0].cast(RingMsg::Token(n)).unwrap();
    rx.recv().await.unwrap();
    finish(t.elapsed(), base)
}

/// Messages of the fan-out coordinator.
enum CoordMsg {
    /// Run `rounds` rounds over these workers, then signal.
    Start(u64, Vec<ActorRef<WorkMsg>>, oneshot::Sender<()>),
    /// A worker's answer.
    Done,
}

/// A worker's only message.
struct WorkMsg;

struct Coord;

/// The coordinator's state.
#[derive(Default)]
struct CoordState {
    workers: Vec<ActorRef<WorkMsg>>,
    rounds: u64,
    pending: usize,
    done: Option<oneshot::Sender<()>>,
}

impl CoordState {
    fn broadcast(&mut self) -> Res {
        self.pending = self.workers.len();
        for w in &self.workers {
            w.cast(WorkMsg)?;
        }
        Ok(())
    }
}

impl Actor for Coord {
    type Msg = CoordMsg;
    type State = CoordState;
    type Arguments = ();
    async fn pre_start(
        &self,
        _me: ActorRef<CoordMsg>,
        _: (),
    ) -> Result<CoordState, ActorProcessingErr> {
        Ok(CoordState::default())
    }
    async fn handle(&self, _me: ActorRef<CoordMsg>, msg: CoordMsg, st: &mut CoordState) -> Res {
        match msg {
            CoordMsg::Start(rounds, workers, done) => {
                st.workers = workers;
                st.rounds = rounds;
                st.done = Some(done);
                st.broadcast()?;
            }
            CoordMsg::Done => {
                st.pending -= 1;
                if st.pending == 0 {
                    st.rounds -= 1;
                    if st.rounds == 0 {
                        if let Some(d) = st.done.take() {
                            let _ = d.send(());
                        }
                    } else {
                        st.broadcast()?;
                    }
                }
            }
        }
        Ok(())
    }
}

struct Worker;

impl Actor for Worker {
    type Msg = WorkMsg;
    type State = ActorRef<CoordMsg>;
    type Arguments = ActorRef<CoordMsg>;
    async fn pre_start(
        &self,
        _me: ActorRef<WorkMsg>,
        coord: ActorRef<CoordMsg>,
    ) -> Result<ActorRef<CoordMsg>, ActorProcessingErr> {
        Ok(coord)
    }
    async fn handle(
        &self,
        _me: ActorRef<WorkMsg>,
        _msg: WorkMsg,
        coord: &mut ActorRef<CoordMsg>,
    ) -> Res {
        coord.cast(CoordMsg::Done)?;
        Ok(())
    }
}

async fn fan_out(rounds: u64) {
    let (coord, _) = Actor::spawn(None, Coord, ()).await.expect("spawn coord");
    let mut workers = Vec::with_capacity(FAN_WORKERS);
    for _ in 0..FAN_WORKERS {
        let w = Actor::spawn(None, Worker, coord.clone()).await;
        workers.push(w.expect("spawn worker").0);
    }
    let (tx, rx) = oneshot::channel();
    let base = rss_kb();
    let t = Instant::now();
    coord.cast(CoordMsg::Start(rounds, workers, tx)).unwrap();
    rx.await.unwrap();
    finish(t.elapsed(), base)
}

static STARTED: AtomicU64 = AtomicU64::new(0);

/// An idle actor that counts its start.
struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _me: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        STARTED.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn spawn_idle(n: u64) {
    let mut refs: Vec<ActorRef<()>> = Vec::with_capacity(n as usize);
    let base = rss_kb();
    let t = Instant::now();
    for _ in 0..n {
        refs.push(Actor::spawn(None, Idle, ()).await.expect("spawn idle").0);
    }
    while STARTED.load(Ordering::Relaxed) < n {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let elapsed = t.elapsed();
    std::hint::black_box(&refs);
    finish(elapsed, base)
}
