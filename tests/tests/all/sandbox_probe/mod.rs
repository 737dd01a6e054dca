//! The sandbox, shown by the sandbox-probe guest: a plugin gets only what it
//! was granted, and a plugin that misbehaves fails its call without taking the
//! host down. Each attempt is a `send` of the probe (see its source).

mod host_memory;

use std::net::TcpListener;
use std::time::Duration;

use hermes_event::{Category, Event, EventType, Value};
use hermes_host::{
    BusError, CodeSource, Consumer, DirGrant, Engine, Error, Grants, Offset, Plugin, Producer,
    RedisAllow, World,
};
use hermes_wasm_tests::{RedisServer, guests, load};

fn attempt(what: &str, arg: &str) -> Event {
    Event::new(
        Category::Base,
        EventType::Added,
        Some(what.into()),
        Value::from(1),
        Value::Object(vec![("arg".into(), Value::from(arg))]),
    )
}

async fn probe(grants: Grants, granted: &[&std::path::Path]) -> Producer {
    let plugin = load(guests::SANDBOX_PROBE, granted, grants).await;
    let mut producer = Producer::create(plugin, &serde_json::json!({}))
        .await
        .expect("create");
    producer.open().await.expect("open");
    producer
}

/// The error a refused attempt returns: the plugin saw a failure, and says so.
fn refused(result: Result<Offset, Error>) -> String {
    match result {
        Err(Error::Bus {
            error: BusError::Other(message),
            ..
        }) => message,
        other => panic!("expected the attempt to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn files_outside_the_grant_cannot_be_read() {
    let granted = tempfile::tempdir().expect("tempdir");
    let secret_dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").expect("write");
    std::fs::write(granted.path().join("open.txt"), "fine").expect("write");

    let mut producer = probe(Grants::default(), &[granted.path()]).await;
    let message = refused(
        producer
            .send(&attempt("read-file", &secret.display().to_string()))
            .await,
    );
    assert!(message.contains("read"), "{message}");
    let message = refused(producer.send(&attempt("read-file", "/etc/passwd")).await);
    assert!(message.contains("/etc/passwd"), "{message}");
    // The grant itself works, so the refusals above are the sandbox's doing.
    let breach = producer
        .send(&attempt(
            "read-file",
            &granted.path().join("open.txt").display().to_string(),
        ))
        .await;
    assert!(
        matches!(breach, Err(Error::Bus { error: BusError::Corrupted(m), .. }) if m.contains("read 4 bytes"))
    );
}

#[tokio::test]
async fn environment_variables_are_not_visible() {
    // SAFETY: no other thread of this test binary reads this variable.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("HERMES_PROBE_SECRET", "leaked")
    };
    let mut producer = probe(Grants::default(), &[]).await;
    let message = refused(
        producer
            .send(&attempt("read-env", "HERMES_PROBE_SECRET"))
            .await,
    );
    assert!(message.contains("HERMES_PROBE_SECRET"), "{message}");
}

#[tokio::test]
async fn the_network_is_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let address = listener.local_addr().expect("address").to_string();
    let mut producer = probe(Grants::default(), &[]).await;
    let message = refused(producer.send(&attempt("connect", &address)).await);
    assert!(message.contains(&address), "{message}");
    assert!(
        listener.accept().is_err(),
        "no connection reached the listener"
    );
}

