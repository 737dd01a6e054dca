//! Calling a plugin: a fresh instance in its sandbox, each call under its
//! deadline, and what a call that trapped or broke its contract becomes.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Store, Trap};

use super::Plugin;
use crate::bindings::types::BusError;
use crate::engine::{EPOCH_TICK, one_line};
use crate::error::{Error, Result};
use crate::sandbox::HostState;

/// How long the host waits past a call's deadline before it gives up on a
/// guest blocked in a host call, where the epoch cannot interrupt it.
const DEADLINE_GRACE: Duration = Duration::from_millis(500);

/// How wasmtime says a call copied more than its hostcall fuel allows (the
/// error type itself is private).
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

impl Plugin {
    /// A fresh instance in its own store and sandbox.
    pub(crate) async fn instantiate(&self) -> Result<Instance> {
        let state = HostState::new(Arc::from(self.metadata.name.as_str()), &self.grants)?;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limiter);
        // What one call may copy between the plugin and the host (its
        // arguments to a capability, what an export returns): the canonical
        // ABI lets lists and strings alias, so without this bound a plugin
        // owning a few MiB could make the host copy gigabytes.
        store.set_hostcall_fuel(self.grants.memory_limit);
        store.epoch_deadline_trap();
        // Instantiating runs the component's start functions: under the call
        // deadline, like any call.
        let limit = self.arm(&mut store, Duration::ZERO);
        let instance =
            match tokio::time::timeout(limit, self.pre.instantiate_async(&mut store)).await {
                Ok(Ok(instance)) => instance,
                Ok(Err(e)) => return Err(self.cannot_instantiate(self.explain_trap(&store, &e))),
                Err(_) => {
                    return Err(self.cannot_instantiate(format!("did not return within {limit:?}")));
                }
            };
        Ok(Instance { store, instance })
    }

    fn cannot_instantiate(&self, reason: String) -> Error {
        Error::Load {
            path: self.origin.clone(),
            reason: format!("cannot instantiate: {reason}"),
            source: None,
        }
    }

    /// Sets the deadline of the next call: the call deadline plus `waiting`,
    /// the time the call is asked to wait. Returns how long the host waits in
    /// all before it abandons the call.
    pub(crate) fn arm(&self, store: &mut Store<HostState>, waiting: Duration) -> Duration {
        let budget = self.grants.call_deadline + waiting;
        let ticks = budget.as_nanos().div_ceil(EPOCH_TICK.as_nanos()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.data_mut().limiter.exceeded = false;
        budget + DEADLINE_GRACE
    }

    /// Says in one line why a call trapped.
    pub(crate) fn explain_trap(&self, store: &Store<HostState>, error: &wasmtime::Error) -> String {
        if store.data().limiter.exceeded {
            return format!(
                "exceeded its memory cap of {} MiB ({})",
                self.grants.memory_limit / (1024 * 1024),
                one_line(error)
            );
        }
        if error
            .chain()
            .any(|cause| cause.to_string().contains(HOSTCALL_FUEL_EXHAUSTED))
        {
            return format!(
                "passed the host more than {} MiB in one call, its memory cap \
                 (lists and strings that overlap in its memory count each time)",
                self.grants.memory_limit >> 20
            );
        }
        let table_full = error.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<wasmtime::component::ResourceTableError>(),
                Some(wasmtime::component::ResourceTableError::Full)
            )
        });
        if table_full {
            return format!(
                "held more than {} handles at once (open files, streams, databases, connections)",
                crate::sandbox::MAX_HANDLES
            );
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                format!(
                    "did not return within its call deadline of {:?}",
                    self.grants.call_deadline
                )
            }
            // The wasm backtrace goes to the debug log; a panic message, if
            // any, went to the plugin's stderr, which is in the log too.
            Some(trap) => {
                tracing::debug!(plugin = self.name(), "trap: {error:?}");
                format!("crashed: {trap} (see the plugin's output in the log)")
            }
            None => one_line(error),
        }
    }

    /// The error for a call that trapped or was abandoned.
    pub(crate) fn trapped(&self, call: &'static str, reason: String) -> Error {
        Error::Trapped {
            plugin: self.name().to_owned(),
            call,
            reason,
        }
    }

    /// Runs one export call under the deadline (the call deadline plus
    /// `waiting`) and sorts what it gave back: its value, the bus error the
    /// plugin returned, or [`Error::Trapped`] when the instance must go.
    pub(crate) async fn call<T>(
        &self,
        store: &mut Store<HostState>,
        call: &'static str,
        waiting: Duration,
        f: impl AsyncFnOnce(&mut Store<HostState>) -> wasmtime::Result<std::result::Result<T, BusError>>,
    ) -> Result<T> {
        let limit = self.arm(store, waiting);
        let outcome = tokio::time::timeout(limit, f(&mut *store)).await;
        self.settle(store, call, limit, outcome)
    }

    fn settle<T>(
        &self,
        store: &Store<HostState>,
        call: &'static str,
        limit: Duration,
        outcome: std::result::Result<
            wasmtime::Result<std::result::Result<T, BusError>>,
            tokio::time::error::Elapsed,
        >,
    ) -> Result<T> {
        match outcome {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(Error::Bus {
                plugin: self.name().to_owned(),
                call,
                error,
            }),
            Ok(Err(trap)) => Err(self.trapped(call, self.explain_trap(store, &trap))),
            Err(_) => Err(self.trapped(call, format!("did not return within {limit:?}"))),
        }
    }
}

