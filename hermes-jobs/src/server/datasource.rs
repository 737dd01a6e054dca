//! The `sqlite` datasource: a query's rows, read from a database file opened
//! read-only (the server never writes to its sources).
//!
//! As in hermes (Python's `sqlite3` with `PARSE_DECLTYPES`), a column
//! declared `DATETIME`, `DATE` or `TIMESTAMP` holds datetimes: its text is
//! read as an ISO 8601 date and time, kept to the second, any timezone
//! dropped.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hermes_event::Value;
use rusqlite::OpenFlags;
use rusqlite::types::ValueRef;

use super::mapping::Row;

/// A datasource's database file.
#[derive(Debug, Clone)]
pub struct SqliteSource {
    path: PathBuf,
}

impl SqliteSource {
    /// The database at `path`.
    pub fn new(path: &Path) -> SqliteSource {
        SqliteSource {
            path: path.to_path_buf(),
        }
    }

    /// Runs `query` and returns its rows, off the async threads.
    pub async fn fetch(&self, query: String) -> Result<Vec<Row>> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || fetch(&path, &query))
            .await
            .context("the datasource query stopped")?
    }
}

fn fetch(path: &Path, query: &str) -> Result<Vec<Row>> {
    if !path.is_file() {
        anyhow::bail!("datasource {}: no such database file", path.display());
    }
    let db = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("datasource {}", path.display()))?;
    let mut statement = db
        .prepare(query)
        .with_context(|| format!("datasource {}: query `{query}`", path.display()))?;
    let columns: Vec<(String, bool)> = statement
        .columns()
        .map(|c| {
            (
                c.name().to_owned(),
                c.decl_type().is_some_and(holds_datetimes),
            )
        })
        .collect();
    let mut rows = Vec::new();
    let mut cursor = statement.query([])?;
    while let Some(row) = cursor.next()? {
        let mut values = Vec::with_capacity(columns.len());
        for (i, (column, datetimes)) in columns.iter().enumerate() {
            let value = match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                value if *datetimes => {
                    let text = match value {
                        ValueRef::Integer(n) => n.to_string(),
                        ValueRef::Real(x) => x.to_string(),
                        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                            String::from_utf8_lossy(bytes).into_owned()
                        }
                        ValueRef::Null => String::new(),
                    };
                    let at = parse_datetime(&text).with_context(|| {
                        format!(
                            "datasource {}: column `{column}` is declared a date or time, \
                             but holds `{text}`",
                            path.display()
                        )
                    })?;
                    Value::datetime(at)
                }
                ValueRef::Integer(n) => Value::from(n),
                ValueRef::Real(x) => Value::Float(x),
                ValueRef::Text(text) => Value::String(String::from_utf8_lossy(text).into_owned()),
                ValueRef::Blob(bytes) => Value::Bytes(bytes.to_vec()),
            };
            values.push((column.clone(), value));
        }
        rows.push(values);
    }
    Ok(rows)
}

/// Whether a declared type is one Python's `sqlite3` converts to a date or
/// time: its first word, in any case, is `DATETIME`, `DATE` or `TIMESTAMP`.
fn holds_datetimes(decltype: &str) -> bool {
    let word = decltype
        .trim_start()
        .split([' ', '('])
        .next()
        .unwrap_or_default();
    ["DATETIME", "DATE", "TIMESTAMP"]
        .iter()
        .any(|t| word.eq_ignore_ascii_case(t))
}

/// An ISO 8601 date, or date and time (`T` or a space between), with
/// optional seconds, fraction and timezone; the timezone is dropped, as
/// hermes drops it.
fn parse_datetime(text: &str) -> Result<chrono::NaiveDateTime> {
    use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
    let text = text.trim();
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("not a date (YYYY-MM-DD)"))?;
    let Some(time) = time else {
        return Ok(date.and_time(NaiveTime::MIN));
    };
    // The timezone: `Z`, or a sign and an offset, after the time.
    let time = time.strip_suffix(['Z', 'z']).unwrap_or(time);
    let time = match time.rfind(['+', '-']) {
        Some(at) => &time[..at],
        None => time,
    };
    let time = ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"]
        .iter()
        .find_map(|format| NaiveTime::parse_from_str(time, format).ok())
        .ok_or_else(|| anyhow::anyhow!("not a time (HH:MM[:SS[.ffffff]])"))?;
    Ok(NaiveDateTime::new(date, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_that_hold_datetimes() {
        for decltype in [
            "DATETIME",
            "datetime",
            "Date",
            "TIMESTAMP(6)",
            "timestamp not null",
        ] {
            assert!(holds_datetimes(decltype), "{decltype}");
        }
        for decltype in ["TEXT", "DATETIMEX", "INTEGER", "dates", ""] {
            assert!(!holds_datetimes(decltype), "{decltype}");
        }
    }

    #[test]
    fn datetimes_read_to_the_second_without_their_timezone() {
        for (text, expected) in [
            ("1975-08-15 05:15:25", "1975-08-15T05:15:25Z"),
            ("1975-08-15T05:15:25.123456", "1975-08-15T05:15:25Z"),
            ("1975-08-15T05:15:25+02:00", "1975-08-15T05:15:25Z"),
            ("1975-08-15T05:15:25Z", "1975-08-15T05:15:25Z"),
            ("1975-08-15 05:15", "1975-08-15T05:15:00Z"),
            ("1975-08-15", "1975-08-15T00:00:00Z"),
        ] {
            let at = parse_datetime(text).expect(text);
            assert_eq!(
                Value::datetime(at).to_json_compact(),
                format!("\"HermesDatetime({expected})\""),
                "{text}"
            );
        }
        for bad in ["15/08/1975", "1975-08-15 25:00:00", "yesterday", ""] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }
}
