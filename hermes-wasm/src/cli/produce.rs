//! `hermes-wasm produce`: one hermes event JSON per input line, checked whole
//! before anything is sent, then sent in batches.
//!
//! The input is read twice over without being held in memory: the first pass
//! parses each line, renders it as hermes does and spools it to an unnamed
//! temporary file (a bad line stops there, nothing sent); the second pass
//! reads the spool back a batch at a time. Memory stays flat whatever the
//! input's size; the spool takes about the size of the events' hermes JSON in
//! the temporary directory (`$TMPDIR`).

use std::io::{BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use hermes_event::Event;
use hermes_host::bindings::types::Category;
use hermes_host::{EventText, Producer, offset};

use super::settings;

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

    /// Print a line on stdout each time the bus acknowledges a batch:
    /// `acknowledged N events, last offset X` (what a crash cannot take back).
    #[arg(long)]
    progress: bool,
}

pub async fn run(args: ProduceArgs) -> Result<()> {
    let settings = settings::parse_arg(&args.settings)?;
    let (name, spool) = spool_events(args.input.as_ref())?;
    let (plugin, spec) = args.plugin.load(settings).await?;
    let mut producer = Producer::create(plugin, &spec.settings).await?;
    producer.open().await?;

    let mut sent = 0u64;
    let mut last = None;
    let mut batches = spool.into_batches(BATCH)?;
    while let Some(batch) = batches.next_batch()? {
        let offsets = producer
            .send_texts(&batch)
            .await
            .with_context(|| format!("{sent} events of {name} were sent before this failure"))?;
        sent += batch.len() as u64;
        last = offsets.last().cloned().or(last);
        if args.progress
            && let Some(last) = &last
        {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "acknowledged {sent} events, last offset {}",
                offset::to_json(last)
            )?;
            out.flush()?;
        }
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

/// Reads and checks every event, spooling each as it will be sent; the error
/// names the input and line.
fn spool_events(input: Option<&PathBuf>) -> Result<(String, Spool)> {
    let (name, reader): (String, Box<dyn Read>) = match input {
        Some(path) => (
            path.display().to_string(),
            Box::new(
                std::fs::File::open(path).with_context(|| format!("--input {}", path.display()))?,
            ),
        ),
        None => ("stdin".to_owned(), Box::new(std::io::stdin())),
    };
    let mut spool = Spool::new()?;
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        number += 1;
        let read = reader
            .read_line(&mut line)
            .with_context(|| format!("{name}: line {number}"))?;
        if read == 0 {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        match Event::from_json(&line) {
            Ok(event) => spool
                .push(&EventText::render(&event))
                .context("cannot write the spool of checked events")?,
            Err(e) => bail!("{name}: line {number}: not a hermes event: {e}; nothing was sent"),
        }
    }
    Ok((name, spool))
}

/// Rendered events in an unnamed temporary file, each as a category byte
/// and three length-prefixed texts (objtype and objpkey may be absent).
struct Spool {
    file: BufWriter<std::fs::File>,
}

/// The length written for an absent text.
const ABSENT: u32 = u32::MAX;

impl Spool {
    fn new() -> Result<Spool> {
        let file =
            tempfile::tempfile().context("cannot create a spool in the temporary directory")?;
        Ok(Spool {
            file: BufWriter::with_capacity(1 << 16, file),
        })
    }

    fn push(&mut self, event: &EventText) -> std::io::Result<()> {
        self.file.write_all(&[match event.category {
            Category::Base => 0,
            Category::Initsync => 1,
        }])?;
        for text in [event.objtype.as_deref(), event.objpkey.as_deref()] {
            self.text(text)?;
        }
        self.text(Some(&event.json))
    }

    fn text(&mut self, text: Option<&str>) -> std::io::Result<()> {
        match text {
            Some(text) => {
                let len = u32::try_from(text.len()).map_err(std::io::Error::other)?;
                self.file.write_all(&len.to_le_bytes())?;
                self.file.write_all(text.as_bytes())
            }
            None => self.file.write_all(&ABSENT.to_le_bytes()),
        }
    }

    fn into_batches(self, size: usize) -> Result<Batches> {
        let mut file = self
            .file
            .into_inner()
            .map_err(|e| e.into_error())
            .context("cannot write the spool of checked events")?;
        file.rewind().context("cannot read the spool back")?;
        Ok(Batches {
            file: BufReader::with_capacity(1 << 16, file),
            size,
        })
    }
}

/// The spool read back, a batch at a time.
struct Batches {
    file: BufReader<std::fs::File>,
    size: usize,
}

impl Batches {
    fn next_batch(&mut self) -> Result<Option<Vec<EventText>>> {
        let mut batch = Vec::with_capacity(self.size);
        while batch.len() < self.size {
            match self.next_event().context("cannot read the spool back")? {
                Some(event) => batch.push(event),
                None => break,
            }
        }
        Ok((!batch.is_empty()).then_some(batch))
    }

    fn next_event(&mut self) -> std::io::Result<Option<EventText>> {
        let mut category = [0u8; 1];
        if self.file.read(&mut category)? == 0 {
            return Ok(None);
        }
        let category = if category[0] == 0 {
            Category::Base
        } else {
            Category::Initsync
        };
        let objtype = self.text()?;
        let objpkey = self.text()?;
        let json = self.text()?.unwrap_or_default();
        Ok(Some(EventText {
            category,
            objtype,
            objpkey,
            json,
        }))
    }

    fn text(&mut self) -> std::io::Result<Option<String>> {
        let mut len = [0u8; 4];
        self.file.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len);
        if len == ABSENT {
            return Ok(None);
        }
        let mut bytes = vec![0u8; len as usize];
        self.file.read_exact(&mut bytes)?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> EventText {
        EventText {
            category: if i.is_multiple_of(2) {
                Category::Base
            } else {
                Category::Initsync
            },
            objtype: (!i.is_multiple_of(3)).then(|| format!("T{i}")),
            objpkey: (!i.is_multiple_of(3)).then(|| i.to_string()),
            json: format!("{{\n    \"n\": \"\\u00e9{i}\"\n}}"),
        }
    }

    #[test]
    fn the_spool_gives_back_every_event_in_order_in_batches() {
        let mut spool = Spool::new().expect("spool");
        let events: Vec<EventText> = (0..10).map(event).collect();
        for e in &events {
            spool.push(e).expect("push");
        }
        let mut batches = spool.into_batches(4).expect("batches");
        let mut sizes = Vec::new();
        let mut back = Vec::new();
        while let Some(batch) = batches.next_batch().expect("read") {
            sizes.push(batch.len());
            back.extend(batch);
        }
        assert_eq!(sizes, [4, 4, 2]);
        assert_eq!(back, events);
    }
}
