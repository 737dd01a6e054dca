//! A loaded plugin: its component, which world it implements, what it says
//! about itself; [`call`] instantiates it in its sandbox and calls it.

mod call;
mod live;

pub(crate) use call::{Instance, guest_call};
pub(crate) use live::{Handle, Raw, RoleGuest};

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{InstancePre, Linker};

use crate::bindings::{consume, plugin as wit_plugin, produce};
use crate::engine::{CodeSource, Engine, one_line};
use crate::error::{Error, Result};
use crate::sandbox::{Grants, HostState};

const PLUGIN_INTERFACE: &str = "hermes:bus/plugin@0.2.0";
const PRODUCE_INTERFACE: &str = "hermes:bus/produce@0.2.0";
const CONSUME_INTERFACE: &str = "hermes:bus/consume@0.2.0";

/// The capability an import names, `hermes:bus/redis@0.2.0` giving `redis`;
/// `types` is the contract's shared types, not a capability.
fn capability_name(import: &str) -> Option<String> {
    let interface = import.strip_prefix("hermes:bus/")?;
    let interface = interface.split('@').next().unwrap_or(interface);
    (interface != "types").then(|| interface.to_owned())
}

/// Which `hermes:bus` world a component implements, from its exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// Exports `produce` only.
    Producer,
    /// Exports `consume` only.
    Consumer,
    /// Exports both.
    Bus,
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::Producer => "hermes:bus/producer",
            World::Consumer => "hermes:bus/consumer",
            World::Bus => "hermes:bus/bus",
        })
    }
}

/// A role a plugin plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Puts events on the bus.
    Producer,
    /// Reads them back.
    Consumer,
}

impl Role {
    /// `producer` or `consumer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }
}

/// One role the plugin provides and the JSON Schema of its settings.
#[derive(Debug, Clone)]
pub struct RoleInfo {
    /// The role.
    pub role: Role,
    /// The settings schema, parsed.
    pub settings_schema: serde_json::Value,
}

/// What a plugin says about itself.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// Short name, such as `file-log`.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// One line about the bus.
    pub description: String,
    /// The roles it provides.
    pub roles: Vec<RoleInfo>,
}

/// A plugin ready to be instantiated any number of times.
pub struct Plugin {
    origin: String,
    world: World,
    metadata: Metadata,
    capabilities: Vec<String>,
    grants: Grants,
    code_source: CodeSource,
    pre: InstancePre<HostState>,
    pub(crate) produce: Option<produce::GuestIndices>,
    pub(crate) consume: Option<consume::GuestIndices>,
}

