//! irc_bench: the IRC chat comparison driver (coact chat vs ngircd vs InspIRCd, loopback).
//!
//! ```text
//! irc_bench [--only SUBSTR] [--secs 10] [--warmup 2] [--rates 0.5,1,1.5,2,3]
//!           [--chat target/release/examples/chat] [--skip-a] [--skip-b] [--ngircd-connect-rate 150]
//!           [--rate-a 0.2]
//! ```
//!
//! For each server it starts a fresh process per run on a free loopback port (configs for
//! ngircd and InspIRCd are generated into a temp dir: no per-IP caps, no flood throttles, big
//! sendq), waits until the port accepts, runs `irc_load` (a sibling of this binary) with
//! `--server-pid`, stops the server and prints a markdown table. Scenario (a): 10,000 clients in
//! 100 channels at 0.2 msg/s each (about 198k deliveries/s offered). Scenario (b): 1,000 clients
//! in 10 channels at increasing per-client rates, stopping after the first rate that loses
//! deliveries or has p99 >= 1 s.

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVERS: [&str; 4] = ["coact1", "coact2", "ngircd", "inspircd"];

struct Opts {
    only: Option<String>,
    secs: f64,
    warmup: f64,
    rates: Vec<f64>,
    chat: PathBuf,
    skip_a: bool,
    skip_b: bool,
    ngircd_connect_rate: f64,
    /// Messages per second per client in scenario (a).
    rate_a: f64,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        only: None,
        secs: 10.0,
        warmup: 2.0,
        rates: vec![0.5, 1.0, 1.5, 2.0, 3.0],
        chat: PathBuf::from("target/release/examples/chat"),
        skip_a: false,
        skip_b: false,
        ngircd_connect_rate: 150.0,
        rate_a: 0.2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--skip-a" => o.skip_a = true,
            "--skip-b" => o.skip_b = true,
            _ => {
                let v = it.next().unwrap_or_else(|| panic!("{a} needs a value"));
                match a.as_str() {
                    "--only" => o.only = Some(v),
                    "--secs" => o.secs = v.parse().expect("--secs"),
                    "--warmup" => o.warmup = v.parse().expect("--warmup"),
                    "--rates" => {
                        o.rates = v.split(',').map(|r| r.parse().expect("--rates")).collect()
                    }
                    "--chat" => o.chat = PathBuf::from(v),
                    "--rate-a" => o.rate_a = v.parse().expect("--rate-a"),
                    "--ngircd-connect-rate" => {
                        o.ngircd_connect_rate = v.parse().expect("--ngircd-connect-rate")
                    }
                    _ => panic!("unknown flag {a}"),
                }
            }
        }
    }
    o
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

fn ngircd_conf(dir: &Path, port: u16) -> PathBuf {
    let p = dir.join(format!("ngircd-{port}.conf"));
    let motd = dir.join("motd.txt");
    std::fs::write(&motd, "bench\n").unwrap();
    let conf = format!(
        "[Global]\n\
         \tName = bench.ngircd\n\
         \tInfo = irc_bench\n\
         \tListen = 127.0.0.1\n\
         \tPorts = {port}\n\
         \tMotdFile = {motd}\n\
         [Limits]\n\
         \tMaxConnections = 0\n\
         \tMaxConnectionsIP = 0\n\
         \tMaxJoins = 0\n\
         \tMaxNickLength = 16\n\
         \tPingTimeout = 600\n\
         \tPongTimeout = 600\n\
         [Options]\n\
         \tDNS = no\n\
         \tIdent = no\n\
         \tPAM = no\n\
         \tOperCanUseMode = yes\n\
         [Operator]\n\
         \tName = bench\n\
         \tPassword = bench\n",
        motd = motd.display(),
    );
    std::fs::write(&p, conf).unwrap();
    p
}

fn inspircd_conf(dir: &Path, port: u16) -> PathBuf {
    let p = dir.join(format!("inspircd-{port}.conf"));
    let conf = format!(
        r#"<server name="bench.inspircd" description="irc_bench" network="bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect name="bench" allow="*" timeout="120" pingfreq="600"
         threshold="100000000" commandrate="100000000" fakelag="no"
         hardsendq="268435456" softsendq="16777216" recvq="16777216"
         localmax="100000" globalmax="100000" limit="100000" maxchans="20"
         resolvehostnames="no" useident="no">
<channels users="20" opers="60">
<dns server="127.0.0.1" timeout="1">
<pid file="{dir}/inspircd-{port}.pid">
<options prefixquit="Quit: " syntaxhints="no" announcets="yes" hostintopic="yes" pingwarning="15" splitwhois="no" exemptchanops="">
<security hideserver="" userstats="Pu" customversion="" flatlinks="no" hidesplits="no" hideulines="no" hidebans="no" maxtargets="20">
<performance quietbursts="yes" softlimit="30000" somaxconn="4096" netbuffersize="65536" nouserdns="yes">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{dir}/inspircd-{port}.log">
"#,
        dir = dir.display()
    );
    std::fs::write(&p, conf).unwrap();
    p
}

