//! The `sqlite` capability: database files inside the granted directories,
//! opened with `rusqlite`'s bundled SQLite. Every call runs on tokio's
//! blocking pool, so a slow disk or a lock wait never stalls the host.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{ErrorCode, OpenFlags};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::TrappableError;

use crate::bindings::sqlite::{Access, Host, HostDatabase, Outcome, Rows, SqliteError, Value};
use crate::sandbox::DirGrant;

/// How long a call waits for another connection's lock before `busy`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The most data one query may return: a plugin reads in pages (`LIMIT`), and
/// the host does not buffer without bound.
const MAX_RESULT_BYTES: usize = 64 * 1024 * 1024;

/// A plugin's open database.
pub struct Database {
    connection: Arc<Mutex<rusqlite::Connection>>,
}

/// What the capability holds for one plugin instance: the directories its
/// databases may live in, and the plugin's name for the log.
pub struct SqliteCtx {
    plugin: Arc<str>,
    dirs: Vec<DirGrant>,
}

impl SqliteCtx {
    /// The capability for `plugin`, with databases inside `dirs`.
    pub fn new(plugin: Arc<str>, dirs: Vec<DirGrant>) -> Self {
        SqliteCtx { plugin, dirs }
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
        let resolved = resolve(&path, access, &self.ctx.dirs).inspect_err(|e| {
            if let SqliteError::Refused(why) = e {
                tracing::warn!(target: "plugin", plugin = &*self.ctx.plugin, "sqlite: refused {why}");
            }
        })?;
        let connection = blocking(move || connect(&path, &resolved, access)).await?;
        self.table
            .push(Database {
                connection: Arc::new(Mutex::new(connection)),
            })
            .map_err(super::trap)
    }

    async fn execute(
        &mut self,
        database: Resource<Database>,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Outcome, SqliteFailure> {
        let connection = self.connection(&database)?;
        Ok(blocking(move || {
            let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            let mut statement = connection.prepare_cached(&sql).map_err(error)?;
            let changes = statement
                .execute(rusqlite::params_from_iter(params.iter().map(Param)))
                .map_err(error)?;
            Ok(Outcome {
                changes: changes as u64,
                last_insert_rowid: connection.last_insert_rowid(),
            })
        })
        .await?)
    }

    async fn execute_many(
        &mut self,
        database: Resource<Database>,
        sql: String,
        params: Vec<Vec<Value>>,
    ) -> Result<Vec<Outcome>, SqliteFailure> {
        let connection = self.connection(&database)?;
        Ok(blocking(move || {
            let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            let mut statement = connection.prepare_cached(&sql).map_err(error)?;
            let mut outcomes = Vec::with_capacity(params.len());
            for run in &params {
                let changes = statement
                    .execute(rusqlite::params_from_iter(run.iter().map(Param)))
                    .map_err(error)?;
                outcomes.push(Outcome {
                    changes: changes as u64,
                    last_insert_rowid: connection.last_insert_rowid(),
                });
            }
            Ok(outcomes)
        })
        .await?)
    }

    async fn query(
        &mut self,
        database: Resource<Database>,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Rows, SqliteFailure> {
        let connection = self.connection(&database)?;
        Ok(blocking(move || {
            let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
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
                    let value = from_sql(row.get_ref(i).map_err(error)?);
                    size += value_size(&value);
                    values.push(value);
                }
                if size > MAX_RESULT_BYTES {
                    return Err(SqliteError::Failed(format!(
                        "the result is larger than {} MiB: read it in pages with LIMIT",
                        MAX_RESULT_BYTES >> 20
                    )));
                }
                rows.push(values);
            }
            Ok(Rows { columns, rows })
        })
        .await?)
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
        // Closing may roll back an open transaction: not on the async threads.
        tokio::task::spawn_blocking(move || drop(database));
        Ok(())
    }
}

impl SqliteView<'_> {
    fn connection(
        &self,
        database: &Resource<Database>,
    ) -> Result<Arc<Mutex<rusqlite::Connection>>, SqliteFailure> {
        Ok(self
            .table
            .get(database)
            .map_err(super::trap)?
            .connection
            .clone())
    }

    async fn batch(
        &mut self,
        database: Resource<Database>,
        sql: &'static str,
    ) -> Result<(), SqliteFailure> {
        let connection = self.connection(&database)?;
        Ok(blocking(move || {
            let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            connection.execute_batch(sql).map_err(error)
        })
        .await?)
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SqliteError> + Send + 'static,
) -> Result<T, SqliteError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(SqliteError::Failed(format!(
            "the database call failed: {e}"
        )))
    })
}

