//! Partitions on a real bus plugin (the built-in file-log): events stored
//! in order with their sequence numbers, read back as sent, and a
//! partition reopened where it left off.

mod support;

use hermes_event_hubs::partition::{Extent, Incoming, Partition, envelope};
use hermes_host::Offset;
use support::file_log;

fn incoming(n: u8, key: Option<&str>) -> Incoming {
    Incoming {
        message: vec![0x00, 0x53, 0x75, 0xa0, 0x01, n],
        partition_key: key.map(str::to_owned),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_keeps_its_events_in_order_and_reopens_where_it_left_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = file_log(dir.path()).await;
    let partition = Partition::open(&bus, "hub1", 2).await.expect("opens");
    assert_eq!(partition.next_sequence_number(), 0);
    let first = [incoming(1, None), incoming(2, Some("k")), incoming(3, None)];
    let stored = partition.append(&first).await.expect("stored");
    assert_eq!(
        stored
            .iter()
            .map(|s| (s.sequence_number, s.offset.clone()))
            .collect::<Vec<_>>(),
        [
            (0, Offset::Int(0)),
            (1, Offset::Int(1)),
            (2, Offset::Int(2))
        ]
    );
    let more = [incoming(4, None), incoming(5, Some("k"))];
    let stored = partition.append(&more).await.expect("stored");
    assert_eq!(stored[1].sequence_number, 4);
    assert!(stored[0].enqueued_time > 1_700_000_000_000, "{stored:?}");
    let last = stored[1].clone();
    partition.close().await.expect("closes");
    assert!(
        dir.path().join("hub1/2").is_dir(),
        "the partition's own log"
    );

    // Reopened, it goes on from the bus: the log is the partition.
    let reopened = Partition::open(&bus, "hub1", 2).await.expect("reopens");
    assert_eq!(reopened.next_sequence_number(), 5);
    // Its last event as it was stored: the offset and the enqueued time
    // are the bus's, not the memory's.
    assert_eq!(
        reopened.extent(),
        Extent {
            begin_sequence_number: 0,
            last: Some(last),
        }
    );
    let mut reader = reopened.reader().await.expect("a reader");
    reader.seek_to_beginning().await.expect("seek");
    let read: Vec<_> = reader
        .next_batch(10)
        .await
        .expect("read")
        .iter()
        .map(|consumed| {
            let e = envelope(&reader.parse(consumed).expect("an event")).expect("an envelope");
            (e.sequence_number, e.message, e.partition_key)
        })
        .collect();
    let sent: Vec<_> = first
        .iter()
        .chain(&more)
        .zip(0..)
        .map(|(event, n)| (n, event.message.clone(), event.partition_key.clone()))
        .collect();
    assert_eq!(read, sent);
    // Other partitions are other logs.
    let other = Partition::open(&bus, "hub1", 0).await.expect("opens");
    assert_eq!(other.next_sequence_number(), 0);
}
