//! Messages sent later: once after a delay, or at an interval. Cancelable.
//!
//! Each timer is an alarm ([`alarm_after`], [`alarm_every`]): an entry in its worker's alarm
//! heap, with no coroutine or stack held while it waits, so every actor of a large system can
//! keep a heartbeat. When it fires it puts the message in the mailbox if there is room; if the
//! mailbox is full, a coroutine is spawned to wait for room, so the message is not lost and
//! backpressure still holds. Dropping the [`Timer`] cancels it (use [`Timer::detach`] to let
//! it fire on its own).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coact_runtime::time::{alarm_after, alarm_every, Alarm};
use coact_runtime::Handle;

use crate::{Addr, TrySendError};

/// A pending timer; dropping it cancels it.
#[must_use = "dropping a Timer cancels it; call detach() to let it fire"]
#[derive(Debug)]
pub struct Timer {
    alarm: Alarm,
}

impl Timer {
    /// Cancels the timer: no further message is sent, except one already on its way into a
    /// full mailbox.
    pub fn cancel(self) {
        self.alarm.cancel();
    }

    /// Lets the timer run on its own; it can no longer be cancelled.
    pub fn detach(self) {
        self.alarm.detach();
    }
}

fn current() -> Handle {
    Handle::current().expect("coact: timers must be started from inside a runtime")
}

/// Puts `msg` in the mailbox, or has a coroutine wait for room if it is full (`waiting` is
/// raised until that send ends). False if the actor has stopped.
fn deliver<M: Send + 'static>(
    handle: &Handle,
    addr: &Addr<M>,
    msg: M,
    waiting: Option<&Arc<AtomicBool>>,
) -> bool {
    match addr.try_send(msg) {
        Ok(()) => true,
        Err(TrySendError::Full(msg)) => {
            let addr = addr.clone();
            let waiting = waiting.cloned();
            if let Some(w) = &waiting {
                w.store(true, Ordering::Relaxed);
            }
            handle.spawn_detached(move || {
                let _ = addr.send(msg);
                if let Some(w) = waiting {
                    w.store(false, Ordering::Relaxed);
                }
            });
            true
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

/// Sends `msg` to `addr` after `delay`.
///
/// # Panics
/// Outside a runtime.
pub fn send_after<M: Send + 'static>(addr: &Addr<M>, delay: Duration, msg: M) -> Timer {
    let handle = current();
    let addr = addr.clone();
    let send = move |_| {
        deliver(&handle, &addr, msg, None);
    };
    Timer {
        alarm: alarm_after(delay, send),
    }
}

/// Sends `make()` to `addr` every `period` (the first after one period), until cancelled or
/// the actor stops. Deadlines do not drift: the n-th message is due at n × `period`.
///
/// A slow actor gets no burst: while a message waits for room in its full mailbox, the ticks
/// that come due are skipped (`make` is not called for them), as are ticks the worker was too
/// busy to fire on time.
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
    let handle = current();
    let addr = addr.clone();
    let waiting = Arc::new(AtomicBool::new(false));
    let alarm = alarm_every(period, move |_| {
        waiting.load(Ordering::Relaxed) || deliver(&handle, &addr, make(), Some(&waiting))
    });
    Timer { alarm }
}
