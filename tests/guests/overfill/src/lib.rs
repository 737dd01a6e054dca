// The raw bindings define the exported functions with `unsafe` glue.
#![allow(unsafe_code)]

//! A consumer-world plugin written against the raw WIT bindings, as a plugin
//! from another toolchain would be, that breaks the contract on purpose:
//! `next-batch(max)` returns `max + 1` events. Everything else behaves.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "hermes:bus/consumer@0.2.0",
});

use exports::hermes::bus::consume::{Consumer, Guest as ConsumeGuest, GuestConsumer};
use exports::hermes::bus::plugin::{Guest as PluginGuest, Metadata, Role, RoleInfo};
use hermes::bus::types::{BusError, Category, ConsumedEvent, Offset, Timestamp};
use std::cell::Cell;

struct Overfill;

impl PluginGuest for Overfill {
    fn describe() -> Metadata {
        Metadata {
            name: "overfill".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
            roles: vec![RoleInfo {
                role: Role::Consumer,
                settings_schema: r#"{"type": "object"}"#.into(),
            }],
        }
    }
}

impl ConsumeGuest for Overfill {
    type Consumer = OverfillConsumer;
}

struct OverfillConsumer {
    next: Cell<i64>,
}

impl OverfillConsumer {
    fn event(&self) -> ConsumedEvent {
        let offset = self.next.get();
        self.next.set(offset + 1);
        ConsumedEvent {
            offset: Offset::Int(offset),
            timestamp: Timestamp {
                seconds: 1_700_000_000,
                nanoseconds: 0,
            },
            category: Category::Base,
            json: format!(
                r#"{{"evcategory": "base", "eventtype": "added", "objtype": "T", "objpkey": {offset}, "objattrs": {{}}, "step": 0, "isPartiallyProcessed": false}}"#
            ),
        }
    }
}

impl GuestConsumer for OverfillConsumer {
    fn create(_settings: String) -> Result<Consumer, BusError> {
        Ok(Consumer::new(OverfillConsumer { next: Cell::new(0) }))
    }

    fn open(&self) -> Result<(), BusError> {
        Ok(())
    }

    fn close(&self) -> Result<(), BusError> {
        Ok(())
    }

    fn seek_to_beginning(&self) -> Result<(), BusError> {
        self.next.set(0);
        Ok(())
    }

    fn seek(&self, offset: Offset) -> Result<(), BusError> {
        match offset {
            Offset::Int(n) => {
                self.next.set(n);
                Ok(())
            }
            other => Err(BusError::UnknownOffset(format!("{other:?}"))),
        }
    }

    fn seek_after(&self, offset: Offset) -> Result<(), BusError> {
        match offset {
            Offset::Int(n) => {
                self.next.set(n + 1);
                Ok(())
            }
            other => Err(BusError::UnknownOffset(format!("{other:?}"))),
        }
    }

    fn set_timeout(&self, _timeout_ms: Option<u64>) {}

    fn find_next_event_of_category(
        &self,
        _category: Category,
    ) -> Result<Option<ConsumedEvent>, BusError> {
        Ok(Some(self.event()))
    }

    fn next(&self) -> Result<Option<ConsumedEvent>, BusError> {
        Ok(Some(self.event()))
    }

    fn next_batch(&self, max: u32) -> Result<Vec<ConsumedEvent>, BusError> {
        Ok((0..=max).map(|_| self.event()).collect())
    }

    fn skip(&self) -> Result<Option<Offset>, BusError> {
        Ok(Some(self.event().offset))
    }
}

// Native builds (`cargo test --workspace`) have nothing to export to.
#[cfg(target_arch = "wasm32")]
export!(Overfill);
