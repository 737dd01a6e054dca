use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use hermes_host::{Grants, PluginSpec};

use super::CacheArgs;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The plugin: a component file, or a built-in bus (`file-log`, the
    /// default, `sqlite`, `redis-streams`).
    #[arg(value_name = "PLUGIN")]
    plugin: Option<PathBuf>,

    #[command(flatten)]
    cache: CacheArgs,
}

pub async fn run(args: InspectArgs) -> Result<()> {
    let engine = args.cache.engine()?;
    let spec = PluginSpec {
        component: super::component_source(&engine, args.plugin.as_deref())?,
        settings: serde_json::Value::Null,
        grants: Grants::default(),
    };
    let plugin = super::load(&engine, &spec).await?;
    let meta = plugin.metadata();
    let roles: Vec<_> = meta.roles.iter().map(|r| r.role.as_str()).collect();
    let capabilities = if plugin.capabilities().is_empty() {
        "none".to_owned()
    } else {
        plugin.capabilities().join(", ")
    };
    let mut out = format!(
        "plugin:       {} {}\ndescription:  {}\nworld:        {}\nsource:       {}\nroles:        {}\ncapabilities: {}\n",
        meta.name,
        meta.version,
        meta.description,
        plugin.world(),
        plugin.origin(),
        roles.join(", "),
        capabilities,
    );
    for info in &meta.roles {
        let schema = serde_json::to_string_pretty(&info.settings_schema)?;
        write!(out, "\n{} settings schema:\n{schema}\n", info.role.as_str())?;
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}
