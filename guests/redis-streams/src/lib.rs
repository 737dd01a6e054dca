//! A Redis stream as a hermes bus.
//!
//! Each event is one stream entry with two fields: `category` (`base` or
//! `initsync`) and `event` (the event's hermes JSON). The entry's ID
//! (`<milliseconds>-<sequence>`) is the offset, a string, and gives the
//! timestamp. Reads never consume: any number of consumers read the stream,
//! each at its own position. The plugin reaches Redis through the host's
//! `redis` capability, so the operator must allow the server's URL.
//!
//! When Redis cannot be reached, calls fail with `unavailable`; the same
//! instance connects again on its next call and carries on from where it was.

mod connection;
mod consumer;
mod entry;
mod producer;
mod settings;

pub use consumer::StreamConsumer;
pub use producer::StreamProducer;
pub use settings::Settings;

hermes_guest::export!(producer: StreamProducer, consumer: StreamConsumer);
