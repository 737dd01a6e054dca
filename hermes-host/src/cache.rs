//! Compiled components on disk, keyed by the component's bytes and by the
//! engine's compatibility hash, so a second start does not recompile and a
//! new wasmtime or another CPU never reads stale code.
//!
//! Compiled code is machine code the host runs: it is read only from a
//! directory the user owns and no one else may write to (created so), and
//! only from files the user owns. Anywhere else the cache is not used, and
//! a warning says why.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_key: u64,
    engine: wasmtime::Engine,
    /// Whether the warning that the cache is not used was given.
    warned: AtomicBool,
}

impl ComponentCache {
    pub(crate) fn new(dir: PathBuf, engine: &wasmtime::Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir,
            engine_key: hasher.finish(),
            engine: engine.clone(),
            warned: AtomicBool::new(false),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, bytes: &[u8]) -> PathBuf {
        let digest = Sha256::digest(bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir
            .join(format!("{hex}-{:016x}.cwasm", self.engine_key))
    }

    /// Whether the directory (and `file` in it, if given) can be trusted
    /// with machine code: owned by this user, writable by no one else.
    fn trusted(&self, file: Option<&Path>) -> bool {
        let me = nix::unistd::geteuid().as_raw();
        let check = |path: &Path| -> Result<(), String> {
            let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
            if meta.file_type().is_symlink() {
                return Err("it is a symbolic link".into());
            }
            if meta.uid() != me {
                return Err(format!(
                    "it belongs to user {}, not to this one ({me})",
                    meta.uid()
                ));
            }
            if meta.mode() & 0o022 != 0 {
                return Err(format!(
                    "others may write to it (mode {:o})",
                    meta.mode() & 0o777
                ));
            }
            Ok(())
        };
        let checked = check(&self.dir).and_then(|()| file.map_or(Ok(()), check));
        if let Err(why) = &checked
            && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(dir = %self.dir.display(), "not using the compiled-code cache: {why}");
        }
        checked.is_ok()
    }

    /// The cached compilation of `bytes`, if there is a usable one.
    pub(crate) fn get(&self, bytes: &[u8]) -> Option<Component> {
        let path = self.path(bytes);
        if !path.exists() || !self.trusted(Some(&path)) {
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
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&self.dir)
                    .map_err(|e| e.to_string())?;
                if !self.trusted(None) {
                    return Ok(());
                }
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
