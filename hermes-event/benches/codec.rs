//! How fast the codec writes and reads a typical event.

use criterion::{Criterion, criterion_group, criterion_main};
use hermes_event::{Category, Event, EventType, Value};

fn user(id: i64) -> Event {
    Event::new(
        Category::Base,
        EventType::Added,
        Some("SRVUsers".into()),
        Value::from(id),
        Value::Object(vec![
            ("id".into(), Value::from(id)),
            ("login".into(), Value::from("jdoe")),
            ("name".into(), Value::from("Zoë Müller-Lüdenscheidt 😀")),
            ("mail".into(), Value::from("jdoe@example.com")),
            (
                "groups".into(),
                Value::List(vec![Value::from("staff"), Value::from("admins")]),
            ),
            ("score".into(), Value::from(12.75)),
            ("photo".into(), Value::Bytes(vec![7; 64])),
        ]),
    )
}

fn codec(c: &mut Criterion) {
    let event = user(42);
    let text = event.to_json();
    c.bench_function("to_json (user event)", |b| {
        b.iter(|| std::hint::black_box(&event).to_json())
    });
    c.bench_function("from_json (user event)", |b| {
        b.iter(|| Event::from_json(std::hint::black_box(&text)).expect("valid"))
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
