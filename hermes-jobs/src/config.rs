//! hermes' YAML configuration: the parts a server and a client share
//! (`hermes.plugins.messagebus`, `hermes.cache`), and reading a file with
//! errors that name the file and the key at fault.
//!
//! A message-bus plugin is configured as in hermes, `hermes.plugins.messagebus.
//! <name>.settings`, with what hermes-wasm adds beside `settings`: where the
//! component is (`wasm`; default, the built-in plugin `<name>`) and what it is
//! granted (`dirs`, `allow_redis`, `allow_amqp`). Relative paths in the configuration are
//! relative to the file's directory; a plugin's own settings are passed as
//! they are, so paths in them must be absolute.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use hermes_host::{
    AmqpAllow, ComponentSource, DirGrant, Engine, Grants, Plugin, PluginSpec, RedisAllow, sandbox,
};

/// The `hermes` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a mapping")]
pub struct HermesSection {
    /// The plugins.
    pub plugins: PluginsSection,
    /// Where the cache is kept.
    #[serde(default)]
    pub cache: CacheSection,
}

/// `hermes.plugins`: the datasources (a server's) and the one message bus.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a mapping")]
pub struct PluginsSection {
    /// Datasources, by name.
    #[serde(default)]
    pub datasources: IndexMap<String, DatasourceSpec>,
    /// The message bus: exactly one entry, named after its plugin.
    pub messagebus: IndexMap<String, BusSpec>,
}

/// `hermes.plugins.datasources.<name>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping")]
pub struct DatasourceSpec {
    /// The datasource plugin: only `sqlite` is supported.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its settings; for `sqlite`, `uri`: the database file.
    pub settings: serde_json::Value,
}

/// `hermes.plugins.messagebus.<name>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping")]
pub struct BusSpec {
    /// The plugin's settings, checked against its schema.
    pub settings: serde_json::Value,
    /// The component file; default: the built-in plugin of this name.
    #[serde(default)]
    pub wasm: Option<PathBuf>,
    /// Directories granted to the plugin (`DIR` or `DIR:ro`).
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Redis servers the plugin may connect to.
    #[serde(default)]
    pub allow_redis: Vec<RedisGrant>,
    /// Event Hubs endpoints the plugin may connect to (`amqps://host[:port]`,
    /// `amqp://host[:port]`).
    #[serde(default)]
    pub allow_amqp: Vec<AmqpGrant>,
    /// The plugin's memory cap, in MiB (`--memory-mib`).
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// How long one plugin call may run, in milliseconds
    /// (`--call-deadline-ms`).
    #[serde(default)]
    pub call_deadline_ms: Option<u64>,
}

/// One entry of `allow_redis`: a server's URL, or a URL with the commands
/// allowed there beyond those a bus needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a Redis URL, or a mapping with `url` and `commands`"
)]
pub enum RedisGrant {
    /// `redis://host:port[/db]`.
    Url(String),
    /// `{url: redis://host:port[/db], commands: [EVAL, ...]}`.
    WithCommands {
        /// The server.
        url: String,
        /// Extra commands allowed on it.
        #[serde(default)]
        commands: Vec<String>,
    },
}

/// One entry of `allow_amqp`: an endpoint's URL, or a URL with the
/// certificate authority its TLS certificate is checked against.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "an amqps:// or amqp:// URL, or a mapping with `url` and `ca`"
)]
pub enum AmqpGrant {
    /// `amqps://host[:port]` or `amqp://host[:port]`.
    Url(String),
    /// `{url: amqps://host[:port], ca: ca.pem}`.
    WithCa {
        /// The endpoint.
        url: String,
        /// A PEM file of the certificates to trust for it.
        ca: PathBuf,
    },
}

