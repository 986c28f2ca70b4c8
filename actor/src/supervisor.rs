//! Supervisors: restart failed actors by a strategy, within a restart intensity, with backoff.
//!
//! A supervised child keeps its address and its mailbox across restarts: messages already
//! accepted are not lost. When its handler panics, the child stops handling messages and
//! reports a [`Failure`] (the panic message, and the message being handled if the actor's
//! [`Actor::describe`](crate::Actor::describe) gives one); the supervisor then restarts it with
//! a fresh state from its factory, after a backoff. More than `max_restarts` restarts within
//! `period` make the supervisor give up: it stops its children (last started first) and stops
//! itself with a [`StopReason::Panicked`] that says why. A supervisor can also be the child of
//! another ([`Supervisor::supervisor`]): such a subtree that gives up reports to its parent,
//! which restarts it whole; stopping a tree stops it from the leaves up.
//!
//! ```
//! use coact_actor::{Actor, Ctx, ReplyTo, Strategy, Supervisor};
//! use std::time::Duration;
//!
//! struct Parser;
//! enum Msg { Parse(String, ReplyTo<u32>) }
//! impl Actor for Parser {
//!     type Msg = Msg;
//!     fn handle(&mut self, msg: Msg, _ctx: &mut Ctx<'_, Msg>) {
//!         let Msg::Parse(text, reply) = msg;
//!         reply.send(text.parse().expect("a number")); // panics on bad input
//!     }
//! }
//!
//! coact_runtime::run(|| {
//!     let mut sup = Supervisor::new(Strategy::OneForOne);
//!     let parser = sup.child(|| Parser);
//!     let sup = sup.start();
//!     let ask = |s: &str| parser.ask(|r| Msg::Parse(s.to_owned(), r), Duration::from_secs(5));
//!     assert_eq!(ask("7"), Ok(7));
//!     assert!(ask("seven").is_err()); // the child panics and is restarted
//!     assert_eq!(ask("8"), Ok(8));    // same address, fresh state
//!     sup.shutdown();
//! });
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coact_runtime::select::Select;
use coact_runtime::sync::mpsc::{sync_channel, Receiver, SyncSender};
use coact_runtime::Handle;

use crate::cell::{new_cell, Control, KILL, RESTART, STOP};
use crate::process::spawn_process_with;
use crate::reason::{ActorId, StopReason};
use crate::{Actor, Addr, Monitor, DEFAULT_CAPACITY};

/// Which children a failure restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only the child that failed.
    OneForOne,
    /// Every child.
    OneForAll,
    /// The child that failed and every child started after it.
    RestForOne,
}

/// A child's report that its handler panicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The child's index, in the order children were added.
    pub child: usize,
    /// The child's identity.
    pub id: ActorId,
    /// The panic message.
    pub panic: String,
    /// The message whose handling panicked, as [`Actor::describe`](crate::Actor::describe)
    /// rendered it (`None` if it renders nothing).
    pub message: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "child {} ({}) panicked: {}",
            self.child, self.id, self.panic
        )?;
        if let Some(m) = &self.message {
            write!(f, " while handling {m}")?;
        }
        Ok(())
    }
}

/// Control messages for a running supervisor.
enum SupMsg {
    Shutdown,
    /// From the parent supervisor: start over (every child restarted, intensity reset).
    Restart,
}

/// A supervised child: an actor, or a supervisor of its own (a subtree).
enum Child {
    Actor(Arc<dyn Control>),
    Sub(Addr<SupMsg>),
}

impl Child {
    fn restart(&self) {
        match self {
            Child::Actor(c) => c.request(RESTART),
            Child::Sub(a) => {
                let _ = a.try_send(SupMsg::Restart);
            }
        }
    }

    /// Stops the child and waits for it (a child still busy after [`STOP_GRACE`] is
    /// killed); a subtree stops its own children first, the same way.
    fn stop(&self) {
        // Waiting is skipped while unwinding (a cancelled supervisor cannot park).
        let wait = !coact_runtime::panicking();
        match self {
            Child::Actor(c) => {
                let (tx, rx) = sync_channel(1);
                c.common().watch(tx);
                c.request(STOP);
                if wait && rx.recv_timeout(STOP_GRACE).is_err() {
                    // Blocked in a handler for too long: unwind it where it stands.
                    c.request(KILL);
                    let _ = rx.recv_timeout(STOP_GRACE);
                }
            }
            Child::Sub(a) => {
                let down = a.monitor();
                let _ = a.try_send(SupMsg::Shutdown);
                if wait && down.recv_timeout(STOP_GRACE * 4).is_none() {
                    a.kill();
                    let _ = down.recv_timeout(STOP_GRACE);
                }
            }
        }
    }
}

