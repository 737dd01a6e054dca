//! Real servers on free loopback ports, stopped when dropped: what the tests
//! and `hermes-wasm bench` run hermes-wasm's buses against.

pub mod redis;

pub use redis::RedisServer;
