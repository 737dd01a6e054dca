//! The server's cache: what the clients were last told, by type and primary
//! key, saved atomically in the cache directory as hermes JSON.
//!
//! Secret attributes are kept only as a SHA-256 digest: enough to notice a
//! change, never the value.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use hermes_event::Value;
use hermes_host::{Offset, offset};
use indexmap::IndexMap;
use sha2::{Digest, Sha256};

use super::mapping::Row;

/// One object as cached: its key and its attributes (secrets as digests).
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    /// The primary key value.
    pub pkey: Value,
    /// The attributes, cacheonly ones included.
    pub attrs: Row,
}

/// The objects of every type, by the primary key's compact JSON.
pub type Objects = IndexMap<String, BTreeMap<String, Cached>>;

/// Everything the server remembers between polls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerCache {
    /// Whether the cache is the state changes are sent against: an
    /// initsync sequence went out whole, or (waiting for an initsync, as
    /// hermes does) the first poll filled it.
    pub initsync_done: bool,
    /// Whether the first initsync sequence began and was cut short (the
    /// server was killed): the next poll goes on with it.
    pub initsync_started: bool,
    /// The offset of the last event the bus took.
    pub lastoffset: Option<Offset>,
    /// The dataschema clients last received.
    pub dataschema: Option<Value>,
    /// The objects clients know.
    pub objects: Objects,
    /// The data errors the last poll met (a primary key twice in the
    /// datasource), as reported: a change is news.
    pub data_errors: Vec<String>,
}

/// The value a secret is cached as.
pub fn digest(value: &Value) -> Value {
    let hash = Sha256::digest(value.to_json_compact().as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    Value::String(format!("sha256:{hex}"))
}

impl ServerCache {
    /// The cache file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("hermes-server.json")
    }

    /// Reads the cache; a missing file is an empty cache (a first run).
    pub fn load(path: &Path) -> Result<ServerCache> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ServerCache::default()),
            Err(e) => return Err(e).with_context(|| format!("cache {}", path.display())),
        };
        let damaged = |why: String| anyhow!("cache {} is damaged: {why}", path.display());
        let root = Value::from_json(&text).map_err(|e| damaged(e.to_string()))?;
        drop(text);
        let Value::Object(entries) = root else {
            return Err(damaged("it is not a JSON object".into()));
        };
        // The values move out of the document: the cache is never held twice.
        let mut cache = ServerCache::default();
        for (name, value) in entries {
            match (name.as_str(), value) {
                ("initsync_done", value) => cache.initsync_done = value == Value::Bool(true),
                ("initsync_started", value) => cache.initsync_started = value == Value::Bool(true),
                ("lastoffset", Value::String(text)) => {
                    cache.lastoffset = Some(
                        offset::parse(&text).map_err(|e| damaged(format!("lastoffset: {e}")))?,
                    )
                }
                ("data_errors", Value::List(errors)) => {
                    cache.data_errors = errors
                        .into_iter()
                        .filter_map(|e| match e {
                            Value::String(text) => Some(text),
                            _ => None,
                        })
                        .collect()
                }
                ("dataschema", Value::Null) => cache.dataschema = None,
                ("dataschema", schema) => cache.dataschema = Some(schema),
                ("objects", Value::Object(types)) => {
                    for (objtype, list) in types {
                        let Value::List(list) = list else {
                            return Err(damaged(format!("objects.{objtype} is not a list")));
                        };
                        let mut by_key = BTreeMap::new();
                        for entry in list {
                            let cached = cached_entry(entry).ok_or_else(|| {
                                damaged(format!("an object of {objtype} lacks pkey or attrs"))
                            })?;
                            by_key.insert(cached.pkey.to_json_compact(), cached);
                        }
                        cache.objects.insert(objtype, by_key);
                    }
                }
                _ => {}
            }
        }
        Ok(cache)
    }

    /// Writes the cache atomically: a crash leaves the old file or the new one.
    /// It is written one object at a time, never built whole in memory; the
    /// file reads as the whole cache written by `Value::to_json` would.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic_file::write_with(path, |out| self.write(out))
            .with_context(|| format!("cannot save the cache {}", path.display()))
    }

    fn write(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut piece = String::with_capacity(4096);
        piece.push_str("{\n    \"initsync_done\": ");
        Value::Bool(self.initsync_done).append_json(&mut piece, 1);
        if self.initsync_started {
            piece.push_str(",\n    \"initsync_started\": true");
        }
        if let Some(last) = &self.lastoffset {
            piece.push_str(",\n    \"lastoffset\": ");
            Value::from(offset::to_json(last).to_string()).append_json(&mut piece, 1);
        }
        if !self.data_errors.is_empty() {
            piece.push_str(",\n    \"data_errors\": ");
            Value::List(
                self.data_errors
                    .iter()
                    .map(|e| Value::from(e.as_str()))
                    .collect(),
            )
            .append_json(&mut piece, 1);
        }
        piece.push_str(",\n    \"dataschema\": ");
        match &self.dataschema {
            Some(schema) => schema.append_json(&mut piece, 1),
            None => piece.push_str("null"),
        }
        piece.push_str(",\n    \"objects\": {");
        for (t, (objtype, by_key)) in self.objects.iter().enumerate() {
            piece.push_str(if t == 0 { "\n        " } else { ",\n        " });
            Value::from(objtype.as_str()).append_json(&mut piece, 2);
            piece.push_str(": [");
            for (i, cached) in by_key.values().enumerate() {
                piece.push_str(if i == 0 {
                    "\n            "
                } else {
                    ",\n            "
                });
                entry_value(cached).append_json(&mut piece, 3);
                out.write_all(piece.as_bytes())?;
                piece.clear();
            }
            piece.push_str(if by_key.is_empty() {
                "]"
            } else {
                "\n        ]"
            });
        }
        piece.push_str(if self.objects.is_empty() {
            "}\n}"
        } else {
            "\n    }\n}"
        });
        out.write_all(piece.as_bytes())
    }
}

