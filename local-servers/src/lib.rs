//! Real servers on free loopback ports, stopped when dropped: what the tests
//! and `hermes-wasm bench` run hermes-wasm's buses against.

pub mod azurite;
pub mod redis;

pub use azurite::AzuriteBlob;
pub use redis::RedisServer;
