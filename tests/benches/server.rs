//! hermes-server's job through the library, on the example's datamodel
//! (`examples/server.yml`) with its datasource scaled to 10,000 users: the
//! first poll (an initsync sequence), a poll that finds nothing changed, and
//! a poll that finds 1% of the users changed, on the file-log bus.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hermes_jobs::server::Server;
use hermes_wasm_tests::engine;

const USERS: u64 = 10_000;
const GROUPS: u64 = 12;

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The example's configuration and datasource, in a fresh directory.
fn work_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("server.yml");
    let text = example("server.yml").replace("@WORK@", &dir.path().display().to_string());
    std::fs::write(&config, text).expect("server.yml");
    let sql = example("datasource.sql").replace("i < 300", &format!("i < {USERS}"));
    rusqlite::Connection::open(dir.path().join("directory.sqlite"))
        .and_then(|db| db.execute_batch(&sql))
        .expect("datasource");
    (dir, config)
}

fn server(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let engine = engine();
    let (dir, config) = work_dir();
    let start = || {
        runtime
            .block_on(Server::start(&config, &engine))
            .expect("starts")
    };

    let mut group = c.benchmark_group("server");
    group.sample_size(10);
    group.throughput(Throughput::Elements(USERS + GROUPS));
    group.bench_function("first poll: initsync of 10,000 users and 12 groups", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                for gone in ["server-cache", "bus"] {
                    let _ = std::fs::remove_dir_all(dir.path().join(gone));
                }
                let mut server = start();
                let started = Instant::now();
                let report = runtime.block_on(server.poll(false)).expect("poll");
                spent += started.elapsed();
                assert_eq!(report.initsync, Some((USERS + GROUPS) as usize));
                runtime.block_on(server.stop()).expect("stop");
            }
            spent
        })
    });

    let mut server = start();
    group.bench_function("poll of 10,000 users, nothing changed", |b| {
        b.iter(|| {
            let report = runtime.block_on(server.poll(false)).expect("poll");
            assert_eq!(report.modified, 0);
        })
    });

    let db = rusqlite::Connection::open(dir.path().join("directory.sqlite")).expect("db");
    group.bench_function("poll of 10,000 users, 100 modified", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                db.execute_batch("UPDATE users SET last = last || 'x' WHERE uid % 100 = 0")
                    .expect("update");
                let started = Instant::now();
                let report = runtime.block_on(server.poll(false)).expect("poll");
                spent += started.elapsed();
                assert_eq!(report.modified, (USERS / 100) as usize);
            }
            spent
        })
    });
    group.finish();
    runtime.block_on(server.stop()).expect("stop");
}

criterion_group!(benches, server);
criterion_main!(benches);
