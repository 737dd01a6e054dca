//! `attrsmapping`: from a datasource's row (remote attributes) to an object's
//! local attributes, as hermes maps them.
//!
//! Each local attribute is a remote attribute's value, a list of remote
//! attributes' values (`[a, b]`: those that are not null), or a template of
//! `{{ }}` expressions only (see `jinja`: its value is read as hermes reads
//! it). Text around or between expressions is refused, as hermes refuses
//! it: it could not tell the remote attribute from it. A list loses its
//! null items, and an attribute that comes out null, `[]` or `{}` is absent.

use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow};
use hermes_event::Value;
use indexmap::IndexMap;
use minijinja::Environment;
use minijinja::value::Value as JinjaValue;

use super::config::AttrSource;
use super::jinja::{self, Compiled, Part, Template};

/// One row of a datasource: column name and value, in column order.
pub type Row = Vec<(String, Value)>;

/// How a local attribute gets its value.
enum Rule {
    /// The remote attribute's value.
    Remote(String),
    /// The remote attributes' values that are not null.
    Remotes(Vec<String>),
    /// A template's value.
    Template(Template),
}

/// The compiled `attrsmapping` of one source.
pub struct Mapping {
    env: Environment<'static>,
    rules: Vec<(String, Rule)>,
    remote: Vec<String>,
}

impl Mapping {
    /// Compiles a mapping; an error names the attribute.
    pub fn new(attrsmapping: &IndexMap<String, AttrSource>) -> Result<Mapping> {
        let env = jinja::environment();
        let mut rules = Vec::with_capacity(attrsmapping.len());
        let mut remote = BTreeSet::new();
        for (local, source) in attrsmapping {
            let at = |e: anyhow::Error| anyhow!("attrsmapping.{local}: {e:#}");
            let rule = match source {
                AttrSource::List(names) => {
                    if let Some(name) = names.iter().find(|n| jinja::is_template(n)) {
                        return Err(at(anyhow!(
                            "`{name}`: a list holds remote attribute names, not templates"
                        )));
                    }
                    remote.extend(names.iter().cloned());
                    Rule::Remotes(names.clone())
                }
                AttrSource::One(name) if !jinja::is_template(name) => {
                    if name.is_empty() {
                        return Err(at(anyhow!("the value is empty")));
                    }
                    remote.insert(name.clone());
                    Rule::Remote(name.clone())
                }
                AttrSource::One(text) => {
                    let parts = jinja::parts(text).map_err(at)?;
                    if parts.iter().any(|p| matches!(p, Part::Text(_))) {
                        return Err(at(anyhow!(
                            "`{text}` mixes text with templates, so the remote attribute \
                             cannot be told from it (write one expression, such as \
                             `{{{{ a ~ ' ' ~ b }}}}`)"
                        )));
                    }
                    let template = Template::new(&env, parts).map_err(at)?;
                    let variables = template.variables().to_vec();
                    if let Some(reserved) = variables
                        .iter()
                        .find(|v| jinja::RESERVED.contains(&v.as_str()))
                    {
                        return Err(at(anyhow!(
                            "`{reserved}` is not supported by hermes-wasm in attrsmapping"
                        )));
                    }
                    remote.extend(variables);
                    Rule::Template(template)
                }
            };
            rules.push((local.clone(), rule));
        }
        Ok(Mapping {
            env,
            rules,
            remote: remote.into_iter().collect(),
        })
    }

    /// The remote attributes the mapping reads, sorted: `REMOTE_ATTRIBUTES`.
    pub fn remote_attributes(&self) -> &[String] {
        &self.remote
    }

    /// Renders a fetch query, a template with `REMOTE_ATTRIBUTES` and `vars`.
    pub fn render_query(
        &self,
        query: &str,
        vars: &IndexMap<String, serde_json::Value>,
    ) -> Result<String> {
        let mut context: IndexMap<String, JinjaValue> = vars
            .iter()
            .map(|(k, v)| (k.clone(), jinja::json_to_jinja(v)))
            .collect();
        context.insert(
            "REMOTE_ATTRIBUTES".into(),
            JinjaValue::from(self.remote.clone()),
        );
        self.env
            .render_str(query, JinjaValue::from_pairs(context))
            .map_err(|e| anyhow!("fetch.query: {e}"))
    }

    /// Maps every row to the object's local attributes, in mapping order,
    /// leaving out those that come out null, `[]` or `{}`.
    pub fn apply(&self, rows: Vec<Row>) -> Result<Vec<Row>> {
        let compiled = self
            .rules
            .iter()
            .map(|(_, rule)| match rule {
                Rule::Template(template) => template.compile(&self.env).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|row| self.apply_one(&row, &compiled))
            .collect()
    }

    fn apply_one(&self, row: &Row, compiled: &[Option<Compiled<'_>>]) -> Result<Row> {
        let column = |name: &str| {
            row.iter()
                .find(|(column, _)| column == name)
                .map(|(_, v)| v)
                .ok_or_else(|| anyhow!("the query does not return the column `{name}`"))
        };
        let mut context = None;
        let mut attrs = Vec::with_capacity(self.rules.len());
        for ((local, rule), compiled) in self.rules.iter().zip(compiled) {
            let value = match (rule, compiled) {
                (Rule::Remote(name), _) => column(name).cloned(),
                (Rule::Remotes(names), _) => names
                    .iter()
                    .map(|name| column(name).cloned())
                    .collect::<Result<Vec<_>>>()
                    .map(Value::List),
                (Rule::Template(_), Some(template)) => {
                    let context = context.get_or_insert_with(|| {
                        JinjaValue::from_pairs(
                            row.iter().map(|(k, v)| (k.clone(), jinja::to_jinja(v))),
                        )
                    });
                    template.render(context)
                }
                (Rule::Template(_), None) => Err(anyhow!("a template did not compile")),
            }
            .with_context(|| format!("attrsmapping.{local}"))?;
            let value = match value {
                Value::List(items) => {
                    Value::List(items.into_iter().filter(|v| *v != Value::Null).collect())
                }
                value => value,
            };
            let empty = match &value {
                Value::Null => true,
                Value::List(items) => items.is_empty(),
                Value::Object(entries) => entries.is_empty(),
                _ => false,
            };
            if !empty {
                attrs.push((local.clone(), value));
            }
        }
        Ok(attrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(pairs: &[(&str, &str)]) -> Result<Mapping> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), AttrSource::One(v.to_string())))
            .collect();
        Mapping::new(&map)
    }

