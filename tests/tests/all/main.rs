//! Integration tests, one binary: a module per area, and one per guest.

mod client;
mod conformance;
mod event_hubs;
mod file_log;
mod gaps;
mod offset_kinds;
mod overfill;
mod redis_streams;
mod sandbox_probe;
mod server;
mod server_parity;
mod sqlite;

/// Every guest the build script builds has a test module of its name.
macro_rules! assert_test_exists {
    ($guest:ident) => {
        #[allow(unused_imports)]
        use self::$guest as _;
    };
}
hermes_wasm_tests::foreach_guest!(assert_test_exists);