/// Checks `path` against the grants and returns the host file to open.
///
/// The path must be absolute, without `..`, inside a granted directory once
/// every symbolic link is followed, and the grant must allow writing for a
/// read-write open.
fn resolve(path: &str, access: Access, grants: &[DirGrant]) -> Result<PathBuf, SqliteError> {
    let refused = |why: &str| Err(SqliteError::Refused(format!("{path}: {why}")));
    let lexical = Path::new(path);
    if !lexical.is_absolute() {
        return refused("not an absolute path");
    }
    if lexical
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return refused("a path with `..` is not allowed");
    }
    let (Some(parent), Some(name)) = (lexical.parent(), lexical.file_name()) else {
        return refused("not a file path");
    };
    let Some(grant) = grants.iter().find(|g| lexical.starts_with(&g.path)) else {
        return refused("outside the directories granted to the plugin");
    };
    let parent = match std::fs::canonicalize(parent) {
        Ok(parent) => parent,
        Err(e) => {
            return Err(SqliteError::NotFound(format!(
                "{path}: its directory is missing: {e}"
            )));
        }
    };
    let mut file = parent.join(name);
    if file.exists() {
        file = std::fs::canonicalize(&file)
            .map_err(|e| SqliteError::Failed(format!("{path}: {e}")))?;
    }
    if !file.starts_with(&grant.path) {
        return refused("a symbolic link leads outside the granted directories");
    }
    if access == Access::ReadWrite && grant.read_only {
        return refused("the directory is granted read-only");
    }
    if access == Access::ReadOnly && !file.is_file() {
        return Err(SqliteError::NotFound(format!("{path}: no such database")));
    }
    Ok(file)
}

fn connect(shown: &str, file: &Path, access: Access) -> Result<rusqlite::Connection, SqliteError> {
    let flags = match access {
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let context = |e: SqliteError| match e {
        SqliteError::Failed(m) => SqliteError::Failed(format!("{shown}: {m}")),
        SqliteError::Corrupted(m) => SqliteError::Corrupted(format!("{shown}: {m}")),
        other => other,
    };
    let mut connection = rusqlite::Connection::open_with_flags(file, flags)
        .map_err(error)
        .map_err(context)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
    // The sandbox: no other database file, no extension, no global setting.
    // VACUUM works through a temporary attached database with no file name:
    // that one is allowed, a file (`ATTACH`, `VACUUM INTO`) is not.
    connection
        .set_limit(Limit::SQLITE_LIMIT_ATTACHED, 1)
        .map_err(error)?;
    connection
        .authorizer(Some(|context: AuthContext<'_>| match context.action {
            AuthAction::Attach { filename: "" } => Authorization::Allow,
            AuthAction::Attach { .. } => Authorization::Deny,
            AuthAction::Function {
                function_name: "load_extension",
            } => Authorization::Deny,
            AuthAction::Pragma { pragma_name, .. }
                if matches!(
                    pragma_name.to_ascii_lowercase().as_str(),
                    "temp_store_directory" | "data_store_directory"
                ) =>
            {
                Authorization::Deny
            }
            _ => Authorization::Allow,
        }))
        .map_err(error)?;
    // Reading the schema now turns "not a database" into an error at open.
    connection
        .query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        .map_err(error)
        .map_err(context)?;
    Ok(connection)
}

fn error(e: rusqlite::Error) -> SqliteError {
    let message = e.to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => SqliteError::Busy(message),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            SqliteError::Corrupted(message)
        }
        Some(ErrorCode::ReadOnly) => {
            SqliteError::Refused(format!("the database is open read-only: {message}"))
        }
        Some(ErrorCode::AuthorizationForStatementDenied) => SqliteError::Refused(format!(
            "attaching databases, loading extensions and moving SQLite's files are not allowed: {message}"
        )),
        _ => SqliteError::Failed(message),
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

