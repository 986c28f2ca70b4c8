//! Process actors: a coroutine that owns its mailbox and receives in a loop, Erlang style.
//!
//! Unlike a handler actor, a process holds its coroutine (and stack) for its whole life, so it
//! counts against the runtime's cap on live coroutines; in exchange it can keep any state on
//! its stack and wait on its mailbox together with other channels, sockets and timers in one
//! [`Select`](coact_runtime::select::Select).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coact_runtime::select::Select;
use coact_runtime::sync::mpsc::{
    sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError,
};
use coact_runtime::{Cancelled, Handle};

use crate::cell::{orphaned, Common, Control, KILL, ORPHANED, STOP};
use crate::reason::StopReason;
use crate::Addr;
use coact_runtime::panic_text;

/// The control surface of a process actor.
pub(crate) struct ProcessCtl {
    common: Common,
    /// Wakes the process's `recv` when a stop is requested.
    stop_tx: SyncSender<()>,
}

/// A process actor's coroutine owns its mailbox: messages always go through it.
impl<M> crate::cell::Mailbox<M> for ProcessCtl {}

impl Control for ProcessCtl {
    fn common(&self) -> &Common {
        &self.common
    }

    fn notify(&self) {}

    fn request(&self, flag: u8) {
        self.common.flags.fetch_or(flag, Ordering::AcqRel);
        if flag & (STOP | ORPHANED) != 0 {
            let _ = self.stop_tx.try_send(());
        }
        if flag & KILL != 0 {
            self.common.cancel_running();
        }
    }
}

/// A process actor's mailbox, owned by its coroutine.
pub struct Inbox<M> {
    rx: Receiver<M>,
    stop_rx: Receiver<()>,
    ctl: Arc<ProcessCtl>,
    me: Addr<M>,
}

impl<M> std::fmt::Debug for Inbox<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inbox({})", self.ctl.common.id)
    }
}

impl<M: Send> Inbox<M> {
    /// The next message; `None` once a stop was requested (or every address is gone).
    pub fn recv(&self) -> Option<M> {
        self.recv_until(None).ok()
    }

    /// The next message, waiting at most `timeout`. `Disconnected` means stop.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<M, RecvTimeoutError> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    /// A message if one is waiting now.
    pub fn try_recv(&self) -> Option<M> {
        if self.stop_requested() {
            return None;
        }
        self.rx.try_recv().ok()
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<M, RecvTimeoutError> {
        loop {
            if self.stop_requested() {
                return Err(RecvTimeoutError::Disconnected);
            }
            match self.rx.try_recv() {
                Ok(m) => return Ok(m),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) if orphaned(&self.ctl.common) => {
                    return Err(RecvTimeoutError::Disconnected)
                }
                Err(TryRecvError::Empty) => {}
            }
            // Stop and orphan signals are flags; the token only wakes us. Drop stale tokens so
            // the wait below does not return at once for a signal already handled.
            while self.stop_rx.try_recv().is_ok() {}
            let mut sel = Select::new();
            sel.recv(&self.rx);
            sel.recv(&self.stop_rx);
            let ready = match deadline {
                Some(d) => sel
                    .ready_timeout(d.saturating_duration_since(Instant::now()))
                    .is_ok(),
                None => {
                    sel.ready();
                    true
                }
            };
            if !ready {
                return Err(RecvTimeoutError::Timeout);
            }
        }
    }

    /// Whether someone asked this process to stop; a process that does not block in
    /// [`recv`](Inbox::recv) should check it now and then.
    pub fn stop_requested(&self) -> bool {
        self.ctl.common.flags.load(Ordering::Acquire) & STOP != 0
    }

    /// The mailbox channel, to wait on it in a `Select` with other events.
    pub fn receiver(&self) -> &Receiver<M> {
        &self.rx
    }

    /// This process's own address.
    pub fn addr(&self) -> &Addr<M> {
        &self.me
    }
}

/// A process actor's part in its coroutine's closure until the coroutine starts. Dropped
/// with the closure instead (the runtime ended before the coroutine started), it tells the
/// monitors that the actor was killed, as a cancelled process's would (its mailbox closes as
/// the closure drops its `Inbox`).
struct Unstarted(Option<Arc<ProcessCtl>>);

impl Unstarted {
    fn start(mut self) -> Arc<ProcessCtl> {
        self.0.take().expect("a process starts once")
    }
}

impl Drop for Unstarted {
    fn drop(&mut self) {
        if let Some(ctl) = self.0.take() {
            ctl.common.finish(StopReason::Killed);
        }
    }
}

/// Spawns a process actor on `handle`; `body` returns the reason it stopped.
pub(crate) fn spawn_process_with<M, F>(
    handle: &Handle,
    capacity: usize,
    body: F,
) -> std::io::Result<Addr<M>>
where
    M: Send + 'static,
    F: FnOnce(Inbox<M>) -> StopReason + Send + 'static,
{
    let (tx, rx) = sync_channel(capacity);
    let (stop_tx, stop_rx) = sync_channel(1);
    let ctl = Arc::new(ProcessCtl {
        common: Common::new(),
        stop_tx,
    });
    let addr = Addr::new(tx, ctl.clone());
    let inbox = Inbox {
        rx,
        stop_rx,
        ctl: ctl.clone(),
        me: addr.own(),
    };
    let unstarted = Unstarted(Some(ctl.clone()));
    let spawned = handle.try_spawn(move || {
        let ctl = unstarted.start();
        ctl.common.set_running(coact_runtime::current_coroutine());
        let reason = if ctl.common.flags.load(Ordering::Acquire) & KILL != 0 {
            // Drops the messages queued meanwhile, whose destructors may panic.
            crate::cell::contain("queued messages' destructors", move || drop(inbox));
            StopReason::Killed
        } else {
            match catch_unwind(AssertUnwindSafe(move || body(inbox))) {
                Ok(r) => r,
                Err(p) if p.is::<Cancelled>() => StopReason::Killed,
                Err(p) => StopReason::Panicked(panic_text(&*p)),
            }
        };
        ctl.common.set_running(None);
        let reason = match reason {
            StopReason::Normal if ctl.common.flags.load(Ordering::Acquire) & STOP != 0 => {
                StopReason::Stopped
            }
            r => r,
        };
        ctl.common.finish(reason);
    });
    // Detached: the process reports through its monitors, not a join handle.
    drop(spawned?);
    Ok(addr)
}
