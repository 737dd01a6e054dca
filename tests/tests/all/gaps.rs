//! Events removed from a bus before a consumer read them (retention,
//! trimming): a consumer may still resume after an offset that is gone, and
//! the read that reaches the hole reports it, once, then reads on from the
//! oldest event still held. Nothing is skipped in silence.

use std::time::{Duration, SystemTime};

use hermes_event::Category;
use hermes_host::{BusError, Consumer, Error, Offset, Producer};
use hermes_wasm_tests::{Bus, users};

const DRAINED: Duration = Duration::from_millis(200);

fn gap(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Bus {
            error: BusError::Gap(what),
            ..
        }) => what,
        other => panic!("expected a gap, got {other:?}"),
    }
}

/// A consumer of `bus` positioned right after `offset`.
async fn after(bus: &Bus, offset: &Offset) -> Consumer {
    let mut consumer = bus.consumer(DRAINED).await;
    consumer.seek_after(offset).await.expect("seek-after");
    consumer
}

async fn offsets(consumer: &mut Consumer) -> Vec<Offset> {
    let mut all = Vec::new();
    loop {
        let batch = consumer.next_batch(1000).await.expect("next-batch");
        if batch.is_empty() {
            return all;
        }
        all.extend(batch.into_iter().map(|c| c.offset));
    }
}

#[tokio::test]
async fn file_log_retention_under_a_consumer_is_a_gap_never_a_silent_skip() {
    let mut bus = Bus::file_log().await;
    bus.settings["segment_max_bytes"] = serde_json::json!(4096);
    let mut producer = bus.producer().await;
    producer
        .send_batch(&users(Category::Base, 0, 200))
        .await
        .expect("send");
    producer.close().await.expect("close");
    let mut segments: Vec<u64> = std::fs::read_dir(bus.dir.path().join("bus"))
        .expect("the log")
        .map(|e| {
            let name = e.expect("entry").file_name();
            name.to_string_lossy()[..20].parse().expect("a segment")
        })
        .collect();
    segments.sort_unstable();
    assert!(segments.len() >= 4, "{segments:?}");
    let oldest_kept = segments[2];

    // A consumer reading the first segment when retention deletes it.
    let mut lagging = bus.consumer(DRAINED).await;
    let first = lagging.next_batch(3).await.expect("the first events");
    assert_eq!(first.len(), 3);

    let old = SystemTime::now() - Duration::from_secs(10 * 86_400);
    for first in &segments[..2] {
        let path = bus.dir.path().join("bus").join(format!("{first:020}.log"));
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(old))
            .expect("backdate");
    }
    let mut retained = bus.settings.clone();
    retained["retention_in_days"] = serde_json::json!(1);
    let mut producer = Producer::create(bus.plugin.clone(), &retained)
        .await
        .expect("create");
    producer
        .open()
        .await
        .expect("open: retention deletes two segments");
    producer.close().await.expect("close");

    // It reads on to the end of its deleted segment, then reports the one it
    // never read.
    let (read_on, failed) = offsets_until_failure(&mut lagging).await;
    assert_eq!(read_on.first(), Some(&Offset::Int(3)));
    assert_eq!(read_on.last(), Some(&Offset::Int(segments[1] as i64 - 1)));
    let missed = gap(failed);
    assert!(
        missed.starts_with(&format!("offsets {} to {}", segments[1], oldest_kept - 1)),
        "{missed}"
    );
    let rest = offsets(&mut lagging).await;
    assert_eq!(rest.first(), Some(&Offset::Int(oldest_kept as i64)));
    assert_eq!(rest.last(), Some(&Offset::Int(199)));

    // A consumer resuming after a deleted offset: a gap for what it never
    // read, then the rest.
    let mut resuming = after(&bus, &Offset::Int(5)).await;
    let missed = gap(resuming.next_batch(1000).await);
    assert!(
        missed.starts_with(&format!("offsets 6 to {}", oldest_kept - 1)),
        "{missed}"
    );
    assert_eq!(
        offsets(&mut resuming).await.len(),
        200 - oldest_kept as usize
    );

    // Resuming right before the oldest kept event misses nothing.
    let mut caught_up = after(&bus, &Offset::Int(oldest_kept as i64 - 1)).await;
    let all = offsets(&mut caught_up).await;
    assert_eq!(all.first(), Some(&Offset::Int(oldest_kept as i64)));
    assert_eq!(all.len(), 200 - oldest_kept as usize);

    // An offset the log never gave is still unknown.
    let mut consumer = bus.consumer(DRAINED).await;
    assert!(matches!(
        consumer.seek_after(&Offset::Int(200)).await,
        Err(Error::Bus {
            error: BusError::UnknownOffset(_),
            ..
        })
    ));
}

