//! The order hermes sorts primary keys (and sets) in: Python's comparison.
//!
//! Numbers compare by value (a boolean is 0 or 1), strings by code point,
//! bytes bytewise, datetimes in time, lists (tuples: composite keys) item by
//! item. Python refuses to compare values of different kinds; here they
//! take a fixed order instead (none, numbers, strings, bytes, datetimes,
//! lists, objects), so that sorting never fails.

use std::cmp::Ordering;

use hermes_event::{Integer, Value};

/// Python's `a < b`, made total.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => compare_integers(x, y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Datetime(x), Value::Datetime(y)) => x.cmp(y),
        (Value::List(x), Value::List(y)) => {
            for (x, y) in x.iter().zip(y) {
                match compare(x, y) {
                    Ordering::Equal => continue,
                    other => return other,
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => x.len().cmp(&y.len()),
        _ => match (as_float(a), as_float(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => rank(a).cmp(&rank(b)),
        },
    }
}

fn rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) | Value::Integer(_) | Value::Float(_) => 1,
        Value::String(_) => 2,
        Value::Bytes(_) => 3,
        Value::Datetime(_) => 4,
        Value::List(_) => 5,
        Value::Object(_) => 6,
    }
}

fn as_float(value: &Value) -> Option<f64> {
    match value {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Integer(n) => n.to_string().parse().ok(),
        Value::Float(x) => Some(*x),
        _ => None,
    }
}

fn compare_integers(x: &Integer, y: &Integer) -> Ordering {
    if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
        return x.cmp(&y);
    }
    let (x, y) = (x.to_string(), y.to_string());
    let (x_negative, y_negative) = (x.starts_with('-'), y.starts_with('-'));
    match (x_negative, y_negative) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        // Canonical digits: the longer is the larger in magnitude.
        (false, false) => x.len().cmp(&y.len()).then_with(|| x.cmp(&y)),
        (true, true) => y.len().cmp(&x.len()).then_with(|| y.cmp(&x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut values: Vec<Value>) -> Vec<String> {
        values.sort_by(compare);
        values.iter().map(Value::to_json_compact).collect()
    }

    fn big(text: &str) -> Value {
        Value::Integer(text.parse().expect("an integer"))
    }

    #[test]
    fn keys_sort_as_python_sorts_them() {
        assert_eq!(
            sorted(vec![
                Value::from(120),
                Value::from(30),
                Value::from(-4),
                Value::Float(30.5),
                big("100000000000000000000"),
                big("-100000000000000000000"),
            ]),
            [
                "-100000000000000000000",
                "-4",
                "30",
                "30.5",
                "120",
                "100000000000000000000"
            ]
        );
        assert_eq!(
            sorted(vec![
                Value::from("b"),
                Value::from("B"),
                Value::from("é"),
                Value::from("a"),
                Value::from("ab"),
            ]),
            [r#""B""#, r#""a""#, r#""ab""#, r#""b""#, r#""\u00e9""#]
        );
        let key = |name: &str, n: i64| Value::List(vec![Value::from(name), Value::from(n)]);
        assert_eq!(
            sorted(vec![key("Beta", 120), key("Alpha", 7), key("Beta", 41)]),
            [r#"["Alpha",7]"#, r#"["Beta",41]"#, r#"["Beta",120]"#]
        );
    }
}
