//! hermes' own sqlite bus, in its exact format, so that hermes and hermes-wasm
//! can exchange events through one database file:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS hermesmessages (
//!     msgid INTEGER PRIMARY KEY AUTOINCREMENT,
//!     data TEXT NOT NULL,       -- the event's hermes JSON (`to_json()`)
//!     timestamp REAL NOT NULL   -- Unix time in seconds, when it was stored
//! )
//! ```
//!
//! The offset is `msgid`. The producer creates the table, purges rows older
//! than the retention and VACUUMs at open; each send commits. The consumer
//! opens the database read-only; a missing file is an empty bus.

mod consumer;
mod producer;
mod settings;
pub mod table;

pub use consumer::SqliteConsumer;
pub use producer::SqliteProducer;
pub use settings::{ConsumerSettings, ProducerSettings};

hermes_guest::export!(producer: SqliteProducer, consumer: SqliteConsumer);
