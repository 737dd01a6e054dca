//! `hermes-wasm bench`: every speed and memory figure of the bus path in one
//! run, each beside the limit it is held to, measured in the same run on the
//! same machine: the disk, the native library, the raw protocol.
//!
//! - [`limits`]: the disk's append + fdatasync and sequential bandwidth, a
//!   native reader and writer of the file-log format, native rusqlite with
//!   the sqlite guest's statements, raw redis-rs with the redis-streams
//!   guest's commands.
//! - [`buses`]: each built-in bus through the host: durable sends one by
//!   one, sends in batches, reading everything, and a category search that
//!   finds nothing.
//! - [`host`]: the sandbox's own costs: a call that does nothing, a cold
//!   start from the compiled cache, an idle instance's memory.
//! - [`jobs`]: a new client applying events to a JSON-lines file, the
//!   server's first and idle polls, and the peak memory of whole `produce`,
//!   `consume` and `client` processes at two sizes.
//!
//! Each case moves events already rendered as hermes JSON (~400 bytes, a
//! user with 8 attributes), so that the figures compare the bus paths and
//! nothing else.

mod buses;
mod host;
mod jobs;
mod limits;
mod report;
mod workload;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use local_servers::RedisServer;

pub use self::jobs::peak_rss;
use self::report::{Report, Target};
use self::workload::Workload;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Events per case.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 100_000)]
    events: u64,

    /// A short run (2,000 events per case), to check that every case works.
    #[arg(long, conflicts_with = "events")]
    quick: bool,

    /// Print the results as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,

    /// Where the buses are written (the disk measured is this directory's):
    /// a new directory inside it, removed at the end. Default: the
    /// temporary directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// A Redis server to measure on (loopback only; the bench writes and
    /// deletes its own keys). Default: a redis-server the bench starts on a
    /// free loopback port, if one is installed; without either, the Redis
    /// cases are skipped.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,

    /// A hermes checkout (Python, 1.0.9): its own sqlite consumer is
    /// measured on the same bus, the figure `consume` is held to.
    #[arg(long, value_name = "DIR")]
    hermes: Option<PathBuf>,
}

/// What every case gets: the sizes, the directory, the Redis server.
pub struct Bench {
    /// Events per throughput case.
    pub n: u64,
    /// Events per case that syncs the disk after each one (at most 10,000:
    /// the disk's rate bounds it, and more says nothing new).
    pub n_durable: u64,
    /// The events, rendered.
    pub workload: Workload,
    /// Where buses go; each case takes a fresh subdirectory.
    pub dir: tempfile::TempDir,
    /// The Redis server, if any.
    pub redis: Option<String>,
    /// A hermes checkout, if any.
    pub hermes: Option<PathBuf>,
    cases: u64,
}

