//! What the endpoint's tests share: a real bus for the partitions, and
//! the real SDK to drive the endpoint with (`sdk`).

pub mod sdk;

use std::path::Path;
use std::sync::Arc;

use hermes_event_hubs::partition::BusTemplate;
use hermes_host::{DirGrant, Engine, Grants, Plugin};

/// The built-in file-log bus, one log per partition under `dir`
/// (`dir/<hub>/<partition>`), compiled once for every run in the target
/// directory.
pub async fn file_log(dir: &Path) -> BusTemplate {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
    let engine = Engine::new(Some(cache)).expect("engine");
    let grants = Grants {
        dirs: vec![DirGrant::parse(&dir.display().to_string()).expect("a directory")],
        ..Grants::default()
    };
    let plugin = Plugin::load(&engine, hermes_builtins::FILE_LOG, "file-log", grants)
        .await
        .expect("file-log loads");
    BusTemplate {
        plugin: Arc::clone(&plugin),
        settings: serde_json::json!({"path": format!("{}/{{hub}}/{{partition}}", dir.display())}),
    }
}
