//! Lines in the host's log, tagged with the plugin's name. Anything a plugin
//! prints to stdout or stderr ends up there too, at info and warn level.
//! Never log secret attribute values.

use crate::wit::imports::hermes::bus::log::Level;

/// Outside a component (a plugin's native unit tests) lines go to stderr.
fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::wit::imports::hermes::bus::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Logs a line at trace level.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message.as_ref());
}

/// Logs a line at debug level.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message.as_ref());
}

/// Logs a line at info level.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message.as_ref());
}

/// Logs a line at warn level.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message.as_ref());
}

/// Logs a line at error level.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message.as_ref());
}
