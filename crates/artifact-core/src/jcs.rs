//! The JSON projection of the data model: RFC 8785 JSON Canonicalization
//! Scheme (JCS) (SPEC §2.2).
//!
//! Records are stored and digested as canonical CBOR ([`crate::cbor`]); JSON
//! is how humans and HTTP clients see them. The projection is lossless in both
//! directions because the data model has no floats and its integers stay
//! within ±(2^53−1), which every JSON implementation represents exactly.
//!
//! # Output ([`to_jcs`])
//!
//! RFC 8785 restricted to the data model:
//!
//! - no whitespace;
//! - object members sorted by the UTF-16 code units of their keys (not by
//!   UTF-8 bytes and not by the CBOR order: U+1F600 sorts *before* U+FB33 in
//!   UTF-16 because its surrogate 0xD83D is smaller, but after it in UTF-8);
//! - strings escaped as ECMAScript `JSON.stringify` does: `\"`, `\\`, `\b`,
//!   `\f`, `\n`, `\r`, `\t`, other control characters below U+0020 as
//!   `\u00xx` with lowercase hex, everything else literal UTF-8 (including
//!   `/`, U+007F, U+2028, U+2029 and all non-ASCII);
//! - integers in plain decimal.
//!
//! # Input ([`from_json`])
//!
//! Any valid JSON text is accepted, canonical or not (whitespace, member
//! order and escapes are free), as long as it stays within the data model:
//!
//! - numbers must be integers within ±(2^53−1) written without fraction or
//!   exponent: `1.0`, `1e2` and `1E0` are rejected even though they denote
//!   integers, so that a JSON number means the same thing to every reader;
//! - `-0` is rejected too: it is not how JCS writes zero, and serde_json
//!   reports it as the float −0.0, indistinguishable from `-0.0`;
//! - duplicate object keys are rejected (RFC 8259 leaves their meaning open,
//!   and silently keeping one would let two texts with different content
//!   canonicalize to the same record);
//! - strings must be valid Unicode (a lone surrogate escape such as `"\ud800"`
//!   is rejected);
//! - nesting deeper than [`crate::cbor::MAX_NESTING_DEPTH`] and trailing
//!   content are rejected.
//!
//! serde_json does the tokenizing; a private visitor builds the [`Value`], so
//! errors carry serde_json's line and column.

use crate::cbor::{MAX_NESTING_DEPTH, MAX_SAFE_INT, Value};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// Returns the RFC 8785 canonical JSON text of `value`.
///
/// Does not validate integer ranges: an out-of-range [`Value::Int`] is
/// written in decimal, and [`from_json`] (like [`crate::cbor::encode`]) would
/// reject it.
///
/// ```
/// # use artifact_core::cbor::Value;
/// # use artifact_core::jcs::to_jcs;
/// let v = Value::map([("b", Value::from("x\n")), ("a", Value::from(-1))]);
/// assert_eq!(to_jcs(&v), r#"{"a":-1,"b":"x\n"}"#);
/// ```
pub fn to_jcs(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

/// Returns the RFC 8785 canonical JSON text of `value` as UTF-8 bytes.
pub fn to_jcs_bytes(value: &Value) -> Vec<u8> {
    to_jcs(value).into_bytes()
}

/// Converts `value` to a [`serde_json::Value`], e.g. for pretty printing.
///
/// Object members are inserted in JCS order, which shows if serde_json's
/// `preserve_order` feature is enabled. Not canonical by itself: use
/// [`to_jcs`] for canonical text.
pub fn to_json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(n) => serde_json::Value::Number((*n).into()),
        Value::Text(text) => serde_json::Value::String(text.clone()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json_value).collect()),
        Value::Map(entries) => serde_json::Value::Object(
            sorted_entries(entries)
                .into_iter()
                .map(|(key, item)| (key.clone(), to_json_value(item)))
                .collect(),
        ),
    }
}

/// JSON text that is not valid JSON or leaves the data model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at line {line} column {column}: {reason}")]
pub struct JsonError {
    /// 1-based line of the error, as reported by serde_json.
    pub line: usize,
    /// 1-based column (in bytes) of the error, as reported by serde_json; 0
    /// when the input ended on a fresh line.
    pub column: usize,
    /// What is wrong, without the position.
    pub reason: String,
}

