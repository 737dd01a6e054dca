//! Driving a plugin's consumer role.
//!
//! The host never asks a plugin to wait longer than [`WAIT_SLICE`] in one call:
//! a long or endless timeout becomes a series of short waits, so every call
//! still has a deadline. The host remembers the position (the last `seek`, or
//! the last event delivered), so a fresh instance after a trap resumes where
//! the old one stood, with no event skipped or repeated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hermes_event::{Category, Event};
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::bindings::consume;
use crate::bindings::types::{ConsumedEvent, Offset};
use crate::error::{Error, Result};
use crate::plugin::{Handle, Instance, Plugin, Raw, Role, RoleGuest, guest_call};
use crate::sandbox::HostState;

/// The longest wait the host asks of a plugin in one call.
pub const WAIT_SLICE: Duration = Duration::from_secs(1);

/// An event read from a bus: its offset, when the bus stored it, its
/// category and its hermes JSON as the bus holds it. [`Consumed::event`]
/// (or [`Consumer::parse`], whose error names the plugin) parses it.
pub type Consumed = ConsumedEvent;

/// Where the consumer stands, in terms any instance understands: what a
/// fresh instance is brought back to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Position {
    Beginning,
    At(Offset),
    After(Offset),
}

/// A consumer built from a plugin and its settings.
pub struct Consumer {
    handle: Handle<consume::Guest>,
    timeout: Option<Duration>,
}

impl Consumer {
    /// Validates `settings` against the plugin's consumer schema, then builds
    /// the consumer in a fresh instance, positioned at the beginning, waiting
    /// forever for new events until [`Consumer::set_timeout`] says otherwise.
    pub async fn create(plugin: Arc<Plugin>, settings: &serde_json::Value) -> Result<Consumer> {
        Ok(Consumer {
            handle: Handle::create(plugin, settings, Position::Beginning).await?,
            timeout: None,
        })
    }

