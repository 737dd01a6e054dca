//! hermes-server's job: poll the datasources, diff against the cache, and
//! send hermes' events through the producer plugin.
//!
//! Each poll fetches every type in datamodel order, maps it, sorts it by
//! primary key, leaves out what fails the integrity constraints, and
//! compares it with the cache by primary key, as hermes does (a key the
//! datasource gives twice is a data error: that object stays as cached).
//! The first poll (and `--initsync`) sends an initsync sequence:
//! `init-start` with the dataschema, one `added` per object, `init-stop`;
//! waiting for an initsync, as hermes does, the first poll only fills the
//! cache. Later polls send base events: every `added` type by
//! type, then every `modified`, then every `removed` in reverse type order,
//! and a `dataschema` event first when the schema changed. The cache takes a
//! change only once its event is stored on the bus, so a failed send leaves
//! the rest for the next poll: nothing is lost. Each batch is written in the
//! journal before it is sent (see `journal`), so a server killed in the
//! middle of a poll sends no event twice either: its next start finds out
//! what the bus took, and a first initsync sequence cut short goes on where
//! it stopped.

pub mod cache;
pub mod config;
mod datasource;
mod diff;
mod jinja;
pub mod journal;
pub mod mapping;
pub mod model;
mod order;
mod pyliteral;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use hermes_event::{Category, Event, EventType, Value};
use indexmap::IndexMap;

use self::cache::ServerCache;
use self::config::ServerConfig;
use self::diff::{Change, Current, cache_form, object_event, sent};
use self::journal::{Batch, Journal, Step};
use self::model::Model;
use crate::Stop;
use hermes_host::{Consumer, Engine, EventText, Offset, Plugin, Producer};

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
    /// Objects of a type the datamodel no longer has, sent as removed.
    pub removed_types: usize,
    /// The data errors met (a primary key twice in the datasource): those
    /// objects were left as clients know them.
    pub data_errors: Vec<String>,
    /// Objects the first poll put in the cache without sending anything,
    /// waiting for an initsync as hermes does.
    pub filled: Option<usize>,
}

impl std::fmt::Display for PollReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(n) = self.filled {
            write!(
                f,
                "cache filled with {n} objects, nothing sent until an initsync; "
            )?;
        }
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
        if self.removed_types > 0 {
            write!(
                f,
                " ({} of types no longer in the datamodel)",
                self.removed_types
            )?;
        }
        if let Some(offset) = &self.last_offset {
            write!(f, "; last offset {}", hermes_host::offset::to_json(offset))?;
        }
        if !self.data_errors.is_empty() {
            write!(f, "; data errors: {}", self.data_errors.join("; "))?;
        }
        Ok(())
    }
}

/// A running server: its model, its producer, its cache.
pub struct Server {
    model: Model,
    plugin: Arc<Plugin>,
    producer: Producer,
    /// The settings that read the bus back, if the plugin has a consumer
    /// role: the producer's, those the consumer takes.
    read_back: Option<serde_json::Value>,
    cache: ServerCache,
    cache_path: PathBuf,
    journal: Journal,
    /// Whether the cache changed since it was last saved.
    unsaved: bool,
    /// Whether the cache must be rebuilt from its file and the journal
    /// before the next poll (a poll failed, and so did its recovery).
    recover_first: bool,
    update_interval: std::time::Duration,
    /// hermes' way: the first poll fills the cache and sends nothing; an
    /// initsync goes out when asked for.
    wait_for_initsync: bool,
}

