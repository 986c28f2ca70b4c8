//! The IRC wire format (RFC 1459 / RFC 2812): line framing, message parsing, numerics.

use std::fmt::Write as _;

/// The longest line a client may send, CR LF included.
pub const MAX_LINE: usize = 512;

/// One parsed client message.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    /// The command, upper-cased (`PRIVMSG`, `NICK`, ...).
    pub command: String,
    /// The parameters; a trailing parameter (after ` :`) may contain spaces.
    pub params: Vec<String>,
}

/// Parses one line (without CR LF). `None` for an empty line, which clients may send.
pub fn parse(line: &str) -> Option<Message> {
    let mut rest = line.trim_start_matches(' ');
    if let Some(r) = rest.strip_prefix(':') {
        // A prefix from a client is ignored (RFC 2812 2.3).
        rest = r
            .split_once(' ')
            .map_or("", |(_, r)| r)
            .trim_start_matches(' ');
    }
    if rest.is_empty() {
        return None;
    }
    let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing.to_owned());
            break;
        }
        let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(p.to_owned());
        rest = r;
    }
    Some(Message {
        command: command.to_ascii_uppercase(),
        params,
    })
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes.
#[derive(Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// The current line overflowed: drop bytes until its end.
    discarding: bool,
}

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, CR LF stripped, invalid UTF-8 replaced.
    Line(String),
    /// A line longer than [`MAX_LINE`] was dropped.
    TooLong,
}

impl Framer {
    /// Adds received bytes and returns the complete frames in them.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Frame>) {
        for &b in data {
            if b == b'\n' {
                if self.discarding {
                    self.discarding = false;
                } else {
                    let mut line = std::mem::take(&mut self.buf);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    out.push(Frame::Line(String::from_utf8_lossy(&line).into_owned()));
                }
                self.buf.clear();
            } else if !self.discarding {
                self.buf.push(b);
                // Room for the CR LF that ends the line.
                if self.buf.len() > MAX_LINE - 2 && !(self.buf.len() == MAX_LINE - 1 && b == b'\r')
                {
                    self.buf.clear();
                    self.discarding = true;
                    out.push(Frame::TooLong);
                }
            }
        }
    }
}

/// IRC's case mapping (RFC 1459: `{}|^` are the lower case of `[]\~`).
pub fn fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Whether `nick` is a valid nickname (RFC 2812 2.3.1, up to 30 characters).
pub fn valid_nick(nick: &str) -> bool {
    let special = |c: char| "[]\\`_^{|}".contains(c);
    let mut chars = nick.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || special(c) => {}
        _ => return false,
    }
    nick.len() <= 30 && chars.all(|c| c.is_ascii_alphanumeric() || special(c) || c == '-')
}

/// Whether `name` is a valid channel name.
pub fn valid_channel(name: &str) -> bool {
    (name.starts_with('#') || name.starts_with('&'))
        && name.len() > 1
        && name.len() <= 50
        && !name.contains([' ', ',', '\x07', ':'])
}

/// Simple glob matching for ban masks (`*` and `?`), case-folded.
pub fn mask_matches(mask: &str, target: &str) -> bool {
    fn go(m: &[u8], t: &[u8]) -> bool {
        match (m.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&m[1..], t) || (!t.is_empty() && go(m, &t[1..])),
            (Some(b'?'), Some(_)) => go(&m[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&m[1..], &t[1..]),
            _ => false,
        }
    }
    go(fold(mask).as_bytes(), fold(target).as_bytes())
}

