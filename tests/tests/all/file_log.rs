//! What file-log promises beyond the conformance suite: crash safety,
//! segments, retention, settings, and where it may write.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hermes_event::Category;
use hermes_host::{BusError, Consumer, Error, Grants, Offset, Producer};
use hermes_wasm_tests::{Bus, guests, load, read_all, users};

const DRAINED: Duration = Duration::from_millis(200);

fn segments(bus: &Bus) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(bus.dir.path().join("bus"))
        .expect("log directory")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open segment")
        .write_all(bytes)
        .expect("append");
}

fn bus_error(result: Result<impl std::fmt::Debug, Error>) -> BusError {
    match result {
        Err(Error::Bus { error, .. }) => error,
        other => panic!("expected a bus error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_torn_tail_is_never_delivered_and_is_cut_off_when_the_producer_reopens() {
    let bus = Bus::file_log().await;
    let events = users(Category::Base, 1, 3);
    let mut producer = bus.producer().await;
    producer.send_batch(&events).await.expect("send");
    producer.close().await.expect("close");

    // A crash in the middle of an append: a frame that promises more bytes
    // than are there, then a whole frame of garbage.
    let segment = &segments(&bus)[0];
    append(segment, &[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']);
    let mut consumer = bus.consumer(DRAINED).await;
    let read = read_all(&mut consumer).await;
    assert_eq!(
        read.into_iter()
            .map(|c| c.event().expect("a hermes event"))
            .collect::<Vec<_>>(),
        events,
        "the torn record is not delivered"
    );

    let size_with_tail = std::fs::metadata(segment).expect("stat").len();
    let mut producer = bus.producer().await;
    assert!(
        std::fs::metadata(segment).expect("stat").len() < size_with_tail,
        "the tail was cut off"
    );
    let more = users(Category::Base, 10, 1);
    assert_eq!(producer.send(&more[0]).await.expect("send"), Offset::Int(3));
    producer.close().await.expect("close");

    // The waiting consumer moves on to the repaired record.
    assert_eq!(
        consumer
            .next()
            .await
            .expect("next")
            .map(|c| c.event().expect("a hermes event")),
        Some(more[0].clone())
    );
}

#[tokio::test]
async fn a_damaged_record_inside_the_log_is_an_error_and_nothing_is_cut() {
    let bus = Bus::file_log().await;
    let events = users(Category::Base, 1, 3);
    let mut producer = bus.producer().await;
    producer.send_batch(&events).await.expect("send");
    producer.close().await.expect("close");

    // Flip one byte inside the second record's JSON.
    let segment = &segments(&bus)[0];
    let mut bytes = std::fs::read(segment).expect("read");
    let second = 8 + 8 + u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    bytes[second + 8 + 30] ^= 0x01;
    std::fs::write(segment, &bytes).expect("write");

    let mut consumer = bus.consumer(DRAINED).await;
    assert_eq!(
        consumer
            .next()
            .await
            .expect("first record is fine")
            .map(|c| c.event().expect("a hermes event")),
        Some(events[0].clone())
    );
    assert!(matches!(
        bus_error(consumer.next().await),
        BusError::Corrupted(_)
    ));

    let mut producer = Producer::create(bus.plugin.clone(), &bus.settings)
        .await
        .expect("create");
    assert!(matches!(
        bus_error(producer.open().await),
        BusError::Corrupted(_)
    ));
    assert_eq!(
        std::fs::read(segment).expect("read"),
        bytes,
        "the producer cut nothing"
    );
}

/// Where each record of a segment starts, in bytes.
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        starts.push(at);
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
    }
    starts
}

#[tokio::test]
async fn a_damaged_length_field_is_damage_and_the_producer_cuts_nothing() {
    let events = users(Category::Base, 1, 30);
    // An impossible length, and one that runs past the end of the segment
    // (as a torn tail would, but valid records follow it).
    for length in [u32::MAX, 200 << 20] {
        let bus = Bus::file_log().await;
        let mut producer = bus.producer().await;
        producer.send_batch(&events).await.expect("send");
        producer.close().await.expect("close");
        let segment = &segments(&bus)[0];
        let mut bytes = std::fs::read(segment).expect("read");
        let tenth = record_starts(&bytes)[10];
        bytes[tenth..tenth + 4].copy_from_slice(&length.to_le_bytes());
        std::fs::write(segment, &bytes).expect("write");

        let mut producer = Producer::create(bus.plugin.clone(), &bus.settings)
            .await
            .expect("create");
        let error = bus_error(producer.open().await);
        assert!(
            matches!(&error, BusError::Corrupted(m)
                if m.contains(&format!("at byte {tenth} (offset 10)")) && m.contains("valid records after it")),
            "length {length}: {error:?}"
        );
        assert_eq!(
            std::fs::read(segment).expect("read"),
            bytes,
            "length {length}: the producer cut nothing"
        );
        if length == u32::MAX {
            // A reader delivers what precedes the damage, then names it.
            let mut consumer = bus.consumer(DRAINED).await;
            let before = consumer.next_batch(100).await.expect("the records before");
            assert_eq!(before.len(), 10);
            let error = bus_error(consumer.next_batch(100).await);
            assert!(
                matches!(&error, BusError::Corrupted(m) if m.contains("(offset 10): impossible record length")),
                "{error:?}"
            );
        }
    }
}

#[tokio::test]
async fn damage_two_thirds_into_a_segment_still_delivers_every_event_before_it() {
    let bus = Bus::file_log().await;
    let events = users(Category::Base, 1, 30);
    let mut producer = bus.producer().await;
    producer.send_batch(&events).await.expect("send");
    producer.close().await.expect("close");
    let segment = &segments(&bus)[0];
    let mut bytes = std::fs::read(segment).expect("read");
    let twentieth = record_starts(&bytes)[20];
    bytes[twentieth + 8 + 30] ^= 0x01;
    std::fs::write(segment, &bytes).expect("write");

    let mut consumer = bus.consumer(DRAINED).await;
    let delivered: Vec<_> = consumer
        .next_batch(100)
        .await
        .expect("the events before the damage")
        .iter()
        .map(|c| c.event().expect("a hermes event"))
        .collect();
    assert_eq!(delivered, events[..20]);
    for _ in 0..2 {
        let error = bus_error(consumer.next_batch(100).await);
        assert!(
            matches!(&error, BusError::Corrupted(m)
                if m.contains(&format!("at byte {twentieth} (offset 20): checksum mismatch"))),
            "the damage is reported, every time: {error:?}"
        );
    }
}

#[tokio::test]
async fn segments_roll_and_reading_crosses_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = load(guests::FILE_LOG, &[dir.path()], Grants::default()).await;
    let settings = serde_json::json!({ "path": dir.path().join("bus"), "segment_max_bytes": 4096, "fsync": "always" });
    let bus = Bus::new(plugin, settings, dir);

    let events = users(Category::Base, 0, 60);
    let mut producer = bus.producer().await;
    producer
        .send_batch(&events[..30])
        .await
        .expect("send batch");
    for event in &events[30..] {
        producer.send(event).await.expect("send");
    }
    producer.close().await.expect("close");
    let files = segments(&bus);
    assert!(
        files.len() >= 3,
        "60 events of ~300 bytes make several 4 KiB segments, got {files:?}"
    );
    for file in &files[..files.len() - 1] {
        assert!(std::fs::metadata(file).expect("stat").len() <= 4096);
    }

    let mut consumer = bus.consumer(DRAINED).await;
    let read = read_all(&mut consumer).await;
    assert_eq!(
        read.iter()
            .map(|c| c.event().expect("a hermes event"))
            .collect::<Vec<_>>(),
        events
    );
    consumer
        .seek(&Offset::Int(45))
        .await
        .expect("seek into a later segment");
    assert_eq!(
        consumer
            .next()
            .await
            .expect("next")
            .map(|c| c.event().expect("a hermes event")),
        Some(events[45].clone())
    );
}

#[tokio::test]
async fn retention_deletes_old_segments_at_open_and_keeps_the_newest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = load(guests::FILE_LOG, &[dir.path()], Grants::default()).await;
    let path = dir.path().join("bus");
    let settings = serde_json::json!({ "path": path, "segment_max_bytes": 4096 });
    let bus = Bus::new(plugin.clone(), settings, dir);
    let mut producer = bus.producer().await;
    producer
        .send_batch(&users(Category::Base, 0, 60))
        .await
        .expect("send");
    producer.close().await.expect("close");

    let files = segments(&bus);
    let ten_days_ago = SystemTime::now() - Duration::from_secs(10 * 86_400);
    for file in &files {
        std::fs::File::options()
            .write(true)
            .open(file)
            .expect("open")
            .set_modified(ten_days_ago)
            .expect("mtime");
    }
    let retained =
        serde_json::json!({ "path": path, "segment_max_bytes": 4096, "retention_in_days": 1 });
    let mut producer = Producer::create(plugin.clone(), &retained)
        .await
        .expect("create");
    producer.open().await.expect("open applies retention");
    let next = producer
        .send(&users(Category::Base, 99, 1)[0])
        .await
        .expect("send");
    producer.close().await.expect("close");

    let left = segments(&bus);
    assert_eq!(
        left,
        files[files.len() - 1..],
        "only the newest segment is left"
    );
    let first_left: i64 = left[0]
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("name");
    assert_eq!(next, Offset::Int(60), "offsets go on after retention");

    let mut consumer = bus.consumer(DRAINED).await;
    assert_eq!(
        consumer.next().await.expect("next").map(|c| c.offset),
        Some(Offset::Int(first_left))
    );
    assert!(matches!(
        bus_error(consumer.seek(&Offset::Int(0)).await),
        BusError::UnknownOffset(_)
    ));
}

