//! hermes' jobs through the library (a new client, the server's polls), and
//! the peak memory of whole `produce`, `consume` and `client` processes at a
//! small and a large size, which must stay flat as the input grows.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hermes_event::{Category, Event, EventType, Value};
use hermes_host::{Engine, EventText, Producer};
use hermes_jobs::Stop;
use hermes_jobs::client::Client;
use hermes_jobs::server::Server;
use serde_json::json;

use super::Bench;
use super::buses::load;
use super::report::{Report, Unit};
use super::workload::{BATCH, rate, user, write_input};

const SERVER_YML: &str = include_str!("../../../../examples/server.yml");
const DATASOURCE_SQL: &str = include_str!("../../../../examples/datasource.sql");

pub async fn run(bench: &mut Bench, report: &mut Report, quick: bool) -> Result<()> {
    let engine = crate::cli::engine(Engine::default_cache_dir())?;
    client(bench, report, &engine).await?;
    server(bench, report, &engine).await?;
    let (small, large) = if quick {
        (200, 20_000)
    } else {
        ((bench.n / 10).max(1000), bench.n * 10)
    };
    peak_memory(bench, report, small, large)?;
    Ok(())
}

fn client_yml(dir: &Path) -> String {
    format!(
        "hermes:\n  cache:\n    dirpath: client-cache\n  plugins:\n    messagebus:\n      file-log:\n        settings: {{path: \"{bus}\"}}\n        dirs: [\"{bus}:ro\"]\nhermes-client:\n  target:\n    jsonlines: {{path: applied.jsonl}}\n",
        bus = dir.join("bus").display(),
    )
}

async fn client(bench: &mut Bench, report: &mut Report, engine: &Engine) -> Result<()> {
    let dir = bench.case_dir("client")?;
    report.step("client: writing an initsync sequence");
    let plugin = load(engine, "file-log", &dir, "").await?;
    let mut producer = Producer::create(plugin, &json!({"path": dir.join("bus")})).await?;
    producer.open().await?;
    let edge = |eventtype, objattrs| {
        Event::new(Category::Initsync, eventtype, None, Value::Null, objattrs)
    };
    let schema = Value::Object(vec![("SRVUsers".to_owned(), Value::empty_object())]);
    producer.send(&edge(EventType::InitStart, schema)).await?;
    let mut id = 0;
    while id < bench.n {
        let end = (id + BATCH as u64).min(bench.n);
        let batch: Vec<EventText> = (id..end)
            .map(|i| EventText::render(&user(Category::Initsync, i)))
            .collect();
        producer.send_texts(&batch).await?;
        id = end;
    }
    producer
        .send(&edge(EventType::InitStop, Value::empty_object()))
        .await?;
    producer.close().await?;

    let config = dir.join("client.yml");
    std::fs::write(&config, client_yml(&dir))?;
    report.step("client: applying the sequence to a JSON-lines file");
    let started = Instant::now();
    let mut client = Client::start(&config, engine).await?;
    let ran = client.run(true, &Stop::new()).await?;
    client.stop().await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        ran.applied as u64 == bench.n,
        "the client applied {} of {} events",
        ran.applied,
        bench.n
    );
    report.figure(
        "client.jsonlines",
        "jobs",
        "a new client applies an initsync of N to JSON-lines (start to saved cache)",
        rate(bench.n + 2, elapsed),
        Unit::PerSecond,
    );
    Ok(())
}

async fn server(bench: &mut Bench, report: &mut Report, engine: &Engine) -> Result<()> {
    let dir = bench.case_dir("server")?;
    report.step("server: a datasource of N users and their memberships");
    let config = example_server(&dir, bench.n)?;

    report.step("server: the first poll (an initsync sequence)");
    let mut server = Server::start(&config, engine).await?;
    let started = Instant::now();
    let first = server.poll(false).await?;
    let elapsed = started.elapsed();
    let objects = first.initsync.unwrap_or(0) as u64;
    anyhow::ensure!(objects >= bench.n, "the first poll sent {objects} objects");
    report.figure(
        "server.first-poll",
        "jobs",
        "server's first poll: fetch, map, send an initsync of N users and N memberships, save the cache",
        rate(objects, elapsed),
        Unit::PerSecond,
    );

    report.step("server: a poll that finds nothing changed");
    let started = Instant::now();
    let idle = server.poll(false).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        idle.added + idle.modified + idle.removed == 0,
        "the idle poll found changes"
    );
    report.figure(
        "server.idle-poll",
        "jobs",
        "server's poll of N users and N memberships that finds nothing changed",
        elapsed.as_secs_f64() * 1e3,
        Unit::Millis,
    );
    server.stop().await?;
    Ok(())
}

