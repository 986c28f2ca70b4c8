//! irc_load: a bounded, open-loop IRC load generator (loopback only).
//!
//! ```text
//! irc_load --addr 127.0.0.1:PORT --clients N --channels C --rate R --secs S [--warmup W]
//!          [--drain D] [--threads T] [--server-pid PID] [--oper NAME:PASS] [--umode +F]
//!          [--inflight K] [--connect-rate PER_S] [--coalesce-us US]
//! ```
//!
//! Registers `N` clients (nick `c<i>`), client `i` joins `#b<i % C>`, then every client sends
//! `R` PRIVMSGs per second to its channel for `W + S` seconds. Sends are paced by deadlines
//! (`t0 + j / (n * R)` for the thread's `j`-th message), not by per-message sleeps. Each message
//! carries its id (client, seq) and its send time in µs since a shared epoch; receivers count
//! deliveries per id and record latency. After sending stops, the tool drains for up to `D`
//! seconds (stopping early once every expected delivery arrived) and reports offered and
//! delivered deliveries/s over the `S`-second window, undelivered deliveries (all messages),
//! p50/p99 latency (messages sent in the window), and with `--server-pid` the server's CPU time
//! over the window, CPU µs per delivery and its RSS. The last line is `RESULT key=value ...`.
//!
//! The I/O is mio on `T` threads (default 1), edge-triggered, one `read` per readiness event
//! when the read comes back short of the buffer. `--coalesce-us` caps how often a thread
//! wakes up (trading up to that much latency resolution for fewer wakeups).

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

#[derive(Clone, Debug)]
struct Opts {
    addr: SocketAddr,
    clients: usize,
    channels: usize,
    rate: f64,
    secs: f64,
    warmup: f64,
    drain: f64,
    threads: usize,
    server_pid: Option<u32>,
    oper: Option<(String, String)>,
    umode: Option<String>,
    inflight: usize,
    connect_rate: f64,
    coalesce_us: u64,
    setup_timeout: f64,
}

fn usage() -> ! {
    eprintln!(
        "usage: irc_load --addr HOST:PORT --clients N --channels C --rate MSGS_PER_S_PER_CLIENT \
         --secs S [--warmup W] [--drain D] [--threads T] [--server-pid PID] \
         [--oper NAME:PASS] [--umode MODES] [--inflight K] [--connect-rate PER_S] [--coalesce-us US] [--setup-timeout S]"
    );
    std::process::exit(2);
}

fn parse_args() -> Opts {
    let mut addr = None;
    let mut o = Opts {
        addr: "127.0.0.1:6667".parse().unwrap(),
        clients: 100,
        channels: 1,
        rate: 1.0,
        secs: 10.0,
        warmup: 2.0,
        drain: 5.0,
        threads: 1,
        server_pid: None,
        oper: None,
        umode: None,
        inflight: 256,
        connect_rate: 0.0,
        coalesce_us: 0,
        setup_timeout: 180.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        let num = |v: &str| -> f64 { v.parse().unwrap_or_else(|_| usage()) };
        match a.as_str() {
            "--addr" => addr = Some(v.parse().unwrap_or_else(|_| usage())),
            "--clients" => o.clients = num(&v) as usize,
            "--channels" => o.channels = num(&v) as usize,
            "--rate" => o.rate = num(&v),
            "--secs" => o.secs = num(&v),
            "--warmup" => o.warmup = num(&v),
            "--drain" => o.drain = num(&v),
            "--threads" => o.threads = num(&v) as usize,
            "--server-pid" => o.server_pid = Some(num(&v) as u32),
            "--oper" => {
                let (n, p) = v.split_once(':').unwrap_or_else(|| usage());
                o.oper = Some((n.to_owned(), p.to_owned()));
            }
            "--umode" => o.umode = Some(v),
            "--inflight" => o.inflight = num(&v) as usize,
            "--connect-rate" => o.connect_rate = num(&v),
            "--coalesce-us" => o.coalesce_us = num(&v) as u64,
            "--setup-timeout" => o.setup_timeout = num(&v),
            _ => usage(),
        }
    }
    o.addr = addr.unwrap_or_else(|| usage());
    if !o.addr.ip().is_loopback() {
        eprintln!("irc_load: loopback addresses only");
        std::process::exit(2);
    }
    if o.clients == 0 || o.channels == 0 || o.threads == 0 || o.rate <= 0.0 || o.secs <= 0.0 {
        usage();
    }
    o.threads = o.threads.min(o.clients);
    o.inflight = o.inflight.max(o.threads);
    o
}

