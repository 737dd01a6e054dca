//! `hermes-wasm serve` end to end: the Event Hubs endpoint from its YAML
//! file, driven by the real Event Hubs SDK for Python, killed (`kill -9`)
//! and started again: what it stored stays, sequence numbers, offsets and
//! checkpoints carry on. And the errors its configuration can have.

#[path = "../../hermes-event-hubs/tests/support/sdk.rs"]
mod sdk;
mod support;

use std::io::BufRead;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Child;

use local_servers::AzuriteBlob;
use sdk::{KEY, connection_string, sdk};
use serde_json::{Value, json};
use support::{hermes_wasm, spawn, stderr, terminate};

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Writes `serve.yml` in `dir`: `listen` on `port`, the policy `both` (send
/// and listen) with [`KEY`], `hub1` as `hub` says (`{partitions: 4}`), and
/// `rest`.
fn configure(dir: &Path, port: u16, hub: &str, rest: &str) {
    std::fs::write(
        dir.join("serve.yml"),
        format!(
            "listen: 127.0.0.1:{port}\n\
             policies:\n  both: {{key: \"{KEY}\", rights: [send, listen]}}\n\
             hubs:\n  hub1: {hub}\n{rest}"
        ),
    )
    .expect("write serve.yml");
}

/// Starts `serve` in `dir` and waits until it says it serves.
fn start(dir: &Path) -> Child {
    let mut child = spawn(dir, &["serve", "--config", "serve.yml"]);
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("reads");
    assert!(
        line.starts_with("serving Event Hubs on amqp://127.0.0.1:"),
        "{line}"
    );
    child
}

async fn run(script: &str, port: u16, args: &[&str]) -> Value {
    let connection = connection_string(port, "both", KEY);
    let mut all = vec![connection.as_str(), "hub1"];
    all.extend_from_slice(args);
    let (status, answer) = sdk(script, &all).await;
    assert_eq!(status, 0, "{script} {args:?}: {answer}");
    answer
}

fn bodies(answer: &Value) -> Vec<String> {
    answer["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["body"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn what_serve_stored_outlives_a_kill_and_receivers_resume_where_they_were() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    configure(
        dir.path(),
        port,
        "{partitions: 4, consumer_groups: [audit]}",
        "",
    );
    let azurite = tokio::task::spawn_blocking(AzuriteBlob::start)
        .await
        .expect("joined");
    let checkpointed = |count: usize| {
        json!({
            "count": count,
            "idle": 10,
            "checkpoint": {"connection": azurite.connection_string(), "container": "hub1"},
        })
        .to_string()
    };

    let mut serve = start(dir.path());
    let sent = json!([
        {"bodies": ["c0", "c1", "c2"], "partition_id": "0"},
        {"bodies": ["k0"], "partition_key": "user-7"},
    ]);
    run("send_events.py", port, &[&sent.to_string()]).await;
    let first = run("receive.py", port, &[&checkpointed(3)]).await;
    let before = run("management.py", port, &[]).await;
    // Partition 0's events, as received before the kill.
    let on_0 = |answer: &Value| -> Vec<Value> {
        answer["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["partition"] == "0")
            .cloned()
            .collect()
    };
    let received_0 = on_0(&first);
    assert!(received_0.len() >= 2, "{first}");

    // kill -9, and start again on the same files.
    serve.kill().expect("killed");
    serve.wait().expect("reaped");
    let serve = start(dir.path());

    // The partitions are as they were: the same last events, the same
    // offsets, the same enqueued times.
    let after = run("management.py", port, &[]).await;
    assert_eq!(after["partitions"], before["partitions"]);
    assert_eq!(
        before["partitions"]["0"]["last_enqueued_sequence_number"],
        2
    );

    // The checkpointed receive resumes after its checkpoints: the rest of
    // the four events, nothing twice.
    let rest = run(
        "receive.py",
        port,
        &[&checkpointed(
            4 - first["events"].as_array().map_or(0, Vec::len),
        )],
    )
    .await;
    let mut all: Vec<String> = bodies(&first).into_iter().chain(bodies(&rest)).collect();
    all.sort();
    assert_eq!(all, ["c0", "c1", "c2", "k0"], "{first} {rest}");

    // New events go on with the next sequence number; an offset given
    // before the restart still names its event.
    run(
        "send_events.py",
        port,
        &[&json!([{"bodies": ["c3"], "partition_id": "0"}]).to_string()],
    )
    .await;
    let from_c1 = json!({"partition_id": "0", "idle": 1, "offset": received_0[1]["offset"]});
    let events = run("receive.py", port, &[&from_c1.to_string()]).await;
    assert_eq!(bodies(&events), ["c2", "c3"]);
    assert_eq!(events["events"][1]["sequence_number"], 3);
    if let Some(c2) = received_0.get(2) {
        assert_eq!(events["events"][0]["offset"], c2["offset"]);
    }

    // SIGTERM: a clean stop.
    let output = terminate(serve);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_bad_configuration_is_one_line_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = format!("policies:\n  both: {{key: \"{KEY}\", rights: [send]}}\n");
    for (yaml, says) in [
        (
            format!("{policy}hubs:\n  hub1: {{partitions: 0}}\n"),
            "hubs.hub1: 0 partitions: a hub has 1 to 1024",
        ),
        (
            format!("{policy}hubs:\n  hub1: {{partitions: 2, groups: [a]}}\n"),
            "hubs.hub1.groups: unknown field `groups`",
        ),
        (
            "policies: {}\nhubs:\n  hub1: {partitions: 2}\n".to_owned(),
            "policies: no policy",
        ),
        (
            format!("{policy}hubs:\n  hub1: {{partitions: 2}}\nlisten: nowhere\n"),
            "listen: `nowhere` is not an address and port",
        ),
        (
            format!("{policy}hubs:\n  hub1: {{partitions: 2}}\nmax_message_size: 10\n"),
            "max_message_size: 10 is out of range",
        ),
        (
            format!(
                "{policy}hubs:\n  hub1: {{partitions: 2}}\nbus:\n  nosuch: {{settings: {{}}}}\n"
            ),
            "bus.nosuch: no built-in plugin `nosuch`",
        ),
    ] {
        std::fs::write(dir.path().join("serve.yml"), &yaml).expect("write");
        let output = hermes_wasm(dir.path(), &["serve", "--config", "serve.yml"]);
        let error = stderr(&output);
        assert!(!output.status.success(), "{yaml}");
        assert_eq!(error.lines().count(), 1, "{error}");
        assert!(
            error.starts_with("hermes-wasm: error: serve.yml: ") && error.contains(says),
            "{yaml}\n{error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn any_bus_plugin_can_keep_the_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let data = dir.path().join("buses");
    std::fs::create_dir(&data).expect("mkdir");
    configure(
        dir.path(),
        port,
        "{partitions: 2}",
        &format!(
            "bus:\n  sqlite:\n    settings:\n      uri: \"{data}/{{hub}}-{{partition}}.sqlite\"\n      \
             retention_in_days: 7\n    dirs: [buses]\n",
            data = data.display()
        ),
    );
    let serve = start(dir.path());
    let sent = json!([{"bodies": ["q0", "q1"], "partition_id": "1"}]);
    run("send_events.py", port, &[&sent.to_string()]).await;
    let events = run("receive.py", port, &[r#"{"partition_id": "1", "idle": 1}"#]).await;
    assert_eq!(bodies(&events), ["q0", "q1"]);
    // The sqlite bus's own offsets, one database per partition.
    assert_eq!(events["events"][1]["sequence_number"], 1);
    assert!(data.join("hub1-0.sqlite").is_file() && data.join("hub1-1.sqlite").is_file());
    let output = terminate(serve);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// The event-hubs bus plugin against `serve`: what it sends is what any
/// Event Hubs reader gets (the real SDK here: the hermes JSON as the body,
/// byte for byte, the category as an application property, sequence
/// numbers as the plugin's offsets), and the same producer and consumer
/// instances ride out `serve` killed (`kill -9`) and started again, nothing
/// lost, nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn the_event_hubs_plugin_speaks_to_sdk_readers_and_rides_out_a_restart() {
    use hermes_event::Category;
    use hermes_host::{AmqpAllow, BusError, Consumer, Grants, Offset, Producer};
    use hermes_wasm_tests::{guests, load, user_added, users};

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    configure(dir.path(), port, "{partitions: 4}", "");
    let mut serve = start(dir.path());

    let grants = Grants {
        amqp: vec![AmqpAllow::parse(&format!("amqp://127.0.0.1:{port}")).expect("a URL")],
        ..Grants::default()
    };
    let plugin = load(guests::EVENT_HUBS, &[], grants).await;
    let settings = json!({
        "connection_string": format!("{};EntityPath=hub1", connection_string(port, "both", KEY)),
        "partition": "2",
    });
    let mut producer = Producer::create(plugin.clone(), &settings)
        .await
        .expect("builds");
    producer.open().await.expect("opens");
    let mut events = users(Category::Initsync, 1, 2);
    events.push(user_added(Category::Base, 3));
    let offsets = producer.send_batch(&events).await.expect("sent");
    assert_eq!(offsets, [Offset::Int(0), Offset::Int(1), Offset::Int(2)]);

    let read = run("receive.py", port, &[r#"{"partition_id": "2", "idle": 1}"#]).await;
    let read = read["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(read.len(), 3, "{read:?}");
    for (i, (got, sent)) in read.iter().zip(&events).enumerate() {
        assert_eq!(got["body"], sent.to_json(), "event {i}");
        assert_eq!(got["sequence_number"], i);
        let category = if i < 2 { "initsync" } else { "base" };
        assert_eq!(
            got["properties"],
            json!({"category": category}),
            "event {i}"
        );
    }

    let mut consumer = Consumer::create(plugin.clone(), &settings)
        .await
        .expect("builds");
    consumer.open().await.expect("opens");
    consumer.set_timeout(Some(std::time::Duration::from_millis(500)));
    consumer
        .seek_after(&Offset::Int(0))
        .await
        .expect("seek after the first event");
    let second = consumer.next().await.expect("next").expect("an event");
    assert_eq!(second.offset, Offset::Int(1));

    // kill -9: the producer's next send is unavailable (it may or may not
    // be stored: hermes sends it again), then carries on once serve is back.
    serve.kill().expect("killed");
    serve.wait().expect("reaped");
    let fourth = user_added(Category::Base, 4);
    let down = producer.send(&fourth).await.expect_err("serve is down");
    assert!(
        matches!(down.bus_error(), Some(BusError::Unavailable(_))),
        "{down}"
    );
    let serve = start(dir.path());
    let offset = producer
        .send(&fourth)
        .await
        .expect("sent once serve is back");
    assert_eq!(offset, Offset::Int(3));

    // The consumer reads on where it was: the third event, then the fourth.
    let mut rest = Vec::new();
    let mut outages = 0;
    loop {
        match consumer.next().await {
            Ok(Some(consumed)) => rest.push(consumed),
            Ok(None) => break,
            Err(e) if e.is_retryable() && outages < 20 => outages += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        rest.iter().map(|c| c.offset.clone()).collect::<Vec<_>>(),
        [Offset::Int(2), Offset::Int(3)]
    );
    assert_eq!(rest[1].event().expect("a hermes event"), fourth);

    producer.close().await.expect("closes");
    let output = terminate(serve);
    assert!(output.status.success(), "{}", stderr(&output));
}
