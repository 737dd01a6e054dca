//! The whole job through the binary, on each built-in bus: `hermes-wasm
//! server` sends a SQLite datasource's initsync and changes, `hermes-wasm
//! client` applies them to a JSON-lines file, compared with hand-written
//! events. The event-hubs bus runs on `hermes-wasm serve`.

mod support;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::Child;

use hermes_event::{Category, Event, EventType, Value};
use hermes_wasm_tests::{EVENT_HUBS_KEY, RedisServer, event_hubs_connection_string};
use support::{hermes_wasm, spawn, stderr, stdout, terminate, wait_until};

#[derive(Clone, Copy, Debug)]
enum BusKind {
    FileLog,
    Sqlite,
    RedisStreams,
    EventHubs,
}

struct Pipeline {
    dir: tempfile::TempDir,
    redis: Option<RedisServer>,
    serve: Option<Child>,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(mut serve) = self.serve.take() {
            let _ = serve.kill();
            let _ = serve.wait();
        }
    }
}

/// Starts `hermes-wasm serve` in `dir` on a free port, a hub `hermes` of
/// one partition kept in file-log; its port once it serves.
fn serve(dir: &std::path::Path) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    std::fs::write(
        dir.join("serve.yml"),
        format!(
            "listen: 127.0.0.1:{port}\n\
             policies:\n  hermes: {{key: \"{EVENT_HUBS_KEY}\", rights: [send, listen]}}\n\
             hubs:\n  hermes: {{partitions: 1}}\n"
        ),
    )
    .expect("serve.yml");
    let mut child = spawn(dir, &["serve", "--config", "serve.yml"]);
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("reads");
    assert!(line.starts_with("serving Event Hubs on"), "{line}");
    (child, port)
}

const DATAMODEL: &str = r#"
hermes-server:
  datamodel:
    SRVUsers:
      primarykeyattr: id
      foreignkeys: {}
      sources:
        db:
          fetch:
            type: fetch
            query: "SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM users ORDER BY uid"
          attrsmapping:
            id: uid
            login: login
            mail: "{{ login ~ '@example.com' }}"
    SRVMembers:
      primarykeyattr: [user, group]
      foreignkeys:
        user: {from_objtype: SRVUsers, from_attr: id}
      sources:
        db:
          fetch:
            type: fetch
            query: "SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM members ORDER BY uid, gid"
          attrsmapping:
            user: uid
            group: gid
"#;

