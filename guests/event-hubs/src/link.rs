//! A hub that comes back: dropped when the endpoint fails, opened again on
//! the next call.

use hermes_guest::BusError;
use hermes_guest::event_hubs::{Hub, HubError};

use crate::settings::{Settings, Target};

/// The hub, opened lazily, forgotten as soon as a call finds the endpoint
/// unreachable.
pub struct Link {
    pub target: Target,
    pub partition: String,
    hub: Option<Hub>,
}

impl Link {
    /// The link the settings describe; connects to nothing yet.
    pub fn new(settings: &Settings) -> Result<Link, BusError> {
        Ok(Link {
            target: settings.target()?,
            partition: settings.partition.clone(),
            hub: None,
        })
    }

    /// The hub, connecting first if needed.
    pub fn hub(&mut self) -> Result<&Hub, BusError> {
        if self.hub.is_none() {
            let t = &self.target;
            let hub = Hub::open(&t.endpoint, &t.hub, &t.credentials).map_err(|e| self.error(e))?;
            self.hub = Some(hub);
        }
        self.hub.as_ref().ok_or(BusError::NotOpen)
    }

    /// Connects now and checks that the hub has the partition, so that
    /// `open` reports an unreachable endpoint, a wrong key or a wrong
    /// partition.
    pub fn connect(&mut self) -> Result<(), BusError> {
        let ids = self.hub()?.partition_ids();
        let ids = ids.map_err(|e| self.error(e))?;
        if !ids.contains(&self.partition) {
            return Err(BusError::InvalidSettings(format!(
                "partition: hub {} has no partition {:?} (it has {})",
                self.target.hub,
                self.partition,
                ids.join(", ")
            )));
        }
        Ok(())
    }

    /// Disconnects.
    pub fn close(&mut self) {
        self.hub = None;
    }

    /// A capability error as a bus error; an unreachable endpoint drops
    /// the hub, so the next call connects again.
    pub fn error(&mut self, e: HubError) -> BusError {
        let hub = &self.target.hub;
        match e {
            HubError::Unavailable(m) => {
                self.hub = None;
                BusError::Unavailable(format!("event hub {hub}: {m}"))
            }
            HubError::InvalidCall(m) => BusError::InvalidSettings(m),
            HubError::NotFound(m) => BusError::InvalidSettings(format!("event hub {hub}: {m}")),
            HubError::Refused(m) | HubError::TooLarge(m) | HubError::Other(m) => {
                BusError::Other(format!("event hub {hub}: {m}"))
            }
        }
    }
}
