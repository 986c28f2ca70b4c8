//! A supervised worker pool that loses nothing.
//!
//! `pool` workers (handler actors under a one-for-one [`Supervisor`]) parse and process jobs
//! dealt round-robin into their bounded mailboxes. Some inputs are malformed and make the worker
//! that gets them panic. The supervisor restarts that worker with a fresh state; the restarted
//! worker keeps its address and its mailbox, so the jobs queued behind the bad one are still
//! done. At the end the example proves that nothing was lost: every good job was answered
//! exactly once and correctly, and every bad job was reported exactly once through
//! `on_failure`, with the panic and the job that caused it.
//!
//! ```text
//! cargo run --release --example supervision -- [--jobs N] [--pool N]
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coact::actor::{Actor, Ctx, Failure, Strategy, Supervisor};
use coact::sync::mpsc::{channel, Sender};

/// Every this-many jobs (give or take), one is malformed.
const BAD_EVERY: u64 = 97;
const MAILBOX: usize = 16;
const GENEROUS: Duration = Duration::from_secs(60);

/// A job: a record to parse, and where to send the answer.
struct Job {
    id: u64,
    input: String,
    answers: Sender<Answer>,
}

/// A worker's answer to a good job.
struct Answer {
    id: u64,
    worker: usize,
    generation: usize,
    steps: u32,
}

/// The work: the number of Collatz steps from `n` down to 1.
fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n > 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

/// The input of job `id`: a number, or (for the bad ones) a number with junk after it.
fn input_of(id: u64, may_be_bad: bool) -> String {
    let n = id.wrapping_mul(2_654_435_761) % 1_000_000 + 1;
    if may_be_bad && id % BAD_EVERY == 13 {
        format!("{n}?!")
    } else {
        n.to_string()
    }
}

struct Worker {
    index: usize,
    generation: usize,
}

impl Actor for Worker {
    type Msg = Job;

    fn handle(&mut self, job: Job, _ctx: &mut Ctx<'_, Job>) {
        // Malformed input panics here: the supervisor restarts this worker.
        let n: u64 = job.input.parse().expect("a job's input is a number");
        let _ = job.answers.send(Answer {
            id: job.id,
            worker: self.index,
            generation: self.generation,
            steps: collatz_steps(n),
        });
    }

    fn describe(job: &Job) -> Option<String> {
        Some(format!("job {} (input {:?})", job.id, job.input))
    }
}

fn arg(name: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    let v = args
        .get(i + 1)
        .unwrap_or_else(|| panic!("{name} needs a value"));
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}: not a number: {v}")),
    )
}

