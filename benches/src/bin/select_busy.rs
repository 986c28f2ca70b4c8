//! `select_busy`: a persistent `Select` that is busy while messages arrive.
//!
//! One coroutine sends N messages into an unbounded channel, yielding every 64; another takes
//! each through a `Select` kept across the loop. The select waits at times, so it registers
//! with the channel, and every later send notifies it, mostly while it is not waiting: this
//! measures what such a notification costs (a lock of the select's signal before session 5,
//! a fence since). One worker.
//!
//! Usage: `cargo run --release -p coact-benches --bin select_busy [-- N]` (default
//! 2,000,000). Prints ns per message and the number of registrations.

#![forbid(unsafe_code)]

use std::time::Instant;

use coact::select::Select;
use coact::sync::mpsc::channel;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N: a number of messages"))
        .unwrap_or(2_000_000);
    let rt = coact::Runtime::builder()
        .workers(1)
        .build()
        .expect("build coact runtime");
    let (elapsed, registrations) = rt.block_on(move || {
        let (tx, rx) = channel::<u64>();
        let start = Instant::now();
        let producer = coact::spawn(move || {
            for i in 0..n {
                tx.send(i).unwrap();
                if i % 64 == 0 {
                    coact::yield_now();
                }
            }
        });
        let mut sel = Select::new();
        sel.recv(&rx);
        let mut sum = 0u64;
        for _ in 0..n {
            let op = sel.select();
            sum = sum.wrapping_add(op.recv(&rx).unwrap());
        }
        producer.join().unwrap();
        assert_eq!(sum, n * (n - 1) / 2);
        (start.elapsed(), sel.registrations())
    });
    println!(
        "{:.1} ns/msg, {registrations} registrations",
        elapsed.as_nanos() as f64 / n as f64
    );
}
