//! hermes-client's job through the library: events a real server sent on a
//! real bus, applied to a JSON-lines file or a command, with the error queue
//! and clean stops.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hermes_event::{Category, Event, EventType, Value};
use hermes_host::Offset;
use hermes_jobs::Stop;
use hermes_jobs::client::dead_letter::Quarantined;
use hermes_jobs::client::{Client, Status};
use hermes_wasm_tests::{Bus, engine, init_start, init_stop, user_added, users_schema};

/// A file-log bus and a client configuration reading it, read-only.
struct Setup {
    bus: Bus,
    config: PathBuf,
}

impl Setup {
    async fn new(target: &str, extra: &str) -> Setup {
        let bus = Bus::file_log().await;
        let config = bus.file_log_client_config(&format!(
            "  errorQueue_retryInterval: 0.001\n{extra}  target:\n{target}"
        ));
        Setup { bus, config }
    }

    async fn jsonlines(extra: &str) -> Setup {
        Setup::new("    jsonlines:\n      path: applied.jsonl\n", extra).await
    }

    /// A client whose target runs `sh -c script PATH`, PATH being the file
    /// `name` in the bus's directory.
    async fn command(script: &str, name: &str) -> Setup {
        Setup::command_with(script, name, "").await
    }

    /// The same, with `extra` lines in the `hermes-client` section.
    async fn command_with(script: &str, name: &str, extra: &str) -> Setup {
        let setup = Setup::new("", extra).await;
        let text = std::fs::read_to_string(&setup.config).expect("config")
            + &format!(
                "    command:\n      argv: [\"sh\", \"-c\", {}, \"{}\"]\n",
                serde_json::to_string(script).expect("json"),
                setup.path(name).display()
            );
        std::fs::write(&setup.config, text).expect("config");
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.bus.dir.path().join(name)
    }

    async fn send(&self, events: &[Event]) -> Vec<Offset> {
        let mut producer = self.bus.producer().await;
        let offsets = producer.send_batch(events).await.expect("send");
        producer.close().await.expect("close");
        offsets
    }

    /// Runs the client until the bus is drained.
    async fn run_once(&self) -> hermes_jobs::client::RunReport {
        let mut client = Client::start(&self.config, &engine())
            .await
            .expect("client starts");
        let report = client.run(true, &Stop::new()).await.expect("run");
        client.stop().await.expect("stop");
        report
    }

    fn applied(&self) -> Vec<Event> {
        read_lines(&self.path("applied.jsonl"))
    }
}

fn read_lines(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| Event::from_json(line).expect("an event per line"))
        .collect()
}

fn modified(id: i64, login: &str) -> Event {
    Event::new(
        Category::Base,
        EventType::Modified,
        Some("SRVUsers".into()),
        Value::from(id),
        Value::Object(vec![
            ("added".into(), Value::empty_object()),
            (
                "modified".into(),
                Value::Object(vec![("login".into(), Value::from(login))]),
            ),
            ("removed".into(), Value::empty_object()),
        ]),
    )
}

fn removed(id: i64) -> Event {
    Event::new(
        Category::Base,
        EventType::Removed,
        Some("SRVUsers".into()),
        Value::from(id),
        Value::empty_object(),
    )
}

#[tokio::test]
async fn initsync_then_base_events_are_applied_in_order_and_others_stepped_over() {
    let setup = Setup::jsonlines("").await;
    setup
        .send(&[
            // Before any initsync: already in the snapshot, never applied.
            modified(9, "before"),
            init_start(),
            user_added(Category::Initsync, 1),
            user_added(Category::Initsync, 2),
            init_stop(),
            modified(1, "ada"),
            user_added(Category::Initsync, 3), // another sequence's: stepped over
            removed(2),
        ])
        .await;
    let report = setup.run_once().await;
    assert!(report.initialized);
    assert_eq!(
        setup.applied(),
        [
            user_added(Category::Initsync, 1),
            user_added(Category::Initsync, 2),
            modified(1, "ada"),
            removed(2),
        ]
    );
    let status = Status::read(&setup.config, &engine(), 1000)
        .await
        .expect("status");
    assert_eq!(status.state.initstartoffset, Some(Offset::Int(1)));
    assert_eq!(status.state.initstopoffset, Some(Offset::Int(4)));
    assert_eq!(status.state.lastoffset, Some(Offset::Int(7)));
    assert_eq!(status.state.dataschema, Some(users_schema()));
    assert_eq!(status.behind, 0);

    // More events: the next run resumes right after the last one processed.
    setup.send(&[modified(1, "ada.l")]).await;
    let status = Status::read(&setup.config, &engine(), 1000)
        .await
        .expect("status");
    assert_eq!(status.behind, 1);
    assert_eq!(setup.run_once().await.applied, 1);
    assert_eq!(setup.applied().last(), Some(&modified(1, "ada.l")));
    assert_eq!(setup.applied().len(), 5);
}

