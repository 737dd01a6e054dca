//! hermes' JSON encoding: Python's `json.dumps(..., indent=4)` with
//! `ensure_ascii`, plus the `HermesDatetime(...)` and `HermesBytes(...)` forms.
//!
//! Parsing is serde_json's; writing is ours, because no Rust serializer writes
//! floats and escapes the way Python does, and a byte of difference makes a bus
//! unreadable to hermes.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::NaiveDateTime;

use crate::{CodecError, Integer, Value};

const DATETIME_PREFIX: &str = "HermesDatetime(";
const BYTES_PREFIX: &str = "HermesBytes(";
const DATETIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// Writes `value`; with `indent`, each item on its own line as Python does,
/// without it on one line with no spaces.
pub(crate) fn write(value: &Value, indent: Option<usize>) -> String {
    let mut out = String::new();
    Writer {
        out: &mut out,
        indent,
    }
    .value(value, 0);
    out
}

/// Appends `value` to `out` as [`write`] with indent 4 writes it `depth`
/// levels deep in a larger document, so a document can be written in pieces.
pub(crate) fn append_nested(out: &mut String, value: &Value, depth: usize) {
    Writer {
        out,
        indent: Some(4),
    }
    .value(value, depth);
}

/// Appends `value` to `out` on one line with no spaces, as [`write`]
/// without indent writes it.
pub(crate) fn append_compact(out: &mut String, value: &Value) {
    Writer { out, indent: None }.value(value, 0);
}

/// Appends `text` to `out` as a JSON string, in hermes' encoding.
pub(crate) fn append_string(out: &mut String, text: &str) {
    write_string(out, text);
}

/// One top-level attribute of an event, borrowed from it.
pub(crate) enum Field<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Value(&'a Value),
}

/// Writes an event's attributes as one object, in the order given, without
/// building a value tree first.
pub(crate) fn write_object(fields: &[(&str, Field<'_>)], indent: Option<usize>) -> String {
    let mut out = String::with_capacity(512);
    let mut writer = Writer {
        out: &mut out,
        indent,
    };
    writer.container('{', '}', fields.len(), 0, |w, i| {
        let (key, field) = &fields[i];
        write_string(w.out, key);
        w.out.push_str(if w.indent.is_some() { ": " } else { ":" });
        match field {
            Field::Null => w.out.push_str("null"),
            Field::Str(s) => write_string(w.out, s),
            Field::Int(n) => {
                let _ = write!(w.out, "{n}");
            }
            Field::Bool(b) => w.out.push_str(if *b { "true" } else { "false" }),
            Field::Value(v) => w.value(v, 1),
        }
    });
    out
}

struct Writer<'a> {
    out: &'a mut String,
    indent: Option<usize>,
}

impl Writer<'_> {
    fn value(&mut self, value: &Value, depth: usize) {
        match value {
            Value::Null => self.out.push_str("null"),
            Value::Bool(true) => self.out.push_str("true"),
            Value::Bool(false) => self.out.push_str("false"),
            Value::Integer(i) => {
                let _ = write!(self.out, "{i}");
            }
            Value::Float(f) => write_python_float(self.out, *f),
            Value::String(s) => write_string(self.out, s),
            Value::Bytes(b) => write_string(self.out, &bytes_form(b)),
            Value::Datetime(dt) => write_string(self.out, &datetime_form(dt)),
            Value::List(items) => {
                self.container('[', ']', items.len(), depth, |w, i| {
                    w.value(&items[i], depth + 1)
                });
            }
            Value::Object(entries) => {
                self.container('{', '}', entries.len(), depth, |w, i| {
                    let (key, item) = &entries[i];
                    write_string(w.out, key);
                    w.out.push_str(if w.indent.is_some() { ": " } else { ":" });
                    w.value(item, depth + 1);
                });
            }
        }
    }

    fn container(
        &mut self,
        open: char,
        close: char,
        len: usize,
        depth: usize,
        mut item: impl FnMut(&mut Self, usize),
    ) {
        self.out.push(open);
        if len == 0 {
            self.out.push(close);
            return;
        }
        for i in 0..len {
            if i > 0 {
                self.out.push(',');
            }
            self.newline(depth + 1);
            item(self, i);
        }
        self.newline(depth);
        self.out.push(close);
    }

    fn newline(&mut self, depth: usize) {
        if let Some(width) = self.indent {
            self.out.push('\n');
            self.out.extend(std::iter::repeat_n(' ', width * depth));
        }
    }
}