impl JsonError {
    fn from_serde(err: &serde_json::Error) -> Self {
        let (line, column) = (err.line(), err.column());
        // serde_json's Display is "<reason> at line L column C"; keep the reason.
        let message = err.to_string();
        let suffix = format!(" at line {line} column {column}");
        let reason = message
            .strip_suffix(&suffix)
            .map_or_else(|| message.clone(), str::to_owned);
        JsonError {
            line,
            column,
            reason,
        }
    }
}

/// Parses any valid JSON text into a [`Value`].
///
/// # Errors
///
/// Fails on invalid JSON and on whatever leaves the data model (see the
/// module docs): non-integers, `-0`, integers outside ±(2^53−1), duplicate
/// keys, nesting deeper than [`MAX_NESTING_DEPTH`], trailing content. The
/// error carries serde_json's line and column.
///
/// ```
/// # use artifact_core::cbor::Value;
/// # use artifact_core::jcs::{from_json, to_jcs};
/// let v = from_json(br#"{ "b": [true, null], "a": 7 }"#).unwrap();
/// assert_eq!(to_jcs(&v), r#"{"a":7,"b":[true,null]}"#);
/// let err = from_json(b"{\"a\": 1.5}").unwrap_err();
/// assert_eq!((err.line, err.column), (1, 9));
/// ```
pub fn from_json(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = ValueSeed { depth: 0 }
        .deserialize(&mut deserializer)
        .map_err(|err| JsonError::from_serde(&err))?;
    deserializer
        .end()
        .map_err(|err| JsonError::from_serde(&err))?;
    Ok(value)
}

/// The members of a map in JCS order: by the UTF-16 code units of the key.
fn sorted_entries(entries: &BTreeMap<String, Value>) -> Vec<(&String, &Value)> {
    let mut sorted: Vec<(&String, &Value)> = entries.iter().collect();
    sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    sorted
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // ECMAScript prints integers below 10^21 in plain decimal.
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Text(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (idx, (key, item)) in sorted_entries(entries).into_iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

/// Writes a JSON string exactly as ECMAScript `JSON.stringify` (RFC 8785
/// §3.2.2.2). Rust strings hold no lone surrogates, so the well-formed
/// `JSON.stringify` rule for them never applies.
fn write_string(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0'..='\u{1f}' => {
                let code = ch as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[code >> 4]));
                out.push(char::from(HEX[code & 0xf]));
            }
            _ => out.push(ch),
        }
    }
    out.push('"');
}

/// Deserializes one JSON value; `depth` counts the arrays and objects
/// enclosing it, so nesting is capped exactly as in [`crate::cbor`].
struct ValueSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ValueSeed {
    fn open_container<E: de::Error>(&self) -> Result<ValueSeed, E> {
        if self.depth >= MAX_NESTING_DEPTH {
            return Err(E::custom(format_args!(
                "arrays and objects nested deeper than {MAX_NESTING_DEPTH} levels"
            )));
        }
        Ok(ValueSeed {
            depth: self.depth + 1,
        })
    }
}

