//! hermes-wasm's host: loads hermes message-bus plugins compiled to
//! WebAssembly components, sandboxes them, and calls them. It knows no hermes
//! job: the server and the client live in `hermes-jobs`.
//!
//! - [`engine`]: the wasmtime engine, the epoch clock behind call deadlines,
//!   the on-disk cache of compiled components, and the built-in components a
//!   program registers by name.
//! - [`sandbox`]: what the operator grants a plugin and how it is enforced.
//! - [`capabilities`]: the host capabilities a plugin may import.
//! - [`plugin`]: a loaded plugin: its world, its metadata, settings validation.
//! - [`spec`]: one plugin as the operator describes it (component,
//!   settings, grants, limits), from a configuration or flags alike.
//! - [`producer`] and [`consumer`]: handles that call a plugin's exports, each
//!   call under a deadline, recovering a fresh instance after a trap.

pub mod bindings;
mod cache;
pub mod capabilities;
pub mod consumer;
mod convert;
pub mod engine;
mod error;
pub mod offset;
pub mod plugin;
pub mod producer;
pub mod sandbox;
pub mod spec;

pub use bindings::types::{BusError, Event as EventText, Offset, Timestamp};
pub use consumer::{Consumed, Consumer};
pub use engine::{CodeSource, Engine};
pub use error::{Error, Result};
pub use hermes_event::{Category, Event};
pub use plugin::{Plugin, Role, World};
pub use producer::Producer;
pub use sandbox::{AmqpAllow, DirGrant, Grants, RedisAllow};
pub use spec::{ComponentSource, PluginSpec};