fn main() {
    let jobs = arg("--jobs").unwrap_or(20_000) as u64;
    let pool = arg("--pool").unwrap_or(4).max(1);

    // The bad jobs' panics are expected and reported below: keep the default hook from
    // printing each of them (and only them).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let expected = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with("a job's input is a number"));
        if !expected {
            default_hook(info);
        }
    }));

    let start = Instant::now();
    coact::run(move || {
        let (failures_tx, failures_rx) = channel::<Failure>();
        let mut sup = Supervisor::new(Strategy::OneForOne)
            // Far more restarts than bad jobs, and a short backoff: this pool must never give up.
            .intensity(100_000, Duration::from_secs(1))
            .backoff(Duration::from_micros(100), Duration::from_millis(1))
            .on_failure(move |f| {
                let _ = failures_tx.send(f.clone());
            });
        let generations: Vec<Arc<AtomicUsize>> =
            (0..pool).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let workers: Vec<_> = (0..pool)
            .map(|index| {
                let generations = generations[index].clone();
                sup.child_with_capacity(MAILBOX, move || Worker {
                    index,
                    generation: generations.fetch_add(1, Ordering::SeqCst) + 1,
                })
            })
            .collect();
        let sup = sup.start();

        // Deal the jobs round-robin; a full mailbox parks this coroutine (backpressure).
        // Each worker's last job is a good one, so that every bad job has work queued behind
        // it: every failure is then followed by its restart before the end.
        let inputs: Vec<String> = (0..jobs)
            .map(|id| input_of(id, id + (pool as u64) < jobs))
            .collect();
        let bad: Vec<u64> = (0..jobs)
            .filter(|&id| inputs[id as usize].parse::<u64>().is_err())
            .collect();
        let (answers_tx, answers_rx) = channel::<Answer>();
        for (id, input) in inputs.iter().enumerate() {
            workers[id % pool]
                .send(Job {
                    id: id as u64,
                    input: input.clone(),
                    answers: answers_tx.clone(),
                })
                .expect("a supervised worker keeps its mailbox open");
        }
        drop(answers_tx);
        let good = jobs - bad.len() as u64;

        // Every good job answered, exactly once, correctly.
        let mut answered: HashMap<u64, Answer> = HashMap::new();
        for _ in 0..good {
            let a = answers_rx
                .recv_timeout(GENEROUS)
                .expect("an answer to every good job");
            let expected = collatz_steps(inputs[a.id as usize].parse().expect("a good job"));
            assert_eq!(a.steps, expected, "wrong answer to job {}", a.id);
            assert!(answered.insert(a.id, a).is_none(), "a job answered twice");
        }
        // Every bad job reported, exactly once, with its panic and the job itself.
        let mut reported: HashMap<u64, Failure> = HashMap::new();
        for _ in 0..bad.len() {
            let f = failures_rx
                .recv_timeout(GENEROUS)
                .expect("a report for every bad job");
            assert!(
                f.panic.starts_with("a job's input is a number"),
                "{}",
                f.panic
            );
            let described = f.message.clone().expect("described");
            let id: u64 = described
                .strip_prefix("job ")
                .and_then(|s| s.split(' ').next())
                .and_then(|s| s.parse().ok())
                .expect("the job id in the report");
            assert!(reported.insert(id, f).is_none(), "a job reported twice");
        }
        sup.shutdown();
        // Nothing more after shutdown: no duplicate answer or report was pending.
        assert!(answers_rx.try_recv().is_err(), "an extra answer");
        assert!(failures_rx.try_recv().is_err(), "an extra report");
        for id in 0..jobs {
            let is_bad = bad.binary_search(&id).is_ok();
            assert_eq!(answered.contains_key(&id), !is_bad, "job {id}");
            assert_eq!(reported.contains_key(&id), is_bad, "job {id}");
        }

        // The summary.
        println!(
            "supervision: {jobs} jobs over a pool of {pool} workers (one-for-one), mailboxes of {MAILBOX}"
        );
        println!("  {good} good jobs: every one answered exactly once, every answer correct");
        println!(
            "  {} bad jobs: every one reported exactly once through on_failure",
            bad.len()
        );
        if let Some(f) = bad.first().and_then(|id| reported.get(id)) {
            println!("    e.g. {f}");
        }
        let restarts: Vec<usize> = generations
            .iter()
            .map(|g| g.load(Ordering::SeqCst) - 1)
            .collect();
        let by_restarted = answered.values().filter(|a| a.generation > 1).count();
        let mut per_worker = vec![0usize; pool];
        for a in answered.values() {
            per_worker[a.worker] += 1;
        }
        println!(
            "  restarts per worker: {restarts:?} ({} in all, one per bad job)",
            restarts.iter().sum::<usize>()
        );
        assert_eq!(restarts.iter().sum::<usize>(), bad.len());
        println!("  answers per worker: {per_worker:?}");
        println!(
            "  {by_restarted} answers came from restarted workers (same address, same mailbox)"
        );
        println!(
            "  nothing lost: {good} answered + {} reported = {jobs} jobs",
            bad.len()
        );
    });
    println!("  {:.2} s", start.elapsed().as_secs_f64());
}