/// One cached object as it is written, `{"pkey": .., "attrs": {..}}`.
fn entry_value(cached: &Cached) -> Value {
    Value::Object(vec![
        ("pkey".into(), cached.pkey.clone()),
        ("attrs".into(), Value::Object(cached.attrs.clone())),
    ])
}

/// One cached object read back, `{"pkey": .., "attrs": {..}}`.
pub(super) fn cached_entry(entry: Value) -> Option<Cached> {
    let Value::Object(fields) = entry else {
        return None;
    };
    let (mut pkey, mut attrs) = (None, None);
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("pkey", value) => pkey = Some(value),
            ("attrs", Value::Object(row)) => attrs = Some(row),
            _ => {}
        }
    }
    Some(Cached {
        pkey: pkey?,
        attrs: attrs?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(pairs: &[(&str, Value)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn sample() -> ServerCache {
        let mut users = BTreeMap::new();
        for (id, login) in [(1, "alice"), (2, "bob\u{e9}")] {
            let cached = Cached {
                pkey: Value::from(id),
                attrs: object(&[
                    ("id", Value::from(id)),
                    ("login", Value::from(login)),
                    ("quota", Value::Float(2.5)),
                    ("tags", Value::List(vec![Value::from("a"), Value::Null])),
                ]),
            };
            users.insert(cached.pkey.to_json_compact(), cached);
        }
        let mut pairs = BTreeMap::new();
        let cached = Cached {
            pkey: Value::List(vec![Value::from("Beta"), Value::from(120)]),
            attrs: Row::new(),
        };
        pairs.insert(cached.pkey.to_json_compact(), cached);
        let mut objects = Objects::new();
        objects.insert("SRVUsers".into(), users);
        objects.insert("SRVEmpty".into(), BTreeMap::new());
        objects.insert("SRVPairs".into(), pairs);
        ServerCache {
            initsync_done: true,
            initsync_started: false,
            lastoffset: Some(Offset::Str("1700000000000-3".into())),
            dataschema: Some(Value::Object(vec![(
                "SRVUsers".into(),
                Value::Object(vec![("HERMES_ATTRIBUTES".into(), Value::List(vec![]))]),
            )])),
            objects,
            data_errors: vec!["SRVUsers: the primary key 3 appears twice".into()],
        }
    }

    /// The cache as one document, as it was written before it was streamed.
    fn document(cache: &ServerCache) -> Value {
        let objects = cache
            .objects
            .iter()
            .map(|(objtype, by_key)| {
                let list = by_key
                    .values()
                    .map(|c| {
                        Value::Object(vec![
                            ("pkey".into(), c.pkey.clone()),
                            ("attrs".into(), Value::Object(c.attrs.clone())),
                        ])
                    })
                    .collect();
                (objtype.clone(), Value::List(list))
            })
            .collect();
        let mut fields = vec![("initsync_done".into(), Value::Bool(cache.initsync_done))];
        if cache.initsync_started {
            fields.push(("initsync_started".into(), Value::Bool(true)));
        }
        if let Some(last) = &cache.lastoffset {
            fields.push((
                "lastoffset".into(),
                Value::from(offset::to_json(last).to_string()),
            ));
        }
        if !cache.data_errors.is_empty() {
            let errors = cache.data_errors.iter().map(|e| Value::from(e.as_str()));
            fields.push(("data_errors".into(), Value::List(errors.collect())));
        }
        fields.push((
            "dataschema".into(),
            cache.dataschema.clone().unwrap_or(Value::Null),
        ));
        fields.push(("objects".into(), Value::Object(objects)));
        Value::Object(fields)
    }

    #[test]
    fn the_streamed_file_is_the_whole_document_byte_for_byte_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = ServerCache::path(dir.path());
        for cache in [sample(), ServerCache::default()] {
            cache.save(&path).expect("save");
            let text = std::fs::read_to_string(&path).expect("read");
            assert_eq!(text, document(&cache).to_json());
            assert_eq!(ServerCache::load(&path).expect("load"), cache);
        }
    }

    #[test]
    fn a_missing_file_is_a_first_run_and_a_damaged_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = ServerCache::path(dir.path());
        assert_eq!(
            ServerCache::load(&path).expect("no file"),
            ServerCache::default()
        );
        for (text, why) in [
            ("[1]", "it is not a JSON object"),
            (
                r#"{"objects": {"SRVUsers": 3}}"#,
                "objects.SRVUsers is not a list",
            ),
            (
                r#"{"objects": {"SRVUsers": [{"pkey": 1}]}}"#,
                "an object of SRVUsers lacks pkey or attrs",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let error = ServerCache::load(&path).expect_err(text).to_string();
            assert_eq!(
                error,
                format!("cache {} is damaged: {why}", path.display()),
                "{text}"
            );
        }
    }
}
