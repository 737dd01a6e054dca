//! The sandbox's own costs, apart from any bus's work.

use std::time::{Duration, Instant};

use anyhow::Result;
use hermes_host::{Consumer, Producer};
use serde_json::json;

use super::Bench;
use super::buses::load;
use super::report::{Report, Unit};

/// Calls timed for the cost of one call.
const CALLS: u32 = 20_000;
/// Cold starts timed; the median is kept.
const STARTS: usize = 15;
/// Idle instances held at once to weigh one.
const INSTANCES: usize = 32;

pub async fn run(bench: &mut Bench, report: &mut Report) -> Result<()> {
    let dir = bench.case_dir("host")?;
    // Beside the granted directory: a plugin is never granted the cache.
    let cache = bench.case_dir("host-component-cache")?;
    let settings = json!({"path": dir.join("bus")});

    report.step("a guest call that does nothing");
    let engine = crate::cli::engine(Some(cache.clone()))?;
    let plugin = load(&engine, "file-log", &dir, "").await?;
    let mut producer = Producer::create(plugin.clone(), &settings).await?;
    producer.open().await?;
    let started = Instant::now();
    for _ in 0..CALLS {
        // An empty batch: the call, its arguments and results, no work.
        producer.send_texts(&[]).await?;
    }
    let per_call = started.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS);
    producer.close().await?;
    report.figure(
        "host.call",
        "host",
        "a guest call that does nothing (an empty send-batch)",
        per_call,
        Unit::Micros,
    );

    report.step("cold start from the compiled cache");
    let mut starts = Vec::with_capacity(STARTS);
    for _ in 0..STARTS {
        let started = Instant::now();
        let engine = crate::cli::engine(Some(cache.clone()))?;
        let plugin = load(&engine, "file-log", &dir, "").await?;
        // `create` is the first call into the guest.
        let producer = Producer::create(plugin, &settings).await?;
        starts.push(started.elapsed());
        drop(producer);
    }
    starts.sort();
    report.figure_at_most(
        "host.cold-start",
        "host",
        "cold start: engine, plugin from the cache, instance, first call (median)",
        millis(starts[STARTS / 2]),
        Unit::Millis,
        10.0,
    );

    report.step("the resident memory of an idle instance");
    let before = resident_bytes();
    let mut held = Vec::with_capacity(INSTANCES);
    for _ in 0..INSTANCES {
        let mut consumer = Consumer::create(plugin.clone(), &settings).await?;
        consumer.open().await?;
        held.push(consumer);
    }
    let after = resident_bytes();
    let per_instance = after.saturating_sub(before) as f64 / INSTANCES as f64 / f64::from(1 << 20);
    report.figure_at_most(
        "host.idle-instance",
        "host",
        "resident memory of one idle, open instance",
        per_instance,
        Unit::MiB,
        5.0,
    );
    drop(held);
    Ok(())
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// This process's resident memory, from `/proc/self/statm`.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
