//! The `sqlite` capability: database files inside the granted directories,
//! opened with `rusqlite`'s bundled SQLite and confined as [`confine`]
//! says. Every call runs on tokio's blocking pool, so a slow disk or a lock
//! wait never stalls the host; a call abandoned at its deadline interrupts
//! its statement, so no query outlives the call that ran it.

pub mod confine;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::types::{ToSqlOutput, ValueRef};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::TrappableError;

use self::confine::{connect, error, resolve, vacuum_aware};
use crate::bindings::sqlite::{Access, Host, HostDatabase, Outcome, Rows, SqliteError, Value};
use crate::sandbox::DirGrant;

/// How many SQLite instructions run between two checks for an abandoned call.
const CHECK_EVERY: i32 = 10_000;

/// Databases one instance may have open at once: a bus needs one or two.
pub const MAX_OPEN: usize = 8;

/// The most data one query may return: a plugin reads in pages (`LIMIT`), and
/// the host does not buffer without bound.
const MAX_RESULT_BYTES: usize = 64 * 1024 * 1024;

/// A plugin's open database.
pub struct Database {
    connection: Arc<Mutex<rusqlite::Connection>>,
    abandoned: Arc<Abandoned>,
}

/// Set when a call on the database was abandoned at its deadline: the
/// statement running is interrupted, and any still to start stops at once
/// (the instance is being discarded).
struct Abandoned {
    set: AtomicBool,
    interrupt: rusqlite::InterruptHandle,
}

/// Marks the database abandoned if dropped before [`Watch::done`]: the call
/// that held it was dropped at its deadline.
struct Watch {
    abandoned: Arc<Abandoned>,
    done: bool,
}

impl Watch {
    fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.done {
            self.abandoned.set.store(true, Ordering::SeqCst);
            self.abandoned.interrupt.interrupt();
        }
    }
}

/// What the capability holds for one plugin instance: the directories its
/// databases may live in, and the plugin's name for the log.
pub struct SqliteCtx {
    plugin: Arc<str>,
    dirs: Vec<DirGrant>,
    open: std::sync::atomic::AtomicUsize,
}

impl SqliteCtx {
    /// The capability for `plugin`, with databases inside `dirs`.
    pub fn new(plugin: Arc<str>, dirs: Vec<DirGrant>) -> Self {
        SqliteCtx {
            plugin,
            dirs,
            open: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

/// The capability as a plugin's calls see it: its context, and the
/// instance's table holding the open databases.
pub struct SqliteView<'a> {
    /// The grants and limits.
    pub ctx: &'a SqliteCtx,
    /// The instance's resources.
    pub table: &'a mut ResourceTable,
}

/// A failed call: a `sqlite-error` the plugin receives, or a trap.
pub type SqliteFailure = TrappableError<SqliteError>;

impl Host for SqliteView<'_> {
    fn convert_sqlite_error(&mut self, failure: SqliteFailure) -> wasmtime::Result<SqliteError> {
        failure.downcast()
    }
}

impl HostDatabase for SqliteView<'_> {
    async fn open(
        &mut self,
        path: String,
        access: Access,
    ) -> Result<Resource<Database>, SqliteFailure> {
        if self.ctx.open.load(Ordering::SeqCst) >= MAX_OPEN {
            return Err(SqliteError::Refused(format!(
                "{path}: at most {MAX_OPEN} databases may be open at once"
            ))
            .into());
        }
        let resolved = resolve(&path, access, &self.ctx.dirs).inspect_err(|e| {
            if let SqliteError::Refused(why) = e {
                tracing::warn!(target: "plugin", plugin = &*self.ctx.plugin, "sqlite: refused {why}");
            }
        })?;
        let opened = tokio::task::spawn_blocking(move || {
            let mut connection = connect(&path, &resolved, access)?;
            let abandoned = Arc::new(Abandoned {
                set: AtomicBool::new(false),
                interrupt: connection.get_interrupt_handle(),
            });
            let flag = Arc::clone(&abandoned);
            connection
                .progress_handler(CHECK_EVERY, Some(move || flag.set.load(Ordering::SeqCst)))
                .map_err(error)?;
            Ok(Database {
                connection: Arc::new(Mutex::new(connection)),
                abandoned,
            })
        })
        .await
        .unwrap_or_else(|e| Err(SqliteError::Failed(format!("opening failed: {e}"))))?;
        let handle = self.table.push(opened).map_err(super::trap)?;
        self.ctx.open.fetch_add(1, Ordering::SeqCst);
        Ok(handle)
    }

