//! A connection's socket, metered: the bytes read for one call's replies are
//! counted as they arrive, and past the plugin's memory cap the socket fails,
//! so the host never holds more of a reply than the plugin could receive.
//! A plugin can make a server build a reply of any size (`APPEND` a key a
//! thousand times, then `GET` it); without the meter the host would read it
//! whole before finding it cannot be passed on.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, RedisResult};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;

/// What one call's replies have read so far, against the limit.
pub(super) struct Meter {
    limit: usize,
    read: AtomicUsize,
    exceeded: AtomicBool,
}

impl Meter {
    pub(super) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Meter {
            limit,
            read: AtomicUsize::new(0),
            exceeded: AtomicBool::new(false),
        })
    }

    /// A call starts: nothing read for it yet. A plugin's calls on one
    /// connection come one at a time, so what is read until the next call
    /// starts is this call's replies.
    pub(super) fn start(&self) {
        self.read.store(0, Ordering::SeqCst);
    }

    /// Whether a reply went past the limit, which closed the connection.
    pub(super) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::SeqCst)
    }

    /// The error a call that went past the limit returns.
    pub(super) fn explain(&self) -> String {
        format!(
            "the reply is larger than {} MiB, the plugin's memory cap; the connection is closed \
             (read in smaller pieces: COUNT, ranges)",
            self.limit >> 20
        )
    }

    fn count(&self, bytes: usize) -> io::Result<()> {
        let read = self
            .read
            .fetch_add(bytes, Ordering::SeqCst)
            .saturating_add(bytes);
        if read > self.limit {
            self.exceeded.store(true, Ordering::SeqCst);
            return Err(io::Error::other(self.explain()));
        }
        Ok(())
    }
}

/// A socket whose reads are counted by a [`Meter`].
struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.meter.exceeded() {
            return Poll::Ready(Err(io::Error::other(self.meter.explain())));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        Poll::Ready(self.meter.count(read))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The task that reads and writes a connection's socket; aborted when the
/// plugin drops the connection, so a blocked command does not keep the
/// socket open.
pub(super) struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects to the server `info` names (TCP or a Unix socket), logs in and
/// selects its database, with every read metered by `meter`.
pub(super) async fn connect(
    info: &ConnectionInfo,
    meter: Arc<Meter>,
) -> RedisResult<(MultiplexedConnection, Driver)> {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => {
            let socket = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            socket.set_nodelay(true)?;
            over(socket, info, meter).await
        }
        ConnectionAddr::Unix(path) => {
            over(tokio::net::UnixStream::connect(path).await?, info, meter).await
        }
        other => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("this host does not speak to {other}"),
        )
        .into()),
    }
}

/// The connection over `socket`, its driver running on its own task.
async fn over<S>(
    socket: S,
    info: &ConnectionInfo,
    meter: Arc<Meter>,
) -> RedisResult<(MultiplexedConnection, Driver)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    let socket = Metered {
        inner: socket,
        meter,
    };
    let (connection, driver) =
        MultiplexedConnection::new_with_config(info.redis_settings(), socket, config).await?;
    Ok((connection, Driver(tokio::spawn(driver))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_counts_each_call_from_zero_and_fails_past_its_limit() {
        let meter = Meter::new(3 << 20);
        meter.count(2 << 20).expect("within");
        meter.count(1 << 20).expect("exactly at the limit");
        meter.start();
        meter.count(3 << 20).expect("a new call counts from zero");
        assert!(!meter.exceeded());
        let error = meter.count(1).expect_err("one byte past the limit");
        assert!(meter.exceeded());
        assert!(error.to_string().contains("larger than 3 MiB"), "{error}");
    }
}
