//! `actors`: actor benchmarks of coact against actix, ractor and kameo, in one run.
//!
//! Every cell (one workload on one framework) runs in a child process of this binary
//! (`--child <case> <column> <n>`), so each gets a fresh heap and its own peak RSS, and a
//! hung cell can be killed. Each figure is one whole workload timed with
//! [`std::time::Instant`] (setup excluded) divided by its operation count; every cell runs
//! `--runs N` times (default 3) and the median is reported.
//!
//! Workloads (counts before `--quick`, which divides them by 10):
//! - **ping-pong** between two actors, 1,000,000 round trips, ns/round trip. Each side holds
//!   the other's address; coact is shown with plain send + reply message and with `ask`.
//! - **ring** of 1,000 actors passing one token 1,000,000 hops (Savina thread ring), ns/hop.
//! - **fan-out/fan-in**: a coordinator sends one message to each of 1,000 workers, each
//!   replies; 1,000 rounds; ns/message (2 messages per worker per round).
//! - **spawn** 1,000,000 idle actors, each counted once started; ns/spawn, peak RSS delta
//!   (VmHWM at the end minus VmRSS once the runtime is built) and bytes per idle actor.
//!
//! Usage: `actors [--quick] [--runs N] [--timeout SECS]`.

#![forbid(unsafe_code)]

#[path = "actors/actix_a.rs"]
mod actix_a;
#[path = "actors/coact_a.rs"]
mod coact_a;
#[path = "actors/kameo_a.rs"]
mod kameo_a;
#[path = "actors/ractor_a.rs"]
mod ractor_a;

use std::io::Write as _;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Actors in the ring.
pub const RING_SIZE: usize = 1_000;
/// Workers of the fan-out coordinator.
pub const FAN_WORKERS: usize = 1_000;
/// How long a reply may take inside a timed `ask` (it never should).
pub const ASK_TIMEOUT: Duration = Duration::from_secs(60);

/// One workload (a row of the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Two actors, each replying to the other's message.
    PingPong,
    /// Actor A asks B and waits for each answer.
    PingPongAsk,
    /// A token passed around a ring of [`RING_SIZE`] actors.
    Ring,
    /// One coordinator, [`FAN_WORKERS`] workers, one message each way per round.
    FanOut,
    /// Spawn idle actors and keep them alive.
    Spawn,
}

impl Case {
    /// Every case, in table order.
    pub const ALL: [Case; 5] = [
        Case::PingPong,
        Case::PingPongAsk,
        Case::Ring,
        Case::FanOut,
        Case::Spawn,
    ];

    /// Id on the child's command line.
    pub fn id(self) -> &'static str {
        match self {
            Case::PingPong => "pingpong",
            Case::PingPongAsk => "pingpong-ask",
            Case::Ring => "ring",
            Case::FanOut => "fanout",
            Case::Spawn => "spawn",
        }
    }

    fn from_id(s: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|c| c.id() == s)
    }

    fn title(self) -> &'static str {
        match self {
            Case::PingPong => "ping-pong, send + reply message, ns/round trip",
            Case::PingPongAsk => "ping-pong, A asks B (request/response), ns/round trip",
            Case::Ring => "ring of 1,000 actors, ns/hop",
            Case::FanOut => "fan-out/fan-in to 1,000 workers, ns/message",
            Case::Spawn => "spawn idle actors (until started), ns/spawn",
        }
    }

    /// The workload size of a full run: round trips, hops, rounds or spawns.
    fn base_count(self) -> u64 {
        match self {
            Case::FanOut => 1_000,
            _ => 1_000_000,
        }
    }

    /// Operations done by a workload of size `n` (the divisor of its time).
    fn ops(self, n: u64) -> u64 {
        match self {
            Case::FanOut => n * FAN_WORKERS as u64 * 2,
            _ => n,
        }
    }
}

/// One framework configuration (a column of the table).
#[derive(Clone, Copy, Debug)]
struct Column {
    id: &'static str,
    header: &'static str,
    peer: bool,
}

