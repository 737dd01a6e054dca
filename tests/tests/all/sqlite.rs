//! What the sqlite bus promises beyond the conformance suite: hermes' own
//! table and row format, so that hermes and hermes-wasm can share a database;
//! retention; a read-only consumer; a missing file as an empty bus.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hermes_event::{Category, Event, EventType, Value};
use hermes_host::{BusError, Consumer, DirGrant, Error, Grants, Offset, Producer, Timestamp};
use hermes_wasm_tests::{Bus, guests, load, read_all, user_added};

const DRAINED: Duration = Duration::from_millis(200);

/// The table as hermes' sqlite producer creates it.
const HERMES_TABLE: &str = "CREATE TABLE IF NOT EXISTS hermesmessages (msgid INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL, timestamp REAL NOT NULL)";

/// `user_added(Category::Base, 7).to_json()`, written out by hand from
/// hermes' format: indent 4, every non-ASCII character escaped.
const USER_7: &str = r#"{
    "evcategory": "base",
    "eventtype": "added",
    "objtype": "SRVUsers",
    "objpkey": 7,
    "objattrs": {
        "id": 7,
        "login": "user7",
        "name": "Zo\u00eb \ud83d\ude00"
    },
    "step": 0,
    "isPartiallyProcessed": false
}"#;

/// An initsync `init-stop` event in hermes' format.
const INIT_STOP: &str = r#"{
    "evcategory": "initsync",
    "eventtype": "init-stop",
    "objtype": null,
    "objpkey": null,
    "objattrs": {},
    "step": 0,
    "isPartiallyProcessed": false
}"#;

fn file(bus: &Bus) -> PathBuf {
    bus.dir.path().join("bus.sqlite")
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// A database as hermes' producer leaves it, with `(data, timestamp)` rows.
fn hermes_database(path: &Path, rows: &[(&str, f64)]) {
    let db = rusqlite::Connection::open(path).expect("open");
    db.execute(HERMES_TABLE, []).expect("create");
    for (data, timestamp) in rows {
        db.execute(
            "INSERT INTO hermesmessages (data, timestamp) VALUES (?1, ?2)",
            rusqlite::params![data, timestamp],
        )
        .expect("insert");
    }
}

fn unknown_offset(result: Result<(), Error>) -> bool {
    matches!(
        result.as_ref().map_err(Error::bus_error),
        Err(Some(BusError::UnknownOffset(_)))
    )
}

#[tokio::test]
async fn rows_are_hermes_own_format() {
    let bus = Bus::sqlite().await;
    let before = now();
    let mut producer = bus.producer().await;
    let mut offsets = vec![
        producer
            .send(&user_added(Category::Base, 7))
            .await
            .expect("send"),
    ];
    offsets.extend(
        producer
            .send_batch(&[
                user_added(Category::Initsync, 8),
                user_added(Category::Base, 9),
            ])
            .await
            .expect("send batch"),
    );
    producer.close().await.expect("close");
    let after = now();
    assert_eq!(offsets, [1, 2, 3].map(Offset::Int));

    let db = rusqlite::Connection::open(file(&bus)).expect("open");
    let schema: String = db
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'hermesmessages'",
            [],
            |row| row.get(0),
        )
        .expect("the table exists");
    assert_eq!(schema, HERMES_TABLE.replace(" IF NOT EXISTS", ""));

    let mut statement = db
        .prepare(
            "SELECT msgid, data, typeof(timestamp), timestamp FROM hermesmessages ORDER BY msgid",
        )
        .expect("prepare");
    let rows: Vec<(i64, String, String, f64)> = statement
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(rows[0].1, USER_7);
    assert!(rows[1].1.contains("\"evcategory\": \"initsync\""));
    for (_, _, kind, timestamp) in &rows {
        assert_eq!(kind, "real", "timestamps are floats");
        assert!(
            (before..=after).contains(timestamp),
            "{timestamp} is Unix seconds of the send"
        );
    }
    assert!(
        rows[0].3 != rows[0].3.floor() || rows[1].3 != rows[1].3.floor(),
        "timestamps keep the fraction of a second"
    );
}

