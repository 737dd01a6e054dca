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
//! A record the bus plugin cannot read (it traps, or runs out of memory or
//! time, each time) is quarantined after `errorQueue_maxAttempts` tries, by
//! its offset (see `read`).
//!
//! Events are read in batches of up to [`BATCH`]. Once [`SAVE_EVENTS`]
//! events or [`SAVE_INTERVAL`] have gone by since the last save, and
//! whenever the bus is drained, the run stops or fails, the target is made
//! durable, then the cache is saved; the client resumes right after the last
//! event it processed: after a clean stop, no event is skipped and none is
//! applied twice; after a crash, at most the events processed since the last
//! save are applied again.

mod apply;
pub mod config;
pub mod dead_letter;
mod position;
mod read;
pub mod state;
mod status;
pub mod target;

pub use self::status::Status;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use self::config::ClientConfig;
use self::dead_letter::DeadLetter;
use self::state::ClientState;
use self::target::Target;
use crate::stop::Stop;
use hermes_host::{Consumer, Engine};

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
async fn wait_for_the_bus(error: &anyhow::Error, pause: &mut Duration, stop: &Stop) {
    tracing::warn!("{error:#}; trying again in {} s", pause.as_secs());
    stop.sleep(*pause).await;
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
    /// Events put in the dead-letter file.
    pub quarantined: usize,
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
        if self.quarantined > 0 {
            write!(f, ", {} quarantined", self.quarantined)?;
        }
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
    /// Attempts after which an event is quarantined; none: never.
    max_attempts: Option<u32>,
    dead_letter: DeadLetter,
    last_retry: Option<Instant>,
    positioned: bool,
    /// How many more events are read one at a time, after the plugin
    /// failed in the middle of a batch.
    one_by_one: u32,
    /// The record the plugin last failed to read.
    unreadable: Option<read::Unreadable>,
    /// Events processed since the cache was last saved, and when that was.
    unsaved: usize,
    saved_at: Instant,
}

impl Client {
    /// Reads the configuration and the cache, loads and opens the bus.
    pub async fn start(config_path: &Path, engine: &Engine) -> Result<Client> {
        let config = ClientConfig::read(config_path)?;
        let base = crate::config::base_dir(config_path);
        let cache_dir = config.hermes.cache_dir(&base)?;
        let state_path = ClientState::path(&cache_dir);
        let state = ClientState::load(&state_path)?;
        let dead_letter = DeadLetter::load(&DeadLetter::path(&cache_dir))?;
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
            max_attempts: config.client.error_queue_max_attempts,
            dead_letter,
            last_retry: None,
            positioned: false,
            one_by_one: 0,
            unreadable: None,
            unsaved: 0,
            saved_at: Instant::now(),
        })
    }

    /// Like [`Client::start`], but a bus that is unavailable is waited for,
    /// with the same pauses as [`Client::run`]; none if `stop` is set first.
    pub async fn start_when_available(
        config_path: &Path,
        engine: &Engine,
        stop: &Stop,
    ) -> Result<Option<Client>> {
        let mut pause = FIRST_PAUSE;
        while !stop.is_set() {
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
    pub async fn run(&mut self, once: bool, stop: &Stop) -> Result<RunReport> {
        // Run once, a drained bus ends the run at once; otherwise the wait is
        // short enough for a stop request to be heard promptly.
        self.consumer
            .set_timeout(Some(if once { Duration::ZERO } else { WAIT }));
        let mut report = RunReport::default();
        let mut pause = FIRST_PAUSE;
        while !stop.is_set() {
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
    async fn step(&mut self, once: bool, stop: &Stop, report: &mut RunReport) -> Result<Step> {
        if !self.state.initialized
            && self.state.initstartoffset.is_none()
            && !self.find_initsync().await?
        {
            if once {
                tracing::info!("no complete initsync sequence on the bus yet");
                return Ok(Step::Done);
            }
            stop.sleep(WAIT).await;
            return Ok(Step::Continue);
        }
        self.retry_if_due(report).await?;
        self.position().await?;
        let Some(batch) = self.read(report).await? else {
            return Ok(Step::Continue);
        };
        if batch.is_empty() {
            return Ok(if once { Step::Done } else { Step::Continue });
        }
        let drained = batch.len() < BATCH as usize;
        for consumed in batch {
            if stop.is_set() {
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
            || stop.is_set()
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
}