impl BusSpec {
    /// The plugin this entry, named `name` and found at `key` in the file,
    /// describes: its component, settings, grants and limits, paths
    /// resolved against `base`. Each error names the key at fault.
    pub fn plugin_spec(
        &self,
        name: &str,
        key: &str,
        engine: &Engine,
        base: &Path,
    ) -> Result<PluginSpec> {
        let dirs = self
            .dirs
            .iter()
            .map(|dir| {
                let (path, ro) = match dir.strip_suffix(":ro") {
                    Some(path) => (path, ":ro"),
                    None => (dir.as_str(), ""),
                };
                let path = resolve(base, Path::new(path));
                DirGrant::parse(&format!("{}{ro}", path.display()))
                    .with_context(|| format!("{key}.dirs"))
            })
            .collect::<Result<Vec<_>>>()?;
        let redis = self
            .allow_redis
            .iter()
            .map(|grant| {
                let (url, commands) = match grant {
                    RedisGrant::Url(url) => (url, &[][..]),
                    RedisGrant::WithCommands { url, commands } => (url, &commands[..]),
                };
                RedisAllow::parse(url)
                    .and_then(|allow| allow.with_commands(commands))
                    .map_err(|e| anyhow!("{key}.allow_redis: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let amqp =
            self.allow_amqp
                .iter()
                .map(|grant| {
                    let allowed = match grant {
                        AmqpGrant::Url(url) => AmqpAllow::parse(url),
                        AmqpGrant::WithCa { url, ca } => AmqpAllow::parse(url)
                            .and_then(|allow| allow.with_ca(&resolve(base, ca))),
                    };
                    allowed.map_err(|e| anyhow!("{key}.allow_amqp: {e}"))
                })
                .collect::<Result<Vec<_>>>()?;
        let mut grants = Grants {
            dirs,
            redis,
            amqp,
            ..Grants::default()
        };
        if let Some(mib) = self.memory_mib {
            grants.memory_limit =
                sandbox::memory_limit_mib(mib).map_err(|e| anyhow!("{key}.memory_mib: {e}"))?;
        }
        if let Some(ms) = self.call_deadline_ms {
            grants.call_deadline = sandbox::call_deadline_ms(ms)
                .map_err(|e| anyhow!("{key}.call_deadline_ms: {e}"))?;
        }
        let component = match &self.wasm {
            Some(wasm) => ComponentSource::File(resolve(base, wasm)),
            None if engine.built_in(name).is_some() => ComponentSource::BuiltIn(name.to_owned()),
            None => bail!(
                "{key}: no built-in plugin `{name}` (built in: {}); give its component with `wasm`",
                engine.built_in_names().join(", ")
            ),
        };
        Ok(PluginSpec {
            component,
            settings: self.settings.clone(),
            grants,
        })
    }
}

/// `hermes.cache`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub struct CacheSection {
    /// The cache directory; default: `cache` beside the configuration file.
    #[serde(default)]
    pub dirpath: Option<PathBuf>,
}

/// Reads a YAML configuration file into `T`; an error names the file and the
/// key at fault, on one line.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T> {
    parse(&read_text(path)?, path)
}

/// The text of the configuration file at `path`.
pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))
}

/// Parses YAML `text` into `T`, as [`read`] does for the file at `path`.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    let document = serde_yaml_ng::Deserializer::from_str(text);
    let parsed = serde_path_to_error::deserialize(document);
    if parsed.is_ok() {
        debug_ignored(text);
    }
    parsed.map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner().to_string();
        if at == "." || inner.starts_with(&at) {
            return anyhow!("{}: {inner}", path.display());
        }
        // The YAML parser names a path of its own, a part of ours, when it
        // read a value ahead (an untagged enum): keep the longer one.
        let inner = match inner.split_once(": ") {
            Some((its_path, message)) if at.starts_with(its_path) => message.to_owned(),
            _ => inner,
        };
        anyhow!("{}: {at}: {inner}", path.display())
    })
}

/// Names at debug level the keys of the `hermes` section that hermes-wasm
/// has no use for (hermes' `logs`, `mail`, `cli_socket`): a configuration
/// hermes reads is accepted as it is.
fn debug_ignored(text: &str) {
    let Ok(serde_yaml_ng::Value::Mapping(document)) = serde_yaml_ng::from_str(text) else {
        return;
    };
    if let Some(serde_yaml_ng::Value::Mapping(hermes)) = document.get("hermes") {
        for key in hermes.keys().filter_map(|k| k.as_str()) {
            if !["plugins", "cache"].contains(&key) {
                tracing::debug!("hermes.{key}: not used by hermes-wasm, ignored");
            }
        }
    }
}

