//! AMQP 1.0 as the Event Hubs SDKs speak it: what the endpoint needs
//! beyond its AMQP library.

pub mod complete;
pub mod stream;
