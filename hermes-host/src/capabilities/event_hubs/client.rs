//! The AMQP side of the capability: a connection to an Event Hubs endpoint
//! on `fe2o3-amqp`, authorised by a token put on `$cbs` and renewed before
//! it expires, `$management` reads, senders per partition and a receiver.
//!
//! Each [`Hub`] and each [`Receiver`] has a connection of its own, as the
//! SDKs do: a receiver outlives nothing it does not own, and a broken
//! connection fails only the resource that holds it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::delivery::Sendable;
use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{self, ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::message::__private::Serializable;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Data, Message, MessageId, Outcome, Properties, Source, Target,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Value};
use fe2o3_amqp::{Connection, Session};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;

use super::allow::Endpoint;
use super::sas;
use crate::bindings::event_hubs::{
    Credentials, EventData, HubError, PartitionProperties, ReceivedEvent, Start,
};
use crate::bindings::types::Timestamp;

/// How long connecting, and each request of the protocol, may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a token is valid, and how long before its expiry it is renewed.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
const TOKEN_RENEWAL: Duration = Duration::from_secs(600);

/// The message format of a batch: data sections, each one whole encoded
/// message.
const BATCH_FORMAT: u32 = 0x8001_3700;

/// What a batch adds to its messages, at most: its own framing and each
/// data section's header.
const BATCH_OVERHEAD: usize = 256;
const SECTION_OVERHEAD: usize = 8;

/// The filter a receiver names its start with.
const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";

/// Events a receiver asks the service for ahead of `receive`.
const PREFETCH: u32 = 300;

/// One connection and its session, authorised for one hub.
struct Link {
    endpoint: Endpoint,
    /// The certificates TLS trusts; none: the web's roots.
    roots: Option<Arc<rustls::RootCertStore>>,
    hub: String,
    credentials: Credentials,
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
    /// The request links to `$cbs` and `$management`, attached on first use.
    cbs: Option<Pair>,
    management: Option<Pair>,
    /// When the token put on `$cbs` expires, in Unix seconds.
    expires: u64,
    /// Requests sent on this connection, for their message ids.
    requests: u64,
}

/// A request and response pair of links to a node (`$cbs`, `$management`).
struct Pair {
    sender: fe2o3_amqp::Sender,
    receiver: fe2o3_amqp::Receiver,
}

/// A failure: the error the plugin gets.
type Result<T> = std::result::Result<T, HubError>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unavailable(endpoint: &Endpoint, what: &str, e: impl std::fmt::Display) -> HubError {
    HubError::Unavailable(format!("{endpoint}: {what}: {e}"))
}

/// Runs `step` under [`CONNECT_TIMEOUT`].
async fn timed<T>(
    endpoint: &Endpoint,
    what: &str,
    step: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(CONNECT_TIMEOUT, step)
        .await
        .unwrap_or_else(|_| {
            Err(unavailable(
                endpoint,
                what,
                format_args!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            ))
        })
}

/// The error a service's AMQP error condition stands for.
fn from_condition(error: &definitions::Error, what: &str) -> HubError {
    let condition = format!("{:?}", error.condition);
    let text = match &error.description {
        Some(description) => format!("{what}: {description}"),
        None => format!("{what}: {condition}"),
    };
    let lower = condition.to_ascii_lowercase();
    if lower.contains("unauthorized") {
        HubError::Refused(text)
    } else if lower.contains("notfound") {
        HubError::NotFound(text)
    } else if lower.contains("messagesizeexceeded") {
        HubError::TooLarge(text)
    } else if lower.contains("stolen") || lower.contains("detach") || lower.contains("connection") {
        HubError::Unavailable(text)
    } else {
        HubError::Other(text)
    }
}

/// A status code of a `$cbs` or `$management` answer.
fn from_status(status: i64, description: &str, what: &str) -> Result<()> {
    let text = format!("{what}: {status} {description}");
    match status {
        200..=299 => Ok(()),
        401 | 403 => Err(HubError::Refused(text)),
        404 => Err(HubError::NotFound(text)),
        500.. => Err(HubError::Unavailable(text)),
        _ => Err(HubError::Other(text)),
    }
}

