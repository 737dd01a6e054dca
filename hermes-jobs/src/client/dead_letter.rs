//! The dead-letter file (`dead-letter.jsonl` in the client's cache
//! directory): events the target refused `errorQueue_maxAttempts` times, each
//! with its offset, the last reason and its attempts, and after them every
//! later event of the same object, so that an object's events are never
//! applied out of order. The rest of the stream goes on. An object leaves
//! quarantine when its lines are taken out of the file (by the operator,
//! once it is dealt with) and the client is started again.
//!
//! Records the bus plugin could not read (`errorQueue_maxAttempts` traps,
//! memory caps or deadlines at the same place) are there too, with their
//! offset, the reason and the attempts, but no event (`"event": null`): the
//! plugin could not say which object they change, so nothing else is held
//! back for them.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hermes_event::Event;
use hermes_host::{Offset, offset};
use serde_json::json;

use super::state::Queued;

/// An object: its type and its primary key's compact JSON.
type Object = (Option<String>, String);

/// One line of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Quarantined {
    /// An event the target kept refusing, or a later event of its object.
    Event(Queued),
    /// A record the bus plugin could not read, known by its offset alone.
    Unreadable {
        /// Where it is on the bus.
        offset: Offset,
        /// Why the plugin failed on it, the last time.
        reason: String,
        /// How many times it was tried.
        attempts: u32,
    },
}

/// The dead-letter file, and the objects in it.
#[derive(Debug)]
pub struct DeadLetter {
    path: PathBuf,
    objects: BTreeSet<Object>,
}

