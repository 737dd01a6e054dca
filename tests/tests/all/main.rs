//! Integration tests, one binary: every module is an area.

mod conformance;
mod file_log;
mod offsets;
mod sandbox;