#[tokio::test]
async fn the_offset_after_the_last_event_is_the_end_and_nothing_beyond() {
    let bus = Bus::file_log().await;
    let mut producer = bus.producer().await;
    producer
        .send_batch(&users(Category::Base, 0, 3))
        .await
        .expect("send");
    let mut consumer = bus.consumer(DRAINED).await;
    consumer
        .seek(&Offset::Int(3))
        .await
        .expect("the next offset is valid");
    assert_eq!(consumer.next().await.expect("next"), None);
    assert!(matches!(
        bus_error(consumer.seek(&Offset::Int(4)).await),
        BusError::UnknownOffset(_)
    ));
    assert!(matches!(
        bus_error(consumer.seek_after(&Offset::Int(3)).await),
        BusError::UnknownOffset(_)
    ));
    let later = users(Category::Base, 7, 1);
    producer.send(&later[0]).await.expect("send");
    assert_eq!(
        consumer
            .next()
            .await
            .expect("next")
            .map(|c| c.event().expect("a hermes event")),
        Some(later[0].clone())
    );
}

#[tokio::test]
async fn a_missing_log_is_an_empty_bus_for_a_consumer() {
    let bus = Bus::file_log().await;
    let mut consumer = bus.consumer(DRAINED).await;
    assert_eq!(consumer.next().await.expect("next"), None);
    consumer
        .seek(&Offset::Int(0))
        .await
        .expect("offset 0 is the end of an empty log");
    assert!(matches!(
        bus_error(consumer.seek(&Offset::Int(1)).await),
        BusError::UnknownOffset(_)
    ));
    assert!(
        !bus.dir.path().join("bus").exists(),
        "a consumer creates nothing"
    );
}

