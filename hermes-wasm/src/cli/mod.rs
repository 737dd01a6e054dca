//! The command line: parsing, and the glue from arguments to the library.

mod bench;
mod client;
mod consume;
mod inspect;
mod produce;
mod serve;
mod server;
mod settings;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use hermes_host::{
    AmqpAllow, ComponentSource, DirGrant, Engine, Grants, Plugin, PluginSpec, RedisAllow, sandbox,
};

/// Run hermes message-bus plugins compiled to WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "hermes-wasm", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// More log output (-v: debug, -vv: trace). `HERMES_WASM_LOG` takes a
    /// tracing filter such as `plugin=debug`.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors in the log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what a plugin is: its world, name, version, roles and settings schemas.
    Inspect(inspect::InspectArgs),
    /// Send events to a bus: one hermes event JSON per input line.
    Produce(produce::ProduceArgs),
    /// Print the events of a bus: one JSON line per event.
    Consume(consume::ConsumeArgs),
    /// Run hermes-server: poll the datasources and send their changes.
    Server(server::ServerArgs),
    /// Run hermes-client: apply the bus's events to a target.
    Client(client::ClientArgs),
    /// Show where a client stands: offsets, events behind, error queue.
    Status(client::StatusArgs),
    /// Serve an Azure Event Hubs-compatible AMQP endpoint whose partitions
    /// a bus plugin keeps: the Event Hubs SDKs send and receive through it.
    Serve(serve::ServeArgs),
    /// Measure every bus path beside its limit (the disk, the native
    /// library, the raw protocol), in one run: a table of figures and ratios.
    Bench(bench::BenchArgs),
    /// Run `hermes-wasm ARGS` and print its peak resident memory in KiB
    /// (what `bench` measures whole jobs with).
    #[command(hide = true)]
    PeakRss {
        /// The job's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// Which plugin, and what it is granted.
#[derive(Debug, Args)]
pub struct PluginArgs {
    /// The plugin: a component file (a path, or a name ending in `.wasm`), or
    /// a built-in bus: `file-log` (the default), `sqlite`, `redis-streams`.
    #[arg(long, value_name = "PLUGIN")]
    plugin: Option<PathBuf>,

    /// Grant the plugin a host directory, seen at the same absolute path.
    /// `DIR:ro` grants it read-only. Repeatable; nothing is granted by default.
    #[arg(long = "dir", value_name = "DIR[:ro]")]
    dirs: Vec<String>,

    /// Allow the plugin to connect to this Redis server, such as
    /// `redis://127.0.0.1:6379` (any database) or `redis://127.0.0.1:6379/2`
    /// (that database only). Repeatable; no server is allowed by default.
    #[arg(long = "allow-redis", value_name = "URL")]
    allow_redis: Vec<String>,

    /// Allow this Redis command too, on every allowed server, beyond those a
    /// bus needs (such as `EVAL`). Repeatable; commands that would let the
    /// plugin out of its grant (`SELECT`, `CONFIG`, ...) cannot be allowed.
    #[arg(
        long = "allow-redis-command",
        value_name = "COMMAND",
        requires = "allow_redis"
    )]
    allow_redis_commands: Vec<String>,

    /// Allow the plugin to connect to this Event Hubs endpoint, such as
    /// `amqps://NAMESPACE.servicebus.windows.net` (TLS, port 5671) or
    /// `amqp://127.0.0.1:5672` (plain AMQP, as `hermes-wasm serve` speaks
    /// by default). Repeatable; no endpoint is allowed by default.
    #[arg(long = "allow-amqp", value_name = "URL")]
    allow_amqp: Vec<String>,

    /// Check the TLS certificates of the allowed Event Hubs endpoints
    /// against the certificates in this PEM file (a private certificate
    /// authority) instead of the web's root certificates.
    #[arg(long = "amqp-ca", value_name = "FILE", requires = "allow_amqp")]
    amqp_ca: Option<PathBuf>,

    /// The plugin's memory cap, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = (hermes_host::sandbox::DEFAULT_MEMORY_LIMIT >> 20) as u64)]
    memory_mib: u64,

    /// How long one plugin call may run, in milliseconds, not counting the
    /// time a consumer is asked to wait for events.
    #[arg(long, value_name = "MS", default_value_t = hermes_host::sandbox::DEFAULT_CALL_DEADLINE.as_millis() as u64)]
    call_deadline_ms: u64,

    #[command(flatten)]
    cache: CacheArgs,
}

