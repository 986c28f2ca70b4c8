//! The wire: length-prefixed bincode frames.
//!
//! A frame is a `u32` big-endian length followed by that many bytes of payload, the bincode
//! (standard configuration) encoding of a [`Frame`]. A length above the link's `max_frame`
//! closes the link before anything is allocated for it.

use std::io::{self, Read};

use bincode::config;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::de::{self, Decoder};

/// The magic of a `Hello`.
pub(crate) const MAGIC: [u8; 5] = *b"COACT";
/// The protocol version this crate speaks.
pub(crate) const VERSION: u32 = 1;

/// What a lookup found.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) enum LookupAnswer {
    /// Exported with the type asked for.
    Found,
    /// Nothing is exported under that name.
    NotExported,
    /// Exported, but for messages of another type (its name).
    WrongType(String),
}

/// Payload bytes as one byte string rather than a sequence of `u8`s. The bincode encoding is
/// the same (a length, then the bytes), so this changes speed, not the wire: serde would
/// otherwise decode a `Vec<u8>` one byte at a time.
mod bytes {
    use serde::{de, Deserializer, Serializer};
    use std::fmt;

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Bytes)
    }

    pub(super) struct Bytes;

    impl<'de> de::Visitor<'de> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut v = Vec::new();
            while let Some(b) = seq.next_element()? {
                v.push(b);
            }
            Ok(v)
        }
    }
}

/// [`bytes`] for an optional payload.
mod opt_bytes {
    use serde::{de, Deserializer, Serializer};
    use std::fmt;

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&Wrap(b)),
            None => s.serialize_none(),
        }
    }

    struct Wrap<'a>(&'a [u8]);

    impl serde::Serialize for Wrap<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        d.deserialize_option(Opt)
    }

    struct Opt;

    impl<'de> de::Visitor<'de> for Opt {
        type Value = Option<Vec<u8>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an optional byte string")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_byte_buf(super::bytes::Bytes).map(Some)
        }
    }
}

/// One frame.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// The first frame of each side.
    Hello {
        magic: [u8; 5],
        version: u32,
        node: String,
        challenge: [u8; 32],
    },
    /// The HMAC that proves the sender knows the shared secret.
    Proof { mac: Vec<u8> },
    /// The sender refuses the link, and says why; it closes the connection next.
    Refused { reason: String },
    /// Is `name` exported, for messages of type `type_name`?
    Lookup {
        id: u64,
        name: String,
        type_name: String,
    },
    /// The answer to the `Lookup` with the same id.
    LookupReply { id: u64, result: LookupAnswer },
    /// A message for the actor exported as `name`. `replies` lists the reply ids inside the
    /// payload, so that they can be failed if the message cannot be delivered.
    Send {
        name: String,
        #[serde(with = "bytes")]
        payload: Vec<u8>,
        replies: Vec<u64>,
    },
    /// The answer to the reply id `id` (`None`: it was dropped unanswered).
    Reply {
        id: u64,
        #[serde(with = "opt_bytes")]
        payload: Option<Vec<u8>>,
    },
    /// Nothing to say; the link is alive.
    Heartbeat,
}

impl Frame {
    /// A short name for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "Hello",
            Frame::Proof { .. } => "Proof",
            Frame::Refused { .. } => "Refused",
            Frame::Lookup { .. } => "Lookup",
            Frame::LookupReply { .. } => "LookupReply",
            Frame::Send { .. } => "Send",
            Frame::Reply { .. } => "Reply",
            Frame::Heartbeat => "Heartbeat",
        }
    }
}

/// bincode's standard configuration, which every encoding on the wire uses.
pub(crate) fn config() -> config::Configuration {
    config::standard()
}

