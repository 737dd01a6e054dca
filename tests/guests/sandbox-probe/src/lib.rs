// The raw bindings define the exported functions with `unsafe` glue.
#![allow(unsafe_code)]

//! A producer-world plugin written against the raw WIT bindings, as a plugin
//! from another toolchain would be. Each `send` tries one thing named by the
//! event's `objtype`, with its argument in `objattrs.arg`:
//!
//! - `read-file`: read the file at `arg`;
//! - `read-env`: read the environment variable `arg`, and count all of them;
//! - `connect`: open a TCP connection to `arg` (`host:port`);
//! - `loop`: spin forever;
//! - `allocate`: allocate and touch `arg` MiB;
//! - `print`: print `arg` on stdout and log it;
//! - `flood`: log `arg` lines as fast as it can;
//! - `open-files`: `arg` is `N PATH`: open the file `PATH` N times, keeping
//!   every handle;
//! - `redis`: connect to the Redis URL `arg` and `PING` it;
//! - `redis-command`: `arg` is `URL COMMAND ARG...`: connect and send it;
//! - `event-hubs`: `arg` is `URL KEY-NAME KEY COUNT`: open COUNT
//!   connections to the hub `hermes` of the Event Hubs endpoint `URL` at
//!   once;
//! - `sqlite-write`: open the database `arg` read-write and write a row;
//! - `sqlite-sql`: `arg` is `PATH SQL; SQL; ...`: open `PATH` read-write and
//!   run each statement in turn on that one connection;
//! - `symlink`: `arg` is `LINK TARGET`: create, through WASI, a symbolic link
//!   at `LINK` (inside a granted directory) pointing to `TARGET`;
//! - `sqlite-read-only-write`: open the database `arg` read-only and try to
//!   write a row anyway;
//! - `redis-alias`: `arg` is `URL command|pipeline COUNT MIB`: pass the host
//!   a command (or a pipeline of commands) of COUNT arguments that all point
//!   at one MIB-sized buffer;
//! - `sqlite-alias`: `arg` is `PATH execute|execute-many|query COUNT MIB`:
//!   pass the host COUNT text parameters that all point at one MIB-sized
//!   buffer;
//! - anything else: succeed.
//!
//! A refused attempt returns `bus-error.other` with the error the plugin saw;
//! an attempt that got through returns `bus-error.corrupted` starting with
//! `BREACH`, so a test can tell the two apart.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "hermes:bus/producer@0.2.0",
    // Parameters to the host borrow the plugin's own memory, so one buffer
    // can be passed many times over (see `redis-alias`).
    ownership: Borrowing { duplicate_if_necessary: false },
});

use exports::hermes::bus::plugin::{Guest as PluginGuest, Metadata, Role, RoleInfo};
use exports::hermes::bus::produce::{Guest as ProduceGuest, GuestProducer, Producer};
use hermes::bus::log::{Level, log};
use hermes::bus::types::{BusError, Event, Offset};
use hermes::bus::{event_hubs, redis, sqlite};
use std::cell::Cell;

struct Probe;

impl PluginGuest for Probe {
    fn describe() -> Metadata {
        Metadata {
            name: "sandbox-probe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
            roles: vec![RoleInfo {
                role: Role::Producer,
                settings_schema: r#"{"type": "object"}"#.into(),
            }],
        }
    }
}

impl ProduceGuest for Probe {
    type Producer = ProbeProducer;
}

struct ProbeProducer {
    sent: Cell<i64>,
}

fn refused(what: &str, error: impl std::fmt::Display) -> BusError {
    BusError::Other(format!("{what}: {error}"))
}

/// `WHERE HOW COUNT MIB`: where to pass it, how, and a MIB-sized buffer to
/// pass COUNT times.
fn aliasing(arg: &str) -> (&str, &str, Vec<u8>, usize) {
    let words: Vec<&str> = arg.split(' ').collect();
    let number = |i: usize| words.get(i).and_then(|w| w.parse().ok()).unwrap_or(1);
    let big = vec![b'x'; number(3) << 20];
    (
        words[0],
        words.get(1).copied().unwrap_or(""),
        big,
        number(2),
    )
}

fn breach(what: String) -> BusError {
    BusError::Corrupted(format!("BREACH: {what}"))
}

