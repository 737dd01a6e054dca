//! hermes-server's job through the library: a real SQLite datasource, a real
//! bus, and the events clients would read, checked against hand-written
//! expectations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hermes_event::{Category, Event, EventType, Value};
use hermes_jobs::server::cache::ServerCache;
use hermes_jobs::server::journal::{Journal, Step};
use hermes_jobs::server::{PollReport, Server};
use hermes_wasm_tests::{Bus, RedisServer, engine, read_all};

const DRAINED: Duration = Duration::from_millis(200);

/// A datasource, a cache directory and a configuration, in one directory.
struct Setup {
    bus: Bus,
    db: PathBuf,
    config: PathBuf,
}

/// The datamodel: groups; users, with a Jinja mapping, a secret, a
/// cache-only and a local attribute; roles, with a composite key and a
/// foreign key to users.
const DATAMODEL: &str = r#"
hermes-server:
  updateInterval: 1
  datamodel:
    SRVGroups:
      primarykeyattr: id
      foreignkeys: {}
      sources:
        db:
          fetch:
            type: fetch
            query: "SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM groups"
          attrsmapping:
            id: gid
            name: name
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
            group: gid
            phone: phone
            password: password
            seen: seen
            first: first
          secrets_attrs: [password]
          cacheonly_attrs: [seen]
          local_attrs: [first]
    SRVRoles:
      primarykeyattr: [user, role]
      foreignkeys:
        user: {from_objtype: SRVUsers, from_attr: id}
      sources:
        db:
          fetch:
            type: fetch
            query: "SELECT uid, role FROM roles ORDER BY uid, role"
          attrsmapping:
            user: uid
            role: role
"#;

fn sql(db: &Path, statements: &str) {
    rusqlite::Connection::open(db)
        .and_then(|c| c.execute_batch(statements))
        .expect("datasource SQL");
}

impl Setup {
    async fn new() -> Setup {
        Setup::with_bus(Bus::file_log().await, "").await
    }

    /// `bus` as the message bus; `extra` is appended to the datamodel.
    async fn with_bus(bus: Bus, extra: &str) -> Setup {
        let db = bus.dir.path().join("source.sqlite");
        sql(
            &db,
            "CREATE TABLE groups (gid INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE users (uid INTEGER PRIMARY KEY, login TEXT, gid INTEGER,
                 phone TEXT, password TEXT, seen INTEGER, first TEXT);
             CREATE TABLE roles (uid INTEGER, role TEXT);
             INSERT INTO groups VALUES (10, 'staff'), (20, 'guests');
             INSERT INTO users VALUES (1, 'ada', 10, NULL, 's3cret-ada', 100, 'Ada'),
                                      (2, 'alan', 20, '555', 's3cret-alan', 100, 'Alan');
             INSERT INTO roles VALUES (1, 'admin'), (2, 'user');",
        );
        let config = bus.dir.path().join("server.yml");
        let setup = Setup { bus, db, config };
        setup.write_config(extra);
        setup
    }

    fn bus_section(&self) -> String {
        match &self.bus.redis {
            Some(server) => format!(
                "      redis-streams:\n        settings: {}\n        allow_redis: [\"{}\"]\n",
                self.bus.settings,
                server.url()
            ),
            None => {
                // The plugin is granted the log's own directory, never the cache.
                let log = self.bus.dir.path().join("bus");
                std::fs::create_dir_all(&log).expect("the log's directory");
                format!(
                    "      file-log:\n        settings: {}\n        dirs: [\"{}\"]\n",
                    self.bus.settings,
                    log.display()
                )
            }
        }
    }

    fn write_config(&self, extra: &str) {
        let text = format!(
            "hermes:\n  cache:\n    dirpath: cache\n  plugins:\n    datasources:\n      db:\n        type: sqlite\n        settings:\n          uri: source.sqlite\n    messagebus:\n{}{DATAMODEL}{extra}",
            self.bus_section()
        );
        std::fs::write(&self.config, text).expect("write config");
    }

    async fn poll(&self, initsync: bool) -> PollReport {
        let mut server = Server::start(&self.config, &engine())
            .await
            .expect("server starts");
        let report = server.poll(initsync).await.expect("poll");
        server.stop().await.expect("stop");
        report
    }

    async fn events(&self) -> Vec<Event> {
        let mut consumer = self.bus.consumer(DRAINED).await;
        read_all(&mut consumer)
            .await
            .into_iter()
            .map(|c| c.event().expect("a hermes event"))
            .collect()
    }
}

