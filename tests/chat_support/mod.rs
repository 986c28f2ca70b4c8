//! The test client and server harness for `tests/chat.rs` (a module, not a test crate).
//!
//! - [`serve`] starts a chat server with a given [`Config`] on one coact runtime shared by all
//!   the tests of the crate (2 workers); the accept loop keeps running after it returns.
//! - [`Irc`] is a line-based IRC client on a plain `std::net::TcpStream`, used from std threads.
//!   Every wait has a deadline ([`TIMEOUT`]) and a failure prints the client's transcript.
//!   Waits are for the server's replies, never sleeps: [`Irc::sync`] uses PING/PONG (the server
//!   answers a PING only after everything the client sent before it was delivered) and
//!   [`Irc::chan_sync`] uses NAMES (a channel actor answers one client's requests in order).
#![allow(dead_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::server::{self, Config};

/// How long any single wait for the server may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Lines of transcript printed when a wait fails.
const TAIL: usize = 80;

/// The runtime every server of this test crate runs on.
pub fn runtime() -> &'static coact::Runtime {
    static RT: OnceLock<coact::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        coact::Runtime::builder()
            .workers(2)
            .build()
            .expect("build the coact runtime")
    })
}

/// A running chat server.
pub struct Server {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    /// Shuts the server down; dropping it leaves the server running.
    pub handle: server::ServerHandle,
}

impl Server {
    /// Connections the server has open now.
    pub fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

/// The settings most tests use: the defaults, without the flood limit (tests send fast).
pub fn config() -> Config {
    Config {
        flood: None,
        ..Config::default()
    }
}

/// Starts a server with `config` on a free loopback port.
pub fn serve(config: Config) -> Server {
    let handle = runtime().block_on(move || {
        let listener = coact::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        server::start(listener, config)
    });
    let handle = handle.expect("start the chat server");
    Server {
        addr: handle.addr,
        connections: handle.connections.clone(),
        handle,
    }
}

/// One message from the server, parsed.
#[derive(Clone, Debug)]
pub struct Msg {
    pub raw: String,
    /// The prefix without its colon ("" if none).
    pub prefix: String,
    /// The command or the numeric, as sent.
    pub cmd: String,
    pub params: Vec<String>,
}

impl Msg {
    pub fn parse(raw: &str) -> Msg {
        let mut rest = raw;
        let mut prefix = String::new();
        if let Some(r) = rest.strip_prefix(':') {
            let (p, r) = r.split_once(' ').unwrap_or((r, ""));
            prefix = p.to_owned();
            rest = r;
        }
        let rest = rest.trim_start_matches(' ');
        let (cmd, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(t) = rest.strip_prefix(':') {
                params.push(t.to_owned());
                break;
            }
            let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(p.to_owned());
            rest = r;
        }
        Msg {
            raw: raw.to_owned(),
            prefix,
            cmd: cmd.to_owned(),
            params,
        }
    }

    /// The nickname in the prefix (`nick!user@host`).
    pub fn nick(&self) -> &str {
        self.prefix.split('!').next().unwrap_or("")
    }

    /// Parameter `i`, or "" if absent.
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map_or("", String::as_str)
    }

    /// The last parameter, or "".
    pub fn last(&self) -> &str {
        self.params.last().map_or("", String::as_str)
    }

    /// Whether this is the numeric `code` (e.g. "433").
    pub fn is(&self, code: &str) -> bool {
        self.cmd == code
    }
}

/// A test IRC client over a std socket.
pub struct Irc {
    pub label: String,
    stream: TcpStream,
    buf: Vec<u8>,
    log: Vec<String>,
    /// Answer the server's PINGs automatically (on by default).
    pub auto_pong: bool,
    syncs: u64,
    eof: bool,
}

impl Irc {
    /// Connects without registering.
    pub fn connect(addr: SocketAddr, label: &str) -> Irc {
        let stream = TcpStream::connect(addr).expect("connect to the chat server");
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Irc {
            label: label.to_owned(),
            stream,
            buf: Vec::new(),
            log: Vec::new(),
            auto_pong: true,
            syncs: 0,
            eof: false,
        }
    }

