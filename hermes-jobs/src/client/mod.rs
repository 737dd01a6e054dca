//! hermes-client's job: read the bus through a consumer plugin, apply each
//! event to a target, remember where it stopped.
//!
//! A new client looks for a complete initsync sequence on the bus (the first
//! or the last, by `useFirstInitsyncSequence`), applies its `added` events,
//! then every base event after it in bus order; events of the other category
//! are stepped over, `dataschema` events update the schema. A failed event
//! goes to the error queue, retried every `errorQueue_retryInterval` minutes;
//! later events of the same object wait behind it, so an object's events are
//! applied in order.
//!
//! Events are read in batches of up to [`BATCH`]. Once [`SAVE_EVENTS`]
//! events or [`SAVE_INTERVAL`] have gone by since the last save, and
//! whenever the bus is drained, the run stops or fails, the target is made
//! durable, then the cache is saved; the client resumes right after the last
//! event it processed: after a clean stop, no event is skipped and none is
//! applied twice; after a crash, at most the events processed since the last
//! save are applied again.

pub mod config;
pub mod state;
pub mod target;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hermes_event::{Category, EventHead, EventType};

use self::config::ClientConfig;
use self::state::{ClientState, Queued, object_key};
use self::target::{Applied, Target};
use hermes_host::bindings::types::Category as WitCategory;
use hermes_host::{Consumed, Consumer, Engine, Offset};

/// How long one wait for new events lasts: the longest a stop request waits.
const WAIT: Duration = Duration::from_millis(500);

/// The most events read and applied as one step.
pub const BATCH: u32 = 256;

/// The most events processed between two saves while the bus keeps them
/// coming: each save syncs the target and writes the cache atomically, a few
/// fsyncs, which would otherwise bound the client's rate.
pub const SAVE_EVENTS: usize = 4096;

/// The most time between two saves while events keep coming: what a crash
/// may make a slow target apply again.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// The first pause before trying an unavailable bus again.
const FIRST_PAUSE: Duration = Duration::from_secs(1);

/// The longest pause between two tries of an unavailable bus.
pub const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Whether the run goes on after a step.
enum Step {
    Continue,
    Done,
}

/// Says why the bus is being waited for, then waits `pause` (less if `stop`
/// is set meanwhile) and doubles it for the next time.
async fn wait_for_the_bus(error: &anyhow::Error, pause: &mut Duration, stop: &AtomicBool) {
    tracing::warn!("{error:#}; trying again in {} s", pause.as_secs());
    let until = Instant::now() + *pause;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(WAIT.min(until - Instant::now())).await;
    }
    *pause = (*pause * 2).min(MAX_PAUSE);
}

/// Whether `error` is worth trying again later (the bus is unavailable), as
/// the host library tells it.
fn bus_unavailable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<hermes_host::Error>()
            .is_some_and(hermes_host::Error::is_retryable)
    })
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// Events applied to the target (initsync included).
    pub applied: usize,
    /// Events that went to the error queue.
    pub queued: usize,
    /// Queued events applied on a retry.
    pub retried: usize,
    /// Whether the initsync sequence was finished in this run.
    pub initialized: bool,
}

impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events applied, {} to the error queue, {} applied from it",
            self.applied, self.queued, self.retried
        )?;
        if self.initialized {
            write!(f, "; initsync done")?;
        }
        Ok(())
    }
}

/// A running client.
pub struct Client {
    consumer: Consumer,
    target: Target,
    state: ClientState,
    state_path: PathBuf,
    use_first: bool,
    retry_interval: Duration,
    last_retry: Option<Instant>,
    positioned: bool,
    /// Events processed since the cache was last saved, and when that was.
    unsaved: usize,
    saved_at: Instant,
}

impl Client {
    /// Reads the configuration and the cache, loads and opens the bus.
    pub async fn start(config_path: &Path, engine: &Engine) -> Result<Client> {
        let config = ClientConfig::read(config_path)?;
        let base = crate::config::base_dir(config_path);
        let state_path = ClientState::path(&config.hermes.cache_dir(&base)?);
        let state = ClientState::load(&state_path)?;
        let target = Target::open(&config.client.target, &base)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", config_path.display()))?;
        let (plugin, spec) = config.hermes.load_bus(engine, &base).await?;
        let mut consumer = Consumer::create(Arc::clone(&plugin), &spec.settings).await?;
        consumer.open().await?;
        Ok(Client {
            consumer,
            target,
            state,
            state_path,
            use_first: config.client.use_first_initsync_sequence,
            retry_interval: Duration::from_secs_f64(
                config.client.error_queue_retry_interval * 60.0,
            ),
            last_retry: None,
            positioned: false,
            unsaved: 0,
            saved_at: Instant::now(),
        })
    }

