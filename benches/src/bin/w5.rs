//! W5 driver: TCP echo, 100 connections doing 64-byte request/response, against each server.
//!
//! `w5 [--secs 5] [--runs 1] [--conns 100] [--warmup 1] [--only SUBSTR]`
//!
//! For each server kind it starts `w5_server <kind> 127.0.0.1:0` (a sibling of this binary),
//! waits for `ready <addr>`, runs `w5_client` against it, samples the server's CPU time
//! (`/proc/<pid>/stat` utime+stime) when the client prints `start` and `stop`, reads its peak
//! RSS (`VmHWM`), kills it, and prints a markdown table. With `--runs N` each kind runs N times
//! and the run with the median msgs/s is reported.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The server kinds, in table order.
const KINDS: [&str; 6] = [
    "coact1",
    "coact2",
    "tokio_ct",
    "tokio_mt",
    "may1",
    "std_threads",
];

#[derive(Clone, Copy, Debug)]
struct Row {
    msgs_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_msg: f64,
    rss_mib: f64,
    client_cpu_us_per_msg: f64,
}

struct Opts {
    secs: f64,
    runs: usize,
    conns: usize,
    warmup: f64,
    only: Option<String>,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        secs: 5.0,
        runs: 1,
        conns: 100,
        warmup: 1.0,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{a}: {e}");
        match a.as_str() {
            "--secs" => o.secs = v.parse().map_err(|e| bad(&e))?,
            "--runs" => o.runs = v.parse().map_err(|e| bad(&e))?,
            "--conns" => o.conns = v.parse().map_err(|e| bad(&e))?,
            "--warmup" => o.warmup = v.parse().map_err(|e| bad(&e))?,
            "--only" => o.only = Some(v),
            _ => return Err(format!("unknown argument `{a}`")),
        }
    }
    if o.runs == 0 || o.conns == 0 || o.secs <= 0.0 || o.warmup < 0.0 {
        return Err("need --runs >= 1, --conns >= 1, --secs > 0, --warmup >= 0".into());
    }
    Ok(o)
}

/// Clock ticks per second for `/proc/<pid>/stat` times (`getconf CLK_TCK`, else 100).
fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("read /proc/{pid}/stat: {e}"))?;
    // The command name (field 2) may contain spaces: parse after its closing parenthesis.
    let rest = &stat[stat.rfind(')').ok_or("malformed stat")? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); utime is field 14, stime field 15.
    let get = |i: usize| -> Result<u64, String> {
        f.get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("malformed stat field {}", i + 3))
    };
    Ok(get(11)? + get(12)?)
}

/// A `Vm*` line of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, key: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
}

/// Kills and reaps a child (best effort).
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn one_run(dir: &Path, kind: &str, o: &Opts, tck: f64) -> Result<Row, String> {
    let mut server = Command::new(dir.join("w5_server"))
        .args([kind, "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn w5_server: {e}"))?;
    let result = measure(&mut server, dir, kind, o, tck);
    stop(&mut server);
    result
}

