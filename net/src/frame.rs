//! The wire: length-prefixed bincode frames.
//!
//! A frame is a `u32` big-endian length followed by that many bytes of payload, the bincode
//! (standard configuration) encoding of a [`Frame`]. A length above the link's `max_frame`
//! closes the link before anything is allocated for it.

use std::io::{self, Read};

use bincode::config::{self, Config};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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

/// Encodes `value` with bincode's standard configuration.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, config::standard()).map_err(|e| e.to_string())
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

fn decode_with<T: DeserializeOwned, C: Config>(bytes: &[u8], c: C) -> Result<T, String> {
    let (v, read) = bincode::serde::decode_from_slice(bytes, c).map_err(|e| e.to_string())?;
    if read != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - read));
    }
    Ok(v)
}

/// Decodes all of `bytes` as a `T`, with a bincode decode limit of at least `limit` (the
/// smallest of 64 KiB, 1 MiB, 16 MiB, 256 MiB or 4 GiB that covers it: bincode takes its limit
/// as a constant). Trailing bytes are an error.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, String> {
    let c = config::standard();
    if limit <= 64 << 10 {
        decode_with(bytes, c.with_limit::<{ 64 << 10 }>())
    } else if limit <= 1 << 20 {
        decode_with(bytes, c.with_limit::<{ 1 << 20 }>())
    } else if limit <= 16 << 20 {
        decode_with(bytes, c.with_limit::<{ 16 << 20 }>())
    } else if limit <= 256 << 20 {
        decode_with(bytes, c.with_limit::<{ 256 << 20 }>())
    } else {
        decode_with(bytes, c.with_limit::<{ u32::MAX as usize }>())
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
    decode(&buf, max_frame)
        .map_err(|e| ReadError::Bad(format!("a frame that does not decode: {e}")))
}

/// Decodes a byte string the way a link does (length prefixes and all, up to 16 MiB frames),
/// for fuzzing: every frame in it, until the input ends or one is bad. Never panics.
#[doc(hidden)]
pub fn decode_frame_for_fuzzing(data: &[u8]) -> usize {
    let mut r = data;
    let mut n = 0;
    while let Ok(f) = read_frame(&mut r, 16 << 20) {
        let _ = f.kind();
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