    /// Connects and registers as `nick` (user `u<nick>`, real name `Real <nick>`); returns once
    /// the MOTD has ended.
    pub fn register(addr: SocketAddr, nick: &str) -> Irc {
        let mut c = Irc::connect(addr, nick);
        c.send(&format!("NICK {nick}"));
        c.send(&format!("USER u{nick} 0 * :Real {nick}"));
        c.expect_num("001");
        c.expect_num("376");
        c
    }

    /// A clone of the socket (for a writer thread, or to shut it down).
    pub fn socket(&self) -> TcpStream {
        self.stream.try_clone().expect("clone the socket")
    }

    /// Sends one line; CR LF is added.
    pub fn send(&mut self, line: &str) {
        self.log.push(format!(">> {line}"));
        let mut data = line.as_bytes().to_vec();
        data.extend_from_slice(b"\r\n");
        if let Err(e) = self.stream.write_all(&data) {
            self.fail(&format!("sending {line:?}: {e}"));
        }
    }

    /// Sends raw bytes as they are.
    pub fn send_raw(&mut self, data: &[u8]) {
        self.log.push(format!(
            ">> <{} raw bytes: {:?}...>",
            data.len(),
            String::from_utf8_lossy(&data[..data.len().min(40)])
        ));
        if let Err(e) = self.stream.write_all(data) {
            self.fail(&format!("sending {} raw bytes: {e}", data.len()));
        }
    }

    /// Panics with `why` and the end of the transcript.
    pub fn fail(&self, why: &str) -> ! {
        let start = self.log.len().saturating_sub(TAIL);
        let tail = self.log[start..].join("\n    ");
        panic!(
            "[{}] {why}\n  transcript ({} of {} lines):\n    {tail}",
            self.label,
            self.log.len() - start,
            self.log.len()
        );
    }