impl Pipeline {
    fn new(kind: BusKind) -> Pipeline {
        let dir = tempfile::tempdir().expect("tempdir");
        let redis = matches!(kind, BusKind::RedisStreams).then(RedisServer::start_durable);
        let (serve, port) = match kind {
            BusKind::EventHubs => {
                let (child, port) = serve(dir.path());
                (Some(child), port)
            }
            _ => (None, 0),
        };
        let pipeline = Pipeline { dir, redis, serve };
        pipeline.sql(
            "CREATE TABLE users (uid INTEGER PRIMARY KEY, login TEXT);
             CREATE TABLE members (uid INTEGER, gid INTEGER);
             INSERT INTO users VALUES (1, 'ada'), (2, 'alan');
             INSERT INTO members VALUES (1, 10), (2, 20);",
        );
        let root = pipeline.root();
        // The plugin is granted the bus's own directory, never the caches.
        std::fs::create_dir(pipeline.path("bus")).expect("the bus's directory");
        let (server_bus, client_bus) = match (kind, &pipeline.redis) {
            (BusKind::FileLog, _) => {
                let settings = format!("{{\"path\": \"{root}/bus\"}}");
                (
                    format!(
                        "file-log:\n        settings: {settings}\n        dirs: [\"{root}/bus\"]"
                    ),
                    format!(
                        "file-log:\n        settings: {settings}\n        dirs: [\"{root}/bus:ro\"]"
                    ),
                )
            }
            (BusKind::Sqlite, _) => (
                format!(
                    "sqlite:\n        settings: {{\"uri\": \"{root}/bus/bus.sqlite\", \"retention_in_days\": 30}}\n        dirs: [\"{root}/bus\"]"
                ),
                format!(
                    "sqlite:\n        settings: {{\"uri\": \"{root}/bus/bus.sqlite\"}}\n        dirs: [\"{root}/bus:ro\"]"
                ),
            ),
            (BusKind::RedisStreams, Some(server)) => {
                let url = server.url();
                let bus = format!(
                    "redis-streams:\n        settings: {{\"url\": \"{url}\", \"stream\": \"hermes\"}}\n        allow_redis: [\"{url}\"]"
                );
                (bus.clone(), bus)
            }
            (BusKind::RedisStreams, None) => unreachable!("a Redis bus has its server"),
            (BusKind::EventHubs, _) => {
                let connection = event_hubs_connection_string(port, EVENT_HUBS_KEY);
                let bus = format!(
                    "event-hubs:\n        settings: {{\"connection_string\": \"{connection}\", \"eventhub\": \"hermes\"}}\n        allow_amqp: [\"amqp://127.0.0.1:{port}\"]"
                );
                (bus.clone(), bus)
            }
        };
        std::fs::write(
            pipeline.path("server.yml"),
            format!(
                "hermes:\n  cache:\n    dirpath: server-cache\n  plugins:\n    datasources:\n      db:\n        type: sqlite\n        settings:\n          uri: source.sqlite\n    messagebus:\n      {server_bus}\n{DATAMODEL}"
            ),
        )
        .expect("server.yml");
        std::fs::write(
            pipeline.path("client.yml"),
            format!(
                "hermes:\n  cache:\n    dirpath: client-cache\n  plugins:\n    messagebus:\n      {client_bus}\nhermes-client:\n  target:\n    jsonlines:\n      path: applied.jsonl\n"
            ),
        )
        .expect("client.yml");
        pipeline
    }