/// Calls a plugin export on a [`super::Handle`]'s live instance, under its
/// deadline: `guest_call!(self.handle, "name", waiting,
/// consumer.call_seek(offset))`, the store and the resource being passed
/// first. `infallible` marks an export that returns no `result`. The handle
/// keeps the instance unless the call trapped.
macro_rules! guest_call {
    (@run $handle:expr, $name:literal, $waiting:expr, $accessor:ident, |$role:ident, $store:ident, $resource:ident| $call:expr) => {{
        let handle = &mut $handle;
        let mut live = handle.take_live().await?;
        let $role = live.guest.$accessor();
        let $resource = live.resource;
        let result = handle.plugin.call(&mut live.instance.store, $name, $waiting, async |$store| $call).await;
        if !matches!(result, Err($crate::error::Error::Trapped { .. })) {
            handle.live = Some(live);
        }
        result
    }};
    ($handle:expr, $name:literal, $waiting:expr, $role:ident . $method:ident ( $($arg:expr),* )) => {
        guest_call!(@run $handle, $name, $waiting, $role, |role, store, resource| {
            role.$method(store, resource $(, $arg)*).await
        })
    };
    ($handle:expr, $name:literal, $waiting:expr, infallible $role:ident . $method:ident ( $($arg:expr),* )) => {
        guest_call!(@run $handle, $name, $waiting, $role, |role, store, resource| {
            role.$method(store, resource $(, $arg)*).await.map(Ok::<(), $crate::BusError>)
        })
    };
}
pub(crate) use guest_call;

/// A plugin instance and its store.
pub(crate) struct Instance {
    pub(crate) store: Store<HostState>,
    pub(crate) instance: wasmtime::component::Instance,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{Metadata, World};
    use crate::sandbox::Grants;

    /// A plugin whose component's start function spins forever.
    fn spinning(engine: &crate::Engine, call_deadline: Duration) -> Plugin {
        let wat = r#"(component
            (core module $m
                (func $spin (loop $again (br $again)))
                (start $spin))
            (core instance (instantiate $m)))"#;
        let component = wasmtime::component::Component::new(
            engine.wasmtime(),
            wat::parse_str(wat).expect("wat"),
        )
        .expect("component");
        let mut linker = wasmtime::component::Linker::new(engine.wasmtime());
        crate::capabilities::add_to_linker(&mut linker).expect("linker");
        Plugin {
            origin: "spinning.wasm".into(),
            world: World::Producer,
            metadata: Metadata {
                name: "spinning".into(),
                version: String::new(),
                description: String::new(),
                roles: vec![],
            },
            capabilities: vec![],
            grants: Grants {
                call_deadline,
                ..Grants::default()
            },
            code_source: crate::CodeSource::Compiled,
            pre: linker.instantiate_pre(&component).expect("instantiate_pre"),
            produce: None,
            consume: None,
        }
    }

    #[tokio::test]
    async fn a_start_function_that_never_returns_is_stopped_at_the_call_deadline() {
        let engine = crate::Engine::new(None).expect("engine");
        let plugin = spinning(&engine, Duration::from_millis(100));
        let error = match plugin.instantiate().await {
            Ok(_) => panic!("the start function never returns"),
            Err(error) => error,
        };
        assert!(
            matches!(&error, Error::Load { reason, .. }
                if reason == "cannot instantiate: did not return within its call deadline of 100ms"),
            "{error}"
        );
    }
}