/// Raises the soft fd limit to the hard one.
fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit for the duration of both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    r.rlim_cur
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of `pid` (or "self"), in µs.
fn proc_cpu_us(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat; `rest` starts at field 3.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clk_tck() * 1e6)
}

/// A `Vm*` value of `/proc/<pid>/status`, in KiB.
fn proc_vm_kib(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Registering,
    Joining,
    Joined,
    Dead,
}

struct Conn {
    stream: TcpStream,
    gid: usize,
    chan: usize,
    state: State,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    seq: u32,
    /// Why the connection ended, if it did.
    why: String,
}

struct Shared {
    epoch: Instant,
    barrier: Barrier,
    t0: Mutex<Option<Instant>>,
    /// Deliveries expected from messages enqueued so far.
    expected: AtomicU64,
    /// Deliveries received so far.
    received: AtomicU64,
    threads_done_sending: AtomicUsize,
    setup_failed: AtomicBool,
    members: Vec<u64>,
    /// Server CPU µs at window start and end, then this process's.
    window_cpu: Mutex<[Option<f64>; 4]>,
    rss: Mutex<(Option<f64>, Option<f64>)>,
}

#[derive(Default)]
struct Out {
    /// Deliveries per (sender gid, seq).
    counts: Vec<Vec<u16>>,
    /// (gid, messages sent).
    sent: Vec<(usize, u32)>,
    window_msgs: u64,
    window_offered: u64,
    window_delivered: u64,
    lat_us: Vec<u32>,
    /// Deliveries slower than [`SLOW_US`]: (sent, µs into the window; receiver; sender).
    slow: Vec<(u64, usize, usize)>,
    disconnects: usize,
    max_lag_us: u64,
    late_sends: u64,
    errors: Vec<String>,
}

/// A delivery slower than this is listed in the report's "slow" line.
const SLOW_US: u64 = 500_000;

struct Ctx<'a> {
    sh: &'a Shared,
    o: &'a Opts,
    out: Out,
    ws_us: u64,
    we_us: u64,
    joined_now: usize,
}

impl Ctx<'_> {
    fn now_us(&self) -> u64 {
        self.sh.epoch.elapsed().as_micros() as u64
    }
}

