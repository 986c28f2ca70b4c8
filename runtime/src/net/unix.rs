//! Unix domain stream sockets shaped like `std::os::unix::net`'s, with the same contract as
//! coact's TCP sockets: blocking calls park the calling coroutine (or block a plain thread),
//! `read` returns as soon as any bytes are there, `try_*` calls never park, a socket is `Send`
//! but not `Sync`, and [`split`](UnixStream::split), [`try_clone`](UnixStream::try_clone) and
//! [`closer`](UnixStream::closer) work as they do for [`TcpStream`](super::TcpStream).
//!
//! ```
//! use std::io::{Read, Write};
//! use coact_runtime::net::unix::{UnixListener, UnixStream};
//!
//! let dir = std::env::temp_dir().join(format!("coact-unix-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("echo.sock");
//! let _ = std::fs::remove_file(&path);
//! coact_runtime::run(move || {
//!     let listener = UnixListener::bind(&path).unwrap();
//!     let server = coact_runtime::spawn(move || {
//!         let (mut conn, _) = listener.accept().unwrap();
//!         let mut buf = [0u8; 64];
//!         let n = conn.read(&mut buf).unwrap();
//!         conn.write_all(&buf[..n]).unwrap();
//!     });
//!     let mut client = UnixStream::connect(&path).unwrap();
//!     client.write_all(b"hello").unwrap();
//!     let mut buf = [0u8; 5];
//!     client.read_exact(&mut buf).unwrap();
//!     assert_eq!(&buf, b"hello");
//!     server.join().unwrap();
//! });
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Closer, NotSync, Shut, StreamInner};
use crate::reactor::{Direction, IoSlot};

/// A Unix stream's shared part.
type UnixInner = StreamInner<mio::net::UnixStream>;

/// A connected Unix domain stream socket.
pub struct UnixStream {
    inner: Arc<UnixInner>,
    _not_sync: NotSync,
}

impl UnixStream {
    /// Connects to the socket bound at `path`. When the listener's backlog is full (the
    /// kernel refuses a non-blocking connect then), the connect waits for room as std's does,
    /// on the runtime's [offload pool](crate::offload()), so only the calling coroutine waits.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let path = path.as_ref();
        match mio::net::UnixStream::connect(path) {
            Ok(io) => Ok(UnixStream::from_mio(io)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let path = path.to_owned();
                let std = crate::offload(move || std::os::unix::net::UnixStream::connect(path))?;
                std.set_nonblocking(true)?;
                Ok(UnixStream::from_mio(mio::net::UnixStream::from_std(std)))
            }
            Err(e) => Err(e),
        }
    }

    /// Two connected sockets, with no path.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::from_mio(a), UnixStream::from_mio(b)))
    }
}

stream_api!(
    UnixStream,
    ReadHalf,
    WriteHalf,
    mio::net::UnixStream,
    std::os::unix::net::UnixStream,
    SocketAddr
);

/// The reading half of a [`UnixStream`]; see [`UnixStream::split`].
pub struct ReadHalf {
    inner: Arc<UnixInner>,
    _not_sync: NotSync,
}

/// The writing half of a [`UnixStream`]; see [`UnixStream::split`].
pub struct WriteHalf {
    inner: Arc<UnixInner>,
    _not_sync: NotSync,
}

/// A Unix domain socket listener. The socket file stays when it is dropped, as with std's:
/// remove it when the path is to be bound again.
pub struct UnixListener {
    slot: IoSlot,
    io: mio::net::UnixListener,
    _not_sync: NotSync,
}

impl UnixListener {
    /// Binds to `path` (which must not exist yet), with the kernel's largest backlog.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let io = mio::net::UnixListener::bind(path)?;
        Ok(UnixListener {
            slot: IoSlot::new(io.as_raw_fd()),
            io,
            _not_sync: PhantomData,
        })
    }
}

listener_api!(UnixListener, UnixStream, Incoming, SocketAddr);

/// Accepted connections; see [`UnixListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::mpsc::channel;

    /// A connect that finds the listener's backlog full waits (on the offload pool) until an
    /// accept makes room, as std's blocking connect does, instead of failing with
    /// `WouldBlock`. One worker: the acceptor can only run once the connector parks, which it
    /// does in that wait.
    #[test]
    fn a_connect_to_a_full_backlog_waits_for_room() {
        let dir = std::env::temp_dir().join(format!("coact-unix-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("full.sock");
        let rt = crate::Runtime::builder().workers(1).build().unwrap();
        let p = path.clone();
        let (fast, offloaded) = rt.block_on(move || {
            let listener = UnixListener::bind(&p).unwrap();
            // SAFETY: `listen` on the listener's open descriptor, borrowed for the call: the
            // smallest backlog, so that the kernel refuses a non-blocking connect early.
            assert_eq!(unsafe { libc::listen(listener.io.as_raw_fd(), 0) }, 0);
            let (go_tx, go_rx) = channel::<()>();
            let acceptor = crate::spawn(move || {
                go_rx.recv().unwrap();
                // One accept makes room for one more connection.
                let (conn, _) = listener.accept().unwrap();
                (listener, conn)
            });
            // Connect until the kernel refuses one without waiting.
            let mut conns = Vec::new();
            loop {
                match mio::net::UnixStream::connect(&p) {
                    Ok(s) => conns.push(s),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("connect: {e}"),
                }
                assert!(conns.len() < 10_000, "the backlog never filled");
            }
            let fast = conns.len();
            go_tx.send(()).unwrap();
            // Parks in the offloaded connect until the acceptor makes room.
            let s = UnixStream::connect(&p).expect("connected once there was room");
            let offloaded = crate::Handle::current().unwrap().offload_threads() > 0;
            let kept = acceptor.join().unwrap();
            drop((s, conns, kept));
            (fast, offloaded)
        });
        assert!(fast >= 1);
        assert!(offloaded, "the full backlog was waited out on the pool");
        drop(rt);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
