//! The `redis` capability: connections to the Redis servers the operator
//! allows, on the `redis` crate's multiplexed tokio connection. A command
//! that blocks on the server (`XREAD BLOCK`) is an await point: the host's
//! other work goes on meanwhile.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};
use wasmtime::component::{HasSelf, Linker, Resource};

use crate::bindings::redis::{Host, HostConnection, RedisError, Reply, ReplyItem};
use crate::sandbox::HostState;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call waits for its replies unless the plugin says otherwise.
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most arguments one command, or commands one pipeline, may have: far
/// beyond any real use, and a bound on what a plugin makes the host hold.
const MAX_ITEMS: usize = 1 << 20;

/// A Redis server the operator allows plugins to connect to, from an
/// `--allow-redis` URL. A plugin's URL matches when it names the same server
/// (scheme, host as written, port, or socket path) and, if the allowed URL
/// names a database, the same database.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisAllow {
    /// The URL as given, its password masked: what `Display` shows.
    url: String,
    addr: ConnectionAddr,
    db: Option<i64>,
}

impl RedisAllow {
    /// Parses an allowed URL, such as `redis://127.0.0.1:6379` or
    /// `redis://127.0.0.1:6379/2`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let info = parse_url(url)?;
        let names_db = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .is_some_and(|(_, db)| !db.split(['?', '#']).next().unwrap_or("").is_empty());
        Ok(RedisAllow {
            url: redact(url),
            addr: normalize(info.addr()),
            db: names_db.then(|| info.redis_settings().db()),
        })
    }

    fn allows(&self, info: &ConnectionInfo) -> bool {
        self.addr == normalize(info.addr())
            && self.db.is_none_or(|db| db == info.redis_settings().db())
    }
}

impl fmt::Display for RedisAllow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

fn parse_url(url: &str) -> Result<ConnectionInfo, String> {
    url.into_connection_info()
        .map_err(|e| format!("{}: {e}", redact(url)))
}

/// Host names compare without case.
fn normalize(addr: &ConnectionAddr) -> ConnectionAddr {
    match addr {
        ConnectionAddr::Tcp(host, port) => ConnectionAddr::Tcp(host.to_ascii_lowercase(), *port),
        other => other.clone(),
    }
}

/// The URL without its password, fit for logs and error messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// A plugin's open connection.
pub struct Connection {
    inner: MultiplexedConnection,
    response_timeout: Duration,
}

impl Connection {
    async fn call<T>(
        &mut self,
        request: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(self.response_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(RedisError::Unavailable(e.to_string())),
            Err(_) => Err(RedisError::Unavailable(format!(
                "no reply within {} ms",
                self.response_timeout.as_millis()
            ))),
        }
    }
}

impl Host for HostState {}

impl HostConnection for HostState {
    async fn open(
        &mut self,
        url: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, RedisError>> {
        let info = match parse_url(&url) {
            Ok(info) => info,
            Err(e) => return Ok(Err(RedisError::InvalidUrl(e))),
        };
        if !self.grants.redis.iter().any(|allow| allow.allows(&info)) {
            tracing::warn!(target: "plugin", plugin = &*self.plugin, "refused a connection to {}", redact(&url));
            return Ok(Err(RedisError::Refused(format!(
                "{} is not an allowed Redis server (allow it with --allow-redis)",
                redact(&url)
            ))));
        }
        let client = match redis::Client::open(info) {
            Ok(client) => client,
            Err(e) => {
                return Ok(Err(RedisError::InvalidUrl(format!(
                    "{}: {e}",
                    redact(&url)
                ))));
            }
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        let inner = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(inner) => inner,
            Err(e) => {
                return Ok(Err(RedisError::Unavailable(format!(
                    "{}: {e}",
                    redact(&url)
                ))));
            }
        };
        let connection = Connection {
            inner,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        };
        Ok(Ok(self.table.push(connection)?))
    }

    async fn set_response_timeout(
        &mut self,
        connection: Resource<Connection>,
        milliseconds: u32,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&connection)?.response_timeout =
            Duration::from_millis(u64::from(milliseconds));
        Ok(())
    }

    async fn command(
        &mut self,
        connection: Resource<Connection>,
        args: Vec<Vec<u8>>,
    ) -> wasmtime::Result<Result<Reply, RedisError>> {
        let command = match to_command(args) {
            Ok(command) => command,
            Err(e) => return Ok(Err(e)),
        };
        let connection = self.table.get_mut(&connection)?;
        let mut inner = connection.inner.clone();
        let value = connection
            .call(async move { inner.req_packed_command(&command).await })
            .await;
        Ok(value.map(flatten))
    }

