//! The file-log bus: hermes events in an append-only log on a local disk.
//!
//! The log is a directory of segment files, each named after the offset of its
//! first record. Offsets are consecutive integers from 0. Every record carries
//! its offset, the time it was stored, its category and the event's hermes
//! JSON, behind a CRC-32 checksum, so a record torn by a crash or damaged on
//! disk is detected and never delivered: the producer cuts a bad tail off when
//! it opens, and a consumer waits at it until then.
//!
//! One producer writes a log at a time; any number of consumers read it. A
//! producer checks before each write that the segment is as long as it left
//! it, and refuses to write if another producer appended in between.

mod reader;
pub mod record;
mod settings;
mod writer;

pub use reader::FileLogConsumer;
pub use settings::{Fsync, Settings};
pub use writer::FileLogProducer;

hermes_guest::export!(producer: FileLogProducer, consumer: FileLogConsumer);
