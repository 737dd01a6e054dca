//! Write a hermes message-bus plugin in Rust, compiled to a WebAssembly
//! component for `wasm32-wasip2`.
//!
//! A plugin is a type implementing [`Producer`], a type implementing
//! [`Consumer`], or both, and one call to [`export!`]. Settings are a serde type
//! with a [`schemars::JsonSchema`] derive: the host validates the operator's
//! settings against that schema before the plugin sees them.
//!
//! ```
//! use std::io::Write;
//!
//! use hermes_guest::{BusError, Event, Offset, Producer};
//!
//! /// Settings: the host checks them against this type's JSON Schema.
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! pub struct Settings {
//!     /// The file to append to, inside a directory granted to the plugin.
//!     file: String,
//! }
//!
//! pub struct JsonLines {
//!     settings: Settings,
//!     out: Option<std::fs::File>,
//!     next: i64,
//! }
//!
//! impl Producer for JsonLines {
//!     type Settings = Settings;
//!
//!     fn new(settings: Settings) -> Result<Self, BusError> {
//!         Ok(JsonLines { settings, out: None, next: 0 })
//!     }
//!
//!     fn open(&mut self) -> Result<(), BusError> {
//!         let file = std::fs::OpenOptions::new().create(true).append(true).open(&self.settings.file);
//!         self.out = Some(file.map_err(|e| BusError::Unavailable(format!("{}: {e}", self.settings.file)))?);
//!         Ok(())
//!     }
//!
//!     fn close(&mut self) -> Result<(), BusError> {
//!         self.out = None;
//!         Ok(())
//!     }
//!
//!     fn send(&mut self, event: Event) -> Result<Offset, BusError> {
//!         let out = self.out.as_mut().ok_or(BusError::NotOpen)?;
//!         // The event's hermes JSON, stored as it is: one JSON document per
//!         // line would need it compacted, so this log separates them with a
//!         // blank line (hermes' JSON never holds one).
//!         write!(out, "{}\n\n", event.json)
//!             .and_then(|()| out.sync_data())
//!             .map_err(|e| BusError::Unavailable(e.to_string()))?;
//!         self.next += 1;
//!         Ok(Offset::Int(self.next - 1))
//!     }
//! }
//!
//! hermes_guest::export!(producer: JsonLines);
//! # fn main() {}
//! ```
//!
//! The same plugin is the README's "plugin in five minutes".
//!
//! An [`Event`] is hermes' own JSON text (`event.json`, exactly what hermes'
//! `Event.to_json()` writes and what every hermes bus stores) with its
//! category beside it; a [`ConsumedEvent`] gives the same text back with the
//! offset and time the bus gave it. A bus moves those bytes and never parses
//! them: the host renders each event once when it sends and parses it once
//! where its fields are needed. A plugin that wants the fields calls
//! [`Event::parse`] (the [`codec`] module, with the `codec` feature, on by
//! default), which uses the host's own codec.

#![deny(missing_docs)]

extern crate self as hermes_guest;

#[cfg(feature = "codec")]
pub mod codec;
mod consumer;
pub mod event_hubs;
#[doc(hidden)]
pub mod glue;
pub mod log;
mod producer;
pub mod redis;
pub mod sqlite;
#[doc(hidden)]
pub mod wit;

pub use consumer::Consumer;
pub use producer::Producer;
pub use wit::imports::hermes::bus::types::{
    BusError, Category, ConsumedEvent, Event, Offset, Timestamp,
};

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// Exports a plugin's roles from this component.
///
/// ```ignore
/// hermes_guest::export!(producer: MyProducer);
/// hermes_guest::export!(consumer: MyConsumer);
/// hermes_guest::export!(producer: MyProducer, consumer: MyConsumer);
/// ```
///
/// The plugin's name, version and description are the crate's (`name`,
/// `version` and `description` in its `Cargo.toml`). Call it once, at the crate
/// root of a `cdylib`. The component always has the `bus` world's shape; a role
/// left out is absent from the metadata and its `create` fails.
#[macro_export]
macro_rules! export {
    (producer: $producer:ty $(,)?) => {
        $crate::__export_bus!($producer, $crate::glue::NoConsumer, [Producer]);
    };
    (consumer: $consumer:ty $(,)?) => {
        $crate::__export_bus!($crate::glue::NoProducer, $consumer, [Consumer]);
    };
    (producer: $producer:ty, consumer: $consumer:ty $(,)?) => {
        $crate::__export_bus!($producer, $consumer, [Producer, Consumer]);
    };
    ($($other:tt)*) => {
        compile_error!(
            "expected `export!(producer: Type)`, `export!(consumer: Type)` \
             or `export!(producer: Type, consumer: Type)`"
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_bus {
    ($producer:ty, $consumer:ty, [$($role:ident),*]) => {
        const _: () = {
            use $crate::wit::bus::exports::hermes::bus::{consume, plugin, produce};
            use $crate::wit::imports::hermes::bus::types as wit;
            use $crate::{BusError, Offset};

            /// The exported plugin.
            pub struct HermesPlugin;

            impl plugin::Guest for HermesPlugin {
                fn describe() -> plugin::Metadata {
                    plugin::Metadata {
                        name: env!("CARGO_PKG_NAME").to_string(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        description: env!("CARGO_PKG_DESCRIPTION").to_string(),
                        roles: vec![$(plugin::RoleInfo {
                            role: plugin::Role::$role,
                            settings_schema: $crate::glue::settings_schema::<$producer, $consumer>(
                                $crate::glue::Role::$role,
                            ),
                        }),*],
                    }
                }
            }

            /// The exported producer resource.
            pub struct HermesProducer($crate::glue::ProducerCell<$producer>);

            impl produce::Guest for HermesPlugin {
                type Producer = HermesProducer;
            }

            impl produce::GuestProducer for HermesProducer {
                fn create(settings: String) -> Result<produce::Producer, BusError> {
                    $crate::glue::ProducerCell::create(&settings)
                        .map(|cell| produce::Producer::new(HermesProducer(cell)))
                }
                fn open(&self) -> Result<(), BusError> {
                    self.0.open()
                }
                fn close(&self) -> Result<(), BusError> {
                    self.0.close()
                }
                fn send(&self, event: wit::Event) -> Result<Offset, BusError> {
                    self.0.send(event)
                }
                fn send_batch(&self, events: Vec<wit::Event>) -> Result<Vec<Offset>, BusError> {
                    self.0.send_batch(events)
                }
            }

            /// The exported consumer resource.
            pub struct HermesConsumer($crate::glue::ConsumerCell<$consumer>);

            impl consume::Guest for HermesPlugin {
                type Consumer = HermesConsumer;
            }

            impl consume::GuestConsumer for HermesConsumer {
                fn create(settings: String) -> Result<consume::Consumer, BusError> {
                    $crate::glue::ConsumerCell::create(&settings)
                        .map(|cell| consume::Consumer::new(HermesConsumer(cell)))
                }
                fn open(&self) -> Result<(), BusError> {
                    self.0.open()
                }
                fn close(&self) -> Result<(), BusError> {
                    self.0.close()
                }
                fn seek_to_beginning(&self) -> Result<(), BusError> {
                    self.0.seek_to_beginning()
                }
                fn seek(&self, offset: Offset) -> Result<(), BusError> {
                    self.0.seek(offset)
                }
                fn seek_after(&self, offset: Offset) -> Result<(), BusError> {
                    self.0.seek_after(offset)
                }
                fn set_timeout(&self, timeout_ms: Option<u64>) {
                    self.0.set_timeout(timeout_ms)
                }
                fn find_next_event_of_category(
                    &self,
                    category: wit::Category,
                ) -> Result<Option<wit::ConsumedEvent>, BusError> {
                    self.0.find_next_event_of_category(category)
                }
                fn next(&self) -> Result<Option<wit::ConsumedEvent>, BusError> {
                    self.0.next()
                }
                fn next_batch(&self, max: u32) -> Result<Vec<wit::ConsumedEvent>, BusError> {
                    self.0.next_batch(max)
                }
                fn skip(&self) -> Result<Option<Offset>, BusError> {
                    self.0.skip()
                }
            }

            // Native builds (a plugin's unit tests) have nothing to export to.
            #[cfg(target_arch = "wasm32")]
            $crate::wit::bus::__export_bus_world!(HermesPlugin with_types_in $crate::wit::bus);
        };
    };
}
