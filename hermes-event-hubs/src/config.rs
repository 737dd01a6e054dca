//! `hermes-wasm serve`'s configuration, a YAML file:
//!
//! ```yaml
//! listen: 127.0.0.1:5672          # the default; 0 as the port: any free one
//! policies:                       # at least one
//!   RootManageSharedAccessKey: {key: "c2VjcmV0", rights: [manage]}
//!   sender: {key: "c2VuZA==", rights: [send]}
//! hubs:
//!   hub1: {partitions: 4, consumer_groups: [audit]}   # $Default is implied
//! max_message_size: 1048576       # bytes; Event Hubs' own limit by default
//! tls: {certificate: cert.pem, key: key.pem}          # amqps; none by default
//! bus:                            # a plugin entry, as in hermes' messagebus
//!   file-log:
//!     settings:
//!       path: "/var/lib/event-hubs/{hub}/{partition}"   # quoted: braces
//!     dirs: [/var/lib/event-hubs]
//! ```
//!
//! Without `bus`, each partition is a built-in file-log under `data/`
//! beside the file. Relative paths resolve against the file's directory; in
//! the bus's settings, `{hub}` and `{partition}` name each partition.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result, anyhow, bail};
use hermes_host::Engine;
use hermes_jobs::config::{BusSpec, base_dir, resolve};
use indexmap::IndexMap;
use serde::Deserialize;

use crate::endpoint::{Config, Hub, MAX_MESSAGE_SIZE, TlsFiles};
use crate::partition::BusTemplate;
use crate::sas::{Policies, Policy, Right};

/// The address `serve` listens on unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5672";

/// The most partitions a hub may have (Event Hubs' own largest).
pub const MAX_PARTITIONS: u32 = 1024;

/// The range a message size limit may take.
pub const MESSAGE_SIZE_RANGE: std::ops::RangeInclusive<u64> = 1024..=64 * 1024 * 1024;

