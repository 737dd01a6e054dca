//! hermes' jobs on hermes-wasm plugins.
//!
//! - [`config`]: hermes' YAML configuration, the parts server and client share.
//! - [`server`]: hermes-server's job on a producer plugin.
//! - [`client`]: hermes-client's job on a consumer plugin.
//! - [`stop`]: how a running server or client is asked to stop.

mod atomic_file;
pub mod client;
pub mod config;
mod lines;
pub mod server;
pub mod stop;

pub use stop::Stop;
