//! Unix signals received like messages: a server waits for `SIGTERM` or `SIGINT` with a
//! blocking call that parks only its coroutine, then shuts down cleanly.
//!
//! A [`Signals`] watches a set of signals from the moment it is made. Its
//! [`recv`](Signals::recv) parks the calling coroutine (or blocks a plain thread) until one of
//! them arrives; [`try_recv`](Signals::try_recv) never parks; a [`Select`](crate::select::Select)
//! can wait for it next to channels and sockets ([`Select::readable`](crate::select::Select::readable)).
//! The signal handler itself only sets a flag and writes a byte to a socket pair (the
//! self-pipe), so no user code ever runs inside a handler.
//!
//! ```
//! use coact_runtime::signal::{self, Signals, SIGUSR1};
//!
//! coact_runtime::run(|| {
//!     let signals = Signals::new([SIGUSR1])?;
//!     let waiter = coact_runtime::spawn(move || signals.recv());
//!     signal::raise(SIGUSR1)?; // as `kill -USR1 <pid>` would
//!     assert_eq!(waiter.join().unwrap(), Ok(SIGUSR1));
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # What to know
//!
//! * **Signals coalesce.** Like the kernel's own pending set, a signal raised several times
//!   before it is received is received once. Several different signals pending at once are
//!   received in signal-number order, not in the order they arrived.
//! * **The default action comes back.** From [`Signals::new`] (or
//!   [`add_signal`](Signals::add_signal)) on, the signal no longer takes its default action
//!   (`SIGINT` and `SIGTERM` no longer end the process). Once no `Signals` watches it any
//!   more, its default action is taken again: Ctrl-C ends a program that watched `SIGINT`
//!   only for a while. (The process-wide handler stays installed, as the registry it comes
//!   from requires, and runs the default action itself, so a signal that arrives then ends
//!   the process as the signal, exactly as without a handler.) Two caveats: if another
//!   library of the process also handles the signal through `signal-hook`, its handler still
//!   runs, but once no `Signals` watches the signal the default action runs too (for
//!   `SIGINT`, the process ends); and real-time signals (`SIGRTMIN` and up), whose defaults
//!   `signal-hook` does not know, stay ignored once nothing watches them.
//! * **Every watcher hears it.** Several `Signals` may watch the same signal; each receives it.
//! * **The handler runs on the interrupted stack**, a coroutine's included: it is small (it
//!   sets a flag and writes a byte), but a coroutine running within a few kilobytes of the end
//!   of its stack when a signal lands overflows it (reported as any stack overflow).
//! * Signals that cannot be caught or that report a fault in the receiving thread (`SIGKILL`,
//!   `SIGSTOP`, `SIGILL`, `SIGFPE`, `SIGSEGV`) are refused with `InvalidInput`.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::raw::c_int;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signal_hook::iterator::backend::{Handle as DeliveryHandle, SignalDelivery};
use signal_hook::iterator::exfiltrator::SignalOnly;

use crate::reactor::{Direction, IoSlot};
use crate::sync::lock;
use crate::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};

pub use libc::{
    SIGALRM, SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGTSTP, SIGUSR1,
    SIGUSR2, SIGWINCH,
};

/// Watches a set of signals and receives them like a channel's messages.
///
/// `Send` but not `Sync`: one coroutine or thread receives at a time. Its
/// [`handle`](Signals::handle) is `Sync` and ends a wait from anywhere.
pub struct Signals {
    /// Readiness of the self-pipe's read end. Declared before `delivery`, which owns that
    /// descriptor, so that the registration is dropped before the descriptor is closed.
    slot: IoSlot,
    delivery: RefCell<SignalDelivery<StdUnixStream, SignalOnly>>,
    /// The delivery's handle, taken once (each `handle()` call clones three `Arc`s).
    control: DeliveryHandle,
    /// Signals collected from the delivery but not yet handed out (one collection can find
    /// several).
    ready: RefCell<VecDeque<c_int>>,
    /// The signals it watches, in the process-wide count (shared with its handles).
    watched: Arc<Mutex<Watched>>,
}

