//! Where a receiver starts: the selector filter the SDKs put on a receiving
//! link (`apache.org:selector-filter:string`), such as
//! `amqp.annotation.x-opt-offset > '-1'`.
//!
//! The SDKs write one comparison, `>` or `>=` (inclusive), on the offset
//! (`-1` for the partition's start, `@latest` for after its last event, or
//! an offset the endpoint gave, passed back verbatim), the sequence number,
//! or the enqueued time in milliseconds since the Unix epoch.

use std::fmt;

/// What a position is measured in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The partition's first event (`x-opt-offset > '-1'`).
    Beginning,
    /// After the partition's last event, when the link attaches
    /// (`x-opt-offset > '@latest'`).
    Latest,
    /// An offset the endpoint gave, verbatim.
    Offset(String),
    /// A sequence number.
    SequenceNumber(i64),
    /// An enqueued time, in milliseconds since the Unix epoch.
    EnqueuedTime(i64),
}

/// A receiver's starting position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Where.
    pub start: Start,
    /// Whether the event at `start` itself is included (`>=`), or only
    /// those after it (`>`). Meaningless for [`Start::Beginning`] and
    /// [`Start::Latest`].
    pub inclusive: bool,
}

/// A selector the endpoint cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSelector(String);

impl fmt::Display for BadSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported selector filter: {}", self.0)
    }
}

impl std::error::Error for BadSelector {}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.inclusive { ">=" } else { ">" };
        match &self.start {
            Start::Beginning => f.write_str("the partition's start"),
            Start::Latest => f.write_str("the partition's end"),
            Start::Offset(offset) => write!(f, "offset {op} {offset}"),
            Start::SequenceNumber(n) => write!(f, "sequence number {op} {n}"),
            Start::EnqueuedTime(t) => write!(f, "enqueued time {op} {t} ms"),
        }
    }
}

impl Position {
    /// The position a selector names.
    pub fn parse(selector: &str) -> Result<Position, BadSelector> {
        let bad = |why: &str| BadSelector(format!("{why}: `{selector}`"));
        let rest = selector
            .trim()
            .strip_prefix("amqp.annotation.")
            .ok_or_else(|| bad("not an annotation comparison"))?;
        let (name, rest) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("no comparison"))?;
        let rest = rest.trim_start();
        let (inclusive, rest) = match rest.strip_prefix(">=") {
            Some(rest) => (true, rest),
            None => (
                false,
                rest.strip_prefix('>')
                    .ok_or_else(|| bad("the comparison is not > or >="))?,
            ),
        };
        let value = rest
            .trim()
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .filter(|v| !v.contains('\''))
            .ok_or_else(|| bad("the value is not one quoted string"))?;
        let number = || {
            value
                .parse::<i64>()
                .map_err(|_| bad("the value is not an integer"))
        };
        let start = match name {
            "x-opt-offset" => match value {
                "-1" => Start::Beginning,
                "@latest" => Start::Latest,
                "" => return Err(bad("the offset is empty")),
                offset => Start::Offset(offset.to_owned()),
            },
            "x-opt-sequence-number" => Start::SequenceNumber(number()?),
            "x-opt-enqueued-time" => Start::EnqueuedTime(number()?),
            _ => return Err(bad("not an offset, a sequence number or an enqueued time")),
        };
        Ok(Position { start, inclusive })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Start, inclusive: bool) -> Position {
        Position { start, inclusive }
    }

    #[test]
    fn the_selectors_the_sdks_write_are_read() {
        for (selector, position) in [
            (
                "amqp.annotation.x-opt-offset > '-1'",
                at(Start::Beginning, false),
            ),
            (
                "amqp.annotation.x-opt-offset > '@latest'",
                at(Start::Latest, false),
            ),
            (
                "amqp.annotation.x-opt-offset > '4096'",
                at(Start::Offset("4096".into()), false),
            ),
            (
                "amqp.annotation.x-opt-offset >= '1700000000000-0'",
                at(Start::Offset("1700000000000-0".into()), true),
            ),
            (
                "amqp.annotation.x-opt-sequence-number >= '42'",
                at(Start::SequenceNumber(42), true),
            ),
            (
                "amqp.annotation.x-opt-enqueued-time > '1700000000123'",
                at(Start::EnqueuedTime(1_700_000_000_123), false),
            ),
        ] {
            assert_eq!(Position::parse(selector), Ok(position), "{selector}");
        }
    }

    #[test]
    fn a_position_reads_as_people_say_it() {
        for (selector, said) in [
            (
                "amqp.annotation.x-opt-offset > '-1'",
                "the partition's start",
            ),
            (
                "amqp.annotation.x-opt-offset > '@latest'",
                "the partition's end",
            ),
            ("amqp.annotation.x-opt-offset >= '12'", "offset >= 12"),
            (
                "amqp.annotation.x-opt-sequence-number > '3'",
                "sequence number > 3",
            ),
            (
                "amqp.annotation.x-opt-enqueued-time >= '5'",
                "enqueued time >= 5 ms",
            ),
        ] {
            let position = Position::parse(selector).expect(selector);
            assert_eq!(position.to_string(), said);
        }
    }

    #[test]
    fn anything_else_is_refused_naming_what_is_wrong() {
        for (selector, says) in [
            ("x-opt-offset > '1'", "not an annotation comparison"),
            ("amqp.annotation.x-opt-offset", "no comparison"),
            ("amqp.annotation.x-opt-offset < '1'", "not > or >="),
            ("amqp.annotation.x-opt-offset > 1", "not one quoted string"),
            (
                "amqp.annotation.x-opt-offset > 'a'b'",
                "not one quoted string",
            ),
            ("amqp.annotation.x-opt-offset > ''", "the offset is empty"),
            (
                "amqp.annotation.x-opt-sequence-number > 'ten'",
                "not an integer",
            ),
            ("amqp.annotation.x-opt-partition-key > 'k'", "not an offset"),
        ] {
            let error = Position::parse(selector).expect_err(selector);
            assert!(error.to_string().contains(says), "{selector}: {error}");
            assert!(error.to_string().contains(selector), "{error}");
        }
    }
}
