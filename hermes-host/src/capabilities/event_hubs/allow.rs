//! The Event Hubs endpoints an operator allows, as `--allow-amqp` and
//! `allow_amqp` give them, and how a plugin's endpoint is matched against
//! them.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Where an endpoint listens and how it is spoken to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// TLS (`amqps`, and `sb`, the scheme of connection strings) or plain
    /// AMQP (`amqp`).
    pub tls: bool,
    /// The host name or address, lower case; an IPv6 address without its
    /// brackets.
    pub host: String,
    /// The port: 5671 with TLS, 5672 without, unless the URL names one.
    pub port: u16,
    /// Whether the URL named the port.
    pub explicit_port: bool,
}

impl Endpoint {
    /// Parses `amqps://host[:port]`, `amqp://host[:port]` or
    /// `sb://host[:port]` (a trailing `/` allowed, nothing else after the
    /// authority).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("{url}: not a URL (amqps://host[:port] or amqp://host[:port])")
        })?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "amqps" | "sb" => true,
            "amqp" => false,
            other => {
                return Err(format!(
                    "{url}: the scheme {other:?} is not amqps, amqp or sb"
                ));
            }
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "{url}: only a host and a port may follow the scheme"
            ));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("{url}: an IPv6 address without its closing ]"))?;
                match after {
                    "" => (host, None),
                    _ => match after.strip_prefix(':') {
                        Some(port) => (host, Some(port)),
                        None => return Err(format!("{url}: {after:?} after the address")),
                    },
                }
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let explicit_port = port.is_some();
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{url}: the port {port:?} is not 1 to 65535"))?,
            None if tls => 5671,
            None => 5672,
        };
        Ok(Endpoint {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            explicit_port,
        })
    }

    /// The host and port to connect to.
    pub fn address(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }

    /// The resource a token for `path` names: `sb://host[:port]/path`, the
    /// port only where the URL named it.
    pub fn resource(&self, path: &str) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.explicit_port {
            true => format!("sb://{host}:{}/{path}", self.port),
            false => format!("sb://{host}/{path}"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// An endpoint the operator allows plugins to reach, from an
/// `--allow-amqp` URL. A plugin's endpoint matches when it names the same
/// host (without case), the same port, and TLS the same way. Its TLS
/// certificate is checked against the web's root certificates, or against
/// the operator's own certificate authority for it ([`AmqpAllow::with_ca`]).
#[derive(Debug, Clone)]
pub struct AmqpAllow {
    endpoint: Endpoint,
    pub(super) roots: Option<Arc<RootCertStore>>,
}

impl PartialEq for AmqpAllow {
    fn eq(&self, other: &AmqpAllow) -> bool {
        self.endpoint == other.endpoint && self.roots.is_some() == other.roots.is_some()
    }
}

impl AmqpAllow {
    /// Parses an allowed URL, such as `amqps://example.servicebus.windows.net`
    /// or `amqp://127.0.0.1:5672`.
    pub fn parse(url: &str) -> Result<AmqpAllow, String> {
        Ok(AmqpAllow {
            endpoint: Endpoint::parse(url)?,
            roots: None,
        })
    }

    /// The same endpoint, its certificate checked against the certificates
    /// in the PEM file `ca` (a private certificate authority, or the
    /// endpoint's own certificate) instead of the web's roots.
    pub fn with_ca(mut self, ca: &Path) -> Result<AmqpAllow, String> {
        let at = |e: &dyn fmt::Display| format!("{}: {e}", ca.display());
        let certificates = CertificateDer::pem_file_iter(ca)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| at(&e))?;
        if certificates.is_empty() {
            return Err(at(&"no certificate in the file"));
        }
        let mut roots = RootCertStore::empty();
        for certificate in certificates {
            roots.add(certificate).map_err(|e| at(&e))?;
        }
        self.roots = Some(Arc::new(roots));
        Ok(self)
    }

    pub(super) fn allows(&self, endpoint: &Endpoint) -> bool {
        self.endpoint.tls == endpoint.tls
            && self.endpoint.host == endpoint.host
            && self.endpoint.port == endpoint.port
    }
}

impl fmt::Display for AmqpAllow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.endpoint.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_scheme_a_host_and_a_port() {
        let service = Endpoint::parse("sb://Example.servicebus.windows.net/").expect("valid");
        assert_eq!(
            service,
            Endpoint {
                tls: true,
                host: "example.servicebus.windows.net".into(),
                port: 5671,
                explicit_port: false,
            }
        );
        assert_eq!(
            service.resource("hub1"),
            "sb://example.servicebus.windows.net/hub1"
        );
        let local = Endpoint::parse("amqp://127.0.0.1:40000").expect("valid");
        assert_eq!((local.tls, local.port), (false, 40000));
        assert_eq!(local.resource("hub1"), "sb://127.0.0.1:40000/hub1");
        assert_eq!(local.to_string(), "amqp://127.0.0.1:40000");
        let v6 = Endpoint::parse("amqp://[::1]").expect("valid");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5672));
        assert_eq!(v6.to_string(), "amqp://[::1]:5672");
        for (bad, says) in [
            ("127.0.0.1:5672", "not a URL"),
            ("https://host", "\"https\""),
            ("amqp://host/hub1", "only a host and a port"),
            ("amqp://user@host", "only a host and a port"),
            ("amqp://host:0", "not 1 to 65535"),
            ("amqp://host:http", "not 1 to 65535"),
            ("amqp://:5672", "no host"),
            ("amqp://[::1", "closing ]"),
        ] {
            let error = Endpoint::parse(bad).expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn an_allowed_url_matches_the_same_host_port_and_tls_only() {
        let allow = AmqpAllow::parse("amqp://LOCALHOST:5672").expect("valid");
        assert!(allow.allows(&Endpoint::parse("amqp://localhost").expect("valid")));
        for other in [
            "amqps://localhost:5672",
            "amqp://localhost:5673",
            "amqp://127.0.0.1:5672",
        ] {
            assert!(
                !allow.allows(&Endpoint::parse(other).expect("valid")),
                "{other}"
            );
        }
    }
}
