//! An event's routing attributes, read without building its `objattrs`: what
//! a client needs to apply an event it hands on as text.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};

use crate::{Category, CodecError, EventType, Value};

/// Every attribute of an event but `objattrs`, which is only checked to be
/// an object. The rest of the text is checked to be JSON, not read into
/// values: a reader that passes the text on needs no more.
#[derive(Debug, Clone, PartialEq)]
pub struct EventHead {
    /// `base` or `initsync`.
    pub evcategory: Category,
    /// What happened.
    pub eventtype: EventType,
    /// The data type's name; none for init-start, init-stop and dataschema.
    pub objtype: Option<String>,
    /// The primary key.
    pub objpkey: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw<'a> {
    #[serde(borrow)]
    evcategory: Cow<'a, str>,
    #[serde(borrow)]
    eventtype: Cow<'a, str>,
    #[serde(default)]
    objtype: Option<String>,
    #[serde(default)]
    objpkey: Option<Value>,
    // Checked for their shape, not kept.
    #[allow(dead_code)]
    objattrs: AnObject,
    #[serde(default)]
    #[allow(dead_code)]
    step: i64,
    #[serde(default, rename = "isPartiallyProcessed")]
    #[allow(dead_code)]
    is_partially_processed: bool,
}

/// A JSON object whose entries are skipped.
struct AnObject;

impl<'de> Deserialize<'de> for AnObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Skip;
        impl<'de> Visitor<'de> for Skip {
            type Value = AnObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnObject)
            }
        }
        deserializer.deserialize_map(Skip)
    }
}

impl EventHead {
    /// Reads an event's routing attributes from its JSON text, in any
    /// layout, with the checks [`crate::Event::from_json`] makes of them.
    pub fn from_json(text: &str) -> Result<EventHead, CodecError> {
        let text = crate::json::python_constants(text);
        let raw: Raw<'_> =
            serde_json::from_str(&text).map_err(|e| CodecError::Syntax(e.to_string()))?;
        Ok(EventHead {
            evcategory: raw.evcategory.parse()?,
            eventtype: raw.eventtype.parse()?,
            objtype: raw.objtype,
            objpkey: raw.objpkey.unwrap_or(Value::Null),
        })
    }
}

/// A JSON text on one line with no spaces between tokens: the text as it is
/// but for the whitespace outside strings. For a text hermes or
/// [`crate::Event::to_json`] wrote, this is exactly what
/// [`crate::Event::to_json_compact`] writes, without parsing. The text must
/// be JSON already checked (a string left open takes the rest as it is).
pub fn compact_json(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\n' | b'\r' | b'\t' => i += 1,
            b'"' => {
                // A string, escapes included, up to its closing quote.
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                out.extend_from_slice(&bytes[start..i]);
            }
            _ => {
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b' ' | b'\n' | b'\r' | b'\t' | b'"') {
                    i += 1;
                }
                out.extend_from_slice(&bytes[start..i]);
            }
        }
    }
    // Only ASCII whitespace was taken out, between whole tokens.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
