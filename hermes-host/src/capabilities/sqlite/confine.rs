//! What keeps a plugin's database inside its grant: the path checks, and a
//! connection opened so that no statement reaches another file, loads code,
//! or takes more than a bus needs.
//!
//! - The path is absolute, has no `..`, lies in a granted directory, and no
//!   component of it is a symbolic link: SQLite itself checks every
//!   component when it opens the file (`SQLITE_OPEN_NOFOLLOW`), and opens
//!   the database, its journal and its WAL with `O_NOFOLLOW`.
//! - Statements pass an allow-list of authorizer actions ([`authorize`]):
//!   what a bus needs on its own tables, nothing else.
//! - Defensive mode is on, schemas are not trusted, triggers and views are
//!   off, and SQLite's limits are tight ([`LIMITS`]).
//! - Temporary tables and indices (a sort, VACUUM's copy) are kept in
//!   memory, never in a file outside the grant.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::{ErrorCode, OpenFlags};

use crate::bindings::sqlite::{Access, SqliteError};
use crate::sandbox::DirGrant;

/// How long a call waits for another connection's lock before `busy`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's limits for a plugin's connection, each with its reason.
pub const LIMITS: &[(Limit, i32, &str)] = &[
    // One text or blob, and one statement: a bus stores events of kilobytes.
    (
        Limit::SQLITE_LIMIT_LENGTH,
        16 << 20,
        "16 MiB per value or row",
    ),
    (
        Limit::SQLITE_LIMIT_SQL_LENGTH,
        1 << 20,
        "1 MiB of SQL per statement",
    ),
    (Limit::SQLITE_LIMIT_COLUMN, 100, "100 columns"),
    (Limit::SQLITE_LIMIT_EXPR_DEPTH, 100, "expressions 100 deep"),
    (
        Limit::SQLITE_LIMIT_COMPOUND_SELECT,
        20,
        "20 terms in a compound SELECT",
    ),
    (
        Limit::SQLITE_LIMIT_VDBE_OP,
        100_000,
        "100,000 instructions per statement",
    ),
    (
        Limit::SQLITE_LIMIT_FUNCTION_ARG,
        16,
        "16 arguments per function",
    ),
    (
        Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
        1000,
        "LIKE patterns of 1,000 bytes",
    ),
    (
        Limit::SQLITE_LIMIT_VARIABLE_NUMBER,
        1000,
        "1,000 parameters per statement",
    ),
    (
        Limit::SQLITE_LIMIT_TRIGGER_DEPTH,
        1,
        "no recursive triggers",
    ),
    (Limit::SQLITE_LIMIT_WORKER_THREADS, 0, "no helper threads"),
    // No database beside the plugin's own; the host raises it to one for the
    // length of a VACUUM, whose copy is a temporary database (see `vacuum`).
    (Limit::SQLITE_LIMIT_ATTACHED, 0, "no attached database"),
];

/// Pragmas a plugin may run, reading or setting them.
const PRAGMAS: &[&str] = &[
    "application_id",
    "auto_vacuum",
    "cache_size",
    "data_version",
    "foreign_key_check",
    "foreign_key_list",
    "foreign_keys",
    "freelist_count",
    "incremental_vacuum",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "journal_mode",
    "journal_size_limit",
    "optimize",
    "page_count",
    "page_size",
    "quick_check",
    "synchronous",
    "table_info",
    "table_list",
    "table_xinfo",
    "user_version",
    "wal_checkpoint",
];

/// Pragmas a plugin may read but not set.
const READ_ONLY_PRAGMAS: &[&str] = &["schema_version"];

/// Functions no plugin may call, even though SQLite has them.
const FUNCTIONS_DENIED: &[&str] = &["load_extension", "fts3_tokenizer"];

