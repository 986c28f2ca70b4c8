//! A TCP echo server: one coroutine per connection, written as plain blocking code.
//!
//! The accept loop runs in one coroutine and spawns a coroutine for every connection it
//! accepts; that coroutine reads whatever has arrived (a read returns as soon as any bytes are
//! there, it does not wait to fill its buffer), writes it back, and ends when the client closes
//! its side. A read or write that would block parks only that coroutine, so thousands of idle
//! connections cost a small stack each, not a thread each.
//!
//! ```sh
//! cargo run --example echo                            # listens on 127.0.0.1:7000
//! cargo run --example echo -- --listen 127.0.0.1:7100
//! nc 127.0.0.1 7000                                   # type lines, get them back
//! ```
//!
//! `tests/tcp.rs` includes this file as a module and drives [`serve`] and [`handle`] itself.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};

use coact::net::{TcpListener, TcpStream};

/// Where the server listens unless `--listen HOST:PORT` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7000";

/// Accepts connections forever, echoing each one in its own coroutine. Running out of
/// descriptors is reported and waited out; any other accept error is returned.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((conn, _peer)) => {
                // Dropping the JoinHandle detaches the coroutine: it ends with its connection.
                drop(coact::spawn(move || handle(conn)));
            }
            // Out of descriptors (EMFILE = 24, ENFILE = 23) is transient: connections close.
            Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) => {
                eprintln!("echo: accept: {e}");
                coact::time::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Echoes everything `conn` sends until it closes its write side; returns the number of bytes
/// echoed. The connection is closed when this returns (the stream is dropped).
pub fn handle(mut conn: TcpStream) -> io::Result<u64> {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        conn.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Parses `--listen HOST:PORT` (and `--help`) from the command line.
fn parse_args() -> Result<SocketAddr, String> {
    let mut listen = DEFAULT_LISTEN.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" | "-l" => {
                listen = args
                    .next()
                    .ok_or_else(|| "--listen needs HOST:PORT".to_string())?
            }
            "--help" | "-h" => {
                println!("usage: echo [--listen HOST:PORT]   (default {DEFAULT_LISTEN})");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`; try --help")),
        }
    }
    // Name lookup blocks: do it here, on the main thread, before the runtime starts.
    listen
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{listen}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{listen}` resolves to no address"))
}

fn main() {
    let addr = match parse_args() {
        Ok(addr) => addr,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let result = coact::run(move || {
        let listener = TcpListener::bind(addr)?;
        println!("echo: listening on {}", listener.local_addr()?);
        serve(listener)
    });
    if let Err(e) = result {
        eprintln!("echo: {e}");
        std::process::exit(1);
    }
}
