//! A consumer that returns more than it was asked for is refused, and the
//! events of the refused batch are not delivered.

use hermes_host::{Consumer, Error, Grants, Offset};
use hermes_wasm_tests::{guests, load};

#[tokio::test]
async fn a_batch_longer_than_asked_is_refused_whole() {
    let plugin = load(guests::OVERFILL, &[], Grants::default()).await;
    let mut consumer = Consumer::create(plugin, &serde_json::json!({}))
        .await
        .expect("create");
    consumer.open().await.expect("open");
    let refused = consumer.next_batch(4).await;
    assert!(
        matches!(&refused, Err(Error::Trapped { reason, .. }) if reason.contains("returned 5 events, more than the 4 asked for")),
        "{refused:?}"
    );
    // Nothing was delivered: a fresh instance starts from the beginning.
    let found = consumer
        .find_next_event_of_category(hermes_host::Category::Base)
        .await
        .expect("find")
        .expect("an event");
    assert_eq!(found.offset, Offset::Int(0));
}
