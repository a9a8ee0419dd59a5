#![allow(clippy::expect_used, clippy::unwrap_used)] // test code
//! Every event reaches the JetStream stream once, on its subject, with its envelope in headers.

mod common;

use std::time::Duration;

use common::{Fixture, append, append_many, assert_each_event_once, eventually, with_fixture};
use es_core::{CheckpointStore as _, MemoryStore};
use es_nats::message::header;
use es_nats::{ConfigError, JetStreamPublisher, PublisherError};
use futures_util::FutureExt as _;

const WINDOW: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_appears_once_on_its_subject_with_its_headers() {
    with_fixture(|fixture: Fixture| async move {
        let store = fixture.store().await;
        let names = fixture.names(&fixture.jetstream);
        let publisher =
            JetStreamPublisher::builder(store.clone(), fixture.jetstream.clone(), &names.stream)
                .subject_prefix(&names.prefix)
                .checkpoint(&names.checkpoint)
                .batch_size(4)
                .build()
                .unwrap();
        publisher.ensure_stream(WINDOW).await.unwrap();

        append_many(&store, 0, 11).await;
        let events = common::all_events(&store, 11).await;
        let last = events.last().unwrap().log_position();
        let published = common::publish_until(&publisher, last).await;
        assert_eq!(published, (11, 0));
        assert_eq!(store.checkpoint(&names.checkpoint).await.unwrap(), last);

        assert_each_event_once(&fixture.jetstream, &names.stream, &events).await;
        let messages = common::messages(&fixture.jetstream, &names.stream).await;
        for (message, event) in messages.iter().zip(&events) {
            let expected_subject = match event.event_type.as_str() {
                "OrderPlaced" => format!("{}.order.OrderPlaced", names.prefix),
                "order.paid" => format!("{}.order.order%2Epaid", names.prefix),
                _ => format!("{}.customer.CustomerRenamed", names.prefix),
            };
            assert_eq!(message.subject.as_str(), expected_subject);
            assert_eq!(publisher.subject(event), expected_subject);
            let get = |name: &str| {
                message
                    .headers
                    .get(name)
                    .unwrap_or_else(|| panic!("header {name}"))
                    .to_string()
            };
            assert_eq!(
                message
                    .headers
                    .get(es_nats::async_nats::header::NATS_MESSAGE_ID)
                    .unwrap()
                    .as_str(),
                event.id.to_string()
            );
            assert_eq!(get(header::EVENT_ID), event.id.to_string());
            assert_eq!(get(header::STREAM_ID), event.stream_id.as_str());
            assert_eq!(
                get(header::STREAM_VERSION),
                event.stream_version.to_string()
            );
            assert_eq!(get(header::EVENT_TYPE), event.event_type);
            assert_eq!(get(header::SCHEMA_VERSION), "1");
            assert_eq!(get(header::POSITION), event.position.to_string());
            assert_eq!(get(header::TRANSACTION), event.transaction.to_string());
            let metadata = &event.metadata;
            assert_eq!(
                get(header::CORRELATION_ID),
                metadata.correlation_id.unwrap().to_string()
            );
            assert_eq!(
                get(header::CAUSATION_ID),
                metadata.causation_id.unwrap().to_string()
            );
            let headers: std::collections::BTreeMap<String, String> =
                serde_json::from_str(&get(header::METADATA_HEADERS)).unwrap();
            assert_eq!(headers, metadata.headers);
            let recorded_at = get(header::RECORDED_AT);
            assert!(
                recorded_at.ends_with('Z') && recorded_at.len() == 30,
                "{recorded_at}"
            );
            assert!(recorded_at.starts_with(&event.recorded_at.year().to_string()));
            assert_eq!(message.payload.as_ref(), event.payload.get().as_bytes());
        }

        // Nothing new: nothing published, nothing moves.
        let again = publisher.publish_available().await.unwrap();
        assert_eq!((again.events, again.checkpoint), (0, last));
        assert_each_event_once(&fixture.jetstream, &names.stream, &events).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_escapes_subjects_and_the_running_publisher_follows_the_log() {
    with_fixture(|fixture: Fixture| async move {
        let store = MemoryStore::new();
        let names = fixture.names(&fixture.jetstream);
        let publisher =
            JetStreamPublisher::builder(store.clone(), fixture.jetstream.clone(), &names.stream)
                .subject_prefix(&names.prefix)
                .poll_interval(Duration::from_millis(50))
                .build()
                .unwrap();
        assert_eq!(publisher.checkpoint_name(), "nats_publisher");
        publisher.ensure_stream(WINDOW).await.unwrap();

        append(&store, "odd.name-1", "a b*>", 1).await;
        append(&store, "noaggregate", "Happened", 2).await;
        let running = publisher.clone().spawn();
        let stream = names.stream.clone();
        eventually("the first two events", Duration::from_secs(15), || {
            common::message_count(&fixture.jetstream, &stream).map(|count| count == Some(2))
        })
        .await;
        append_many(&store, 3, 5).await;
        eventually("all seven events", Duration::from_secs(15), || {
            common::message_count(&fixture.jetstream, &stream).map(|count| count == Some(7))
        })
        .await;
        // The task commits its checkpoint at the end of the log.
        let events = common::all_events(&store, 7).await;
        let last = events.last().unwrap().log_position();
        eventually(
            "the checkpoint at the last event",
            Duration::from_secs(5),
            || {
                let store = store.clone();
                async move { store.checkpoint("nats_publisher").await.unwrap() == last }
            },
        )
        .await;
        running.shutdown().await;

        assert_each_event_once(&fixture.jetstream, &names.stream, &events).await;
        let messages = common::messages(&fixture.jetstream, &names.stream).await;
        let subjects: Vec<&str> = messages.iter().map(|m| m.subject.as_str()).collect();
        assert_eq!(
            subjects[..2],
            [
                format!("{}.odd%2Ename.a%20b%2A%3E", names.prefix),
                format!("{}.noaggregate.Happened", names.prefix),
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_the_contexts_ack_limit_does_not_stall() {
    with_fixture(|fixture: Fixture| async move {
        let store = MemoryStore::new();
        // A context that allows only eight acknowledgements in flight, waiting beyond that.
        let jetstream = es_nats::async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(2))
            .max_ack_inflight(8)
            .build(fixture.jetstream.client());
        let names = fixture.names(&jetstream);
        let publisher =
            JetStreamPublisher::builder(store.clone(), jetstream.clone(), &names.stream)
                .subject_prefix(&names.prefix)
                .batch_size(100)
                .max_in_flight(8)
                .build()
                .unwrap();
        publisher.ensure_stream(WINDOW).await.unwrap();
        append_many(&store, 0, 150).await;

        let published =
            tokio::time::timeout(Duration::from_secs(30), publisher.publish_available())
                .await
                .expect("publishing finishes")
                .unwrap();
        assert_eq!((published.events, published.duplicates), (150, 0));
        let events = common::all_events(&store, 150).await;
        assert_each_event_once(&jetstream, &names.stream, &events).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_no_stream_takes_fails_with_the_event_and_subject_and_keeps_the_checkpoint() {
    with_fixture(|fixture: Fixture| async move {
        let store = MemoryStore::new();
        let names = fixture.names(&fixture.jetstream);
        // The stream is never created.
        let publisher =
            JetStreamPublisher::builder(store.clone(), fixture.jetstream.clone(), &names.stream)
                .subject_prefix(&names.prefix)
                .build()
                .unwrap();
        append(&store, "order-1", "OrderPlaced", 1).await;
        let event = common::all_events(&store, 1).await.remove(0);

        let error = publisher.publish_available().await.unwrap_err();
        match &error {
            PublisherError::Ack {
                event_id, subject, ..
            } => {
                assert_eq!(*event_id, event.id);
                assert_eq!(*subject, format!("{}.order.OrderPlaced", names.prefix));
            }
            other => panic!("expected an Ack error, got {other:?}"),
        }
        let message = error.to_string();
        assert!(message.contains(&event.id.to_string()), "{message}");
        assert!(message.contains("order.OrderPlaced"), "{message}");
        assert_eq!(
            publisher.checkpoint().await.unwrap(),
            es_core::LogPosition::START
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_prefixes_and_stream_names_are_refused() {
    // No server is contacted: building only checks the configuration.
    let client = es_nats::async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect("127.0.0.1:1")
        .await
        .unwrap();
    let jetstream = es_nats::async_nats::jetstream::new(client);
    let build = |stream: &str, prefix: &str| {
        JetStreamPublisher::builder(MemoryStore::new(), jetstream.clone(), stream)
            .subject_prefix(prefix)
            .build()
    };
    assert!(build("EVENTS", "es.events").is_ok());
    assert!(matches!(
        build("EVENTS", "es.*"),
        Err(ConfigError::InvalidSubjectPrefix { .. })
    ));
    assert!(matches!(
        build("EVENTS", "es..events"),
        Err(ConfigError::InvalidSubjectPrefix { .. })
    ));
    assert!(matches!(
        build("MY.EVENTS", "es"),
        Err(ConfigError::InvalidStreamName { .. })
    ));
    assert!(matches!(
        build("", "es"),
        Err(ConfigError::InvalidStreamName { .. })
    ));
    let error = build("EVENTS", "es events").unwrap_err().to_string();
    assert!(error.contains("`es events`"), "{error}");
}