#[tokio::test]
async fn the_last_complete_initsync_sequence_is_used_unless_told_the_first() {
    let sequences = [
        init_start(),
        user_added(Category::Initsync, 1),
        init_stop(),
        init_start(),
        user_added(Category::Initsync, 2),
        init_stop(),
        // Incomplete: never used.
        init_start(),
        user_added(Category::Initsync, 3),
    ];
    let last = Setup::jsonlines("").await;
    last.send(&sequences).await;
    last.run_once().await;
    assert_eq!(last.applied(), [user_added(Category::Initsync, 2)]);

    let first = Setup::jsonlines("  useFirstInitsyncSequence: true\n").await;
    first.send(&sequences).await;
    first.run_once().await;
    assert_eq!(first.applied(), [user_added(Category::Initsync, 1)]);
}

#[tokio::test]
async fn a_bus_without_a_complete_initsync_sequence_applies_nothing_yet() {
    let setup = Setup::jsonlines("").await;
    setup.send(&[modified(1, "x"), init_start()]).await;
    let report = setup.run_once().await;
    assert_eq!((report.applied, report.initialized), (0, false));
    setup
        .send(&[
            user_added(Category::Initsync, 1),
            init_stop(),
            modified(1, "y"),
        ])
        .await;
    setup.run_once().await;
    assert_eq!(
        setup.applied(),
        [user_added(Category::Initsync, 1), modified(1, "y")]
    );
}

#[tokio::test]
async fn failed_events_wait_in_the_error_queue_in_object_order_and_a_retry_drains_it() {
    // The command refuses user 2 until a marker file exists, and records
    // what it applied.
    let script = r#"ev=$(cat); case "$ev" in *'"objpkey": 2,'*) [ -e "$0.ok" ] || { echo "user 2 refused" >&2; exit 3; };; esac; printf '%s %s\n' "$HERMES_EVENTTYPE" "$(printf '%s' "$ev" | grep -o '"objpkey": [0-9]*' | grep -o '[0-9]*$')" >> "$0.out""#;
    let setup = Setup::command(script, "target").await;
    setup
        .send(&[
            init_start(),
            user_added(Category::Initsync, 1),
            user_added(Category::Initsync, 2),
            init_stop(),
            modified(2, "alan.t"), // waits behind the failed added
            modified(1, "ada.l"),
        ])
        .await;
    let report = setup.run_once().await;
    assert_eq!((report.applied, report.queued), (2, 2));
    let out = |setup: &Setup| std::fs::read_to_string(setup.path("target.out")).unwrap_or_default();
    assert_eq!(out(&setup), "added 1\nmodified 1\n");

    let status = Status::read(&setup.config, &engine(), 1000)
        .await
        .expect("status");
    let queue = &status.state.error_queue;
    assert_eq!(queue.len(), 2);
    assert_eq!(queue[0].offset, Offset::Int(2));
    assert!(
        queue[0].attempts >= 1,
        "tried, and maybe retried: {queue:?}"
    );
    assert!(
        queue[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("user 2 refused")),
        "{queue:?}"
    );
    assert_eq!(
        (
            queue[1].offset.clone(),
            queue[1].attempts,
            queue[1].error.clone()
        ),
        (Offset::Int(4), 0, None)
    );
    let shown = status.to_string();
    assert!(
        shown.contains("error queue:     2 events") && shown.contains("user 2 refused"),
        "{shown}"
    );

    // Still refused: the retry keeps both, in order.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = setup.run_once().await;
    assert_eq!(report.retried, 0);
    // Accepted now: the retry applies the object's events in their order.
    std::fs::write(setup.path("target.ok"), "").expect("marker");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = setup.run_once().await;
    assert_eq!(report.retried, 2);
    assert_eq!(out(&setup), "added 1\nmodified 1\nadded 2\nmodified 2\n");
    let status = Status::read(&setup.config, &engine(), 1000)
        .await
        .expect("status");
    assert!(status.state.error_queue.is_empty());
}

