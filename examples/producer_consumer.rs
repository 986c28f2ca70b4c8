//! The seed case: a producer and a consumer joined by `sync_channel(1)`.
//!
//! Each message makes the producer wait for the consumer, so the run is a stream of coroutine
//! switches; a scheduler that slept in its I/O poll while a coroutine was runnable would crawl
//! here. Run it with `cargo run --release --example producer_consumer -- [messages] [workers]`.

use std::time::Instant;

use coact::sync::mpsc::sync_channel;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let rt = coact::Runtime::builder()
        .workers(workers)
        .build()
        .expect("start the runtime");
    let start = Instant::now();
    let sum = rt.block_on(move || {
        let (tx, rx) = sync_channel::<u64>(1);
        let producer = coact::spawn(move || {
            for i in 0..n {
                tx.send(i).expect("the consumer is alive");
            }
        });
        let consumer = coact::spawn(move || rx.iter().sum::<u64>());
        producer.join().expect("the producer finished");
        consumer.join().expect("the consumer finished")
    });
    let elapsed = start.elapsed();
    assert_eq!(sum, n * (n.saturating_sub(1)) / 2);
    println!(
        "{n} messages through sync_channel(1) on {workers} worker(s) in {:.3} s: {:.1} ns/message, {:.1} M messages/s",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / n as f64,
        n as f64 / elapsed.as_secs_f64() / 1e6
    );
}
