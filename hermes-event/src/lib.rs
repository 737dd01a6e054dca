//! The hermes event and its JSON codec.
//!
//! hermes serializes an event with Python's `json.dumps(attrs, indent=4)` and
//! its own encoder, and a bus stores exactly those bytes. A bus written by
//! hermes-wasm must be readable by hermes and the other way round, so this
//! crate reproduces that output byte for byte ([`Event::to_json`]) and reads
//! it back into typed values ([`Event::from_json`]): datetimes and bytes, which
//! JSON lacks, travel as the strings `HermesDatetime(...)` and
//! `HermesBytes(...)` and come back as [`Value::Datetime`] and [`Value::Bytes`].
//!
//! This is the only codec in hermes-wasm: the guest SDK and the runtime both
//! use it.

mod error;
mod event;
mod head;
mod json;
mod value;

pub use error::CodecError;
pub use event::{Category, Event, EventType};
pub use head::{EventHead, compact_json};
pub use json::python_float_repr;
pub use value::{Integer, Value};
