//! What the small bench binaries share (`locks`, `offload`, `switch`, `floors`, `timers`,
//! `work_queue`, `broadcast`): the command line (`--runs N`, and where a binary takes them,
//! `--quick` and `--only SUBSTR`) and the median of a cell's runs. Included by path
//! (`#[path = "../args.rs"] mod args;`), since the binaries have no library to share.

/// What the command line asked for.
pub struct Args {
    /// Rounds to run; the median is reported.
    pub runs: usize,
    /// Operation counts divided by 10.
    pub quick: bool,
    /// Keep only the rows whose name contains this.
    pub only: Option<String>,
}

impl Args {
    /// Whether row `name` is to run.
    #[allow(dead_code)] // not every binary filters its rows
    pub fn keeps(&self, name: &str) -> bool {
        self.only.as_deref().map_or(true, |o| name.contains(o))
    }
}

/// Parses the command line of binary `name`, which takes `--quick` and `--only` if `extra`;
/// prints the usage and exits with 2 on anything else.
pub fn parse(name: &str, default_runs: usize, extra: bool) -> Args {
    let usage = if extra {
        format!("usage: {name} [--runs N] [--quick] [--only SUBSTR]")
    } else {
        format!("usage: {name} [--runs N]")
    };
    let fail = |what: String| -> ! {
        eprintln!("{name}: {what}; {usage}");
        std::process::exit(2)
    };
    let mut a = Args {
        runs: default_runs,
        quick: false,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => {
                a.runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n > 0)
                    .unwrap_or_else(|| fail("--runs needs a positive number".into()))
            }
            "--quick" if extra => a.quick = true,
            "--only" if extra => {
                a.only = Some(
                    it.next()
                        .unwrap_or_else(|| fail("--only needs a value".into())),
                )
            }
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => fail(format!("unknown argument {other}")),
        }
    }
    a
}

/// The median of a cell's runs (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
