//! Canonical CBOR for the artifactstore data model (SPEC §2.2).
//!
//! Every structured record (manifests, events) is a [`Value`]: maps with text
//! keys, arrays, text, integers in ±(2^53−1), booleans and null. A record is
//! identified by the digest of its canonical CBOR bytes, so the encoding must
//! be a *function* of the value: the same value always yields the same bytes,
//! and a decoder must refuse every other byte string that would decode to the
//! same value (otherwise two different digests could name one record).
//!
//! # Canonical form
//!
//! This module implements RFC 8949 §4.2.1 ("core deterministic encoding")
//! restricted to the data model:
//!
//! - integer arguments (integers and lengths) use the shortest form: values
//!   0..=23 in the initial byte, then 1, 2, 4 or 8 following bytes only when
//!   the value does not fit the next smaller form;
//! - only definite lengths (no indefinite-length text, arrays or maps);
//! - map keys are text strings, sorted by the bytewise order of their encoded
//!   form, without duplicates. For text keys that order is "shorter key first,
//!   then bytewise on the UTF-8 bytes", because the length is part of the
//!   head and the head comes first;
//! - integers (major types 0 and 1) lie within ±(2^53−1) ([`MAX_SAFE_INT`]),
//!   the range every JSON implementation represents exactly, so the JSON
//!   projection ([`crate::jcs`]) is lossless;
//! - of the simple values only `false` (0xf4), `true` (0xf5) and `null`
//!   (0xf6) are allowed; `undefined`, other simple values and all floats
//!   (0xf9, 0xfa, 0xfb) are rejected, as are tags (major type 6) and byte
//!   strings (major type 2);
//! - arrays and maps nest at most [`MAX_NESTING_DEPTH`] levels deep.
//!
//! # Decoding hostile input
//!
//! [`decode`] accepts exactly one canonical data item and nothing after it.
//! It never panics, never recurses deeper than [`MAX_NESTING_DEPTH`], and
//! never pre-allocates more than the remaining input could fill, whatever
//! lengths the input declares. Errors carry the byte offset of the offending
//! item's head (see [`CborError`]) and a [`CborErrorReason`] saying what is
//! wrong; non-canonical input is rejected, never silently re-encoded.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// The largest integer magnitude of the data model: 2^53−1.
///
/// Integers outside ±`MAX_SAFE_INT` are rejected by [`encode`], [`decode`]
/// and [`crate::jcs::from_json`], because JSON consumers that use IEEE 754
/// doubles cannot represent them exactly.
pub const MAX_SAFE_INT: i64 = (1 << 53) - 1;

/// The deepest nesting of arrays and maps that [`encode`] and [`decode`]
/// accept (a scalar at top level has depth 0, `[[1]]` has depth 2).
///
/// The cap keeps the recursive decoder's stack use bounded on hostile input.
/// It is well below serde_json's own recursion limit (127 levels), so every
/// value that passes here also passes through the JSON projection.
pub const MAX_NESTING_DEPTH: usize = 64;

/// A value of the artifactstore data model (SPEC §2.2): null, booleans,
/// integers in ±(2^53−1), text, arrays and maps with text keys.
///
/// There are deliberately no floats, byte strings or tags: records hold
/// digests and timestamps as text. [`encode`] turns a value into its canonical
/// CBOR bytes, [`crate::jcs::to_jcs`] into its canonical JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// The null value (CBOR 0xf6, JSON `null`).
    Null,
    /// A boolean (CBOR 0xf4/0xf5, JSON `false`/`true`).
    Bool(bool),
    /// Integer in ±(2^53−1); see [`MAX_SAFE_INT`].
    ///
    /// The type admits any `i64` for convenience; out-of-range values are
    /// rejected when encoding.
    Int(i64),
    /// A UTF-8 text string.
    Text(String),
    /// An ordered sequence of values.
    Array(Vec<Value>),
    /// Map with text keys. Iteration order of BTreeMap is NOT the canonical
    /// order; encoders sort (CBOR: shorter key first, then bytewise; JCS: by
    /// UTF-16 code units).
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// Builds a [`Value::Map`] from key/value pairs; a later duplicate key
    /// replaces an earlier one.
    ///
    /// ```
    /// # use artifact_core::cbor::Value;
    /// let v = Value::map([("name", Value::from("guide-board")), ("size", Value::from(1234))]);
    /// assert_eq!(v.as_map().map(|m| m.len()), Some(2));
    /// ```
    pub fn map<I, K>(entries: I) -> Value
    where
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        Value::Map(
            entries
                .into_iter()
                .map(|(key, value)| (key.into(), value))
                .collect(),
        )
    }

    /// The text, if this is a [`Value::Text`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The integer, if this is a [`Value::Int`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, if this is a [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements, if this is a [`Value::Array`].
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The entries, if this is a [`Value::Map`].
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::Array(items)
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(entries: BTreeMap<String, Value>) -> Self {
        Value::Map(entries)
    }
}

/// Input that is not canonical CBOR of the data model, or a [`Value`] that
/// cannot be encoded.
///
/// `offset` is the byte offset of the offending item's head; for
/// [`CborErrorReason::TrailingBytes`] the offset of the first trailing byte;
/// for [`CborErrorReason::Truncated`] the input length. For errors from
/// [`encode`] it is the offset in the encoding where the offending item would
/// have started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid canonical CBOR at byte {offset}: {reason}")]
pub struct CborError {
    /// Byte offset of the offending item (see the type docs).
    pub offset: usize,
    /// What is wrong.
    pub reason: CborErrorReason,
}