fn measure(server: &mut Child, dir: &Path, kind: &str, o: &Opts, tck: f64) -> Result<Row, String> {
    let pid = server.id();
    let mut out = BufReader::new(server.stdout.take().ok_or("no server stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)
        .map_err(|e| format!("read server stdout: {e}"))?;
    let addr = line
        .trim()
        .strip_prefix("ready ")
        .ok_or_else(|| format!("{kind}: expected `ready <addr>`, got {line:?}"))?
        .to_string();
    let mut client = Command::new(dir.join("w5_client"))
        .arg(&addr)
        .args(["--conns", &o.conns.to_string()])
        .args(["--secs", &o.secs.to_string()])
        .args(["--warmup", &o.warmup.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn w5_client: {e}"))?;
    let cout = BufReader::new(client.stdout.take().ok_or("no client stdout")?);
    let cpid = client.id();
    let (mut cpu0, mut cpu1, mut result) = (None, None, None);
    let (mut ccpu0, mut ccpu1) = (0, 0);
    for l in cout.lines() {
        let l = l.map_err(|e| format!("read client stdout: {e}"))?;
        match l.split_whitespace().next() {
            Some("start") => {
                cpu0 = Some(cpu_ticks(pid)?);
                ccpu0 = cpu_ticks(cpid).unwrap_or(0);
            }
            Some("stop") => {
                cpu1 = Some(cpu_ticks(pid)?);
                ccpu1 = cpu_ticks(cpid).unwrap_or(0);
            }
            Some("result") => result = Some(l),
            Some("fairness") => eprintln!("w5: {kind}: {l}"),
            _ => {}
        }
    }
    let status = client.wait().map_err(|e| format!("wait w5_client: {e}"))?;
    if !status.success() {
        return Err(format!("{kind}: w5_client failed: {status}"));
    }
    let (cpu0, cpu1) = cpu0.zip(cpu1).ok_or("client printed no start/stop")?;
    let r = result.ok_or("client printed no result")?;
    let f: Vec<f64> = r
        .split_whitespace()
        .skip(1)
        .map(|x| {
            x.parse::<f64>()
                .map_err(|e| format!("bad result {r:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let [count, _secs, rate, p50, p99] = f[..] else {
        return Err(format!("bad result line {r:?}"));
    };
    let rss_kib = status_kib(pid, "VmHWM").or_else(|_| status_kib(pid, "VmRSS"))?;
    let cpu_s = (cpu1.saturating_sub(cpu0)) as f64 / tck;
    Ok(Row {
        msgs_per_s: rate,
        p50_us: p50,
        p99_us: p99,
        cpu_us_per_msg: if count > 0.0 {
            cpu_s * 1e6 / count
        } else {
            f64::NAN
        },
        rss_mib: rss_kib as f64 / 1024.0,
        client_cpu_us_per_msg: if count > 0.0 {
            ccpu1.saturating_sub(ccpu0) as f64 / tck * 1e6 / count
        } else {
            f64::NAN
        },
    })
}

fn fmt_row(name: &str, r: &Row) -> String {
    format!(
        "| {name} | {:.0} | {:.1} | {:.1} | {:.2} | {:.1} |",
        r.msgs_per_s, r.p50_us, r.p99_us, r.cpu_us_per_msg, r.rss_mib
    )
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("w5: {e}");
            std::process::exit(2);
        }
    };
    let exe = std::env::current_exe().expect("current_exe");
    let dir: PathBuf = exe.parent().expect("exe dir").to_path_buf();
    let tck = clk_tck();
    println!(
        "W5 TCP echo: {} conns x 64 B request/response, loopback, warmup {} s, window {} s, runs {} (median msgs/s run), CLK_TCK {tck}",
        o.conns, o.warmup, o.secs, o.runs
    );
    let mut rows: Vec<(&str, Row)> = Vec::new();
    for kind in KINDS {
        if o.only.as_deref().is_some_and(|s| !kind.contains(s)) {
            continue;
        }
        let mut runs = Vec::new();
        for i in 0..o.runs {
            match one_run(&dir, kind, &o, tck) {
                Ok(r) => {
                    eprintln!("w5: {kind} run {}: {}", i + 1, fmt_row(kind, &r));
                    runs.push(r);
                }
                Err(e) => eprintln!("w5: {kind} run {}: {e}", i + 1),
            }
        }
        if runs.is_empty() {
            continue;
        }
        runs.sort_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s));
        rows.push((kind, runs[runs.len() / 2]));
    }
    println!();
    println!("| server | msgs/s | p50 µs | p99 µs | server CPU µs/msg | server RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (k, r) in &rows {
        println!("{}", fmt_row(k, r));
    }
    let find = |k: &str| rows.iter().find(|(n, _)| *n == k).map(|(_, r)| *r);
    if let (Some(c), Some(t)) = (find("coact1"), find("tokio_ct")) {
        println!(
            "| coact1 / tokio_ct | {:.2}x | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            c.msgs_per_s / t.msgs_per_s,
            c.p50_us / t.p50_us,
            c.p99_us / t.p99_us,
            c.cpu_us_per_msg / t.cpu_us_per_msg,
            c.rss_mib / t.rss_mib
        );
    }
    println!();
    let client: Vec<String> = rows
        .iter()
        .map(|(k, r)| format!("{k} {:.2}", r.client_cpu_us_per_msg))
        .collect();
    println!("client CPU µs/msg (same window): {}", client.join(", "));
}
