use hermes_guest::event_hubs::EventData;
use hermes_guest::{BusError, Category, Event, Offset, Producer};

use crate::link::Link;
use crate::settings::Settings;

/// The application property that carries an event's category.
pub const CATEGORY: &str = "category";

/// Sends each batch to the partition in as few Event Hubs batches as fit,
/// then reads the partition's newest sequence number: the batch's events
/// are the ones just before it. That holds while this producer is the
/// partition's only writer, as hermes-server is its bus's.
pub struct HubProducer {
    settings: Settings,
    link: Option<Link>,
}

impl HubProducer {
    fn link(&mut self) -> Result<&mut Link, BusError> {
        self.link.as_mut().ok_or(BusError::NotOpen)
    }
}

/// The category's name, as the property carries it.
pub fn category_name(category: Category) -> &'static str {
    match category {
        Category::Base => "base",
        Category::Initsync => "initsync",
    }
}

impl Producer for HubProducer {
    type Settings = Settings;

    fn new(settings: Settings) -> Result<Self, BusError> {
        // Fails now on a connection string that cannot work.
        settings.target()?;
        Ok(HubProducer {
            settings,
            link: None,
        })
    }

    fn open(&mut self) -> Result<(), BusError> {
        let mut link = Link::new(&self.settings)?;
        link.connect()?;
        self.link = Some(link);
        Ok(())
    }

    fn close(&mut self) -> Result<(), BusError> {
        if let Some(mut link) = self.link.take() {
            link.close();
        }
        Ok(())
    }

    fn send(&mut self, event: Event) -> Result<Offset, BusError> {
        let mut offsets = self.send_batch(vec![event])?;
        offsets
            .pop()
            .ok_or_else(|| BusError::Other("a send gave no offset".into()))
    }

    fn send_batch(&mut self, events: Vec<Event>) -> Result<Vec<Offset>, BusError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let count = events.len() as i64;
        let data: Vec<EventData> = events
            .into_iter()
            .map(|event| EventData {
                properties: vec![(
                    CATEGORY.to_owned(),
                    category_name(event.category).to_owned(),
                )],
                body: event.json.into_bytes(),
            })
            .collect();
        let link = self.link()?;
        let partition = link.partition.clone();
        let sent = link.hub()?.send(&partition, &data);
        sent.map_err(|e| link.error(e))?;
        let properties = link.hub()?.partition_properties(&partition);
        let properties = properties.map_err(|e| link.error(e))?;
        let last = properties.last_sequence_number;
        Ok((last - count + 1..=last).map(Offset::Int).collect())
    }
}
