use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{DateTime, SecondsFormat};
use clap::Args;
use hermes_event::compact_json;
use hermes_host::{Category, Consumed, Consumer, offset};

use super::settings;

use super::PluginArgs;

/// Events asked of the plugin per call when reading without a category.
const BATCH: u32 = 256;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    plugin: PluginArgs,

    /// The plugin's settings: JSON text, or `@FILE` (JSON or YAML).
    #[arg(long, value_name = "JSON|@FILE")]
    settings: String,

    /// Start at the oldest event on the bus (the default).
    #[arg(long, conflicts_with_all = ["offset", "after"])]
    from_beginning: bool,

    /// Start at the event with this offset, as printed by `consume` (`42`,
    /// `"1700000000000-0"`, `{"bytes": "..."}`).
    #[arg(long, value_name = "OFFSET", conflicts_with = "after")]
    offset: Option<String>,

    /// Start right after the event with this offset: how a reader resumes.
    #[arg(long, value_name = "OFFSET")]
    after: Option<String>,

    /// Only events of this category: `base` or `initsync`.
    #[arg(long, value_name = "CATEGORY")]
    category: Option<String>,

    /// Stop once no event came for this long, in milliseconds. Default: wait
    /// for new events forever.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,

    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
}

pub async fn run(args: ConsumeArgs) -> Result<()> {
    let category = match args.category.as_deref() {
        None => None,
        Some("base") => Some(Category::Base),
        Some("initsync") => Some(Category::Initsync),
        Some(other) => bail!("--category {other}: expected base or initsync"),
    };
    let start = match (&args.offset, &args.after) {
        (Some(text), _) => Some((false, offset::parse(text).map_err(anyhow::Error::msg)?)),
        (_, Some(text)) => Some((true, offset::parse(text).map_err(anyhow::Error::msg)?)),
        _ => None,
    };
    let settings = settings::parse_arg(&args.settings)?;
    let (plugin, spec) = args.plugin.load(settings).await?;
    let mut consumer = Consumer::create(plugin, &spec.settings).await?;
    consumer.open().await?;
    match start {
        None => consumer.seek_to_beginning().await?,
        Some((false, at)) => consumer.seek(&at).await?,
        Some((true, after)) => consumer.seek_after(&after).await?,
    }
    consumer.set_timeout(args.timeout_ms.map(Duration::from_millis));

    let mut stdout = std::io::stdout().lock();
    let mut printed = 0u64;
    let limit = args.limit.unwrap_or(u64::MAX);
    while printed < limit {
        let read = match category {
            Some(category) => consumer
                .find_next_event_of_category(category)
                .await
                .map(|found| found.into_iter().collect()),
            None => {
                let max = u32::try_from(limit - printed).unwrap_or(BATCH).min(BATCH);
                consumer.next_batch(max).await
            }
        };
        let events = match read {
            // Events the bus lost before they were read: said, and the
            // reading goes on with what it still holds.
            Err(e) if e.gap().is_some() => {
                tracing::error!("{e}");
                continue;
            }
            read => read?,
        };
        if events.is_empty() {
            break;
        }
        for consumed in &events {
            // Checked to be a hermes event, then printed as the bus holds it,
            // on one line: hermes' compact form, without parsing objattrs.
            consumer.parse_head(consumed)?;
            writeln!(stdout, "{}", line(consumed))?;
            printed += 1;
        }
        stdout.flush()?;
    }
    consumer.close().await?;
    Ok(())
}

/// `{"offset": ..., "timestamp": "...", "event": {...}}` on one line.
fn line(consumed: &Consumed) -> String {
    let timestamp =
        DateTime::from_timestamp(consumed.timestamp.seconds, consumed.timestamp.nanoseconds)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
            .unwrap_or_default();
    format!(
        "{{\"offset\": {}, \"timestamp\": \"{timestamp}\", \"event\": {}}}",
        offset::to_json(&consumed.offset),
        compact_json(&consumed.json)
    )
}
