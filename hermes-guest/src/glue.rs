//! What the [`export!`](crate::export) macro calls: settings parsing, the open
//! state and the waiting logic, written once for every plugin.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::wit::imports::hermes::bus::types as wit;
use crate::{BusError, ConsumedEvent, Consumer, Offset, Producer};

/// A role, to pick the settings schema.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// The producer role.
    Producer,
    /// The consumer role.
    Consumer,
}

/// The JSON Schema of one role's settings, as JSON text.
pub fn settings_schema<P: Producer, C: Consumer>(role: Role) -> String {
    let schema = match role {
        Role::Producer => schemars::schema_for!(P::Settings),
        Role::Consumer => schemars::schema_for!(C::Settings),
    };
    schema.as_value().to_string()
}

const NO_PRODUCER: &str = "this plugin provides no producer role";
const NO_CONSUMER: &str = "this plugin provides no consumer role";

/// Stands for the producer of a plugin that has none: it cannot be built.
pub enum NoProducer {}

impl Producer for NoProducer {
    type Settings = serde_json::Value;
    fn new(_: Self::Settings) -> Result<Self, BusError> {
        Err(BusError::Other(NO_PRODUCER.into()))
    }
    fn open(&mut self) -> Result<(), BusError> {
        match *self {}
    }
    fn close(&mut self) -> Result<(), BusError> {
        match *self {}
    }
    fn send(&mut self, _: crate::Event) -> Result<Offset, BusError> {
        match *self {}
    }
}

/// Stands for the consumer of a plugin that has none: it cannot be built.
pub enum NoConsumer {}

impl Consumer for NoConsumer {
    type Settings = serde_json::Value;
    fn new(_: Self::Settings) -> Result<Self, BusError> {
        Err(BusError::Other(NO_CONSUMER.into()))
    }
    fn open(&mut self) -> Result<(), BusError> {
        match *self {}
    }
    fn close(&mut self) -> Result<(), BusError> {
        match *self {}
    }
    fn seek_to_beginning(&mut self) -> Result<(), BusError> {
        match *self {}
    }
    fn seek(&mut self, _: &Offset) -> Result<(), BusError> {
        match *self {}
    }
    fn seek_after(&mut self, _: &Offset) -> Result<(), BusError> {
        match *self {}
    }
    fn read(&mut self) -> Result<Option<ConsumedEvent>, BusError> {
        match *self {}
    }
}

fn parse_settings<S: DeserializeOwned>(settings: &str) -> Result<S, BusError> {
    serde_json::from_str(settings).map_err(|e| BusError::InvalidSettings(e.to_string()))
}

/// A plugin's value and whether it is open: every call but `open` needs it
/// open, and opening or closing twice does nothing.
struct Gate<T> {
    inner: RefCell<T>,
    open: Cell<bool>,
}

impl<T> Gate<T> {
    fn new(inner: T) -> Self {
        Gate {
            inner: RefCell::new(inner),
            open: Cell::new(false),
        }
    }

    fn opened(&self) -> Result<std::cell::RefMut<'_, T>, BusError> {
        if self.open.get() {
            Ok(self.inner.borrow_mut())
        } else {
            Err(BusError::NotOpen)
        }
    }

    fn open(&self, open: impl FnOnce(&mut T) -> Result<(), BusError>) -> Result<(), BusError> {
        if !self.open.get() {
            open(&mut self.inner.borrow_mut())?;
            self.open.set(true);
        }
        Ok(())
    }

    fn close(&self, close: impl FnOnce(&mut T) -> Result<(), BusError>) -> Result<(), BusError> {
        if self.open.replace(false) {
            close(&mut self.inner.borrow_mut())?;
        }
        Ok(())
    }
}

/// A producer behind its gate.
pub struct ProducerCell<P> {
    gate: Gate<P>,
}

impl<P: Producer> ProducerCell<P> {
    /// Parses the settings and builds the producer.
    pub fn create(settings: &str) -> Result<Self, BusError> {
        Ok(ProducerCell {
            gate: Gate::new(P::new(parse_settings(settings)?)?),
        })
    }

    /// See [`Producer::open`].
    pub fn open(&self) -> Result<(), BusError> {
        self.gate.open(P::open)
    }

    /// See [`Producer::close`].
    pub fn close(&self) -> Result<(), BusError> {
        self.gate.close(P::close)
    }

    /// See [`Producer::send`].
    pub fn send(&self, event: wit::Event) -> Result<Offset, BusError> {
        self.gate.opened()?.send(event)
    }

