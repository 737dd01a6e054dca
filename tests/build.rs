//! Builds the guests only the tests load (hostile and odd plugins), from the
//! current source. The shipped buses come from `hermes-builtins`, so each
//! guest is built once.

#[path = "../guests/build-support.rs"]
mod build_support;

fn main() {
    build_support::build_guests(&["sandbox-probe", "offset-kinds", "overfill"]);
}