#[tokio::test]
async fn a_redis_server_the_operator_did_not_allow_is_refused() {
    let server = RedisServer::start();
    let other = RedisServer::start();
    let grants = Grants {
        redis: vec![RedisAllow::parse(&other.url()).expect("valid")],
        ..Grants::default()
    };
    let mut producer = probe(grants, &[]).await;
    let message = refused(producer.send(&attempt("redis", &server.url())).await);
    assert!(
        message.contains("Refused") && message.contains(&server.url()),
        "{message}"
    );
    let message = refused(producer.send(&attempt("redis", "not a url")).await);
    assert!(message.contains("InvalidUrl"), "{message}");
    // The allowed server answers, so the refusal above is the grant's doing,
    // and the plugin carries on after being refused.
    let breach = producer.send(&attempt("redis", &other.url())).await;
    assert!(
        matches!(&breach, Err(Error::Bus { error: BusError::Corrupted(m), .. }) if m.contains("PONG")),
        "{breach:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_hubs_endpoints_are_reached_only_as_granted_and_only_so_many_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = hermes_wasm_tests::HubEndpoint::start(dir.path()).await;
    let reach = |count: usize| {
        attempt(
            "event-hubs",
            &format!(
                "{} {} {} {count}",
                endpoint.url(),
                hermes_wasm_tests::EVENT_HUBS_POLICY,
                hermes_wasm_tests::EVENT_HUBS_KEY
            ),
        )
    };

    // Not granted: refused before any connection.
    let mut producer = probe(Grants::default(), &[]).await;
    let message = refused(producer.send(&reach(1)).await);
    assert!(
        message.contains("#1") && message.contains("is not an allowed Event Hubs endpoint"),
        "{message}"
    );

    // Granted: as many hubs as the limit, and not one more.
    let mut producer = probe(endpoint.grants(), &[]).await;
    let limit = hermes_host::capabilities::event_hubs::MAX_OPEN;
    let within = producer.send(&reach(limit)).await;
    assert!(
        matches!(&within, Err(Error::Bus { error: BusError::Corrupted(m), .. })
            if m == &format!("BREACH: {limit} hubs open at once")),
        "{within:?}"
    );
    let message = refused(producer.send(&reach(limit + 1)).await);
    assert!(
        message.contains(&format!("#{}", limit + 1))
            && message.contains(&format!("at most {limit} hubs and receivers")),
        "{message}"
    );
    // Each call's hubs were closed with the call: the plugin carries on.
    let again = producer.send(&reach(1)).await;
    assert!(
        matches!(&again, Err(Error::Bus { error: BusError::Corrupted(m), .. })
            if m == "BREACH: 1 hubs open at once"),
        "{again:?}"
    );
}

#[tokio::test]
async fn redis_commands_beyond_a_bus_are_refused_and_the_server_is_untouched() {
    let server = RedisServer::start();
    let url = format!("{}/0", server.url());
    let grants = Grants {
        redis: vec![RedisAllow::parse(&url).expect("valid")],
        ..Grants::default()
    };
    let client = redis::Client::open(server.url()).expect("client");
    let mut direct = client.get_connection().expect("connects");
    let _: () = redis::cmd("SET")
        .arg("kept")
        .arg("yes")
        .query(&mut direct)
        .expect("SET");
    let dir_before: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query(&mut direct)
        .expect("CONFIG GET");

    let mut producer = probe(grants, &[]).await;
    let elsewhere = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = elsewhere.local_addr().expect("addr").port();
    for command in [
        "SELECT 1".to_owned(),
        "SWAPDB 0 1".to_owned(),
        "MOVE kept 1".to_owned(),
        "COPY kept k2 DB 1".to_owned(),
        "FLUSHALL".to_owned(),
        format!("MIGRATE 127.0.0.1 {port} kept 0 1000"),
        format!("REPLICAOF 127.0.0.1 {port}"),
        "CONFIG SET dir /".to_owned(),
        "SAVE".to_owned(),
        "MODULE LOAD /tmp/x.so".to_owned(),
        "EVAL return 1 0".to_owned(),
        "DEBUG SLEEP 0".to_owned(),
        "SHUTDOWN NOSAVE".to_owned(),
        "ACL LIST".to_owned(),
        "AUTH default x".to_owned(),
        "CLIENT LIST".to_owned(),
        "select 1".to_owned(),
    ] {
        let message = refused(
            producer
                .send(&attempt("redis-command", &format!("{url} {command}")))
                .await,
        );
        assert!(message.contains("is not allowed"), "{command}: {message}");
    }
    elsewhere.set_nonblocking(true).expect("nonblocking");
    assert!(elsewhere.accept().is_err(), "no connection went elsewhere");

    // The server and its data are as they were, and the plugin carries on.
    let kept: Option<String> = redis::cmd("GET")
        .arg("kept")
        .query(&mut direct)
        .expect("GET");
    assert_eq!(kept.as_deref(), Some("yes"));
    let dir_after: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query(&mut direct)
        .expect("CONFIG GET");
    assert_eq!(dir_after, dir_before);
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut direct).expect("ROLE");
    assert_eq!(
        role.first(),
        Some(&redis::Value::BulkString(b"master".to_vec()))
    );
    let breach = producer
        .send(&attempt("redis-command", &format!("{url} XLEN s")))
        .await;
    assert!(
        matches!(&breach, Err(Error::Bus { error: BusError::Corrupted(m), .. }) if m.contains("Integer(0)")),
        "{breach:?}"
    );
}

