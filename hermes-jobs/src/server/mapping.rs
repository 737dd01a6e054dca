//! `attrsmapping`: from a datasource's row (remote attributes) to an object's
//! local attributes, each a remote attribute's value or a Jinja template.
//!
//! A template that is one expression, `{{ ... }}`, keeps its value's type (a
//! number stays a number, a list a list), as hermes' native templates do; a
//! template with text around its expressions renders to a string.

use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow};
use hermes_event::Value;
use indexmap::IndexMap;
use minijinja::value::{Value as JinjaValue, ValueKind};
use minijinja::{Environment, UndefinedBehavior};

/// One row of a datasource: column name and value, in column order.
pub type Row = Vec<(String, Value)>;

/// How a local attribute gets its value.
#[derive(Debug, Clone)]
enum Rule {
    /// The remote attribute's value.
    Remote(String),
    /// A single expression, whose value keeps its type.
    Expression(String),
    /// Text with expressions: a string.
    Template(String),
}

/// The compiled `attrsmapping` of one source.
pub struct Mapping {
    env: Environment<'static>,
    rules: Vec<(String, Rule)>,
    remote: Vec<String>,
}

impl Mapping {
    /// Compiles a mapping; an error names the attribute.
    pub fn new(attrsmapping: &IndexMap<String, String>) -> Result<Mapping> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut rules = Vec::with_capacity(attrsmapping.len());
        let mut remote = BTreeSet::new();
        for (local, source) in attrsmapping {
            let rule = classify(source);
            let variables = match &rule {
                Rule::Remote(attr) => BTreeSet::from([attr.clone()]),
                Rule::Expression(expr) => env
                    .compile_expression(expr)
                    .map_err(|e| anyhow!("attrsmapping.{local}: {e}"))?
                    .undeclared_variables(false)
                    .into_iter()
                    .collect(),
                Rule::Template(text) => env
                    .template_from_str(text)
                    .map_err(|e| anyhow!("attrsmapping.{local}: {e}"))?
                    .undeclared_variables(false)
                    .into_iter()
                    .collect(),
            };
            remote.extend(variables);
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
            .map(|(k, v)| (k.clone(), json_to_jinja(v)))
            .collect();
        context.insert(
            "REMOTE_ATTRIBUTES".into(),
            JinjaValue::from(self.remote.clone()),
        );
        self.env
            .render_str(query, JinjaValue::from_pairs(context))
            .map_err(|e| anyhow!("fetch.query: {e}"))
    }

