//! What the integration tests share: the guests built from the current
//! source, one engine with a compilation cache, buses in temporary
//! directories, and sample events.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hermes_event::{Category, Event, EventType, Value};
use hermes_host::{AmqpAllow, Consumer, DirGrant, Engine, Grants, Plugin, Producer, RedisAllow};
use tempfile::TempDir;

pub use local_servers::RedisServer;

/// The guest components, built from the current source: the shipped buses
/// by `hermes-builtins`, the test guests by this crate's build script.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));

    pub use hermes_builtins::{EVENT_HUBS, FILE_LOG, REDIS_STREAMS, SQLITE};
}

/// Calls `m!(name)` for every guest in [`guests`].
#[macro_export]
macro_rules! foreach_guest {
    ($m:ident) => {
        $m!(file_log);
        $m!(sqlite);
        $m!(redis_streams);
        $m!(event_hubs);
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
    /// The Event Hubs endpoint it talks to, if any.
    pub endpoint: Option<HubEndpoint>,
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
            endpoint: None,
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
            endpoint: None,
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
            endpoint: None,
        }
    }

    /// A fresh Event Hubs bus: the event-hubs plugin on partition 1 of the
    /// hub `hermes` of an [`HubEndpoint`] started on a free loopback port,
    /// its partitions kept in the bus's directory. The plugin is allowed to
    /// reach that endpoint only.
    pub async fn event_hubs() -> Bus {
        let dir = tempfile::tempdir().expect("tempdir");
        let endpoint = HubEndpoint::start(dir.path()).await;
        let plugin = load(guests::EVENT_HUBS, &[], endpoint.grants()).await;
        let settings = endpoint.settings(EVENT_HUBS_KEY);
        let mut bus = Bus::new(plugin, settings, dir);
        bus.endpoint = Some(endpoint);
        bus
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

/// An Event Hubs endpoint, what `hermes-wasm serve` runs, on a loopback
/// port: the hub `hermes`, two partitions, consumer groups `$Default` and
/// `clients`, the policy [`EVENT_HUBS_POLICY`] (send and listen) with
/// [`EVENT_HUBS_KEY`], each partition a file-log log under a directory.
pub struct HubEndpoint {
    /// The port it listens on.
    pub port: u16,
    /// Its certificate (PEM), when it speaks TLS.
    pub certificate: Option<PathBuf>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl HubEndpoint {
    /// Starts it on a free port, plain AMQP, its logs under `dir`.
    pub async fn start(dir: &Path) -> HubEndpoint {
        HubEndpoint::start_with(dir, false, serde_json::json!({})).await
    }

    /// Starts it on a free port, its logs under `dir` with the file-log
    /// settings `log` besides their path; with `tls`, it speaks TLS only,
    /// with a self-signed certificate for `127.0.0.1` written to
    /// `dir/cert.pem`.
    pub async fn start_with(dir: &Path, tls: bool, log: serde_json::Value) -> HubEndpoint {
        use hermes_event_hubs::endpoint::{Config, Endpoint, Hub, TlsFiles};
        use hermes_event_hubs::partition::BusTemplate;
        use hermes_event_hubs::sas::{Policies, Policy, Right};

        let logs = dir.join("partitions");
        std::fs::create_dir_all(&logs).expect("the partitions' directory");
        let plugin = load(guests::FILE_LOG, &[&logs], Grants::default()).await;
        let config = Config {
            hubs: vec![Hub {
                name: "hermes".into(),
                partitions: 2,
                created_at: 1_700_000_000_000,
                consumer_groups: vec!["clients".into()],
            }],
            policies: Policies(
                [(
                    EVENT_HUBS_POLICY.to_owned(),
                    Policy {
                        key: EVENT_HUBS_KEY.to_owned(),
                        rights: vec![Right::Send, Right::Listen],
                    },
                )]
                .into(),
            ),
            bus: Some(BusTemplate {
                plugin,
                settings: {
                    let mut settings = log;
                    settings["path"] = format!("{}/{{hub}}/{{partition}}", logs.display()).into();
                    settings
                },
            }),
            tls: tls.then(|| {
                let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
                    .expect("a certificate");
                let (certificate, key) = (dir.join("cert.pem"), dir.join("key.pem"));
                std::fs::write(&certificate, certified.cert.pem()).expect("write");
                std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write");
                TlsFiles { certificate, key }
            }),
            ..Config::default()
        };
        let certificate = config.tls.as_ref().map(|t| t.certificate.clone());
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let endpoint = Endpoint::bind(address, config)
            .await
            .expect("the endpoint binds");
        let port = endpoint.local_addr().expect("address").port();
        let task = tokio::spawn(endpoint.run());
        HubEndpoint {
            port,
            certificate,
            task,
        }
    }

    /// What a plugin needs to reach it, and nothing else.
    pub fn grants(&self) -> Grants {
        Grants {
            amqp: vec![AmqpAllow::parse(&self.url()).expect("a URL")],
            ..Grants::default()
        }
    }

    /// `amqp://127.0.0.1:PORT`, or `amqps://` with TLS.
    pub fn url(&self) -> String {
        match self.certificate {
            Some(_) => format!("amqps://127.0.0.1:{}", self.port),
            None => format!("amqp://127.0.0.1:{}", self.port),
        }
    }

    /// The event-hubs plugin's settings for partition 1 of `hermes`,
    /// signing with `key`.
    pub fn settings(&self, key: &str) -> serde_json::Value {
        let mut connection_string = event_hubs_connection_string(self.port, key);
        if self.certificate.is_some() {
            connection_string = connection_string.replace(";UseDevelopmentEmulator=true", "");
        }
        serde_json::json!({
            "connection_string": connection_string,
            "eventhub": "hermes",
            "partition": "1",
        })
    }
}

impl Drop for HubEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The policy and key of the endpoint [`Bus::event_hubs`] starts.
pub const EVENT_HUBS_POLICY: &str = "hermes";
pub const EVENT_HUBS_KEY: &str = "aGVybWVzLWtleQ==";

/// A connection string to the endpoint on `port`, plain AMQP, with the
/// policy [`EVENT_HUBS_POLICY`] and `key`.
pub fn event_hubs_connection_string(port: u16, key: &str) -> String {
    format!(
        "Endpoint=sb://127.0.0.1:{port}/;SharedAccessKeyName={EVENT_HUBS_POLICY};\
         SharedAccessKey={key};UseDevelopmentEmulator=true"
    )
}

/// Every event on `bus`, from its oldest, read by a new consumer until it
/// has waited `drained` for more.
pub async fn events_on(bus: &Bus, drained: Duration) -> Vec<Event> {
    let mut consumer = bus.consumer(drained).await;
    read_all(&mut consumer)
        .await
        .into_iter()
        .map(|c| c.event().expect("a hermes event"))
        .collect()
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
