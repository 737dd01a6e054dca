use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::{BusError, ConsumedEvent, Offset};

/// How long [`Consumer::wait`] sleeps by default between two looks at the bus:
/// short enough that a new event is seen promptly, long enough to cost nothing.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The consumer role: reads events back for a hermes-client.
///
/// A plugin implements positioning and one non-blocking [`read`]; the SDK
/// builds the waiting, the timeout, category filtering and batches on top, so
/// every bus behaves the same way. The SDK calls nothing but `open` before the
/// consumer is open.
///
/// [`read`]: Consumer::read
pub trait Consumer: Sized + 'static {
    /// The settings, read from the operator's JSON. Its JSON Schema (from
    /// `schemars`) is the plugin's settings schema for this role.
    type Settings: DeserializeOwned + schemars::JsonSchema;

    /// Builds the consumer, positioned at the beginning. Connects to nothing.
    fn new(settings: Self::Settings) -> Result<Self, BusError>;

    /// Connects to the bus. A bus that does not exist yet is empty, not an error.
    fn open(&mut self) -> Result<(), BusError>;

    /// Disconnects, keeping the position.
    fn close(&mut self) -> Result<(), BusError>;

    /// Positions at the oldest event still on the bus.
    fn seek_to_beginning(&mut self) -> Result<(), BusError>;

    /// Positions at the event with this offset; the offset the next event will
    /// get is valid too. Anything else is [`BusError::UnknownOffset`].
    fn seek(&mut self, offset: &Offset) -> Result<(), BusError>;

    /// Positions right after the event with this offset. An offset the bus
    /// gave once but no longer holds (retention removed it) is valid too: if
    /// events after it were removed as well, the next [`read`] reports them
    /// as a [`BusError::Gap`]. An offset the bus never gave is
    /// [`BusError::UnknownOffset`].
    ///
    /// [`read`]: Consumer::read
    fn seek_after(&mut self, offset: &Offset) -> Result<(), BusError>;

    /// Returns the event at the current position and moves past it, if the bus
    /// holds one now: its offset, when it was stored, its category and its
    /// hermes JSON exactly as it was sent. Never waits. Never returns a
    /// damaged or half-written record. Reaching events that were removed
    /// before they were read is a [`BusError::Gap`], reported once: the
    /// consumer moves past them, and the next read goes on.
    fn read(&mut self) -> Result<Option<ConsumedEvent>, BusError>;

    /// Moves past the event at the current position without handing it
    /// over, and returns its offset; `None` if the bus holds none there yet.
    /// Never waits. The host calls it to step over a record that makes
    /// [`read`] fail the same way every time (a trap, the memory cap, the
    /// deadline), so a bus should read as little of the record as it can:
    /// the default reads it whole, which steps over a record the host's
    /// client cannot use but not over one this plugin cannot read. Damage is
    /// [`BusError::Corrupted`], never skipped.
    ///
    /// [`read`]: Consumer::read
    fn skip(&mut self) -> Result<Option<Offset>, BusError> {
        Ok(self.read()?.map(|event| event.offset))
    }

    /// Waits until a new event may have arrived, for at most `at_most`. The
    /// default sleeps for [`POLL_INTERVAL`] (or `at_most`, if shorter); a bus
    /// that can block on the server side should do that instead.
    fn wait(&mut self, at_most: Duration) -> Result<(), BusError> {
        std::thread::sleep(at_most.min(POLL_INTERVAL));
        Ok(())
    }
}
