use schemars::JsonSchema;
use serde::Deserialize;

/// Settings of the Redis streams bus, for both roles. A consumer ignores
/// `maxlen`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The Redis server, such as `redis://127.0.0.1:6379/0`; the operator
    /// must allow it (`--allow-redis`).
    #[schemars(length(min = 1))]
    pub url: String,

    /// The key of the stream.
    #[schemars(length(min = 1))]
    pub stream: String,

    /// Trim the stream to about this many entries at each send (`XADD MAXLEN
    /// ~`): Redis may keep a few more. A consumer whose position was trimmed
    /// away gets `unknown-offset`. Unset keeps every entry.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub maxlen: Option<u64>,
}
