//! Stream entries: their IDs, their two fields, and the replies that carry
//! them.

use std::fmt;

use hermes_guest::redis::Reply;
use hermes_guest::{BusError, ConsumedEvent, Event, Offset, Timestamp};

/// The field holding the category.
pub const CATEGORY: &str = "category";
/// The field holding the event's hermes JSON.
pub const EVENT: &str = "event";

/// A stream entry ID, `<milliseconds>-<sequence>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Id {
    pub ms: u64,
    pub seq: u64,
}

impl Id {
    pub fn parse(text: &str) -> Option<Id> {
        let (ms, seq) = text.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(Id {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The offset an entry ID stands for, or `unknown-offset`.
    pub fn from_offset(offset: &Offset) -> Result<Id, BusError> {
        match offset {
            Offset::Str(text) => Id::parse(text).ok_or_else(|| {
                BusError::UnknownOffset(format!("{text:?} is not a stream entry ID"))
            }),
            other => Err(BusError::UnknownOffset(format!(
                "{other:?}: the offsets of a Redis stream are entry IDs (strings)"
            ))),
        }
    }

    /// The greatest ID below this one, for `XREAD` (which reads after an ID).
    pub fn before(self) -> Id {
        match (self.ms, self.seq) {
            (ms, 0) if ms > 0 => Id {
                ms: ms - 1,
                seq: u64::MAX,
            },
            (ms, seq) => Id {
                ms,
                seq: seq.saturating_sub(1),
            },
        }
    }

    fn timestamp(self) -> Timestamp {
        Timestamp {
            seconds: i64::try_from(self.ms / 1000).unwrap_or(i64::MAX),
            nanoseconds: (self.ms % 1000) as u32 * 1_000_000,
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

fn corrupted(what: impl fmt::Display) -> BusError {
    BusError::Corrupted(format!("redis stream: {what}"))
}

/// The entries of an `XRANGE` reply. A damaged entry ends the list; it is
/// the error only when it comes first, so what precedes it is delivered.
pub fn from_range(reply: &Reply) -> Result<Vec<ConsumedEvent>, BusError> {
    let entries = reply
        .as_array()
        .ok_or_else(|| corrupted("XRANGE did not answer an array"))?;
    let mut events = Vec::with_capacity(entries.len());
    for reply in entries {
        match entry(reply) {
            Ok(event) => events.push(event),
            Err(_) if !events.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok(events)
}

/// The entries of an `XREAD` reply for one stream (nil when it timed out).
pub fn from_read(reply: &Reply) -> Result<Vec<ConsumedEvent>, BusError> {
    let streams = reply
        .as_array()
        .ok_or_else(|| corrupted("XREAD did not answer an array"))?;
    let mut events = Vec::new();
    for stream in streams {
        match stream.as_array() {
            Some([_key, entries]) => events.extend(from_range(entries)?),
            _ => return Err(corrupted("XREAD answered a malformed stream")),
        }
    }
    Ok(events)
}

fn entry(reply: &Reply) -> Result<ConsumedEvent, BusError> {
    let Some([id, fields]) = reply.as_array() else {
        return Err(corrupted("an entry is not [id, fields]"));
    };
    let text = id.as_str().unwrap_or("");
    let id = Id::parse(text).ok_or_else(|| corrupted(format!("a bad entry ID {text:?}")))?;
    let fields = fields
        .as_array()
        .ok_or_else(|| corrupted(format!("entry {id} has no fields")))?;
    let json = fields
        .chunks(2)
        .find(|pair| pair[0].as_str() == Some(EVENT))
        .and_then(|pair| pair.get(1))
        .and_then(Reply::as_str)
        .ok_or_else(|| corrupted(format!("entry {id} has no `{EVENT}` field")))?;
    let event = Event::from_json(json)
        .map_err(|e| corrupted(format!("entry {id} is not a hermes event: {e}")))?;
    Ok(ConsumedEvent {
        offset: Offset::Str(id.to_string()),
        timestamp: id.timestamp(),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_print_and_step_back() {
        let id = Id::parse("1700000000123-4").expect("an ID");
        assert_eq!(id.to_string(), "1700000000123-4");
        assert_eq!(id.before().to_string(), "1700000000123-3");
        assert_eq!(
            Id::parse("5-0").expect("an ID").before().to_string(),
            format!("4-{}", u64::MAX)
        );
        assert_eq!(Id::parse("0-0").expect("an ID").before().to_string(), "0-0");
        for bad in [
            "",
            "5",
            "-5",
            "5-",
            "a-1",
            "1-2-3",
            "+1-0",
            "99999999999999999999-0",
        ] {
            assert_eq!(Id::parse(bad), None, "{bad:?}");
        }
        let t = id.timestamp();
        assert_eq!((t.seconds, t.nanoseconds), (1_700_000_000, 123_000_000));
    }
}
