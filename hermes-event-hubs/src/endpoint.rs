//! The endpoint: AMQP connections from the Event Hubs SDKs, each on its own
//! task, and the nodes they talk to: `$cbs` (tokens), `$management` (a
//! hub's and its partitions' properties), a hub or one of its partitions
//! (events sent), a partition of a consumer group (events received).
//!
//! The SDKs use request and response over a pair of links per node, in one
//! session: a request comes on the link the client sends on, and its answer
//! goes on the client's receiving link of the same node in that session
//! (the Python SDK sets no reply-to), pre-settled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{SystemTime, UNIX_EPOCH};

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAnonymousMechanism,
    SessionAcceptor, SupportedReceiverSettleModes, SupportedSenderSettleModes,
};
use fe2o3_amqp::link::delivery::Sendable;
use fe2o3_amqp::types::definitions::{
    self, AmqpError, ErrorCondition, LinkError, ReceiverSettleMode, SenderSettleMode,
};
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, DeliveryAnnotations, Message, MessageAnnotations, Properties,
};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::{Array, OrderedMap, SimpleValue, Symbol, Timestamp, Value};
use fe2o3_amqp::{Receiver, Sender};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_rustls::TlsAcceptor;

use crate::amqp::stream::Completing;
use crate::cursor::{Cursor, Received};
use crate::partition::{BusTemplate, Extent, Incoming, Partition};
use crate::position::{Position, Start};
use crate::receivers::{Claim, Receivers, Refused};
use crate::sas::{Grant, Policies, Refusal, Right};

/// The message format of an Event Hubs batch: data sections, each one
/// whole encoded message.
const BATCH_FORMAT: u32 = 0x8001_3700;

/// The filter a receiver names its starting position with, by name (the
/// Python SDK) or by code (the Rust SDK).
const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";
const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;

/// The link property a receiver gives its epoch (owner level) in.
const EPOCH: &str = "com.microsoft:epoch";

/// The capability a receiver asks with for the partition's last enqueued
/// event on each event (`track_last_enqueued_event_properties`).
const RUNTIME_METRIC: &str = "com.microsoft:enable-receiver-runtime-metric";

/// The consumer group every hub has.
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";

/// One hub the endpoint serves.
#[derive(Debug, Clone)]
pub struct Hub {
    /// Its name, as clients give it (`EntityPath`, `eventhub_name`).
    pub name: String,
    /// How many partitions it has, named `0` to `n - 1`.
    pub partitions: u32,
    /// When it was made, in milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Its consumer groups besides `$Default`, which every hub has.
    pub consumer_groups: Vec<String>,
}

impl Hub {
    /// Whether it has the consumer group `name` (names are not case
    /// sensitive).
    pub fn has_consumer_group(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(DEFAULT_CONSUMER_GROUP)
            || self
                .consumer_groups
                .iter()
                .any(|g| g.eq_ignore_ascii_case(name))
    }
}

/// What the endpoint serves, and to whom.
#[derive(Debug, Clone)]
pub struct Config {
    /// The hubs, by name.
    pub hubs: Vec<Hub>,
    /// The shared access policies clients sign their tokens with.
    pub policies: Policies,
    /// TLS on every connection (`amqps`), or none: plain AMQP, what the
    /// SDKs speak with `UseDevelopmentEmulator=true`.
    pub tls: Option<TlsFiles>,
    /// The bus plugin that keeps the partitions; none: the hubs take no
    /// events.
    pub bus: Option<BusTemplate>,
    /// The largest message (or batch) a client may send, in bytes.
    pub max_message_size: u64,
}

/// Event Hubs' own limit on a message or a batch, 1 MiB.
pub const MAX_MESSAGE_SIZE: u64 = 1024 * 1024;

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