#[tokio::test]
async fn a_stopped_client_resumes_with_nothing_skipped_and_nothing_twice() {
    // A command target that takes 10 ms an event, so that each stop lands in
    // the middle of a batch; it appends each event as one line.
    let setup = Setup::command(
        r#"tr -d '\n' >> "$0"; echo >> "$0"; sleep 0.01"#,
        "applied.jsonl",
    )
    .await;
    let mut events = vec![init_start()];
    events.extend((1..=40).map(|id| user_added(Category::Initsync, id)));
    events.push(init_stop());
    events.extend((1..=40).map(|id| modified(id, "again")));
    setup.send(&events).await;
    let total = events.len() - 2;

    // Stop while it works, several times, and restart each time.
    let mut applied = 0;
    for _ in 0..3 {
        let mut client = Client::start(&setup.config, &engine())
            .await
            .expect("starts");
        let stop = Stop::new();
        let asker = stop.clone();
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            asker.set();
        });
        applied += client.run(false, &stop).await.expect("run").applied;
        client.stop().await.expect("stop");
        stopper.await.expect("stopper");
        assert_eq!(setup.applied().len(), applied);
    }
    assert!(
        0 < applied && applied < total,
        "the stops land in the middle: {applied} of {total} applied"
    );
    setup.run_once().await;
    let expected: Vec<Event> = events
        .into_iter()
        .filter(|e| !matches!(e.eventtype, EventType::InitStart | EventType::InitStop))
        .collect();
    assert_eq!(setup.applied(), expected);
}

#[tokio::test]
async fn a_target_replaced_by_a_symbolic_link_is_not_written_through() {
    let setup = Setup::jsonlines("").await;
    let mut events = vec![init_start()];
    events.push(user_added(Category::Initsync, 1));
    events.push(init_stop());
    setup.send(&events).await;
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let victim = elsewhere.path().join("victim");
    std::fs::write(&victim, "precious\n").expect("write");
    std::os::unix::fs::symlink(&victim, setup.path("applied.jsonl")).expect("symlink");

    let refused = Client::start(&setup.config, &engine()).await;
    let message = format!("{:#}", refused.err().expect("the target is refused"));
    assert!(message.contains("symbolic link"), "{message}");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "precious\n"
    );
}

