//! The `hermesmessages` table: its SQL, and the mapping between the host's
//! SQLite errors and bus errors.

use hermes_guest::BusError;
use hermes_guest::sqlite::SqliteError;

/// hermes' table, exactly.
pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS hermesmessages (\
    msgid INTEGER PRIMARY KEY AUTOINCREMENT, \
    data TEXT NOT NULL, timestamp REAL NOT NULL)";

/// Appends one event.
pub const INSERT: &str = "INSERT INTO hermesmessages (data, timestamp) VALUES (?1, ?2)";

/// Deletes the rows stored before a Unix time.
pub const PURGE: &str = "DELETE FROM hermesmessages WHERE timestamp < ?1";

/// Whether the table exists yet.
pub const EXISTS: &str =
    "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'hermesmessages'";

/// The oldest msgid held (NULL when empty) and the last one ever assigned
/// (NULL before the first insert).
pub const BOUNDS: &str = "SELECT (SELECT min(msgid) FROM hermesmessages), \
    (SELECT seq FROM sqlite_sequence WHERE name = 'hermesmessages')";

/// The msgids from one on, in order, with the size of each row's `data` in
/// bytes: SQLite knows it without reading the text, so a page can be cut to
/// a size before any of it is read.
pub const SIZES: &str = "SELECT msgid, octet_length(data) FROM hermesmessages \
    WHERE msgid >= ?1 ORDER BY msgid LIMIT ?2";

/// The first row from a msgid on, with the types of its columns: what `skip`
/// needs to step over a row without reading its text.
pub const STEP: &str = "SELECT msgid, typeof(data), typeof(timestamp) FROM hermesmessages \
    WHERE msgid >= ?1 ORDER BY msgid LIMIT 1";

/// The rows from one msgid to another, in order, each with its category. hermes
/// keeps the category only inside `data`: SQLite's own JSON reader (in the
/// host, native) picks it out, so the event's text is never parsed in the
/// plugin. It is NULL where `data` is not JSON (JSON5 is accepted, for
/// hermes' `NaN` and `Infinity`).
pub const PAGE: &str = "SELECT msgid, data, timestamp, \
    CASE WHEN json_valid(data, 2) THEN data ->> '$.evcategory' END \
    FROM hermesmessages WHERE msgid BETWEEN ?1 AND ?2 ORDER BY msgid";

/// Unix time now, in seconds, as hermes stores it.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A bus error for a failed database call about `uri`.
pub fn bus_error(uri: &str, e: SqliteError) -> BusError {
    let about = |m: String| {
        if m.starts_with(uri) {
            m
        } else {
            format!("{uri}: {m}")
        }
    };
    match e {
        SqliteError::Busy(m) | SqliteError::NotFound(m) => BusError::Unavailable(about(m)),
        SqliteError::Corrupted(m) => BusError::Corrupted(about(m)),
        SqliteError::Refused(m) | SqliteError::Failed(m) => BusError::Other(about(m)),
    }
}
