//! hermes' native templates: a Jinja template whose result is a value, not
//! text.
//!
//! hermes renders its datamodel's templates with Jinja2's native types and
//! its own concatenation: a template of one `{{ }}` gives that expression's
//! value as it is, unless it is text, which is read back as a Python
//! literal (`"50037"` becomes 50037); a template of several parts joins
//! their Python `str()` and reads that back the same way (what is not a
//! literal stays text). Python's string methods (`split`, `strip`,
//! `replace`, ...) work in expressions, as they do in Jinja2.

use std::fmt;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use hermes_event::Value;
use minijinja::value::{Object, Value as JinjaValue, ValueKind};
use minijinja::{Environment, Expression, UndefinedBehavior};

use super::pyliteral::{literal_eval, python_str};

/// Variables hermes sets itself in templates: never remote attributes.
pub const RESERVED: [&str; 6] = [
    "_SELF",
    "REMOTE_ATTRIBUTES",
    "ITEM_CACHED_VALUES",
    "ITEM_FETCHED_VALUES",
    "CACHED_VALUES",
    "FETCHED_VALUES",
];

/// The environment hermes' templates are compiled in: undefined variables
/// are errors, Python's methods are there.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_unknown_method_callback(|state, value, method, args| {
        // Python's title() starts a word after any character that is not a
        // letter (`a;b` gives `A;B`), not only after blanks.
        if let ("title", [], Some(text)) = (method, args, value.as_str()) {
            return Ok(JinjaValue::from(python_title(text)));
        }
        minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
    });
    env
}

/// Python's `str.title()`: a letter after a letter is lower case, any other
/// letter upper case.
fn python_title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_letter = false;
    for c in text.chars() {
        if after_letter {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        after_letter = c.is_alphabetic();
    }
    out
}

/// One part of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Text outside `{{ }}`.
    Text(String),
    /// The source of one `{{ }}` expression.
    Expression(String),
}

/// Whether `source` is a template at all: otherwise it is a name.
pub fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

/// Splits a template into its parts as Jinja2's lexer does: an expression
/// ends at the first `}}` outside brackets and quotes, comments are
/// dropped, `-` trims the blanks next to a tag, and one newline that ends
/// the template is not part of it. Statements (`{% %}`) are refused: hermes
/// allows expressions only.
pub fn parts(source: &str) -> Result<Vec<Part>> {
    let source = source
        .strip_suffix("\r\n")
        .or_else(|| source.strip_suffix('\n'))
        .unwrap_or(source);
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut trim_next = false;
    let mut rest = source;
    loop {
        let Some(open) = rest.find(['{']).filter(|_| !rest.is_empty()) else {
            text.push_str(rest);
            break;
        };
        let tag = &rest[open..];
        let kind = tag.as_bytes().get(1).copied();
        if !matches!(kind, Some(b'{' | b'%' | b'#')) {
            text.push_str(&rest[..open + 1]);
            rest = &rest[open + 1..];
            continue;
        }
        let mut before = &rest[..open];
        if trim_next {
            before = before.trim_start();
        }
        text.push_str(before);
        trim_next = false;
        let inner = &tag[2..];
        let trim_before = inner.starts_with('-');
        if trim_before {
            let trimmed = text.trim_end().len();
            text.truncate(trimmed);
        }
        let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
        match kind {
            Some(b'%') => bail!("`{{% ... %}}` statements are not allowed, only `{{{{ ... }}}}`"),
            Some(b'#') => {
                let Some(end) = inner.find("#}") else {
                    bail!("a comment `{{#` is not closed");
                };
                trim_next = inner[..end].ends_with('-');
                rest = &inner[end + 2..];
            }
            _ => {
                let end = expression_end(inner)
                    .ok_or_else(|| anyhow!("an expression `{{{{` is not closed with `}}}}`"))?;
                let mut expression = &inner[..end];
                if let Some(stripped) = expression.strip_suffix('-') {
                    trim_next = true;
                    expression = stripped;
                } else if let Some(stripped) = expression.strip_suffix('+') {
                    expression = stripped;
                }
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                let expression = expression.trim();
                if expression.is_empty() {
                    bail!("an expression `{{{{ }}}}` is empty");
                }
                parts.push(Part::Expression(expression.to_owned()));
                rest = &inner[end + 2..];
            }
        }
        if trim_next {
            rest = rest.trim_start();
            trim_next = false;
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// Where the `}}` that ends an expression is: the first outside brackets
/// and string literals.
fn expression_end(inner: &str) -> Option<usize> {
    let bytes = inner.as_bytes();
    let mut depth = 0usize;
    let mut quote = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'\'' | b'"' => quote = Some(b),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' => depth = depth.saturating_sub(1),
                b'}' if depth == 0 && bytes.get(i + 1) == Some(&b'}') => return Some(i),
                b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        i += 1;
    }
    None
}

/// A native template, checked: its parts compile, its variables are known.
pub struct Template {
    parts: Vec<Part>,
    variables: Vec<String>,
}

/// A template compiled in an environment, ready to render.
pub struct Compiled<'env> {
    parts: Vec<CompiledPart<'env>>,
}

enum CompiledPart<'env> {
    Text(String),
    Expression(Expression<'env, 'env>),
}

