//! The reactor: the only module that touches `mio::Poll`.
//!
//! Each worker owns one `Poll` for its whole life. Token 0 belongs to the worker's
//! `mio::Waker` (other threads use it to interrupt the poll, see the protocol in `worker.rs`).

use std::cell::RefCell;
use std::io;
use std::time::Duration;

use mio::{Events, Poll, Registry, Token};

/// The token of the worker's waker.
pub(crate) const WAKE_TOKEN: Token = Token(0);

/// One worker's poll and its event buffer.
pub(crate) struct Reactor {
    poll: RefCell<Poll>,
    events: RefCell<Events>,
}

impl Reactor {
    /// A new poll with room for 1,024 events per call.
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poll: RefCell::new(Poll::new()?),
            events: RefCell::new(Events::with_capacity(1024)),
        })
    }

    /// The registry, to create the waker.
    pub(crate) fn registry(&self) -> Registry {
        self.poll
            .borrow()
            .registry()
            .try_clone()
            .expect("coact: cannot clone the mio registry")
    }

    /// Waits for events up to `timeout` (`None`: until one arrives) and dispatches them.
    pub(crate) fn poll(&self, timeout: Option<Duration>) {
        let mut events = self.events.borrow_mut();
        match self.poll.borrow_mut().poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("coact: the I/O poll failed: {e}"),
        }
        for ev in events.iter() {
            if ev.token() == WAKE_TOKEN {
                continue;
            }
        }
    }
}
