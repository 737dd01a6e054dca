//! What a plugin may touch: the operator's grants, and the store state that
//! enforces them (WASI context, memory limiter).
//!
//! A plugin starts with nothing: no environment variables, no network, no
//! files, no stdin. Its stdout and stderr go to the host log. The operator
//! grants directories and Redis servers, and sets the memory cap and the call
//! deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::capabilities::Capabilities;
pub use crate::capabilities::event_hubs::AmqpAllow;
pub use crate::capabilities::redis::RedisAllow;
use crate::error::{Error, Result};

/// Default memory cap: hermes events are small; a bus plugin that needs more
/// than this is leaking.
pub const DEFAULT_MEMORY_LIMIT: usize = 128 * 1024 * 1024;

/// Default time a plugin call may run, not counting the time a consumer is
/// asked to wait for new events.
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(30);

/// The memory caps an operator may set, in MiB: from 1 MiB to 64 GiB.
pub const MEMORY_MIB_RANGE: std::ops::RangeInclusive<u64> = 1..=65_536;

/// The call deadlines an operator may set, in milliseconds: from 1 ms to a day.
pub const CALL_DEADLINE_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400_000;

/// A memory cap given in MiB, checked against [`MEMORY_MIB_RANGE`].
pub fn memory_limit_mib(mib: u64) -> std::result::Result<usize, String> {
    in_range(mib, &MEMORY_MIB_RANGE)?;
    usize::try_from(mib << 20).map_err(|_| format!("{mib} MiB does not fit this machine"))
}

/// A call deadline given in milliseconds, checked against
/// [`CALL_DEADLINE_MS_RANGE`].
pub fn call_deadline_ms(ms: u64) -> std::result::Result<Duration, String> {
    in_range(ms, &CALL_DEADLINE_MS_RANGE)?;
    Ok(Duration::from_millis(ms))
}

fn in_range(value: u64, range: &std::ops::RangeInclusive<u64>) -> std::result::Result<(), String> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{value} is out of range ({} to {})",
            range.start(),
            range.end()
        ))
    }
}

/// A host directory the plugin may use, seen by the plugin at the same
/// (absolute) path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory, made absolute.
    pub path: PathBuf,
    /// Whether the plugin may only read.
    pub read_only: bool,
}

impl DirGrant {
    /// Whether the grant reaches `dir` or lies inside it: either way the
    /// plugin could read or change what is there.
    pub fn overlaps(&self, dir: &Path) -> bool {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        dir.starts_with(&self.path) || self.path.starts_with(&dir)
    }

    /// Parses `PATH`, `PATH:ro` or `PATH:rw`. The directory must exist.
    pub fn parse(spec: &str) -> Result<Self> {
        let (path, read_only) = match spec.strip_suffix(":ro") {
            Some(path) => (path, true),
            None => (spec.strip_suffix(":rw").unwrap_or(spec), false),
        };
        let path = std::fs::canonicalize(path).map_err(|e| Error::host_from(spec, e))?;
        if !path.is_dir() {
            return Err(Error::host(format!("{spec}: not a directory")));
        }
        Ok(DirGrant { path, read_only })
    }
}

/// Everything the operator grants a plugin.
#[derive(Debug, Clone)]
pub struct Grants {
    /// Directories the plugin may use, through WASI and the `sqlite` capability.
    pub dirs: Vec<DirGrant>,
    /// Redis servers the plugin may connect to through the `redis` capability.
    pub redis: Vec<RedisAllow>,
    /// Event Hubs endpoints the plugin may connect to through the
    /// `event-hubs` capability.
    pub amqp: Vec<AmqpAllow>,
    /// The most linear memory the plugin may have, in bytes.
    pub memory_limit: usize,
    /// The most time one call may run.
    pub call_deadline: Duration,
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            dirs: Vec::new(),
            redis: Vec::new(),
            amqp: Vec::new(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            call_deadline: DEFAULT_CALL_DEADLINE,
        }
    }
}

/// The state of one plugin instance's store: WASI, the resource table every
/// capability keeps its handles in, the capabilities' contexts, the limiter.
pub struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) capabilities: Capabilities,
    pub(crate) limiter: MemoryLimiter,
}