impl GuestProducer for ProbeProducer {
    fn create(_settings: String) -> Result<Producer, BusError> {
        Ok(Producer::new(ProbeProducer { sent: Cell::new(0) }))
    }

    fn open(&self) -> Result<(), BusError> {
        Ok(())
    }

    fn close(&self) -> Result<(), BusError> {
        Ok(())
    }

    fn send(&self, event: Event) -> Result<Offset, BusError> {
        let event_json: serde_json::Value = serde_json::from_str(&event.json).unwrap_or_default();
        let arg = event_json
            .pointer("/objattrs/arg")
            .and_then(|a| a.as_str())
            .unwrap_or_default()
            .to_owned();
        match event.objtype.as_deref().unwrap_or_default() {
            "read-file" => match std::fs::read(&arg) {
                Ok(bytes) => return Err(breach(format!("read {} bytes of {arg}", bytes.len()))),
                Err(e) => return Err(refused(&format!("read {arg}"), e)),
            },
            "read-env" => {
                let all = std::env::vars().count();
                match std::env::var(&arg) {
                    Ok(value) => return Err(breach(format!("{arg}={value}"))),
                    Err(_) if all > 0 => {
                        return Err(breach(format!("{all} environment variables visible")));
                    }
                    Err(e) => return Err(refused(&format!("env {arg}"), e)),
                }
            }
            "connect" => match std::net::TcpStream::connect(&arg) {
                Ok(_) => return Err(breach(format!("connected to {arg}"))),
                Err(e) => return Err(refused(&format!("connect {arg}"), e)),
            },
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "allocate" => {
                let mib: usize = arg.parse().unwrap_or(1);
                let block = vec![1u8; mib << 20];
                return Err(breach(format!(
                    "allocated {} MiB",
                    std::hint::black_box(block).len() >> 20
                )));
            }
            "redis" => {
                let pong = redis::Connection::open(&arg).and_then(|c| c.command(&[b"PING"]));
                match pong {
                    Ok(reply) => return Err(breach(format!("redis {arg} answered {reply:?}"))),
                    Err(e) => return Err(refused(&format!("redis {arg}"), format!("{e:?}"))),
                }
            }
            "event-hubs" => {
                // `URL KEY-NAME KEY COUNT`: opens COUNT hubs at once.
                let words: Vec<&str> = arg.split(' ').collect();
                let (url, key_name, key) = (words[0], words[1], words[2]);
                let count: usize = words[3].parse().unwrap_or(1);
                let mut held = Vec::new();
                for i in 1..=count {
                    let credentials = event_hubs::Credentials { key_name, key };
                    match event_hubs::Hub::open(url, "hermes", credentials) {
                        Ok(hub) => held.push(hub),
                        Err(e) => {
                            return Err(refused(
                                &format!("event hub {url} #{i}"),
                                format!("{e:?}"),
                            ));
                        }
                    }
                }
                return Err(breach(format!("{} hubs open at once", held.len())));
            }
            "redis-command" => {
                let mut words = arg.split(' ');
                let url = words.next().unwrap_or_default();
                let command: Vec<&[u8]> = words.map(str::as_bytes).collect();
                match redis::Connection::open(url).and_then(|c| c.command(&command)) {
                    Ok(reply) => return Err(breach(format!("{arg} answered {reply:?}"))),
                    Err(e) => return Err(refused(&format!("redis {arg}"), format!("{e:?}"))),
                }
            }
            "sqlite-write" => {
                let written =
                    sqlite::Database::open(&arg, sqlite::Access::ReadWrite).and_then(|db| {
                        db.execute("CREATE TABLE IF NOT EXISTS t (x)", &[])?;
                        db.execute("INSERT INTO t VALUES (1)", &[])
                    });
                match written {
                    Ok(_) => return Err(breach(format!("wrote to {arg}"))),
                    Err(e) => return Err(refused(&format!("sqlite {arg}"), format!("{e:?}"))),
                }
            }
            "sqlite-sql" => {
                let (path, sql) = arg.split_once(' ').unwrap_or((&arg, ""));
                let ran = sqlite::Database::open(path, sqlite::Access::ReadWrite).and_then(|db| {
                    let mut rows = Vec::new();
                    for statement in sql.split("; ") {
                        rows.push(db.query(statement, &[])?.rows.len());
                    }
                    Ok(rows)
                });
                match ran {
                    Ok(rows) => return Err(breach(format!("ran {sql}: {rows:?}"))),
                    Err(e) => return Err(refused(&format!("sqlite {sql}"), format!("{e:?}"))),
                }
            }
            "symlink" => {
                let (link, target) = arg.split_once(' ').unwrap_or((&arg, ""));
                let made = wasip2::filesystem::preopens::get_directories()
                    .into_iter()
                    .find_map(|(dir, at)| {
                        let inside = link.strip_prefix(&at)?.trim_start_matches('/').to_owned();
                        Some(dir.symlink_at(target, &inside))
                    });
                match made {
                    Some(Ok(())) => {}
                    Some(Err(e)) => {
                        return Err(refused(&format!("symlink {link}"), format!("{e:?}")));
                    }
                    None => return Err(refused(&format!("symlink {link}"), "not in a grant")),
                }
            }
            "sqlite-read-only-write" => {
                let written = sqlite::Database::open(&arg, sqlite::Access::ReadOnly)
                    .and_then(|db| db.execute("INSERT INTO t VALUES (2)", &[]));
                match written {
                    Ok(_) => return Err(breach(format!("wrote to {arg}"))),
                    Err(e) => return Err(refused(&format!("sqlite {arg}"), format!("{e:?}"))),
                }
            }
            "redis-alias" => {
                let (url, how, big, count) = aliasing(&arg);
                let args: Vec<&[u8]> = std::iter::once(&b"MSET"[..])
                    .chain(std::iter::repeat_n(&big[..], count))
                    .collect();
                let sent = redis::Connection::open(url).and_then(|c| match how {
                    "pipeline" => c.pipeline(&vec![&args[..2]; count]).map(|r| r.len()),
                    _ => c.command(&args).map(|r| r.len()),
                });
                match sent {
                    Ok(replies) => return Err(breach(format!("{how} passed: {replies} replies"))),
                    Err(e) => return Err(refused(&format!("redis {how}"), format!("{e:?}"))),
                }
            }
            "sqlite-alias" => {
                let (path, how, big, count) = aliasing(&arg);
                // One value, its text once in memory, passed COUNT times.
                let value = sqlite::Value::Text(String::from_utf8(big).unwrap_or_default());
                let params = vec![&value; count];
                let sent =
                    sqlite::Database::open(path, sqlite::Access::ReadWrite).and_then(
                        |db| match how {
                            "execute-many" => db
                                .execute_many("SELECT ?1", &vec![&params[..1]; count])
                                .map(|r| r.len()),
                            "query" => db.query("SELECT 1", &params).map(|r| r.rows.len()),
                            _ => db.execute("SELECT 1", &params).map(|r| r.changes as usize),
                        },
                    );
                match sent {
                    Ok(n) => return Err(breach(format!("{how} passed: {n}"))),
                    Err(e) => return Err(refused(&format!("sqlite {how}"), format!("{e:?}"))),
                }
            }
            "open-files" => {
                let (n, path) = arg.split_once(' ').unwrap_or(("0", &arg));
                let n: usize = n.parse().unwrap_or(0);
                let mut held = Vec::new();
                for _ in 0..n {
                    match std::fs::File::open(path) {
                        Ok(file) => held.push(file),
                        Err(e) => {
                            return Err(refused(&format!("open {path} #{}", held.len()), e));
                        }
                    }
                }
                return Err(breach(format!("holds {} open files", held.len())));
            }
            "flood" => {
                let lines: u32 = arg.parse().unwrap_or(1);
                for i in 0..lines {
                    log(Level::Info, &format!("flood line {i}"));
                }
            }
            "print" => {
                println!("{arg}");
                log(Level::Warn, &format!("logged: {arg}"));
            }
            _ => {}
        }
        let offset = self.sent.get();
        self.sent.set(offset + 1);
        Ok(Offset::Int(offset))
    }

    fn send_batch(&self, events: Vec<Event>) -> Result<Vec<Offset>, BusError> {
        events.into_iter().map(|event| self.send(event)).collect()
    }
}

// Native builds (`cargo test --workspace`) have nothing to export to.
#[cfg(target_arch = "wasm32")]
export!(Probe);