type FailureHook = Box<dyn FnMut(&Failure) + Send>;

/// A supervisor being set up: add children, then [`start`](Supervisor::start) it.
pub struct Supervisor {
    strategy: Strategy,
    max_restarts: usize,
    period: Duration,
    backoff: (Duration, Duration),
    handle: Handle,
    children: Vec<Child>,
    fail_tx: SyncSender<Failure>,
    fail_rx: Receiver<Failure>,
    on_failure: Option<FailureHook>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("strategy", &self.strategy)
            .field("children", &self.children.len())
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor with `strategy`, at most 3 restarts in 5 seconds, and a backoff from 1 ms
    /// doubling to 500 ms.
    ///
    /// # Panics
    /// Outside a runtime.
    pub fn new(strategy: Strategy) -> Supervisor {
        let handle = Handle::current().expect("coact: a supervisor must be made inside a runtime");
        let (fail_tx, fail_rx) = sync_channel(64);
        Supervisor {
            strategy,
            max_restarts: 3,
            period: Duration::from_secs(5),
            backoff: (Duration::from_millis(1), Duration::from_millis(500)),
            handle,
            children: Vec::new(),
            fail_tx,
            fail_rx,
            on_failure: None,
        }
    }

    /// Gives up after more than `max_restarts` restarts within `period`.
    pub fn intensity(mut self, max_restarts: usize, period: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// Waits `initial` before a restart, doubling for each further restart within the
    /// intensity period, up to `max`.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = (initial, max.max(initial));
        self
    }

    /// Calls `f` with every failure report (for logging or tests).
    pub fn on_failure(mut self, f: impl FnMut(&Failure) + Send + 'static) -> Self {
        self.on_failure = Some(Box::new(f));
        self
    }

    /// Spawns a supervised child made by `factory` (called again for each restart), with the
    /// default mailbox capacity.
    pub fn child<A: Actor>(&mut self, factory: impl FnMut() -> A + Send + 'static) -> Addr<A::Msg> {
        self.child_with_capacity(DEFAULT_CAPACITY, factory)
    }

    /// Spawns a supervised child with a mailbox of `capacity` messages.
    pub fn child_with_capacity<A: Actor>(
        &mut self,
        capacity: usize,
        mut factory: impl FnMut() -> A + Send + 'static,
    ) -> Addr<A::Msg> {
        let (tx, rx) = sync_channel(capacity);
        let first = factory();
        let index = self.children.len();
        let addr = new_cell(
            first,
            tx,
            rx,
            self.handle.clone(),
            Some(Box::new(factory)),
            Some((index, self.fail_tx.clone())),
        );
        self.children.push(Child::Actor(addr.control()));
        addr
    }

    /// Adds `sub`, a supervisor with children of its own, as a child: supervision trees. It
    /// starts supervising at once. When it gives up (its restart intensity is exceeded), it
    /// does not stop: it reports a [`Failure`] to this supervisor, which restarts it by this
    /// supervisor's strategy, counted against this supervisor's intensity. Restarting a
    /// subtree restarts every actor in it with a fresh state, at the same addresses with the
    /// same mailboxes, and resets its intensity. Stopping this supervisor stops the subtree,
    /// and the subtree stops its own children first.
    ///
    /// ```
    /// use coact_actor::{Actor, Ctx, Strategy, Supervisor};
    ///
    /// struct Worker;
    /// impl Actor for Worker {
    ///     type Msg = u32;
    ///     fn handle(&mut self, _n: u32, _ctx: &mut Ctx<'_, u32>) {}
    /// }
    ///
    /// coact_runtime::run(|| {
    ///     let mut pool = Supervisor::new(Strategy::OneForOne);
    ///     let worker = pool.child(|| Worker);
    ///     let mut root = Supervisor::new(Strategy::OneForAll);
    ///     let _pool = root.supervisor(pool);
    ///     let root = root.start();
    ///     worker.send(1).unwrap();
    ///     root.shutdown(); // the worker first, then the pool, then the root
    /// });
    /// ```
    ///
    /// # Panics
    /// When the runtime's cap on live coroutines is reached.
    pub fn supervisor(&mut self, sub: Supervisor) -> SupervisorRef {
        let parent = (self.children.len(), self.fail_tx.clone());
        let r = sub.start_under(Some(parent));
        self.children.push(Child::Sub(r.addr.clone()));
        r
    }