/// Signal numbers this module accepts are below this.
const SIGNALS: usize = 128;

/// Per signal: true while no [`Signals`] watches it, which lets the conditional default
/// action (registered the first time one did) run.
static UNWATCHED: [AtomicBool; SIGNALS] = [const { AtomicBool::new(false) }; SIGNALS];

/// The process-wide count of live [`Signals`] watching each signal.
static WATCHERS: Mutex<Watchers> = Mutex::new(Watchers {
    count: [0; SIGNALS],
    armed: [false; SIGNALS],
});

struct Watchers {
    count: [u32; SIGNALS],
    /// The conditional default action is registered (once per signal, for good).
    armed: [bool; SIGNALS],
}

/// The signals one [`Signals`] watches (a bit each); `dropped` once it is, after which
/// a handle adds none.
#[derive(Default)]
struct Watched {
    mask: u128,
    dropped: bool,
}

impl Watched {
    /// Counts `sig` as watched by this `Signals` (before its handler is added, so that the
    /// default action never runs for a signal that is being watched). False if it already
    /// was, or the `Signals` is gone.
    fn watch(&mut self, sig: c_int) -> io::Result<bool> {
        let bit = 1u128 << sig;
        if self.dropped || self.mask & bit != 0 {
            return Ok(false);
        }
        let i = sig as usize;
        let mut all = lock(&WATCHERS);
        if !all.armed[i] {
            // Unknown to signal-hook's table (the real-time signals): no default to restore.
            if signal_hook::low_level::signal_name(sig).is_some() {
                signal_hook::flag::register_conditional_default(sig, &UNWATCHED[i])?;
            }
            all.armed[i] = true;
        }
        all.count[i] += 1;
        UNWATCHED[i].store(false, Ordering::SeqCst);
        self.mask |= bit;
        Ok(true)
    }

    /// Stops counting `sig` for this `Signals`; the last watcher gone, its default is back.
    fn unwatch(&mut self, sig: c_int) {
        let bit = 1u128 << sig;
        if self.mask & bit == 0 {
            return;
        }
        self.mask &= !bit;
        let i = sig as usize;
        let mut all = lock(&WATCHERS);
        all.count[i] -= 1;
        if all.count[i] == 0 {
            UNWATCHED[i].store(true, Ordering::SeqCst);
        }
    }

    /// Stops counting every signal (the `Signals` is dropped).
    fn unwatch_all(&mut self) {
        self.dropped = true;
        for sig in 1..SIGNALS as c_int {
            self.unwatch(sig);
        }
    }
}

/// Adds `sig` to a `Signals` through its delivery's handle, counted in `watched`.
fn add_watched(watched: &Mutex<Watched>, control: &DeliveryHandle, sig: c_int) -> io::Result<()> {
    check(sig)?;
    let mut w = lock(watched);
    if w.watch(sig)? {
        if let Err(e) = control.add_signal(sig) {
            w.unwatch(sig);
            return Err(e);
        }
    }
    Ok(())
}

/// Checks that `sig` is a signal this module can watch.
fn check(sig: c_int) -> io::Result<()> {
    if !(1..128).contains(&sig) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("coact: {sig} is not a signal number"),
        ));
    }
    if signal_hook::consts::FORBIDDEN.contains(&sig) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "coact: signal {sig} ({}) cannot be handled",
                name(sig).unwrap_or("?")
            ),
        ));
    }
    Ok(())
}

