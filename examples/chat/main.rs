//! coact chat: an IRC server built from coact actors, usable by ordinary IRC clients.
//!
//! ```text
//! cargo run --release --example chat                     # listens on 127.0.0.1:6667
//! cargo run --release --example chat -- --listen 0.0.0.0:7000 --no-flood-limit
//! ```
//!
//! Then connect with any IRC client, for example `irssi -c 127.0.0.1 -p 6667` or, in weechat,
//! `/server add coact 127.0.0.1/6667` and `/connect coact`.
//!
//! Ctrl-C (`SIGINT`) or `SIGTERM` shuts the server down in order: it stops accepting, sends
//! every client `ERROR :Closing link` after what was queued for it, and waits up to 5 s for
//! the goodbyes to be written; a second signal ends the process at once. `SIGUSR1` (`kill
//! -USR1 <pid>`) prints the server's load: open connections and, per worker, coroutine stacks
//! in use, tasks waiting, alarms, scheduler turns (how many idle) and steals.
//!
//! How it is built (see `server.rs`): a coroutine per connection for reading and one for
//! writing through a bounded queue, a handler actor per channel, and a directory actor for
//! nicknames and channels.

mod irc;
mod server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coact::signal::{self, Signals};

/// How long a shutdown waits for the goodbyes to reach slow clients.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Prints the server's load: its connections and each worker's figures.
fn print_status(connections: &AtomicUsize, metrics: &coact::metrics::Metrics) {
    let stacks: usize = metrics.workers.iter().map(|w| w.stacks).sum();
    println!(
        "chat: {} connection(s), {stacks} coroutine stacks in use",
        connections.load(Ordering::Relaxed)
    );
    for (i, w) in metrics.workers.iter().enumerate() {
        println!(
            "chat:   worker {i}: {} stacks in use, {} tasks waiting, {} alarms, {} turns ({} idle), {} steals",
            w.stacks, w.queued_tasks, w.alarms, w.turns, w.sleeps, w.steals
        );
    }
}

/// Prints the status on every `SIGUSR1`, in a coroutine of its own.
fn print_status_on_sigusr1(connections: Arc<AtomicUsize>) {
    let status = match Signals::new([signal::SIGUSR1]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat: SIGUSR1 will not print the status: {e}");
            return;
        }
    };
    let runtime = coact::Handle::current().expect("called in the runtime");
    coact::spawn_detached(move || {
        for _ in status.iter() {
            print_status(&connections, &runtime.metrics());
        }
    });
}

fn usage() -> ! {
    eprintln!(
        "usage: chat [--listen HOST:PORT] [--workers N] [--no-flood-limit] [--ping-interval SECS] [--sendq LINES]"
    );
    std::process::exit(2);
}

fn main() {
    // coact reports through `tracing` (for example the watchdog, when a coroutine blocks its
    // worker); show that on stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let mut listen = "127.0.0.1:6667".to_owned();
    let mut workers = None;
    let mut config = server::Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or_else(|| usage()),
            "--workers" => {
                workers = Some(
                    args.next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| usage()),
                )
            }
            "--no-flood-limit" => config.flood = None,
            "--ping-interval" => {
                let secs: u64 = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| usage());
                config.ping_interval = Duration::from_secs(secs.max(1));
            }
            "--sendq" => {
                config.sendq = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    let mut builder = coact::Runtime::builder();
    if let Some(n) = workers {
        builder = builder.workers(n);
    }
    let rt = builder.build().expect("start the coact runtime");
    rt.block_on(move || {
        // Watched before the server starts: from here on, Ctrl-C asks for a clean shutdown.
        let signals = match Signals::new([signal::SIGINT, signal::SIGTERM]) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("chat: cannot watch SIGINT and SIGTERM: {e}");
                std::process::exit(1);
            }
        };
        let listener = match coact::net::TcpListener::bind(&listen) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("chat: cannot listen on {listen}: {e}");
                std::process::exit(1);
            }
        };
        let handle = server::start(listener, config).expect("start the chat server");
        print_status_on_sigusr1(handle.connections.clone());
        let addr = handle.addr;
        println!("coact chat listening on {addr}");
        println!(
            "connect with: irssi -c {} -p {}   (or any IRC client)",
            addr.ip(),
            addr.port()
        );
        let Ok(sig) = signals.recv() else {
            return; // nothing closes `signals`: not reached
        };
        println!(
            "chat: {} received, shutting down (again to stop at once)",
            signal::name(sig).unwrap_or("signal")
        );
        coact::spawn_detached(move || {
            if let Ok(sig) = signals.recv() {
                eprintln!(
                    "chat: {} received again, stopping now",
                    signal::name(sig).unwrap_or("signal")
                );
                std::process::exit(130);
            }
        });
        let report = handle.shutdown(SHUTDOWN_GRACE);
        if report.cut_off == 0 {
            println!("chat: said goodbye to {} client(s)", report.connections);
        } else {
            println!(
                "chat: said goodbye to {} client(s); cut off {} that did not read it within {:?}",
                report.connections - report.cut_off,
                report.cut_off,
                SHUTDOWN_GRACE
            );
        }
    });
}
