//! The server's journal (`hermes-server.journal` in the cache directory):
//! what the poll in progress sent since the cache was last saved, so that a
//! server killed in the middle of a poll neither sends an event again nor
//! forgets one it sent.
//!
//! Before a batch goes to the bus, one line says what it holds (a digest of
//! each event's text), what the cache takes once each event is stored, and
//! the offset of the last event stored before it; once the bus took it, a
//! second line gives the offset of its last event. The cache is saved at the
//! end of each poll, then the journal is emptied.
//!
//! When the server starts, and after a poll failed, the cache file is read
//! again and the journal replayed on top of it: a batch with its second line
//! was stored whole; a batch without one is looked for on the bus, read back
//! after the offset before it, and the events found there, in order, count
//! as stored (`send-batch` stores a leading part of a batch, or all of it).
//!
//! The lines are written, not synced: they survive the process, not a power
//! loss, after which the batches of the poll in progress may be sent again.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use hermes_event::Value;
use hermes_host::{Offset, offset};
use sha2::{Digest, Sha256};

use super::cache::{Cached, ServerCache, cached_entry};

/// What storing one event changes in the cache.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The object is cached as this.
    Put {
        objtype: String,
        key: String,
        cached: Cached,
    },
    /// The object is gone.
    Remove { objtype: String, key: String },
    /// Clients now have this dataschema.
    Dataschema(Value),
    /// An initsync sequence began.
    InitStart,
    /// An initsync sequence went out whole, with this dataschema.
    InitStop(Value),
}

/// One batch sent, as the journal tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The offset of the last event stored before it, if any was.
    pub after: Option<Offset>,
    /// The digest of each event's text, in order.
    pub digests: Vec<String>,
    /// What each event changes in the cache (none for some: an init-stop
    /// of an initsync asked for again, say), in order.
    pub steps: Vec<Option<Step>>,
    /// The offset of its last event, once the bus took it whole.
    pub sent: Option<Offset>,
}

/// The digest of an event's text: what identifies it on the bus (the first
/// 16 bytes of its SHA-256, in hex).
pub fn digest(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(32);
    for byte in &hash[..16] {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 15)] as char);
    }
    out
}

impl Step {
    /// Makes the change in `cache`.
    pub fn apply(self, cache: &mut ServerCache) {
        match self {
            Step::Put {
                objtype,
                key,
                cached,
            } => {
                cache
                    .objects
                    .entry(objtype)
                    .or_default()
                    .insert(key, cached);
            }
            Step::Remove { objtype, key } => {
                if let Some(objects) = cache.objects.get_mut(&objtype) {
                    objects.remove(&key);
                }
            }
            Step::Dataschema(schema) => cache.dataschema = Some(schema),
            Step::InitStart => {
                if !cache.initsync_done {
                    cache.initsync_started = true;
                }
            }
            Step::InitStop(schema) => {
                cache.initsync_done = true;
                cache.initsync_started = false;
                cache.dataschema = Some(schema);
            }
        }
    }

    /// Appends the step as the journal writes it: one JSON object, on one
    /// line, written from the borrowed parts.
    fn append_json(&self, out: &mut String) {
        let text = Value::append_json_str;
        match self {
            Step::Put {
                objtype,
                key,
                cached,
            } => {
                out.push_str("{\"put\":[");
                text(out, objtype);
                out.push(',');
                text(out, key);
                out.push_str(",{\"pkey\":");
                cached.pkey.append_json_compact(out);
                out.push_str(",\"attrs\":{");
                for (i, (name, value)) in cached.attrs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    text(out, name);
                    out.push(':');
                    value.append_json_compact(out);
                }
                out.push_str("}}]}");
            }
            Step::Remove { objtype, key } => {
                out.push_str("{\"remove\":[");
                text(out, objtype);
                out.push(',');
                text(out, key);
                out.push_str("]}");
            }
            Step::Dataschema(schema) => {
                out.push_str("{\"dataschema\":");
                schema.append_json_compact(out);
                out.push('}');
            }
            Step::InitStart => out.push_str("{\"init-start\":null}"),
            Step::InitStop(schema) => {
                out.push_str("{\"init-stop\":");
                schema.append_json_compact(out);
                out.push('}');
            }
        }
    }

    fn from_value(value: Value) -> Option<Step> {
        let Value::Object(mut fields) = value else {
            return None;
        };
        let (name, value) = fields.pop()?;
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        Some(match (name.as_str(), value) {
            ("put", Value::List(mut parts)) if parts.len() == 3 => {
                let cached = cached_entry(parts.pop()?)?;
                Step::Put {
                    key: text(&parts[1])?,
                    objtype: text(&parts[0])?,
                    cached,
                }
            }
            ("remove", Value::List(parts)) if parts.len() == 2 => Step::Remove {
                objtype: text(&parts[0])?,
                key: text(&parts[1])?,
            },
            ("dataschema", schema) => Step::Dataschema(schema),
            ("init-start", _) => Step::InitStart,
            ("init-stop", schema) => Step::InitStop(schema),
            _ => return None,
        })
    }
}