impl Signals {
    /// Starts watching `signals`: from now on each of them is queued here instead of taking
    /// its default action (see the [module](self) notes).
    ///
    /// Fails with `InvalidInput` for a number that is not a signal or for a signal that
    /// cannot be handled (`SIGKILL`, `SIGSTOP`, `SIGILL`, `SIGFPE`, `SIGSEGV`); if any fails,
    /// none is watched.
    pub fn new<I>(signals: I) -> io::Result<Signals>
    where
        I: IntoIterator,
        I::Item: Borrow<c_int>,
    {
        let signals: Vec<c_int> = signals.into_iter().map(|s| *s.borrow()).collect();
        for &s in &signals {
            check(s)?;
        }
        let mut watched = Watched::default();
        let made = Self::make(&signals, &mut watched);
        if made.is_err() {
            watched.unwatch_all();
        }
        let (slot, delivery) = made?;
        let signals = Signals {
            slot,
            control: delivery.handle(),
            delivery: RefCell::new(delivery),
            ready: RefCell::new(VecDeque::new()),
            watched: Arc::new(Mutex::new(watched)),
        };
        // A fresh slot counts as ready (a socket is tried before anyone waits); an empty
        // self-pipe says it is not, so a `Select` does not wake for nothing the first time.
        signals.mark_drained();
        Ok(signals)
    }

    /// Counts `signals` as watched, then installs their handlers and the self-pipe.
    fn make(
        signals: &[c_int],
        watched: &mut Watched,
    ) -> io::Result<(IoSlot, SignalDelivery<StdUnixStream, SignalOnly>)> {
        for &s in signals {
            watched.watch(s)?;
        }
        let (read, write) = StdUnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let slot = IoSlot::new(read.as_raw_fd());
        let delivery = SignalDelivery::with_pipe(read, write, SignalOnly, signals)?;
        // Registering now makes a failure (say, the descriptor limit) this call's error
        // rather than a receive's later.
        slot.ensure_registered()?;
        Ok((slot, delivery))
    }

    /// Records that the self-pipe is empty (which `pending` just made it) by reading it once
    /// more through the slot: a `WouldBlock` clears the slot's readiness, so a `Select` that
    /// keeps this `Signals` does not wake for the bytes already accounted for. A byte read
    /// here belongs to a signal whose flag stays set for the next receive, and leaves the
    /// readiness set.
    fn mark_drained(&self) {
        let delivery = self.delivery.borrow();
        let _ = self.slot.nonblocking(false, || {
            let mut buf = [0u8; 64];
            delivery.get_read().read(&mut buf)
        });
    }

    /// Watches one more signal (nothing changes if it is watched already). Errors as
    /// [`new`](Signals::new)'s.
    pub fn add_signal(&self, sig: c_int) -> io::Result<()> {
        add_watched(&self.watched, &self.control, sig)
    }

    /// A handle that closes this `Signals` or adds signals to it from any coroutine or
    /// thread.
    pub fn handle(&self) -> SignalsHandle {
        SignalsHandle {
            inner: self.control.clone(),
            watched: self.watched.clone(),
        }
    }