/// Why bytes are not canonical CBOR of the data model (see [`CborError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CborErrorReason {
    /// An integer uses a longer head than needed (e.g. `0x18 0x05` for 5).
    NonShortestInteger,
    /// A text, array or map length uses a longer head than needed.
    NonShortestLength,
    /// An indefinite-length item (additional information 31).
    IndefiniteLength,
    /// A map key sorts before the previous key in encoded-byte order.
    UnsortedMapKeys {
        /// The key that is out of order.
        key: String,
    },
    /// A map key occurs twice.
    DuplicateMapKey {
        /// The repeated key.
        key: String,
    },
    /// A map key is not a text string.
    NonTextMapKey,
    /// A floating-point number (half, single or double precision).
    Float,
    /// A tagged item (major type 6).
    Tag,
    /// A byte string (major type 2).
    ByteString,
    /// An integer outside ±(2^53−1).
    IntegerOutOfRange {
        /// The integer (CBOR integers reach −2^64, hence `i128`).
        value: i128,
    },
    /// A text string that is not valid UTF-8.
    InvalidUtf8,
    /// The input ends inside a data item.
    Truncated,
    /// Bytes follow the single top-level data item.
    TrailingBytes,
    /// A simple value other than false, true and null (23 is `undefined`).
    UnsupportedSimpleValue(u8),
    /// Arrays and maps nested deeper than [`MAX_NESTING_DEPTH`].
    NestingTooDeep {
        /// The nesting limit that was exceeded.
        limit: usize,
    },
    /// Additional information 28, 29 or 30, which RFC 8949 reserves.
    ReservedAdditionalInfo(u8),
    /// A "break" stop code (0xff) outside an indefinite-length item.
    UnexpectedBreak,
}

impl fmt::Display for CborErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CborErrorReason::NonShortestInteger => {
                f.write_str("integer not in its shortest encoding")
            }
            CborErrorReason::NonShortestLength => {
                f.write_str("length not in its shortest encoding")
            }
            CborErrorReason::IndefiniteLength => {
                f.write_str("indefinite-length item (only definite lengths are canonical)")
            }
            CborErrorReason::UnsortedMapKeys { key } => write!(
                f,
                "map key {key:?} out of order (keys must be sorted shorter first, then bytewise)"
            ),
            CborErrorReason::DuplicateMapKey { key } => write!(f, "duplicate map key {key:?}"),
            CborErrorReason::NonTextMapKey => f.write_str("map key is not a text string"),
            CborErrorReason::Float => f.write_str(
                "floating-point number (not part of the data model; use an integer or text)",
            ),
            CborErrorReason::Tag => {
                f.write_str("tagged item (tags are not part of the data model)")
            }
            CborErrorReason::ByteString => {
                f.write_str("byte string (not part of the data model; use text)")
            }
            CborErrorReason::IntegerOutOfRange { value } => {
                write!(f, "integer {value} outside ±(2^53−1)")
            }
            CborErrorReason::InvalidUtf8 => f.write_str("text string is not valid UTF-8"),
            CborErrorReason::Truncated => f.write_str("unexpected end of input"),
            CborErrorReason::TrailingBytes => f.write_str("trailing bytes after the data item"),
            CborErrorReason::UnsupportedSimpleValue(simple) => write!(
                f,
                "simple value {simple} (only false, true and null are allowed)"
            ),
            CborErrorReason::NestingTooDeep { limit } => {
                write!(f, "arrays and maps nested deeper than {limit} levels")
            }
            CborErrorReason::ReservedAdditionalInfo(info) => {
                write!(f, "reserved additional information {info} in initial byte")
            }
            CborErrorReason::UnexpectedBreak => {
                f.write_str("break code 0xff outside an indefinite-length item")
            }
        }
    }
}

// Major types (RFC 8949 §3.1): the top three bits of an initial byte.
const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const MAJOR_SIMPLE: u8 = 7;

// Simple values of major type 7 that the data model uses.
const SIMPLE_FALSE: u8 = 20;
const SIMPLE_TRUE: u8 = 21;
const SIMPLE_NULL: u8 = 22;

/// Encodes `value` as canonical CBOR.
///
/// # Errors
///
/// Fails only if an integer lies outside ±(2^53−1)
/// ([`CborErrorReason::IntegerOutOfRange`]) or arrays and maps nest deeper
/// than [`MAX_NESTING_DEPTH`] ([`CborErrorReason::NestingTooDeep`]): both
/// would produce bytes that [`decode`] refuses.
///
/// ```
/// # use artifact_core::cbor::{decode, encode, Value};
/// let v = Value::map([("a", Value::from(1)), ("bb", Value::from(true))]);
/// let bytes = encode(&v).unwrap();
/// assert_eq!(bytes, [0xa2, 0x61, b'a', 0x01, 0x62, b'b', b'b', 0xf5]);
/// assert_eq!(decode(&bytes).unwrap(), v);
/// ```
pub fn encode(value: &Value) -> Result<Vec<u8>, CborError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Appends the canonical CBOR encoding of `value` to `out`.
///
/// Same rules as [`encode`]; error offsets are relative to the start of this
/// encoding, not of `out`. On error `out` may hold a partial encoding.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) -> Result<(), CborError> {
    let start = out.len();
    encode_item(value, out, start, 0)
}

