//! The events every case moves: hermes `added` users with 8 attributes,
//! about 400 bytes of hermes JSON each, rendered once before any timing.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use hermes_event::{Category, Event, EventType, Value};
use hermes_host::EventText;

/// How many events one batch call carries, in every case that batches: the
/// size the CLI, the server and the client use.
pub const BATCH: usize = 256;

/// The events, rendered.
pub struct Workload {
    pub texts: Vec<EventText>,
}

impl Workload {
    pub fn new(n: u64) -> Workload {
        Workload {
            texts: (0..n)
                .map(|id| EventText::render(&user(Category::Base, id)))
                .collect(),
        }
    }

    /// The events' total size in bytes of hermes JSON.
    pub fn bytes(&self) -> u64 {
        self.texts.iter().map(|t| t.json.len() as u64).sum()
    }
}

/// A realistic user: what a directory's datasource gives hermes-server.
pub fn user(category: Category, id: u64) -> Event {
    let id = i64::try_from(id).unwrap_or(i64::MAX);
    let attrs = vec![
        ("id".to_owned(), Value::from(id)),
        ("login".to_owned(), Value::from(format!("user{id}"))),
        (
            "firstname".to_owned(),
            Value::from(format!("Firstname{id}")),
        ),
        ("lastname".to_owned(), Value::from(format!("Lastname-{id}"))),
        (
            "mail".to_owned(),
            Value::from(format!("firstname{id}.lastname{id}@example.com")),
        ),
        (
            "phones".to_owned(),
            Value::List(vec![
                Value::from(format!(
                    "+33 3 88 {:02} {:02} {:02}",
                    id % 100,
                    id / 100 % 100,
                    id / 10_000 % 100
                )),
                Value::from("+33 6 12 34 56 78"),
            ]),
        ),
        ("group".to_owned(), Value::from(1 + id % 12)),
        ("quota".to_owned(), Value::from(1.5 + (id % 7) as f64)),
    ];
    Event::new(
        category,
        EventType::Added,
        Some("SRVUsers".to_owned()),
        Value::from(id),
        Value::Object(attrs),
    )
}

/// Writes `n` events, one compact hermes JSON per line, as `produce` reads
/// them: an initsync sequence when `initsync`, else base events.
pub fn write_input(path: &Path, n: u64, initsync: bool) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
    let category = if initsync {
        Category::Initsync
    } else {
        Category::Base
    };
    let write = |out: &mut std::io::BufWriter<std::fs::File>, event: &Event| {
        writeln!(out, "{}", event.to_json_compact())
    };
    let edge = |eventtype, objattrs| {
        Event::new(Category::Initsync, eventtype, None, Value::Null, objattrs)
    };
    if initsync {
        let schema = Value::Object(vec![("SRVUsers".to_owned(), Value::empty_object())]);
        write(&mut out, &edge(EventType::InitStart, schema))?;
    }
    for id in 0..n {
        write(&mut out, &user(category, id))?;
    }
    if initsync {
        write(&mut out, &edge(EventType::InitStop, Value::empty_object()))?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Events per second.
pub fn rate(events: u64, elapsed: std::time::Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_about_400_bytes_of_hermes_json_and_reads_back() {
        let workload = Workload::new(1000);
        let mean = workload.bytes() / 1000;
        assert!((350..=700).contains(&mean), "{mean} bytes");
        let text = &workload.texts[123];
        assert_eq!(
            Event::from_json(&text.json).expect("hermes JSON"),
            user(Category::Base, 123)
        );
    }
}