    /// Whether [`SignalsHandle::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.control.is_closed()
    }

    /// Takes one signal that has arrived, without waiting: `Ok(sig)` if one is pending,
    /// `Err(Empty)` if none is, `Err(Disconnected)` once closed and drained. Never parks.
    pub fn try_recv(&self) -> Result<c_int, TryRecvError> {
        match self.slot.nonblocking(false, || self.collect()) {
            Ok(Some(sig)) => {
                self.drained_after();
                Ok(sig)
            }
            Ok(None) => Err(TryRecvError::Disconnected),
            Err(_) => Err(TryRecvError::Empty),
        }
    }

    /// Waits for a signal: parks the calling coroutine, or blocks a plain thread, until one
    /// arrives. `Err(RecvError)` once the `Signals` is [closed](SignalsHandle::close) and
    /// no signal is left.
    pub fn recv(&self) -> Result<c_int, RecvError> {
        self.recv_until(None).map_err(|_| RecvError)
    }

    /// [`recv`](Signals::recv) that gives up with `Err(Timeout)` after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<c_int, RecvTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.recv_until(Some(deadline)),
            None => self.recv_until(None),
        }
    }

    /// [`recv`](Signals::recv) that gives up with `Err(Timeout)` at `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<c_int, RecvTimeoutError> {
        self.recv_until(Some(deadline))
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<c_int, RecvTimeoutError> {
        match self.slot.blocking(false, deadline, || self.collect()) {
            Ok(Some(sig)) => {
                self.drained_after();
                Ok(sig)
            }
            Ok(None) => Err(RecvTimeoutError::Disconnected),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(RecvTimeoutError::Timeout),
            // The wait was cancelled while this coroutine was already unwinding (the runtime
            // is ending): there is nothing left to wait for.
            Err(_) => Err(RecvTimeoutError::Disconnected),
        }
    }

    /// A blocking iterator over arriving signals; it ends when the `Signals` is closed.
    pub fn iter(&self) -> Iter<'_> {
        Iter { signals: self }
    }

    /// An iterator over the signals that have arrived; never parks.
    pub fn try_iter(&self) -> TryIter<'_> {
        TryIter { signals: self }
    }

    /// After handing out a signal: if it was the last one collected, the self-pipe was
    /// emptied on the way (see [`mark_drained`](Signals::mark_drained)).
    fn drained_after(&self) {
        if self.ready.borrow().is_empty() {
            self.mark_drained();
        }
    }

    /// One signal, if one is there: `Ok(Some(sig))`; `Ok(None)` once closed with nothing
    /// left; `WouldBlock` otherwise (which, through the slot, marks the self-pipe drained).
    ///
    /// The handler sets the signal's flag before it writes its byte, and `pending` empties
    /// the self-pipe before it reads the flags, so a signal whose byte this call consumed is
    /// always among the flags it reads; a byte written after the pipe was emptied raises a
    /// new readiness event, which wakes the next wait.
    fn collect(&self) -> io::Result<Option<c_int>> {
        let mut ready = self.ready.borrow_mut();
        if ready.is_empty() {
            let mut delivery = self.delivery.borrow_mut();
            ready.extend(delivery.pending());
            if ready.is_empty() {
                if self.control.is_closed() {
                    return Ok(None);
                }
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        Ok(ready.pop_front())
    }

    pub(crate) fn read_direction(&self) -> &Direction {
        self.slot.select_direction(false)
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        lock(&self.watched).unwatch_all();
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl<'a> IntoIterator for &'a Signals {
    type Item = c_int;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The blocking iterator of [`Signals::iter`].
#[derive(Debug)]
pub struct Iter<'a> {
    signals: &'a Signals,
}

impl Iterator for Iter<'_> {
    type Item = c_int;
    fn next(&mut self) -> Option<c_int> {
        self.signals.recv().ok()
    }
}

/// The non-blocking iterator of [`Signals::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a> {
    signals: &'a Signals,
}

impl Iterator for TryIter<'_> {
    type Item = c_int;
    fn next(&mut self) -> Option<c_int> {
        self.signals.try_recv().ok()
    }
}

/// Controls a [`Signals`] from any coroutine or thread: [`close`](SignalsHandle::close) ends
/// its waits. Cheap to clone.
#[derive(Clone)]
pub struct SignalsHandle {
    inner: DeliveryHandle,
    watched: Arc<Mutex<Watched>>,
}

impl SignalsHandle {
    /// Closes the `Signals`: a receive parked on it, and every later one, returns an error
    /// once the signals that already arrived are taken. Signals stay watched (their default
    /// actions do not come back) until the `Signals` is dropped.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether [`close`](SignalsHandle::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Watches one more signal; see [`Signals::add_signal`].
    pub fn add_signal(&self, sig: c_int) -> io::Result<()> {
        add_watched(&self.watched, &self.inner, sig)
    }
}

impl fmt::Debug for SignalsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalsHandle")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Sends `sig` to the calling process (`raise(3)`): what `kill -SIG <pid>` does from
/// outside. Handy in tests.
pub fn raise(sig: c_int) -> io::Result<()> {
    signal_hook::low_level::raise(sig)
}

/// The name of signal `sig` (`"SIGTERM"`), if it has one.
///
/// ```
/// use coact_runtime::signal::{name, SIGTERM};
/// assert_eq!(name(SIGTERM), Some("SIGTERM"));
/// assert_eq!(name(0), None);
/// ```
pub fn name(sig: c_int) -> Option<&'static str> {
    signal_hook::low_level::signal_name(sig)
}
