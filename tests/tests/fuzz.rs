//! Fuzz targets, run with proptest on the stable toolchain: each feeds its
//! reader arbitrary input and the seed corpus (the golden events, a real
//! segment, the example configurations) with random byte mutations, and
//! checks it never panics and never accepts what it must refuse.
//!
//! `HERMES_FUZZ_CASES` sets the executions per target: a few thousand by
//! default, so `cargo test` stays quick; `just fuzz` runs ten million
//! (RELIABILITY.md records the last long run).

use std::io::Cursor;

use file_log::record::Slot;
use hermes_event::{Event, EventHead, compact_json};
use hermes_host::offset;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Executions per target.
fn cases() -> u32 {
    std::env::var("HERMES_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(3000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        // A failure is reduced to a small input; no file is written.
        failure_persistence: None,
        ..Config::default()
    })
}

/// A seed with random edits: bytes replaced, inserted, removed, or a run of
/// bytes copied elsewhere.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let edits = proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..8);
    (0..seeds.len(), edits).prop_map(move |(seed, edits)| {
        let mut bytes = seeds[seed].clone();
        for (kind, at, byte) in edits {
            let at = if bytes.is_empty() {
                0
            } else {
                at % bytes.len()
            };
            match kind % 4 {
                0 if !bytes.is_empty() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                2 if !bytes.is_empty() => {
                    bytes.remove(at);
                }
                _ => {
                    let len = usize::from(byte % 16).min(bytes.len() - at.min(bytes.len()));
                    let run: Vec<u8> = bytes[at..at + len].to_vec();
                    let to = at / 2;
                    bytes.splice(to..to, run);
                }
            }
        }
        bytes
    })
}

/// Any text, or a seed mutated.
fn text(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        4 => mutated(seeds).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn golden() -> Vec<Vec<u8>> {
    [
        include_str!("../../hermes-event/tests/golden/added-user.json"),
        include_str!("../../hermes-event/tests/golden/init-stop.json"),
        include_str!("../../hermes-event/tests/golden/modified-composite-key.json"),
        include_str!("../../hermes-event/tests/golden/modified-non-finite.json"),
    ]
    .iter()
    .flat_map(|text| {
        let event = Event::from_json(text).expect("golden");
        [
            text.as_bytes().to_vec(),
            event.to_json_compact().into_bytes(),
        ]
    })
    .collect()
}

/// The codec: any text is an event or an error, never a panic; an event it
/// accepts writes a text that reads back to the same text (what it writes is
/// what it reads); the routing head agrees with the whole event; the
/// compact form needs no parse.
#[test]
fn the_codec_reads_any_text_without_panic_and_round_trips_what_it_accepts() {
    runner()
        .run(&text(golden()), |input| {
            let event = Event::from_json(&input);
            let head = EventHead::from_json(&input);
            if let Ok(event) = event {
                let written = event.to_json();
                let again = Event::from_json(&written).expect("what it writes, it reads");
                prop_assert_eq!(again.to_json(), written.clone());
                prop_assert_eq!(compact_json(&written), event.to_json_compact());
                let head = head.expect("an event has a head");
                prop_assert_eq!(
                    format!(
                        "{:?}",
                        (
                            head.evcategory,
                            head.eventtype,
                            &head.objtype,
                            &head.objpkey
                        )
                    ),
                    format!(
                        "{:?}",
                        (
                            event.evcategory,
                            event.eventtype,
                            &event.objtype,
                            &event.objpkey
                        )
                    )
                );
            }
            Ok(())
        })
        .expect("no failure");
}

/// A file-log segment, and the records in it, each as written.
fn segment() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut bytes = file_log::record::MAGIC.to_vec();
    let mut records = Vec::new();
    let at = file_log::record::now();
    for (i, text) in golden().iter().enumerate() {
        let json = String::from_utf8_lossy(text).into_owned();
        let mut record = Vec::new();
        file_log::record::encode_into(
            &mut record,
            i as u64,
            &at,
            file_log::record::Category::Base,
            &json,
        );
        bytes.extend(&record);
        records.push(json.into_bytes());
    }
    (bytes, records)
}

/// The file-log record reader: any bytes in a segment are records, an
/// incomplete tail or damage, never a panic, and a record it returns is one
/// that was written, whole.
#[test]
fn the_file_log_reader_never_panics_nor_delivers_a_damaged_record() {
    let (bytes, records) = segment();
    let inputs = prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512),
        6 => mutated(vec![bytes]),
    ];
    runner()
        .run(&inputs, |bytes| {
            let mut reader = Cursor::new(&bytes[..]);
            if bytes.len() >= 8 {
                reader.set_position(8);
            }
            for _ in 0..64 {
                // Stepping over a record agrees with reading it, byte for byte.
                let at = reader.position();
                let skipped = file_log::record::skip_slot(&mut reader).expect("reading memory");
                let stepped = reader.position();
                reader.set_position(at);
                let read = file_log::record::read_slot(&mut reader).expect("reading memory");
                prop_assert_eq!(stepped, reader.position(), "skip and read end at one place");
                match (read, skipped) {
                    (
                        Slot::Record {
                            json, offset, len, ..
                        },
                        Slot::Record {
                            offset: o,
                            len: l,
                            json: none,
                            ..
                        },
                    ) => {
                        prop_assert!(records.contains(&json), "a record nobody wrote");
                        prop_assert_eq!((offset, len, none.len()), (o, l, 0));
                    }
                    (Slot::Record { .. }, other) | (other, Slot::Record { .. }) => {
                        prop_assert!(false, "read and skip disagree: {other:?}");
                    }
                    _ => break,
                }
            }
            let next = reader.position();
            file_log::record::valid_record_after(&mut reader, next, 0).expect("scanning memory");
            Ok(())
        })
        .expect("no failure");
}

/// `--offset` and `--after`: any text is an offset or an error, never a
/// panic; an offset prints in a form that reads back to it.
#[test]
fn offsets_read_any_text_without_panic_and_print_what_reads_back() {
    let seeds = [
        "42",
        "-7",
        "1.5",
        "1e300",
        "\"1700000000000-0\"",
        "{\"bytes\": \"AAH/\"}",
        "abc",
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec();
    runner()
        .run(&text(seeds), |input| {
            if let Ok(parsed) = offset::parse(&input) {
                let printed = offset::to_json(&parsed).to_string();
                prop_assert_eq!(offset::parse(&printed), Ok(parsed));
            }
            Ok(())
        })
        .expect("no failure");
}

/// The configurations: any YAML is read or refused with an error, never a
/// panic, for the server and the client alike.
#[test]
fn configurations_read_any_yaml_without_panic() {
    let seeds = [
        include_str!("../../examples/server.yml"),
        include_str!("../../examples/client.yml"),
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yml");
    runner()
        .run(&text(seeds), |yaml| {
            let _ = hermes_jobs::server::config::ServerConfig::parse(&yaml, &path);
            let _ = hermes_jobs::client::config::ClientConfig::parse(&yaml, &path);
            Ok(())
        })
        .expect("no failure");
}
