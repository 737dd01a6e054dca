//! Between the WIT records and the codec's types.

use crate::wit::imports::hermes::bus::types as wit;
use crate::{BusError, Category, ConsumedEvent, Event, Value};

impl From<wit::Category> for Category {
    fn from(category: wit::Category) -> Self {
        match category {
            wit::Category::Base => Category::Base,
            wit::Category::Initsync => Category::Initsync,
        }
    }
}

impl From<Category> for wit::Category {
    fn from(category: Category) -> Self {
        match category {
            Category::Base => wit::Category::Base,
            Category::Initsync => wit::Category::Initsync,
        }
    }
}

/// Reads an event record from the host; a malformed one is the host's bug,
/// reported as [`BusError::Other`].
pub(crate) fn event_from_wit(record: wit::Event) -> Result<Event, BusError> {
    let invalid = |what: &str, e: hermes_event::CodecError| {
        BusError::Other(format!("the host sent an invalid event: {what}: {e}"))
    };
    let objpkey = Value::from_json(&record.objpkey).map_err(|e| invalid("objpkey", e))?;
    let objattrs = Value::from_json(&record.objattrs).map_err(|e| invalid("objattrs", e))?;
    Ok(Event {
        evcategory: record.evcategory.into(),
        eventtype: record
            .eventtype
            .parse()
            .map_err(|e| invalid("eventtype", e))?,
        objtype: record.objtype,
        objpkey,
        objattrs,
        step: record.step,
        is_partially_processed: record.is_partially_processed,
    })
}

pub(crate) fn event_to_wit(event: Event) -> wit::Event {
    wit::Event {
        evcategory: event.evcategory.into(),
        eventtype: event.eventtype.as_str().to_owned(),
        objtype: event.objtype,
        objpkey: event.objpkey.to_json_compact(),
        objattrs: event.objattrs.to_json_compact(),
        step: event.step,
        is_partially_processed: event.is_partially_processed,
    }
}

impl From<ConsumedEvent> for wit::ConsumedEvent {
    fn from(consumed: ConsumedEvent) -> Self {
        wit::ConsumedEvent {
            offset: consumed.offset,
            timestamp: consumed.timestamp,
            event: event_to_wit(consumed.event),
        }
    }
}
