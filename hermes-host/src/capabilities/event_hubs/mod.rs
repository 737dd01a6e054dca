//! The `event-hubs` capability: Azure Event Hubs over AMQP 1.0, for the
//! endpoints the operator allows (`--allow-amqp URL`). The host connects,
//! signs and renews the shared access tokens (the key stays in the host's
//! memory; only tokens go on the wire), reads the hub's and its partitions'
//! properties on `$management`, sends batches and receives a partition's
//! events. Every wait is an await point: the host's other work goes on.

mod allow;
mod client;
pub mod sas;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::TrappableError;

pub use self::allow::{AmqpAllow, Endpoint};
pub use self::client::{Hub, Receiver};
use crate::bindings::event_hubs::{
    Credentials, EventData, Host, HostHub, HostReceiver, HubError, PartitionProperties,
    ReceivedEvent, Start,
};

/// Hubs and receivers one instance may have open at once: a bus needs two
/// or three.
pub const MAX_OPEN: usize = 8;

/// The most events one send may carry, and one receive return.
const MAX_EVENTS: usize = 1 << 16;

/// The longest a receive may wait.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// What the capability holds for one plugin instance: the endpoints the
/// operator allows, the plugin's memory cap (which bounds what one receive
/// may hold), and the plugin's name for the log.
pub struct EventHubsCtx {
    plugin: Arc<str>,
    allowed: Vec<AmqpAllow>,
    memory_cap: usize,
    open: AtomicUsize,
}

impl EventHubsCtx {
    /// The capability for `plugin`, allowed to reach `allowed`, with
    /// `memory_cap` bytes of memory.
    pub fn new(plugin: Arc<str>, allowed: Vec<AmqpAllow>, memory_cap: usize) -> Self {
        EventHubsCtx {
            plugin,
            allowed,
            memory_cap,
            open: AtomicUsize::new(0),
        }
    }

    /// Counts one more open resource, if the limit allows.
    fn reserve(&self) -> Result<(), HubError> {
        let taken = self.open.fetch_add(1, Ordering::SeqCst);
        if taken >= MAX_OPEN {
            self.open.fetch_sub(1, Ordering::SeqCst);
            return Err(HubError::Refused(format!(
                "at most {MAX_OPEN} hubs and receivers may be open at once"
            )));
        }
        Ok(())
    }

    fn release(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The capability as a plugin's calls see it: its context, and the
/// instance's table holding the open hubs and receivers.
pub struct EventHubsView<'a> {
    /// The grants and limits.
    pub ctx: &'a EventHubsCtx,
    /// The instance's resources.
    pub table: &'a mut ResourceTable,
}

/// A failed call: a `hub-error` the plugin receives, or a trap.
pub type HubFailure = TrappableError<HubError>;

impl Host for EventHubsView<'_> {
    fn convert_hub_error(&mut self, failure: HubFailure) -> wasmtime::Result<HubError> {
        failure.downcast()
    }
}

impl HostHub for EventHubsView<'_> {
    async fn open(
        &mut self,
        endpoint: String,
        hub: String,
        credentials: Credentials,
    ) -> Result<Resource<Hub>, HubFailure> {
        let parsed = Endpoint::parse(&endpoint).map_err(HubError::InvalidCall)?;
        let Some(allow) = self.ctx.allowed.iter().find(|allow| allow.allows(&parsed)) else {
            tracing::warn!(target: "plugin", plugin = &*self.ctx.plugin, "refused a connection to {parsed}");
            return Err(HubError::Refused(format!(
                "{parsed} is not an allowed Event Hubs endpoint (the operator allows endpoints with --allow-amqp or allow_amqp)"
            ))
            .into());
        };
        let roots = allow.roots.clone();
        self.ctx.reserve()?;
        match Hub::open(&parsed, roots, &hub, &credentials).await {
            Ok(opened) => self.table.push(opened).map_err(|e| {
                self.ctx.release();
                super::trap(e)
            }),
            Err(e) => {
                self.ctx.release();
                Err(e.into())
            }
        }
    }

    async fn partition_ids(&mut self, hub: Resource<Hub>) -> Result<Vec<String>, HubFailure> {
        let hub = self.table.get_mut(&hub).map_err(super::trap)?;
        Ok(hub.partition_ids().await?)
    }

    async fn partition_properties(
        &mut self,
        hub: Resource<Hub>,
        partition: String,
    ) -> Result<PartitionProperties, HubFailure> {
        let hub = self.table.get_mut(&hub).map_err(super::trap)?;
        Ok(hub.partition_properties(&partition).await?)
    }

    async fn send(
        &mut self,
        hub: Resource<Hub>,
        partition: String,
        events: Vec<EventData>,
    ) -> Result<(), HubFailure> {
        if events.len() > MAX_EVENTS {
            return Err(HubError::InvalidCall(format!(
                "a send of {} events; at most {MAX_EVENTS}",
                events.len()
            ))
            .into());
        }
        if events.is_empty() {
            return Ok(());
        }
        let hub = self.table.get_mut(&hub).map_err(super::trap)?;
        Ok(hub.send(&partition, events).await?)
    }

    async fn receiver(
        &mut self,
        hub: Resource<Hub>,
        consumer_group: String,
        partition: String,
        start: Start,
    ) -> Result<Resource<Receiver>, HubFailure> {
        self.ctx.reserve()?;
        let max_message_size = u64::try_from(self.ctx.memory_cap / 2).unwrap_or(u64::MAX);
        let opened = match self.table.get(&hub) {
            Ok(hub) => {
                Receiver::open(hub, &consumer_group, &partition, start, max_message_size).await
            }
            Err(e) => {
                self.ctx.release();
                return Err(super::trap(e));
            }
        };
        match opened {
            Ok(receiver) => self.table.push(receiver).map_err(|e| {
                self.ctx.release();
                super::trap(e)
            }),
            Err(e) => {
                self.ctx.release();
                Err(e.into())
            }
        }
    }

    async fn drop(&mut self, hub: Resource<Hub>) -> wasmtime::Result<()> {
        let hub = self.table.delete(hub)?;
        self.ctx.release();
        tokio::spawn(hub.close());
        Ok(())
    }
}

impl HostReceiver for EventHubsView<'_> {
    async fn receive(
        &mut self,
        receiver: Resource<Receiver>,
        max: u32,
        wait_ms: u32,
    ) -> Result<Vec<ReceivedEvent>, HubFailure> {
        let max = max.clamp(1, MAX_EVENTS as u32);
        let wait = Duration::from_millis(u64::from(wait_ms)).min(MAX_WAIT);
        let budget = self.ctx.memory_cap / 4;
        let receiver = self.table.get_mut(&receiver).map_err(super::trap)?;
        Ok(receiver.receive(max, wait, budget).await?)
    }

    async fn drop(&mut self, receiver: Resource<Receiver>) -> wasmtime::Result<()> {
        let receiver = self.table.delete(receiver)?;
        self.ctx.release();
        tokio::spawn(receiver.close());
        Ok(())
    }
}

/// Selects the capability's view in a store's data.
struct HasEventHubs;

impl HasData for HasEventHubs {
    type Data<'a> = EventHubsView<'a>;
}

/// Adds the capability to `linker`; `view` finds it in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> EventHubsView<'_>,
) -> wasmtime::Result<()> {
    crate::bindings::event_hubs::add_to_linker::<T, HasEventHubs>(linker, view)
}