#[tokio::test]
async fn a_client_resumes_after_retention_and_records_what_it_missed() {
    let mut setup = Setup::jsonlines("").await;
    setup.bus.settings["segment_max_bytes"] = serde_json::json!(4096);
    let logins = |from: usize, n: usize| -> Vec<Event> {
        (from..from + n)
            .map(|i| modified(1, &format!("login-{i}")))
            .collect()
    };
    let mut first = vec![init_start(), user_added(Category::Initsync, 1), init_stop()];
    first.extend(logins(0, 5));
    setup.send(&first).await;
    assert_eq!(setup.run_once().await.applied, 6);

    // While the client is away, more events come, and retention deletes the
    // segments holding the last one it processed and some it never read.
    setup.send(&logins(5, 200)).await;
    let log = setup.bus.dir.path().join("bus");
    let mut segments: Vec<_> = std::fs::read_dir(&log)
        .expect("the log")
        .map(|e| e.expect("entry").path())
        .collect();
    segments.sort();
    assert!(segments.len() > 4, "{segments:?}");
    let old = std::time::SystemTime::now() - Duration::from_secs(10 * 86_400);
    for segment in &segments[..segments.len() - 2] {
        std::fs::File::options()
            .write(true)
            .open(segment)
            .and_then(|f| f.set_modified(old))
            .expect("backdate");
    }
    let mut retained = setup.bus.settings.clone();
    retained["retention_in_days"] = serde_json::json!(1);
    let mut producer = hermes_host::Producer::create(setup.bus.plugin.clone(), &retained)
        .await
        .expect("create");
    producer.open().await.expect("retention runs");
    producer.close().await.expect("close");
    let oldest: i64 = segments[segments.len() - 2]
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n[..20].parse().ok())
        .expect("a segment name");

    // The client carries on from the oldest event kept, and says what it
    // missed: the events after its last one up to there.
    let report = setup.run_once().await;
    assert_eq!(report.applied as i64, 208 - oldest);
    assert_eq!(
        setup.applied().last(),
        Some(&modified(1, "login-204")),
        "applied to the end"
    );
    let status = Status::read(&setup.config, &engine(), 1000)
        .await
        .expect("status");
    assert_eq!(status.state.lastoffset, Some(Offset::Int(207)));
    assert_eq!(status.state.gaps.len(), 1, "{:?}", status.state.gaps);
    assert!(
        status.state.gaps[0].starts_with(&format!("offsets 8 to {}", oldest - 1)),
        "{:?}",
        status.state.gaps
    );
    assert!(status.to_string().contains("gaps:            1 reported"));
}

#[tokio::test]
async fn an_event_the_target_keeps_refusing_is_quarantined_with_its_object_and_the_rest_goes_on() {
    // The command refuses user 2 for ever, and records what it applied.
    let script = r#"ev=$(cat); case "$ev" in *'"objpkey": 2,'*) echo "user 2 refused" >&2; exit 3;; esac; printf '%s %s\n' "$HERMES_EVENTTYPE" "$(printf '%s' "$ev" | grep -o '"objpkey": [0-9]*' | grep -o '[0-9]*$')" >> "$0.out""#;
    let setup = Setup::command_with(script, "target", "  errorQueue_maxAttempts: 2\n").await;
    setup
        .send(&[
            init_start(),
            user_added(Category::Initsync, 1),
            user_added(Category::Initsync, 2),
            init_stop(),
            modified(2, "alan.t"), // waits behind the failed added
            modified(1, "ada.l"),
        ])
        .await;
    // The first retry comes at the next step: the second attempt fails too,
    // and the event goes to the dead letter with the one behind it.
    let report = setup.run_once().await;
    assert_eq!(
        (report.applied, report.queued, report.quarantined),
        (2, 2, 2),
        "{report}"
    );
    // Later events of that object follow it there; other objects go on.
    setup.send(&[removed(2), modified(1, "ada.n")]).await;
    let report = setup.run_once().await;
    assert_eq!((report.applied, report.quarantined), (1, 1), "{report}");
    let out = std::fs::read_to_string(setup.path("target.out")).expect("applied");
    assert_eq!(out, "added 1\nmodified 1\nmodified 1\n");

    let status = Status::read(&setup.config, &engine(), 1000)
        .await
        .expect("status");
    assert!(
        status.state.error_queue.is_empty(),
        "{:?}",
        status.state.error_queue
    );
    let queued: Vec<_> = status
        .dead_letter
        .iter()
        .map(|q| match q {
            Quarantined::Event(queued) => queued,
            other => panic!("an event the target refused: {other:?}"),
        })
        .collect();
    let quarantined: Vec<_> = queued
        .iter()
        .map(|q| (q.offset.clone(), q.event.eventtype, q.attempts))
        .collect();
    assert_eq!(
        quarantined,
        [
            (Offset::Int(2), EventType::Added, 2),
            (Offset::Int(4), EventType::Modified, 0),
            (Offset::Int(6), EventType::Removed, 0),
        ]
    );
    assert!(
        queued[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("user 2 refused")),
        "{:?}",
        status.dead_letter
    );
    let shown = status.to_string();
    assert!(shown.contains("dead letter:     3 events"), "{shown}");
}

