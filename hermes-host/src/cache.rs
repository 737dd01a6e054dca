//! Compiled components on disk, keyed by the component's bytes and by the
//! engine's compatibility hash, so a second start does not recompile and a
//! new wasmtime or another CPU never reads stale code.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_key: u64,
    engine: wasmtime::Engine,
}

impl ComponentCache {
    pub(crate) fn new(dir: PathBuf, engine: &wasmtime::Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir,
            engine_key: hasher.finish(),
            engine: engine.clone(),
        }
    }

    fn path(&self, bytes: &[u8]) -> PathBuf {
        let digest = Sha256::digest(bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir
            .join(format!("{hex}-{:016x}.cwasm", self.engine_key))
    }

    /// The cached compilation of `bytes`, if there is a usable one.
    pub(crate) fn get(&self, bytes: &[u8]) -> Option<Component> {
        let path = self.path(bytes);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `put` below, from wasmtime's own
        // serialization, in a directory owned by the operator; its name binds
        // it to these exact component bytes and this engine configuration.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(&self.engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring an unusable cached component: {e}");
                None
            }
        }
    }

    /// Stores a compilation; a failure only costs a recompilation next time.
    pub(crate) fn put(&self, bytes: &[u8], component: &Component) {
        let path = self.path(bytes);
        let written = component
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|code| {
                std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
                // Write then rename, so a reader never sees half a file.
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, code).map_err(|e| e.to_string())?;
                std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            tracing::warn!(dir = %self.dir.display(), "cannot cache the compiled component: {e}");
        }
    }
}