/// Encodes a frame with its length prefix, ready to be written.
pub(crate) fn encode_frame(frame: &Frame) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; 4];
    bincode::serde::encode_into_std_write(frame, &mut out, config::standard())
        .map_err(|e| e.to_string())?;
    let len = u32::try_from(out.len() - 4).map_err(|_| "frame longer than 4 GiB".to_owned())?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Decodes all of `bytes` as a `T` (bincode's standard format, see [`crate::de`]). Trailing
/// bytes are an error. Every allocation is bounded by `bytes`, which a link bounds by its
/// maximum frame size.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    de::from_slice(bytes)
}

/// The variant index of [`Frame::Send`] (bincode writes an index below 251 as one byte).
const SEND: u8 = 5;

/// A decoded `Send` frame, its name and payload borrowed from the bytes it was read from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SendIn<'a> {
    /// The name (not yet checked to be UTF-8: a name that matches an export is).
    pub(crate) name: &'a [u8],
    /// The encoded message.
    pub(crate) payload: &'a [u8],
    /// The reply ids inside the payload.
    pub(crate) replies: Vec<u64>,
}

/// If `body` (a frame without its length prefix) is a `Send` frame, decodes it without
/// copying its name or payload; `None` for any other frame. This reads bincode's encoding of
/// `Frame::Send` directly, field by field through the message decoder's reader (tests hold it
/// to bincode's): it is the one frame a busy link carries millions of.
pub(crate) fn decode_send(body: &[u8]) -> Option<Result<SendIn<'_>, String>> {
    let fields = Decoder::new(body.strip_prefix(&[SEND])?);
    Some(send_fields(fields).map_err(|e| e.to_string()))
}

/// The fields of a `Send` frame after its variant byte.
#[inline]
fn send_fields(mut d: Decoder<'_>) -> Result<SendIn<'_>, de::Error> {
    let name = d.bytes()?;
    let payload = d.bytes()?;
    // Every id takes at least a byte: a count past the bytes left is refused before anything
    // is allocated for it.
    let n = d.count()?;
    let mut replies = Vec::with_capacity(n);
    for _ in 0..n {
        replies.push(d.u64()?);
    }
    d.end()?;
    Ok(SendIn {
        name,
        payload,
        replies,
    })
}

/// Appends `v` as bincode's standard configuration writes a `u64` (a varint).
fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(251);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(252);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A `Send` frame being built in place, with the bytes of [`Frame::Send`]'s bincode encoding:
/// [`begin_send`] writes the length prefix's room, the variant and the name, and the room for
/// the payload's length; the caller appends the payload (encoding the message straight into
/// the frame); [`SendHead::finish`] writes the payload's length, the reply ids and the
/// frame's length. A message costs no copy of its payload and no serde pass over the frame.
pub(crate) struct SendHead {
    /// Where the frame starts (its length prefix).
    at: usize,
    /// Where the payload's length goes (one byte is kept for it).
    len_at: usize,
}

/// Starts a `Send` frame to the export `name` at the end of `out`.
pub(crate) fn begin_send(out: &mut Vec<u8>, name: &str) -> SendHead {
    let at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, SEND]);
    put_varint(out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
    let len_at = out.len();
    out.push(0);
    SendHead { at, len_at }
}

