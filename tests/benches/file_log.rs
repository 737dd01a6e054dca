//! The file-log bus through the host: events per second sent in batches and
//! read back, with the default fsync policy (one fsync per batch).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hermes_event::Category;
use hermes_wasm_tests::{Bus, users};

const BATCH: usize = 256;

fn file_log(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let bus = runtime.block_on(Bus::file_log());
    let events = users(Category::Base, 0, BATCH as i64);
    let mut producer = runtime.block_on(bus.producer());

    let mut group = c.benchmark_group("file-log");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("send-batch of 256, fsync per batch", |b| {
        b.iter(|| {
            runtime
                .block_on(producer.send_batch(&events))
                .expect("send")
        })
    });

    let mut consumer = runtime.block_on(bus.consumer(Duration::ZERO));
    group.bench_function("next-batch of 256", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let batch = consumer.next_batch(BATCH as u32).await.expect("read");
                if batch.len() < BATCH {
                    consumer.seek_to_beginning().await.expect("seek");
                }
                batch
            })
        })
    });
    group.finish();
}

criterion_group!(benches, file_log);
criterion_main!(benches);
