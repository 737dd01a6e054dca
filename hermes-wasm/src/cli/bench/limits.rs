//! The limits: what the disk, the native libraries and the raw protocols do
//! with the same work, natively, in this process. Nothing here is a bus:
//! these are the references the buses are held to.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::time::Instant;

use anyhow::{Context, Result};
use file_log::record::{self, HEADER_LEN, MAGIC, Slot};
use hermes_host::bindings::types::Category;

use sqlite_bus::table as sqlite;

use super::Bench;
use super::report::{Report, Unit};
use super::workload::{BATCH, rate};

/// The size of one record in the disk's own figures: an event with its
/// frame, as the issue of durability is one append of about this much.
const RECORD: usize = 600;

pub async fn run(bench: &mut Bench, report: &mut Report) -> Result<()> {
    disk(bench, report)?;
    native_file_log(bench, report)?;
    native_sqlite(bench, report)?;
    hermes_sqlite(bench, report)?;
    match bench.redis.clone() {
        Some(url) => native_redis(bench, report, &url).await?,
        None => report.skip(
            "redis-rs",
            "no Redis server (install redis-server, or give --redis)",
            3,
        ),
    }
    Ok(())
}

fn disk(bench: &mut Bench, report: &mut Report) -> Result<()> {
    let dir = bench.case_dir("disk")?;
    report.step("the disk: append + fdatasync");
    let path = dir.join("append");
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    let record = vec![b'x'; RECORD];
    let started = Instant::now();
    for _ in 0..bench.n_durable {
        file.write_all(&record)?;
        file.sync_data()?;
    }
    let per_second = rate(bench.n_durable, started.elapsed());
    report.figure(
        "disk.append-fdatasync",
        "limit",
        "disk: append 600 B + fdatasync, one by one",
        per_second,
        Unit::PerSecond,
    );

    report.step("the disk: sequential write + fdatasync");
    let path = dir.join("sequential");
    let mut file = File::create(&path)?;
    let chunk = vec![b'x'; RECORD * BATCH];
    let chunks = bench.n.div_ceil(BATCH as u64);
    let started = Instant::now();
    for _ in 0..chunks {
        file.write_all(&chunk)?;
    }
    file.sync_data()?;
    let bytes = chunks * chunk.len() as u64;
    report.figure(
        "disk.sequential",
        "limit",
        "disk: sequential write of N records + one fdatasync",
        bytes as f64 / started.elapsed().as_secs_f64(),
        Unit::BytesPerSecond,
    );
    Ok(())
}

/// The file-log format written and read natively with the guest's own
/// record module: one append and one fdatasync per batch, and a buffered
/// reader that checks and decodes every record.
fn native_file_log(bench: &mut Bench, report: &mut Report) -> Result<()> {
    let dir = bench.case_dir("native-file-log")?;
    report.step("native file-log writer");
    let path = record::segment_path(&dir, 0);
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)?;
    file.write_all(MAGIC)?;
    file.sync_all()?;
    let started = Instant::now();
    let mut offset = 0u64;
    let mut pending = Vec::new();
    for batch in bench.workload.texts.chunks(BATCH) {
        let at = record::now();
        for event in batch {
            record::encode_into(
                &mut pending,
                offset,
                &at,
                category(event.category),
                &event.json,
            );
            offset += 1;
        }
        file.write_all(&pending)?;
        file.sync_data()?;
        pending.clear();
    }
    report.figure(
        "native.file-log.write.batch",
        "native",
        "file-log format written natively, fdatasync per 256",
        rate(bench.n, started.elapsed()),
        Unit::PerSecond,
    );

    report.step("native file-log reader");
    let started = Instant::now();
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(&path)?);
    reader.seek(SeekFrom::Start(HEADER_LEN))?;
    let mut read = 0u64;
    let mut bytes = 0usize;
    while let Slot::Record { head, json, .. } = record::read_slot(&mut reader)? {
        let consumed = record::decode(&head, json).map_err(anyhow::Error::msg)?;
        bytes += consumed.json.len();
        read += 1;
    }
    anyhow::ensure!(
        read == bench.n && bytes > 0,
        "the native reader read {read} of {} records",
        bench.n
    );
    report.figure(
        "native.file-log.read",
        "native",
        "file-log format read natively (checked and decoded)",
        rate(read, started.elapsed()),
        Unit::PerSecond,
    );
    Ok(())
}

