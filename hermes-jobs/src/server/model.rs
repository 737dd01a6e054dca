//! The datamodel as the server uses it: each type's key, its attribute
//! classes, its source, and the dataschema clients receive.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use hermes_event::Value;

use super::config::ServerConfig;
use super::datasource::SqliteSource;
use super::mapping::{Mapping, Row};

/// One data type.
pub struct DataType {
    /// Its name, such as `SRVUsers`.
    pub name: String,
    /// The primary key's attributes.
    pub pkey: Vec<String>,
    /// Whether the key is a list (composite), even of one attribute.
    pub composite: bool,
    /// `[attr, [type, attr]]` foreign keys, in configuration order.
    pub foreign_keys: Vec<(String, String, String)>,
    /// Attributes sent to clients, in mapping order.
    pub sent: Vec<String>,
    /// Attributes sent but never logged, and cached only as a digest.
    pub secrets: BTreeSet<String>,
    /// Attributes cached but never sent.
    pub cacheonly: BTreeSet<String>,
    /// Attributes neither sent nor cached.
    pub local: BTreeSet<String>,
    source: SqliteSource,
    query: String,
    mapping: Mapping,
}

impl DataType {
    /// The type's objects as the datasource holds them now: each object's
    /// attributes in mapping order, without local attributes and nulls.
    pub async fn fetch(&self) -> Result<Vec<Row>> {
        let rows = self.source.fetch(self.query.clone()).await?;
        let objects = self.mapping.apply(rows)?;
        Ok(objects
            .into_iter()
            .map(|attrs| {
                attrs
                    .into_iter()
                    .filter(|(name, value)| !self.local.contains(name) && *value != Value::Null)
                    .collect()
            })
            .collect())
    }

    /// The object's primary key: a value, or a list for a composite key.
    pub fn key_of(&self, attrs: &Row) -> Result<Value> {
        let mut parts = Vec::with_capacity(self.pkey.len());
        for attr in &self.pkey {
            let value = attrs
                .iter()
                .find(|(name, _)| name == attr)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| anyhow!("{}: an object has no primary key `{attr}`", self.name))?;
            parts.push(value);
        }
        Ok(if self.composite {
            Value::List(parts)
        } else {
            parts.remove(0)
        })
    }

    /// This type's entry in the dataschema.
    fn schema(&self) -> Value {
        let sorted = |names: &mut dyn Iterator<Item = &String>| {
            let set: BTreeSet<&String> = names.collect();
            Value::List(set.into_iter().map(|n| Value::from(n.as_str())).collect())
        };
        let pkey = if self.composite {
            Value::List(self.pkey.iter().map(|a| Value::from(a.as_str())).collect())
        } else {
            Value::from(self.pkey[0].as_str())
        };
        Value::Object(vec![
            ("HERMES_ATTRIBUTES".into(), sorted(&mut self.sent.iter())),
            (
                "SECRETS_ATTRIBUTES".into(),
                sorted(&mut self.secrets.iter().filter(|s| self.sent.contains(s))),
            ),
            ("PRIMARYKEY_ATTRIBUTE".into(), pkey),
            (
                "FOREIGN_KEYS".into(),
                Value::Object(
                    self.foreign_keys
                        .iter()
                        .map(|(attr, objtype, other)| {
                            (
                                attr.clone(),
                                Value::List(vec![
                                    Value::from(objtype.as_str()),
                                    Value::from(other.as_str()),
                                ]),
                            )
                        })
                        .collect(),
                ),
            ),
        ])
    }
}

/// The datamodel, in emission order.
pub struct Model {
    /// The types, in the configuration's order.
    pub types: Vec<DataType>,
}

impl Model {
    /// Builds the model from a checked configuration.
    pub fn new(config: &ServerConfig, base: &Path) -> Result<Model> {
        let mut types = Vec::new();
        for (name, spec) in &config.server.datamodel {
            let (source_name, source) = spec.sources.first().expect("checked: one source");
            let at = format!("hermes-server.datamodel.{name}.sources.{source_name}");
            let mapping = Mapping::new(&source.attrsmapping).with_context(|| at.clone())?;
            let query = mapping
                .render_query(&source.fetch.query, &source.fetch.vars)
                .with_context(|| at.clone())?;
            let local: BTreeSet<String> = source.local_attrs.iter().cloned().collect();
            let cacheonly: BTreeSet<String> = source.cacheonly_attrs.iter().cloned().collect();
            let sent = source
                .attrsmapping
                .keys()
                .filter(|a| !local.contains(*a) && !cacheonly.contains(*a))
                .cloned()
                .collect();
            types.push(DataType {
                name: name.clone(),
                composite: matches!(spec.primarykeyattr, super::config::PrimaryKey::Composite(_)),
                pkey: spec.primarykeyattr.attrs(),
                foreign_keys: spec
                    .foreignkeys
                    .iter()
                    .map(|(attr, fk)| (attr.clone(), fk.from_objtype.clone(), fk.from_attr.clone()))
                    .collect(),
                sent,
                secrets: source.secrets_attrs.iter().cloned().collect(),
                cacheonly,
                local,
                source: SqliteSource::new(&config.datasource_file(base, source_name)?),
                query,
                mapping,
            });
        }
        Ok(Model { types })
    }

    /// The dataschema: one entry per type, in order.
    pub fn dataschema(&self) -> Value {
        Value::Object(
            self.types
                .iter()
                .map(|t| (t.name.clone(), t.schema()))
                .collect(),
        )
    }
}
