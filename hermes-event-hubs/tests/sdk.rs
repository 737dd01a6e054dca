//! The endpoint driven by the real Event Hubs SDK for Python
//! (`azure-eventhub` 5.15.1, in the virtual environment
//! `tests/install-deps.sh` makes), on a free loopback port.

mod support;

use hermes_event_hubs::endpoint::{Config, Endpoint, TlsFiles};
use hermes_event_hubs::partition::{BusTemplate, Partition, envelope};
use support::file_log;
use support::sdk::{KEY, connection_string, endpoint, endpoint_with, sdk};

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_reads_a_hubs_properties_with_any_policy_that_may() {
    let port = endpoint().await;
    for policy in ["both", "listen", "manage"] {
        let (status, answer) = sdk(
            "management.py",
            &[&connection_string(port, policy, KEY), "hub1"],
        )
        .await;
        assert_eq!(status, 0, "{policy}: {answer}");
        let mut answer = answer;
        let partitions = answer
            .as_object_mut()
            .and_then(|a| a.remove("partitions"))
            .expect("partitions");
        // No bus: every partition is empty, as the SDK reads it.
        for id in ["0", "1", "2", "3"] {
            assert_eq!(
                partitions[id],
                serde_json::json!({
                    "begin_sequence_number": 0,
                    "last_enqueued_sequence_number": -1,
                    "last_enqueued_offset": "-1",
                    "last_enqueued_time_ms": 0,
                    "is_empty": true,
                }),
                "{policy}"
            );
        }
        assert_eq!(
            answer,
            serde_json::json!({
                "name": "hub1",
                "created_at": "2023-11-14T22:13:20+00:00",
                "partition_ids": ["0", "1", "2", "3"],
                "ids": ["0", "1", "2", "3"],
            }),
            "{policy}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_or_an_unknown_policy_is_refused_as_the_service_refuses_it() {
    let port = endpoint().await;
    for (policy, key, says) in [
        (
            "both",
            "d3Jvbmc=",
            "InvalidSignature: the token has an invalid signature",
        ),
        (
            "nobody",
            KEY,
            "InvalidSignature: no shared access policy named 'nobody'",
        ),
    ] {
        let (status, answer) = sdk(
            "management.py",
            &[&connection_string(port, policy, key), "hub1"],
        )
        .await;
        assert_eq!(status, 3, "{answer}");
        assert_eq!(answer["error"], "AuthenticationError", "{answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("Status code: 401") && message.contains(says),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_tls_the_sdk_connects_as_to_the_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    let (certificate, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&certificate, certified.cert.pem()).expect("write");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write");
    let port = endpoint_with(
        Some(TlsFiles {
            certificate: certificate.clone(),
            key,
        }),
        None,
    )
    .await
    .port;
    // No `UseDevelopmentEmulator`: the SDK speaks TLS, and checks the
    // endpoint's certificate.
    let connection =
        format!("Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=both;SharedAccessKey={KEY}");
    let endpoint = format!("sb://127.0.0.1:{port}");
    let ca = certificate.display().to_string();
    let (status, answer) = sdk("management.py", &[&connection, "hub1", &ca, &endpoint]).await;
    assert_eq!(status, 0, "{answer}");
    assert_eq!(answer["ids"], serde_json::json!(["0", "1", "2", "3"]));

    // Plain AMQP to a TLS endpoint: that connection fails, the endpoint
    // serves on.
    let (status, answer) = sdk(
        "management.py",
        &[&connection_string(port, "both", KEY), "hub1"],
    )
    .await;
    assert_eq!(status, 3, "{answer}");
    let (status, _) = sdk("management.py", &[&connection, "hub1", &ca, &endpoint]).await;
    assert_eq!(status, 0);
}

#[tokio::test]
async fn unreadable_tls_files_are_one_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (certificate, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&certificate, "not a certificate").expect("write");
    let config = Config {
        tls: Some(TlsFiles {
            certificate: certificate.clone(),
            key,
        }),
        ..Config::default()
    };
    let error = Endpoint::bind("127.0.0.1:0".parse().expect("address"), config)
        .await
        .err()
        .expect("refused");
    assert!(
        error
            .to_string()
            .starts_with(&certificate.display().to_string()),
        "{error}"
    );
}

/// Each partition's events, as stored: (sequence number, message bytes,
/// partition key).
async fn stored(bus: &BusTemplate, partitions: u32) -> Vec<Vec<(i64, Vec<u8>, Option<String>)>> {
    let mut all = Vec::new();
    for id in 0..partitions {
        let partition = Partition::open(bus, "hub1", id).await.expect("opens");
        let mut reader = partition.reader().await.expect("a reader");
        reader.seek_to_beginning().await.expect("seek");
        let events = reader.next_batch(100).await.expect("read");
        all.push(
            events
                .iter()
                .map(|c| {
                    let e = envelope(&reader.parse(c).expect("an event")).expect("an envelope");
                    (e.sequence_number, e.message, e.partition_key)
                })
                .collect(),
        );
    }
    all
}

fn holds(message: &[u8], text: &str) -> bool {
    message.windows(text.len()).any(|w| w == text.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quickstarts_sends_are_stored_in_the_partitions_they_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = file_log(dir.path()).await;
    let port = endpoint_with(None, Some(bus.clone())).await.port;
    let (status, answer) = sdk("send.py", &[&connection_string(port, "both", KEY), "hub1"]).await;
    assert_eq!(status, 0, "{answer}");
    // create_batch reads the endpoint's message size limit.
    assert_eq!(answer["max_size_in_bytes"], 1024 * 1024);

    let partitions = stored(&bus, 4).await;
    let texts = |p: usize| -> Vec<String> {
        partitions[p]
            .iter()
            .map(|(_, message, _)| {
                [
                    "First event ",
                    "Second event",
                    "Third event",
                    "to partition 2",
                    "keyed 0",
                    "keyed 1",
                    "keyed 2",
                    "single",
                ]
                .into_iter()
                .find(|t| holds(message, t))
                .unwrap_or("?")
                .to_owned()
            })
            .collect()
    };
    let all: Vec<Vec<String>> = (0..4).map(texts).collect();
    assert_eq!(all.iter().map(Vec::len).sum::<usize>(), 8, "{all:?}");
    // A batch is stored whole, in order, in one partition; sequence numbers
    // count each partition's events from 0.
    let first = all
        .iter()
        .position(|p| p.first().map(String::as_str) == Some("First event "))
        .expect("the first batch");
    assert_eq!(
        all[first][..3],
        ["First event ", "Second event", "Third event"]
    );
    for partition in &partitions {
        let numbers: Vec<i64> = partition.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(numbers, (0..partition.len() as i64).collect::<Vec<_>>());
    }
    assert!(all[2].contains(&"to partition 2".to_owned()), "{all:?}");
    assert!(all[1].contains(&"single".to_owned()), "{all:?}");
    // The same key, the same partition, in order, the key kept.
    let keyed: Vec<(usize, &String)> = all
        .iter()
        .enumerate()
        .flat_map(|(p, texts)| texts.iter().map(move |t| (p, t)))
        .filter(|(_, t)| t.starts_with("keyed"))
        .collect();
    assert_eq!(keyed.len(), 3);
    assert!(keyed.iter().all(|(p, _)| *p == keyed[0].0), "{keyed:?}");
    assert_eq!(
        keyed.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        ["keyed 0", "keyed 1", "keyed 2"]
    );
    let key_kept = partitions[keyed[0].0]
        .iter()
        .filter(|(_, m, _)| holds(m, "keyed"))
        .all(|(_, _, key)| key.as_deref() == Some("user-7"));
    assert!(key_kept);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_without_send_is_refused_the_way_the_service_refuses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = endpoint_with(None, Some(file_log(dir.path()).await))
        .await
        .port;
    let (status, answer) = sdk(
        "send.py",
        &[&connection_string(port, "listen", KEY), "hub1"],
    )
    .await;
    assert_eq!(status, 3, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("'Send' claim(s) are required"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_event_is_refused_and_nothing_of_it_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = file_log(dir.path()).await;
    let port = endpoint_with(None, Some(bus.clone())).await.port;
    let connection = connection_string(port, "both", KEY);
    // One event of 1.1 MB, sent alone: the SDK leaves it to the endpoint.
    let oversized = serde_json::json!([
        {"bodies": ["x"], "repeat": 1_100_000, "partition_id": "0", "alone": true},
    ]);
    let (status, answer) = sdk(
        "send_events.py",
        &[&connection, "hub1", &oversized.to_string()],
    )
    .await;
    // The endpoint detaches the link with `amqp:link:message-size-exceeded`;
    // the SDK reports the send failed.
    assert_eq!(status, 3, "{answer}");
    assert_eq!(answer["error"], "EventDataSendError", "{answer}");
    // The endpoint takes the next event, and holds only that one.
    let fits = serde_json::json!([{"bodies": ["fits"], "partition_id": "0"}]);
    let (status, answer) = sdk("send_events.py", &[&connection, "hub1", &fits.to_string()]).await;
    assert_eq!(status, 0, "{answer}");
    let partitions = stored(&bus, 4).await;
    assert_eq!(partitions[0].len(), 1);
    assert!(holds(&partitions[0][0].1, "fits"));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_input_ends_its_own_connection_and_nothing_else() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let port = endpoint().await;
    let sasl: &[u8] = b"AMQP\x03\x01\x00\x00";
    let plain: &[u8] = b"AMQP\x00\x01\x00\x00";
    // Bytes no one would send, the same on every run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..65_536)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            "a 4 GiB frame",
            [sasl, &[0xff, 0xff, 0xff, 0xff, 2, 1, 0, 0]].concat(),
        ),
        (
            "an open of the wrong type",
            [
                plain,
                &[
                    0, 0, 0, 16, 2, 0, 0, 0, 0x00, 0x53, 0x10, 0xc0, 0xff, 0xff, 0xff, 0xff,
                ],
            ]
            .concat(),
        ),
        ("noise after SASL", [sasl, &noise].concat()),
        ("noise after AMQP", [plain, &noise].concat()),
        (
            "a frame cut short",
            [sasl, &[0, 0, 0, 64, 2, 1, 0, 0, 0x00]].concat(),
        ),
    ];
    // One connection stays open, idle, all along.
    let _idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    for (what, input) in inputs {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connects");
        // The endpoint may close before it has read everything.
        let _ = stream.write_all(&input).await;
        let _ = stream.shutdown().await;
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            stream.read_to_end(&mut rest),
        )
        .await;
        assert!(ended.is_ok(), "{what}: the endpoint kept the connection");
    }
    // The endpoint serves on.
    let (status, answer) = sdk(
        "management.py",
        &[&connection_string(port, "both", KEY), "hub1"],
    )
    .await;
    assert_eq!(status, 0, "{answer}");
}
