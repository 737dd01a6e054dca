//! An event's routing attributes, read without building its `objattrs`: what
//! a client needs to apply an event it hands on as text.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};

use crate::event::Slots;
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

/// An event's attributes as the head reads them: `objattrs` skipped, only
/// whether it is an object kept; a repeated key keeps the last value.
struct Raw(Slots<bool>);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Attributes;
        impl<'de> Visitor<'de> for Attributes {
            type Value = Raw;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an event (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut slots = Slots::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match slots.slot(&key).map_err(serde::de::Error::custom)? {
                        Some(slot) => *slot = Some(map.next_value()?),
                        None => slots.objattrs(map.next_value::<Shape>()?.0),
                    }
                }
                Ok(Raw(slots))
            }
        }
        deserializer.deserialize_map(Attributes)
    }
}

/// Whether a value is a JSON object, its entries skipped.
struct Shape(bool);

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Skip;
        impl<'de> Visitor<'de> for Skip {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Shape(true))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Shape, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Shape(false))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape(false))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape(false))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape(false))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape(false))
            }
            fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
                Ok(Shape(false))
            }
            fn visit_unit<E>(self) -> Result<Shape, E> {
                Ok(Shape(false))
            }
        }
        deserializer.deserialize_any(Skip)
    }
}

impl EventHead {
    /// Reads an event's routing attributes from its JSON text, in any
    /// layout, with the checks [`crate::Event::from_json`] makes of them.
    pub fn from_json(text: &str) -> Result<EventHead, CodecError> {
        let text = crate::json::python_constants(text);
        let Raw(slots) =
            serde_json::from_str(&text).map_err(|e| CodecError::Syntax(e.to_string()))?;
        let (head, _) = slots.check(|is_object| *is_object)?;
        Ok(EventHead {
            evcategory: head.evcategory,
            eventtype: head.eventtype,
            objtype: head.objtype,
            objpkey: head.objpkey,
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
