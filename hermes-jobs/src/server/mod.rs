//! hermes-server's job: poll the datasources, diff against the cache, and
//! send hermes' events through the producer plugin.
//!
//! Each poll fetches every type in datamodel order, maps it, and compares it
//! with the cache by primary key. The first poll (and `--initsync`) sends an
//! initsync sequence: `init-start` with the dataschema, one `added` per
//! object, `init-stop`. Later polls send base events: every `added` type by
//! type, then every `modified`, then every `removed` in reverse type order,
//! and a `dataschema` event first when the schema changed. The cache takes a
//! change only once its event is stored on the bus, so a failed send leaves
//! the rest for the next poll: nothing is lost.

pub mod cache;
pub mod config;
mod datasource;
mod diff;
pub mod mapping;
pub mod model;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use hermes_event::{Category, Event, EventType, Value};
use indexmap::IndexMap;

use self::cache::ServerCache;
use self::config::ServerConfig;
use self::diff::{Change, Current, cache_form, object_event, sent};
use self::model::Model;
use crate::Stop;
use hermes_host::{Engine, EventText, Offset, Producer};

/// Events sent in one `send-batch`.
const BATCH: usize = 100;

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollReport {
    /// Objects in the initsync sequence sent, if one was.
    pub initsync: Option<usize>,
    /// Whether a base dataschema event was sent.
    pub dataschema: bool,
    /// Base events sent.
    pub added: usize,
    /// Base events sent.
    pub modified: usize,
    /// Base events sent.
    pub removed: usize,
    /// The offset of the last event sent.
    pub last_offset: Option<Offset>,
}

impl std::fmt::Display for PollReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(n) = self.initsync {
            write!(f, "initsync of {n} objects sent; ")?;
        }
        if self.dataschema {
            write!(f, "dataschema sent; ")?;
        }
        write!(
            f,
            "{} added, {} modified, {} removed",
            self.added, self.modified, self.removed
        )?;
        if let Some(offset) = &self.last_offset {
            write!(f, "; last offset {}", hermes_host::offset::to_json(offset))?;
        }
        Ok(())
    }
}

/// A running server: its model, its producer, its cache.
pub struct Server {
    model: Model,
    producer: Producer,
    cache: ServerCache,
    cache_path: PathBuf,
    /// Whether the cache changed since it was last saved.
    unsaved: bool,
    update_interval: std::time::Duration,
}

impl Server {
    /// Reads the configuration, loads and opens the bus, reads the cache.
    pub async fn start(config_path: &Path, engine: &Engine) -> Result<Server> {
        let config = ServerConfig::read(config_path)?;
        let base = crate::config::base_dir(config_path);
        let model = Model::new(&config, &base)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", config_path.display()))?;
        let cache_path = ServerCache::path(&config.hermes.cache_dir(&base)?);
        let cache = ServerCache::load(&cache_path)?;
        let names: Vec<&str> = model.types.iter().map(|t| t.name.as_str()).collect();
        cache::check_types(&cache, &names)?;
        let (plugin, spec) = config.hermes.load_bus(engine, &base).await?;
        let mut producer = Producer::create(Arc::clone(&plugin), &spec.settings).await?;
        producer.open().await?;
        Ok(Server {
            model,
            producer,
            cache,
            cache_path,
            unsaved: false,
            update_interval: std::time::Duration::from_secs(config.server.update_interval),
        })
    }

    /// Seconds between two polls, from the configuration.
    pub fn update_interval(&self) -> std::time::Duration {
        self.update_interval
    }

    /// Closes the bus.
    pub async fn stop(mut self) -> Result<()> {
        self.producer.close().await?;
        Ok(())
    }

    /// Polls until `stop` is set, every [`Server::update_interval`]; with
    /// `once`, one poll. `initsync` asks the first poll for an initsync
    /// sequence after its changes. Each poll's report goes to `reported`.
    ///
    /// Running on, a failed poll is logged and the next one sends what it
    /// left; with `once`, it is the run's error.
    pub async fn run(
        &mut self,
        once: bool,
        initsync: bool,
        stop: &Stop,
        mut reported: impl FnMut(&PollReport) -> Result<()>,
    ) -> Result<()> {
        let mut initsync = initsync;
        loop {
            match self.poll(initsync).await {
                Ok(report) => {
                    reported(&report)?;
                    initsync = false;
                }
                Err(e) if !once => {
                    tracing::error!("poll failed, the next poll sends what is left: {e:#}")
                }
                Err(e) => return Err(e),
            }
            if once || !stop.sleep(self.update_interval).await {
                return Ok(());
            }
        }
    }

    /// One poll; with `initsync`, an initsync sequence follows the changes.
    pub async fn poll(&mut self, initsync: bool) -> Result<PollReport> {
        let current = self.fetch().await?;
        let mut report = PollReport::default();
        let schema = self.model.dataschema();
        let outcome = self
            .send_changes(current, &schema, initsync, &mut report)
            .await;
        if self.unsaved {
            self.cache.save(&self.cache_path)?;
            self.unsaved = false;
        }
        outcome.map(|()| report)
    }