impl Template {
    /// Checks `parts` in `env`.
    pub fn new(env: &Environment<'static>, parts: Vec<Part>) -> Result<Template> {
        let mut variables = Vec::new();
        for part in &parts {
            if let Part::Expression(source) = part {
                let expression = env.compile_expression(source).map_err(|e| anyhow!("{e}"))?;
                variables.extend(expression.undeclared_variables(false));
            }
        }
        variables.sort();
        variables.dedup();
        Ok(Template { parts, variables })
    }

    /// The variables the template reads, sorted.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// The template compiled in `env`, to render many times.
    pub fn compile<'env>(&'env self, env: &'env Environment<'static>) -> Result<Compiled<'env>> {
        let parts = self
            .parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => Ok(CompiledPart::Text(text.clone())),
                Part::Expression(source) => env
                    .compile_expression(source)
                    .map(CompiledPart::Expression)
                    .map_err(|e| anyhow!("{e}")),
            })
            .collect::<Result<_>>()?;
        Ok(Compiled { parts })
    }
}

impl Compiled<'_> {
    /// The template's value in `context`, as hermes computes it.
    pub fn render(&self, context: &JinjaValue) -> Result<Value> {
        let value_of = |part: &CompiledPart<'_>| -> Result<Value> {
            Ok(match part {
                CompiledPart::Text(text) => Value::String(text.clone()),
                CompiledPart::Expression(e) => from_jinja(&e.eval(context.clone())?),
            })
        };
        let joined = match &self.parts[..] {
            [] => return Ok(Value::Null),
            [one] => match value_of(one)? {
                Value::String(text) => text,
                native => return Ok(native),
            },
            parts => {
                let mut joined = String::new();
                for part in parts {
                    joined.push_str(&python_str(&value_of(part)?));
                }
                joined
            }
        };
        Ok(literal_eval(&joined).unwrap_or(Value::String(joined)))
    }
}

/// A value as templates see it: datetimes keep their type.
pub fn to_jinja(value: &Value) -> JinjaValue {
    match value {
        Value::Null => JinjaValue::from(()),
        Value::Bool(b) => JinjaValue::from(*b),
        Value::Integer(n) => match n.as_i64() {
            Some(n) => JinjaValue::from(n),
            None => n
                .to_string()
                .parse::<i128>()
                .map(JinjaValue::from)
                .unwrap_or_else(|_| JinjaValue::from(n.to_string())),
        },
        Value::Float(x) => JinjaValue::from(*x),
        Value::String(s) => JinjaValue::from(s.as_str()),
        Value::Bytes(bytes) => JinjaValue::from_bytes(bytes.clone()),
        Value::Datetime(at) => JinjaValue::from_object(Datetime(*at)),
        Value::List(items) => JinjaValue::from(items.iter().map(to_jinja).collect::<Vec<_>>()),
        Value::Object(entries) => {
            JinjaValue::from_pairs(entries.iter().map(|(k, v)| (k.clone(), to_jinja(v))))
        }
    }
}