fn bytes_form(bytes: &[u8]) -> String {
    format!("{BYTES_PREFIX}{})", BASE64.encode(bytes))
}

fn datetime_form(at: &NaiveDateTime) -> String {
    format!("{DATETIME_PREFIX}{})", at.format(DATETIME_FORMAT))
}

/// Python's `json` string escaping with `ensure_ascii=True`: everything outside
/// printable ASCII becomes `\uXXXX` (lowercase hex, surrogate pairs beyond the
/// BMP), except the short forms Python uses.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    // Runs of printable ASCII go in whole; the rest one character at a time.
    let mut rest = s;
    while !rest.is_empty() {
        let plain = rest
            .bytes()
            .position(|b| !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\')
            .unwrap_or(rest.len());
        out.push_str(&rest[..plain]);
        rest = &rest[plain..];
        let Some(c) = rest.chars().next() else {
            break;
        };
        rest = &rest[c.len_utf8()..];
        escape_char(out, c);
    }
    out.push('"');
}

fn escape_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        ' '..='~' => out.push(c),
        _ => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
}

/// Python's `repr()` of a float, which `str()` also gives: `2048.0`,
/// `1e+16`, `nan`, `inf`, `-inf`.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let mut out = String::new();
    write_python_float(&mut out, f);
    out
}

/// Python's `float.__repr__`: the shortest digits that read back the same
/// value, in fixed notation when the decimal exponent is in -4..16, otherwise
/// scientific with a signed exponent of at least two digits.
fn write_python_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as Python's repr.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let n = digits.len() as i32;
    let point = exponent + 1; // digits are 0.DIGITS x 10^point

    if f.is_sign_negative() {
        out.push('-');
    }
    if (-4 < point) && (point <= 16) {
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        } else if point >= n {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (point - n) as usize));
            out.push_str(".0");
        } else {
            let (int, frac) = digits.split_at(point as usize);
            let _ = write!(out, "{int}.{frac}");
        }
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            let _ = write!(out, ".{rest}");
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.abs());
    }
}

/// Parses JSON text, turning hermes' string forms back into datetimes and bytes
/// at any depth (never in keys). serde_json reads the text straight into
/// [`Value`], with no tree in between; its depth limit (128) bounds the
/// recursion on hostile input.
pub(crate) fn parse(text: &str) -> Result<Value, CodecError> {
    serde_json::from_str(&python_constants(text)).map_err(|e| CodecError::Syntax(e.to_string()))
}

