//! One plugin as the operator describes it: its component, its settings,
//! its grants and its limits. A configuration file and command-line flags
//! both build a [`PluginSpec`], so each can say everything the other can.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::{Engine, Grants, Plugin};

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A component the program ships, by name (see [`Engine::with_built_ins`]).
    BuiltIn(String),
    /// A component file.
    File(PathBuf),
}

impl std::fmt::Display for ComponentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComponentSource::BuiltIn(name) => write!(f, "built-in {name}"),
            ComponentSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A plugin to load and start.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// Its component.
    pub component: ComponentSource,
    /// Its settings, checked against the schema of the role it is started in.
    pub settings: serde_json::Value,
    /// What it is granted, its memory cap and its call deadline.
    pub grants: Grants,
}

impl PluginSpec {
    /// Loads the component with the spec's grants: its metadata read, its
    /// settings not yet checked (that happens when a role is started).
    pub async fn load(&self, engine: &Engine) -> Result<Arc<Plugin>> {
        let grants = self.grants.clone();
        match &self.component {
            ComponentSource::File(path) => Plugin::from_file(engine, path, grants).await,
            ComponentSource::BuiltIn(name) => {
                let bytes = engine.built_in(name).ok_or_else(|| Error::Load {
                    path: self.component.to_string(),
                    reason: format!(
                        "no such built-in plugin (built in: {})",
                        engine.built_in_names().join(", ")
                    ),
                    source: None,
                })?;
                Plugin::load(engine, bytes, &self.component.to_string(), grants).await
            }
        }
    }
}