#[tokio::test]
async fn every_fsync_policy_stores_the_events() {
    for fsync in ["always", "batch", "interval"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugin = load(guests::FILE_LOG, &[dir.path()], Grants::default()).await;
        let settings = serde_json::json!({ "path": dir.path().join("bus"), "fsync": fsync, "fsync_interval_ms": 50 });
        let bus = Bus::new(plugin, settings, dir);
        let events = users(Category::Initsync, 0, 5);
        let mut producer = bus.producer().await;
        producer.send_batch(&events[..2]).await.expect("send batch");
        for event in &events[2..] {
            producer.send(event).await.expect("send");
        }
        let mut consumer = bus.consumer(DRAINED).await;
        let read: Vec<_> = read_all(&mut consumer)
            .await
            .into_iter()
            .map(|c| c.event().expect("a hermes event"))
            .collect();
        assert_eq!(read, events, "fsync {fsync}");
    }
}

#[tokio::test]
async fn bad_settings_are_refused_before_the_plugin_sees_them_naming_the_field() {
    let bus = Bus::file_log().await;
    let path = bus.dir.path().join("bus");
    let cases = [
        (serde_json::json!({}), "path"),
        (
            serde_json::json!({ "path": path, "fsync": "sometimes" }),
            "/fsync",
        ),
        (
            serde_json::json!({ "path": path, "colour": "blue" }),
            "colour",
        ),
        (
            serde_json::json!({ "path": path, "retention_in_days": 0 }),
            "/retention_in_days",
        ),
        (
            serde_json::json!({ "path": path, "segment_max_bytes": "big" }),
            "/segment_max_bytes",
        ),
        (serde_json::json!({ "path": 42 }), "/path"),
    ];
    for (settings, field) in cases {
        let error = Producer::create(bus.plugin.clone(), &settings)
            .await
            .err()
            .expect("refused");
        assert!(
            matches!(error, Error::Settings { .. }),
            "{settings}: {error}"
        );
        assert!(
            error.to_string().contains(field),
            "{settings}: {error} should name {field}"
        );
        let error = Consumer::create(bus.plugin.clone(), &settings)
            .await
            .err()
            .expect("refused");
        assert!(
            error.to_string().contains(field),
            "{settings}: {error} should name {field}"
        );
    }
}