/// hermes' Python codec writes a float that is not finite as the bare token
/// `NaN`, `Infinity` or `-Infinity`, and reads them back; JSON has no such
/// tokens, so serde_json refuses them. Outside strings, each becomes the
/// form serde_json gives a number under `arbitrary_precision` (a one-entry
/// map holding the number's text), which the reader turns into the float,
/// as it does any number. A text without them is taken as it is.
pub(crate) fn python_constants(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("NaN") && !text.contains("Infinity") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(at) = rest.find(['"', 'N', 'I', '-']) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        if from.starts_with('"') {
            let end = string_end(from);
            out.push_str(&from[..end]);
            rest = &from[end..];
            continue;
        }
        match ["NaN", "Infinity", "-Infinity"]
            .into_iter()
            .find(|constant| from.starts_with(constant))
        {
            Some(constant) => {
                let _ = write!(out, r#"{{"{NUMBER_TOKEN}":"{constant}"}}"#);
                rest = &from[constant.len()..];
            }
            None => {
                out.push_str(&from[..1]);
                rest = &from[1..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// The length of the string `text` starts with, its quotes included (all of
/// `text` if the string is left open).
fn string_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The key serde_json's `arbitrary_precision` gives a number under, as a
/// one-entry map holding the number's text.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Integer(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Integer(n.into()))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(string(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(string(s))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if entries.is_empty() && key == NUMBER_TOKEN {
                let text: std::borrow::Cow<'de, str> = map.next_value()?;
                return Ok(number(&text));
            }
            let value = map.next_value()?;
            entries.push((key.into_owned(), value));
        }
        Ok(Value::Object(entries))
    }
}

/// JSON numbers as Python reads them: without a fraction or exponent an
/// integer of any size, otherwise a float.
fn number(text: &str) -> Value {
    if !text.contains(['.', 'e', 'E'])
        && let Ok(i) = text.parse::<Integer>()
    {
        return Value::Integer(i);
    }
    Value::Float(text.parse().unwrap_or(f64::NAN))
}

fn string(s: String) -> Value {
    let inner = |prefix: &str| s.strip_prefix(prefix).and_then(|r| r.strip_suffix(')'));
    if let Some(at) =
        inner(DATETIME_PREFIX).and_then(|t| NaiveDateTime::parse_from_str(t, DATETIME_FORMAT).ok())
    {
        return Value::Datetime(at);
    }
    if let Some(bytes) = inner(BYTES_PREFIX).and_then(|t| BASE64.decode(t).ok()) {
        return Value::Bytes(bytes);
    }
    Value::String(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_constants_become_number_texts_outside_strings_only() {
        let token = |c: &str| format!(r#"{{"{NUMBER_TOKEN}":"{c}"}}"#);
        assert_eq!(
            python_constants(r#"[NaN, -Infinity, "NaN \" Infinity", Infinity]"#),
            format!(
                r#"[{}, {}, "NaN \" Infinity", {}]"#,
                token("NaN"),
                token("-Infinity"),
                token("Infinity")
            )
        );
        assert!(matches!(
            python_constants("[1, -2]"),
            std::borrow::Cow::Borrowed(_)
        ));
        // A string left open is taken as it is, to its end.
        assert_eq!(
            python_constants(r#"[NaN, "open NaN"#),
            format!(r#"[{}, "open NaN"#, token("NaN"))
        );
        assert_eq!(string_end(r#""a\"#), 3, "an escape at the very end");
        assert_eq!(string_end(r#""ab" x"#), 4);
    }

    #[test]
    fn a_document_written_in_pieces_reads_as_the_whole_one() {
        let inner = Value::Object(vec![
            ("id".into(), Value::from(7)),
            (
                "tags".into(),
                Value::List(vec![Value::from("a"), Value::empty_object()]),
            ),
        ]);
        let whole = Value::Object(vec![
            ("flag".into(), Value::Bool(true)),
            (
                "items".into(),
                Value::List(vec![inner.clone(), inner.clone()]),
            ),
        ]);
        let mut pieces = String::from("{\n    \"flag\": true,\n    \"items\": [\n        ");
        inner.append_json(&mut pieces, 2);
        pieces.push_str(",\n        ");
        inner.append_json(&mut pieces, 2);
        pieces.push_str("\n    ]\n}");
        assert_eq!(pieces, whole.to_json());
    }

    fn float(f: f64) -> String {
        let mut out = String::new();
        write_python_float(&mut out, f);
        out
    }

    #[test]
    fn floats_follow_python_repr() {
        // Each expectation is what CPython's repr() prints.
        let cases: &[(f64, &str)] = &[
            (3.0, "3.0"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (0.1, "0.1"),
            (1e-7, "1e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345.6, "123456789012345.6"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-2.5, "-2.5"),
            (1234.5678, "1234.5678"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ];
        for (value, expected) in cases {
            assert_eq!(float(*value), *expected, "repr of {value:?}");
        }
    }

    #[test]
    fn strings_escape_like_python_ensure_ascii() {
        let mut out = String::new();
        write_string(&mut out, "a\"b\\c/d\te\nf\u{1}g\u{7f}é€😀\r\u{8}\u{c}");
        assert_eq!(
            out,
            r#""a\"b\\c/d\te\nf\u0001g\u007f\u00e9\u20ac\ud83d\ude00\r\b\f""#
        );
    }

    #[test]
    fn hermes_string_forms_that_do_not_parse_stay_strings() {
        for text in [
            "HermesDatetime(yesterday)",
            "HermesBytes(not base64!)",
            "HermesDatetime(2024-01-01T00:00:00Z",
        ] {
            assert_eq!(string(text.to_owned()), Value::String(text.to_owned()));
        }
    }

    #[test]
    fn big_integers_survive_exactly() {
        let text = "[123456789012345678901234567890, -98765432109876543210, -0]";
        let value = parse(text).expect("valid JSON");
        assert_eq!(
            write(&value, None),
            "[123456789012345678901234567890,-98765432109876543210,0]"
        );
    }
}
