//! What a plugin may touch: the operator's grants, and the store state that
//! enforces them (WASI context, memory limiter).
//!
//! A plugin starts with nothing: no environment variables, no network, no
//! files, no stdin. Its stdout and stderr go to the host log. The operator
//! grants directories and Redis servers, and sets the memory cap and the call
//! deadline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::capabilities::Capabilities;
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
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            capabilities,
            limiter: MemoryLimiter {
                limit: grants.memory_limit,
                exceeded: false,
            },
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

/// Refuses memory growth past the cap, and remembers that it did so that the
/// resulting trap can be explained.
pub(crate) struct MemoryLimiter {
    pub(crate) limit: usize,
    pub(crate) exceeded: bool,
}

/// Tables hold function references, not data: this is far beyond what any
/// plugin needs and still bounds what a hostile one can take.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
