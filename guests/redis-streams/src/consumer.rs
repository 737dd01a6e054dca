use std::collections::VecDeque;
use std::time::Duration;

use hermes_guest::redis::command;
use hermes_guest::{BusError, ConsumedEvent, Consumer, Offset};

use crate::connection::{Failure, Link};
use crate::entry::{self, Id};
use crate::settings::Settings;

/// The most entries read from Redis at a time.
const PAGE: u32 = 256;

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
    /// How many entries the next page may hold: one when the instance is
    /// made, doubling with each page read, up to `ceiling`. An entry that
    /// makes the plugin trap then fails a page of its own, so the host's
    /// fresh instance delivers every entry before it.
    page: u32,
    /// [`PAGE`], or less once a page was larger than the plugin's memory
    /// cap: halved each time, so that entries too large to come 256 at a
    /// time still come, and one too large to come at all is named.
    ceiling: u32,
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

    /// The newest entry's ID, none if the stream is empty or missing.
    fn newest(&mut self) -> Result<Option<Id>, BusError> {
        let stream = self.stream();
        let reply = self
            .link()?
            .command(&[b"XREVRANGE", &stream, b"+", b"-", b"COUNT", b"1"], None)?;
        Ok(first_id(entry::from_range(reply)?))
    }

    /// Reads the next page, halving it while its entries are larger
    /// together than the plugin's memory cap.
    fn fill(&mut self) -> Result<(), BusError> {
        loop {
            match self.fill_page() {
                Ok(()) => {
                    self.page = (self.page * 2).min(self.ceiling);
                    return Ok(());
                }
                Err(Failure::TooLarge(_)) if self.page > 1 => {
                    self.page /= 2;
                    self.ceiling = self.page;
                }
                Err(Failure::TooLarge(why)) => {
                    let entry = match self.position {
                        Position::Beginning => "the oldest entry".to_string(),
                        Position::At(id) => format!("entry {id}"),
                        Position::After(id) => format!("the entry after {id}"),
                    };
                    return Err(BusError::Other(format!(
                        "redis stream {}: {entry} is too large for this plugin ({why}); \
                         give it more memory_mib",
                        self.settings.stream
                    )));
                }
                Err(Failure::Bus(e)) => return Err(e),
            }
        }
    }

    /// Reads one page. After an entry, the stream's oldest entry comes
    /// in the same round trip: if it is newer than the position, trimming
    /// passed the consumer, which is reported (once: the page is kept, and
    /// the next read goes on with it).
    fn fill_page(&mut self) -> Result<(), Failure> {
        let start = match self.position {
            Position::Beginning => "-".to_string(),
            Position::At(id) => id.to_string(),
            Position::After(id) => format!("({id}"),
        };
        let stream = self.stream();
        let count = self.page.to_string();
        let page: [&[u8]; 6] = [
            b"XRANGE",
            &stream,
            start.as_bytes(),
            b"+",
            b"COUNT",
            count.as_bytes(),
        ];
        let Position::After(after) = self.position else {
            let reply = self.link()?.command(&page, None)?;
            self.ahead.extend(entry::from_range(reply)?);
            return Ok(());
        };
        let oldest: [&[u8]; 6] = [b"XRANGE", &stream, b"-", b"+", b"COUNT", b"1"];
        let mut replies = self
            .link()?
            .pipeline(&[command(page), command(oldest)])?
            .into_iter();
        let (Some(page), Some(oldest)) = (replies.next(), replies.next()) else {
            return Err(BusError::Other(
                "redis: a pipeline of two commands gave fewer replies".into(),
            )
            .into());
        };
        self.ahead
            .extend(entry::from_range(page.ok().map_err(BusError::Other)?)?);
        match first_id(entry::from_range(oldest.ok().map_err(BusError::Other)?)?) {
            Some(oldest) if oldest > after => Err(BusError::Gap(format!(
                "redis stream {}: the entries before {oldest} were trimmed away, and with \
                 them any after {after} this consumer had not read",
                self.settings.stream
            ))
            .into()),
            _ => Ok(()),
        }
    }
}

fn first_id(entries: Vec<ConsumedEvent>) -> Option<Id> {
    match &entries.first()?.offset {
        Offset::Str(id) => Id::parse(id),
        _ => None,
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
            page: 1,
            ceiling: PAGE,
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

    /// Any entry ID up to the newest is valid, held or not: after trimming
    /// removed it, the next read reports that entries may have gone unread.
    fn seek_after(&mut self, offset: &Offset) -> Result<(), BusError> {
        let id = Id::from_offset(offset)?;
        match self.newest()? {
            Some(newest) if id <= newest => {
                self.position(Position::After(id));
                Ok(())
            }
            newest => Err(BusError::UnknownOffset(format!(
                "{id}: the stream never held such an entry (its newest is {})",
                newest.map_or("none".into(), |n| n.to_string())
            ))),
        }
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
        let count = self.page.to_string();
        let reply = self.link()?.command(
            &[
                b"XREAD",
                b"COUNT",
                count.as_bytes(),
                b"BLOCK",
                block.as_bytes(),
                b"STREAMS",
                &stream,
                after.as_bytes(),
            ],
            Some(at_most + REPLY_MARGIN),
        );
        let reply = match reply {
            Ok(reply) => reply,
            // Something came: the next read takes it a page at a time.
            Err(Failure::TooLarge(_)) => return Ok(()),
            Err(Failure::Bus(e)) => return Err(e),
        };
        self.ahead.extend(entry::from_read(reply)?);
        Ok(())
    }
}