#[tokio::test]
async fn sqlite_files_outside_the_grant_or_written_through_a_read_only_grant_are_refused() {
    let granted = tempfile::tempdir().expect("tempdir");
    let read_only = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let existing = read_only.path().join("bus.sqlite");
    rusqlite::Connection::open(&existing)
        .and_then(|db| db.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (0)"))
        .expect("a database to protect");
    let before = std::fs::read(&existing).expect("read");

    let grants = Grants {
        dirs: vec![
            DirGrant::parse(&granted.path().display().to_string()).expect("grant"),
            DirGrant::parse(&format!("{}:ro", read_only.path().display())).expect("grant"),
        ],
        ..Grants::default()
    };
    let ro_dir = grants.dirs[1].path.clone();
    let mut producer = probe(grants, &[]).await;

    let target = outside.path().join("escape.sqlite");
    let message = refused(
        producer
            .send(&attempt("sqlite-write", &target.display().to_string()))
            .await,
    );
    assert!(
        message.contains("Refused") && message.contains("outside"),
        "{message}"
    );
    assert!(!target.exists(), "nothing was created outside the grant");

    let inside_ro = ro_dir.join("bus.sqlite").display().to_string();
    let message = refused(producer.send(&attempt("sqlite-write", &inside_ro)).await);
    assert!(
        message.contains("Refused") && message.contains("read-only"),
        "{message}"
    );
    let message = refused(
        producer
            .send(&attempt("sqlite-read-only-write", &inside_ro))
            .await,
    );
    assert!(
        message.contains("Refused") && message.contains("read-only"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&existing).expect("read"),
        before,
        "the database is untouched"
    );
    let names: Vec<_> = std::fs::read_dir(read_only.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["bus.sqlite"], "nothing was written beside it");

    // The read-write grant works, so the refusals above are the sandbox's doing.
    let inside = granted
        .path()
        .canonicalize()
        .expect("dir")
        .join("bus.sqlite");
    let breach = producer
        .send(&attempt("sqlite-write", &inside.display().to_string()))
        .await;
    assert!(
        matches!(&breach, Err(Error::Bus { error: BusError::Corrupted(m), .. }) if m.contains("wrote")),
        "{breach:?}"
    );
}

#[tokio::test]
async fn a_guest_stuck_in_a_loop_is_interrupted_and_the_host_carries_on() {
    let grants = Grants {
        call_deadline: Duration::from_millis(300),
        ..Grants::default()
    };
    let mut producer = probe(grants, &[]).await;
    assert_eq!(
        producer.send(&attempt("ok", "")).await.expect("send"),
        Offset::Int(0)
    );
    let error = producer
        .send(&attempt("loop", ""))
        .await
        .expect_err("interrupted");
    assert!(matches!(error, Error::Trapped { .. }), "{error}");
    assert!(error.to_string().contains("call deadline"), "{error}");
    // The next call runs in a fresh instance (its counter starts again).
    assert_eq!(
        producer.send(&attempt("ok", "")).await.expect("send"),
        Offset::Int(0)
    );
}

#[tokio::test]
async fn allocating_past_the_memory_cap_fails_and_the_host_carries_on() {
    let grants = Grants {
        memory_limit: 32 << 20,
        ..Grants::default()
    };
    let mut producer = probe(grants, &[]).await;
    let error = producer
        .send(&attempt("allocate", "64"))
        .await
        .expect_err("over the cap");
    assert!(matches!(error, Error::Trapped { .. }), "{error}");
    assert!(
        error.to_string().contains("memory cap of 32 MiB"),
        "{error}"
    );
    // Within the cap is fine, in the fresh instance.
    let within = producer.send(&attempt("allocate", "8")).await;
    assert!(
        matches!(within, Err(Error::Bus { error: BusError::Corrupted(m), .. }) if m.contains("allocated 8 MiB"))
    );
    assert_eq!(
        producer.send(&attempt("ok", "")).await.expect("send"),
        Offset::Int(0)
    );
}

#[tokio::test]
async fn the_world_is_read_from_the_exports_and_a_missing_role_is_refused() {
    let probe = load(guests::SANDBOX_PROBE, &[], Grants::default()).await;
    assert_eq!(probe.world(), World::Producer);
    assert_eq!(probe.name(), "sandbox-probe");
    let error = Consumer::create(probe, &serde_json::json!({}))
        .await
        .err()
        .expect("no consumer role");
    assert!(
        matches!(
            error,
            Error::MissingRole {
                role: "consumer",
                ..
            }
        ),
        "{error}"
    );

    let offsets = load(guests::OFFSET_KINDS, &[], Grants::default()).await;
    let roles: Vec<_> = offsets
        .metadata()
        .roles
        .iter()
        .map(|r| r.role.as_str())
        .collect();
    assert_eq!(roles, ["consumer"]);
    let error = Producer::create(offsets, &serde_json::json!({}))
        .await
        .err()
        .expect("no producer role");
    assert!(
        matches!(
            error,
            Error::MissingRole {
                role: "producer",
                ..
            }
        ),
        "{error}"
    );

    let file_log = load(guests::FILE_LOG, &[], Grants::default()).await;
    assert_eq!(file_log.world(), World::Bus);
}

#[tokio::test]
async fn what_is_not_a_plugin_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = hermes_wasm_tests::engine();
    let not_wasm = dir.path().join("notes.wasm");
    std::fs::write(&not_wasm, "hello").expect("write");
    let error = Plugin::from_file(&engine, &not_wasm, Grants::default())
        .await
        .err()
        .expect("refused");
    assert!(
        error
            .to_string()
            .contains("not a valid WebAssembly component"),
        "{error}"
    );

    // A valid component that is not a hermes plugin: an empty component.
    let empty_component = b"\0asm\x0d\0\x01\0";
    let error = Plugin::load(&engine, empty_component, "empty", Grants::default())
        .await
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("not a hermes bus plugin"),
        "{error}"
    );

    let missing = dir.path().join("missing.wasm");
    let error = Plugin::from_file(&engine, &missing, Grants::default())
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("cannot read"), "{error}");
}

