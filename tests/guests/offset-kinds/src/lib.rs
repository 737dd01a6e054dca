//! A consumer over a fixed sequence of `count` events (`added`, objtype `T`,
//! objpkey = the index), whose offsets are all of one kind: `int` (10, 20,
//! ...), `float` (0.5, 1.5, ...), `str` ("id-0", "id-1", ...) or `bytes`
//! ([0, i]). It lets tests drive every offset kind through the host.

use hermes_guest::codec::{self, EventType, Value};
use hermes_guest::{BusError, ConsumedEvent, Consumer, Event, Offset, Timestamp};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `int`, `float`, `str` or `bytes`.
    kind: Kind,
    /// How many events the bus holds.
    count: u8,
    /// Trap on this read (1-based) of each instance.
    #[serde(default)]
    panic_on_read: Option<u32>,
    /// Trap on every read of the event with this index: a record the plugin
    /// can never read, which `skip` steps over.
    #[serde(default)]
    panic_at: Option<u8>,
}

#[derive(Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Int,
    Float,
    Str,
    Bytes,
}

pub struct OffsetKinds {
    kind: Kind,
    count: u8,
    next: u8,
    reads: u32,
    panic_on_read: Option<u32>,
    panic_at: Option<u8>,
}

impl OffsetKinds {
    fn offset(&self, index: u8) -> Offset {
        match self.kind {
            Kind::Int => Offset::Int(i64::from(index) * 10 + 10),
            Kind::Float => Offset::Float(f64::from(index) + 0.5),
            Kind::Str => Offset::Str(format!("id-{index}")),
            Kind::Bytes => Offset::Bytes(vec![0, index]),
        }
    }

    /// The index of `offset`; the end (`count`) is valid only if `end_ok`.
    fn index(&self, offset: &Offset, end_ok: bool) -> Result<u8, BusError> {
        let last = if end_ok {
            self.count
        } else {
            self.count.saturating_sub(1)
        };
        (0..=last)
            .filter(|&i| end_ok || i < self.count)
            .find(|&i| &self.offset(i) == offset)
            .ok_or_else(|| BusError::UnknownOffset(format!("{offset:?}")))
    }
}

impl Consumer for OffsetKinds {
    type Settings = Settings;

    fn new(settings: Settings) -> Result<Self, BusError> {
        Ok(OffsetKinds {
            kind: settings.kind,
            count: settings.count,
            next: 0,
            reads: 0,
            panic_on_read: settings.panic_on_read,
            panic_at: settings.panic_at,
        })
    }

    fn open(&mut self) -> Result<(), BusError> {
        Ok(())
    }

    fn close(&mut self) -> Result<(), BusError> {
        Ok(())
    }

    fn seek_to_beginning(&mut self) -> Result<(), BusError> {
        self.next = 0;
        Ok(())
    }

    fn seek(&mut self, offset: &Offset) -> Result<(), BusError> {
        self.next = self.index(offset, true)?;
        Ok(())
    }

    fn seek_after(&mut self, offset: &Offset) -> Result<(), BusError> {
        self.next = self.index(offset, false)? + 1;
        Ok(())
    }

    fn skip(&mut self) -> Result<Option<Offset>, BusError> {
        if self.next >= self.count {
            return Ok(None);
        }
        self.next += 1;
        Ok(Some(self.offset(self.next - 1)))
    }

    fn read(&mut self) -> Result<Option<ConsumedEvent>, BusError> {
        if self.next >= self.count {
            return Ok(None);
        }
        self.reads += 1;
        if self.panic_on_read == Some(self.reads) {
            panic!("read {} traps, as the settings asked", self.reads);
        }
        let index = self.next;
        if self.panic_at == Some(index) {
            panic!("event {index} traps, as the settings asked");
        }
        self.next += 1;
        let event = Event::from(&codec::Event::new(
            codec::Category::Base,
            EventType::Added,
            Some("T".into()),
            Value::from(i64::from(index)),
            Value::empty_object(),
        ));
        Ok(Some(ConsumedEvent {
            offset: self.offset(index),
            timestamp: Timestamp {
                seconds: 1_700_000_000 + i64::from(index),
                nanoseconds: 0,
            },
            category: event.category,
            json: event.json,
        }))
    }
}

hermes_guest::export!(consumer: OffsetKinds);
