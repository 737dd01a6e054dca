//! The Redis servers an operator allows, as `--allow-redis` and
//! `allow_redis` give them, and how a plugin's URL is matched against them.

use std::collections::BTreeSet;
use std::fmt;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use super::commands;

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
    pub(super) extra: BTreeSet<String>,
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

    pub(super) fn allows(&self, info: &ConnectionInfo) -> bool {
        self.addr == normalize(info.addr())
            && self.db.is_none_or(|db| db == info.redis_settings().db())
    }
}

impl fmt::Display for RedisAllow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

pub(super) fn parse_url(url: &str) -> Result<ConnectionInfo, String> {
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
pub(super) fn redact(url: &str) -> String {
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