impl SendHead {
    /// Ends the frame: everything after the head is its payload. On an error (a frame over
    /// 4 GiB) the frame is taken off `out` again.
    pub(crate) fn finish(self, out: &mut Vec<u8>, replies: &[u64]) -> Result<(), String> {
        let payload = (out.len() - self.len_at - 1) as u64;
        if payload < 251 {
            out[self.len_at] = payload as u8;
        } else {
            // A longer varint: the payload moves up by a few bytes (rare for small messages,
            // and cheap beside encoding a large one).
            let mut wide = Vec::with_capacity(9);
            put_varint(&mut wide, payload);
            out.splice(self.len_at..self.len_at + 1, wide);
        }
        put_varint(out, replies.len() as u64);
        for &id in replies {
            put_varint(out, id);
        }
        let Ok(len) = u32::try_from(out.len() - self.at - 4) else {
            out.truncate(self.at);
            return Err("frame longer than 4 GiB".to_owned());
        };
        out[self.at..self.at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

/// Reads frames from a byte stream through one buffer: each read asks for as much as the
/// buffer holds, so many small frames cost one system call, and a frame is handed out as a
/// slice of the buffer without being copied.
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The buffer's usual size; it grows for a larger frame and shrinks back once empty.
    base: usize,
}

impl FrameReader {
    /// A reader with a buffer of `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> FrameReader {
        FrameReader {
            buf: vec![0; capacity.max(16)],
            start: 0,
            end: 0,
            base: capacity.max(16),
        }
    }

    /// The length of the frame at the front of the buffer, once its prefix is in.
    fn front_len(&self) -> Option<usize> {
        let prefix = self.buf.get(self.start..self.start + 4)?;
        (self.end - self.start >= 4)
            .then(|| u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize)
    }

    /// Whether a whole frame is buffered (the next [`next`](Self::next) will not read).
    pub(crate) fn has_frame(&self) -> bool {
        self.front_len()
            .is_some_and(|len| self.end - self.start >= 4 + len)
    }

    /// The next frame's bytes (without the length prefix), reading from `r` as needed; `read`
    /// is told how many bytes each read brought. A length above `max_frame` is refused before
    /// anything is allocated for it.
    pub(crate) fn next(
        &mut self,
        r: &mut impl Read,
        max_frame: usize,
        mut read: impl FnMut(usize),
    ) -> Result<&[u8], ReadError> {
        loop {
            let mut want = 4;
            if let Some(len) = self.front_len() {
                if len > max_frame {
                    return Err(ReadError::Bad(format!(
                        "a frame of {len} bytes (the limit is {max_frame})"
                    )));
                }
                if self.end - self.start >= 4 + len {
                    let at = self.start + 4;
                    self.start = at + len;
                    return Ok(&self.buf[at..at + len]);
                }
                want = 4 + len;
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
                if self.buf.len() > self.base {
                    self.buf.truncate(self.base);
                    self.buf.shrink_to_fit();
                }
            }
            if self.start + want > self.buf.len() || self.end == self.buf.len() {
                // Move the partial frame to the front, and make room for all of it.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if want > self.buf.len() {
                    self.buf.resize(want, 0);
                }
            }
            match r.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => {
                    self.end += n;
                    read(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }
}

/// Why reading a frame failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The connection failed, ended, or timed out.
    Io(io::Error),
    /// The peer sent something that is not a frame.
    Bad(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                f.write_str("the connection was closed")
            }
            ReadError::Io(e) if e.kind() == io::ErrorKind::TimedOut => {
                f.write_str("nothing was heard from the peer in time")
            }
            ReadError::Io(e) => write!(f, "i/o error: {e}"),
            ReadError::Bad(why) => write!(f, "bad input: {why}"),
        }
    }
}