impl Server {
    /// Reads the configuration, loads and opens the bus, reads the cache.
    pub async fn start(config_path: &Path, engine: &Engine) -> Result<Server> {
        let config = ServerConfig::read(config_path)?;
        let base = crate::config::base_dir(config_path);
        let model = Model::new(&config, &base)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", config_path.display()))?;
        let cache_dir = config.hermes.cache_dir(&base)?;
        let cache_path = ServerCache::path(&cache_dir);
        let cache = ServerCache::load(&cache_path)?;
        let (plugin, spec) = config.hermes.load_bus(engine, &base).await?;
        let mut producer = Producer::create(Arc::clone(&plugin), &spec.settings).await?;
        producer.open().await?;
        let mut server = Server {
            model,
            read_back: plugin.consumer_settings(&spec.settings),
            plugin,
            producer,
            cache,
            cache_path,
            journal: Journal::new(Journal::path(&cache_dir)),
            unsaved: false,
            recover_first: false,
            update_interval: std::time::Duration::from_secs(config.server.update_interval),
            wait_for_initsync: false,
        };
        server.recover().await?;
        Ok(server)
    }

    /// Rebuilds the cache from its file and the journal: every batch the
    /// journal tells of is in the cache, as far as the bus took it; then
    /// saves the cache and empties the journal. Nothing to do after a poll
    /// that ended well.
    async fn recover(&mut self) -> Result<()> {
        let batches = self.journal.read()?;
        if batches.is_empty() {
            return Ok(());
        }
        let mut cache = ServerCache::load(&self.cache_path)?;
        let mut events = 0;
        for batch in batches {
            let (stored, last) = match &batch.sent {
                Some(last) => (batch.steps.len(), Some(last.clone())),
                None => self.read_back(&batch).await?,
            };
            events += stored;
            for step in batch.steps.into_iter().take(stored).flatten() {
                step.apply(&mut cache);
            }
            if last.is_some() {
                cache.lastoffset = last;
            }
        }
        cache.save(&self.cache_path)?;
        self.journal.clear()?;
        self.cache = cache;
        self.unsaved = false;
        tracing::info!(
            "the cache now holds the {events} events an interrupted poll sent (from the journal)"
        );
        Ok(())
    }