    async fn pipeline(
        &mut self,
        connection: Resource<Connection>,
        commands: Vec<Vec<Vec<u8>>>,
    ) -> wasmtime::Result<Result<Vec<Reply>, RedisError>> {
        if commands.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        if commands.len() > MAX_ITEMS {
            return Ok(Err(RedisError::InvalidCall(format!(
                "a pipeline of {} commands; at most {MAX_ITEMS}",
                commands.len()
            ))));
        }
        let count = commands.len();
        let mut pipeline = redis::Pipeline::with_capacity(count);
        for args in commands {
            match to_command(args) {
                Ok(command) => pipeline.add_command(command),
                Err(e) => return Ok(Err(e)),
            };
        }
        let connection = self.table.get_mut(&connection)?;
        let mut inner = connection.inner.clone();
        let values = connection
            .call(async move { inner.req_packed_commands(&pipeline, 0, count).await })
            .await;
        Ok(values.map(|values| values.into_iter().map(flatten).collect()))
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

fn to_command(args: Vec<Vec<u8>>) -> Result<redis::Cmd, RedisError> {
    if args.is_empty() {
        return Err(RedisError::InvalidCall("an empty command".into()));
    }
    if args.len() > MAX_ITEMS {
        return Err(RedisError::InvalidCall(format!(
            "a command of {} arguments; at most {MAX_ITEMS}",
            args.len()
        )));
    }
    let mut command = redis::Cmd::new();
    for arg in args {
        command.arg(arg);
    }
    Ok(command)
}

/// Flattens a reply tree into prefix order (see the WIT `reply-item`).
fn flatten(value: Value) -> Reply {
    let mut items = Vec::new();
    push(value, &mut items);
    items
}

fn push(value: Value, items: &mut Vec<ReplyItem>) {
    match value {
        Value::Nil => items.push(ReplyItem::Nil),
        Value::Int(n) => items.push(ReplyItem::Integer(n)),
        Value::BulkString(bytes) => items.push(ReplyItem::Bulk(bytes)),
        Value::SimpleString(text) => items.push(ReplyItem::Status(text)),
        Value::Okay => items.push(ReplyItem::Status("OK".into())),
        Value::Array(values) | Value::Set(values) | Value::Push { data: values, .. } => {
            items.push(ReplyItem::Array(len(&values)));
            values.into_iter().for_each(|v| push(v, items));
        }
        Value::Map(pairs) => {
            items.push(ReplyItem::Mapping(len(&pairs)));
            for (key, value) in pairs {
                push(key, items);
                push(value, items);
            }
        }
        Value::Attribute { data, .. } => push(*data, items),
        Value::Double(x) => items.push(ReplyItem::Bulk(x.to_string().into_bytes())),
        Value::Boolean(b) => items.push(ReplyItem::Integer(i64::from(b))),
        Value::VerbatimString { text, .. } => items.push(ReplyItem::Bulk(text.into_bytes())),
        Value::BigNumber(digits) => items.push(ReplyItem::Bulk(digits)),
        Value::ServerError(error) => items.push(ReplyItem::Error(match error.details() {
            Some(details) => format!("{} {details}", error.code()),
            None => error.code().to_string(),
        })),
        // `Value` is non-exhaustive: a kind this host does not know yet.
        #[allow(unreachable_patterns)]
        other => items.push(ReplyItem::Error(format!("unsupported reply {other:?}"))),
    }
}

fn len<T>(values: &[T]) -> u32 {
    u32::try_from(values.len()).unwrap_or(u32::MAX)
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    crate::bindings::redis::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowed_server_matches_by_address_and_database_if_named() {
        let any_db = RedisAllow::parse("redis://127.0.0.1:6379").expect("valid");
        let db2 = RedisAllow::parse("redis://127.0.0.1:6379/2").expect("valid");
        let info = |url: &str| parse_url(url).expect("valid");
        assert!(any_db.allows(&info("redis://127.0.0.1:6379/5")));
        assert!(any_db.allows(&info("redis://user:secret@127.0.0.1:6379")));
        assert!(!any_db.allows(&info("redis://127.0.0.1:6380")));
        assert!(!any_db.allows(&info("redis://10.0.0.1:6379")));
        assert!(db2.allows(&info("redis://127.0.0.1:6379/2")));
        assert!(!db2.allows(&info("redis://127.0.0.1:6379/3")));
        assert!(!db2.allows(&info("redis://127.0.0.1:6379")));
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("redis://app:hunter2@127.0.0.1:6379/1"),
            "redis://app:***@127.0.0.1:6379/1"
        );
        assert_eq!(redact("redis://127.0.0.1"), "redis://127.0.0.1");
        let refused = RedisAllow::parse("http://app:hunter2@127.0.0.1").expect_err("not redis");
        assert!(!refused.contains("hunter2"), "{refused}");
    }

    #[test]
    fn nested_replies_flatten_in_prefix_order() {
        let value = Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::Map(vec![(Value::Int(1), Value::Nil)]),
            Value::Okay,
        ]);
        assert_eq!(
            flatten(value),
            vec![
                ReplyItem::Array(3),
                ReplyItem::Bulk(b"a".to_vec()),
                ReplyItem::Mapping(1),
                ReplyItem::Integer(1),
                ReplyItem::Nil,
                ReplyItem::Status("OK".into()),
            ]
        );
    }
}
