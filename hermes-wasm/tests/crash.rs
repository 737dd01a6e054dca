//! What survives a crash or a power loss, checked on the binary: what it
//! makes durable, as the system calls it makes show.

mod support;

use std::time::{Duration, SystemTime};

use support::{hermes_wasm_traced, stderr};

/// The paths `fsync` was called on, in order, from a `strace -y` trace.
fn synced(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter_map(|line| {
            let call = line.split_once(' ')?.1.trim_start();
            let rest = call.strip_prefix("fsync(")?;
            let path = rest.split_once('<')?.1.split_once(">)")?.0;
            Some(path.to_owned())
        })
        .collect()
}

fn input(dir: &std::path::Path, n: usize) -> String {
    let path = dir.join("events.jsonl");
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"evcategory": "base", "eventtype": "added", "objtype": "U", "objpkey": {i}, "objattrs": {{"text": "{}"}}}}"#,
                "x".repeat(200)
            )
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").expect("write input");
    path.display().to_string()
}

#[test]
fn file_log_makes_every_directory_entry_it_creates_or_deletes_durable() {
    let work = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(work.path()).expect("canonical");
    let log = root.join("logs").join("bus");
    let settings = serde_json::json!({ "path": log, "segment_max_bytes": 4096 }).to_string();
    let events = input(&root, 60);
    let dir = root.display().to_string();
    let produce = |settings: &str| {
        hermes_wasm_traced(
            &root,
            &[
                "produce",
                "--dir",
                &dir,
                "--settings",
                settings,
                "--input",
                &events,
            ],
            "fsync,fdatasync,unlinkat",
        )
    };

    let (output, trace) = produce(&settings);
    assert!(output.status.success(), "{}", stderr(&output));
    let paths = synced(&trace);
    let show = |p: &std::path::Path| p.display().to_string();
    // The two directories created, each in its parent.
    assert!(paths.contains(&show(&root)), "{paths:?}");
    assert!(paths.contains(&show(&root.join("logs"))), "{paths:?}");
    // Each segment created, in the log's directory, after the segment itself.
    let mut segments: Vec<_> = std::fs::read_dir(&log)
        .expect("the log")
        .map(|e| e.expect("entry").path())
        .collect();
    segments.sort();
    assert!(segments.len() > 3, "{segments:?}");
    for segment in &segments {
        let created = paths
            .iter()
            .position(|p| *p == show(segment))
            .unwrap_or_else(|| panic!("{} is synced: {paths:?}", segment.display()));
        assert!(
            paths[created..].contains(&show(&log)),
            "the log's directory is synced after {} appears: {paths:?}",
            segment.display()
        );
    }

    // Retention's deletions are made durable too.
    let old = SystemTime::now() - Duration::from_secs(10 * 86_400);
    for segment in &segments[..segments.len() - 1] {
        std::fs::File::options()
            .write(true)
            .open(segment)
            .and_then(|f| f.set_modified(old))
            .expect("backdate");
    }
    let retained = serde_json::json!({
        "path": log, "segment_max_bytes": 1 << 20, "retention_in_days": 1
    })
    .to_string();
    let (output, trace) = produce(&retained);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<&str> = trace.lines().collect();
    let last_unlink = lines
        .iter()
        .rposition(|line| line.contains("unlinkat(") && line.contains(".log\""))
        .expect("retention deleted segments");
    assert!(
        synced(&lines[last_unlink..].join("\n")).contains(&show(&log)),
        "the log's directory is synced after the deletions:\n{trace}"
    );
}