/// Reads until a read fails: what came before, and the failure.
async fn offsets_until_failure(consumer: &mut Consumer) -> (Vec<Offset>, Result<(), Error>) {
    let mut all = Vec::new();
    loop {
        match consumer.next_batch(1000).await {
            Ok(batch) if batch.is_empty() => return (all, Ok(())),
            Ok(batch) => all.extend(batch.into_iter().map(|c| c.offset)),
            Err(e) => return (all, Err(e)),
        }
    }
}

#[tokio::test]
async fn sqlite_retention_before_a_consumer_resumes_is_a_gap_for_what_it_never_read() {
    let bus = Bus::sqlite().await;
    let mut producer = bus.producer().await;
    producer
        .send_batch(&users(Category::Base, 0, 30))
        .await
        .expect("send");
    producer.close().await.expect("close");
    // The first 20 rows are 40 days old: the producer's retention (30 days)
    // deletes them when it opens.
    let db = rusqlite::Connection::open(bus.dir.path().join("bus.sqlite")).expect("open");
    db.execute(
        "UPDATE hermesmessages SET timestamp = timestamp - 40 * 86400 WHERE msgid <= 20",
        [],
    )
    .expect("age the rows");
    drop(db);
    bus.producer().await.close().await.expect("close");

    let mut resuming = after(&bus, &Offset::Int(5)).await;
    let missed = gap(resuming.next_batch(1000).await);
    assert!(missed.contains("msgid 6 to 20 were deleted"), "{missed}");
    let rest = offsets(&mut resuming).await;
    assert_eq!(rest.first(), Some(&Offset::Int(21)));
    assert_eq!(rest.len(), 10);

    let mut caught_up = after(&bus, &Offset::Int(20)).await;
    assert_eq!(offsets(&mut caught_up).await.len(), 10, "nothing missed");

    let mut consumer = bus.consumer(DRAINED).await;
    assert!(matches!(
        consumer.seek_after(&Offset::Int(31)).await,
        Err(Error::Bus {
            error: BusError::UnknownOffset(_),
            ..
        })
    ));
}

#[tokio::test]
async fn redis_trimming_past_a_consumer_is_a_gap() {
    let mut bus = Bus::redis_streams().await;
    bus.settings["maxlen"] = serde_json::json!(10);
    let mut producer = bus.producer().await;
    let mut sent = Vec::new();
    for chunk in users(Category::Base, 0, 400).chunks(50) {
        sent.extend(producer.send_batch(chunk).await.expect("send"));
    }
    producer.close().await.expect("close");

    let mut all = bus.consumer(DRAINED).await;
    let held = offsets(&mut all).await;
    assert!(
        held.len() < 400,
        "the stream was trimmed: {} held",
        held.len()
    );
    let oldest = held[0].clone();

    let mut resuming = after(&bus, &sent[5]).await;
    let missed = gap(resuming.next_batch(1000).await);
    assert!(
        missed.contains(&format!(
            "the entries before {} were trimmed away",
            hermes_host::offset::to_json(&oldest)
                .as_str()
                .unwrap_or_default()
        )),
        "{missed}"
    );
    assert_eq!(offsets(&mut resuming).await, held, "then all it holds");

    let mut consumer = bus.consumer(DRAINED).await;
    assert!(matches!(
        consumer
            .seek_after(&Offset::Str("99999999999999-0".into()))
            .await,
        Err(Error::Bus {
            error: BusError::UnknownOffset(_),
            ..
        })
    ));
}