    async fn fetch(&self) -> Result<Current> {
        let mut current = Vec::with_capacity(self.model.types.len());
        for datatype in &self.model.types {
            let mut objects = IndexMap::new();
            for attrs in datatype
                .fetch()
                .await
                .with_context(|| datatype.name.clone())?
            {
                let pkey = datatype.key_of(&attrs)?;
                if pkey == Value::Null
                    || matches!(&pkey, Value::List(parts) if parts.contains(&Value::Null))
                {
                    anyhow::bail!("{}: an object has a null primary key", datatype.name);
                }
                let key = pkey.to_json_compact();
                if objects.insert(key.clone(), (pkey, attrs)).is_some() {
                    anyhow::bail!(
                        "{}: the primary key {key} appears twice in the data",
                        datatype.name
                    );
                }
            }
            current.push(objects);
        }
        Ok(current)
    }

    async fn send_changes(
        &mut self,
        current: Current,
        schema: &Value,
        initsync: bool,
        report: &mut PollReport,
    ) -> Result<()> {
        if !self.cache.initsync_done {
            // A first run: the initsync sequence is the whole state.
            self.send_initsync(&current, schema, report).await?;
            // The objects move into the cache: the state is never held twice.
            self.cache.objects = self
                .model
                .types
                .iter()
                .zip(current)
                .map(|(t, objects)| {
                    let cached = objects
                        .into_iter()
                        .map(|(key, (pkey, attrs))| (key, cache_form(t, pkey, attrs)))
                        .collect();
                    (t.name.clone(), cached)
                })
                .collect();
            self.cache.dataschema = Some(schema.clone());
            self.cache.initsync_done = true;
            self.unsaved = true;
            return Ok(());
        }
        if self.cache.dataschema.as_ref() != Some(schema) {
            let event = Event::new(
                Category::Base,
                EventType::Dataschema,
                None,
                Value::Null,
                schema.clone(),
            );
            report.last_offset = Some(self.producer.send(&event).await?);
            report.dataschema = true;
            self.cache.dataschema = Some(schema.clone());
            self.unsaved = true;
        }
        let (events, silent) = diff::diff(&self.model.types, &self.cache.objects, &current);
        for change in silent {
            self.apply(change);
        }
        for chunk in events.chunks(BATCH) {
            let batch: Vec<EventText> = chunk
                .iter()
                .map(|(event, _)| EventText::render(event))
                .collect();
            let offsets = self.producer.send_texts(&batch).await?;
            report.last_offset = offsets.last().cloned().or(report.last_offset.take());
            for (event, change) in chunk {
                match event.eventtype {
                    EventType::Added => report.added += 1,
                    EventType::Modified => report.modified += 1,
                    _ => report.removed += 1,
                }
                self.apply(change.clone());
            }
        }
        if initsync {
            self.send_initsync(&current, schema, report).await?;
        }
        Ok(())
    }

    fn apply(&mut self, change: Change) {
        self.unsaved = true;
        match change {
            Change::Put(t, key, cached) => {
                let name = &self.model.types[t].name;
                self.cache
                    .objects
                    .entry(name.clone())
                    .or_default()
                    .insert(key, cached);
            }
            Change::Remove(t, key) => {
                let name = &self.model.types[t].name;
                if let Some(objects) = self.cache.objects.get_mut(name) {
                    objects.remove(&key);
                }
            }
        }
    }

    /// Sends the initsync sequence of `current`, rendering one batch at a
    /// time: the sequence is never held whole.
    async fn send_initsync(
        &mut self,
        current: &Current,
        schema: &Value,
        report: &mut PollReport,
    ) -> Result<()> {
        let start = Event::new(
            Category::Initsync,
            EventType::InitStart,
            None,
            Value::Null,
            schema.clone(),
        );
        let stop = Event::new(
            Category::Initsync,
            EventType::InitStop,
            None,
            Value::Null,
            Value::empty_object(),
        );
        let objects = self
            .model
            .types
            .iter()
            .zip(current)
            .flat_map(|(datatype, objects)| {
                objects.values().map(move |(pkey, attrs)| {
                    let objattrs = Value::Object(sent(datatype, attrs));
                    object_event(
                        Category::Initsync,
                        EventType::Added,
                        datatype,
                        pkey,
                        objattrs,
                    )
                })
            });
        let mut events = std::iter::once(start)
            .chain(objects)
            .chain(std::iter::once(stop));
        let mut sent_events = 0;
        loop {
            let batch: Vec<EventText> = events
                .by_ref()
                .take(BATCH)
                .map(|event| EventText::render(&event))
                .collect();
            if batch.is_empty() {
                break;
            }
            sent_events += batch.len();
            let offsets = self.producer.send_texts(&batch).await?;
            report.last_offset = offsets.last().cloned().or(report.last_offset.take());
        }
        report.initsync = Some(sent_events - 2);
        Ok(())
    }
}