impl HostState {
    pub(crate) fn new(plugin: Arc<str>, grants: &Grants) -> Result<Self> {
        let capabilities = Capabilities::new(&plugin, grants);
        let (stdout, stderr) = capabilities.output();
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout)
            .stderr(stderr)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // File reads, writes and syncs run on the calling thread, not
            // as a hop to tokio's blocking pool each: a plugin's calls are
            // sequential anyway, and the hop, not the disk, dominated small
            // reads and per-event fsyncs. The epoch deadline still
            // interrupts the guest once the file operation returns.
            .allow_blocking_current_thread(true);
        for grant in &grants.dirs {
            let perms = if grant.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            let guest_path = grant.path.to_string_lossy().into_owned();
            wasi.preopened_dir(&grant.path, guest_path, perms)
                .map_err(|e| {
                    Error::host_from(format!("cannot grant {}", grant.path.display()), e)
                })?;
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HANDLES);
        Ok(HostState {
            wasi: wasi.build(),
            table,
            capabilities,
            limiter: MemoryLimiter::new(grants.memory_limit),
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// One budget for everything a plugin instance holds in wasm: the sum of
/// all its linear memories and tables stays within the memory cap, and the
/// number of its instances, memories and tables is bounded. A refusal is
/// remembered so the trap that follows can be explained.
pub(crate) struct MemoryLimiter {
    pub(crate) limit: usize,
    pub(crate) used: usize,
    pub(crate) exceeded: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: usize) -> Self {
        MemoryLimiter {
            limit,
            used: 0,
            exceeded: false,
        }
    }

    fn take(&mut self, current: usize, desired: usize) -> bool {
        let more = desired.saturating_sub(current);
        match self.used.checked_add(more) {
            Some(total) if total <= self.limit => {
                self.used = total;
                true
            }
            _ => {
                self.exceeded = true;
                false
            }
        }
    }
}

/// Handles one instance may hold at once, of every kind: open files and
/// directories, streams, databases, connections. Each open file is a host
/// file descriptor; a bus needs a few dozen.
pub const MAX_HANDLES: usize = 1024;

/// Tables hold function references, not data: this is far beyond what any
/// plugin needs and still bounds what a hostile one can take.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// What one table element is counted as against the memory cap.
pub const TABLE_ELEMENT_BYTES: usize = 16;

/// Core instances one plugin instance may create: a component built by the
/// Rust toolchain has a handful (its module, WASI's adapter, shims).
pub const MAX_INSTANCES: usize = 32;

/// Linear memories one plugin instance may have.
pub const MAX_MEMORIES: usize = 4;

/// Tables one plugin instance may have.
pub const MAX_TABLES: usize = 16;

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.take(current, desired))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(self.take(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        ))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::{Engine, Instance, Module, Store};

    use super::*;

    fn instantiate(wat: &str, limit: usize) -> (wasmtime::Result<Instance>, MemoryLimiter) {
        let engine = Engine::default();
        let module = Module::new(&engine, wat::parse_str(wat).expect("wat")).expect("module");
        let mut store = Store::new(&engine, MemoryLimiter::new(limit));
        store.limiter(|limiter| limiter);
        let instance = Instance::new(&mut store, &module, &[]);
        (instance, store.into_data())
    }

    /// 64 KiB pages.
    const MIB_PAGES: usize = 16;

    #[test]
    fn the_cap_is_one_budget_across_every_memory_and_table() {
        // Two memories of 48 MiB each: each fits a 64 MiB cap, both do not.
        let two = format!("(module (memory {p}) (memory {p}))", p = 48 * MIB_PAGES);
        let (refused, limiter) = instantiate(&two, 64 << 20);
        assert!(refused.is_err() && limiter.exceeded);
        let (fits, limiter) = instantiate(&two, 100 << 20);
        assert!(fits.is_ok(), "{:?}", fits.err());
        assert_eq!(limiter.used, 96 << 20);

        // A table's elements count against the same budget.
        let table = "(module (memory 16) (table 90000 funcref))";
        let (refused, _) = instantiate(table, (1 << 20) + 90_000 * TABLE_ELEMENT_BYTES - 1);
        assert!(refused.is_err());
        let (fits, _) = instantiate(table, (1 << 20) + 90_000 * TABLE_ELEMENT_BYTES);
        assert!(fits.is_ok(), "{:?}", fits.err());
        let (refused, _) = instantiate("(module (table 200000 funcref))", usize::MAX);
        assert!(refused.is_err(), "a table past MAX_TABLE_ELEMENTS");
    }

