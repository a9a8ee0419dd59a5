#![allow(clippy::expect_used, clippy::unwrap_used)] // test code
//! The NATS server restarts under a running publisher: it retries until the server is back and
//! every event ends up on the stream exactly once. Runs its own server, so the shared one is
//! not disturbed.

mod common;

use std::time::Duration;

use common::{Fixture, PrivateNats, append_many, assert_each_event_once, eventually, with_fixture};
use es_nats::async_nats::connection::State;
use es_nats::{JetStreamPublisher, PublisherError};
use futures_util::FutureExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_rides_out_a_nats_restart_and_publishes_each_event_once() {
    with_fixture(|fixture: Fixture| async move {
        let mut server = PrivateNats::start().await;
        let client = common::client(&server.address()).await;
        let jetstream = common::context(client.clone());
        let store = fixture.store().await;
        let names = fixture.names(&jetstream);
        let publisher =
            JetStreamPublisher::builder(store.clone(), jetstream.clone(), &names.stream)
                .subject_prefix(&names.prefix)
                .checkpoint(&names.checkpoint)
                .batch_size(4)
                .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
                .poll_interval(Duration::from_millis(100))
                .build()
                .unwrap();
        publisher
            .ensure_stream(Duration::from_secs(600))
            .await
            .unwrap();
        let count =
            || common::message_count(&jetstream, &names.stream).map(Option::unwrap_or_default);

        append_many(&store, 0, 10).await;
        let running = publisher.clone().spawn();
        eventually("the first ten events", Duration::from_secs(15), || {
            count().map(|n| n == 10)
        })
        .await;
        let first_ten = common::all_events(&store, 10).await;
        let tenth = first_ten[9].log_position();
        eventually(
            "the checkpoint at the tenth event",
            Duration::from_secs(10),
            || {
                publisher
                    .checkpoint()
                    .map(|checkpoint| checkpoint.unwrap() == tenth)
            },
        )
        .await;

        server.stop().await;
        eventually("the client to notice", Duration::from_secs(10), || {
            let state = client.connection_state();
            async move { state == State::Disconnected }
        })
        .await;
        append_many(&store, 10, 10).await;
        let events = common::all_events(&store, 20).await;

        // With NATS down, publishing fails with a typed error naming the event, and the
        // checkpoint stays after the last acknowledged event.
        let error = publisher.publish_available().await.unwrap_err();
        match &error {
            PublisherError::Send { event_id, .. } | PublisherError::Ack { event_id, .. } => {
                assert!(
                    first_ten.iter().all(|event| event.id != *event_id),
                    "a new event failed, not an acknowledged one: {error}"
                );
            }
            other => panic!("expected a send or ack failure, got {other:?}"),
        }
        assert_eq!(publisher.checkpoint().await.unwrap(), tenth);

        server.restart().await;
        eventually(
            "all twenty events after the restart",
            Duration::from_secs(30),
            || count().map(|n| n >= 20),
        )
        .await;
        let last = events[19].log_position();
        eventually(
            "the checkpoint at the last event",
            Duration::from_secs(15),
            || {
                publisher
                    .checkpoint()
                    .map(|checkpoint| checkpoint.unwrap() == last)
            },
        )
        .await;
        running.shutdown().await;
        assert_each_event_once(&jetstream, &names.stream, &events).await;
        drop(server);
    })
    .await;
}