    /// The next line before `deadline`: `Ok(None)` at end of stream.
    pub fn next_line(&mut self, deadline: Instant) -> io::Result<Option<Msg>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let raw = String::from_utf8_lossy(&line).into_owned();
                self.log.push(format!("<< {raw}"));
                let msg = Msg::parse(&raw);
                if self.auto_pong && msg.cmd == "PING" {
                    let token = msg.last().to_owned();
                    self.send(&format!("PONG :{token}"));
                }
                return Ok(Some(msg));
            }
            if self.eof {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(ErrorKind::TimedOut, "deadline passed"));
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.log.push("<< <end of stream>".into());
                    self.eof = true;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(io::Error::new(ErrorKind::TimedOut, "read timed out"));
                }
                Err(e) => {
                    self.log.push(format!("<< <error: {e}>"));
                    return Err(e);
                }
            }
        }
    }

    /// Reads until a line satisfies `pred` (within `within`); returns the lines skipped before
    /// it and the line. Fails on timeout or end of stream.
    pub fn until_within(
        &mut self,
        what: &str,
        within: Duration,
        pred: impl Fn(&Msg) -> bool,
    ) -> (Vec<Msg>, Msg) {
        let deadline = Instant::now() + within;
        let mut skipped = Vec::new();
        loop {
            match self.next_line(deadline) {
                Ok(Some(m)) if pred(&m) => return (skipped, m),
                Ok(Some(m)) => skipped.push(m),
                Ok(None) => self.fail(&format!("connection closed while waiting for {what}")),
                Err(e) => self.fail(&format!("no {what} within {within:?} ({e})")),
            }
        }
    }

    /// [`Irc::until_within`] with [`TIMEOUT`].
    pub fn until(&mut self, what: &str, pred: impl Fn(&Msg) -> bool) -> (Vec<Msg>, Msg) {
        self.until_within(what, TIMEOUT, pred)
    }

    /// Waits for a line satisfying `pred`.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&Msg) -> bool) -> Msg {
        self.until(what, pred).1
    }

    /// Waits for numeric `code`.
    pub fn expect_num(&mut self, code: &str) -> Msg {
        self.expect(&format!("numeric {code}"), |m| m.is(code))
    }

    /// Waits for numeric `code` whose second parameter (after our nick) is `arg`.
    pub fn expect_num_for(&mut self, code: &str, arg: &str) -> Msg {
        self.expect(&format!("numeric {code} for {arg}"), |m| {
            m.is(code) && m.param(1).eq_ignore_ascii_case(arg)
        })
    }

    /// Waits for `cmd` from `nick` (e.g. a JOIN or a PRIVMSG of another client).
    pub fn expect_from(&mut self, nick: &str, cmd: &str) -> Msg {
        self.expect(&format!("{cmd} from {nick}"), |m| {
            m.cmd == cmd && m.nick().eq_ignore_ascii_case(nick)
        })
    }

    /// Waits for a PRIVMSG (or NOTICE) from `nick` to `target` with text `text`.
    pub fn expect_msg(&mut self, cmd: &str, nick: &str, target: &str, text: &str) -> Msg {
        self.expect(&format!("{cmd} {target} :{text} from {nick}"), |m| {
            m.cmd == cmd && m.nick() == nick && m.param(0) == target && m.param(1) == text
        })
    }

    /// Round trip with PING/PONG: returns every line that arrived before the PONG. The server
    /// delivers everything this client sent before the PING (to channels and users) first.
    pub fn sync(&mut self) -> Vec<Msg> {
        self.syncs += 1;
        let token = format!("sync-{}-{}", self.label, self.syncs);
        self.send(&format!("PING :{token}"));
        self.until(&format!("PONG {token}"), |m| {
            m.cmd == "PONG" && m.last() == token
        })
        .0
    }

    /// Round trip through a channel's actor (NAMES, then 366): returns every line before the
    /// 366, which includes the replies to this client's earlier requests to that channel.
    pub fn chan_sync(&mut self, chan: &str) -> Vec<Msg> {
        self.send(&format!("NAMES {chan}"));
        self.until(&format!("366 for {chan}"), |m| {
            m.is("366") && m.param(1).eq_ignore_ascii_case(chan)
        })
        .0
    }

    /// Joins a channel and waits for the end of its NAMES list; returns the nicks listed.
    /// `chan` may be followed by a key (`"#c key"`).
    pub fn join(&mut self, chan_key: &str) -> Vec<String> {
        self.send(&format!("JOIN {chan_key}"));
        let chan = chan_key.split(' ').next().unwrap_or_default();
        let (lines, _) = self.until(&format!("366 for {chan}"), |m| {
            m.is("366") && m.param(1).eq_ignore_ascii_case(chan)
        });
        names_in(&lines, chan)
    }

    /// Reads to the end of the stream (within `within`): returns the lines read, and whether the
    /// connection ended with a reset rather than a clean end of stream. Fails on timeout.
    pub fn read_to_end(&mut self, within: Duration) -> (Vec<Msg>, bool) {
        let deadline = Instant::now() + within;
        let mut lines = Vec::new();
        loop {
            match self.next_line(deadline) {
                Ok(Some(m)) => lines.push(m),
                Ok(None) => return (lines, false),
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    self.fail(&format!("the server did not close the connection: {e}"))
                }
                Err(_) => return (lines, true),
            }
        }
    }

    /// Closes the connection without a QUIT.
    pub fn hang_up(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// The nicks (without @ or +) in the 353 replies for `chan` among `lines`.
pub fn names_in(lines: &[Msg], chan: &str) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .filter(|m| m.is("353") && m.param(2).eq_ignore_ascii_case(chan))
        .flat_map(|m| m.last().split(' ').map(str::to_owned).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    v.sort();
    v
}

/// The numerics among `lines` (e.g. ["404", "482"]).
pub fn numerics(lines: &[Msg]) -> Vec<&str> {
    lines
        .iter()
        .filter(|m| m.cmd.len() == 3 && m.cmd.bytes().all(|b| b.is_ascii_digit()))
        .map(|m| m.cmd.as_str())
        .collect()
}

/// A small seeded PRNG (xorshift64*), so junk is the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Polls `cond` (cheaply, every 20 ms) until it holds or `within` passes. For watching files
/// written by another process, where there is no reply to wait for.
pub fn poll_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
