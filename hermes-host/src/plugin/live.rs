//! A role's resource (a producer, a consumer) alive in a plugin instance,
//! and how it comes back after a trap: the host keeps what it takes to build
//! it again (its settings, whether it was open, what the role adds), and the
//! next call after a trap builds it in a fresh instance from that.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use super::{Instance, Plugin, Role};
use crate::bindings::types::BusError;
use crate::error::{Error, Result};
use crate::sandbox::HostState;

/// What a call on the plugin returns before it is sorted: a value, the
/// plugin's bus error, or a trap.
pub(crate) type Raw<T> = wasmtime::Result<std::result::Result<T, BusError>>;

/// A role's exported interface, as the host builds its resource.
pub(crate) trait RoleGuest: Sized {
    /// The role.
    const ROLE: Role;
    /// Where the interface's exports are in a loaded component.
    type Indices;
    /// What one instance remembers beside its resource.
    type Session: Default;
    /// What the host remembers beyond the settings and being open, to bring
    /// a fresh instance to where the last one stood.
    type Recipe;

    /// The role's exports in `plugin`, if it provides the role.
    fn indices(plugin: &Plugin) -> Option<&Self::Indices>;

    /// The interface in a fresh instance.
    fn load(indices: &Self::Indices, instance: &mut Instance) -> wasmtime::Result<Self>;

    /// Builds the resource from its settings.
    async fn create(&self, store: &mut Store<HostState>, settings: &str) -> Raw<ResourceAny>;

    /// Opens the resource.
    async fn open(&self, store: &mut Store<HostState>, resource: ResourceAny) -> Raw<()>;

    /// Brings an opened fresh resource to where `recipe` says the last one
    /// stood.
    async fn restore(
        &self,
        plugin: &Plugin,
        store: &mut Store<HostState>,
        resource: ResourceAny,
        recipe: &Self::Recipe,
    ) -> Result<()>;
}

/// A resource in its instance.
pub(crate) struct Live<G: RoleGuest> {
    pub(crate) instance: Instance,
    pub(crate) guest: G,
    pub(crate) resource: ResourceAny,
    pub(crate) session: G::Session,
}

/// A role's resource as a [`crate::Producer`] or [`crate::Consumer`] holds
/// it: alive in an instance, or to be built again after a trap.
pub(crate) struct Handle<G: RoleGuest> {
    pub(crate) plugin: Arc<Plugin>,
    settings: String,
    pub(crate) opened: bool,
    pub(crate) recipe: G::Recipe,
    pub(crate) live: Option<Live<G>>,
}

impl<G: RoleGuest> Handle<G> {
    /// Validates `settings` against the role's schema, then builds the
    /// resource in a fresh instance.
    pub(crate) async fn create(
        plugin: Arc<Plugin>,
        settings: &serde_json::Value,
        recipe: G::Recipe,
    ) -> Result<Self> {
        if G::indices(&plugin).is_none() {
            return Err(missing_role::<G>(&plugin));
        }
        let settings = plugin.validate_settings(G::ROLE, settings)?;
        let mut handle = Handle {
            plugin,
            settings,
            opened: false,
            recipe,
            live: None,
        };
        handle.live = Some(build(&handle.plugin, &handle.settings, false, &handle.recipe).await?);
        Ok(handle)
    }

    /// The live resource, or a fresh one if the last call trapped.
    pub(crate) async fn take_live(&mut self) -> Result<Live<G>> {
        match self.live.take() {
            Some(live) => Ok(live),
            None => {
                tracing::info!(
                    plugin = self.plugin.name(),
                    "starting a fresh instance after a trap"
                );
                build(&self.plugin, &self.settings, self.opened, &self.recipe).await
            }
        }
    }
}

/// Builds the resource in a fresh instance from `settings`, and opens it and
/// brings it to `recipe` if it was `opened`. (The handle itself holds a live
/// store, which is not `Sync`: this borrows only what it needs.)
async fn build<G: RoleGuest>(
    plugin: &Plugin,
    settings: &str,
    opened: bool,
    recipe: &G::Recipe,
) -> Result<Live<G>> {
    let indices = G::indices(plugin).ok_or_else(|| missing_role::<G>(plugin))?;
    let mut instance = plugin.instantiate().await?;
    let guest =
        G::load(indices, &mut instance).map_err(|e| plugin.trapped("create", e.to_string()))?;
    let store = &mut instance.store;
    let none = Duration::ZERO;
    let resource = plugin
        .call(store, "create", none, async |s| {
            guest.create(s, settings).await
        })
        .await?;
    if opened {
        plugin
            .call(store, "open", none, async |s| guest.open(s, resource).await)
            .await?;
        guest.restore(plugin, store, resource, recipe).await?;
    }
    Ok(Live {
        instance,
        guest,
        resource,
        session: G::Session::default(),
    })
}

fn missing_role<G: RoleGuest>(plugin: &Plugin) -> Error {
    Error::MissingRole {
        plugin: plugin.name().to_owned(),
        role: G::ROLE.as_str(),
    }
}
