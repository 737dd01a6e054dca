//! Builds every guest the tests load, from the current source, so a test run
//! always exercises the code as it is.

#[path = "../guests/build-support.rs"]
mod build_support;

fn main() {
    build_support::build_guests(&[
        "file-log",
        "sqlite",
        "redis-streams",
        "sandbox-probe",
        "offset-kinds",
    ]);
}
