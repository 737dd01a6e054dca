//! Driving a plugin's consumer role.
//!
//! The host never asks a plugin to wait longer than [`WAIT_SLICE`] in one call:
//! a long or endless timeout becomes a series of short waits, so every call
//! still has a deadline. The host remembers the position (the last `seek`, or
//! the last event delivered), so a fresh instance after a trap resumes where
//! the old one stood, with no event skipped or repeated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceAny;

use crate::bindings::consume;
use crate::bindings::types::{ConsumedEvent, Offset};
use crate::error::{Error, Result};
use crate::plugin::{Instance, Plugin, Role, guest_call};
use hermes_event::{Category, Event};

/// The longest wait the host asks of a plugin in one call.
pub const WAIT_SLICE: Duration = Duration::from_secs(1);

/// An event read from a bus: its offset, when the bus stored it, its
/// category and its hermes JSON as the bus holds it. [`Consumed::event`]
/// (or [`Consumer::parse`], whose error names the plugin) parses it.
pub type Consumed = ConsumedEvent;

/// Where the consumer stands, in terms any instance understands.
#[derive(Debug, Clone, PartialEq)]
enum Position {
    Beginning,
    At(Offset),
    After(Offset),
}

/// A consumer built from a plugin and its settings.
pub struct Consumer {
    plugin: Arc<Plugin>,
    recipe: Recipe,
    timeout: Option<Duration>,
    live: Option<Live>,
}

/// What it takes to rebuild the consumer in a fresh instance.
struct Recipe {
    settings: String,
    opened: bool,
    position: Position,
}

struct Live {
    instance: Instance,
    guest: consume::Guest,
    resource: ResourceAny,
    /// The timeout last given to the plugin, to skip needless calls.
    slice: Option<Duration>,
}

impl Consumer {
    /// Validates `settings` against the plugin's consumer schema, then builds
    /// the consumer in a fresh instance, positioned at the beginning, waiting
    /// forever for new events until [`Consumer::set_timeout`] says otherwise.
    pub async fn create(plugin: Arc<Plugin>, settings: &serde_json::Value) -> Result<Consumer> {
        if plugin.consume.is_none() {
            return Err(Error::MissingRole {
                plugin: plugin.name().to_owned(),
                role: "consumer",
            });
        }
        let settings = plugin.validate_settings(Role::Consumer, settings)?;
        let recipe = Recipe {
            settings,
            opened: false,
            position: Position::Beginning,
        };
        let live = recipe.build(&plugin).await?;
        Ok(Consumer {
            plugin,
            recipe,
            timeout: None,
            live: Some(live),
        })
    }

    /// The plugin behind this consumer.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    async fn take_live(&mut self) -> Result<Live> {
        match self.live.take() {
            Some(live) => Ok(live),
            None => {
                tracing::info!(
                    plugin = self.plugin.name(),
                    "starting a fresh instance after a trap"
                );
                self.recipe.build(&self.plugin).await
            }
        }
    }

    /// Connects to the bus.
    pub async fn open(&mut self) -> Result<()> {
        guest_call!(self, "open", Duration::ZERO, consumer.call_open())?;
        self.recipe.opened = true;
        Ok(())
    }

    /// Disconnects; the position is kept.
    pub async fn close(&mut self) -> Result<()> {
        self.recipe.opened = false;
        guest_call!(self, "close", Duration::ZERO, consumer.call_close())
    }

    /// Positions at the oldest event on the bus.
    pub async fn seek_to_beginning(&mut self) -> Result<()> {
        guest_call!(
            self,
            "seek-to-beginning",
            Duration::ZERO,
            consumer.call_seek_to_beginning()
        )?;
        self.recipe.position = Position::Beginning;
        Ok(())
    }

    /// Positions at the event with this offset (or at the end, for the
    /// offset the bus will give next).
    pub async fn seek(&mut self, offset: &Offset) -> Result<()> {
        guest_call!(self, "seek", Duration::ZERO, consumer.call_seek(offset))?;
        self.recipe.position = Position::At(offset.clone());
        Ok(())
    }

    /// Positions right after the event with this offset.
    pub async fn seek_after(&mut self, offset: &Offset) -> Result<()> {
        guest_call!(
            self,
            "seek-after",
            Duration::ZERO,
            consumer.call_seek_after(offset)
        )?;
        self.recipe.position = Position::After(offset.clone());
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
            let batch = guest_call!(self, "next-batch", slice, consumer.call_next_batch(max))?;
            if batch.len() > max as usize {
                // A broken contract is a bug: the instance goes, as after a trap.
                self.live = None;
                return Err(self.plugin.trapped(
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
                self,
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
            .live
            .as_ref()
            .is_some_and(|live| live.slice == Some(slice))
        {
            return Ok(());
        }
        let ms = u64::try_from(slice.as_millis()).unwrap_or(u64::MAX);
        guest_call!(self, "set-timeout", Duration::ZERO, infallible consumer.call_set_timeout(Some(ms)))?;
        if let Some(live) = self.live.as_mut() {
            live.slice = Some(slice);
        }
        Ok(())
    }

    /// Takes what the plugin delivered and remembers the position after it.
    fn deliver(&mut self, batch: Vec<ConsumedEvent>) -> Vec<Consumed> {
        if let Some(last) = batch.last() {
            self.recipe.position = Position::After(last.offset.clone());
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
            plugin: self.plugin.name().to_owned(),
            call: "next",
            error: crate::BusError::Corrupted(format!(
                "event at offset {}: {reason}",
                crate::offset::to_json(&consumed.offset)
            )),
        }
    }
}

impl Recipe {
    async fn build(&self, plugin: &Plugin) -> Result<Live> {
        let indices = plugin.consume.as_ref().ok_or_else(|| Error::MissingRole {
            plugin: plugin.name().to_owned(),
            role: "consumer",
        })?;
        let mut instance = plugin.instantiate().await?;
        let guest = indices
            .load(&mut instance.store, &instance.instance)
            .map_err(|e| plugin.trapped("create", e.to_string()))?;
        let consumer = guest.consumer();
        let store = &mut instance.store;
        let none = Duration::ZERO;
        let resource = plugin
            .call(store, "create", none, async |s| {
                consumer.call_create(s, &self.settings).await
            })
            .await?;
        if self.opened {
            plugin
                .call(store, "open", none, async |s| {
                    consumer.call_open(s, resource).await
                })
                .await?;
            match &self.position {
                Position::Beginning => {
                    plugin
                        .call(store, "seek-to-beginning", none, async |s| {
                            consumer.call_seek_to_beginning(s, resource).await
                        })
                        .await?
                }
                Position::At(offset) => {
                    plugin
                        .call(store, "seek", none, async |s| {
                            consumer.call_seek(s, resource, offset).await
                        })
                        .await?
                }
                Position::After(offset) => {
                    plugin
                        .call(store, "seek-after", none, async |s| {
                            consumer.call_seek_after(s, resource, offset).await
                        })
                        .await?
                }
            }
        }
        Ok(Live {
            instance,
            guest,
            resource,
            slice: None,
        })
    }
}

fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|deadline| Instant::now() >= deadline)
}
