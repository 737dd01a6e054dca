//! The `log` capability, and the plugin's stdout and stderr: everything a
//! plugin says reaches the host's `tracing` log, tagged with its name.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime::component::{HasData, Linker};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::bindings::log::{Host, Level};

/// A line longer than this is cut: a plugin must not make the host buffer
/// without bound.
pub const MAX_LINE: usize = 16 * 1024;

/// What the capability holds for one plugin instance: the name its lines
/// are tagged with.
pub struct LogCtx {
    plugin: Arc<str>,
}

impl LogCtx {
    /// The capability for `plugin`.
    pub fn new(plugin: Arc<str>) -> Self {
        LogCtx { plugin }
    }

    /// The plugin's stdout, logged at info.
    pub fn stdout(&self) -> GuestOutput {
        GuestOutput::new(Level::Info, self.plugin.clone())
    }

    /// The plugin's stderr, logged at warn.
    pub fn stderr(&self) -> GuestOutput {
        GuestOutput::new(Level::Warn, self.plugin.clone())
    }
}

/// The capability as a plugin's calls see it.
pub struct LogView<'a> {
    /// The plugin's name.
    pub ctx: &'a LogCtx,
}

impl Host for LogView<'_> {
    fn log(&mut self, level: Level, message: String) {
        emit(&self.ctx.plugin, level, truncate(&message));
    }
}

/// Selects the capability's view in a store's data.
struct HasLog;

impl HasData for HasLog {
    type Data<'a> = LogView<'a>;
}

/// Adds the capability to `linker`; `view` finds it in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> LogView<'_>,
) -> wasmtime::Result<()> {
    crate::bindings::log::add_to_linker::<T, HasLog>(linker, view)
}

fn emit(plugin: &str, level: Level, message: &str) {
    match level {
        Level::Trace => tracing::trace!(target: "plugin", plugin, "{message}"),
        Level::Debug => tracing::debug!(target: "plugin", plugin, "{message}"),
        Level::Info => tracing::info!(target: "plugin", plugin, "{message}"),
        Level::Warn => tracing::warn!(target: "plugin", plugin, "{message}"),
        Level::Error => tracing::error!(target: "plugin", plugin, "{message}"),
    }
}

fn truncate(message: &str) -> &str {
    if message.len() <= MAX_LINE {
        return message;
    }
    let mut end = MAX_LINE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// A plugin's stdout (info) or stderr (warn), logged line by line.
#[derive(Clone)]
pub struct GuestOutput {
    level: Level,
    plugin: Arc<str>,
    pending: Arc<Mutex<Vec<u8>>>,
}

impl GuestOutput {
    fn new(level: Level, plugin: Arc<str>) -> Self {
        GuestOutput {
            level,
            plugin,
            pending: Arc::default(),
        }
    }

    fn take(&self, bytes: &[u8]) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        pending.extend_from_slice(bytes);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            emit(
                &self.plugin,
                self.level,
                truncate(String::from_utf8_lossy(&line[..end]).trim_end_matches('\r')),
            );
        }
        if pending.len() > MAX_LINE {
            let line: Vec<u8> = std::mem::take(&mut *pending);
            emit(
                &self.plugin,
                self.level,
                truncate(&String::from_utf8_lossy(&line)),
            );
        }
    }

    fn finish(&self) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if !pending.is_empty() {
            let line = std::mem::take(&mut *pending);
            emit(&self.plugin, self.level, &String::from_utf8_lossy(&line));
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.finish();
        Poll::Ready(Ok(()))
    }
}
