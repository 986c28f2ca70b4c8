//! TCP and UDP sockets shaped like `std::net`'s, and Unix domain stream sockets in [`unix`],
//! that park the calling coroutine instead of blocking its worker (on a plain thread they
//! block the thread, as std's do).
//!
//! ```
//! use std::io::{Read, Write};
//! use coact_runtime::net::{TcpListener, TcpStream};
//!
//! coact_runtime::run(|| {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let server = coact_runtime::spawn(move || {
//!         let (mut conn, _) = listener.accept().unwrap();
//!         let mut buf = [0u8; 64];
//!         let n = conn.read(&mut buf).unwrap(); // returns as soon as any bytes are there
//!         conn.write_all(&buf[..n]).unwrap();
//!     });
//!     let mut client = TcpStream::connect(addr).unwrap();
//!     client.write_all(b"hello").unwrap();
//!     let mut buf = [0u8; 5];
//!     client.read_exact(&mut buf).unwrap();
//!     assert_eq!(&buf, b"hello");
//!     server.join().unwrap();
//! });
//! ```
//!
//! # The read contract
//!
//! `read` returns as soon as at least one byte is available (or 0 at end of stream); it never
//! waits to fill the buffer. It parks only once the socket is known to be drained: it said
//! `WouldBlock`, or the last read returned fewer bytes than asked (then the next read waits
//! for the next readiness event instead of making a system call only to hear `WouldBlock`;
//! end of stream and errors stay reachable, see `reactor.rs`). Writes follow the same rule.
//! The non-blocking calls (`try_read`, `try_write`, `try_recv_from`...) always go to the
//! socket and can never reach a parking call.
//!
//! # Sharing
//!
//! A socket is `Send` (hand an accepted stream to another coroutine, on any worker) but not
//! `Sync`: one direction has one waiter slot. To read and write one connection from two
//! coroutines at once, [`split`](TcpStream::split) it into a [`ReadHalf`] and a [`WriteHalf`],
//! or [`try_clone`](TcpStream::try_clone) it, which duplicates the descriptor and gives the
//! clone its own registration. To close a connection from anywhere (a server kicking a
//! client whose coroutine is parked in a read, say), take a [`Closer`]: it costs no
//! descriptor and does not keep the connection open.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::reactor::{Direction, IoSlot};

pub use crate::addr::{lookup_host, ToSocketAddrs};

#[macro_use]
mod shared;
pub mod unix;

/// The accept backlog of every listener: a burst of thousands of connects is queued by the
/// kernel (capped by `net.core.somaxconn`) instead of being refused.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Marks a type as usable from one place at a time.
pub(crate) type NotSync = PhantomData<Cell<()>>;

/// A timeout setting: nanoseconds, 0 for none.
#[derive(Default)]
pub(crate) struct Timeout(AtomicU64);

impl Timeout {
    pub(crate) fn set(&self, d: Option<Duration>) -> io::Result<()> {
        let ns = match d {
            Some(d) if d.is_zero() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "cannot set a 0 duration timeout",
                ))
            }
            Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            None => 0,
        };
        self.0.store(ns, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.get().and_then(|d| Instant::now().checked_add(d))
    }
}

/// What a stream (TCP or Unix) and its halves share. `slot` is declared before `io` so that
/// the registration is dropped (deregistered) before the descriptor is closed.
pub(crate) struct StreamInner<S> {
    pub(crate) slot: IoSlot,
    pub(crate) io: S,
    pub(crate) read_timeout: Timeout,
    pub(crate) write_timeout: Timeout,
}

/// A TCP stream's shared part.
type TcpInner = StreamInner<mio::net::TcpStream>;

impl<S: AsRawFd> StreamInner<S> {
    /// Registers nothing yet: the slot registers on first need.
    pub(crate) fn new(io: S) -> Arc<StreamInner<S>> {
        Arc::new(StreamInner {
            slot: IoSlot::new(io.as_raw_fd()),
            io,
            read_timeout: Timeout::default(),
            write_timeout: Timeout::default(),
        })
    }
}