/// The sqlite guest's own statements (`guests/sqlite/src/table.rs`),
/// through rusqlite with a cached statement each.
fn native_sqlite(bench: &mut Bench, report: &mut Report) -> Result<()> {
    let dir = bench.case_dir("native-sqlite")?;
    let db = rusqlite::Connection::open(dir.join("bus.sqlite"))?;
    db.execute(sqlite::CREATE, [])?;

    report.step("native rusqlite: INSERT one by one");
    let started = Instant::now();
    for event in bench.workload.texts.iter().take(bench.n_durable as usize) {
        db.prepare_cached(sqlite::INSERT)?
            .execute(rusqlite::params![event.json, sqlite::now()])?;
    }
    report.figure(
        "native.sqlite.insert.one",
        "native",
        "rusqlite: INSERT one by one, each committed",
        rate(bench.n_durable, started.elapsed()),
        Unit::PerSecond,
    );

    report.step("native rusqlite: INSERT in transactions of 256");
    db.execute("DELETE FROM hermesmessages", [])?;
    let started = Instant::now();
    for batch in bench.workload.texts.chunks(BATCH) {
        db.execute_batch("BEGIN IMMEDIATE")?;
        let at = sqlite::now();
        for event in batch {
            db.prepare_cached(sqlite::INSERT)?
                .execute(rusqlite::params![event.json, at])?;
        }
        db.execute_batch("COMMIT")?;
    }
    report.figure(
        "native.sqlite.insert.batch",
        "native",
        "rusqlite: INSERT in transactions of 256",
        rate(bench.n, started.elapsed()),
        Unit::PerSecond,
    );

    report.step("native rusqlite: the consumer's page queries");
    let started = Instant::now();
    let mut next = i64::MIN;
    let mut read = 0u64;
    loop {
        // The rows' sizes first, then the page: what the plugin asks.
        let mut sizes = db.prepare_cached(sqlite::SIZES)?;
        let mut sized = sizes.query(rusqlite::params![next, BATCH as i64])?;
        let mut last = None;
        while let Some(row) = sized.next()? {
            last = Some(row.get::<_, i64>(0)?);
        }
        let Some(last) = last else {
            break;
        };
        let mut statement = db.prepare_cached(sqlite::PAGE)?;
        let mut rows = statement.query(rusqlite::params![next, last])?;
        let mut got = 0;
        while let Some(row) = rows.next()? {
            let msgid: i64 = row.get(0)?;
            let data: String = row.get(1)?;
            let _timestamp: f64 = row.get(2)?;
            let category: Option<String> = row.get(3)?;
            anyhow::ensure!(
                !data.is_empty() && category.is_some(),
                "row {msgid} is not an event"
            );
            next = msgid + 1;
            got += 1;
        }
        if got == 0 {
            break;
        }
        read += got;
    }
    anyhow::ensure!(read == bench.n, "read {read} of {} rows", bench.n);
    report.figure(
        "native.sqlite.page",
        "native",
        "rusqlite: the consumer's queries (the sizes, then the rows), 256 rows a page",
        rate(read, started.elapsed()),
        Unit::PerSecond,
    );
    Ok(())
}

