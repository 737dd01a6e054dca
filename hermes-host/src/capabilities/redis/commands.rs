//! Which Redis commands a plugin may send. A bus needs streams, keys and
//! the common data types, transactions and a health check, inside the
//! database it was granted; nothing that leaves that database, reaches
//! another host, changes the server, or runs code on it.

use std::collections::BTreeSet;

/// The commands every plugin may send: what a message bus needs.
#[rustfmt::skip]
pub const ALLOWED: &[&str] = &[
    // Connection health.
    "PING", "ECHO",
    // Transactions.
    "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH",
    // Streams.
    "XADD", "XRANGE", "XREVRANGE", "XREAD", "XREADGROUP", "XLEN", "XTRIM", "XDEL",
    "XGROUP", "XACK", "XPENDING", "XCLAIM", "XAUTOCLAIM", "XINFO", "XSETID",
    // Keys and strings.
    "GET", "SET", "SETNX", "MGET", "MSET", "GETDEL", "GETEX", "DEL", "UNLINK", "EXISTS",
    "TYPE", "RENAME", "RENAMENX", "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "TTL",
    "PTTL", "PERSIST", "INCR", "INCRBY", "DECR", "DECRBY", "INCRBYFLOAT", "APPEND",
    "STRLEN", "SCAN",
    // Hashes.
    "HSET", "HSETNX", "HGET", "HMGET", "HGETALL", "HDEL", "HEXISTS", "HLEN", "HKEYS",
    "HVALS", "HINCRBY", "HSCAN",
    // Lists.
    "LPUSH", "RPUSH", "LPOP", "RPOP", "LRANGE", "LLEN", "LTRIM", "LINDEX", "LMOVE",
    "BLPOP", "BRPOP", "BLMOVE",
    // Sets and sorted sets.
    "SADD", "SREM", "SMEMBERS", "SISMEMBER", "SCARD", "SSCAN", "ZADD", "ZREM", "ZRANGE",
    "ZRANGEBYSCORE", "ZREVRANGE", "ZCARD", "ZSCORE", "ZINCRBY", "ZRANK", "ZSCAN",
];

/// Commands no grant can allow, because they break the sandbox itself:
/// they leave the granted database (`SELECT`, `SWAPDB`, `MOVE`, `COPY ..
/// DB`, `FLUSHALL`), reach other hosts (`MIGRATE`, `REPLICAOF`), change the
/// server or its files (`CONFIG`, `SAVE`, `MODULE`, `DEBUG`, `SHUTDOWN`),
/// change who the connection is (`AUTH`, `HELLO`, `ACL`, `RESET`, `CLIENT`),
/// or turn the connection into something else (`MONITOR`, `SUBSCRIBE`).
#[rustfmt::skip]
pub const NEVER: &[&str] = &[
    "SELECT", "SWAPDB", "MOVE", "COPY", "FLUSHALL", "MIGRATE", "REPLICAOF", "SLAVEOF",
    "FAILOVER", "CLUSTER", "CONFIG", "SAVE", "BGSAVE", "BGREWRITEAOF", "MODULE", "DEBUG",
    "SHUTDOWN", "ACL", "AUTH", "HELLO", "RESET", "CLIENT", "MONITOR", "SYNC", "PSYNC",
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
    "QUIT",
];

/// A command's name as Redis reads it: case-insensitive.
pub fn name(first: &[u8]) -> String {
    String::from_utf8_lossy(first).to_ascii_uppercase()
}

/// Checks the extra commands an operator allows for one server: refused if
/// one of them can never be allowed.
pub fn check_extra(extra: &BTreeSet<String>) -> Result<(), String> {
    match extra.iter().find(|c| NEVER.contains(&c.as_str())) {
        Some(command) => Err(format!(
            "the Redis command {command} cannot be allowed: it would let a plugin out of its grant"
        )),
        None => Ok(()),
    }
}

/// Whether `command` may be sent, given the server's extra commands.
pub fn allowed(command: &str, extra: &BTreeSet<String>) -> bool {
    !NEVER.contains(&command) && (ALLOWED.contains(&command) || extra.contains(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_do_not_overlap_and_extras_never_open_the_never_list() {
        for command in NEVER {
            assert!(!ALLOWED.contains(command), "{command}");
        }
        let extra: BTreeSet<String> = ["EVAL".to_owned()].into();
        assert!(allowed("XADD", &BTreeSet::new()));
        assert!(!allowed("EVAL", &BTreeSet::new()));
        assert!(allowed("EVAL", &extra));
        assert!(!allowed("SELECT", &["SELECT".to_owned()].into()));
        assert!(check_extra(&extra).is_ok());
        assert!(check_extra(&["CONFIG".to_owned()].into()).is_err());
        assert_eq!(name(b"xAdd"), "XADD");
    }
}