impl Plugin {
    /// Loads the plugin in the file at `path`.
    pub async fn from_file(engine: &Engine, path: &Path, grants: Grants) -> Result<Arc<Plugin>> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::load_from(path.display().to_string(), "cannot read", e))?;
        Plugin::load(engine, &bytes, &path.display().to_string(), grants).await
    }

    /// Loads a plugin from its component bytes; `origin` names it in errors.
    pub async fn load(
        engine: &Engine,
        bytes: &[u8],
        origin: &str,
        grants: Grants,
    ) -> Result<Arc<Plugin>> {
        let load_error = |reason: String| Error::Load {
            path: origin.to_owned(),
            reason,
            source: None,
        };
        if let Some(cache) = engine.cache_dir()
            && let Some(grant) = grants.dirs.iter().find(|g| g.overlaps(cache))
        {
            return Err(load_error(format!(
                "the grant of {} reaches the compiled-code cache {}: a plugin must not touch the code the host runs; grant the bus's own directory",
                grant.path.display(),
                cache.display()
            )));
        }
        let (component, code_source) = engine.load(bytes, origin)?;

        let exports: Vec<String> = component
            .component_type()
            .exports(engine.wasmtime())
            .map(|(name, _)| name.to_owned())
            .collect();
        let has = |name: &str| exports.iter().any(|e| e == name);
        let capabilities = component
            .component_type()
            .imports(engine.wasmtime())
            .filter_map(|(name, _)| capability_name(name))
            .collect();
        let world = match (has(PRODUCE_INTERFACE), has(CONSUME_INTERFACE)) {
            _ if !has(PLUGIN_INTERFACE) => None,
            (true, true) => Some(World::Bus),
            (true, false) => Some(World::Producer),
            (false, true) => Some(World::Consumer),
            (false, false) => None,
        };
        let Some(world) = world else {
            return Err(load_error(format!(
                "not a hermes bus plugin: it must export {PLUGIN_INTERFACE} and {PRODUCE_INTERFACE} \
                 and/or {CONSUME_INTERFACE}, but exports {}",
                if exports.is_empty() {
                    "nothing".to_owned()
                } else {
                    exports.join(", ")
                }
            )));
        };

        let mut linker = Linker::new(engine.wasmtime());
        crate::capabilities::add_to_linker(&mut linker)
            .map_err(|e| Error::host_from("cannot set up the host", e))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| {
            load_error(format!(
                "needs what this host does not provide: {}",
                one_line(&e)
            ))
        })?;
        let bad_export = |what: &str, e: wasmtime::Error| {
            load_error(format!("bad {what} export: {}", one_line(&e)))
        };
        let produce = match world {
            World::Producer | World::Bus => {
                Some(produce::GuestIndices::new(&pre).map_err(|e| bad_export("produce", e))?)
            }
            World::Consumer => None,
        };
        let consume = match world {
            World::Consumer | World::Bus => {
                Some(consume::GuestIndices::new(&pre).map_err(|e| bad_export("consume", e))?)
            }
            World::Producer => None,
        };
        let describe = wit_plugin::GuestIndices::new(&pre).map_err(|e| bad_export("plugin", e))?;

        let mut plugin = Plugin {
            origin: origin.to_owned(),
            world,
            metadata: Metadata {
                name: origin.to_owned(),
                version: String::new(),
                description: String::new(),
                roles: vec![],
            },
            capabilities,
            grants,
            code_source,
            pre,
            produce,
            consume,
        };
        let mut instance = plugin.instantiate().await?;
        let guest = describe
            .load(&mut instance.store, &instance.instance)
            .map_err(|e| load_error(format!("bad plugin export: {}", one_line(&e))))?;
        let deadline = plugin.arm(&mut instance.store, Duration::ZERO);
        let described =
            tokio::time::timeout(deadline, guest.call_describe(&mut instance.store)).await;
        let raw = match described {
            Ok(Ok(raw)) => raw,
            Ok(Err(e)) => {
                return Err(load_error(format!(
                    "describe failed: {}",
                    plugin.explain_trap(&instance.store, &e)
                )));
            }
            Err(_) => return Err(load_error("describe did not return in time".into())),
        };
        plugin.metadata = metadata_from_wit(raw, world).map_err(load_error)?;
        Ok(Arc::new(plugin))
    }

    /// The world the component implements.
    pub fn world(&self) -> World {
        self.world
    }

    /// The host capabilities the component imports (`log`, `redis`,
    /// `sqlite`), whether or not the operator granted them.
    pub fn capabilities(&self) -> &[String] {
        &self.capabilities
    }

    /// What the plugin says about itself.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Of a producer's `settings`, those the plugin's consumer role takes,
    /// to read back what the producer wrote; none if the plugin has no
    /// consumer role.
    pub fn consumer_settings(&self, settings: &serde_json::Value) -> Option<serde_json::Value> {
        let role = self
            .metadata
            .roles
            .iter()
            .find(|r| r.role == Role::Consumer)?;
        let known = role.settings_schema.get("properties")?.as_object()?;
        let kept = settings
            .as_object()?
            .iter()
            .filter(|(name, _)| known.contains_key(*name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        Some(serde_json::Value::Object(kept))
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Where the plugin was loaded from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether its machine code came from the cache.
    pub fn code_source(&self) -> CodeSource {
        self.code_source
    }

    /// The grants every instance gets.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// Checks `settings` against the role's schema and returns them as the
    /// JSON text the plugin receives. The error names the first bad field.
    pub fn validate_settings(&self, role: Role, settings: &serde_json::Value) -> Result<String> {
        let info = self
            .metadata
            .roles
            .iter()
            .find(|r| r.role == role)
            .ok_or_else(|| Error::MissingRole {
                plugin: self.name().to_owned(),
                role: role.as_str(),
            })?;
        let invalid = |reason: String| Error::Settings {
            plugin: self.name().to_owned(),
            reason,
        };
        let validator = jsonschema::validator_for(&info.settings_schema)
            .map_err(|e| invalid(format!("the plugin's own schema is invalid: {e}")))?;
        if let Some(error) = validator.iter_errors(settings).next() {
            let at = error.instance_path().to_string();
            let at = if at.is_empty() {
                "settings".to_owned()
            } else {
                format!("settings{at}")
            };
            return Err(invalid(format!("{at}: {error}")));
        }
        Ok(settings.to_string())
    }
}

fn metadata_from_wit(
    raw: wit_plugin::Metadata,
    world: World,
) -> std::result::Result<Metadata, String> {
    let mut roles = Vec::new();
    for info in raw.roles {
        let role = match info.role {
            wit_plugin::Role::Producer => Role::Producer,
            wit_plugin::Role::Consumer => Role::Consumer,
        };
        let exported = match role {
            Role::Producer => world != World::Consumer,
            Role::Consumer => world != World::Producer,
        };
        if !exported {
            return Err(format!(
                "claims the {} role but does not export it",
                role.as_str()
            ));
        }
        let settings_schema = serde_json::from_str(&info.settings_schema)
            .map_err(|e| format!("the {} settings schema is not JSON: {e}", role.as_str()))?;
        roles.push(RoleInfo {
            role,
            settings_schema,
        });
    }
    if raw.name.trim().is_empty() {
        return Err("describes itself with an empty name".into());
    }
    Ok(Metadata {
        name: raw.name,
        version: raw.version,
        description: raw.description,
        roles,
    })
}
