//! The reactor: the only module that touches `mio::Poll`.
//!
//! Each worker owns one `Poll` for its whole life. Token 0 belongs to the worker's
//! `mio::Waker` (other threads use it to interrupt the poll, see the protocol in `worker.rs`).
//! Plain threads that use coact sockets share one more `Poll`, run by a background thread
//! started the first time such a socket has to wait. When a runtime ends while sockets are
//! still registered with its workers' polls, the background thread adopts those polls (it
//! watches each one's epoll descriptor), so the sockets keep working from anywhere.
//!
//! # Sockets
//!
//! A socket is registered once, the first time it has to wait, with the `Poll` of the worker
//! running that coroutine (or with the background poll), and stays there for its whole life,
//! even if the socket then moves to a coroutine on another worker: events still arrive at the
//! first poll, which wakes the waiter wherever it lives. The registration keeps a shared
//! [`IoState`] per direction:
//!
//! * `seq` counts readiness events; `clear` is the `seq` that was current when an operation
//!   last returned `WouldBlock`. The direction is ready while `seq != clear`: an event that
//!   arrives after the failed operation started makes it ready again, so none is lost, and
//!   only `WouldBlock` (or, on a stream, a short read or write, which proves the same thing)
//!   ever clears readiness (mio is edge-triggered: we must drain until then before waiting).
//! * A waiter publishes its unparker, then re-checks `seq` under the same lock the event
//!   handler takes to find it; so either it sees the new event, or the handler sees it.
//!
//! Tokens are slab keys tagged with a generation, so an event still queued for a socket that
//! was closed (its key reused) is dropped, not delivered to the newcomer.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::park::{self, Park, Unparker};
use crate::select::Signal;
use crate::sync::lock;

/// I/O calls a worker's coroutines may complete without parking before the one making the
/// next call yields (see [`IoSlot::blocking`]).
const IO_BUDGET: u32 = 32;

