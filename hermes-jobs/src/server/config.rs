//! hermes-server's configuration: the datasources, the datamodel and the
//! message bus, read and checked before anything runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use indexmap::IndexMap;
use serde::Deserialize;

use crate::config::{self, HermesSection};

/// A server configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a mapping")]
pub struct ServerConfig {
    /// Plugins and cache.
    pub hermes: HermesSection,
    /// The server's own section.
    #[serde(rename = "hermes-server")]
    pub server: ServerSection,
}

/// `hermes-server`.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a mapping")]
pub struct ServerSection {
    /// Seconds between two polls.
    #[serde(rename = "updateInterval", default = "default_interval")]
    pub update_interval: u64,
    /// The data types, in the order their events are emitted.
    pub datamodel: IndexMap<String, TypeSpec>,
}

fn default_interval() -> u64 {
    60
}

/// The intervals between two polls an operator may set, in seconds: up to
/// a week.
pub const UPDATE_INTERVAL_SECONDS: std::ops::RangeInclusive<u64> = 1..=604_800;

/// `hermes-server.datamodel.<type>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping")]
pub struct TypeSpec {
    /// The primary key: one attribute, or a list for a composite key.
    pub primarykeyattr: PrimaryKey,
    /// Attributes that refer to another type's attribute.
    pub foreignkeys: IndexMap<String, ForeignKey>,
    /// Where the objects come from: one source.
    pub sources: IndexMap<String, SourceSpec>,
    /// hermes' display template for an object; accepted, not used.
    #[serde(default, rename = "toString")]
    pub to_string: Option<String>,
    /// hermes' choice between sources that disagree; with one source there
    /// is nothing to choose: accepted, checked, not used.
    #[serde(default)]
    pub on_merge_conflict: Option<String>,
    /// Jinja tests each object must pass to be sent: those that fail are
    /// left out, as if the datasource did not hold them.
    #[serde(default)]
    pub integrity_constraints: Vec<String>,
}

/// Whether hermes accepts `name` as a type name: a letter, then a letter or
/// a digit, then anything.
fn valid_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && !name.contains('\n')
}

/// A primary key: one attribute or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "an attribute name or a list of attribute names")]
pub enum PrimaryKey {
    /// One attribute.
    One(String),
    /// A composite key.
    Composite(Vec<String>),
}

impl PrimaryKey {
    /// The key's attributes, in order.
    pub fn attrs(&self) -> Vec<String> {
        match self {
            PrimaryKey::One(attr) => vec![attr.clone()],
            PrimaryKey::Composite(attrs) => attrs.clone(),
        }
    }
}

/// `foreignkeys.<attr>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping")]
pub struct ForeignKey {
    /// The type referred to.
    pub from_objtype: String,
    /// Its attribute.
    pub from_attr: String,
}

/// `sources.<datasource>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping")]
pub struct SourceSpec {
    /// The query that reads the objects.
    pub fetch: QuerySpec,
    /// Local attribute: remote attribute, Jinja template, or a list of
    /// remote attributes.
    pub attrsmapping: IndexMap<String, AttrSource>,
    /// Attributes sent to clients but never logged nor cached in clear.
    #[serde(default)]
    pub secrets_attrs: Vec<String>,
    /// Attributes kept in the cache, never sent.
    #[serde(default)]
    pub cacheonly_attrs: Vec<String>,
    /// Attributes neither sent nor cached.
    #[serde(default)]
    pub local_attrs: Vec<String>,
    /// hermes' write-back queries: not supported.
    #[serde(default)]
    pub commit_one: Option<serde_yaml_ng::Value>,
    /// hermes' write-back queries: not supported.
    #[serde(default)]
    pub commit_all: Option<serde_yaml_ng::Value>,
    /// hermes' multi-source merging: not supported.
    #[serde(default)]
    pub pkey_merge_constraint: Option<serde_yaml_ng::Value>,
    /// hermes' multi-source merging: not supported.
    #[serde(default)]
    pub merge_constraints: Option<serde_yaml_ng::Value>,
}

/// Where a local attribute's value comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a remote attribute, a Jinja template, or a list of remote attributes"
)]
pub enum AttrSource {
    /// A remote attribute's name, or a template.
    One(String),
    /// Remote attributes' names: the list of their values that are not null.
    List(Vec<String>),
}

/// `fetch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping")]
pub struct QuerySpec {
    /// `fetch`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The SQL query, a Jinja template with `REMOTE_ATTRIBUTES` and `vars`.
    pub query: String,
    /// Extra variables for the query template.
    #[serde(default)]
    pub vars: IndexMap<String, serde_json::Value>,
}

impl ServerConfig {
    /// Reads and checks a server configuration file.
    pub fn read(path: &Path) -> Result<ServerConfig> {
        ServerConfig::parse(&config::read_text(path)?, path)
    }

