//! One partition of an Azure Event Hubs hub as a hermes bus, through the
//! host's `event-hubs` capability: the service itself, or any endpoint that
//! speaks like it (`hermes-wasm serve`).
//!
//! Each hermes event is one Event Hubs event: its hermes JSON is the body,
//! byte for byte, and its category (`base` or `initsync`) the application
//! property `category`, so a reader can filter without parsing. The offset
//! is the event's sequence number in the partition (an integer: the service
//! numbers a partition's events one after another), and the timestamp its
//! enqueued time.
//!
//! A hermes bus is one ordered log, and an Event Hubs partition is one:
//! the plugin reads and writes one partition (`partition`, `0` by
//! default), so hermes' total order holds. A hub with more partitions
//! carries more hermes buses, or other traffic, on the others.
//!
//! When the endpoint cannot be reached, calls fail with `unavailable`; the
//! same instance connects again on its next call and carries on from
//! where it was.

mod consumer;
mod link;
mod producer;
mod settings;

pub use consumer::HubConsumer;
pub use producer::HubProducer;
pub use settings::Settings;

hermes_guest::export!(producer: HubProducer, consumer: HubConsumer);
