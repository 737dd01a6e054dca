//! The `sqlite` capability's view called directly, as a plugin's calls reach it.

use std::path::Path;

use super::confine::tests::grant;
use super::*;

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

    // At most MAX_OPEN databases at once; closing one makes room.
    let mut held = vec![db];
    for i in 1..MAX_OPEN {
        let db = view
            .open(format!("{root}/more-{i}.sqlite"), Access::ReadWrite)
            .await
            .expect("opens");
        held.push(db);
    }
    assert!(matches!(
        domain(view.open(format!("{root}/one-too-many.sqlite"), Access::ReadWrite).await),
        SqliteError::Refused(m) if m.contains("at most")
    ));
    let db = held.remove(0);
    view.drop(held.remove(0)).await.expect("closed");
    let again = view
        .open(format!("{root}/room.sqlite"), Access::ReadWrite)
        .await
        .expect("room again");
    view.drop(again).await.expect("closed");

    // A handle the plugin does not hold is a trap, not a sqlite-error.
    view.drop(db).await.expect("closed");
    let forged = Resource::<Database>::new_borrow(4242);
    let failure = view
        .query(forged, "SELECT 1".into(), vec![])
        .await
        .expect_err("no such database");
    assert!(failure.downcast().is_err(), "a trap");
}

fn view_on(dir: &Path) -> (SqliteCtx, ResourceTable, String) {
    let dirs = grant(dir, false);
    let root = dirs[0].path.display().to_string();
    (
        SqliteCtx::new(Arc::from("probe"), dirs),
        ResourceTable::new(),
        root,
    )
}

#[tokio::test]
async fn a_call_dropped_at_its_deadline_interrupts_its_statement_and_frees_its_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctx, mut table, root) = view_on(dir.path());
    let mut view = SqliteView {
        ctx: &ctx,
        table: &mut table,
    };
    let path = format!("{root}/bus.sqlite");
    let db = view
        .open(path.clone(), Access::ReadWrite)
        .await
        .expect("opens");
    view.execute(handle(&db), "CREATE TABLE t (x)".into(), vec![])
        .await
        .expect("create");
    // A long statement that finishes is not interrupted afterwards.
    let counted = view
        .query(
            handle(&db),
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) SELECT count(*) FROM c".into(),
            vec![],
        )
        .await
        .expect("a long query that ends");
    assert_eq!(counted.rows, [vec![Value::Integer(200_000)]]);
    let again = view
        .query(
            handle(&db),
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) SELECT count(*) FROM c".into(),
            vec![],
        )
        .await;
    assert!(again.is_ok(), "a finished call leaves the database usable");

    view.begin(handle(&db)).await.expect("begin");
    view.execute(handle(&db), "INSERT INTO t VALUES (1)".into(), vec![])
        .await
        .expect("insert");
    let endless = view.query(
        handle(&db),
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
            .into(),
        vec![],
    );
    let abandoned = tokio::time::timeout(std::time::Duration::from_millis(100), endless).await;
    assert!(abandoned.is_err(), "the call was dropped at its deadline");
    // The interrupted statement lets the lock go once the call is gone:
    // closing the database rolls the transaction back.
    view.drop(db).await.expect("closed");
    let other = rusqlite::Connection::open(dir.path().join("bus.sqlite")).expect("opens");
    other
        .busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    other
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT")
        .expect("the lock is free");
    let rows: i64 = other
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 1, "the abandoned transaction was rolled back");
}

#[tokio::test]
async fn a_result_past_its_bound_is_refused_and_rollback_rolls_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctx, mut table, root) = view_on(dir.path());
    let mut view = SqliteView {
        ctx: &ctx,
        table: &mut table,
    };
    let db = view
        .open(format!("{root}/bus.sqlite"), Access::ReadWrite)
        .await
        .expect("opens");
    let big = view
        .query(
            handle(&db),
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 7) SELECT zeroblob(10000000) FROM c".into(),
            vec![],
        )
        .await;
    assert!(matches!(domain(big), SqliteError::Failed(m) if m.contains("larger than 64 MiB")),);
    let fits = view
        .query(
            handle(&db),
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 6) SELECT zeroblob(10000000) FROM c".into(),
            vec![],
        )
        .await
        .expect("60 MB fits");
    assert_eq!(fits.rows.len(), 6);

    view.execute(handle(&db), "CREATE TABLE t (x)".into(), vec![])
        .await
        .expect("create");
    view.begin(handle(&db)).await.expect("begin");
    view.execute(handle(&db), "INSERT INTO t VALUES (1)".into(), vec![])
        .await
        .expect("insert");
    view.rollback(handle(&db)).await.expect("rollback");
    let rows = view
        .query(handle(&db), "SELECT count(*) FROM t".into(), vec![])
        .await
        .expect("count");
    assert_eq!(rows.rows, [vec![Value::Integer(0)]]);
    view.drop(db).await.expect("closed");
}

#[tokio::test]
async fn a_journal_a_crashed_writer_left_makes_a_reader_wait_not_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live.db");
    let db = rusqlite::Connection::open(&live).expect("open");
    db.execute_batch(
        "PRAGMA cache_size = 1; CREATE TABLE t (x); INSERT INTO t VALUES (zeroblob(100000));",
    )
    .expect("a table");
    // A write transaction whose pages spilled to the file: the database and
    // its journal, copied now, are what a writer killed at this point leaves.
    db.execute_batch("BEGIN; UPDATE t SET x = zeroblob(200000);")
        .expect("a write in progress");
    let crashed = dir.path().join("crashed.db");
    std::fs::copy(&live, &crashed).expect("copy");
    std::fs::copy(
        dir.path().join("live.db-journal"),
        dir.path().join("crashed.db-journal"),
    )
    .expect("the hot journal");
    db.execute_batch("ROLLBACK").expect("rollback");

    let dirs = grant(dir.path(), true);
    let root = dirs[0].path.clone();
    let ctx = SqliteCtx::new(Arc::from("probe"), dirs);
    let mut table = ResourceTable::new();
    let mut view = SqliteView {
        ctx: &ctx,
        table: &mut table,
    };
    let path = root.join("crashed.db").display().to_string();
    let reader = view.open(path.clone(), Access::ReadOnly).await;
    let waits = match reader {
        Ok(reader) => domain(
            view.query(handle(&reader), "SELECT count(*) FROM t".into(), vec![])
                .await,
        ),
        Err(failure) => failure.downcast().expect("a sqlite-error"),
    };
    assert!(
        matches!(&waits, SqliteError::Busy(m) if m.contains("waits for a writer to recover it")),
        "{waits:?}"
    );
    // A writer opening it rolls the journal back; then readers read.
    let rw = grant(dir.path(), false);
    let writer_ctx = SqliteCtx::new(Arc::from("probe"), rw);
    let mut writer = SqliteView {
        ctx: &writer_ctx,
        table: &mut table,
    };
    let db = writer
        .open(path.clone(), Access::ReadWrite)
        .await
        .expect("a writer");
    let rows = writer
        .query(handle(&db), "SELECT length(x) FROM t".into(), vec![])
        .await
        .expect("the write rolled back");
    assert_eq!(rows.rows, vec![vec![Value::Integer(100_000)]]);
}
