//! What the Redis streams bus promises beyond the conformance suite: the
//! entries' shape, trimming, and riding out a Redis server that goes away and
//! comes back, with nothing lost or duplicated. Every test runs its own
//! redis-server on a free loopback port.

use std::time::Duration;

use hermes_event::{Category, Event, Value};
use hermes_host::{BusError, Consumer, Error, Grants, Offset, Producer, RedisAllow};
use hermes_wasm_tests::{Bus, RedisServer, events_on, guests, load, read_all, user_added, users};

const DRAINED: Duration = Duration::from_millis(200);

/// The stream's entries as Redis holds them: `(id, [field, value, ...])`.
fn entries(bus: &Bus) -> Vec<(String, Vec<String>)> {
    let server = bus.redis.as_ref().expect("a Redis bus");
    let mut redis = redis::Client::open(server.url())
        .and_then(|client| client.get_connection())
        .expect("connect");
    redis::cmd("XRANGE")
        .arg("hermes")
        .arg("-")
        .arg("+")
        .query(&mut redis)
        .expect("XRANGE")
}

fn unavailable<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    matches!(
        result.as_ref().map_err(Error::bus_error),
        Err(Some(BusError::Unavailable(_)))
    )
}

#[tokio::test]
async fn each_event_is_one_entry_with_its_category_and_hermes_json() {
    let bus = Bus::redis_streams().await;
    let events = [
        user_added(Category::Initsync, 1),
        user_added(Category::Base, 2),
    ];
    let mut producer = bus.producer().await;
    let mut offsets = vec![producer.send(&events[0]).await.expect("send")];
    offsets.extend(producer.send_batch(&events[1..]).await.expect("send batch"));

    let entries = entries(&bus);
    assert_eq!(entries.len(), 2);
    for ((id, fields), (event, offset)) in entries.iter().zip(events.iter().zip(&offsets)) {
        assert_eq!(
            offset,
            &Offset::Str(id.clone()),
            "the offset is the entry ID"
        );
        assert_eq!(
            fields,
            &vec![
                "category".to_string(),
                event.evcategory.as_str().to_string(),
                "event".to_string(),
                event.to_json(),
            ]
        );
    }

    // The timestamp is the ID's milliseconds.
    let mut consumer = bus.consumer(DRAINED).await;
    let consumed = consumer.next().await.expect("next").expect("an event");
    let ms: i64 = entries[0]
        .0
        .split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .expect("an ID");
    assert_eq!(consumed.timestamp.seconds, ms / 1000);
    assert_eq!(
        consumed.timestamp.nanoseconds as i64,
        (ms % 1000) * 1_000_000
    );
}

#[tokio::test]
async fn maxlen_trims_the_stream_and_a_trimmed_offset_is_unknown() {
    let mut bus = Bus::redis_streams().await;
    bus.settings["maxlen"] = serde_json::json!(10);
    let mut producer = bus.producer().await;
    let mut offsets = Vec::new();
    for chunk in users(Category::Base, 0, 500).chunks(50) {
        offsets.extend(producer.send_batch(chunk).await.expect("send"));
    }
    let kept = entries(&bus).len();
    assert!(
        (10..500).contains(&kept),
        "about 10 entries kept, Redis may keep a few more: {kept}"
    );
    let mut consumer = bus.consumer(DRAINED).await;
    let refused = consumer.seek(&offsets[0]).await;
    assert!(
        matches!(
            refused.as_ref().map_err(Error::bus_error),
            Err(Some(BusError::UnknownOffset(_)))
        ),
        "{refused:?}"
    );
    consumer
        .seek(&offsets[499])
        .await
        .expect("the newest is kept");
}

#[tokio::test]
async fn a_producer_rides_out_redis_going_away_with_nothing_lost_or_doubled() {
    let mut bus = Bus::on_redis(RedisServer::start_durable()).await;
    let before = users(Category::Base, 1, 3);
    let during = user_added(Category::Base, 10);
    let after = users(Category::Base, 20, 3);

    let mut producer = bus.producer().await;
    producer.send_batch(&before).await.expect("send");

    bus.redis.as_mut().expect("server").kill();
    assert!(unavailable(producer.send(&during).await));
    assert!(unavailable(producer.send_batch(&after).await));

    bus.redis.as_mut().expect("server").restart();
    // The same instance connects again; the failed sends are sent again, as
    // hermes-server does with changes it could not send.
    producer.send(&during).await.expect("send after restart");
    producer
        .send_batch(&after)
        .await
        .expect("batch after restart");

    let expected: Vec<Event> = before
        .iter()
        .chain(std::iter::once(&during))
        .chain(&after)
        .cloned()
        .collect();
    assert_eq!(events_on(&bus, DRAINED).await, expected);
}