impl Bench {
    /// A fresh, empty directory for one case.
    pub fn case_dir(&mut self, name: &str) -> Result<PathBuf> {
        self.cases += 1;
        let dir = self.dir.path().join(format!("{:02}-{name}", self.cases));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let n = if args.quick {
        2_000
    } else {
        args.events.max(1)
    };
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("hermes-wasm-bench-")
        .tempdir_in(&parent)
        .with_context(|| {
            format!(
                "--dir {}: cannot create a directory in it",
                parent.display()
            )
        })?;
    // A server of our own lives as long as the run.
    let mut own_redis = None;
    let redis = match &args.redis {
        Some(url) => Some(loopback_only(url)?),
        None => match RedisServer::try_start() {
            Ok(server) => {
                let url = server.url();
                own_redis = Some(server);
                Some(url)
            }
            Err(e) => {
                tracing::warn!("the Redis cases are skipped: {e}");
                None
            }
        },
    };
    let mut bench = Bench {
        n,
        n_durable: n.min(10_000),
        workload: Workload::new(n),
        dir,
        redis,
        hermes: args.hermes.clone(),
        cases: 0,
    };
    let mut report = Report::new(
        n,
        bench.n_durable,
        &bench.dir,
        bench.redis.as_deref(),
        args.json,
    );
    report.machine(bench.workload.bytes() / n);

    limits::run(&mut bench, &mut report).await?;
    buses::run(&mut bench, &mut report).await?;
    host::run(&mut bench, &mut report).await?;
    jobs::run(&mut bench, &mut report, args.quick).await?;
    ratios(&mut report);
    report.finish();
    drop(own_redis);
    Ok(())
}

/// The ratios the targets are set on; each compares two figures of this run.
fn ratios(report: &mut Report) {
    use Target::{AtLeast, AtMost};
    let ratios: &[(&str, &str, &str, Target)] = &[
        (
            "file-log consume / native reader",
            "file-log.consume",
            "native.file-log.read",
            AtLeast(0.8),
        ),
        (
            "file-log batched produce / native writer",
            "file-log.produce.batch",
            "native.file-log.write.batch",
            AtLeast(0.8),
        ),
        (
            "file-log batched produce / disk sequential bandwidth (bytes)",
            "file-log.produce.batch.bytes",
            "disk.sequential",
            AtLeast(0.5),
        ),
        (
            "file-log fsync always / disk append + fdatasync",
            "file-log.produce.always",
            "disk.append-fdatasync",
            AtLeast(0.8),
        ),
        (
            "sqlite batched produce / native rusqlite",
            "sqlite.produce.batch",
            "native.sqlite.insert.batch",
            AtLeast(0.8),
        ),
        (
            "sqlite produce one by one / native rusqlite",
            "sqlite.produce.one",
            "native.sqlite.insert.one",
            AtLeast(0.8),
        ),
        (
            "sqlite consume / native rusqlite",
            "sqlite.consume",
            "native.sqlite.page",
            AtLeast(0.8),
        ),
        (
            "redis-streams batched produce / redis-rs pipelined",
            "redis-streams.produce.batch",
            "native.redis.xadd.pipelined",
            AtLeast(0.8),
        ),
        (
            "redis-streams produce one by one / redis-rs one by one",
            "redis-streams.produce.one",
            "native.redis.xadd.one",
            AtLeast(0.8),
        ),
        (
            "redis-streams consume / redis-rs XRANGE paging",
            "redis-streams.consume",
            "native.redis.xrange",
            AtLeast(0.8),
        ),
        (
            "sqlite consume, checked and compact / hermes' own Python sqlite consumer",
            "sqlite.consume.parse",
            "hermes.sqlite.consume",
            AtLeast(10.0),
        ),
        (
            "client to JSON-lines / file-log consume",
            "client.jsonlines",
            "file-log.consume",
            AtLeast(0.5),
        ),
        (
            "peak RSS of produce, large / small N",
            "rss.produce.large",
            "rss.produce.small",
            AtMost(1.25),
        ),
        (
            "peak RSS of consume, large / small N",
            "rss.consume.large",
            "rss.consume.small",
            AtMost(1.25),
        ),
        (
            "peak RSS of client, large / small N",
            "rss.client.large",
            "rss.client.small",
            AtMost(1.25),
        ),
        (
            "peak RSS of server, large / small N",
            "rss.server.large",
            "rss.server.small",
            AtMost(1.25),
        ),
    ];
    for (what, figure, reference, target) in ratios {
        report.ratio(what, figure, reference, *target);
    }
}

/// The bench writes to the Redis server it is given: only a loopback one.
fn loopback_only(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("redis://")
        .with_context(|| format!("--redis {url}: expected redis://HOST:PORT"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = host.rsplit_once(':').map_or(host, |(host, _)| host);
    match host {
        "127.0.0.1" | "[::1]" | "localhost" => Ok(url.to_owned()),
        other => anyhow::bail!(
            "--redis {url}: the bench writes to the server, so it must be on loopback, not {other}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loopback_redis_is_measured() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://[::1]:6380/2",
            "redis://u:p@localhost:1",
        ] {
            assert_eq!(loopback_only(url).expect(url), url);
        }
        for url in [
            "redis://10.0.0.1:6379",
            "redis://example.com",
            "http://127.0.0.1",
        ] {
            assert!(loopback_only(url).is_err(), "{url}");
        }
    }
}