    /// Starts supervising.
    ///
    /// # Panics
    /// When the runtime's cap on live coroutines is reached.
    pub fn start(self) -> SupervisorRef {
        self.start_under(None)
    }

    /// Starts supervising, as the child `parent.0` of the supervisor fed by `parent.1`.
    fn start_under(self, parent: Option<(usize, SyncSender<Failure>)>) -> SupervisorRef {
        let Supervisor {
            strategy,
            max_restarts,
            period,
            backoff,
            handle,
            children,
            fail_tx,
            fail_rx,
            mut on_failure,
        } = self;
        drop(fail_tx);
        let addr = spawn_process_with(&handle, 8, move |inbox: crate::Inbox<SupMsg>| {
            let children = StopOnDrop(children);
            let mut restarts: VecDeque<Instant> = VecDeque::new();
            // The parent restarts this subtree: every child starts over and the intensity
            // window empties; failures reported before it are covered by it.
            let start_over = |restarts: &mut VecDeque<Instant>| {
                while fail_rx.try_recv().is_ok() {}
                restarts.clear();
                for c in &children.0 {
                    c.restart();
                }
            };
            let mut sel = Select::new();
            let fail_op = sel.recv(&fail_rx);
            sel.recv(inbox.receiver());
            loop {
                let op = sel.select();
                if op.index() != fail_op {
                    match op.recv(inbox.receiver()) {
                        Ok(SupMsg::Restart) => {
                            start_over(&mut restarts);
                            continue;
                        }
                        _ => return StopReason::Stopped,
                    }
                }
                let Ok(failure) = op.recv(&fail_rx) else { return StopReason::Normal };
                if let Some(f) = on_failure.as_mut() {
                    f(&failure);
                }
                let now = Instant::now();
                while restarts.front().is_some_and(|t| now.duration_since(*t) > period) {
                    restarts.pop_front();
                }
                if restarts.len() >= max_restarts {
                    let why = format!(
                        "restart intensity exceeded: more than {max_restarts} restarts in {period:?}; last: {failure}"
                    );
                    let Some((index, parent)) = &parent else {
                        return StopReason::Panicked(why);
                    };
                    // A subtree: the parent decides. Its children stay failed until then.
                    let report = Failure {
                        child: *index,
                        id: inbox.addr().id(),
                        panic: why.clone(),
                        message: None,
                    };
                    if parent.send(report).is_err() {
                        return StopReason::Panicked(why);
                    }
                    match inbox.recv() {
                        Some(SupMsg::Restart) => {
                            start_over(&mut restarts);
                            continue;
                        }
                        Some(SupMsg::Shutdown) | None => return StopReason::Stopped,
                    }
                }
                let delay = backoff.0.saturating_mul(1u32 << restarts.len().min(16)).min(backoff.1);
                restarts.push_back(now);
                if inbox.recv_timeout(delay).is_ok() || inbox.stop_requested() {
                    return StopReason::Stopped; // a shutdown arrived during the backoff
                }
                let range = match strategy {
                    Strategy::OneForOne => failure.child..failure.child + 1,
                    Strategy::OneForAll => 0..children.0.len(),
                    Strategy::RestForOne => failure.child..children.0.len(),
                };
                for c in &children.0[range] {
                    c.restart();
                }
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
        SupervisorRef { addr }
    }
}

/// How long a child may take to finish its current message when its supervisor stops it;
/// after that it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Stops the children, last started first, when the supervisor ends for any reason.
struct StopOnDrop(Vec<Child>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        for c in self.0.iter().rev() {
            c.stop();
        }
    }
}

/// A running supervisor.
#[derive(Debug, Clone)]
pub struct SupervisorRef {
    addr: Addr<SupMsg>,
}

impl SupervisorRef {
    /// Stops every child, last started first, waiting for each (a child still busy after 5
    /// seconds is killed), then the supervisor. Returns once all of them have stopped.
    pub fn shutdown(&self) {
        let down = self.addr.monitor();
        let _ = self.addr.send(SupMsg::Shutdown);
        down.recv();
    }

    /// Watches the supervisor itself (it stops when it gives up or is shut down).
    pub fn monitor(&self) -> Monitor {
        self.addr.monitor()
    }

    /// The supervisor's identity.
    pub fn id(&self) -> ActorId {
        self.addr.id()
    }
}
