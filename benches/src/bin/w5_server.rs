//! W5 echo server: `w5_server <kind> <addr>` with kind one of `coact1`, `coact2`, `tokio_ct`,
//! `tokio_mt`, `may1`, `std_threads`.
//!
//! Binds `addr` (port 0 picks a free one), prints `ready <local addr>` on stdout once
//! listening, and echoes every connection (read whatever arrived, write it back, with
//! `TCP_NODELAY` set) until it is killed or its stdin closes.

use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;

/// The read buffer of every connection handler.
const BUF: usize = 4096;

fn ready(addr: SocketAddr) {
    let mut out = io::stdout().lock();
    writeln!(out, "ready {addr}").expect("write ready");
    out.flush().expect("flush ready");
}

/// Exits the process once stdin reaches end of file (the driver went away).
fn exit_on_stdin_close() {
    std::thread::spawn(|| {
        let mut line = String::new();
        let mut stdin = io::stdin().lock();
        while matches!(stdin.read_line(&mut line), Ok(n) if n > 0) {
            line.clear();
        }
        std::process::exit(0);
    });
}

fn coact_server(workers: usize, addr: SocketAddr) -> io::Result<()> {
    let rt = coact::Runtime::builder().workers(workers).build()?;
    rt.block_on(move || {
        let listener = coact::net::TcpListener::bind(addr)?;
        ready(listener.local_addr()?);
        loop {
            let (mut conn, _) = listener.accept()?;
            conn.set_nodelay(true)?;
            drop(coact::spawn(move || {
                let mut buf = [0u8; BUF];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            }));
        }
    })
}

fn tokio_server(rt: tokio::runtime::Runtime, addr: SocketAddr) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        ready(listener.local_addr()?);
        loop {
            let (mut conn, _) = listener.accept().await?;
            conn.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut buf = [0u8; BUF];
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}

fn may_server(addr: SocketAddr) -> io::Result<()> {
    may::config().set_workers(1);
    let acceptor = may::go!(move || -> io::Result<()> {
        let listener = may::net::TcpListener::bind(addr)?;
        ready(listener.local_addr()?);
        loop {
            let (mut conn, _) = listener.accept()?;
            conn.set_nodelay(true)?;
            drop(may::go!(move || {
                let mut buf = [0u8; BUF];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            }));
        }
    });
    acceptor
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("may acceptor panicked")))
}

fn std_server(addr: SocketAddr) -> io::Result<()> {
    let listener = std::net::TcpListener::bind(addr)?;
    ready(listener.local_addr()?);
    loop {
        let (mut conn, _) = listener.accept()?;
        conn.set_nodelay(true)?;
        std::thread::spawn(move || {
            let mut buf = [0u8; BUF];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (kind, addr) = match args.as_slice() {
        [kind, addr] => match addr.parse::<SocketAddr>() {
            Ok(a) => (kind.as_str(), a),
            Err(e) => {
                eprintln!("w5_server: bad address `{addr}`: {e}");
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!("usage: w5_server <coact1|coact2|tokio_ct|tokio_mt|may1|std_threads> <addr>");
            std::process::exit(2);
        }
    };
    exit_on_stdin_close();
    let result = match kind {
        "coact1" => coact_server(1, addr),
        "coact2" => coact_server(2, addr),
        "tokio_ct" => tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .and_then(|rt| tokio_server(rt, addr)),
        "tokio_mt" => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_io()
            .build()
            .and_then(|rt| tokio_server(rt, addr)),
        "may1" => may_server(addr),
        "std_threads" => std_server(addr),
        other => {
            eprintln!("w5_server: unknown kind `{other}`");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("w5_server {kind}: {e}");
        std::process::exit(1);
    }
}
