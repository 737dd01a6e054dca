//! The `hermes-wasm` binary end to end, on its built-in buses: produce
//! a file of events, consume them back, and the errors a user meets.

mod support;

use std::path::Path;
use std::process::Output;

use hermes_event::{Category, Event, EventType, Value};
use hermes_wasm_tests::{init_start, init_stop, users};
use support::{hermes_wasm, spawn, stderr, stdout, terminate, wait_until};

fn events() -> Vec<Event> {
    let mut events = vec![Event::new(
        Category::Initsync,
        EventType::InitStart,
        None,
        Value::Null,
        Value::Object(vec![("SRVUsers".into(), Value::empty_object())]),
    )];
    for id in 0..20 {
        events.push(Event::new(
            Category::Initsync,
            EventType::Added,
            Some("SRVUsers".into()),
            Value::List(vec![Value::from(id), Value::from("é")]),
            Value::Object(vec![
                ("id".into(), Value::from(id)),
                ("photo".into(), Value::Bytes(vec![id as u8, 0xff])),
                ("ratio".into(), Value::from(id as f64 / 3.0)),
            ]),
        ));
    }
    events.push(Event::new(
        Category::Initsync,
        EventType::InitStop,
        None,
        Value::Null,
        Value::empty_object(),
    ));
    events.push(Event::new(
        Category::Base,
        EventType::Removed,
        Some("SRVUsers".into()),
        Value::List(vec![Value::from(3), Value::from("é")]),
        Value::empty_object(),
    ));
    events
}

struct Setup {
    dir: tempfile::TempDir,
    settings: String,
    input: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = serde_json::json!({ "path": dir.path().join("bus") }).to_string();
    let input = dir.path().join("events.jsonl");
    let lines: Vec<String> = events().iter().map(Event::to_json_compact).collect();
    std::fs::write(&input, lines.join("\n") + "\n").expect("write input");
    Setup {
        dir,
        settings,
        input,
    }
}

impl Setup {
    fn run(&self, args: &[&str]) -> Output {
        hermes_wasm(self.dir.path(), args)
    }