/// A client whose plugin gets 16 MiB, and a bus holding an event of 24 MiB
/// between two small ones: the producer's plugin (128 MiB) writes it, the
/// client's cannot read it, and fails each time it meets it.
async fn unreadable_record(extra: &str) -> (Setup, Vec<Offset>, Event) {
    let setup = Setup::jsonlines(extra).await;
    let text = std::fs::read_to_string(&setup.config).expect("config");
    let text = text.replacen("        dirs:", "        memory_mib: 16\n        dirs:", 1);
    std::fs::write(&setup.config, text).expect("config");
    let mut huge = user_added(Category::Base, 2);
    huge.objattrs = Value::Object(vec![("photo".into(), Value::from("x".repeat(24 << 20)))]);
    let offsets = setup
        .send(&[
            init_start(),
            user_added(Category::Initsync, 1),
            init_stop(),
            modified(1, "ada.l"),
            huge.clone(),
            modified(1, "ada.n"),
        ])
        .await;
    (setup, offsets, huge)
}

#[tokio::test]
async fn a_record_the_plugin_cannot_read_is_quarantined_by_its_offset_and_the_rest_goes_on() {
    let (setup, offsets, huge) = unreadable_record("  errorQueue_maxAttempts: 2\n").await;
    let report = setup.run_once().await;
    assert_eq!((report.applied, report.quarantined), (3, 1), "{report}");
    assert_eq!(
        setup.applied(),
        [
            user_added(Category::Initsync, 1),
            modified(1, "ada.l"),
            modified(1, "ada.n")
        ]
    );

    let status = Status::read(&setup.config, &engine(), 1000)
        .await
        .expect("status");
    assert_eq!(status.state.lastoffset.as_ref(), offsets.last());
    match &status.dead_letter[..] {
        [
            Quarantined::Unreadable {
                offset,
                reason,
                attempts: 2,
            },
        ] => {
            assert_eq!(offset, &offsets[4]);
            assert!(reason.contains("memory_mib"), "{reason}");
        }
        other => panic!("the record at offset 4, unread: {other:?}"),
    }
    let shown = status.to_string();
    assert!(shown.contains("offset 4 (unreadable)"), "{shown}");

    // The next run starts after it.
    setup.send(&[modified(1, "ada.m")]).await;
    let report = setup.run_once().await;
    assert_eq!((report.applied, report.quarantined), (1, 0), "{report}");

    // The last record on the bus: the cache stands after it, so the run
    // after that meets it no more.
    let last = setup.send(&[huge]).await;
    let report = setup.run_once().await;
    assert_eq!(report.quarantined, 1, "{report}");
    let status = Status::read(&setup.config, &engine(), 1000)
        .await
        .expect("status");
    assert_eq!(status.state.lastoffset.as_ref(), last.last());
    assert_eq!(status.behind, 0);
    let report = setup.run_once().await;
    assert_eq!(report.quarantined, 0, "{report}");
}

#[tokio::test]
async fn without_max_attempts_a_record_the_plugin_cannot_read_stops_the_client_there() {
    let (setup, offsets, _) = unreadable_record("").await;
    for _ in 0..2 {
        let mut client = Client::start(&setup.config, &engine())
            .await
            .expect("client starts");
        let error = client
            .run(true, &Stop::new())
            .await
            .expect_err("stops at the record");
        let message = format!("{error:#}");
        assert!(
            message.contains("after offset 3")
                && message.contains("3 attempts")
                && message.contains("errorQueue_maxAttempts")
                && message.contains("memory_mib"),
            "{message}"
        );
        assert_eq!(client.state().lastoffset.as_ref(), Some(&offsets[3]));
    }
    assert_eq!(
        setup.applied(),
        [user_added(Category::Initsync, 1), modified(1, "ada.l")]
    );
    let status = Status::read(&setup.config, &engine(), 1000)
        .await
        .expect("status reads past the record");
    assert!(status.dead_letter.is_empty());
    assert_eq!(status.behind, 2, "the record and the event after it");
}
