//! Between the codec's types and the WIT records the host exchanges with
//! plugins.

use hermes_event::{Category as EvCategory, Event, Value};

use crate::bindings::types::{Category, ConsumedEvent, Event as WitEvent};
use crate::consumer::Consumed;

impl From<EvCategory> for Category {
    fn from(category: EvCategory) -> Self {
        match category {
            EvCategory::Base => Category::Base,
            EvCategory::Initsync => Category::Initsync,
        }
    }
}

impl From<Category> for EvCategory {
    fn from(category: Category) -> Self {
        match category {
            Category::Base => EvCategory::Base,
            Category::Initsync => EvCategory::Initsync,
        }
    }
}

pub(crate) fn event_to_wit(event: &Event) -> WitEvent {
    WitEvent {
        evcategory: event.evcategory.into(),
        eventtype: event.eventtype.as_str().to_owned(),
        objtype: event.objtype.clone(),
        objpkey: event.objpkey.to_json_compact(),
        objattrs: event.objattrs.to_json_compact(),
        step: event.step,
        is_partially_processed: event.is_partially_processed,
    }
}

/// Reads an event a plugin returned; the error says which attribute is bad.
pub(crate) fn event_from_wit(record: WitEvent) -> Result<Event, String> {
    let objpkey = Value::from_json(&record.objpkey).map_err(|e| format!("objpkey: {e}"))?;
    let objattrs = Value::from_json(&record.objattrs).map_err(|e| format!("objattrs: {e}"))?;
    Ok(Event {
        evcategory: record.evcategory.into(),
        eventtype: record.eventtype.parse().map_err(|e| format!("{e}"))?,
        objtype: record.objtype,
        objpkey,
        objattrs,
        step: record.step,
        is_partially_processed: record.is_partially_processed,
    })
}

pub(crate) fn consumed_from_wit(record: ConsumedEvent) -> Result<Consumed, String> {
    Ok(Consumed {
        offset: record.offset,
        timestamp: record.timestamp,
        event: event_from_wit(record.event)?,
    })
}
