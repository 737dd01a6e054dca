//! What a plugin can make the host hold: no more than its own memory cap,
//! however its lists alias and however large the replies it asks for.

use hermes_host::{BusError, Error, Grants, Offset, RedisAllow};
use hermes_wasm_tests::RedisServer;

use super::{attempt, probe, refused};

/// The memory cap these plugins run with.
const CAP_MIB: usize = 32;

/// The most this test binary may have resident at its peak, in MiB: far
/// above what the tests need, far below what the host would copy if the
/// aliased lists were lifted whole (4000 MiB each).
const PEAK_RSS_MIB: u64 = 2048;

fn capped(redis: Vec<RedisAllow>) -> Grants {
    Grants {
        redis,
        memory_limit: CAP_MIB << 20,
        ..Grants::default()
    }
}

/// The peak resident memory of this process so far, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in kB");
    kib >> 10
}

#[tokio::test]
async fn lists_that_alias_one_buffer_fail_the_call_before_the_host_copies_them() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("alias.db").display().to_string();
    let mut producer = probe(
        capped(vec![RedisAllow::parse(&url).expect("valid")]),
        &[dir.path()],
    )
    .await;

    // 4000 arguments, each the same 1 MiB of the plugin's memory: 4000 MiB
    // if copied whole, from a plugin that owns 32.
    for attempted in [
        format!("{url} command 4000 1"),
        format!("{url} pipeline 4000 1"),
        format!("{db} execute 4000 1"),
        format!("{db} execute-many 4000 1"),
        format!("{db} query 4000 1"),
    ] {
        let what = if attempted.starts_with("redis") {
            "redis-alias"
        } else {
            "sqlite-alias"
        };
        let error = producer
            .send(&attempt(what, &attempted))
            .await
            .expect_err("refused");
        assert!(
            matches!(&error, Error::Trapped { reason, .. }
                if reason.starts_with(&format!("passed the host more than {CAP_MIB} MiB in one call, its memory cap"))),
            "{attempted}: {error}"
        );
        assert!(
            peak_rss_mib() < PEAK_RSS_MIB,
            "{attempted}: the host's peak memory reached {} MiB",
            peak_rss_mib()
        );
    }

    // Within the cap, the same aliasing goes through: 2 MiB for MSET, one
    // key and its value.
    let passed = producer
        .send(&attempt("redis-alias", &format!("{url} command 2 1")))
        .await;
    assert!(
        matches!(&passed, Err(Error::Bus { error: BusError::Corrupted(m), .. }) if m.contains("command passed")),
        "{passed:?}"
    );
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut direct = client.get_connection().expect("connects");
    let length: usize = redis::cmd("STRLEN")
        .arg(vec![b'x'; 1 << 20])
        .query(&mut direct)
        .expect("STRLEN");
    assert_eq!(length, 1 << 20, "the key and its value arrived whole");
    assert_eq!(
        producer.send(&attempt("ok", "")).await.expect("send"),
        Offset::Int(0)
    );
}

#[tokio::test]
async fn a_reply_larger_than_the_memory_cap_is_cut_off_while_it_is_read() {
    let server = RedisServer::start();
    let url = server.url();
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut direct = client.get_connection().expect("connects");
    let big = (CAP_MIB + 16) << 20;
    let _: () = redis::cmd("SETRANGE")
        .arg("big")
        .arg(big - 1)
        .arg("x")
        .query(&mut direct)
        .expect("SETRANGE");
    let mut producer = probe(capped(vec![RedisAllow::parse(&url).expect("valid")]), &[]).await;

    let message = refused(
        producer
            .send(&attempt("redis-command", &format!("{url} GET big")))
            .await,
    );
    assert!(
        message.contains(&format!(
            "TooLarge(\"the reply is larger than {CAP_MIB} MiB, the plugin's memory cap"
        )),
        "{message}"
    );

    // The plugin carries on with a new connection; the value is intact.
    let breach = producer
        .send(&attempt("redis-command", &format!("{url} STRLEN big")))
        .await;
    assert!(
        matches!(&breach, Err(Error::Bus { error: BusError::Corrupted(m), .. }) if m.contains(&format!("Integer({big})"))),
        "{breach:?}"
    );
}