impl Link {
    /// Connects to `endpoint` and puts a token for `hub` on `$cbs`.
    async fn open(
        endpoint: &Endpoint,
        roots: Option<Arc<rustls::RootCertStore>>,
        hub: &str,
        credentials: &Credentials,
    ) -> Result<Link> {
        timed(endpoint, "connecting", async {
            let (host, port) = endpoint.address();
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| unavailable(endpoint, "connecting", e))?;
            let _ = tcp.set_nodelay(true);
            let builder = Connection::builder()
                .container_id(format!("hermes-wasm-{}", now()))
                .hostname(host.as_str())
                .scheme("amqp")
                .sasl_profile(fe2o3_amqp::sasl_profile::SaslProfile::Anonymous);
            let mut connection = if endpoint.tls {
                let tls = tls_connector(roots.clone())
                    .connect(server_name(endpoint)?, tcp)
                    .await
                    .map_err(|e| unavailable(endpoint, "TLS", e))?;
                builder.open_with_stream(tls).await
            } else {
                builder.open_with_stream(tcp).await
            }
            .map_err(|e| unavailable(endpoint, "opening the connection", e))?;
            let session = Session::begin(&mut connection)
                .await
                .map_err(|e| unavailable(endpoint, "beginning a session", e))?;
            Ok(Link {
                endpoint: endpoint.clone(),
                roots: roots.clone(),
                hub: hub.to_owned(),
                credentials: credentials.clone(),
                connection,
                session,
                cbs: None,
                management: None,
                expires: 0,
                requests: 0,
            })
        })
        .await?
        .authorized()
        .await
    }

    /// The link with a token valid for a while yet.
    async fn authorized(mut self) -> Result<Link> {
        self.authorize().await?;
        Ok(self)
    }

    /// Puts a new token on `$cbs` unless the last one is valid for a while
    /// yet.
    async fn authorize(&mut self) -> Result<()> {
        if self.expires > now() + TOKEN_RENEWAL.as_secs() {
            return Ok(());
        }
        let expiry = now() + TOKEN_LIFETIME.as_secs();
        let audience = self.endpoint.resource(&self.hub);
        let token = self.token(expiry);
        let mut properties = ApplicationProperties::builder()
            .insert("operation", SimpleValue::String("put-token".into()))
            .insert(
                "type",
                SimpleValue::String("servicebus.windows.net:sastoken".into()),
            )
            .insert("name", SimpleValue::String(audience.clone()))
            .build();
        properties.0.insert(
            "expiration".into(),
            SimpleValue::Timestamp(fe2o3_amqp::types::primitives::Timestamp::from_milliseconds(
                i64::try_from(expiry)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000),
            )),
        );
        self.request("$cbs", properties, Value::String(token))
            .await
            .map_err(|e| match e {
                HubError::Refused(why) => HubError::Refused(format!(
                    "the token for {audience} (policy {}) was refused: {why}",
                    self.credentials.key_name
                )),
                other => other,
            })?;
        self.expires = expiry;
        Ok(())
    }

    fn token(&self, expiry: u64) -> String {
        sas::token(
            &self.endpoint.resource(&self.hub),
            &self.credentials.key_name,
            &self.credentials.key,
            expiry,
        )
    }

    /// Sends a request to `node` (`$cbs`, `$management`) and waits for its
    /// answer; the answer's body if its status is a success.
    async fn request(
        &mut self,
        node: &str,
        properties: ApplicationProperties,
        body: Value,
    ) -> Result<Value> {
        self.requests += 1;
        let id = self.requests;
        let reply_to = format!("{node}-reply");
        let endpoint = self.endpoint.clone();
        let what = format!("{node} {}", operation(&properties));
        let pair = match node {
            "$cbs" => &mut self.cbs,
            _ => &mut self.management,
        };
        let pair = match pair {
            Some(pair) => pair,
            None => pair.insert(Pair::open(&mut self.session, node, &reply_to, &endpoint).await?),
        };
        let message = Message::builder()
            .properties(Properties {
                message_id: Some(MessageId::Ulong(id)),
                reply_to: Some(reply_to),
                ..Default::default()
            })
            .application_properties(properties)
            .value(body)
            .build();
        let answer = timed(&endpoint, &what, async {
            let outcome = pair
                .sender
                .send(Sendable::builder().message(message).settled(false).build())
                .await
                .map_err(|e| unavailable(&endpoint, &what, e))?;
            if let Outcome::Rejected(rejected) = outcome {
                return Err(match rejected.error {
                    Some(error) => from_condition(&error, &what),
                    None => HubError::Other(format!("{what}: rejected")),
                });
            }
            loop {
                let delivery = pair
                    .receiver
                    .recv::<Body<Value>>()
                    .await
                    .map_err(|e| unavailable(&endpoint, &what, e))?;
                let _ = pair.receiver.accept(&delivery).await;
                let answer = delivery.into_message();
                let answers_this = answer
                    .properties
                    .as_ref()
                    .and_then(|p| p.correlation_id.as_ref())
                    .is_none_or(|c| *c == MessageId::Ulong(id));
                if answers_this {
                    return Ok(answer);
                }
            }
        })
        .await?;
        let status = answer_property(&answer, "status-code")
            .or_else(|| answer_property(&answer, "statusCode"))
            .and_then(integer)
            .unwrap_or(200);
        let description = answer_property(&answer, "status-description")
            .or_else(|| answer_property(&answer, "statusDescription"))
            .and_then(|v| match v {
                SimpleValue::String(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        from_status(status, &description, &what)?;
        Ok(match answer.body {
            Body::Value(value) => value.0,
            _ => Value::Null,
        })
    }

    /// `$management` READ of `type` (`com.microsoft:eventhub`,
    /// `com.microsoft:partition`), as a map.
    async fn read(
        &mut self,
        kind: &str,
        partition: Option<&str>,
    ) -> Result<HashMap<String, Value>> {
        self.authorize().await?;
        let token = self.token(self.expires);
        let mut properties = ApplicationProperties::builder()
            .insert("operation", SimpleValue::String("READ".into()))
            .insert("type", SimpleValue::String(kind.into()))
            .insert("name", SimpleValue::String(self.hub.clone()))
            .insert("security_token", SimpleValue::String(token))
            .build();
        if let Some(partition) = partition {
            properties
                .0
                .insert("partition".into(), SimpleValue::String(partition.into()));
        }
        match self.request("$management", properties, Value::Null).await? {
            Value::Map(map) => Ok(map
                .into_iter()
                .filter_map(|(k, v)| match k {
                    Value::String(k) => Some((k, v)),
                    Value::Symbol(k) => Some((k.0, v)),
                    _ => None,
                })
                .collect()),
            other => Err(HubError::Other(format!(
                "$management READ {kind}: the answer is {other:?}, not a map"
            ))),
        }
    }

    async fn close(mut self) {
        for pair in [self.cbs.take(), self.management.take()]
            .into_iter()
            .flatten()
        {
            pair.close().await;
        }
        let _ = self.session.end().await;
        let _ = self.connection.close().await;
    }
}

fn operation(properties: &ApplicationProperties) -> String {
    match properties.0.get("operation") {
        Some(SimpleValue::String(op)) => op.clone(),
        _ => String::new(),
    }
}

fn answer_property<'a>(answer: &'a Message<Body<Value>>, name: &str) -> Option<&'a SimpleValue> {
    answer
        .application_properties
        .as_ref()
        .and_then(|p| p.0.get(name))
}

