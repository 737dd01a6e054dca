//! What survives a crash or a power loss, checked on the binary: what it
//! makes durable, as the system calls it makes show, and the kill -9
//! harness (see `harness`), which kills the producing and the consuming
//! jobs at random points and checks that nothing acknowledged is lost,
//! nothing damaged is delivered, and nothing is applied out of turn.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use hermes_event::{Category, Event, Value};
use hermes_host::{Consumer, DirGrant, Grants, Offset, RedisAllow};
use hermes_wasm_tests::{Bus, RedisServer, engine, guests, init_start, init_stop, user_added};
use support::{harness, hermes_wasm_traced, stderr};

/// The paths `fsync` was called on, in order, from a `strace -y` trace.
fn synced(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter_map(|line| {
            let call = line.split_once(' ')?.1.trim_start();
            let rest = call.strip_prefix("fsync(")?;
            let path = rest.split_once('<')?.1.split_once(">)")?.0;
            Some(path.to_owned())
        })
        .collect()
}

fn input(dir: &std::path::Path, n: usize) -> String {
    let path = dir.join("events.jsonl");
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"evcategory": "base", "eventtype": "added", "objtype": "U", "objpkey": {i}, "objattrs": {{"text": "{}"}}}}"#,
                "x".repeat(200)
            )
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").expect("write input");
    path.display().to_string()
}

#[test]
fn file_log_makes_every_directory_entry_it_creates_or_deletes_durable() {
    let work = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(work.path()).expect("canonical");
    let log = root.join("logs").join("bus");
    let settings = serde_json::json!({ "path": log, "segment_max_bytes": 4096 }).to_string();
    let events = input(&root, 60);
    let dir = root.display().to_string();
    let produce = |settings: &str| {
        hermes_wasm_traced(
            &root,
            &[
                "produce",
                "--dir",
                &dir,
                "--settings",
                settings,
                "--input",
                &events,
            ],
            "fsync,fdatasync,unlinkat",
        )
    };

    let (output, trace) = produce(&settings);
    assert!(output.status.success(), "{}", stderr(&output));
    let paths = synced(&trace);
    let show = |p: &std::path::Path| p.display().to_string();
    // The two directories created, each in its parent.
    assert!(paths.contains(&show(&root)), "{paths:?}");
    assert!(paths.contains(&show(&root.join("logs"))), "{paths:?}");
    // Each segment created, in the log's directory, after the segment itself.
    let mut segments: Vec<_> = std::fs::read_dir(&log)
        .expect("the log")
        .map(|e| e.expect("entry").path())
        .collect();
    segments.sort();
    assert!(segments.len() > 3, "{segments:?}");
    for segment in &segments {
        let created = paths
            .iter()
            .position(|p| *p == show(segment))
            .unwrap_or_else(|| panic!("{} is synced: {paths:?}", segment.display()));
        assert!(
            paths[created..].contains(&show(&log)),
            "the log's directory is synced after {} appears: {paths:?}",
            segment.display()
        );
    }

    // Retention's deletions are made durable too.
    let old = SystemTime::now() - Duration::from_secs(10 * 86_400);
    for segment in &segments[..segments.len() - 1] {
        std::fs::File::options()
            .write(true)
            .open(segment)
            .and_then(|f| f.set_modified(old))
            .expect("backdate");
    }
    let retained = serde_json::json!({
        "path": log, "segment_max_bytes": 1 << 20, "retention_in_days": 1
    })
    .to_string();
    let (output, trace) = produce(&retained);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<&str> = trace.lines().collect();
    let last_unlink = lines
        .iter()
        .rposition(|line| line.contains("unlinkat(") && line.contains(".log\""))
        .expect("retention deleted segments");
    assert!(
        synced(&lines[last_unlink..].join("\n")).contains(&show(&log)),
        "the log's directory is synced after the deletions:\n{trace}"
    );
}

/// A bus the harness produces to, as the binary's flags and as a library
/// consumer that reads it back.
enum Target {
    FileLog(PathBuf),
    Sqlite(PathBuf),
    Redis(RedisServer),
}

impl Target {
    fn new(kind: &str, dir: &Path) -> Target {
        match kind {
            "file-log" => Target::FileLog(dir.join("bus")),
            "sqlite" => Target::Sqlite(dir.join("bus.sqlite")),
            _ => Target::Redis(RedisServer::start_durable()),
        }
    }