    /// Like [`Client::start`], but a bus that is unavailable is waited for,
    /// with the same pauses as [`Client::run`]; none if `stop` is set first.
    pub async fn start_when_available(
        config_path: &Path,
        engine: &Engine,
        stop: &AtomicBool,
    ) -> Result<Option<Client>> {
        let mut pause = FIRST_PAUSE;
        while !stop.load(Ordering::SeqCst) {
            match Client::start(config_path, engine).await {
                Ok(client) => return Ok(Some(client)),
                Err(e) if bus_unavailable(&e) => wait_for_the_bus(&e, &mut pause, stop).await,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The cache as it stands.
    pub fn state(&self) -> &ClientState {
        &self.state
    }

    /// Processes events until `stop` is set, or, with `once`, until the bus
    /// is drained. The event in hand is always finished and the cache saved.
    ///
    /// Running on (without `once`), a bus that is unavailable is waited for:
    /// the client tries again after a pause that doubles up to
    /// [`MAX_PAUSE`], and carries on where it was once the bus answers. Any
    /// other error ends the run.
    pub async fn run(&mut self, once: bool, stop: &AtomicBool) -> Result<RunReport> {
        // Run once, a drained bus ends the run at once; otherwise the wait is
        // short enough for a stop request to be heard promptly.
        self.consumer
            .set_timeout(Some(if once { Duration::ZERO } else { WAIT }));
        let mut report = RunReport::default();
        let mut pause = FIRST_PAUSE;
        while !stop.load(Ordering::SeqCst) {
            match self.step(once, stop, &mut report).await {
                Ok(Step::Continue) => pause = FIRST_PAUSE,
                Ok(Step::Done) => break,
                Err(e) if !once && bus_unavailable(&e) => {
                    self.positioned = false;
                    wait_for_the_bus(&e, &mut pause, stop).await;
                }
                Err(e) => {
                    // What was applied is recorded before the run ends.
                    if let Err(not_saved) = self.save().await {
                        tracing::error!("{not_saved:#}");
                    }
                    return Err(e);
                }
            }
        }
        self.save().await?;
        Ok(report)
    }

    /// Reads one batch and applies it.
    async fn step(
        &mut self,
        once: bool,
        stop: &AtomicBool,
        report: &mut RunReport,
    ) -> Result<Step> {
        if !self.state.initialized
            && self.state.initstartoffset.is_none()
            && !self.find_initsync().await?
        {
            if once {
                tracing::info!("no complete initsync sequence on the bus yet");
                return Ok(Step::Done);
            }
            tokio::time::sleep(WAIT).await;
            return Ok(Step::Continue);
        }
        self.retry_if_due(report).await?;
        self.position().await?;
        let batch = self.consumer.next_batch(BATCH).await?;
        if batch.is_empty() {
            return Ok(if once { Step::Done } else { Step::Continue });
        }
        let drained = batch.len() < BATCH as usize;
        for consumed in batch {
            if stop.load(Ordering::SeqCst) {
                // The rest of the batch is read again on the next run.
                self.positioned = false;
                break;
            }
            self.process(consumed, report).await?;
            self.unsaved += 1;
        }
        if drained
            || self.unsaved >= SAVE_EVENTS
            || self.saved_at.elapsed() >= SAVE_INTERVAL
            || stop.load(Ordering::SeqCst)
        {
            self.save().await?;
        }
        Ok(Step::Continue)
    }

    /// Closes the bus.
    pub async fn stop(mut self) -> Result<()> {
        self.save().await?;
        self.consumer.close().await?;
        Ok(())
    }

    /// Makes what the target applied durable, then records it in the cache:
    /// the cache never claims an event the target could still lose.
    async fn save(&mut self) -> Result<()> {
        self.target.sync().await?;
        self.state.save(&self.state_path)?;
        self.unsaved = 0;
        self.saved_at = Instant::now();
        Ok(())
    }

    /// Scans the bus for a complete init-start ... init-stop pair.
    async fn find_initsync(&mut self) -> Result<bool> {
        self.consumer.seek_to_beginning().await?;
        self.positioned = false;
        let mut start: Option<Offset> = None;
        let mut found: Option<(Offset, Offset)> = None;
        'scan: loop {
            let batch = self.consumer.next_batch(BATCH).await?;
            if batch.is_empty() {
                break;
            }
            for consumed in batch {
                if consumed.category != WitCategory::Initsync {
                    continue;
                }
                // Only the eventtype is needed: the events are read whole
                // when they are applied.
                match self.consumer.parse_head(&consumed)?.eventtype {
                    EventType::InitStart => start = Some(consumed.offset),
                    EventType::InitStop => {
                        if let Some(start) = start.take() {
                            found = Some((start, consumed.offset));
                            if self.use_first {
                                break 'scan;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let Some((start, stop)) = found else {
            return Ok(false);
        };
        tracing::info!(
            "initsync sequence found from offset {} to {}",
            hermes_host::offset::to_json(&start),
            hermes_host::offset::to_json(&stop)
        );
        self.state.initstartoffset = Some(start);
        self.state.initstopoffset = Some(stop);
        self.state.lastoffset = None;
        self.state.initialized = false;
        self.save().await?;
        Ok(true)
    }

    /// Seeks where processing resumes, once per run.
    async fn position(&mut self) -> Result<()> {
        if self.positioned {
            return Ok(());
        }
        let gone = |offset: &Offset| {
            format!(
                "the bus no longer holds offset {} where this client stopped (purged by retention?)",
                hermes_host::offset::to_json(offset)
            )
        };
        if let Some(last) = self.state.lastoffset.clone() {
            self.consumer
                .seek_after(&last)
                .await
                .with_context(|| gone(&last))?;
        } else if let Some(start) = self.state.initstartoffset.clone() {
            self.consumer
                .seek(&start)
                .await
                .with_context(|| gone(&start))?;
        }
        self.positioned = true;
        Ok(())
    }

    /// Processes one event read from the bus. Its text is parsed only if the
    /// client needs its fields: events of the other category are stepped
    /// over unread. One that is not a hermes event stops the client there.
    async fn process(&mut self, consumed: Consumed, report: &mut RunReport) -> Result<()> {
        let offset = &consumed.offset;
        let needed = if self.state.initialized {
            consumed.category == WitCategory::Base
        } else {
            consumed.category == WitCategory::Initsync
                || Some(offset) == self.state.initstartoffset.as_ref()
                || Some(offset) == self.state.initstopoffset.as_ref()
        };
        if needed {
            // The routing attributes only: a change goes to the target as
            // the bus holds it, and is parsed whole only if it is queued.
            let head = self.consumer.parse_head(&consumed)?;
            let is_change = matches!(
                head.eventtype,
                EventType::Added | EventType::Modified | EventType::Removed
            );
            if !self.state.initialized {
                if Some(offset) == self.state.initstartoffset.as_ref() {
                    self.state.dataschema = Some(self.consumer.parse(&consumed)?.objattrs);
                } else if Some(offset) == self.state.initstopoffset.as_ref() {
                    self.state.initialized = true;
                    report.initialized = true;
                    tracing::info!("initsync done");
                } else if head.evcategory == Category::Initsync && is_change {
                    self.deliver(&consumed, head, report).await?;
                }
            } else if head.eventtype == EventType::Dataschema {
                self.state.dataschema = Some(self.consumer.parse(&consumed)?.objattrs);
            } else if is_change {
                self.deliver(&consumed, head, report).await?;
            }
        }
        self.state.lastoffset = Some(consumed.offset);
        Ok(())
    }

    /// Applies an event, or queues it behind its object's failed events.
    async fn deliver(
        &mut self,
        consumed: &Consumed,
        head: EventHead,
        report: &mut RunReport,
    ) -> Result<()> {
        let offset = &consumed.offset;
        // The object's key is written out only when events wait in the queue.
        let waiting = !self.state.error_queue.is_empty() && {
            let object = object_key(head.objtype.as_deref(), &head.objpkey);
            self.state.error_queue.iter().any(|q| q.object() == object)
        };
        let queued = if waiting {
            Some(Queued {
                offset: offset.clone(),
                event: self.consumer.parse(consumed)?,
                error: None,
                attempts: 0,
            })
        } else {
            let applied = Applied {
                eventtype: head.eventtype,
                objtype: head.objtype.as_deref(),
                json: &consumed.json,
            };
            match self.target.apply(&applied).await {
                Ok(()) => {
                    report.applied += 1;
                    None
                }
                Err(error) => {
                    tracing::warn!(
                        "event at offset {} ({} {}) failed, queued: {error}",
                        hermes_host::offset::to_json(offset),
                        head.eventtype,
                        head.objtype.as_deref().unwrap_or("-")
                    );
                    Some(Queued {
                        offset: offset.clone(),
                        event: self.consumer.parse(consumed)?,
                        error: Some(error),
                        attempts: 1,
                    })
                }
            }
        };
        if let Some(queued) = queued {
            report.queued += 1;
            self.state.error_queue.push(queued);
        }
        Ok(())
    }

    /// Retries the error queue in order, every retry interval; an object
    /// stops at its first event that fails again.
    async fn retry_if_due(&mut self, report: &mut RunReport) -> Result<()> {
        let due = self
            .last_retry
            .is_none_or(|last| last.elapsed() >= self.retry_interval);
        if self.state.error_queue.is_empty() || !due {
            return Ok(());
        }
        self.last_retry = Some(Instant::now());
        let mut blocked = BTreeSet::new();
        let mut kept = Vec::new();
        for mut queued in std::mem::take(&mut self.state.error_queue) {
            let (objtype, pkey) = queued.object();
            let object = (objtype.map(str::to_owned), pkey);
            if blocked.contains(&object) {
                kept.push(queued);
                continue;
            }
            queued.attempts += 1;
            let json = queued.event.to_json();
            let applied = Applied {
                eventtype: queued.event.eventtype,
                objtype: queued.event.objtype.as_deref(),
                json: &json,
            };
            match self.target.apply(&applied).await {
                Ok(()) => report.retried += 1,
                Err(error) => {
                    queued.error = Some(error);
                    blocked.insert(object);
                    kept.push(queued);
                }
            }
        }
        self.state.error_queue = kept;
        self.save().await
    }
}

/// Where a client stands, for `hermes-wasm status`.
#[derive(Debug, Clone)]
pub struct Status {
    /// The cache.
    pub state: ClientState,
    /// Events on the bus after the last one processed (at most `limit`).
    pub behind: usize,
    /// Whether counting stopped at the limit.
    pub at_least: bool,
}

impl Status {
    /// Reads the cache and counts the events not yet processed.
    pub async fn read(config_path: &Path, engine: &Engine, limit: usize) -> Result<Status> {
        let config = ClientConfig::read(config_path)?;
        let base = crate::config::base_dir(config_path);
        let state = ClientState::load(&ClientState::path(&config.hermes.cache_dir(&base)?))?;
        let (plugin, spec) = config.hermes.load_bus(engine, &base).await?;
        let mut consumer = Consumer::create(plugin, &spec.settings).await?;
        consumer.open().await?;
        consumer.set_timeout(Some(Duration::from_millis(200)));
        match &state.lastoffset {
            Some(last) => consumer.seek_after(last).await?,
            None => consumer.seek_to_beginning().await?,
        }
        let mut behind = 0;
        while behind < limit {
            let batch = consumer.next_batch(1000).await?;
            if batch.is_empty() {
                break;
            }
            behind += batch.len();
        }
        consumer.close().await?;
        Ok(Status {
            state,
            behind: behind.min(limit),
            at_least: behind >= limit,
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let offset = |o: &Option<Offset>| {
            o.as_ref().map_or("-".to_owned(), |o| {
                hermes_host::offset::to_json(o).to_string()
            })
        };
        writeln!(
            f,
            "initstartoffset: {}",
            offset(&self.state.initstartoffset)
        )?;
        writeln!(f, "initstopoffset:  {}", offset(&self.state.initstopoffset))?;
        writeln!(f, "lastoffset:      {}", offset(&self.state.lastoffset))?;
        writeln!(
            f,
            "initialized:     {}",
            if self.state.initialized { "yes" } else { "no" }
        )?;
        writeln!(
            f,
            "behind the bus:  {}{} events",
            if self.at_least { "at least " } else { "" },
            self.behind
        )?;
        writeln!(
            f,
            "error queue:     {} events",
            self.state.error_queue.len()
        )?;
        for queued in &self.state.error_queue {
            writeln!(
                f,
                "  offset {} {} {} {}: {} ({} attempts)",
                hermes_host::offset::to_json(&queued.offset),
                queued.event.eventtype,
                queued.event.objtype.as_deref().unwrap_or("-"),
                queued.event.objpkey.to_json_compact(),
                queued
                    .error
                    .as_deref()
                    .unwrap_or("waits behind an earlier event of its object"),
                queued.attempts
            )?;
        }
        Ok(())
    }
}