/// A configuration file's directory, against which its relative paths resolve.
pub fn base_dir(config: &Path) -> PathBuf {
    let dir = config.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// `path` against `base` when relative.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

impl HermesSection {
    /// The cache directory, created if missing.
    pub fn cache_dir(&self, base: &Path) -> Result<PathBuf> {
        let dir = resolve(
            base,
            self.cache.dirpath.as_deref().unwrap_or(Path::new("cache")),
        );
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("hermes.cache.dirpath {}", dir.display()))?;
        Ok(dir)
    }

    /// The message bus: its name and spec.
    pub fn bus(&self) -> Result<(&str, &BusSpec)> {
        let mut buses = self.plugins.messagebus.iter();
        match (buses.next(), buses.next()) {
            (Some((name, spec)), None) => Ok((name, spec)),
            (None, _) => bail!("hermes.plugins.messagebus: no message bus is configured"),
            (Some(_), Some(_)) => bail!(
                "hermes.plugins.messagebus: {} buses are configured; hermes uses exactly one",
                self.plugins.messagebus.len()
            ),
        }
    }

    /// The message-bus plugin as configured: its component, settings,
    /// grants and limits. Each error names the key at fault.
    pub fn bus_spec(&self, engine: &Engine, base: &Path) -> Result<PluginSpec> {
        let (name, spec) = self.bus()?;
        let key = format!("hermes.plugins.messagebus.{name}");
        let plugin = spec.plugin_spec(name, &key, engine, base)?;
        let cache = self.cache_dir(base)?;
        if let Some(grant) = plugin.grants.dirs.iter().find(|g| g.overlaps(&cache)) {
            bail!(
                "{key}.dirs: {} reaches the host's cache {} (hermes.cache.dirpath), which a plugin must not touch: grant the bus's own directory",
                grant.path.display(),
                cache.display()
            );
        }
        Ok(plugin)
    }

    /// Loads the message-bus plugin as configured.
    pub async fn load_bus(
        &self,
        engine: &Engine,
        base: &Path,
    ) -> Result<(Arc<Plugin>, PluginSpec)> {
        let spec = self.bus_spec(engine, base)?;
        let plugin = spec.load(engine).await?;
        Ok((plugin, spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `hub.example`, as a certificate
    /// authority file holds one.
    const CA: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBhDCCASmgAwIBAgIUff0ahfHcazyAloDGcuv7s0mSfakwCgYIKoZIzj0EAwIw\n\
FjEUMBIGA1UEAwwLaHViLmV4YW1wbGUwIBcNMjYxMjA2MDI1NjEzWhgPMjEyNjEx\n\
MTIwMjU2MTNaMBYxFDASBgNVBAMMC2h1Yi5leGFtcGxlMFkwEwYHKoZIzj0CAQYI\n\
KoZIzj0DAQcDQgAEo5p1/UCVl83h6x8o3eBUv+z1H3Etn6UDBbWnl+Jta+YzrSKb\n\
VB4JF8Lz0uGTYmwxKX13Ar30JOGAebEEEDz9w6NTMFEwHQYDVR0OBBYEFDLdfuuc\n\
/zb3aqqr55KBkrrbB7ZOMB8GA1UdIwQYMBaAFDLdfuuc/zb3aqqr55KBkrrbB7ZO\n\
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAIdLHM/iDsMlZ+DD\n\
Zv7uUjjX7z1uO44OUQiTG9G86bGAAiEA+QcXZW7SPim7ygKwa3wCeIFFSDuMjElW\n\
7O/+U/zKnJc=\n\
-----END CERTIFICATE-----\n";

    #[derive(Debug, Deserialize)]
    struct Doc {
        #[allow(dead_code)]
        hermes: HermesSection,
    }

    #[test]
    fn an_error_names_the_file_and_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("client.yml");
        std::fs::write(
            &path,
            "hermes:\n  plugins:\n    messagebus:\n      sqlite:\n        settings: {}\n        grants: []\n",
        )
        .expect("write");
        let error = read::<Doc>(&path).expect_err("unknown key").to_string();
        assert!(error.starts_with(&path.display().to_string()), "{error}");
        assert!(
            error.contains("hermes.plugins.messagebus.sqlite") && error.contains("grants"),
            "{error}"
        );
        assert_eq!(error.lines().count(), 1);
    }

    fn section(dir: &Path, bus: &str) -> HermesSection {
        let path = dir.join("bus.yml");
        std::fs::write(
            &path,
            format!("hermes:\n  plugins:\n    messagebus:\n{bus}"),
        )
        .expect("write");
        read::<Whole>(&path).expect("reads").hermes
    }

    #[derive(Debug, Deserialize)]
    struct Whole {
        hermes: HermesSection,
    }

    #[test]
    fn the_yaml_sets_what_the_flags_set_and_its_errors_name_its_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::new(None).expect("engine");
        let granted = dir.path().join("bus");
        std::fs::create_dir(&granted).expect("mkdir");
        // A certificate authority for the TLS endpoint, beside the file.
        std::fs::write(dir.path().join("ca.pem"), CA).expect("write");
        let hermes = section(
            dir.path(),
            "      probe:\n        settings: {path: /x}\n        wasm: probe.wasm\n        dirs: [bus, \"bus:ro\"]\n        allow_redis: [\"redis://127.0.0.1:6379/2\", {url: \"redis://127.0.0.1:6380\", commands: [eval]}]\n        allow_amqp: [\"amqp://127.0.0.1:5672\", {url: \"amqps://hub.example\", ca: ca.pem}]\n        memory_mib: 64\n        call_deadline_ms: 1500\n",
        );
        let spec = hermes.bus_spec(&engine, dir.path()).expect("a spec");
        assert_eq!(
            spec.component,
            ComponentSource::File(dir.path().join("probe.wasm"))
        );
        assert_eq!(spec.settings, serde_json::json!({"path": "/x"}));
        assert_eq!(spec.grants.memory_limit, 64 << 20);
        assert_eq!(
            spec.grants.call_deadline,
            std::time::Duration::from_millis(1500)
        );
        let canonical = std::fs::canonicalize(&granted).expect("canonical");
        assert_eq!(
            spec.grants
                .dirs
                .iter()
                .map(|d| (d.path.clone(), d.read_only))
                .collect::<Vec<_>>(),
            [(canonical.clone(), false), (canonical, true)]
        );
        assert_eq!(
            spec.grants.redis,
            [
                RedisAllow::parse("redis://127.0.0.1:6379/2").expect("valid"),
                RedisAllow::parse("redis://127.0.0.1:6380")
                    .and_then(|a| a.with_commands(["EVAL"]))
                    .expect("valid"),
            ]
        );

        assert_eq!(
            spec.grants.amqp,
            [
                AmqpAllow::parse("amqp://127.0.0.1:5672").expect("valid"),
                AmqpAllow::parse("amqps://hub.example")
                    .and_then(|a| a.with_ca(&dir.path().join("ca.pem")))
                    .expect("valid"),
            ]
        );

        let refused = |bus: &str| {
            let hermes = section(dir.path(), bus);
            format!(
                "{:#}",
                hermes.bus_spec(&engine, dir.path()).expect_err("refused")
            )
        };
        let base = "      probe:\n        settings: {}\n        wasm: probe.wasm\n";
        assert_eq!(
            refused(&format!("{base}        memory_mib: 0\n")),
            "hermes.plugins.messagebus.probe.memory_mib: 0 is out of range (1 to 65536)"
        );
        assert_eq!(
            refused(&format!("{base}        call_deadline_ms: 90000000000\n")),
            "hermes.plugins.messagebus.probe.call_deadline_ms: 90000000000 is out of range (1 to 86400000)"
        );
        assert_eq!(
            refused(&format!(
                "{base}        allow_redis: [{{url: \"redis://127.0.0.1\", commands: [config]}}]\n"
            )),
            "hermes.plugins.messagebus.probe.allow_redis: the Redis command CONFIG cannot be allowed: it would let a plugin out of its grant"
        );
        assert_eq!(
            refused(&format!(
                "{base}        allow_amqp: [\"https://hub.example\"]\n"
            )),
            "hermes.plugins.messagebus.probe.allow_amqp: https://hub.example: the scheme \"https\" is not amqps, amqp or sb"
        );
        let missing = refused(&format!(
            "{base}        allow_amqp: [{{url: \"amqps://hub.example\", ca: missing.pem}}]\n"
        ));
        assert!(
            missing.starts_with("hermes.plugins.messagebus.probe.allow_amqp: ")
                && missing.contains("missing.pem"),
            "{missing}"
        );
        std::fs::create_dir_all(dir.path().join("cache/sub")).expect("mkdir");
        for reaching in ["\".\"", "cache", "cache/sub"] {
            let message = refused(&format!("{base}        dirs: [{reaching}]\n"));
            assert!(
                message.starts_with("hermes.plugins.messagebus.probe.dirs: ")
                    && message.contains("hermes.cache.dirpath"),
                "{reaching}: {message}"
            );
        }
        let missing = refused(&format!("{base}        dirs: [nowhere]\n"));
        assert!(
            missing.starts_with("hermes.plugins.messagebus.probe.dirs: ")
                && missing.contains("nowhere")
                && !missing.contains("--"),
            "{missing}"
        );
        let unknown = refused("      nosuch:\n        settings: {}\n");
        assert!(
            unknown.starts_with("hermes.plugins.messagebus.nosuch: no built-in plugin `nosuch`")
                && unknown.contains("`wasm`"),
            "{unknown}"
        );
    }
}
