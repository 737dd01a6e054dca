//! The `log` capability, and the plugin's stdout and stderr: everything a
//! plugin says reaches the host's `tracing` log, tagged with its name.
//!
//! A plugin cannot forge or flood the host's log: each line is cut at
//! [`MAX_LINE`], its control characters are escaped (a newline cannot start
//! a line of its own), and an instance may log [`LINES_PER_SECOND`] lines a
//! second on average, [`BURST_LINES`] at once; lines past that are dropped
//! and counted, and the count is logged when the plugin may log again.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWrite;
use wasmtime::component::{HasData, Linker};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::bindings::log::{Host, Level};

/// A line longer than this is cut: a plugin must not make the host buffer
/// without bound.
pub const MAX_LINE: usize = 16 * 1024;

/// Lines one instance may log per second, on average.
pub const LINES_PER_SECOND: u32 = 200;

/// Lines one instance may log at once, after a quiet while.
pub const BURST_LINES: u32 = 2_000;

/// Where one instance's lines go: the host log, under the rate limit.
#[derive(Clone)]
struct Sink {
    plugin: Arc<str>,
    limit: Arc<Mutex<RateLimit>>,
}

impl Sink {
    fn emit(&self, level: Level, message: &str) {
        let admitted = self
            .limit
            .lock()
            .map(|mut limit| limit.admit(Instant::now()))
            .unwrap_or(Admit::Yes);
        let plugin = &*self.plugin;
        match admitted {
            Admit::No => return,
            Admit::AfterDropping(dropped) => tracing::warn!(
                target: "plugin",
                plugin,
                "{dropped} lines of this plugin were dropped: more than {LINES_PER_SECOND} a second"
            ),
            Admit::Yes => {}
        }
        emit(plugin, level, &clean(truncate(message)));
    }
}

/// A token bucket: [`BURST_LINES`] tokens, refilled at [`LINES_PER_SECOND`].
struct RateLimit {
    tokens: f64,
    at: Instant,
    dropped: u64,
}

#[derive(Debug, PartialEq)]
enum Admit {
    Yes,
    /// Yes, and this many lines were dropped since the last one logged.
    AfterDropping(u64),
    No,
}

impl RateLimit {
    fn new(now: Instant) -> Self {
        RateLimit {
            tokens: f64::from(BURST_LINES),
            at: now,
            dropped: 0,
        }
    }

    fn admit(&mut self, now: Instant) -> Admit {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens =
            (self.tokens + elapsed * f64::from(LINES_PER_SECOND)).min(f64::from(BURST_LINES));
        if self.tokens < 1.0 {
            self.dropped += 1;
            return Admit::No;
        }
        self.tokens -= 1.0;
        match std::mem::take(&mut self.dropped) {
            0 => Admit::Yes,
            dropped => Admit::AfterDropping(dropped),
        }
    }
}

/// What the capability holds for one plugin instance: the name its lines
/// are tagged with, and its rate limit, shared with its stdout and stderr.
pub struct LogCtx {
    sink: Sink,
}

impl LogCtx {
    /// The capability for `plugin`.
    pub fn new(plugin: Arc<str>) -> Self {
        LogCtx {
            sink: Sink {
                plugin,
                limit: Arc::new(Mutex::new(RateLimit::new(Instant::now()))),
            },
        }
    }

    /// The plugin's stdout, logged at info.
    pub fn stdout(&self) -> GuestOutput {
        GuestOutput::new(Level::Info, self.sink.clone())
    }

    /// The plugin's stderr, logged at warn.
    pub fn stderr(&self) -> GuestOutput {
        GuestOutput::new(Level::Warn, self.sink.clone())
    }
}

/// The capability as a plugin's calls see it.
pub struct LogView<'a> {
    /// The plugin's name.
    pub ctx: &'a LogCtx,
}

impl Host for LogView<'_> {
    fn log(&mut self, level: Level, message: String) {
        self.ctx.sink.emit(level, &message);
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

/// The line with its control characters escaped (`\n`, `\r`, `\u{1b}`):
/// what a plugin says stays on one line of the host's log, and cannot
/// carry terminal escapes. Tabs are kept.
fn clean(message: &str) -> Cow<'_, str> {
    if !message.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push('\t'),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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
    sink: Sink,
    pending: Arc<Mutex<Vec<u8>>>,
}

impl GuestOutput {
    fn new(level: Level, sink: Sink) -> Self {
        GuestOutput {
            level,
            sink,
            pending: Arc::default(),
        }
    }