#[tokio::test]
async fn a_database_written_by_hermes_is_read_back_exactly() {
    let bus = Bus::sqlite().await;
    hermes_database(
        &file(&bus),
        &[(USER_7, 1_700_000_000.25), (INIT_STOP, 1_700_000_001.5)],
    );

    let mut consumer = bus.consumer(DRAINED).await;
    let read = read_all(&mut consumer).await;
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].offset, Offset::Int(1));
    assert_eq!(
        read[0].event().expect("a hermes event"),
        user_added(Category::Base, 7)
    );
    assert_eq!(
        read[0].timestamp,
        Timestamp {
            seconds: 1_700_000_000,
            nanoseconds: 250_000_000
        }
    );
    assert_eq!(read[1].offset, Offset::Int(2));
    assert_eq!(
        read[1].event().expect("a hermes event"),
        Event::new(
            Category::Initsync,
            EventType::InitStop,
            None,
            Value::Null,
            Value::Object(vec![])
        )
    );
    assert_eq!(
        read[1].timestamp,
        Timestamp {
            seconds: 1_700_000_001,
            nanoseconds: 500_000_000
        }
    );

    // Our producer appends after hermes' rows, in the same format.
    let mut producer = bus.producer().await;
    let offset = producer
        .send(&user_added(Category::Base, 7))
        .await
        .expect("send");
    assert_eq!(offset, Offset::Int(3));
    let db = rusqlite::Connection::open(file(&bus)).expect("open");
    let data: String = db
        .query_row(
            "SELECT data FROM hermesmessages WHERE msgid = 3",
            [],
            |row| row.get(0),
        )
        .expect("row 3");
    assert_eq!(data, USER_7);
}

#[tokio::test]
async fn retention_purges_old_rows_at_open_and_offsets_keep_growing() {
    let bus = Bus::sqlite().await;
    let day = 86_400.0;
    let now = now();
    hermes_database(
        &file(&bus),
        &[
            (USER_7, now - 40.0 * day),
            (USER_7, now - 31.0 * day),
            (USER_7, now - 29.0 * day),
            (USER_7, now - 1.0),
        ],
    );
    let mut producer = bus.producer().await; // retention_in_days: 30
    let offset = producer
        .send(&user_added(Category::Base, 9))
        .await
        .expect("send");
    assert_eq!(offset, Offset::Int(5), "msgids are never reused");

    let mut consumer = bus.consumer(DRAINED).await;
    let offsets: Vec<_> = read_all(&mut consumer)
        .await
        .into_iter()
        .map(|c| c.offset)
        .collect();
    assert_eq!(offsets, [3, 4, 5].map(Offset::Int));

    // hermes' seek range: from the oldest msgid held to the next one.
    for purged in [1, 2] {
        assert!(unknown_offset(consumer.seek(&Offset::Int(purged)).await));
    }
    // Resuming after a purged msgid is allowed: after 1, msgid 2 was purged
    // unread, a gap; after 2, nothing was missed.
    consumer
        .seek_after(&Offset::Int(1))
        .await
        .expect("after a purged msgid");
    assert!(matches!(
        consumer.next().await,
        Err(hermes_host::Error::Bus { error: hermes_host::BusError::Gap(m), .. }) if m.contains("msgid 2 was deleted")
    ));
    assert_eq!(
        consumer.next().await.expect("next").map(|c| c.offset),
        Some(Offset::Int(3))
    );
    consumer
        .seek_after(&Offset::Int(2))
        .await
        .expect("after a purged msgid");
    assert_eq!(
        consumer.next().await.expect("no gap").map(|c| c.offset),
        Some(Offset::Int(3))
    );
    assert!(unknown_offset(consumer.seek_after(&Offset::Int(6)).await));
    assert!(unknown_offset(consumer.seek(&Offset::Int(7)).await));
    consumer
        .seek(&Offset::Int(6))
        .await
        .expect("the next msgid");
    assert_eq!(consumer.next().await.expect("next"), None);
    consumer.seek(&Offset::Int(3)).await.expect("the oldest");
    assert_eq!(
        consumer.next().await.expect("next").map(|c| c.offset),
        Some(Offset::Int(3))
    );
}

