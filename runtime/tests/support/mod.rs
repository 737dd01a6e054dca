//! Running the `hermes-wasm` binary from the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// One compilation cache for every run of the binary by the tests.
pub fn component_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-component-cache")
}

/// Runs `hermes-wasm args` in `dir`, with no input, and waits for it.
pub fn hermes_wasm(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hermes-wasm"))
        .args(args)
        .current_dir(dir)
        .env("HERMES_WASM_CACHE", component_cache())
        .env_remove("HERMES_WASM_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

/// What it printed on stdout.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What it printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