fn integer(value: &SimpleValue) -> Option<i64> {
    match *value {
        SimpleValue::Int(n) => Some(n.into()),
        SimpleValue::Long(n) => Some(n),
        SimpleValue::Uint(n) => Some(n.into()),
        SimpleValue::Ulong(n) => i64::try_from(n).ok(),
        SimpleValue::Short(n) => Some(n.into()),
        SimpleValue::Ushort(n) => Some(n.into()),
        _ => None,
    }
}

impl Pair {
    async fn open(
        session: &mut SessionHandle<()>,
        node: &str,
        reply_to: &str,
        endpoint: &Endpoint,
    ) -> Result<Pair> {
        let what = format!("attaching to {node}");
        // The link answers come on first, as the SDKs attach them.
        let receiver = fe2o3_amqp::Receiver::builder()
            .name(format!("{node}-receiver"))
            .source(node)
            .target(reply_to)
            .credit_mode(CreditMode::Auto(10))
            .attach(session)
            .await
            .map_err(|e| unavailable(endpoint, &what, e))?;
        let sender = fe2o3_amqp::Sender::builder()
            .name(format!("{node}-sender"))
            .target(node)
            .sender_settle_mode(SenderSettleMode::Unsettled)
            .receiver_settle_mode(ReceiverSettleMode::First)
            .attach(session)
            .await
            .map_err(|e| unavailable(endpoint, &what, e))?;
        Ok(Pair { sender, receiver })
    }

