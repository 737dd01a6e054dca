//! A connection that comes back: dropped when Redis fails, opened again on
//! the next call, and checked with a `PING` before use when it has been idle,
//! so that a server restarted meanwhile costs no failed call.

use std::time::{Duration, Instant};

use hermes_guest::BusError;
use hermes_guest::redis::{Command, Connection, RedisError, Reply};

/// A connection idle for longer than this is checked before it is used: a
/// check costs one round trip, or nothing at all when the host already knows
/// the connection is gone.
const IDLE: Duration = Duration::from_millis(100);

/// Opened lazily, forgotten as soon as a call finds the server unreachable.
pub struct Link {
    url: String,
    connection: Option<Connection>,
    last_used: Instant,
}

impl Link {
    pub fn new(url: &str) -> Link {
        Link {
            url: url.to_string(),
            connection: None,
            last_used: Instant::now(),
        }
    }

    /// Connects now, so that `open` reports an unreachable server.
    pub fn connect(&mut self) -> Result<&Connection, BusError> {
        if self.connection.is_some() && self.last_used.elapsed() > IDLE {
            // A PING may be sent twice; a write must not be.
            let alive = self.connection.as_ref().map(|c| c.command(["PING"]));
            if !matches!(alive, Some(Ok(_))) {
                self.connection = None;
            }
        }
        if self.connection.is_none() {
            let connection = Connection::open(&self.url).map_err(|e| self.error(e))?;
            self.connection = Some(connection);
        }
        self.last_used = Instant::now();
        self.connection.as_ref().ok_or(BusError::NotOpen)
    }

    /// Runs one command; a server error is `other`.
    pub fn command(
        &mut self,
        args: &[&[u8]],
        timeout: Option<Duration>,
    ) -> Result<Reply, BusError> {
        let connection = self.connect()?;
        if let Some(timeout) = timeout {
            connection.set_response_timeout(timeout);
        }
        let reply = connection.command(args);
        let reply = reply.map_err(|e| self.error(e))?;
        self.last_used = Instant::now();
        reply.ok().map_err(BusError::Other)
    }

    /// Runs a pipeline.
    pub fn pipeline(&mut self, commands: &[Command]) -> Result<Vec<Reply>, BusError> {
        let replies = self.connect()?.pipeline(commands);
        let replies = replies.map_err(|e| self.error(e))?;
        self.last_used = Instant::now();
        Ok(replies)
    }

    fn error(&mut self, e: RedisError) -> BusError {
        match e {
            RedisError::Unavailable(m) => {
                self.connection = None;
                BusError::Unavailable(format!("redis: {m}"))
            }
            RedisError::InvalidUrl(m) => BusError::InvalidSettings(format!("url: {m}")),
            RedisError::Refused(m) => BusError::Other(m),
            RedisError::InvalidCall(m) => BusError::Other(format!("redis: {m}")),
        }
    }
}