#[tokio::test]
async fn a_second_load_reads_the_compiled_code_from_the_cache() {
    let cache = tempfile::tempdir().expect("tempdir");
    let bytes = guests::SANDBOX_PROBE.to_vec();
    let engine = Engine::new(Some(cache.path().to_owned())).expect("engine");
    let first = Plugin::load(&engine, &bytes, "probe", Grants::default())
        .await
        .expect("load");
    assert_eq!(first.code_source(), CodeSource::Compiled);
    let again = Engine::new(Some(cache.path().to_owned())).expect("engine");
    let second = Plugin::load(&again, &bytes, "probe", Grants::default())
        .await
        .expect("load");
    assert_eq!(second.code_source(), CodeSource::Cache);
    let mut other = bytes.clone();
    // A custom section named "abc" holding "xyz": other bytes, so another key.
    other.extend_from_slice(&[0x00, 0x07, 0x03, b'a', b'b', b'c', b'x', b'y', b'z']);
    let third = Plugin::load(&again, &other, "probe", Grants::default())
        .await
        .expect("load");
    assert_eq!(third.code_source(), CodeSource::Compiled);
}

/// Collects what the host logs, for the test running on this thread.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Captures this thread's log at info and above until the guard drops.
    fn capture() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (buffer, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("log buffer").clone()).expect("utf-8")
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// A current-thread runtime keeps the plugin's calls, and the task that
// forwards its stdout, on this thread, where the subscriber below applies.
#[tokio::test(flavor = "current_thread")]
async fn what_a_plugin_prints_or_logs_reaches_the_host_log_tagged_with_its_name() {
    let (buffer, _guard) = LogBuffer::capture();

    let mut producer = probe(Grants::default(), &[]).await;
    producer
        .send(&attempt("print", "hello from the probe"))
        .await
        .expect("send");
    producer.close().await.expect("close");
    drop(producer);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let log = buffer.text();
    let printed = log
        .lines()
        .find(|l| l.contains("hello from the probe") && !l.contains("logged:"));
    let logged = log
        .lines()
        .find(|l| l.contains("logged: hello from the probe"));
    assert!(
        printed.is_some_and(|l| l.contains("INFO") && l.contains("plugin=\"sandbox-probe\"")),
        "{log}"
    );
    assert!(
        logged.is_some_and(|l| l.contains("WARN") && l.contains("plugin=\"sandbox-probe\"")),
        "{log}"
    );
}