/// The example's configuration (`examples/server.yml`) and datasource
/// (`examples/datasource.sql`) scaled to `n` users, in `dir`; the
/// configuration's path.
fn example_server(dir: &Path, n: u64) -> Result<std::path::PathBuf> {
    anyhow::ensure!(
        DATASOURCE_SQL.contains("i < 300"),
        "examples/datasource.sql no longer sizes its users with `i < 300`"
    );
    let sql = DATASOURCE_SQL.replace("i < 300", &format!("i < {n}"));
    rusqlite::Connection::open(dir.join("directory.sqlite"))?.execute_batch(&sql)?;
    // The example grants the bus's own directory, which must exist.
    std::fs::create_dir_all(dir.join("bus"))?;
    let config = dir.join("server.yml");
    std::fs::write(
        &config,
        SERVER_YML.replace("@WORK@", &dir.display().to_string()),
    )?;
    Ok(config)
}

/// Runs `produce`, `consume`, `client` and `server` as processes of their
/// own on `small`, then `large` events (for the server, users in its
/// datasource), and records each one's peak resident memory.
fn peak_memory(bench: &mut Bench, report: &mut Report, small: u64, large: u64) -> Result<()> {
    for (size, n) in [("small", small), ("large", large)] {
        let dir = bench.case_dir(&format!("rss-{size}"))?;
        report.step(&format!("peak memory: writing {n} events"));
        let input = dir.join("events.jsonl");
        write_input(&input, n, true)?;
        let settings = json!({"path": dir.join("bus")}).to_string();
        let grant = dir.display().to_string();
        let input = input.display().to_string();
        let config = dir.join("client.yml");
        std::fs::write(&config, client_yml(&dir))?;
        let config = config.display().to_string();
        let server_dir = dir.join("server");
        std::fs::create_dir_all(&server_dir)?;
        let server_config = example_server(&server_dir, n)?.display().to_string();
        let runs: [(&str, Vec<&str>); 4] = [
            (
                "produce",
                vec![
                    "produce",
                    "--dir",
                    &grant,
                    "--settings",
                    &settings,
                    "--input",
                    &input,
                ],
            ),
            (
                "consume",
                vec![
                    "consume",
                    "--dir",
                    &grant,
                    "--settings",
                    &settings,
                    "--from-beginning",
                    "--timeout-ms",
                    "0",
                ],
            ),
            ("client", vec!["client", "--config", &config, "--once"]),
            (
                "server",
                vec!["server", "--config", &server_config, "--once"],
            ),
        ];
        for (job, args) in runs {
            report.step(&format!("peak memory: {job} of {n} events"));
            let mib = measure_peak(&args)?;
            report.figure(
                &format!("rss.{job}.{size}"),
                "memory",
                &if job == "server" {
                    format!("peak RSS of `server --once`, {n} users")
                } else {
                    format!("peak RSS of `{job}`, {n} events")
                },
                mib,
                Unit::MiB,
            );
        }
    }
    Ok(())
}

/// Runs this binary's `peak-rss` with `args`: a process of its own, so
/// that the peak it reports is that of the job alone.
fn measure_peak(args: &[&str]) -> Result<f64> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let output = Command::new(exe)
        .arg("peak-rss")
        .arg("--")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run peak-rss")?;
    if !output.status.success() {
        bail!(
            "`hermes-wasm {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let kib: f64 = text
        .trim()
        .parse()
        .with_context(|| format!("peak-rss printed {text:?}"))?;
    Ok(kib / 1024.0)
}

/// `hermes-wasm peak-rss -- ARGS`: runs `hermes-wasm ARGS` (its output
/// dropped, its log at errors only) and prints the child's peak resident
/// memory in KiB. This process starts no other child, so the peak of its
/// children is the job's.
pub fn peak_rss(args: Vec<OsString>) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let status = Command::new(exe)
        .arg("--quiet")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .context("cannot run the job")?;
    if !status.success() {
        bail!("the job ended with {status}");
    }
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    // Linux gives it in KiB.
    println!("{}", usage.max_rss());
    Ok(())
}
