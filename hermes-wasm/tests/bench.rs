//! `hermes-wasm bench` end to end, small: every case runs, every figure and
//! ratio is there and sane, and the JSON is what a machine reads.

mod support;

use support::hermes_wasm;

/// Every figure the bench records; the ratios are made of them.
const FIGURES: &[&str] = &[
    "disk.append-fdatasync",
    "disk.sequential",
    "native.file-log.write.batch",
    "native.file-log.read",
    "native.sqlite.insert.one",
    "native.sqlite.insert.batch",
    "native.sqlite.page",
    "native.redis.xadd.one",
    "native.redis.xadd.pipelined",
    "native.redis.xrange",
    "file-log.produce.always",
    "file-log.produce.batch",
    "file-log.produce.batch.bytes",
    "file-log.consume",
    "file-log.consume.parse",
    "file-log.find",
    "sqlite.produce.one",
    "sqlite.produce.batch",
    "sqlite.consume",
    "sqlite.consume.parse",
    "sqlite.find",
    "redis-streams.produce.one",
    "redis-streams.produce.batch",
    "redis-streams.consume",
    "redis-streams.consume.parse",
    "redis-streams.find",
    "host.call",
    "host.cold-start",
    "host.idle-instance",
    "client.jsonlines",
    "server.first-poll",
    "server.idle-poll",
    "rss.produce.small",
    "rss.consume.small",
    "rss.client.small",
    "rss.server.small",
    "rss.produce.large",
    "rss.consume.large",
    "rss.client.large",
    "rss.server.large",
];

#[test]
fn a_small_run_measures_every_case_and_prints_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().display().to_string();
    let output = hermes_wasm(
        dir.path(),
        &["bench", "-n", "300", "--json", "--dir", &path],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the output is JSON");
    assert_eq!(report["run"]["events"], 300);
    assert_eq!(report["all_counted"], true, "the progress bar's length");

    let figures = report["figures"].as_array().expect("figures");
    let keys: Vec<&str> = figures.iter().filter_map(|f| f["key"].as_str()).collect();
    assert_eq!(keys, FIGURES);
    for figure in figures {
        let value = figure["value"].as_f64().expect("a number");
        assert!(value.is_finite() && value > 0.0, "{figure}");
    }
    // Whole processes of a few hundred events: some MiB, not nothing and not
    // gigabytes.
    for figure in figures
        .iter()
        .filter(|f| f["unit"] == "MiB" && f["group"] == "memory")
    {
        let mib = figure["value"].as_f64().unwrap_or(0.0);
        assert!((2.0..2000.0).contains(&mib), "{figure}");
    }

    // Every ratio has its value but the one against hermes' Python, which
    // needs --hermes.
    let ratios = report["ratios"].as_array().expect("ratios");
    assert_eq!(ratios.len(), 16);
    for ratio in ratios {
        let against_hermes = ratio["reference"] == "hermes.sqlite.consume";
        assert_eq!(ratio["ratio"].is_null(), against_hermes, "{ratio}");
        assert_eq!(ratio["met"].is_null(), against_hermes, "{ratio}");
    }
    let skipped = report["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0].as_str().unwrap_or("").contains("--hermes"),
        "{skipped:?}"
    );
    // The bench leaves nothing behind in the directory it was given.
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("list").count(),
        0,
        "files left in --dir"
    );
}

#[test]
fn a_redis_server_off_loopback_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = hermes_wasm(
        dir.path(),
        &["bench", "--quick", "--redis", "redis://192.0.2.1:6379"],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("hermes-wasm: error: --redis redis://192.0.2.1:6379: ")
            && stderr.contains("loopback")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
}
