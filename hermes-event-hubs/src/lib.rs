//! An Azure Event Hubs-compatible endpoint in front of any hermes bus: the
//! Event Hubs SDKs send and receive through it, and a bus plugin stores each
//! partition.
//!
//! `amqp` holds what the endpoint needs of AMQP 1.0 beyond the protocol
//! library: the frames it writes, completed for the SDKs that read them
//! (`complete`), on every connection's stream (`stream`). `endpoint` accepts
//! the SDKs' connections, answers their `$cbs` and `$management` requests
//! and stores the events they send in `partition`s, each kept by a bus
//! plugin; `sas` checks the shared access signatures clients sign with a
//! policy's key; `position` reads where a receiver starts, `cursor` reads a
//! partition from there, and `receivers` decides, by epochs, who receives
//! from a partition. `config` reads `hermes-wasm serve`'s configuration.

pub mod amqp;
pub mod config;
pub mod cursor;
pub mod endpoint;
pub mod partition;
pub mod position;
pub mod receivers;
pub mod sas;
