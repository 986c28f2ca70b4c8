//! The watchdog names a worker stuck in one coroutine (here: a thread-blocking
//! `std::thread::sleep`, the mistake it exists to catch), and stays quiet for coroutines that
//! keep yielding.

use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn a_thread_blocking_call_in_a_coroutine_is_reported() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let rt = coact::Runtime::builder()
        .workers(2)
        .stall_threshold(Some(Duration::from_millis(50)))
        .on_stall(move |s| {
            let _ = tx.lock().unwrap().send(s.clone());
        })
        .build()
        .unwrap();
    let worker = rt.block_on(|| {
        // The blocking call under test: it holds the worker for 400 ms.
        std::thread::sleep(Duration::from_millis(400));
        coact::current_worker().unwrap()
    });
    let stall = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the stall was reported");
    assert_eq!(stall.worker, worker);
    assert!(stall.running_for >= Duration::from_millis(50));
    assert!(stall.to_string().contains("thread-blocking"), "{stall}");
    drop(rt);
}

#[test]
fn coroutines_that_yield_are_not_reported() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let rt = coact::Runtime::builder()
        .workers(1)
        // Generous, so that the OS descheduling the worker thread cannot look like a stall.
        .stall_threshold(Some(Duration::from_secs(2)))
        .on_stall(move |s| {
            let _ = tx.lock().unwrap().send(s.clone());
        })
        .build()
        .unwrap();
    rt.block_on(|| {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(600) {
            n = n.wrapping_add(1);
            coact::yield_now();
        }
        n
    });
    drop(rt); // joins the watchdog thread too
    assert!(rx.try_recv().is_err(), "no stall should be reported");
}