    /// How much of a batch sent without an answer the bus holds: the events
    /// read back after the offset before it that are the batch's, in order.
    async fn read_back(&self, batch: &Batch) -> Result<(usize, Option<Offset>)> {
        let Some(settings) = &self.read_back else {
            tracing::warn!(
                "plugin `{}` cannot read the bus back: a batch whose send was cut short \
                 counts as not sent, and is sent again",
                self.plugin.name()
            );
            return Ok((0, None));
        };
        let mut consumer = Consumer::create(Arc::clone(&self.plugin), settings).await?;
        consumer.open().await?;
        consumer.set_timeout(Some(std::time::Duration::ZERO));
        match &batch.after {
            Some(after) => consumer.seek_after(after).await?,
            None => consumer.seek_to_beginning().await?,
        }
        let (mut stored, mut last) = (0, None);
        'read: while stored < batch.digests.len() {
            let events = match consumer
                .next_batch((batch.digests.len() - stored) as u32)
                .await
            {
                // Retention went past: what it removed cannot be told, and
                // counts as not sent.
                Err(e) if e.gap().is_some() => continue,
                events => events?,
            };
            if events.is_empty() {
                break;
            }
            for consumed in events {
                if journal::digest(&consumed.json) != batch.digests[stored] {
                    break 'read;
                }
                stored += 1;
                last = Some(consumed.offset);
            }
        }
        consumer.close().await?;
        Ok((stored, last))
    }

    /// Sends a batch, journaled (see [`send_journaled`]).
    async fn send(&mut self, batch: &[EventText], steps: &[Option<Step>]) -> Result<Vec<Offset>> {
        self.unsaved = true;
        send_journaled(
            &mut self.producer,
            &mut self.journal,
            &mut self.cache.lastoffset,
            batch,
            steps,
        )
        .await
    }

    /// Makes the first poll of a new cache work as hermes' does: it fills
    /// the cache and sends nothing; clients get their initsync sequence
    /// when one is asked for (`poll(true)`), and changes as base events
    /// from the next poll on. By default the first poll sends an initsync
    /// sequence by itself.
    pub fn wait_for_initsync(&mut self, wait: bool) {
        self.wait_for_initsync = wait;
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
        if self.recover_first {
            self.recover().await?;
            self.recover_first = false;
        }
        let (current, held, data_errors) = self.fetch().await?;
        self.report_data_errors(&data_errors);
        let mut report = PollReport {
            data_errors,
            ..PollReport::default()
        };
        let schema = self.model.dataschema();
        if let Err(e) = self
            .send_changes(current, &held, &schema, initsync, &mut report)
            .await
        {
            // What the bus took of the poll is in the journal: the cache
            // is rebuilt from it, now or before the next poll.
            if let Err(not_recovered) = self.recover().await {
                tracing::warn!("{not_recovered:#}; the next poll recovers first");
                self.recover_first = true;
            }
            return Err(e);
        }
        if self.unsaved {
            self.cache.save(&self.cache_path)?;
            self.unsaved = false;
        }
        self.journal.clear()?;
        Ok(report)
    }

    /// The objects of each type as the datasource holds them now, sorted
    /// by key; the keys held as clients know them, because the datasource
    /// gives them twice (hermes' "inconsistencies"); and those data errors.
    async fn fetch(&self) -> Result<(Current, Vec<BTreeSet<String>>, Vec<String>)> {
        let mut current = Vec::with_capacity(self.model.types.len());
        let mut held: Vec<BTreeSet<String>> = Vec::with_capacity(self.model.types.len());
        let mut errors = Vec::new();
        for datatype in &self.model.types {
            let mut objects = IndexMap::new();
            let mut twice: BTreeMap<String, usize> = BTreeMap::new();
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
                if let Some(count) = twice.get_mut(&key) {
                    *count += 1;
                } else if objects.shift_remove(&key).is_some() {
                    twice.insert(key, 2);
                } else {
                    objects.insert(key, (pkey, attrs));
                }
            }
            let cached = self.cache.objects.get(&datatype.name);
            for (key, count) in &twice {
                // As in hermes, the cached object stands in for the fresh
                // ones while integrity constraints are checked.
                let kept = match cached.and_then(|c| c.get(key)) {
                    Some(object) => {
                        objects.insert(key.clone(), (object.pkey.clone(), object.attrs.clone()));
                        "clients keep the object as they know it"
                    }
                    None => "it is left out",
                };
                errors.push(format!(
                    "{}: the primary key {key} appears {count} times in the datasource; {kept}",
                    datatype.name
                ));
            }
            diff::sort(&mut objects);
            current.push(objects);
            held.push(twice.into_keys().collect());
        }
        let left_out = self.model.enforce_integrity(&mut current)?;
        // A held object is not diffed, unless a constraint left it out: then
        // it is gone, as any object left out.
        for (objects, held) in current.iter_mut().zip(held.iter_mut()) {
            held.retain(|key| objects.shift_remove(key).is_some());
        }
        for (datatype, n) in self.model.types.iter().zip(left_out) {
            if n > 0 {
                tracing::debug!(
                    "integrity constraints: {n} objects of {} left out",
                    datatype.name
                );
            }
        }
        Ok((current, held, errors))
    }

    /// Logs the poll's data errors, every poll while there are some, and
    /// tells when they change, as hermes does ("data errors met", "no more
    /// data errors").
    fn report_data_errors(&mut self, errors: &[String]) {
        if !errors.is_empty() {
            tracing::error!("data errors met: {}", errors.join("; "));
        }
        if errors != self.cache.data_errors {
            if errors.is_empty() {
                tracing::info!("no more data errors");
            }
            self.cache.data_errors = errors.to_vec();
            self.unsaved = true;
        }
    }

    async fn send_changes(
        &mut self,
        current: Current,
        held: &[BTreeSet<String>],
        schema: &Value,
        initsync: bool,
        report: &mut PollReport,
    ) -> Result<()> {
        if !self.cache.initsync_done {
            if self.wait_for_initsync && !initsync && !self.cache.initsync_started {
                // hermes' way: the cache is filled, nothing is sent.
                let n = current.iter().map(IndexMap::len).sum();
                tracing::info!(
                    "the cache now holds the datasource's {n} objects; nothing is sent until an initsync is asked for"
                );
                report.filled = Some(n);
            } else {
                // A first run: the initsync sequence is the whole state. One
                // cut short goes on with the objects it did not send yet.
                self.send_initsync(&current, schema, report).await?;
            }
            // The objects move into the cache: the state is never held
            // twice. Those an interrupted sequence sent keep the values it
            // sent: the next poll sends what changed since.
            for (t, objects) in self.model.types.iter().zip(current) {
                let forms = objects
                    .into_iter()
                    .map(|(key, (pkey, attrs))| (key, (t, pkey, attrs)));
                match self.cache.objects.get_mut(&t.name) {
                    // Built in one go, its nodes packed.
                    None => {
                        let cached = forms
                            .map(|(key, (t, pkey, attrs))| (key, cache_form(t, pkey, attrs)))
                            .collect();
                        self.cache.objects.insert(t.name.clone(), cached);
                    }
                    Some(cached) => {
                        for (key, (t, pkey, attrs)) in forms {
                            cached
                                .entry(key)
                                .or_insert_with(|| cache_form(t, pkey, attrs));
                        }
                    }
                }
            }
            self.cache.dataschema = Some(schema.clone());
            self.cache.initsync_done = true;
            self.cache.initsync_started = false;
            self.unsaved = true;
            return Ok(());
        }
        self.send_removed_types(report).await?;
        if self.cache.dataschema.as_ref() != Some(schema) {
            let event = Event::new(
                Category::Base,
                EventType::Dataschema,
                None,
                Value::Null,
                schema.clone(),
            );
            let offsets = self
                .send(
                    &[EventText::render(&event)],
                    &[Some(Step::Dataschema(schema.clone()))],
                )
                .await?;
            report.last_offset = offsets.last().cloned();
            report.dataschema = true;
            self.cache.dataschema = Some(schema.clone());
            self.unsaved = true;
        }
        let (events, silent) = diff::diff(&self.model.types, &self.cache.objects, &current, held);
        for change in silent {
            self.apply(change);
        }
        for chunk in events.chunks(BATCH) {
            let batch: Vec<EventText> = chunk
                .iter()
                .map(|(event, _)| EventText::render(event))
                .collect();
            let steps: Vec<Option<Step>> = chunk
                .iter()
                .map(|(_, change)| Some(self.step(change)))
                .collect();
            let offsets = self.send(&batch, &steps).await?;
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

    /// Tells clients that the objects of the types the datamodel no longer
    /// has are gone, as hermes does: a `removed` event for each, the last
    /// types first, each in key order; the dataschema event follows.
    async fn send_removed_types(&mut self, report: &mut PollReport) -> Result<()> {
        let known: BTreeSet<&str> = self.model.types.iter().map(|t| t.name.as_str()).collect();
        let gone: Vec<String> = self
            .cache
            .objects
            .keys()
            .filter(|name| !known.contains(name.as_str()))
            .cloned()
            .collect();
        for objtype in gone.iter().rev() {
            let mut objects: Vec<(String, Value)> = self.cache.objects[objtype]
                .iter()
                .map(|(key, cached)| (key.clone(), cached.pkey.clone()))
                .collect();
            objects.sort_by(|(_, a), (_, b)| order::compare(a, b));
            tracing::info!(
                "type {objtype} is no longer in the datamodel: its {} objects are sent as removed",
                objects.len()
            );
            for chunk in objects.chunks(BATCH) {
                let batch: Vec<EventText> = chunk
                    .iter()
                    .map(|(_, pkey)| {
                        EventText::render(&Event::new(
                            Category::Base,
                            EventType::Removed,
                            Some(objtype.clone()),
                            pkey.clone(),
                            Value::empty_object(),
                        ))
                    })
                    .collect();
                let steps: Vec<Option<Step>> = chunk
                    .iter()
                    .map(|(key, _)| {
                        Some(Step::Remove {
                            objtype: objtype.clone(),
                            key: key.clone(),
                        })
                    })
                    .collect();
                let offsets = self.send(&batch, &steps).await?;
                report.last_offset = offsets.last().cloned().or(report.last_offset.take());
                report.removed += chunk.len();
                report.removed_types += chunk.len();
                if let Some(cached) = self.cache.objects.get_mut(objtype) {
                    for (key, _) in chunk {
                        cached.remove(key);
                    }
                }
            }
            self.cache.objects.shift_remove(objtype);
            self.unsaved = true;
        }
        Ok(())
    }

    /// What `change` does to the cache, as the journal keeps it.
    fn step(&self, change: &Change) -> Step {
        match change {
            Change::Put(t, key, cached) => Step::Put {
                objtype: self.model.types[*t].name.clone(),
                key: key.clone(),
                cached: cached.clone(),
            },
            Change::Remove(t, key) => Step::Remove {
                objtype: self.model.types[*t].name.clone(),
                key: key.clone(),
            },
        }
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
    /// time: the sequence is never held whole. The first sequence journals
    /// each object as the cache will hold it; one an interrupted run began
    /// goes on after what it sent (its init-start and the objects the cache
    /// now holds).
    async fn send_initsync(
        &mut self,
        current: &Current,
        schema: &Value,
        report: &mut PollReport,
    ) -> Result<()> {
        let first = !self.cache.initsync_done;
        let resume = first && self.cache.initsync_started;
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
        let sent_before = &self.cache.objects;
        let objects = self
            .model
            .types
            .iter()
            .zip(current)
            .flat_map(|(datatype, objects)| {
                let sent_before = sent_before.get(&datatype.name);
                objects
                    .iter()
                    .filter(move |(key, _)| {
                        !resume || !sent_before.is_some_and(|s| s.contains_key(*key))
                    })
                    .map(move |(key, (pkey, attrs))| {
                        let objattrs = Value::Object(sent(datatype, attrs));
                        let event = object_event(
                            Category::Initsync,
                            EventType::Added,
                            datatype,
                            pkey,
                            objattrs,
                        );
                        let step = first.then(|| Step::Put {
                            objtype: datatype.name.clone(),
                            key: key.clone(),
                            cached: cache_form(datatype, pkey.clone(), attrs.clone()),
                        });
                        (event, step)
                    })
            });
        let start = (!resume).then_some((start, Some(Step::InitStart)));
        let mut events = start.into_iter().chain(objects).chain(std::iter::once((
            stop,
            Some(Step::InitStop(schema.clone())),
        )));
        let mut sent_objects = 0;
        loop {
            let (batch, steps): (Vec<EventText>, Vec<Option<Step>>) = events
                .by_ref()
                .take(BATCH)
                .map(|(event, step)| {
                    if event.eventtype == EventType::Added {
                        sent_objects += 1;
                    }
                    (EventText::render(&event), step)
                })
                .unzip();
            if batch.is_empty() {
                break;
            }
            self.unsaved = true;
            let offsets = send_journaled(
                &mut self.producer,
                &mut self.journal,
                &mut self.cache.lastoffset,
                &batch,
                &steps,
            )
            .await?;
            report.last_offset = offsets.last().cloned().or(report.last_offset.take());
        }
        report.initsync = Some(sent_objects);
        Ok(())
    }
}

/// Sends a batch, journaled: its steps are written down before it goes,
/// its last offset once the bus took it whole, and kept as `lastoffset`.
async fn send_journaled(
    producer: &mut Producer,
    journal: &mut Journal,
    lastoffset: &mut Option<Offset>,
    batch: &[EventText],
    steps: &[Option<Step>],
) -> Result<Vec<Offset>> {
    let texts: Vec<&str> = batch.iter().map(|e| e.json.as_str()).collect();
    journal.intend(lastoffset.as_ref(), &texts, steps)?;
    let offsets = producer.send_texts(batch).await?;
    if let Some(last) = offsets.last() {
        journal.sent(last)?;
        *lastoffset = Some(last.clone());
    }
    Ok(offsets)
}
