//! `workloads`: whole-workload benchmarks W1–W4 for coact and its peers, in one run.
//!
//! Each figure is one whole workload timed with [`std::time::Instant`] and divided by its
//! operation count (messages, select iterations, round trips or spawns); every cell is run
//! `--runs N` times and the median is reported. No criterion: we want whole-workload figures
//! that can be compared with the peer table in `shared/RUNTIME-NOTES.md` §10.
//!
//! Workloads (counts before `--quick`, which divides them by 10):
//! - **W1** `sync_channel(1)` producer → consumer, 10,000,000 `u64` messages, ns/msg.
//! - **W2** select loop over three capacity-1 channels, each preloaded with one message; the
//!   selected channel is received from and refilled with one message, so all three stay ready;
//!   10,000,000 iterations, ns/iteration. coact uses one persistent `coact::select::Select`.
//! - **W2m** the same loop written with the runtime's `select!` macro (where it differs).
//! - **W3** request/reply ping-pong over two capacity-1 channels, 1,000,000 round trips.
//! - **W4** spawn 1,000,000 short coroutines/tasks/threads in batches of 1,000; each sends one
//!   message over a channel and the spawner receives one message per child; ns/spawn.
//!
//! Usage: `cargo run --release -p coact-benches -- [--quick] [--only SUBSTR] [--runs N]
//! [--rounds R] [--timeout SECS]`. `--only` keeps the cells whose id (`W1/coact-1w`,
//! `W3/tokio-ct`, …) contains `SUBSTR`. `--rounds` repeats the whole set, each cell in turn,
//! and adds coact's per-round ratios to Go and tokio.

#![forbid(unsafe_code)]

mod coact_w;
mod crossbeam_w;
mod go;
mod may_w;
mod tokio_w;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Spawns per batch in W4.
pub const BATCH: u64 = 1_000;

/// One benchmark scenario (a row of the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    /// `sync_channel(1)` producer → consumer.
    W1,
    /// Select loop over three ready channels with a persistent selector.
    W2,
    /// The W2 loop written with the runtime's `select!` macro.
    W2Macro,
    /// Request/reply ping-pong.
    W3,
    /// Spawn short coroutines in batches of [`BATCH`].
    W4,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Workload; 5] = [
        Workload::W1,
        Workload::W2,
        Workload::W2Macro,
        Workload::W3,
        Workload::W4,
    ];

    /// Short id used in cell ids and by the Go script.
    pub fn id(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W2Macro => "W2m",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
        }
    }

    /// Row title of the table.
    pub fn title(self) -> &'static str {
        match self {
            Workload::W1 => "W1 sync_channel(1) producer→consumer, ns/msg",
            Workload::W2 => "W2 select loop over 3 ready channels (persistent selector), ns/iter",
            Workload::W2Macro => "W2m same loop with `select!` macro, ns/iter",
            Workload::W3 => "W3 request/reply ping-pong, ns/round trip",
            Workload::W4 => "W4 spawn in batches of 1,000, ns/spawn",
        }
    }

    /// Issue 2's one-worker target and the Go and tokio figures quoted beside it, in ns, all
    /// from the reference 2-core machine: the target as a ratio to a peer carries over to a
    /// machine of another speed.
    pub fn target(self) -> Option<(f64, f64, f64)> {
        match self {
            Workload::W1 => Some((30.0, 92.0, 189.0)),
            Workload::W2 => Some((30.0, 75.0, 92.0)),
            Workload::W2Macro => None,
            Workload::W3 => Some((80.0, 236.0, 228.0)),
            Workload::W4 => Some((100.0, 320.0, 192.0)),
        }
    }

    /// Operation count of a full (not `--quick`) run.
    pub fn base_count(self) -> u64 {
        match self {
            Workload::W1 | Workload::W2 | Workload::W2Macro => 10_000_000,
            Workload::W3 | Workload::W4 => 1_000_000,
        }
    }
}

/// Runs one workload with `n` operations; `None` when the runtime has no such variant.
pub type Runner = Arc<dyn Fn(Workload, u64) -> Option<Duration> + Send + Sync>;

/// One runtime (a column of the table).
struct Column {
    id: &'static str,
    header: &'static str,
    /// `None` for columns measured out of process (Go).
    run: Option<Runner>,
    /// Divides the op count for this column and workload (very slow peers).
    divisor: fn(Workload) -> u64,
}

fn full(_: Workload) -> u64 {
    1
}

