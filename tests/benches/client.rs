//! hermes-client's job through the library: a new client applies an initsync
//! sequence from the file-log bus to a JSON-lines target, from a cold cache
//! to a drained bus, in events per second.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hermes_event::Category;
use hermes_jobs::Stop;
use hermes_jobs::client::Client;
use hermes_wasm_tests::{Bus, engine, init_start, init_stop, users};

const OBJECTS: i64 = 2000;

fn client(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let bus = runtime.block_on(Bus::file_log());
    let mut events = vec![init_start()];
    events.extend(users(Category::Initsync, 0, OBJECTS));
    events.push(init_stop());
    runtime.block_on(async {
        let mut producer = bus.producer().await;
        producer.send_batch(&events).await.expect("send");
        producer.close().await.expect("close");
    });
    let config =
        bus.file_log_client_config("  target:\n    jsonlines:\n      path: applied.jsonl\n");
    let engine = engine();

    let mut group = c.benchmark_group("client");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("initsync of 2000 objects to a JSON-lines file", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                let _ = std::fs::remove_dir_all(bus.dir.path().join("client-cache"));
                let _ = std::fs::remove_file(bus.dir.path().join("applied.jsonl"));
                let started = Instant::now();
                let report = runtime.block_on(async {
                    let mut client = Client::start(&config, &engine).await.expect("starts");
                    let report = client.run(true, &Stop::new()).await.expect("runs");
                    client.stop().await.expect("stops");
                    report
                });
                spent += started.elapsed();
                assert_eq!(report.applied, OBJECTS as usize);
            }
            spent
        })
    });
    group.finish();
}

criterion_group!(benches, client);
criterion_main!(benches);