    #[test]
    fn growing_counts_too_and_the_number_of_memories_is_bounded() {
        let grows = "(module (memory (export \"m\") 16) (func (export \"grow\") (param i32) (result i32) (memory.grow (local.get 0))))";
        let engine = Engine::default();
        let module = Module::new(&engine, wat::parse_str(grows).expect("wat")).expect("module");
        let mut store = Store::new(&engine, MemoryLimiter::new(2 << 20));
        store.limiter(|limiter| limiter);
        let instance = Instance::new(&mut store, &module, &[]).expect("1 MiB fits");
        let grow = instance
            .get_typed_func::<i32, i32>(&mut store, "grow")
            .expect("grow");
        assert_eq!(grow.call(&mut store, 16).expect("call"), 16, "to 2 MiB");
        assert_eq!(grow.call(&mut store, 1).expect("call"), -1, "past the cap");
        assert!(store.data().exceeded);

        let many: String = (0..=MAX_MEMORIES).map(|_| "(memory 0)").collect();
        let (refused, _) = instantiate(&format!("(module {many})"), usize::MAX);
        assert!(refused.is_err(), "more memories than MAX_MEMORIES");
        let tables = |n: usize| -> String { (0..n).map(|_| "(table 1 funcref)").collect() };
        let (fits, _) = instantiate(&format!("(module {})", tables(MAX_TABLES)), usize::MAX);
        assert!(fits.is_ok(), "{:?}", fits.err());
        let (refused, _) = instantiate(&format!("(module {})", tables(MAX_TABLES + 1)), usize::MAX);
        assert!(refused.is_err(), "more tables than MAX_TABLES");
        let widest = format!("(module (table {MAX_TABLE_ELEMENTS} funcref))");
        let (fits, _) = instantiate(&widest, usize::MAX);
        assert!(fits.is_ok(), "a table of exactly MAX_TABLE_ELEMENTS");
    }

    #[test]
    fn instances_are_counted_per_plugin_instance() {
        let engine = Engine::default();
        let module =
            Module::new(&engine, wat::parse_str("(module)").expect("wat")).expect("module");
        let mut store = Store::new(&engine, MemoryLimiter::new(usize::MAX));
        store.limiter(|limiter| limiter);
        for _ in 0..MAX_INSTANCES {
            Instance::new(&mut store, &module, &[]).expect("within the bound");
        }
        assert!(
            Instance::new(&mut store, &module, &[]).is_err(),
            "one too many"
        );
    }

    #[test]
    fn the_operators_limits_are_range_checked_and_converted() {
        assert_eq!(DEFAULT_MEMORY_LIMIT, 128 << 20, "the documented default");
        assert_eq!(DEFAULT_CALL_DEADLINE, Duration::from_secs(30));
        assert_eq!(memory_limit_mib(1), Ok(1 << 20));
        assert_eq!(memory_limit_mib(65_536), Ok(65_536 << 20));
        assert_eq!(
            memory_limit_mib(0),
            Err("0 is out of range (1 to 65536)".to_owned())
        );
        assert!(memory_limit_mib(65_537).is_err());
        assert_eq!(call_deadline_ms(1500), Ok(Duration::from_millis(1500)));
        assert!(call_deadline_ms(0).is_err());
        assert!(call_deadline_ms(86_400_001).is_err());
    }

    #[test]
    fn a_directory_grant_is_parsed_and_knows_what_it_reaches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("file"), b"x").expect("write");
        let shown = root.display().to_string();
        let rw = DirGrant::parse(&shown).expect("grant");
        assert_eq!((rw.path.clone(), rw.read_only), (root.clone(), false));
        assert!(
            DirGrant::parse(&format!("{shown}:ro"))
                .expect("grant")
                .read_only
        );
        assert!(
            !DirGrant::parse(&format!("{shown}:rw"))
                .expect("grant")
                .read_only
        );
        let not_dir = DirGrant::parse(&format!("{shown}/file")).expect_err("a file");
        assert!(not_dir.to_string().contains("not a directory"), "{not_dir}");
        assert!(DirGrant::parse(&format!("{shown}/missing")).is_err());

        let sub = DirGrant::parse(&format!("{shown}/sub")).expect("grant");
        assert!(rw.overlaps(&root.join("sub")), "the grant holds it");
        assert!(sub.overlaps(&root), "the grant lies inside it");
        assert!(rw.overlaps(&root));
        let other = tempfile::tempdir().expect("tempdir");
        assert!(!sub.overlaps(other.path()));
        assert!(!sub.overlaps(&root.join("file")));
    }
}
