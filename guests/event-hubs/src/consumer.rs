use std::collections::VecDeque;
use std::time::Duration;

use hermes_guest::event_hubs::{ReceivedEvent, Receiver, Start};
use hermes_guest::{BusError, Category, ConsumedEvent, Consumer, Offset, Timestamp};

use crate::link::Link;
use crate::producer::CATEGORY;
use crate::settings::Settings;

/// The most events asked of the host at a time.
const PAGE: u32 = 256;

/// How long a read waits for an event the partition is known to hold: a
/// new receiver takes a moment to start, and an event the bus holds is
/// never "no event", whatever the timeout.
const HELD_WAIT: Duration = Duration::from_secs(5);

/// Where the next event is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Position {
    /// The oldest event the partition holds.
    Beginning,
    /// The event with this sequence number.
    At(i64),
    /// The first event after this sequence number.
    After(i64),
}

impl Position {
    /// The sequence number the next event must have, if known.
    fn expected(self) -> Option<i64> {
        match self {
            Position::Beginning => None,
            Position::At(n) => Some(n),
            Position::After(n) => Some(n + 1),
        }
    }
}

/// Reads the partition through a receiver of the consumer group, made at
/// the position when reading starts and made again after each seek.
/// Sequence numbers are dense: a jump is events removed (retention) before
/// they were read, reported once as a gap.
pub struct HubConsumer {
    settings: Settings,
    link: Option<Link>,
    receiver: Option<Receiver>,
    position: Position,
    /// Events received ahead, in order, the first at `position`.
    ahead: VecDeque<ReceivedEvent>,
    /// The partition's oldest and newest sequence numbers when the
    /// receiver was made: events up to the newest are there to be read.
    held: (i64, i64),
}

impl HubConsumer {
    fn link(&mut self) -> Result<&mut Link, BusError> {
        self.link.as_mut().ok_or(BusError::NotOpen)
    }

    fn position(&mut self, position: Position) {
        self.position = position;
        self.receiver = None;
        self.ahead.clear();
    }

    /// The partition's newest sequence number (-1 if it never held an
    /// event) and its oldest.
    fn extent(&mut self) -> Result<(i64, i64), BusError> {
        let link = self.link()?;
        let partition = link.partition.clone();
        let properties = link.hub()?.partition_properties(&partition);
        let properties = properties.map_err(|e| link.error(e))?;
        Ok((
            properties.begin_sequence_number,
            properties.last_sequence_number,
        ))
    }

    fn sequence_number(offset: &Offset) -> Result<i64, BusError> {
        match offset {
            Offset::Int(n) => Ok(*n),
            other => Err(BusError::UnknownOffset(format!(
                "{other:?}: this bus's offsets are sequence numbers (integers)"
            ))),
        }
    }

    /// Whether the partition holds the event at the position: then
    /// reading waits for it whatever the timeout.
    fn holds_next(&self) -> bool {
        let (begin, last) = self.held;
        self.position.expected().unwrap_or(begin) <= last
    }

    /// Makes the receiver, from the position, if there is none.
    fn ensure_receiver(&mut self) -> Result<(), BusError> {
        if self.receiver.is_none() {
            self.held = self.extent()?;
            let start = match self.position {
                Position::Beginning => Start::Earliest,
                Position::At(n) => Start::AtSequence(n),
                Position::After(n) => Start::AfterSequence(n),
            };
            let group = self.settings.consumer_group.clone();
            let link = self.link()?;
            let partition = link.partition.clone();
            let receiver = link.hub()?.receiver(&group, &partition, start);
            self.receiver = Some(receiver.map_err(|e| link.error(e))?);
        }
        Ok(())
    }

    /// Receives what is here, or waits up to `wait` for the first event.
    fn fill(&mut self, wait: Duration) -> Result<(), BusError> {
        self.ensure_receiver()?;
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let received = match &self.receiver {
            Some(receiver) => receiver.receive(PAGE, wait_ms),
            None => return Err(BusError::NotOpen),
        };
        match received {
            Ok(events) => {
                self.ahead.extend(events);
                Ok(())
            }
            Err(e) => {
                // Made again from the position on the next read.
                self.receiver = None;
                let link = self.link()?;
                Err(link.error(e))
            }
        }
    }
}

