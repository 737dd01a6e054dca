//! What a client remembers, saved atomically in the cache directory: hermes'
//! offsets (`initstartoffset`, `initstopoffset`, and where to resume), the
//! dataschema, the error queue, and the gaps the bus reported.
//!
//! hermes keeps `nextoffset = offset + 1`, which only integer offsets allow;
//! this cache keeps `lastoffset`, the last event processed, and resumes with
//! the bus's "right after this event", whatever the offset kind.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use hermes_event::{Event, Value};
use serde_json::json;

use hermes_host::Offset;
use hermes_host::offset;

/// The client's cache.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientState {
    /// The init-start of the initsync sequence in use.
    pub initstartoffset: Option<Offset>,
    /// Its init-stop.
    pub initstopoffset: Option<Offset>,
    /// The last event processed; the next one is right after it.
    pub lastoffset: Option<Offset>,
    /// Whether the initsync sequence was processed to its init-stop.
    pub initialized: bool,
    /// The dataschema in force.
    pub dataschema: Option<Value>,
    /// Events that failed, in order.
    pub error_queue: Vec<Queued>,
    /// The gaps the bus reported (events removed before this client read
    /// them), as the bus described them, oldest first; the last
    /// [`GAPS_KEPT`] are kept.
    pub gaps: Vec<String>,
}

/// How many reported gaps the cache keeps.
pub const GAPS_KEPT: usize = 100;

/// An event waiting in the error queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// Where it was on the bus.
    pub offset: Offset,
    /// The event.
    pub event: Event,
    /// Why it last failed (none if it waits behind an earlier event of its
    /// object and was never tried).
    pub error: Option<String>,
    /// How many times it was tried.
    pub attempts: u32,
}

impl Queued {
    /// The object it changes: type and primary key.
    pub fn object(&self) -> (Option<&str>, String) {
        object_of(&self.event)
    }
}

/// An event's object: type and primary key (compact JSON).
pub fn object_of(event: &Event) -> (Option<&str>, String) {
    object_key(event.objtype.as_deref(), &event.objpkey)
}

/// The object of this type and primary key.
pub fn object_key<'a>(objtype: Option<&'a str>, objpkey: &Value) -> (Option<&'a str>, String) {
    (objtype, objpkey.to_json_compact())
}

impl ClientState {
    /// The cache file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("hermes-client.json")
    }

    /// Reads the cache; a missing file is a client that starts from scratch.
    pub fn load(path: &Path) -> Result<ClientState> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ClientState::default());
            }
            Err(e) => return Err(e).with_context(|| format!("cache {}", path.display())),
        };
        let damaged = |why: String| anyhow!("cache {} is damaged: {why}", path.display());
        let root: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
        let offset_at = |key: &str| -> Result<Option<Offset>> {
            match root.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(value) => offset::parse(&value.to_string())
                    .map(Some)
                    .map_err(&damaged),
            }
        };
        let dataschema = match root.get("dataschema") {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => {
                Some(Value::from_json(&value.to_string()).map_err(|e| damaged(e.to_string()))?)
            }
        };
        let mut error_queue = Vec::new();
        for entry in root
            .get("error_queue")
            .and_then(|q| q.as_array())
            .into_iter()
            .flatten()
        {
            let offset = entry
                .get("offset")
                .ok_or_else(|| damaged("an error queue entry has no offset".into()))
                .and_then(|o| offset::parse(&o.to_string()).map_err(&damaged))?;
            let event = entry
                .get("event")
                .and_then(|e| e.as_str())
                .ok_or_else(|| damaged("an error queue entry has no event".into()))
                .and_then(|e| Event::from_json(e).map_err(|e| damaged(e.to_string())))?;
            error_queue.push(Queued {
                offset,
                event,
                error: entry
                    .get("error")
                    .and_then(|e| e.as_str())
                    .map(String::from),
                attempts: entry.get("attempts").and_then(|a| a.as_u64()).unwrap_or(0) as u32,
            });
        }
        let gaps = root
            .get("gaps")
            .and_then(|g| g.as_array())
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(String::from))
            .collect();
        Ok(ClientState {
            initstartoffset: offset_at("initstartoffset")?,
            initstopoffset: offset_at("initstopoffset")?,
            lastoffset: offset_at("lastoffset")?,
            initialized: root
                .get("initialized")
                .and_then(|b| b.as_bool())
                .unwrap_or(false),
            dataschema,
            error_queue,
            gaps,
        })
    }

    /// Records a gap the bus reported.
    pub fn note_gap(&mut self, gap: String) {
        self.gaps.push(gap);
        let over = self.gaps.len().saturating_sub(GAPS_KEPT);
        self.gaps.drain(..over);
    }

    /// Writes the cache atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let offset_json =
            |o: &Option<Offset>| o.as_ref().map_or(serde_json::Value::Null, offset::to_json);
        let queue: Vec<_> = self
            .error_queue
            .iter()
            .map(|q| {
                json!({
                    "offset": offset::to_json(&q.offset),
                    "event": q.event.to_json(),
                    "error": q.error,
                    "attempts": q.attempts,
                })
            })
            .collect();
        let dataschema = match &self.dataschema {
            Some(schema) => {
                serde_json::from_str(&schema.to_json_compact()).unwrap_or(serde_json::Value::Null)
            }
            None => serde_json::Value::Null,
        };
        let root = json!({
            "initstartoffset": offset_json(&self.initstartoffset),
            "initstopoffset": offset_json(&self.initstopoffset),
            "lastoffset": offset_json(&self.lastoffset),
            "initialized": self.initialized,
            "dataschema": dataschema,
            "error_queue": queue,
            "gaps": self.gaps,
        });
        let text = serde_json::to_string_pretty(&root)?;
        crate::atomic_file::write(path, text.as_bytes())
            .with_context(|| format!("cannot save the cache {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hermes_event::{Category, EventType};

    #[test]
    fn every_offset_kind_and_the_queue_survive_a_save() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = ClientState::path(dir.path());
        let event = Event::new(
            Category::Base,
            EventType::Removed,
            Some("SRVUsers".into()),
            Value::List(vec![Value::from(1), Value::from("é")]),
            Value::empty_object(),
        );
        let state = ClientState {
            initstartoffset: Some(Offset::Str("42".into())),
            initstopoffset: Some(Offset::Bytes(vec![0, 255])),
            lastoffset: Some(Offset::Float(2.5)),
            initialized: true,
            dataschema: Some(Value::Object(vec![(
                "SRVUsers".into(),
                Value::empty_object(),
            )])),
            error_queue: vec![Queued {
                offset: Offset::Int(7),
                event,
                error: Some("exit status 1".into()),
                attempts: 2,
            }],
            gaps: vec!["offsets 3 to 9 were deleted".into()],
        };
        state.save(&path).expect("save");
        assert_eq!(ClientState::load(&path).expect("load"), state);
        let mut many = state;
        for i in 0..GAPS_KEPT + 5 {
            many.note_gap(format!("gap {i}"));
        }
        assert_eq!(many.gaps.len(), GAPS_KEPT);
        assert_eq!(many.gaps.last().map(String::as_str), Some("gap 104"));
        assert_eq!(
            ClientState::load(&dir.path().join("missing.json")).expect("load"),
            ClientState::default()
        );
    }
}
