//! The endpoint: AMQP connections from the Event Hubs SDKs, each on its own
//! task, and the nodes they talk to: `$cbs` (tokens), `$management` (a
//! hub's and its partitions' properties).
//!
//! The SDKs use request and response over a pair of links per node, in one
//! session: a request comes on the link the client sends on, and its answer
//! goes on the client's receiving link of the same node in that session
//! (the Python SDK sets no reply-to), pre-settled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{SystemTime, UNIX_EPOCH};

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAnonymousMechanism,
    SessionAcceptor, SupportedReceiverSettleModes, SupportedSenderSettleModes,
};
use fe2o3_amqp::link::delivery::Sendable;
use fe2o3_amqp::types::definitions::{ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::{ApplicationProperties, Body, Message, Properties};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::{Array, OrderedMap, SimpleValue, Timestamp, Value};
use fe2o3_amqp::{Receiver, Sender};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_rustls::TlsAcceptor;

use crate::amqp::stream::Completing;
use crate::sas::{Grant, Policies, Right};

/// One hub the endpoint serves.
#[derive(Debug, Clone)]
pub struct Hub {
    /// Its name, as clients give it (`EntityPath`, `eventhub_name`).
    pub name: String,
    /// How many partitions it has, named `0` to `n - 1`.
    pub partitions: u32,
    /// When it was made, in milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// What the endpoint serves, and to whom.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The hubs, by name.
    pub hubs: Vec<Hub>,
    /// The shared access policies clients sign their tokens with.
    pub policies: Policies,
    /// TLS on every connection (`amqps`), or none: plain AMQP, what the
    /// SDKs speak with `UseDevelopmentEmulator=true`.
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate, then the chain up to a root the clients trust.
    pub certificate: PathBuf,
    /// The certificate's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// A TLS acceptor of these files; an error names the file at fault.
    fn acceptor(&self) -> std::io::Result<TlsAcceptor> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let at = |path: &Path, e: &dyn std::fmt::Display| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{}: {e}", path.display()),
            )
        };
        let chain = CertificateDer::pem_file_iter(&self.certificate)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| at(&self.certificate, &e))?;
        if chain.is_empty() {
            return Err(at(&self.certificate, &"no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| at(&self.key, &e))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| at(&self.certificate, &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| at(&self.key, &e))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl Config {
    fn hub(&self, name: &str) -> Option<&Hub> {
        self.hubs.iter().find(|h| h.name.eq_ignore_ascii_case(name))
    }
}

/// A bound endpoint, ready to serve.
pub struct Endpoint {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    config: Arc<Config>,
}

impl Endpoint {
    /// Listens on `address`.
    pub async fn bind(address: SocketAddr, config: Config) -> std::io::Result<Endpoint> {
        let tls = config.tls.as_ref().map(TlsFiles::acceptor).transpose()?;
        let listener = listen(address)?;
        Ok(Endpoint {
            listener,
            tls,
            config: Arc::new(config),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections until the task is dropped; each connection on its
    /// own task, so that one that fails ends alone.
    pub async fn run(self) -> std::io::Result<()> {
        loop {
            let (stream, peer) = self.listener.accept().await?;
            let (config, tls) = (Arc::clone(&self.config), self.tls.clone());
            tokio::spawn(async move {
                let served = async {
                    stream.set_nodelay(true)?;
                    match tls {
                        Some(tls) => connection(tls.accept(stream).await?, config).await,
                        None => connection(stream, config).await,
                    }
                };
                if let Err(e) = served.await {
                    tracing::debug!("connection from {peer}: {e}");
                }
            });
        }
    }
}

/// The listening socket. Its connections take a TCP maximum segment size
/// of 16 KiB: the Python SDK writes back every TCP option it reads, and on
/// loopback the kernel may report 32 KiB, which it then refuses to set
/// (`[Errno 22] Invalid argument`, a failed connect).
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_mss(16 * 1024)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn connection<S>(stream: S, config: Arc<Config>) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + std::fmt::Debug + Send + Unpin + 'static,
{
    let acceptor = ConnectionAcceptor::builder()
        .container_id("hermes-wasm")
        .sasl_acceptor(SaslAnonymousMechanism::new())
        .build();
    let mut connection = acceptor.accept(Completing::new(stream)).await?;
    let sessions = SessionAcceptor::new();
    while let Some(incoming) = connection.next_incoming_session().await {
        let session = sessions
            .accept_incoming_session(incoming, &mut connection)
            .await?;
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            if let Err(e) = serve_session(session, config).await {
                tracing::debug!("session: {e}");
            }
        });
    }
    Ok(())
}

/// A session's state: the links answers go out on, by node, and what the
/// tokens put on `$cbs` grant, by audience.
#[derive(Default)]
struct SessionState {
    answers: StdMutex<HashMap<String, Arc<Mutex<Sender>>>>,
    grants: StdMutex<HashMap<String, Grant>>,
}

async fn serve_session(
    mut session: ListenerSessionHandle,
    config: Arc<Config>,
) -> Result<(), Error> {
    // What the endpoint sends goes pre-settled (the SDKs never settle
    // it); what it takes is settled at once, the outcome final (the SDKs
    // ask for `second`, but only a settled outcome completes their send).
    let links = LinkAcceptor::builder()
        .supported_sender_settle_modes(SupportedSenderSettleModes::Settled)
        .fallback_sender_settle_mode(SenderSettleMode::Settled)
        .supported_receiver_settle_modes(SupportedReceiverSettleModes::First)
        .fallback_receiver_settle_mode(ReceiverSettleMode::First)
        .build();
    let state = Arc::new(SessionState::default());
    while let Some(attach) = session.next_incoming_attach().await {
        let address = address(&attach);
        tracing::trace!("attach: {:?} on {address}", attach.role);
        let link = links.accept_incoming_attach(attach, &mut session).await?;
        let node = node(&address);
        match (node.as_str(), link) {
            ("$cbs" | "$management", LinkEndpoint::Sender(sender)) => {
                if let Ok(mut answers) = state.answers.lock() {
                    answers.insert(node, Arc::new(Mutex::new(sender)));
                }
            }
            ("$cbs" | "$management", LinkEndpoint::Receiver(receiver)) => {
                let (state, config) = (Arc::clone(&state), Arc::clone(&config));
                tokio::spawn(async move {
                    if let Err(e) = requests(receiver, node, state, config).await {
                        tracing::debug!("requests: {e}");
                    }
                });
            }
            (_, LinkEndpoint::Sender(sender)) => {
                let _ = sender.close_with_error(not_found(&address)).await;
            }
            (_, LinkEndpoint::Receiver(receiver)) => {
                let _ = receiver.close_with_error(not_found(&address)).await;
            }
        }
    }
    Ok(())
}

fn not_found(address: &str) -> fe2o3_amqp::types::definitions::Error {
    fe2o3_amqp::types::definitions::Error::new(
        fe2o3_amqp::types::definitions::AmqpError::NotFound,
        Some(format!("no such entity: {address}")),
        None,
    )
}

/// The address a link is attached to: its target when the client sends,
/// its source when it receives.
fn address(attach: &Attach) -> String {
    use fe2o3_amqp::types::definitions::Role;
    let address = match attach.role {
        Role::Sender => attach.target.as_deref().and_then(|t| match t {
            fe2o3_amqp::types::messaging::TargetArchetype::Target(t) => t.address.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        }),
        Role::Receiver => attach.source.as_ref().and_then(|s| s.address.clone()),
    };
    address.unwrap_or_default()
}

/// A link address's node: `$cbs`, `$management`, or the path after the
/// authority (`hub1`, `hub1/Partitions/0`, ...).
fn node(address: &str) -> String {
    let rest = address.split_once("://").map_or(address, |(_, rest)| {
        rest.split_once('/').map_or("", |(_, path)| path)
    });
    rest.trim_matches('/').to_owned()
}

async fn requests(
    mut receiver: Receiver,
    node: String,
    state: Arc<SessionState>,
    config: Arc<Config>,
) -> Result<(), Error> {
    loop {
        let delivery = receiver.recv::<Body<Value>>().await?;
        receiver.accept(&delivery).await?;
        let request = delivery.into_message();
        let (status, description, body) = match node.as_str() {
            "$cbs" => put_token(&request, &state, &config),
            _ => read(&request, &state, &config),
        };
        let answer = Message::builder()
            .properties(Properties {
                correlation_id: request
                    .properties
                    .as_ref()
                    .and_then(|p| p.message_id.clone()),
                ..Default::default()
            })
            .application_properties(
                ApplicationProperties::builder()
                    .insert("status-code", SimpleValue::Int(status))
                    .insert("status-description", SimpleValue::String(description))
                    .build(),
            )
            .value(body)
            .build();
        let sender = state
            .answers
            .lock()
            .ok()
            .and_then(|answers| answers.get(&node).cloned());
        let Some(sender) = sender else {
            return Err(format!("{node}: a request before the link its answer goes on").into());
        };
        sender
            .lock()
            .await
            .send(Sendable::builder().message(answer).settled(true).build())
            .await?;
    }
}

fn property<'a>(request: &'a Message<Body<Value>>, name: &str) -> Option<&'a SimpleValue> {
    request
        .application_properties
        .as_ref()
        .and_then(|p| p.0.get(name))
}

fn text<'a>(request: &'a Message<Body<Value>>, name: &str) -> Option<&'a str> {
    match property(request, name) {
        Some(SimpleValue::String(s)) => Some(s),
        Some(SimpleValue::Symbol(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `$cbs` put-token: checks the token and keeps what it grants for the
/// audience it names.
fn put_token(
    request: &Message<Body<Value>>,
    state: &SessionState,
    config: &Config,
) -> (i32, String, Value) {
    if text(request, "operation") != Some("put-token") {
        return (400, "the operation must be put-token".into(), Value::Null);
    }
    let Some(audience) = text(request, "name") else {
        return (400, "no name (the token's audience)".into(), Value::Null);
    };
    let token = match &request.body {
        Body::Value(value) => match &value.0 {
            Value::String(token) => token.as_str(),
            _ => "",
        },
        _ => "",
    };
    match config
        .policies
        .verify(token, now())
        .and_then(|grant| grant.covers(audience).map(|()| grant))
    {
        Ok(grant) => {
            if let Ok(mut grants) = state.grants.lock() {
                grants.insert(audience.to_owned(), grant);
            }
            (202, "Accepted".into(), Value::Null)
        }
        Err(refusal) => (401, refusal.to_string(), Value::Null),
    }
}

/// `$management` READ of a hub or a partition.
fn read(
    request: &Message<Body<Value>>,
    state: &SessionState,
    config: &Config,
) -> (i32, String, Value) {
    if text(request, "operation") != Some("READ") {
        return (400, "the operation must be READ".into(), Value::Null);
    }
    let Some(name) = text(request, "name") else {
        return (400, "no name".into(), Value::Null);
    };
    // The request's own token, or one put on `$cbs` in this session.
    let token = text(request, "security_token").unwrap_or_default();
    let grant = config.policies.verify(token, now()).or_else(|refusal| {
        state
            .grants
            .lock()
            .ok()
            .and_then(|grants| grants.values().find(|g| g.expiry > now()).cloned())
            .ok_or(refusal)
    });
    let allowed = grant.and_then(|grant| {
        grant.covers(&grant.audience_of(name))?;
        grant.has(Right::Listen).or_else(|_| grant.has(Right::Send))
    });
    if let Err(refusal) = allowed {
        return (401, refusal.to_string(), Value::Null);
    }
    let Some(hub) = config.hub(name) else {
        return (404, format!("no hub named '{name}'"), Value::Null);
    };
    let ids = (0..hub.partitions).map(|p| Value::String(p.to_string()));
    match text(request, "type") {
        Some("com.microsoft:eventhub") => {
            let mut map = OrderedMap::new();
            map.insert(
                Value::String("name".into()),
                Value::String(hub.name.clone()),
            );
            map.insert(
                Value::String("created_at".into()),
                Value::Timestamp(Timestamp::from_milliseconds(hub.created_at)),
            );
            map.insert(
                Value::String("partition_ids".into()),
                Value::Array(Array::from(ids.collect::<Vec<_>>())),
            );
            map.insert(
                Value::String("partition_count".into()),
                Value::Int(hub.partitions as i32),
            );
            map.insert(
                Value::String("type".into()),
                Value::String("com.microsoft:eventhub".into()),
            );
            (200, "OK".into(), Value::Map(map))
        }
        other => (
            400,
            format!("unknown type {}", other.unwrap_or("(none)")),
            Value::Null,
        ),
    }
}
