//! The `redis` capability's view called directly, as a plugin's calls reach it.

use super::*;
use local_servers::RedisServer;
use std::fmt;

fn domain<T: fmt::Debug>(result: Result<T, RedisFailure>) -> RedisError {
    result
        .expect_err("the call fails")
        .downcast()
        .expect("a redis-error, not a trap")
}

/// The capability called directly, as a plugin's calls reach it.
#[tokio::test]
async fn the_view_reaches_allowed_servers_only_and_lowers_its_failures() {
    let server = RedisServer::start();
    let url = server.url();
    let other = "redis://127.0.0.1:1/0";
    let ctx = RedisCtx::new(
        Arc::from("probe"),
        vec![RedisAllow::parse(&url).expect("valid")],
        crate::sandbox::DEFAULT_MEMORY_LIMIT,
    );
    let mut table = ResourceTable::new();
    let mut view = RedisView {
        ctx: &ctx,
        table: &mut table,
    };

    assert!(matches!(
        domain(view.open(other.into()).await),
        RedisError::Refused(m) if m.contains("not an allowed Redis server")
    ));
    assert!(matches!(
        domain(view.open("http://x".into()).await),
        RedisError::InvalidUrl(_)
    ));

    let connection = view.open(url.clone()).await.expect("allowed");
    let again = Resource::<Connection>::new_borrow(connection.rep());
    let reply = view
        .command(again, vec![b"PING".to_vec()])
        .await
        .expect("PING");
    assert_eq!(reply, vec![ReplyItem::Status("PONG".into())]);

    let again = Resource::<Connection>::new_borrow(connection.rep());
    let replies = view
        .pipeline(
            again,
            vec![
                vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()],
                vec![b"GET".to_vec(), b"k".to_vec()],
                vec![b"INCR".to_vec(), b"k".to_vec()],
            ],
        )
        .await
        .expect("a pipeline");
    assert_eq!(replies[0], vec![ReplyItem::Status("OK".into())]);
    assert_eq!(replies[1], vec![ReplyItem::Bulk(b"v".to_vec())]);
    assert!(
        matches!(&replies[2][..], [ReplyItem::Error(e)] if e.starts_with("ERR")),
        "a server error is a reply item: {:?}",
        replies[2]
    );

    let again = Resource::<Connection>::new_borrow(connection.rep());
    assert!(matches!(
        domain(view.command(again, vec![]).await),
        RedisError::InvalidCall(_)
    ));

    // Commands outside a bus's are refused, alone or in a pipeline, and
    // a refused pipeline sends nothing.
    for forbidden in [
        &["SELECT", "1"][..],
        &["CONFIG", "SET", "dir", "/tmp"],
        &["eval", "return 1", "0"],
    ] {
        let again = Resource::<Connection>::new_borrow(connection.rep());
        let args = forbidden.iter().map(|a| a.as_bytes().to_vec()).collect();
        assert!(
            matches!(domain(view.command(again, args).await), RedisError::Refused(m) if m.contains("is not allowed")),
            "{forbidden:?}"
        );
    }
    let again = Resource::<Connection>::new_borrow(connection.rep());
    let mixed = vec![
        vec![b"SET".to_vec(), b"k2".to_vec(), b"v".to_vec()],
        vec![b"SWAPDB".to_vec(), b"0".to_vec(), b"1".to_vec()],
    ];
    assert!(matches!(
        domain(view.pipeline(again, mixed).await),
        RedisError::Refused(_)
    ));
    let again = Resource::<Connection>::new_borrow(connection.rep());
    let k2 = view
        .command(again, vec![b"GET".to_vec(), b"k2".to_vec()])
        .await
        .expect("GET");
    assert_eq!(
        k2,
        vec![ReplyItem::Nil],
        "nothing of the refused pipeline ran"
    );

    // A reply that does not come within the timeout is `unavailable`.
    let again = Resource::<Connection>::new_borrow(connection.rep());
    view.set_response_timeout(again, 50).await.expect("set");
    let again = Resource::<Connection>::new_borrow(connection.rep());
    let blocked = view
        .command(
            again,
            vec![b"BLPOP".to_vec(), b"empty".to_vec(), b"2".to_vec()],
        )
        .await;
    assert!(matches!(
        domain(blocked),
        RedisError::Unavailable(m) if m.contains("no reply within 50 ms")
    ));

    // At most MAX_OPEN connections at once; closing one makes room.
    let mut held = Vec::new();
    for _ in 1..MAX_OPEN {
        held.push(view.open(url.clone()).await.expect("opens"));
    }
    assert!(matches!(
        domain(view.open(url.clone()).await),
        RedisError::Refused(m) if m.contains("at most")
    ));
    view.drop(held.pop().expect("held")).await.expect("closed");
    held.push(view.open(url.clone()).await.expect("room again"));
    for connection in held {
        view.drop(connection).await.expect("closed");
    }

    // A handle the plugin does not hold is a trap, not a redis-error.
    view.drop(connection).await.expect("closed");

    // A command the operator adds for a server goes through there.
    let scripting = RedisCtx::new(
        Arc::from("probe"),
        vec![
            RedisAllow::parse(&url)
                .expect("valid")
                .with_commands(["eval"])
                .expect("allowed"),
        ],
        crate::sandbox::DEFAULT_MEMORY_LIMIT,
    );
    let mut view = RedisView {
        ctx: &scripting,
        table: view.table,
    };
    let connection = view.open(url.clone()).await.expect("allowed");
    let reply = view
        .command(
            connection,
            ["EVAL", "return 7", "0"]
                .map(|a| a.as_bytes().to_vec())
                .to_vec(),
        )
        .await
        .expect("EVAL is allowed here");
    assert_eq!(reply, vec![ReplyItem::Integer(7)]);
    let never = RedisAllow::parse(&url)
        .expect("valid")
        .with_commands(["select"]);
    assert!(never.expect_err("never").contains("SELECT"));
    let forged = Resource::<Connection>::new_borrow(12345);
    let failure = view
        .command(forged, vec![b"PING".to_vec()])
        .await
        .expect_err("no such connection");
    assert!(failure.downcast().is_err(), "a trap");
}

