//! The datamodel as the server uses it: each type's key, its attribute
//! classes, its source, and the dataschema clients receive.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use hermes_event::Value;
use minijinja::Environment;
use minijinja::value::Value as JinjaValue;

use super::config::ServerConfig;
use super::datasource::SqliteSource;
use super::diff::Current;
use super::jinja::{self, Template};
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
    /// `integrity_constraints`: each object must pass them all.
    constraints: Vec<Template>,
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
    /// Where integrity constraints are rendered.
    env: Environment<'static>,
    /// The variables integrity constraints read.
    constraint_vars: BTreeSet<String>,
}

impl Model {
    /// Builds the model from a checked configuration.
    pub fn new(config: &ServerConfig, base: &Path) -> Result<Model> {
        let env = jinja::environment();
        let mut types = Vec::new();
        let mut constraint_vars = BTreeSet::new();
        for (name, spec) in &config.server.datamodel {
            let mut constraints = Vec::new();
            for (i, source) in spec.integrity_constraints.iter().enumerate() {
                let at = format!("hermes-server.datamodel.{name}.integrity_constraints[{i}]");
                let template = jinja::parts(source)
                    .and_then(|parts| Template::new(&env, parts))
                    .map_err(|e| anyhow!("{at}: {e:#}"))?;
                for var in template.variables() {
                    let known =
                        var == "_SELF"
                            || config.server.datamodel.keys().any(|t| {
                                var == t || var.strip_suffix("_pkeys") == Some(t.as_str())
                            });
                    if !known {
                        bail!(
                            "{at}: unknown variable `{var}` (known: _SELF, and each type's \
                             name, and name_pkeys)"
                        );
                    }
                    constraint_vars.insert(var.clone());
                }
                constraints.push(template);
            }
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
                constraints,
                source: SqliteSource::new(&config.datasource_file(base, source_name)?),
                query,
                mapping,
            });
        }
        Ok(Model {
            types,
            env,
            constraint_vars,
        })
    }

    /// Leaves out the objects that fail their type's integrity
    /// constraints, as hermes does: again and again while some are left
    /// out, since a constraint may read other types' objects. Returns how
    /// many were left out of each type.
    pub fn enforce_integrity(&self, current: &mut Current) -> Result<Vec<usize>> {
        let mut left_out = vec![0; self.types.len()];
        if self.types.iter().all(|t| t.constraints.is_empty()) {
            return Ok(left_out);
        }
        let compiled = self
            .types
            .iter()
            .map(|t| {
                t.constraints
                    .iter()
                    .map(|c| c.compile(&self.env))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let native = |attrs: &Row| {
            JinjaValue::from_pairs(attrs.iter().map(|(k, v)| (k.clone(), jinja::to_jinja(v))))
        };
        loop {
            // The other types' objects and keys, as the constraints read them.
            let mut base = Vec::new();
            for (datatype, objects) in self.types.iter().zip(current.iter()) {
                let pkeys = format!("{}_pkeys", datatype.name);
                if self.constraint_vars.contains(&pkeys) {
                    let keys = objects
                        .values()
                        .map(|(pkey, _)| (jinja::to_jinja(pkey), JinjaValue::from(true)));
                    base.push((pkeys, JinjaValue::from_pairs(keys)));
                }
                if self.constraint_vars.contains(&datatype.name) {
                    let all: Vec<JinjaValue> = objects.values().map(|(_, a)| native(a)).collect();
                    base.push((datatype.name.clone(), JinjaValue::from(all)));
                }
            }
            let mut changed = false;
            for (t, constraints) in compiled.iter().enumerate() {
                if constraints.is_empty() {
                    continue;
                }
                let mut failing = Vec::new();
                for (key, (_, attrs)) in &current[t] {
                    let context = JinjaValue::from_pairs(
                        base.iter()
                            .cloned()
                            .chain(std::iter::once(("_SELF".to_string(), native(attrs)))),
                    );
                    for (i, constraint) in constraints.iter().enumerate() {
                        let passes = constraint.render(&context).with_context(|| {
                            format!(
                                "hermes-server.datamodel.{}.integrity_constraints[{i}]",
                                self.types[t].name
                            )
                        })?;
                        if !truthy(&passes) {
                            failing.push(key.clone());
                            break;
                        }
                    }
                }
                if !failing.is_empty() {
                    changed = true;
                    left_out[t] += failing.len();
                    for key in failing {
                        current[t].shift_remove(&key);
                    }
                }
            }
            if !changed {
                return Ok(left_out);
            }
        }
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

/// Python's truth of a value: none, false, zero and empty are false.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Integer(n) => n.as_i64() != Some(0),
        Value::Float(x) => *x != 0.0,
        Value::String(s) => !s.is_empty(),
        Value::Bytes(b) => !b.is_empty(),
        Value::Datetime(_) => true,
        Value::List(items) => !items.is_empty(),
        Value::Object(entries) => !entries.is_empty(),
    }
}