impl PluginArgs {
    /// The plugin the flags describe, started with `settings`.
    fn spec(&self, engine: &Engine, settings: serde_json::Value) -> Result<PluginSpec> {
        let dirs = self
            .dirs
            .iter()
            .map(|spec| DirGrant::parse(spec).context("--dir"))
            .collect::<Result<Vec<_>>>()?;
        let redis = self
            .allow_redis
            .iter()
            .map(|url| {
                RedisAllow::parse(url)
                    .map_err(|e| anyhow!("--allow-redis {e}"))?
                    .with_commands(&self.allow_redis_commands)
                    .map_err(|e| anyhow!("--allow-redis-command: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let amqp = self
            .allow_amqp
            .iter()
            .map(|url| {
                let allow = AmqpAllow::parse(url).map_err(|e| anyhow!("--allow-amqp {e}"))?;
                match &self.amqp_ca {
                    Some(ca) => allow.with_ca(ca).map_err(|e| anyhow!("--amqp-ca {e}")),
                    None => Ok(allow),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let grants = Grants {
            dirs,
            redis,
            amqp,
            memory_limit: sandbox::memory_limit_mib(self.memory_mib)
                .map_err(|e| anyhow!("--memory-mib: {e}"))?,
            call_deadline: sandbox::call_deadline_ms(self.call_deadline_ms)
                .map_err(|e| anyhow!("--call-deadline-ms: {e}"))?,
        };
        Ok(PluginSpec {
            component: component_source(engine, self.plugin.as_deref())?,
            settings,
            grants,
        })
    }

    /// Loads the plugin with its grants; its spec holds `settings`.
    async fn load(&self, settings: serde_json::Value) -> Result<(Arc<Plugin>, PluginSpec)> {
        let engine = self.cache.engine()?;
        let spec = self.spec(&engine, settings)?;
        let plugin = load(&engine, &spec).await?;
        Ok((plugin, spec))
    }
}

/// Where compiled plugins are kept.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Where compiled plugins are cached. Default: `$HERMES_WASM_CACHE`, else
    /// `$XDG_CACHE_HOME/hermes-wasm`, else `~/.cache/hermes-wasm`.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile the plugin every time.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl CacheArgs {
    /// The compilation cache directory, if caching.
    fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            None
        } else {
            self.cache_dir.clone().or_else(Engine::default_cache_dir)
        }
    }

    /// An engine caching in this directory, with the built-in plugins.
    fn engine(&self) -> Result<Engine> {
        engine(self.dir())
    }
}

/// An engine caching compiled code in `cache_dir`, knowing the built-in
/// plugins by name.
pub fn engine(cache_dir: Option<PathBuf>) -> Result<Engine> {
    Ok(Engine::new(cache_dir)?.with_built_ins(hermes_builtins::ALL))
}

/// Resolves on SIGINT or SIGTERM. The signals are listened for from this
/// call on: one that arrives before the future is awaited (during a poll, or
/// while the client starts) is remembered, not lost.
fn stop_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        // A signal that could not be listened for keeps its default action.
        async fn received(signal: Option<Signal>) {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        async move {
            tokio::select! {
                () = received(interrupt) => {}
                () = received(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Loads the plugin `spec` describes.
async fn load(engine: &Engine, spec: &PluginSpec) -> Result<Arc<Plugin>> {
    let plugin = spec.load(engine).await?;
    tracing::debug!(plugin = plugin.name(), origin = plugin.origin(), code = ?plugin.code_source(), "loaded");
    Ok(plugin)
}

/// The component `path` names: a path, or a name ending in `.wasm`, is a
/// file; any other name must be a built-in plugin's. None is the built-in
/// file-log bus.
fn component_source(engine: &Engine, path: Option<&Path>) -> Result<ComponentSource> {
    let Some(path) = path else {
        return Ok(ComponentSource::BuiltIn("file-log".into()));
    };
    let text = path.to_str().unwrap_or_default();
    if text.is_empty()
        || text.contains(std::path::MAIN_SEPARATOR)
        || text.contains('/')
        || text.ends_with(".wasm")
    {
        return Ok(ComponentSource::File(path.to_owned()));
    }
    if engine.built_in(text).is_none() {
        bail!(
            "plugin `{text}`: not a built-in plugin ({}); a component file is a path or ends in .wasm",
            engine.built_in_names().join(", ")
        );
    }
    Ok(ComponentSource::BuiltIn(text.to_owned()))
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect(args) => inspect::run(args).await,
        Command::Produce(args) => produce::run(args).await,
        Command::Consume(args) => consume::run(args).await,
        Command::Server(args) => server::run(args).await,
        Command::Client(args) => client::run(args).await,
        Command::Status(args) => client::status(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::PeakRss { args } => bench::peak_rss(args),
    }
}

impl Cli {
    /// Whether the log shows only warnings unless asked for more: the bench
    /// prints its own progress, and the jobs it runs would drown it.
    pub fn quiet_log(&self) -> bool {
        matches!(self.command, Command::Bench(_))
    }
}

pub fn init_logging(verbose: u8, quiet: bool, quiet_log: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) if quiet_log => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("HERMES_WASM_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!(
                "warn,hermes_wasm={default},hermes_jobs={default},hermes_event_hubs={default},plugin={default}"
            ))
        });
    // Colours for a terminal only: a service's log file or journal gets
    // plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}
