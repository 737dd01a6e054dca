//! A hub's partitions, each kept by a bus plugin: the partition's log is
//! the bus, not memory, so offsets and sequence numbers survive a restart.
//!
//! A bus stores hermes events; each Event Hubs event is kept as one, an
//! envelope: `added` of type `EventHubsEvent`, its key the event's sequence
//! number, its attributes the AMQP message exactly as the client encoded it
//! (`message`, bytes), the time the endpoint took it (`enqueued_time`,
//! milliseconds since the Unix epoch) and its partition key if any. The bus
//! gives the offset.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hermes_event::{Category, Event, EventType, Value};
use hermes_host::{Consumer, Offset, Plugin, Producer};
use tokio::sync::{Mutex, watch};

/// The object type of the envelope.
pub const ENVELOPE: &str = "EventHubsEvent";

/// How a partition's bus is made: a plugin with producer and consumer
/// roles, and its settings, in whose strings `{hub}` and `{partition}`
/// stand for the partition's hub and number.
#[derive(Clone)]
pub struct BusTemplate {
    /// The plugin.
    pub plugin: Arc<Plugin>,
    /// Its producer settings, with the placeholders.
    pub settings: serde_json::Value,
}

impl std::fmt::Debug for BusTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusTemplate")
            .field("plugin", &self.plugin.name())
            .field("settings", &self.settings)
            .finish()
    }
}

impl BusTemplate {
    /// The settings of `hub`'s partition `partition`.
    pub fn settings(&self, hub: &str, partition: u32) -> serde_json::Value {
        fill(&self.settings, hub, partition)
    }
}

/// `value` with `{hub}` and `{partition}` replaced in every string.
fn fill(value: &serde_json::Value, hub: &str, partition: u32) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        J::String(s) => J::String(
            s.replace("{hub}", hub)
                .replace("{partition}", &partition.to_string()),
        ),
        J::Array(items) => J::Array(items.iter().map(|v| fill(v, hub, partition)).collect()),
        J::Object(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), fill(v, hub, partition)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An event on its way in: the AMQP message as encoded, and the partition
/// key it was sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The encoded AMQP message (its sections).
    pub message: Vec<u8>,
    /// The partition key, if the client gave one.
    pub partition_key: Option<String>,
}

/// Where an event was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Its sequence number in the partition.
    pub sequence_number: i64,
    /// Its offset on the bus.
    pub offset: Offset,
    /// When the endpoint took it, in milliseconds since the Unix epoch.
    pub enqueued_time: i64,
}

/// What a partition holds, as its properties tell it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extent {
    /// The sequence number of its first event; the next one's when it is
    /// empty.
    pub begin_sequence_number: i64,
    /// Its last event, if it has any.
    pub last: Option<Stored>,
}

impl Extent {
    /// The sequence number the next event will take.
    pub fn next_sequence_number(&self) -> i64 {
        self.last
            .as_ref()
            .map_or(self.begin_sequence_number, |last| last.sequence_number + 1)
    }
}

/// One partition: its producer, and what it holds.
pub struct Partition {
    /// Its number in the hub.
    pub id: u32,
    plugin: Arc<Plugin>,
    settings: serde_json::Value,
    producer: Mutex<Producer>,
    /// What it holds, changed by each append: readers waiting for events
    /// watch it.
    extent: watch::Sender<Extent>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

impl Partition {
    /// Opens `hub`'s partition `id` on its bus; reads the bus through to
    /// find the next sequence number.
    pub async fn open(bus: &BusTemplate, hub: &str, id: u32) -> Result<Partition, Error> {
        let settings = bus.settings(hub, id);
        let mut producer = Producer::create(Arc::clone(&bus.plugin), &settings).await?;
        producer.open().await?;
        let partition = Partition {
            id,
            plugin: Arc::clone(&bus.plugin),
            settings,
            producer: Mutex::new(producer),
            extent: watch::Sender::new(Extent::default()),
        };
        let mut reader = partition.reader().await?;
        reader.seek_to_beginning().await?;
        let mut extent = Extent::default();
        loop {
            let events = reader.next_batch(256).await?;
            let (Some(first), Some(last)) = (events.first(), events.last()) else {
                break;
            };
            let read = |consumed| {
                reader
                    .parse(consumed)
                    .ok()
                    .and_then(|e| envelope(&e))
                    .ok_or_else(|| format!("{hub}/{id}: an event that is not an Event Hubs event"))
            };
            if extent.last.is_none() {
                extent.begin_sequence_number = read(first)?.sequence_number;
            }
            let envelope = read(last)?;
            extent.last = Some(Stored {
                sequence_number: envelope.sequence_number,
                offset: last.offset.clone(),
                enqueued_time: envelope.enqueued_time,
            });
        }
        reader.close().await?;
        partition.extent.send_replace(extent);
        Ok(partition)
    }

    /// A consumer of the partition's bus, open, not yet placed; it waits
    /// for nothing (`next-batch` returns what there is).
    pub async fn reader(&self) -> Result<Consumer, Error> {
        let settings = self
            .plugin
            .consumer_settings(&self.settings)
            .ok_or("the bus plugin has no consumer role")?;
        let mut consumer = Consumer::create(Arc::clone(&self.plugin), &settings).await?;
        consumer.open().await?;
        consumer.set_timeout(Some(std::time::Duration::ZERO));
        Ok(consumer)
    }

