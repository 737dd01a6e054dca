//! The event record and its serialized attributes.

use std::fmt;
use std::str::FromStr;

use crate::{CodecError, Integer, Value};

/// Which sequence an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Ordinary changes, emitted at each poll of hermes-server.
    Base,
    /// A full copy: `init-start`, one `added` per object, `init-stop`.
    Initsync,
}

impl Category {
    /// The name hermes uses on the bus.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Base => "base",
            Category::Initsync => "initsync",
        }
    }
}

impl FromStr for Category {
    type Err = CodecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "base" => Ok(Category::Base),
            "initsync" => Ok(Category::Initsync),
            other => Err(CodecError::attribute(
                "evcategory",
                format!("expected \"base\" or \"initsync\", found {other:?}"),
            )),
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened: the `eventtype` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// An object appeared; objattrs holds all its attributes.
    Added,
    /// An object changed; objattrs holds the added/modified/removed diff.
    Modified,
    /// An object disappeared; objattrs is `{}`.
    Removed,
    /// The data schema changed; objattrs holds the new schema.
    Dataschema,
    /// An initsync sequence starts; objattrs holds the schema.
    InitStart,
    /// An initsync sequence ends; objattrs is `{}`.
    InitStop,
}

impl EventType {
    const ALL: [EventType; 6] = [
        EventType::Added,
        EventType::Modified,
        EventType::Removed,
        EventType::Dataschema,
        EventType::InitStart,
        EventType::InitStop,
    ];

    /// The name hermes uses on the bus.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "added",
            EventType::Modified => "modified",
            EventType::Removed => "removed",
            EventType::Dataschema => "dataschema",
            EventType::InitStart => "init-start",
            EventType::InitStop => "init-stop",
        }
    }
}

impl FromStr for EventType {
    type Err = CodecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                CodecError::attribute(
                    "eventtype",
                    format!(
                        "expected one of added, modified, removed, dataschema, \
                         init-start, init-stop; found {s:?}"
                    ),
                )
            })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One hermes event: what hermes-server emits for one change.
///
/// The offset and timestamp a bus gives an event are not part of it: a
/// consumer reports them beside the event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `base` or `initsync`.
    pub evcategory: Category,
    /// What happened.
    pub eventtype: EventType,
    /// The data type's name; none for init-start, init-stop and dataschema.
    pub objtype: Option<String>,
    /// The primary key: a scalar, a list for a composite key, or null.
    pub objpkey: Value,
    /// The attributes; see [`EventType`] for their shape.
    pub objattrs: Value,
    /// How far a client got in processing the event.
    pub step: i64,
    /// Whether a client processed only part of the event.
    pub is_partially_processed: bool,
}

/// The serialized attributes, in the order hermes writes them.
const ATTRIBUTES: [&str; 7] = [
    "evcategory",
    "eventtype",
    "objtype",
    "objpkey",
    "objattrs",
    "step",
    "isPartiallyProcessed",
];

impl Event {
    /// A new event with hermes' defaults: step 0, not partially processed.
    pub fn new(
        evcategory: Category,
        eventtype: EventType,
        objtype: Option<String>,
        objpkey: Value,
        objattrs: Value,
    ) -> Self {
        Event {
            evcategory,
            eventtype,
            objtype,
            objpkey,
            objattrs,
            step: 0,
            is_partially_processed: false,
        }
    }

    fn write(&self, indent: Option<usize>) -> String {
        use crate::json::Field;
        let objtype = self.objtype.as_deref().map_or(Field::Null, Field::Str);
        let fields = [
            ("evcategory", Field::Str(self.evcategory.as_str())),
            ("eventtype", Field::Str(self.eventtype.as_str())),
            ("objtype", objtype),
            ("objpkey", Field::Value(&self.objpkey)),
            ("objattrs", Field::Value(&self.objattrs)),
            ("step", Field::Int(self.step)),
            (
                "isPartiallyProcessed",
                Field::Bool(self.is_partially_processed),
            ),
        ];
        debug_assert!(fields.iter().map(|(k, _)| *k).eq(ATTRIBUTES));
        crate::json::write_object(&fields, indent)
    }

    /// The event's JSON exactly as hermes' `Event.to_json()` writes it: this is
    /// what a bus stores.
    pub fn to_json(&self) -> String {
        self.write(Some(4))
    }

    /// The primary key as compact JSON text (`42`, `"alice"`, `["Beta",120]`),
    /// what a bus may partition on; none when it is null (init-start,
    /// init-stop and dataschema events).
    pub fn objpkey_text(&self) -> Option<String> {
        match &self.objpkey {
            Value::Null => None,
            key => Some(key.to_json_compact()),
        }
    }

