//! Decoding: a serde deserializer for bincode's standard format, reading from a slice.
//!
//! Bincode encodes everything a link sends; this reads it back. The format is bincode 2's
//! `config::standard()`: integers wider than a byte as varints (a value below 251 is one byte;
//! the tags 251, 252, 253 and 254 announce a little-endian `u16`, `u32`, `u64` or `u128`),
//! signed integers zigzagged first, `u8`/`i8` and floats as their little-endian bytes, a `char`
//! as its UTF-8 bytes, lengths of strings, byte strings, sequences and maps as varints, an
//! `Option` and a `bool` as a byte 0 or 1, an enum's variant as a varint index, structs and
//! tuples as their fields in order.
//!
//! Why not bincode's own deserializer: it zero-fills every byte string and string it decodes
//! before copying into it (`calloc`, which glibc serves without its per-thread cache), which
//! was the largest single cost of receiving small messages. Here a byte string is one
//! allocation and one copy, and a borrowed `&str` or `&[u8]` none. What it accepts and refuses
//! is bincode's, checked against bincode's decoder on the same bytes (see the tests), with one
//! deliberate difference: a sequence or map that claims more elements than bytes are left is
//! refused, where bincode would loop over that many zero-sized elements.
//!
//! Every allocation is bounded by the input: a length past the bytes left is an error before
//! anything is allocated, and serde's collections reserve at most what a hint can prove.
//! Nesting is bounded too: a value nested deeper than [`MAX_DEPTH`] (an option in an option
//! in ..., which a recursive message type allows and each level of which costs a byte) is
//! refused, where bincode would recurse until a coroutine's stack overflowed and the process
//! aborted.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};
use serde::Deserialize;

/// Why bytes did not decode.
#[derive(Debug)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl Error {
    fn end() -> Error {
        Error("the input ends early".to_owned())
    }
}

/// How deeply values may nest (options, sequences, maps, structs, enums and newtypes within
/// one another). Each level takes stack in serde's generated code (about half a KiB in a debug
/// build, less optimised), and a link reader runs on a coroutine stack, 64 KiB by default.
pub(crate) const MAX_DEPTH: u32 = 64;

/// Decodes all of `bytes` as a `T`; trailing bytes are an error.
pub(crate) fn from_slice<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, String> {
    let mut d = Decoder::new(bytes);
    let v = T::deserialize(&mut d).map_err(|e| e.0)?;
    d.end().map_err(|e| e.0)?;
    Ok(v)
}

/// The deserializer: the bytes not yet read. Frames read their own fields through it too
/// (see `frame::decode_send`).
pub(crate) struct Decoder<'de> {
    rest: &'de [u8],
    /// How many values the one being decoded is nested in.
    depth: u32,
}

/// The widest varint tag each integer type accepts.
const TAG_U16: u8 = 251;
const TAG_U32: u8 = 252;
const TAG_U64: u8 = 253;

impl<'de> Decoder<'de> {
    /// A decoder of `bytes`.
    #[inline]
    pub(crate) fn new(bytes: &'de [u8]) -> Self {
        Decoder {
            rest: bytes,
            depth: 0,
        }
    }

