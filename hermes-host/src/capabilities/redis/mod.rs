//! The `redis` capability: connections to the Redis servers the operator
//! allows, on the `redis` crate's multiplexed tokio connection. A command
//! that blocks on the server (`XREAD BLOCK`) is an await point: the host's
//! other work goes on meanwhile. Only the commands in [`commands::ALLOWED`]
//! go through, and those the operator adds for a server.

mod allow;
pub mod commands;
mod stream;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::TrappableError;

pub use self::allow::RedisAllow;
use self::allow::{parse_url, redact};
use self::stream::{Driver, Meter};
use crate::bindings::redis::{Host, HostConnection, RedisError, Reply, ReplyItem};

/// Connections one instance may have open at once: a bus needs one or two.
pub const MAX_OPEN: usize = 8;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call waits for its replies unless the plugin says otherwise.
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most arguments one command, or commands one pipeline, may have: far
/// beyond any real use, and a bound on what a plugin makes the host hold.
const MAX_ITEMS: usize = 1 << 20;

/// A plugin's open connection.
pub struct Connection {
    inner: MultiplexedConnection,
    response_timeout: Duration,
    /// Commands allowed beyond a bus's, from the grant that let it open.
    extra: BTreeSet<String>,
    /// What the replies of the call running have read.
    meter: Arc<Meter>,
    _driver: Driver,
}

impl Connection {
    async fn call<T>(
        &mut self,
        request: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        self.meter.start();
        match tokio::time::timeout(self.response_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) if self.meter.exceeded() => Err(RedisError::TooLarge(self.meter.explain())),
            Ok(Err(e)) => Err(RedisError::Unavailable(e.to_string())),
            Err(_) => Err(RedisError::Unavailable(format!(
                "no reply within {} ms",
                self.response_timeout.as_millis()
            ))),
        }
    }
}

/// What the capability holds for one plugin instance: the servers the
/// operator allows, the plugin's memory cap (which bounds what one call's
/// replies may hold), and the plugin's name for the log.
pub struct RedisCtx {
    plugin: Arc<str>,
    allowed: Vec<RedisAllow>,
    memory_cap: usize,
    open: std::sync::atomic::AtomicUsize,
}

impl RedisCtx {
    /// The capability for `plugin`, allowed to reach `allowed`, with
    /// `memory_cap` bytes of memory.
    pub fn new(plugin: Arc<str>, allowed: Vec<RedisAllow>, memory_cap: usize) -> Self {
        RedisCtx {
            plugin,
            allowed,
            memory_cap,
            open: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

/// The capability as a plugin's calls see it: its context, and the
/// instance's table holding the open connections.
pub struct RedisView<'a> {
    /// The grants and limits.
    pub ctx: &'a RedisCtx,
    /// The instance's resources.
    pub table: &'a mut ResourceTable,
}

/// A failed call: a `redis-error` the plugin receives, or a trap.
pub type RedisFailure = TrappableError<RedisError>;

impl Host for RedisView<'_> {
    fn convert_redis_error(&mut self, failure: RedisFailure) -> wasmtime::Result<RedisError> {
        failure.downcast()
    }
}

impl HostConnection for RedisView<'_> {
    async fn open(&mut self, url: String) -> Result<Resource<Connection>, RedisFailure> {
        let info = parse_url(&url).map_err(RedisError::InvalidUrl)?;
        let Some(allow) = self.ctx.allowed.iter().find(|allow| allow.allows(&info)) else {
            tracing::warn!(target: "plugin", plugin = &*self.ctx.plugin, "refused a connection to {}", redact(&url));
            return Err(RedisError::Refused(format!(
                "{} is not an allowed Redis server (the operator allows servers with --allow-redis or allow_redis)",
                redact(&url)
            ))
            .into());
        };
        let extra = allow.extra.clone();
        if self.ctx.open.load(std::sync::atomic::Ordering::SeqCst) >= MAX_OPEN {
            return Err(RedisError::Refused(format!(
                "at most {MAX_OPEN} connections may be open at once"
            ))
            .into());
        }
        let meter = Meter::new(self.ctx.memory_cap);
        let (inner, driver) = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            stream::connect(&info, meter.clone()),
        )
        .await
        {
            Ok(Ok(connected)) => connected,
            Ok(Err(e)) => {
                return Err(RedisError::Unavailable(format!("{}: {e}", redact(&url))).into());
            }
            Err(_) => {
                return Err(RedisError::Unavailable(format!(
                    "{}: no connection within {} s",
                    redact(&url),
                    CONNECT_TIMEOUT.as_secs()
                ))
                .into());
            }
        };
        let connection = Connection {
            inner,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            extra,
            meter,
            _driver: driver,
        };
        let handle = self.table.push(connection).map_err(super::trap)?;
        self.ctx
            .open
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(handle)
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
    ) -> Result<Reply, RedisFailure> {
        let connection = self.table.get_mut(&connection).map_err(super::trap)?;
        let command = to_command(args, &connection.extra, &self.ctx.plugin)?;
        let mut inner = connection.inner.clone();
        let value = connection
            .call(async move { inner.req_packed_command(&command).await })
            .await?;
        Ok(flatten(value))
    }

    async fn pipeline(
        &mut self,
        connection: Resource<Connection>,
        commands: Vec<Vec<Vec<u8>>>,
    ) -> Result<Vec<Reply>, RedisFailure> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        if commands.len() > MAX_ITEMS {
            return Err(RedisError::InvalidCall(format!(
                "a pipeline of {} commands; at most {MAX_ITEMS}",
                commands.len()
            ))
            .into());
        }
        let connection = self.table.get_mut(&connection).map_err(super::trap)?;
        let count = commands.len();
        let mut pipeline = redis::Pipeline::with_capacity(count);
        for args in commands {
            pipeline.add_command(to_command(args, &connection.extra, &self.ctx.plugin)?);
        }
        let mut inner = connection.inner.clone();
        let values = connection
            .call(async move { inner.req_packed_commands(&pipeline, 0, count).await })
            .await?;
        Ok(values.into_iter().map(flatten).collect())
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        self.ctx
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

fn to_command(
    args: Vec<Vec<u8>>,
    extra: &BTreeSet<String>,
    plugin: &str,
) -> Result<redis::Cmd, RedisError> {
    let Some(first) = args.first() else {
        return Err(RedisError::InvalidCall("an empty command".into()));
    };
    let name = commands::name(first);
    if !commands::allowed(&name, extra) {
        tracing::warn!(target: "plugin", plugin, "refused the Redis command {name:?}");
        return Err(RedisError::Refused(format!(
            "the Redis command {name:?} is not allowed (a bus's commands are; the operator may allow more per server)"
        )));
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

/// Selects the capability's view in a store's data.
struct HasRedis;

impl HasData for HasRedis {
    type Data<'a> = RedisView<'a>;
}

/// Adds the capability to `linker`; `view` finds it in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> RedisView<'_>,
) -> wasmtime::Result<()> {
    crate::bindings::redis::add_to_linker::<T, HasRedis>(linker, view)
}

#[cfg(test)]
mod tests;