/// A `vars` value as templates see it.
pub fn json_to_jinja(value: &serde_json::Value) -> JinjaValue {
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

/// A template's value as an attribute value: an integer stays an integer,
/// a float a float (`2048.0`).
pub fn from_jinja(value: &JinjaValue) -> Value {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => Value::Null,
        ValueKind::Bool => Value::Bool(value.is_true()),
        ValueKind::Number if value.is_integer() => match value.as_i64() {
            Some(n) => Value::from(n),
            None => value
                .to_string()
                .parse()
                .map(Value::Integer)
                .unwrap_or_else(|_| Value::String(value.to_string())),
        },
        ValueKind::Number => f64::try_from(value.clone())
            .map(Value::Float)
            .unwrap_or_else(|_| Value::String(value.to_string())),
        ValueKind::String => Value::String(value.as_str().unwrap_or_default().to_owned()),
        ValueKind::Bytes => Value::Bytes(value.as_bytes().unwrap_or_default().to_vec()),
        ValueKind::Plain => match value.downcast_object_ref::<Datetime>() {
            Some(at) => Value::Datetime(at.0),
            None => Value::String(value.to_string()),
        },
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
                        let name = match key.as_str() {
                            Some(name) => name.to_owned(),
                            None => python_str(&from_jinja(&key)),
                        };
                        (name, from_jinja(&item))
                    })
                    .collect()
                })
                .unwrap_or_default(),
        ),
        _ => Value::String(value.to_string()),
    }
}

/// A datetime in a template: written as Python's `str()` writes one, with
/// its parts as attributes (`year`, ..., `second`).
#[derive(Debug)]
struct Datetime(chrono::NaiveDateTime);

impl fmt::Display for Datetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d %H:%M:%S"))
    }
}

