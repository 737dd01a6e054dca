//! Reading the next batch: gaps the bus reports, and records the bus plugin
//! cannot read.
//!
//! A plugin that traps, runs out of memory or out of time while reading (or
//! fails with an error that is neither `unavailable` nor `corrupted`) leaves
//! no clue to which record made it fail: the host replaces a trapped
//! instance, which resumes after the last event delivered, and the client
//! then reads one event at a time (for a batch's worth), so each failure
//! names one record, the one after the last offset processed. After
//! `errorQueue_maxAttempts` failures in a row there, that record is stepped
//! over without being read (the plugin's `skip`) and quarantined by its
//! offset; without the setting, the run stops with an error that says so.

use anyhow::{Result, bail};
use hermes_host::{Consumed, Offset};

use super::{BATCH, Client, RunReport};

/// Failures in a row at one record after which, with no
/// `errorQueue_maxAttempts`, the run stops.
const STOP_AFTER: u32 = 3;

/// The record the plugin failed to read: after which offset, and how many
/// times in a row.
#[derive(Debug)]
pub(super) struct Unreadable {
    after: Option<Offset>,
    attempts: u32,
}

impl Client {
    /// The next batch; none when there is nothing to apply this time but the
    /// run goes on (a gap was reported, a record will be tried again or was
    /// quarantined).
    pub(super) async fn read(&mut self, report: &mut RunReport) -> Result<Option<Vec<Consumed>>> {
        let max = if self.one_by_one > 0 { 1 } else { BATCH };
        let error = match self.consumer.next_batch(max).await {
            Ok(batch) => {
                if !batch.is_empty() {
                    self.unreadable = None;
                    self.one_by_one = self.one_by_one.saturating_sub(1);
                }
                return Ok(Some(batch));
            }
            Err(e) => e,
        };
        if let Some(gap) = error.gap() {
            // The bus lost events before this client read them: said loudly
            // and kept in the cache for `status`; the client goes on with
            // what the bus still holds, as hermes does.
            tracing::error!("events were missed: {gap}");
            self.state.note_gap(gap.to_owned());
            self.save().await?;
            return Ok(None);
        }
        if !unreadable(&error) {
            return Err(error.into());
        }
        let reason = error.to_string();
        if max > 1 {
            // Some record of the batch: found by reading one at a time.
            tracing::warn!("{reason}; reading one event at a time to find the record at fault");
            self.one_by_one = BATCH;
            return Ok(None);
        }
        let after = self.state.lastoffset.clone();
        let attempts = match &self.unreadable {
            Some(before) if before.after == after => before.attempts + 1,
            _ => 1,
        };
        let at = || match &after {
            Some(last) => format!("after offset {}", hermes_host::offset::to_json(last)),
            None => "at the start of the initsync sequence".to_owned(),
        };
        self.unreadable = Some(Unreadable {
            after: after.clone(),
            attempts,
        });
        match self.max_attempts {
            Some(max) if attempts >= max => {}
            None if attempts >= STOP_AFTER => bail!(
                "the bus plugin fails on the record {} every time ({attempts} attempts): \
                 {reason}; set hermes-client.errorQueue_maxAttempts to quarantine it and go on",
                at()
            ),
            _ => {
                tracing::warn!("{reason} (the record {}, attempt {attempts})", at());
                return Ok(None);
            }
        }
        let Some(skipped) = self.consumer.skip().await? else {
            return Ok(None);
        };
        self.unreadable = None;
        self.dead_letter
            .add_unreadable(&skipped, &reason, attempts)?;
        report.quarantined += 1;
        self.state.lastoffset = Some(skipped);
        self.save().await?;
        Ok(None)
    }
}

/// Whether `error` is the plugin failing on what it read, which a record may
/// cause every time: a trap (memory cap, deadline, a crash), or a bus error
/// that is neither passing (`unavailable`), nor damage (`corrupted`, which
/// stops the client there), nor a misuse.
pub(super) fn unreadable(error: &hermes_host::Error) -> bool {
    matches!(
        error,
        hermes_host::Error::Trapped { .. }
            | hermes_host::Error::Bus {
                error: hermes_host::BusError::Other(_),
                ..
            }
    )
}
