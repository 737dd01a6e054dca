use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use hermes_event::Event;
use hermes_wasm::{Producer, offset, settings};

use super::PluginArgs;

/// Events go to the plugin in batches of this many: one call, one fsync.
const BATCH: usize = 256;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    plugin: PluginArgs,

    /// The plugin's settings: JSON text, or `@FILE` (JSON or YAML).
    #[arg(long, value_name = "JSON|@FILE")]
    settings: String,

    /// Read events from this file instead of stdin: one hermes event JSON per
    /// line; blank lines are skipped. The whole input is checked before
    /// anything is sent.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
}

pub async fn run(args: ProduceArgs) -> Result<()> {
    let (name, events) = read_events(args.input.as_ref())?;
    let settings = settings::parse_arg(&args.settings)?;
    let plugin = args.plugin.load().await?;
    let mut producer = Producer::create(plugin, &settings).await?;
    producer.open().await?;

    let mut sent = 0usize;
    let mut last = None;
    for batch in events.chunks(BATCH) {
        let offsets = producer
            .send_batch(batch)
            .await
            .with_context(|| format!("{sent} events of {name} were sent before this failure"))?;
        sent += batch.len();
        last = offsets.last().cloned().or(last);
    }
    producer.close().await?;
    let summary = match last {
        Some(last) => format!(
            "sent {sent} events, last offset {}\n",
            offset::to_json(&last)
        ),
        None => "sent 0 events\n".to_owned(),
    };
    std::io::stdout().lock().write_all(summary.as_bytes())?;
    Ok(())
}

/// Reads and checks every event; the error names the input and line.
fn read_events(input: Option<&PathBuf>) -> Result<(String, Vec<Event>)> {
    let (name, reader): (String, Box<dyn Read>) = match input {
        Some(path) => (
            path.display().to_string(),
            Box::new(
                std::fs::File::open(path).with_context(|| format!("--input {}", path.display()))?,
            ),
        ),
        None => ("stdin".to_owned(), Box::new(std::io::stdin())),
    };
    let mut events = Vec::new();
    for (index, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.with_context(|| format!("{name}: line {}", index + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        match Event::from_json(&line) {
            Ok(event) => events.push(event),
            Err(e) => bail!(
                "{name}: line {}: not a hermes event: {e}; nothing was sent",
                index + 1
            ),
        }
    }
    Ok((name, events))
}
