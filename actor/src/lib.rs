//! Actors for coact: typed, bounded, supervised, and written as plain blocking Rust.
//!
//! An actor is some state and a typed mailbox. Its code may do anything a coroutine may: ask
//! another actor and wait for the answer, read a socket, sleep. There is no `async`.
//!
//! # Handler actors
//!
//! Implement [`Actor`]; [`spawn`] gives its [`Addr`]. The handler runs once per message. An
//! idle handler actor holds no coroutine stack (it borrows a pooled one while it works), so a
//! million of them fit in memory.
//!
//! ```
//! use coact_actor::{spawn, Actor, Ctx, ReplyTo};
//! use std::time::Duration;
//!
//! struct Greeter { greeted: u32 }
//! enum Msg { Greet(String, ReplyTo<String>), Count(ReplyTo<u32>) }
//!
//! impl Actor for Greeter {
//!     type Msg = Msg;
//!     fn handle(&mut self, msg: Msg, _ctx: &mut Ctx<'_, Msg>) {
//!         match msg {
//!             Msg::Greet(name, reply) => {
//!                 self.greeted += 1;
//!                 reply.send(format!("hello, {name}"));
//!             }
//!             Msg::Count(reply) => { reply.send(self.greeted); }
//!         }
//!     }
//! }
//!
//! coact_runtime::run(|| {
//!     let greeter = spawn(Greeter { greeted: 0 });
//!     let t = Duration::from_secs(5);
//!     assert_eq!(greeter.ask(|r| Msg::Greet("ada".into(), r), t).unwrap(), "hello, ada");
//!     assert_eq!(greeter.ask(Msg::Count, t), Ok(1));
//! });
//! ```
//!
//! # Process actors
//!
//! [`spawn_process`] runs a closure that owns its [`Inbox`] and receives in a loop, Erlang
//! style; it can wait on its inbox together with other channels, sockets and timers.
//!
//! ```
//! use coact_actor::{spawn_process, Inbox};
//! use coact_runtime::sync::mpsc::sync_channel;
//!
//! coact_runtime::run(|| {
//!     let (out, results) = sync_channel(8);
//!     let doubler = spawn_process(move |inbox: Inbox<u32>| {
//!         while let Some(n) = inbox.recv() {
//!             out.send(n * 2).unwrap();
//!         }
//!     });
//!     doubler.send(21).unwrap();
//!     assert_eq!(results.recv(), Ok(42));
//! });
//! ```
//!
//! # Watching, stopping, supervising
//!
//! [`Addr::monitor`] tells you once when an actor stops, and why ([`StopReason`]).
//! [`Addr::stop`] lets it finish its current message; [`Addr::kill`] unwinds it where it
//! stands. A [`Supervisor`] restarts panicking children (one-for-one, one-for-all or
//! rest-for-one) within a restart intensity, and a restarted child keeps its address and its
//! queued messages; supervisors nest into trees ([`Supervisor::supervisor`]). [`registry`]
//! names actors; [`timer`] sends messages later.
//!
//! When its runtime ends, every actor on it stops with [`StopReason::Killed`], idle ones
//! included: its [`Actor::stopped`] runs, its monitors are told, its names are released, and
//! asks and sends to it fail at once from then on.

mod addr;
mod cell;
mod census;
mod process;
mod reason;
mod recipient;
pub mod registry;
mod slot;
mod supervisor;
pub mod timer;
#[cfg(feature = "serde")]
pub mod wire;

use coact_runtime::Handle;

pub use addr::{Addr, AskError, Monitor, ReplyTo, SendError, SendTimeoutError, TrySendError};
pub use process::Inbox;
pub use reason::{ActorId, Down, StopReason};
pub use recipient::Recipient;
pub use supervisor::{Failure, Strategy, Supervisor, SupervisorRef};

/// The mailbox capacity of [`spawn`] and [`spawn_process`].
pub const DEFAULT_CAPACITY: usize = 64;