fn consumed(event: ReceivedEvent, hub: &str) -> Result<ConsumedEvent, BusError> {
    let at = event.sequence_number;
    let category = event
        .properties
        .iter()
        .find(|(name, _)| name == CATEGORY)
        .map(|(_, value)| value.as_str());
    let category = match category {
        Some("base") => Category::Base,
        Some("initsync") => Category::Initsync,
        Some(other) => {
            return Err(BusError::Corrupted(format!(
                "event hub {hub}: event {at}: the category {other:?} is not base or initsync"
            )));
        }
        None => {
            return Err(BusError::Corrupted(format!(
                "event hub {hub}: event {at} has no {CATEGORY} property: not a hermes event"
            )));
        }
    };
    let json = String::from_utf8(event.body).map_err(|_| {
        BusError::Corrupted(format!(
            "event hub {hub}: event {at}: its body is not UTF-8"
        ))
    })?;
    Ok(ConsumedEvent {
        offset: Offset::Int(at),
        timestamp: Timestamp {
            seconds: event.enqueued_time.seconds,
            nanoseconds: event.enqueued_time.nanoseconds,
        },
        category,
        json,
    })
}

impl Consumer for HubConsumer {
    type Settings = Settings;

    fn new(settings: Settings) -> Result<Self, BusError> {
        settings.target()?;
        Ok(HubConsumer {
            settings,
            link: None,
            receiver: None,
            position: Position::Beginning,
            ahead: VecDeque::new(),
            held: (0, -1),
        })
    }

    fn open(&mut self) -> Result<(), BusError> {
        let mut link = Link::new(&self.settings)?;
        link.connect()?;
        self.link = Some(link);
        Ok(())
    }

    fn close(&mut self) -> Result<(), BusError> {
        self.receiver = None;
        self.ahead.clear();
        if let Some(mut link) = self.link.take() {
            link.close();
        }
        Ok(())
    }

    fn seek_to_beginning(&mut self) -> Result<(), BusError> {
        self.position(Position::Beginning);
        Ok(())
    }

    fn seek(&mut self, offset: &Offset) -> Result<(), BusError> {
        let n = Self::sequence_number(offset)?;
        let (begin, last) = self.extent()?;
        if n < begin || n > last + 1 {
            return Err(BusError::UnknownOffset(format!(
                "{n}: the partition holds {begin} to {last}, and {} comes next",
                last + 1
            )));
        }
        self.position(Position::At(n));
        Ok(())
    }

    fn seek_after(&mut self, offset: &Offset) -> Result<(), BusError> {
        let n = Self::sequence_number(offset)?;
        let (_, last) = self.extent()?;
        if n < 0 || n > last {
            return Err(BusError::UnknownOffset(format!(
                "{n}: the partition never held it (its newest is {last})"
            )));
        }
        self.position(Position::After(n));
        Ok(())
    }

    fn read(&mut self) -> Result<Option<ConsumedEvent>, BusError> {
        loop {
            if self.ahead.is_empty() {
                self.ensure_receiver()?;
                let wait = match self.holds_next() {
                    true => HELD_WAIT,
                    false => Duration::ZERO,
                };
                self.fill(wait)?;
            }
            let Some(event) = self.ahead.pop_front() else {
                return Ok(None);
            };
            let at = event.sequence_number;
            let expected = self.position.expected();
            if expected.is_some_and(|n| at < n) {
                // Before the position: the service started early.
                continue;
            }
            if let Some(expected) = expected.filter(|&n| at > n) {
                // Reported once: the next read delivers this event.
                self.ahead.push_front(event);
                self.position = Position::At(at);
                let link = self.link()?;
                return Err(BusError::Gap(format!(
                    "event hub {} partition {}: events {expected} to {} were removed before they were read",
                    link.target.hub,
                    link.partition,
                    at - 1
                )));
            }
            self.position = Position::After(at);
            let hub = self.link()?.target.hub.clone();
            return consumed(event, &hub).map(Some);
        }
    }

    fn wait(&mut self, at_most: Duration) -> Result<(), BusError> {
        if self.ahead.is_empty() {
            self.fill(at_most)?;
        }
        Ok(())
    }
}
