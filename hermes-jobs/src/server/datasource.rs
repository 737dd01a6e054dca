//! The `sqlite` datasource: a query's rows, read from a database file opened
//! read-only (the server never writes to its sources).

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
    let columns: Vec<String> = statement.column_names().map(String::from).collect();
    let mut rows = Vec::new();
    let mut cursor = statement.query([])?;
    while let Some(row) = cursor.next()? {
        let mut values = Vec::with_capacity(columns.len());
        for (i, column) in columns.iter().enumerate() {
            let value = match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
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
