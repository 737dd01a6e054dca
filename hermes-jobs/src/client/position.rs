//! Where a client reads from: the initsync sequence it starts with, found
//! by hermes' discovery scan, and the point where processing resumes.

use anyhow::{Context, Result};
use hermes_event::EventType;
use hermes_host::Offset;
use hermes_host::bindings::types::Category as WitCategory;

use super::{BATCH, Client};

impl Client {
    /// Scans the bus for a complete init-start ... init-stop pair.
    pub(super) async fn find_initsync(&mut self) -> Result<bool> {
        self.consumer.seek_to_beginning().await?;
        self.positioned = false;
        let mut start: Option<Offset> = None;
        let mut found: Option<(Offset, Offset)> = None;
        // Events read one at a time after the plugin failed in a batch.
        let mut one_by_one = 0;
        'scan: loop {
            let max = if one_by_one > 0 { 1 } else { BATCH };
            let batch = match self.consumer.next_batch(max).await {
                // What was lost cannot hold the sequence looked for.
                Err(e) if e.gap().is_some() => continue,
                // A record the plugin cannot read is looked for one event
                // at a time, then stepped over: it is met again, and dealt
                // with, when the events are applied.
                Err(e) if super::read::unreadable(&e) => {
                    tracing::warn!("{e}; looking for the initsync sequence one event at a time");
                    if max == 1 {
                        self.consumer.skip().await?;
                    }
                    one_by_one = BATCH;
                    continue;
                }
                batch => batch?,
            };
            if batch.is_empty() {
                break;
            }
            one_by_one = one_by_one.saturating_sub(1);
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
    pub(super) async fn position(&mut self) -> Result<()> {
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
}