const COLUMNS: [Column; 7] = [
    Column {
        id: "coact-1w",
        header: "coact 1w",
        peer: false,
    },
    Column {
        id: "coact-2w",
        header: "coact 2w",
        peer: false,
    },
    Column {
        id: "actix",
        header: "actix (1 thread)",
        peer: true,
    },
    Column {
        id: "ractor-1w",
        header: "ractor tokio-ct",
        peer: true,
    },
    Column {
        id: "ractor-2w",
        header: "ractor tokio-mt2",
        peer: true,
    },
    Column {
        id: "kameo-1w",
        header: "kameo tokio-ct",
        peer: true,
    },
    Column {
        id: "kameo-2w",
        header: "kameo tokio-mt2",
        peer: true,
    },
];

/// What a child measured.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// The timed part of the workload.
    pub elapsed: Duration,
    /// VmRSS once the runtime was built, KiB.
    pub base_kb: u64,
    /// VmHWM at the end, KiB.
    pub peak_kb: u64,
}

/// Reads a `kB` field of `/proc/self/status`.
fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Current resident set, KiB (read once the runtime is built, before the workload).
pub fn rss_kb() -> u64 {
    status_kb("VmRSS:")
}

/// Prints the child's result and ends the process at once, skipping the teardown of
/// (possibly a million) actors. Called from inside the framework's runtime.
pub fn finish(elapsed: Duration, base_kb: u64) -> ! {
    let s = Sample {
        elapsed,
        base_kb,
        peak_kb: status_kb("VmHWM:"),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "RESULT {} {} {}",
        s.elapsed.as_nanos(),
        s.base_kb,
        s.peak_kb
    );
    let _ = out.flush();
    std::process::exit(0)
}

/// Runs one cell in this (child) process; returns only if the framework has no such case.
fn child(case: Case, column: &str, n: u64) -> ExitCode {
    match column {
        "coact-1w" => coact_a::run(case, n, 1),
        "coact-2w" => coact_a::run(case, n, 2),
        "actix" => actix_a::run(case, n),
        "ractor-1w" => ractor_a::run(case, n, 1),
        "ractor-2w" => ractor_a::run(case, n, 2),
        "kameo-1w" => kameo_a::run(case, n, 1),
        "kameo-2w" => kameo_a::run(case, n, 2),
        other => {
            eprintln!("unknown column {other}");
            return ExitCode::from(2);
        }
    }
    println!("NA");
    ExitCode::SUCCESS
}

