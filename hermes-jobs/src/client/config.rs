//! hermes-client's configuration: the bus, the cache, how to find the
//! initsync sequence, the error queue's retry interval, and the target.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::config::{self, HermesSection};

/// A client configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a mapping")]
pub struct ClientConfig {
    /// Plugins and cache.
    pub hermes: HermesSection,
    /// The client's own section.
    #[serde(rename = "hermes-client")]
    pub client: ClientSection,
}

/// `hermes-client`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping")]
pub struct ClientSection {
    /// Use the first complete initsync sequence on the bus rather than the
    /// last one.
    #[serde(rename = "useFirstInitsyncSequence", default)]
    pub use_first_initsync_sequence: bool,
    /// Minutes between two retries of the error queue (fractions allowed).
    #[serde(rename = "errorQueue_retryInterval", default = "default_retry")]
    pub error_queue_retry_interval: f64,
    /// After this many failed attempts, an event is quarantined in the
    /// dead-letter file, with the object's events after it; none retries
    /// for ever, as hermes does. A record the bus plugin fails to read this
    /// many times in a row is quarantined by its offset; none stops the
    /// client there.
    #[serde(rename = "errorQueue_maxAttempts", default)]
    pub error_queue_max_attempts: Option<u32>,
    /// Where events are applied.
    pub target: TargetSpec,
}

fn default_retry() -> f64 {
    60.0
}

/// The most minutes `errorQueue_retryInterval` may be: a year.
pub const MAX_RETRY_INTERVAL_MINUTES: f64 = 525_600.0;

/// The attempts `errorQueue_maxAttempts` may allow.
pub const MAX_ATTEMPTS: std::ops::RangeInclusive<u32> = 1..=1_000_000;

/// The timeouts a target command may have, in seconds: up to a day.
pub const COMMAND_TIMEOUT_SECONDS: std::ops::RangeInclusive<u64> = 1..=86_400;

/// `hermes-client.target`: exactly one of its kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping")]
pub struct TargetSpec {
    /// Appends each event, as one line of compact hermes JSON, to a file.
    #[serde(default)]
    pub jsonlines: Option<JsonLinesSpec>,
    /// Runs a command per event with the event's hermes JSON on stdin; exit
    /// status 0 means applied.
    #[serde(default)]
    pub command: Option<CommandSpec>,
}

/// `target.jsonlines`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping")]
pub struct JsonLinesSpec {
    /// The file; relative to the configuration's directory.
    pub path: PathBuf,
}

/// `target.command`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping")]
pub struct CommandSpec {
    /// The program and its arguments (no shell).
    pub argv: Vec<String>,
    /// How long one run may take, in seconds.
    #[serde(default = "default_command_timeout")]
    pub timeout: u64,
}

fn default_command_timeout() -> u64 {
    60
}

impl ClientConfig {
    /// Reads and checks a client configuration file.
    pub fn read(path: &Path) -> Result<ClientConfig> {
        ClientConfig::parse(&config::read_text(path)?, path)
    }

    /// Parses and checks a configuration's text, read from `path` (which
    /// errors name, and against which relative paths resolve).
    pub fn parse(text: &str, path: &Path) -> Result<ClientConfig> {
        let config: ClientConfig = config::parse(text, path)?;
        config
            .check()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        let interval = self.client.error_queue_retry_interval;
        if !(interval > 0.0 && interval <= MAX_RETRY_INTERVAL_MINUTES) {
            bail!(
                "hermes-client.errorQueue_retryInterval: {interval:?} is out of range \
                 (more than 0 minutes, at most {MAX_RETRY_INTERVAL_MINUTES})"
            );
        }
        if let Some(attempts) = self.client.error_queue_max_attempts
            && !MAX_ATTEMPTS.contains(&attempts)
        {
            bail!(
                "hermes-client.errorQueue_maxAttempts: {attempts} is out of range ({} to {})",
                MAX_ATTEMPTS.start(),
                MAX_ATTEMPTS.end()
            );
        }
        let target = &self.client.target;
        match (&target.jsonlines, &target.command) {
            (Some(_), Some(_)) => {
                bail!("hermes-client.target: give either jsonlines or command, not both")
            }
            (None, None) => bail!("hermes-client.target: give jsonlines or command"),
            (None, Some(command)) if command.argv.is_empty() => {
                bail!("hermes-client.target.command.argv: the command is empty")
            }
            (None, Some(command)) if !COMMAND_TIMEOUT_SECONDS.contains(&command.timeout) => {
                bail!(
                    "hermes-client.target.command.timeout: {} is out of range ({} to {} seconds)",
                    command.timeout,
                    COMMAND_TIMEOUT_SECONDS.start(),
                    COMMAND_TIMEOUT_SECONDS.end()
                )
            }
            _ => {}
        }
        self.hermes.bus()?;
        Ok(())
    }
}
