//! Live subscriptions on PostgreSQL: catch-up then live without a gap or a duplicate at the seam,
//! woken by `LISTEN/NOTIFY`, with the fallback poll covering a lost notification.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::EventLog;
mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use es_core::{
    AppendRequest, EventId, ExpectedVersion, LogPosition, Metadata, NewEvent, RecordedEvent,
    StreamId, Subscription,
};
use es_postgres::PostgresStore;

/// Long enough that a test relying on it would time out: a live event must come from a
/// notification, not from the poll.
const NO_POLL: Duration = Duration::from_secs(3600);
/// Bounds a wait that must end; a hang means a lost event, and fails the test instead.
const DEADLINE: Duration = Duration::from_secs(60);

fn event(event_type: &'static str, n: u64) -> NewEvent {
    let payload = serde_json::value::to_raw_value(&serde_json::json!({ "n": n })).unwrap();
    NewEvent::new(event_type, 1, payload, Metadata::new())
}

async fn append(store: &PostgresStore, stream: &str, events: Vec<NewEvent>) -> Vec<EventId> {
    let ids = events.iter().map(|event| event.id).collect();
    store
        .append(AppendRequest::new(
            StreamId::new(stream).unwrap(),
            ExpectedVersion::Any,
            events,
        ))
        .await
        .unwrap();
    ids
}

async fn next(subscription: &mut Subscription<PostgresStore>) -> RecordedEvent {
    tokio::time::timeout(DEADLINE, subscription.next())
        .await
        .expect("the subscription hands out the next committed event")
        .unwrap()
}

/// Every event exactly once, in log order, each stream's versions consecutive.
fn check_exactly_once(received: &[RecordedEvent], expected: &HashSet<EventId>) {
    let ids: Vec<EventId> = received.iter().map(|event| event.id).collect();
    let unique: HashSet<EventId> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event was handed out twice");
    assert_eq!(
        &unique, expected,
        "the events handed out are not the ones committed"
    );
    for pair in received.windows(2) {
        assert!(
            pair[0].log_position() < pair[1].log_position(),
            "out of log order: {} then {}",
            pair[0].log_position(),
            pair[1].log_position()
        );
    }
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for event in received {
        let last = versions.entry(event.stream_id.as_str()).or_default();
        assert_eq!(
            event.stream_version.get(),
            *last + 1,
            "a hole in {}",
            event.stream_id
        );
        *last = event.stream_version.get();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_then_live_hands_out_every_event_once_across_the_seam() {
    common::with_schemas(8, |pool, schemas| async move {
        let store = schemas.store(&pool).await;
        let mut expected = HashSet::new();
        // History: 300 events in 30 streams, written before the subscription starts.
        for stream in 0..30 {
            let events = (0..10).map(|n| event("tick", n)).collect();
            expected.extend(append(&store, &format!("history-{stream}"), events).await);
        }
        // A small batch size puts the seam between catch-up and live mid-stream, several
        // batches in; no fallback poll, so live events can only arrive by notification.
        let mut subscription = Subscription::new(store.clone(), LogPosition::START)
            .batch_size(7)
            .fallback_poll(NO_POLL);

        // Live: four writers append 300 more while the subscriber is still catching up.
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    for n in 0..75 {
                        let stream = format!("live-{writer}-{}", n % 5);
                        ids.extend(append(&store, &stream, vec![event("tick", n)]).await);
                        if n % 10 == 0 {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                    ids
                })
            })
            .collect();

        let mut received = Vec::new();
        while received.len() < 600 {
            received.push(next(&mut subscription).await);
        }
        for writer in writers {
            expected.extend(writer.await.unwrap());
        }
        check_exactly_once(&received, &expected);
        assert_eq!(subscription.position(), received[599].log_position());

        // Nothing more is handed out: the seam did not repeat anything.
        let extra = subscription.next_available(10).await.unwrap();
        assert!(extra.is_empty(), "handed out again: {extra:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_subscriber_is_woken_by_the_commit_notification() {
    common::with_schemas(4, |pool, schemas| async move {
        let schema = schemas.fresh();
        let open = || {
            PostgresStore::options()
                .schema(schema.clone())
                .with_pool(pool.clone())
        };
        // Two store handles, as in two processes: the reader's is woken only by NOTIFY.
        let store = open().await.unwrap();
        let reader = open().await.unwrap();
        let mut subscription =
            Subscription::new(reader.clone(), LogPosition::START).fallback_poll(NO_POLL);
        let waiting = tokio::spawn(async move {
            let event = next(&mut subscription).await;
            (event, subscription)
        });
        // Let the subscriber find the log empty and start waiting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ids = append(&store, "wake-1", vec![event("tick", 1)]).await;
        let (woken_by, mut subscription) = waiting.await.unwrap();
        assert_eq!(woken_by.id, ids[0]);

        let ids = append(&store, "wake-1", vec![event("tick", 2)]).await;
        assert_eq!(next(&mut subscription).await.id, ids[0]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_poll_finds_an_event_whose_notification_was_lost() {
    common::with_schemas(4, |pool, schemas| async move {
        let schema = schemas.fresh();
        let store = PostgresStore::options()
            .schema(schema.clone())
            .with_pool(pool.clone())
            .await
            .unwrap();
        let mut subscription = Subscription::new(store.clone(), LogPosition::START)
            .fallback_poll(Duration::from_millis(100));
        let waiting = tokio::spawn(async move { next(&mut subscription).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Written behind the store's back: committed, but no notification is sent.
        let event_id = uuid::Uuid::new_v4();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO \"{schema}\".events \
             (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata) \
             VALUES ('quiet-1', 1, $1, 'tick', 1, '{{}}', '{{}}')"
        )))
        .bind(event_id)
        .execute(&pool)
        .await
        .unwrap();
        let event = waiting.await.unwrap();
        assert_eq!(event.id.as_uuid(), &event_id);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_resumed_from_its_position_neither_repeats_nor_skips() {
    common::with_schemas(4, |pool, schemas| async move {
        let store = schemas.store(&pool).await;
        let events = (0..20).map(|n| event("tick", n)).collect();
        let ids = append(&store, "resume-1", events).await;

        let mut first = Subscription::new(store.clone(), LogPosition::START).batch_size(8);
        let mut received = Vec::new();
        for _ in 0..5 {
            received.push(next(&mut first).await);
        }
        // Dropped with events still buffered: they are handed out again after a resume.
        let resume_at = first.position();
        drop(first);

        let mut second = Subscription::new(store.clone(), resume_at);
        received.extend(second.next_available(100).await.unwrap());
        let received_ids: Vec<EventId> = received.iter().map(|event| event.id).collect();
        assert_eq!(received_ids, ids);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_subscription_sees_only_its_types_and_is_still_woken() {
    common::with_schemas(4, |pool, schemas| async move {
        let store = schemas.store(&pool).await;
        append(
            &store,
            "mixed-1",
            vec![event("noise", 1), event("wanted", 2)],
        )
        .await;
        let mut subscription = Subscription::new(store.clone(), LogPosition::START)
            .event_types(["wanted"])
            .fallback_poll(NO_POLL);
        assert_eq!(next(&mut subscription).await.event_type, "wanted");
        let waiting = tokio::spawn(async move { next(&mut subscription).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&store, "mixed-1", vec![event("noise", 3)]).await;
        let ids = append(&store, "mixed-1", vec![event("wanted", 4)]).await;
        let event = waiting.await.unwrap();
        assert_eq!((event.id, event.event_type.as_str()), (ids[0], "wanted"));
    })
    .await;
}