impl Object for Datetime {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &JinjaValue) -> Option<JinjaValue> {
        use chrono::{Datelike, Timelike};
        let at = self.0;
        let part = match key.as_str()? {
            "year" => at.year() as i64,
            "month" => at.month() as i64,
            "day" => at.day() as i64,
            "hour" => at.hour() as i64,
            "minute" => at.minute() as i64,
            "second" => at.second() as i64,
            _ => return None,
        };
        Some(JinjaValue::from(part))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        method: &str,
        args: &[JinjaValue],
    ) -> Result<JinjaValue, minijinja::Error> {
        match (method, args) {
            ("strftime", [format]) => {
                let format = format.as_str().unwrap_or_default();
                let mut out = String::new();
                fmt::write(&mut out, format_args!("{}", self.0.format(format))).map_err(|_| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("strftime: bad format {format:?}"),
                    )
                })?;
                Ok(JinjaValue::from(out))
            }
            ("isoformat", []) => Ok(JinjaValue::from(
                self.0.format("%Y-%m-%dT%H:%M:%S").to_string(),
            )),
            _ => Err(minijinja::Error::from(minijinja::ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_ref(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, context: &[(&str, Value)]) -> Result<Value> {
        let env = environment();
        let template = Template::new(&env, parts(source)?)?;
        let context =
            JinjaValue::from_pairs(context.iter().map(|(k, v)| (k.to_string(), to_jinja(v))));
        template.compile(&env)?.render(&context)
    }

    fn json(source: &str, context: &[(&str, Value)]) -> String {
        render(source, context)
            .map(|v| v.to_json_compact())
            .unwrap_or_else(|e| format!("error: {e:#}"))
    }

    #[test]
    fn parts_split_as_jinja_lexes() {
        let expr = |s: &str| Part::Expression(s.into());
        let text = |s: &str| Part::Text(s.into());
        for (source, expected) in [
            ("{{ a }}", vec![expr("a")]),
            ("{{ a }}\n", vec![expr("a")]),
            ("{{ a }}{{ b }}", vec![expr("a"), expr("b")]),
            ("{{ a }} {{ b }}", vec![expr("a"), text(" "), expr("b")]),
            ("{{ a }} {{- b }}", vec![expr("a"), expr("b")]),
            ("x {{ a -}}  y", vec![text("x "), expr("a"), text("y")]),
            ("{# note #}{{ a }}", vec![expr("a")]),
            ("{{ {'k': {'v': 1}} }}", vec![expr("{'k': {'v': 1}}")]),
            ("{{ '}}' ~ a }}", vec![expr("'}}' ~ a")]),
            ("a { b } c", vec![text("a { b } c")]),
        ] {
            assert_eq!(parts(source).expect(source), expected, "{source:?}");
        }
        for bad in ["{% if a %}x{% endif %}", "{{ a", "{# x", "{{ }}"] {
            assert!(parts(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_come_out_as_hermes_reads_them() {
        let quota = [("quota", Value::Float(2.0))];
        assert_eq!(json("{{ quota * 1024 }}", &quota), "2048.0");
        let big = [("quota", Value::Float(1e15))];
        assert_eq!(json("{{ quota * 1024 }}", &big), "1.024e+18");
        let n = [("n", Value::from("  50037 "))];
        assert_eq!(json("{{ n | trim }}", &n), "50037");
        assert_eq!(json("{{ n.strip() }}", &n), "50037");
        let kept = [("n", Value::from("007"))];
        assert_eq!(json("{{ n }}", &kept), r#""007""#);
        let e = [("n", Value::from("E0042"))];
        assert_eq!(json("{{ n }}", &e), r#""E0042""#);
        // Native values stay as they are, texts inside included.
        let phones = [("a", Value::from("+331")), ("b", Value::Null)];
        assert_eq!(json("{{ [a, b] }}", &phones), r#"["+331",null]"#);
        assert_eq!(json("{{ b }}", &phones), "null");
        // Several parts join their str() and are read back.
        let pair = [("a", Value::from(1)), ("b", Value::from(2))];
        assert_eq!(json("{{ a }}{{ b }}", &pair), "12");
        assert_eq!(json("{{ [a] }}{{ [b] }}", &pair), r#""[1][2]""#);
        let words = [("a", Value::from("Jo")), ("b", Value::Null)];
        assert_eq!(json("{{ a }}{{ b }}", &words), r#""JoNone""#);
        assert_eq!(json("{{ 'True' }}", &[]), "true");
        assert_eq!(json("{{ '1+2j' }}", &[]), r#""1+2j""#);
    }

    #[test]
    fn python_string_methods_work() {
        let ctx = [("v", Value::from("student;member;Staff "))];
        for (source, expected) in [
            ("{{ v.split(';') }}", r#"["student","member","Staff "]"#),
            ("{{ v.rstrip() }}", r#""student;member;Staff""#),
            ("{{ v.lstrip('s') }}", r#""tudent;member;Staff ""#),
            ("{{ v.upper() }}", r#""STUDENT;MEMBER;STAFF ""#),
            ("{{ v.lower() }}", r#""student;member;staff ""#),
            ("{{ v.title() }}", r#""Student;Member;Staff ""#),
            ("{{ v.capitalize() }}", r#""Student;member;staff ""#),
            ("{{ v.replace(';', ',') }}", r#""student,member,Staff ""#),
            ("{{ v.startswith('stu') }}", "true"),
            ("{{ v.endswith('x') }}", "false"),
            ("{{ '-'.join(v.split(';')) }}", r#""student-member-Staff ""#),
            (
                "{{ '{}!'.format(v.strip()) }}",
                r#""student;member;Staff!""#,
            ),
        ] {
            assert_eq!(json(source, &ctx), expected, "{source}");
        }
    }

    #[test]
    fn datetimes_stay_datetimes() {
        let at = chrono::NaiveDate::from_ymd_opt(1975, 8, 15)
            .and_then(|d| d.and_hms_opt(5, 15, 25))
            .expect("a date");
        let ctx = [("born", Value::Datetime(at))];
        assert_eq!(
            json("{{ born }}", &ctx),
            r#""HermesDatetime(1975-08-15T05:15:25Z)""#
        );
        assert_eq!(json("{{ born.year }}", &ctx), "1975");
        assert_eq!(
            json("{{ born.strftime('%d/%m/%Y') }}", &ctx),
            r#""15/08/1975""#
        );
    }
}
