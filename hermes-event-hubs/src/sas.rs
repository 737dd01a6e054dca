//! Shared access signatures, checked as Event Hubs checks them.
//!
//! A client proves it holds a policy's key with a token it signs itself
//! (its form and signature: `hermes_host::capabilities::event_hubs::sas`).
//! The token then grants the policy's rights on the resource and everything
//! under it (a namespace's token covers its hubs, a hub's its partitions)
//! until it expires.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use hermes_host::capabilities::event_hubs::sas;
use hmac::Mac;

/// What a policy lets its tokens do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Right {
    /// Send events.
    Send,
    /// Receive events, and read a hub's and its partitions' properties.
    Listen,
    /// Everything (it implies the other two, as in Event Hubs).
    Manage,
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Right::Send => "Send",
            Right::Listen => "Listen",
            Right::Manage => "Manage",
        })
    }
}

/// A shared access policy: a key and the rights of the tokens it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The key, as the connection string holds it.
    pub key: String,
    /// What its tokens may do.
    pub rights: Vec<Right>,
}

/// Why a token or a use of it is refused, in the words Event Hubs uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The token cannot be read.
    Malformed(String),
    /// No policy of that name.
    UnknownPolicy(String),
    /// The signature is not the policy key's.
    BadSignature,
    /// The token expired (Unix seconds).
    Expired(u64),
    /// The token is for another resource.
    WrongAudience {
        /// The token's resource.
        token: String,
        /// What it was used for.
        audience: String,
    },
    /// The policy lacks the right.
    Missing(Right),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(what) => write!(f, "InvalidToken: {what}"),
            Refusal::UnknownPolicy(name) => {
                write!(
                    f,
                    "InvalidSignature: no shared access policy named '{name}'"
                )
            }
            Refusal::BadSignature => {
                f.write_str("InvalidSignature: the token has an invalid signature")
            }
            Refusal::Expired(at) => {
                write!(f, "ExpiredToken: the token expired at {at} (Unix time)")
            }
            Refusal::WrongAudience { token, audience } => write!(
                f,
                "InvalidAudience: the token is for '{token}', not '{audience}'"
            ),
            Refusal::Missing(right) => write!(
                f,
                "Unauthorized access. '{right}' claim(s) are required to perform this operation"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// What a verified token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The resource, decoded: `sb://host[:port]/hub`.
    pub resource: String,
    /// When it expires, in Unix seconds.
    pub expiry: u64,
    /// The policy's rights.
    pub rights: Vec<Right>,
}

/// The endpoint's policies, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policies(pub BTreeMap<String, Policy>);

impl Policies {
    /// Checks `token` at `now` (Unix seconds): its form, its policy, its
    /// signature, its expiry.
    pub fn verify(&self, token: &str, now: u64) -> Result<Grant, Refusal> {
        let fields = token
            .strip_prefix("SharedAccessSignature ")
            .ok_or_else(|| {
                Refusal::Malformed("it does not start with 'SharedAccessSignature '".into())
            })?;
        let mut sr = None;
        let (mut sig, mut se, mut skn) = (None, None, None);
        for field in fields.split('&') {
            let (name, value) = field
                .split_once('=')
                .ok_or_else(|| Refusal::Malformed(format!("'{field}' is not name=value")))?;
            let slot = match name {
                "sr" => &mut sr,
                "sig" => &mut sig,
                "se" => &mut se,
                "skn" => &mut skn,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(Refusal::Malformed(format!("'{name}' appears twice")));
            }
        }
        let missing = |name: &str| Refusal::Malformed(format!("no '{name}'"));
        let sr = sr.ok_or_else(|| missing("sr"))?;
        let se = se.ok_or_else(|| missing("se"))?;
        let sig = decode(sig.ok_or_else(|| missing("sig"))?)?;
        let skn = decode(skn.ok_or_else(|| missing("skn"))?)?;
        let expiry: u64 = se
            .parse()
            .map_err(|_| Refusal::Malformed(format!("se '{se}' is not a time")))?;
        let policy = self
            .0
            .get(&skn)
            .ok_or_else(|| Refusal::UnknownPolicy(skn.clone()))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(sig.as_bytes())
            .map_err(|_| Refusal::BadSignature)?;
        sas::mac(&policy.key, sr, se)
            .verify_slice(&signature)
            .map_err(|_| Refusal::BadSignature)?;
        if expiry <= now {
            return Err(Refusal::Expired(expiry));
        }
        Ok(Grant {
            resource: decode(sr)?,
            expiry,
            rights: policy.rights.clone(),
        })
    }
}

impl Grant {
    /// Whether the grant lets its holder use `right` on `audience`: see
    /// [`Grant::covers`] and [`Grant::has`].
    pub fn allows(&self, audience: &str, right: Right) -> Result<(), Refusal> {
        self.covers(audience)?;
        self.has(right)
    }

    /// Whether the token's resource is `audience` (a resource URI as the
    /// SDKs name it: any scheme, the port optional) or a parent of it.
    pub fn covers(&self, audience: &str) -> Result<(), Refusal> {
        let (host, path) = split(&self.resource);
        let (their_host, their_path) = split(audience);
        let covered = host.eq_ignore_ascii_case(their_host)
            && path.len() <= their_path.len()
            && path
                .iter()
                .zip(&their_path)
                .all(|(a, b)| a.eq_ignore_ascii_case(b));
        if covered {
            Ok(())
        } else {
            Err(Refusal::WrongAudience {
                token: self.resource.clone(),
                audience: audience.to_owned(),
            })
        }
    }

    /// Whether the policy has `right` (`Manage` has them all).
    pub fn has(&self, right: Right) -> Result<(), Refusal> {
        if self.rights.contains(&right) || self.rights.contains(&Right::Manage) {
            Ok(())
        } else {
            Err(Refusal::Missing(right))
        }
    }