/// Reading, for any stream whose shared reference reads (sockets, a pipe's read end).
impl<S> StreamInner<S>
where
    for<'a> &'a S: Read,
{
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.slot
            .stream_blocking(false, self.read_timeout.deadline(), len, || {
                (&self.io).read(buf)
            })
    }

    /// Reads what is there now; never parks.
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.slot
            .stream_nonblocking(false, buf.len(), || (&self.io).read(buf))
    }
}

/// Writing, for any stream whose shared reference writes (sockets, a pipe's write end).
impl<S> StreamInner<S>
where
    for<'a> &'a S: Write,
{
    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.slot
            .stream_blocking(true, self.write_timeout.deadline(), buf.len(), || {
                (&self.io).write(buf)
            })
    }

    /// Writes what fits now; never parks.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.slot
            .stream_nonblocking(true, buf.len(), || (&self.io).write(buf))
    }
}

/// Shutting a stream down through a [`Closer`], whatever its kind.
pub(crate) trait Shut: Send + Sync {
    fn shut(&self, how: Shutdown) -> io::Result<()>;
}

/// A TCP connection.
pub struct TcpStream {
    inner: Arc<TcpInner>,
    _not_sync: NotSync,
}

impl TcpStream {
    /// Connects to the first of `addr`'s addresses that accepts. A refused connection is an
    /// error. A host name is looked up on the runtime's offload pool (see [`lookup_host`]).
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| TcpStream::connect_deadline(a, None))
    }

    /// Connects to `addr`, giving up after `timeout`.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_deadline(*addr, Instant::now().checked_add(timeout))
    }

    fn connect_deadline(addr: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let s = TcpStream::from_mio(mio::net::TcpStream::connect(addr)?);
        let io = &s.inner.io;
        s.inner.slot.blocking(true, deadline, || {
            if let Some(e) = io.take_error()? {
                return Err(e);
            }
            match io.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    Err(io::ErrorKind::WouldBlock.into())
                }
                Err(e) => Err(e),
            }
        })?;
        Ok(s)
    }

    /// Sets `TCP_NODELAY` (no Nagle delay for small writes).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.io.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.io.nodelay()
    }

    /// Reads without removing the data from the socket; parks until some is there.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = self.inner.read_timeout.deadline();
        self.inner
            .slot
            .blocking(false, deadline, || self.inner.io.peek(buf))
    }
}

stream_api!(
    TcpStream,
    ReadHalf,
    WriteHalf,
    mio::net::TcpStream,
    std::net::TcpStream,
    SocketAddr
);

/// Shuts a connection down from anywhere: [`TcpStream::closer`], [`ReadHalf::closer`] or
/// [`WriteHalf::closer`].
///
/// It refers to the connection without owning it: it costs no descriptor (where a
/// [`try_clone`](TcpStream::try_clone) kept for the purpose would cost one per connection),
/// and once the stream and both its halves are dropped the descriptor closes as usual and the
/// handle does nothing. A shutdown wakes the connection's parked reader (it reads end of
/// stream) and fails its writes, whichever coroutines or threads hold the halves. It is `Send`,
/// `Sync` and cheap to clone.
///
/// ```
/// use std::io::Read;
/// use std::net::Shutdown;
/// use coact_runtime::net::{TcpListener, TcpStream};
///
/// coact_runtime::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
///     let (mut conn, _) = listener.accept().unwrap();
///     let closer = conn.closer();
///     let reader = coact_runtime::spawn(move || conn.read(&mut [0u8; 16]).unwrap());
///     closer.shutdown(Shutdown::Both).unwrap(); // the parked read returns 0
///     assert_eq!(reader.join().unwrap(), 0);
/// });
/// ```
#[derive(Clone)]
pub struct Closer {
    inner: Weak<dyn Shut>,
}

impl Closer {
    pub(crate) fn of<S: Shut + 'static>(inner: &Arc<S>) -> Closer {
        let inner: Arc<dyn Shut> = inner.clone();
        Closer {
            inner: Arc::downgrade(&inner),
        }
    }

    /// Shuts down the read side, the write side or both, if the connection is still open
    /// (its stream or a half of it is alive); `Ok(())` and nothing done otherwise.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self.inner.upgrade() {
            // The upgraded reference keeps the descriptor open for the call.
            Some(inner) => inner.shut(how),
            None => Ok(()),
        }
    }

    /// Whether the connection's descriptor is still open.
    pub fn is_open(&self) -> bool {
        self.inner.strong_count() > 0
    }
}