/// An actor driven by messages: state plus a handler.
pub trait Actor: Send + Sized + 'static {
    /// What its mailbox carries.
    type Msg: Send + 'static;

    /// Handles one message. It may block (ask another actor, do I/O, sleep): the actor then
    /// holds a coroutine stack until it returns, and handles its next message after.
    fn handle(&mut self, msg: Self::Msg, ctx: &mut Ctx<'_, Self::Msg>);

    /// Runs once before the first message (and after each restart).
    fn started(&mut self, _ctx: &mut Ctx<'_, Self::Msg>) {}

    /// Runs when the mailbox is found empty after one or more messages were handled, before
    /// the actor waits for more: the place to finish work batched across a burst of messages
    /// (flush buffered output, write a batch to disk). It may block like [`Actor::handle`];
    /// messages that arrive meanwhile are handled after it returns, and it runs again after
    /// them. An actor that stops runs [`Actor::stopped`] instead. The default does nothing.
    ///
    /// ```
    /// use coact_actor::{spawn, Actor, Ctx};
    /// use coact_runtime::sync::mpsc::{channel, Sender};
    ///
    /// /// Collects numbers and reports each burst's sum once the burst is over.
    /// struct Summer { sum: u64, out: Sender<u64> }
    ///
    /// impl Actor for Summer {
    ///     type Msg = u64;
    ///     fn handle(&mut self, n: u64, _: &mut Ctx<'_, u64>) {
    ///         self.sum += n;
    ///     }
    ///     fn idle(&mut self, _: &mut Ctx<'_, u64>) {
    ///         let _ = self.out.send(std::mem::take(&mut self.sum));
    ///     }
    /// }
    ///
    /// coact_runtime::run(|| {
    ///     let (tx, rx) = channel();
    ///     let summer = spawn(Summer { sum: 0, out: tx });
    ///     for n in 1..=3 {
    ///         summer.send(n).unwrap();
    ///     }
    ///     // One report per burst: one, or more if the actor caught up between sends.
    ///     let mut total = 0;
    ///     while total < 6 {
    ///         total += rx.recv().unwrap();
    ///     }
    ///     assert_eq!(total, 6);
    /// });
    /// ```
    fn idle(&mut self, _ctx: &mut Ctx<'_, Self::Msg>) {}

    /// Runs once when the actor stops, whatever the reason (after a panic or a kill, the state
    /// may be part-way through an update). When the runtime's end stops an actor that was idle
    /// (or not started yet), it runs on the thread that ended the runtime, outside any
    /// coroutine.
    fn stopped(&mut self, _reason: &StopReason) {}

    /// Renders a message for a supervisor's [`Failure`] report, called before each message of
    /// a supervised actor. The default renders nothing (and costs nothing).
    fn describe(_msg: &Self::Msg) -> Option<String> {
        None
    }
}

/// What a handler knows about its actor.
#[derive(Debug)]
pub struct Ctx<'a, M> {
    addr: &'a Addr<M>,
    stop: bool,
}

impl<M> Ctx<'_, M> {
    /// The actor's own address.
    pub fn addr(&self) -> &Addr<M> {
        self.addr
    }

    /// The actor's identity.
    pub fn id(&self) -> ActorId {
        self.addr.id()
    }

    /// Stops the actor after this handler returns ([`StopReason::Normal`]).
    pub fn stop(&mut self) {
        self.stop = true;
    }
}

fn current() -> Handle {
    Handle::current().expect("coact: actors must be spawned from inside a runtime (use spawn_on)")
}

/// Spawns a handler actor with a mailbox of [`DEFAULT_CAPACITY`] messages.
///
/// # Panics
/// Outside a runtime.
pub fn spawn<A: Actor>(actor: A) -> Addr<A::Msg> {
    spawn_on(&current(), DEFAULT_CAPACITY, actor)
}

/// Spawns a handler actor with a mailbox of `capacity` messages.
///
/// The capacity bounds what waits: the message being handled is not in the mailbox, and
/// neither is one sent to the actor while it is idle with an empty mailbox, which goes
/// straight to it (it is handled first, as if taken at once).
///
/// # Panics
/// Outside a runtime.
pub fn spawn_with_capacity<A: Actor>(capacity: usize, actor: A) -> Addr<A::Msg> {
    spawn_on(&current(), capacity, actor)
}

/// Spawns a handler actor on the runtime of `handle` (from any thread).
pub fn spawn_on<A: Actor>(handle: &Handle, capacity: usize, actor: A) -> Addr<A::Msg> {
    let (tx, rx) = coact_runtime::sync::mpsc::sync_channel(capacity);
    cell::new_cell(actor, tx, rx, handle.clone(), None, None)
}

/// Spawns a process actor with a mailbox of [`DEFAULT_CAPACITY`] messages.
///
/// # Panics
/// Outside a runtime, or when the runtime's cap on live coroutines is reached (a process holds
/// its coroutine for life; [`try_spawn_process`] returns that as an error).
pub fn spawn_process<M, F>(body: F) -> Addr<M>
where
    M: Send + 'static,
    F: FnOnce(Inbox<M>) + Send + 'static,
{
    try_spawn_process(DEFAULT_CAPACITY, body).unwrap_or_else(|e| panic!("{e}"))
}

/// Spawns a process actor with a mailbox of `capacity` messages, or says why it cannot.
///
/// # Panics
/// Outside a runtime.
pub fn try_spawn_process<M, F>(capacity: usize, body: F) -> std::io::Result<Addr<M>>
where
    M: Send + 'static,
    F: FnOnce(Inbox<M>) + Send + 'static,
{
    process::spawn_process_with(&current(), capacity, move |inbox| {
        body(inbox);
        StopReason::Normal
    })
}