/// Result of one cell.
#[derive(Clone, Debug)]
enum Cell {
    NotApplicable,
    Measured(Vec<Sample>),
    Failed(String),
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Runs one cell once in a child process.
fn run_child(case: Case, col: &str, n: u64, timeout: Duration) -> Result<Option<Sample>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut c = Command::new(exe)
        .args(["--child", case.id(), col, &n.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    loop {
        match c.try_wait().map_err(|e| e.to_string())? {
            Some(_) => break,
            None if start.elapsed() > timeout => {
                let _ = c.kill();
                let _ = c.wait();
                return Err(format!("timeout {}s", timeout.as_secs()));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let out = c.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.lines().any(|l| l == "NA") {
        return Ok(None);
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            format!("failed ({}): {last}", out.status)
        })?;
    let f: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() != 3 {
        return Err(format!("bad result line {line:?}"));
    }
    Ok(Some(Sample {
        elapsed: Duration::from_nanos(f[0]),
        base_kb: f[1],
        peak_kb: f[2],
    }))
}

struct Opts {
    quick: bool,
    runs: usize,
    timeout: Duration,
}

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        quick: false,
        runs: 3,
        timeout: Duration::from_secs(300),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--runs" => {
                o.runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&r| r > 0)
                    .ok_or("--runs needs a positive number")?;
            }
            "--timeout" => {
                let s: u64 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--timeout needs seconds")?;
                o.timeout = Duration::from_secs(s);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn fmt_num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// One printed row: a figure per column (lower is better).
fn print_row(title: &str, vals: &[Option<Result<f64, String>>]) {
    let mut line = format!("| {title} |");
    for v in vals {
        let s = match v {
            None => "n/a".to_string(),
            Some(Ok(x)) => fmt_num(*x),
            Some(Err(e)) => e.clone(),
        };
        line.push_str(&format!(" {s} |"));
    }
    let best_peer = COLUMNS
        .iter()
        .zip(vals)
        .filter(|(c, _)| c.peer)
        .filter_map(|(c, v)| match v {
            Some(Ok(x)) => Some((c.header, *x)),
            _ => None,
        })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let ratio = match (&vals[0], best_peer) {
        (Some(Ok(coact)), Some((name, best))) if best > 0.0 => {
            format!("{:.2}× ({name})", coact / best)
        }
        _ => "n/a".to_string(),
    };
    line.push_str(&format!(" {ratio} |"));
    println!("{line}");
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let (Some(case), Some(col), Some(n)) = (
            args.get(1).and_then(|c| Case::from_id(c)),
            args.get(2),
            args.get(3).and_then(|n| n.parse::<u64>().ok()),
        ) else {
            eprintln!("usage: actors --child <case> <column> <n>");
            return ExitCode::from(2);
        };
        return child(case, col, n);
    }
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("actors: {e}\nusage: actors [--quick] [--runs N] [--timeout SECS]");
            return ExitCode::from(2);
        }
    };
    let div = if opts.quick { 10 } else { 1 };
    let mut results: Vec<(Case, u64, Vec<Cell>)> = Vec::new();
    for case in Case::ALL {
        let n = case.base_count() / div;
        let mut cells = Vec::new();
        for col in COLUMNS {
            let mut samples = Vec::new();
            let mut cell = None;
            for _ in 0..opts.runs {
                match run_child(case, col.id, n, opts.timeout) {
                    Ok(Some(s)) => samples.push(s),
                    Ok(None) => {
                        cell = Some(Cell::NotApplicable);
                        break;
                    }
                    Err(e) => {
                        cell = Some(Cell::Failed(e));
                        break;
                    }
                }
            }
            let cell = cell.unwrap_or(Cell::Measured(samples));
            let shown = match &cell {
                Cell::NotApplicable => "n/a".to_string(),
                Cell::Failed(e) => e.clone(),
                Cell::Measured(s) => {
                    let ns: Vec<String> = s
                        .iter()
                        .map(|s| fmt_num(s.elapsed.as_nanos() as f64 / case.ops(n) as f64))
                        .collect();
                    ns.join(" ")
                }
            };
            eprintln!("{:>13} {:>10}: {shown}", case.id(), col.id);
            cells.push(cell);
        }
        results.push((case, n, cells));
    }

    println!();
    println!(
        "actors: median of {} run(s){}; every cell in its own child process; lower is better.",
        opts.runs,
        if opts.quick {
            ", --quick (counts / 10)"
        } else {
            ""
        }
    );
    println!();
    let mut head = "| workload |".to_string();
    let mut sep = "|---|".to_string();
    for c in COLUMNS {
        head.push_str(&format!(" {} |", c.header));
        sep.push_str("---:|");
    }
    println!("{head} coact 1w ÷ best peer |");
    println!("{sep}---|");
    for (case, n, cells) in &results {
        let per_op = |f: &dyn Fn(&Sample) -> f64| -> Vec<Option<Result<f64, String>>> {
            cells
                .iter()
                .map(|c| match c {
                    Cell::NotApplicable => None,
                    Cell::Failed(e) => Some(Err(e.clone())),
                    Cell::Measured(s) => Some(Ok(median(s.iter().map(f).collect()))),
                })
                .collect()
        };
        let ops = case.ops(*n) as f64;
        let title = format!("{} (n={n})", case.title());
        print_row(&title, &per_op(&|s| s.elapsed.as_nanos() as f64 / ops));
        if *case == Case::Spawn {
            let delta = |s: &Sample| s.peak_kb.saturating_sub(s.base_kb) as f64;
            print_row(
                "spawn: peak RSS delta, MiB",
                &per_op(&|s| delta(s) / 1024.0),
            );
            print_row(
                "spawn: bytes per idle actor (RSS delta / n)",
                &per_op(&|s| delta(s) * 1024.0 / *n as f64),
            );
        }
    }
    ExitCode::SUCCESS
}