    fn take(&self, bytes: &[u8]) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for line in complete_lines(&mut pending, bytes) {
            self.sink.emit(self.level, &line);
        }
    }

    fn finish(&self) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if let Some(line) = rest(&mut pending) {
            self.sink.emit(self.level, &line);
        }
    }
}

/// Adds `bytes` to what a stream has pending and takes out the lines they
/// complete (without their `\n` or `\r\n`), and the pending text whole if it
/// grew past [`MAX_LINE`] with no end of line.
fn complete_lines(pending: &mut Vec<u8>, bytes: &[u8]) -> Vec<String> {
    pending.extend_from_slice(bytes);
    let mut lines = Vec::new();
    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        let text = String::from_utf8_lossy(&line[..end]);
        lines.push(text.trim_end_matches('\r').to_owned());
    }
    if pending.len() > MAX_LINE {
        let line = std::mem::take(pending);
        lines.push(String::from_utf8_lossy(&line).into_owned());
    }
    lines
}

/// What a stream still has pending when it ends, if anything.
fn rest(pending: &mut Vec<u8>) -> Option<String> {
    (!pending.is_empty()).then(|| String::from_utf8_lossy(&std::mem::take(pending)).into_owned())
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_line_cannot_break_into_two_or_carry_escapes() {
        assert_eq!(clean("plain\ttext"), "plain\ttext");
        assert_eq!(
            clean("ok\n2026-12-01T00:00:00Z  INFO hermes: forged\r\u{1b}[31m"),
            "ok\\n2026-12-01T00:00:00Z  INFO hermes: forged\\r\\u{1b}[31m"
        );
        let long = "é".repeat(MAX_LINE);
        let cut = truncate(&long);
        assert!(
            long.starts_with(cut) && cut.len() == MAX_LINE,
            "{}",
            cut.len()
        );
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn output_is_cut_into_lines_and_the_rest_is_kept_for_the_end() {
        let mut pending = Vec::new();
        assert_eq!(complete_lines(&mut pending, b"first\nsec"), ["first"]);
        assert_eq!(complete_lines(&mut pending, b"ond\r\nthird"), ["second"]);
        assert_eq!(rest(&mut pending).as_deref(), Some("third"));
        assert_eq!(rest(&mut pending), None, "the rest is given once");
        // A line with no end is given once it passes MAX_LINE, not before.
        assert!(complete_lines(&mut pending, &vec![b'y'; MAX_LINE]).is_empty());
        let long = complete_lines(&mut pending, b"y");
        assert_eq!(long.len(), 1);
        assert_eq!(long[0].len(), MAX_LINE + 1);
        assert!(pending.is_empty());
        // Bytes that are not UTF-8 are shown, not lost.
        assert_eq!(complete_lines(&mut pending, b"a\xffb\n"), ["a\u{fffd}b"]);
        let ctx = LogCtx::new(Arc::from("probe"));
        assert!(!ctx.stdout().is_terminal());
    }

    #[tokio::test]
    async fn output_is_an_async_writer_that_takes_everything() {
        use tokio::io::AsyncWriteExt;
        let ctx = LogCtx::new(Arc::from("probe"));
        let mut out = ctx.stdout();
        assert_eq!(out.write(b"abc").await.expect("write"), 3);
        out.flush().await.expect("flush");
        out.shutdown().await.expect("shutdown");
    }

    #[test]
    fn a_flood_is_cut_to_the_rate_and_the_dropped_lines_are_counted() {
        let start = Instant::now();
        let mut limit = RateLimit::new(start);
        for _ in 0..BURST_LINES {
            assert_eq!(limit.admit(start), Admit::Yes);
        }
        for _ in 0..10 {
            assert_eq!(limit.admit(start), Admit::No);
        }
        // A tenth of a second refills a tenth of the rate.
        let later = start + Duration::from_millis(100);
        assert_eq!(limit.admit(later), Admit::AfterDropping(10));
        for _ in 1..(LINES_PER_SECOND / 10) {
            assert_eq!(limit.admit(later), Admit::Yes);
        }
        assert_eq!(limit.admit(later), Admit::No);
        // A long quiet refills no more than the burst.
        let much_later = later + Duration::from_secs(3600);
        let admitted = (0..BURST_LINES * 2)
            .filter(|_| limit.admit(much_later) != Admit::No)
            .count();
        assert_eq!(admitted, BURST_LINES as usize);
    }
}