#[tokio::test]
async fn a_plugin_can_neither_forge_nor_flood_the_host_log() {
    let (buffer, _guard) = LogBuffer::capture();

    let mut producer = probe(Grants::default(), &[]).await;
    let forged = "x\n2026-12-01T00:00:00.000000Z  INFO hermes_jobs: forged \u{1b}[2J";
    producer
        .send(&attempt("print", forged))
        .await
        .expect("send");
    producer
        .send(&attempt("flood", "100000"))
        .await
        .expect("send");
    producer
        .send(&attempt("print", "after the flood"))
        .await
        .expect("send");
    producer.close().await.expect("close");
    drop(producer);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let log = buffer.text();
    // Every line that mentions the forgery is tagged as the plugin's own,
    // the logged one kept whole on one line, and no escape reaches the log.
    let forgeries: Vec<&str> = log.lines().filter(|l| l.contains("forged")).collect();
    assert!(!forgeries.is_empty(), "{log}");
    assert!(
        forgeries
            .iter()
            .all(|l| l.contains("plugin=\"sandbox-probe\"")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("logged: x\\n2026-12-01") && l.contains("\\u{1b}[2J")),
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no terminal escape reaches the log"
    );
    // The flood is cut to the burst, and what was dropped is said.
    let flooded = log.lines().filter(|l| l.contains("flood line")).count();
    assert!(
        (2_000..2_100).contains(&flooded),
        "{flooded} flood lines logged"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("lines of this plugin were dropped")),
        "{log}"
    );
}

#[tokio::test]
async fn a_link_the_plugin_plants_in_its_grant_does_not_let_sqlite_out() {
    let granted = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let root = granted.path().canonicalize().expect("dir");
    let mut producer = probe(Grants::default(), &[&root]).await;
    // Through WASI the plugin may make a link, dangling, out of its grant...
    let escape = outside.path().join("escape.sqlite");
    let link = root.join("bus.sqlite");
    let relative = format!("../../../../../..{}", escape.display());
    producer
        .send(&attempt(
            "symlink",
            &format!("{} {relative}", link.display()),
        ))
        .await
        .expect("a link inside the grant is the plugin's own business");
    assert!(
        link.symlink_metadata()
            .expect("the link")
            .file_type()
            .is_symlink()
    );
    // ...but SQLite does not follow it, and nothing appears outside.
    let message = refused(
        producer
            .send(&attempt("sqlite-write", &link.display().to_string()))
            .await,
    );
    assert!(
        message.contains("Refused") && message.contains("symbolic link"),
        "{message}"
    );
    assert!(!escape.exists(), "no file was created outside the grant");
    // A file name computed in SQL cannot be attached either.
    let db = root.join("ok.sqlite");
    let attach = format!(
        "{} ATTACH ('{}' || '/attached.sqlite') AS other",
        db.display(),
        outside.path().display()
    );
    let message = refused(producer.send(&attempt("sqlite-sql", &attach)).await);
    assert!(message.contains("attached"), "{message}");
    assert!(!outside.path().join("attached.sqlite").exists());
}