    /// The entity path `path` (`hub1`, `hub1/Partitions/0`) on the token's
    /// own host, as an audience.
    pub fn audience_of(&self, path: &str) -> String {
        let (host, _) = split(&self.resource);
        format!("sb://{host}/{}", path.trim_start_matches('/'))
    }
}

/// A resource URI's host (without port) and path segments.
fn split(uri: &str) -> (&str, Vec<&str>) {
    let rest = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    (host, path.split('/').filter(|s| !s.is_empty()).collect())
}

/// A URL-encoded value (`+` for a space, as Python's `quote_plus` writes).
fn decode(value: &str) -> Result<String, Refusal> {
    let spaced = value.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Refusal::Malformed(format!("'{value}' is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by the Python SDK itself (azure-eventhub 5.15.1,
    /// `_pyamqp.utils.generate_sas_token("sb://127.0.0.1:5672/hub1",
    /// "sender", KEY, 2000000000)`).
    const TOKEN: &str = "SharedAccessSignature sr=sb%3A%2F%2F127.0.0.1%3A5672%2Fhub1\
        &sig=Dq9dVmi1m4owclQT7y2lcV4C47t0kPOMKlQiUDm919A%3D&se=2000000000&skn=sender";
    /// The same, expiring at 1000.
    const EXPIRED: &str = "SharedAccessSignature sr=sb%3A%2F%2F127.0.0.1%3A5672%2Fhub1\
        &sig=Lhgeu6xKloB6DqI4EgB8lrMoURdhE4RfTOxs4BxXpjc%3D&se=1000&skn=sender";
    const KEY: &str = "c2VjcmV0LWtleQ==";
    const NOW: u64 = 1_800_000_000;

    fn policies(key: &str, rights: &[Right]) -> Policies {
        Policies(BTreeMap::from([(
            "sender".to_owned(),
            Policy {
                key: key.to_owned(),
                rights: rights.to_vec(),
            },
        )]))
    }

    #[test]
    fn the_sdks_token_is_verified_and_grants_its_hub() {
        let grant = policies(KEY, &[Right::Send])
            .verify(TOKEN, NOW)
            .expect("verified");
        assert_eq!(grant.resource, "sb://127.0.0.1:5672/hub1");
        assert_eq!(grant.expiry, 2_000_000_000);
        // The hub and its partitions, named as either SDK names them.
        for audience in [
            "sb://127.0.0.1:5672/hub1",
            "amqps://127.0.0.1/hub1/Partitions/0",
            "amqp://127.0.0.1:5672/HUB1/ConsumerGroups/$Default/Partitions/3",
        ] {
            assert_eq!(grant.allows(audience, Right::Send), Ok(()), "{audience}");
        }
        assert_eq!(
            grant.allows("sb://127.0.0.1:5672/hub1", Right::Listen),
            Err(Refusal::Missing(Right::Listen))
        );
        for other in [
            "sb://127.0.0.1:5672/hub2",
            "sb://10.0.0.1:5672/hub1",
            "sb://127.0.0.1/",
        ] {
            assert!(
                matches!(
                    grant.allows(other, Right::Send),
                    Err(Refusal::WrongAudience { .. })
                ),
                "{other}"
            );
        }
        // Manage implies the others.
        let manager = policies(KEY, &[Right::Manage])
            .verify(TOKEN, NOW)
            .expect("verified");
        assert_eq!(manager.allows("sb://127.0.0.1/hub1", Right::Listen), Ok(()));
    }

    #[test]
    fn a_wrong_key_an_unknown_policy_or_an_expired_token_is_refused() {
        assert_eq!(
            policies("another-key", &[Right::Send]).verify(TOKEN, NOW),
            Err(Refusal::BadSignature)
        );
        let mut other = policies(KEY, &[Right::Send]);
        let policy = other.0.remove("sender").expect("the policy");
        other.0.insert("listener".into(), policy);
        assert_eq!(
            other.verify(TOKEN, NOW),
            Err(Refusal::UnknownPolicy("sender".into()))
        );
        assert_eq!(
            policies(KEY, &[Right::Send]).verify(EXPIRED, NOW),
            Err(Refusal::Expired(1000))
        );
        // A token changed after signing: another resource, a later expiry.
        let ok = policies(KEY, &[Right::Send]);
        for forged in [
            TOKEN.replace("hub1", "hub2"),
            TOKEN.replace("se=2000000000", "se=2000000001"),
        ] {
            assert_eq!(
                ok.verify(&forged, NOW),
                Err(Refusal::BadSignature),
                "{forged}"
            );
        }
    }

    #[test]
    fn malformed_tokens_are_refused_with_what_is_wrong() {
        let ok = policies(KEY, &[Right::Send]);
        for (token, says) in [
            ("Bearer abc", "does not start with"),
            ("SharedAccessSignature sr=a&se=1&skn=sender", "no 'sig'"),
            (
                "SharedAccessSignature sr=a&sig=b&se=soon&skn=sender",
                "se 'soon'",
            ),
            (
                "SharedAccessSignature sr=a&sr=b&sig=c&se=1&skn=s",
                "'sr' appears twice",
            ),
            ("SharedAccessSignature sr", "'sr' is not name=value"),
        ] {
            let refusal = ok.verify(token, NOW).expect_err(token);
            assert!(refusal.to_string().contains(says), "{token}: {refusal}");
        }
        assert_eq!(
            ok.verify("SharedAccessSignature sr=a&sig=%%%&se=1&skn=sender", NOW),
            Err(Refusal::BadSignature)
        );
    }
}
