//! Peer: Go goroutines and channels, measured out of process by `go/bench.go` through
//! `go run`, only when a `go` executable is on `PATH`.

use std::path::Path;
use std::process::Command;

use crate::Workload;

/// Per-run figures for one workload, as printed by the Go script.
pub struct GoResult {
    /// Which workload.
    pub workload: Workload,
    /// Op count used.
    pub n: u64,
    /// ns/op of each run.
    pub runs: Vec<f64>,
}

/// Whether `go version` runs.
pub fn available() -> bool {
    Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `go run go/bench.go` with `GOMAXPROCS = procs` for the given workloads.
pub fn run(
    procs: usize,
    workloads: &[Workload],
    quick: bool,
    runs: usize,
) -> Result<Vec<GoResult>, String> {
    // Go's `select` statement is its only select: it fills the W2 row.
    let ids: Vec<&str> = workloads
        .iter()
        .filter(|&&w| w != Workload::W2Macro)
        .map(|w| w.id())
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("go");
    let mut cmd = Command::new("go");
    cmd.current_dir(&dir)
        .arg("run")
        .arg("bench.go")
        .arg("-procs")
        .arg(procs.to_string())
        .arg("-runs")
        .arg(runs.to_string())
        .arg("-only")
        .arg(ids.join(","))
        // A lone file outside any module: keep `go run` from looking for one.
        .env("GO111MODULE", "off");
    if quick {
        cmd.arg("-quick");
    }
    let out = cmd.output().map_err(|e| format!("cannot run go: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "go run exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut results = Vec::new();
    for line in stdout.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() != Some("RESULT") {
            continue;
        }
        let id = fields.next().ok_or("RESULT line without id")?;
        let workload = Workload::ALL
            .into_iter()
            .find(|w| w.id() == id)
            .ok_or_else(|| format!("unknown workload id {id:?} from go"))?;
        let n: u64 = fields
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad op count in {line:?}"))?;
        let runs = fields
            .map(|s| {
                s.parse::<f64>()
                    .map_err(|_| format!("bad figure in {line:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        results.push(GoResult { workload, n, runs });
    }
    Ok(results)
}
