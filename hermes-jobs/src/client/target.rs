//! Where a client applies events: a JSON-lines file, or a command per event.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hermes_event::{EventType, compact_json};
use tokio::io::AsyncWriteExt;

use super::config::TargetSpec;

/// The most of a failing command's stderr kept in the error queue.
const STDERR_KEPT: usize = 2000;

/// An event as a target gets it: what it is, and its hermes JSON as the
/// bus holds it.
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    /// What happened.
    pub eventtype: EventType,
    /// The data type's name.
    pub objtype: Option<&'a str>,
    /// The event's hermes JSON.
    pub json: &'a str,
}

/// A target, ready to apply events.
#[derive(Debug)]
pub enum Target {
    /// Appends each event to a file, one compact hermes JSON per line.
    JsonLines(JsonLines),
    /// Runs `argv` with the event's hermes JSON on stdin.
    Command {
        /// The program and its arguments.
        argv: Vec<String>,
        /// How long one run may take.
        timeout: Duration,
    },
}

impl Target {
    /// Opens the target a checked configuration names (relative paths
    /// against `base`), so that a target that cannot work is one error at
    /// start, not a failure per event: the JSON-lines file is opened (and
    /// created), the command's program must be found.
    pub fn open(spec: &TargetSpec, base: &Path) -> anyhow::Result<Target> {
        match (&spec.jsonlines, &spec.command) {
            (Some(jsonlines), _) => {
                let mut file = JsonLines::new(crate::config::resolve(base, &jsonlines.path));
                file.open()
                    .map_err(|e| anyhow::anyhow!("hermes-client.target.jsonlines.path: {e}"))?;
                Ok(Target::JsonLines(file))
            }
            (None, Some(command)) => {
                let program = &command.argv[0];
                which::which(program).map_err(|e| {
                    anyhow::anyhow!(
                        "hermes-client.target.command.argv: cannot find the program `{program}`: {e}"
                    )
                })?;
                Ok(Target::Command {
                    argv: command.argv.clone(),
                    timeout: Duration::from_secs(command.timeout),
                })
            }
            (None, None) => anyhow::bail!("hermes-client.target: give jsonlines or command"),
        }
    }

    /// Applies one event; the error says why it was not applied.
    pub async fn apply(&mut self, event: &Applied<'_>) -> Result<(), String> {
        match self {
            Target::JsonLines(file) => file.append(event.json).await,
            Target::Command { argv, timeout } => run(argv, *timeout, event).await,
        }
    }

    /// Makes every event applied so far durable: until then a crash may lose
    /// them.
    pub async fn sync(&mut self) -> anyhow::Result<()> {
        match self {
            Target::JsonLines(file) => file.sync().await,
            // A command is done with an event when it exits.
            Target::Command { .. } => Ok(()),
        }
    }
}

/// A JSON-lines file, kept open while the client runs. A line is one
/// `write` on a file opened for appending, which takes microseconds, so it is
/// written in place; the fsync, which takes milliseconds, runs on the
/// blocking pool.
#[derive(Debug)]
pub struct JsonLines {
    path: PathBuf,
    file: Option<std::fs::File>,
    unsynced: bool,
}

impl JsonLines {
    fn new(path: PathBuf) -> JsonLines {
        JsonLines {
            path,
            file: None,
            unsynced: false,
        }
    }

    /// Appends the event's text on one line: hermes' compact form of it,
    /// written without parsing it.
    async fn append(&mut self, json: &str) -> Result<(), String> {
        let mut line = compact_json(json);
        line.push('\n');
        let path = self.path.clone();
        let file = self.open()?;
        let written = file.write_all(line.as_bytes());
        self.unsynced = true;
        written.map_err(|e| {
            // Opened again for the next event, in case the file was replaced.
            self.file = None;
            format!("{}: {e}", path.display())
        })
    }

    /// The file, opened for appending (and created) if it is not yet.
    fn open(&mut self) -> Result<&mut std::fs::File, String> {
        let file = match self.file.take() {
            Some(file) => file,
            // Never through a symbolic link: one planted by a plugin with a
            // grant on this directory would send the events anywhere.
            None => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&self.path)
                .map_err(|e| {
                    format!(
                        "cannot open {} (never through a symbolic link): {e}",
                        self.path.display()
                    )
                })?,
        };
        Ok(self.file.insert(file))
    }

    async fn sync(&mut self) -> anyhow::Result<()> {
        if !self.unsynced {
            return Ok(());
        }
        let path = self.path.clone();
        // Dropped after a failed write: what went before it is synced
        // through a new handle.
        let file = match &self.file {
            Some(file) => file.try_clone(),
            None => std::fs::File::open(&path),
        };
        tokio::task::spawn_blocking(move || file?.sync_data())
            .await
            .map_err(anyhow::Error::from)
            .and_then(|synced| synced.map_err(anyhow::Error::from))
            .map_err(|e| anyhow::anyhow!("cannot sync {}: {e}", path.display()))?;
        self.unsynced = false;
        Ok(())
    }
}

async fn run(argv: &[String], timeout: Duration, event: &Applied<'_>) -> Result<(), String> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env("HERMES_EVENTTYPE", event.eventtype.as_str())
        .env("HERMES_OBJTYPE", event.objtype.unwrap_or(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input still decides by its status.
        let _ = stdin.write_all(event.json.as_bytes()).await;
    }
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| format!("{} ran longer than {} s", argv[0], timeout.as_secs()))?
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    let mut cut = stderr.len().min(STDERR_KEPT);
    while !stderr.is_char_boundary(cut) {
        cut -= 1;
    }
    Err(format!(
        "{} exited with {}{}{}",
        argv[0],
        output.status,
        if stderr.is_empty() { "" } else { ": " },
        &stderr[..cut]
    ))
}
