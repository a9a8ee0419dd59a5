//! The global read never passes an event that commits later with a smaller key.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::EventLog;
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use es_core::{
    AppendRequest, EventFilter, EventId, ExpectedVersion, LogPosition, Metadata, NewEvent,
    StreamId, StreamVersion,
};
use es_postgres::PostgresStore;

fn event(n: u64) -> NewEvent {
    let payload = serde_json::value::to_raw_value(&serde_json::json!({ "n": n })).unwrap();
    NewEvent::new("tick", 1, payload, Metadata::new())
}

fn append(stream: &str, n: u64) -> AppendRequest {
    AppendRequest::new(
        StreamId::new(stream).unwrap(),
        ExpectedVersion::Any,
        vec![event(n)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_stops_short_of_an_open_transaction_until_it_commits() {
    // Open transactions hold back every gap-free reader on the server: use a server of our own.
    let (url, _cluster) = common::private_or_shared();
    common::with_schemas_at(&url, 4, |pool, schemas| async move {
        let store = schemas.store(&pool).await;
        // A takes the lower position and stays open...
        let mut open = pool.begin().await.unwrap();
        let early = store
            .append_in(&mut open, append("early", 1))
            .await
            .unwrap();
        // ...while B takes a higher position and commits.
        let late = store.append(append("late", 2)).await.unwrap();
        let early_position = early.last_position.unwrap().position;
        let late_position = late.last_position.unwrap().position;
        assert!(
            early_position < late_position,
            "the open transaction took the lower position"
        );

        // A reader must not return B: it would move past A's position and never come back.
        let visible = store
            .read_all(LogPosition::START, 100, EventFilter::All)
            .await
            .unwrap();
        assert!(
            visible.is_empty(),
            "read past an open transaction: {visible:?}"
        );
        assert_eq!(store.head().await.unwrap(), None);

        open.commit().await.unwrap();
        let visible = store
            .read_all(LogPosition::START, 100, EventFilter::All)
            .await
            .unwrap();
        let streams: Vec<&str> = visible.iter().map(|e| e.stream_id.as_str()).collect();
        assert_eq!(streams, ["early", "late"]);
        assert_eq!(store.head().await.unwrap(), Some(visible[1].log_position()));
    })
    .await;
}

/// A tiny deterministic generator, so the run is reproducible from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Default)]
struct Outcome {
    committed: HashSet<EventId>,
    rolled_back: HashSet<EventId>,
}

async fn write(store: PostgresStore, writer: u64, rounds: u64, outcome: Arc<Mutex<Outcome>>) {
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15 ^ (writer + 1));
    for round in 0..rounds {
        let stream = format!("writer-{writer}-{}", random.next() % 3);
        let batch: Vec<NewEvent> = (0..=random.next() % 3)
            .map(|n| event(round * 10 + n))
            .collect();
        let ids: Vec<EventId> = batch.iter().map(|e| e.id).collect();
        let mut transaction = store.pool().begin().await.unwrap();
        let request =
            AppendRequest::new(StreamId::new(stream).unwrap(), ExpectedVersion::Any, batch);
        store.append_in(&mut transaction, request).await.unwrap();
        // Hold the transaction open for a while so that commits interleave out of order.
        tokio::time::sleep(Duration::from_millis(random.next() % 6)).await;
        let outcome_now = |committed: bool| {
            let mut outcome = outcome.lock().unwrap();
            let set = if committed {
                &mut outcome.committed
            } else {
                &mut outcome.rolled_back
            };
            set.extend(ids.iter().copied());
        };
        if random.next().is_multiple_of(5) {
            transaction.rollback().await.unwrap();
            outcome_now(false);
        } else {
            transaction.commit().await.unwrap();
            outcome_now(true);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_and_a_reader_see_every_committed_event_once_in_stream_order() {
    // Open transactions hold back every gap-free reader on the server: use a server of our own.
    let (url, _cluster) = common::private_or_shared();
    common::with_schemas_at(&url, 24, |pool, schemas| async move {
        let store = schemas.store(&pool).await;
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let writers: Vec<_> = (0..16)
            .map(|writer| tokio::spawn(write(store.clone(), writer, 25, Arc::clone(&outcome))))
            .collect();

        let mut seen = Vec::new();
        let mut checkpoint = LogPosition::START;
        let mut read = |batch: Vec<es_core::RecordedEvent>, checkpoint: &mut LogPosition| {
            for event in batch {
                assert!(
                    event.log_position() > *checkpoint,
                    "the read went backwards"
                );
                *checkpoint = event.log_position();
                seen.push(event);
            }
        };
        while writers.iter().any(|writer| !writer.is_finished()) {
            let batch = store
                .read_all(checkpoint, 7, EventFilter::All)
                .await
                .unwrap();
            read(batch, &mut checkpoint);
        }
        for writer in writers {
            writer.await.unwrap();
        }
        loop {
            let batch = store
                .read_all(checkpoint, 50, EventFilter::All)
                .await
                .unwrap();
            if batch.is_empty() {
                break;
            }
            read(batch, &mut checkpoint);
        }

        let outcome = outcome.lock().unwrap();
        let seen_ids: Vec<EventId> = seen.iter().map(|e| e.id).collect();
        let unique: HashSet<EventId> = seen_ids.iter().copied().collect();
        assert_eq!(unique.len(), seen_ids.len(), "an event was read twice");
        assert!(
            unique.is_disjoint(&outcome.rolled_back),
            "a rolled-back event was read"
        );
        assert_eq!(unique, outcome.committed, "a committed event was missed");
        let mut last_version: HashMap<&str, StreamVersion> = HashMap::new();
        for event in &seen {
            let last = last_version.entry(event.stream_id.as_str()).or_default();
            assert_eq!(
                event.stream_version,
                last.next(),
                "stream order or a hole in {}",
                event.stream_id
            );
            *last = event.stream_version;
        }
        assert!(
            outcome.committed.len() > 200,
            "the run committed too little to mean anything"
        );
    })
    .await;
}