    async fn execute(
        &mut self,
        database: Resource<Database>,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Outcome, SqliteFailure> {
        self.run(&database, move |connection| {
            let mut statement = connection.prepare_cached(&sql).map_err(error)?;
            let changes = vacuum_aware(connection, &sql, || {
                statement
                    .execute(rusqlite::params_from_iter(params.iter().map(Param)))
                    .map_err(error)
            })?;
            Ok(Outcome {
                changes: changes as u64,
                last_insert_rowid: connection.last_insert_rowid(),
            })
        })
        .await
    }

    async fn execute_many(
        &mut self,
        database: Resource<Database>,
        sql: String,
        params: Vec<Vec<Value>>,
    ) -> Result<Vec<Outcome>, SqliteFailure> {
        self.run(&database, move |connection| {
            let mut statement = connection.prepare_cached(&sql).map_err(error)?;
            let mut outcomes = Vec::with_capacity(params.len());
            for run in &params {
                let changes = vacuum_aware(connection, &sql, || {
                    statement
                        .execute(rusqlite::params_from_iter(run.iter().map(Param)))
                        .map_err(error)
                })?;
                outcomes.push(Outcome {
                    changes: changes as u64,
                    last_insert_rowid: connection.last_insert_rowid(),
                });
            }
            Ok(outcomes)
        })
        .await
    }

    async fn query(
        &mut self,
        database: Resource<Database>,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Rows, SqliteFailure> {
        self.run(&database, move |connection| {
            let mut statement = connection.prepare_cached(&sql).map_err(error)?;
            let columns: Vec<String> = statement.column_names().map(String::from).collect();
            let width = columns.len();
            let mut rows = Vec::new();
            let mut size = 0usize;
            let mut cursor = statement
                .query(rusqlite::params_from_iter(params.iter().map(Param)))
                .map_err(error)?;
            while let Some(row) = cursor.next().map_err(error)? {
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    let value = row.get_ref(i).map_err(error)?;
                    size += value_size(value);
                    if size > MAX_RESULT_BYTES {
                        return Err(SqliteError::Failed(format!(
                            "the result is larger than {} MiB: read it in pages with LIMIT",
                            MAX_RESULT_BYTES >> 20
                        )));
                    }
                    values.push(from_sql(value));
                }
                rows.push(values);
            }
            Ok(Rows { columns, rows })
        })
        .await
    }

    async fn begin(&mut self, database: Resource<Database>) -> Result<(), SqliteFailure> {
        self.batch(database, "BEGIN IMMEDIATE").await
    }

    async fn commit(&mut self, database: Resource<Database>) -> Result<(), SqliteFailure> {
        self.batch(database, "COMMIT").await
    }

    async fn rollback(&mut self, database: Resource<Database>) -> Result<(), SqliteFailure> {
        self.batch(database, "ROLLBACK").await
    }

    async fn drop(&mut self, database: Resource<Database>) -> wasmtime::Result<()> {
        let database = self.table.delete(database)?;
        self.ctx.open.fetch_sub(1, Ordering::SeqCst);
        // Closing may roll back an open transaction: not on the async threads.
        tokio::task::spawn_blocking(move || drop(database));
        Ok(())
    }
}

impl SqliteView<'_> {
    /// Runs `work` on the database's connection on the blocking pool. If the
    /// call is dropped first (its deadline passed), the statement running is
    /// interrupted and the connection refuses any further work.
    async fn run<T: Send + 'static>(
        &mut self,
        database: &Resource<Database>,
        work: impl FnOnce(&rusqlite::Connection) -> Result<T, SqliteError> + Send + 'static,
    ) -> Result<T, SqliteFailure> {
        let (connection, watch) = {
            let database = self.table.get(database).map_err(super::trap)?;
            let watch = Watch {
                abandoned: Arc::clone(&database.abandoned),
                done: false,
            };
            (Arc::clone(&database.connection), watch)
        };
        let outcome = tokio::task::spawn_blocking(move || {
            let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            work(&connection)
        })
        .await;
        watch.done();
        Ok(outcome.unwrap_or_else(|e| {
            Err(SqliteError::Failed(format!(
                "the database call failed: {e}"
            )))
        })?)
    }

    async fn batch(
        &mut self,
        database: Resource<Database>,
        sql: &'static str,
    ) -> Result<(), SqliteFailure> {
        self.run(&database, move |connection| {
            connection.execute_batch(sql).map_err(error)
        })
        .await
    }
}

/// A WIT value as an SQL parameter.
struct Param<'a>(&'a Value);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Integer(n) => ValueRef::Integer(*n),
            Value::Real(x) => ValueRef::Real(*x),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

fn from_sql(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(x) => Value::Real(x),
        ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    }
}

/// What a value costs once copied out of SQLite, counted before the copy.
fn value_size(value: ValueRef<'_>) -> usize {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes.len() + 16,
        _ => 16,
    }
}

/// Selects the capability's view in a store's data.
struct HasSqlite;

impl HasData for HasSqlite {
    type Data<'a> = SqliteView<'a>;
}

/// Adds the capability to `linker`; `view` finds it in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> SqliteView<'_>,
) -> wasmtime::Result<()> {
    crate::bindings::sqlite::add_to_linker::<T, HasSqlite>(linker, view)
}

#[cfg(test)]
mod tests;
