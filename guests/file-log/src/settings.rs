use schemars::JsonSchema;
use serde::Deserialize;

/// Settings of the file-log bus, for both roles. A consumer reads `path` only.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Directory of the log's segment files, inside a directory granted to
    /// the plugin. The producer creates it if needed.
    #[schemars(length(min = 1))]
    pub path: String,

    /// When a sent event is made durable with fsync: `always` (after every
    /// event, even inside a batch), `batch` (once per send or send-batch,
    /// before it returns) or `interval` (at most every `fsync_interval_ms`: a
    /// send returns once written, and a machine crash may lose the last
    /// interval's events).
    #[serde(default)]
    pub fsync: Fsync,

    /// With `fsync: interval`, the most time in milliseconds between two
    /// fsyncs.
    #[serde(default = "default_fsync_interval_ms")]
    #[schemars(range(min = 1))]
    pub fsync_interval_ms: u64,

    /// A segment file holds at most this many bytes (unless a single record is
    /// larger); then a new one starts. Retention deletes whole segments.
    #[serde(default = "default_segment_max_bytes")]
    #[schemars(range(min = 4096))]
    pub segment_max_bytes: u64,

    /// Segments whose newest record is older than this many days are deleted
    /// when the producer opens, as hermes' sqlite bus does with its rows. The
    /// newest segment is always kept. Unset keeps everything.
    #[serde(default)]
    #[schemars(range(min = 1, max = 999_999))]
    pub retention_in_days: Option<u32>,
}

/// When a send is made durable (see [`Settings::fsync`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Fsync {
    Always,
    #[default]
    Batch,
    Interval,
}

fn default_fsync_interval_ms() -> u64 {
    1000
}

fn default_segment_max_bytes() -> u64 {
    64 * 1024 * 1024
}