#[tokio::test]
async fn a_query_past_its_deadline_is_interrupted_and_its_lock_released() {
    let granted = tempfile::tempdir().expect("tempdir");
    let root = granted.path().canonicalize().expect("dir");
    let db = root.join("bus.sqlite");
    rusqlite::Connection::open(&db)
        .and_then(|c| c.execute_batch("CREATE TABLE t (x)"))
        .expect("a database");
    let grants = Grants {
        call_deadline: Duration::from_millis(200),
        ..Grants::default()
    };
    let mut producer = probe(grants, &[&root]).await;
    // A write lock taken, then a query that never ends.
    let endless = format!(
        "{} BEGIN IMMEDIATE; INSERT INTO t VALUES (1); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        db.display()
    );
    let abandoned = producer.send(&attempt("sqlite-sql", &endless)).await;
    assert!(
        matches!(abandoned, Err(Error::Trapped { .. })),
        "{abandoned:?}"
    );
    // The query was interrupted: its transaction is gone, the lock with it.
    let mut other = rusqlite::Connection::open(&db).expect("opens");
    other
        .busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let tx = other.transaction().expect("the lock is free");
    tx.execute("INSERT INTO t VALUES (2)", [])
        .expect("a write from elsewhere");
    tx.commit().expect("commit");
    let rows: Vec<i64> = other
        .prepare("SELECT x FROM t")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("rows");
    assert_eq!(rows, [2], "the abandoned call's insert was rolled back");
    // The plugin's next call gets a fresh instance and works.
    let next = producer.send(&attempt("nothing", "")).await;
    assert!(next.is_ok(), "{next:?}");
}

#[tokio::test]
async fn compiled_code_is_cached_only_where_no_one_else_can_write_and_never_granted() {
    use std::os::unix::fs::PermissionsExt;
    let bytes = guests::SANDBOX_PROBE.to_vec();
    let shared = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    for _ in 0..2 {
        let engine = Engine::new(Some(shared.path().to_owned())).expect("engine");
        let plugin = Plugin::load(&engine, &bytes, "probe", Grants::default())
            .await
            .expect("load");
        assert_eq!(plugin.code_source(), CodeSource::Compiled);
    }
    assert_eq!(
        std::fs::read_dir(shared.path()).expect("dir").count(),
        0,
        "nothing is cached where others may write"
    );

    // A plugin is never granted the directory of the code the host runs.
    let private = tempfile::tempdir().expect("tempdir");
    let engine = Engine::new(Some(private.path().join("cache"))).expect("engine");
    let grants = Grants {
        dirs: vec![DirGrant::parse(&private.path().display().to_string()).expect("grant")],
        ..Grants::default()
    };
    let refused = Plugin::load(&engine, &bytes, "probe", grants)
        .await
        .err()
        .expect("refused");
    assert!(
        refused.to_string().contains("compiled-code cache"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_plugin_cannot_hold_the_hosts_file_descriptors() {
    let granted = tempfile::tempdir().expect("tempdir");
    let root = granted.path().canonicalize().expect("dir");
    let file = root.join("f");
    std::fs::write(&file, b"x").expect("write");
    let descriptors = || std::fs::read_dir("/proc/self/fd").expect("fds").count();
    let before = descriptors();
    let mut producer = probe(Grants::default(), &[&root]).await;
    // Far more than it may hold: the plugin fails (or is stopped) well short.
    let held = producer
        .send(&attempt("open-files", &format!("5000 {}", file.display())))
        .await;
    // The host's handle table fills first: the call is stopped as a trap,
    // and the reason says so.
    assert!(
        matches!(&held, Err(Error::Trapped { reason, .. }) if reason.contains("more than 1024 handles")),
        "{held:?}"
    );
    let after = descriptors();
    assert!(
        after < before + 1200,
        "{before} descriptors before, {after} after"
    );
    // The host carries on, and so does the plugin.
    let next = producer.send(&attempt("nothing", "")).await;
    assert!(next.is_ok(), "{next:?}");
}
