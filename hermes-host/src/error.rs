//! The host library's public error type.

use thiserror::Error;

use crate::bindings::types::BusError;

/// An error below this library (I/O, wasmtime, a parser), kept as the cause.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, and with which plugin. Display gives one line; the
/// error below it, if any, is its [`source`](std::error::Error::source), so
/// printing the chain (`{:#}` of an `anyhow::Error`) tells the whole story.
#[derive(Debug, Error)]
pub enum Error {
    /// The file is not a component, or not a hermes bus plugin.
    #[error("{path}: {reason}")]
    Load {
        /// Where the plugin was loaded from.
        path: String,
        /// Why it cannot be used.
        reason: String,
        /// The error below, if any.
        #[source]
        source: Option<Source>,
    },

    /// The operator's settings do not fit the plugin.
    #[error("invalid settings for plugin `{plugin}`: {reason}")]
    Settings {
        /// The plugin's name.
        plugin: String,
        /// Which field is wrong, and how.
        reason: String,
    },

    /// The plugin does not provide the role asked of it.
    #[error("plugin `{plugin}` does not provide the {role} role")]
    MissingRole {
        /// The plugin's name.
        plugin: String,
        /// The role asked for.
        role: &'static str,
    },

    /// The plugin answered a call with a bus error.
    #[error("plugin `{plugin}`: {call} failed: {}", describe(error))]
    Bus {
        /// The plugin's name.
        plugin: String,
        /// The call that failed, such as `send`.
        call: &'static str,
        /// What the plugin said.
        error: BusError,
    },

    /// The plugin broke its sandbox's limits or crashed; its instance was
    /// discarded and the next call starts a fresh one.
    #[error("plugin `{plugin}`: {call} aborted: {reason}")]
    Trapped {
        /// The plugin's name.
        plugin: String,
        /// The call that was running.
        call: &'static str,
        /// What happened: deadline, memory cap, or the trap's message.
        reason: String,
    },

    /// The host could not set the plugin up (a granted directory is missing, ...).
    #[error("{what}")]
    Host {
        /// What the host was doing.
        what: String,
        /// The error below, if any.
        #[source]
        source: Option<Source>,
    },
}

impl Error {
    /// A host failure with nothing below it.
    pub(crate) fn host(what: impl Into<String>) -> Error {
        Error::Host {
            what: what.into(),
            source: None,
        }
    }

    /// A host failure caused by `source`.
    pub(crate) fn host_from(what: impl Into<String>, source: impl Into<Source>) -> Error {
        Error::Host {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// A plugin that cannot be used, because of `source`.
    pub(crate) fn load_from(
        path: impl Into<String>,
        reason: impl Into<String>,
        source: impl Into<Source>,
    ) -> Error {
        Error::Load {
            path: path.into(),
            reason: reason.into(),
            source: Some(source.into()),
        }
    }

    /// Whether the same call may succeed if tried again later, with nothing
    /// changed: the bus is unavailable (a server down, a lock held, a
    /// network cut). Everything else stays wrong until the operator, the data
    /// or the plugin changes, so retrying it only repeats the failure.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Bus {
                error: BusError::Unavailable(_),
                ..
            }
        )
    }

    /// The bus error behind this error, if the plugin returned one.
    pub fn bus_error(&self) -> Option<&BusError> {
        match self {
            Error::Bus { error, .. } => Some(error),
            _ => None,
        }
    }

    /// What the bus said of events it removed before they were read, if
    /// this is its `gap`.
    pub fn gap(&self) -> Option<&str> {
        match self.bus_error() {
            Some(BusError::Gap(what)) => Some(what),
            _ => None,
        }
    }
}

/// A bus error in words: its case, then what the plugin said.
pub fn describe(error: &BusError) -> String {
    match error {
        BusError::InvalidSettings(m) => format!("invalid settings: {m}"),
        BusError::NotOpen => "not open".to_owned(),
        BusError::UnknownOffset(m) => format!("unknown offset: {m}"),
        BusError::Unavailable(m) => format!("bus unavailable: {m}"),
        BusError::Corrupted(m) => format!("corrupted bus: {m}"),
        BusError::Gap(m) => format!("events missed: {m}"),
        BusError::Other(m) => m.clone(),
    }
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(error: BusError) -> Error {
        Error::Bus {
            plugin: "probe".into(),
            call: "next-batch",
            error,
        }
    }

    #[test]
    fn only_an_unavailable_bus_is_worth_a_retry() {
        assert!(bus(BusError::Unavailable("down".into())).is_retryable());
        for fatal in [
            bus(BusError::Corrupted("bad".into())),
            bus(BusError::UnknownOffset("7".into())),
            bus(BusError::InvalidSettings("x".into())),
            bus(BusError::NotOpen),
            bus(BusError::Other("x".into())),
            Error::Trapped {
                plugin: "probe".into(),
                call: "send",
                reason: "deadline".into(),
            },
            Error::host("no engine"),
        ] {
            assert!(!fatal.is_retryable(), "{fatal}");
        }
    }

    #[test]
    fn the_cause_is_kept_as_the_source_not_folded_into_the_message() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = Error::load_from("/p.wasm", "cannot read", io);
        assert_eq!(error.to_string(), "/p.wasm: cannot read");
        let source = std::error::Error::source(&error).expect("a source");
        assert_eq!(source.to_string(), "no such file");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
    }
}