#[tokio::test]
async fn the_consumer_reads_through_a_read_only_grant_and_writes_nothing() {
    let bus = Bus::sqlite().await;
    let events = hermes_wasm_tests::users(Category::Base, 1, 4);
    let mut producer = bus.producer().await;
    producer.send_batch(&events).await.expect("send");
    producer.close().await.expect("close");
    let before = std::fs::read(file(&bus)).expect("read");
    let entries_before = std::fs::read_dir(bus.dir.path()).expect("dir").count();

    let grant = DirGrant::parse(&format!("{}:ro", bus.dir.path().display())).expect("grant");
    let grants = Grants {
        dirs: vec![grant],
        ..Grants::default()
    };
    let plugin = load(guests::SQLITE, &[], grants).await;
    let mut consumer = Consumer::create(plugin.clone(), &bus.consumer_settings)
        .await
        .expect("create");
    consumer.open().await.expect("open");
    consumer.set_timeout(Some(DRAINED));
    let read: Vec<_> = read_all(&mut consumer)
        .await
        .into_iter()
        .map(|c| c.event().expect("a hermes event"))
        .collect();
    assert_eq!(read, events);
    consumer.close().await.expect("close");
    assert_eq!(std::fs::read(file(&bus)).expect("read"), before);
    assert_eq!(
        std::fs::read_dir(bus.dir.path()).expect("dir").count(),
        entries_before,
        "no journal or other file left behind"
    );

    // The producer needs to write: the read-only grant refuses it, clearly.
    let mut producer = Producer::create(plugin, &bus.settings)
        .await
        .expect("create");
    let refused = producer.open().await.expect_err("a read-only grant");
    assert!(refused.to_string().contains("read-only"), "{refused}");
}

#[tokio::test]
async fn a_missing_database_is_an_empty_bus_until_the_producer_creates_it() {
    let bus = Bus::sqlite().await;
    let mut consumer = bus.consumer(DRAINED).await;
    assert_eq!(consumer.next().await.expect("next"), None);
    assert!(
        !file(&bus).exists(),
        "the consumer does not create the database"
    );
    assert!(unknown_offset(consumer.seek(&Offset::Int(5)).await));

    let event = user_added(Category::Base, 1);
    let mut producer = bus.producer().await;
    producer.send(&event).await.expect("send");
    assert_eq!(
        consumer
            .next()
            .await
            .expect("next")
            .map(|c| c.event().expect("a hermes event")),
        Some(event),
        "the same consumer sees the bus once it exists"
    );
}

#[tokio::test]
async fn a_row_that_is_not_a_hermes_event_is_reported_not_skipped() {
    let bus = Bus::sqlite().await;
    hermes_database(
        &file(&bus),
        &[(USER_7, 1.0), ("{not json", 2.0), (USER_7, 3.0)],
    );
    let mut consumer = bus.consumer(DRAINED).await;
    assert_eq!(
        consumer.next().await.expect("next").map(|c| c.offset),
        Some(Offset::Int(1))
    );
    let error = consumer.next().await.expect_err("a damaged row");
    assert!(
        matches!(error.bus_error(), Some(BusError::Corrupted(m)) if m.contains("msgid 2")),
        "{error}"
    );
}

/// hermes' text for user `id` with a `photo` of `bytes` bytes.
fn user_with_photo(id: i64, bytes: usize) -> String {
    let mut event = user_added(Category::Base, id);
    event.objattrs = Value::Object(vec![("photo".into(), Value::from("x".repeat(bytes)))]);
    event.to_json()
}

/// `(user id, msgid)` of what was read.
fn users(consumed: &[hermes_host::consumer::Consumed]) -> Vec<(i64, Offset)> {
    consumed
        .iter()
        .map(|c| {
            let event = c.event().expect("a hermes event");
            let Value::Integer(id) = event.objpkey else {
                panic!("a user's key: {:?}", event.objpkey)
            };
            let id = id.as_i64().expect("a small key");
            (id, c.offset.clone())
        })
        .collect()
}

#[tokio::test]
async fn rows_larger_together_than_one_result_are_read_in_pages_cut_to_a_size() {
    // 70 rows of 1 MiB: more than the 64 MiB one query may return, and all
    // within the 256 rows a page may hold.
    let bus = Bus::sqlite().await;
    let rows: Vec<String> = (1..=70).map(|id| user_with_photo(id, 1 << 20)).collect();
    let rows: Vec<(&str, f64)> = rows.iter().map(|r| (r.as_str(), 1.0)).collect();
    hermes_database(&file(&bus), &rows);
    let mut consumer = bus.consumer(DRAINED).await;
    let read = users(&read_all(&mut consumer).await);
    let expected: Vec<_> = (1..=70).map(|id| (id, Offset::Int(id))).collect();
    assert_eq!(read, expected);
}

