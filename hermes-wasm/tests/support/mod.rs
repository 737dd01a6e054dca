//! Running the `hermes-wasm` binary from the tests.

// Each test binary uses some of these.
#![allow(dead_code)]

pub mod harness;
pub mod small_disk;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One compilation cache for every run of the binary by the tests.
pub fn component_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-component-cache")
}

fn command(dir: &Path, args: &[&str]) -> Command {
    command_under(&[], dir, args)
}

/// `hermes-wasm args` in `dir`, run by the program `under` names with its
/// own arguments first (`strace ...`, `nsenter ...`), or directly when
/// `under` is empty.
fn command_under(under: &[OsString], dir: &Path, args: &[&str]) -> Command {
    let binary = env!("CARGO_BIN_EXE_hermes-wasm");
    let mut command = match under.split_first() {
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .args(args)
        .current_dir(dir)
        .env("HERMES_WASM_CACHE", component_cache())
        .env_remove("HERMES_WASM_LOG")
        .stdin(Stdio::null());
    command
}

/// Runs `hermes-wasm args` in `dir`, with no input, and waits for it.
pub fn hermes_wasm(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().expect("the binary runs")
}

/// Starts `hermes-wasm args` in `dir` in the background, its output kept.
pub fn spawn(dir: &Path, args: &[&str]) -> Child {
    command(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// Sends SIGTERM to `child` and waits for it to exit.
pub fn terminate(child: Child) -> Output {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -TERM {}", child.id());
    child.wait_with_output().expect("it exits")
}

/// Checks `done` every few milliseconds until it holds; false if it still
/// does not after a minute.
pub fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > Duration::from_secs(60) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// What it printed on stdout.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What it printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `hermes-wasm args` in `dir` under `strace`, tracing the system calls
/// `calls` (such as `fsync,unlinkat`) with the path of every descriptor;
/// returns what it did and the trace, one call per line.
pub fn hermes_wasm_traced(dir: &Path, args: &[&str], calls: &str) -> (Output, String) {
    let trace = dir.join(format!("strace-{}.txt", std::process::id()));
    let mut under: Vec<OsString> = ["strace", "-f", "-y", "-qq", "-e"]
        .map(OsString::from)
        .into();
    under.push(format!("trace={calls}").into());
    under.push("-o".into());
    under.push(trace.clone().into());
    let output = command_under(&under, dir, args)
        .output()
        .expect("strace runs (tests/install-deps.sh installs it)");
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_file(&trace);
    (output, text)
}
