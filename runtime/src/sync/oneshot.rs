//! A one-value channel: how a finished coroutine hands its result to its `JoinHandle`.

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::thread;

use crate::park::{self, Cancelled, Park, Unparker};
use crate::sync::lock;

struct State<T> {
    value: Option<thread::Result<T>>,
    /// The sending side is gone without a value: the task was dropped before it ran.
    closed: bool,
    /// Whoever waits in `recv`.
    waiter: Option<Unparker>,
}

/// The shared cell.
pub(crate) struct Oneshot<T> {
    state: Mutex<State<T>>,
}

/// The sending side; dropping it unused closes the cell.
pub(crate) struct Completer<T> {
    cell: Option<Arc<Oneshot<T>>>,
}

/// A connected pair.
pub(crate) fn oneshot<T>() -> (Completer<T>, Arc<Oneshot<T>>) {
    let cell = Arc::new(Oneshot {
        state: Mutex::new(State {
            value: None,
            closed: false,
            waiter: None,
        }),
    });
    (
        Completer {
            cell: Some(cell.clone()),
        },
        cell,
    )
}

impl<T> Completer<T> {
    /// Stores the value and wakes the receiver.
    pub(crate) fn complete(mut self, v: thread::Result<T>) {
        if let Some(cell) = self.cell.take() {
            cell.finish(Some(v));
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            cell.finish(None);
        }
    }
}

impl<T> Oneshot<T> {
    fn finish(&self, v: Option<thread::Result<T>>) {
        let waiter = {
            let mut s = lock(&self.state);
            match v {
                Some(v) => s.value = Some(v),
                None => s.closed = true,
            }
            s.waiter.take()
        };
        if let Some(w) = waiter {
            w.unpark();
        }
    }

    /// Whether the value is there (or will never come).
    pub(crate) fn is_done(&self) -> bool {
        let s = lock(&self.state);
        s.value.is_some() || s.closed
    }

    /// Waits for the value.
    pub(crate) fn recv(&self) -> thread::Result<T> {
        loop {
            {
                let mut s = lock(&self.state);
                if let Some(v) = s.value.take() {
                    return v;
                }
                if s.closed {
                    let msg: Box<dyn Any + Send> =
                        Box::new("coact: the coroutine was dropped before it started (runtime ended or no stack could be mapped)");
                    return Err(msg);
                }
                s.waiter = Some(park::current());
            }
            if park::park(None) == Park::Cancelled {
                lock(&self.state).waiter = None;
                park::cancelled();
                return Err(Box::new(Cancelled));
            }
        }
    }
}