    /// Maps every row to the object's local attributes, in mapping order.
    pub fn apply(&self, rows: Vec<Row>) -> Result<Vec<Row>> {
        let expressions = self
            .rules
            .iter()
            .map(|(_, rule)| match rule {
                Rule::Expression(expr) => self.env.compile_expression(expr).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let templates = self
            .rules
            .iter()
            .map(|(_, rule)| match rule {
                Rule::Template(text) => self.env.template_from_str(text).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|row| {
                let context =
                    JinjaValue::from_pairs(row.iter().map(|(k, v)| (k.clone(), to_jinja(v))));
                self.rules
                    .iter()
                    .zip(expressions.iter().zip(&templates))
                    .map(|((local, rule), (expression, template))| {
                        let value = match (rule, expression, template) {
                            (Rule::Remote(attr), _, _) => row
                                .iter()
                                .find(|(column, _)| column == attr)
                                .map(|(_, v)| v.clone())
                                .ok_or_else(|| {
                                    anyhow!("the query does not return the column `{attr}`")
                                }),
                            (_, Some(expression), _) => expression
                                .eval(context.clone())
                                .map(|v| from_jinja(&v))
                                .map_err(Into::into),
                            (_, _, Some(template)) => template
                                .render(context.clone())
                                .map(Value::String)
                                .map_err(Into::into),
                            _ => Err(anyhow!("a template did not compile")),
                        };
                        value
                            .with_context(|| format!("attrsmapping.{local}"))
                            .map(|value| (local.clone(), value))
                    })
                    .collect()
            })
            .collect()
    }
}

fn classify(source: &str) -> Rule {
    let trimmed = source.trim();
    let single = trimmed.starts_with("{{")
        && trimmed.ends_with("}}")
        && trimmed.matches("{{").count() == 1
        && !trimmed.contains("{%");
    if single {
        Rule::Expression(trimmed[2..trimmed.len() - 2].trim().to_owned())
    } else if source.contains("{{") || source.contains("{%") {
        Rule::Template(source.to_owned())
    } else {
        Rule::Remote(source.to_owned())
    }
}

/// A value as templates see it.
fn to_jinja(value: &Value) -> JinjaValue {
    match value {
        Value::Null => JinjaValue::from(()),
        Value::Bool(b) => JinjaValue::from(*b),
        Value::Integer(n) => match n.as_i64() {
            Some(n) => JinjaValue::from(n),
            None => JinjaValue::from(n.to_string()),
        },
        Value::Float(x) => JinjaValue::from(*x),
        Value::String(s) => JinjaValue::from(s.as_str()),
        Value::Bytes(bytes) => JinjaValue::from_bytes(bytes.clone()),
        Value::Datetime(at) => JinjaValue::from(at.format("%Y-%m-%d %H:%M:%S").to_string()),
        Value::List(items) => JinjaValue::from(items.iter().map(to_jinja).collect::<Vec<_>>()),
        Value::Object(entries) => {
            JinjaValue::from_pairs(entries.iter().map(|(k, v)| (k.clone(), to_jinja(v))))
        }
    }
}

/// A `vars` value as templates see it.
fn json_to_jinja(value: &serde_json::Value) -> JinjaValue {
    match value {
        serde_json::Value::Null => JinjaValue::from(()),
        serde_json::Value::Bool(b) => JinjaValue::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => JinjaValue::from(i),
            (None, Some(x)) => JinjaValue::from(x),
            _ => JinjaValue::from(n.to_string()),
        },
        serde_json::Value::String(s) => JinjaValue::from(s.as_str()),
        serde_json::Value::Array(items) => {
            JinjaValue::from(items.iter().map(json_to_jinja).collect::<Vec<_>>())
        }
        serde_json::Value::Object(entries) => {
            JinjaValue::from_pairs(entries.iter().map(|(k, v)| (k.clone(), json_to_jinja(v))))
        }
    }
}

/// A template's value as an attribute value.
fn from_jinja(value: &JinjaValue) -> Value {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => Value::Null,
        ValueKind::Bool => Value::Bool(value.is_true()),
        ValueKind::Number => match i64::try_from(value.clone()) {
            Ok(n) => Value::from(n),
            Err(_) => f64::try_from(value.clone())
                .map(Value::Float)
                .unwrap_or_else(|_| Value::String(value.to_string())),
        },
        ValueKind::String => Value::String(value.as_str().unwrap_or_default().to_owned()),
        ValueKind::Bytes => Value::Bytes(value.as_bytes().unwrap_or_default().to_vec()),
        ValueKind::Seq | ValueKind::Iterable => Value::List(
            value
                .try_iter()
                .map(|items| items.map(|item| from_jinja(&item)).collect())
                .unwrap_or_default(),
        ),
        ValueKind::Map => Value::Object(
            value
                .try_iter()
                .map(|keys| {
                    keys.map(|key| {
                        let item = value.get_item(&key).unwrap_or_default();
                        (key.to_string(), from_jinja(&item))
                    })
                    .collect()
                })
                .unwrap_or_default(),
        ),
        _ => Value::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(pairs: &[(&str, &str)]) -> Mapping {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Mapping::new(&map).expect("compiles")
    }

    #[test]
    fn remote_attributes_are_the_columns_and_template_variables() {
        let m = mapping(&[
            ("id", "uid"),
            ("mail", "{{ login ~ '@example.com' }}"),
            ("name", "{{ first }} {{ last }}"),
        ]);
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
    fn templates_keep_types_and_text_templates_give_strings() {
        let m = mapping(&[
            ("id", "uid"),
            ("double", "{{ uid * 2 }}"),
            ("groups", "{{ [uid, 'x'] }}"),
            ("label", "user {{ uid }}"),
            ("none", "{{ none }}"),
        ]);
        let rows = vec![vec![("uid".to_string(), Value::from(21))]];
        let objects = m.apply(rows).expect("maps");
        assert_eq!(
            objects[0],
            vec![
                ("id".to_string(), Value::from(21)),
                ("double".to_string(), Value::from(42)),
                (
                    "groups".to_string(),
                    Value::List(vec![Value::from(21), Value::from("x")])
                ),
                ("label".to_string(), Value::from("user 21")),
                ("none".to_string(), Value::Null),
            ]
        );
    }

    #[test]
    fn a_missing_column_or_bad_template_names_the_attribute() {
        let m = mapping(&[("mail", "{{ login ~ '@x' }}")]);
        let error = m
            .apply(vec![vec![("uid".to_string(), Value::from(1))]])
            .expect_err("no login column");
        assert!(
            format!("{error:#}").contains("attrsmapping.mail"),
            "{error:#}"
        );
        let bad = IndexMap::from([("x".to_string(), "{{ oops(".to_string())]);
        let error = Mapping::new(&bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("attrsmapping.x"), "{error}");
    }
}