impl DeadLetter {
    /// The file in the cache directory `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("dead-letter.jsonl")
    }

    /// Reads which objects are quarantined; a missing file is none.
    pub fn load(path: &Path) -> Result<DeadLetter> {
        let objects = DeadLetter::entries(path)?
            .iter()
            .filter_map(|entry| match entry {
                Quarantined::Event(queued) => {
                    let (objtype, pkey) = queued.object();
                    Some((objtype.map(str::to_owned), pkey))
                }
                Quarantined::Unreadable { .. } => None,
            })
            .collect();
        Ok(DeadLetter {
            path: path.to_path_buf(),
            objects,
        })
    }

    /// Every entry of the file at `path`, oldest first. A last line left
    /// unfinished by a crash is skipped: its event is still in the error
    /// queue, and comes back.
    pub fn entries(path: &Path) -> Result<Vec<Quarantined>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
        };
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole
            .lines()
            .enumerate()
            .map(|(i, line)| {
                entry(line).with_context(|| format!("{}: line {}", path.display(), i + 1))
            })
            .collect()
    }

    /// Whether events of this object are quarantined.
    pub fn holds(&self, objtype: Option<&str>, pkey: &str) -> bool {
        !self.objects.is_empty()
            && self
                .objects
                .contains(&(objtype.map(str::to_owned), pkey.to_owned()))
    }

    /// Quarantines `queued`, made durable before this returns.
    pub fn add(&mut self, queued: &Queued) -> Result<()> {
        self.append(json!({
            "offset": offset::to_json(&queued.offset),
            "reason": queued.error,
            "attempts": queued.attempts,
            "event": queued.event.to_json_compact(),
        }))?;
        let (objtype, pkey) = queued.object();
        self.objects.insert((objtype.map(str::to_owned), pkey));
        tracing::error!(
            "event at offset {} ({} {} {}) quarantined in {}: {}",
            offset::to_json(&queued.offset),
            queued.event.eventtype,
            queued.event.objtype.as_deref().unwrap_or("-"),
            queued.event.objpkey.to_json_compact(),
            self.path.display(),
            queued.error.as_deref().unwrap_or("-")
        );
        Ok(())
    }

    /// Quarantines the record at `at` that the plugin could not read, made
    /// durable before this returns.
    pub fn add_unreadable(&mut self, at: &Offset, reason: &str, attempts: u32) -> Result<()> {
        self.append(json!({
            "offset": offset::to_json(at),
            "reason": reason,
            "attempts": attempts,
            "event": null,
        }))?;
        tracing::error!(
            "the record at offset {} could not be read {attempts} times; quarantined in {}: {reason}",
            offset::to_json(at),
            self.path.display(),
        );
        Ok(())
    }

    /// Appends one line and syncs it.
    fn append(&self, line: serde_json::Value) -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        crate::lines::cut_torn_line(&file, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

fn entry(line: &str) -> Result<Quarantined> {
    let root: serde_json::Value = serde_json::from_str(line)?;
    let offset = offset::parse(&root["offset"].to_string()).map_err(anyhow::Error::msg)?;
    let reason = root["reason"].as_str().map(String::from);
    let attempts = root["attempts"].as_u64().unwrap_or(0) as u32;
    if root["event"].is_null() {
        return Ok(Quarantined::Unreadable {
            offset,
            reason: reason.unwrap_or_default(),
            attempts,
        });
    }
    let event = Event::from_json(root["event"].as_str().context("no event")?)?;
    Ok(Quarantined::Event(Queued {
        offset,
        event,
        error: reason,
        attempts,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hermes_event::{Category, EventType, Value};

    fn queued(pkey: i64, error: &str) -> Queued {
        Queued {
            offset: Offset::Int(pkey * 10),
            event: Event::new(
                Category::Base,
                EventType::Removed,
                Some("SRVUsers".into()),
                Value::from(pkey),
                Value::empty_object(),
            ),
            error: Some(error.into()),
            attempts: 3,
        }
    }

    #[test]
    fn quarantined_objects_are_remembered_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = DeadLetter::path(dir.path());
        let mut dead = DeadLetter::load(&path).expect("none yet");
        assert!(!dead.holds(Some("SRVUsers"), "1"));
        dead.add(&queued(1, "refused")).expect("add");
        dead.add(&queued(2, "refused again")).expect("add");
        assert!(dead.holds(Some("SRVUsers"), "1"));
        assert!(!dead.holds(Some("SRVUsers"), "3"));
        assert!(!dead.holds(None, "1"));

        // A crash in the middle of a line: that entry is still queued.
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("{\"offset\": 30, \"reas");
        std::fs::write(&path, text).expect("write");
        let again = DeadLetter::load(&path).expect("loads");
        assert!(again.holds(Some("SRVUsers"), "2"));
        let entries = DeadLetter::entries(&path).expect("entries");
        assert_eq!(
            entries,
            vec![
                Quarantined::Event(queued(1, "refused")),
                Quarantined::Event(queued(2, "refused again"))
            ]
        );
        // The next entry is a line of its own: the torn one is cut first.
        let mut again = again;
        again.add(&queued(3, "refused at last")).expect("add");
        assert_eq!(
            DeadLetter::entries(&path).expect("entries"),
            vec![
                Quarantined::Event(queued(1, "refused")),
                Quarantined::Event(queued(2, "refused again")),
                Quarantined::Event(queued(3, "refused at last"))
            ]
        );

        // A record the plugin could not read holds back no object.
        std::fs::write(&path, "").expect("empty");
        let mut dead = DeadLetter::load(&path).expect("loads");
        dead.add_unreadable(&Offset::Int(7), "out of memory", 3)
            .expect("add");
        dead.add(&queued(1, "refused")).expect("add");
        let again = DeadLetter::load(&path).expect("loads");
        assert!(again.holds(Some("SRVUsers"), "1"));
        assert_eq!(again.objects.len(), 1);
        assert_eq!(
            DeadLetter::entries(&path).expect("entries")[0],
            Quarantined::Unreadable {
                offset: Offset::Int(7),
                reason: "out of memory".into(),
                attempts: 3
            }
        );

        std::fs::write(&path, "not json\n").expect("write");
        let error = DeadLetter::load(&path).expect_err("damaged");
        assert!(format!("{error:#}").contains("line 1"), "{error:#}");
    }
}