    async fn close(self) {
        let _ = self.sender.close().await;
        let _ = self.receiver.close().await;
    }
}

/// TLS trusting `roots`, or the web's root certificates.
fn tls_connector(roots: Option<Arc<rustls::RootCertStore>>) -> tokio_rustls::TlsConnector {
    let roots = roots.unwrap_or_else(|| {
        Arc::new(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
    });
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|_| unreachable!("the default provider supports the default versions"))
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn server_name(endpoint: &Endpoint) -> Result<rustls::pki_types::ServerName<'static>> {
    rustls::pki_types::ServerName::try_from(endpoint.host.clone())
        .map_err(|e| HubError::InvalidCall(format!("{endpoint}: {e}")))
}

/// A hub: its connection, and a sender per partition it sent to.
pub struct Hub {
    link: Link,
    senders: HashMap<String, fe2o3_amqp::Sender>,
}

impl Hub {
    /// Connects to `endpoint` for `hub`, trusting `roots` (none: the web's
    /// roots) with TLS.
    pub(super) async fn open(
        endpoint: &Endpoint,
        roots: Option<Arc<rustls::RootCertStore>>,
        hub: &str,
        credentials: &Credentials,
    ) -> Result<Hub> {
        if hub.is_empty() || hub.contains('/') {
            return Err(HubError::InvalidCall(format!("{hub:?} is not a hub name")));
        }
        Ok(Hub {
            link: Link::open(endpoint, roots, hub, credentials).await?,
            senders: HashMap::new(),
        })
    }

    /// The hub's partition ids.
    pub(super) async fn partition_ids(&mut self) -> Result<Vec<String>> {
        let map = self.link.read("com.microsoft:eventhub", None).await?;
        let ids = match map.get("partition_ids") {
            Some(Value::Array(ids)) => &ids.0,
            Some(Value::List(ids)) => ids,
            other => {
                return Err(HubError::Other(format!(
                    "the hub's partition_ids are {other:?}"
                )));
            }
        };
        ids.iter()
            .map(|id| match id {
                Value::String(id) => Ok(id.clone()),
                other => Err(HubError::Other(format!(
                    "a partition id {other:?} is not a string"
                ))),
            })
            .collect()
    }