    /// The plugin behind this consumer.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.handle.plugin
    }

    /// Connects to the bus.
    pub async fn open(&mut self) -> Result<()> {
        guest_call!(self.handle, "open", Duration::ZERO, consumer.call_open())?;
        self.handle.opened = true;
        Ok(())
    }

    /// Disconnects; the position is kept.
    pub async fn close(&mut self) -> Result<()> {
        self.handle.opened = false;
        guest_call!(self.handle, "close", Duration::ZERO, consumer.call_close())
    }

    /// Positions at the oldest event on the bus.
    pub async fn seek_to_beginning(&mut self) -> Result<()> {
        guest_call!(
            self.handle,
            "seek-to-beginning",
            Duration::ZERO,
            consumer.call_seek_to_beginning()
        )?;
        self.handle.recipe = Position::Beginning;
        Ok(())
    }

    /// Positions at the event with this offset (or at the end, for the
    /// offset the bus will give next).
    pub async fn seek(&mut self, offset: &Offset) -> Result<()> {
        guest_call!(
            self.handle,
            "seek",
            Duration::ZERO,
            consumer.call_seek(offset)
        )?;
        self.handle.recipe = Position::At(offset.clone());
        Ok(())
    }

    /// Positions right after the event with this offset.
    pub async fn seek_after(&mut self, offset: &Offset) -> Result<()> {
        guest_call!(
            self.handle,
            "seek-after",
            Duration::ZERO,
            consumer.call_seek_after(offset)
        )?;
        self.handle.recipe = Position::After(offset.clone());
        Ok(())
    }

    /// How long reading waits for a new event once the bus is drained; none
    /// waits forever.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// The next event, waiting up to the timeout; none once it passed.
    pub async fn next(&mut self) -> Result<Option<Consumed>> {
        Ok(self.next_batch(1).await?.pop())
    }

    /// Up to `max` events: those available now, or, if there are none, the
    /// first ones to arrive within the timeout. Empty once the timeout passed.
    pub async fn next_batch(&mut self, max: u32) -> Result<Vec<Consumed>> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        loop {
            let slice = self.slice(deadline);
            self.give_timeout(slice).await?;
            let batch = guest_call!(
                self.handle,
                "next-batch",
                slice,
                consumer.call_next_batch(max)
            )?;
            if batch.len() > max as usize {
                // A broken contract is a bug: the instance goes, as after a trap.
                self.handle.live = None;
                return Err(self.handle.plugin.trapped(
                    "next-batch",
                    format!(
                        "returned {} events, more than the {max} asked for",
                        batch.len()
                    ),
                ));
            }
            if !batch.is_empty() || expired(deadline) {
                return Ok(self.deliver(batch));
            }
        }
    }

    /// Moves past the event at the position without taking it, and gives
    /// its offset; none if the bus holds none there yet (no waiting). How a
    /// host steps over a record the plugin cannot read (it traps, or runs
    /// out of memory or time, each time it meets it): see the WIT `skip`.
    pub async fn skip(&mut self) -> Result<Option<Offset>> {
        let skipped = guest_call!(self.handle, "skip", Duration::ZERO, consumer.call_skip())?;
        if let Some(offset) = &skipped {
            self.handle.recipe = Position::After(offset.clone());
        }
        Ok(skipped)
    }

    /// Reads forward to the first event of `category`; none once the timeout
    /// passes with no such event. The position moves past every event read.
    pub async fn find_next_event_of_category(
        &mut self,
        category: Category,
    ) -> Result<Option<Consumed>> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        loop {
            let slice = self.slice(deadline);
            self.give_timeout(slice).await?;
            let found = guest_call!(
                self.handle,
                "find-next-event-of-category",
                slice,
                consumer.call_find_next_event_of_category(category.into())
            )?;
            // Events of the other category passed are not tracked: after a
            // trap they are read and passed again, which changes nothing.
            match found {
                Some(event) => return Ok(self.deliver(vec![event]).pop()),
                None if expired(deadline) => return Ok(None),
                None => {}
            }
        }
    }

    fn slice(&self, deadline: Option<Instant>) -> Duration {
        match deadline {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .min(WAIT_SLICE),
            None => WAIT_SLICE,
        }
    }

    async fn give_timeout(&mut self, slice: Duration) -> Result<()> {
        if self
            .handle
            .live
            .as_ref()
            .is_some_and(|live| live.session == Some(slice))
        {
            return Ok(());
        }
        let ms = u64::try_from(slice.as_millis()).unwrap_or(u64::MAX);
        guest_call!(self.handle, "set-timeout", Duration::ZERO, infallible consumer.call_set_timeout(Some(ms)))?;
        if let Some(live) = self.handle.live.as_mut() {
            live.session = Some(slice);
        }
        Ok(())
    }

    /// Takes what the plugin delivered and remembers the position after it.
    fn deliver(&mut self, batch: Vec<ConsumedEvent>) -> Vec<Consumed> {
        if let Some(last) = batch.last() {
            self.handle.recipe = Position::After(last.offset.clone());
        }
        batch
    }

    /// Parses a delivered event; one that is not a hermes event, or whose
    /// category is not the one the bus stored, is the plugin's `corrupted`
    /// error at that offset.
    pub fn parse(&self, consumed: &Consumed) -> Result<Event> {
        consumed
            .event()
            .map_err(|reason| self.corrupted(consumed, &reason))
    }

    /// Reads a delivered event's routing attributes, with the checks and the
    /// error of [`Consumer::parse`].
    pub fn parse_head(&self, consumed: &Consumed) -> Result<hermes_event::EventHead> {
        consumed
            .head()
            .map_err(|reason| self.corrupted(consumed, &reason))
    }

    /// The plugin's `corrupted` error for a delivered event, and why.
    pub fn corrupted(&self, consumed: &Consumed, reason: &str) -> Error {
        Error::Bus {
            plugin: self.handle.plugin.name().to_owned(),
            call: "next",
            error: crate::BusError::Corrupted(format!(
                "event at offset {}: {reason}",
                crate::offset::to_json(&consumed.offset)
            )),
        }
    }
}

impl RoleGuest for consume::Guest {
    const ROLE: Role = Role::Consumer;
    type Indices = consume::GuestIndices;
    /// The timeout last given to the plugin, to skip needless calls.
    type Session = Option<Duration>;
    type Recipe = Position;

    fn indices(plugin: &Plugin) -> Option<&Self::Indices> {
        plugin.consume.as_ref()
    }

    fn load(indices: &Self::Indices, instance: &mut Instance) -> wasmtime::Result<Self> {
        indices.load(&mut instance.store, &instance.instance)
    }

    async fn create(&self, store: &mut Store<HostState>, settings: &str) -> Raw<ResourceAny> {
        self.consumer().call_create(store, settings).await
    }

    async fn open(&self, store: &mut Store<HostState>, resource: ResourceAny) -> Raw<()> {
        self.consumer().call_open(store, resource).await
    }

    async fn restore(
        &self,
        plugin: &Plugin,
        store: &mut Store<HostState>,
        resource: ResourceAny,
        position: &Position,
    ) -> Result<()> {
        let consumer = self.consumer();
        let none = Duration::ZERO;
        match position {
            Position::Beginning => {
                plugin
                    .call(store, "seek-to-beginning", none, async |s| {
                        consumer.call_seek_to_beginning(s, resource).await
                    })
                    .await
            }
            Position::At(offset) => {
                plugin
                    .call(store, "seek", none, async |s| {
                        consumer.call_seek(s, resource, offset).await
                    })
                    .await
            }
            Position::After(offset) => {
                plugin
                    .call(store, "seek-after", none, async |s| {
                        consumer.call_seek_after(s, resource, offset).await
                    })
                    .await
            }
        }
    }
}

fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|deadline| Instant::now() >= deadline)
}
