//! Each built-in bus through the host, as the server and the client drive
//! it: the embedded guest, in its sandbox, with the events already rendered.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hermes_host::{Category, Consumer, DirGrant, Engine, Grants, Plugin, Producer, RedisAllow};
use serde_json::{Value, json};

use super::Bench;
use super::report::{Report, Unit};
use super::workload::{BATCH, rate};

/// One bus under measurement: how to reach it for each case.
struct BusCase {
    /// The built-in plugin's name, and the figures' prefix.
    name: &'static str,
    /// The producer's settings for a fresh bus in `dir`, durable one by one
    /// when `durable`.
    producer: fn(&Path, &str, bool) -> Value,
    /// The consumer's settings for the bus the producer wrote.
    consumer: fn(&Path, &str) -> Value,
    /// What a one-by-one send costs on this bus, in words.
    one_by_one: &'static str,
}

const BUSES: [BusCase; 3] = [
    BusCase {
        name: "file-log",
        producer: |dir, _, durable| json!({"path": dir.join("bus"), "fsync": if durable { "always" } else { "batch" }}),
        consumer: |dir, _| json!({"path": dir.join("bus")}),
        one_by_one: "send one by one, fsync: always",
    },
    BusCase {
        name: "sqlite",
        producer: |dir, _, _| json!({"uri": dir.join("bus.sqlite"), "retention_in_days": 30}),
        consumer: |dir, _| json!({"uri": dir.join("bus.sqlite")}),
        one_by_one: "send one by one, each committed",
    },
    BusCase {
        name: "redis-streams",
        producer: |dir, url, _| json!({"url": url, "stream": stream(dir)}),
        consumer: |dir, url| json!({"url": url, "stream": stream(dir)}),
        one_by_one: "send one by one, each answered",
    },
];

/// Each case's own stream, named after its directory.
fn stream(dir: &Path) -> String {
    format!(
        "hermes-bench-{}",
        dir.file_name()
            .map_or("bus".into(), |n| n.to_string_lossy())
    )
}

pub async fn run(bench: &mut Bench, report: &mut Report) -> Result<()> {
    let engine = crate::cli::engine(Engine::default_cache_dir())?;
    for bus in &BUSES {
        let url = if bus.name == "redis-streams" {
            match bench.redis.clone() {
                Some(url) => url,
                None => {
                    report.skip(
                        bus.name,
                        "no Redis server (install redis-server, or give --redis)",
                        5,
                    );
                    continue;
                }
            }
        } else {
            String::new()
        };
        measure(bench, report, &engine, bus, &url).await?;
    }
    Ok(())
}

/// The built-in plugin `name`, granted `dir` and the Redis server at `url`.
pub async fn load(engine: &Engine, name: &str, dir: &Path, url: &str) -> Result<Arc<Plugin>> {
    let bytes = engine
        .built_in(name)
        .with_context(|| format!("no built-in plugin {name}"))?;
    let mut grants = Grants {
        dirs: vec![DirGrant::parse(&dir.display().to_string())?],
        ..Grants::default()
    };
    if !url.is_empty() {
        grants
            .redis
            .push(RedisAllow::parse(url).map_err(anyhow::Error::msg)?);
    }
    Ok(Plugin::load(engine, bytes, &format!("built-in {name}"), grants).await?)
}

async fn producer(plugin: &Arc<Plugin>, settings: &Value) -> Result<Producer> {
    let mut producer = Producer::create(Arc::clone(plugin), settings).await?;
    producer.open().await?;
    Ok(producer)
}

async fn consumer(plugin: &Arc<Plugin>, settings: &Value) -> Result<Consumer> {
    let mut consumer = Consumer::create(Arc::clone(plugin), settings).await?;
    consumer.open().await?;
    consumer.seek_to_beginning().await?;
    consumer.set_timeout(Some(Duration::ZERO));
    Ok(consumer)
}

