use serde::de::DeserializeOwned;

use crate::{BusError, Event, Offset};

/// The producer role: puts events on the bus for hermes-server.
///
/// Each [`Event`] is hermes' JSON text with its category (and, for routing,
/// its objtype and key): a bus stores `event.json` byte for byte and keeps
/// `event.category` beside it, so that consumers can filter without parsing.
///
/// The SDK calls these methods only in a valid order: nothing but `open` before
/// the producer is open (the host gets `not-open` otherwise).
pub trait Producer: Sized + 'static {
    /// The settings, read from the operator's JSON. Its JSON Schema (from
    /// `schemars`) is the plugin's settings schema for this role.
    type Settings: DeserializeOwned + schemars::JsonSchema;

    /// Builds the producer. Keeps the settings; connects to nothing.
    fn new(settings: Self::Settings) -> Result<Self, BusError>;

    /// Connects to the bus.
    fn open(&mut self) -> Result<(), BusError>;

    /// Flushes and disconnects.
    fn close(&mut self) -> Result<(), BusError>;

    /// Stores one event and returns its offset. Must not return before the bus
    /// holds the event.
    fn send(&mut self, event: Event) -> Result<Offset, BusError>;

    /// Stores events in order and returns their offsets. The default sends them
    /// one by one; a bus that can store a batch at once should override it.
    fn send_batch(&mut self, events: Vec<Event>) -> Result<Vec<Offset>, BusError> {
        events.into_iter().map(|event| self.send(event)).collect()
    }
}
