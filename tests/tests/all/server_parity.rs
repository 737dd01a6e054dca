//! The server emits what hermes-server 1.0.9 emits for the same
//! configuration: the values its templates give, the order of its events,
//! what it does with data it cannot take whole, and the configurations it
//! refuses. Each expectation below is what hermes sent for the same
//! datasource (`reference.rs` runs hermes itself when it is installed).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hermes_event::{Event, EventType, Value};
use hermes_jobs::server::{PollReport, Server};
use hermes_wasm_tests::{Bus, engine, read_all};

const DRAINED: Duration = Duration::from_millis(200);

/// A datasource, a datamodel and a file-log bus, in one directory.
struct Fixture {
    bus: Bus,
    db: PathBuf,
    config: PathBuf,
    /// Events already returned by [`Fixture::poll`].
    seen: Cell<usize>,
}

fn sql(db: &Path, statements: &str) {
    rusqlite::Connection::open(db)
        .and_then(|c| c.execute_batch(statements))
        .expect("datasource SQL");
}

impl Fixture {
    /// `setup` run on a new datasource; `datamodel` is the
    /// `hermes-server.datamodel` section's body, indented by four spaces.
    async fn new(setup: &str, datamodel: &str) -> Fixture {
        let bus = Bus::file_log().await;
        let db = bus.dir.path().join("source.sqlite");
        sql(&db, setup);
        let config = bus.dir.path().join("server.yml");
        let fixture = Fixture {
            bus,
            db,
            config,
            seen: Cell::new(0),
        };
        fixture.write_datamodel(datamodel);
        fixture
    }

    fn write_datamodel(&self, datamodel: &str) {
        std::fs::write(&self.config, self.config_text(datamodel)).expect("write config");
    }

    fn config_text(&self, datamodel: &str) -> String {
        let log = self.bus.dir.path().join("bus");
        std::fs::create_dir_all(&log).expect("the log's directory");
        format!(
            "hermes:\n  cache:\n    dirpath: cache\n  plugins:\n    datasources:\n      db:\n        \
             type: sqlite\n        settings:\n          uri: source.sqlite\n    messagebus:\n      \
             file-log:\n        settings: {}\n        dirs: [\"{}\"]\n\
             hermes-server:\n  updateInterval: 1\n  datamodel:\n{datamodel}",
            self.bus.settings,
            log.display()
        )
    }

    fn sql(&self, statements: &str) {
        sql(&self.db, statements);
    }

    /// One poll by a server started for it; the report and the events it
    /// sent, each as [`line`] writes it.
    async fn poll(&self) -> (PollReport, Vec<String>) {
        self.poll_with(false, false).await
    }

    async fn poll_with(&self, initsync: bool, wait: bool) -> (PollReport, Vec<String>) {
        let mut server = Server::start(&self.config, &engine())
            .await
            .expect("server starts");
        server.wait_for_initsync(wait);
        let report = server.poll(initsync).await.expect("poll");
        server.stop().await.expect("stop");
        let mut consumer = self.bus.consumer(DRAINED).await;
        let events: Vec<String> = read_all(&mut consumer)
            .await
            .into_iter()
            .skip(self.seen.get())
            .map(|c| line(&c.event().expect("a hermes event")))
            .collect();
        self.seen.set(self.seen.get() + events.len());
        (report, events)
    }

    /// The error a server started on this configuration fails with.
    async fn refused(&self, datamodel: &str) -> String {
        self.write_datamodel(datamodel);
        let error = Server::start(&self.config, &engine())
            .await
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert_eq!(error.lines().count(), 1, "one line: {error}");
        error
    }
}

