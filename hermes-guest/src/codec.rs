//! An event's fields, for a plugin that needs them: hermes' JSON codec, the
//! same one the host uses (`hermes-event`).
//!
//! A bus does not need this module: it stores [`crate::Event::json`] as it is
//! and hands it back unchanged. A plugin that routes on an attribute, or a
//! test bus that makes up its own events, parses and renders here:
//!
//! ```
//! use hermes_guest::codec::{self, EventType, Value};
//!
//! let parsed = codec::Event::new(
//!     codec::Category::Base,
//!     EventType::Removed,
//!     Some("SRVUsers".into()),
//!     Value::from(42),
//!     Value::empty_object(),
//! );
//! let event = hermes_guest::Event::from(&parsed);
//! assert_eq!(event.objpkey.as_deref(), Some("42"));
//! assert_eq!(event.parse().expect("hermes JSON"), parsed);
//! ```
//!
//! Available with the SDK's `codec` feature, on by default.

pub use hermes_event::{Category, CodecError, Event, EventType, Integer, Value};

impl crate::Event {
    /// The event's fields, parsed from its hermes JSON.
    pub fn parse(&self) -> Result<Event, CodecError> {
        Event::from_json(&self.json)
    }
}

impl crate::ConsumedEvent {
    /// The event's fields, parsed from its hermes JSON.
    pub fn parse(&self) -> Result<Event, CodecError> {
        Event::from_json(&self.json)
    }
}

impl From<&Event> for crate::Event {
    /// Renders the event as hermes does (`Event.to_json()`), with the fields
    /// a bus routes on beside the text.
    fn from(event: &Event) -> Self {
        crate::Event {
            category: event.evcategory.into(),
            objtype: event.objtype.clone(),
            objpkey: event.objpkey_text(),
            json: event.to_json(),
        }
    }
}

impl From<crate::Category> for Category {
    fn from(category: crate::Category) -> Self {
        match category {
            crate::Category::Base => Category::Base,
            crate::Category::Initsync => Category::Initsync,
        }
    }
}

impl From<Category> for crate::Category {
    fn from(category: Category) -> Self {
        match category {
            Category::Base => crate::Category::Base,
            Category::Initsync => crate::Category::Initsync,
        }
    }
}