    /// Fails if bytes are left.
    #[inline]
    pub(crate) fn end(&self) -> Result<(), Error> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(Error(format!("{n} trailing bytes"))),
        }
    }

    /// A `u64` (a varint).
    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        self.varint(TAG_U64, "a u64")
    }

    /// Decodes a value nested in the current one, within [`MAX_DEPTH`].
    #[inline]
    fn nested<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, Error>) -> Result<R, Error> {
        if self.depth >= MAX_DEPTH {
            return Err(Error(format!("values nested deeper than {MAX_DEPTH}")));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], Error> {
        if n > self.rest.len() {
            return Err(Error::end());
        }
        let (v, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(v)
    }

    #[inline]
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let (v, rest) = self.rest.split_first_chunk::<N>().ok_or_else(Error::end)?;
        self.rest = rest;
        Ok(*v)
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Error> {
        let (&b, rest) = self.rest.split_first().ok_or_else(Error::end)?;
        self.rest = rest;
        Ok(b)
    }

    /// A varint no wider than `widest` (one of the `TAG_` constants). A value below 251 is
    /// its own one byte (every length, count and variant index of a small message), read
    /// inline here; wider ones go through [`Decoder::varint_wide`].
    #[inline(always)]
    fn varint(&mut self, widest: u8, what: &str) -> Result<u64, Error> {
        if let Some((&b, rest)) = self.rest.split_first() {
            if b <= 250 {
                self.rest = rest;
                return Ok(u64::from(b));
            }
        }
        self.varint_wide(widest, what)
    }

    /// [`Decoder::varint`] past its one-byte case (and at the end of the input).
    #[inline(never)]
    fn varint_wide(&mut self, widest: u8, what: &str) -> Result<u64, Error> {
        let tag = self.byte()?;
        match tag {
            0..=250 => Ok(u64::from(tag)),
            251 => Ok(u64::from(u16::from_le_bytes(self.fixed()?))),
            252 if widest >= 252 => Ok(u64::from(u32::from_le_bytes(self.fixed()?))),
            253 if widest >= 253 => Ok(u64::from_le_bytes(self.fixed()?)),
            _ => Err(Error(format!("an invalid integer tag {tag} for {what}"))),
        }
    }

    fn varint_u128(&mut self) -> Result<u128, Error> {
        if self.rest.first() == Some(&254) {
            self.rest = &self.rest[1..];
            return Ok(u128::from_le_bytes(self.fixed()?));
        }
        self.varint(TAG_U64, "a u128").map(u128::from)
    }

    /// A length (of a string, a byte string, a sequence or a map).
    #[inline]
    fn len(&mut self) -> Result<usize, Error> {
        let n = self.varint(TAG_U64, "a length")?;
        usize::try_from(n).map_err(|_| Error(format!("a length of {n} does not fit in usize")))
    }

    /// A length of elements, each taking at least a byte as far as the check goes.
    #[inline]
    pub(crate) fn count(&mut self) -> Result<usize, Error> {
        let n = self.len()?;
        if n > self.rest.len() {
            return Err(Error(format!(
                "{n} elements claimed with {} bytes left",
                self.rest.len()
            )));
        }
        Ok(n)
    }

    /// A length-prefixed byte string, borrowed.
    #[inline]
    pub(crate) fn bytes(&mut self) -> Result<&'de [u8], Error> {
        let n = self.len()?;
        self.take(n)
    }

    /// Visits the next `len` values as a sequence (a tuple, a struct's fields, a sequence
    /// whose length was read).
    fn elements<V: Visitor<'de>>(&mut self, len: usize, v: V) -> Result<V::Value, Error> {
        v.visit_seq(Elements {
            de: self,
            left: len,
        })
    }

    fn str(&mut self) -> Result<&'de str, Error> {
        std::str::from_utf8(self.bytes()?).map_err(|e| Error(format!("a string: {e}")))
    }
}

