//! `timers`: what a pending timer costs, coact's alarms (`coact::time::alarm`, what `tick`,
//! `after` and the actor timers are built on) against a coroutine per timer parked in
//! `coact::time::sleep` (how coact's timers worked before alarms) and against a tokio task
//! per timer awaiting `tokio::time::sleep` (current-thread runtime).
//!
//! Each run sets N timers due 500 ms after the first was set, from one coroutine (one task) on
//! one worker, each of which counts itself when it fires, and waits until all have fired.
//! Rows:
//! - **set, ns per timer**: the time to set all N, divided by N;
//! - **fire, ns per timer**: from the first firing to the last, divided by N (the cost of
//!   running due timers, as the worker sees it);
//! - **stacks held while pending**: coroutine stacks in use on the worker while all N wait
//!   (`Handle::metrics`; the setting coroutine's own included). tokio's tasks have none.
//!
//! N is 10,000 (1,000 with `--quick`): a coroutine per timer needs a stack each, and the map
//! limit allows about 19,000 mapped stacks per process. Medians of `--runs` rounds (default 5).
//!
//! Usage: `cargo run --release -p coact-benches --bin timers [-- --runs N] [--quick]`.

#![forbid(unsafe_code)]

#[path = "../args.rs"]
mod args;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How far ahead the timers are due: time enough for a coroutine per timer to start (each
/// maps a stack) before the first is due.
const AHEAD: Duration = Duration::from_millis(500);

/// Set and fire (ns per timer) and stacks held while pending, of one run.
type Sample = (f64, f64, f64);

/// Counts firings and notes when the first and the last happened.
struct Fired {
    count: AtomicUsize,
    n: usize,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Fired {
    fn new(n: usize) -> Arc<Fired> {
        Arc::new(Fired {
            count: AtomicUsize::new(0),
            n,
            first: Mutex::new(None),
            last: Mutex::new(None),
        })
    }

    fn fire(&self) {
        let k = self.count.fetch_add(1, Ordering::Relaxed);
        if k == 0 {
            *self.first.lock().unwrap() = Some(Instant::now());
        }
        if k + 1 == self.n {
            *self.last.lock().unwrap() = Some(Instant::now());
        }
    }

    fn all(&self) -> bool {
        self.count.load(Ordering::Relaxed) == self.n
    }

    /// Nanoseconds per timer from the first firing to the last.
    fn spread_per_timer(&self) -> f64 {
        let first = self.first.lock().unwrap().expect("fired");
        let last = self.last.lock().unwrap().expect("fired");
        (last - first).as_nanos() as f64 / self.n as f64
    }
}

fn coact_rt() -> coact::Runtime {
    coact::Runtime::builder()
        .workers(1)
        .build()
        .expect("build a coact runtime")
}

/// Waits (parking the coroutine) until every timer has fired.
fn coact_wait_all(fired: &Fired) {
    while !fired.all() {
        coact::time::sleep(Duration::from_micros(200));
    }
}

/// Stacks in use on the (only) worker now.
fn coact_stacks() -> f64 {
    coact::Handle::current().unwrap().metrics().workers[0].stacks as f64
}

fn coact_alarms(n: usize) -> Sample {
    coact_rt().block_on(move || {
        let fired = Fired::new(n);
        let start = Instant::now();
        let deadline = start + AHEAD;
        for _ in 0..n {
            let fired = fired.clone();
            coact::time::alarm(deadline, move |_| fired.fire()).detach();
        }
        let set = start.elapsed();
        let stacks = coact_stacks();
        coact_wait_all(&fired);
        per_timer(n, set, &fired, stacks)
    })
}

fn coact_coroutines(n: usize) -> Sample {
    coact_rt().block_on(move || {
        let fired = Fired::new(n);
        let start = Instant::now();
        let deadline = start + AHEAD;
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..n {
            let (fired, started) = (fired.clone(), started.clone());
            coact::spawn_detached(move || {
                started.fetch_add(1, Ordering::Relaxed);
                coact::time::sleep_until(deadline);
                fired.fire();
            });
        }
        let set = start.elapsed();
        // The coroutines start (and take their stacks) once this one parks.
        while started.load(Ordering::Relaxed) < n && Instant::now() < deadline {
            coact::time::sleep(Duration::from_millis(1));
        }
        let stacks = coact_stacks();
        coact_wait_all(&fired);
        per_timer(n, set, &fired, stacks)
    })
}

fn tokio_tasks(n: usize) -> Sample {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("build a tokio runtime");
    rt.block_on(async move {
        let fired = Fired::new(n);
        let start = Instant::now();
        let deadline = start + AHEAD;
        for _ in 0..n {
            let fired = fired.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(deadline.into()).await;
                fired.fire();
            });
        }
        let set = start.elapsed();
        while !fired.all() {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        per_timer(n, set, &fired, f64::NAN)
    })
}

fn per_timer(n: usize, set: Duration, fired: &Fired, stacks: f64) -> Sample {
    (
        set.as_nanos() as f64 / n as f64,
        fired.spread_per_timer(),
        stacks,
    )
}

fn main() {
    let args = args::parse("timers", 5, true);
    let n = if args.quick { 1_000 } else { 10_000 };
    type Side = (&'static str, fn(usize) -> Sample);
    let sides: [Side; 3] = [
        ("coact alarm", coact_alarms),
        ("coact coroutine + sleep", coact_coroutines),
        ("tokio task + sleep", tokio_tasks),
    ];
    let mut runs: Vec<Vec<Sample>> = vec![Vec::new(); sides.len()];
    for _ in 0..args.runs {
        for (s, (_, f)) in sides.iter().enumerate() {
            runs[s].push(f(n));
        }
    }
    println!(
        "timers: {n} timers, median of {} run(s); lower is better\n",
        args.runs
    );
    print!("| row |");
    for (name, _) in &sides {
        print!(" {name} |");
    }
    println!(" tokio ÷ alarm |");
    println!("|---|---:|---:|---:|---:|");
    type Pick = fn(&Sample) -> f64;
    let rows: [(&str, Pick); 3] = [
        ("set, ns per timer", |s| s.0),
        ("fire, ns per timer", |s| s.1),
        ("stacks held while pending", |s| s.2),
    ];
    for (name, pick) in rows {
        let m: Vec<f64> = runs
            .iter()
            .map(|r| args::median(r.iter().map(pick).collect()))
            .collect();
        print!("| {name} |");
        for v in &m {
            if v.is_nan() {
                print!(" — |");
            } else {
                print!(" {v:.0} |");
            }
        }
        if m[2].is_nan() {
            println!(" — |");
        } else {
            println!(" {:.2} |", m[2] / m[0].max(1.0));
        }
    }
    println!("\nRaw runs (set ns, fire ns, stacks):");
    for (s, (name, _)) in sides.iter().enumerate() {
        let v: Vec<String> = runs[s]
            .iter()
            .map(|x| format!("({:.0}, {:.0}, {:.0})", x.0, x.1, x.2))
            .collect();
        println!("- {name}: {}", v.join(", "));
    }
}
