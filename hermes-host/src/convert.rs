//! Between the codec's types and the WIT records the host exchanges with
//! plugins. This is where the host's codec runs on the bus path: once per
//! event sent (rendering hermes' JSON), and once per event read, only where
//! its fields are needed (parsing it).

use hermes_event::{Category as EvCategory, Event, EventHead};

use crate::bindings::types::{Category, ConsumedEvent, Event as EventText};

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

impl EventText {
    /// Renders an event as hermes does (`Event.to_json()`, what a bus
    /// stores), with the fields a bus routes on beside the text.
    pub fn render(event: &Event) -> EventText {
        EventText {
            category: event.evcategory.into(),
            objtype: event.objtype.clone(),
            objpkey: event.objpkey_text(),
            json: event.to_json(),
        }
    }
}

impl ConsumedEvent {
    /// Parses the event's hermes JSON and checks that it has the category
    /// the bus stored beside it; the error says what is wrong.
    pub fn event(&self) -> Result<Event, String> {
        let event = Event::from_json(&self.json).map_err(|e| format!("not a hermes event: {e}"))?;
        self.check_category(event.evcategory)?;
        Ok(event)
    }

    /// Reads the event's routing attributes (not its objattrs), with the
    /// same checks as [`ConsumedEvent::event`].
    pub fn head(&self) -> Result<EventHead, String> {
        let head =
            EventHead::from_json(&self.json).map_err(|e| format!("not a hermes event: {e}"))?;
        self.check_category(head.evcategory)?;
        Ok(head)
    }

    fn check_category(&self, said: EvCategory) -> Result<(), String> {
        let category = EvCategory::from(self.category);
        if said != category {
            return Err(format!(
                "the bus stored it as {category} but the event says {said}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use hermes_event::{EventType, Value};

    use super::*;
    use crate::bindings::types::{Offset, Timestamp};

    fn removed(category: EvCategory) -> Event {
        Event::new(
            category,
            EventType::Removed,
            Some("SRVGroups".into()),
            Value::List(vec![Value::from("Beta"), Value::from(120)]),
            Value::empty_object(),
        )
    }

    fn consumed(category: Category, json: &str) -> ConsumedEvent {
        ConsumedEvent {
            offset: Offset::Int(3),
            timestamp: Timestamp {
                seconds: 0,
                nanoseconds: 0,
            },
            category,
            json: json.to_owned(),
        }
    }

    #[test]
    fn an_event_renders_as_hermes_with_its_routing_fields() {
        let event = removed(EvCategory::Initsync);
        let text = EventText::render(&event);
        assert_eq!(text.category, Category::Initsync);
        assert_eq!(text.objtype.as_deref(), Some("SRVGroups"));
        assert_eq!(text.objpkey.as_deref(), Some(r#"["Beta",120]"#));
        assert_eq!(text.json, event.to_json());
        let schema = Event::new(
            EvCategory::Base,
            EventType::Dataschema,
            None,
            Value::Null,
            Value::empty_object(),
        );
        assert_eq!(EventText::render(&schema).objpkey, None);
    }

    #[test]
    fn a_consumed_text_parses_back_to_its_event() {
        let event = removed(EvCategory::Base);
        assert_eq!(
            consumed(Category::Base, &event.to_json()).event(),
            Ok(event)
        );
    }

    #[test]
    fn a_category_that_disagrees_with_the_text_is_refused() {
        let json = removed(EvCategory::Base).to_json();
        let error = consumed(Category::Initsync, &json)
            .event()
            .expect_err("a mismatch");
        assert!(error.contains("stored it as initsync"), "{error}");
    }

    #[test]
    fn a_text_that_is_not_an_event_is_refused() {
        for json in ["", "[]", "{\"evcategory\": \"base\"}", "{\"x\": 1"] {
            let error = consumed(Category::Base, json).event().expect_err(json);
            assert!(error.starts_with("not a hermes event"), "{json}: {error}");
        }
    }
}
