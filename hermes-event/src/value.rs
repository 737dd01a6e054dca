//! The values an event's attributes hold: JSON plus hermes' datetimes and bytes.

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDateTime, Timelike};

use crate::CodecError;

/// A value of an event attribute, as hermes' Python code sees it.
///
/// Objects keep their keys in the order they were built in, as Python dicts do;
/// hermes relies on it (a modified diff lists `added`, `modified`, `removed`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JSON `null`, Python `None`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer of any size (Python ints are unbounded).
    Integer(Integer),
    /// A floating-point number. `NaN` and infinities are written and read as
    /// Python does (`NaN`, `Infinity`, `-Infinity`, bare), which JSON readers
    /// other than Python's may refuse; a number too large for a float reads
    /// as an infinity.
    Float(f64),
    /// A string.
    String(String),
    /// Raw bytes, written `"HermesBytes(<base64>)"`.
    Bytes(Vec<u8>),
    /// A date and time at one-second precision, written
    /// `"HermesDatetime(YYYY-MM-DDTHH:MM:SSZ)"`. hermes drops any timezone
    /// without converting, so there is none here either.
    Datetime(NaiveDateTime),
    /// A list (Python lists, tuples and sets; a set is written sorted).
    List(Vec<Value>),
    /// An object with string keys, in insertion order.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// An empty object, `{}`.
    pub fn empty_object() -> Self {
        Value::Object(Vec::new())
    }

    /// A datetime value, truncated to whole seconds as hermes writes it.
    pub fn datetime(at: NaiveDateTime) -> Self {
        Value::Datetime(at.with_nanosecond(0).unwrap_or(at))
    }

    /// The value under `key` if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Parses JSON text in hermes' encoding (any layout).
    pub fn from_json(text: &str) -> Result<Value, CodecError> {
        crate::json::parse(text)
    }

    /// Writes the value as hermes does: indent 4, ASCII only.
    pub fn to_json(&self) -> String {
        crate::json::write(self, Some(4))
    }

    /// Appends the value to `out` exactly as [`Value::to_json`] writes it
    /// where it sits `depth` levels deep in a larger document: a document too
    /// big to build as one value can be written a piece at a time, and reads
    /// the same as if it had been.
    pub fn append_json(&self, out: &mut String, depth: usize) {
        crate::json::append_nested(out, self, depth)
    }

    /// Writes the value on one line with no spaces, in hermes' encoding.
    pub fn to_json_compact(&self) -> String {
        crate::json::write(self, None)
    }

    /// Appends the value to `out` as [`Value::to_json_compact`] writes it,
    /// without building a larger value around it.
    pub fn append_json_compact(&self, out: &mut String) {
        crate::json::append_compact(out, self)
    }

    /// Appends `text` to `out` as a JSON string in hermes' encoding: what
    /// [`Value::append_json_compact`] writes for `Value::String(text)`,
    /// without the copy.
    pub fn append_json_str(out: &mut String, text: &str) {
        crate::json::append_string(out, text)
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Integer(value.into())
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Float(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::String(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::String(value)
    }
}

/// An integer of any size: an `i64` when it fits, otherwise its canonical
/// decimal text, so that values beyond 64 bits survive a round trip exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Integer(Repr);

/// One form per value: `Big` holds only values outside `i64`, so derived
/// equality is the numbers' equality.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Repr {
    Small(i64),
    Big(Box<str>),
}

impl Integer {
    /// The value, if it fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            Repr::Small(n) => Some(n),
            Repr::Big(_) => None,
        }
    }
}

impl From<i64> for Integer {
    fn from(value: i64) -> Self {
        Integer(Repr::Small(value))
    }
}

impl From<u64> for Integer {
    fn from(value: u64) -> Self {
        match i64::try_from(value) {
            Ok(small) => Integer(Repr::Small(small)),
            Err(_) => Integer(Repr::Big(value.to_string().into())),
        }
    }
}

impl FromStr for Integer {
    type Err = CodecError;

    /// Accepts an optional `-` followed by decimal digits; leading zeros and
    /// `-0` are normalized away.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodecError::Syntax(format!("not an integer: {text:?}")));
        }
        if let Ok(small) = text.parse::<i64>() {
            return Ok(Integer(Repr::Small(small)));
        }
        let digits = digits.trim_start_matches('0');
        Ok(match (negative, digits.is_empty()) {
            (_, true) => Integer(Repr::Small(0)),
            (true, false) => Integer::big(format!("-{digits}")),
            (false, false) => Integer::big(digits.to_owned()),
        })
    }
}

impl Integer {
    /// Canonical digits that may still fit once leading zeros are gone.
    fn big(text: String) -> Integer {
        match text.parse::<i64>() {
            Ok(small) => Integer(Repr::Small(small)),
            Err(_) => Integer(Repr::Big(text.into())),
        }
    }
}

impl fmt::Display for Integer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Small(n) => write!(f, "{n}"),
            Repr::Big(digits) => f.write_str(digits),
        }
    }
}
