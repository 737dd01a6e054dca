//! A receiver's place in a partition: the partition's events from a
//! [`Position`] on, each with what the SDKs read of it.
//!
//! An offset is the bus plugin's own, in the text form `hermes-wasm`
//! prints (`42`, `1700000000000-0`), so a checkpoint names the event on the
//! bus itself. A sequence number or an enqueued time is found by reading
//! the partition from its start: the bus knows offsets only.

use hermes_host::{Consumer, Offset};

use crate::partition::{Partition, envelope};
use crate::position::{Position, Start};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// An event as a receiver gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its sequence number in the partition.
    pub sequence_number: i64,
    /// Its offset, as text ([`offset_text`]).
    pub offset: String,
    /// When the endpoint took it, in milliseconds since the Unix epoch.
    pub enqueued_time: i64,
    /// The AMQP message as the client encoded it.
    pub message: Vec<u8>,
    /// The partition key it was sent with, if any.
    pub partition_key: Option<String>,
}

/// The text form of an offset, which [`parse_offset`] reads back: a
/// string offset as it is (unless it would read as another kind), any
/// other in its JSON form.
pub fn offset_text(offset: &Offset) -> String {
    match offset {
        Offset::Str(s) if serde_json::from_str::<serde_json::Value>(s).is_err() => s.clone(),
        other => hermes_host::offset::to_json(other).to_string(),
    }
}

/// The offset a text names.
pub fn parse_offset(text: &str) -> Result<Offset, String> {
    hermes_host::offset::parse(text)
}

/// The first event a scan from the start looks for.
#[derive(Debug, Clone, Copy)]
enum Bound {
    SequenceNumber(i64, bool),
    EnqueuedTime(i64, bool),
}

impl Bound {
    fn reached(self, sequence_number: i64, enqueued_time: i64) -> bool {
        let at = |value: i64, bound: i64, inclusive: bool| {
            value > bound || (inclusive && value == bound)
        };
        match self {
            Bound::SequenceNumber(n, inclusive) => at(sequence_number, n, inclusive),
            Bound::EnqueuedTime(t, inclusive) => at(enqueued_time, t, inclusive),
        }
    }
}

/// A receiver's place in a partition.
pub struct Cursor {
    reader: Consumer,
    /// Until the first event it names is read, the events are passed over.
    from: Option<Bound>,
}

impl Cursor {
    /// A cursor on `partition` at `position`. An offset the bus does not
    /// hold is an error.
    pub async fn open(partition: &Partition, position: &Position) -> Result<Cursor, Error> {
        let mut reader = partition.reader().await?;
        let mut from = None;
        let inclusive = position.inclusive;
        match &position.start {
            Start::Beginning => reader.seek_to_beginning().await?,
            Start::Latest => match partition.extent().last {
                Some(last) => reader.seek_after(&last.offset).await?,
                None => reader.seek_to_beginning().await?,
            },
            Start::Offset(text) => {
                let offset = parse_offset(text)?;
                if inclusive {
                    reader.seek(&offset).await?
                } else {
                    reader.seek_after(&offset).await?
                }
            }
            Start::SequenceNumber(n) => {
                reader.seek_to_beginning().await?;
                from = Some(Bound::SequenceNumber(*n, inclusive));
            }
            Start::EnqueuedTime(t) => {
                reader.seek_to_beginning().await?;
                from = Some(Bound::EnqueuedTime(*t, inclusive));
            }
        }
        Ok(Cursor { reader, from })
    }

    /// Up to `max` events the partition holds past the cursor, and moves
    /// past them; none when there are no more for now.
    pub async fn next_batch(&mut self, max: u32) -> Result<Vec<Received>, Error> {
        loop {
            let batch = self.reader.next_batch(max).await?;
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            let mut received = Vec::with_capacity(batch.len());
            for consumed in &batch {
                let event = self.reader.parse(consumed)?;
                let envelope = envelope(&event)
                    .ok_or_else(|| self.reader.corrupted(consumed, "not an Event Hubs event"))?;
                if let Some(from) = self.from {
                    if !from.reached(envelope.sequence_number, envelope.enqueued_time) {
                        continue;
                    }
                    self.from = None;
                }
                received.push(Received {
                    sequence_number: envelope.sequence_number,
                    offset: offset_text(&consumed.offset),
                    enqueued_time: envelope.enqueued_time,
                    message: envelope.message,
                    partition_key: envelope.partition_key,
                });
            }
            if !received.is_empty() {
                return Ok(received);
            }
        }
    }

    /// Closes the cursor's reader.
    pub async fn close(mut self) -> Result<(), Error> {
        self.reader.close().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offsets_text_reads_back_as_the_same_offset() {
        for (offset, text) in [
            (Offset::Int(42), "42"),
            (Offset::Int(-3), "-3"),
            (Offset::Str("1700000000000-0".into()), "1700000000000-0"),
            // A string that would read as a number keeps its quotes.
            (Offset::Str("42".into()), "\"42\""),
            (Offset::Float(1.5), "1.5"),
            (Offset::Bytes(vec![0, 255]), "{\"bytes\":\"AP8=\"}"),
        ] {
            assert_eq!(offset_text(&offset), text);
            assert_eq!(parse_offset(text), Ok(offset));
        }
    }

    #[test]
    fn a_scan_stops_at_the_first_event_its_bound_lets_through() {
        let by_number = Bound::SequenceNumber(5, false);
        assert!(!by_number.reached(5, 0));
        assert!(by_number.reached(6, 0));
        let inclusive = Bound::SequenceNumber(5, true);
        assert!(!inclusive.reached(4, 0));
        assert!(inclusive.reached(5, 0));
        let by_time = Bound::EnqueuedTime(1_000, false);
        assert!(!by_time.reached(99, 1_000));
        assert!(by_time.reached(0, 1_001));
        assert!(Bound::EnqueuedTime(1_000, true).reached(0, 1_000));
    }
}