/// Result of one cell.
#[derive(Clone, Debug)]
enum Cell {
    NotApplicable,
    Measured { n: u64, runs: Vec<f64> },
    Failed(String),
}

static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records a line for the "Notes" section printed after the tables (deduplicated).
pub fn note(line: String) {
    let mut notes = NOTES.lock().unwrap_or_else(|e| e.into_inner());
    if !notes.contains(&line) {
        notes.push(line);
    }
}

struct Config {
    quick: bool,
    only: Option<String>,
    runs: usize,
    rounds: usize,
    timeout: Duration,
}

const USAGE: &str =
    "usage: workloads [--quick] [--only SUBSTR] [--runs N] [--rounds R] [--timeout SECS]
  --quick         divide every op count by 10
  --only SUBSTR   run only cells whose id (e.g. W1/coact-1w, W3/tokio-ct) contains SUBSTR
  --runs N        runs per cell and round, the median is reported (default 3)
  --rounds R      go through every selected cell R times, in turn (default 1); with R > 1
                  the report adds coact's per-round ratios to Go and tokio, which a slow
                  spell of the machine moves less than a ratio of medians taken minutes apart
  --timeout SECS  give up on one run after SECS seconds (default 180)";

fn parse_args() -> Result<Config, String> {
    let mut cfg = Config {
        quick: false,
        only: None,
        runs: 3,
        rounds: 1,
        timeout: Duration::from_secs(180),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => cfg.quick = true,
            "--only" => cfg.only = Some(args.next().ok_or("--only needs a value")?),
            "--runs" => {
                let v = args.next().ok_or("--runs needs a value")?;
                cfg.runs = v.parse().map_err(|_| format!("bad --runs value {v:?}"))?;
                if cfg.runs == 0 {
                    return Err("--runs must be at least 1".into());
                }
            }
            "--rounds" => {
                let v = args.next().ok_or("--rounds needs a value")?;
                cfg.rounds = v.parse().map_err(|_| format!("bad --rounds value {v:?}"))?;
                if cfg.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--timeout" => {
                let v = args.next().ok_or("--timeout needs a value")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("bad --timeout value {v:?}"))?;
                cfg.timeout = Duration::from_secs(secs);
            }
            // `cargo bench` passes `--bench`; accept and ignore it.
            "--bench" => {}
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(cfg)
}

