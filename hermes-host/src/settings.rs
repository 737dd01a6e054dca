//! Reading a plugin's settings as the operator gives them: JSON text, or
//! `@FILE` holding JSON or YAML.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads `--settings`: JSON text, or `@FILE` (`.json` files as JSON, anything
/// else as YAML, which JSON also is).
pub fn parse_arg(arg: &str) -> Result<serde_json::Value> {
    match arg.strip_prefix('@') {
        Some(path) => from_file(Path::new(path)),
        None => serde_json::from_str(arg)
            .map_err(|e| Error::Host(format!("--settings: not valid JSON: {e}"))),
    }
}

/// Reads settings from a JSON or YAML file.
pub fn from_file(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Host(format!("settings file {}: {e}", path.display())))?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text)
            .map_err(|e| Error::Host(format!("settings file {}: {e}", path.display())))
    } else {
        serde_yaml_ng::from_str(&text)
            .map_err(|e| Error::Host(format!("settings file {}: {e}", path.display())))
    }
}