/// hermes' own consumer, `plugins/messagebus_consumers/sqlite` of the
/// hermes checkout given with `--hermes`, iterating the same table: the
/// Python that hermes-wasm replaces. It needs nothing beyond Python's
/// standard library.
fn hermes_sqlite(bench: &mut Bench, report: &mut Report) -> Result<()> {
    const DRIVER: &str = "import builtins, logging, sys, time
sys.path.insert(0, sys.argv[1])
class Hermes:
    logger = logging.getLogger('hermes')
builtins.__hermes__ = Hermes()
from plugins.messagebus_consumers.sqlite.sqlite import SqliteConsumerPlugin
consumer = SqliteConsumerPlugin({'uri': sys.argv[2]})
consumer.open()
consumer.setTimeout(1000)
consumer.seekToBeginning()
wanted = int(sys.argv[3])
n = 0
start = time.perf_counter()
for event in consumer:
    n += 1
    if n == wanted:
        break
print(n, time.perf_counter() - start)
";
    let Some(hermes) = bench.hermes.clone() else {
        report.skip(
            "hermes' sqlite consumer",
            "give --hermes DIR (a hermes checkout) to measure it",
            1,
        );
        return Ok(());
    };
    let db = bench
        .dir
        .path()
        .read_dir()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bus.sqlite")))
        .find(|p| p.is_file())
        .context("the native sqlite case left no database")?;
    report.step("hermes' own Python sqlite consumer");
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(DRIVER)
        .arg(&hermes)
        .arg(&db)
        .arg(bench.n.to_string())
        .output()
        .context("cannot run python3")?;
    if !output.status.success() {
        anyhow::bail!(
            "--hermes {}: its sqlite consumer failed: {}",
            hermes.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut words = text.split_whitespace();
    let (Some(n), Some(seconds)) = (
        words.next().and_then(|w| w.parse::<u64>().ok()),
        words.next().and_then(|w| w.parse::<f64>().ok()),
    ) else {
        anyhow::bail!("hermes' consumer printed {text:?}");
    };
    anyhow::ensure!(
        n == bench.n,
        "hermes' consumer read {n} of {} events",
        bench.n
    );
    report.figure(
        "hermes.sqlite.consume",
        "hermes",
        "hermes' own Python sqlite consumer iterating the bus",
        n as f64 / seconds.max(1e-9),
        Unit::PerSecond,
    );
    Ok(())
}

/// The redis-streams guest's commands through redis-rs, the library the
/// host's capability uses, on the same server.
async fn native_redis(bench: &mut Bench, report: &mut Report, url: &str) -> Result<()> {
    let client = redis::Client::open(url)?;
    let mut redis = client.get_multiplexed_async_connection().await?;
    let stream = "hermes-bench-native";
    let xadd = |json: &str| {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream)
            .arg("*")
            .arg("category")
            .arg("base")
            .arg("event")
            .arg(json);
        cmd
    };
    let _: () = redis::cmd("DEL")
        .arg(stream)
        .query_async(&mut redis)
        .await?;

    report.step("redis-rs: XADD one by one");
    let started = Instant::now();
    for event in &bench.workload.texts {
        let _: String = xadd(&event.json).query_async(&mut redis).await?;
    }
    report.figure(
        "native.redis.xadd.one",
        "native",
        "redis-rs: XADD one by one",
        rate(bench.n, started.elapsed()),
        Unit::PerSecond,
    );

    report.step("redis-rs: XADD pipelined in MULTI/EXEC of 256");
    let _: () = redis::cmd("DEL")
        .arg(stream)
        .query_async(&mut redis)
        .await?;
    let started = Instant::now();
    for batch in bench.workload.texts.chunks(BATCH) {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for event in batch {
            pipe.add_command(xadd(&event.json));
        }
        let ids: Vec<String> = pipe.query_async(&mut redis).await?;
        anyhow::ensure!(ids.len() == batch.len(), "EXEC answered {} IDs", ids.len());
    }
    report.figure(
        "native.redis.xadd.pipelined",
        "native",
        "redis-rs: XADD pipelined, MULTI/EXEC of 256",
        rate(bench.n, started.elapsed()),
        Unit::PerSecond,
    );

    report.step("redis-rs: XRANGE in pages of 256");
    let started = Instant::now();
    let mut start = "-".to_owned();
    let mut read = 0u64;
    loop {
        let page: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(BATCH)
            .query_async(&mut redis)
            .await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        start = format!("({last}");
        read += page.len() as u64;
    }
    anyhow::ensure!(read == bench.n, "read {read} of {} entries", bench.n);
    report.figure(
        "native.redis.xrange",
        "native",
        "redis-rs: XRANGE in pages of 256",
        rate(read, started.elapsed()),
        Unit::PerSecond,
    );
    let _: () = redis::cmd("DEL")
        .arg(stream)
        .query_async(&mut redis)
        .await?;
    Ok(())
}

fn category(category: Category) -> record::Category {
    match category {
        Category::Base => record::Category::Base,
        Category::Initsync => record::Category::Initsync,
    }
}
