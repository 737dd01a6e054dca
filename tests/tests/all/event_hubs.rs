//! What the event-hubs bus promises beyond the conformance suite: the
//! operator's grant, the credentials, the partition, and the shape of what
//! it puts on the hub. Each test starts its own Event Hubs endpoint (what
//! `hermes-wasm serve` runs) on a free loopback port; what the real SDK
//! reads of it, and the endpoint going away, are `hermes-wasm`'s tests of
//! `serve`.

use std::time::Duration;

use hermes_event::Category;
use hermes_host::{BusError, Consumer, Error, Grants, Offset, Producer};
use hermes_wasm_tests::{Bus, events_on, guests, load, read_all, user_added, users};

const DRAINED: Duration = Duration::from_millis(300);

fn bus_error(error: &Error) -> &BusError {
    error
        .bus_error()
        .unwrap_or_else(|| panic!("not a bus error: {error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_the_operator_did_not_allow_is_refused() {
    let bus = Bus::event_hubs().await;
    let endpoint = bus.endpoint.as_ref().expect("an endpoint");
    // The same plugin and settings, granted another port only.
    let elsewhere = Grants {
        amqp: vec![
            hermes_host::AmqpAllow::parse(&format!("amqp://127.0.0.1:{}", endpoint.port + 1))
                .expect("a URL"),
        ],
        ..Grants::default()
    };
    for grants in [Grants::default(), elsewhere] {
        let plugin = load(guests::EVENT_HUBS, &[], grants).await;
        let mut producer = Producer::create(plugin, &bus.settings)
            .await
            .expect("builds");
        let error = producer.open().await.expect_err("refused");
        let text = error.to_string();
        assert!(
            text.contains(&format!(
                "amqp://127.0.0.1:{} is not an allowed Event Hubs endpoint",
                endpoint.port
            )),
            "{text}"
        );
    }
    // Nothing reached the hub.
    assert!(events_on(&bus, DRAINED).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_by_the_endpoint_with_its_reason() {
    let bus = Bus::event_hubs().await;
    let endpoint = bus.endpoint.as_ref().expect("an endpoint");
    let wrong = endpoint.settings("d3Jvbmcta2V5");
    let mut producer = Producer::create(bus.plugin.clone(), &wrong)
        .await
        .expect("builds");
    let error = producer.open().await.expect_err("refused");
    let text = error.to_string();
    assert!(
        matches!(bus_error(&error), BusError::Other(_)),
        "not retryable: {error:?}"
    );
    assert!(text.contains("InvalidSignature"), "{text}");
    assert!(text.contains("policy hermes"), "{text}");
    let mut consumer = Consumer::create(bus.plugin.clone(), &wrong)
        .await
        .expect("builds");
    assert!(consumer.open().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_or_a_hub_the_endpoint_lacks_is_named() {
    let bus = Bus::event_hubs().await;
    let mut settings = bus.settings.clone();
    settings["partition"] = "7".into();
    let mut producer = Producer::create(bus.plugin.clone(), &settings)
        .await
        .expect("builds");
    let error = producer.open().await.expect_err("no partition 7");
    assert!(
        matches!(bus_error(&error), BusError::InvalidSettings(m)
            if m == "partition: hub hermes has no partition \"7\" (it has 0, 1)"),
        "{error:?}"
    );
    let mut settings = bus.settings.clone();
    settings["eventhub"] = "elsewhere".into();
    let mut producer = Producer::create(bus.plugin.clone(), &settings)
        .await
        .expect("builds");
    let error = producer.open().await.expect_err("no hub");
    assert!(error.to_string().contains("elsewhere"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_string_without_its_key_is_invalid_settings() {
    let bus = Bus::event_hubs().await;
    let mut settings = bus.settings.clone();
    settings["connection_string"] = "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=hermes".into();
    let error = match Producer::create(bus.plugin.clone(), &settings).await {
        Ok(_) => panic!("built without a key"),
        Err(error) => error,
    };
    assert!(
        matches!(bus_error(&error), BusError::InvalidSettings(m)
            if m == "connection_string: no SharedAccessKey"),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_the_partitions_sequence_numbers_and_other_partitions_are_left_alone() {
    let bus = Bus::event_hubs().await;
    let mut producer = bus.producer().await;
    let events = users(Category::Base, 1, 3);
    let offsets = producer.send_batch(&events).await.expect("sent");
    assert_eq!(offsets, [Offset::Int(0), Offset::Int(1), Offset::Int(2)]);
    let more = producer
        .send(&user_added(Category::Initsync, 4))
        .await
        .expect("sent");
    assert_eq!(more, Offset::Int(3));

    // Partition 0 of the same hub holds nothing.
    let mut other = bus.consumer_settings.clone();
    other["partition"] = "0".into();
    let mut consumer = Consumer::create(bus.plugin.clone(), &other)
        .await
        .expect("builds");
    consumer.open().await.expect("opens");
    consumer.set_timeout(Some(DRAINED));
    assert!(read_all(&mut consumer).await.is_empty());

    // Another consumer group reads the same events.
    let mut group = bus.consumer_settings.clone();
    group["consumer_group"] = "clients".into();
    let mut consumer = Consumer::create(bus.plugin.clone(), &group)
        .await
        .expect("builds");
    consumer.open().await.expect("opens");
    consumer.set_timeout(Some(DRAINED));
    assert_eq!(read_all(&mut consumer).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeking_past_the_end_or_before_any_event_is_unknown_offset() {
    let bus = Bus::event_hubs().await;
    let mut producer = bus.producer().await;
    producer
        .send_batch(&users(Category::Base, 1, 2))
        .await
        .expect("sent");
    let mut consumer = bus.consumer(DRAINED).await;
    // 2 is the end: valid for seek, not for seek-after.
    consumer.seek(&Offset::Int(2)).await.expect("the end");
    for result in [
        consumer.seek(&Offset::Int(3)).await,
        consumer.seek(&Offset::Int(-1)).await,
        consumer.seek_after(&Offset::Int(2)).await,
        consumer.seek_after(&Offset::Int(-1)).await,
        consumer.seek(&Offset::Str("1".into())).await,
    ] {
        assert!(
            matches!(
                result.as_ref().map_err(bus_error),
                Err(BusError::UnknownOffset(_))
            ),
            "{result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_endpoint_is_checked_against_the_roots_the_operator_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint =
        hermes_wasm_tests::HubEndpoint::start_with(dir.path(), true, serde_json::json!({})).await;
    let certificate = endpoint.certificate.clone().expect("a certificate");
    let settings = endpoint.settings(hermes_wasm_tests::EVENT_HUBS_KEY);
    let allow = hermes_host::AmqpAllow::parse(&endpoint.url()).expect("a URL");

    // The web's roots do not know a self-signed certificate.
    let untrusted = Grants {
        amqp: vec![allow.clone()],
        ..Grants::default()
    };
    let plugin = load(guests::EVENT_HUBS, &[], untrusted).await;
    let mut producer = Producer::create(plugin, &settings).await.expect("builds");
    let error = producer.open().await.expect_err("an unknown issuer");
    assert!(
        matches!(bus_error(&error), BusError::Unavailable(m)
            if m.contains("TLS") && m.contains("UnknownIssuer")),
        "{error:?}"
    );

    // Trusting its certificate, events go over TLS both ways.
    let trusted = Grants {
        amqp: vec![allow.with_ca(&certificate).expect("the certificate")],
        ..Grants::default()
    };
    let plugin = load(guests::EVENT_HUBS, &[], trusted).await;
    let bus = Bus::new(plugin, settings, dir);
    let events = users(Category::Base, 1, 2);
    let mut producer = bus.producer().await;
    producer.send_batch(&events).await.expect("sent over TLS");
    assert_eq!(events_on(&bus, DRAINED).await, events);
}

/// Copies the directory `from` into `to`, file by file.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_retention_removed_before_a_consumer_read_them_are_a_gap() {
    use hermes_wasm_tests::{EVENT_HUBS_KEY, HubEndpoint};

    // A partition of small segments, 150 events.
    let small = serde_json::json!({"segment_max_bytes": 4096});
    let dir = tempfile::tempdir().expect("tempdir");
    let first = HubEndpoint::start_with(dir.path(), false, small).await;
    let plugin = load(guests::EVENT_HUBS, &[], first.grants()).await;
    let bus = Bus::new(plugin, first.settings(EVENT_HUBS_KEY), dir);
    let mut producer = bus.producer().await;
    producer
        .send_batch(&users(Category::Base, 0, 150))
        .await
        .expect("sent");
    producer.close().await.expect("closed");

    // The same partition a week later, behind an endpoint whose log keeps a
    // day: its two oldest segments are deleted as it opens.
    let later = tempfile::tempdir().expect("tempdir");
    copy_tree(
        &bus.dir.path().join("partitions"),
        &later.path().join("partitions"),
    );
    let log = later.path().join("partitions/hermes/1");
    let mut segments: Vec<i64> = std::fs::read_dir(&log)
        .expect("the log")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    segments.sort_unstable();
    assert!(segments.len() >= 4, "{segments:?}");
    let week_ago = std::time::SystemTime::now() - Duration::from_secs(7 * 86_400);
    for first in &segments[..2] {
        std::fs::File::options()
            .write(true)
            .open(log.join(format!("{first:020}.log")))
            .and_then(|f| f.set_modified(week_ago))
            .expect("backdate");
    }
    let keeping = serde_json::json!({"segment_max_bytes": 4096, "retention_in_days": 1});
    let second = HubEndpoint::start_with(later.path(), false, keeping).await;
    let plugin = load(guests::EVENT_HUBS, &[], second.grants()).await;
    let mut consumer = Consumer::create(plugin, &second.settings(EVENT_HUBS_KEY))
        .await
        .expect("builds");
    consumer.open().await.expect("opens");
    consumer.set_timeout(Some(DRAINED));

    // Resuming after an event retention removed: the events it never read
    // are a gap, reported once, then the oldest event held comes.
    consumer
        .seek_after(&Offset::Int(5))
        .await
        .expect("an offset the bus once gave");
    let kept = segments[2];
    let missed = consumer.next().await.expect_err("a gap");
    assert!(
        matches!(bus_error(&missed), BusError::Gap(m)
            if m == &format!("event hub hermes partition 1: events 6 to {} were removed before they were read", kept - 1)),
        "{missed:?}"
    );
    let next = consumer.next().await.expect("next").expect("an event");
    assert_eq!(next.offset, Offset::Int(kept));
    let rest = read_all(&mut consumer).await;
    assert_eq!(
        rest.last().map(|c| c.offset.clone()),
        Some(Offset::Int(149))
    );
    assert_eq!(rest.len() as i64, 149 - kept);
}