thread_local! {
    /// I/O calls completed on this thread since the last budget yield.
    static IO_SPENT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Spends one unit of the I/O budget; yields the coroutine when it runs out. A connection
/// whose data is always there would otherwise never park and starve every other coroutine on
/// its worker.
///
/// Counted per thread, not per resume as the channels' budget is (`worker::spend_coop`), so a
/// busy server's connections also yield now and then although each parks on every read.
/// Spending the channels' per-resume budget here instead (which never yields such
/// connections) saved about 2 % of the echo server's instructions per message under
/// callgrind, but W5 (100 echo connections, one worker) ran about 5 % slower by the clock:
/// 8 alternations, median 53.3k against 56.0k messages/s. The yields seem to let requests
/// gather; until that is measured better, the older rule stays.
fn spend_budget() {
    let spent = IO_SPENT.with(|c| {
        let v = c.get() + 1;
        c.set(if v >= IO_BUDGET { 0 } else { v });
        v
    });
    if spent >= IO_BUDGET && crate::in_coroutine() {
        crate::yield_now();
    }
}

/// The token of the worker's waker.
pub(crate) const WAKE_TOKEN: Token = Token(0);

/// Readiness and waiters of one direction (read or write) of one socket.
pub(crate) struct Direction {
    /// Readiness events seen so far.
    seq: AtomicU64,
    /// `seq` as it was before the last operation that returned `WouldBlock`.
    clear: AtomicU64,
    /// An event said this direction is closed (end of stream, hang-up or error): from then on
    /// every operation is tried, since a short read may stop right before the end of stream,
    /// which raises no further event.
    closed: AtomicBool,
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    /// The coroutine or thread blocked in this direction (at most one per direction: the
    /// socket types are `!Sync`, and a split gives each direction its own owner).
    parked: Option<Unparker>,
    /// Selects registered for this direction.
    observers: Vec<(Arc<Signal>, usize)>,
}

impl Direction {
    pub(crate) fn new() -> Self {
        // Starts ready: a fresh socket is tried before anyone waits.
        Direction {
            seq: AtomicU64::new(1),
            clear: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            waiters: Mutex::default(),
        }
    }

    /// A snapshot to take before trying the operation.
    pub(crate) fn snapshot(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Records that the operation tried after `snapshot` returned `WouldBlock`.
    pub(crate) fn clear(&self, snapshot: u64) {
        self.clear.fetch_max(snapshot, Ordering::AcqRel);
    }

    /// Whether the direction was ready when `snapshot` was taken.
    fn ready_at(&self, snapshot: u64) -> bool {
        snapshot != self.clear.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire)
    }

    /// Whether an event arrived since the last `WouldBlock`.
    pub(crate) fn is_ready(&self) -> bool {
        self.seq.load(Ordering::Acquire) != self.clear.load(Ordering::Acquire)
    }

    fn fire(&self, closed: bool) {
        if closed {
            self.closed.store(true, Ordering::Release);
        }
        self.seq.fetch_add(1, Ordering::AcqRel);
        let parked = {
            let mut w = lock(&self.waiters);
            for (sig, index) in &w.observers {
                sig.notify(*index);
            }
            w.parked.take()
        };
        if let Some(u) = parked {
            u.unpark();
        }
    }

    /// Parks until an event newer than `snapshot` arrives or `deadline` passes.
    /// Returns `Err(TimedOut)` at the deadline.
    pub(crate) fn wait(&self, snapshot: u64, deadline: Option<Instant>) -> io::Result<()> {
        loop {
            {
                let mut w = lock(&self.waiters);
                if self.seq.load(Ordering::Acquire) != snapshot {
                    w.parked = None;
                    return Ok(());
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    w.parked = None;
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "coact: the socket operation timed out",
                    ));
                }
                w.parked = Some(park::current());
            }
            if park::park(deadline) == Park::Cancelled {
                lock(&self.waiters).parked = None;
                park::cancelled();
                // Not `Interrupted`: std's `read_exact`, `write_all` and `io::copy` retry that,
                // and a cancelled coroutine's every park returns at once.
                return Err(io::Error::other(crate::Cancelled));
            }
        }
    }

    pub(crate) fn add_observer(&self, signal: &Arc<Signal>, index: usize) {
        lock(&self.waiters).observers.push((signal.clone(), index));
    }

    pub(crate) fn remove_observer(&self, signal: &Arc<Signal>, index: usize) {
        lock(&self.waiters)
            .observers
            .retain(|(s, i)| !(Arc::ptr_eq(s, signal) && *i == index));
    }
}

/// Both directions of one socket.
pub(crate) struct IoState {
    pub(crate) read: Direction,
    pub(crate) write: Direction,
}

impl IoState {
    fn new() -> Self {
        IoState {
            read: Direction::new(),
            write: Direction::new(),
        }
    }
}

/// The socket table of one poll; shared so that a socket can deregister from any thread.
pub(crate) struct Driver {
    registry: Registry,
    table: Mutex<Slab<(u32, Arc<IoState>)>>,
    next_gen: AtomicU64,
    /// Sockets registered with this poll (the table's length, readable without its lock).
    /// Only the poll's own thread adds to it, so that thread never reads it too low; a
    /// removal on another thread may be seen late, which costs one needless poll.
    sockets: AtomicUsize,
}

impl Driver {
    fn token(key: usize, gen: u32) -> Token {
        // Key 0 is never used for sockets: token 0 is the waker's.
        Token(((key + 1) << 32) | gen as usize)
    }

