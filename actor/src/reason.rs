//! Who an actor is, and why it stopped.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A process-unique actor identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId(u64);

impl ActorId {
    /// A new process-unique id, for addresses a transport makes (coact-net's remote ones).
    pub fn fresh() -> ActorId {
        ActorId::next()
    }

    pub(crate) fn next() -> ActorId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ActorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number behind the id.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({})", self.0)
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why an actor stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// It stopped itself ([`Ctx::stop`](crate::Ctx::stop)), its process closure returned, or
    /// every address to it was dropped.
    Normal,
    /// Someone called [`Addr::stop`](crate::Addr::stop): it finished its current message
    /// and stopped.
    Stopped,
    /// Its handler panicked (and no supervisor restarted it); the panic message.
    Panicked(String),
    /// Someone called [`Addr::kill`](crate::Addr::kill), or its runtime ended: its stack was
    /// unwound where it stood.
    Killed,
    /// It lives on another node, and the link to that node went down (why, in words).
    NodeDown(String),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Normal => f.write_str("stopped normally"),
            StopReason::Stopped => f.write_str("was stopped"),
            StopReason::Panicked(m) => write!(f, "panicked: {m}"),
            StopReason::Killed => f.write_str("was killed"),
            StopReason::NodeDown(why) => write!(f, "is on a node that went down: {why}"),
        }
    }
}

/// The notice a monitor gets, once, when the actor it watches stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Down {
    /// The actor that stopped.
    pub id: ActorId,
    /// Why.
    pub reason: StopReason,
}
