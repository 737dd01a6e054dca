//! The `redis` capability: connections to the Redis servers the operator
//! allows, on the `redis` crate's multiplexed tokio connection. A command
//! that blocks on the server (`XREAD BLOCK`) is an await point: the host's
//! other work goes on meanwhile. Only the commands in [`commands::ALLOWED`]
//! go through, and those the operator adds for a server.

pub mod commands;
mod stream;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::TrappableError;

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
    /// Commands allowed on this server beyond [`commands::ALLOWED`].
    extra: BTreeSet<String>,
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
            extra: BTreeSet::new(),
        })
    }

    /// The same server, with `extra` commands allowed beyond those a bus
    /// needs; refused for a command that would let the plugin out of its
    /// grant (see [`commands::NEVER`]).
    pub fn with_commands<S: AsRef<str>>(
        mut self,
        extra: impl IntoIterator<Item = S>,
    ) -> Result<Self, String> {
        let extra: BTreeSet<String> = extra
            .into_iter()
            .map(|c| commands::name(c.as_ref().as_bytes()))
            .collect();
        commands::check_extra(&extra)?;
        self.extra.extend(extra);
        Ok(self)
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
            Ok(Err(_)) if self.meter.exceeded() => {
                Err(RedisError::Unavailable(self.meter.explain()))
            }
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
mod tests {
    use super::*;
    use local_servers::RedisServer;

    fn domain<T: fmt::Debug>(result: Result<T, RedisFailure>) -> RedisError {
        result
            .expect_err("the call fails")
            .downcast()
            .expect("a redis-error, not a trap")
    }

    /// The capability called directly, as a plugin's calls reach it.
    #[tokio::test]
    async fn the_view_reaches_allowed_servers_only_and_lowers_its_failures() {
        let server = RedisServer::start();
        let url = server.url();
        let other = "redis://127.0.0.1:1/0";
        let ctx = RedisCtx::new(
            Arc::from("probe"),
            vec![RedisAllow::parse(&url).expect("valid")],
            crate::sandbox::DEFAULT_MEMORY_LIMIT,
        );
        let mut table = ResourceTable::new();
        let mut view = RedisView {
            ctx: &ctx,
            table: &mut table,
        };

        assert!(matches!(
            domain(view.open(other.into()).await),
            RedisError::Refused(m) if m.contains("not an allowed Redis server")
        ));
        assert!(matches!(
            domain(view.open("http://x".into()).await),
            RedisError::InvalidUrl(_)
        ));

        let connection = view.open(url.clone()).await.expect("allowed");
        let again = Resource::<Connection>::new_borrow(connection.rep());
        let reply = view
            .command(again, vec![b"PING".to_vec()])
            .await
            .expect("PING");
        assert_eq!(reply, vec![ReplyItem::Status("PONG".into())]);

        let again = Resource::<Connection>::new_borrow(connection.rep());
        let replies = view
            .pipeline(
                again,
                vec![
                    vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()],
                    vec![b"GET".to_vec(), b"k".to_vec()],
                    vec![b"INCR".to_vec(), b"k".to_vec()],
                ],
            )
            .await
            .expect("a pipeline");
        assert_eq!(replies[0], vec![ReplyItem::Status("OK".into())]);
        assert_eq!(replies[1], vec![ReplyItem::Bulk(b"v".to_vec())]);
        assert!(
            matches!(&replies[2][..], [ReplyItem::Error(e)] if e.starts_with("ERR")),
            "a server error is a reply item: {:?}",
            replies[2]
        );

        let again = Resource::<Connection>::new_borrow(connection.rep());
        assert!(matches!(
            domain(view.command(again, vec![]).await),
            RedisError::InvalidCall(_)
        ));

        // Commands outside a bus's are refused, alone or in a pipeline, and
        // a refused pipeline sends nothing.
        for forbidden in [
            &["SELECT", "1"][..],
            &["CONFIG", "SET", "dir", "/tmp"],
            &["eval", "return 1", "0"],
        ] {
            let again = Resource::<Connection>::new_borrow(connection.rep());
            let args = forbidden.iter().map(|a| a.as_bytes().to_vec()).collect();
            assert!(
                matches!(domain(view.command(again, args).await), RedisError::Refused(m) if m.contains("is not allowed")),
                "{forbidden:?}"
            );
        }
        let again = Resource::<Connection>::new_borrow(connection.rep());
        let mixed = vec![
            vec![b"SET".to_vec(), b"k2".to_vec(), b"v".to_vec()],
            vec![b"SWAPDB".to_vec(), b"0".to_vec(), b"1".to_vec()],
        ];
        assert!(matches!(
            domain(view.pipeline(again, mixed).await),
            RedisError::Refused(_)
        ));
        let again = Resource::<Connection>::new_borrow(connection.rep());
        let k2 = view
            .command(again, vec![b"GET".to_vec(), b"k2".to_vec()])
            .await
            .expect("GET");
        assert_eq!(
            k2,
            vec![ReplyItem::Nil],
            "nothing of the refused pipeline ran"
        );

        // A reply that does not come within the timeout is `unavailable`.
        let again = Resource::<Connection>::new_borrow(connection.rep());
        view.set_response_timeout(again, 50).await.expect("set");
        let again = Resource::<Connection>::new_borrow(connection.rep());
        let blocked = view
            .command(
                again,
                vec![b"BLPOP".to_vec(), b"empty".to_vec(), b"2".to_vec()],
            )
            .await;
        assert!(matches!(
            domain(blocked),
            RedisError::Unavailable(m) if m.contains("no reply within 50 ms")
        ));

        // At most MAX_OPEN connections at once; closing one makes room.
        let mut held = Vec::new();
        for _ in 1..MAX_OPEN {
            held.push(view.open(url.clone()).await.expect("opens"));
        }
        assert!(matches!(
            domain(view.open(url.clone()).await),
            RedisError::Refused(m) if m.contains("at most")
        ));
        view.drop(held.pop().expect("held")).await.expect("closed");
        held.push(view.open(url.clone()).await.expect("room again"));
        for connection in held {
            view.drop(connection).await.expect("closed");
        }

        // A handle the plugin does not hold is a trap, not a redis-error.
        view.drop(connection).await.expect("closed");

        // A command the operator adds for a server goes through there.
        let scripting = RedisCtx::new(
            Arc::from("probe"),
            vec![
                RedisAllow::parse(&url)
                    .expect("valid")
                    .with_commands(["eval"])
                    .expect("allowed"),
            ],
            crate::sandbox::DEFAULT_MEMORY_LIMIT,
        );
        let mut view = RedisView {
            ctx: &scripting,
            table: view.table,
        };
        let connection = view.open(url.clone()).await.expect("allowed");
        let reply = view
            .command(
                connection,
                ["EVAL", "return 7", "0"]
                    .map(|a| a.as_bytes().to_vec())
                    .to_vec(),
            )
            .await
            .expect("EVAL is allowed here");
        assert_eq!(reply, vec![ReplyItem::Integer(7)]);
        let never = RedisAllow::parse(&url)
            .expect("valid")
            .with_commands(["select"]);
        assert!(never.expect_err("never").contains("SELECT"));
        let forged = Resource::<Connection>::new_borrow(12345);
        let failure = view
            .command(forged, vec![b"PING".to_vec()])
            .await
            .expect_err("no such connection");
        assert!(failure.downcast().is_err(), "a trap");
    }

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
