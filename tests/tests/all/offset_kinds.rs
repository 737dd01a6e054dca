//! Every offset kind (int, float, str, bytes) travels from a plugin through
//! the host, through the CLI's text form, and back into `seek` and
//! `seek_after`, unchanged (with the offset-kinds guest); and a consumer that
//! traps resumes where it stood.

use std::time::Duration;

use hermes_host::{Consumer, Grants, Offset, offset};
use hermes_wasm_tests::{guests, load};

async fn round_trip(kind: &str, matches_kind: fn(&Offset) -> bool) {
    let plugin = load(guests::OFFSET_KINDS, &[], Grants::default()).await;
    let settings = serde_json::json!({ "kind": kind, "count": 4 });
    let mut consumer = Consumer::create(plugin, &settings).await.expect("create");
    consumer.open().await.expect("open");
    consumer.set_timeout(Some(Duration::from_millis(100)));
    let all = consumer.next_batch(10).await.expect("read");
    assert_eq!(all.len(), 4);
    for consumed in &all {
        assert!(
            matches_kind(&consumed.offset),
            "{kind}: {:?}",
            consumed.offset
        );
    }

    for (i, consumed) in all.iter().enumerate() {
        let printed = offset::to_json(&consumed.offset).to_string();
        let parsed = offset::parse(&printed).expect("the printed form reads back");
        assert_eq!(parsed, consumed.offset, "{kind}: {printed}");

        consumer.seek(&parsed).await.expect("seek");
        assert_eq!(
            consumer.next().await.expect("next").as_ref(),
            Some(consumed),
            "{kind}: seek {printed}"
        );

        consumer.seek_after(&parsed).await.expect("seek after");
        assert_eq!(
            consumer.next().await.expect("next").as_ref(),
            all.get(i + 1),
            "{kind}: seek-after {printed}"
        );
    }
}

#[tokio::test]
async fn int_offsets_round_trip() {
    round_trip("int", |o| matches!(o, Offset::Int(_))).await;
}

#[tokio::test]
async fn float_offsets_round_trip() {
    round_trip("float", |o| matches!(o, Offset::Float(_))).await;
}

#[tokio::test]
async fn str_offsets_round_trip() {
    round_trip("str", |o| matches!(o, Offset::Str(_))).await;
}

#[tokio::test]
async fn bytes_offsets_round_trip() {
    round_trip("bytes", |o| matches!(o, Offset::Bytes(_))).await;
}

#[tokio::test]
async fn after_a_trap_a_fresh_instance_resumes_after_the_last_event_delivered() {
    let plugin = load(guests::OFFSET_KINDS, &[], Grants::default()).await;
    let settings = serde_json::json!({ "kind": "str", "count": 5, "panic_on_read": 3 });
    let mut consumer = Consumer::create(plugin, &settings).await.expect("create");
    consumer.open().await.expect("open");
    consumer.set_timeout(Some(Duration::from_millis(100)));
    let mut keys = Vec::new();
    for _ in 0..2 {
        keys.push(
            consumer
                .next()
                .await
                .expect("next")
                .expect("event")
                .event()
                .expect("a hermes event")
                .objpkey,
        );
    }
    // Every instance traps on its third read: the first after events 0 and 1,
    // the second (placed after event 1) after events 2 and 3.
    let mut traps = 0;
    loop {
        match consumer.next().await {
            Ok(Some(consumed)) => keys.push(consumed.event().expect("a hermes event").objpkey),
            Ok(None) => break,
            Err(error) => {
                assert!(
                    matches!(error, hermes_host::Error::Trapped { .. }),
                    "{error}"
                );
                assert!(error.to_string().contains("crashed"), "{error}");
                traps += 1;
            }
        }
    }
    assert_eq!(traps, 2);
    let expected: Vec<_> = (0..5).map(hermes_event::Value::from).collect();
    assert_eq!(keys, expected, "nothing skipped, nothing repeated");
}

#[tokio::test]
async fn skip_steps_over_a_record_that_traps_every_time() {
    let plugin = load(guests::OFFSET_KINDS, &[], Grants::default()).await;
    let settings = serde_json::json!({ "kind": "str", "count": 5, "panic_at": 2 });
    let mut consumer = Consumer::create(plugin, &settings).await.expect("create");
    consumer.open().await.expect("open");
    consumer.set_timeout(Some(Duration::from_millis(100)));
    let batch = consumer.next_batch(2).await.expect("events 0 and 1");
    assert_eq!(batch.len(), 2);
    for _ in 0..3 {
        let error = consumer.next().await.expect_err("event 2 traps");
        assert!(
            matches!(error, hermes_host::Error::Trapped { .. }),
            "{error}"
        );
    }
    // The instance that trapped is gone; the fresh one stands after event 1.
    assert_eq!(
        consumer.skip().await.expect("skip"),
        Some(Offset::Str("id-2".into()))
    );
    let rest = consumer.next_batch(10).await.expect("the rest");
    let offsets: Vec<_> = rest.iter().map(|c| c.offset.clone()).collect();
    assert_eq!(
        offsets,
        [Offset::Str("id-3".into()), Offset::Str("id-4".into())]
    );
    assert_eq!(consumer.skip().await.expect("skip at the end"), None);
}
