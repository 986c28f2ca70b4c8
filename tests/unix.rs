//! `coact::net::unix`: Unix domain stream sockets with the TCP sockets' contract. Echo through
//! a listener from many coroutines on 1, 2 and 4 workers; a read returns as soon as any bytes
//! are there (lesson 1); halves used from two coroutines; a real clone; timeouts; a `Closer`
//! ending a parked read; a `Select` waiting on a listener and a stream. Sockets live in a
//! fresh directory under the system's temporary directory, removed at the end.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use coact::net::unix::{UnixListener, UnixStream};
use coact::select::Select;
use common::{on_workers, TempDir, WORKER_COUNTS};

#[test]
fn many_clients_echo_through_a_unix_listener() {
    const CLIENTS: usize = 20;
    const ROUNDS: usize = 50;
    for workers in WORKER_COUNTS {
        let dir = TempDir::new("unix");
        let path = dir.join("echo.sock");
        on_workers(workers, move || {
            let listener = UnixListener::bind(&path).unwrap();
            assert_eq!(listener.local_addr().unwrap().as_pathname(), Some(&*path));
            let server = coact::spawn(move || {
                let mut conns = Vec::new();
                for conn in listener.incoming().take(CLIENTS) {
                    let mut conn = conn.unwrap();
                    conns.push(coact::spawn(move || {
                        let mut buf = [0u8; 256];
                        loop {
                            let n = conn.read(&mut buf).unwrap();
                            if n == 0 {
                                break;
                            }
                            conn.write_all(&buf[..n]).unwrap();
                        }
                    }));
                }
                conns.into_iter().for_each(|h| h.join().unwrap());
            });
            let clients: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    let path = path.clone();
                    coact::spawn(move || {
                        let mut s = UnixStream::connect(&path).unwrap();
                        for r in 0..ROUNDS {
                            let msg = format!("client {c} round {r}");
                            s.write_all(msg.as_bytes()).unwrap();
                            let mut back = vec![0u8; msg.len()];
                            s.read_exact(&mut back).unwrap();
                            assert_eq!(back, msg.as_bytes());
                        }
                        s.shutdown(Shutdown::Write).unwrap();
                        let mut rest = Vec::new();
                        s.read_to_end(&mut rest).unwrap();
                        assert!(rest.is_empty());
                    })
                })
                .collect();
            clients.into_iter().for_each(|h| h.join().unwrap());
            server.join().unwrap();
        });
        drop(dir);
    }
}

/// Lesson 1 on a Unix socket: two bytes in the socket and a 64-byte buffer: the read returns
/// the two bytes. It does not wait to fill the buffer, since the peer then waits for an answer.
#[test]
fn a_unix_read_returns_as_soon_as_any_bytes_are_there() {
    on_workers(1, || {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let peer = coact::spawn(move || {
            b.write_all(b"hi").unwrap();
            let mut answer = [0u8; 2];
            b.read_exact(&mut answer).unwrap();
            (answer, b) // kept open: the check below is for "nothing yet", not end of stream
        });
        let mut buf = [0u8; 64];
        assert_eq!(a.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"hi");
        a.write_all(b"ok").unwrap();
        let (answer, _b) = peer.join().unwrap();
        assert_eq!(&answer, b"ok");
        // The non-blocking calls never park: nothing more is coming.
        assert_eq!(
            a.try_read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
    });
}

#[test]
fn unix_halves_read_and_write_from_two_coroutines() {
    const CHUNKS: u64 = 2_000;
    for workers in [1, 2] {
        on_workers(workers, move || {
            let (a, b) = UnixStream::pair().unwrap();
            let (mut r, mut w) = a.split();
            let echo = coact::spawn(move || {
                let (mut br, mut bw) = b.split();
                let mut buf = [0u8; 4096];
                loop {
                    let n = br.read(&mut buf).unwrap();
                    if n == 0 {
                        bw.shutdown().unwrap();
                        break;
                    }
                    bw.write_all(&buf[..n]).unwrap();
                }
            });
            let writer = coact::spawn(move || {
                for i in 0..CHUNKS {
                    w.write_all(&i.to_le_bytes()).unwrap();
                }
                w.shutdown().unwrap();
            });
            let mut all = Vec::new();
            r.read_to_end(&mut all).unwrap();
            writer.join().unwrap();
            echo.join().unwrap();
            let got: Vec<u64> = all
                .chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(got, (0..CHUNKS).collect::<Vec<_>>(), "workers={workers}");
        });
    }
}

/// A clone is its own descriptor: it keeps the connection after the original is dropped.
#[test]
fn a_cloned_unix_stream_is_a_real_clone() {
    on_workers(2, || {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut clone = a.try_clone().unwrap();
        assert_eq!(clone.read_timeout().unwrap(), Some(Duration::from_secs(30)));
        drop(a);
        b.write_all(b"to the clone").unwrap();
        let mut buf = [0u8; 12];
        clone.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"to the clone");
        clone.write_all(b"back").unwrap();
        let mut back = [0u8; 4];
        b.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"back");
    });
}

#[test]
fn a_unix_read_times_out_and_a_closer_ends_a_parked_read() {
    on_workers(1, || {
        let (mut a, _b) = UnixStream::pair().unwrap();
        // The timer under test: 50 ms, checked with generous bounds.
        a.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let start = Instant::now();
        let e = a.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "an idle read times out");
        assert!(start.elapsed() >= Duration::from_millis(50));
        a.set_read_timeout(None).unwrap();

        let closer = a.closer();
        let reader = coact::spawn(move || a.read(&mut [0u8; 8]).unwrap());
        // Let the reader park: it runs when this coroutine yields (one worker).
        coact::yield_now();
        closer.shutdown(Shutdown::Both).unwrap();
        assert_eq!(
            reader.join().unwrap(),
            0,
            "the parked read sees end of stream"
        );
        assert!(!closer.is_open(), "the stream is gone with its coroutine");
    });
}

/// A `Select` waits on a Unix listener (ready to accept) and on a stream (ready to read).
#[test]
fn select_waits_on_a_unix_listener_and_a_unix_stream() {
    let dir = TempDir::new("unix");
    let path = dir.join("select.sock");
    on_workers(2, move || {
        let listener = UnixListener::bind(&path).unwrap();
        let p = path.clone();
        let client = coact::spawn(move || {
            let mut s = UnixStream::connect(&p).unwrap();
            s.write_all(b"x").unwrap();
            let mut end = Vec::new();
            s.read_to_end(&mut end).unwrap();
        });
        let mut sel = Select::new();
        sel.readable(&listener);
        let conn = loop {
            sel.ready_timeout(Duration::from_secs(10))
                .expect("a connection within 10 s");
            match listener.try_accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept: {e}"),
            }
        };
        drop(sel);
        let mut sel = Select::new();
        sel.readable(&conn);
        let mut buf = [0u8; 4];
        let n = loop {
            sel.ready_timeout(Duration::from_secs(10))
                .expect("readable within 10 s");
            match conn.try_read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("try_read: {e}"),
            }
        };
        assert_eq!(&buf[..n], b"x");
        drop(sel);
        drop(conn);
        client.join().unwrap();
    });
    drop(dir);
}