fn start_server(kind: &str, o: &Opts, dir: &Path) -> (Child, u16, Vec<String>) {
    let port = free_port();
    let log = std::fs::File::create(dir.join(format!("{kind}-{port}.log"))).unwrap();
    let mut cmd;
    let mut load_extra = Vec::new();
    match kind {
        "coact1" | "coact2" => {
            cmd = Command::new(&o.chat);
            cmd.args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--no-flood-limit",
                "--workers",
                if kind == "coact1" { "1" } else { "2" },
            ]);
        }
        "ngircd" => {
            cmd = Command::new("ngircd");
            cmd.arg("--nodaemon")
                .arg("--config")
                .arg(ngircd_conf(dir, port));
            // ngircd throttles every client that sends more than a few commands a second
            // unless it has user mode +F, which only an IRC operator may set.
            load_extra = vec![
                "--oper".into(),
                "bench:bench".into(),
                "--umode".into(),
                "+F".into(),
                // Its listen backlog is 10: pace new connections so no SYN is dropped (a drop
                // costs a 1, 2, 4, 8... s retransmit); registering takes it about 2 s each.
                "--inflight".into(),
                "4000".into(),
                "--connect-rate".into(),
                o.ngircd_connect_rate.to_string(),
            ];
        }
        "inspircd" => {
            cmd = Command::new("inspircd");
            cmd.arg("--nofork")
                .arg("--nopid")
                .arg("--runasroot")
                .arg(format!("--config={}", inspircd_conf(dir, port).display()));
        }
        _ => unreachable!(),
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {kind}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "{kind} did not accept on port {port}; see {}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port, load_extra)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

type Row = HashMap<String, String>;

#[allow(clippy::too_many_arguments)]
fn run(
    kind: &str,
    o: &Opts,
    dir: &Path,
    load: &Path,
    clients: usize,
    channels: usize,
    rate: f64,
    log: &mut Vec<String>,
) -> Row {
    let (child, port, extra) = start_server(kind, o, dir);
    let mut args: Vec<String> = vec![
        "--addr".into(),
        format!("127.0.0.1:{port}"),
        "--clients".into(),
        clients.to_string(),
        "--channels".into(),
        channels.to_string(),
        "--rate".into(),
        rate.to_string(),
        "--secs".into(),
        o.secs.to_string(),
        "--warmup".into(),
        o.warmup.to_string(),
        "--server-pid".into(),
        child.id().to_string(),
        "--coalesce-us".into(),
        "500".into(),
    ];
    args.extend(extra);
    let line = format!("$ {} {}", load.display(), args.join(" "));
    eprintln!("irc_bench: {kind}: {line}");
    let out = Command::new(load)
        .args(&args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run irc_load");
    stop(child);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprint!("{text}");
    log.push(format!("# {kind}\n{line}\n{text}"));
    let mut row = Row::new();
    if let Some(r) = text.lines().find(|l| l.starts_with("RESULT ")) {
        for kv in r.split_whitespace().skip(1) {
            if let Some((k, v)) = kv.split_once('=') {
                row.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    row
}

fn num(r: &Row, k: &str) -> f64 {
    r.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

fn ok(r: &Row) -> bool {
    r.get("ok").map(|v| v == "1").unwrap_or(false)
        && num(r, "undelivered") == 0.0
        && num(r, "disconnects") == 0.0
        && num(r, "p99_ms") < 1000.0
}

fn fmt_row(kind: &str, scenario: &str, r: &Row) -> String {
    if r.get("ok").map(|v| v == "1") != Some(true) {
        return format!("| {kind} | {scenario} | failed (setup) | | | | | | |");
    }
    format!(
        "| {kind} | {scenario} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2} | {:.1} |",
        num(r, "offered"),
        num(r, "delivered"),
        num(r, "undelivered"),
        num(r, "p50_ms"),
        num(r, "p99_ms"),
        num(r, "cpu_us_per_delivery"),
        num(r, "hwm_mib"),
    )
}

fn main() {
    let o = parse_args();
    let load = std::env::current_exe()
        .expect("current exe")
        .with_file_name("irc_load");
    let dir = std::env::temp_dir().join(format!("irc_bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut table = Vec::new();
    let mut log = Vec::new();
    for kind in SERVERS {
        if let Some(s) = &o.only {
            if !kind.contains(s.as_str()) {
                continue;
            }
        }
        if !o.skip_a {
            let r = run(kind, &o, &dir, &load, 10_000, 100, o.rate_a, &mut log);
            table.push(fmt_row(
                kind,
                &format!("a: 10k clients/100 ch, {} msg/s each", o.rate_a),
                &r,
            ));
        }
        if !o.skip_b {
            let mut best = None;
            for &rate in &o.rates {
                let r = run(kind, &o, &dir, &load, 1_000, 10, rate, &mut log);
                let good = ok(&r);
                table.push(fmt_row(
                    kind,
                    &format!(
                        "b: 1k clients/10 ch, {rate} msg/s each{}",
                        if good { "" } else { " (fails)" }
                    ),
                    &r,
                ));
                if !good {
                    break;
                }
                best = Some((rate, num(&r, "delivered")));
            }
            match best {
                Some((rate, d)) => table.push(format!(
                    "| {kind} | **b: best sustained: {rate} msg/s/client ({d:.0} deliveries/s)** | | | | | | | |"
                )),
                None => table.push(format!("| {kind} | **b: no rate sustained** | | | | | | | |")),
            }
        }
        let _ = std::io::stderr().flush();
    }
    println!("\n## raw irc_load output\n");
    for l in &log {
        println!("{l}");
    }
    println!(
        "| server | scenario | offered/s | delivered/s | undelivered | p50 ms | p99 ms | server CPU µs/delivery | server RSS MB (VmHWM) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &table {
        println!("{r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