/// The file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
struct File {
    #[serde(default)]
    listen: Option<String>,
    policies: IndexMap<String, PolicyEntry>,
    hubs: IndexMap<String, HubEntry>,
    #[serde(default)]
    max_message_size: Option<u64>,
    #[serde(default)]
    tls: Option<TlsEntry>,
    #[serde(default)]
    bus: Option<IndexMap<String, BusSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `key` and `rights`")]
struct PolicyEntry {
    key: String,
    rights: Vec<RightName>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase", expecting = "send, listen or manage")]
enum RightName {
    Send,
    Listen,
    Manage,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `partitions`")]
struct HubEntry {
    partitions: u32,
    #[serde(default)]
    consumer_groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `certificate` and `key`"
)]
struct TlsEntry {
    certificate: PathBuf,
    key: PathBuf,
}

/// What `serve` runs: where it listens, and the endpoint's configuration.
#[derive(Debug)]
pub struct Serve {
    /// The listening address.
    pub listen: SocketAddr,
    /// The endpoint.
    pub config: Config,
}

/// The simple case, from flags: hubs and policies, the partitions kept by
/// file-log under `data`.
#[derive(Debug, Clone)]
pub struct Simple {
    /// The listening address; default [`DEFAULT_LISTEN`].
    pub listen: Option<String>,
    /// Hubs as `NAME` or `NAME:PARTITIONS` (4 by default).
    pub hubs: Vec<String>,
    /// Policies as `NAME=KEY`, each with every right.
    pub policies: Vec<String>,
    /// Where the partitions are kept.
    pub data: PathBuf,
}

/// Reads `serve`'s configuration file and loads its bus plugin; an error
/// names the file and the key at fault.
pub async fn load(path: &Path, engine: &Engine) -> Result<Serve> {
    let file: File = hermes_jobs::config::read(path)?;
    let base = base_dir(path);
    let at = |key: &str| format!("{}: {key}", path.display());
    let listen = listen(file.listen.as_deref()).with_context(|| at("listen"))?;
    // A hub was made when its configuration was written.
    let created_at = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let mut hubs = Vec::new();
    for (name, entry) in &file.hubs {
        hubs.push(
            hub(name, entry.partitions, &entry.consumer_groups, created_at)
                .with_context(|| at(&format!("hubs.{name}")))?,
        );
    }
    check_hubs(&hubs).with_context(|| at("hubs"))?;
    let mut policies = Policies::default();
    for (name, entry) in &file.policies {
        let rights = entry
            .rights
            .iter()
            .map(|r| match r {
                RightName::Send => Right::Send,
                RightName::Listen => Right::Listen,
                RightName::Manage => Right::Manage,
            })
            .collect();
        let policy =
            policy(name, &entry.key, rights).with_context(|| at(&format!("policies.{name}")))?;
        policies.0.insert(name.clone(), policy);
    }
    if policies.0.is_empty() {
        bail!(
            "{}: no policy: a client needs one to sign with",
            at("policies")
        );
    }
    let max_message_size = match file.max_message_size {
        None => MAX_MESSAGE_SIZE,
        Some(size) if MESSAGE_SIZE_RANGE.contains(&size) => size,
        Some(size) => bail!(
            "{}: {size} is out of range ({} to {} bytes)",
            at("max_message_size"),
            MESSAGE_SIZE_RANGE.start(),
            MESSAGE_SIZE_RANGE.end()
        ),
    };
    let tls = file.tls.as_ref().map(|tls| TlsFiles {
        certificate: resolve(&base, &tls.certificate),
        key: resolve(&base, &tls.key),
    });
    let bus = match &file.bus {
        None => default_bus(&base.join("data"), engine).await?,
        Some(buses) => {
            let mut entries = buses.iter();
            let (Some((name, spec)), None) = (entries.next(), entries.next()) else {
                bail!("{}: exactly one bus plugin is configured", at("bus"));
            };
            let key = format!("bus.{name}");
            let spec = spec
                .plugin_spec(name, &key, engine, &base)
                .with_context(|| path.display().to_string())?;
            bus_template(&spec, engine)
                .await
                .with_context(|| at(&key))?
        }
    };
    Ok(Serve {
        listen,
        config: Config {
            hubs,
            policies,
            tls,
            bus: Some(bus),
            max_message_size,
        },
    })
}

/// `serve`'s configuration from flags.
pub async fn simple(flags: &Simple, engine: &Engine) -> Result<Serve> {
    let listen = listen(flags.listen.as_deref()).context("--listen")?;
    let created_at = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut hubs = Vec::new();
    for text in &flags.hubs {
        let (name, partitions) = match text.split_once(':') {
            Some((name, count)) => {
                let count = count.parse().map_err(|_| {
                    anyhow!("--hub {text}: the partition count `{count}` is not a number")
                })?;
                (name, count)
            }
            None => (text.as_str(), 4),
        };
        hubs.push(hub(name, partitions, &[], created_at).with_context(|| format!("--hub {text}"))?);
    }
    if hubs.is_empty() {
        bail!("no hub: give one with --hub NAME[:PARTITIONS], or a --config file");
    }
    check_hubs(&hubs).context("--hub")?;
    let mut policies = Policies::default();
    for text in &flags.policies {
        let Some((name, key)) = text.split_once('=') else {
            bail!("--policy {text}: expected NAME=KEY");
        };
        let policy =
            policy(name, key, vec![Right::Manage]).with_context(|| format!("--policy {name}"))?;
        policies.0.insert(name.to_owned(), policy);
    }
    if policies.0.is_empty() {
        bail!("no policy: give one with --policy NAME=KEY, or a --config file");
    }
    let bus = default_bus(&flags.data, engine).await?;
    Ok(Serve {
        listen,
        config: Config {
            hubs,
            policies,
            tls: None,
            bus: Some(bus),
            max_message_size: MAX_MESSAGE_SIZE,
        },
    })
}

fn listen(text: Option<&str>) -> Result<SocketAddr> {
    let text = text.unwrap_or(DEFAULT_LISTEN);
    text.parse()
        .map_err(|_| anyhow!("`{text}` is not an address and port, such as {DEFAULT_LISTEN}"))
}

/// A hub, checked: a name Event Hubs would take, a partition count in range.
fn hub(name: &str, partitions: u32, groups: &[String], created_at: i64) -> Result<Hub> {
    let named = |n: &str| {
        !n.is_empty()
            && n.len() <= 256
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '$'))
    };
    if !named(name) {
        bail!("`{name}` is not a hub name (letters, digits, `-`, `_`, `.`)");
    }
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        bail!("{partitions} partitions: a hub has 1 to {MAX_PARTITIONS}");
    }
    if let Some(bad) = groups.iter().find(|g| !named(g)) {
        bail!("consumer_groups: `{bad}` is not a consumer group name");
    }
    Ok(Hub {
        name: name.to_owned(),
        partitions,
        created_at,
        consumer_groups: groups.to_vec(),
    })
}