    fn dir_arg(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Sends the input file's events on the file-log bus.
    fn produce_input(&self) -> Output {
        let (dir, input) = (self.dir_arg(), self.input.display().to_string());
        self.run(&[
            "produce",
            "--dir",
            &dir,
            "--settings",
            &self.settings,
            "--input",
            &input,
        ])
    }
}

fn consumed_lines(output: &Output) -> Vec<serde_json::Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

#[test]
fn produce_then_consume_gives_back_the_same_events() {
    let s = setup();
    let dir = s.dir_arg();
    let produced = s.produce_input();
    assert!(produced.status.success(), "{}", stderr(&produced));
    assert_eq!(stdout(&produced), "sent 23 events, last offset 22\n");

    let consumed = s.run(&[
        "consume",
        "--dir",
        &dir,
        "--settings",
        &s.settings,
        "--timeout-ms",
        "200",
    ]);
    assert!(consumed.status.success(), "{}", stderr(&consumed));
    let lines = consumed_lines(&consumed);
    let expected = events();
    assert_eq!(lines.len(), expected.len());
    for (i, (line, event)) in lines.iter().zip(&expected).enumerate() {
        assert_eq!(line["offset"], serde_json::json!(i));
        assert!(
            line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        let back = Event::from_json(&line["event"].to_string()).expect("an event");
        assert_eq!(&back, event);
    }
    // Byte for byte, each event is hermes' compact JSON of it.
    for (text, event) in stdout(&consumed).lines().zip(&expected) {
        let printed = text
            .split_once("\"event\": ")
            .and_then(|(_, rest)| rest.strip_suffix('}'))
            .expect("the event last");
        assert_eq!(printed, event.to_json_compact());
    }
}

#[test]
fn floats_that_are_not_finite_travel_as_hermes_writes_them() {
    let s = setup();
    let dir = s.dir_arg();
    let input = s.dir.path().join("non-finite.jsonl");
    std::fs::write(
        &input,
        "{\"evcategory\": \"base\", \"eventtype\": \"added\", \"objtype\": \"U\", \"objpkey\": 1, \
         \"objattrs\": {\"x\": NaN, \"y\": -Infinity, \"z\": 1e400}}\n",
    )
    .expect("write");
    let produced = s.run(&[
        "produce",
        "--dir",
        &dir,
        "--settings",
        &s.settings,
        "--input",
        &input.display().to_string(),
    ]);
    assert!(produced.status.success(), "{}", stderr(&produced));
    let consumed = s.run(&[
        "consume",
        "--dir",
        &dir,
        "--settings",
        &s.settings,
        "--timeout-ms",
        "100",
    ]);
    assert!(consumed.status.success(), "{}", stderr(&consumed));
    assert!(
        stdout(&consumed).contains(r#""objattrs":{"x":NaN,"y":-Infinity,"z":Infinity}"#),
        "{}",
        stdout(&consumed)
    );
}

#[test]
fn consume_starts_where_asked_filters_and_stops_at_the_limit() {
    let s = setup();
    let dir = s.dir_arg();
    assert!(s.produce_input().status.success());
    let base = [
        "consume",
        "--dir",
        &dir,
        "--settings",
        &s.settings,
        "--timeout-ms",
        "100",
    ];

    let after = s.run(&[&base[..], &["--after", "20", "--limit", "1"]].concat());
    let lines = consumed_lines(&after);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["offset"], 21);
    assert_eq!(lines[0]["event"]["eventtype"], "init-stop");

    let at = s.run(&[&base[..], &["--offset", "22"]].concat());
    assert_eq!(
        consumed_lines(&at)
            .iter()
            .map(|l| l["offset"].clone())
            .collect::<Vec<_>>(),
        [22]
    );

    let only_base = s.run(&[&base[..], &["--category", "base"]].concat());
    let lines = consumed_lines(&only_base);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event"]["eventtype"], "removed");
}

#[test]
fn bad_input_is_one_clear_line_a_failure_and_nothing_sent() {
    let s = setup();
    let dir = s.dir_arg();
    let bad = s.dir.path().join("bad.jsonl");
    let good = events()[0].to_json_compact();
    std::fs::write(
        &bad,
        format!(
            "{good}\n{{\"evcategory\": \"base\", \"eventtype\": \"renamed\", \"objattrs\": {{}}}}\n"
        ),
    )
    .expect("write");
    let output = s.run(&[
        "produce",
        "--dir",
        &dir,
        "--settings",
        &s.settings,
        "--input",
        &bad.display().to_string(),
    ]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("line 2") && err.contains("eventtype") && err.contains("nothing was sent"),
        "{err}"
    );
    assert!(!s.dir.path().join("bus").exists(), "nothing was written");
}

#[test]
fn user_mistakes_are_one_line_errors_never_panics() {
    let s = setup();
    let dir = s.dir_arg();
    let missing_dir = s.dir.path().join("missing").display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["produce", "--dir", &dir, "--settings", "{\"path\": 1}"],
            "/path",
        ),
        (
            vec!["produce", "--dir", &dir, "--settings", "{not json"],
            "--settings",
        ),
        (
            vec![
                "produce",
                "--dir",
                &dir,
                "--settings",
                "@/nonexistent/settings.yml",
            ],
            "/nonexistent/settings.yml",
        ),
        (
            vec!["produce", "--dir", &missing_dir, "--settings", &s.settings],
            "--dir",
        ),
        (
            vec![
                "produce",
                "--dir",
                &dir,
                "--settings",
                &s.settings,
                "--memory-mib",
                "0",
            ],
            "--memory-mib: 0 is out of range (1 to 65536)",
        ),
        (
            vec![
                "consume",
                "--dir",
                &dir,
                "--settings",
                &s.settings,
                "--call-deadline-ms",
                "0",
            ],
            "--call-deadline-ms: 0 is out of range (1 to 86400000)",
        ),
        (
            vec!["inspect", "/nonexistent/plugin.wasm"],
            "/nonexistent/plugin.wasm",
        ),
        (
            vec![
                "consume",
                "--dir",
                &dir,
                "--settings",
                &s.settings,
                "--offset",
                "[1]",
            ],
            "offset",
        ),
        (
            vec![
                "consume",
                "--dir",
                &dir,
                "--settings",
                &s.settings,
                "--offset",
                "7",
                "--timeout-ms",
                "10",
            ],
            "unknown offset",
        ),
        (
            vec![
                "consume",
                "--dir",
                &dir,
                "--settings",
                &s.settings,
                "--category",
                "other",
            ],
            "--category",
        ),
    ];
    for (args, expected) in cases {
        let output = s.run(&args);
        let err = stderr(&output);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("hermes-wasm: error: "), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: {err} should mention {expected}"
        );
    }
}

