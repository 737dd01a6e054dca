//! The host's `event-hubs` capability: Azure Event Hubs, or an endpoint
//! that speaks like it (`hermes-wasm serve`), over AMQP 1.0, for the
//! endpoints the operator allows (`--allow-amqp`).
//!
//! ```no_run
//! use hermes_guest::event_hubs::{Credentials, EventData, Hub, Start};
//!
//! let credentials = Credentials { key_name: "send".into(), key: "...".into() };
//! let hub = Hub::open("amqp://127.0.0.1:5672", "hub1", &credentials)?;
//! let event = EventData { body: b"{}".to_vec(), properties: vec![] };
//! hub.send("0", &[event])?;
//! let receiver = hub.receiver("$Default", "0", Start::Earliest)?;
//! let events = receiver.receive(100, 1000)?;
//! assert_eq!(events[0].body, b"{}");
//! # Ok::<(), hermes_guest::event_hubs::HubError>(())
//! ```

pub use crate::wit::imports::hermes::bus::event_hubs::{
    Credentials, EventData, Hub, HubError, PartitionProperties, ReceivedEvent, Receiver, Start,
};