    /// Parses and checks a configuration's text, read from `path` (which
    /// errors name, and against which relative paths resolve).
    pub fn parse(text: &str, path: &Path) -> Result<ServerConfig> {
        let config: ServerConfig = config::parse(text, path)?;
        config
            .check(&config::base_dir(path))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// What serde cannot check: references between parts, unsupported parts.
    fn check(&self, base: &Path) -> Result<()> {
        if !UPDATE_INTERVAL_SECONDS.contains(&self.server.update_interval) {
            bail!(
                "hermes-server.updateInterval: {} is out of range ({} to {} seconds)",
                self.server.update_interval,
                UPDATE_INTERVAL_SECONDS.start(),
                UPDATE_INTERVAL_SECONDS.end()
            );
        }
        if self.server.datamodel.is_empty() {
            bail!("hermes-server.datamodel: no data type is defined");
        }
        for name in self.hermes.plugins.datasources.keys() {
            self.datasource_file(base, name)
                .map_err(|e| anyhow::anyhow!("hermes.plugins.datasources.{name}.{e}"))?;
        }
        for (objtype, spec) in &self.server.datamodel {
            let at = format!("hermes-server.datamodel.{objtype}");
            if !valid_type_name(objtype) {
                bail!(
                    "{at}: `{objtype}` is not a valid type name (a letter, then a letter \
                     or a digit, then anything: hermes' `^[a-zA-Z][a-zA-Z0-9].*$`)"
                );
            }
            if let Some(policy) = &spec.on_merge_conflict
                && !["keep_first_value", "use_cached_entry"].contains(&policy.as_str())
            {
                bail!(
                    "{at}.on_merge_conflict: `{policy}` is not one of keep_first_value, \
                     use_cached_entry"
                );
            }
            let (source_name, source) = match spec.sources.len() {
                1 => spec.sources.first().expect("one source"),
                0 => bail!("{at}.sources: no source is defined"),
                n => bail!("{at}.sources: {n} sources; merging several sources is not supported"),
            };
            let at = format!("{at}.sources.{source_name}");
            if !self.hermes.plugins.datasources.contains_key(source_name) {
                bail!(
                    "{at}: unknown datasource `{source_name}` (not in hermes.plugins.datasources)"
                );
            }
            for (key, value) in [
                ("commit_one", &source.commit_one),
                ("commit_all", &source.commit_all),
                ("pkey_merge_constraint", &source.pkey_merge_constraint),
                ("merge_constraints", &source.merge_constraints),
            ] {
                if value.is_some() {
                    bail!("{at}.{key}: not supported by hermes-wasm");
                }
            }
            if source.fetch.kind != "fetch" {
                bail!(
                    "{at}.fetch.type: `{}` is not supported (only `fetch`)",
                    source.fetch.kind
                );
            }
            let attrs: BTreeSet<&str> = source.attrsmapping.keys().map(String::as_str).collect();
            for attr in spec.primarykeyattr.attrs() {
                if !attrs.contains(attr.as_str()) {
                    bail!(
                        "hermes-server.datamodel.{objtype}.primarykeyattr: `{attr}` is not in attrsmapping"
                    );
                }
            }
            for (list, names) in [
                ("secrets_attrs", &source.secrets_attrs),
                ("cacheonly_attrs", &source.cacheonly_attrs),
                ("local_attrs", &source.local_attrs),
            ] {
                if let Some(unknown) = names.iter().find(|n| !attrs.contains(n.as_str())) {
                    bail!("{at}.{list}: `{unknown}` is not in attrsmapping");
                }
            }
            // As in hermes, a foreign key links primary keys: it is (part
            // of) this type's key, and is the other type's key.
            for (attr, fk) in &spec.foreignkeys {
                let fk_at = format!("hermes-server.datamodel.{objtype}.foreignkeys.{attr}");
                if !attrs.contains(attr.as_str()) {
                    bail!("{fk_at}: `{attr}` is not in attrsmapping");
                }
                match &spec.primarykeyattr {
                    PrimaryKey::One(pkey) if pkey != attr => bail!(
                        "{fk_at}: `{attr}` is not the primary key of {objtype} \
                         (a foreign key must be the primary key, or part of it)"
                    ),
                    PrimaryKey::Composite(pkey) if !pkey.contains(attr) => bail!(
                        "{fk_at}: `{attr}` is not part of the primary key of {objtype} \
                         (a foreign key must be the primary key, or part of it)"
                    ),
                    _ => {}
                }
                let Some(other) = self.server.datamodel.get(&fk.from_objtype) else {
                    bail!("{fk_at}.from_objtype: unknown type `{}`", fk.from_objtype);
                };
                let known = other
                    .sources
                    .values()
                    .any(|s| s.attrsmapping.contains_key(&fk.from_attr));
                if !known {
                    bail!(
                        "{fk_at}.from_attr: `{}` is not an attribute of {}",
                        fk.from_attr,
                        fk.from_objtype
                    );
                }
                match &other.primarykeyattr {
                    PrimaryKey::One(pkey) if *pkey == fk.from_attr => {}
                    PrimaryKey::One(_) => bail!(
                        "{fk_at}.from_attr: `{}` is not the primary key of {}",
                        fk.from_attr,
                        fk.from_objtype
                    ),
                    PrimaryKey::Composite(_) => bail!(
                        "{fk_at}.from_objtype: {} has a composite primary key, which a \
                         foreign key cannot point to",
                        fk.from_objtype
                    ),
                }
            }
        }
        Ok(())
    }

    /// The database file of a datasource, which must be of type `sqlite`.
    pub fn datasource_file(&self, base: &Path, name: &str) -> Result<PathBuf> {
        let Some(spec) = self.hermes.plugins.datasources.get(name) else {
            bail!("unknown datasource `{name}`");
        };
        if spec.kind != "sqlite" {
            bail!(
                "type: `{}` datasources are not supported (only `sqlite`)",
                spec.kind
            );
        }
        match spec.settings.get("uri").and_then(|uri| uri.as_str()) {
            Some(uri) => Ok(config::resolve(base, Path::new(uri))),
            None => bail!("settings.uri: the database file is required"),
        }
    }
}
