//! Driving a plugin's producer role.
//!
//! Every call runs under the plugin's deadline. If the plugin traps (runs past
//! its deadline, exceeds its memory cap, crashes), its instance is thrown away
//! and the call fails; the next call builds a fresh instance from the same
//! settings and opens it again if it was open, so the host carries on.

use std::sync::Arc;
use std::time::Duration;

use hermes_event::Event;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::bindings::produce;
use crate::bindings::types::{Event as EventText, Offset};
use crate::error::Result;
use crate::plugin::{Handle, Instance, Plugin, Raw, Role, RoleGuest, guest_call};
use crate::sandbox::HostState;

/// A producer built from a plugin and its settings.
pub struct Producer {
    handle: Handle<produce::Guest>,
}

impl Producer {
    /// Validates `settings` against the plugin's producer schema, then builds
    /// the producer in a fresh instance. Connects to nothing yet.
    pub async fn create(plugin: Arc<Plugin>, settings: &serde_json::Value) -> Result<Producer> {
        Ok(Producer {
            handle: Handle::create(plugin, settings, ()).await?,
        })
    }

    /// The plugin behind this producer.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.handle.plugin
    }

    /// Connects to the bus.
    pub async fn open(&mut self) -> Result<()> {
        guest_call!(self.handle, "open", Duration::ZERO, producer.call_open())?;
        self.handle.opened = true;
        Ok(())
    }

    /// Flushes and disconnects.
    pub async fn close(&mut self) -> Result<()> {
        self.handle.opened = false;
        guest_call!(self.handle, "close", Duration::ZERO, producer.call_close())
    }

    /// Puts one event on the bus; returns once the bus holds it.
    pub async fn send(&mut self, event: &Event) -> Result<Offset> {
        self.send_text(&EventText::render(event)).await
    }

    /// Puts one event, already rendered, on the bus.
    pub async fn send_text(&mut self, event: &EventText) -> Result<Offset> {
        guest_call!(
            self.handle,
            "send",
            Duration::ZERO,
            producer.call_send(event)
        )
    }

    /// Puts events on the bus in order; returns their offsets once all are stored.
    pub async fn send_batch(&mut self, events: &[Event]) -> Result<Vec<Offset>> {
        let texts: Vec<EventText> = events.iter().map(EventText::render).collect();
        self.send_texts(&texts).await
    }

    /// Puts events, already rendered, on the bus in order.
    pub async fn send_texts(&mut self, events: &[EventText]) -> Result<Vec<Offset>> {
        let offsets = guest_call!(
            self.handle,
            "send-batch",
            Duration::ZERO,
            producer.call_send_batch(events)
        )?;
        if offsets.len() != events.len() {
            return Err(self.handle.plugin.trapped(
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

impl RoleGuest for produce::Guest {
    const ROLE: Role = Role::Producer;
    type Indices = produce::GuestIndices;
    type Session = ();
    type Recipe = ();

    fn indices(plugin: &Plugin) -> Option<&Self::Indices> {
        plugin.produce.as_ref()
    }

    fn load(indices: &Self::Indices, instance: &mut Instance) -> wasmtime::Result<Self> {
        indices.load(&mut instance.store, &instance.instance)
    }

    async fn create(&self, store: &mut Store<HostState>, settings: &str) -> Raw<ResourceAny> {
        self.producer().call_create(store, settings).await
    }

    async fn open(&self, store: &mut Store<HostState>, resource: ResourceAny) -> Raw<()> {
        self.producer().call_open(store, resource).await
    }

    async fn restore(
        &self,
        _plugin: &Plugin,
        _store: &mut Store<HostState>,
        _resource: ResourceAny,
        _recipe: &(),
    ) -> Result<()> {
        Ok(())
    }
}