/// Encodes one item; `depth` counts the arrays and maps enclosing it.
fn encode_item(
    value: &Value,
    out: &mut Vec<u8>,
    start: usize,
    depth: usize,
) -> Result<(), CborError> {
    let offset = out.len() - start;
    match value {
        Value::Null => out.push(MAJOR_SIMPLE << 5 | SIMPLE_NULL),
        Value::Bool(false) => out.push(MAJOR_SIMPLE << 5 | SIMPLE_FALSE),
        Value::Bool(true) => out.push(MAJOR_SIMPLE << 5 | SIMPLE_TRUE),
        Value::Int(n) => {
            if !(-MAX_SAFE_INT..=MAX_SAFE_INT).contains(n) {
                return Err(CborError {
                    offset,
                    reason: CborErrorReason::IntegerOutOfRange {
                        value: i128::from(*n),
                    },
                });
            }
            // In range, so `n` and `-1 - n` are non-negative and fit u64.
            match u64::try_from(*n) {
                Ok(unsigned) => write_head(out, MAJOR_UNSIGNED, unsigned),
                // CBOR stores a negative n as -1 - n, i.e. the bitwise NOT.
                Err(_) => write_head(out, MAJOR_NEGATIVE, !(*n) as u64),
            }
        }
        Value::Text(text) => write_text(out, text),
        Value::Array(items) => {
            check_depth(depth, offset)?;
            write_head(out, MAJOR_ARRAY, items.len() as u64);
            for item in items {
                encode_item(item, out, start, depth + 1)?;
            }
        }
        Value::Map(entries) => {
            check_depth(depth, offset)?;
            write_head(out, MAJOR_MAP, entries.len() as u64);
            let mut sorted: Vec<(&String, &Value)> = entries.iter().collect();
            sorted.sort_by(|(a, _), (b, _)| canonical_key_order(a, b));
            for (key, item) in sorted {
                write_text(out, key);
                encode_item(item, out, start, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Refuses to open an array or map at `depth` enclosing containers if that
/// would exceed [`MAX_NESTING_DEPTH`].
fn check_depth(depth: usize, offset: usize) -> Result<(), CborError> {
    if depth >= MAX_NESTING_DEPTH {
        return Err(CborError {
            offset,
            reason: CborErrorReason::NestingTooDeep {
                limit: MAX_NESTING_DEPTH,
            },
        });
    }
    Ok(())
}

/// The canonical order of text map keys: the bytewise order of their CBOR
/// encodings, which for text strings is shorter first, then bytewise.
fn canonical_key_order(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

fn write_text(out: &mut Vec<u8>, text: &str) {
    write_head(out, MAJOR_TEXT, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// Writes an initial byte plus argument in the shortest form.
fn write_head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    // The casts below are lossless: each arm checks that the value fits.
    if argument < 24 {
        out.push(major | argument as u8);
    } else if argument <= u64::from(u8::MAX) {
        out.push(major | 24);
        out.push(argument as u8);
    } else if argument <= u64::from(u16::MAX) {
        out.push(major | 25);
        out.extend_from_slice(&(argument as u16).to_be_bytes());
    } else if argument <= u64::from(u32::MAX) {
        out.push(major | 26);
        out.extend_from_slice(&(argument as u32).to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&argument.to_be_bytes());
    }
}

/// Decodes exactly one canonical CBOR data item of the data model.
///
/// # Errors
///
/// Rejects anything [`encode`] would not have produced: non-shortest forms,
/// indefinite lengths, unsorted or duplicate map keys, non-text keys, floats,
/// tags, byte strings, simple values other than false/true/null, integers
/// outside ±(2^53−1), invalid UTF-8, nesting deeper than
/// [`MAX_NESTING_DEPTH`], truncated input and trailing bytes. Hence
/// `encode(&decode(bytes)?)` always equals `bytes`.
///
/// ```
/// # use artifact_core::cbor::{decode, CborErrorReason, Value};
/// assert_eq!(decode(&[0x05]).unwrap(), Value::Int(5));
/// // 5 with a one-byte argument is not the shortest form:
/// let err = decode(&[0x18, 0x05]).unwrap_err();
/// assert_eq!((err.offset, err.reason), (0, CborErrorReason::NonShortestInteger));
/// ```
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let mut decoder = Decoder {
        input: bytes,
        pos: 0,
    };
    let value = decoder.item(0)?;
    if decoder.pos != bytes.len() {
        return Err(CborError {
            offset: decoder.pos,
            reason: CborErrorReason::TrailingBytes,
        });
    }
    Ok(value)
}

/// A cursor over the input; `pos` is the next unread byte.
struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn truncated(&self) -> CborError {
        CborError {
            offset: self.input.len(),
            reason: CborErrorReason::Truncated,
        }
    }

    fn next_byte(&mut self) -> Result<u8, CborError> {
        let byte = *self.input.get(self.pos).ok_or_else(|| self.truncated())?;
        self.pos += 1;
        Ok(byte)
    }

    /// Consumes `len` bytes, or fails with `Truncated` if fewer remain.
    fn take(&mut self, len: u64) -> Result<&[u8], CborError> {
        let remaining = self.input.len() - self.pos;
        let len = match usize::try_from(len) {
            Ok(len) if len <= remaining => len,
            _ => return Err(self.truncated()),
        };
        let slice = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(slice)
    }

    /// Decodes one item whose head starts at `self.pos`; `depth` counts the
    /// arrays and maps enclosing it.
    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        let head = self.pos;
        let initial = self.next_byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let fail = |reason| {
            Err(CborError {
                offset: head,
                reason,
            })
        };
        match major {
            MAJOR_BYTES => fail(CborErrorReason::ByteString),
            MAJOR_TAG => fail(CborErrorReason::Tag),
            MAJOR_SIMPLE => self.simple(head, info),
            _ => {
                let argument = self.argument(head, major, info)?;
                match major {
                    MAJOR_UNSIGNED => match i64::try_from(argument) {
                        Ok(n) if n <= MAX_SAFE_INT => Ok(Value::Int(n)),
                        _ => fail(CborErrorReason::IntegerOutOfRange {
                            value: i128::from(argument),
                        }),
                    },
                    // The value is -1 - argument; in range iff argument < MAX_SAFE_INT.
                    MAJOR_NEGATIVE => match i64::try_from(argument) {
                        Ok(n) if n < MAX_SAFE_INT => Ok(Value::Int(-1 - n)),
                        _ => fail(CborErrorReason::IntegerOutOfRange {
                            value: -1 - i128::from(argument),
                        }),
                    },
                    MAJOR_TEXT => {
                        let bytes = self.take(argument)?;
                        match std::str::from_utf8(bytes) {
                            Ok(text) => Ok(Value::Text(text.to_owned())),
                            Err(_) => fail(CborErrorReason::InvalidUtf8),
                        }
                    }
                    MAJOR_ARRAY => {
                        check_depth(depth, head)?;
                        // Every item takes at least one byte, so the remaining
                        // input bounds the allocation whatever length is declared.
                        let capacity = self.capacity_for(argument);
                        let mut items = Vec::with_capacity(capacity);
                        for _ in 0..argument {
                            items.push(self.item(depth + 1)?);
                        }
                        Ok(Value::Array(items))
                    }
                    _ => {
                        // MAJOR_MAP: the only major type left.
                        check_depth(depth, head)?;
                        self.map_entries(argument, depth)
                    }
                }
            }
        }
    }

    /// An upper bound on how many items could follow, for pre-allocation.
    fn capacity_for(&self, declared: u64) -> usize {
        let remaining = self.input.len() - self.pos;
        usize::try_from(declared).map_or(remaining, |declared| declared.min(remaining))
    }

    /// Decodes `count` key/value pairs, checking key type, order and
    /// uniqueness on the raw encoded key bytes (which is exactly the
    /// canonical order's definition).
    fn map_entries(&mut self, count: u64, depth: usize) -> Result<Value, CborError> {
        let mut entries = BTreeMap::new();
        let mut previous_key: Option<&[u8]> = None;
        let input = self.input;
        for _ in 0..count {
            let key_head = self.pos;
            let initial = *input.get(key_head).ok_or_else(|| self.truncated())?;
            let key_error = |reason| CborError {
                offset: key_head,
                reason,
            };
            if initial >> 5 != MAJOR_TEXT {
                return Err(key_error(CborErrorReason::NonTextMapKey));
            }
            let Value::Text(key) = self.item(depth + 1)? else {
                // Unreachable: a major-type-3 head decodes to text or fails.
                return Err(key_error(CborErrorReason::NonTextMapKey));
            };
            let encoded_key = &input[key_head..self.pos];
            match previous_key.map(|previous| encoded_key.cmp(previous)) {
                Some(Ordering::Less) => {
                    return Err(key_error(CborErrorReason::UnsortedMapKeys { key }));
                }
                Some(Ordering::Equal) => {
                    return Err(key_error(CborErrorReason::DuplicateMapKey { key }));
                }
                Some(Ordering::Greater) | None => {}
            }
            previous_key = Some(encoded_key);
            let value = self.item(depth + 1)?;
            entries.insert(key, value);
        }
        Ok(Value::Map(entries))
    }

    /// Decodes a major-type-7 item (head byte already consumed).
    fn simple(&mut self, head: usize, info: u8) -> Result<Value, CborError> {
        let reason = match info {
            SIMPLE_FALSE => return Ok(Value::Bool(false)),
            SIMPLE_TRUE => return Ok(Value::Bool(true)),
            SIMPLE_NULL => return Ok(Value::Null),
            // 0..=19 unassigned, 23 undefined.
            0..=19 | 23 => CborErrorReason::UnsupportedSimpleValue(info),
            // One-byte simple value (0xf8 xx).
            24 => CborErrorReason::UnsupportedSimpleValue(self.next_byte()?),
            25..=27 => CborErrorReason::Float,
            28..=30 => CborErrorReason::ReservedAdditionalInfo(info),
            _ => CborErrorReason::UnexpectedBreak,
        };
        Err(CborError {
            offset: head,
            reason,
        })
    }

    /// Reads the argument of a head of major type 0, 1, 3, 4 or 5, insisting
    /// on the shortest form and a definite length.
    fn argument(&mut self, head: usize, major: u8, info: u8) -> Result<u64, CborError> {
        let fail = |reason| {
            Err(CborError {
                offset: head,
                reason,
            })
        };
        let (argument, minimum) = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => (u64::from(self.next_byte()?), 24),
            25 => (self.be_uint(2)?, 1 << 8),
            26 => (self.be_uint(4)?, 1 << 16),
            27 => (self.be_uint(8)?, 1 << 32),
            28..=30 => return fail(CborErrorReason::ReservedAdditionalInfo(info)),
            _ => return fail(CborErrorReason::IndefiniteLength),
        };
        if argument < minimum {
            return fail(match major {
                MAJOR_UNSIGNED | MAJOR_NEGATIVE => CborErrorReason::NonShortestInteger,
                _ => CborErrorReason::NonShortestLength,
            });
        }
        Ok(argument)
    }

    /// Reads a big-endian unsigned integer of `len` (≤ 8) bytes.
    fn be_uint(&mut self, len: u64) -> Result<u64, CborError> {
        let bytes = self.take(len)?;
        Ok(bytes
            .iter()
            .fold(0u64, |acc, &byte| acc << 8 | u64::from(byte)))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{arb_value, hex};
    use super::*;
    use proptest::prelude::*;

    fn unhex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// Asserts that `hex_input` is rejected at `offset` for `reason`.
    #[track_caller]
    fn assert_rejected(hex_input: &str, offset: usize, reason: CborErrorReason) {
        let err = decode(&unhex(hex_input)).unwrap_err();
        assert_eq!(err, CborError { offset, reason }, "input {hex_input}");
    }

    fn text(s: &str) -> Value {
        Value::from(s)
    }

    // ---- golden fixtures: these bytes must never change -------------------

    /// Integers at every head-width boundary (RFC 8949 appendix A agrees).
    const INTEGER_FIXTURES: &[(i64, &str)] = &[
        (0, "00"),                             // smallest immediate
        (23, "17"),                            // largest immediate
        (24, "1818"),                          // smallest one-byte argument
        (255, "18ff"),                         // largest one-byte argument
        (256, "190100"),                       // smallest two-byte argument
        (65535, "19ffff"),                     // largest two-byte argument
        (65536, "1a00010000"),                 // smallest four-byte argument
        (4294967295, "1affffffff"),            // largest four-byte argument
        (4294967296, "1b0000000100000000"),    // smallest eight-byte argument
        (MAX_SAFE_INT, "1b001fffffffffffff"),  // largest in the data model
        (-1, "20"),                            // negative immediate
        (-24, "37"),                           // largest negative immediate
        (-25, "3818"),                         // negative one-byte argument
        (-256, "38ff"),                        // largest negative one-byte
        (-257, "390100"),                      // negative two-byte argument
        (-65537, "3a00010000"),                // negative four-byte argument
        (-4294967297, "3b0000000100000000"),   // negative eight-byte argument
        (-MAX_SAFE_INT, "3b001ffffffffffffe"), // smallest in the data model
    ];

    #[test]
    fn golden_integers() {
        for &(n, expected) in INTEGER_FIXTURES {
            let bytes = encode(&Value::Int(n)).unwrap();
            assert_eq!(hex(&bytes), expected, "encoding of {n}");
            assert_eq!(
                decode(&bytes).unwrap(),
                Value::Int(n),
                "decoding of {expected}"
            );
        }
    }

    #[test]
    fn golden_scalars() {
        let cases = [
            (Value::Null, "f6"),
            (Value::Bool(false), "f4"),
            (Value::Bool(true), "f5"),
            (text(""), "60"),
            (text("a"), "6161"),
            (text("IETF"), "6449455446"),
            (text("\u{fc}"), "62c3bc"),
            (text("\u{6c34}"), "63e6b0b4"),
            (text("\u{10151}"), "64f0908591"),
            (Value::Array(vec![]), "80"),
            (Value::map(Vec::<(String, Value)>::new()), "a0"),
        ];
        for (value, expected) in cases {
            let bytes = encode(&value).unwrap();
            assert_eq!(hex(&bytes), expected, "encoding of {value:?}");
            assert_eq!(decode(&bytes).unwrap(), value);
        }
    }

    #[test]
    fn golden_record() {
        // {"a":1,"bb":[true,null,"x"]}
        let value = Value::map([
            (
                "bb",
                Value::Array(vec![Value::Bool(true), Value::Null, text("x")]),
            ),
            ("a", Value::Int(1)),
        ]);
        let bytes = encode(&value).unwrap();
        assert_eq!(hex(&bytes), "a2616101626262".to_owned() + "83f5f66178");
        assert_eq!(decode(&bytes).unwrap(), value);
    }

    #[test]
    fn golden_key_order_is_length_first() {
        // Bytewise on UTF-8 would put "aa" before "b"; canonical CBOR sorts
        // by the encoded key, whose length prefix comes first.
        let value = Value::map([
            ("aa", Value::Int(1)),
            ("b", Value::Int(2)),
            ("\u{e9}", Value::Int(3)), // 2 UTF-8 bytes: c3 a9
            ("", Value::Int(4)),
        ]);
        assert_eq!(
            hex(&encode(&value).unwrap()),
            "a4 6004 616202 62616101 62c3a903".replace(' ', "")
        );
    }

    #[test]
    fn golden_lengths_at_boundaries() {
        // Text and array lengths use the same shortest-form rule as integers.
        for (len, head) in [
            (23usize, "77"),
            (24, "7818"),
            (255, "78ff"),
            (256, "790100"),
        ] {
            let bytes = encode(&text(&"x".repeat(len))).unwrap();
            assert!(hex(&bytes).starts_with(head), "text of length {len}");
            assert_eq!(bytes.len(), head.len() / 2 + len);
        }
        for (len, head) in [(23usize, "97"), (24, "9818"), (65536, "9a00010000")] {
            let bytes = encode(&Value::Array(vec![Value::Null; len])).unwrap();
            assert!(
                hex(&bytes[..head.len() / 2]).starts_with(head),
                "array of length {len}"
            );
            assert_eq!(
                decode(&bytes).unwrap().as_array().map(<[Value]>::len),
                Some(len)
            );
        }
    }

    // ---- encoder errors ---------------------------------------------------

    #[test]
    fn encode_rejects_out_of_range_integers() {
        for n in [MAX_SAFE_INT + 1, -MAX_SAFE_INT - 1, i64::MAX, i64::MIN] {
            let err = encode(&Value::Int(n)).unwrap_err();
            assert_eq!(
                err,
                CborError {
                    offset: 0,
                    reason: CborErrorReason::IntegerOutOfRange { value: n.into() }
                }
            );
        }
        // The offset says where the item would have started.
        let err = encode(&Value::Array(vec![Value::Null, Value::Int(i64::MAX)])).unwrap_err();
        assert_eq!(err.offset, 2);
        // encode_into offsets are relative to its own start.
        let mut out = vec![0xaa; 7];
        let err = encode_into(&Value::Array(vec![Value::Int(i64::MIN)]), &mut out).unwrap_err();
        assert_eq!(err.offset, 1);
    }

    fn nested_arrays(depth: usize) -> Value {
        let mut value = Value::Null;
        for _ in 0..depth {
            value = Value::Array(vec![value]);
        }
        value
    }

    #[test]
    fn nesting_limit_is_the_same_for_encode_and_decode() {
        let deepest = nested_arrays(MAX_NESTING_DEPTH);
        let bytes = encode(&deepest).unwrap();
        assert_eq!(decode(&bytes).unwrap(), deepest);

        let too_deep = nested_arrays(MAX_NESTING_DEPTH + 1);
        let expected = CborError {
            offset: MAX_NESTING_DEPTH,
            reason: CborErrorReason::NestingTooDeep {
                limit: MAX_NESTING_DEPTH,
            },
        };
        assert_eq!(encode(&too_deep).unwrap_err(), expected);
        let mut bytes = vec![0x81; MAX_NESTING_DEPTH + 1];
        bytes.push(0xf6);
        assert_eq!(decode(&bytes).unwrap_err(), expected);
    }

    // ---- decoder rejections: one test per non-canonical variant ----------

    #[test]
    fn rejects_long_form_integers() {
        use CborErrorReason::NonShortestInteger as R;
        assert_rejected("1805", 0, R); // 5 with a 1-byte argument
        assert_rejected("1817", 0, R); // 23, the largest immediate
        assert_rejected("190005", 0, R); // 5 with a 2-byte argument
        assert_rejected("1900ff", 0, R); // 255 with a 2-byte argument
        assert_rejected("1a0000ffff", 0, R); // 65535 with a 4-byte argument
        assert_rejected("1b00000000ffffffff", 0, R); // 2^32-1 with 8 bytes
        assert_rejected("3817", 0, R); // -24 with a 1-byte argument
        assert_rejected("3b0000000000000000", 0, R); // -1 with 8 bytes
        assert_rejected("82 01 1800", 2, R); // offset of the nested item
    }

    #[test]
    fn rejects_long_form_lengths() {
        use CborErrorReason::NonShortestLength as R;
        assert_rejected("780161", 0, R); // text "a"
        assert_rejected("79000161", 0, R);
        assert_rejected("7a0000000161", 0, R);
        assert_rejected("7b000000000000000161", 0, R);
        assert_rejected("980101", 0, R); // array [1]
        assert_rejected("99000101", 0, R);
        assert_rejected("b8016161 01", 0, R); // map {"a":1}
        assert_rejected("a1 780161 01", 1, R); // long-form key length
        assert_rejected("9817", 0, R); // 23 elements, long form
    }

    #[test]
    fn rejects_indefinite_lengths() {
        use CborErrorReason::IndefiniteLength as R;
        assert_rejected("7f 6161 ff", 0, R); // text
        assert_rejected("9f 01 ff", 0, R); // array
        assert_rejected("bf 6161 01 ff", 0, R); // map
        assert_rejected("1f", 0, R); // ill-formed "indefinite" integer
        assert_rejected("3f", 0, R);
        assert_rejected("81 9f ff", 1, R);
    }

    #[test]
    fn rejects_unsorted_keys() {
        // {"b":1,"a":2}
        assert_rejected(
            "a2 6162 01 6161 02",
            4,
            CborErrorReason::UnsortedMapKeys { key: "a".into() },
        );
        // {"aa":1,"b":2}: UTF-8 order, but the shorter key must come first.
        assert_rejected(
            "a2 626161 01 6162 02",
            5,
            CborErrorReason::UnsortedMapKeys { key: "b".into() },
        );
    }

    #[test]
    fn rejects_duplicate_keys() {
        assert_rejected(
            "a2 6161 01 6161 02",
            4,
            CborErrorReason::DuplicateMapKey { key: "a".into() },
        );
        assert_rejected(
            "a3 6161 01 6162 02 6162 03",
            7,
            CborErrorReason::DuplicateMapKey { key: "b".into() },
        );
    }

    #[test]
    fn rejects_non_text_keys() {
        use CborErrorReason::NonTextMapKey as R;
        assert_rejected("a1 01 01", 1, R); // integer key
        assert_rejected("a1 4161 01", 1, R); // byte-string key
        assert_rejected("a1 f6 01", 1, R); // null key
        assert_rejected("a1 80 01", 1, R); // array key
        assert_rejected("a2 6161 01 01 01", 4, R); // second key
    }

    #[test]
    fn rejects_floats() {
        use CborErrorReason::Float as R;
        assert_rejected("f93c00", 0, R); // half 1.0
        assert_rejected("fa3f800000", 0, R); // single 1.0
        assert_rejected("fb3ff0000000000000", 0, R); // double 1.0
        assert_rejected("f90000", 0, R); // half 0.0
        assert_rejected("f9", 0, R); // even without its payload
        assert_rejected("a1 6161 fb0000000000000000", 3, R);
    }

    #[test]
    fn rejects_tags() {
        use CborErrorReason::Tag as R;
        assert_rejected("c074323031332d30332d32315432303a30343a30305a", 0, R); // tag 0 datetime
        assert_rejected("c11a514b67b0", 0, R); // tag 1 epoch
        assert_rejected("d9d9f7 f6", 0, R); // self-described CBOR
        assert_rejected("c2 41 01", 0, R); // bignum
        assert_rejected("81 c0 60", 1, R);
    }

    #[test]
    fn rejects_byte_strings() {
        use CborErrorReason::ByteString as R;
        assert_rejected("40", 0, R);
        assert_rejected("4401020304", 0, R);
        assert_rejected("5f 41 01 ff", 0, R);
        assert_rejected("82 f6 40", 2, R);
    }

    #[test]
    fn rejects_other_simple_values() {
        use CborErrorReason::UnsupportedSimpleValue as R;
        assert_rejected("f7", 0, R(23)); // undefined
        assert_rejected("e0", 0, R(0));
        assert_rejected("f3", 0, R(19));
        assert_rejected("f820", 0, R(32)); // one-byte simple value
        assert_rejected("f8ff", 0, R(255));
        assert_rejected("f814", 0, R(20)); // false in a non-shortest form
        assert_rejected("f8", 1, CborErrorReason::Truncated);
    }

    #[test]
    fn rejects_integers_out_of_range() {
        use CborErrorReason::IntegerOutOfRange as R;
        assert_rejected("1b0020000000000000", 0, R { value: 1 << 53 });
        assert_rejected(
            "1bffffffffffffffff",
            0,
            R {
                value: u64::MAX.into(),
            },
        );
        assert_rejected("3b001fffffffffffff", 0, R { value: -(1 << 53) });
        assert_rejected(
            "3bffffffffffffffff",
            0,
            R {
                value: -1 - i128::from(u64::MAX),
            },
        );
        assert_rejected("81 1b0020000000000000", 1, R { value: 1 << 53 });
    }

    #[test]
    fn rejects_invalid_utf8() {
        use CborErrorReason::InvalidUtf8 as R;
        assert_rejected("61ff", 0, R);
        assert_rejected("62c328", 0, R); // bad continuation byte
        assert_rejected("63eda080", 0, R); // encoded surrogate U+D800
        assert_rejected("62c0af", 0, R); // overlong "/"
        assert_rejected("81 61 80", 1, R);
        assert_rejected("a1 61fe 01", 1, R); // as a map key
    }

    #[test]
    fn rejects_truncated_input() {
        use CborErrorReason::Truncated as R;
        for input in [
            "",
            "18",
            "19 01",
            "1a 000100",
            "1b 00000001000000",
            "62 61",
            "7b ffffffffffffffff",
            "82 01",
            "a1 6161",
            "a1",
            "9b 0000000100000000",
            "bb 0000000100000000 6161",
        ] {
            let len = unhex(input).len();
            assert_rejected(input, len, R);
        }
    }

    #[test]
    fn rejects_trailing_bytes() {
        use CborErrorReason::TrailingBytes as R;
        assert_rejected("01 01", 1, R);
        assert_rejected("f6 00", 1, R);
        assert_rejected("80 ff", 1, R);
        // Even garbage after the item is reported as trailing, not parsed.
        assert_rejected("a0 1c", 1, R);
    }

    #[test]
    fn rejects_reserved_additional_info() {
        use CborErrorReason::ReservedAdditionalInfo as R;
        for major in [0u8, 1, 3, 4, 5, 7] {
            for info in 28u8..=30 {
                let input = format!("{:02x}", major << 5 | info);
                assert_rejected(&input, 0, R(info));
            }
        }
    }

    #[test]
    fn rejects_break_outside_indefinite_item() {
        assert_rejected("ff", 0, CborErrorReason::UnexpectedBreak);
        assert_rejected("81 ff", 1, CborErrorReason::UnexpectedBreak);
    }

    #[test]
    fn rejects_deep_nesting_without_overflowing_the_stack() {
        // Far deeper than the limit; must fail cleanly at the limit.
        for opener in [0x81u8, 0xa1] {
            let mut input = Vec::new();
            for _ in 0..100_000 {
                input.push(opener);
                if opener == 0xa1 {
                    input.extend_from_slice(&[0x61, b'k']);
                }
            }
            let err = decode(&input).unwrap_err();
            assert_eq!(
                err.reason,
                CborErrorReason::NestingTooDeep {
                    limit: MAX_NESTING_DEPTH
                }
            );
            let stride = if opener == 0xa1 { 3 } else { 1 };
            assert_eq!(err.offset, MAX_NESTING_DEPTH * stride);
        }
    }

    #[test]
    fn huge_declared_lengths_do_not_preallocate() {
        // Claims 2^53-ish elements with nothing behind them.
        assert_rejected("9b 001fffffffffffff", 9, CborErrorReason::Truncated);
        assert_rejected("bb 001fffffffffffff", 9, CborErrorReason::Truncated);
        assert_rejected("7b 001fffffffffffff", 9, CborErrorReason::Truncated);
    }

    #[test]
    fn error_messages_say_where_and_what() {
        let err = decode(&unhex("a2 6162 01 6161 02")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid canonical CBOR at byte 4: map key \"a\" out of order \
             (keys must be sorted shorter first, then bytewise)"
        );
        let err = decode(&unhex("1b0020000000000000")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid canonical CBOR at byte 0: integer 9007199254740992 outside ±(2^53−1)"
        );
    }

    #[test]
    fn value_conveniences() {
        let value = Value::map([
            ("s", Value::from("x")),
            ("o", Value::from(String::from("y"))),
            ("n", Value::from(7)),
            ("b", Value::from(true)),
            ("a", Value::from(vec![Value::Null])),
        ]);
        let map = value.as_map().unwrap();
        assert_eq!(map["s"].as_str(), Some("x"));
        assert_eq!(map["o"].as_str(), Some("y"));
        assert_eq!(map["n"].as_i64(), Some(7));
        assert_eq!(map["b"].as_bool(), Some(true));
        assert!(map["a"].as_array().unwrap()[0].is_null());
        assert_eq!(map["n"].as_str(), None);
        assert_eq!(map["s"].as_i64(), None);
        assert_eq!(map["s"].as_bool(), None);
        assert_eq!(map["s"].as_array(), None);
        assert_eq!(map["s"].as_map(), None);
        assert!(!map["s"].is_null());
        // A later duplicate wins.
        assert_eq!(
            Value::map([("k", Value::from(1)), ("k", Value::from(2))]),
            Value::map([("k", Value::from(2))])
        );
    }

    // ---- property tests ---------------------------------------------------

    proptest! {
        #[test]
        fn decode_inverts_encode(value in arb_value()) {
            let bytes = encode(&value).unwrap();
            prop_assert_eq!(decode(&bytes).unwrap(), value);
        }

        #[test]
        fn reencoding_is_byte_identical(value in arb_value()) {
            let bytes = encode(&value).unwrap();
            let again = encode(&decode(&bytes).unwrap()).unwrap();
            prop_assert_eq!(hex(&again), hex(&bytes));
        }

        #[test]
        fn single_byte_mutations_are_never_accepted_as_non_canonical(
            value in arb_value(),
            index in any::<prop::sample::Index>(),
            replacement in any::<u8>(),
        ) {
            let mut bytes = encode(&value).unwrap();
            let index = index.index(bytes.len());
            prop_assume!(bytes[index] != replacement);
            bytes[index] = replacement;
            if let Ok(decoded) = decode(&bytes) {
                prop_assert_eq!(hex(&encode(&decoded).unwrap()), hex(&bytes));
            }
        }

        #[test]
        fn truncations_and_extensions_are_rejected(
            value in arb_value(),
            cut in any::<prop::sample::Index>(),
            extra in any::<u8>(),
        ) {
            let bytes = encode(&value).unwrap();
            let cut = cut.index(bytes.len());
            let err = decode(&bytes[..cut]).unwrap_err();
            prop_assert_eq!(err.reason, CborErrorReason::Truncated);
            prop_assert_eq!(err.offset, cut);
            let mut longer = bytes.clone();
            longer.push(extra);
            let err = decode(&longer).unwrap_err();
            prop_assert_eq!(err, CborError { offset: bytes.len(), reason: CborErrorReason::TrailingBytes });
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_accepted_bytes_are_canonical(
            bytes in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            if let Ok(decoded) = decode(&bytes) {
                prop_assert_eq!(encode(&decoded).unwrap(), bytes);
            }
        }
    }
}

/// Proptest strategies shared with the JCS tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{MAX_SAFE_INT, Value};
    use proptest::prelude::*;

    /// Lowercase hex, for readable assertion failures.
    pub(crate) fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Keys and text: ASCII, controls, non-ASCII and astral characters.
    pub(crate) fn arb_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{0,4}",
            prop::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
            prop::collection::vec(
                prop_oneof![
                    Just('a'),
                    Just('\u{7f}'),
                    Just('\u{e9}'),
                    Just('\u{ffff}'),
                    Just('\u{e000}'),
                    Just('\u{1f600}'),
                    Just('\u{10000}'),
                    Just('\n'),
                    Just('\u{1}'),
                    Just('"'),
                ],
                0..4
            )
            .prop_map(String::from_iter),
        ]
    }

    /// Integers biased towards head-width and data-model boundaries.
    pub(crate) fn arb_int() -> impl Strategy<Value = i64> {
        let boundaries = [
            0,
            23,
            24,
            255,
            256,
            65535,
            65536,
            u32::MAX as i64,
            u32::MAX as i64 + 1,
            MAX_SAFE_INT,
        ];
        prop_oneof![
            prop::sample::select(boundaries.to_vec()),
            // -1 - n: the negative head boundaries (-1, -24, -25, -256, ...),
            // clamped at the data model's lower end.
            prop::sample::select(boundaries.to_vec()).prop_map(|n| (-n - 1).max(-MAX_SAFE_INT)),
            prop::sample::select(boundaries.to_vec()).prop_map(|n| -n),
            -MAX_SAFE_INT..=MAX_SAFE_INT,
            -300i64..300,
        ]
    }

    /// Arbitrary data-model values of bounded depth and size.
    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            arb_int().prop_map(Value::Int),
            arb_text().prop_map(Value::Text),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(arb_text(), inner, 0..6).prop_map(Value::Map),
            ]
        })
    }
}
