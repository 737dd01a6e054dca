//! Where a client stands, for `hermes-wasm status`: its cache, and the
//! events on the bus it has not processed yet.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use hermes_host::{Consumer, Engine, Offset};

use super::config::ClientConfig;
use super::dead_letter::{DeadLetter, Quarantined};
use super::state::{ClientState, Queued};

/// Where a client stands, for `hermes-wasm status`.
#[derive(Debug, Clone)]
pub struct Status {
    /// The cache.
    pub state: ClientState,
    /// Events on the bus after the last one processed (at most `limit`).
    pub behind: usize,
    /// Whether counting stopped at the limit.
    pub at_least: bool,
    /// The events in the dead-letter file.
    pub dead_letter: Vec<Quarantined>,
}

impl Status {
    /// Reads the cache and counts the events not yet processed.
    pub async fn read(config_path: &Path, engine: &Engine, limit: usize) -> Result<Status> {
        let config = ClientConfig::read(config_path)?;
        let base = crate::config::base_dir(config_path);
        let cache_dir = config.hermes.cache_dir(&base)?;
        let state = ClientState::load(&ClientState::path(&cache_dir))?;
        let dead_letter = DeadLetter::entries(&DeadLetter::path(&cache_dir))?;
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
            let batch = match consumer.next_batch(1000).await {
                // Events the bus lost are not behind: reading goes on.
                Err(e) if e.gap().is_some() => continue,
                // A record the plugin cannot read is behind too: stepped
                // over, and counted.
                Err(e) if super::read::unreadable(&e) => {
                    if consumer.skip().await?.is_some() {
                        behind += 1;
                    }
                    continue;
                }
                batch => batch?,
            };
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
            dead_letter,
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
            entry(f, queued)?;
        }
        writeln!(f, "dead letter:     {} events", self.dead_letter.len())?;
        for quarantined in &self.dead_letter {
            match quarantined {
                Quarantined::Event(queued) => entry(f, queued)?,
                Quarantined::Unreadable {
                    offset,
                    reason,
                    attempts,
                } => writeln!(
                    f,
                    "  offset {} (unreadable): {reason} ({attempts} attempts)",
                    hermes_host::offset::to_json(offset)
                )?,
            }
        }
        writeln!(f, "gaps:            {} reported", self.state.gaps.len())?;
        for gap in &self.state.gaps {
            writeln!(f, "  {gap}")?;
        }
        Ok(())
    }
}

/// One line of the error queue or the dead letter: where, what, why.
fn entry(f: &mut std::fmt::Formatter<'_>, queued: &Queued) -> std::fmt::Result {
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
    )
}
