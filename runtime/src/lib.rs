//! hermes-wasm's host: loads hermes message-bus plugins compiled to
//! WebAssembly components, sandboxes them, and drives them.
//!
//! - [`engine`]: the wasmtime engine, the epoch clock behind call deadlines,
//!   and the on-disk cache of compiled components.
//! - [`sandbox`]: what the operator grants a plugin and how it is enforced.
//! - [`host`]: the capabilities a plugin may import.
//! - [`plugin`]: a loaded plugin: its world, its metadata, settings validation.
//! - [`producer`] and [`consumer`]: handles that call a plugin's exports, each
//!   call under a deadline, recovering a fresh instance after a trap.
//! - [`config`]: hermes' YAML configuration, the parts server and client share.
//! - [`server`]: hermes-server's job on a producer plugin.
//! - [`client`]: hermes-client's job on a consumer plugin.
//! - [`redis_server`]: a local redis-server, for the tests and the bench.

mod atomic_file;
pub mod bindings;
mod cache;
pub mod client;
pub mod config;
pub mod consumer;
mod convert;
pub mod engine;
mod error;
pub mod host;
pub mod offset;
pub mod plugin;
pub mod producer;
pub mod redis_server;
pub mod sandbox;
pub mod server;
pub mod settings;

pub use bindings::types::{BusError, Event as EventText, Offset, Timestamp};
pub use consumer::{Consumed, Consumer};
pub use engine::{CodeSource, Engine};
pub use error::{Error, Result};
pub use hermes_event::{Category, Event};
pub use plugin::{Plugin, Role, World};
pub use producer::Producer;
pub use sandbox::{DirGrant, Grants, RedisAllow};

/// The file-log plugin, built from `guests/file-log` with this binary: the
/// default bus.
pub const FILE_LOG_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/file_log.wasm"));

/// The plugins built from `guests/` with this binary, by name.
pub const BUILT_IN_PLUGINS: &[(&str, &[u8])] = &[
    ("file-log", FILE_LOG_WASM),
    (
        "sqlite",
        include_bytes!(concat!(env!("OUT_DIR"), "/sqlite.wasm")),
    ),
    (
        "redis-streams",
        include_bytes!(concat!(env!("OUT_DIR"), "/redis_streams.wasm")),
    ),
];

#[cfg(test)]
mod tests {
    use super::BUILT_IN_PLUGINS;

    /// A bus moves an event's text and never parses it, so the codec is not
    /// linked into any built-in bus: its functions would show in the
    /// component's name section.
    #[test]
    fn no_built_in_bus_links_the_codec() {
        for (name, bytes) in BUILT_IN_PLUGINS {
            let codec = b"hermes_event";
            assert!(
                !bytes.windows(codec.len()).any(|w| w == codec),
                "the built-in {name} links hermes_event"
            );
            // The check can see names: the SDK's are there.
            let sdk = b"hermes_guest";
            assert!(
                bytes.windows(sdk.len()).any(|w| w == sdk),
                "{name} has no name section"
            );
        }
    }
}