/// Numeric replies used by the server.
#[allow(missing_docs)]
pub mod num {
    pub const RPL_WELCOME: u16 = 1;
    pub const RPL_YOURHOST: u16 = 2;
    pub const RPL_CREATED: u16 = 3;
    pub const RPL_MYINFO: u16 = 4;
    pub const RPL_ISUPPORT: u16 = 5;
    pub const RPL_UMODEIS: u16 = 221;
    pub const RPL_AWAY: u16 = 301;
    pub const RPL_UNAWAY: u16 = 305;
    pub const RPL_NOWAWAY: u16 = 306;
    pub const RPL_WHOISUSER: u16 = 311;
    pub const RPL_WHOISSERVER: u16 = 312;
    pub const RPL_ENDOFWHO: u16 = 315;
    pub const RPL_ENDOFWHOIS: u16 = 318;
    pub const RPL_LISTSTART: u16 = 321;
    pub const RPL_LIST: u16 = 322;
    pub const RPL_LISTEND: u16 = 323;
    pub const RPL_CHANNELMODEIS: u16 = 324;
    pub const RPL_NOTOPIC: u16 = 331;
    pub const RPL_TOPIC: u16 = 332;
    pub const RPL_WHOREPLY: u16 = 352;
    pub const RPL_NAMREPLY: u16 = 353;
    pub const RPL_ENDOFNAMES: u16 = 366;
    pub const RPL_BANLIST: u16 = 367;
    pub const RPL_ENDOFBANLIST: u16 = 368;
    pub const RPL_MOTD: u16 = 372;
    pub const RPL_MOTDSTART: u16 = 375;
    pub const RPL_ENDOFMOTD: u16 = 376;
    pub const ERR_NOSUCHNICK: u16 = 401;
    pub const ERR_NOSUCHCHANNEL: u16 = 403;
    pub const ERR_CANNOTSENDTOCHAN: u16 = 404;
    pub const ERR_NORECIPIENT: u16 = 411;
    pub const ERR_NOTEXTTOSEND: u16 = 412;
    pub const ERR_INPUTTOOLONG: u16 = 417;
    pub const ERR_UNKNOWNCOMMAND: u16 = 421;
    pub const ERR_NONICKNAMEGIVEN: u16 = 431;
    pub const ERR_ERRONEUSNICKNAME: u16 = 432;
    pub const ERR_NICKNAMEINUSE: u16 = 433;
    pub const ERR_USERNOTINCHANNEL: u16 = 441;
    pub const ERR_NOTONCHANNEL: u16 = 442;
    pub const ERR_NOTREGISTERED: u16 = 451;
    pub const ERR_NEEDMOREPARAMS: u16 = 461;
    pub const ERR_ALREADYREGISTERED: u16 = 462;
    pub const ERR_KEYSET: u16 = 467;
    pub const ERR_CHANNELISFULL: u16 = 471;
    pub const ERR_UNKNOWNMODE: u16 = 472;
    pub const ERR_BANNEDFROMCHAN: u16 = 474;
    pub const ERR_BADCHANNELKEY: u16 = 475;
    pub const ERR_CHANOPRIVSNEEDED: u16 = 482;
    pub const ERR_UMODEUNKNOWNFLAG: u16 = 501;
    pub const ERR_USERSDONTMATCH: u16 = 502;
}

/// Formats a numeric reply: `:server NNN target params... :trailing`.
pub fn numeric(server: &str, code: u16, target: &str, params: &[&str], trailing: &str) -> String {
    let mut s = format!(":{server} {code:03} {target}");
    for p in params {
        s.push(' ');
        s.push_str(p);
    }
    let _ = write!(s, " :{trailing}\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefix_params_and_trailing() {
        let m = parse(":nick!u@h privmsg #chan :hello there").unwrap();
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, vec!["#chan", "hello there"]);
        assert_eq!(parse("   "), None);
        assert_eq!(parse("NICK  bob ").unwrap().params, vec!["bob"]);
    }

    #[test]
    fn framer_splits_and_rejects_long_lines() {
        let mut f = Framer::default();
        let mut out = Vec::new();
        f.push(b"NICK a\r\nUSER", &mut out);
        f.push(b" x 0 * :y\n", &mut out);
        assert_eq!(
            out,
            vec![
                Frame::Line("NICK a".into()),
                Frame::Line("USER x 0 * :y".into())
            ]
        );
        out.clear();
        f.push(&[b'a'; 600], &mut out);
        f.push(b"\r\nPING x\r\n", &mut out);
        assert_eq!(out, vec![Frame::TooLong, Frame::Line("PING x".into())]);
    }
}
