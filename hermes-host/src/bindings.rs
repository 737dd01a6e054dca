//! The host side of the `hermes:bus` WIT package, generated once. Every other
//! module takes its types from here.
//!
//! Bindings are generated for the `bus` world, which holds every interface;
//! a component of the `producer` or `consumer` world is driven through the
//! exported interfaces it has (see [`crate::plugin`]).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "hermes:bus/bus",
    imports: {
        "hermes:bus/redis": async | trappable,
        "hermes:bus/sqlite": async | trappable,
        "hermes:bus/event-hubs": async | trappable,
    },
    exports: { default: async },
    with: {
        "hermes:bus/redis.connection": crate::capabilities::redis::Connection,
        "hermes:bus/sqlite.database": crate::capabilities::sqlite::Database,
        "hermes:bus/event-hubs.hub": crate::capabilities::event_hubs::Hub,
        "hermes:bus/event-hubs.receiver": crate::capabilities::event_hubs::Receiver,
    },
    trappable_error_type: {
        "hermes:bus/redis.redis-error" => crate::capabilities::redis::RedisFailure,
        "hermes:bus/sqlite.sqlite-error" => crate::capabilities::sqlite::SqliteFailure,
        "hermes:bus/event-hubs.hub-error" => crate::capabilities::event_hubs::HubFailure,
    },
    additional_derives: [PartialEq],
});

pub use exports::hermes::bus::consume;
pub use exports::hermes::bus::plugin;
pub use exports::hermes::bus::produce;
pub use hermes::bus::event_hubs;
pub use hermes::bus::log;
pub use hermes::bus::redis;
pub use hermes::bus::sqlite;
pub use hermes::bus::types;