/// Whether a statement may do `context`'s action: an allow-list of what a
/// bus needs on the tables of its own database. Everything else (other
/// files, temporary objects, triggers, views, virtual tables, other
/// pragmas, extensions) is denied.
pub fn authorize(context: AuthContext<'_>) -> Authorization {
    let temp = context.database_name == Some("temp");
    let allowed = match context.action {
        AuthAction::Select
        | AuthAction::Recursive
        | AuthAction::Transaction { .. }
        | AuthAction::Savepoint { .. } => true,
        AuthAction::Read { .. }
        | AuthAction::Insert { .. }
        | AuthAction::Update { .. }
        | AuthAction::Delete { .. }
        | AuthAction::CreateTable { .. }
        | AuthAction::CreateIndex { .. }
        | AuthAction::DropTable { .. }
        | AuthAction::DropIndex { .. }
        | AuthAction::AlterTable { .. }
        | AuthAction::Reindex { .. }
        | AuthAction::Analyze { .. } => !temp,
        // VACUUM's copy: a temporary database with no file, held in memory.
        AuthAction::Attach { filename } => filename.is_empty(),
        AuthAction::Detach { .. } => true,
        AuthAction::Function { function_name } => !FUNCTIONS_DENIED
            .iter()
            .any(|denied| function_name.eq_ignore_ascii_case(denied)),
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            PRAGMAS.contains(&name.as_str())
                || (pragma_value.is_none() && READ_ONLY_PRAGMAS.contains(&name.as_str()))
        }
        _ => false,
    };
    if allowed {
        Authorization::Allow
    } else {
        Authorization::Deny
    }
}

/// Checks `path` against the grants and returns the host file to open.
///
/// The path must be absolute, without `..`, inside a granted directory, with
/// no symbolic link between the grant and the file (a link the plugin
/// planted could lead anywhere), and the grant must allow writing for a
/// read-write open. SQLite checks the links again as it opens the file.
pub fn resolve(path: &str, access: Access, grants: &[DirGrant]) -> Result<PathBuf, SqliteError> {
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
    if lexical.file_name().is_none() {
        return refused("not a file path");
    }
    let Some(grant) = grants.iter().find(|g| lexical.starts_with(&g.path)) else {
        return refused("outside the directories granted to the plugin");
    };
    let mut at = grant.path.clone();
    let below = lexical.strip_prefix(&grant.path).unwrap_or(lexical);
    for part in below.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return refused("a symbolic link inside the granted directory is not followed");
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if at.as_path() != lexical {
                    return Err(SqliteError::NotFound(format!(
                        "{path}: its directory is missing"
                    )));
                }
            }
            Err(e) => return Err(SqliteError::Failed(format!("{path}: {e}"))),
        }
    }
    if access == Access::ReadWrite && grant.read_only {
        return refused("the directory is granted read-only");
    }
    if access == Access::ReadOnly && !at.is_file() {
        return Err(SqliteError::NotFound(format!("{path}: no such database")));
    }
    Ok(at)
}

/// Opens `file` for a plugin, confined as this module says.
pub fn connect(
    shown: &str,
    file: &Path,
    access: Access,
) -> Result<rusqlite::Connection, SqliteError> {
    let flags = match access {
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let context = |e: SqliteError| match e {
        SqliteError::Failed(m) => SqliteError::Failed(format!("{shown}: {m}")),
        SqliteError::Corrupted(m) => SqliteError::Corrupted(format!("{shown}: {m}")),
        SqliteError::Refused(m) => SqliteError::Refused(format!("{shown}: {m}")),
        other => other,
    };
    let mut connection = rusqlite::Connection::open_with_flags(file, flags)
        .map_err(error)
        .map_err(context)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
    for (config, on) in [
        (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
        (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, false),
    ] {
        connection.set_db_config(config, on).map_err(error)?;
    }
    for (limit, value, _why) in LIMITS {
        connection.set_limit(*limit, *value).map_err(error)?;
    }
    // Temporary tables, indices and databases live in memory: no file
    // outside the grant. Set before the authorizer, which refuses it.
    connection
        .execute_batch("PRAGMA temp_store = MEMORY")
        .map_err(error)?;
    connection.authorizer(Some(authorize)).map_err(error)?;
    // Reading the schema now turns "not a database" into an error at open.
    connection
        .query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        .map_err(error)
        .map_err(context)?;
    Ok(connection)
}

/// Runs `sql` on `connection`; a VACUUM may attach its temporary copy for
/// the length of the statement, nothing else ever attaches.
pub fn vacuum_aware<T>(
    connection: &rusqlite::Connection,
    sql: &str,
    run: impl FnOnce() -> Result<T, SqliteError>,
) -> Result<T, SqliteError> {
    let vacuum = sql
        .trim_start()
        .get(..6)
        .is_some_and(|word| word.eq_ignore_ascii_case("vacuum"));
    if !vacuum {
        return run();
    }
    connection
        .set_limit(Limit::SQLITE_LIMIT_ATTACHED, 1)
        .map_err(error)?;
    let outcome = run();
    connection
        .set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
        .map_err(error)?;
    outcome
}

/// A SQLite failure as the plugin receives it.
pub fn error(e: rusqlite::Error) -> SqliteError {
    let message = e.to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => SqliteError::Busy(message),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            SqliteError::Corrupted(message)
        }
        // A writer that crashed mid-transaction left a journal that only a
        // writer can roll back: a read-only connection can read again once
        // one has opened the database.
        Some(ErrorCode::ReadOnly) if needs_a_writer(&e) => SqliteError::Busy(format!(
            "the database waits for a writer to recover it (one crashed in the middle of a write): {message}"
        )),
        Some(ErrorCode::ReadOnly) => {
            SqliteError::Refused(format!("the database is open read-only: {message}"))
        }
        Some(ErrorCode::AuthorizationForStatementDenied) => SqliteError::Refused(format!(
            "only what a bus needs on its own tables is allowed (no other file, temporary object, trigger, view, extension or other pragma): {message}"
        )),
        Some(ErrorCode::CannotOpen) if message.contains("symbolic") || is_symlink(&e) => {
            SqliteError::Refused(format!("a symbolic link is not followed: {message}"))
        }
        Some(ErrorCode::OperationInterrupted) => SqliteError::Failed(format!(
            "interrupted: the call ran past its deadline: {message}"
        )),
        _ => SqliteError::Failed(message),
    }
}

