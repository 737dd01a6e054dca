//! The bus conformance suite: the behaviour hermes expects of every bus
//! (`../shared/reference/hermes-bus.md`, consumer table), written once and
//! run against each bus through the host, with its real plugin.
//!
//! A new bus joins with one line at the bottom: `conformance!(name, Bus::name());`.

use std::time::{Duration, Instant};

use hermes_event::Category;
use hermes_host::{BusError, Error, EventText, Offset};
use hermes_wasm_tests::{Bus, read_all, user_added, users};

/// How long a consumer waits once drained, in tests that expect no more events.
const DRAINED: Duration = Duration::from_millis(200);

fn unknown_offset(result: Result<(), Error>) -> bool {
    matches!(
        result.as_ref().map_err(Error::bus_error),
        Err(Some(BusError::UnknownOffset(_)))
    )
}

async fn send_each(bus: &Bus, events: &[hermes_event::Event]) -> Vec<Offset> {
    let mut producer = bus.producer().await;
    let mut offsets = Vec::new();
    for event in events {
        offsets.push(producer.send(event).await.expect("send"));
    }
    producer.close().await.expect("close");
    offsets
}

async fn iteration_yields_every_event_in_order_with_its_offset_and_timestamp(bus: Bus) {
    let events = users(Category::Base, 1, 5);
    let before = now_secs();
    let offsets = send_each(&bus, &events).await;
    let mut consumer = bus.consumer(DRAINED).await;
    let mut read = Vec::new();
    while let Some(consumed) = consumer.next().await.expect("next") {
        read.push(consumed);
    }
    assert_eq!(
        read.iter()
            .map(|c| c.event().expect("a hermes event"))
            .collect::<Vec<_>>(),
        events
    );
    assert_eq!(
        read.iter().map(|c| c.offset.clone()).collect::<Vec<_>>(),
        offsets
    );
    for pair in read.windows(2) {
        let (a, b) = (&pair[0].timestamp, &pair[1].timestamp);
        assert!(
            (a.seconds, a.nanoseconds) <= (b.seconds, b.nanoseconds),
            "timestamps go forward"
        );
    }
    for consumed in &read {
        assert!(
            consumed.timestamp.seconds >= before - 1
                && consumed.timestamp.seconds <= now_secs() + 1
        );
    }
}

async fn seek_to_beginning_returns_to_the_oldest_event(bus: Bus) {
    let events = users(Category::Base, 1, 3);
    send_each(&bus, &events).await;
    let mut consumer = bus.consumer(DRAINED).await;
    consumer.next().await.expect("next");
    consumer.next().await.expect("next");
    consumer
        .seek_to_beginning()
        .await
        .expect("seek to beginning");
    assert_eq!(
        consumer
            .next()
            .await
            .expect("next")
            .map(|c| c.event().expect("a hermes event")),
        Some(events[0].clone())
    );
}

async fn seek_positions_at_the_event_with_that_offset(bus: Bus) {
    let events = users(Category::Base, 1, 4);
    let offsets = send_each(&bus, &events).await;
    let mut consumer = bus.consumer(DRAINED).await;
    for (i, offset) in offsets.iter().enumerate().rev() {
        consumer.seek(offset).await.expect("seek");
        let consumed = consumer.next().await.expect("next").expect("an event");
        assert_eq!(
            (&consumed.offset, &consumed.event().expect("a hermes event")),
            (offset, &events[i])
        );
    }
}

async fn seek_after_resumes_right_after_the_event(bus: Bus) {
    let events = users(Category::Base, 1, 4);
    let offsets = send_each(&bus, &events).await;
    let mut consumer = bus.consumer(DRAINED).await;
    for i in 0..events.len() - 1 {
        consumer.seek_after(&offsets[i]).await.expect("seek after");
        assert_eq!(
            consumer
                .next()
                .await
                .expect("next")
                .map(|c| c.event().expect("a hermes event")),
            Some(events[i + 1].clone())
        );
    }
    consumer
        .seek_after(&offsets[3])
        .await
        .expect("seek after the last event");
    assert_eq!(
        consumer.next().await.expect("next"),
        None,
        "nothing after the last event"
    );
}

async fn an_offset_the_bus_does_not_hold_is_an_error(bus: Bus) {
    send_each(&bus, &users(Category::Base, 1, 3)).await;
    let mut consumer = bus.consumer(DRAINED).await;
    let first = consumer.next().await.expect("next").expect("an event");
    assert_eq!(first.event(), Ok(user_added(Category::Base, 1)));
    let strangers = [
        Offset::Int(i64::MAX),
        Offset::Int(-5),
        Offset::Float(-1.5),
        Offset::Str("no-such-offset".into()),
        Offset::Bytes(vec![0xde, 0xad]),
    ];
    for offset in &strangers {
        assert!(
            unknown_offset(consumer.seek(offset).await),
            "seek({offset:?}) must fail"
        );
        assert!(
            unknown_offset(consumer.seek_after(offset).await),
            "seek_after({offset:?}) must fail"
        );
    }
    // A failed seek leaves the position where it was: after the first event.
    assert_eq!(
        consumer
            .next()
            .await
            .expect("next")
            .map(|c| c.event().expect("a hermes event")),
        Some(user_added(Category::Base, 2))
    );
}

