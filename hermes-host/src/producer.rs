//! Driving a plugin's producer role.
//!
//! Every call runs under the plugin's deadline. If the plugin traps (runs past
//! its deadline, exceeds its memory cap, crashes), its instance is thrown away
//! and the call fails; the next call builds a fresh instance from the same
//! settings and opens it again if it was open, so the host carries on.

use std::sync::Arc;
use std::time::Duration;

use hermes_event::Event;
use wasmtime::component::ResourceAny;

use crate::bindings::produce;
use crate::bindings::types::{Event as EventText, Offset};
use crate::error::{Error, Result};
use crate::plugin::{Instance, Plugin, Role, guest_call};

/// A producer built from a plugin and its settings.
pub struct Producer {
    plugin: Arc<Plugin>,
    recipe: Recipe,
    live: Option<Live>,
}

/// What it takes to rebuild the producer in a fresh instance.
struct Recipe {
    settings: String,
    opened: bool,
}

struct Live {
    instance: Instance,
    guest: produce::Guest,
    resource: ResourceAny,
}

impl Producer {
    /// Validates `settings` against the plugin's producer schema, then builds
    /// the producer in a fresh instance. Connects to nothing yet.
    pub async fn create(plugin: Arc<Plugin>, settings: &serde_json::Value) -> Result<Producer> {
        if plugin.produce.is_none() {
            return Err(Error::MissingRole {
                plugin: plugin.name().to_owned(),
                role: "producer",
            });
        }
        let settings = plugin.validate_settings(Role::Producer, settings)?;
        let recipe = Recipe {
            settings,
            opened: false,
        };
        let live = recipe.build(&plugin).await?;
        Ok(Producer {
            plugin,
            recipe,
            live: Some(live),
        })
    }

    /// The plugin behind this producer.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The live instance, or a fresh one if the last call trapped.
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
        guest_call!(self, "open", Duration::ZERO, producer.call_open())?;
        self.recipe.opened = true;
        Ok(())
    }

    /// Flushes and disconnects.
    pub async fn close(&mut self) -> Result<()> {
        self.recipe.opened = false;
        guest_call!(self, "close", Duration::ZERO, producer.call_close())
    }

    /// Puts one event on the bus; returns once the bus holds it.
    pub async fn send(&mut self, event: &Event) -> Result<Offset> {
        self.send_text(&EventText::render(event)).await
    }

    /// Puts one event, already rendered, on the bus.
    pub async fn send_text(&mut self, event: &EventText) -> Result<Offset> {
        guest_call!(self, "send", Duration::ZERO, producer.call_send(event))
    }

    /// Puts events on the bus in order; returns their offsets once all are stored.
    pub async fn send_batch(&mut self, events: &[Event]) -> Result<Vec<Offset>> {
        let texts: Vec<EventText> = events.iter().map(EventText::render).collect();
        self.send_texts(&texts).await
    }

    /// Puts events, already rendered, on the bus in order.
    pub async fn send_texts(&mut self, events: &[EventText]) -> Result<Vec<Offset>> {
        let offsets = guest_call!(
            self,
            "send-batch",
            Duration::ZERO,
            producer.call_send_batch(events)
        )?;
        if offsets.len() != events.len() {
            return Err(self.plugin.trapped(
                "send-batch",
                format!(
                    "returned {} offsets for {} events",
                    offsets.len(),
                    events.len()
                ),
            ));
        }
        Ok(offsets)
    }
}

impl Recipe {
    async fn build(&self, plugin: &Plugin) -> Result<Live> {
        let indices = plugin.produce.as_ref().ok_or_else(|| Error::MissingRole {
            plugin: plugin.name().to_owned(),
            role: "producer",
        })?;
        let mut instance = plugin.instantiate().await?;
        let guest = indices
            .load(&mut instance.store, &instance.instance)
            .map_err(|e| plugin.trapped("create", e.to_string()))?;
        let producer = guest.producer();
        let store = &mut instance.store;
        let resource = plugin
            .call(store, "create", Duration::ZERO, async |s| {
                producer.call_create(s, &self.settings).await
            })
            .await?;
        if self.opened {
            plugin
                .call(store, "open", Duration::ZERO, async |s| {
                    producer.call_open(s, resource).await
                })
                .await?;
        }
        Ok(Live {
            instance,
            guest,
            resource,
        })
    }
}