    /// The same content on one line, for line-oriented output.
    pub fn to_json_compact(&self) -> String {
        self.write(None)
    }

    /// Reads an event written by hermes or by [`Event::to_json`], in any JSON
    /// layout. `objtype`, `objpkey`, `step` and `isPartiallyProcessed` may be
    /// left out and take hermes' defaults; an unknown attribute is an error.
    pub fn from_json(text: &str) -> Result<Event, CodecError> {
        let Value::Object(entries) = Value::from_json(text)? else {
            return Err(CodecError::Syntax("an event must be a JSON object".into()));
        };
        let mut slots = Slots::default();
        for (key, value) in entries {
            match slots.slot(&key)? {
                Some(slot) => *slot = Some(value),
                None => slots.objattrs(value),
            }
        }
        let (head, objattrs) = slots.check(|attrs| matches!(attrs, Value::Object(_)))?;
        Ok(Event {
            evcategory: head.evcategory,
            eventtype: head.eventtype,
            objtype: head.objtype,
            objpkey: head.objpkey,
            objattrs,
            step: head.step,
            is_partially_processed: head.is_partially_processed,
        })
    }
}

/// An event's attributes as read, before they are checked: `A` is what is
/// kept of `objattrs` (the value, or only whether it is an object). A
/// repeated key keeps the last value, as Python's json does.
pub(crate) struct Slots<A> {
    evcategory: Option<Value>,
    eventtype: Option<Value>,
    objtype: Option<Value>,
    objpkey: Option<Value>,
    objattrs: Option<A>,
    step: Option<Value>,
    partial: Option<Value>,
}

impl<A> Default for Slots<A> {
    fn default() -> Self {
        Slots {
            evcategory: None,
            eventtype: None,
            objtype: None,
            objpkey: None,
            objattrs: None,
            step: None,
            partial: None,
        }
    }
}

/// The checked attributes but `objattrs`.
pub(crate) struct Checked {
    pub(crate) evcategory: Category,
    pub(crate) eventtype: EventType,
    pub(crate) objtype: Option<String>,
    pub(crate) objpkey: Value,
    pub(crate) step: i64,
    pub(crate) is_partially_processed: bool,
}

impl<A> Slots<A> {
    /// The slot of `key` (not `objattrs`), or the error for a key that is no
    /// event attribute.
    pub(crate) fn slot(&mut self, key: &str) -> Result<Option<&mut Option<Value>>, CodecError> {
        Ok(Some(match key {
            "evcategory" => &mut self.evcategory,
            "eventtype" => &mut self.eventtype,
            "objtype" => &mut self.objtype,
            "objpkey" => &mut self.objpkey,
            "step" => &mut self.step,
            "isPartiallyProcessed" => &mut self.partial,
            "objattrs" => return Ok(None),
            _ => return Err(CodecError::attribute(key, "not an event attribute")),
        }))
    }

    /// Keeps what was read of `objattrs`.
    pub(crate) fn objattrs(&mut self, attrs: A) {
        self.objattrs = Some(attrs);
    }

    /// Checks every attribute as hermes would have written it; `is_object`
    /// says whether what was kept of `objattrs` is an object, which is given
    /// back.
    pub(crate) fn check(self, is_object: impl Fn(&A) -> bool) -> Result<(Checked, A), CodecError> {
        let text_of = |key: &str, value: Option<Value>| match value {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(CodecError::attribute(key, "expected a string")),
            None => Err(CodecError::attribute(key, "missing")),
        };
        let objtype = match self.objtype {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                return Err(CodecError::attribute(
                    "objtype",
                    "expected a string or null",
                ));
            }
        };
        let objattrs = match self.objattrs {
            Some(attrs) if is_object(&attrs) => attrs,
            Some(_) => return Err(CodecError::attribute("objattrs", "expected an object")),
            None => return Err(CodecError::attribute("objattrs", "missing")),
        };
        let step = match self.step {
            None => 0,
            Some(Value::Integer(i)) => i
                .as_i64()
                .ok_or_else(|| CodecError::attribute("step", "out of range"))?,
            Some(_) => return Err(CodecError::attribute("step", "expected an integer")),
        };
        let is_partially_processed = match self.partial {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(_) => {
                return Err(CodecError::attribute(
                    "isPartiallyProcessed",
                    "expected true or false",
                ));
            }
        };
        let checked = Checked {
            evcategory: text_of("evcategory", self.evcategory)?.parse()?,
            eventtype: text_of("eventtype", self.eventtype)?.parse()?,
            objtype,
            objpkey: self.objpkey.unwrap_or(Value::Null),
            step,
            is_partially_processed,
        };
        Ok((checked, objattrs))
    }
}

impl From<Integer> for Value {
    fn from(value: Integer) -> Self {
        Value::Integer(value)
    }
}
