//! The host's `redis` capability: connections to the Redis servers the
//! operator allows (`--allow-redis`). Replies come back as a [`Reply`] tree.
//!
//! ```no_run
//! use hermes_guest::redis::{Connection, Reply};
//!
//! let redis = Connection::open("redis://127.0.0.1:6379")?;
//! let id = redis.command(["XADD", "hermes", "*", "category", "base"])?;
//! assert!(matches!(id, Reply::Bulk(_)));
//! # Ok::<(), hermes_guest::redis::RedisError>(())
//! ```

use std::time::Duration;

use crate::wit::imports::hermes::bus::redis as wit;
pub use wit::RedisError;

/// A reply from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The null reply.
    Nil,
    /// An integer.
    Integer(i64),
    /// A binary-safe string.
    Bulk(Vec<u8>),
    /// A status, such as `OK`.
    Status(String),
    /// The server refused the command: its error text.
    Error(String),
    /// An array.
    Array(Vec<Reply>),
    /// Key/value pairs, in the server's order.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// The bytes of a bulk or status reply.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(bytes) => Some(bytes),
            Reply::Status(text) => Some(text.as_bytes()),
            _ => None,
        }
    }

    /// The text of a bulk or status reply, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    /// The elements of an array reply; none for the null reply.
    pub fn as_array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(items) => Some(items),
            Reply::Nil => Some(&[]),
            _ => None,
        }
    }

    /// The reply, or the server's error as `Err`.
    pub fn ok(self) -> Result<Reply, String> {
        match self {
            Reply::Error(message) => Err(message),
            reply => Ok(reply),
        }
    }

    /// Rebuilds a reply tree from its flattened form.
    fn unflatten(items: Vec<wit::ReplyItem>) -> Result<Reply, RedisError> {
        let mut items = items.into_iter();
        let reply = Self::take(&mut items)?;
        match items.next() {
            None => Ok(reply),
            Some(_) => Err(RedisError::InvalidCall(
                "the host sent a malformed reply".into(),
            )),
        }
    }

    fn take(items: &mut impl Iterator<Item = wit::ReplyItem>) -> Result<Reply, RedisError> {
        let malformed = || RedisError::InvalidCall("the host sent a truncated reply".into());
        Ok(match items.next().ok_or_else(malformed)? {
            wit::ReplyItem::Nil => Reply::Nil,
            wit::ReplyItem::Integer(n) => Reply::Integer(n),
            wit::ReplyItem::Bulk(bytes) => Reply::Bulk(bytes),
            wit::ReplyItem::Status(text) => Reply::Status(text),
            wit::ReplyItem::Error(text) => Reply::Error(text),
            wit::ReplyItem::Array(n) => Reply::Array(
                (0..n)
                    .map(|_| Self::take(items))
                    .collect::<Result<_, _>>()?,
            ),
            wit::ReplyItem::Mapping(n) => Reply::Map(
                (0..n)
                    .map(|_| Ok((Self::take(items)?, Self::take(items)?)))
                    .collect::<Result<_, RedisError>>()?,
            ),
        })
    }
}

/// A command: its name, then its arguments, each binary-safe.
pub type Command = Vec<Vec<u8>>;

/// Builds a [`Command`] from anything byte-like.
pub fn command<I>(args: I) -> Command
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    args.into_iter().map(|arg| arg.as_ref().to_vec()).collect()
}

/// A connection to one Redis server.
#[derive(Debug)]
pub struct Connection(wit::Connection);

impl Connection {
    /// Connects to `url`, which the operator must allow.
    pub fn open(url: &str) -> Result<Connection, RedisError> {
        wit::Connection::open(url).map(Connection)
    }

    /// How long a call waits for its replies (10 seconds unless set). A
    /// blocking command needs more than it blocks for.
    pub fn set_response_timeout(&self, timeout: Duration) {
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        self.0.set_response_timeout(ms);
    }

    /// Runs one command. A server error is [`Reply::Error`].
    pub fn command<I>(&self, args: I) -> Result<Reply, RedisError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        Reply::unflatten(self.0.command(&command(args))?)
    }

    /// Sends the commands in one round trip; one reply per command, in order.
    pub fn pipeline(&self, commands: &[Command]) -> Result<Vec<Reply>, RedisError> {
        self.0
            .pipeline(commands)?
            .into_iter()
            .map(Reply::unflatten)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit::ReplyItem as I;

    #[test]
    fn a_flattened_reply_becomes_a_tree_again() {
        let items = vec![
            I::Array(2),
            I::Array(2),
            I::Bulk(b"1-0".to_vec()),
            I::Mapping(1),
            I::Status("k".into()),
            I::Integer(7),
            I::Nil,
        ];
        assert_eq!(
            Reply::unflatten(items).expect("well formed"),
            Reply::Array(vec![
                Reply::Array(vec![
                    Reply::Bulk(b"1-0".to_vec()),
                    Reply::Map(vec![(Reply::Status("k".into()), Reply::Integer(7))]),
                ]),
                Reply::Nil,
            ])
        );
    }

    #[test]
    fn a_malformed_reply_is_an_error_not_a_panic() {
        assert!(Reply::unflatten(vec![I::Array(3), I::Nil]).is_err());
        assert!(Reply::unflatten(vec![]).is_err());
        assert!(Reply::unflatten(vec![I::Nil, I::Nil]).is_err());
        assert!(Reply::unflatten(vec![I::Mapping(u32::MAX)]).is_err());
    }
}
