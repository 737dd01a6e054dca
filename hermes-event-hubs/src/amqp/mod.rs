//! AMQP 1.0 as the Event Hubs SDKs speak it.

pub mod complete;
