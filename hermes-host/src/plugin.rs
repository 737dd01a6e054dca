//! A loaded plugin: its component, which world it implements, what it says
//! about itself, and how to instantiate it in its sandbox.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{InstancePre, Linker};
use wasmtime::{Store, Trap};

use crate::bindings::types::BusError;
use crate::bindings::{consume, plugin as wit_plugin, produce};
use crate::engine::{CodeSource, EPOCH_TICK, Engine, one_line};
use crate::error::{Error, Result};
use crate::sandbox::{Grants, HostState};

const PLUGIN_INTERFACE: &str = "hermes:bus/plugin@0.2.0";
const PRODUCE_INTERFACE: &str = "hermes:bus/produce@0.2.0";
const CONSUME_INTERFACE: &str = "hermes:bus/consume@0.2.0";

/// How long the host waits past a call's deadline before it gives up on a
/// guest blocked in a host call, where the epoch cannot interrupt it.
const DEADLINE_GRACE: Duration = Duration::from_millis(500);

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

    /// A fresh instance in its own store and sandbox.
    pub(crate) async fn instantiate(&self) -> Result<Instance> {
        let state = HostState::new(Arc::from(self.metadata.name.as_str()), &self.grants)?;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_trap();
        self.arm(&mut store, Duration::ZERO);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| Error::Load {
                path: self.origin.clone(),
                reason: format!("cannot instantiate: {}", self.explain_trap(&store, &e)),
                source: None,
            })?;
        Ok(Instance { store, instance })
    }

    /// Sets the deadline of the next call: the call deadline plus `waiting`,
    /// the time the call is asked to wait. Returns how long the host waits in
    /// all before it abandons the call.
    pub(crate) fn arm(&self, store: &mut Store<HostState>, waiting: Duration) -> Duration {
        let budget = self.grants.call_deadline + waiting;
        let ticks = budget.as_nanos().div_ceil(EPOCH_TICK.as_nanos()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.data_mut().limiter.exceeded = false;
        budget + DEADLINE_GRACE
    }

    /// Says in one line why a call trapped.
    pub(crate) fn explain_trap(&self, store: &Store<HostState>, error: &wasmtime::Error) -> String {
        if store.data().limiter.exceeded {
            return format!(
                "exceeded its memory cap of {} MiB ({})",
                self.grants.memory_limit / (1024 * 1024),
                one_line(error)
            );
        }
        let table_full = error.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<wasmtime::component::ResourceTableError>(),
                Some(wasmtime::component::ResourceTableError::Full)
            )
        });
        if table_full {
            return format!(
                "held more than {} handles at once (open files, streams, databases, connections)",
                crate::sandbox::MAX_HANDLES
            );
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                format!(
                    "did not return within its call deadline of {:?}",
                    self.grants.call_deadline
                )
            }
            // The wasm backtrace goes to the debug log; a panic message, if
            // any, went to the plugin's stderr, which is in the log too.
            Some(trap) => {
                tracing::debug!(plugin = self.name(), "trap: {error:?}");
                format!("crashed: {trap} (see the plugin's output in the log)")
            }
            None => one_line(error),
        }
    }

    /// The error for a call that trapped or was abandoned.
    pub(crate) fn trapped(&self, call: &'static str, reason: String) -> Error {
        Error::Trapped {
            plugin: self.name().to_owned(),
            call,
            reason,
        }
    }

    /// Runs one export call under the deadline (the call deadline plus
    /// `waiting`) and sorts what it gave back: its value, the bus error the
    /// plugin returned, or [`Error::Trapped`] when the instance must go.
    pub(crate) async fn call<T>(
        &self,
        store: &mut Store<HostState>,
        call: &'static str,
        waiting: Duration,
        f: impl AsyncFnOnce(&mut Store<HostState>) -> wasmtime::Result<std::result::Result<T, BusError>>,
    ) -> Result<T> {
        let limit = self.arm(store, waiting);
        let outcome = tokio::time::timeout(limit, f(&mut *store)).await;
        self.settle(store, call, limit, outcome)
    }

    fn settle<T>(
        &self,
        store: &Store<HostState>,
        call: &'static str,
        limit: Duration,
        outcome: std::result::Result<
            wasmtime::Result<std::result::Result<T, BusError>>,
            tokio::time::error::Elapsed,
        >,
    ) -> Result<T> {
        match outcome {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(Error::Bus {
                plugin: self.name().to_owned(),
                call,
                error,
            }),
            Ok(Err(trap)) => Err(self.trapped(call, self.explain_trap(store, &trap))),
            Err(_) => Err(self.trapped(call, format!("did not return within {limit:?}"))),
        }
    }
}

/// Calls a plugin export on a handle's live instance, under its deadline:
/// `guest_call!(self, "name", waiting, consumer.call_seek(offset))`, the store
/// and the resource being passed first. `infallible` marks an export that
/// returns no `result`. The handle keeps the instance unless the call trapped;
/// `self` needs a `take_live` method and a `live` field.
macro_rules! guest_call {
    ($self:ident, $name:literal, $waiting:expr, $role:ident . $method:ident ( $($arg:expr),* )) => {
        guest_call!(@run $self, $name, $waiting, $role, |role, store, resource| {
            role.$method(store, resource $(, $arg)*).await
        })
    };
    ($self:ident, $name:literal, $waiting:expr, infallible $role:ident . $method:ident ( $($arg:expr),* )) => {
        guest_call!(@run $self, $name, $waiting, $role, |role, store, resource| {
            role.$method(store, resource $(, $arg)*).await.map(Ok::<(), $crate::BusError>)
        })
    };
    (@run $self:ident, $name:literal, $waiting:expr, $accessor:ident, |$role:ident, $store:ident, $resource:ident| $call:expr) => {{
        let mut live = $self.take_live().await?;
        let $role = live.guest.$accessor();
        let $resource = live.resource;
        let result = $self.plugin.call(&mut live.instance.store, $name, $waiting, async |$store| $call).await;
        if !matches!(result, Err($crate::error::Error::Trapped { .. })) {
            $self.live = Some(live);
        }
        result
    }};
}
pub(crate) use guest_call;

/// A plugin instance and its store.
pub(crate) struct Instance {
    pub(crate) store: Store<HostState>,
    pub(crate) instance: wasmtime::component::Instance,
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