async fn the_timeout_ends_iteration(bus: Bus) {
    let mut consumer = bus.consumer(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert_eq!(consumer.next().await.expect("next"), None);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waited for the timeout"
    );
    assert!(
        consumer
            .next_batch(10)
            .await
            .expect("next batch")
            .is_empty()
    );
    assert_eq!(
        consumer
            .find_next_event_of_category(Category::Base)
            .await
            .expect("find"),
        None
    );
}

async fn a_waiting_consumer_gets_an_event_sent_meanwhile(bus: Bus) {
    let mut consumer = bus.consumer(Duration::from_secs(20)).await;
    let waiting = tokio::spawn(async move { consumer.next().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let event = user_added(Category::Base, 9);
    send_each(&bus, std::slice::from_ref(&event)).await;
    let consumed = waiting.await.expect("task").expect("next");
    assert_eq!(
        consumed.map(|c| c.event().expect("a hermes event")),
        Some(event)
    );
}

async fn find_next_event_of_category_moves_the_position(bus: Bus) {
    let events = vec![
        user_added(Category::Base, 1),
        user_added(Category::Initsync, 2),
        user_added(Category::Base, 3),
        user_added(Category::Initsync, 4),
    ];
    send_each(&bus, &events).await;
    let mut consumer = bus.consumer(DRAINED).await;
    let found = consumer
        .find_next_event_of_category(Category::Initsync)
        .await
        .expect("find");
    assert_eq!(
        found.map(|c| c.event().expect("a hermes event")),
        Some(events[1].clone())
    );
    assert_eq!(
        consumer
            .next()
            .await
            .expect("next")
            .map(|c| c.event().expect("a hermes event")),
        Some(events[2].clone())
    );
    let found = consumer
        .find_next_event_of_category(Category::Initsync)
        .await
        .expect("find");
    assert_eq!(
        found.map(|c| c.event().expect("a hermes event")),
        Some(events[3].clone())
    );
    assert_eq!(
        consumer
            .find_next_event_of_category(Category::Base)
            .await
            .expect("find"),
        None
    );
}

async fn the_same_events_can_be_read_twice(bus: Bus) {
    let events = users(Category::Initsync, 1, 6);
    send_each(&bus, &events).await;
    for _ in 0..2 {
        let mut consumer = bus.consumer(DRAINED).await;
        let mut read = Vec::new();
        loop {
            let batch = consumer.next_batch(4).await.expect("next batch");
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 4, "at most max events");
            read.extend(
                batch
                    .into_iter()
                    .map(|c| c.event().expect("a hermes event")),
            );
        }
        assert_eq!(read, events);
    }
}

async fn a_batch_is_stored_in_order_with_its_offsets(bus: Bus) {
    let first = users(Category::Base, 1, 3);
    let batch = users(Category::Base, 100, 50);
    let mut producer = bus.producer().await;
    let mut offsets = Vec::new();
    for event in &first {
        offsets.push(producer.send(event).await.expect("send"));
    }
    offsets.extend(producer.send_batch(&batch).await.expect("send batch"));
    assert!(
        producer
            .send_batch(&[])
            .await
            .expect("empty batch")
            .is_empty()
    );
    producer.close().await.expect("close");

    let mut consumer = bus.consumer(DRAINED).await;
    let read = consumer.next_batch(1000).await.expect("next batch");
    let expected: Vec<_> = first.iter().chain(&batch).cloned().collect();
    assert_eq!(
        read.iter()
            .map(|c| c.event().expect("a hermes event"))
            .collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        read.iter().map(|c| c.offset.clone()).collect::<Vec<_>>(),
        offsets
    );
}

async fn producer_and_consumer_reopen_after_close(bus: Bus) {
    let events = users(Category::Base, 1, 4);
    let mut producer = bus.producer().await;
    producer.send_batch(&events[..2]).await.expect("send");
    producer.close().await.expect("close");
    assert!(matches!(
        producer
            .send(&events[2])
            .await
            .as_ref()
            .map_err(Error::bus_error),
        Err(Some(BusError::NotOpen))
    ));
    producer.open().await.expect("reopen");
    producer.send_batch(&events[2..]).await.expect("send");
    producer.close().await.expect("close");

    let mut consumer = bus.consumer(DRAINED).await;
    assert_eq!(
        consumer
            .next()
            .await
            .expect("next")
            .map(|c| c.event().expect("a hermes event")),
        Some(events[0].clone())
    );
    consumer.close().await.expect("close");
    assert!(matches!(
        consumer.next().await.as_ref().map_err(Error::bus_error),
        Err(Some(BusError::NotOpen))
    ));
    consumer.open().await.expect("reopen");
    let rest: Vec<_> = consumer
        .next_batch(10)
        .await
        .expect("next batch")
        .into_iter()
        .map(|c| c.event().expect("a hermes event"))
        .collect();
    assert_eq!(rest, events[1..], "a reopened consumer keeps its position");
}

async fn two_consumers_keep_their_own_positions(bus: Bus) {
    let events = users(Category::Base, 1, 5);
    send_each(&bus, &events).await;
    let mut fast = bus.consumer(DRAINED).await;
    let mut slow = bus.consumer(DRAINED).await;
    for _ in 0..3 {
        fast.next().await.expect("next");
    }
    slow.next().await.expect("next");
    assert_eq!(
        fast.next()
            .await
            .expect("next")
            .map(|c| c.event().expect("a hermes event")),
        Some(events[3].clone())
    );
    assert_eq!(
        slow.next()
            .await
            .expect("next")
            .map(|c| c.event().expect("a hermes event")),
        Some(events[1].clone())
    );
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A bus moves the event's text and never rewrites it: hermes' own layout
/// comes back byte for byte, and so does any other JSON layout a producer
/// was given (another tool's, or hermes' from another version), with the
/// category it was sent with.
async fn the_event_text_comes_back_byte_for_byte(bus: Bus) {
    let hermes = EventText::render(&user_added(Category::Initsync, 7));
    assert!(hermes.json.contains("\n    \"objattrs\": {\n"), "indent 4");
    let compact = EventText {
        json: user_added(Category::Base, 8).to_json_compact(),
        ..EventText::render(&user_added(Category::Base, 8))
    };
    let spaced = EventText {
        json: "{ \"evcategory\" : \"base\", \"eventtype\": \"removed\", \"objtype\": \"T\",\
               \"objpkey\": 1.50, \"objattrs\": {}, \"step\": 0, \"isPartiallyProcessed\": false }\t"
            .to_owned(),
        category: hermes_host::bindings::types::Category::Base,
        objtype: Some("T".into()),
        objpkey: Some("1.5".into()),
    };
    let sent = vec![hermes, compact, spaced];
    let mut producer = bus.producer().await;
    let offsets = producer.send_texts(&sent).await.expect("send-batch");
    producer.close().await.expect("close");

    let read = read_all(&mut bus.consumer(DRAINED).await).await;
    assert_eq!(
        read.iter()
            .map(|c| (c.offset.clone(), c.category, c.json.as_str()))
            .collect::<Vec<_>>(),
        sent.iter()
            .zip(offsets)
            .map(|(e, offset)| (offset, e.category, e.json.as_str()))
            .collect::<Vec<_>>()
    );
    // Each still reads as the event it was.
    assert_eq!(
        read[0].event().expect("a hermes event"),
        user_added(Category::Initsync, 7)
    );
    assert_eq!(
        read[1].event().expect("a hermes event"),
        user_added(Category::Base, 8)
    );
}

/// Runs every case of the suite against the bus that `$make` builds.
macro_rules! conformance {
    ($bus:ident, $make:expr) => {
        mod $bus {
            use super::*;

            macro_rules! case {
                ($case:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        super::$case($make).await;
                    }
                };
            }

            case!(iteration_yields_every_event_in_order_with_its_offset_and_timestamp);
            case!(seek_to_beginning_returns_to_the_oldest_event);
            case!(seek_positions_at_the_event_with_that_offset);
            case!(seek_after_resumes_right_after_the_event);
            case!(an_offset_the_bus_does_not_hold_is_an_error);
            case!(the_timeout_ends_iteration);
            case!(a_waiting_consumer_gets_an_event_sent_meanwhile);
            case!(find_next_event_of_category_moves_the_position);
            case!(the_same_events_can_be_read_twice);
            case!(a_batch_is_stored_in_order_with_its_offsets);
            case!(producer_and_consumer_reopen_after_close);
            case!(two_consumers_keep_their_own_positions);
            case!(the_event_text_comes_back_byte_for_byte);
        }
    };
}

conformance!(file_log, Bus::file_log().await);
conformance!(sqlite, Bus::sqlite().await);
conformance!(redis_streams, Bus::redis_streams().await);
conformance!(event_hubs, Bus::event_hubs().await);
