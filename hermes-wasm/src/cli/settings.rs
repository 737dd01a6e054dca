//! `--settings`: a plugin's settings as the operator gives them on the
//! command line, JSON text, or `@FILE` holding JSON or YAML.

use std::path::Path;

use anyhow::{Context, Result};

/// Reads `--settings`: JSON text, or `@FILE` (`.json` files as JSON, anything
/// else as YAML, which JSON also is).
pub fn parse_arg(arg: &str) -> Result<serde_json::Value> {
    match arg.strip_prefix('@') {
        Some(path) => from_file(Path::new(path)),
        None => serde_json::from_str(arg).context("--settings: not valid JSON"),
    }
}

/// Reads settings from a JSON or YAML file.
fn from_file(path: &Path) -> Result<serde_json::Value> {
    let shown = || format!("--settings: settings file {}", path.display());
    let text = std::fs::read_to_string(path).with_context(shown)?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text).with_context(shown)
    } else {
        serde_yaml_ng::from_str(&text).with_context(shown)
    }
}