fn object(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn strings(names: &[&str]) -> Value {
    Value::List(names.iter().map(|n| Value::from(*n)).collect())
}

fn dataschema() -> Value {
    let entry = |attrs: &[&str], secrets: &[&str], pkey: Value, fks: Value| {
        object(vec![
            ("HERMES_ATTRIBUTES", strings(attrs)),
            ("SECRETS_ATTRIBUTES", strings(secrets)),
            ("PRIMARYKEY_ATTRIBUTE", pkey),
            ("FOREIGN_KEYS", fks),
        ])
    };
    object(vec![
        (
            "SRVGroups",
            entry(
                &["id", "name"],
                &[],
                Value::from("id"),
                Value::empty_object(),
            ),
        ),
        (
            "SRVUsers",
            entry(
                &["group", "id", "login", "mail", "password", "phone"],
                &["password"],
                Value::from("id"),
                Value::empty_object(),
            ),
        ),
        (
            "SRVRoles",
            entry(
                &["role", "user"],
                &[],
                strings(&["user", "role"]),
                object(vec![("user", strings(&["SRVUsers", "id"]))]),
            ),
        ),
    ])
}

fn event(
    category: Category,
    eventtype: EventType,
    objtype: &str,
    pkey: Value,
    attrs: Value,
) -> Event {
    Event::new(category, eventtype, Some(objtype.into()), pkey, attrs)
}

fn ada(login: &str, phone: Option<&str>) -> Value {
    let mut attrs = vec![
        ("id", Value::from(1)),
        ("login", Value::from(login)),
        ("mail", Value::from(format!("{login}@example.com"))),
        ("group", Value::from(10)),
    ];
    if let Some(phone) = phone {
        attrs.push(("phone", Value::from(phone)));
    }
    attrs.push(("password", Value::from("s3cret-ada")));
    object(attrs)
}

fn initsync_sequence() -> Vec<Event> {
    let i = Category::Initsync;
    vec![
        Event::new(i, EventType::InitStart, None, Value::Null, dataschema()),
        event(
            i,
            EventType::Added,
            "SRVGroups",
            Value::from(10),
            object(vec![
                ("id", Value::from(10)),
                ("name", Value::from("staff")),
            ]),
        ),
        event(
            i,
            EventType::Added,
            "SRVGroups",
            Value::from(20),
            object(vec![
                ("id", Value::from(20)),
                ("name", Value::from("guests")),
            ]),
        ),
        event(
            i,
            EventType::Added,
            "SRVUsers",
            Value::from(1),
            ada("ada", None),
        ),
        event(
            i,
            EventType::Added,
            "SRVUsers",
            Value::from(2),
            object(vec![
                ("id", Value::from(2)),
                ("login", Value::from("alan")),
                ("mail", Value::from("alan@example.com")),
                ("group", Value::from(20)),
                ("phone", Value::from("555")),
                ("password", Value::from("s3cret-alan")),
            ]),
        ),
        event(
            i,
            EventType::Added,
            "SRVRoles",
            role_key(1, "admin"),
            object(vec![
                ("user", Value::from(1)),
                ("role", Value::from("admin")),
            ]),
        ),
        event(
            i,
            EventType::Added,
            "SRVRoles",
            role_key(2, "user"),
            object(vec![
                ("user", Value::from(2)),
                ("role", Value::from("user")),
            ]),
        ),
        Event::new(
            i,
            EventType::InitStop,
            None,
            Value::Null,
            Value::empty_object(),
        ),
    ]
}

/// A role's composite key, `[user, role]`.
fn role_key(user: i64, role: &str) -> Value {
    Value::List(vec![Value::from(user), Value::from(role)])
}

#[tokio::test]
async fn the_first_poll_sends_an_initsync_sequence_of_the_whole_datamodel() {
    let setup = Setup::new().await;
    let report = setup.poll(false).await;
    assert_eq!(report.initsync, Some(6));
    assert_eq!(setup.events().await, initsync_sequence());
    // Nothing changed: nothing more is sent.
    let report = setup.poll(false).await;
    assert_eq!(
        (
            report.initsync,
            report.added,
            report.modified,
            report.removed
        ),
        (None, 0, 0, 0)
    );
    assert_eq!(setup.events().await.len(), 8);
}

#[tokio::test]
async fn an_initsync_of_many_batches_goes_out_whole_and_its_cache_reads_back() {
    let setup = Setup::new().await;
    // 250 more users: the sequence spans several of the server's batches.
    sql(
        &setup.db,
        "WITH RECURSIVE n(i) AS (SELECT 3 UNION ALL SELECT i + 1 FROM n WHERE i < 252)
         INSERT INTO users SELECT i, 'user' || i, 20, NULL, 'pw' || i, 1, 'U' FROM n;",
    );
    let report = setup.poll(false).await;
    assert_eq!(report.initsync, Some(2 + 252 + 2));
    let events = setup.events().await;
    assert_eq!(events.len(), 1 + 256 + 1);
    assert_eq!(events[0].eventtype, EventType::InitStart);
    assert_eq!(events[257].eventtype, EventType::InitStop);
    let users: Vec<Value> = events
        .iter()
        .filter(|e| e.objtype.as_deref() == Some("SRVUsers"))
        .map(|e| e.objpkey.clone())
        .collect();
    assert_eq!(users, (1..=252).map(Value::from).collect::<Vec<_>>());
    assert!(events.iter().all(|e| e.evcategory == Category::Initsync));

    // The cache, written one object at a time, holds every user: one change
    // is one event, and nothing else is sent.
    sql(
        &setup.db,
        "UPDATE users SET login = 'renamed' WHERE uid = 200;",
    );
    let report = setup.poll(false).await;
    assert_eq!((report.added, report.modified, report.removed), (0, 1, 0));
    let events = setup.events().await;
    assert_eq!(events.len(), 258 + 1);
    assert_eq!(events[258].objpkey, Value::from(200));
}

#[tokio::test]
async fn changes_go_out_in_hermes_order_with_hermes_objattrs() {
    let setup = Setup::new().await;
    setup.poll(false).await;
    sql(
        &setup.db,
        "INSERT INTO groups VALUES (30, 'admins');
         UPDATE users SET login = 'ada.l', phone = '123' WHERE uid = 1;
         UPDATE users SET phone = NULL, first = 'Alan M.' WHERE uid = 2;
         UPDATE users SET seen = 200;
         DELETE FROM roles WHERE uid = 2;
         DELETE FROM groups WHERE gid = 20;",
    );
    let report = setup.poll(false).await;
    assert_eq!((report.added, report.modified, report.removed), (1, 2, 2));

    let b = Category::Base;
    let expected = vec![
        event(
            b,
            EventType::Added,
            "SRVGroups",
            Value::from(30),
            object(vec![
                ("id", Value::from(30)),
                ("name", Value::from("admins")),
            ]),
        ),
        event(
            b,
            EventType::Modified,
            "SRVUsers",
            Value::from(1),
            object(vec![
                ("added", object(vec![("phone", Value::from("123"))])),
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
        event(
            b,
            EventType::Modified,
            "SRVUsers",
            Value::from(2),
            object(vec![
                ("added", Value::empty_object()),
                ("modified", Value::empty_object()),
                ("removed", object(vec![("phone", Value::Null)])),
            ]),
        ),
        // Removed in reverse datamodel order: roles before groups.
        event(
            b,
            EventType::Removed,
            "SRVRoles",
            role_key(2, "user"),
            Value::empty_object(),
        ),
        event(
            b,
            EventType::Removed,
            "SRVGroups",
            Value::from(20),
            Value::empty_object(),
        ),
    ];
    assert_eq!(setup.events().await[8..], expected);
}

#[tokio::test]
async fn secrets_stay_out_of_the_cache_and_cache_only_attributes_off_the_bus() {
    let setup = Setup::new().await;
    setup.poll(false).await;
    let cache_file = setup.bus.dir.path().join("cache/hermes-server.json");
    let cache = std::fs::read_to_string(&cache_file).expect("cache file");
    assert!(!cache.contains("s3cret"), "no secret in the cache");
    assert!(
        cache.contains("\"seen\": 100"),
        "cache-only attributes are cached"
    );
    assert!(
        !cache.contains("\"first\""),
        "local attributes are not cached"
    );

    // A changed secret is noticed through its digest and sent in clear.
    sql(
        &setup.db,
        "UPDATE users SET password = 'n3w' WHERE uid = 1; UPDATE users SET seen = 300;",
    );
    setup.poll(false).await;
    let events = setup.events().await;
    assert_eq!(
        events[8..],
        [event(
            Category::Base,
            EventType::Modified,
            "SRVUsers",
            Value::from(1),
            object(vec![
                ("added", Value::empty_object()),
                ("modified", object(vec![("password", Value::from("n3w"))])),
                ("removed", Value::empty_object()),
            ]),
        )]
    );
    assert!(events.iter().all(|e| e.objattrs.get("seen").is_none()));
    let cache = std::fs::read_to_string(&cache_file).expect("cache file");
    assert!(!cache.contains("n3w") && cache.contains("\"seen\": 300"));
}

#[tokio::test]
async fn a_schema_change_sends_a_dataschema_event_before_the_changes() {
    let setup = Setup::new().await;
    setup.poll(false).await;
    // The groups gain an attribute.
    let text = std::fs::read_to_string(&setup.config).expect("config");
    std::fs::write(
        &setup.config,
        text.replace(
            "            name: name\n",
            "            name: name\n            upper: \"{{ name | upper }}\"\n",
        ),
    )
    .expect("write");
    let report = setup.poll(false).await;
    assert!(report.dataschema);
    assert_eq!(report.modified, 2);
    let events = setup.events().await;
    assert_eq!(events[8].eventtype, EventType::Dataschema);
    assert_eq!(events[8].evcategory, Category::Base);
    let groups = events[8].objattrs.get("SRVGroups").expect("groups");
    assert_eq!(
        groups.get("HERMES_ATTRIBUTES"),
        Some(&strings(&["id", "name", "upper"]))
    );
    assert_eq!(
        events[9].objattrs,
        object(vec![
            ("added", object(vec![("upper", Value::from("STAFF"))])),
            ("modified", Value::empty_object()),
            ("removed", Value::empty_object()),
        ])
    );
}

#[tokio::test]
async fn initsync_on_demand_follows_the_changes() {
    let setup = Setup::new().await;
    setup.poll(false).await;
    sql(&setup.db, "DELETE FROM roles;");
    let report = setup.poll(true).await;
    assert_eq!((report.removed, report.initsync), (2, Some(4)));
    let events = setup.events().await;
    assert_eq!(events.len(), 8 + 2 + 6);
    assert_eq!(events[10].eventtype, EventType::InitStart);
    assert_eq!(events[15].eventtype, EventType::InitStop);
}

#[tokio::test]
async fn a_bus_that_is_down_keeps_the_unsent_changes_for_the_next_poll() {
    let bus = Bus::on_redis(RedisServer::start_durable()).await;
    let mut setup = Setup::with_bus(bus, "").await;
    setup.poll(false).await;

    let mut server = Server::start(&setup.config, &engine())
        .await
        .expect("starts");
    sql(
        &setup.db,
        "INSERT INTO groups VALUES (30, 'admins'); DELETE FROM roles WHERE uid = 1;",
    );
    setup.bus.redis.as_mut().expect("redis").kill();
    let failed = server.poll(false).await;
    assert!(failed.is_err(), "the poll fails while the bus is down");

    setup.bus.redis.as_mut().expect("redis").restart();
    let report = server.poll(false).await.expect("the next poll");
    assert_eq!(
        (report.added, report.removed),
        (1, 1),
        "the unsent changes go out"
    );
    server.stop().await.expect("stop");
    let events = setup.events().await;
    assert_eq!(events.len(), 8 + 2, "each change once");
    assert_eq!(events[8].objtype.as_deref(), Some("SRVGroups"));
    assert_eq!(events[9].objtype.as_deref(), Some("SRVRoles"));
}

#[tokio::test]
async fn a_bad_configuration_is_one_clear_error() {
    let setup = Setup::new().await;
    let good = std::fs::read_to_string(&setup.config).expect("config");
    let cases = [
        (
            "      primarykeyattr: id\n      foreignkeys: {}\n      sources:\n        db:\n          fetch:\n            type: fetch\n            query: \"SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM groups\"",
            "      foreignkeys: {}\n      sources:\n        db:\n          fetch:\n            type: fetch\n            query: \"SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM groups\"",
            "hermes-server.datamodel.SRVGroups: missing field `primarykeyattr`",
        ),
        (
            "        type: sqlite\n",
            "        type: oracle\n",
            "hermes.plugins.datasources.db.type: `oracle` datasources are not supported",
        ),
        (
            "      sources:\n        db:\n          fetch:\n            type: fetch\n            query: \"SELECT uid, role",
            "      sources:\n        nope:\n          fetch:\n            type: fetch\n            query: \"SELECT uid, role",
            "unknown datasource `nope`",
        ),
        (
            "            role: role\n",
            "            role: role\n          commit_one:\n            type: commit_one\n            query: UPDATE\n",
            "SRVRoles.sources.db.commit_one: not supported",
        ),
        (
            "        dirs:",
            "        settings_extra: 1\n        dirs:",
            "unknown field `settings_extra`",
        ),
        (
            "      primarykeyattr: [user, role]\n",
            "      primarykeyattr: {user: 1}\n",
            ": hermes-server.datamodel.SRVRoles.primarykeyattr: an attribute name or a list of attribute names at line",
        ),
        (
            "  plugins:\n",
            "  plugins: 3\n  other:\n",
            ": hermes.plugins: invalid type: integer `3`, expected a mapping at line",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(good.contains(from), "{from}");
        std::fs::write(&setup.config, good.replacen(from, to, 1)).expect("write");
        let error = Server::start(&setup.config, &engine())
            .await
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(
            error.contains(expected),
            "expected `{expected}` in: {error}"
        );
        assert!(
            error.starts_with(&setup.config.display().to_string()),
            "{error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
    }
    // Settings the plugin's schema refuses are named too.
    std::fs::write(
        &setup.config,
        good.replacen(
            "settings: {\"path\"",
            "settings: {\"fsync\":\"sometimes\",\"path\"",
            1,
        ),
    )
    .expect("write");
    let error = Server::start(&setup.config, &engine())
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(error.contains("fsync"), "{error}");
}

#[tokio::test]
async fn a_batch_the_bus_took_before_the_journal_heard_back_is_not_sent_again() {
    let setup = Setup::new().await;
    setup.poll(false).await;
    let cache_dir = setup.bus.dir.path().join("cache");
    let cache_path = ServerCache::path(&cache_dir);
    let before = std::fs::read(&cache_path).expect("the cache");
    let initsync_end = ServerCache::load(&cache_path)
        .expect("cache")
        .lastoffset
        .expect("the last offset the bus gave");
    sql(
        &setup.db,
        "UPDATE users SET login = 'ada.l' WHERE uid = 1; DELETE FROM roles WHERE uid = 2;",
    );
    let report = setup.poll(false).await;
    assert_eq!((report.modified, report.removed), (1, 1), "{report}");
    let sent = ServerCache::load(&cache_path).expect("cache");

    // A kill after the bus took the batch and before the journal heard
    // back: the journal says what was sent (and one more event the bus
    // never got), the cache is the one before.
    let mut consumer = setup.bus.consumer(DRAINED).await;
    let on_bus = read_all(&mut consumer).await;
    let batch: Vec<_> = on_bus
        .iter()
        .skip_while(|c| c.offset != initsync_end)
        .skip(1)
        .collect();
    assert_eq!(batch.len(), 2);
    let mut steps: Vec<Option<Step>> = batch
        .iter()
        .map(|consumed| {
            let event = consumed.event().expect("a hermes event");
            let objtype = event.objtype.expect("an object");
            let key = event.objpkey.to_json_compact();
            Some(match sent.objects[&objtype].get(&key) {
                Some(cached) => Step::Put {
                    objtype,
                    key,
                    cached: cached.clone(),
                },
                None => Step::Remove { objtype, key },
            })
        })
        .collect();
    steps.push(Some(Step::Remove {
        objtype: "SRVUsers".into(),
        key: "2".into(),
    }));
    let mut texts: Vec<&str> = batch.iter().map(|c| c.json.as_str()).collect();
    texts.push("an event the bus never got");
    std::fs::write(&cache_path, before).expect("the cache before");
    let journal_path = Journal::path(&cache_dir);
    Journal::new(journal_path.clone())
        .intend(Some(&initsync_end), &texts, &steps)
        .expect("journal");

    // The next start reads the bus back: the cache takes the two events the
    // bus holds, not the third, and nothing is sent again.
    let report = setup.poll(false).await;
    assert_eq!(report, PollReport::default(), "{report}");
    assert_eq!(setup.events().await.len(), on_bus.len());
    assert_eq!(ServerCache::load(&cache_path).expect("cache"), sent);
    assert!(!journal_path.exists(), "the journal is emptied");
}

#[tokio::test]
async fn a_first_initsync_cut_short_goes_on_where_it_stopped() {
    let setup = Setup::new().await;
    let expected = initsync_sequence();
    // A server killed after the bus took the init-start and group 10, the
    // journal saying so, the cache never saved.
    let mut producer = setup.bus.producer().await;
    let offsets = producer.send_batch(&expected[..2]).await.expect("send");
    producer.close().await.expect("close");
    let cache_dir = setup.bus.dir.path().join("cache");
    std::fs::create_dir_all(&cache_dir).expect("cache dir");
    let mut journal = Journal::new(Journal::path(&cache_dir));
    let texts: Vec<String> = expected[..2].iter().map(Event::to_json).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let group = Step::Put {
        objtype: "SRVGroups".into(),
        key: "10".into(),
        cached: hermes_jobs::server::cache::Cached {
            pkey: Value::from(10),
            attrs: vec![
                ("id".into(), Value::from(10)),
                ("name".into(), Value::from("staff")),
            ],
        },
    };
    journal
        .intend(None, &texts, &[Some(Step::InitStart), Some(group)])
        .expect("intend");
    journal.sent(&offsets[1]).expect("sent");

    let report = setup.poll(false).await;
    assert_eq!(
        report.initsync,
        Some(5),
        "the objects not sent yet: {report}"
    );
    assert_eq!(
        setup.events().await,
        expected,
        "one sequence, each object once"
    );
    let cache = ServerCache::load(&ServerCache::path(&cache_dir)).expect("cache");
    assert!(cache.initsync_done && !cache.initsync_started);
    assert_eq!(
        setup.poll(false).await,
        PollReport::default(),
        "and nothing is left to send"
    );
}
