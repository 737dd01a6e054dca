//! Receiving from the endpoint with the real Event Hubs SDK for Python:
//! the quickstart's receive, every starting position, the partitions'
//! properties, epochs, the sync clients and checkpoints in Azurite. Each
//! endpoint keeps its partitions in the built-in file-log bus.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use local_servers::AzuriteBlob;
use serde_json::{Value, json};
use support::file_log;
use support::sdk::{KEY, Running, connection_string, endpoint_with, sdk};

async fn served(dir: &std::path::Path) -> Running {
    endpoint_with(None, Some(file_log(dir).await)).await
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sends `batches` (see `tests/sdk/send_events.py`) with the async client,
/// or the sync one.
async fn send(port: u16, batches: Value, sync: bool) {
    let connection = connection_string(port, "both", KEY);
    let batches = batches.to_string();
    let mut args = vec![connection.as_str(), "hub1", batches.as_str()];
    if sync {
        args.push("sync");
    }
    let (status, answer) = sdk("send_events.py", &args).await;
    assert_eq!(status, 0, "{answer}");
}

/// Receives with `options` (see `tests/sdk/receive.py`): the script's exit
/// status and answer.
async fn try_receive(port: u16, options: Value) -> (i32, Value) {
    try_receive_as(port, "both", options).await
}

/// [`try_receive`], signed with `policy`.
async fn try_receive_as(port: u16, policy: &str, options: Value) -> (i32, Value) {
    let connection = connection_string(port, policy, KEY);
    sdk("receive.py", &[&connection, "hub1", &options.to_string()]).await
}

/// The events received with `options`.
async fn receive(port: u16, options: Value) -> Vec<Value> {
    let (status, answer) = try_receive(port, options.clone()).await;
    assert_eq!(status, 0, "{options}: {answer}");
    answer["events"].as_array().cloned().unwrap_or_default()
}

fn e4_offset(all: &[Value]) -> Value {
    all[4]["offset"].clone()
}

fn bodies(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["body"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quickstarts_receive_gets_every_event_with_what_the_sdk_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = served(dir.path()).await;
    let before = now_ms();
    send(
        endpoint.port,
        json!([
            {"bodies": ["a0", "a1", "a2"], "partition_id": "0"},
            {"bodies": ["k0", "k1"], "partition_key": "user-7"},
            {"bodies": ["s0"], "partition_id": "3", "alone": true},
        ]),
        false,
    )
    .await;
    let after = now_ms();
    // As the quickstart receives: every partition, from the start.
    let events = receive(endpoint.port, json!({"count": 6, "idle": 10})).await;
    assert_eq!(events.len(), 6, "{events:?}");

    let of = |p: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["partition"] == p)
            .cloned()
            .collect()
    };
    for p in ["0", "1", "2", "3"] {
        let events = of(p);
        // Each partition's events in order, numbered from 0, each at its
        // own offset, enqueued while they were sent.
        let numbers: Vec<i64> = events
            .iter()
            .filter_map(|e| e["sequence_number"].as_i64())
            .collect();
        assert_eq!(numbers, (0..events.len() as i64).collect::<Vec<_>>());
        let mut offsets: Vec<&str> = events.iter().filter_map(|e| e["offset"].as_str()).collect();
        assert_eq!(offsets.len(), events.len(), "{events:?}");
        offsets.dedup();
        assert_eq!(offsets.len(), events.len(), "{events:?}");
        for event in &events {
            let enqueued = event["enqueued_time_ms"].as_i64().expect("a time");
            assert!((before..=after).contains(&enqueued), "{event}");
        }
    }
    assert_eq!(bodies(&of("0"))[..3], ["a0", "a1", "a2"]);
    assert_eq!(bodies(&of("3")).last(), Some(&"s0"));
    let keyed: Vec<&Value> = events
        .iter()
        .filter(|e| e["body"].as_str().is_some_and(|b| b.starts_with('k')))
        .collect();
    assert_eq!(keyed.len(), 2);
    assert_eq!(keyed[0]["partition"], keyed[1]["partition"]);
    assert!(keyed.iter().all(|e| e["partition_key"] == "user-7"));
    assert!(
        events
            .iter()
            .filter(|e| e["partition_key"] == "user-7")
            .count()
            == 2
    );

    // The partitions' properties tell the same last events.
    let (status, answer) = sdk(
        "management.py",
        &[&connection_string(endpoint.port, "both", KEY), "hub1"],
    )
    .await;
    assert_eq!(status, 0, "{answer}");
    for p in ["0", "1", "2", "3"] {
        let events = of(p);
        let properties = &answer["partitions"][p];
        match events.last() {
            Some(last) => assert_eq!(
                properties,
                &json!({
                    "begin_sequence_number": 0,
                    "last_enqueued_sequence_number": last["sequence_number"],
                    "last_enqueued_offset": last["offset"],
                    "last_enqueued_time_ms": last["enqueued_time_ms"],
                    "is_empty": false,
                }),
                "partition {p}"
            ),
            None => assert_eq!(properties["is_empty"], true, "partition {p}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_starts_where_its_position_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = served(dir.path()).await;
    let port = endpoint.port;
    let to_1 = |bodies: &[&str]| json!([{"bodies": bodies, "partition_id": "1"}]);
    send(port, to_1(&["e0", "e1", "e2"]), false).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    send(port, to_1(&["e3", "e4"]), false).await;
    let from = |position: Value| {
        let mut options = json!({"partition_id": "1", "idle": 1});
        if let (Some(options), Some(position)) = (options.as_object_mut(), position.as_object()) {
            options.extend(position.clone());
        }
        options
    };
    let all = receive(port, from(json!({}))).await;
    assert_eq!(bodies(&all), ["e0", "e1", "e2", "e3", "e4"]);
    // A batch is enqueued at one time; the next one later.
    let times: Vec<i64> = all
        .iter()
        .filter_map(|e| e["enqueued_time_ms"].as_i64())
        .collect();
    assert!(times[0] == times[2] && times[2] < times[3], "{times:?}");

    let e1 = all[1]["offset"].clone();
    for (position, expected) in [
        (json!({"offset": e1}), &["e2", "e3", "e4"][..]),
        (
            json!({"offset": e1, "inclusive": true}),
            &["e1", "e2", "e3", "e4"],
        ),
        (json!({"offset": "-1"}), &["e0", "e1", "e2", "e3", "e4"]),
        (json!({"sequence_number": 3}), &["e4"]),
        (
            json!({"sequence_number": 3, "inclusive": true}),
            &["e3", "e4"],
        ),
        (json!({"enqueued_time_ms": times[0]}), &["e3", "e4"]),
        (
            json!({"enqueued_time_ms": times[0], "inclusive": true}),
            &["e0", "e1", "e2", "e3", "e4"],
        ),
        (json!({"sequence_number": 4}), &[]),
        (json!({"offset": e4_offset(&all)}), &[]),
    ] {
        let events = receive(port, from(position.clone())).await;
        assert_eq!(bodies(&events), expected, "{position}");
    }

    // `@latest`: only what comes after the receiver attached.
    let latest = tokio::spawn(receive(
        port,
        from(json!({"latest": true, "count": 1, "idle": 30})),
    ));
    endpoint.wait_for_receivers("$Default", 1, 1).await;
    send(port, to_1(&["e5"]), false).await;
    let events = latest.await.expect("joined");
    assert_eq!(bodies(&events), ["e5"]);
    assert_eq!(events[0]["sequence_number"], 5);
    endpoint.wait_for_receivers("$Default", 1, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_receiver_gets_each_event_as_it_is_stored_and_tracks_the_last() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = served(dir.path()).await;
    let port = endpoint.port;
    let waiting = tokio::spawn(receive(
        port,
        json!({"partition_id": "2", "consumer_group": "AUDIT", "count": 4, "idle": 30,
               "track": true}),
    ));
    endpoint.wait_for_receivers("audit", 2, 1).await;
    for body in ["w0", "w1"] {
        send(
            port,
            json!([{"bodies": [body], "partition_id": "2"}]),
            false,
        )
        .await;
    }
    send(
        port,
        json!([{"bodies": ["w2", "w3"], "partition_id": "2"}]),
        false,
    )
    .await;
    let events = waiting.await.expect("joined");
    assert_eq!(bodies(&events), ["w0", "w1", "w2", "w3"]);
    // Each event tells the partition's last event when it was sent: never
    // before the event itself, the last one itself at the end.
    for event in &events {
        let last = &event["last_enqueued"];
        assert!(
            last["sequence_number"].as_i64() >= event["sequence_number"].as_i64(),
            "{event}"
        );
    }
    let last = &events[3];
    assert_eq!(last["last_enqueued"]["sequence_number"], 3);
    assert_eq!(last["last_enqueued"]["offset"], last["offset"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_consumer_group_or_partition_is_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = served(dir.path()).await;
    // The SDK checks a partition id against the ids the endpoint gives.
    for (options, says) in [
        (
            json!({"partition_id": "0", "consumer_group": "nobody", "idle": 2}),
            "no such entity",
        ),
        (
            json!({"partition_id": "4", "idle": 2}),
            "The eventhub has partitions: ['0', '1', '2', '3']",
        ),
    ] {
        let (status, answer) = try_receive(endpoint.port, options.clone()).await;
        assert_eq!(status, 3, "{options}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| m.contains(says)),
            "{options}: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_epoch_takes_the_partition_and_an_older_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = served(dir.path()).await;
    let port = endpoint.port;
    send(
        port,
        json!([{"bodies": ["p0", "p1"], "partition_id": "0"}]),
        false,
    )
    .await;
    // Each receives until it has waited `idle` seconds for an event.
    let on_0 =
        |epoch: i64, idle: u32| json!({"partition_id": "0", "owner_level": epoch, "idle": idle});
    let first = tokio::spawn(try_receive(port, on_0(1, 30)));
    endpoint.wait_for_receivers("$Default", 0, 1).await;
    let second = tokio::spawn(try_receive(port, on_0(2, 8)));
    // The first is detached with `amqp:link:stolen`, having had its events.
    let (status, answer) = first.await.expect("joined");
    assert_eq!(status, 3, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("link:stolen") || message.contains("epoch 2"),
        "{answer}"
    );
    assert_eq!(
        bodies(answer["events"].as_array().expect("events")),
        ["p0", "p1"]
    );
    endpoint.wait_for_receivers("$Default", 0, 1).await;
    // A lower epoch is refused while the second holds the partition.
    let (status, answer) = try_receive(port, on_0(1, 2)).await;
    assert_eq!(status, 3, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("higher epoch 2")),
        "{answer}"
    );
    let (status, answer) = second.await.expect("joined");
    assert_eq!(status, 0, "{answer}");
    assert_eq!(
        bodies(answer["events"].as_array().expect("events")),
        ["p0", "p1"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sync_clients_send_and_receive_as_the_async_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = served(dir.path()).await;
    send(
        endpoint.port,
        json!([
            {"bodies": ["y0", "y1"], "partition_id": "2"},
            {"bodies": ["y2"], "partition_id": "2", "alone": true},
        ]),
        true,
    )
    .await;
    let events = receive(
        endpoint.port,
        json!({"partition_id": "2", "idle": 2, "sync": true}),
    )
    .await;
    assert_eq!(bodies(&events), ["y0", "y1", "y2"]);
    let numbers: Vec<i64> = events
        .iter()
        .filter_map(|e| e["sequence_number"].as_i64())
        .collect();
    assert_eq!(numbers, [0, 1, 2]);
    let events = receive(
        endpoint.port,
        json!({"partition_id": "2", "idle": 2, "sync": true, "sequence_number": 0}),
    )
    .await;
    assert_eq!(bodies(&events), ["y1", "y2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpointed_receive_resumes_right_after_the_checkpointed_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = served(dir.path()).await;
    let azurite = tokio::task::spawn_blocking(AzuriteBlob::start)
        .await
        .expect("joined");
    let port = endpoint.port;
    send(
        port,
        json!([{"bodies": ["c0", "c1", "c2"], "partition_id": "0"}]),
        false,
    )
    .await;
    // As the quickstart's recv.py: every partition from "-1", each event
    // checkpointed in the blob store.
    let checkpointed = |count: usize| {
        json!({
            "count": count,
            "idle": 10,
            "checkpoint": {"connection": azurite.connection_string(), "container": "checkpoints"},
        })
    };
    let events = receive(port, checkpointed(2)).await;
    assert_eq!(bodies(&events), ["c0", "c1"]);
    // Run again, it goes on after the checkpoint, not from "-1".
    let events = receive(port, checkpointed(1)).await;
    assert_eq!(bodies(&events), ["c2"]);
    send(
        port,
        json!([{"bodies": ["c3"], "partition_id": "0"}]),
        false,
    )
    .await;
    let events = receive(port, checkpointed(1)).await;
    assert_eq!(bodies(&events), ["c3"]);
    assert_eq!(events[0]["sequence_number"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_without_listen_cannot_receive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = served(dir.path()).await;
    send(
        endpoint.port,
        json!([{"bodies": ["secret"], "partition_id": "0"}]),
        false,
    )
    .await;
    let (status, answer) = try_receive_as(
        endpoint.port,
        "send",
        json!({"partition_id": "0", "idle": 2}),
    )
    .await;
    assert_eq!(status, 3, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("'Listen' claim(s) are required")),
        "{answer}"
    );
    assert_eq!(answer["events"], json!([]));
    // With listen, the same event is there.
    let (status, answer) = try_receive_as(
        endpoint.port,
        "listen",
        json!({"partition_id": "0", "idle": 1}),
    )
    .await;
    assert_eq!(status, 0, "{answer}");
    assert_eq!(answer["events"][0]["body"], "secret");
}