    /// The producer's flags (the plugin, its settings, what it is granted).
    fn produce_flags(&self, dir: &Path) -> Vec<String> {
        let dir = dir.display().to_string();
        match self {
            Target::FileLog(path) => vec![
                "--dir".into(),
                dir,
                "--settings".into(),
                serde_json::json!({ "path": path }).to_string(),
            ],
            Target::Sqlite(path) => vec![
                "--plugin".into(),
                "sqlite".into(),
                "--dir".into(),
                dir,
                "--settings".into(),
                serde_json::json!({ "uri": path, "retention_in_days": 30 }).to_string(),
            ],
            Target::Redis(server) => vec![
                "--plugin".into(),
                "redis-streams".into(),
                "--allow-redis".into(),
                server.url(),
                "--settings".into(),
                serde_json::json!({ "url": server.url(), "stream": "hermes" }).to_string(),
            ],
        }
    }

    /// After a writer was killed: a SQLite writer killed mid-transaction
    /// leaves a journal only a writer can roll back (readers wait for it,
    /// `unavailable`), so a producer is opened, before the bus is read.
    fn recover(&self, dir: &Path, scenario: &str) {
        if !matches!(self, Target::Sqlite(_)) {
            return;
        }
        let empty = dir.join("empty.jsonl");
        std::fs::write(&empty, "").expect("write");
        let mut args: Vec<String> = vec!["produce".into()];
        args.extend(self.produce_flags(dir));
        args.extend(["--input".into(), empty.display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let restart =
            harness::run_killed(dir, &args, harness::Kill::After(Duration::from_secs(60)));
        assert!(
            restart.exited.is_some_and(|s| s.success()),
            "{scenario}: the restart recovers the bus: {}",
            restart.stderr
        );
    }

    /// Everything on the bus, in order, read by a fresh consumer.
    async fn read(&self, dir: &Path) -> Vec<(Offset, Event)> {
        let granted = || Grants {
            dirs: vec![DirGrant::parse(&dir.display().to_string()).expect("grant")],
            ..Grants::default()
        };
        let (component, settings, grants): (&[u8], _, _) = match self {
            Target::FileLog(path) => (
                guests::FILE_LOG,
                serde_json::json!({ "path": path }),
                granted(),
            ),
            Target::Sqlite(path) => (
                guests::SQLITE,
                serde_json::json!({ "uri": path }),
                granted(),
            ),
            Target::Redis(server) => (
                guests::REDIS_STREAMS,
                serde_json::json!({ "url": server.url(), "stream": "hermes" }),
                Grants {
                    redis: vec![RedisAllow::parse(&server.url()).expect("url")],
                    ..Grants::default()
                },
            ),
        };
        let plugin = hermes_host::Plugin::load(&engine(), component, "harness", grants)
            .await
            .expect("the bus loads");
        let mut consumer = Consumer::create(plugin, &settings).await.expect("consumer");
        consumer.open().await.expect("open");
        consumer.seek_to_beginning().await.expect("beginning");
        consumer.set_timeout(Some(Duration::ZERO));
        let mut all = Vec::new();
        loop {
            let batch = consumer
                .next_batch(1000)
                .await
                .expect("every record reads whole");
            if batch.is_empty() {
                return all;
            }
            for consumed in batch {
                let event = consumed.event().expect("a whole hermes event");
                all.push((consumed.offset, event));
            }
        }
    }
}

fn write_events(path: &Path, events: &[Event]) {
    let lines: Vec<String> = events.iter().map(Event::to_json_compact).collect();
    std::fs::write(path, lines.join("\n") + "\n").expect("write input");
}

/// The offsets a bus gives one after another, checked: file-log from 0,
/// sqlite from 1, Redis increasing.
fn check_offsets(kind: &str, offsets: &[&Offset]) {
    for (i, offset) in offsets.iter().enumerate() {
        match kind {
            "file-log" => assert_eq!(**offset, Offset::Int(i as i64), "file-log offsets"),
            "sqlite" => assert_eq!(**offset, Offset::Int(i as i64 + 1), "msgids"),
            _ => {
                if i > 0 {
                    let id = |o: &Offset| match o {
                        Offset::Str(s) => {
                            let (ms, seq) = s.split_once('-').expect("an entry ID");
                            (
                                ms.parse::<u64>().expect("ms"),
                                seq.parse::<u64>().expect("seq"),
                            )
                        }
                        other => panic!("a Redis offset is a string, not {other:?}"),
                    };
                    assert!(id(offsets[i - 1]) < id(offset), "entry IDs increase");
                }
            }
        }
    }
}

/// `produce` killed at random: after each kill the bus holds exactly a
/// prefix of the input, at least every event acknowledged, each once, in
/// order, with offsets one after another; the next run sends the rest and
/// appends where the log left off.
async fn produce_survives_kill_9(kind: &str) {
    let started = Instant::now();
    let scenario = format!("produce, {kind}");
    let mut rng = harness::rng(&scenario);
    let mut tally = harness::Tally::default();
    let per_round = 5_000;
    // How long a run takes when nothing kills it: measured by the first run.
    let mut undisturbed: Option<Duration> = None;
    while tally.kills < harness::kills() {
        tally.rounds += 1;
        let work = tempfile::tempdir().expect("tempdir");
        let dir = std::fs::canonicalize(work.path()).expect("canonical");
        let target = Target::new(kind, &dir);
        let input: Vec<Event> = (0..per_round)
            .map(|i| user_added(Category::Base, tally.events as i64 + i))
            .collect();
        let mut confirmed = 0usize;
        loop {
            let rest = dir.join("rest.jsonl");
            write_events(&rest, &input[confirmed..]);
            let mut args: Vec<String> = vec!["produce".into()];
            args.extend(target.produce_flags(&dir));
            args.extend([
                "--progress".into(),
                "--input".into(),
                rest.display().to_string(),
            ]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let began = Instant::now();
            // Most kills come after a random number of acknowledged batches
            // and a few microseconds more, in the middle of the next write;
            // some at a random time, start-up and recovery included.
            let batches = (input.len() - confirmed).div_ceil(256);
            let kill = if let Some(undisturbed) = undisturbed.filter(|_| rng.u8(0..4) == 0) {
                harness::Kill::After(harness::kill_at(&mut rng, undisturbed))
            } else if undisturbed.is_none() {
                harness::Kill::After(Duration::from_secs(600))
            } else {
                harness::Kill::AfterLines(
                    rng.usize(1..=batches),
                    Duration::from_micros(rng.u64(0..3_000)),
                )
            };
            let run = harness::run_killed(&dir, &args, kill);
            let acknowledged = run
                .stdout
                .lines()
                .filter_map(|l| l.strip_prefix("acknowledged "))
                .filter_map(|l| l.split_once(' '))
                .filter_map(|(n, _)| n.parse::<usize>().ok())
                .max()
                .unwrap_or(0);
            let mid_work = acknowledged > 0 && confirmed + acknowledged < per_round as usize;
            tally.record(&scenario, &run, began, &mut undisturbed, mid_work);
            if run.exited.is_none() {
                target.recover(&dir, &scenario);
            }
            let held = target.read(&dir).await;
            assert!(
                held.len() >= confirmed + acknowledged,
                "{scenario}: {} events held, {} acknowledged",
                held.len(),
                confirmed + acknowledged
            );
            assert!(
                held.len() <= input.len(),
                "{scenario}: nothing is stored twice"
            );
            for (i, (_, event)) in held.iter().enumerate() {
                assert_eq!(
                    event, &input[i],
                    "{scenario}: event {i} is the input's, in order"
                );
            }
            check_offsets(kind, &held.iter().map(|(o, _)| o).collect::<Vec<_>>());
            confirmed = held.len();
            if confirmed == input.len() {
                break;
            }
        }
        tally.events += per_round as usize;
    }
    tally.print(&scenario, started);
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_to_file_log_survives_kill_9() {
    produce_survives_kill_9("file-log").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_to_sqlite_survives_kill_9() {
    produce_survives_kill_9("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_to_redis_streams_survives_kill_9() {
    produce_survives_kill_9("redis-streams").await;
}

/// The offsets of the events a client applied, from its JSON-lines target
/// (whole lines only: a kill may leave part of one, which the next run cuts).
fn applied_offsets(path: &Path, offsets: &HashMap<String, Offset>) -> Vec<Offset> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    whole
        .lines()
        .map(|line| {
            offsets
                .get(line)
                .cloned()
                .unwrap_or_else(|| panic!("an applied line that is no event of the bus: {line}"))
        })
        .collect()
}

/// The `lastoffset` the client's cache holds.
fn saved_position(cache: &Path) -> Option<Offset> {
    let text = std::fs::read_to_string(cache).ok()?;
    let root: serde_json::Value = serde_json::from_str(&text).expect("the cache reads whole");
    match &root["lastoffset"] {
        serde_json::Value::Number(n) => n.as_i64().map(Offset::Int),
        _ => None,
    }
}

/// `client` killed at random: each run applies the events right after the
/// position its cache saved, one after another with none skipped; the cache
/// never claims an event the target does not hold; only events after the
/// saved position are ever applied again.
#[tokio::test(flavor = "multi_thread")]
async fn the_client_survives_kill_9() {
    let started = Instant::now();
    let scenario = "client, file-log";
    let mut rng = harness::rng(scenario);
    let mut tally = harness::Tally::default();
    let per_round = 5000i64;
    // How long a run takes when nothing kills it: measured by the first run.
    let mut undisturbed: Option<Duration> = None;
    while tally.kills < harness::kills() {
        tally.rounds += 1;
        let bus = Bus::file_log().await;
        let mut events = vec![init_start(), user_added(Category::Initsync, 0), init_stop()];
        events.extend((1..=per_round).map(|i| user_added(Category::Base, i)));
        let mut producer = bus.producer().await;
        let sent = producer.send_batch(&events).await.expect("send");
        producer.close().await.expect("close");
        // What a client applies, in order: the initsync's object, then
        // every base event.
        let expected: Vec<Offset> = std::iter::once(sent[1].clone())
            .chain(sent[3..].iter().cloned())
            .collect();
        let by_text: HashMap<String, Offset> = events
            .iter()
            .zip(&sent)
            .map(|(e, o)| (e.to_json_compact(), o.clone()))
            .collect();
        let config =
            bus.file_log_client_config("  target:\n    jsonlines:\n      path: applied.jsonl\n");
        let root = bus.dir.path();
        let applied_path = root.join("applied.jsonl");
        let cache = root.join("client-cache").join("hermes-client.json");
        let config = config.display().to_string();
        loop {
            let before = applied_offsets(&applied_path, &by_text).len();
            let resume_at = match saved_position(&cache) {
                Some(last) => {
                    expected
                        .iter()
                        .position(|o| *o == last)
                        .expect("a position")
                        + 1
                }
                None => 0,
            };
            let began = Instant::now();
            let run = harness::run_killed(
                root,
                &["client", "--config", &config, "--once"],
                harness::Kill::After(match undisturbed {
                    Some(undisturbed) => harness::kill_at(&mut rng, undisturbed),
                    None => Duration::from_secs(600),
                }),
            );
            let applied = applied_offsets(&applied_path, &by_text);
            let this_run = &applied[before.min(applied.len())..];
            assert_eq!(
                this_run,
                &expected[resume_at..resume_at + this_run.len()],
                "{scenario}: a run applies the events right after its saved position, in order"
            );
            if let Some(last) = saved_position(&cache) {
                let saved = expected
                    .iter()
                    .position(|o| *o == last)
                    .expect("a position");
                let applied_up_to = applied
                    .last()
                    .and_then(|a| expected.iter().position(|o| o == a))
                    .expect("something applied");
                assert!(
                    saved <= applied_up_to,
                    "{scenario}: the cache claims no event the target lacks"
                );
            }
            let mid_work = !this_run.is_empty() && resume_at + this_run.len() < expected.len();
            tally.record(scenario, &run, began, &mut undisturbed, mid_work);
            if saved_position(&cache).as_ref() == expected.last() {
                break;
            }
        }
        let applied = applied_offsets(&applied_path, &by_text);
        let mut seen = std::collections::HashSet::new();
        let first_times: Vec<_> = applied
            .iter()
            .filter(|o| seen.insert(hermes_host::offset::to_json(o).to_string()))
            .cloned()
            .collect();
        assert_eq!(
            first_times, expected,
            "{scenario}: every event applied, none skipped"
        );
        tally.events += expected.len();
    }
    tally.print(scenario, started);
}

/// The server's configuration: one type from the datasource's `users`
/// table, sent on `target` (the plugin granted `dir`), its cache in `cache`.
fn server_config(dir: &Path, target: &Target, cache: &Path) -> PathBuf {
    let root = dir.display();
    let bus = match target {
        Target::FileLog(path) => format!(
            "file-log:\n        settings: {{\"path\": \"{}\"}}\n        dirs: [\"{root}\"]",
            path.display()
        ),
        Target::Sqlite(path) => format!(
            "sqlite:\n        settings: {{\"uri\": \"{}\", \"retention_in_days\": 30}}\n        dirs: [\"{root}\"]",
            path.display()
        ),
        Target::Redis(server) => {
            let url = server.url();
            format!(
                "redis-streams:\n        settings: {{\"url\": \"{url}\", \"stream\": \"hermes\"}}\n        allow_redis: [\"{url}\"]"
            )
        }
    };
    let config = dir.join("server.yml");
    std::fs::write(
        &config,
        format!(
            "hermes:\n  cache:\n    dirpath: {}\n  plugins:\n    datasources:\n      db:\n        type: sqlite\n        settings:\n          uri: source.sqlite\n    messagebus:\n      {bus}\nhermes-server:\n  datamodel:\n    SRVUsers:\n      primarykeyattr: id\n      foreignkeys: {{}}\n      sources:\n        db:\n          fetch:\n            type: fetch\n            query: \"SELECT {{{{ REMOTE_ATTRIBUTES | join(', ') }}}} FROM users\"\n          attrsmapping:\n            id: uid\n            login: login\n            mail: mail\n",
            cache.display()
        ),
    )
    .expect("server.yml");
    config
}

/// The users as a client of the bus knows them, by id, from every event on
/// it; panics on an event that repeats what the bus already said (an object
/// added twice, a change to one it does not hold, an empty change, a second
/// init-start or init-stop).
fn users_told(scenario: &str, events: &[(Offset, Event)]) -> BTreeMap<i64, Vec<(String, Value)>> {
    use hermes_event::EventType;
    let mut users: BTreeMap<i64, Vec<(String, Value)>> = BTreeMap::new();
    let (mut starts, mut stops) = (0, 0);
    for (offset, event) in events {
        let at = format!(
            "{scenario}: event at {offset:?}: {}",
            event.to_json_compact()
        );
        let id = || match &event.objpkey {
            Value::Integer(id) => id.as_i64().unwrap_or_else(|| panic!("{at}: a small key")),
            _ => panic!("{at}: an integer key"),
        };
        let attrs = |v: &Value| match v {
            Value::Object(pairs) => pairs.clone(),
            _ => panic!("{at}: attributes"),
        };
        match event.eventtype {
            EventType::InitStart => {
                starts += 1;
                assert!(starts == 1 && users.is_empty(), "{at}: one initsync, first");
            }
            EventType::InitStop => {
                stops += 1;
                assert_eq!(stops, 1, "{at}: one init-stop");
            }
            EventType::Added => {
                assert!(
                    event.evcategory == Category::Base || stops == 0,
                    "{at}: initsync objects before init-stop"
                );
                let previous = users.insert(id(), attrs(&event.objattrs));
                assert!(previous.is_none(), "{at}: added twice");
            }
            EventType::Modified => {
                let user = users
                    .get_mut(&id())
                    .unwrap_or_else(|| panic!("{at}: unknown"));
                let part = |name: &str| match &event.objattrs {
                    Value::Object(parts) => parts
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| attrs(v))
                        .unwrap_or_default(),
                    _ => panic!("{at}: a diff"),
                };
                let (added, modified, removed) = (part("added"), part("modified"), part("removed"));
                assert!(
                    !(added.is_empty() && modified.is_empty() && removed.is_empty()),
                    "{at}: a change that changes nothing"
                );
                for (name, value) in added.into_iter().chain(modified) {
                    match user.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => {
                            assert_ne!(slot.1, value, "{at}: {name} already had that value");
                            slot.1 = value;
                        }
                        None => user.push((name, value)),
                    }
                }
                user.retain(|(n, _)| !removed.iter().any(|(r, _)| r == n));
            }
            EventType::Removed => {
                assert!(users.remove(&id()).is_some(), "{at}: removed twice");
            }
            EventType::Dataschema => {}
        }
    }
    users
}

/// The users the datasource holds, as the server maps them.
fn users_held(source: &Path) -> BTreeMap<i64, Vec<(String, Value)>> {
    let db = rusqlite::Connection::open(source).expect("datasource");
    let mut statement = db
        .prepare("SELECT uid, login, mail FROM users")
        .expect("select");
    statement
        .query_map([], |row| {
            let id: i64 = row.get(0)?;
            Ok((
                id,
                vec![
                    ("id".to_owned(), Value::from(id)),
                    ("login".to_owned(), Value::from(row.get::<_, String>(1)?)),
                    ("mail".to_owned(), Value::from(row.get::<_, String>(2)?)),
                ],
            ))
        })
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect()
}

/// `server --once` killed at random, through a first initsync and three
/// rounds of changes: after every kill the bus holds no event twice (no
/// object added twice, no change repeated, one initsync sequence, resumed
/// where a kill cut it), and once a run finishes after the last change, what
/// the bus told is what the datasource holds: nothing lost.
async fn server_survives_kill_9(kind: &str) {
    let started = Instant::now();
    let scenario = format!("server, {kind}");
    let mut rng = harness::rng(&scenario);
    let mut tally = harness::Tally::default();
    let users = 3_000i64;
    let mut undisturbed: Option<Duration> = None;
    while tally.kills < harness::kills() {
        tally.rounds += 1;
        let work = tempfile::tempdir().expect("tempdir");
        let dir = std::fs::canonicalize(work.path()).expect("canonical");
        let target = Target::new(kind, &dir);
        let cache = tempfile::tempdir().expect("tempdir");
        let config = server_config(&dir, &target, cache.path())
            .display()
            .to_string();
        let source = dir.join("source.sqlite");
        let db = rusqlite::Connection::open(&source).expect("datasource");
        db.execute_batch(
            "CREATE TABLE users (uid INTEGER PRIMARY KEY, login TEXT NOT NULL, mail TEXT NOT NULL)",
        )
        .expect("create");
        db.execute(
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {users}) \
                 INSERT INTO users SELECT i, 'user' || i, 'user' || i || '@example.com' FROM n"
            ),
            [],
        )
        .expect("users");
        for round in 0..4 {
            if round > 0 {
                // A tenth renamed, a twentieth gone, as many new (with
                // keys above every key so far).
                let seed = rng.u32(..);
                db.execute_batch(&format!(
                    "UPDATE users SET login = login || '-{round}' WHERE (uid * {seed}) % 10 = 0;
                     DELETE FROM users WHERE (uid * {seed} + 7) % 20 = 0;
                     INSERT INTO users SELECT (SELECT max(uid) FROM users) + uid, 'new' || uid,
                             'new' || uid || '@example.com'
                         FROM users WHERE (uid * {seed} + 3) % 20 = 0;"
                ))
                .expect("changes");
            }
            loop {
                let before = target.read(&dir).await.len();
                let began = Instant::now();
                let run = harness::run_killed(
                    &dir,
                    &["server", "--config", &config, "--once"],
                    harness::Kill::After(match undisturbed {
                        Some(undisturbed) => harness::kill_at(&mut rng, undisturbed),
                        None => Duration::from_secs(600),
                    }),
                );
                if run.exited.is_none() {
                    target.recover(&dir, &scenario);
                }
                let held = target.read(&dir).await;
                users_told(&scenario, &held);
                check_offsets(kind, &held.iter().map(|(o, _)| o).collect::<Vec<_>>());
                let mid_work = held.len() > before && run.exited.is_none();
                tally.record(&scenario, &run, began, &mut undisturbed, mid_work);
                tally.events += held.len() - before;
                if run.exited.is_some() {
                    break;
                }
            }
            assert_eq!(
                users_told(&scenario, &target.read(&dir).await),
                users_held(&source),
                "{scenario}: the bus told what the datasource holds, round {round}"
            );
        }
    }
    tally.print(&scenario, started);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_on_file_log_survives_kill_9() {
    server_survives_kill_9("file-log").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_on_sqlite_survives_kill_9() {
    server_survives_kill_9("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_on_redis_streams_survives_kill_9() {
    server_survives_kill_9("redis-streams").await;
}
