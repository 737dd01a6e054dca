//! Faults from outside, checked on the binary: a disk that fills up under
//! the producer. The disk is a real tmpfs of a few MiB (see
//! `support::small_disk`), so the plugin meets a real `ENOSPC`.

mod support;

use std::path::Path;
use std::process::Output;

use hermes_event::Event;
use support::small_disk::SmallDisk;
use support::{stderr, stdout};

/// `n` events from `first` on, about 300 bytes each, as JSON lines.
fn events(first: usize, n: usize) -> Vec<String> {
    (first..first + n)
        .map(|i| {
            format!(
                r#"{{"evcategory": "base", "eventtype": "added", "objtype": "U", "objpkey": {i}, "objattrs": {{"text": "{}"}}}}"#,
                "x".repeat(200)
            )
        })
        .collect()
}

/// The last `acknowledged N events` line of `produce --progress`.
fn acknowledged(output: &Output) -> usize {
    stdout(output)
        .lines()
        .filter_map(|l| l.strip_prefix("acknowledged ")?.split_once(' '))
        .filter_map(|(n, _)| n.parse().ok())
        .max()
        .unwrap_or(0)
}

/// A bus on the small disk: the flags of its producer and its consumer.
struct OnDisk {
    produce: Vec<String>,
    consume: Vec<String>,
}

impl OnDisk {
    fn new(plugin: &str, disk: &Path) -> OnDisk {
        let (produce, consume) = match plugin {
            "file-log" => {
                let path = disk.join("bus");
                (
                    serde_json::json!({ "path": path, "segment_max_bytes": 65_536 }),
                    serde_json::json!({ "path": path }),
                )
            }
            _ => {
                let uri = disk.join("bus.sqlite");
                (
                    serde_json::json!({ "uri": uri, "retention_in_days": 30 }),
                    serde_json::json!({ "uri": uri }),
                )
            }
        };
        let flags = |settings: serde_json::Value| {
            vec![
                "--plugin".into(),
                plugin.into(),
                "--dir".into(),
                disk.display().to_string(),
                "--settings".into(),
                settings.to_string(),
            ]
        };
        OnDisk {
            produce: flags(produce),
            consume: flags(consume),
        }
    }

    fn args<'a>(&'a self, command: &'a str, more: &[&'a str]) -> Vec<&'a str> {
        let flags = if command == "produce" {
            &self.produce
        } else {
            &self.consume
        };
        let mut args = vec![command];
        args.extend(flags.iter().map(String::as_str));
        args.extend(more);
        args
    }
}

/// Everything on the bus, read back by `consume`: each event's offset and
/// JSON. Damage anywhere fails the read, and the test.
fn held(disk: &SmallDisk, dir: &Path, bus: &OnDisk) -> Vec<(serde_json::Value, serde_json::Value)> {
    let output = disk.hermes_wasm(
        dir,
        &bus.args("consume", &["--from-beginning", "--timeout-ms", "0"]),
    );
    assert!(
        output.status.success(),
        "the bus reads back whole: {}",
        stderr(&output)
    );
    stdout(&output)
        .lines()
        .map(|line| {
            let mut consumed: serde_json::Value = serde_json::from_str(line).expect("JSON");
            (consumed["offset"].take(), consumed["event"].take())
        })
        .collect()
}

/// Checks that `held` is exactly the first events of `input`, with offsets
/// one after another (file-log from 0, sqlite's msgids from 1).
fn check_prefix(plugin: &str, held: &[(serde_json::Value, serde_json::Value)], input: &[String]) {
    assert!(held.len() <= input.len(), "nothing is stored twice");
    let first = if plugin == "file-log" { 0 } else { 1 };
    for (i, (offset, event)) in held.iter().enumerate() {
        assert_eq!(
            Event::from_json(&event.to_string()).expect("a hermes event"),
            Event::from_json(&input[i]).expect("a hermes event"),
            "event {i} is the input's, in order"
        );
        assert_eq!(offset, &serde_json::json!(first + i), "offsets are dense");
    }
}

/// A disk that fills up while `produce` writes: one clear error line and a
/// non-zero exit; the bus holds a whole prefix of the input, at least every
/// acknowledged event, nothing damaged; once space is back the next run
/// appends the rest at the right offset.
fn a_full_disk_stops_produce_cleanly_and_the_next_run_carries_on(plugin: &str) {
    let work = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(work.path()).expect("canonical");
    let mount = root.join("disk");
    let disk = SmallDisk::mount(&mount, 2048);
    // About 1.2 MB of events for 512 KiB of room.
    disk.fill(1536);
    let input = events(0, 4000);
    let bus = OnDisk::new(plugin, &mount);
    let produce = |events: &[String]| {
        let path = root.join("input.jsonl");
        std::fs::write(&path, events.join("\n") + "\n").expect("write input");
        let path = path.display().to_string();
        disk.hermes_wasm(
            &root,
            &bus.args("produce", &["--progress", "--input", &path]),
        )
    };

    let full = produce(&input);
    assert!(!full.status.success(), "the disk filled up");
    let errors: Vec<&str> = std::str::from_utf8(&full.stderr)
        .expect("UTF-8")
        .lines()
        .filter(|l| l.starts_with("hermes-wasm: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {}", stderr(&full));
    let error = errors[0].to_lowercase();
    assert!(
        error.contains("no space left on device")
            || error.contains("disk is full")
            || error.contains("is the disk full?"),
        "the error says the disk is full: {error}"
    );
    assert!(
        errors[0].contains(&mount.display().to_string()),
        "and where: {error}"
    );

    let after_failure = held(&disk, &root, &bus);
    assert!(
        after_failure.len() >= acknowledged(&full),
        "every acknowledged event is held: {} of {}",
        after_failure.len(),
        acknowledged(&full)
    );
    assert!(
        after_failure.len() < input.len(),
        "the disk filled up first"
    );
    check_prefix(plugin, &after_failure, &input);

    disk.free();
    let rest = produce(&input[after_failure.len()..]);
    assert!(rest.status.success(), "{}", stderr(&rest));
    let all = held(&disk, &root, &bus);
    assert_eq!(all.len(), input.len(), "every event is held once");
    check_prefix(plugin, &all, &input);
}

#[test]
fn a_full_disk_stops_produce_to_file_log_cleanly_and_the_next_run_carries_on() {
    a_full_disk_stops_produce_cleanly_and_the_next_run_carries_on("file-log");
}

#[test]
fn a_full_disk_stops_produce_to_sqlite_cleanly_and_the_next_run_carries_on() {
    a_full_disk_stops_produce_cleanly_and_the_next_run_carries_on("sqlite");
}
