//! What the integration tests share: the guests built from the current
//! source, one engine with a compilation cache, buses in temporary
//! directories, and sample events.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hermes_event::{Category, Event, EventType, Value};
use hermes_host::{Consumer, DirGrant, Engine, Grants, Plugin, Producer, RedisAllow};
use tempfile::TempDir;

pub use local_servers::RedisServer;

/// The guest components, built from the current source: the shipped buses
/// by `hermes-builtins`, the test guests by this crate's build script.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));

    pub use hermes_builtins::{FILE_LOG, REDIS_STREAMS, SQLITE};
}

/// Calls `m!(name)` for every guest in [`guests`].
#[macro_export]
macro_rules! foreach_guest {
    ($m:ident) => {
        $m!(file_log);
        $m!(sqlite);
        $m!(redis_streams);
        $crate::foreach_built_guest!($m);
    };
}

/// One engine for the whole test binary, caching compiled guests in the
/// target directory so only the first test pays for compilation.
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let cache = PathBuf::from(concat!(env!("OUT_DIR"), "/component-cache"));
            Engine::new(Some(cache))
                .expect("engine starts")
                .with_built_ins(hermes_builtins::ALL)
        })
        .clone()
}

/// Loads a guest with `grants` and read-write access to `dirs` as well.
pub async fn load(component: &[u8], dirs: &[&Path], grants: Grants) -> Arc<Plugin> {
    let dirs: Vec<DirGrant> = dirs
        .iter()
        .map(|dir| DirGrant::parse(&dir.display().to_string()).expect("granted directory exists"))
        .collect();
    let mut grants = grants;
    grants.dirs.extend(dirs);
    Plugin::load(&engine(), component, "test guest", grants)
        .await
        .expect("guest loads")
}

/// A bus under test: a plugin, its settings for each role, the directory it
/// may use, and the Redis server it talks to, if any.
pub struct Bus {
    pub plugin: Arc<Plugin>,
    pub settings: serde_json::Value,
    pub consumer_settings: serde_json::Value,
    pub dir: TempDir,
    pub redis: Option<RedisServer>,
}

impl Bus {
    /// A bus whose roles share `settings`.
    pub fn new(plugin: Arc<Plugin>, settings: serde_json::Value, dir: TempDir) -> Bus {
        Bus {
            plugin,
            consumer_settings: settings.clone(),
            settings,
            dir,
            redis: None,
        }
    }

    /// A fresh, empty file-log bus.
    pub async fn file_log() -> Bus {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugin = load(guests::FILE_LOG, &[dir.path()], Grants::default()).await;
        let settings = serde_json::json!({ "path": dir.path().join("bus") });
        Bus::new(plugin, settings, dir)
    }

    /// A fresh sqlite bus: a database file (not created yet) in a temporary
    /// directory.
    pub async fn sqlite() -> Bus {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugin = load(guests::SQLITE, &[dir.path()], Grants::default()).await;
        let uri = dir.path().join("bus.sqlite");
        Bus {
            plugin,
            settings: serde_json::json!({ "uri": uri, "retention_in_days": 30 }),
            consumer_settings: serde_json::json!({ "uri": uri }),
            dir,
            redis: None,
        }
    }

    /// A fresh Redis streams bus on its own redis-server, which the plugin is
    /// allowed to reach.
    pub async fn redis_streams() -> Bus {
        Bus::on_redis(RedisServer::start()).await
    }

    /// A Redis streams bus on `server`.
    pub async fn on_redis(server: RedisServer) -> Bus {
        let dir = tempfile::tempdir().expect("tempdir");
        let grants = Grants {
            redis: vec![RedisAllow::parse(&server.url()).expect("a valid URL")],
            ..Grants::default()
        };
        let plugin = load(guests::REDIS_STREAMS, &[], grants).await;
        let settings = serde_json::json!({ "url": server.url(), "stream": "hermes" });
        Bus {
            plugin,
            consumer_settings: settings.clone(),
            settings,
            dir,
            redis: Some(server),
        }
    }

    /// Writes `client.yml` in the bus's directory: a client of this file-log
    /// bus (the built-in plugin, granted the log's directory read-only) with
    /// its cache in `client-cache/`, and `client` as its `hermes-client`
    /// section.
    pub fn file_log_client_config(&self, client: &str) -> PathBuf {
        let config = self.dir.path().join("client.yml");
        let log = self.dir.path().join("bus");
        std::fs::create_dir_all(&log).expect("the log's directory");
        let text = format!(
            "hermes:\n  cache:\n    dirpath: client-cache\n  plugins:\n    messagebus:\n      file-log:\n        settings: {}\n        dirs: [\"{}:ro\"]\nhermes-client:\n{client}",
            self.settings,
            log.display()
        );
        std::fs::write(&config, text).expect("write client.yml");
        config
    }

    /// An open producer.
    pub async fn producer(&self) -> Producer {
        let mut producer = Producer::create(self.plugin.clone(), &self.settings)
            .await
            .expect("producer builds");
        producer.open().await.expect("producer opens");
        producer
    }

    /// An open consumer at the beginning, waiting at most `timeout` once drained.
    pub async fn consumer(&self, timeout: Duration) -> Consumer {
        let mut consumer = Consumer::create(self.plugin.clone(), &self.consumer_settings)
            .await
            .expect("consumer builds");
        consumer.open().await.expect("consumer opens");
        consumer
            .seek_to_beginning()
            .await
            .expect("seek to beginning");
        consumer.set_timeout(Some(timeout));
        consumer
    }
}

/// Every event from the consumer's position until its timeout passes.
pub async fn read_all(consumer: &mut Consumer) -> Vec<hermes_host::consumer::Consumed> {
    let mut all = Vec::new();
    while let Some(consumed) = consumer.next().await.expect("next") {
        all.push(consumed);
    }
    all
}

/// A sample event: `added` of type `SRVUsers` with primary key `id`.
pub fn user_added(category: Category, id: i64) -> Event {
    Event::new(
        category,
        EventType::Added,
        Some("SRVUsers".into()),
        Value::from(id),
        Value::Object(vec![
            ("id".into(), Value::from(id)),
            ("login".into(), Value::from(format!("user{id}"))),
            ("name".into(), Value::from("Zoë 😀")),
        ]),
    )
}

/// The dataschema the sample events belong to.
pub fn users_schema() -> Value {
    Value::Object(vec![("SRVUsers".into(), Value::empty_object())])
}

/// The init-start of an initsync sequence of the sample users.
pub fn init_start() -> Event {
    Event::new(
        Category::Initsync,
        EventType::InitStart,
        None,
        Value::Null,
        users_schema(),
    )
}

/// The init-stop of an initsync sequence.
pub fn init_stop() -> Event {
    Event::new(
        Category::Initsync,
        EventType::InitStop,
        None,
        Value::Null,
        Value::empty_object(),
    )
}

/// `n` sample events with ids `first..first + n`, all of one category.
pub fn users(category: Category, first: i64, n: i64) -> Vec<Event> {
    (first..first + n)
        .map(|id| user_added(category, id))
        .collect()
}
