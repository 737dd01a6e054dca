//! Host capabilities: what a plugin may import. Each capability is a module
//! named after its WIT interface, with its `Host` implementation and its
//! `add_to_linker`.

pub mod log;
pub mod redis;
pub mod sqlite;

use wasmtime::component::Linker;

use crate::sandbox::HostState;

/// Adds WASI and every host capability to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    log::add_to_linker(linker)?;
    redis::add_to_linker(linker)?;
    sqlite::add_to_linker(linker)?;
    crate::bindings::types::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
        linker,
        |s| s,
    )?;
    Ok(())
}