fn flush(c: &mut Conn) -> bool {
    while c.wpos < c.wbuf.len() {
        match c.stream.write(&c.wbuf[c.wpos..]) {
            Ok(0) => return false,
            Ok(n) => c.wpos += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::NotConnected => {
                break
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                c.why = format!("write: {e}");
                return false;
            }
        }
    }
    if c.wpos == c.wbuf.len() {
        c.wbuf.clear();
        c.wpos = 0;
    } else if c.wpos > 65536 {
        c.wbuf.drain(..c.wpos);
        c.wpos = 0;
    }
    true
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in b {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(v)
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Handles one line (without CR LF) received by `c`.
fn line(c: &mut Conn, l: &[u8], cx: &mut Ctx<'_>, now_us: u64) {
    // Fast path: ":prefix PRIVMSG #chan :~L gid seq ts".
    let (cmd, _prefix) = if l.first() == Some(&b':') {
        match l.iter().position(|&b| b == b' ') {
            Some(sp) => (&l[sp + 1..], &l[..sp]),
            None => return,
        }
    } else {
        (l, &l[..0])
    };
    if cmd.starts_with(b"PRIVMSG ") {
        let Some(t) = find(cmd, b" :~L ") else { return };
        let mut f = cmd[t + 5..].split(|&b| b == b' ');
        let (Some(g), Some(s), Some(ts)) = (
            f.next().and_then(parse_u64),
            f.next().and_then(parse_u64),
            f.next().and_then(parse_u64),
        ) else {
            return;
        };
        let (g, s) = (g as usize, s as usize);
        if g >= cx.out.counts.len() {
            return;
        }
        let v = &mut cx.out.counts[g];
        if v.len() <= s {
            v.resize(s + 1, 0);
        }
        v[s] = v[s].saturating_add(1);
        cx.sh.received.fetch_add(1, Ordering::Relaxed);
        if now_us >= cx.ws_us && now_us < cx.we_us {
            cx.out.window_delivered += 1;
        }
        if ts >= cx.ws_us && ts < cx.we_us {
            let lat = now_us.saturating_sub(ts);
            cx.out.lat_us.push(lat.min(u32::MAX as u64) as u32);
            if lat > SLOW_US && cx.out.slow.len() < 1 << 20 {
                cx.out.slow.push((ts - cx.ws_us, c.gid, g));
            }
        }
        return;
    }
    if cmd.starts_with(b"PING") {
        c.wbuf.extend_from_slice(b"PONG");
        c.wbuf.extend_from_slice(&cmd[4..]);
        c.wbuf.extend_from_slice(b"\r\n");
        return;
    }
    if cmd.starts_with(b"ERROR") {
        if cx.out.errors.len() < 5 {
            cx.out
                .errors
                .push(format!("c{}: {}", c.gid, String::from_utf8_lossy(l)));
        }
        return;
    }
    let code = cmd.get(..4);
    match code {
        Some(b"001 ") if c.state == State::Registering => {
            if let Some((n, p)) = &cx.o.oper {
                let _ = write!(c.wbuf, "OPER {n} {p}\r\n");
            }
            if let Some(m) = &cx.o.umode {
                let _ = write!(c.wbuf, "MODE c{} {m}\r\n", c.gid);
            }
            let _ = write!(c.wbuf, "JOIN #b{}\r\n", c.chan);
            c.state = State::Joining;
        }
        Some(b"366 ") if c.state == State::Joining => {
            c.state = State::Joined;
            cx.joined_now += 1;
        }
        Some([b'4', _, _, b' '] | [b'5', _, _, b' ']) if cx.out.errors.len() < 5 => {
            cx.out
                .errors
                .push(format!("c{}: {}", c.gid, String::from_utf8_lossy(l)));
        }
        _ => {}
    }
}

/// Services one readiness event; returns false if the connection died.
fn service(c: &mut Conn, buf: &mut [u8], cx: &mut Ctx<'_>, readable: bool) -> bool {
    if readable {
        loop {
            let n = match c.stream.read(buf) {
                Ok(0) => {
                    c.why = "EOF".into();
                    return false;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::NotConnected => break,
                Err(e) => {
                    c.why = format!("read: {e}");
                    return false;
                }
            };
            let now_us = cx.now_us();
            let data: &[u8] = &buf[..n];
            let mut rb = std::mem::take(&mut c.rbuf);
            let src: &[u8] = if rb.is_empty() {
                data
            } else {
                rb.extend_from_slice(data);
                &rb[..]
            };
            let mut start = 0;
            let mut i = start;
            while let Some(p) = src[i..].iter().position(|&b| b == b'\n') {
                let end = i + p;
                let mut l = &src[start..end];
                if l.last() == Some(&b'\r') {
                    l = &l[..l.len() - 1];
                }
                line(c, l, cx, now_us);
                start = end + 1;
                i = start;
            }
            let tail = src[start..].to_vec();
            rb.clear();
            rb.extend_from_slice(&tail);
            c.rbuf = rb;
            if n < buf.len() {
                // Short read: the socket's receive queue is empty; the next arrival re-arms.
                break;
            }
        }
    }
    flush(c)
}

/// After a setup timeout: names the first ten clients that did not join, sends each a PING
/// and shows what arrives for them within two seconds (a late JOIN reply then means the server
/// held it; no PONG either means the connection is stuck).
fn probe_stuck(conns: &mut [Conn], poll: &mut Poll, events: &mut Events, buf: &mut [u8]) {
    let stuck: Vec<usize> = (0..conns.len())
        .filter(|&i| conns[i].state != State::Joined)
        .take(10)
        .collect();
    for &i in &stuck {
        let c = &mut conns[i];
        eprintln!(
            "irc_load: probe: c{} is {:?}; unparsed tail {:?}; sending PING",
            c.gid,
            c.state,
            String::from_utf8_lossy(&c.rbuf)
        );
        let _ = write!(c.wbuf, "PING :probe\r\n");
        flush(c);
    }
    // `IRC_LOAD_PROBE_SECS` keeps the connections open longer, to inspect the server.
    let secs = std::env::var("IRC_LOAD_PROBE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        poll.poll(events, Some(Duration::from_millis(100)))
            .expect("poll");
        for ev in events.iter() {
            let i = ev.token().0;
            if !stuck.contains(&i) {
                continue;
            }
            let c = &mut conns[i];
            loop {
                match c.stream.read(buf) {
                    Ok(0) => {
                        eprintln!("irc_load: probe: c{}: EOF", c.gid);
                        break;
                    }
                    Ok(k) => {
                        for l in String::from_utf8_lossy(&buf[..k]).lines() {
                            eprintln!("irc_load: probe: c{} got {l:?}", c.gid);
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    }
}

fn open(cx: &Ctx<'_>, poll: &Poll, gid: usize, tok: usize) -> std::io::Result<Conn> {
    let mut stream = TcpStream::connect(cx.o.addr)?;
    let _ = stream.set_nodelay(true);
    poll.registry().register(
        &mut stream,
        Token(tok),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    let mut c = Conn {
        stream,
        gid,
        chan: gid % cx.o.channels,
        state: State::Registering,
        rbuf: Vec::new(),
        wbuf: Vec::new(),
        wpos: 0,
        seq: 0,
        why: String::new(),
    };
    let _ = write!(c.wbuf, "NICK c{gid}\r\nUSER u{gid} 0 * :irc_load\r\n");
    Ok(c)
}

fn run_thread(tid: usize, o: Opts, sh: Arc<Shared>) -> Out {
    let mine: Vec<usize> = (tid..o.clients).step_by(o.threads).collect();
    let n = mine.len();
    let mut poll = Poll::new().expect("mio poll");
    let mut events = Events::with_capacity(16384);
    let mut buf = vec![0u8; 64 * 1024];
    let mut cx = Ctx {
        sh: &sh,
        o: &o,
        out: Out {
            counts: vec![Vec::new(); o.clients],
            ..Out::default()
        },
        ws_us: u64::MAX,
        we_us: u64::MAX,
        joined_now: 0,
    };
    let mut conns: Vec<Conn> = Vec::with_capacity(n);
    // Setup: connect with at most `inflight / threads` registrations in flight.
    let limit = (o.inflight / o.threads).max(1);
    let deadline = Instant::now() + Duration::from_secs_f64(o.setup_timeout);
    let mut joined = 0;
    let mut failed = false;
    let setup_start = Instant::now();
    let thread_rate = o.connect_rate / o.threads as f64;
    while joined < n {
        let allowed = if thread_rate > 0.0 {
            (setup_start.elapsed().as_secs_f64() * thread_rate) as usize + 1
        } else {
            usize::MAX
        };
        while conns.len() < n && conns.len() - joined < limit && conns.len() < allowed {
            let tok = conns.len();
            match open(&cx, &poll, mine[tok], tok) {
                Ok(c) => conns.push(c),
                Err(e) => {
                    eprintln!("irc_load: connect c{}: {e}", mine[tok]);
                    failed = true;
                    break;
                }
            }
            let c = conns.last_mut().unwrap();
            flush(c);
        }
        if failed || Instant::now() > deadline || sh.setup_failed.load(Ordering::Relaxed) {
            if !failed && !sh.setup_failed.load(Ordering::Relaxed) {
                eprintln!(
                    "irc_load: thread {tid}: setup timed out, {joined} of {n} joined, {} connected",
                    conns.len()
                );
                probe_stuck(&mut conns, &mut poll, &mut events, &mut buf);
            }
            failed = true;
            break;
        }
        let wait = if thread_rate > 0.0 && conns.len() < n {
            Duration::from_millis(2)
        } else {
            Duration::from_millis(100)
        };
        poll.poll(&mut events, Some(wait)).expect("poll");
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut conns[i];
            if c.state == State::Dead {
                continue;
            }
            cx.joined_now = 0;
            let ok = service(
                c,
                &mut buf,
                &mut cx,
                ev.is_readable() || ev.is_read_closed(),
            );
            joined += cx.joined_now;
            if !ok {
                eprintln!(
                    "irc_load: c{} closed during setup (state {:?}, {}; {} of {n} joined)",
                    c.gid, c.state, c.why, joined
                );
                c.state = State::Dead;
                failed = true;
            }
        }
        if failed {
            break;
        }
    }
    for e in cx.out.errors.drain(..) {
        eprintln!("irc_load: setup: {e}");
    }
    if failed {
        sh.setup_failed.store(true, Ordering::Relaxed);
    }
    sh.barrier.wait();
    if sh.setup_failed.load(Ordering::Relaxed) {
        return cx.out;
    }
    if tid == 0 {
        *sh.t0.lock().unwrap() = Some(Instant::now() + Duration::from_millis(200));
    }
    sh.barrier.wait();
    let t0 = sh.t0.lock().unwrap().unwrap();
    let ws = t0 + Duration::from_secs_f64(o.warmup);
    let we = ws + Duration::from_secs_f64(o.secs);
    cx.ws_us = (ws - sh.epoch).as_micros() as u64;
    cx.we_us = (we - sh.epoch).as_micros() as u64;
    let drain_end = we + Duration::from_secs_f64(o.drain);
    let per_thread_rate = n as f64 * o.rate;
    let mut j: u64 = 0;
    let mut sending = true;
    let mut cpu_start_taken = tid != 0;
    let mut cpu_end_taken = tid != 0;
    let pid_s = o.server_pid.map(|p| p.to_string());
    let coalesce = Duration::from_micros(o.coalesce_us);
    let mut last_poll = Instant::now();
    loop {
        let now = Instant::now();
        if !cpu_start_taken && now >= ws {
            cpu_start_taken = true;
            let mut w = sh.window_cpu.lock().unwrap();
            w[0] = pid_s.as_deref().and_then(proc_cpu_us);
            w[2] = proc_cpu_us("self");
        }
        if !cpu_end_taken && now >= we {
            cpu_end_taken = true;
            let mut w = sh.window_cpu.lock().unwrap();
            w[1] = pid_s.as_deref().and_then(proc_cpu_us);
            w[3] = proc_cpu_us("self");
            if let Some(p) = o.server_pid {
                *sh.rss.lock().unwrap() = (proc_vm_kib(p, "VmHWM:"), proc_vm_kib(p, "VmRSS:"));
            }
        }
        // Send everything due.
        let mut next_due = None;
        while sending {
            let due = t0 + Duration::from_secs_f64(j as f64 / per_thread_rate);
            if due >= we {
                sending = false;
                sh.threads_done_sending.fetch_add(1, Ordering::SeqCst);
                break;
            }
            if due > now {
                next_due = Some(due);
                break;
            }
            let idx = (j % n as u64) as usize;
            j += 1;
            let c = &mut conns[idx];
            if c.state == State::Dead {
                continue;
            }
            let lag = (now - due).as_micros() as u64;
            cx.out.max_lag_us = cx.out.max_lag_us.max(lag);
            if lag > 10_000 {
                cx.out.late_sends += 1;
            }
            let ts = cx.now_us();
            let _ = write!(
                c.wbuf,
                "PRIVMSG #b{} :~L {} {} {}\r\n",
                c.chan, c.gid, c.seq, ts
            );
            c.seq += 1;
            let exp = sh.members[c.chan].saturating_sub(1);
            sh.expected.fetch_add(exp, Ordering::Relaxed);
            if due >= ws {
                cx.out.window_msgs += 1;
                cx.out.window_offered += exp;
            }
            if !flush(c) {
                c.state = State::Dead;
                cx.out.disconnects += 1;
            }
        }
        if !sending {
            if now >= drain_end {
                break;
            }
            if sh.threads_done_sending.load(Ordering::SeqCst) == o.threads
                && sh.received.load(Ordering::Relaxed) >= sh.expected.load(Ordering::Relaxed)
                && (tid != 0 || cpu_end_taken)
            {
                break;
            }
        }
        let mut timeout = Duration::from_millis(50);
        if let Some(d) = next_due {
            timeout = timeout.min(d.saturating_duration_since(now));
        }
        if !cpu_start_taken {
            timeout = timeout.min(ws.saturating_duration_since(now));
        } else if !cpu_end_taken {
            timeout = timeout.min(we.saturating_duration_since(now));
        }
        if coalesce > Duration::ZERO {
            // Wake at most once per `coalesce`: fewer, fuller epoll_waits (each delivery's
            // latency gains at most `coalesce`, half of it on average).
            let since = last_poll.elapsed();
            if since < coalesce {
                let s = (coalesce - since).min(timeout);
                std::thread::sleep(s);
                timeout -= s;
            }
        }
        poll.poll(&mut events, Some(timeout)).expect("poll");
        last_poll = Instant::now();
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.state == State::Dead {
                continue;
            }
            if !service(
                c,
                &mut buf,
                &mut cx,
                ev.is_readable() || ev.is_read_closed(),
            ) {
                c.state = State::Dead;
                cx.out.disconnects += 1;
            }
        }
    }
    cx.out.sent = conns.iter().map(|c| (c.gid, c.seq)).collect();
    cx.out
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64
}

fn main() {
    let o = parse_args();
    let nofile = raise_nofile();
    if (o.clients as u64) + 64 > nofile {
        eprintln!(
            "irc_load: fd limit {nofile} is too low for {} clients",
            o.clients
        );
        std::process::exit(1);
    }
    let mut members = vec![0u64; o.channels];
    for i in 0..o.clients {
        members[i % o.channels] += 1;
    }
    let sh = Arc::new(Shared {
        epoch: Instant::now(),
        barrier: Barrier::new(o.threads),
        t0: Mutex::new(None),
        expected: AtomicU64::new(0),
        received: AtomicU64::new(0),
        threads_done_sending: AtomicUsize::new(0),
        setup_failed: AtomicBool::new(false),
        members,
        window_cpu: Mutex::new([None; 4]),
        rss: Mutex::new((None, None)),
    });
    let handles: Vec<_> = (0..o.threads)
        .map(|t| {
            let (o, sh) = (o.clone(), sh.clone());
            std::thread::spawn(move || run_thread(t, o, sh))
        })
        .collect();
    let outs: Vec<Out> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    if sh.setup_failed.load(Ordering::Relaxed) {
        eprintln!("irc_load: setup failed");
        println!("RESULT ok=0");
        std::process::exit(1);
    }
    // Merge.
    let mut total: Vec<Vec<u32>> = vec![Vec::new(); o.clients];
    let mut sent = vec![0u32; o.clients];
    let (mut wm, mut woff, mut wdel, mut disc, mut lag, mut late) = (0, 0, 0, 0, 0, 0);
    let mut lat = Vec::new();
    let mut slow: Vec<(u64, usize, usize)> = Vec::new();
    for out in outs {
        for (g, v) in out.counts.into_iter().enumerate() {
            let t = &mut total[g];
            if t.len() < v.len() {
                t.resize(v.len(), 0);
            }
            for (s, k) in v.into_iter().enumerate() {
                t[s] += k as u32;
            }
        }
        for (g, s) in out.sent {
            sent[g] = s;
        }
        wm += out.window_msgs;
        woff += out.window_offered;
        wdel += out.window_delivered;
        disc += out.disconnects;
        lag = lag.max(out.max_lag_us);
        late += out.late_sends;
        lat.extend(out.lat_us);
        slow.extend(out.slow);
        for e in out.errors {
            eprintln!("irc_load: {e}");
        }
    }
    let (mut expected, mut received, mut undelivered, mut dups, mut stray) = (0u64, 0u64, 0, 0, 0);
    for g in 0..o.clients {
        let exp = sh.members[g % o.channels].saturating_sub(1);
        let t = &total[g];
        for s in 0..sent[g] as usize {
            let k = t.get(s).copied().unwrap_or(0) as u64;
            expected += exp;
            received += k;
            undelivered += exp.saturating_sub(k);
            dups += k.saturating_sub(exp);
        }
        stray += t
            .iter()
            .skip(sent[g] as usize)
            .map(|&k| k as u64)
            .sum::<u64>();
    }
    lat.sort_unstable();
    let secs = o.secs;
    let w = *sh.window_cpu.lock().unwrap();
    let (hwm, rss) = *sh.rss.lock().unwrap();
    let server_cpu = match (w[0], w[1]) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let client_cpu = match (w[2], w[3]) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let p50 = pct(&lat, 0.50) / 1000.0;
    let p99 = pct(&lat, 0.99) / 1000.0;
    let pmax = lat.last().map(|&v| v as f64 / 1000.0).unwrap_or(f64::NAN);
    let cpu_per = server_cpu.map(|c| c / wdel.max(1) as f64);
    println!(
        "irc_load: {} clients, {} channels, {} msg/s/client, window {} s (warmup {} s), {} threads",
        o.clients, o.channels, o.rate, o.secs, o.warmup, o.threads
    );
    println!(
        "  window: {wm} msgs, offered {:.0} deliveries/s, delivered {:.0} deliveries/s",
        woff as f64 / secs,
        wdel as f64 / secs
    );
    println!(
        "  all messages: expected {expected}, received {received}, undelivered {undelivered}, duplicates {dups}, stray {stray}, disconnects {disc}"
    );
    println!(
        "  latency (msgs sent in window, {} samples): p50 {p50:.2} ms, p99 {p99:.2} ms, max {pmax:.2} ms",
        lat.len()
    );
    if !slow.is_empty() {
        let first = slow.iter().map(|s| s.0).min().unwrap_or(0);
        let last = slow.iter().map(|s| s.0).max().unwrap_or(0);
        let distinct = |f: &dyn Fn(&(u64, usize, usize)) -> usize| {
            let mut v: Vec<usize> = slow.iter().map(f).collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        println!(
            "  slow (> {} ms): {} deliveries of messages sent {:.0} to {:.0} ms into the window; {} receivers, {} senders, {} channels",
            SLOW_US / 1000,
            slow.len(),
            first as f64 / 1000.0,
            last as f64 / 1000.0,
            distinct(&|s| s.1),
            distinct(&|s| s.2),
            distinct(&|s| s.2 % o.channels),
        );
    }
    println!(
        "  send lag max {:.2} ms, sends >10 ms late {late}",
        lag as f64 / 1000.0
    );
    if let Some(c) = server_cpu {
        println!(
            "  server CPU {:.2} s in window ({:.0}% of a core), {:.2} µs/delivery, VmHWM {:.1} MiB, VmRSS {:.1} MiB",
            c / 1e6,
            c / 1e4 / secs,
            cpu_per.unwrap_or(f64::NAN),
            hwm.unwrap_or(f64::NAN) / 1024.0,
            rss.unwrap_or(f64::NAN) / 1024.0
        );
    }
    if let Some(c) = client_cpu {
        println!(
            "  load client CPU {:.2} s in window ({:.0}% of a core)",
            c / 1e6,
            c / 1e4 / secs
        );
    }
    println!(
        "RESULT ok=1 offered={:.1} delivered={:.1} undelivered={undelivered} dups={dups} disconnects={disc} p50_ms={p50:.3} p99_ms={p99:.3} max_ms={pmax:.3} cpu_us_per_delivery={:.3} server_cpu_pct={:.1} hwm_mib={:.2} rss_mib={:.2} client_cpu_pct={:.1} max_lag_ms={:.2}",
        woff as f64 / secs,
        wdel as f64 / secs,
        cpu_per.unwrap_or(f64::NAN),
        server_cpu.map(|c| c / 1e4 / secs).unwrap_or(f64::NAN),
        hwm.unwrap_or(f64::NAN) / 1024.0,
        rss.unwrap_or(f64::NAN) / 1024.0,
        client_cpu.map(|c| c / 1e4 / secs).unwrap_or(f64::NAN),
        lag as f64 / 1000.0,
    );
}