impl Default for Config {
    fn default() -> Config {
        Config {
            hubs: Vec::new(),
            policies: Policies::default(),
            tls: None,
            bus: None,
            max_message_size: MAX_MESSAGE_SIZE,
        }
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
    shared: Arc<Shared>,
}

/// What every connection shares: the configuration and the partitions.
struct Shared {
    config: Config,
    /// Each hub's partitions, by the hub's name in lower case.
    partitions: HashMap<String, Vec<Arc<Partition>>>,
    /// Where each hub's round robin is, by the same name.
    round_robin: HashMap<String, AtomicUsize>,
    /// Who receives from which partition of which consumer group.
    receivers: Receivers,
}

impl Endpoint {
    /// Listens on `address`.
    pub async fn bind(address: SocketAddr, config: Config) -> std::io::Result<Endpoint> {
        let tls = config.tls.as_ref().map(TlsFiles::acceptor).transpose()?;
        let mut partitions = HashMap::new();
        let mut round_robin = HashMap::new();
        if let Some(bus) = &config.bus {
            for hub in &config.hubs {
                let mut opened = Vec::new();
                for id in 0..hub.partitions {
                    let partition = Partition::open(bus, &hub.name, id).await.map_err(|e| {
                        std::io::Error::other(format!("hub {} partition {id}: {e}", hub.name))
                    })?;
                    let extent = partition.extent();
                    tracing::info!(
                        "hub {} partition {id}: {} events, the next numbered {}",
                        hub.name,
                        extent.next_sequence_number() - extent.begin_sequence_number,
                        extent.next_sequence_number()
                    );
                    opened.push(Arc::new(partition));
                }
                partitions.insert(hub.name.to_lowercase(), opened);
                round_robin.insert(hub.name.to_lowercase(), AtomicUsize::new(0));
            }
        }
        let listener = listen(address)?;
        Ok(Endpoint {
            listener,
            tls,
            shared: Arc::new(Shared {
                config,
                partitions,
                round_robin,
                receivers: Receivers::default(),
            }),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Its receivers: who receives from which partition.
    pub fn receivers(&self) -> Receivers {
        self.shared.receivers.clone()
    }

    /// Serves connections until `stop` resolves, then closes the
    /// partitions' producers (what they hold is stored as their plugin
    /// stores it on close).
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> std::io::Result<()> {
        let shared = Arc::clone(&self.shared);
        tokio::select! {
            served = self.run() => served?,
            () = stop => {}
        }
        for (hub, partitions) in &shared.partitions {
            for partition in partitions {
                if let Err(e) = partition.close().await {
                    tracing::warn!("hub {hub} partition {}: closing: {e}", partition.id);
                }
            }
        }
        Ok(())
    }

    /// Serves connections until the task is dropped; each connection on its
    /// own task, so that one that fails ends alone.
    pub async fn run(self) -> std::io::Result<()> {
        loop {
            let (stream, peer) = self.listener.accept().await?;
            let (shared, tls) = (Arc::clone(&self.shared), self.tls.clone());
            tokio::spawn(async move {
                let served = async {
                    stream.set_nodelay(true)?;
                    match tls {
                        Some(tls) => connection(tls.accept(stream).await?, shared).await,
                        None => connection(stream, shared).await,
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

async fn connection<S>(stream: S, shared: Arc<Shared>) -> Result<(), Error>
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
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(e) = serve_session(session, shared).await {
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

/// How long a request waits for the link its answer goes on: a client may
/// attach it just after the link it sends on, and send at once.
const ANSWER_LINK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl SessionState {
    /// The link answers to `node` go out on, once the client has attached it.
    async fn answer_link(&self, node: &str) -> Option<Arc<Mutex<Sender>>> {
        let deadline = tokio::time::Instant::now() + ANSWER_LINK_WAIT;
        loop {
            let link = self
                .answers
                .lock()
                .ok()
                .and_then(|answers| answers.get(node).cloned());
            if link.is_some() || tokio::time::Instant::now() >= deadline {
                return link;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

async fn serve_session(
    mut session: ListenerSessionHandle,
    shared: Arc<Shared>,
) -> Result<(), Error> {
    // What the endpoint sends goes pre-settled (the SDKs never settle
    // it); what it takes is settled at once, the outcome final (the SDKs
    // ask for `second`, but only a settled outcome completes their send).
    let links = LinkAcceptor::builder()
        .supported_sender_settle_modes(SupportedSenderSettleModes::Settled)
        .fallback_sender_settle_mode(SenderSettleMode::Settled)
        .supported_receiver_settle_modes(SupportedReceiverSettleModes::First)
        .fallback_receiver_settle_mode(ReceiverSettleMode::First)
        .max_message_size(shared.config.max_message_size)
        .build();
    let state = Arc::new(SessionState::default());
    while let Some(attach) = session.next_incoming_attach().await {
        let address = address(&attach);
        let asked = Asked::of(&attach);
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
                let (state, shared) = (Arc::clone(&state), Arc::clone(&shared));
                tokio::spawn(async move {
                    if let Err(e) = requests(receiver, node, state, shared).await {
                        tracing::debug!("requests: {e}");
                    }
                });
            }
            (_, LinkEndpoint::Receiver(receiver)) => {
                let target = shared.entity(&node).ok_or_else(|| not_found(&address));
                let allowed = target.and_then(|target| {
                    state
                        .allowed(&node, Right::Send)
                        .map(|()| target)
                        .map_err(|refusal| amqp_error(AmqpError::UnauthorizedAccess, refusal))
                });
                match allowed {
                    Ok(target) => {
                        let shared = Arc::clone(&shared);
                        tokio::spawn(async move {
                            if let Err(e) = take_events(receiver, target, shared).await {
                                tracing::debug!("events: {e}");
                            }
                        });
                    }
                    Err(error) => {
                        let _ = receiver.close_with_error(error).await;
                    }
                }
            }
            (_, LinkEndpoint::Sender(sender)) => {
                match receiving(&shared, &state, &node, &address, asked) {
                    Ok(receiver) => {
                        tokio::spawn(async move {
                            if let Err(e) = deliver(sender, receiver).await {
                                tracing::debug!("receiver: {e}");
                            }
                        });
                    }
                    Err(error) => {
                        let _ = sender.close_with_error(error).await;
                    }
                }
            }
        }
    }
    Ok(())
}

/// A receiver on the node `node`, if it may have one: the partition of a
/// consumer group it names, the right to listen, a starting position the
/// endpoint reads, and an epoch that lets it hold the partition; else the
/// error its link is closed with.
fn receiving(
    shared: &Shared,
    state: &SessionState,
    node: &str,
    address: &str,
    asked: Asked,
) -> Result<Receiving, definitions::Error> {
    let source = shared.source(node).ok_or_else(|| not_found(address))?;
    state
        .allowed(node, Right::Listen)
        .map_err(|refusal| amqp_error(AmqpError::UnauthorizedAccess, refusal))?;
    let position = asked
        .position
        .map_err(|why| amqp_error(AmqpError::InvalidField, why))?;
    let claim =
        shared
            .receivers
            .claim(source.key(), asked.epoch)
            .map_err(|refused| match refused {
                Refused::Epoch(why) => amqp_error(LinkError::Stolen, why),
                Refused::Full(why) => amqp_error(AmqpError::ResourceLimitExceeded, why),
            })?;
    Ok(Receiving {
        partition: source.partition,
        position,
        claim,
        runtime_metric: asked.runtime_metric,
    })
}

/// What a client asks for when it attaches a link to receive: its
/// starting position, its epoch, and whether it tracks the partition's
/// last enqueued event.
struct Asked {
    position: Result<Position, String>,
    epoch: Option<i64>,
    runtime_metric: bool,
}

impl Asked {
    fn of(attach: &Attach) -> Asked {
        let selector = attach
            .source
            .as_ref()
            .and_then(|source| source.filter.as_ref())
            .and_then(|filters| {
                filters.iter().find_map(|(_, filter)| match filter {
                    Value::Described(described) => {
                        let named = match &described.descriptor {
                            serde_amqp::descriptor::Descriptor::Name(name) => {
                                name.as_str() == SELECTOR_FILTER
                            }
                            serde_amqp::descriptor::Descriptor::Code(code) => {
                                *code == SELECTOR_FILTER_CODE
                            }
                        };
                        match (&described.value, named) {
                            (Value::String(selector), true) => Some(selector.clone()),
                            _ => None,
                        }
                    }
                    _ => None,
                })
            });
        // No filter: the partition's start.
        let position = selector.map_or(
            Ok(Position {
                start: Start::Beginning,
                inclusive: false,
            }),
            |selector| Position::parse(&selector).map_err(|e| e.to_string()),
        );
        let epoch = attach.properties.as_ref().and_then(|properties| {
            properties.iter().find_map(|(key, value)| {
                (key.as_str() == EPOCH).then_some(())?;
                match value {
                    Value::Long(n) => Some(*n),
                    Value::Int(n) => Some(i64::from(*n)),
                    _ => None,
                }
            })
        });
        let runtime_metric = attach
            .desired_capabilities
            .as_ref()
            .is_some_and(|caps| caps.0.iter().any(|c| c.as_str() == RUNTIME_METRIC));
        Asked {
            position,
            epoch,
            runtime_metric,
        }
    }
}

/// A partition of a consumer group, as a receiver names it.
struct Source {
    hub: String,
    group: String,
    partition: Arc<Partition>,
}

impl Source {
    fn key(&self) -> crate::receivers::Key {
        (
            self.hub.clone(),
            self.group.to_lowercase(),
            self.partition.id,
        )
    }
}

/// A receiver the endpoint serves: where it starts, its hold on the
/// partition.
struct Receiving {
    partition: Arc<Partition>,
    position: Position,
    claim: Claim,
    runtime_metric: bool,
}

/// How many events a receiver's cursor reads at a time.
const READ_AHEAD: u32 = 64;

/// What stops a receiver.
enum Stop {
    Detached,
    Stolen(String),
}

/// Sends a partition's events to a receiver, from its position on, as
/// they come: pre-settled, as the client's credit allows, until the client
/// detaches or a newer receiver takes the partition over.
async fn deliver(mut sender: Sender, receiver: Receiving) -> Result<(), Error> {
    let Receiving {
        partition,
        position,
        mut claim,
        runtime_metric,
    } = receiver;
    let mut cursor = match Cursor::open(&partition, &position).await {
        Ok(cursor) => cursor,
        Err(e) => {
            let error = amqp_error(
                AmqpError::InvalidField,
                format!("cannot start at {position}: {e}"),
            );
            let _ = sender.close_with_error(error).await;
            return Ok(());
        }
    };
    let mut extent = partition.watch();
    let stop = 'serving: loop {
        extent.borrow_and_update();
        let batch = match cursor.next_batch(READ_AHEAD).await {
            Ok(batch) => batch,
            Err(e) => {
                let _ = sender
                    .close_with_error(amqp_error(AmqpError::InternalError, e))
                    .await;
                return Ok(());
            }
        };
        if batch.is_empty() {
            let stop = tokio::select! {
                changed = extent.changed() => changed.err().map(|_| Stop::Detached),
                why = &mut claim.stolen => Some(why.map_or(Stop::Detached, Stop::Stolen)),
                _ = sender.on_detach() => Some(Stop::Detached),
            };
            match stop {
                Some(stop) => break 'serving stop,
                None => continue,
            }
        }
        for received in &batch {
            let last = runtime_metric.then(|| partition.extent());
            let message = message(received, last.as_ref())?;
            let sendable = Sendable::builder().message(message).settled(true).build();
            let stop = tokio::select! {
                sent = sender.send(sendable) => sent.err().map(|_| Stop::Detached),
                why = &mut claim.stolen => Some(why.map_or(Stop::Detached, Stop::Stolen)),
            };
            if let Some(stop) = stop {
                break 'serving stop;
            }
        }
    };
    if let Stop::Stolen(why) = stop {
        let _ = sender
            .close_with_error(amqp_error(LinkError::Stolen, why))
            .await;
    }
    cursor.close().await
}

/// The message a receiver gets: the one the client sent, with the
/// annotations the SDKs read, and the partition's last enqueued event for
/// receivers that track it.
fn message(received: &Received, last: Option<&Extent>) -> Result<Message<Body<Value>>, Error> {
    let Deserializable(mut message) =
        serde_amqp::from_slice::<Deserializable<Message<Body<Value>>>>(&received.message)?;
    let symbol = |name: &str| OwnedKey::Symbol(Symbol::from(name));
    let mut annotations = message
        .message_annotations
        .take()
        .unwrap_or_else(|| MessageAnnotations(OrderedMap::new()));
    annotations.0.insert(
        symbol("x-opt-sequence-number"),
        Value::Long(received.sequence_number),
    );
    annotations.0.insert(
        symbol("x-opt-offset"),
        Value::String(received.offset.clone()),
    );
    annotations.0.insert(
        symbol("x-opt-enqueued-time"),
        Value::Timestamp(Timestamp::from_milliseconds(received.enqueued_time)),
    );
    if let Some(key) = &received.partition_key {
        annotations
            .0
            .insert(symbol("x-opt-partition-key"), Value::String(key.clone()));
    }
    message.message_annotations = Some(annotations);
    if let Some(extent) = last {
        let mut runtime = OrderedMap::new();
        let (number, offset, time) = last_enqueued(extent);
        runtime.insert(symbol("last_enqueued_sequence_number"), Value::Long(number));
        runtime.insert(symbol("last_enqueued_offset"), Value::String(offset));
        runtime.insert(
            symbol("last_enqueued_time_utc"),
            Value::Timestamp(Timestamp::from_milliseconds(time)),
        );
        runtime.insert(
            symbol("runtime_info_retrieval_time_utc"),
            Value::Timestamp(Timestamp::from_milliseconds(crate::partition::now_ms())),
        );
        message.delivery_annotations = Some(DeliveryAnnotations(runtime));
    }
    Ok(message)
}

/// Where a client sends: a hub, and the partition it names, if any.
struct Target {
    hub: String,
    partition: Option<u32>,
}

impl Shared {
    /// The hub (and partition) an entity path names, if it has partitions
    /// here: `hub1`, `hub1/Partitions/2`.
    fn entity(&self, path: &str) -> Option<Target> {
        let mut parts = path.split('/');
        let hub = parts.next()?.to_lowercase();
        let partitions = self.partitions.get(&hub)?;
        let partition = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => None,
            (Some(p), Some(id), None) if p.eq_ignore_ascii_case("partitions") => {
                let id: u32 = id.parse().ok()?;
                (id < partitions.len() as u32).then_some(id)?.into()
            }
            _ => return None,
        };
        Some(Target { hub, partition })
    }

    /// The partition of a consumer group a receiver's path names, if both
    /// are here: `hub1/ConsumerGroups/$Default/Partitions/0`.
    fn source(&self, path: &str) -> Option<Source> {
        let parts: Vec<&str> = path.split('/').collect();
        let [hub, groups, group, partitions, id] = parts[..] else {
            return None;
        };
        if !groups.eq_ignore_ascii_case("consumergroups")
            || !partitions.eq_ignore_ascii_case("partitions")
            || !self.config.hub(hub)?.has_consumer_group(group)
        {
            return None;
        }
        let hub = hub.to_lowercase();
        let id: usize = id.parse().ok()?;
        let partition = self.partitions.get(&hub)?.get(id)?.clone();
        Some(Source {
            hub,
            group: group.to_owned(),
            partition,
        })
    }

    /// The partition an event goes to: the one named, else the one its
    /// partition key hashes to (always the same for a key), else the next
    /// in turn.
    fn partition(&self, target: &Target, key: Option<&str>) -> Option<Arc<Partition>> {
        let partitions = self.partitions.get(&target.hub)?;
        let index = match (target.partition, key) {
            (Some(id), _) => id as usize,
            (None, Some(key)) => crc32fast::hash(key.as_bytes()) as usize % partitions.len(),
            (None, None) => {
                self.round_robin
                    .get(&target.hub)?
                    .fetch_add(1, Ordering::Relaxed)
                    % partitions.len()
            }
        };
        partitions.get(index).cloned()
    }
}

impl SessionState {
    /// Whether a token put on `$cbs` in this session, unexpired, lets its
    /// holder use `right` on the entity `path`.
    fn allowed(&self, path: &str, right: Right) -> Result<(), Refusal> {
        let grants = self.grants.lock().map_err(|_| Refusal::Missing(right))?;
        let mut refusal = Refusal::Missing(right);
        for grant in grants.values().filter(|g| g.expiry > now()) {
            match grant.allows(&grant.audience_of(path), right) {
                Ok(()) => return Ok(()),
                Err(e) => refusal = e,
            }
        }
        Err(refusal)
    }
}

/// An AMQP error of `condition`, described.
fn amqp_error(
    condition: impl Into<ErrorCondition>,
    description: impl ToString,
) -> definitions::Error {
    definitions::Error::new(condition, Some(description.to_string()), None)
}

/// Takes the events a client sends on one link: each delivery (a message,
/// or a batch of them) stored whole in one partition, then accepted; if it
/// cannot be stored, rejected with the reason.
async fn take_events(
    mut receiver: Receiver,
    target: Target,
    shared: Arc<Shared>,
) -> Result<(), Error> {
    loop {
        let delivery = receiver.recv::<Body<Value>>().await?;
        match store(&delivery, &target, &shared).await {
            Ok(()) => receiver.accept(&delivery).await?,
            Err(error) => receiver.reject(&delivery, error).await?,
        }
    }
}

/// Stores a delivery's events, or says why not (`amqp:internal-error`).
/// A delivery larger than the link's limit never comes here: the
/// library detaches the link with `amqp:link:message-size-exceeded` as
/// soon as the frames it has read pass the limit, and keeps none of them.
async fn store(
    delivery: &fe2o3_amqp::link::delivery::Delivery<Body<Value>>,
    target: &Target,
    shared: &Shared,
) -> Result<(), definitions::Error> {
    let internal = |e: &dyn std::fmt::Display| amqp_error(AmqpError::InternalError, e);
    let message = delivery.message();
    let key = message
        .message_annotations
        .as_ref()
        .and_then(|annotations| {
            annotations.0.iter().find_map(|(k, v)| match (k, v) {
                (OwnedKey::Symbol(k), Value::String(key))
                    if k.as_str() == "x-opt-partition-key" =>
                {
                    Some(key.clone())
                }
                _ => None,
            })
        });
    let events: Vec<Incoming> = if *delivery.message_format() == Some(BATCH_FORMAT) {
        // A batch: each data section is one whole encoded message, kept as
        // it came.
        match &message.body {
            Body::Data(sections) => sections
                .iter()
                .map(|data| Incoming {
                    message: data.0.to_vec(),
                    partition_key: key.clone(),
                })
                .collect(),
            _ => return Err(internal(&"a batch whose body is not data sections")),
        }
    } else {
        // One message: encoded again as it was decoded.
        let bytes = serde_amqp::to_vec(&Serializable(message.clone())).map_err(|e| internal(&e))?;
        vec![Incoming {
            message: bytes,
            partition_key: key.clone(),
        }]
    };
    let partition = shared
        .partition(target, key.as_deref())
        .ok_or_else(|| internal(&"no such partition"))?;
    partition.append(&events).await.map_err(|e| internal(&e))?;
    Ok(())
}

fn not_found(address: &str) -> definitions::Error {
    amqp_error(AmqpError::NotFound, format!("no such entity: {address}"))
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
    shared: Arc<Shared>,
) -> Result<(), Error> {
    let config = &shared.config;
    loop {
        let delivery = receiver.recv::<Body<Value>>().await?;
        receiver.accept(&delivery).await?;
        let request = delivery.into_message();
        let (status, description, body) = match node.as_str() {
            "$cbs" => put_token(&request, &state, config),
            _ => read(&request, &state, &shared),
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
        let Some(sender) = state.answer_link(&node).await else {
            return Err(format!("{node}: a request, and no link for its answer").into());
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
    shared: &Shared,
) -> (i32, String, Value) {
    let config = &shared.config;
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
        Some("com.microsoft:partition") => {
            let id = text(request, "partition").unwrap_or_default();
            let Some(number) = id.parse::<u32>().ok().filter(|n| *n < hub.partitions) else {
                return (
                    404,
                    format!("hub '{}' has no partition '{id}'", hub.name),
                    Value::Null,
                );
            };
            let extent = shared
                .partitions
                .get(&hub.name.to_lowercase())
                .and_then(|partitions| partitions.get(number as usize))
                .map(|partition| partition.extent())
                .unwrap_or_default();
            (200, "OK".into(), partition_properties(hub, number, &extent))
        }
        other => (
            400,
            format!("unknown type {}", other.unwrap_or("(none)")),
            Value::Null,
        ),
    }
}

/// A partition's properties, as `$management` answers a READ of type
/// `com.microsoft:partition`.
fn partition_properties(hub: &Hub, id: u32, extent: &Extent) -> Value {
    let (number, offset, time) = last_enqueued(extent);
    let mut map = OrderedMap::new();
    let mut put = |key: &str, value: Value| {
        map.insert(Value::String(key.to_owned()), value);
    };
    put("name", Value::String(hub.name.clone()));
    put("partition", Value::String(id.to_string()));
    put(
        "begin_sequence_number",
        Value::Long(extent.begin_sequence_number),
    );
    put("last_enqueued_sequence_number", Value::Long(number));
    put("last_enqueued_offset", Value::String(offset));
    put(
        "last_enqueued_time_utc",
        Value::Timestamp(Timestamp::from_milliseconds(time)),
    );
    put("is_partition_empty", Value::Bool(extent.last.is_none()));
    put("last_enqueued_sequence_number_epoch", Value::Long(0));
    put("type", Value::String("com.microsoft:partition".into()));
    Value::Map(map)
}

/// A partition's last event as the SDKs read it: its sequence number,
/// offset and enqueued time; `-1`, `"-1"` and 0 when the partition is empty.
fn last_enqueued(extent: &Extent) -> (i64, String, i64) {
    extent
        .last
        .as_ref()
        .map_or((-1, "-1".to_owned(), 0), |last| {
            (
                last.sequence_number,
                crate::cursor::offset_text(&last.offset),
                last.enqueued_time,
            )
        })
}