#[test]
fn yaml_settings_files_are_read() {
    let s = setup();
    let dir = s.dir_arg();
    let yaml = s.dir.path().join("bus.yml");
    std::fs::write(
        &yaml,
        format!(
            "path: {}\nfsync: always\n",
            s.dir.path().join("bus").display()
        ),
    )
    .expect("write");
    let settings = format!("@{}", yaml.display());
    let input = s.input.display().to_string();
    let output = s.run(&[
        "produce",
        "--dir",
        &dir,
        "--settings",
        &settings,
        "--input",
        &input,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("sent 23 events"));
}

#[test]
fn inspect_describes_the_built_in_bus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = hermes_wasm(dir.path(), &["inspect"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("plugin:       file-log"), "{text}");
    assert!(text.contains("world:        hermes:bus/bus"), "{text}");
    assert!(text.contains("roles:        producer, consumer"), "{text}");
    assert!(text.contains("capabilities: log\n"), "{text}");
    assert!(text.contains("\"retention_in_days\""), "{text}");
}

#[test]
fn the_built_in_sqlite_bus_round_trips_through_a_read_only_consumer() {
    let s = setup();
    let dir = s.dir_arg();
    let read_only = format!("{dir}:ro");
    let input = s.input.display().to_string();
    let uri = s.dir.path().join("bus.sqlite");
    let producer = serde_json::json!({ "uri": uri, "retention_in_days": 7 }).to_string();
    let consumer = serde_json::json!({ "uri": uri }).to_string();
    let produced = s.run(&[
        "produce",
        "--plugin",
        "sqlite",
        "--dir",
        &dir,
        "--settings",
        &producer,
        "--input",
        &input,
    ]);
    assert!(produced.status.success(), "{}", stderr(&produced));
    assert_eq!(stdout(&produced), "sent 23 events, last offset 23\n");

    let consumed = s.run(&[
        "consume",
        "--plugin",
        "sqlite",
        "--dir",
        &read_only,
        "--settings",
        &consumer,
        "--after",
        "21",
        "--timeout-ms",
        "200",
    ]);
    assert!(consumed.status.success(), "{}", stderr(&consumed));
    let lines = consumed_lines(&consumed);
    let expected = events();
    assert_eq!(lines.len(), 2);
    for (line, (offset, event)) in lines.iter().zip([(22, &expected[21]), (23, &expected[22])]) {
        assert_eq!(line["offset"], serde_json::json!(offset));
        let back = Event::from_json(&line["event"].to_string()).expect("an event");
        assert_eq!(&back, event);
    }

    // The producer writes: a read-only grant refuses it, in one line.
    let refused = s.run(&[
        "produce",
        "--plugin",
        "sqlite",
        "--dir",
        &read_only,
        "--settings",
        &producer,
        "--input",
        &input,
    ]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message
            .lines()
            .any(|l| l.starts_with("hermes-wasm: error:") && l.contains("read-only")),
        "{message}"
    );
}

#[test]
fn redis_servers_must_be_allowed_and_allowances_must_be_urls() {
    let s = setup();
    let input = s.input.display().to_string();
    // Port 9 on loopback: nothing is reached, the refusal comes first.
    let settings = serde_json::json!({ "url": "redis://127.0.0.1:9", "stream": "s" }).to_string();
    let refused = s.run(&[
        "produce",
        "--plugin",
        "redis-streams",
        "--settings",
        &settings,
        "--input",
        &input,
    ]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    let error = message
        .lines()
        .find(|l| l.starts_with("hermes-wasm: error:"))
        .unwrap_or_default();
    assert!(
        error.contains("redis://127.0.0.1:9") && error.contains("--allow-redis"),
        "{message}"
    );

    let bad = s.run(&[
        "consume",
        "--plugin",
        "redis-streams",
        "--allow-redis",
        "not a url",
        "--settings",
        &settings,
    ]);
    assert!(!bad.status.success());
    let message = stderr(&bad);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("--allow-redis not a url"), "{message}");

    let unknown = s.run(&["inspect", "kafka"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("file-log, sqlite, redis-streams"),
        "{}",
        stderr(&unknown)
    );
}

/// Puts an initsync sequence of the sample users `0..n` on the file-log bus
/// and writes a client configuration for it whose target is `target` (the
/// YAML under `target:`); returns the configuration's path.
fn client_of_initsync(s: &Setup, n: i64, target: &str) -> String {
    let mut events = vec![init_start()];
    events.extend(users(Category::Initsync, 0, n));
    events.push(init_stop());
    let lines: Vec<String> = events.iter().map(Event::to_json_compact).collect();
    std::fs::write(&s.input, lines.join("\n") + "\n").expect("write input");
    let produced = s.produce_input();
    assert!(produced.status.success(), "{}", stderr(&produced));
    let config = s.dir.path().join("client.yml");
    std::fs::write(
        &config,
        format!(
            "hermes:\n  plugins:\n    messagebus:\n      file-log:\n        settings: {}\n        dirs: [\"{}/bus\"]\nhermes-client:\n  target:\n{target}",
            s.settings,
            s.dir_arg()
        ),
    )
    .expect("config");
    config.display().to_string()
}

/// The primary keys of the events in a JSON-lines file, in order. A line
/// still being written (no newline yet) is not counted.
fn applied_ids(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter_map(|line| line.strip_suffix('\n'))
        .map(|line| {
            Event::from_json(line)
                .expect("event")
                .objpkey
                .to_json_compact()
                .parse()
                .expect("id")
        })
        .collect()
}

#[test]
fn a_client_stopped_by_sigterm_resumes_with_nothing_skipped_and_nothing_twice() {
    let s = setup();
    let config_arg = client_of_initsync(&s, 300, "    jsonlines:\n      path: applied.jsonl\n");
    let applied = s.dir.path().join("applied.jsonl");
    let count = || applied_ids(&applied).len();
    let child = spawn(s.dir.path(), &["client", "--config", &config_arg]);
    assert!(wait_until(|| count() >= 20), "the client applies events");
    let output = terminate(child);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("client: "),
        "{}",
        stdout(&output)
    );
    let after_stop = count();

    let resumed = s.run(&["client", "--config", &config_arg, "--once"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let ids = applied_ids(&applied);
    assert_eq!(
        ids,
        (0..300).collect::<Vec<_>>(),
        "stopped after {after_stop}"
    );

    let status = s.run(&["status", "--config", &config_arg]);
    assert!(status.status.success(), "{}", stderr(&status));
    let text = stdout(&status);
    assert!(
        text.contains("lastoffset:      301") && text.contains("behind the bus:  0 events"),
        "{text}"
    );
}

#[test]
fn a_killed_client_applies_again_at_most_the_batch_in_hand_and_skips_nothing() {
    let s = setup();
    // A command target that takes 10 ms an event, appending it as one line.
    let script = r#"tr -d '\n' >> applied.jsonl; echo >> applied.jsonl; sleep 0.01"#;
    let config = client_of_initsync(
        &s,
        100,
        &format!(
            "    command:\n      argv: [sh, -c, {}]\n",
            serde_json::to_string(script).expect("json")
        ),
    );
    let applied = s.dir.path().join("applied.jsonl");
    let mut child = spawn(s.dir.path(), &["client", "--config", &config]);
    assert!(wait_until(|| applied_ids(&applied).len() >= 20));
    child.kill().expect("kill -9");
    child.wait().expect("killed");
    // The command it had started finishes on its own.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = applied_ids(&applied).len();
    assert!(before < 100, "killed in the middle: {before} applied");

    let resumed = s.run(&["client", "--config", &config, "--once"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let ids = applied_ids(&applied);
    // What was applied before the kill, then everything from the start of
    // the batch in hand (here the first): nothing skipped.
    let again = ids.len() - 100;
    assert_eq!(again, before);
    assert!(
        again <= 4096,
        "at most the events since the last save again"
    );
    assert_eq!(ids[..again], (0..again as i64).collect::<Vec<_>>());
    assert_eq!(ids[again..], (0..100).collect::<Vec<_>>());
}
