//! The text form of offsets, for people and scripts: how the CLI prints an
//! offset and reads one back.
//!
//! | kind  | printed as JSON            | `--offset` accepts        |
//! |-------|----------------------------|---------------------------|
//! | int   | `42`                       | `42`                      |
//! | float | `1.5` (always with `.` or `e`) | `1.5`                 |
//! | str   | `"1700000000000-0"`        | `"1700000000000-0"`, or the bare text when it is not a JSON number |
//! | bytes | `{"bytes": "<base64>"}`    | `{"bytes": "<base64>"}`   |

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::bindings::types::Offset;

/// The JSON form of an offset.
pub fn to_json(offset: &Offset) -> Value {
    match offset {
        Offset::Int(i) => json!(i),
        // Debug keeps a float a float when read back: `3.0`, `1e300`.
        Offset::Float(f) => serde_json::from_str(&format!("{f:?}")).unwrap_or(Value::Null),
        Offset::Str(s) => json!(s),
        Offset::Bytes(b) => json!({ "bytes": BASE64.encode(b) }),
    }
}

/// Reads an offset in the form [`to_json`] prints, or a bare string.
pub fn parse(text: &str) -> Result<Offset, String> {
    let Ok(value) = serde_json::from_str::<Value>(text.trim()) else {
        return Ok(Offset::Str(text.to_owned()));
    };
    match value {
        Value::Number(n) => {
            let repr = n.to_string();
            if repr.contains(['.', 'e', 'E']) {
                match repr.parse::<f64>() {
                    Ok(f) if f.is_finite() => Ok(Offset::Float(f)),
                    Ok(_) => Err(format!("offset {text}: out of the 64-bit float range")),
                    Err(e) => Err(format!("offset {text}: {e}")),
                }
            } else {
                repr.parse()
                    .map(Offset::Int)
                    .map_err(|_| format!("offset {text}: out of the 64-bit range"))
            }
        }
        Value::String(s) => Ok(Offset::Str(s)),
        Value::Object(map) if map.len() == 1 => match map.get("bytes") {
            Some(Value::String(b64)) => BASE64
                .decode(b64)
                .map(Offset::Bytes)
                .map_err(|e| format!("offset {text}: bad base64: {e}")),
            _ => Err(format!(
                "offset {text}: expected {{\"bytes\": \"<base64>\"}}"
            )),
        },
        _ => Err(format!(
            "offset {text}: expected an integer, a float, a string or {{\"bytes\": \"<base64>\"}}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_prints_in_a_form_parse_reads_back() {
        let offsets = [
            Offset::Int(0),
            Offset::Int(-7),
            Offset::Int(i64::MAX),
            Offset::Float(3.0),
            Offset::Float(-0.5),
            Offset::Float(1e300),
            Offset::Str("1700000000000-0".into()),
            Offset::Str("42".into()),
            Offset::Str(String::new()),
            Offset::Bytes(vec![]),
            Offset::Bytes(vec![0, 255, 10]),
        ];
        for offset in offsets {
            let printed = to_json(&offset).to_string();
            assert_eq!(parse(&printed), Ok(offset.clone()), "{printed}");
        }
    }

    #[test]
    fn a_bare_word_is_a_string_and_nonsense_is_refused() {
        assert_eq!(
            parse("1700000000000-0"),
            Ok(Offset::Str("1700000000000-0".into()))
        );
        assert!(parse("[1]").is_err());
        assert!(parse(r#"{"bytes": "***"}"#).is_err());
        assert!(parse("99999999999999999999").is_err());
        assert_eq!(
            parse("1e400"),
            Err("offset 1e400: out of the 64-bit float range".to_owned()),
            "an infinite float could not be printed back"
        );
    }
}