    fn root(&self) -> String {
        self.dir
            .path()
            .canonicalize()
            .expect("dir")
            .display()
            .to_string()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn sql(&self, statements: &str) {
        rusqlite::Connection::open(self.path("source.sqlite"))
            .and_then(|db| db.execute_batch(statements))
            .expect("datasource SQL");
    }

    /// Runs a subcommand that must succeed; returns its stdout.
    fn run(&self, args: &[&str]) -> String {
        let output = hermes_wasm(self.dir.path(), args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        stdout(&output)
    }

    fn server(&self) -> String {
        self.run(&["server", "--config", "server.yml", "--once"])
    }

    fn client(&self) -> String {
        self.run(&["client", "--config", "client.yml", "--once"])
    }

    /// Whole lines in the target so far (it may be being written).
    fn applied_lines(&self) -> usize {
        std::fs::read_to_string(self.path("applied.jsonl"))
            .unwrap_or_default()
            .matches('\n')
            .count()
    }

    fn applied(&self) -> Vec<Event> {
        std::fs::read_to_string(self.path("applied.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| Event::from_json(line).expect("an event per line"))
            .collect()
    }
}

fn object(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn user(category: Category, id: i64, login: &str) -> Event {
    Event::new(
        category,
        EventType::Added,
        Some("SRVUsers".into()),
        Value::from(id),
        object(vec![
            ("id", Value::from(id)),
            ("login", Value::from(login)),
            ("mail", Value::from(format!("{login}@example.com"))),
        ]),
    )
}

fn member_key(user: i64, group: i64) -> Value {
    Value::List(vec![Value::from(user), Value::from(group)])
}

fn member(user: i64, group: i64) -> Event {
    Event::new(
        Category::Initsync,
        EventType::Added,
        Some("SRVMembers".into()),
        member_key(user, group),
        object(vec![
            ("user", Value::from(user)),
            ("group", Value::from(group)),
        ]),
    )
}

fn changes() -> Vec<Event> {
    vec![
        user(Category::Base, 3, "grace"),
        Event::new(
            Category::Base,
            EventType::Modified,
            Some("SRVUsers".into()),
            Value::from(1),
            object(vec![
                ("added", Value::empty_object()),
                (
                    "modified",
                    object(vec![
                        ("login", Value::from("ada.l")),
                        ("mail", Value::from("ada.l@example.com")),
                    ]),
                ),
                ("removed", Value::empty_object()),
            ]),
        ),
        Event::new(
            Category::Base,
            EventType::Removed,
            Some("SRVMembers".into()),
            member_key(2, 20),
            Value::empty_object(),
        ),
    ]
}

fn the_job_runs_on(kind: BusKind) {
    let p = Pipeline::new(kind);
    assert!(
        p.server().starts_with("poll: initsync of 4 objects sent"),
        "{kind:?}"
    );
    assert!(p.client().contains("4 events applied"));
    let initsync = vec![
        user(Category::Initsync, 1, "ada"),
        user(Category::Initsync, 2, "alan"),
        member(1, 10),
        member(2, 20),
    ];
    assert_eq!(p.applied(), initsync, "{kind:?}");

    p.sql(
        "INSERT INTO users VALUES (3, 'grace');
         UPDATE users SET login = 'ada.l' WHERE uid = 1;
         DELETE FROM members WHERE uid = 2;",
    );
    assert!(
        p.server()
            .starts_with("poll: 1 added, 1 modified, 1 removed"),
        "{kind:?}"
    );
    assert!(p.client().contains("3 events applied"));
    assert_eq!(p.applied()[4..], changes(), "{kind:?}");

    // Nothing new: nothing more.
    assert!(
        p.server()
            .starts_with("poll: 0 added, 0 modified, 0 removed")
    );
    assert!(p.client().contains("0 events applied"));
    assert_eq!(p.applied().len(), 7);
}

#[test]
fn the_job_runs_on_the_file_log_bus() {
    the_job_runs_on(BusKind::FileLog);
}

#[test]
fn the_job_runs_on_the_sqlite_bus() {
    the_job_runs_on(BusKind::Sqlite);
}

#[test]
fn the_job_runs_on_the_redis_streams_bus() {
    the_job_runs_on(BusKind::RedisStreams);
}

#[test]
fn the_job_runs_on_the_event_hubs_bus_served_by_serve() {
    the_job_runs_on(BusKind::EventHubs);
}

#[test]
fn waiting_for_initsync_the_job_runs_hermes_way() {
    let p = Pipeline::new(BusKind::FileLog);
    let wait = [
        "server",
        "--config",
        "server.yml",
        "--once",
        "--wait-for-initsync",
    ];
    assert!(
        p.run(&wait)
            .starts_with("poll: cache filled with 4 objects, nothing sent until an initsync"),
    );
    // No initsync on the bus yet: the client has nothing to start from.
    assert!(p.client().contains("0 events applied"));
    p.sql("INSERT INTO users VALUES (3, 'grace');");
    assert!(
        p.run(&wait)
            .starts_with("poll: 1 added, 0 modified, 0 removed")
    );
    let asked = p.run(&[&wait[..], &["--initsync"]].concat());
    assert!(
        asked.starts_with("poll: initsync of 5 objects sent"),
        "{asked}"
    );
    // The client starts from that initsync sequence.
    assert!(p.client().contains("5 events applied"));
    assert_eq!(p.applied().len(), 5);
}

#[test]
fn data_errors_are_logged_and_shown_until_the_data_is_clean() {
    let p = Pipeline::new(BusKind::FileLog);
    p.server();
    p.sql("INSERT INTO members VALUES (1, 10), (1, 30);");
    let output = hermes_wasm(
        p.dir.path(),
        &["server", "--config", "server.yml", "--once"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let error = "SRVMembers: the primary key [1,10] appears 2 times in the datasource; \
                 clients keep the object as they know it";
    // The rest of the poll goes on.
    assert_eq!(
        stdout(&output).trim_end(),
        format!("poll: 1 added, 0 modified, 0 removed; last offset 6; data errors: {error}")
    );
    let log = stderr(&output);
    assert!(
        log.contains("ERROR") && log.contains(&format!("data errors met: {error}")),
        "{log}"
    );

    p.sql("DELETE FROM members WHERE rowid = (SELECT max(rowid) FROM members WHERE uid = 1 AND gid = 10);");
    let output = hermes_wasm(
        p.dir.path(),
        &["-v", "server", "--config", "server.yml", "--once"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim_end(),
        "poll: 0 added, 0 modified, 0 removed"
    );
    let log = stderr(&output);
    assert!(
        log.contains("no more data errors") && !log.contains("data errors met"),
        "{log}"
    );
}

#[test]
fn a_running_server_and_client_carry_changes_through_until_sigterm() {
    let p = Pipeline::new(BusKind::FileLog);
    let config = std::fs::read_to_string(p.path("server.yml")).expect("server.yml");
    std::fs::write(
        p.path("server.yml"),
        config.replace("hermes-server:\n", "hermes-server:\n  updateInterval: 1\n"),
    )
    .expect("server.yml");
    let server = spawn(p.dir.path(), &["server", "--config", "server.yml"]);
    let client = spawn(p.dir.path(), &["client", "--config", "client.yml"]);
    assert!(
        wait_until(|| p.applied_lines() == 4),
        "the initsync is applied"
    );
    p.sql(
        "INSERT INTO users VALUES (3, 'grace');
         UPDATE users SET login = 'ada.l' WHERE uid = 1;
         DELETE FROM members WHERE uid = 2;",
    );
    // The server's next poll sends them; the waiting client applies them.
    assert!(
        wait_until(|| p.applied_lines() == 7),
        "the changes are applied"
    );
    assert_eq!(p.applied()[4..], changes());

    let server = terminate(server);
    let client = terminate(client);
    assert!(server.status.success(), "{}", stderr(&server));
    assert!(client.status.success(), "{}", stderr(&client));
    let polls: Vec<String> = stdout(&server).lines().map(String::from).collect();
    assert!(
        polls[0].starts_with("poll: initsync of 4 objects sent")
            && polls
                .iter()
                .any(|l| l.starts_with("poll: 1 added, 1 modified, 1 removed")),
        "{polls:?}"
    );
    assert!(
        stdout(&client).starts_with("client: 7 events applied"),
        "{}",
        stdout(&client)
    );
}

#[test]
fn a_server_whose_bus_is_down_keeps_its_changes_for_the_next_run() {
    let mut p = Pipeline::new(BusKind::RedisStreams);
    p.server();
    p.client();
    p.redis.as_mut().expect("redis").kill();
    p.sql(
        "INSERT INTO users VALUES (3, 'grace');
         UPDATE users SET login = 'ada.l' WHERE uid = 1;
         DELETE FROM members WHERE uid = 2;",
    );
    let failed = hermes_wasm(
        p.dir.path(),
        &["server", "--config", "server.yml", "--once"],
    );
    assert!(!failed.status.success());
    let stderr = stderr(&failed);
    let errors: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("hermes-wasm: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("unavailable"), "{stderr}");

    p.redis.as_mut().expect("redis").restart();
    assert!(
        p.server()
            .starts_with("poll: 1 added, 1 modified, 1 removed")
    );
    p.client();
    assert_eq!(p.applied()[4..], changes(), "each change once");
}

#[test]
fn a_client_waits_out_bus_outages_at_start_and_while_running() {
    let mut p = Pipeline::new(BusKind::RedisStreams);
    p.server();
    // Started while the bus is down, the client waits for it.
    p.redis.as_mut().expect("redis").kill();
    let mut client = spawn(p.dir.path(), &["client", "--config", "client.yml"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        client.try_wait().expect("client").is_none(),
        "the client waits for the bus to come up"
    );
    p.redis.as_mut().expect("redis").restart();
    assert!(
        wait_until(|| p.applied_lines() == 4),
        "the initsync is applied"
    );

    // Down under a running client: it waits again.

    p.redis.as_mut().expect("redis").kill();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        client.try_wait().expect("client").is_none(),
        "the client runs on while the bus is down"
    );
    p.redis.as_mut().expect("redis").restart();
    p.sql(
        "INSERT INTO users VALUES (3, 'grace');
         UPDATE users SET login = 'ada.l' WHERE uid = 1;
         DELETE FROM members WHERE uid = 2;",
    );
    p.server();
    assert!(
        wait_until(|| p.applied_lines() == 7),
        "the changes are applied"
    );
    assert_eq!(p.applied()[4..], changes());

    let client = terminate(client);
    assert!(client.status.success(), "{}", stderr(&client));
    let log = stderr(&client);
    assert!(
        log.matches("unavailable").count() >= 2 && log.matches("trying again in 1 s").count() >= 2,
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colours in a log that is not a terminal"
    );
}

#[test]
fn bad_configurations_are_one_clear_error_line() {
    let p = Pipeline::new(BusKind::FileLog);
    let cases = [
        (
            "server.yml",
            "      primarykeyattr: id\n",
            "",
            "hermes-server.datamodel.SRVUsers: missing field `primarykeyattr`",
        ),
        (
            "server.yml",
            "          uri: source.sqlite\n",
            "          uri: source.sqlite\n      other:\n        type: ldap\n        settings: {}\n",
            "hermes.plugins.datasources.other.type: `ldap` datasources are not supported",
        ),
        (
            "server.yml",
            "        db:\n          fetch:\n            type: fetch\n            query: \"SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM members",
            "        nowhere:\n          fetch:\n            type: fetch\n            query: \"SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM members",
            "unknown datasource `nowhere`",
        ),
        (
            "server.yml",
            "settings: {\"path\"",
            "settings: {\"fsync\": \"sometimes\", \"path\"",
            "invalid settings for plugin `file-log`",
        ),
        (
            "client.yml",
            "path: applied.jsonl",
            "path: missing/applied.jsonl",
            "hermes-client.target.jsonlines.path: cannot open",
        ),
        (
            "client.yml",
            "    jsonlines:\n      path: applied.jsonl\n",
            "    command:\n      argv: [no-such-program-anywhere, --apply]\n",
            "hermes-client.target.command.argv: cannot find the program `no-such-program-anywhere`",
        ),
        // No number panics the host: each has a range.
        (
            "client.yml",
            "hermes-client:\n",
            "hermes-client:\n  errorQueue_retryInterval: 1e300\n",
            "hermes-client.errorQueue_retryInterval: 1e300 is out of range",
        ),
        (
            "client.yml",
            "hermes-client:\n",
            "hermes-client:\n  errorQueue_retryInterval: .nan\n",
            "hermes-client.errorQueue_retryInterval: NaN is out of range",
        ),
        (
            "client.yml",
            "hermes-client:\n",
            "hermes-client:\n  errorQueue_maxAttempts: 0\n",
            "hermes-client.errorQueue_maxAttempts: 0 is out of range (1 to 1000000)",
        ),
        (
            "client.yml",
            "    jsonlines:\n      path: applied.jsonl\n",
            "    command:\n      argv: [true]\n      timeout: 18446744073709551615\n",
            "hermes-client.target.command.timeout: 18446744073709551615 is out of range (1 to 86400 seconds)",
        ),
        (
            "server.yml",
            "hermes-server:\n",
            "hermes-server:\n  updateInterval: 18446744073709551615\n",
            "hermes-server.updateInterval: 18446744073709551615 is out of range (1 to 604800 seconds)",
        ),
        (
            "server.yml",
            "hermes-server:\n",
            "hermes-server:\n  updateInterval: 1e300\n",
            "hermes-server.updateInterval",
        ),
    ];
    for (file, from, to, expected) in cases {
        let good = std::fs::read_to_string(p.path(file)).expect("config");
        assert!(good.contains(from), "{from}");
        std::fs::write(p.path(file), good.replacen(from, to, 1)).expect("write");
        let command = file.trim_end_matches(".yml");
        let output = hermes_wasm(p.dir.path(), &[command, "--config", file, "--once"]);
        std::fs::write(p.path(file), good).expect("write");
        assert!(!output.status.success());
        let stderr = stderr(&output);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("hermes-wasm: error:") && stderr.contains(expected),
            "expected `{expected}` in: {stderr}"
        );
    }
    // Nothing was sent, nothing applied.
    assert_eq!(
        std::fs::read_dir(p.path("bus")).expect("bus").count(),
        0,
        "the bus is empty"
    );
    assert!(!p.path("applied.jsonl").exists());
}
