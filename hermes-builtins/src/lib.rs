//! The buses hermes-wasm ships, built from `guests/` for `wasm32-wasip2` by
//! this crate's build script and embedded: only the `hermes-wasm` binary (and
//! the tests, which test these very components) depend on it, so the host
//! library never runs a wasm build.

/// The file-log plugin, built from `guests/file-log`: the default bus.
pub const FILE_LOG: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/file_log.wasm"));

/// The sqlite plugin, built from `guests/sqlite`.
pub const SQLITE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sqlite.wasm"));

/// The redis-streams plugin, built from `guests/redis-streams`.
pub const REDIS_STREAMS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/redis_streams.wasm"));

/// The event-hubs plugin, built from `guests/event-hubs`.
pub const EVENT_HUBS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/event_hubs.wasm"));

/// Every built-in plugin, by the name a configuration or `--plugin` gives.
pub const ALL: &[(&str, &[u8])] = &[
    ("file-log", FILE_LOG),
    ("sqlite", SQLITE),
    ("redis-streams", REDIS_STREAMS),
    ("event-hubs", EVENT_HUBS),
];

#[cfg(test)]
mod tests {
    use super::ALL;

    /// A bus moves an event's text and never parses it, so the codec is not
    /// linked into any built-in bus: its functions would show in the
    /// component's name section.
    #[test]
    fn no_built_in_bus_links_the_codec() {
        for (name, bytes) in ALL {
            let codec = b"hermes_event";
            assert!(
                !bytes.windows(codec.len()).any(|w| w == codec),
                "the built-in {name} links hermes_event"
            );
            // The check can see names: the SDK's are there.
            let sdk = b"hermes_guest";
            assert!(
                bytes.windows(sdk.len()).any(|w| w == sdk),
                "{name} has no name section"
            );
        }
    }
}
