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
        payload: Vec<u8>,
        replies: Vec<u64>,
    },
    /// The answer to the reply id `id` (`None`: it was dropped unanswered).
    Reply { id: u64, payload: Option<Vec<u8>> },
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