impl fmt::Debug for Closer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closer")
            .field("open", &self.is_open())
            .finish()
    }
}

/// The reading half of a [`TcpStream`]; see [`TcpStream::split`].
pub struct ReadHalf {
    inner: Arc<TcpInner>,
    _not_sync: NotSync,
}

/// The writing half of a [`TcpStream`]; see [`TcpStream::split`].
pub struct WriteHalf {
    inner: Arc<TcpInner>,
    _not_sync: NotSync,
}

/// A TCP listener.
pub struct TcpListener {
    slot: IoSlot,
    io: mio::net::TcpListener,
    _not_sync: NotSync,
}

impl TcpListener {
    /// Binds to the first of `addr`'s addresses that works, with a backlog of
    /// [`LISTEN_BACKLOG`].
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |a| {
            let std = std::net::TcpListener::bind(a)?;
            std.set_nonblocking(true)?;
            raise_backlog(&std)?;
            let io = mio::net::TcpListener::from_std(std);
            Ok(TcpListener {
                slot: IoSlot::new(io.as_raw_fd()),
                io,
                _not_sync: PhantomData,
            })
        })
    }
}

listener_api!(TcpListener, TcpStream, Incoming, SocketAddr);

/// Accepted connections; see [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

/// A UDP socket.
pub struct UdpSocket {
    slot: IoSlot,
    io: mio::net::UdpSocket,
    read_timeout: Timeout,
    write_timeout: Timeout,
    _not_sync: NotSync,
}

impl UdpSocket {
    /// Binds to the first of `addr`'s addresses that works.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |a| {
            let io = mio::net::UdpSocket::bind(a)?;
            Ok(UdpSocket {
                slot: IoSlot::new(io.as_raw_fd()),
                io,
                read_timeout: Timeout::default(),
                write_timeout: Timeout::default(),
                _not_sync: PhantomData,
            })
        })
    }

    /// Waits for a datagram; returns its size and sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.slot.blocking(false, self.read_timeout.deadline(), || {
            self.io.recv_from(buf)
        })
    }

    /// Takes a datagram if one is there now. Never parks.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.slot.nonblocking(false, || self.io.recv_from(buf))
    }

    /// Sends a datagram to `addr`.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let addr = addr
            .resolve()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to send to"))?;
        self.slot.blocking(true, self.write_timeout.deadline(), || {
            self.io.send_to(buf, addr)
        })
    }

    /// Sets the default peer for [`send`](Self::send) and [`recv`](Self::recv).
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| self.io.connect(a))
    }

    /// Sends a datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.slot
            .blocking(true, self.write_timeout.deadline(), || self.io.send(buf))
    }

    /// Waits for a datagram from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.slot
            .blocking(false, self.read_timeout.deadline(), || self.io.recv(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.peer_addr()
    }

    /// Makes blocking receives give up with `TimedOut` after `d`.
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.read_timeout.set(d)
    }

    /// Makes blocking sends give up with `TimedOut` after `d`.
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.write_timeout.set(d)
    }

    pub(crate) fn read_direction(&self) -> &Direction {
        self.slot.select_direction(false)
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local_addr().ok())
            .finish()
    }
}

/// Tries `f` on each address in turn; returns the first success or the last error.
fn each_addr<A: ToSocketAddrs, T>(
    addr: A,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.resolve()? {
        match f(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to use")))
}

/// Calls `listen` again with a larger backlog (Linux updates the backlog of a listening
/// socket in place); std's `bind` uses 128.
fn raise_backlog(l: &std::net::TcpListener) -> io::Result<()> {
    // SAFETY: `listen` on a valid, open socket descriptor (borrowed from `l` for the call).
    let r = unsafe { libc::listen(l.as_raw_fd(), LISTEN_BACKLOG) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