fn out_of_range<E: de::Error>(n: impl fmt::Display) -> E {
    E::custom(format_args!("integer {n} outside ±(2^53−1)"))
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value of the artifactstore data model")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        if (-MAX_SAFE_INT..=MAX_SAFE_INT).contains(&n) {
            Ok(Value::Int(n))
        } else {
            Err(out_of_range(n))
        }
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        match i64::try_from(n) {
            Ok(n) if n <= MAX_SAFE_INT => Ok(Value::Int(n)),
            _ => Err(out_of_range(n)),
        }
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        // serde_json yields f64 for fractions, exponents, -0 and integers
        // beyond u64/i64; none of them is an integer literal of the model.
        if n == 0.0 && n.is_sign_negative() {
            return Err(E::custom(
                "negative zero is not part of the data model (write 0)",
            ));
        }
        Err(E::custom(
            "floats are not part of the data model (numbers must be integers within ±(2^53−1), \
             written without fraction or exponent)",
        ))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
        Ok(Value::Text(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Value, E> {
        Ok(Value::Text(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let child = self.open_container()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ValueSeed { depth: child.depth })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let child = self.open_container()?;
        let mut entries = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if entries.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate object key {key:?}"
                )));
            }
            let item = map.next_value_seed(ValueSeed { depth: child.depth })?;
            entries.insert(key, item);
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::testing::arb_value;
    use crate::cbor::{decode, encode};
    use proptest::prelude::*;

    fn text(s: &str) -> Value {
        Value::from(s)
    }

    /// Asserts that `input` is rejected at `line`:`column` with a reason
    /// containing `reason`.
    #[track_caller]
    fn assert_rejected(input: &str, line: usize, column: usize, reason: &str) {
        let err = from_json(input.as_bytes()).unwrap_err();
        assert_eq!(
            (err.line, err.column),
            (line, column),
            "input {input:?}: {err}"
        );
        assert!(err.reason.contains(reason), "input {input:?}: {err}");
    }

    #[test]
    fn rfc8785_sorting_example_uses_utf16_order() {
        // RFC 8785 §3.2.3. U+1F600 (surrogates D83D DE00) sorts before U+FB33
        // in UTF-16 although its UTF-8 (F0 ..) sorts after U+FB33's (EF ..).
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let value = from_json(input.as_bytes()).unwrap();
        let expected = concat!(
            r#"{"\r":"Carriage Return","1":"One","#,
            "\"\u{80}\":\"Control\",",
            "\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",",
            "\"\u{20ac}\":\"Euro Sign\",",
            "\"\u{1f600}\":\"Emoji: Grinning Face\",",
            "\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
        );
        assert_eq!(to_jcs(&value), expected);
    }

    #[test]
    fn utf16_order_differs_from_utf8_and_cbor_order() {
        let value = Value::map([
            ("\u{e000}", Value::Int(1)),
            ("\u{ffff}", Value::Int(2)),
            ("\u{10000}", Value::Int(3)),
            ("z", Value::Int(4)),
        ]);
        // UTF-16: z (007A) < U+10000 (D800 DC00) < U+E000 < U+FFFF.
        assert_eq!(
            to_jcs(&value),
            "{\"z\":4,\"\u{10000}\":3,\"\u{e000}\":1,\"\u{ffff}\":2}"
        );
        // The CBOR order is by encoded length first: the 4-byte key is last.
        let bytes = encode(&value).unwrap();
        let astral = "\u{10000}".as_bytes();
        let position = bytes
            .windows(astral.len())
            .position(|w| w == astral)
            .unwrap();
        assert_eq!(bytes.len(), position + astral.len() + 1);
    }

    #[test]
    fn rfc8785_string_and_literal_example() {
        // RFC 8785 §3.2.2 input (its "numbers" member is left out: floats
        // are not in the data model, see rejects_rfc8785_numbers).
        let input = r#"{
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;
        let value = from_json(input.as_bytes()).unwrap();
        assert_eq!(
            to_jcs(&value),
            "{\"literals\":[null,true,false],\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    #[test]
    fn rejects_rfc8785_numbers() {
        for number in [
            "333333333.33333329",
            "1E30",
            "4.50",
            "2e-3",
            "0.000000000000000000000000001",
        ] {
            let input = format!("[{number}]");
            assert_rejected(
                &input,
                1,
                number.len() + 1,
                "floats are not part of the data model",
            );
        }
    }

    #[test]
    fn string_escaping_matches_json_stringify() {
        let cases = [
            ("\"\\", r#""\"\\""#),
            ("\u{8}\u{c}\n\r\t", r#""\b\f\n\r\t""#),
            ("\u{0}\u{1}\u{1f}", r#""\u0000\u0001\u001f""#),
            ("\u{b}\u{1b}", r#""\u000b\u001b""#),
            ("/", r#""/""#),
            ("\u{7f}", "\"\u{7f}\""),
            ("\u{2028}\u{2029}", "\"\u{2028}\u{2029}\""),
            ("\u{e9}\u{1f600}", "\"\u{e9}\u{1f600}\""),
        ];
        for (raw, expected) in cases {
            assert_eq!(to_jcs(&text(raw)), expected, "escaping of {raw:?}");
        }
        // serde_json escapes the same way: a cross-check on every ASCII char.
        for code in 0u8..0x80 {
            let raw = char::from(code).to_string();
            assert_eq!(to_jcs(&text(&raw)), serde_json::to_string(&raw).unwrap());
        }
    }

    #[test]
    fn integers_in_plain_decimal() {
        let value = Value::Array(vec![
            Value::Int(0),
            Value::Int(-1),
            Value::Int(MAX_SAFE_INT),
            Value::Int(-MAX_SAFE_INT),
            Value::Int(1_000_000_000_000_000),
        ]);
        let json = "[0,-1,9007199254740991,-9007199254740991,1000000000000000]";
        assert_eq!(to_jcs(&value), json);
        assert_eq!(to_jcs_bytes(&value), json.as_bytes());
        assert_eq!(from_json(json.as_bytes()).unwrap(), value);
    }

    #[test]
    fn accepts_non_canonical_json() {
        let input = " {\"b\" : [ 1 , \"\\u0041\\/\" ],\n\t\"a\":{}} \n";
        let value = from_json(input.as_bytes()).unwrap();
        assert_eq!(
            value,
            Value::map([
                ("a", Value::map(Vec::<(String, Value)>::new())),
                ("b", Value::Array(vec![Value::Int(1), text("A/")])),
            ])
        );
        assert_eq!(to_jcs(&value), r#"{"a":{},"b":[1,"A/"]}"#);
    }

    #[test]
    fn rejects_duplicate_keys_with_position() {
        // serde_json reports the position of the duplicate key's closing quote.
        assert_rejected(r#"{"a":1,"a":2}"#, 1, 10, "duplicate object key \"a\"");
        // Escapes do not hide a duplicate.
        assert_rejected(
            "{\"a\":1,\n  \"\\u0061\":2}",
            2,
            10,
            "duplicate object key \"a\"",
        );
        // Nested objects are checked too; equal keys in siblings are fine.
        assert!(from_json(br#"[{"a":1},{"a":2}]"#).is_ok());
        assert_rejected(
            r#"{"x":{"k":1,"k":1}}"#,
            1,
            15,
            "duplicate object key \"k\"",
        );
    }

    #[test]
    fn rejects_floats_with_position() {
        assert_rejected("1.0", 1, 3, "floats are not part of the data model");
        assert_rejected("1e2", 1, 3, "floats are not part of the data model");
        assert_rejected(
            "{\n  \"size\": 12.5\n}",
            2,
            14,
            "floats are not part of the data model",
        );
        // Beyond u64: serde_json hands over a float.
        assert_rejected(
            "18446744073709551616",
            1,
            20,
            "floats are not part of the data model",
        );
    }

    #[test]
    fn rejects_negative_zero() {
        // Decision: "-0" is rejected (JCS writes zero as "0", and serde_json
        // cannot tell "-0" from "-0.0").
        assert_rejected("-0", 1, 2, "negative zero");
        assert_rejected("[-0.0]", 1, 5, "negative zero");
        assert_eq!(from_json(b"0").unwrap(), Value::Int(0));
    }

    #[test]
    fn rejects_integers_out_of_range() {
        assert_rejected(
            "9007199254740992",
            1,
            16,
            "integer 9007199254740992 outside",
        );
        assert_rejected(
            "-9007199254740992",
            1,
            17,
            "integer -9007199254740992 outside",
        );
        assert_rejected("18446744073709551615", 1, 20, "outside ±(2^53−1)");
        assert_rejected("-9223372036854775808", 1, 20, "outside ±(2^53−1)");
        assert_eq!(
            from_json(b"9007199254740991").unwrap(),
            Value::Int(MAX_SAFE_INT)
        );
        assert_eq!(
            from_json(b"-9007199254740991").unwrap(),
            Value::Int(-MAX_SAFE_INT)
        );
    }

    #[test]
    fn rejects_invalid_json() {
        assert_rejected("", 1, 0, "EOF while parsing a value");
        assert_rejected("{\"a\":1} x", 1, 9, "trailing characters");
        assert_rejected("[1,]", 1, 4, "trailing comma");
        assert_rejected("{a:1}", 1, 2, "key must be a string");
        assert_rejected("\"\\ud800\"", 1, 8, "hex escape"); // lone surrogate
        assert_rejected("\"\\ud800\\u0041\"", 1, 13, "lone leading surrogate");
        assert_rejected("NaN", 1, 1, "expected value");
        let err = from_json(b"\"\xff\"").unwrap_err();
        assert!(err.reason.contains("invalid unicode"), "{err}");
    }

    #[test]
    fn nesting_limit_matches_cbor() {
        let ok = "[".repeat(MAX_NESTING_DEPTH) + &"]".repeat(MAX_NESTING_DEPTH);
        let value = from_json(ok.as_bytes()).unwrap();
        assert_eq!(decode(&encode(&value).unwrap()).unwrap(), value);
        assert_eq!(to_jcs(&value), ok);

        let deeper = MAX_NESTING_DEPTH + 1;
        let too_deep = "[".repeat(deeper) + &"]".repeat(deeper);
        assert_rejected(&too_deep, 1, deeper + 1, "nested deeper than 64 levels");
        let objects = "{\"k\":".repeat(deeper) + "1" + &"}".repeat(deeper);
        assert!(
            from_json(objects.as_bytes())
                .unwrap_err()
                .reason
                .contains("nested deeper")
        );
        // Far deeper input fails cleanly, without exhausting the stack.
        let hostile = "[".repeat(1_000_000);
        assert!(from_json(hostile.as_bytes()).is_err());
    }

    #[test]
    fn error_message_format() {
        let err = from_json(b"[1.5]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid JSON at line 1 column 4: floats are not part of the data model \
             (numbers must be integers within ±(2^53−1), written without fraction or exponent)"
        );
    }

    #[test]
    fn to_json_value_matches_jcs() {
        let value = Value::map([
            ("n", Value::Int(-5)),
            ("t", text("\u{1f600}")),
            ("a", Value::Array(vec![Value::Null, Value::Bool(false)])),
        ]);
        let json = to_json_value(&value);
        assert_eq!(
            json,
            serde_json::json!({"n": -5, "t": "\u{1f600}", "a": [null, false]})
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&to_jcs(&value)).unwrap(),
            json
        );
    }

    proptest! {
        #[test]
        fn from_json_inverts_to_jcs(value in arb_value()) {
            prop_assert_eq!(from_json(to_jcs(&value).as_bytes()).unwrap(), value);
        }

        #[test]
        fn to_jcs_is_deterministic(value in arb_value()) {
            // Any JSON spelling of the value canonicalizes to the same text.
            let pretty = serde_json::to_string_pretty(&to_json_value(&value)).unwrap();
            let reparsed = from_json(pretty.as_bytes()).unwrap();
            prop_assert_eq!(to_jcs(&reparsed), to_jcs(&value));
            prop_assert_eq!(to_jcs_bytes(&value), to_jcs(&value).into_bytes());
        }

        #[test]
        fn jcs_is_valid_json_for_serde_json(value in arb_value()) {
            let parsed: serde_json::Value = serde_json::from_str(&to_jcs(&value)).unwrap();
            prop_assert_eq!(parsed, to_json_value(&value));
        }

        #[test]
        fn cbor_and_json_round_trip_through_each_other(value in arb_value()) {
            let from_cbor = decode(&encode(&value).unwrap()).unwrap();
            let via_json = from_json(&to_jcs_bytes(&from_cbor)).unwrap();
            prop_assert_eq!(encode(&via_json).unwrap(), encode(&value).unwrap());
        }

        #[test]
        fn from_json_never_panics(input in "[\\[\\]{}\",:0-9a-z\\\\. -]{0,40}") {
            if let Ok(value) = from_json(input.as_bytes()) {
                prop_assert_eq!(from_json(to_jcs(&value).as_bytes()).unwrap(), value);
            }
        }
    }
}