/// Hub names are not case sensitive: two that differ by case only are one.
fn check_hubs(hubs: &[Hub]) -> Result<()> {
    for (i, hub) in hubs.iter().enumerate() {
        if let Some(other) = hubs[..i]
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(&hub.name))
        {
            bail!(
                "`{}` and `{}` are one hub: names are not case sensitive",
                other.name,
                hub.name
            );
        }
    }
    Ok(())
}

fn policy(name: &str, key: &str, rights: Vec<Right>) -> Result<Policy> {
    if name.is_empty() || name.contains([';', '=', '&']) {
        bail!("`{name}` is not a policy name");
    }
    if key.len() < 8 {
        bail!("the key is too short to keep anyone out (8 characters at least)");
    }
    if rights.is_empty() {
        bail!("no rights: give send, listen or manage");
    }
    Ok(Policy {
        key: key.to_owned(),
        rights,
    })
}

/// The built-in file-log, one log per partition under `data`
/// (`data/<hub>/<partition>`), the directory made if missing.
async fn default_bus(data: &Path, engine: &Engine) -> Result<BusTemplate> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("the data directory {}", data.display()))?;
    let data = std::fs::canonicalize(data)
        .with_context(|| format!("the data directory {}", data.display()))?;
    let spec = hermes_host::PluginSpec {
        component: hermes_host::ComponentSource::BuiltIn("file-log".into()),
        settings: serde_json::json!({"path": format!("{}/{{hub}}/{{partition}}", data.display())}),
        grants: hermes_host::Grants {
            dirs: vec![hermes_host::DirGrant::parse(&data.display().to_string())?],
            ..hermes_host::Grants::default()
        },
    };
    bus_template(&spec, engine).await
}

/// The bus a plugin spec describes, if it can keep partitions: it must
/// produce and consume.
async fn bus_template(spec: &hermes_host::PluginSpec, engine: &Engine) -> Result<BusTemplate> {
    let plugin = spec.load(engine).await?;
    if plugin.consumer_settings(&spec.settings).is_none() {
        bail!(
            "the plugin `{}` cannot read its events back (it has no consumer role)",
            plugin.name()
        );
    }
    Ok(BusTemplate {
        plugin,
        settings: spec.settings.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_or_a_policy_out_of_bounds_is_refused_saying_why() {
        assert!(hub("hub1", 4, &["audit".into()], 0).is_ok());
        for (name, partitions, says) in [
            ("", 4, "not a hub name"),
            ("a/b", 4, "not a hub name"),
            ("hub1", 0, "1 to 1024"),
            ("hub1", 1025, "1 to 1024"),
        ] {
            let error = hub(name, partitions, &[], 0).expect_err(name).to_string();
            assert!(error.contains(says), "{error}");
        }
        let error = hub("hub1", 1, &["a b".into()], 0).expect_err("group");
        assert!(error.to_string().contains("`a b`"), "{error}");
        let twice = [hub("Hub1", 1, &[], 0), hub("hub1", 2, &[], 0)]
            .into_iter()
            .collect::<Result<Vec<_>>>()
            .expect("hubs");
        assert!(check_hubs(&twice).is_err());

        assert!(policy("send", "c2VjcmV0a2V5", vec![Right::Send]).is_ok());
        for (name, key, rights, says) in [
            (
                "a;b",
                "c2VjcmV0a2V5",
                vec![Right::Send],
                "not a policy name",
            ),
            ("send", "short", vec![Right::Send], "too short"),
            ("send", "c2VjcmV0a2V5", vec![], "no rights"),
        ] {
            let error = policy(name, key, rights).expect_err(says).to_string();
            assert!(error.contains(says), "{error}");
        }
        assert!(listen(None).is_ok_and(|a| a.ip().is_loopback()));
        assert!(listen(Some("localhost")).is_err());
    }
}
