//! Builds the file-log guest for wasm32-wasip2 so the binary can embed it as
//! the default bus.

#[path = "../guests/build-support.rs"]
mod build_support;

fn main() {
    build_support::build_guests(&["file-log"]);
}
