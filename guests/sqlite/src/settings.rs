use schemars::JsonSchema;
use serde::Deserialize;

/// Settings of the producer: hermes' `uri` and `retention_in_days`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProducerSettings {
    /// Path of the database file, inside a directory granted to the plugin.
    /// It is created if it does not exist.
    #[schemars(length(min = 1))]
    pub uri: String,

    /// Rows older than this many days are deleted when the producer opens.
    #[schemars(range(min = 1, max = 999_999))]
    pub retention_in_days: u32,
}

/// Settings of the consumer: hermes' `uri`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Path of the database file, inside a directory granted to the plugin
    /// (read-only is enough). A missing file is an empty bus.
    #[schemars(length(min = 1))]
    pub uri: String,
}
