//! hermes' jobs on hermes-wasm plugins.
//!
//! - [`config`]: hermes' YAML configuration, the parts server and client share.
//! - [`server`]: hermes-server's job on a producer plugin.
//! - [`client`]: hermes-client's job on a consumer plugin.

mod atomic_file;
pub mod client;
pub mod config;
pub mod server;
