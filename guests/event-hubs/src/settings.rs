use hermes_guest::BusError;
use hermes_guest::event_hubs::Credentials;
use schemars::JsonSchema;
use serde::Deserialize;

/// Settings of the Event Hubs bus, for both roles. A producer ignores
/// `consumer_group`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The connection string the Azure portal (or `hermes-wasm serve`)
    /// gives: `Endpoint=sb://HOST[:PORT]/;SharedAccessKeyName=NAME;SharedAccessKey=KEY`,
    /// with `;EntityPath=HUB` or `eventhub` below, and
    /// `;UseDevelopmentEmulator=true` for plain AMQP (`hermes-wasm serve`
    /// without TLS). The operator must allow the endpoint: `--allow-amqp
    /// amqps://HOST[:PORT]`, or `amqp://HOST:PORT` with the emulator flag.
    #[schemars(length(min = 1))]
    pub connection_string: String,

    /// The hub; default: the connection string's `EntityPath`.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub eventhub: Option<String>,

    /// The partition that holds this bus.
    #[serde(default = "first_partition")]
    #[schemars(length(min = 1))]
    pub partition: String,

    /// The consumer group a consumer reads with.
    #[serde(default = "default_group")]
    #[schemars(length(min = 1))]
    pub consumer_group: String,
}

fn first_partition() -> String {
    "0".into()
}

fn default_group() -> String {
    "$Default".into()
}

/// What a connection needs, read from the settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The endpoint's URL for the host: `amqps://HOST[:PORT]`, or
    /// `amqp://HOST:PORT` (5672 by default) with `UseDevelopmentEmulator`.
    pub endpoint: String,
    /// The hub.
    pub hub: String,
    /// The policy and its key.
    pub credentials: Credentials,
}

impl Settings {
    /// The endpoint, the hub and the credentials; an error names what is
    /// missing or wrong.
    pub fn target(&self) -> Result<Target, BusError> {
        let invalid =
            |what: String| BusError::InvalidSettings(format!("connection_string: {what}"));
        let (mut endpoint, mut key_name, mut key, mut entity, mut emulator) =
            (None, None, None, None, false);
        for field in self.connection_string.split(';') {
            let field = field.trim();
            if field.is_empty() {
                continue;
            }
            let (name, value) = field
                .split_once('=')
                .ok_or_else(|| invalid(format!("{field:?} is not NAME=VALUE")))?;
            match name.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value.trim()),
                "sharedaccesskeyname" => key_name = Some(value.trim()),
                "sharedaccesskey" => key = Some(value.trim()),
                "entitypath" => entity = Some(value.trim()),
                "usedevelopmentemulator" => emulator = value.trim().eq_ignore_ascii_case("true"),
                "sharedaccesssignature" => {
                    return Err(invalid(
                        "SharedAccessSignature is not supported: give SharedAccessKeyName and SharedAccessKey".into(),
                    ));
                }
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or_else(|| invalid("no Endpoint".into()))?;
        let authority = endpoint
            .strip_prefix("sb://")
            .ok_or_else(|| {
                invalid(format!(
                    "the Endpoint {endpoint:?} does not start with sb://"
                ))
            })?
            .trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(invalid(format!(
                "the Endpoint {endpoint:?} is not sb://HOST[:PORT]/"
            )));
        }
        let endpoint = if emulator {
            let has_port = authority
                .rsplit_once(':')
                .is_some_and(|(_, port)| !port.contains(']'));
            match has_port {
                true => format!("amqp://{authority}"),
                false => format!("amqp://{authority}:5672"),
            }
        } else {
            format!("amqps://{authority}")
        };
        let hub = match (&self.eventhub, entity) {
            (Some(hub), Some(entity)) if !hub.eq_ignore_ascii_case(entity) => {
                return Err(BusError::InvalidSettings(format!(
                    "eventhub: {hub:?}, but the connection string's EntityPath is {entity:?}"
                )));
            }
            (Some(hub), _) => hub.clone(),
            (None, Some(entity)) => entity.to_owned(),
            (None, None) => {
                return Err(BusError::InvalidSettings(
                    "eventhub: no hub, and no EntityPath in the connection string".into(),
                ));
            }
        };
        Ok(Target {
            endpoint,
            hub,
            credentials: Credentials {
                key_name: key_name
                    .ok_or_else(|| invalid("no SharedAccessKeyName".into()))?
                    .to_owned(),
                key: key
                    .ok_or_else(|| invalid("no SharedAccessKey".into()))?
                    .to_owned(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(connection_string: &str, eventhub: Option<&str>) -> Settings {
        Settings {
            connection_string: connection_string.into(),
            eventhub: eventhub.map(str::to_owned),
            partition: first_partition(),
            consumer_group: default_group(),
        }
    }

    #[test]
    fn a_connection_string_gives_the_endpoint_the_hub_and_the_key() {
        let target = settings(
            "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=a2V5=;EntityPath=hub1",
            None,
        )
        .target()
        .expect("valid");
        assert_eq!(
            target,
            Target {
                endpoint: "amqps://example.servicebus.windows.net".into(),
                hub: "hub1".into(),
                credentials: Credentials {
                    key_name: "send".into(),
                    key: "a2V5=".into()
                },
            }
        );
        let local = settings(
            "Endpoint=sb://127.0.0.1:41000;SharedAccessKeyName=both;SharedAccessKey=k;UseDevelopmentEmulator=true",
            Some("hub1"),
        )
        .target()
        .expect("valid");
        assert_eq!(local.endpoint, "amqp://127.0.0.1:41000");
        let default_port = settings(
            "Endpoint=sb://localhost;SharedAccessKeyName=both;SharedAccessKey=k;UseDevelopmentEmulator=true;EntityPath=h",
            None,
        )
        .target()
        .expect("valid");
        assert_eq!(default_port.endpoint, "amqp://localhost:5672");
    }

    #[test]
    fn what_is_missing_or_wrong_is_named() {
        for (text, hub, says) in [
            (
                "SharedAccessKeyName=a;SharedAccessKey=b;EntityPath=h",
                None,
                "no Endpoint",
            ),
            (
                "Endpoint=https://x;SharedAccessKeyName=a;SharedAccessKey=b;EntityPath=h",
                None,
                "does not start with sb://",
            ),
            (
                "Endpoint=sb://x;SharedAccessKey=b;EntityPath=h",
                None,
                "no SharedAccessKeyName",
            ),
            (
                "Endpoint=sb://x;SharedAccessKeyName=a;EntityPath=h",
                None,
                "no SharedAccessKey",
            ),
            (
                "Endpoint=sb://x;SharedAccessKeyName=a;SharedAccessKey=b",
                None,
                "no hub",
            ),
            (
                "Endpoint=sb://x;SharedAccessKeyName=a;SharedAccessKey=b;EntityPath=h",
                Some("g"),
                "EntityPath is \"h\"",
            ),
            (
                "Endpoint=sb://x;garbage",
                None,
                "\"garbage\" is not NAME=VALUE",
            ),
            (
                "Endpoint=sb://x/path;SharedAccessKeyName=a;SharedAccessKey=b;EntityPath=h",
                None,
                "is not sb://HOST",
            ),
        ] {
            let error = settings(text, hub).target().expect_err(text);
            let BusError::InvalidSettings(message) = &error else {
                panic!("{text}: {error:?}");
            };
            assert!(message.contains(says), "{text}: {message}");
        }
    }
}