    /// What the service says of `partition`.
    pub(super) async fn partition_properties(
        &mut self,
        partition: &str,
    ) -> Result<PartitionProperties> {
        let map = self
            .link
            .read("com.microsoft:partition", Some(partition))
            .await?;
        let long = |name: &str| match map.get(name) {
            Some(Value::Long(n)) => Ok(*n),
            Some(Value::Int(n)) => Ok(i64::from(*n)),
            Some(Value::Ulong(n)) => {
                i64::try_from(*n).map_err(|_| HubError::Other(format!("{name} {n}")))
            }
            other => Err(HubError::Other(format!(
                "partition {partition}: {name} is {other:?}"
            ))),
        };
        let last_offset = match map.get("last_enqueued_offset") {
            Some(Value::String(offset)) => offset.clone(),
            Some(Value::Long(n)) => n.to_string(),
            _ => "-1".to_owned(),
        };
        let last_enqueued_time = match map.get("last_enqueued_time_utc") {
            Some(Value::Timestamp(t)) => timestamp(t.milliseconds()),
            _ => timestamp(0),
        };
        Ok(PartitionProperties {
            begin_sequence_number: long("begin_sequence_number")?,
            last_sequence_number: long("last_enqueued_sequence_number")?,
            last_offset,
            last_enqueued_time,
            is_empty: matches!(map.get("is_partition_empty"), Some(Value::Bool(true))),
        })
    }

