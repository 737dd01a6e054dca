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

    /// The file, opened for appending (and created) if it is not yet. A
    /// last line left unfinished by a crash is cut off first: its event was
    /// not recorded as applied, so it comes again, whole.
    fn open(&mut self) -> Result<&mut std::fs::File, String> {
        let file = match self.file.take() {
            Some(file) => file,
            None => {
                let cannot = |e: std::io::Error| {
                    format!(
                        "cannot open {} (never through a symbolic link): {e}",
                        self.path.display()
                    )
                };
                // Never through a symbolic link: one planted by a plugin with
                // a grant on this directory would send the events anywhere.
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .custom_flags(nix::libc::O_NOFOLLOW)
                    .open(&self.path)
                    .map_err(cannot)?;
                crate::lines::cut_torn_line(&file, &self.path).map_err(cannot)?;
                file
            }
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

/// Runs the command for one event. The whole exchange (writing the event
/// to its stdin, reading its stderr, waiting for it to exit) is under
/// `timeout`, after which the command is killed; of its stderr, only the
/// first [`STDERR_KEPT`] bytes are kept, the rest read and dropped.
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
    let stdin = child.stdin.take();
    let stderr = child.stderr.take();
    let exchange = async {
        let feed = async {
            if let Some(mut stdin) = stdin {
                // A command that does not read its input still decides by
                // its status; dropping stdin closes it.
                let _ = stdin.write_all(event.json.as_bytes()).await;
            }
        };
        let collect = async {
            match stderr {
                Some(stderr) => kept(stderr, STDERR_KEPT).await,
                None => Vec::new(),
            }
        };
        let ((), stderr, status) = tokio::join!(feed, collect, child.wait());
        (stderr, status)
    };
    let (stderr, status) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{} ran longer than {timeout:?}", argv[0]))?;
    let status = status.map_err(|e| format!("{}: {e}", argv[0]))?;
    if status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&stderr);
    let stderr = stderr.trim();
    Err(format!(
        "{} exited with {status}{}{stderr}",
        argv[0],
        if stderr.is_empty() { "" } else { ": " },
    ))
}

/// Reads `from` to its end, keeping the first `keep` bytes and dropping the
/// rest, so a command that writes without end neither blocks on a full pipe
/// nor fills the host's memory.
async fn kept(mut from: impl tokio::io::AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut kept = Vec::with_capacity(keep.min(64 * 1024));
    let mut chunk = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut chunk).await {
        let room = keep - kept.len();
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_torn_last_line_is_cut_off_before_the_next_is_appended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("applied.jsonl");
        let whole = "{\"a\":1}\n".repeat(1000);
        for (torn, kept) in [
            ("{\"b\":", whole.len()),
            ("", whole.len()),
            (&"x".repeat(10_000)[..], whole.len()),
        ] {
            std::fs::write(&path, format!("{whole}{torn}")).expect("write");
            let mut target = JsonLines::new(path.clone());
            target.append("{\"c\": 2}").await.expect("append");
            let text = std::fs::read_to_string(&path).expect("read");
            assert_eq!(text.len(), kept + "{\"c\":2}\n".len(), "torn {torn:?}");
            assert!(text.ends_with("}\n{\"c\":2}\n"));
        }
        std::fs::write(&path, "no newline at all").expect("write");
        let mut target = JsonLines::new(path.clone());
        target.append("{}").await.expect("append");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}\n");
    }

    #[tokio::test]
    async fn only_the_first_bytes_of_a_long_output_are_kept_and_all_is_read() {
        let long = vec![b'e'; 10 << 20];
        let mut source = &long[..];
        let kept = kept(&mut source, STDERR_KEPT).await;
        assert_eq!(kept.len(), STDERR_KEPT);
        assert!(source.is_empty(), "read to its end");
        let mut short: &[u8] = b"short";
        assert_eq!(super::kept(&mut short, STDERR_KEPT).await, b"short");
    }

    #[tokio::test]
    async fn a_command_that_reads_nothing_and_never_exits_is_stopped_at_its_timeout() {
        // An event larger than a pipe holds: writing it blocks until the
        // command reads, which this one never does.
        let json = format!("{{\"x\": \"{}\"}}", "y".repeat(1 << 20));
        let event = Applied {
            eventtype: EventType::Added,
            objtype: Some("U"),
            json: &json,
        };
        let argv = ["sleep".to_owned(), "600".to_owned()];
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            run(&argv, Duration::from_millis(300), &event),
        )
        .await
        .expect("the command's timeout holds, whatever the command does");
        assert_eq!(outcome, Err("sleep ran longer than 300ms".to_owned()));
    }

    #[tokio::test]
    async fn a_failing_command_says_why_in_a_bounded_message() {
        let event = Applied {
            eventtype: EventType::Added,
            objtype: None,
            json: "{}",
        };
        let argv = [
            "sh".to_owned(),
            "-c".to_owned(),
            "head -c 5000000 /dev/zero | tr '\\0' e >&2; exit 3".to_owned(),
        ];
        let error = run(&argv, Duration::from_secs(30), &event)
            .await
            .expect_err("it fails");
        assert!(
            error.starts_with("sh exited with exit status: 3: eee"),
            "{error}"
        );
        assert!(error.len() < STDERR_KEPT + 100, "{} bytes", error.len());
    }
}