#[tokio::test]
async fn skip_steps_over_a_row_too_large_to_read_without_reading_it() {
    // hermes has no size limit; a plugin reads values of 16 MiB at most.
    let bus = Bus::sqlite().await;
    let huge = user_with_photo(3, 20 << 20);
    let small: Vec<String> = [1, 2, 4]
        .iter()
        .map(|&id| user_with_photo(id, 10))
        .collect();
    hermes_database(
        &file(&bus),
        &[
            (&small[0], 1.0),
            (&small[1], 2.0),
            (&huge, 3.0),
            (&small[2], 4.0),
        ],
    );
    let mut consumer = bus.consumer(DRAINED).await;
    // The rows before it are delivered.
    let mut read = Vec::new();
    for _ in 0..2 {
        read.push(consumer.next().await.expect("a small row").expect("held"));
    }
    assert_eq!(users(&read), [(1, Offset::Int(1)), (2, Offset::Int(2))]);
    // It fails the same way every time, naming its msgid.
    for _ in 0..2 {
        let error = consumer.next().await.expect_err("too large");
        assert!(
            matches!(error.bus_error(), Some(BusError::Other(m)) if m.contains("msgid 3")),
            "{error}"
        );
    }
    assert_eq!(consumer.skip().await.expect("skip"), Some(Offset::Int(3)));
    let next = consumer.next().await.expect("next").expect("held");
    assert_eq!(users(&[next]), [(4, Offset::Int(4))]);
    assert_eq!(consumer.skip().await.expect("skip"), None, "drained");
}

#[tokio::test]
async fn skip_reports_what_retention_deleted_and_refuses_a_damaged_row() {
    let bus = Bus::sqlite().await;
    let rows: Vec<String> = (1..=5).map(|id| user_with_photo(id, 10)).collect();
    let rows: Vec<(&str, f64)> = rows.iter().map(|r| (r.as_str(), 1.0)).collect();
    hermes_database(&file(&bus), &rows);
    let mut consumer = bus.consumer(DRAINED).await;
    assert_eq!(consumer.skip().await.expect("skip"), Some(Offset::Int(1)));
    let db = rusqlite::Connection::open(file(&bus)).expect("open");
    db.execute("DELETE FROM hermesmessages WHERE msgid IN (2, 3)", [])
        .expect("delete");
    db.execute(
        "UPDATE hermesmessages SET data = x'00ff' WHERE msgid = 5",
        [],
    )
    .expect("damage");
    let error = consumer.skip().await.expect_err("a gap");
    assert!(
        matches!(error.bus_error(), Some(BusError::Gap(m)) if m.contains("msgid 2 to 3")),
        "{error}"
    );
    assert_eq!(consumer.skip().await.expect("skip"), Some(Offset::Int(4)));
    let error = consumer.skip().await.expect_err("damage");
    assert!(
        matches!(error.bus_error(), Some(BusError::Corrupted(m)) if m.contains("msgid 5: data is not text")),
        "{error}"
    );
}

#[tokio::test]
async fn a_row_that_makes_the_plugin_trap_is_the_one_skip_steps_over() {
    // A plugin of 8 MiB traps on a row of 7 MiB, small enough to share a
    // page with the rows around it: the rows before it are still delivered,
    // and `skip` steps over that row, not an earlier one.
    let dir = tempfile::tempdir().expect("tempdir");
    let grants = Grants {
        memory_limit: 8 << 20,
        ..Grants::default()
    };
    let plugin = load(guests::SQLITE, &[dir.path()], grants).await;
    let uri = dir.path().join("bus.sqlite");
    let rows: Vec<String> = (1..=12)
        .map(|id| user_with_photo(id, if id == 9 { 7 << 20 } else { 10 }))
        .collect();
    let rows: Vec<(&str, f64)> = rows.iter().map(|r| (r.as_str(), 1.0)).collect();
    hermes_database(&uri, &rows);
    let mut consumer = Consumer::create(plugin, &serde_json::json!({ "uri": uri }))
        .await
        .expect("consumer builds");
    consumer.open().await.expect("opens");
    consumer.seek_to_beginning().await.expect("seeks");
    consumer.set_timeout(Some(DRAINED));
    let mut read = Vec::new();
    let mut failures = 0;
    while failures < 3 {
        match consumer.next().await {
            Ok(Some(consumed)) => {
                read.push(consumed);
                failures = 0;
            }
            Ok(None) => panic!("drained before the large row"),
            Err(e) => {
                assert!(matches!(e, Error::Trapped { .. }), "{e}");
                failures += 1;
            }
        }
    }
    let expected: Vec<_> = (1..=8).map(|id| (id, Offset::Int(id))).collect();
    assert_eq!(users(&read), expected);
    assert_eq!(consumer.skip().await.expect("skip"), Some(Offset::Int(9)));
    let rest = users(&read_all(&mut consumer).await);
    let expected: Vec<_> = (10..=12).map(|id| (id, Offset::Int(id))).collect();
    assert_eq!(rest, expected);
}