/// Reads one frame. A length above `max_frame` is refused before anything is allocated.
pub(crate) fn read_frame(r: &mut impl Read, max_frame: usize) -> Result<Frame, ReadError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(ReadError::Io)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max_frame {
        return Err(ReadError::Bad(format!(
            "a frame of {len} bytes (the limit is {max_frame})"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).map_err(ReadError::Io)?;
    decode(&buf).map_err(|e| ReadError::Bad(format!("a frame that does not decode: {e}")))
}

/// Decodes a byte string the way a link does (length prefixes and all, up to 16 MiB frames),
/// for fuzzing: every frame in it, until the input ends or one is bad. Never panics.
#[doc(hidden)]
pub fn decode_frame_for_fuzzing(data: &[u8]) -> usize {
    let mut r = data;
    let mut frames = FrameReader::new(1024);
    let mut n = 0;
    while let Ok(body) = frames.next(&mut r, 16 << 20, |_| {}) {
        let ok = match decode_send(body) {
            Some(send) => send.is_ok(),
            None => decode::<Frame>(body).is_ok(),
        };
        if !ok {
            break;
        }
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    /// The frame enum as it was with plain `Vec<u8>` payloads: the byte-string encoding must
    /// produce the very same bytes, so older and newer nodes still understand each other.
    #[derive(Serialize)]
    #[allow(dead_code)]
    enum PlainFrame {
        Hello,
        Proof,
        Refused,
        Lookup,
        LookupReply,
        Send {
            name: String,
            payload: Vec<u8>,
            replies: Vec<u64>,
        },
        Reply {
            id: u64,
            payload: Option<Vec<u8>>,
        },
    }

    #[test]
    fn byte_string_payloads_keep_the_wire_format() {
        let cfg = bincode::config::standard();
        let payload: Vec<u8> = (0..=255u8).chain([0, 1, 2]).collect();
        let new = bincode::serde::encode_to_vec(
            Frame::Send {
                name: "n".into(),
                payload: payload.clone(),
                replies: vec![7, 300],
            },
            cfg,
        )
        .unwrap();
        let old = bincode::serde::encode_to_vec(
            PlainFrame::Send {
                name: "n".into(),
                payload: payload.clone(),
                replies: vec![7, 300],
            },
            cfg,
        )
        .unwrap();
        assert_eq!(new, old);
        for p in [None, Some(payload.clone())] {
            let new = bincode::serde::encode_to_vec(
                Frame::Reply {
                    id: 9,
                    payload: p.clone(),
                },
                cfg,
            )
            .unwrap();
            let old = bincode::serde::encode_to_vec(PlainFrame::Reply { id: 9, payload: p }, cfg)
                .unwrap();
            assert_eq!(new, old);
        }
    }

    #[test]
    fn frames_round_trip() {
        let frames = [
            Frame::Hello {
                magic: MAGIC,
                version: VERSION,
                node: "a".into(),
                challenge: [7; 32],
            },
            Frame::Send {
                name: "x".into(),
                payload: vec![1, 2, 3],
                replies: vec![9],
            },
            Frame::Reply {
                id: 3,
                payload: None,
            },
            Frame::Heartbeat,
        ];
        for f in frames {
            let bytes = encode_frame(&f).unwrap();
            let back = read_frame(&mut &bytes[..], 1 << 20).unwrap();
            assert_eq!(back, f);
        }
    }

    #[test]
    fn oversized_length_is_refused() {
        let bytes = [0xFF, 0xFF, 0xFF, 0xFF, 0];
        assert!(matches!(
            read_frame(&mut &bytes[..], 1 << 20),
            Err(ReadError::Bad(_))
        ));
    }

    fn sends() -> Vec<(String, Vec<u8>, Vec<u64>)> {
        let mut out = vec![
            (String::new(), vec![], vec![]),
            ("counter".into(), vec![7; 64], vec![]),
            ("x".into(), vec![1; 250], vec![0, 250, 251, 65_535, 65_536]),
            (
                "é".repeat(200),
                vec![2; 251],
                vec![u64::from(u32::MAX) + 1, u64::MAX],
            ),
            ("big".into(), vec![3; 70_000], vec![9]),
        ];
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..200 {
            let name = "n".repeat(r.below(300) as usize);
            let payload = (0..r.below(600)).map(|_| r.next() as u8).collect();
            let replies = (0..r.below(4)).map(|_| r.next() >> r.below(64)).collect();
            out.push((name, payload, replies));
        }
        out
    }

    #[test]
    fn the_hand_written_send_encoding_is_bincodes() {
        for (name, payload, replies) in sends() {
            let mut ours = vec![0xAA]; // appends after what is there
            let head = begin_send(&mut ours, &name);
            ours.extend_from_slice(&payload);
            head.finish(&mut ours, &replies).unwrap();
            let theirs = encode_frame(&Frame::Send {
                name: name.clone(),
                payload: payload.clone(),
                replies: replies.clone(),
            })
            .unwrap();
            assert_eq!(ours[1..], theirs[..]);
            let back = decode_send(&theirs[4..]).expect("a Send frame").unwrap();
            assert_eq!(
                back,
                SendIn {
                    name: name.as_bytes(),
                    payload: &payload,
                    replies,
                }
            );
        }
    }

    #[test]
    fn other_frames_are_not_taken_for_sends() {
        for f in [
            Frame::Heartbeat,
            Frame::Reply {
                id: 5,
                payload: Some(vec![5]),
            },
            Frame::Refused { reason: "x".into() },
        ] {
            assert!(decode_send(&encode_frame(&f).unwrap()[4..]).is_none());
        }
    }

    #[test]
    fn damaged_sends_decode_as_bincode_decodes_them_or_fail() {
        let mut r = Rng(77);
        for (name, payload, replies) in sends().into_iter().take(60) {
            let good = encode_frame(&Frame::Send {
                name,
                payload,
                replies,
            })
            .unwrap();
            for _ in 0..50 {
                let mut body = good[4..].to_vec();
                match r.below(3) {
                    0 => body.truncate(r.below(body.len() as u64) as usize),
                    1 => {
                        let i = r.below(body.len() as u64) as usize;
                        body[i] = r.next() as u8;
                    }
                    _ => body.push(r.next() as u8),
                }
                let theirs = decode::<Frame>(&body);
                match decode_send(&body) {
                    None => assert!(!matches!(theirs, Ok(Frame::Send { .. }))),
                    Some(Ok(ours)) => match (std::str::from_utf8(ours.name), theirs) {
                        (
                            Ok(n),
                            Ok(Frame::Send {
                                name,
                                payload,
                                replies,
                            }),
                        ) => {
                            assert_eq!(n, name);
                            assert_eq!(ours.payload, &payload[..]);
                            assert_eq!(ours.replies, replies);
                        }
                        (Ok(_), other) => panic!("we decoded what bincode did not: {other:?}"),
                        (Err(_), theirs) => assert!(theirs.is_err()),
                    },
                    Some(Err(_)) => assert!(!matches!(theirs, Ok(Frame::Send { .. }))),
                }
            }
        }
    }

    /// Hands out its input a few bytes per read.
    struct Trickle<'a> {
        data: &'a [u8],
        rng: Rng,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (1 + self.rng.below(9) as usize)
                .min(buf.len())
                .min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_frame_reader_reassembles_frames_from_any_split() {
        let frames: Vec<Vec<u8>> = (0..300u32)
            .map(|i| vec![i as u8; (i as usize * 37) % 200])
            .chain([vec![1; 1000], vec![], vec![2; 70]])
            .collect();
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend_from_slice(&(f.len() as u32).to_be_bytes());
            wire.extend_from_slice(f);
        }
        for (cap, rng) in [(16, 1), (64, 2), (512, 3), (1 << 16, 4)] {
            let mut src = Trickle {
                data: &wire,
                rng: Rng(rng),
            };
            let mut rd = FrameReader::new(cap);
            let mut total = 0;
            for f in &frames {
                assert_eq!(rd.next(&mut src, 4096, |n| total += n).unwrap(), &f[..]);
            }
            assert_eq!(total, wire.len());
            assert!(!rd.has_frame());
            let end = rd.next(&mut src, 4096, |_| {});
            assert!(
                matches!(end, Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof)
            );
        }
    }

    #[test]
    fn the_frame_reader_refuses_a_long_frame_before_reading_it() {
        let mut wire = 5000u32.to_be_bytes().to_vec();
        wire.extend_from_slice(&[0; 10]);
        let mut rd = FrameReader::new(64);
        let r = rd.next(&mut &wire[..], 4096, |_| {});
        assert!(matches!(r, Err(ReadError::Bad(_))));
        assert_eq!(rd.buf.len(), 64, "nothing was allocated for it");
    }
}
