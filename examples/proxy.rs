//! A TCP proxy: every accepted connection is relayed to an upstream address by two coroutines,
//! one per direction, each owning one half of each socket.
//!
//! ```text
//!   client ──► [client ReadHalf] ─ pipe ─► [upstream WriteHalf] ──► upstream
//!   client ◄── [client WriteHalf] ◄─ pipe ─ [upstream ReadHalf] ◄── upstream
//! ```
//!
//! [`TcpStream::split`] gives each direction its own half, so the two coroutines read and write
//! one connection at the same time (on any workers) without sharing a `&mut`. When one
//! direction reaches end of stream, its coroutine shuts down the write side of the other
//! socket (a half-close): the far peer reads end of stream too, closes its own side when it is
//! done, and so the other direction ends as well. Neither side is cut off early, so a client
//! that sends a request, half-closes, and then reads the whole reply works through the proxy.
//!
//! ```sh
//! cargo run --example echo                  # upstream on 127.0.0.1:7000
//! cargo run --example proxy                 # 127.0.0.1:7001 -> 127.0.0.1:7000
//! cargo run --example proxy -- --listen 127.0.0.1:8080 --to 127.0.0.1:7000
//! nc 127.0.0.1 7001
//! ```
//!
//! `tests/tcp.rs` includes this file as a module and drives [`relay`] itself.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};

use coact::net::{ReadHalf, TcpListener, TcpStream, WriteHalf};

/// Where the proxy listens unless `--listen HOST:PORT` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7001";
/// Where it forwards to unless `--to HOST:PORT` says otherwise (the echo example's default).
pub const DEFAULT_TO: &str = "127.0.0.1:7000";

/// Accepts connections forever and relays each one to `to` in its own pair of coroutines.
pub fn serve(listener: TcpListener, to: SocketAddr) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((client, peer)) => {
                // Dropping the JoinHandle detaches the coroutine: it ends with its connection.
                drop(coact::spawn(move || {
                    if let Err(e) = handle(client, to) {
                        eprintln!("proxy: {peer}: {e}");
                    }
                }));
            }
            // Out of descriptors (EMFILE = 24, ENFILE = 23) is transient: connections close.
            Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) => {
                eprintln!("proxy: accept: {e}");
                coact::time::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Connects to `to` and relays between it and `client` until both directions have ended.
pub fn handle(client: TcpStream, to: SocketAddr) -> io::Result<(u64, u64)> {
    let upstream = TcpStream::connect(to)?;
    relay(client, upstream)
}

/// Relays between two connected streams until both directions have ended; returns the bytes
/// moved `(client to upstream, upstream to client)`, or the first error of either direction.
///
/// Runs the upstream-to-client direction on the calling coroutine and the other one on a
/// coroutine of its own.
pub fn relay(client: TcpStream, upstream: TcpStream) -> io::Result<(u64, u64)> {
    // Forward small writes at once: a proxy should add no Nagle delay of its own.
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let (client_r, client_w) = client.split();
    let (upstream_r, upstream_w) = upstream.split();
    let upward = coact::spawn(move || pipe(client_r, upstream_w));
    let down = pipe(upstream_r, client_w);
    let up = upward.join().unwrap_or_else(|_| {
        Err(io::Error::other(
            "the client-to-upstream coroutine panicked",
        ))
    });
    Ok((up?, down?))
}

/// Copies `from` into `to` until `from` ends, then shuts down `to`'s write side so that its
/// peer sees end of stream as well. On an error the write side is shut down too (so that the
/// far side is not left waiting) and the error is returned. Returns the bytes copied.
pub fn pipe(mut from: ReadHalf, mut to: WriteHalf) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let result = loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        if let Err(e) = to.write_all(&buf[..n]) {
            break Err(e);
        }
        total += n as u64;
    };
    // The half-close. It can fail only if the connection is already gone (`NotConnected`),
    // and then the peer has nothing left to wait for.
    let _ = to.shutdown();
    result
}

/// Parses `--listen HOST:PORT`, `--to HOST:PORT` (and `--help`) from the command line.
fn parse_args() -> Result<(SocketAddr, SocketAddr), String> {
    let mut listen = DEFAULT_LISTEN.to_string();
    let mut to = DEFAULT_TO.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" | "-l" => {
                listen = args
                    .next()
                    .ok_or_else(|| "--listen needs HOST:PORT".to_string())?
            }
            "--to" | "-t" => {
                to = args
                    .next()
                    .ok_or_else(|| "--to needs HOST:PORT".to_string())?
            }
            "--help" | "-h" => {
                println!(
                    "usage: proxy [--listen HOST:PORT] [--to HOST:PORT]   \
                     (defaults {DEFAULT_LISTEN}, {DEFAULT_TO})"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`; try --help")),
        }
    }
    Ok((resolve(&listen)?, resolve(&to)?))
}

/// Name lookup blocks: it is done on the main thread, before the runtime starts.
fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{addr}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{addr}` resolves to no address"))
}

fn main() {
    let (listen, to) = match parse_args() {
        Ok(addrs) => addrs,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let result = coact::run(move || {
        let listener = TcpListener::bind(listen)?;
        println!(
            "proxy: listening on {}, forwarding to {to}",
            listener.local_addr()?
        );
        serve(listener, to)
    });
    if let Err(e) = result {
        eprintln!("proxy: {e}");
        std::process::exit(1);
    }
}
