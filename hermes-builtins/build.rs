//! Builds the buses hermes-wasm ships for wasm32-wasip2, so the binary embeds
//! them as built-in plugins (file-log is the default).

#[path = "../guests/build-support.rs"]
mod build_support;

fn main() {
    build_support::build_guests(&["file-log", "sqlite", "redis-streams", "event-hubs"]);
}