/// An event on one line: category, type, object type and key, and the
/// attributes as compact hermes JSON with their keys sorted (hermes and
/// hermes-wasm build objects in different orders; clients read them by
/// name). Init-start and dataschema events show their types' names.
fn line(event: &Event) -> String {
    let mut text = format!("{} {}", event.evcategory.as_str(), event.eventtype.as_str());
    if let Some(objtype) = &event.objtype {
        text.push(' ');
        text.push_str(objtype);
        text.push(' ');
        text.push_str(&event.objpkey.to_json_compact());
    }
    match event.eventtype {
        EventType::InitStart | EventType::Dataschema => {
            let Value::Object(types) = &event.objattrs else {
                panic!("a dataschema is an object: {event:?}");
            };
            let names: Vec<&str> = types.iter().map(|(name, _)| name.as_str()).collect();
            text.push_str(&format!(" [{}]", names.join(", ")));
        }
        EventType::InitStop => {}
        _ => {
            text.push(' ');
            text.push_str(&sorted(&event.objattrs).to_json_compact());
        }
    }
    text
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(entries) => {
            let mut entries: Vec<(String, Value)> = entries
                .iter()
                .map(|(k, v)| (k.clone(), sorted(v)))
                .collect();
            entries.sort_by(|(a, _), (b, _)| a.cmp(b));
            Value::Object(entries)
        }
        Value::List(items) => Value::List(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// People with numbers, text, optional phones, a `;`-separated list and
/// dates, mapped the way hermes' own example configuration maps them.
const PEOPLE: &str = "
    CREATE TABLE people (id INTEGER, quota REAL, big REAL, employee TEXT,
        phone TEXT, mobile TEXT, affiliation TEXT, born DATETIME, hired date,
        first TEXT, last TEXT);
    INSERT INTO people VALUES
        (1, 2, 1e15, ' 50037', '+33 1', NULL, 'staff;member',
         '1975-08-15 05:15:25', '2001-02-03', 'ada', 'LOVELACE'),
        (2, 0.5, 1, '007', NULL, NULL, 'student',
         '1980-01-02T03:04:05.678+02:00', NULL, 'alan', 'turing'),
        (3, 1.5, 3, 'E0042', NULL, '+33 6', ' affiliate ',
         NULL, NULL, 'grace', 'hopper');";

const PEOPLE_MODEL: &str = r#"    People:
      primarykeyattr: id
      foreignkeys: {}
      sources:
        db:
          fetch:
            type: fetch
            query: "SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM people"
          attrsmapping:
            id: id
            quota: "{{ quota * 1024 }}"
            big: "{{ big * 1024 }}"
            employee: "{{ employee | trim }}"
            phones: "{{ [phone, mobile] }}"
            contacts: [phone, mobile]
            affiliations: "{{ affiliation.strip().split(';') }}"
            born: born
            hired: hired
            name: "{{ first.capitalize() ~ ' ' ~ last.title() }}"
            big_quota: "{{ quota > 1 }}"
"#;

#[tokio::test]
async fn template_results_are_read_back_as_python_literals() {
    let fixture = Fixture::new(PEOPLE, PEOPLE_MODEL).await;
    let (_, events) = fixture.poll().await;
    assert_eq!(
        events,
        [
            "initsync init-start [People]",
            // 2 * 1024 on a REAL column is the float 2048.0, written as
            // Python writes it; " 50037" trimmed reads back as an integer;
            // a DATETIME column is a datetime; the list form and a list
            // template drop nulls. (A `date` column is a datetime at
            // midnight: hermes 1.0.9 fails on it.)
            r#"initsync added People 1 {"affiliations":["staff","member"],"big":1.024e+18,"big_quota":true,"born":"HermesDatetime(1975-08-15T05:15:25Z)","contacts":["+33 1"],"employee":50037,"hired":"HermesDatetime(2001-02-03T00:00:00Z)","id":1,"name":"Ada Lovelace","phones":["+33 1"],"quota":2048.0}"#,
            // "007" is not a Python literal: it stays a string. The
            // timezone is dropped without conversion, as hermes does; a list
            // of nulls only is no attribute at all.
            r#"initsync added People 2 {"affiliations":["student"],"big":1024.0,"big_quota":false,"born":"HermesDatetime(1980-01-02T03:04:05Z)","employee":"007","id":2,"name":"Alan Turing","quota":512.0}"#,
            r#"initsync added People 3 {"affiliations":["affiliate"],"big":3072.0,"big_quota":true,"contacts":["+33 6"],"employee":"E0042","id":3,"name":"Grace Hopper","phones":["+33 6"],"quota":1536.0}"#,
            "initsync init-stop",
        ]
    );

    // A list that empties is a removed attribute.
    fixture.sql("UPDATE people SET phone = NULL, employee = '50037.5' WHERE id = 1");
    let (_, events) = fixture.poll().await;
    assert_eq!(
        events,
        [
            r#"base modified People 1 {"added":{},"modified":{"employee":50037.5},"removed":{"contacts":null,"phones":null}}"#
        ]
    );
}

#[tokio::test]
async fn objects_go_out_in_primary_key_order() {
    let fixture = Fixture::new(
        "CREATE TABLE numbers (n INTEGER);
         INSERT INTO numbers VALUES (200), (7), (31), (120), (32);
         CREATE TABLE pairs (name TEXT, n INTEGER);
         INSERT INTO pairs VALUES ('Beta', 120), ('beta', 1), ('Beta', 41), ('Alpha', 500), ('Été', 2);",
        r#"    Numbers:
      primarykeyattr: n
      foreignkeys: {}
      sources:
        db:
          fetch:
            type: fetch
            query: "SELECT n FROM numbers"
          attrsmapping:
            n: n
    Pairs:
      primarykeyattr: [name, n]
      foreignkeys: {}
      sources:
        db:
          fetch:
            type: fetch
            query: "SELECT name, n FROM pairs"
          attrsmapping:
            name: name
            n: n
"#,
    )
    .await;
    let (_, events) = fixture.poll().await;
    assert_eq!(
        events,
        [
            "initsync init-start [Numbers, Pairs]",
            // Integers in numeric order, not as text.
            r#"initsync added Numbers 7 {"n":7}"#,
            r#"initsync added Numbers 31 {"n":31}"#,
            r#"initsync added Numbers 32 {"n":32}"#,
            r#"initsync added Numbers 120 {"n":120}"#,
            r#"initsync added Numbers 200 {"n":200}"#,
            // Composite keys element by element; strings by code point.
            r#"initsync added Pairs ["Alpha",500] {"n":500,"name":"Alpha"}"#,
            r#"initsync added Pairs ["Beta",41] {"n":41,"name":"Beta"}"#,
            r#"initsync added Pairs ["Beta",120] {"n":120,"name":"Beta"}"#,
            r#"initsync added Pairs ["beta",1] {"n":1,"name":"beta"}"#,
            r#"initsync added Pairs ["\u00c9t\u00e9",2] {"n":2,"name":"\u00c9t\u00e9"}"#,
            "initsync init-stop",
        ]
    );

    fixture.sql(
        "INSERT INTO numbers VALUES (1000), (9), (100);
         DELETE FROM numbers WHERE n IN (120, 7, 31);
         DELETE FROM pairs WHERE n IN (120, 41);",
    );
    let (_, events) = fixture.poll().await;
    assert_eq!(
        events,
        [
            r#"base added Numbers 9 {"n":9}"#,
            r#"base added Numbers 100 {"n":100}"#,
            r#"base added Numbers 1000 {"n":1000}"#,
            r#"base removed Pairs ["Beta",41] {}"#,
            r#"base removed Pairs ["Beta",120] {}"#,
            r#"base removed Numbers 7 {}"#,
            r#"base removed Numbers 31 {}"#,
            r#"base removed Numbers 120 {}"#,
        ]
    );
}

const GROUPS: &str = "
    CREATE TABLE groups (gid INTEGER, name TEXT);
    CREATE TABLE members (gid INTEGER, uid INTEGER);
    INSERT INTO groups VALUES (1, 'staff'), (2, 'guests');
    INSERT INTO members VALUES (1, 10), (2, 10), (999, 11), (2, 12), (1, 12);";

const GROUPS_MODEL: &str = r#"    Groups:
      primarykeyattr: id
      foreignkeys: {}
      sources:
        db:
          fetch:
            type: fetch
            query: "SELECT gid, name FROM groups"
          attrsmapping:
            id: gid
            name: name
    Members:
      primarykeyattr: [group_id, user_id]
      foreignkeys:
        group_id: {from_objtype: Groups, from_attr: id}
      integrity_constraints:
        - "{{ _SELF.group_id in Groups_pkeys }}"
        - "{{ _SELF.user_id != 12 or _SELF.group_id == 2 }}"
      sources:
        db:
          fetch:
            type: fetch
            query: "SELECT gid, uid FROM members"
          attrsmapping:
            group_id: gid
            user_id: uid
"#;

#[tokio::test]
async fn objects_failing_integrity_constraints_are_left_out() {
    let fixture = Fixture::new(GROUPS, GROUPS_MODEL).await;
    let (_, events) = fixture.poll().await;
    assert_eq!(
        events,
        [
            "initsync init-start [Groups, Members]",
            r#"initsync added Groups 1 {"id":1,"name":"staff"}"#,
            r#"initsync added Groups 2 {"id":2,"name":"guests"}"#,
            // [999, 11]: no group 999; [1, 12]: the second constraint.
            r#"initsync added Members [1,10] {"group_id":1,"user_id":10}"#,
            r#"initsync added Members [2,10] {"group_id":2,"user_id":10}"#,
            r#"initsync added Members [2,12] {"group_id":2,"user_id":12}"#,
            "initsync init-stop",
        ]
    );
    // Group 999 appears: its member passes now. Group 2 goes: its members
    // fail, and are removed.
    fixture.sql("INSERT INTO groups VALUES (999, 'late'); DELETE FROM groups WHERE gid = 2;");
    let (_, events) = fixture.poll().await;
    assert_eq!(
        events,
        [
            r#"base added Groups 999 {"id":999,"name":"late"}"#,
            r#"base added Members [999,11] {"group_id":999,"user_id":11}"#,
            r#"base removed Members [2,10] {}"#,
            r#"base removed Members [2,12] {}"#,
            r#"base removed Groups 2 {}"#,
        ]
    );
}

#[tokio::test]
async fn a_primary_key_twice_is_a_data_error_and_the_rest_goes_on() {
    let fixture = Fixture::new(GROUPS, GROUPS_MODEL).await;
    fixture.poll().await;
    let cache = fixture.bus.dir.path().join("cache/hermes-server.json");
    fixture.sql(
        "INSERT INTO groups VALUES (1, 'staff again'), (3, 'new'), (4, 'twice'), (4, 'twice');
         UPDATE groups SET name = 'visitors' WHERE gid = 2;",
    );
    let (report, events) = fixture.poll().await;
    // Group 1 stays as clients know it, group 4 is left out; the others go on.
    assert_eq!(
        events,
        [
            r#"base added Groups 3 {"id":3,"name":"new"}"#,
            r#"base modified Groups 2 {"added":{},"modified":{"name":"visitors"},"removed":{}}"#,
        ]
    );
    assert_eq!(
        report.data_errors,
        [
            "Groups: the primary key 1 appears 2 times in the datasource; clients keep the object as they know it",
            "Groups: the primary key 4 appears 2 times in the datasource; it is left out",
        ]
    );
    assert!(report.to_string().contains(
        "data errors: Groups: the primary key 1 appears 2 times in the datasource; clients keep"
    ));
    let saved = std::fs::read_to_string(&cache).expect("the cache");
    assert!(saved.contains("\"data_errors\""), "{saved}");
    assert!(
        saved.contains("the primary key 4 appears 2 times"),
        "{saved}"
    );

    // Still there: still reported, nothing sent again.
    let (report, events) = fixture.poll().await;
    assert_eq!((report.data_errors.len(), events.len()), (2, 0));

    // Clean again: the held object is diffed as usual, the error is gone.
    fixture.sql("DELETE FROM groups WHERE name IN ('staff', 'twice');");
    let (report, events) = fixture.poll().await;
    assert_eq!(
        events,
        [r#"base modified Groups 1 {"added":{},"modified":{"name":"staff again"},"removed":{}}"#]
    );
    assert!(report.data_errors.is_empty());
    let saved = std::fs::read_to_string(&cache).expect("the cache");
    assert!(!saved.contains("data_errors"), "{saved}");
}

#[tokio::test]
async fn a_type_dropped_from_the_datamodel_is_sent_as_removed_then_the_schema() {
    let setup = "CREATE TABLE t (id INTEGER);
                 INSERT INTO t VALUES (3), (20), (1);";
    let model = |names: &[&str]| -> String {
        names
            .iter()
            .map(|name| {
                format!(
                    "    {name}:\n      primarykeyattr: id\n      foreignkeys: {{}}\n      sources:\n        db:\n          \
                     fetch:\n            type: fetch\n            query: \"SELECT id FROM t\"\n          \
                     attrsmapping:\n            id: id\n"
                )
            })
            .collect()
    };
    let fixture = Fixture::new(setup, &model(&["One", "Two", "Three"])).await;
    let (_, events) = fixture.poll().await;
    assert_eq!(events.len(), 11);

    fixture.write_datamodel(&model(&["One"]));
    let (report, events) = fixture.poll().await;
    assert_eq!(
        events,
        [
            // The last types first, each in key order.
            "base removed Three 1 {}",
            "base removed Three 3 {}",
            "base removed Three 20 {}",
            "base removed Two 1 {}",
            "base removed Two 3 {}",
            "base removed Two 20 {}",
            "base dataschema [One]",
        ]
    );
    assert_eq!((report.removed, report.removed_types), (6, 6));
    // The cache forgot them: nothing more is sent.
    let (_, events) = fixture.poll().await;
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn waiting_for_initsync_the_first_poll_only_fills_the_cache() {
    let fixture = Fixture::new(GROUPS, GROUPS_MODEL).await;
    let (report, events) = fixture.poll_with(false, true).await;
    assert_eq!((report.filled, report.initsync), (Some(5), None));
    assert!(events.is_empty(), "{events:?}");
    assert!(report.to_string().contains("cache filled with 5 objects"));

    // Changes go out as base events from the next poll on, initsync or not.
    fixture.sql("INSERT INTO groups VALUES (3, 'new');");
    let (_, events) = fixture.poll_with(false, true).await;
    assert_eq!(events, [r#"base added Groups 3 {"id":3,"name":"new"}"#]);

    // Asked for, an initsync sequence of the whole state.
    let (report, events) = fixture.poll_with(true, true).await;
    assert_eq!(report.initsync, Some(6));
    assert_eq!(
        events.first().map(String::as_str),
        Some("initsync init-start [Groups, Members]")
    );
    assert_eq!(events.len(), 8);
}

#[tokio::test]
async fn configurations_hermes_refuses_are_refused() {
    let fixture = Fixture::new(GROUPS, GROUPS_MODEL).await;
    let cases = [
        // A type name: a letter, then a letter or a digit.
        (
            GROUPS_MODEL
                .replace("    Groups:", "    G:")
                .replace("from_objtype: Groups", "from_objtype: G"),
            "hermes-server.datamodel.G: `G` is not a valid type name",
        ),
        (
            GROUPS_MODEL.replace("    Members:", "    _Members:"),
            "hermes-server.datamodel._Members: `_Members` is not a valid type name",
        ),
        (
            GROUPS_MODEL.replace("    Members:", "    M-embers:"),
            "`M-embers` is not a valid type name",
        ),
        // Text and templates mixed: hermes cannot tell the remote attribute.
        (
            GROUPS_MODEL.replace("name: name", "name: \"{{ name }} ({{ gid }})\""),
            "attrsmapping.name: `{{ name }} ({{ gid }})` mixes text with templates",
        ),
        (
            GROUPS_MODEL.replace("name: name", "name: \"group {{ name }}\""),
            "mixes text with templates",
        ),
        // A foreign key from an attribute that is not the primary key.
        (
            GROUPS_MODEL.replace(
                "primarykeyattr: [group_id, user_id]",
                "primarykeyattr: user_id",
            ),
            "hermes-server.datamodel.Members.foreignkeys.group_id: `group_id` is not the primary key of Members",
        ),
        // ... or to one that is not the other type's.
        (
            GROUPS_MODEL.replace("from_attr: id", "from_attr: name"),
            "hermes-server.datamodel.Members.foreignkeys.group_id.from_attr: `name` is not the primary key of Groups",
        ),
    ];
    for (model, expected) in cases {
        assert_ne!(model, GROUPS_MODEL, "{expected}");
        let error = fixture.refused(&model).await;
        assert!(
            error.contains(expected),
            "expected `{expected}` in: {error}"
        );
        assert!(
            error.starts_with(&fixture.config.display().to_string()),
            "{error}"
        );
    }
}

#[tokio::test]
async fn hermes_own_keys_are_accepted() {
    let fixture = Fixture::new(GROUPS, GROUPS_MODEL).await;
    let text = fixture.config_text(GROUPS_MODEL).replacen(
        "hermes:\n",
        "hermes:\n  logs:\n    logfile: null\n    backup_count: 7\n    verbosity: info\n  \
         mail:\n    server: 127.0.0.1\n    from: hermes <hermes@example.com>\n    to: [admin@example.com]\n  \
         cli_socket:\n    path: /tmp/hermes-server.sock\n",
        1,
    );
    std::fs::write(&fixture.config, text).expect("write config");
    let (report, _) = fixture.poll().await;
    assert_eq!(report.initsync, Some(5));
}

/// hermes' source tree, where the tests can find it: `$HERMES_SOURCE`, or
/// `shared/peers/hermes-1.0.9` beside one of the workspace's parents.
fn hermes_source() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HERMES_SOURCE") {
        return Some(PathBuf::from(dir));
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/peers/hermes-1.0.9"))
        .find(|dir| dir.join("server/hermesserver.py").is_file())
}

/// The Python that runs hermes, from the virtual environment
/// `tests/install-deps.sh` makes.
fn hermes_python() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let python = target.join("python/hermes/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run tests/install-deps.sh",
        python.display()
    );
    python
}

/// The real hermes-server, one process for every round, driven through
/// `tests/reference/hermes_server.py`.
struct Hermes {
    /// hermes' log.
    log: PathBuf,
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Hermes {
    fn start(source: &Path, workdir: &Path) -> Hermes {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/hermes_server.py");
        let log = workdir.join("hermes.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("hermes' log");
        let mut child = Command::new(hermes_python())
            .arg(driver)
            .arg(source)
            .arg(workdir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("python runs hermes");
        let input = child.stdin.take().expect("stdin");
        let output = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        Hermes {
            log,
            child,
            input,
            output,
        }
    }

    /// `poll` or `initsync`, once hermes finished it.
    fn run(&mut self, action: &str) {
        use std::io::Write;
        writeln!(self.input, "{action}").expect("hermes reads its next action");
        let answer = self.output.next().map(|line| line.expect("hermes' answer"));
        assert_eq!(
            answer.as_deref(),
            Some("done"),
            "hermes failed on `{action}`: {}",
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(self) {
        let log = self.log();
        drop(self.input);
        let Hermes { mut child, .. } = self;
        let status = child.wait().expect("hermes stops");
        assert!(status.success(), "hermes failed: {status}: {log}");
    }
}

/// Our configuration `ours` as hermes takes it, for a server in `workdir`:
/// without the plugin's grants, with the keys hermes requires.
fn for_hermes(ours: &str, workdir: &Path) -> String {
    ours.lines()
        .filter(|line| !line.trim_start().starts_with("dirs:"))
        .map(|line| format!("{line}\n"))
        .collect::<String>()
        .replacen(
            "hermes:\n",
            &format!(
                "hermes:\n  logs: {{logfile: null, verbosity: warning}}\n  \
                 mail: {{server: 127.0.0.1, from: hermes@example.com, to: admin@example.com}}\n  \
                 cli_socket: {{path: {}}}\n",
                workdir.join("cli.sock").display()
            ),
            1,
        )
}

/// The events of a bus in hermes' sqlite format, as [`line`] writes them.
fn sqlite_bus(path: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(path).expect("the bus");
    let mut query = db
        .prepare("SELECT data FROM hermesmessages ORDER BY msgid")
        .expect("hermes' table");
    let texts: Vec<String> = query
        .query_map([], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    texts
        .iter()
        .map(|text| line(&Event::from_json(text).expect("a hermes event")))
        .collect()
}

/// `lines` with each run of `modified` events of one type sorted.
fn modified_as_sets(mut lines: Vec<String>) -> Vec<String> {
    let run_of = |line: &str| {
        line.strip_prefix("base modified ")
            .and_then(|rest| rest.split(' ').next())
            .map(str::to_owned)
    };
    let mut start = 0;
    while start < lines.len() {
        let kind = run_of(&lines[start]);
        let mut end = start + 1;
        while end < lines.len() && kind.is_some() && run_of(&lines[end]) == kind {
            end += 1;
        }
        lines[start..end].sort();
        start = end;
    }
    lines
}

/// One poll of a server started for it on `config`.
async fn poll_once(config: &Path, initsync: bool, wait: bool) {
    let mut server = Server::start(config, &engine())
        .await
        .expect("server starts");
    server.wait_for_initsync(wait);
    server.poll(initsync).await.expect("poll");
    server.stop().await.expect("stop");
}

/// Three related types and one with a composite key, with Jinja mappings,
/// a list form, a secret, a cache-only attribute, datetimes and an
/// integrity constraint.
const REFERENCE_MODEL: &str = r#"    SRVGroups:
      primarykeyattr: id
      foreignkeys: {}
      sources:
        db:
          fetch: {type: fetch, query: "SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM groups"}
          attrsmapping: {id: gid, name: name}
    SRVUsers:
      primarykeyattr: id
      foreignkeys: {}
      sources:
        db:
          fetch: {type: fetch, query: "SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM staff"}
          attrsmapping:
            id: uid
            login: login
            name: "{{ first ~ ' ' ~ last.upper() }}"
            quota: "{{ quota * 1024 if quota is not none else none }}"
            number: "{{ employee_number | trim if employee_number else none }}"
            phones: "{{ [phone, mobile] }}"
            contacts: [mobile, phone]
            affiliations: "{{ affiliation.split(';') if affiliation else none }}"
            born: birth
            password: password
            seen: seen
          secrets_attrs: [password]
          cacheonly_attrs: [seen]
    SRVGroupsMembers:
      primarykeyattr: [group_id, user_id]
      foreignkeys:
        group_id: {from_objtype: SRVGroups, from_attr: id}
        user_id: {from_objtype: SRVUsers, from_attr: id}
      integrity_constraints:
        - "{{ _SELF.user_id in SRVUsers_pkeys and _SELF.group_id in SRVGroups_pkeys }}"
      sources:
        db:
          fetch: {type: fetch, query: "SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM members"}
          attrsmapping: {group_id: gid, user_id: uid}
"#;

const REFERENCE_ROOMS: &str = r#"    SRVRooms:
      primarykeyattr: [building, number]
      foreignkeys: {}
      sources:
        db:
          fetch: {type: fetch, query: "SELECT {{ REMOTE_ATTRIBUTES | join(', ') }} FROM rooms"}
          attrsmapping: {building: building, number: number, label: label}
"#;

const REFERENCE_DATA: &str = "
    CREATE TABLE groups (gid INTEGER, name TEXT);
    CREATE TABLE staff (uid INTEGER, login TEXT, first TEXT, last TEXT, quota REAL,
        employee_number TEXT, phone TEXT, mobile TEXT, affiliation TEXT,
        birth DATETIME, password TEXT, seen INTEGER);
    CREATE TABLE members (gid INTEGER, uid INTEGER);
    CREATE TABLE rooms (building TEXT, number INTEGER, label TEXT);
    INSERT INTO groups VALUES (3, 'staff'), (1, 'guests');
    INSERT INTO staff VALUES
        (120, 'ada', 'Ada', 'Lovelace', 2.0, ' 50037', '+33 1', NULL, 'staff;member',
         '1975-08-15 05:15:25', 'pw-ada', 1),
        (30, 'alan', 'Alan', 'Turing', 1e15, '007', NULL, NULL, 'student',
         '1980-01-02T03:04:05+02:00', 'pw-alan', 1),
        (31, 'grace', 'Grace', 'Hopper', 0.5, 'E0042', '+33 2', '+33 6', 'faculty;staff;',
         NULL, 'pw-grace', 1),
        (32, 'linus', 'Linus', 'T', NULL, NULL, NULL, '+33 7', NULL, '2001-02-03', NULL, 1);
    INSERT INTO members VALUES (3, 120), (3, 30), (1, 31), (1, 999);
    INSERT INTO rooms VALUES ('Beta', 120, 'b120'), ('Alpha', 7, 'a7'), ('Beta', 41, 'b41');";

/// Rounds of changes, each followed by one poll of both servers.
const REFERENCE_ROUNDS: [&str; 4] = [
    // Values change, objects come and go, a secret changes, a cache-only
    // attribute changes (no event).
    "UPDATE staff SET quota = 3.5, phone = NULL WHERE uid = 120;
     UPDATE staff SET employee_number = '50038 ', mobile = NULL WHERE uid = 32;
     UPDATE staff SET password = 'pw-grace-2', affiliation = 'faculty' WHERE uid = 31;
     UPDATE staff SET seen = 2;
     INSERT INTO staff VALUES
         (7, 'ken', 'Ken', 'Thompson', 1.0, '00042', NULL, NULL, 'staff', '1943-02-04 00:00:00', 'pw-ken', 1),
         (200, 'bob', 'Bob', 'Kahn', 1e306, '1_000', '+33 3', '+33 3', ';', NULL, 'pw-bob', 1);
     INSERT INTO members VALUES (1, 7), (3, 200), (1, 200);
     DELETE FROM members WHERE uid = 30;
     INSERT INTO rooms VALUES ('Beta', 5, 'b5'), ('Alpha', 100, 'a100');
     DELETE FROM rooms WHERE number IN (120, 41);",
    // Data errors: a group and a user twice (both known), a new group twice.
    "INSERT INTO groups VALUES (3, 'staff again'), (9, 'x'), (9, 'y');
     INSERT INTO staff (uid, login, first, last) VALUES (31, 'grace2', 'G', 'H');
     UPDATE groups SET name = 'visitors' WHERE gid = 1;
     DELETE FROM staff WHERE uid = 30;",
    // Clean again.
    "DELETE FROM groups WHERE name IN ('staff', 'y');
     DELETE FROM staff WHERE login = 'grace2';",
    // No secrets and no timezones left before the restart (hermes' cache
    // keeps neither: after a restart, it sends them again as changes).
    "UPDATE staff SET password = NULL;
     UPDATE staff SET birth = NULL WHERE uid = 30;",
];

#[tokio::test]
async fn the_same_datasource_gives_the_same_events_as_hermes() {
    let Some(source) = hermes_source() else {
        eprintln!(
            "hermes' source not found (set HERMES_SOURCE to a hermes 1.0.9 checkout): \
             the comparison with hermes-server is skipped"
        );
        return;
    };
    let fixture = Fixture::new(REFERENCE_DATA, "").await;
    let ours = fixture.bus.dir.path().join("bus/bus.sqlite");
    let text = |datamodel: &str| {
        fixture
            .config_text(datamodel)
            .replace("file-log:", "sqlite:")
            .replace(
                &fixture.bus.settings.to_string(),
                &serde_json::json!({"uri": ours, "retention_in_days": 1}).to_string(),
            )
    };
    let with_rooms = format!("{REFERENCE_MODEL}{REFERENCE_ROOMS}");
    std::fs::write(&fixture.config, text(&with_rooms)).expect("our config");

    // hermes in its own directory, on its own copy of the datasource.
    let hermes_dir = fixture.bus.dir.path().join("hermes");
    std::fs::create_dir_all(&hermes_dir).expect("hermes' directory");
    let theirs = hermes_dir.join("bus.sqlite");
    let hermes_config = |datamodel: &str| {
        for_hermes(
            &text(datamodel).replace(&ours.display().to_string(), &theirs.display().to_string()),
            &hermes_dir,
        )
    };
    let hermes_file = hermes_dir.join("hermes-server-config.yml");
    std::fs::write(&hermes_file, hermes_config(&with_rooms)).expect("hermes' config");
    let hermes_db = hermes_dir.join("source.sqlite");
    std::fs::copy(&fixture.db, &hermes_db).expect("hermes' datasource");

    // hermes' way: the first poll fills the cache, an initsync follows.
    let mut hermes = Hermes::start(&source, &hermes_dir);
    hermes.run("poll");
    hermes.run("initsync");
    poll_once(&fixture.config, false, true).await;
    poll_once(&fixture.config, true, true).await;
    let mut rounds = vec![sqlite_bus(&theirs).len()];
    for changes in REFERENCE_ROUNDS {
        sql(&fixture.db, changes);
        sql(&hermes_db, changes);
        hermes.run("poll");
        poll_once(&fixture.config, false, false).await;
        rounds.push(sqlite_bus(&theirs).len());
    }
    hermes.stop();

    // A type dropped from the datamodel, at a restart.
    std::fs::write(&fixture.config, text(REFERENCE_MODEL)).expect("our config");
    std::fs::write(&hermes_file, hermes_config(REFERENCE_MODEL)).expect("hermes' config");
    let mut hermes = Hermes::start(&source, &hermes_dir);
    hermes.run("poll");
    poll_once(&fixture.config, false, false).await;
    rounds.push(sqlite_bus(&theirs).len());
    // An initsync on demand, after it.
    hermes.run("initsync");
    hermes.stop();
    poll_once(&fixture.config, true, false).await;

    // hermes sends `modified` events in no set order: compare each run of
    // them as a set.
    let (theirs, ours) = (
        modified_as_sets(sqlite_bus(&theirs)),
        modified_as_sets(sqlite_bus(&ours)),
    );
    // Every round sent something, the initsync too.
    assert!(rounds.windows(2).all(|w| w[0] < w[1]), "{rounds:?}");
    assert!(rounds.last() < Some(&theirs.len()), "{rounds:?}");
    if std::env::var_os("HERMES_SHOW_EVENTS").is_some() {
        eprintln!("{}", theirs.join("\n"));
    }
    for (i, (a, b)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(
            a, b,
            "event {i} differs (hermes first; rounds end at {rounds:?})"
        );
    }
    assert_eq!(
        theirs.len(),
        ours.len(),
        "hermes sent {theirs:#?}\nwe sent {ours:#?}"
    );
}

#[tokio::test]
async fn the_example_gives_the_same_events_as_hermes() {
    let Some(source) = hermes_source() else {
        eprintln!("hermes' source not found: the example's comparison with hermes is skipped");
        return;
    };
    // The example on a sqlite bus, which both servers write.
    let example = include_str!("../../../examples/server.yml").replace(
        "      file-log:\n        settings:\n          path: \"@WORK@/bus\"\n",
        "      sqlite:\n        settings: {uri: \"@WORK@/bus/bus.sqlite\", retention_in_days: 1}\n",
    );
    assert!(
        example.contains("      sqlite:\n"),
        "the example's bus section changed"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (ours, theirs) = (dir.path().join("ours"), dir.path().join("hermes"));
    for side in [&ours, &theirs] {
        std::fs::create_dir_all(side.join("bus")).expect("a bus directory");
    }
    let ours_config = ours.join("server.yml");
    std::fs::write(
        &ours_config,
        example.replace("@WORK@", &ours.display().to_string()),
    )
    .expect("our config");
    std::fs::write(
        theirs.join("hermes-server-config.yml"),
        for_hermes(
            &example.replace("@WORK@", &theirs.display().to_string()),
            &theirs,
        ),
    )
    .expect("hermes' config");
    // One datasource, copied: its passwords are random.
    sql(
        &ours.join("directory.sqlite"),
        include_str!("../../../examples/datasource.sql"),
    );
    std::fs::copy(
        ours.join("directory.sqlite"),
        theirs.join("directory.sqlite"),
    )
    .expect("hermes' datasource");

    let mut hermes = Hermes::start(&source, &theirs);
    hermes.run("poll");
    hermes.run("initsync");
    poll_once(&ours_config, false, true).await;
    poll_once(&ours_config, true, true).await;
    // The quickstart's change: a user renamed, a group emptied and gone.
    let change = "UPDATE users SET last = 'Hopper' WHERE uid = 3;
        UPDATE users SET gid = 1 WHERE gid = 12; DELETE FROM groups WHERE gid = 12;";
    for side in [&ours, &theirs] {
        sql(&side.join("directory.sqlite"), change);
    }
    hermes.run("poll");
    hermes.stop();
    poll_once(&ours_config, false, false).await;

    let theirs = modified_as_sets(sqlite_bus(&theirs.join("bus/bus.sqlite")));
    let ours = modified_as_sets(sqlite_bus(&ours.join("bus/bus.sqlite")));
    // An initsync of 12 groups, 300 users and their memberships, then 77
    // changes.
    assert_eq!(
        theirs.len(),
        614 + 77,
        "{:#?}",
        &theirs[..theirs.len().min(20)]
    );
    for (i, (a, b)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(a, b, "event {i} differs (hermes first)");
    }
    assert_eq!(theirs.len(), ours.len());
}
