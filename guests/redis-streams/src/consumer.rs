use std::collections::VecDeque;
use std::time::Duration;

use hermes_guest::{BusError, ConsumedEvent, Consumer, Offset};

use crate::connection::Link;
use crate::entry::{self, Id};
use crate::settings::Settings;

/// Entries read from Redis at a time.
const PAGE: &str = "256";

/// Added to a blocking read's wait for the reply to come back.
const REPLY_MARGIN: Duration = Duration::from_secs(5);

/// Where the next entry is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Position {
    /// The oldest entry.
    Beginning,
    /// The entry with this ID.
    At(Id),
    /// The first entry after this ID.
    After(Id),
}

/// Reads the stream with `XRANGE`, and waits for new entries with
/// `XREAD BLOCK` (the host does other work meanwhile).
pub struct StreamConsumer {
    settings: Settings,
    link: Option<Link>,
    position: Position,
    /// Entries read ahead, in order, all at or after `position`.
    ahead: VecDeque<ConsumedEvent>,
}

impl StreamConsumer {
    fn link(&mut self) -> Result<&mut Link, BusError> {
        self.link.as_mut().ok_or(BusError::NotOpen)
    }

    fn stream(&self) -> Vec<u8> {
        self.settings.stream.as_bytes().to_vec()
    }

    /// Whether the stream holds the entry `id`.
    fn holds(&mut self, id: Id) -> Result<bool, BusError> {
        let (stream, id) = (self.stream(), id.to_string());
        let reply = self.link()?.command(
            &[
                b"XRANGE",
                &stream,
                id.as_bytes(),
                id.as_bytes(),
                b"COUNT",
                b"1",
            ],
            None,
        )?;
        Ok(!entry::from_range(reply)?.is_empty())
    }

    /// Moves to `at(id)` if the stream holds the entry `offset` names.
    fn seek_held(&mut self, offset: &Offset, at: fn(Id) -> Position) -> Result<(), BusError> {
        let id = Id::from_offset(offset)?;
        if !self.holds(id)? {
            return Err(BusError::UnknownOffset(format!(
                "{id}: the stream holds no such entry"
            )));
        }
        self.position(at(id));
        Ok(())
    }

    fn position(&mut self, position: Position) {
        self.position = position;
        self.ahead.clear();
    }

    fn fill(&mut self) -> Result<(), BusError> {
        let start = match self.position {
            Position::Beginning => "-".to_string(),
            Position::At(id) => id.to_string(),
            Position::After(id) => format!("({id}"),
        };
        let stream = self.stream();
        let reply = self.link()?.command(
            &[
                b"XRANGE",
                &stream,
                start.as_bytes(),
                b"+",
                b"COUNT",
                PAGE.as_bytes(),
            ],
            None,
        )?;
        self.ahead.extend(entry::from_range(reply)?);
        Ok(())
    }
}

impl Consumer for StreamConsumer {
    type Settings = Settings;

    fn new(settings: Settings) -> Result<Self, BusError> {
        Ok(StreamConsumer {
            settings,
            link: None,
            position: Position::Beginning,
            ahead: VecDeque::new(),
        })
    }

    fn open(&mut self) -> Result<(), BusError> {
        let mut link = Link::new(&self.settings.url);
        link.connect()?;
        self.link = Some(link);
        Ok(())
    }

    fn close(&mut self) -> Result<(), BusError> {
        self.link = None;
        self.ahead.clear();
        Ok(())
    }

    fn seek_to_beginning(&mut self) -> Result<(), BusError> {
        self.link()?;
        self.position(Position::Beginning);
        Ok(())
    }

    fn seek(&mut self, offset: &Offset) -> Result<(), BusError> {
        self.seek_held(offset, Position::At)
    }

    fn seek_after(&mut self, offset: &Offset) -> Result<(), BusError> {
        self.seek_held(offset, Position::After)
    }

    fn read(&mut self) -> Result<Option<ConsumedEvent>, BusError> {
        self.link()?;
        if self.ahead.is_empty() {
            self.fill()?;
        }
        let Some(consumed) = self.ahead.pop_front() else {
            return Ok(None);
        };
        if let Offset::Str(id) = &consumed.offset
            && let Some(id) = Id::parse(id)
        {
            self.position = Position::After(id);
        }
        Ok(Some(consumed))
    }

    /// Blocks in Redis (`XREAD BLOCK`) until an entry after the position
    /// arrives, or `at_most` passes.
    fn wait(&mut self, at_most: Duration) -> Result<(), BusError> {
        if !self.ahead.is_empty() {
            return Ok(());
        }
        let after = match self.position {
            Position::Beginning => Id { ms: 0, seq: 0 },
            Position::At(id) => id.before(),
            Position::After(id) => id,
        }
        .to_string();
        // BLOCK 0 would wait forever.
        let block = at_most
            .as_millis()
            .clamp(1, u128::from(u32::MAX))
            .to_string();
        let stream = self.stream();
        let reply = self.link()?.command(
            &[
                b"XREAD",
                b"COUNT",
                PAGE.as_bytes(),
                b"BLOCK",
                block.as_bytes(),
                b"STREAMS",
                &stream,
                after.as_bytes(),
            ],
            Some(at_most + REPLY_MARGIN),
        )?;
        self.ahead.extend(entry::from_read(reply)?);
        Ok(())
    }
}
