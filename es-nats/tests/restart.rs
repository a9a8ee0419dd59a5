#![allow(clippy::expect_used, clippy::unwrap_used)] // test code
//! A publisher restarted mid-way: what it published but did not checkpoint is published again,
//! and JetStream keeps one copy.

mod common;

use std::time::Duration;

use common::{Fixture, append_many, assert_each_event_once, eventually, with_fixture};
use es_core::CheckpointStore;
use es_nats::JetStreamPublisher;
use futures_util::FutureExt as _;

const WINDOW: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_publishing_and_checkpointing_repeats_nothing_on_the_stream() {
    with_fixture(|fixture: Fixture| async move {
        let store = fixture.store().await;
        let names = fixture.names(&fixture.jetstream);
        let publisher = |batch| {
            JetStreamPublisher::builder(store.clone(), fixture.jetstream.clone(), &names.stream)
                .subject_prefix(&names.prefix)
                .checkpoint(&names.checkpoint)
                .batch_size(batch)
                .build()
                .unwrap()
        };
        let first = publisher(5);
        first.ensure_stream(WINDOW).await.unwrap();

        append_many(&store, 0, 12).await;
        let events = common::all_events(&store, 12).await;
        let published = common::publish_until(&first, events[11].log_position()).await;
        assert_eq!(published, (12, 0));

        // The crash: batches two and three (events 6 to 12) reached JetStream, but their
        // checkpoint commits were lost. The store's checkpoint still says event 5.
        let after_first_batch = events[4].log_position();
        let transaction = store.begin(&names.checkpoint).await.unwrap();
        store
            .commit(transaction, &names.checkpoint, after_first_batch)
            .await
            .unwrap();

        append_many(&store, 12, 8).await;
        let events = common::all_events(&store, 20).await;

        // A fresh publisher (another process, after the restart) with another batch size.
        let restarted = publisher(3);
        assert_eq!(restarted.checkpoint().await.unwrap(), after_first_batch);
        let published = common::publish_until(&restarted, events[19].log_position()).await;
        assert_eq!(
            published,
            (15, 7),
            "events 6 to 20 sent again; JetStream already had 6 to 12"
        );
        assert_each_event_once(&fixture.jetstream, &names.stream, &events).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_publisher_stopped_and_started_again_publishes_each_event_once() {
    with_fixture(|fixture: Fixture| async move {
        let store = fixture.store().await;
        let names = fixture.names(&fixture.jetstream);
        let publisher =
            JetStreamPublisher::builder(store.clone(), fixture.jetstream.clone(), &names.stream)
                .subject_prefix(&names.prefix)
                .checkpoint(&names.checkpoint)
                .batch_size(4)
                .poll_interval(Duration::from_millis(100))
                .build()
                .unwrap();
        publisher.ensure_stream(WINDOW).await.unwrap();
        let count = || {
            common::message_count(&fixture.jetstream, &names.stream).map(Option::unwrap_or_default)
        };

        append_many(&store, 0, 10).await;
        let running = publisher.clone().spawn();
        eventually("ten events", Duration::from_secs(15), || {
            count().map(|n| n == 10)
        })
        .await;
        running.shutdown().await;

        // While it is down, more events; and the checkpoint goes back (its last commits lost).
        append_many(&store, 10, 10).await;
        let events = common::all_events(&store, 20).await;
        let transaction = store.begin(&names.checkpoint).await.unwrap();
        store
            .commit(transaction, &names.checkpoint, events[2].log_position())
            .await
            .unwrap();

        let running = publisher.clone().spawn();
        eventually("twenty events", Duration::from_secs(15), || {
            count().map(|n| n == 20)
        })
        .await;
        let last = events[19].log_position();
        eventually(
            "the checkpoint at the last event",
            Duration::from_secs(10),
            || {
                publisher
                    .checkpoint()
                    .map(|checkpoint| checkpoint.unwrap() == last)
            },
        )
        .await;
        running.shutdown().await;
        assert_each_event_once(&fixture.jetstream, &names.stream, &events).await;
    })
    .await;
}