    /// Stores `events`, in order, all or none: what the bus holds once
    /// this returns.
    pub async fn append(&self, events: &[Incoming]) -> Result<Vec<Stored>, Error> {
        let mut producer = self.producer.lock().await;
        let first = self.extent.borrow().next_sequence_number();
        // Enqueued times never go back, whatever the clock does.
        let enqueued_time = self
            .extent
            .borrow()
            .last
            .as_ref()
            .map_or(0, |last| last.enqueued_time)
            .max(now_ms());
        let envelopes: Vec<Event> = events
            .iter()
            .zip(first..)
            .map(|(event, sequence_number)| wrap(sequence_number, enqueued_time, event))
            .collect();
        let offsets = producer.send_batch(&envelopes).await?;
        let stored: Vec<Stored> = offsets
            .into_iter()
            .zip(first..)
            .map(|(offset, sequence_number)| Stored {
                sequence_number,
                offset,
                enqueued_time,
            })
            .collect();
        if let Some(last) = stored.last() {
            self.extent.send_modify(|extent| {
                extent.last = Some(last.clone());
            });
        }
        Ok(stored)
    }

    /// The sequence number the next event will take.
    pub fn next_sequence_number(&self) -> i64 {
        self.extent.borrow().next_sequence_number()
    }

    /// What the partition holds now.
    pub fn extent(&self) -> Extent {
        self.extent.borrow().clone()
    }

    /// What the partition holds, changed as events are appended.
    pub fn watch(&self) -> watch::Receiver<Extent> {
        self.extent.subscribe()
    }

    /// Closes the partition's producer.
    pub async fn close(&self) -> Result<(), Error> {
        self.producer.lock().await.close().await?;
        Ok(())
    }
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An event as a partition keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Its sequence number in the partition.
    pub sequence_number: i64,
    /// When the endpoint took it, in milliseconds since the Unix epoch.
    pub enqueued_time: i64,
    /// The AMQP message as the client encoded it.
    pub message: Vec<u8>,
    /// The partition key it was sent with, if any.
    pub partition_key: Option<String>,
}

/// The envelope of an event.
fn wrap(sequence_number: i64, enqueued_time: i64, event: &Incoming) -> Event {
    let mut attrs = vec![
        ("message".to_owned(), Value::Bytes(event.message.clone())),
        ("enqueued_time".to_owned(), Value::from(enqueued_time)),
    ];
    if let Some(key) = &event.partition_key {
        attrs.push(("partition_key".to_owned(), Value::from(key.as_str())));
    }
    Event::new(
        Category::Base,
        EventType::Added,
        Some(ENVELOPE.to_owned()),
        Value::from(sequence_number),
        Value::Object(attrs),
    )
}

/// What an envelope holds; none for any other event.
pub fn envelope(event: &Event) -> Option<Envelope> {
    if event.objtype.as_deref() != Some(ENVELOPE) || event.eventtype != EventType::Added {
        return None;
    }
    let sequence_number = match &event.objpkey {
        Value::Integer(n) => n.as_i64()?,
        _ => return None,
    };
    let message = match event.objattrs.get("message")? {
        Value::Bytes(bytes) => bytes.clone(),
        _ => return None,
    };
    let enqueued_time = match event.objattrs.get("enqueued_time")? {
        Value::Integer(n) => n.as_i64()?,
        _ => return None,
    };
    let key = match event.objattrs.get("partition_key") {
        Some(Value::String(key)) => Some(key.clone()),
        None => None,
        Some(_) => return None,
    };
    Some(Envelope {
        sequence_number,
        enqueued_time,
        message,
        partition_key: key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_gives_back_what_was_wrapped() {
        let event = Incoming {
            message: vec![0x00, 0x53, 0x75, 0xa0, 0x01, 0xff],
            partition_key: Some("user-7".into()),
        };
        let wrapped = wrap(41, 1_700_000_000_123, &event);
        let text = wrapped.to_json();
        let read = Event::from_json(&text).expect("a hermes event");
        assert_eq!(
            envelope(&read),
            Some(Envelope {
                sequence_number: 41,
                enqueued_time: 1_700_000_000_123,
                message: event.message.clone(),
                partition_key: event.partition_key.clone(),
            })
        );
        let keyless = wrap(
            0,
            0,
            &Incoming {
                partition_key: None,
                ..event
            },
        );
        assert_eq!(envelope(&keyless).map(|e| e.partition_key), Some(None));
        // Any other hermes event is no envelope.
        let other = Event::new(
            Category::Base,
            EventType::Added,
            Some("SRVUsers".into()),
            Value::from(1),
            Value::empty_object(),
        );
        assert_eq!(envelope(&other), None);
    }

    #[test]
    fn a_template_names_each_partition_in_every_string() {
        let template = serde_json::json!({
            "path": "/data/{hub}/{partition}",
            "nested": {"names": ["{hub}-{partition}", 3]},
            "fsync": "always",
        });
        assert_eq!(
            fill(&template, "hub1", 3),
            serde_json::json!({
                "path": "/data/hub1/3",
                "nested": {"names": ["hub1-3", 3]},
                "fsync": "always",
            })
        );
    }
}
