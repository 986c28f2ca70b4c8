//! `Builder::on_worker_start`, `on_worker_stop` and `thread_name`.
//!
//! Proves: each worker runs the start hook once, on its own thread (named with the prefix),
//! before any coroutine, and the stop hook once after its last coroutine; a panicking start
//! hook leaves the runtime working.

mod common;

use std::sync::{Arc, Mutex};

#[derive(Debug, PartialEq, Eq, Clone)]
enum Event {
    Start(usize, String),
    Ran(usize),
    Stop(usize),
}

#[test]
fn each_worker_runs_its_hooks_once_around_its_coroutines() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let (on_start, on_stop) = (events.clone(), events.clone());
    let rt = coact::Runtime::builder()
        .workers(3)
        .thread_name("lobby")
        .on_worker_start(move |i| {
            let name = std::thread::current().name().unwrap_or("").to_string();
            on_start.lock().unwrap().push(Event::Start(i, name));
        })
        .on_worker_stop(move |i| on_stop.lock().unwrap().push(Event::Stop(i)))
        .build()
        .unwrap();
    let ran = events.clone();
    common::bounded(move || {
        rt.block_on(move || {
            let w = coact::current_worker().unwrap();
            ran.lock().unwrap().push(Event::Ran(w));
        });
        drop(rt); // joins the workers
    });
    let events = events.lock().unwrap().clone();
    for i in 0..3 {
        let at = |e: &Event| events.iter().position(|x| x == e);
        let start = at(&Event::Start(i, format!("lobby-{i}")))
            .unwrap_or_else(|| panic!("worker {i} started, named lobby-{i}: {events:?}"));
        let stop = at(&Event::Stop(i)).unwrap_or_else(|| panic!("worker {i} stopped"));
        assert!(start < stop);
        if let Some(ran) = at(&Event::Ran(i)) {
            assert!(start < ran && ran < stop, "{events:?}");
        }
    }
    assert_eq!(events.len(), 7, "once each: {events:?}");
}

#[test]
fn a_panicking_start_hook_leaves_the_runtime_working() {
    let rt = coact::Runtime::builder()
        .workers(2)
        .on_worker_start(|i| panic!("start hook of worker {i} panics on purpose"))
        .build()
        .unwrap();
    let v = common::bounded(move || rt.block_on(|| coact::spawn(|| 6 * 7).join().unwrap()));
    assert_eq!(v, 42);
}
