//! Stream entries: their IDs, their two fields, and the replies that carry
//! them.

use std::fmt;

use hermes_guest::redis::Reply;
use hermes_guest::{BusError, Category, ConsumedEvent, Offset, Timestamp};

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
/// The reply is taken apart, so each event's text moves out of it uncopied.
pub fn from_range(reply: Reply) -> Result<Vec<ConsumedEvent>, BusError> {
    let entries = match reply {
        Reply::Array(entries) => entries,
        Reply::Nil => Vec::new(),
        _ => return Err(corrupted("XRANGE did not answer an array")),
    };
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
pub fn from_read(reply: Reply) -> Result<Vec<ConsumedEvent>, BusError> {
    let streams = match reply {
        Reply::Array(streams) => streams,
        Reply::Nil => Vec::new(),
        _ => return Err(corrupted("XREAD did not answer an array")),
    };
    let mut events = Vec::new();
    for stream in streams {
        match stream {
            Reply::Array(pair) if pair.len() == 2 => {
                let entries = pair.into_iter().nth(1).unwrap_or(Reply::Nil);
                events.extend(from_range(entries)?);
            }
            _ => return Err(corrupted("XREAD answered a malformed stream")),
        }
    }
    Ok(events)
}

/// One entry: its ID, its `category` field and its `event` field (the
/// event's hermes JSON, handed on as it is: the host parses it).
fn entry(reply: Reply) -> Result<ConsumedEvent, BusError> {
    let Reply::Array(pair) = reply else {
        return Err(corrupted("an entry is not [id, fields]"));
    };
    let Ok([id, fields]) = <[Reply; 2]>::try_from(pair) else {
        return Err(corrupted("an entry is not [id, fields]"));
    };
    let text = id.as_str().unwrap_or("");
    let id = Id::parse(text).ok_or_else(|| corrupted(format!("a bad entry ID {text:?}")))?;
    let Reply::Array(fields) = fields else {
        return Err(corrupted(format!("entry {id} has no fields")));
    };
    let mut category = None;
    let mut json = None;
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        match name.as_bytes() {
            Some(n) if n == CATEGORY.as_bytes() => category = Some(value),
            Some(n) if n == EVENT.as_bytes() => json = Some(value),
            _ => {}
        }
    }
    let category = match category.as_ref().and_then(Reply::as_bytes) {
        Some(b"base") => Category::Base,
        Some(b"initsync") => Category::Initsync,
        Some(other) => {
            return Err(corrupted(format!(
                "entry {id} has the category {:?}, not base or initsync",
                String::from_utf8_lossy(other)
            )));
        }
        None => return Err(corrupted(format!("entry {id} has no `{CATEGORY}` field"))),
    };
    let json = match json {
        Some(Reply::Bulk(bytes)) => String::from_utf8(bytes)
            .map_err(|_| corrupted(format!("entry {id}: the `{EVENT}` field is not UTF-8")))?,
        _ => return Err(corrupted(format!("entry {id} has no `{EVENT}` field"))),
    };
    Ok(ConsumedEvent {
        offset: Offset::Str(id.to_string()),
        timestamp: id.timestamp(),
        category,
        json,
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
