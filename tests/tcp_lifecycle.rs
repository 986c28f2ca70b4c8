//! Sockets across the end of a runtime: cancellation must not make std's I/O helpers spin, and
//! a socket registered with a worker that has exited keeps receiving readiness.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use coact::net::{TcpListener, TcpStream};
use coact::select::Select;
use coact::sync::mpsc::channel;

/// A value whose destructor blocks on a socket read, run while its coroutine is cancelled.
struct ReadsOnDrop(TcpStream, std::sync::mpsc::Sender<std::io::ErrorKind>);

impl Drop for ReadsOnDrop {
    fn drop(&mut self) {
        let r = self.0.read_exact(&mut [0u8; 1]);
        let _ = self.1.send(r.err().map_or(ErrorKind::Other, |e| e.kind()));
    }
}

#[test]
fn cancelled_read_exact_in_a_destructor_does_not_spin_forever() {
    common::bounded(|| {
        let rt = common::runtime(1);
        let (kind_tx, kind_rx) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Keep the peer open (and silent) until the end of the test.
        let peer = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
        let _h = rt.spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let _guard = ReadsOnDrop(conn, kind_tx);
            let (_keep, rx) = channel::<()>();
            ready_tx.send(()).unwrap();
            let _ = rx.recv(); // parks until the runtime ends
        });
        ready_rx.recv().unwrap();
        drop(rt); // must return: the destructor's read fails instead of retrying forever
        let kind = kind_rx.recv().unwrap();
        assert_ne!(kind, ErrorKind::Interrupted);
        drop(peer.join().unwrap());
    });
}

#[test]
fn a_socket_keeps_its_readiness_after_its_runtime_ends() {
    common::bounded(|| {
        let rt = common::runtime(1);
        let (mut client, mut peer) = rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (peer, _) = listener.accept().unwrap();
            // A timed-out read registers the client with this runtime's worker.
            client
                .set_read_timeout(Some(Duration::from_millis(10)))
                .unwrap();
            let err = client.try_read(&mut [0u8; 1]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::WouldBlock);
            let mut c = client;
            assert_eq!(
                c.read(&mut [0u8; 1]).unwrap_err().kind(),
                ErrorKind::TimedOut
            );
            (c, peer)
        });
        drop(rt);
        peer.write_all(b"x").unwrap();
        {
            let mut sel = Select::new();
            sel.readable(&client);
            assert_eq!(sel.ready_timeout(Duration::from_secs(30)), Ok(0));
        }
        client
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(client.read(&mut buf).unwrap(), 1);
        // And a read that has to wait for data written later is woken too.
        let writer = std::thread::spawn(move || {
            peer.write_all(b"later").unwrap();
            peer
        });
        let mut got = Vec::new();
        while got.len() < 5 {
            let n = client.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"later");
        drop(writer.join().unwrap());
    });
}