    fn dispatch(&self, events: &Events) {
        // (state, read fired, read closed, write fired, write closed)
        let mut fired: Vec<(Arc<IoState>, bool, bool, bool, bool)> = Vec::new();
        {
            let table = lock(&self.table);
            for ev in events.iter() {
                let t = ev.token().0;
                if t < 1 << 32 {
                    continue; // the waker, or an adopted poll
                }
                let key = (t >> 32) - 1;
                let gen = (t & 0xffff_ffff) as u32;
                if let Some((g, state)) = table.get(key) {
                    if *g == gen {
                        let rc = ev.is_read_closed() || ev.is_error();
                        let wc = ev.is_write_closed() || ev.is_error();
                        let r = ev.is_readable() || rc;
                        let w = ev.is_writable() || wc;
                        fired.push((state.clone(), r, rc, w, wc));
                    }
                }
            }
        }
        for (state, r, rc, w, wc) in fired {
            if r {
                state.read.fire(rc);
            }
            if w {
                state.write.fire(wc);
            }
        }
    }
}

/// A socket's registration: its state, and where to deregister it.
pub(crate) struct Registration {
    driver: Arc<Driver>,
    key: usize,
    fd: RawFd,
}

impl Registration {
    /// Registers `fd` for reading and writing with the caller's poll (its worker's, or the
    /// background one for plain threads).
    fn new(fd: RawFd, state: Arc<IoState>) -> io::Result<Registration> {
        let driver = current_driver()?;
        let gen = driver.next_gen.fetch_add(1, Ordering::Relaxed) as u32;
        let key = lock(&driver.table).insert((gen, state));
        let token = Driver::token(key, gen);
        if let Err(e) = driver.registry.register(
            &mut SourceFd(&fd),
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            lock(&driver.table).remove(key);
            return Err(e);
        }
        driver.sockets.fetch_add(1, Ordering::Relaxed);
        Ok(Registration { driver, key, fd })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Deregister before the descriptor is closed (the owner closes it after this drop).
        let _ = self.driver.registry.deregister(&mut SourceFd(&self.fd));
        lock(&self.driver.table).remove(self.key);
        self.driver.sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Readiness state plus a lazily made registration: what every coact socket holds.
pub(crate) struct IoSlot {
    pub(crate) state: Arc<IoState>,
    reg: OnceLock<io::Result<Registration>>,
    fd: RawFd,
}

impl IoSlot {
    /// A slot for the socket `fd`, which must stay open for as long as the slot lives.
    pub(crate) fn new(fd: RawFd) -> Self {
        IoSlot {
            state: Arc::new(IoState::new()),
            reg: OnceLock::new(),
            fd,
        }
    }

    /// Registers the socket if it is not yet.
    pub(crate) fn ensure_registered(&self) -> io::Result<()> {
        match self
            .reg
            .get_or_init(|| Registration::new(self.fd, self.state.clone()))
        {
            Ok(_) => Ok(()),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }

    /// One direction's readiness, for a `Select` to wait on: registers the socket first (an
    /// error shows up at the next I/O call instead).
    pub(crate) fn select_direction(&self, write: bool) -> &Direction {
        let _ = self.ensure_registered();
        self.direction(write)
    }

    fn direction(&self, write: bool) -> &Direction {
        if write {
            &self.state.write
        } else {
            &self.state.read
        }
    }

    /// Runs a non-blocking operation in one direction until it does not return `WouldBlock`,
    /// waiting for readiness in between; `Interrupted` retries. Spends the I/O budget, so a
    /// coroutine that never has to wait still lets the others on its worker run.
    pub(crate) fn blocking<T>(
        &self,
        write: bool,
        deadline: Option<Instant>,
        op: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        self.blocking_until(write, deadline, false, op, |_| false)
    }

    /// [`blocking`](IoSlot::blocking) for a stream read or write of `len > 0` bytes, which
    /// also treats a short transfer as the end of readiness, as `WouldBlock` would be.
    ///
    /// A read that returns fewer bytes than asked emptied the socket's receive queue, and a
    /// write that took fewer than offered filled its send queue; with edge-triggered polling,
    /// more data (or room) arriving after that raises a new event. So the next call parks
    /// until that event instead of paying a system call only to hear `WouldBlock`. This also
    /// makes a connection whose peer answers instantly wait for its event like the others, in
    /// poll order, rather than run ahead of every other connection on its worker.
    /// A socket that is not registered yet is always tried (it has no events to wait for).
    pub(crate) fn stream_blocking(
        &self,
        write: bool,
        deadline: Option<Instant>,
        len: usize,
        op: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.blocking_until(write, deadline, len > 0, op, |&n| n > 0 && n < len)
    }

    /// The loop of both: `short` says which results also end readiness; with `skip_drained`,
    /// a registered socket whose direction is known drained is not tried before an event.
    fn blocking_until<T>(
        &self,
        write: bool,
        deadline: Option<Instant>,
        skip_drained: bool,
        mut op: impl FnMut() -> io::Result<T>,
        short: impl Fn(&T) -> bool,
    ) -> io::Result<T> {
        let dir = self.direction(write);
        spend_budget();
        loop {
            let snap = dir.snapshot();
            if skip_drained && !dir.ready_at(snap) && self.reg.get().is_some() {
                dir.wait(snap, deadline)?;
                continue;
            }
            match op() {
                Ok(v) if short(&v) => {
                    dir.clear(snap);
                    return Ok(v);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    dir.clear(snap);
                    self.ensure_registered()?;
                    dir.wait(snap, deadline)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// [`nonblocking`](IoSlot::nonblocking) for a stream read or write of `len` bytes: always
    /// makes the call (it reports what is there now), and records a short transfer as the end
    /// of readiness (see [`stream_blocking`](IoSlot::stream_blocking)).
    pub(crate) fn stream_nonblocking(
        &self,
        write: bool,
        len: usize,
        op: impl FnOnce() -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.nonblocking_until(write, op, |&n| n > 0 && n < len)
    }

    /// Runs a non-blocking operation once, recording `WouldBlock`.
    pub(crate) fn nonblocking<T>(
        &self,
        write: bool,
        op: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        self.nonblocking_until(write, op, |_| false)
    }

    /// The body of both: `short` says which results also end readiness.
    fn nonblocking_until<T>(
        &self,
        write: bool,
        op: impl FnOnce() -> io::Result<T>,
        short: impl Fn(&T) -> bool,
    ) -> io::Result<T> {
        let dir = self.direction(write);
        let snap = dir.snapshot();
        let r = op();
        match &r {
            Ok(v) if short(v) => dir.clear(snap),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => dir.clear(snap),
            _ => {}
        }
        r
    }
}

/// The driver of the caller's poll.
fn current_driver() -> io::Result<Arc<Driver>> {
    if let Some(d) = crate::worker::with_local(|l| l.reactor.driver.clone()) {
        return Ok(d);
    }
    background_driver()
}

/// The background poll: serves sockets used from plain threads, and adopts the polls of
/// workers that exited while sockets were still registered with them.
struct Background {
    driver: Arc<Driver>,
    adopt: Mutex<std::sync::mpsc::Sender<Reactor>>,
    waker: mio::Waker,
}

/// Adopted polls get tokens `1 + index`, between the waker's 0 and the sockets' `1 << 32`.
const ADOPTED_BASE: usize = 1;

fn background() -> io::Result<&'static Background> {
    static BG: OnceLock<Result<Background, String>> = OnceLock::new();
    let r = BG.get_or_init(|| {
        let reactor = Reactor::new().map_err(|e| e.to_string())?;
        let driver = reactor.driver.clone();
        let waker = mio::Waker::new(reactor.registry(), WAKE_TOKEN).map_err(|e| e.to_string())?;
        let (tx, rx) = std::sync::mpsc::channel::<Reactor>();
        std::thread::Builder::new()
            .name("coact-io".into())
            .spawn(move || background_loop(reactor, rx))
            .map_err(|e| e.to_string())?;
        Ok(Background {
            driver,
            adopt: Mutex::new(tx),
            waker,
        })
    });
    r.as_ref().map_err(|e| io::Error::other(e.clone()))
}

fn background_loop(reactor: Reactor, adopt: std::sync::mpsc::Receiver<Reactor>) {
    let mut adopted: Vec<Reactor> = Vec::new();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = reactor.poll.borrow_mut().poll(&mut events, None) {
            if e.kind() != io::ErrorKind::Interrupted {
                panic!("coact: the background I/O poll failed: {e}");
            }
        }
        let mut due = Vec::new();
        for ev in events.iter() {
            let t = ev.token().0;
            if t == WAKE_TOKEN.0 {
                while let Ok(r) = adopt.try_recv() {
                    let token = Token(ADOPTED_BASE + adopted.len());
                    let fd = r.poll.borrow().as_raw_fd();
                    if reactor
                        .registry()
                        .register(&mut SourceFd(&fd), token, Interest::READABLE)
                        .is_ok()
                    {
                        // Events that arrived before the registration are not signalled again.
                        r.drain();
                        adopted.push(r);
                    }
                }
            } else if (ADOPTED_BASE..1 << 32).contains(&t) {
                due.push(t - ADOPTED_BASE);
            }
        }
        reactor.driver.dispatch(&events);
        for i in due {
            adopted[i].drain();
        }
    }
}

/// The driver for sockets used outside any worker.
fn background_driver() -> io::Result<Arc<Driver>> {
    background().map(|b| b.driver.clone())
}

/// One poll, its event buffer and its socket table.
pub(crate) struct Reactor {
    poll: RefCell<Poll>,
    events: RefCell<Events>,
    pub(crate) driver: Arc<Driver>,
}

impl Reactor {
    /// A new poll with room for 1,024 events per call.
    pub(crate) fn new() -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        Ok(Reactor {
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(1024)),
            driver: Arc::new(Driver {
                registry,
                table: Mutex::new(Slab::new()),
                next_gen: AtomicU64::new(1),
                sockets: AtomicUsize::new(0),
            }),
        })
    }

    /// The registry, to create the waker.
    pub(crate) fn registry(&self) -> &Registry {
        &self.driver.registry
    }

    /// Called by a worker as it exits: if sockets are still registered with its poll, the
    /// background thread takes the poll over and keeps serving them.
    pub(crate) fn hand_over(&self) {
        if lock(&self.driver.table).is_empty() {
            return;
        }
        let Ok(bg) = background() else { return };
        let Ok(fresh) = Poll::new() else { return };
        let adopted = Reactor {
            poll: RefCell::new(self.poll.replace(fresh)),
            events: RefCell::new(Events::with_capacity(1024)),
            driver: self.driver.clone(),
        };
        if lock(&bg.adopt).send(adopted).is_ok() {
            let _ = bg.waker.wake();
        }
    }

    /// Dispatches everything pending, without waiting (for an adopted poll).
    fn drain(&self) {
        loop {
            let mut events = self.events.borrow_mut();
            if self
                .poll
                .borrow_mut()
                .poll(&mut events, Some(Duration::ZERO))
                .is_err()
            {
                return;
            }
            if events.is_empty() {
                return;
            }
            self.driver.dispatch(&events);
            if events.iter().count() < events.capacity() {
                return;
            }
        }
    }

    /// Waits for events up to `timeout` (`None`: until one arrives) and dispatches them.
    ///
    /// A poll that would not wait, with no socket registered, returns at once without the
    /// system call: only sockets can have events for it (the worker's waker matters only to a
    /// poll that sleeps), and a busy worker polls like that every few dozen resumes.
    pub(crate) fn poll(&self, timeout: Option<Duration>) {
        if timeout == Some(Duration::ZERO) && self.driver.sockets.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut events = self.events.borrow_mut();
        match self.poll.borrow_mut().poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("coact: the I/O poll failed: {e}"),
        }
        if !events.is_empty() {
            self.driver.dispatch(&events);
        }
    }
}
