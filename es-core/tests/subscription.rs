//! Subscriptions on the in-memory store: catch-up then live, cancel safety, the stream form.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::EventLog;
use std::time::Duration;

use es_core::{
    AppendRequest, EventId, ExpectedVersion, LogPosition, MemoryStore, Metadata, NewEvent,
    StreamId, Subscription,
};
use futures_util::StreamExt as _;

const NO_POLL: Duration = Duration::from_secs(3600);
const DEADLINE: Duration = Duration::from_secs(30);

async fn append(store: &MemoryStore, stream: &str, event_type: &'static str) -> EventId {
    let payload = serde_json::value::to_raw_value(&serde_json::json!({})).unwrap();
    let event = NewEvent::new(event_type, 1, payload, Metadata::new());
    let id = event.id;
    store
        .append(AppendRequest::new(
            StreamId::new(stream).unwrap(),
            ExpectedVersion::Any,
            vec![event],
        ))
        .await
        .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_then_live_in_order_without_repeats() {
    let store = MemoryStore::new();
    let mut expected = Vec::new();
    for n in 0..50 {
        expected.push(append(&store, &format!("s-{}", n % 7), "tick").await);
    }
    let subscription = Subscription::new(store.clone(), LogPosition::START)
        .batch_size(4)
        .fallback_poll(NO_POLL);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..50 {
                ids.push(append(&store, &format!("s-{}", n % 7), "tick").await);
                tokio::task::yield_now().await;
            }
            ids
        })
    };
    let received: Vec<EventId> = tokio::time::timeout(
        DEADLINE,
        subscription
            .into_stream()
            .take(100)
            .map(|event| event.unwrap().id)
            .collect::<Vec<_>>(),
    )
    .await
    .expect("all 100 events arrive");
    expected.extend(writer.await.unwrap());
    assert_eq!(received, expected);
}

#[tokio::test]
async fn a_cancelled_wait_loses_nothing() {
    let store = MemoryStore::new();
    let mut subscription = Subscription::new(store.clone(), LogPosition::START)
        .batch_size(2)
        .fallback_poll(NO_POLL);
    let first = append(&store, "s", "tick").await;
    let second = append(&store, "s", "tick").await;
    assert_eq!(subscription.next().await.unwrap().id, first);
    // A wait cancelled at the end of the log leaves the subscription in place.
    assert_eq!(subscription.next().await.unwrap().id, second);
    let cancelled = tokio::time::timeout(Duration::from_millis(20), subscription.next()).await;
    assert!(cancelled.is_err(), "no third event yet");
    let third = append(&store, "s", "tick").await;
    assert_eq!(subscription.next().await.unwrap().id, third);
}

#[tokio::test]
async fn a_filtered_subscription_moves_past_other_types_to_the_head() {
    let store = MemoryStore::new();
    append(&store, "s", "noise").await;
    append(&store, "s", "noise").await;
    let mut subscription = Subscription::new(store.clone(), LogPosition::START)
        .event_types(["wanted"])
        .fallback_poll(NO_POLL);
    assert!(subscription.next_available(10).await.unwrap().is_empty());
    assert_eq!(Some(subscription.position()), store.head().await.unwrap());
    let wanted = append(&store, "s", "wanted").await;
    assert_eq!(subscription.next().await.unwrap().id, wanted);
}