/// Zigzag: 0, -1, 1, -2, ... from 0, 1, 2, 3, ...
macro_rules! unzig {
    ($n:expr, $u:ty, $s:ty) => {{
        let n: $u = $n;
        ((n >> 1) as $s) ^ -((n & 1) as $s)
    }};
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error(
            "the format does not describe itself (deserialize_any is not supported)".to_owned(),
        ))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.byte()? {
            0 => v.visit_bool(false),
            1 => v.visit_bool(true),
            b => Err(Error(format!("an invalid bool {b}"))),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i8(self.byte()? as i8)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let n = self.varint(TAG_U16, "an i16")? as u16;
        v.visit_i16(unzig!(n, u16, i16))
    }

    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let n = self.varint(TAG_U32, "an i32")? as u32;
        v.visit_i32(unzig!(n, u32, i32))
    }

    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let n = self.varint(TAG_U64, "an i64")?;
        v.visit_i64(unzig!(n, u64, i64))
    }

    fn deserialize_i128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let n = self.varint_u128()?;
        v.visit_i128(unzig!(n, u128, i128))
    }

    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u8(self.byte()?)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u16(self.varint(TAG_U16, "a u16")? as u16)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u32(self.varint(TAG_U32, "a u32")? as u32)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(self.u64()?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u128(self.varint_u128()?)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_f32(f32::from_le_bytes(self.fixed()?))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_f64(f64::from_le_bytes(self.fixed()?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let first = *self.rest.first().ok_or_else(Error::end)?;
        let width = match first {
            0x00..=0x7F => 1,
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return Err(Error(format!("an invalid char encoding {first:#04x}"))),
        };
        let bytes = self.take(width)?;
        let c = std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.chars().next())
            .ok_or_else(|| Error(format!("an invalid char encoding {bytes:02x?}")))?;
        v.visit_char(c)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_borrowed_str(self.str()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_borrowed_bytes(self.bytes()?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_byte_buf(self.bytes()?.to_vec())
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.byte()? {
            0 => v.visit_none(),
            1 => self.nested(|d| v.visit_some(d)),
            b => Err(Error(format!("an invalid Option tag {b}"))),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        self.nested(|d| v.visit_newtype_struct(d))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let len = self.count()?;
        self.deserialize_tuple(len, v)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, Error> {
        self.nested(|d| d.elements(len, v))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let left = self.count()?;
        self.nested(|de| v.visit_map(Elements { de, left }))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(fields.len(), v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.nested(|d| v.visit_enum(d))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error(
            "the format has no identifiers (deserialize_identifier is not supported)".to_owned(),
        ))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error(
            "the format cannot skip a value (deserialize_ignored_any is not supported)".to_owned(),
        ))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, tuple or struct, or the entries of a map.
struct Elements<'a, 'de> {
    de: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> Elements<'_, 'de> {
    /// The next element (or map key), or `None` once all are taken.
    fn next<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.next(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> MapAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        self.next(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> EnumAccess<'de> for &mut Decoder<'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let index = self.varint(TAG_U32, "a variant index")? as u32;
        let v = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(index))?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for &mut Decoder<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, Error> {
        self.elements(len, v)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.elements(fields.len(), v)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};

    use super::from_slice;
    use crate::testing::Rng;

    /// What bincode's own decoder makes of `bytes`, all of them (with a limit, without which
    /// it would try to allocate whatever length the bytes claim).
    fn theirs<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        let c = bincode::config::standard().with_limit::<{ 1 << 20 }>();
        match bincode::serde::decode_from_slice::<T, _>(bytes, c) {
            Ok((v, n)) if n == bytes.len() => Ok(v),
            Ok((_, n)) => Err(format!("{} trailing bytes", bytes.len() - n)),
            Err(e) => Err(e.to_string()),
        }
    }

    fn encode<T: Serialize>(v: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
    }

    /// Both decoders accept `bytes` as the same value, or both refuse them.
    fn agree<T: DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
        let (ours, theirs) = (from_slice::<T>(bytes), theirs::<T>(bytes));
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{} from {bytes:02x?}", std::any::type_name::<T>()),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "{} from {bytes:02x?}: ours {ours:?}, bincode's {theirs:?}",
                std::any::type_name::<T>()
            ),
        }
    }

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: T) {
        let bytes = encode(&v);
        assert_eq!(from_slice::<T>(&bytes).as_ref(), Ok(&v), "{bytes:02x?}");
        agree::<T>(&bytes);
        // Every proper prefix is refused (it ends early or leaves the value incomplete), and
        // so is a trailing byte.
        for cut in 0..bytes.len() {
            agree::<T>(&bytes[..cut]);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(from_slice::<T>(&longer).is_err());
    }

    /// A byte string decoded through `deserialize_byte_buf`, as `serde_bytes` does it.
    #[derive(Debug, PartialEq, Serialize)]
    struct Buf(#[serde(serialize_with = "as_bytes")] Vec<u8>);

    fn as_bytes<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    impl<'de> Deserialize<'de> for Buf {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Buf, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Buf;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Buf, E> {
                    Ok(Buf(v))
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Buf, E> {
                    Ok(Buf(v.to_vec()))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Empty,
        One(u32),
        Pair(i16, bool),
        Named {
            x: i64,
            label: String,
            tags: Vec<char>,
        },
        Nested(Option<Box<Shape>>),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        id: u64,
        small: u8,
        signed: i8,
        wide: u128,
        neg: i128,
        ratio: u32,
        name: String,
        data: Buf,
        shapes: Vec<Shape>,
        index: BTreeMap<u16, String>,
        unit: (),
        maybe: Option<(u8, i32)>,
    }

    /// Random values of the test types.
    struct Values(Rng);

    impl Values {
        fn next(&mut self) -> u64 {
            self.0.next()
        }

        /// A number of any width, biased to the varint boundaries.
        fn int(&mut self) -> u64 {
            match self.next() % 6 {
                0 => self.next() % 256,
                1 => 245 + self.next() % 12,
                2 => self.next() % 70_000,
                3 => (1 << 32) - 3 + self.next() % 6,
                4 => u64::MAX - self.next() % 4,
                _ => self.next(),
            }
        }

        fn string(&mut self) -> String {
            let n = self.next() % 8;
            (0..n)
                .map(|_| ['a', 'é', '中', '🦀', '\0'][(self.next() % 5) as usize])
                .collect()
        }

        fn shape(&mut self, depth: u32) -> Shape {
            match self.next() % if depth > 2 { 4 } else { 5 } {
                0 => Shape::Empty,
                1 => Shape::One(self.int() as u32),
                2 => Shape::Pair(self.int() as i16, self.next() % 2 == 0),
                3 => Shape::Named {
                    x: self.int() as i64,
                    label: self.string(),
                    tags: self.string().chars().collect(),
                },
                _ => Shape::Nested((self.next() % 2 == 0).then(|| Box::new(self.shape(depth + 1)))),
            }
        }

        fn record(&mut self) -> Record {
            Record {
                id: self.int(),
                small: self.int() as u8,
                signed: self.int() as i8,
                wide: u128::from(self.int()) << (self.next() % 64),
                neg: -(i128::from(self.int()) << (self.next() % 64)),
                ratio: self.int() as u32,
                name: self.string(),
                data: Buf((0..self.next() % 300).map(|_| self.next() as u8).collect()),
                shapes: (0..self.next() % 4).map(|_| self.shape(0)).collect(),
                index: (0..self.next() % 4)
                    .map(|_| (self.int() as u16, self.string()))
                    .collect(),
                unit: (),
                maybe: (self.next() % 2 == 0).then(|| (self.int() as u8, self.int() as i32)),
            }
        }
    }

    #[test]
    fn values_bincode_encodes_decode_to_themselves() {
        let mut rng = Values(Rng(0x2545_F491_4F6C_DD1D));
        for _ in 0..300 {
            round_trip(rng.record());
        }
        for _ in 0..2_000 {
            let n = rng.int();
            round_trip(n);
            round_trip(n as u32);
            round_trip(n as u16);
            round_trip(n as u8);
            round_trip(n as i64);
            round_trip(n as i32);
            round_trip(n as i16);
            round_trip(n as i8);
            round_trip(u128::from(n) << 64 | u128::from(n));
            round_trip(-(i128::from(n) << 60));
            round_trip(f64::from_bits(n).to_bits());
        }
        round_trip(1.5f32.to_bits());
        round_trip(String::from("a string"));
        round_trip(['x', 'é', '中', '🦀', char::MAX]);
        round_trip((true, false, (), Some(()), None::<u8>));
        round_trip(vec![Some(3u64), None]);
        // Floats themselves (not only their bits).
        let bytes = encode(&(1.25f32, -2.5e300f64));
        assert_eq!(from_slice::<(f32, f64)>(&bytes), Ok((1.25, -2.5e300)));
    }

    #[test]
    fn random_bytes_are_accepted_or_refused_as_bincode_does() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let len = (rng.next() % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.next() % 4 {
                    // Bytes at the interesting edges: varint tags, small counts, UTF-8 leads.
                    0 => 248 + (rng.next() % 8) as u8,
                    1 => (rng.next() % 4) as u8,
                    2 => [0x7F, 0x80, 0xC0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xF5]
                        [(rng.next() % 9) as usize],
                    _ => rng.next() as u8,
                })
                .collect();
            agree::<u8>(&bytes);
            agree::<u16>(&bytes);
            agree::<u32>(&bytes);
            agree::<u64>(&bytes);
            agree::<u128>(&bytes);
            agree::<i16>(&bytes);
            agree::<i32>(&bytes);
            agree::<i64>(&bytes);
            agree::<i128>(&bytes);
            agree::<bool>(&bytes);
            agree::<char>(&bytes);
            agree::<String>(&bytes);
            agree::<Buf>(&bytes);
            agree::<Vec<u16>>(&bytes);
            agree::<Option<char>>(&bytes);
            agree::<(u8, String, bool)>(&bytes);
            agree::<Shape>(&bytes);
            agree::<BTreeMap<u8, bool>>(&bytes);
        }
    }

    /// A recursive type: each level is a newtype around an option (two levels of nesting).
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Nest(Option<Box<Nest>>);

    /// The stack the deepest value accepted must decode in: a coroutine's default.
    const STACK_PROBE: usize = 64 << 10;

    fn nest(levels: usize) -> Nest {
        (0..levels).fold(Nest(None), |inner, _| Nest(Some(Box::new(inner))))
    }

    #[test]
    fn nesting_is_bounded() {
        // Within the bound: decodes.
        let ok = nest(super::MAX_DEPTH as usize / 2 - 1);
        let bytes = encode(&ok);
        assert_eq!(from_slice::<Nest>(&bytes), Ok(ok));
        // At the bound it decodes within a coroutine's default stack, even in a debug build
        // (the hungriest: about 0.5 KiB per level there; 40 KiB of thread stack overflowed).
        std::thread::Builder::new()
            .stack_size(STACK_PROBE)
            .spawn(move || assert!(from_slice::<Nest>(&bytes).is_ok()))
            .unwrap()
            .join()
            .unwrap();
        // A million levels (a byte each, the encoding of `Some`): refused at the bound, with
        // no deep recursion.
        let mut deep = vec![1u8; 1_000_000];
        deep.push(0);
        let e = from_slice::<Nest>(&deep).unwrap_err();
        assert!(e.contains("nested deeper than"), "{e}");
    }

    #[test]
    fn a_count_past_the_bytes_left_is_refused_before_allocating() {
        // 2^60 unit elements: bincode would loop over them; a count must fit in the input.
        let mut bytes = vec![253];
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let e = from_slice::<Vec<()>>(&bytes).unwrap_err();
        assert!(e.contains("elements claimed"), "{e}");
        let e = from_slice::<Vec<u8>>(&bytes).unwrap_err();
        assert!(e.contains("elements claimed"), "{e}");
        // A byte string as long.
        let e = from_slice::<Buf>(&bytes).unwrap_err();
        assert!(e.contains("ends early"), "{e}");
    }
}