#[tokio::test]
async fn a_log_outside_the_granted_directories_cannot_be_opened() {
    let granted = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let plugin = load(guests::FILE_LOG, &[granted.path()], Grants::default()).await;
    let settings = serde_json::json!({ "path": elsewhere.path().join("bus") });
    let mut producer = Producer::create(plugin, &settings).await.expect("create");
    let error = producer.open().await.expect_err("outside the grant");
    assert!(
        error
            .to_string()
            .contains(&elsewhere.path().join("bus").display().to_string()),
        "{error}"
    );
    assert!(
        std::fs::read_dir(elsewhere.path())
            .expect("list")
            .next()
            .is_none(),
        "nothing was created there"
    );
}

#[tokio::test]
async fn a_second_producer_on_one_log_is_refused_before_it_writes() {
    let bus = Bus::file_log().await;
    let mut first = bus.producer().await;
    let mut second = bus.producer().await;
    let sent = users(Category::Base, 0, 3);
    assert_eq!(
        first.send_batch(&sent).await.expect("the first sends"),
        [Offset::Int(0), Offset::Int(1), Offset::Int(2)]
    );
    // The second opened before those were written: its offsets are taken.
    for _ in 0..2 {
        match bus_error(second.send_batch(&users(Category::Base, 10, 2)).await) {
            BusError::Other(message) => assert!(
                message.contains("another producer") && message.contains("nothing was written"),
                "{message}"
            ),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    // The first carries on; the log holds its events only, in order.
    let more = users(Category::Base, 3, 1);
    assert_eq!(
        first.send_batch(&more).await.expect("the first sends"),
        [Offset::Int(3)]
    );
    first.close().await.expect("close");
    let mut consumer = bus.consumer(DRAINED).await;
    let read: Vec<_> = read_all(&mut consumer).await;
    assert_eq!(
        read.iter().map(|c| c.offset.clone()).collect::<Vec<_>>(),
        (0..4).map(Offset::Int).collect::<Vec<_>>()
    );
    assert_eq!(
        read.into_iter()
            .map(|c| c.event().expect("a hermes event"))
            .collect::<Vec<_>>(),
        [sent, more].concat()
    );
    // Opened again after the first closed, the second appends at the end.
    second.close().await.expect("close");
    second.open().await.expect("reopen");
    assert_eq!(
        second
            .send_batch(&users(Category::Base, 10, 1))
            .await
            .expect("sends"),
        [Offset::Int(4)]
    );
}
