//! Host capabilities: what a plugin may import.
//!
//! Each capability is one sealed unit, a module named after its WIT
//! interface: a context holding its grants and its limits (`LogCtx`,
//! `RedisCtx`, `SqliteCtx`, `EventHubsCtx`), a view over that context and the instance's
//! resource table that implements the interface's `Host` traits, its domain
//! errors lowered in one place, and its own `add_to_linker`. This module is
//! the one place that lists them: adding a capability is its module, its
//! context in [`Capabilities`] and one line in [`add_to_linker`]. The engine
//! and the sandbox name none of them.

pub mod event_hubs;
pub mod log;
pub mod redis;
pub mod sqlite;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTableError};
use wasmtime_wasi::TrappableError;

use crate::sandbox::{Grants, HostState};

/// Every capability's context, for one plugin instance.
pub struct Capabilities {
    log: log::LogCtx,
    redis: redis::RedisCtx,
    sqlite: sqlite::SqliteCtx,
    event_hubs: event_hubs::EventHubsCtx,
}

impl Capabilities {
    /// What a plugin called `plugin` gets from `grants`.
    pub(crate) fn new(plugin: &Arc<str>, grants: &Grants) -> Self {
        Capabilities {
            log: log::LogCtx::new(plugin.clone()),
            redis: redis::RedisCtx::new(plugin.clone(), grants.redis.clone(), grants.memory_limit),
            sqlite: sqlite::SqliteCtx::new(plugin.clone(), grants.dirs.clone()),
            event_hubs: event_hubs::EventHubsCtx::new(
                plugin.clone(),
                grants.amqp.clone(),
                grants.memory_limit,
            ),
        }
    }

    /// Where the plugin's stdout and stderr go: the host log.
    pub(crate) fn output(&self) -> (log::GuestOutput, log::GuestOutput) {
        (self.log.stdout(), self.log.stderr())
    }
}

/// Adds WASI, the shared types and every capability to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    crate::bindings::types::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    log::add_to_linker(linker, |s| log::LogView {
        ctx: &s.capabilities.log,
    })?;
    redis::add_to_linker(linker, |s| redis::RedisView {
        ctx: &s.capabilities.redis,
        table: &mut s.table,
    })?;
    sqlite::add_to_linker(linker, |s| sqlite::SqliteView {
        ctx: &s.capabilities.sqlite,
        table: &mut s.table,
    })?;
    event_hubs::add_to_linker(linker, |s| event_hubs::EventHubsView {
        ctx: &s.capabilities.event_hubs,
        table: &mut s.table,
    })?;
    Ok(())
}

/// The shared types have no functions to provide.
impl crate::bindings::types::Host for HostState {}

/// A handle the plugin does not own is a trap, never a domain error.
fn trap<E>(error: ResourceTableError) -> TrappableError<E> {
    TrappableError::trap(error)
}