    fn row(pairs: &[(&str, Value)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn remote_attributes_are_the_columns_and_template_variables() {
        let m = mapping(&[
            ("id", "uid"),
            ("mail", "{{ login ~ '@example.com' }}"),
            ("name", "{{ first ~ ' ' ~ last }}"),
        ])
        .expect("compiles");
        assert_eq!(m.remote_attributes(), ["first", "last", "login", "uid"]);
        let query = m
            .render_query(
                "SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM {{ table }}",
                &IndexMap::from([("table".to_string(), serde_json::json!("users"))]),
            )
            .expect("renders");
        assert_eq!(query, "SELECT first, last, login, uid FROM users");
    }

    #[test]
    fn values_are_hermes_values_and_empty_ones_are_absent() {
        let m = mapping(&[
            ("id", "uid"),
            ("double", "{{ uid * 2 }}"),
            ("quota", "{{ quota * 1024 }}"),
            ("number", "{{ number | trim }}"),
            ("phones", "{{ [phone, mobile] }}"),
            ("none", "{{ none }}"),
            ("nophone", "{{ [mobile, mobile] }}"),
            ("nothing", "mobile"),
        ])
        .expect("compiles");
        let rows = vec![row(&[
            ("uid", Value::from(21)),
            ("quota", Value::Float(2.0)),
            ("number", Value::from(" 50037")),
            ("phone", Value::from("+331")),
            ("mobile", Value::Null),
        ])];
        let objects = m.apply(rows).expect("maps");
        assert_eq!(
            objects[0],
            row(&[
                ("id", Value::from(21)),
                ("double", Value::from(42)),
                ("quota", Value::Float(2048.0)),
                ("number", Value::from(50037)),
                ("phones", Value::List(vec![Value::from("+331")])),
            ])
        );
    }

    #[test]
    fn a_list_of_remote_attributes_gives_those_not_null() {
        let map = IndexMap::from([
            ("id".to_string(), AttrSource::One("uid".into())),
            (
                "phones".to_string(),
                AttrSource::List(vec!["phone".into(), "mobile".into()]),
            ),
        ]);
        let m = Mapping::new(&map).expect("compiles");
        assert_eq!(m.remote_attributes(), ["mobile", "phone", "uid"]);
        let objects = m
            .apply(vec![
                row(&[
                    ("uid", Value::from(1)),
                    ("phone", Value::Null),
                    ("mobile", Value::from("+336")),
                ]),
                row(&[
                    ("uid", Value::from(2)),
                    ("phone", Value::Null),
                    ("mobile", Value::Null),
                ]),
            ])
            .expect("maps");
        assert_eq!(
            objects,
            [
                row(&[
                    ("id", Value::from(1)),
                    ("phones", Value::List(vec![Value::from("+336")]))
                ]),
                row(&[("id", Value::from(2))]),
            ]
        );
        let templated = IndexMap::from([(
            "phones".to_string(),
            AttrSource::List(vec!["{{ phone }}".into()]),
        )]);
        assert!(Mapping::new(&templated).is_err());
    }

    #[test]
    fn text_mixed_with_templates_is_refused_as_hermes_refuses_it() {
        for source in ["{{ first }} {{ last }}", "user {{ uid }}", "{{ uid }}!"] {
            let error = mapping(&[("name", source)]).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("attrsmapping.name: ")
                        && e.contains("mixes text with templates")),
                "{source}: {error:?}"
            );
        }
        assert!(mapping(&[("name", "{{ first }}{{ last }}")]).is_ok());
        assert!(mapping(&[("name", "{% if a %}x{% endif %}")]).is_err());
        assert!(mapping(&[("name", "")]).is_err());
        assert!(mapping(&[("name", "{{ ITEM_CACHED_VALUES.x }}")]).is_err());
    }

    #[test]
    fn a_missing_column_or_bad_template_names_the_attribute() {
        let m = mapping(&[("mail", "{{ login ~ '@x' }}")]).expect("compiles");
        let error = m
            .apply(vec![row(&[("uid", Value::from(1))])])
            .expect_err("no login column");
        assert!(
            format!("{error:#}").contains("attrsmapping.mail"),
            "{error:#}"
        );
        let error = mapping(&[("x", "{{ oops( }}")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("attrsmapping.x"), "{error}");
    }
}
