//! Messages sent later: once after a delay, or at an interval. Cancelable.
//!
//! Each timer is a small detached coroutine parked on a deadline; dropping the [`Timer`]
//! cancels it (use [`Timer::detach`] to let it fire on its own).

use std::time::{Duration, Instant};

use coact_runtime::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use coact_runtime::Handle;

use crate::Addr;

/// A pending timer; dropping it cancels it.
#[must_use = "dropping a Timer cancels it; call detach() to let it fire"]
#[derive(Debug)]
pub struct Timer {
    cancel: Option<SyncSender<()>>,
}

impl Timer {
    /// Cancels the timer: no further message is sent.
    pub fn cancel(mut self) {
        if let Some(tx) = self.cancel.take() {
            let _ = tx.try_send(());
        }
    }

    /// Lets the timer run on its own; it can no longer be cancelled.
    pub fn detach(mut self) {
        self.cancel = None;
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(tx) = self.cancel.take() {
            let _ = tx.try_send(());
        }
    }
}

fn current() -> Handle {
    Handle::current().expect("coact: timers must be started from inside a runtime")
}

/// Sends `msg` to `addr` after `delay`.
///
/// # Panics
/// Outside a runtime.
pub fn send_after<M: Send + 'static>(addr: &Addr<M>, delay: Duration, msg: M) -> Timer {
    let (tx, rx) = sync_channel::<()>(1);
    let keep = tx.clone();
    let addr = addr.clone();
    current().spawn_detached(move || {
        let _keep = keep; // so that detaching (dropping the Timer's sender) is not a cancel
        if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(delay) {
            let _ = addr.send(msg);
        }
    });
    Timer { cancel: Some(tx) }
}

/// Sends `make()` to `addr` every `period` (the first after one period), until cancelled or
/// the actor stops. Deadlines do not drift: the n-th message is due at n × `period`.
///
/// # Panics
/// Outside a runtime, or if `period` is zero.
pub fn send_interval<M: Send + 'static>(
    addr: &Addr<M>,
    period: Duration,
    mut make: impl FnMut() -> M + Send + 'static,
) -> Timer {
    assert!(
        !period.is_zero(),
        "coact: an interval must be longer than zero"
    );
    let (tx, rx) = sync_channel::<()>(1);
    let keep = tx.clone();
    let addr = addr.clone();
    current().spawn_detached(move || {
        let _keep = keep;
        let mut next = Instant::now() + period;
        loop {
            match rx.recv_deadline(next) {
                Err(RecvTimeoutError::Timeout) => {
                    if addr.send(make()).is_err() {
                        return;
                    }
                    next += period;
                }
                _ => return,
            }
        }
    });
    Timer { cancel: Some(tx) }
}