#[tokio::test]
async fn a_consumer_rides_out_redis_going_away_and_resumes_where_it_was() {
    let mut bus = Bus::on_redis(RedisServer::start_durable()).await;
    let first = users(Category::Base, 1, 3);
    let second = users(Category::Base, 10, 2);
    let mut producer = bus.producer().await;
    producer.send_batch(&first).await.expect("send");

    let mut consumer = bus.consumer(Duration::from_secs(20)).await;
    for event in &first {
        assert_eq!(
            consumer
                .next()
                .await
                .expect("next")
                .map(|c| c.event().expect("a hermes event")),
            Some(event.clone())
        );
    }
    // The consumer now waits in XREAD BLOCK; the server dies under it.
    let waiting = tokio::spawn(async move {
        let result = consumer.next().await;
        (consumer, result)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    bus.redis.as_mut().expect("server").kill();
    let (mut consumer, result) = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("the wait ends when the server goes away")
        .expect("task");
    assert!(
        unavailable(result),
        "the consumer reports the bus unavailable"
    );
    assert!(unavailable(consumer.next().await), "still down");

    bus.redis.as_mut().expect("server").restart();
    producer
        .send_batch(&second)
        .await
        .expect("send after restart");
    consumer.set_timeout(Some(DRAINED));
    let mut rest = Vec::new();
    while let Some(consumed) = consumer.next().await.expect("next after restart") {
        rest.push(consumed.event().expect("a hermes event"));
    }
    assert_eq!(rest, second, "nothing skipped, nothing read twice");
}

/// A command to the bus's server, outside the plugin.
fn redis_command(bus: &Bus, args: &[&str]) -> redis::Value {
    let server = bus.redis.as_ref().expect("a Redis bus");
    let mut redis = redis::Client::open(server.url())
        .and_then(|client| client.get_connection())
        .expect("connect");
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query(&mut redis).expect("the command runs")
}

#[tokio::test]
async fn a_full_redis_refuses_a_batch_whole_with_a_clear_error_and_takes_it_once_room_is_back() {
    let bus = Bus::on_redis(RedisServer::start()).await;
    let mut producer = bus.producer().await;
    let mut acknowledged = users(Category::Base, 0, 100);
    producer.send_batch(&acknowledged).await.expect("send");

    // Room for a few more batches, then Redis refuses writes.
    let info = match redis_command(&bus, &["INFO", "memory"]) {
        redis::Value::BulkString(text) => String::from_utf8(text).expect("UTF-8"),
        other => panic!("INFO answered {other:?}"),
    };
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("used_memory");
    let limit = (used + 256 * 1024).to_string();
    redis_command(&bus, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis_command(&bus, &["CONFIG", "SET", "maxmemory", &limit]);

    let mut refused = None;
    for round in 1..1000 {
        let batch = users(Category::Base, round * 100, 100);
        match producer.send_batch(&batch).await {
            Ok(offsets) => {
                assert_eq!(offsets.len(), batch.len());
                acknowledged.extend(batch);
            }
            Err(error) => {
                refused = Some((batch, error));
                break;
            }
        }
    }
    let (batch, error) = refused.expect("Redis fills up");
    let message = error.to_string();
    assert!(
        message.contains("OOM") && message.contains("maxmemory"),
        "the error says Redis is full: {message}"
    );
    assert_eq!(
        entries(&bus).len(),
        acknowledged.len(),
        "nothing of the refused batch is stored"
    );
    assert_eq!(
        events_on(&bus, DRAINED).await,
        acknowledged,
        "a full Redis still reads"
    );

    redis_command(&bus, &["CONFIG", "SET", "maxmemory", "0"]);
    producer
        .send_batch(&batch)
        .await
        .expect("the same producer sends once there is room");
    acknowledged.extend(batch);
    assert_eq!(
        events_on(&bus, DRAINED).await,
        acknowledged,
        "each event once, in order"
    );
}

#[tokio::test]
async fn a_server_the_operator_did_not_allow_is_refused_at_open() {
    let server = RedisServer::start();
    let plugin = load(guests::REDIS_STREAMS, &[], Grants::default()).await;
    let settings = serde_json::json!({ "url": server.url(), "stream": "hermes" });
    let mut producer = Producer::create(plugin.clone(), &settings)
        .await
        .expect("create");
    let error = producer.open().await.expect_err("not allowed");
    let message = error.to_string();
    assert!(
        message.contains(&server.url()) && message.contains("--allow-redis"),
        "{message}"
    );

    let missing = Producer::create(plugin, &serde_json::json!({ "url": server.url() })).await;
    let message = missing.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("stream"), "{message}");
}

/// On a single-threaded runtime, a consumer blocked in `XREAD BLOCK` must
/// leave the thread free: the producer's send below runs on that same thread.
/// Its one-second timeout is a single blocking call; were the thread held,
/// the send would only run after it, and the consumer would see nothing.
#[tokio::test(flavor = "current_thread")]
async fn a_blocking_read_holds_no_host_thread() {
    let bus = Bus::redis_streams().await;
    let mut consumer = bus.consumer(Duration::from_secs(1)).await;
    let mut producer = bus.producer().await;
    let event = user_added(Category::Base, 5);
    let (consumed, sent) = tokio::join!(consumer.next(), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        producer.send(&event).await
    });
    sent.expect("send while the consumer waits");
    assert_eq!(
        consumed
            .expect("next")
            .map(|c| c.event().expect("a hermes event")),
        Some(event)
    );
}

/// A consumer of `bus` whose plugin gets `mib` MiB of memory, from the
/// beginning, waiting `DRAINED` for new entries.
async fn consumer_with_memory(bus: &Bus, mib: usize) -> Consumer {
    let server = bus.redis.as_ref().expect("a Redis bus");
    let grants = Grants {
        redis: vec![RedisAllow::parse(&server.url()).expect("a valid URL")],
        memory_limit: mib << 20,
        ..Grants::default()
    };
    let plugin = load(guests::REDIS_STREAMS, &[], grants).await;
    let mut consumer = Consumer::create(plugin, &bus.consumer_settings)
        .await
        .expect("consumer builds");
    consumer.open().await.expect("opens");
    consumer.seek_to_beginning().await.expect("seeks");
    consumer.set_timeout(Some(DRAINED));
    consumer
}

/// User `id` with a `photo` of `bytes` bytes.
fn user_with_photo(id: i64, bytes: usize) -> Event {
    let mut event = user_added(Category::Base, id);
    event.objattrs = Value::Object(vec![("photo".into(), Value::from("x".repeat(bytes)))]);
    event
}

#[tokio::test]
async fn entries_larger_together_than_the_plugin_come_in_smaller_pages() {
    // 40 entries of 1 MiB for a plugin of 16 MiB: one page of 256 would
    // not fit in it.
    let bus = Bus::redis_streams().await;
    let events: Vec<Event> = (1..=40).map(|id| user_with_photo(id, 1 << 20)).collect();
    let mut producer = bus.producer().await;
    let offsets = producer.send_batch(&events).await.expect("send");
    let mut consumer = consumer_with_memory(&bus, 16).await;
    let read = read_all(&mut consumer).await;
    let read: Vec<_> = read.iter().map(|c| c.offset.clone()).collect();
    assert_eq!(read, offsets);
}

#[tokio::test]
async fn an_entry_too_large_for_the_plugin_is_named_not_taken_for_redis_away() {
    let bus = Bus::redis_streams().await;
    let events = [
        user_with_photo(1, 10),
        user_with_photo(2, 20 << 20),
        user_with_photo(3, 10),
    ];
    let mut producer = bus.producer().await;
    let offsets = producer.send_batch(&events).await.expect("send");
    let mut consumer = consumer_with_memory(&bus, 16).await;
    let first = consumer
        .next()
        .await
        .expect("next")
        .expect("the first entry");
    assert_eq!(first.offset, offsets[0]);
    let Offset::Str(id) = &offsets[0] else {
        panic!("an entry ID: {:?}", offsets[0])
    };
    for _ in 0..2 {
        let error = consumer.next().await.expect_err("too large");
        assert!(
            matches!(error.bus_error(), Some(BusError::Other(m))
                if m.contains(&format!("the entry after {id} is too large"))
                    && m.contains("memory_mib")),
            "{error}"
        );
    }
    // A plugin with room for it reads on.
    let mut roomy = consumer_with_memory(&bus, 128).await;
    let read: Vec<_> = read_all(&mut roomy)
        .await
        .iter()
        .map(|c| c.offset.clone())
        .collect();
    assert_eq!(read, offsets);
}

#[tokio::test]
async fn the_entries_before_one_that_makes_the_plugin_trap_are_delivered() {
    // A 7 MiB entry passes the host's 8 MiB bound on replies but not the
    // plugin of 8 MiB: the host replaces the instance each time, and the
    // fresh one's first pages are small enough to deliver what precedes it.
    let bus = Bus::redis_streams().await;
    let events: Vec<Event> = (1..=12)
        .map(|id| user_with_photo(id, if id == 9 { 7 << 20 } else { 10 }))
        .collect();
    let mut producer = bus.producer().await;
    let offsets = producer.send_batch(&events).await.expect("send");
    let mut consumer = consumer_with_memory(&bus, 8).await;
    let mut read = Vec::new();
    let mut failures = 0;
    while failures < 3 {
        match consumer.next().await {
            Ok(Some(consumed)) => {
                read.push(consumed.offset);
                failures = 0;
            }
            Ok(None) => panic!("drained before the large entry"),
            Err(e) => {
                assert!(matches!(e, Error::Trapped { .. }), "{e}");
                failures += 1;
            }
        }
    }
    assert_eq!(read, offsets[..8]);
}
