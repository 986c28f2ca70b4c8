//! Keeps a command running, as a tiny process supervisor: prints its output lines with a
//! prefix, restarts it when it exits (waiting longer after each quick failure), and on Ctrl-C
//! or `SIGTERM` stops it and exits.
//!
//! One coroutine does it all with one `Select` per run of the child, waiting at once for a
//! line from the child, for the child's exit and for a signal: `coact::process` and
//! `coact::signal` wait like channels and sockets.
//!
//! ```text
//! cargo run --example keep_running                      # a demo child that fails every 2 s
//! cargo run --example keep_running -- ping -c 3 127.0.0.1
//! ```

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use coact::process::{Command, Stdio};
use coact::select::Select;
use coact::signal::{self, Signals};

/// Why one run of the child ended.
enum Ended {
    /// It exited by itself.
    Exited,
    /// A signal asked us to stop.
    Stop(i32),
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        let demo = "echo started; sleep 1; echo working; sleep 1; echo failing >&2; exit 3";
        args = vec!["sh".into(), "-c".into(), demo.into()];
    }
    coact::run(move || {
        let signals = Signals::new([signal::SIGINT, signal::SIGTERM]).expect("watch signals");
        let mut backoff = Duration::from_millis(250);
        for run in 1.. {
            let started = Instant::now();
            let mut child = match Command::new(&args[0])
                .args(&args[1..])
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
            {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("keep_running: cannot start {}: {e}", args[0]);
                    return;
                }
            };
            println!("[run {run}] started {} (pid {})", args[0], child.id());
            let stdout = child.stdout.take().expect("piped");
            let ended = supervise(&child, &stdout, &signals);
            match ended {
                Ended::Stop(sig) => {
                    let name = signal::name(sig).unwrap_or("a signal");
                    println!("[run {run}] {name} received: stopping the child");
                    let _ = child.kill();
                    let status = child.wait().expect("wait for the child");
                    println!("[run {run}] stopped ({status})");
                    return;
                }
                Ended::Exited => {
                    let status = child.wait().expect("wait for the child");
                    // A run that lasted a while resets the backoff; quick failures double it.
                    if started.elapsed() > Duration::from_secs(10) {
                        backoff = Duration::from_millis(250);
                    } else {
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                    println!("[run {run}] exited ({status}); restarting in {backoff:?}");
                }
            }
            // Wait out the backoff, unless a signal says to stop.
            if let Ok(sig) = signals.recv_timeout(backoff) {
                println!(
                    "{} received: not restarting",
                    signal::name(sig).unwrap_or("?")
                );
                return;
            }
        }
    });
}

/// Prints the child's output until it has exited and its output has ended, or a signal
/// arrives.
fn supervise(
    child: &coact::process::Child,
    stdout: &coact::process::ChildStdout,
    signals: &Signals,
) -> Ended {
    let mut sel = Select::new();
    let out = sel.readable(stdout);
    let exit = sel.readable(child);
    sel.readable(signals);
    let (mut output_open, mut exited) = (true, false);
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    while output_open || !exited {
        let i = sel.ready();
        if i == out {
            match stdout.try_read(&mut buf) {
                Ok(n) if n > 0 => line.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                end => {
                    if let Err(e) = end {
                        eprintln!("keep_running: reading the child's output: {e}");
                    }
                    output_open = false;
                    sel.remove(out);
                }
            }
            while let Some(at) = line.iter().position(|&b| b == b'\n') {
                let text: Vec<u8> = line.drain(..=at).collect();
                print!("  | {}", String::from_utf8_lossy(&text));
            }
        } else if i == exit {
            if let Ok(Some(_)) = child.try_wait() {
                exited = true;
                sel.remove(exit);
            }
        } else if let Ok(sig) = signals.try_recv() {
            return Ended::Stop(sig);
        }
    }
    if !line.is_empty() {
        println!("  | {}", String::from_utf8_lossy(&line));
    }
    Ended::Exited
}