async fn measure(
    bench: &mut Bench,
    report: &mut Report,
    engine: &Engine,
    bus: &BusCase,
    url: &str,
) -> Result<()> {
    let name = bus.name;

    // Durable sends, one by one.
    let dir = bench.case_dir(&format!("{name}-one"))?;
    let plugin = load(engine, name, &dir, url).await?;
    report.step(&format!("{name}: {}", bus.one_by_one));
    let mut sender = producer(&plugin, &(bus.producer)(&dir, url, true)).await?;
    let started = Instant::now();
    for event in bench.workload.texts.iter().take(bench.n_durable as usize) {
        sender.send_text(event).await?;
    }
    let elapsed = started.elapsed();
    sender.close().await?;
    let key = if name == "file-log" {
        "file-log.produce.always".to_owned()
    } else {
        format!("{name}.produce.one")
    };
    report.figure(
        &key,
        name,
        bus.one_by_one,
        rate(bench.n_durable, elapsed),
        Unit::PerSecond,
    );

    // Batches.
    let dir = bench.case_dir(&format!("{name}-batch"))?;
    let plugin = load(engine, name, &dir, url).await?;
    report.step(&format!("{name}: send-batch of 256"));
    let mut sender = producer(&plugin, &(bus.producer)(&dir, url, false)).await?;
    let started = Instant::now();
    for batch in bench.workload.texts.chunks(BATCH) {
        sender.send_texts(batch).await?;
    }
    let elapsed = started.elapsed();
    sender.close().await?;
    report.figure(
        &format!("{name}.produce.batch"),
        name,
        "send-batch of 256",
        rate(bench.n, elapsed),
        Unit::PerSecond,
    );
    if name == "file-log" {
        let bytes = dir_size(&dir.join("bus"))?;
        report.figure(
            "file-log.produce.batch.bytes",
            name,
            "send-batch of 256, bytes written",
            bytes as f64 / elapsed.as_secs_f64(),
            Unit::BytesPerSecond,
        );
    }

    // Reading everything back, as is, then as `consume` prints it.
    let settings = (bus.consumer)(&dir, url);
    report.step(&format!("{name}: next-batch of 256 to the end"));
    let mut reader = consumer(&plugin, &settings).await?;
    let started = Instant::now();
    let mut read = 0u64;
    loop {
        let batch = reader.next_batch(BATCH as u32).await?;
        if batch.is_empty() {
            break;
        }
        read += batch.len() as u64;
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(read == bench.n, "{name}: read {read} of {} events", bench.n);
    report.figure(
        &format!("{name}.consume"),
        name,
        "next-batch of 256, all events",
        rate(read, elapsed),
        Unit::PerSecond,
    );

    report.step(&format!(
        "{name}: next-batch, each event checked and made compact"
    ));
    reader.seek_to_beginning().await?;
    let started = Instant::now();
    let mut printed = 0usize;
    loop {
        let batch = reader.next_batch(BATCH as u32).await?;
        if batch.is_empty() {
            break;
        }
        // What `consume` does with each event before it prints it.
        for consumed in &batch {
            reader.parse_head(consumed)?;
            printed += hermes_event::compact_json(&consumed.json).len();
        }
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(printed > 0, "{name}: nothing printed");
    report.figure(
        &format!("{name}.consume.parse"),
        name,
        "next-batch, each event checked and made compact (what consume prints)",
        rate(bench.n, elapsed),
        Unit::PerSecond,
    );

    report.step(&format!("{name}: find-next-event-of-category, no match"));
    reader.seek_to_beginning().await?;
    let started = Instant::now();
    let found = reader
        .find_next_event_of_category(Category::Initsync)
        .await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        found.is_none(),
        "{name}: found an initsync event among base events"
    );
    report.figure(
        &format!("{name}.find"),
        name,
        "find-next-event-of-category over N events, no match",
        rate(bench.n, elapsed),
        Unit::PerSecond,
    );
    reader.close().await?;
    Ok(())
}

/// The bytes of the files in `dir`.
fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}
