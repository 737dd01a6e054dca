//! The host's `sqlite` capability: database files inside the directories the
//! operator granted, through the host's SQLite.
//!
//! ```no_run
//! use hermes_guest::sqlite::{Access, Database, Value};
//!
//! let db = Database::open("/var/lib/hermes/bus.sqlite", Access::ReadWrite)?;
//! db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)", &[])?;
//! db.begin()?;
//! db.execute("INSERT INTO t (x) VALUES (?)", &[Value::Integer(1)])?;
//! db.commit()?;
//! let rows = db.query("SELECT x FROM t", &[])?;
//! assert_eq!(rows.rows[0], vec![Value::Integer(1)]);
//! # Ok::<(), hermes_guest::sqlite::SqliteError>(())
//! ```

pub use crate::wit::imports::hermes::bus::sqlite::{
    Access, Database, Outcome, Rows, SqliteError, Value,
};