fn value_size(value: &Value) -> usize {
    match value {
        Value::Text(text) => text.len() + 16,
        Value::Blob(bytes) => bytes.len() + 16,
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
mod tests {
    use super::*;

    fn grant(dir: &Path, read_only: bool) -> Vec<DirGrant> {
        vec![DirGrant {
            path: std::fs::canonicalize(dir).expect("dir"),
            read_only,
        }]
    }

    fn refused(result: Result<PathBuf, SqliteError>) -> bool {
        matches!(result, Err(SqliteError::Refused(_)))
    }

    fn domain<T: std::fmt::Debug>(result: Result<T, SqliteFailure>) -> SqliteError {
        result
            .expect_err("the call fails")
            .downcast()
            .expect("a sqlite-error, not a trap")
    }

    fn handle(database: &Resource<Database>) -> Resource<Database> {
        Resource::new_borrow(database.rep())
    }

    /// The capability called directly, as a plugin's calls reach it.
    #[tokio::test]
    async fn the_view_opens_inside_its_grants_and_lowers_its_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let read_only = tempfile::tempdir().expect("tempdir");
        let mut dirs = grant(dir.path(), false);
        dirs.extend(grant(read_only.path(), true));
        let root = dirs[0].path.display().to_string();
        let ctx = SqliteCtx::new(Arc::from("probe"), dirs.clone());
        let mut table = ResourceTable::new();
        let mut view = SqliteView {
            ctx: &ctx,
            table: &mut table,
        };

        assert!(matches!(
            domain(view.open("/etc/hostname".into(), Access::ReadOnly).await),
            SqliteError::Refused(_)
        ));
        let elsewhere = format!("{}/bus.sqlite", dirs[1].path.display());
        assert!(matches!(
            domain(view.open(elsewhere, Access::ReadWrite).await),
            SqliteError::Refused(m) if m.contains("read-only")
        ));

        let db = view
            .open(format!("{root}/bus.sqlite"), Access::ReadWrite)
            .await
            .expect("opens");
        view.execute(
            handle(&db),
            "CREATE TABLE t (n INTEGER, s TEXT)".into(),
            vec![],
        )
        .await
        .expect("create");
        view.begin(handle(&db)).await.expect("begin");
        let outcomes = view
            .execute_many(
                handle(&db),
                "INSERT INTO t VALUES (?1, ?2)".into(),
                vec![
                    vec![Value::Integer(1), Value::Text("one".into())],
                    vec![Value::Integer(2), Value::Null],
                ],
            )
            .await
            .expect("insert");
        assert_eq!(
            outcomes
                .iter()
                .map(|o| (o.changes, o.last_insert_rowid))
                .collect::<Vec<_>>(),
            [(1, 1), (1, 2)]
        );
        view.commit(handle(&db)).await.expect("commit");
        let rows = view
            .query(handle(&db), "SELECT n, s FROM t ORDER BY n".into(), vec![])
            .await
            .expect("query");
        assert_eq!(rows.columns, ["n", "s"]);
        assert_eq!(
            rows.rows,
            [
                vec![Value::Integer(1), Value::Text("one".into())],
                vec![Value::Integer(2), Value::Null],
            ]
        );
        assert!(matches!(
            domain(view.execute(handle(&db), "NOT SQL".into(), vec![]).await),
            SqliteError::Failed(_)
        ));
        assert!(matches!(
            domain(view.commit(handle(&db)).await),
            SqliteError::Failed(m) if m.contains("no transaction")
        ));

        // A handle the plugin does not hold is a trap, not a sqlite-error.
        view.drop(db).await.expect("closed");
        let forged = Resource::<Database>::new_borrow(4242);
        let failure = view
            .query(forged, "SELECT 1".into(), vec![])
            .await
            .expect_err("no such database");
        assert!(failure.downcast().is_err(), "a trap");
    }

    #[test]
    fn paths_outside_the_grants_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let grants = grant(dir.path(), false);
        let root = grants[0].path.display().to_string();
        let inside = format!("{root}/bus.sqlite");
        assert!(resolve(&inside, Access::ReadWrite, &grants).is_ok());
        assert!(refused(resolve("bus.sqlite", Access::ReadWrite, &grants)));
        assert!(refused(resolve("/etc/passwd", Access::ReadOnly, &grants)));
        assert!(refused(resolve(
            &format!("{root}/../escape.sqlite"),
            Access::ReadWrite,
            &grants
        )));
        #[cfg(unix)]
        {
            let outside = tempfile::tempdir().expect("tempdir");
            std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).expect("symlink");
            assert!(refused(resolve(
                &format!("{root}/link/bus.sqlite"),
                Access::ReadWrite,
                &grants
            )));
        }
    }

    #[test]
    fn a_read_only_grant_refuses_a_read_write_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let grants = grant(dir.path(), true);
        let file = format!("{}/bus.sqlite", grants[0].path.display());
        assert!(refused(resolve(&file, Access::ReadWrite, &grants)));
        assert!(matches!(
            resolve(&file, Access::ReadOnly, &grants),
            Err(SqliteError::NotFound(_))
        ));
        std::fs::write(&file, b"").expect("create");
        assert!(resolve(&file, Access::ReadOnly, &grants).is_ok());
    }

    #[test]
    fn a_connection_cannot_reach_other_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bus.sqlite");
        let connection = connect("bus.sqlite", &file, Access::ReadWrite).expect("opens");
        let other = dir.path().join("other.sqlite");
        for sql in [
            format!("ATTACH DATABASE '{}' AS other", other.display()),
            format!("VACUUM INTO '{}'", other.display()),
            "SELECT load_extension('x')".to_string(),
            "PRAGMA temp_store_directory = '/tmp'".to_string(),
        ] {
            let result = connection.execute_batch(&sql).map_err(error);
            assert!(
                matches!(
                    result,
                    Err(SqliteError::Refused(_) | SqliteError::Failed(_))
                ),
                "{sql}: {result:?}"
            );
        }
        assert!(!other.exists(), "no file was written outside the database");
        connection
            .execute_batch("VACUUM")
            .expect("a plain VACUUM works");
    }
}
