//! The wasmtime engine: configuration, the epoch clock behind call deadlines,
//! loading components through the on-disk cache, and the built-in components
//! a program ships, by name. It knows no host capability and no plugin
//! interface.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Component;

use crate::cache::ComponentCache;
use crate::error::{Error, Result};

/// How often the epoch advances. A call's deadline is rounded up to it, and a
/// guest stuck in a loop is interrupted within one tick of its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Shared by every plugin the runtime loads.
#[derive(Clone)]
pub struct Engine {
    inner: wasmtime::Engine,
    cache: Option<Arc<ComponentCache>>,
    built_ins: BuiltIns,
    _ticker: Arc<EpochTicker>,
}

/// Components a program ships, by the name a configuration gives them.
pub type BuiltIns = &'static [(&'static str, &'static [u8])];

/// Where a loaded component's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeSource {
    /// Compiled now (and stored in the cache, if there is one).
    Compiled,
    /// Read back from the on-disk cache: no compilation.
    Cache,
}

impl Engine {
    /// An engine whose compiled components are cached in `cache_dir` (none:
    /// no cache).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let inner = wasmtime::Engine::new(&config)
            .map_err(|e| Error::host_from("cannot start the wasm engine", e))?;
        let cache = cache_dir.map(|dir| Arc::new(ComponentCache::new(dir, &inner)));
        let ticker = Arc::new(EpochTicker::start(inner.clone()));
        Ok(Engine {
            inner,
            cache,
            built_ins: &[],
            _ticker: ticker,
        })
    }

    /// The same engine, with `built_ins` known by name (none by default): a
    /// configuration that names a plugin without giving its component gets
    /// the built-in one.
    pub fn with_built_ins(mut self, built_ins: BuiltIns) -> Self {
        self.built_ins = built_ins;
        self
    }

    /// The built-in component called `name`.
    pub fn built_in(&self, name: &str) -> Option<&'static [u8]> {
        self.built_ins
            .iter()
            .find(|(built_in, _)| *built_in == name)
            .map(|(_, bytes)| *bytes)
    }

    /// The names of the built-in components, in the order they were given.
    pub fn built_in_names(&self) -> Vec<&'static str> {
        self.built_ins.iter().map(|(name, _)| *name).collect()
    }

    /// The default cache directory: `$HERMES_WASM_CACHE`, else
    /// `$XDG_CACHE_HOME/hermes-wasm`, else `~/.cache/hermes-wasm`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("HERMES_WASM_CACHE") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("hermes-wasm"));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("hermes-wasm"))
    }

    /// Where compiled components are kept, if anywhere.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.cache.as_deref().map(ComponentCache::dir)
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    /// Compiles `bytes`, or reads the compiled code from the cache.
    pub(crate) fn load(&self, bytes: &[u8], origin: &str) -> Result<(Component, CodeSource)> {
        if let Some(component) = self.cache.as_ref().and_then(|cache| cache.get(bytes)) {
            return Ok((component, CodeSource::Cache));
        }
        let component = Component::new(&self.inner, bytes)
            .map_err(|e| Error::load_from(origin, "not a valid WebAssembly component", e))?;
        if let Some(cache) = &self.cache {
            cache.put(bytes, &component);
        }
        Ok((component, CodeSource::Compiled))
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: wasmtime::Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("hermes-wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An error chain on one line.
pub(crate) fn one_line(e: &wasmtime::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}
