//! The server's cache: what the clients were last told, by type and primary
//! key, saved atomically in the cache directory as hermes JSON.
//!
//! Secret attributes are kept only as a SHA-256 digest: enough to notice a
//! change, never the value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use hermes_event::Value;
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
    /// Whether an initsync sequence went out whole.
    pub initsync_done: bool,
    /// The dataschema clients last received.
    pub dataschema: Option<Value>,
    /// The objects clients know.
    pub objects: Objects,
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
        let initsync_done = matches!(root.get("initsync_done"), Some(Value::Bool(true)));
        let dataschema = match root.get("dataschema") {
            None | Some(Value::Null) => None,
            Some(schema) => Some(schema.clone()),
        };
        let mut objects = Objects::new();
        if let Some(Value::Object(types)) = root.get("objects") {
            for (objtype, list) in types {
                let Value::List(list) = list else {
                    return Err(damaged(format!("objects.{objtype} is not a list")));
                };
                let mut by_key = BTreeMap::new();
                for entry in list {
                    let (Some(pkey), Some(Value::Object(attrs))) =
                        (entry.get("pkey"), entry.get("attrs"))
                    else {
                        return Err(damaged(format!(
                            "an object of {objtype} lacks pkey or attrs"
                        )));
                    };
                    by_key.insert(
                        pkey.to_json_compact(),
                        Cached {
                            pkey: pkey.clone(),
                            attrs: attrs.clone(),
                        },
                    );
                }
                objects.insert(objtype.clone(), by_key);
            }
        }
        Ok(ServerCache {
            initsync_done,
            dataschema,
            objects,
        })
    }

    /// Writes the cache atomically: a crash leaves the old file or the new one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let objects = self
            .objects
            .iter()
            .map(|(objtype, by_key)| {
                let list = by_key
                    .values()
                    .map(|cached| {
                        Value::Object(vec![
                            ("pkey".into(), cached.pkey.clone()),
                            ("attrs".into(), Value::Object(cached.attrs.clone())),
                        ])
                    })
                    .collect();
                (objtype.clone(), Value::List(list))
            })
            .collect();
        let root = Value::Object(vec![
            ("initsync_done".into(), Value::Bool(self.initsync_done)),
            (
                "dataschema".into(),
                self.dataschema.clone().unwrap_or(Value::Null),
            ),
            ("objects".into(), Value::Object(objects)),
        ]);
        crate::atomic_file::write(path, root.to_json().as_bytes())
            .with_context(|| format!("cannot save the cache {}", path.display()))
    }
}

/// Refuses a cache holding a type the datamodel no longer has: what clients
/// should do with its objects is the operator's call, not a guess.
pub fn check_types(cache: &ServerCache, known: &[&str]) -> Result<()> {
    for objtype in cache.objects.keys() {
        if !known.contains(&objtype.as_str()) {
            bail!("the cache holds type {objtype}, which the datamodel no longer has");
        }
    }
    Ok(())
}