/// The journal file, opened for appending on the first line written.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Option<File>,
}

impl Journal {
    /// The journal in the cache directory `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("hermes-server.journal")
    }

    /// The journal at `path`.
    pub fn new(path: PathBuf) -> Journal {
        Journal { path, file: None }
    }

    /// Every batch the journal tells of, oldest first; a missing file is
    /// none. A last line left unfinished by a crash is not one: its batch
    /// was not sent yet.
    pub fn read(&self) -> Result<Vec<Batch>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("{}", self.path.display())),
        };
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        let mut batches: Vec<Batch> = Vec::new();
        for (i, line) in whole.lines().enumerate() {
            let damaged = || anyhow!("{}: line {} is damaged", self.path.display(), i + 1);
            let Value::Object(fields) = Value::from_json(line).map_err(|_| damaged())? else {
                return Err(damaged());
            };
            let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
            let offset_at = |name: &str| -> Result<Option<Offset>> {
                match field(name) {
                    Some(Value::String(text)) => {
                        offset::parse(text).map(Some).map_err(|_| damaged())
                    }
                    _ => Ok(None),
                }
            };
            if let Some(sent) = offset_at("sent")? {
                let batch = batches.last_mut().ok_or_else(damaged)?;
                batch.sent = Some(sent);
                continue;
            }
            let list = |name: &str| match field(name) {
                Some(Value::List(items)) => Ok(items.clone()),
                _ => Err(damaged()),
            };
            let digests = list("digests")?
                .iter()
                .map(|d| match d {
                    Value::String(d) => Ok(d.clone()),
                    _ => Err(damaged()),
                })
                .collect::<Result<Vec<_>>>()?;
            let steps = list("steps")?
                .into_iter()
                .map(|s| match s {
                    Value::Null => Ok(None),
                    s => Step::from_value(s).map(Some).ok_or_else(damaged),
                })
                .collect::<Result<Vec<_>>>()?;
            if steps.len() != digests.len() {
                return Err(damaged());
            }
            batches.push(Batch {
                after: offset_at("after")?,
                digests,
                steps,
                sent: None,
            });
        }
        Ok(batches)
    }

    /// Says what a batch holds, before it is sent.
    pub fn intend(
        &mut self,
        after: Option<&Offset>,
        texts: &[&str],
        steps: &[Option<Step>],
    ) -> Result<()> {
        let mut line = String::with_capacity(64 + texts.len() * 64);
        line.push('{');
        if let Some(after) = after {
            line.push_str("\"after\":");
            Value::append_json_str(&mut line, &offset::to_json(after).to_string());
            line.push(',');
        }
        line.push_str("\"digests\":[");
        for (i, text) in texts.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push('"');
            line.push_str(&digest(text));
            line.push('"');
        }
        line.push_str("],\"steps\":[");
        for (i, step) in steps.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            match step {
                Some(step) => step.append_json(&mut line),
                None => line.push_str("null"),
            }
        }
        line.push_str("]}");
        self.append(line)
    }

    /// Says that the bus took the batch last intended whole.
    pub fn sent(&mut self, last: &Offset) -> Result<()> {
        let mut line = String::from("{\"sent\":");
        Value::append_json_str(&mut line, &offset::to_json(last).to_string());
        line.push('}');
        self.append(line)
    }

    /// Empties the journal, once the cache holds all it told.
    pub fn clear(&mut self) -> Result<()> {
        self.file = None;
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot empty {}", self.path.display()))
            }
            _ => Ok(()),
        }
    }

    fn append(&mut self, mut line: String) -> Result<()> {
        if self.file.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&self.path)
                .with_context(|| format!("cannot open {}", self.path.display()))?;
            // A line a crash left unfinished is no batch (see `read`): cut
            // it, or the next line would be written onto its end and both
            // would read as damage.
            crate::lines::cut_torn_line(&file, &self.path)
                .with_context(|| format!("cannot write {}", self.path.display()))?;
            self.file = Some(file);
        }
        line.push('\n');
        self.file
            .as_mut()
            .map_or(Ok(()), |file| file.write_all(line.as_bytes()))
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(id: i64) -> Step {
        Step::Put {
            objtype: "SRVUsers".into(),
            key: id.to_string(),
            cached: Cached {
                pkey: Value::from(id),
                attrs: vec![
                    ("login".into(), Value::from(format!("user{id} \"é\"\n"))),
                    ("quota".into(), Value::Float(2.5)),
                    (
                        "tags".into(),
                        Value::List(vec![Value::Null, Value::from(true)]),
                    ),
                ],
            },
        }
    }

    #[test]
    fn batches_read_back_as_written_and_a_torn_last_line_is_no_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut journal = Journal::new(Journal::path(dir.path()));
        assert_eq!(journal.read().expect("none"), []);
        let schema = Value::Object(vec![("SRVUsers".into(), Value::empty_object())]);
        let first = [Some(Step::InitStart), Some(put(1)), None];
        journal
            .intend(None, &["a", "b", "c"], &first)
            .expect("intend");
        journal.sent(&Offset::Int(2)).expect("sent");
        let second = [
            Some(Step::Remove {
                objtype: "SRVUsers".into(),
                key: "1".into(),
            }),
            Some(Step::Dataschema(schema.clone())),
            Some(Step::InitStop(schema)),
        ];
        journal
            .intend(Some(&Offset::Int(2)), &["d", "e", "f"], &second)
            .expect("intend");
        let batches = journal.read().expect("read");
        assert_eq!(batches.len(), 2);
        assert_eq!(
            (batches[0].after.clone(), batches[0].sent.clone()),
            (None, Some(Offset::Int(2)))
        );
        assert_eq!(batches[0].steps, first);
        assert_eq!(batches[0].digests[1], digest("b"));
        assert_eq!(
            (batches[1].after.clone(), batches[1].sent.clone()),
            (Some(Offset::Int(2)), None)
        );
        assert_eq!(batches[1].steps, second);

        // A crash in the middle of a line: that batch was never sent.
        let path = Journal::path(dir.path());
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("{\"digests\": [\"ab");
        std::fs::write(&path, text).expect("write");
        assert_eq!(journal.read().expect("read").len(), 2);
        // The next run cuts it before it writes: its batch is a line of its
        // own, and every line reads back.
        let mut next = Journal::new(path.clone());
        next.intend(Some(&Offset::Int(5)), &["g"], &[None])
            .expect("intend");
        let batches = next.read().expect("read");
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].after, Some(Offset::Int(5)));
        assert!(
            std::fs::read_to_string(&path)
                .expect("read")
                .ends_with("[null]}\n")
        );
        // A torn line alone, longer than one piece of the search for the
        // last newline, is cut whole.
        std::fs::write(&path, format!("{{\"digests\": [\"{}", "a".repeat(200_000))).expect("write");
        let mut next = Journal::new(path.clone());
        next.intend(None, &["h"], &[None]).expect("intend");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 1, "{}", &text[..80.min(text.len())]);
        assert_eq!(next.read().expect("read").len(), 1);

        journal.clear().expect("clear");
        assert_eq!(journal.read().expect("empty"), []);
        journal.clear().expect("clearing an empty journal");
        for damaged in [
            "{\"sent\": 3}\nnot json\n",
            "{\"digests\": [\"a\"], \"steps\": [{\"put\": [\"T\", {\"pkey\": 1, \"attrs\": {}}]}]}\n",
            "{\"digests\": [\"a\"], \"steps\": [{\"remove\": [\"T\", \"1\", \"2\"]}]}\n",
            "{\"digests\": [\"a\", \"b\"], \"steps\": [null]}\n",
        ] {
            std::fs::write(&path, damaged).expect("write");
            let error = journal.read().expect_err(damaged).to_string();
            assert!(error.contains("line 1 is damaged"), "{error}");
        }

        // A journal that cannot be read or removed is an error, not empty.
        std::fs::remove_file(&path).expect("remove");
        std::fs::create_dir(&path).expect("a directory in its place");
        assert!(journal.read().is_err());
        assert!(journal.clear().is_err());
    }

    #[test]
    fn a_digest_is_the_first_half_of_the_sha256_in_hex() {
        assert_eq!(digest(""), "e3b0c44298fc1c149afbf4c8996fb924");
        assert_eq!(digest("abc"), "ba7816bf8f01cfea414140de5dae2223");
    }

    #[test]
    fn steps_change_the_cache_as_their_events_tell() {
        let mut cache = ServerCache::default();
        let schema = Value::from("schema");
        Step::InitStart.apply(&mut cache);
        assert!(cache.initsync_started && !cache.initsync_done);
        put(1).apply(&mut cache);
        put(2).apply(&mut cache);
        Step::InitStop(schema.clone()).apply(&mut cache);
        assert!(!cache.initsync_started && cache.initsync_done);
        assert_eq!(cache.dataschema, Some(schema));
        Step::Remove {
            objtype: "SRVUsers".into(),
            key: "1".into(),
        }
        .apply(&mut cache);
        let keys: Vec<_> = cache.objects["SRVUsers"].keys().cloned().collect();
        assert_eq!(keys, ["2"]);
        // An initsync asked for again does not reopen the first one.
        Step::InitStart.apply(&mut cache);
        assert!(!cache.initsync_started);
    }
}