    /// Sends `events` to `partition`, in as few batches as fit.
    pub(super) async fn send(&mut self, partition: &str, events: Vec<EventData>) -> Result<()> {
        self.link.authorize().await?;
        let address = format!("{}/Partitions/{partition}", self.link.hub);
        let what = format!("sending to {address}");
        let endpoint = self.link.endpoint.clone();
        if !self.senders.contains_key(partition) {
            let sender = timed(&endpoint, &what, async {
                fe2o3_amqp::Sender::builder()
                    .name(format!("sender-{partition}"))
                    .target(address.as_str())
                    .sender_settle_mode(SenderSettleMode::Unsettled)
                    .receiver_settle_mode(ReceiverSettleMode::First)
                    .attach(&mut self.link.session)
                    .await
                    .map_err(|e| attach_error(&endpoint, &what, &e))
            })
            .await?;
            self.senders.insert(partition.to_owned(), sender);
        }
        let sender = self
            .senders
            .get_mut(partition)
            .unwrap_or_else(|| unreachable!("inserted above"));
        let limit = sender
            .max_message_size()
            .filter(|&n| n > 0)
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let encoded = events
            .into_iter()
            .map(|event| encode(event).map_err(|e| HubError::InvalidCall(format!("{what}: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        if let Some(large) = encoded
            .iter()
            .find(|e| e.len() + SECTION_OVERHEAD + BATCH_OVERHEAD > limit)
        {
            return Err(HubError::TooLarge(format!(
                "{what}: an event of {} bytes encoded; the service takes messages of {limit} bytes at most",
                large.len()
            )));
        }
        let mut rest = encoded.into_iter().peekable();
        while rest.peek().is_some() {
            let mut size = BATCH_OVERHEAD;
            let mut batch = Vec::new();
            while let Some(next) = rest.next_if(|e| size + e.len() + SECTION_OVERHEAD <= limit) {
                size += next.len() + SECTION_OVERHEAD;
                batch.push(Data(Binary::from(next)));
            }
            let message = Message::builder()
                .data_batch(
                    batch
                        .into_iter()
                        .collect::<fe2o3_amqp::types::messaging::Batch<Data>>(),
                )
                .build();
            let sendable = Sendable::builder()
                .message(message)
                .message_format(BATCH_FORMAT)
                .settled(false)
                .build();
            let outcome = timed(&endpoint, &what, async {
                sender.send(sendable).await.map_err(|e| match e {
                    fe2o3_amqp::link::SendError::MessageSizeExceeded(e) => {
                        HubError::TooLarge(format!("{what}: {e}"))
                    }
                    fe2o3_amqp::link::SendError::Detached(
                        fe2o3_amqp::link::DetachError::RemoteDetachedWithError(error)
                        | fe2o3_amqp::link::DetachError::RemoteClosedWithError(error),
                    ) => from_condition(&error, &what),
                    e => unavailable(&endpoint, &what, e),
                })
            })
            .await;
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(e) => {
                    // The sender is in an unknown state: attach anew next time.
                    self.senders.remove(partition);
                    return Err(e);
                }
            };
            match outcome {
                Outcome::Accepted(_) => {}
                Outcome::Rejected(rejected) => {
                    return Err(match rejected.error {
                        Some(error) => from_condition(&error, &what),
                        None => HubError::Other(format!("{what}: rejected")),
                    });
                }
                other => {
                    return Err(HubError::Unavailable(format!(
                        "{what}: the service answered {other:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    pub(super) async fn close(mut self) {
        for (_, sender) in self.senders.drain() {
            let _ = sender.close().await;
        }
        self.link.close().await;
    }
}

fn attach_error(endpoint: &Endpoint, what: &str, e: &dyn std::fmt::Display) -> HubError {
    // The service refuses an attach by closing the link with an error
    // condition; the attach error shows it in its text.
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("unauthorized") {
        HubError::Refused(format!("{what}: {text}"))
    } else if lower.contains("notfound") || lower.contains("not-found") {
        HubError::NotFound(format!("{what}: {text}"))
    } else {
        unavailable(endpoint, what, text)
    }
}

/// One event as an AMQP message, encoded: a data section, its application
/// properties.
fn encode(event: EventData) -> std::result::Result<Vec<u8>, serde_amqp::Error> {
    let mut properties = ApplicationProperties::builder().build();
    for (name, value) in event.properties {
        properties.0.insert(name, SimpleValue::String(value));
    }
    let message = Message::builder()
        .application_properties(properties)
        .data(Binary::from(event.body))
        .build();
    serde_amqp::to_vec(&Serializable(message))
}

fn timestamp(milliseconds: i64) -> Timestamp {
    Timestamp {
        seconds: milliseconds.div_euclid(1000),
        nanoseconds: u32::try_from(milliseconds.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// A receiver of one partition, on a connection of its own.
pub struct Receiver {
    link: Link,
    receiver: fe2o3_amqp::Receiver,
    address: String,
}

impl Receiver {
    /// Attaches to `consumer_group`'s `partition` of `hub`'s hub, from
    /// `start`; messages larger than `max_message_size` are refused.
    pub(super) async fn open(
        hub: &Hub,
        consumer_group: &str,
        partition: &str,
        start: Start,
        max_message_size: u64,
    ) -> Result<Receiver> {
        let of = &hub.link;
        let mut link = Link::open(&of.endpoint, of.roots.clone(), &of.hub, &of.credentials).await?;
        let address = format!(
            "{}/ConsumerGroups/{consumer_group}/Partitions/{partition}",
            of.hub
        );
        let selector = match start {
            Start::Earliest => "amqp.annotation.x-opt-offset > '-1'".to_owned(),
            Start::Latest => "amqp.annotation.x-opt-offset > '@latest'".to_owned(),
            Start::AtSequence(n) => format!("amqp.annotation.x-opt-sequence-number >= '{n}'"),
            Start::AfterSequence(n) => format!("amqp.annotation.x-opt-sequence-number > '{n}'"),
        };
        let source = Source::builder()
            .address(address.as_str())
            .add_to_filter(
                Symbol::from(SELECTOR_FILTER),
                Described {
                    descriptor: Descriptor::Name(Symbol::from(SELECTOR_FILTER)),
                    value: Value::String(selector),
                },
            )
            .build();
        let what = format!("receiving from {address}");
        let endpoint = link.endpoint.clone();
        let receiver = timed(&endpoint, &what, async {
            fe2o3_amqp::Receiver::builder()
                .name(format!("receiver-{partition}"))
                .source(source)
                .target(Target::builder().address("hermes-wasm").build())
                .sender_settle_mode(SenderSettleMode::Settled)
                .receiver_settle_mode(ReceiverSettleMode::First)
                .max_message_size(max_message_size)
                .credit_mode(CreditMode::Auto(PREFETCH))
                .attach(&mut link.session)
                .await
                .map_err(|e| attach_error(&endpoint, &what, &e))
        })
        .await?;
        Ok(Receiver {
            link,
            receiver,
            address,
        })
    }

    /// Up to `max` events: those here now, or the first to come within
    /// `wait`; at most about `budget` bytes of bodies.
    pub(super) async fn receive(
        &mut self,
        max: u32,
        wait: Duration,
        budget: usize,
    ) -> Result<Vec<ReceivedEvent>> {
        self.link.authorize().await?;
        let mut events = Vec::new();
        let mut held = 0;
        while events.len() < max as usize && held < budget {
            let waiting = if events.is_empty() {
                wait
            } else {
                Duration::ZERO
            };
            let delivery =
                match tokio::time::timeout(waiting, self.receiver.recv::<Body<Value>>()).await {
                    Err(_) => break,
                    Ok(Ok(delivery)) => delivery,
                    Ok(Err(e)) => {
                        let what = format!("receiving from {}", self.address);
                        return Err(match e {
                            fe2o3_amqp::link::RecvError::MessageSizeExceeded(e) => {
                                HubError::TooLarge(format!("{what}: {e}"))
                            }
                            fe2o3_amqp::link::RecvError::LinkStateError(
                                fe2o3_amqp::link::LinkStateError::RemoteDetachedWithError(error)
                                | fe2o3_amqp::link::LinkStateError::RemoteClosedWithError(error),
                            ) => from_condition(&error, &what),
                            e => unavailable(&self.link.endpoint, &what, e),
                        });
                    }
                };
            let event = received(delivery.into_message())
                .map_err(|why| HubError::Other(format!("{}: {why}", self.address)))?;
            held += event.body.len();
            events.push(event);
        }
        Ok(events)
    }

    pub(super) async fn close(self) {
        let _ = self.receiver.close().await;
        self.link.close().await;
    }
}

/// An event as the service delivers it.
fn received(message: Message<Body<Value>>) -> std::result::Result<ReceivedEvent, String> {
    let annotation = |name: &str| {
        message.message_annotations.as_ref().and_then(|a| {
            a.0.iter().find_map(|(k, v)| match k {
                OwnedKey::Symbol(k) if k.as_str() == name => Some(v),
                _ => None,
            })
        })
    };
    let sequence_number = match annotation("x-opt-sequence-number") {
        Some(Value::Long(n)) => *n,
        Some(Value::Int(n)) => i64::from(*n),
        other => return Err(format!("an event whose x-opt-sequence-number is {other:?}")),
    };
    let offset = match annotation("x-opt-offset") {
        Some(Value::String(offset)) => offset.clone(),
        Some(Value::Long(n)) => n.to_string(),
        _ => String::new(),
    };
    let enqueued_time = match annotation("x-opt-enqueued-time") {
        Some(Value::Timestamp(t)) => timestamp(t.milliseconds()),
        _ => timestamp(0),
    };
    let partition_key = match annotation("x-opt-partition-key") {
        Some(Value::String(key)) => Some(key.clone()),
        _ => None,
    };
    let properties = message
        .application_properties
        .as_ref()
        .map(|p| p.0.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default();
    let body = match message.body {
        Body::Data(sections) => sections.into_iter().flat_map(|d| d.0.into_vec()).collect(),
        Body::Value(value) => match value.0 {
            Value::Binary(bytes) => bytes.into_vec(),
            Value::String(text) => text.into_bytes(),
            other => return Err(format!("event {sequence_number}: a body {other:?}")),
        },
        Body::Empty => Vec::new(),
        _ => return Err(format!("event {sequence_number}: a body that is not data")),
    };
    Ok(ReceivedEvent {
        sequence_number,
        offset,
        enqueued_time,
        partition_key,
        body,
        properties,
    })
}

/// An application property's value as text.
fn text(value: &SimpleValue) -> String {
    match value {
        SimpleValue::String(s) => s.clone(),
        SimpleValue::Symbol(s) => s.as_str().to_owned(),
        SimpleValue::Bool(b) => b.to_string(),
        other => integer(other).map_or_else(|| format!("{other:?}"), |n| n.to_string()),
    }
}