fn needs_a_writer(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi::{SQLITE_READONLY_RECOVERY, SQLITE_READONLY_ROLLBACK};
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if [SQLITE_READONLY_ROLLBACK, SQLITE_READONLY_RECOVERY].contains(&f.extended_code))
}

fn is_symlink(e: &rusqlite::Error) -> bool {
    const SQLITE_CANTOPEN_SYMLINK: i32 = rusqlite::ffi::SQLITE_CANTOPEN | (6 << 8);
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == SQLITE_CANTOPEN_SYMLINK)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `dir`, granted as the capability would be.
    pub(in crate::capabilities::sqlite) fn grant(dir: &Path, read_only: bool) -> Vec<DirGrant> {
        vec![DirGrant {
            path: std::fs::canonicalize(dir).expect("dir"),
            read_only,
        }]
    }

    fn refused(result: Result<PathBuf, SqliteError>) -> bool {
        matches!(result, Err(SqliteError::Refused(_)))
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
        vacuum_aware(&connection, "VACUUM", || {
            connection.execute_batch("VACUUM").map_err(error)
        })
        .expect("a plain VACUUM works");
    }

    #[test]
    fn a_dangling_link_planted_in_the_grant_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let grants = grant(dir.path(), false);
        let root = &grants[0].path;
        let target = outside.path().join("created-outside.sqlite");
        std::os::unix::fs::symlink(&target, root.join("bus.sqlite")).expect("symlink");
        let path = format!("{}/bus.sqlite", root.display());
        assert!(refused(resolve(&path, Access::ReadWrite, &grants)));
        // Even past the check, SQLite itself refuses the link.
        let opened = connect(&path, &root.join("bus.sqlite"), Access::ReadWrite);
        assert!(
            matches!(&opened, Err(SqliteError::Refused(m)) if m.contains("symbolic link")),
            "{:?}",
            opened.err()
        );
        assert!(!target.exists(), "no file was created outside the grant");
    }

    #[test]
    fn a_connection_does_only_what_a_bus_needs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bus.sqlite");
        let connection = connect("bus.sqlite", &file, Access::ReadWrite).expect("opens");
        for allowed in [
            "CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT)",
            "CREATE INDEX t_data ON t (data)",
            "INSERT INTO t (data) VALUES (json_object('a', 1))",
            "SELECT data ->> '$.a', json_valid(data), count(*) FROM t",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT sum(i) FROM n",
            "PRAGMA user_version = 3",
            "PRAGMA journal_mode",
            "PRAGMA table_info(t)",
            "SELECT count(*) FROM sqlite_schema",
            "DELETE FROM t",
            "ALTER TABLE t ADD COLUMN extra TEXT",
            "DROP INDEX t_data",
        ] {
            connection
                .execute_batch(allowed)
                .unwrap_or_else(|e| panic!("{allowed}: {e}"));
        }
        for denied in [
            "CREATE TEMP TABLE x (a)",
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t; END",
            "CREATE VIEW v AS SELECT 1",
            "PRAGMA temp_store = FILE",
            "PRAGMA writable_schema = ON",
            "PRAGMA busy_timeout = 100000000",
            "PRAGMA schema_version = 1",
            "PRAGMA locking_mode = EXCLUSIVE",
            "ATTACH DATABASE '' AS other",
            "SELECT load_extension('x')",
            "SELECT fts3_tokenizer('simple')",
            "CREATE VIRTUAL TABLE f USING fts5(a)",
        ] {
            let result = connection.execute_batch(denied).map_err(error);
            assert!(
                matches!(
                    result,
                    Err(SqliteError::Refused(_) | SqliteError::Failed(_))
                ),
                "{denied}: {result:?}"
            );
        }
        // Defensive mode: the schema cannot be written around SQLite.
        let schema = connection
            .execute_batch("UPDATE sqlite_schema SET sql = '' WHERE name = 't'")
            .map_err(error);
        assert!(schema.is_err(), "{schema:?}");
        // The limits hold.
        let huge = format!("SELECT length('{}')", "x".repeat(2 << 20));
        assert!(connection.execute_batch(&huge).is_err(), "SQL past 1 MiB");
        let wide = format!(
            "CREATE TABLE w ({})",
            (0..150)
                .map(|i| format!("c{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(connection.execute_batch(&wide).is_err(), "150 columns");
        assert!(
            connection
                .execute_batch("SELECT zeroblob(20000000)")
                .is_err(),
            "a value past 16 MiB"
        );
        // VACUUM works, and leaves no way to attach afterwards.
        vacuum_aware(&connection, "VACUUM", || {
            connection.execute_batch("VACUUM").map_err(error)
        })
        .expect("VACUUM");
        assert!(
            connection
                .execute_batch("ATTACH DATABASE '' AS later")
                .is_err(),
            "no attach after the VACUUM"
        );
        let into = dir.path().join("copy.sqlite");
        let vacuum_into = format!("VACUUM INTO '{}'", into.display());
        let copied = vacuum_aware(&connection, &vacuum_into, || {
            connection.execute_batch(&vacuum_into).map_err(error)
        });
        assert!(copied.is_err() && !into.exists(), "VACUUM INTO is refused");
    }

    #[test]
    fn sqlite_failures_are_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bus.sqlite");
        let one = connect("bus.sqlite", &file, Access::ReadWrite).expect("opens");
        one.execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
            .expect("a write lock held");
        let two = connect("bus.sqlite", &file, Access::ReadWrite).expect("opens");
        two.busy_timeout(Duration::from_millis(10))
            .expect("busy timeout");
        let busy = two.execute_batch("INSERT INTO t VALUES (2)").map_err(error);
        assert!(matches!(busy, Err(SqliteError::Busy(_))), "{busy:?}");
        one.execute_batch("COMMIT").expect("commit");

        let read_only = connect("bus.sqlite", &file, Access::ReadOnly).expect("opens");
        let refused = read_only
            .execute_batch("INSERT INTO t VALUES (3)")
            .map_err(error);
        assert!(
            matches!(&refused, Err(SqliteError::Refused(m)) if m.contains("read-only")),
            "{refused:?}"
        );
        let denied = one.execute_batch("CREATE TEMP TABLE x (a)").map_err(error);
        assert!(
            matches!(&denied, Err(SqliteError::Refused(m)) if m.contains("only what a bus needs")),
            "{denied:?}"
        );

        let garbage = dir.path().join("garbage.sqlite");
        std::fs::write(&garbage, vec![7u8; 4096]).expect("write");
        let corrupted = connect("garbage.sqlite", &garbage, Access::ReadWrite);
        assert!(
            matches!(&corrupted, Err(SqliteError::Corrupted(_))),
            "{:?}",
            corrupted.err()
        );
        // A directory cannot be opened, and that is no symbolic link's doing.
        let not_a_file = connect("dir", dir.path(), Access::ReadWrite);
        assert!(
            matches!(&not_a_file, Err(SqliteError::Failed(_))),
            "{:?}",
            not_a_file.err()
        );

        let interrupt = one.get_interrupt_handle();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            interrupt.interrupt();
        });
        let interrupted = one
            .query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
                [],
                |_| Ok(()),
            )
            .map_err(error);
        stopper.join().expect("stopper");
        assert!(
            matches!(&interrupted, Err(SqliteError::Failed(m)) if m.contains("deadline")),
            "{interrupted:?}"
        );
    }
}
