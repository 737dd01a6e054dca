//! Applying one event: to the target when it reads its fields, or to the
//! error queue behind its object's failed events; and retrying that queue.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::Result;
use hermes_event::{Category, EventHead, EventType};
use hermes_host::Consumed;
use hermes_host::bindings::types::Category as WitCategory;

use super::state::{Queued, object_key};
use super::target::Applied;
use super::{Client, RunReport};

/// Why an event that never failed is quarantined.
const BEHIND: &str = "behind a quarantined event of its object";

impl Client {
    /// Processes one event read from the bus. Its text is parsed only if the
    /// client needs its fields: events of the other category are stepped
    /// over unread. One that is not a hermes event stops the client there.
    pub(super) async fn process(
        &mut self,
        consumed: Consumed,
        report: &mut RunReport,
    ) -> Result<()> {
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
        if self
            .dead_letter
            .holds(head.objtype.as_deref(), &head.objpkey.to_json_compact())
        {
            return self.quarantine(
                Queued {
                    offset: offset.clone(),
                    event: self.consumer.parse(consumed)?,
                    error: Some(BEHIND.to_owned()),
                    attempts: 0,
                },
                report,
            );
        }
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
        match queued {
            Some(queued) if self.spent(&queued) => self.quarantine(queued, report),
            Some(queued) => {
                report.queued += 1;
                self.state.error_queue.push(queued);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Whether an event failed as many times as it may.
    fn spent(&self, queued: &Queued) -> bool {
        queued.error.is_some()
            && self
                .max_attempts
                .is_some_and(|most| queued.attempts >= most)
    }

    /// Puts an event in the dead-letter file, for good.
    fn quarantine(&mut self, queued: Queued, report: &mut RunReport) -> Result<()> {
        self.dead_letter.add(&queued)?;
        report.quarantined += 1;
        Ok(())
    }

    /// Retries the error queue in order, every retry interval; an object
    /// stops at its first event that fails again.
    pub(super) async fn retry_if_due(&mut self, report: &mut RunReport) -> Result<()> {
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
            if self.dead_letter.holds(object.0.as_deref(), &object.1) {
                queued.error = Some(BEHIND.to_owned());
                self.quarantine(queued, report)?;
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
                    if self.spent(&queued) {
                        self.quarantine(queued, report)?;
                    } else {
                        blocked.insert(object);
                        kept.push(queued);
                    }
                }
            }
        }
        self.state.error_queue = kept;
        self.save().await
    }
}