#[test]
fn an_allowed_server_matches_by_address_and_database_if_named() {
    let any_db = RedisAllow::parse("redis://127.0.0.1:6379").expect("valid");
    let db2 = RedisAllow::parse("redis://127.0.0.1:6379/2").expect("valid");
    let info = |url: &str| parse_url(url).expect("valid");
    assert!(any_db.allows(&info("redis://127.0.0.1:6379/5")));
    assert!(any_db.allows(&info("redis://user:secret@127.0.0.1:6379")));
    assert!(!any_db.allows(&info("redis://127.0.0.1:6380")));
    assert!(!any_db.allows(&info("redis://10.0.0.1:6379")));
    assert!(db2.allows(&info("redis://127.0.0.1:6379/2")));
    assert!(!db2.allows(&info("redis://127.0.0.1:6379/3")));
    assert!(!db2.allows(&info("redis://127.0.0.1:6379")));
}

#[test]
fn passwords_never_reach_messages() {
    assert_eq!(
        redact("redis://app:hunter2@127.0.0.1:6379/1"),
        "redis://app:***@127.0.0.1:6379/1"
    );
    assert_eq!(redact("redis://127.0.0.1"), "redis://127.0.0.1");
    let refused = RedisAllow::parse("http://app:hunter2@127.0.0.1").expect_err("not redis");
    assert!(!refused.contains("hunter2"), "{refused}");
}

#[test]
fn nested_replies_flatten_in_prefix_order() {
    let value = Value::Array(vec![
        Value::BulkString(b"a".to_vec()),
        Value::Map(vec![(Value::Int(1), Value::Nil)]),
        Value::Okay,
    ]);
    assert_eq!(
        flatten(value),
        vec![
            ReplyItem::Array(3),
            ReplyItem::Bulk(b"a".to_vec()),
            ReplyItem::Mapping(1),
            ReplyItem::Integer(1),
            ReplyItem::Nil,
            ReplyItem::Status("OK".into()),
        ]
    );
}
