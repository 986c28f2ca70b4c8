//! `switch`: what one coroutine switch costs, from the bare corosensei floor up to coact's
//! `yield_now`, on one thread.
//!
//! Two coroutines take turns, driven round-robin from a `VecDeque` (as a worker drives its run
//! queue), 10,000,000 switches each:
//! - **inline**: the coroutine body calls `Yielder::suspend` directly;
//! - **depth 1 / depth 2**: it suspends from inside one or two non-inlined calls, as real
//!   blocking calls do (the CPU's return-address predictor then misses on both sides);
//! - **coact yield_now**: two coact coroutines on a one-worker runtime calling `yield_now`.
//!
//! Usage: `cargo run --release -p coact-benches --bin switch [-- --runs N]`. Prints ns per
//! switch pair (one resume and one suspend), median of the runs.
//!
//! The bare cases use corosensei's safe API only.

#![forbid(unsafe_code)]

#[path = "../args.rs"]
mod args;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Instant;

use corosensei::{Coroutine, CoroutineResult, Yielder};

const N: u64 = 10_000_000;

/// How deep below the coroutine body the suspend happens.
#[derive(Clone, Copy)]
enum Depth {
    Inline,
    One,
    Two,
}

#[inline(never)]
fn suspend_one(y: &Yielder<(), ()>) {
    y.suspend(());
}

#[inline(never)]
fn suspend_two(y: &Yielder<(), ()>) {
    suspend_one(y);
}

/// ns per switch pair for two bare coroutines taking turns.
fn bare(depth: Depth) -> f64 {
    let make = || {
        Coroutine::new(move |y: &Yielder<(), ()>, ()| {
            for _ in 0..N {
                match depth {
                    Depth::Inline => y.suspend(()),
                    Depth::One => suspend_one(y),
                    Depth::Two => suspend_two(y),
                }
            }
        })
    };
    let cos: RefCell<Vec<Coroutine<(), (), ()>>> = RefCell::new(vec![make(), make()]);
    let mut queue: VecDeque<usize> = VecDeque::from([0, 1]);
    let mut switches = 0u64;
    let start = Instant::now();
    while let Some(k) = queue.pop_front() {
        if let CoroutineResult::Yield(()) = cos.borrow_mut()[k].resume(()) {
            queue.push_back(k);
            switches += 1;
        }
    }
    start.elapsed().as_nanos() as f64 / switches as f64
}

/// ns per `yield_now` for two coact coroutines on one worker.
fn coact_yield() -> f64 {
    let rt = coact::Runtime::builder()
        .workers(1)
        .build()
        .expect("a runtime");
    rt.block_on(|| {
        let start = Instant::now();
        let other = coact::spawn(|| {
            for _ in 0..N {
                coact::yield_now();
            }
        });
        for _ in 0..N {
            coact::yield_now();
        }
        other.join().expect("the other coroutine");
        start.elapsed().as_nanos() as f64 / (2 * N) as f64
    })
}

fn main() {
    let runs = args::parse("switch", 3, false).runs;
    println!("ns per switch pair (resume + suspend), median of {runs} runs, {N} switches each:");
    let cases: [(&str, &dyn Fn() -> f64); 4] = [
        ("corosensei, suspend inline in the body", &|| {
            bare(Depth::Inline)
        }),
        ("corosensei, suspend one call deep", &|| bare(Depth::One)),
        ("corosensei, suspend two calls deep", &|| bare(Depth::Two)),
        ("coact yield_now, one worker", &coact_yield),
    ];
    for (name, f) in cases {
        let v: Vec<f64> = (0..runs).map(|_| f()).collect();
        println!("| {name} | {:.1} |", args::median(v));
    }
}
