//! The chat server's descriptor cost per client, in a test crate of its own: it counts this
//! process's open descriptors, which tests running beside it would disturb.
//!
//! A server whose clients each cost two descriptors (say, a clone of every socket kept to
//! close it from elsewhere) runs out of them at half the clients the limit allows: with the
//! common limit of 20,000, a 10,000-client load stalled with the last connections unaccepted
//! in the listen queue. Each client costs the server one descriptor, its socket.

#[path = "../examples/chat/irc.rs"]
#[allow(dead_code)]
mod irc;
#[path = "../examples/chat/server.rs"]
#[allow(dead_code)]
mod server;

mod chat_support;

use chat_support::{config, serve, Irc};

/// Descriptors open in this process now (Linux), or `None` where `/proc` is not there.
fn open_descriptors() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

#[test]
fn each_client_costs_the_server_one_descriptor() {
    const CLIENTS: usize = 100;
    let srv = serve(config());
    // The first client starts what the server creates once (its workers' polls register
    // lazily, for example), so that the count below is per client only.
    let mut first = Irc::register(srv.addr, "first");
    first.sync();
    let Some(before) = open_descriptors() else {
        eprintln!("no /proc/self/fd here: nothing to count");
        return;
    };
    let mut clients: Vec<Irc> = (0..CLIENTS)
        .map(|i| Irc::register(srv.addr, &format!("c{i}")))
        .collect();
    // A PING answered proves each client's connection coroutine has set itself up.
    for c in &mut clients {
        c.sync();
    }
    let after = open_descriptors().expect("/proc/self/fd was there a moment ago");
    // Each client is one socket here (the test's end) and one in the server.
    let per_client = (after - before) as f64 / CLIENTS as f64;
    assert!(
        after - before <= 2 * CLIENTS + 4,
        "{CLIENTS} clients opened {} descriptors ({per_client:.2} per client; 2 expected: \
         the client's socket and the server's)",
        after - before
    );
    assert_eq!(srv.open_connections(), CLIENTS + 1);
}
