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

/// A failed call.
#[derive(Debug)]
pub enum Failure {
    /// The replies were larger than the plugin's memory cap: the host
    /// stopped reading them and closed the connection. Asking for less at a
    /// time may work.
    TooLarge(String),
    /// Any other failure.
    Bus(BusError),
}

impl From<BusError> for Failure {
    fn from(e: BusError) -> Failure {
        Failure::Bus(e)
    }
}

impl From<Failure> for BusError {
    fn from(failure: Failure) -> BusError {
        match failure {
            Failure::TooLarge(m) => BusError::Other(format!("redis: {m}")),
            Failure::Bus(e) => e,
        }
    }
}

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
    pub fn command(&mut self, args: &[&[u8]], timeout: Option<Duration>) -> Result<Reply, Failure> {
        let connection = self.connect()?;
        if let Some(timeout) = timeout {
            connection.set_response_timeout(timeout);
        }
        let reply = connection.command(args);
        let reply = reply.map_err(|e| self.failure(e))?;
        self.last_used = Instant::now();
        Ok(reply.ok().map_err(BusError::Other)?)
    }

    /// Runs a pipeline.
    pub fn pipeline(&mut self, commands: &[Command]) -> Result<Vec<Reply>, Failure> {
        let replies = self.connect()?.pipeline(commands);
        let replies = replies.map_err(|e| self.failure(e))?;
        self.last_used = Instant::now();
        Ok(replies)
    }

    fn error(&mut self, e: RedisError) -> BusError {
        self.failure(e).into()
    }

    fn failure(&mut self, e: RedisError) -> Failure {
        Failure::Bus(match e {
            RedisError::Unavailable(m) => {
                self.connection = None;
                BusError::Unavailable(format!("redis: {m}"))
            }
            RedisError::TooLarge(m) => {
                self.connection = None;
                return Failure::TooLarge(m);
            }
            RedisError::InvalidUrl(m) => BusError::InvalidSettings(format!("url: {m}")),
            RedisError::Refused(m) => BusError::Other(m),
            RedisError::InvalidCall(m) => BusError::Other(format!("redis: {m}")),
        })
    }
}