    /// See [`Producer::send_batch`].
    pub fn send_batch(&self, events: Vec<wit::Event>) -> Result<Vec<Offset>, BusError> {
        self.gate.opened()?.send_batch(events)
    }
}

/// A consumer behind its gate, its timeout, and the failure a batch met
/// after some events: those are delivered first, the failure on the next
/// call (unless a seek moves the consumer elsewhere).
pub struct ConsumerCell<C> {
    gate: Gate<C>,
    timeout: Cell<Option<Duration>>,
    failed: RefCell<Option<BusError>>,
}

impl<C: Consumer> ConsumerCell<C> {
    /// Parses the settings and builds the consumer.
    pub fn create(settings: &str) -> Result<Self, BusError> {
        Ok(ConsumerCell {
            gate: Gate::new(C::new(parse_settings(settings)?)?),
            timeout: Cell::new(None),
            failed: RefCell::new(None),
        })
    }

    /// See [`Consumer::open`].
    pub fn open(&self) -> Result<(), BusError> {
        self.gate.open(C::open)
    }

    /// See [`Consumer::close`].
    pub fn close(&self) -> Result<(), BusError> {
        self.gate.close(C::close)
    }

    /// See [`Consumer::seek_to_beginning`].
    pub fn seek_to_beginning(&self) -> Result<(), BusError> {
        self.gate.opened()?.seek_to_beginning()?;
        self.failed.take();
        Ok(())
    }

    /// See [`Consumer::seek`].
    pub fn seek(&self, offset: Offset) -> Result<(), BusError> {
        self.gate.opened()?.seek(&offset)?;
        self.failed.take();
        Ok(())
    }

    /// See [`Consumer::seek_after`].
    pub fn seek_after(&self, offset: Offset) -> Result<(), BusError> {
        self.gate.opened()?.seek_after(&offset)?;
        self.failed.take();
        Ok(())
    }

    /// Sets how long reading waits once the bus is drained.
    pub fn set_timeout(&self, timeout_ms: Option<u64>) {
        self.timeout.set(timeout_ms.map(Duration::from_millis));
    }

    /// The next event, waiting up to the timeout once the bus is drained.
    fn next_waiting(&self, consumer: &mut C) -> Result<Option<ConsumedEvent>, BusError> {
        if let Some(failed) = self.failed.take() {
            return Err(failed);
        }
        let deadline = self.timeout.get().map(|t| Instant::now() + t);
        loop {
            if let Some(event) = consumer.read()? {
                return Ok(Some(event));
            }
            let remaining = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if remaining.is_zero() {
                return Ok(None);
            }
            consumer.wait(remaining)?;
        }
    }

    /// See the WIT `next`.
    pub fn next(&self) -> Result<Option<wit::ConsumedEvent>, BusError> {
        let mut consumer = self.gate.opened()?;
        self.next_waiting(&mut consumer)
    }

    /// See the WIT `next-batch`: waits for the first event only.
    pub fn next_batch(&self, max: u32) -> Result<Vec<wit::ConsumedEvent>, BusError> {
        let mut consumer = self.gate.opened()?;
        let mut batch = Vec::new();
        if max == 0 {
            return Ok(batch);
        }
        if let Some(first) = self.next_waiting(&mut consumer)? {
            batch.push(first);
            while batch.len() < max as usize {
                match consumer.read() {
                    Ok(Some(event)) => batch.push(event),
                    Ok(None) => break,
                    // Every event before a failure is delivered: the
                    // failure waits for the next call, with nothing before
                    // it (a damaged record behind good ones, say).
                    Err(failed) => {
                        *self.failed.borrow_mut() = Some(failed);
                        break;
                    }
                }
            }
        }
        Ok(batch)
    }

    /// See [`Consumer::skip`]: a failure a batch met comes first, since
    /// damage is never stepped over.
    pub fn skip(&self) -> Result<Option<Offset>, BusError> {
        let mut consumer = self.gate.opened()?;
        if let Some(failed) = self.failed.take() {
            return Err(failed);
        }
        consumer.skip()
    }

    /// See the WIT `find-next-event-of-category`.
    pub fn find_next_event_of_category(
        &self,
        category: wit::Category,
    ) -> Result<Option<wit::ConsumedEvent>, BusError> {
        let mut consumer = self.gate.opened()?;
        while let Some(event) = self.next_waiting(&mut consumer)? {
            if event.category == category {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }
}