/// Op count for a cell: base count, `/10` for `--quick`, `/divisor`, a whole number of batches.
fn op_count(w: Workload, quick: bool, divisor: u64) -> u64 {
    let mut n = w.base_count() / divisor.max(1);
    if quick {
        n /= 10;
    }
    n = n.max(BATCH);
    n - n % BATCH
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

enum Once {
    Done(Duration),
    NotApplicable,
    Failed(String),
}

/// Runs one cell `cfg.runs` times: its figures, or why it has none.
fn run_cell(run: &Runner, w: Workload, n: u64, cfg: &Config, name: &str) -> Cell {
    let mut runs = Vec::new();
    for i in 0..cfg.runs {
        match measure_once(run, w, n, cfg.timeout, name) {
            Once::Done(d) => {
                let ns = d.as_nanos() as f64 / n as f64;
                eprintln!(
                    "{name} run {}/{}: {} ns/op (n = {n})",
                    i + 1,
                    cfg.runs,
                    fmt_ns(ns)
                );
                runs.push(ns);
            }
            Once::NotApplicable => return Cell::NotApplicable,
            Once::Failed(msg) => {
                eprintln!("{name} run {}/{}: FAILED: {msg}", i + 1, cfg.runs);
                note(format!("{name}: run {} failed: {msg}", i + 1));
                return Cell::Failed(msg);
            }
        }
    }
    Cell::Measured { n, runs }
}

/// Adds one round's figures to a cell; a cell that failed in an earlier round stays failed.
fn record(
    cells: &mut BTreeMap<(Workload, &'static str), Cell>,
    key: (Workload, &'static str),
    n: u64,
    runs: Vec<f64>,
) {
    match cells.get_mut(&key) {
        Some(Cell::Measured { runs: all, .. }) => all.extend(runs),
        Some(_) => {}
        None => {
            cells.insert(key, Cell::Measured { n, runs });
        }
    }
}

/// Runs one measurement on a fresh thread, so a hang or a panic marks the cell and the run goes on.
fn measure_once(run: &Runner, w: Workload, n: u64, timeout: Duration, name: &str) -> Once {
    let (tx, rx) = mpsc::channel();
    let run = Arc::clone(run);
    let handle = match thread::Builder::new()
        .name(format!("bench-{name}"))
        .spawn(move || {
            let _ = tx.send(run(w, n));
        }) {
        Ok(h) => h,
        Err(e) => return Once::Failed(format!("cannot spawn bench thread: {e}")),
    };
    match rx.recv_timeout(timeout) {
        Ok(result) => {
            let _ = handle.join();
            match result {
                Some(d) => Once::Done(d),
                None => Once::NotApplicable,
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // The thread is leaked; later figures may be disturbed if it keeps spinning.
            Once::Failed(format!("timeout after {} s", timeout.as_secs()))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let msg = match handle.join() {
                Err(p) => p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".into()),
                Ok(()) => "bench thread ended without a result".into(),
            };
            Once::Failed(format!("panic: {msg}"))
        }
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1}")
    } else {
        format!("{ns:.0}")
    }
}

fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };

    let columns: Vec<Column> = vec![
        Column {
            id: "coact-1w",
            header: "coact 1 worker",
            run: Some(Arc::new(|w, n| coact_w::run(1, w, n))),
            divisor: full,
        },
        Column {
            id: "coact-2w",
            header: "coact 2 workers",
            run: Some(Arc::new(|w, n| coact_w::run(2, w, n))),
            divisor: full,
        },
        Column {
            id: "crossbeam-threads",
            header: "crossbeam + OS threads",
            run: Some(Arc::new(crossbeam_w::run)),
            divisor: crossbeam_w::divisor,
        },
        Column {
            id: "tokio-ct",
            header: "tokio current-thread",
            run: Some(Arc::new(tokio_w::run_current_thread)),
            divisor: full,
        },
        Column {
            id: "tokio-mt2",
            header: "tokio multi-thread (2)",
            run: Some(Arc::new(tokio_w::run_multi_thread)),
            divisor: full,
        },
        Column {
            id: "may-1w",
            header: "may 0.3 (1 worker)",
            run: Some(Arc::new(may_w::run)),
            divisor: full,
        },
        Column {
            id: "go-1p",
            header: "Go GOMAXPROCS=1",
            run: None,
            divisor: full,
        },
        Column {
            id: "go-2p",
            header: "Go GOMAXPROCS=2",
            run: None,
            divisor: full,
        },
    ];

    let selected = |w: Workload, c: &Column| {
        let id = format!("{}/{}", w.id(), c.id);
        match cfg.only.as_deref() {
            Some(s) => id.contains(s),
            None => true,
        }
    };

    // may's worker count is global and must be set before its first use.
    if Workload::ALL
        .iter()
        .any(|&w| columns.iter().any(|c| c.id == "may-1w" && selected(w, c)))
    {
        may_w::init();
    }

    let mut cells: BTreeMap<(Workload, &'static str), Cell> = BTreeMap::new();
    // Each cell's median in each round, for the per-round ratios.
    let mut rounds: BTreeMap<(Workload, &'static str), Vec<f64>> = BTreeMap::new();
    let mut go_status = None;
    for round in 0..cfg.rounds {
        if cfg.rounds > 1 {
            eprintln!("round {}/{}", round + 1, cfg.rounds);
        }
        // In-process runtimes.
        for &w in &Workload::ALL {
            for c in &columns {
                let Some(run) = &c.run else { continue };
                if !selected(w, c) {
                    continue;
                }
                let n = op_count(w, cfg.quick, (c.divisor)(w));
                let name = format!("{}/{}", w.id(), c.id);
                match run_cell(run, w, n, &cfg, &name) {
                    Cell::Measured { n, runs } => {
                        rounds.entry((w, c.id)).or_default().push(median(&runs));
                        record(&mut cells, (w, c.id), n, runs);
                    }
                    other => {
                        cells.insert((w, c.id), other);
                    }
                }
            }
        }
        // Go, out of process, one `go run` per GOMAXPROCS value.
        for (col_id, procs) in [("go-1p", 1usize), ("go-2p", 2)] {
            let Some(col) = columns.iter().find(|c| c.id == col_id) else {
                continue;
            };
            let wanted: Vec<Workload> = Workload::ALL
                .iter()
                .copied()
                .filter(|&w| selected(w, col))
                .collect();
            if wanted.is_empty() || go_status.is_some() {
                continue;
            }
            if !go::available() {
                go_status = Some("skipped: go not installed".to_string());
                eprintln!("skipped: go not installed");
                break;
            }
            eprintln!("go run bench.go (GOMAXPROCS={procs}) ...");
            match go::run(procs, &wanted, cfg.quick, cfg.runs) {
                Ok(results) => {
                    for w in wanted {
                        match results.iter().find(|r| r.workload == w) {
                            Some(r) => {
                                rounds.entry((w, col_id)).or_default().push(median(&r.runs));
                                record(&mut cells, (w, col_id), r.n, r.runs.clone());
                            }
                            None => {
                                cells.insert((w, col_id), Cell::NotApplicable);
                            }
                        }
                    }
                }
                Err(e) => {
                    eprintln!("go ({col_id}) failed: {e}");
                    for w in wanted {
                        cells.insert((w, col_id), Cell::Failed(e.clone()));
                    }
                }
            }
        }
    }

    if cells.is_empty() && go_status.is_none() {
        eprintln!(
            "no cell matches --only {:?}",
            cfg.only.as_deref().unwrap_or("")
        );
        return ExitCode::from(2);
    }
    print!(
        "{}",
        report(&cfg, &columns, &cells, &rounds, go_status.as_deref())
    );
    ExitCode::SUCCESS
}

/// The table of coact's per-round ratios to Go (P=1) and tokio (current-thread), against the
/// target ratios of issue 2: each round's median for coact with one worker divided by the
/// peer's median in the same round; the median of those ratios, and their range.
fn round_ratios(
    n_rounds: usize,
    rows: &[Workload],
    rounds: &BTreeMap<(Workload, &'static str), Vec<f64>>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ncoact 1 worker ÷ peer, per round (median of {n_rounds} rounds, min–max), against \
         the target ÷ the peer's reference figure (below 1 × target: met):\n"
    );
    let _ = writeln!(
        out,
        "| workload | ÷ Go P=1 | target | ÷ tokio ct | target |\n|---|---:|---:|---:|---:|"
    );
    for &w in rows {
        let Some((target, go_ref, tokio_ref)) = w.target() else {
            continue;
        };
        let ratio = |peer: &str| {
            let (Some(c), Some(p)) = (rounds.get(&(w, "coact-1w")), rounds.get(&(w, peer))) else {
                return "—".to_string();
            };
            let r: Vec<f64> = c.iter().zip(p).map(|(c, p)| c / p).collect();
            if r.is_empty() {
                return "—".to_string();
            }
            let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{:.3} ({lo:.3}–{hi:.3})", median(&r))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {} | {:.3} |",
            w.id(),
            ratio("go-1p"),
            target / go_ref,
            ratio("tokio-ct"),
            target / tokio_ref
        );
    }
    out
}

/// How each runtime implements the workloads, keyed by column-id prefix.
const VARIANTS: [(&str, &str); 5] = [
    (
        "coact",
        "coact: `coact::sync::mpsc::sync_channel(1)` (W1, W3), one `coact::select::Select` \
         kept across the loop (W2), `coact::select!` (W2m), `coact::spawn` + `channel()` (W4)",
    ),
    (
        "crossbeam",
        "crossbeam + OS threads: `bounded(1)`; W2 `Select` kept across the loop on one thread, \
         W2m `select!`; W4 `thread::spawn` + join per batch",
    ),
    (
        "tokio",
        "tokio: `mpsc::channel(1)`; W2 row is `tokio::select!` (its only select), W2m not run; \
         W4 `tokio::spawn` + `unbounded_channel`",
    ),
    (
        "may",
        "may: no bounded channel, W1 is `mpsc` + `Semphore(1)`; W2 row is a persistent \
         `cqueue` (`select!` spawns 3 coroutines per call), W2m not run",
    ),
    (
        "go",
        "Go: `make(chan, 1)`; W2 row is the `select` statement; W4 `go func` + `chan` of 1,000",
    ),
];

fn report(
    cfg: &Config,
    columns: &[Column],
    cells: &BTreeMap<(Workload, &'static str), Cell>,
    rounds: &BTreeMap<(Workload, &'static str), Vec<f64>>,
    go_status: Option<&str>,
) -> String {
    let mut out = String::new();
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let profile = if cfg!(debug_assertions) {
        "DEBUG build (figures meaningless)"
    } else {
        "release build"
    };
    let _ = writeln!(out, "## coact W1–W4 workloads\n");
    let _ = writeln!(
        out,
        "args: {:?}; runs per cell: {} in each of {} rounds (median shown); quick: {}; \
         {cpus} CPUs; {profile}\n",
        std::env::args().skip(1).collect::<Vec<_>>(),
        cfg.runs,
        cfg.rounds,
        cfg.quick
    );

    let used: Vec<&Column> = columns
        .iter()
        .filter(|c| cells.keys().any(|(_, id)| *id == c.id))
        .collect();
    let rows: Vec<Workload> = Workload::ALL
        .iter()
        .copied()
        .filter(|w| cells.keys().any(|(cw, _)| cw == w))
        .collect();
    let med = |w: Workload, id: &str| match cells.get(&(w, id)) {
        Some(Cell::Measured { runs, .. }) if !runs.is_empty() => Some(median(runs)),
        _ => None,
    };

    // Table 1: ns per op.
    let _ = writeln!(
        out,
        "ns per op (median of {} runs):\n",
        cfg.runs * cfg.rounds
    );
    let _ = write!(out, "| workload |");
    for c in &used {
        let _ = write!(out, " {} |", c.header);
    }
    let _ = write!(out, "\n|---|");
    for _ in &used {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    let mut reduced = Vec::new();
    for &w in &rows {
        let _ = write!(out, "| {} |", w.title());
        for c in &used {
            let text = match cells.get(&(w, c.id)) {
                None => "".to_string(),
                Some(Cell::NotApplicable) => "—".to_string(),
                Some(Cell::Failed(_)) => "FAILED".to_string(),
                Some(Cell::Measured { n, runs }) => {
                    let full_n = op_count(w, cfg.quick, 1);
                    if *n != full_n {
                        reduced.push(format!("{}/{}: n = {n} instead of {full_n}", w.id(), c.id));
                        format!("{}*", fmt_ns(median(runs)))
                    } else {
                        fmt_ns(median(runs))
                    }
                }
            };
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }

    // Table 2: ratios against coact with one worker.
    let peers: Vec<&&Column> = used.iter().filter(|c| c.id != "coact-1w").collect();
    if used.iter().any(|c| c.id == "coact-1w") && !peers.is_empty() {
        let _ = writeln!(
            out,
            "\nratio peer ns / coact(1 worker) ns (above 1: coact 1 worker is faster; \
             the coact 2 workers column is its slowdown against 1 worker):\n"
        );
        let _ = write!(out, "| workload |");
        for c in &peers {
            let _ = write!(out, " {} |", c.header);
        }
        let _ = write!(out, "\n|---|");
        for _ in &peers {
            let _ = write!(out, "---:|");
        }
        out.push('\n');
        for &w in &rows {
            let _ = write!(out, "| {} |", w.id());
            let base = med(w, "coact-1w");
            for c in &peers {
                let text = match (base, med(w, c.id)) {
                    (Some(b), Some(p)) if b > 0.0 => format!("{:.2}", p / b),
                    _ => "—".to_string(),
                };
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
    }

    if cfg.rounds > 1 && rounds.keys().any(|(_, id)| *id == "coact-1w") {
        out.push_str(&round_ratios(cfg.rounds, &rows, rounds));
    }

    // Notes.
    let mut notes: Vec<String> = VARIANTS
        .iter()
        .filter(|(id, _)| used.iter().any(|c| c.id.starts_with(id)))
        .map(|(_, text)| text.to_string())
        .collect();
    if !reduced.is_empty() {
        notes.push(format!(
            "* fewer ops for very slow peers (ns/op still comparable): {}",
            reduced.join("; ")
        ));
    }
    if let Some(s) = go_status {
        notes.push(s.to_string());
    }
    notes.extend(
        NOTES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned(),
    );
    for ((w, id), cell) in cells {
        if let Cell::Failed(msg) = cell {
            notes.push(format!("{}/{id} FAILED: {msg}", w.id()));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "\nNotes:");
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
    }

    // Raw per-run figures, to judge the spread.
    let _ = writeln!(out, "\nRaw runs (ns/op):");
    for ((w, id), cell) in cells {
        if let Cell::Measured { n, runs } = cell {
            let list: Vec<String> = runs.iter().map(|&v| fmt_ns(v)).collect();
            let _ = writeln!(out, "- {}/{id} (n = {n}): {}", w.id(), list.join(", "));
        }
    }
    out
}
