//! Appending and loading one stream.

use std::borrow::Cow;

use serde_json::json;
use serde_json::value::RawValue;

use crate::event::{NewEvent, RecordedEvent};
use crate::metadata::Metadata;
use crate::store::checkpoint::CheckpointStore;
use crate::store::event_store::EventStore;
use crate::store::log::EventFilter;
use crate::stream::{ExpectedVersion, StreamVersion};

use super::helpers::{
    Ids, NUMBERED, OrFail as _, append_any, append_ok, id_list, load, load_all, new_event,
    numbered, payload, raw, read_log, start_stream, stream, version_list, version_of, versions,
};

/// An appended event loads back unchanged: id, stream, version, type, schema version, payload,
/// metadata (correlation, causation, headers); the store sets a global position and
/// `recorded_at`; `load` and `read_all` agree on what they return.
pub async fn append_then_load_round_trips<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("append_then_load_round_trips");
    let stream_id = stream("conformance-round-trip");
    let payload_one = json!({ "sku": "A-1", "quantity": 3, "tags": ["x", "y"], "gift": false });
    let payload_two = json!({ "reason": "customer asked" });
    let metadata = Metadata::new()
        .with_correlation_id(ids.command(1))
        .with_causation_id(ids.command(2))
        .with_header("user-agent", "conformance-suite/1.0")
        .with_header("tenant", "t-1");
    let first = NewEvent {
        id: ids.event(1),
        event_type: Cow::Borrowed("conformance.item_added"),
        schema_version: 2,
        payload: raw(&payload_one),
        metadata: metadata.clone(),
    };
    let second = NewEvent {
        id: ids.event(2),
        event_type: Cow::Borrowed("conformance.order_cancelled"),
        schema_version: 1,
        payload: raw(&payload_two),
        metadata: Metadata::new(),
    };
    let before = time::OffsetDateTime::now_utc();
    start_stream(&store, &stream_id, vec![first, second]).await;

    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(loaded.len(), 2, "two events were appended");
    let (one, two) = (&loaded[0], &loaded[1]);
    assert_eq!(one.id, ids.event(1), "the event id changed");
    assert_eq!(two.id, ids.event(2), "the event id changed");
    assert_eq!(one.stream_id, stream_id);
    assert_eq!(two.stream_id, stream_id);
    assert_eq!(one.stream_version, StreamVersion(1));
    assert_eq!(two.stream_version, StreamVersion(2));
    assert_eq!(one.event_type, "conformance.item_added");
    assert_eq!(two.event_type, "conformance.order_cancelled");
    assert_eq!(one.schema_version, 2, "the schema version changed");
    assert_eq!(two.schema_version, 1, "the schema version changed");
    assert_eq!(payload(one), payload_one, "the payload changed");
    assert_eq!(payload(two), payload_two, "the payload changed");
    assert_eq!(one.metadata, metadata, "the metadata changed");
    assert_eq!(
        two.metadata,
        Metadata::new(),
        "empty metadata came back non-empty"
    );
    assert!(
        one.position.get() > 0,
        "the store assigned no global position"
    );
    assert!(one.log_position() < two.log_position());
    for event in &loaded {
        let skew = (event.recorded_at - before).abs();
        assert!(
            skew < time::Duration::days(1),
            "recorded_at {} is not the time of the append (about {before})",
            event.recorded_at
        );
    }

    let read = read_log(&store, EventFilter::All).await;
    let summary = |events: &[RecordedEvent]| -> Vec<_> {
        events
            .iter()
            .map(|e| {
                (
                    e.id,
                    e.stream_id.clone(),
                    e.stream_version,
                    e.log_position(),
                    e.event_type.clone(),
                    e.schema_version,
                    payload(e),
                    e.metadata.clone(),
                    e.recorded_at,
                )
            })
            .collect()
    };
    assert_eq!(
        summary(&read),
        summary(&loaded),
        "read_all and load return different records"
    );
}

/// Stream versions run 1, 2, 3 ... without holes across several appends of different sizes.
pub async fn versions_run_from_one_without_holes<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("versions_run_from_one_without_holes");
    let stream_id = stream("conformance-versions");
    let mut next = 1;
    for size in [1, 3, 2, 5] {
        let current = version_of(&store, &stream_id).await;
        let committed = append_ok(
            &store,
            &stream_id,
            ExpectedVersion::Exact(current),
            numbered(ids, next..next + size),
        )
        .await;
        assert_eq!(committed.version_after, StreamVersion(next + size - 1));
        next += size;
    }
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(
        version_list(&loaded),
        versions(1..=11),
        "versions have holes"
    );
    assert_eq!(
        id_list(&loaded),
        (1..=11).map(|n| ids.event(n)).collect::<Vec<_>>(),
        "events load in another order than they were appended"
    );
}

/// [`Committed`](crate::store::Committed) reports the versions before and after the append and the last event's
/// log position.
pub async fn committed_reports_versions_and_position<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("committed_reports_versions_and_position");
    let stream_id = stream("conformance-committed");
    let first = start_stream(&store, &stream_id, numbered(ids, 1..=3)).await;
    assert_eq!(first.version_before, StreamVersion(0));
    assert_eq!(first.version_after, StreamVersion(3));
    let second = append_ok(
        &store,
        &stream_id,
        ExpectedVersion::Exact(StreamVersion(3)),
        numbered(ids, 4..=5),
    )
    .await;
    assert_eq!(second.version_before, StreamVersion(3));
    assert_eq!(second.version_after, StreamVersion(5));

    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(
        first.last_position,
        Some(loaded[2].log_position()),
        "the first commit's last position is not that of version 3"
    );
    assert_eq!(
        second.last_position,
        Some(loaded[4].log_position()),
        "the second commit's last position is not that of version 5"
    );
    assert!(first.last_position < second.last_position);
}

/// `stream_version` is 0 for a new stream and follows its appends, not other streams'.
pub async fn stream_version_follows_appends<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("stream_version_follows_appends");
    let mine = stream("conformance-mine");
    let other = stream("conformance-other");
    assert_eq!(version_of(&store, &mine).await, StreamVersion(0));
    append_ok(&store, &mine, ExpectedVersion::Any, numbered(ids, 1..=2)).await;
    assert_eq!(version_of(&store, &mine).await, StreamVersion(2));
    append_ok(&store, &other, ExpectedVersion::Any, numbered(ids, 3..=9)).await;
    assert_eq!(
        version_of(&store, &mine).await,
        StreamVersion(2),
        "another stream's append moved this stream's version"
    );
    append_ok(&store, &mine, ExpectedVersion::Any, numbered(ids, 10..=12)).await;
    assert_eq!(version_of(&store, &mine).await, StreamVersion(5));
    assert_eq!(version_of(&store, &other).await, StreamVersion(7));
}

/// A stream that was never written loads empty and has version 0, also when others exist.
pub async fn unknown_stream_loads_empty_at_version_zero<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("unknown_stream_loads_empty_at_version_zero");
    append_any(&store, &stream("conformance-known"), numbered(ids, 1..=3)).await;
    let unknown = stream("conformance-unknown");
    assert!(load_all(&store, &unknown).await.is_empty());
    assert!(load(&store, &unknown, StreamVersion(2)).await.is_empty());
    assert_eq!(version_of(&store, &unknown).await, StreamVersion::INITIAL);
}

/// `load(stream, after)` returns exactly the versions above `after`.
pub async fn load_after_a_version_returns_the_rest<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("load_after_a_version_returns_the_rest");
    let stream_id = stream("conformance-load-after");
    start_stream(&store, &stream_id, numbered(ids, 1..=6)).await;
    for (after, expected) in [
        (0, versions(1..=6)),
        (2, versions(3..=6)),
        (5, vec![6]),
        (6, vec![]),
        (100, vec![]),
    ] {
        let loaded = load(&store, &stream_id, StreamVersion(after)).await;
        assert_eq!(
            version_list(&loaded),
            expected,
            "loading after version {after}"
        );
    }
}

/// `fold_stream` (through which the command path loads aggregates) visits exactly what `load`
/// returns after a version, field for field and in version order, skips other streams, and
/// stops when the visitor breaks.
pub async fn fold_stream_visits_what_load_returns<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("fold_stream_visits_what_load_returns");
    let stream_id = stream("conformance-fold");
    let events: Vec<NewEvent> = (0..5)
        .map(|n| {
            new_event(
                ids.event(n),
                NUMBERED,
                &json!({ "n": n, "text": "it's \"quoted\" 🦀" }),
            )
        })
        .collect();
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, events).await;
    let longer = stream("conformance-fold-longer");
    let other = vec![new_event(ids.event(9), NUMBERED, &json!({ "n": 9 }))];
    append_ok(&store, &longer, ExpectedVersion::NoStream, other).await;
    let loaded = load_all(&store, &stream_id).await;
    let fields = |version: StreamVersion, event_type: &str, schema: u32, payload: &RawValue| {
        (
            version,
            event_type.to_owned(),
            schema,
            payload.get().to_owned(),
        )
    };
    for after in [0, 2, 5] {
        let mut visited = Vec::new();
        store
            .fold_stream(&stream_id, StreamVersion(after), |event| {
                visited.push(fields(
                    event.stream_version,
                    event.event_type,
                    event.schema_version,
                    event.payload,
                ));
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .await
            .or_fail(format_args!("folding `{stream_id}` after version {after}"));
        let expected: Vec<_> = loaded
            .iter()
            .filter(|event| event.stream_version.get() > after)
            .map(|event| {
                fields(
                    event.stream_version,
                    &event.event_type,
                    event.schema_version,
                    &event.payload,
                )
            })
            .collect();
        assert_eq!(
            visited, expected,
            "fold_stream after version {after} differs from load"
        );
    }
    let mut visits = 0;
    store
        .fold_stream(&stream_id, StreamVersion::INITIAL, |_| {
            visits += 1;
            Ok(if visits == 2 {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            })
        })
        .await
        .or_fail("folding until the visitor breaks");
    assert_eq!(visits, 2, "fold_stream went on after the visitor broke");
}

/// Loading a stream returns its events only, also when other ids share a prefix with it.
pub async fn load_returns_only_the_streams_events<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("load_returns_only_the_streams_events");
    let names = ["order-1", "order-10", "order-1%", "order-_", "Order-1"];
    let mut n = 0;
    for round in 0..2 {
        for name in names {
            n += 1;
            let event = new_event(
                ids.event(n),
                NUMBERED,
                &json!({ "stream": name, "round": round }),
            );
            append_ok(&store, &stream(name), ExpectedVersion::Any, vec![event]).await;
        }
    }
    for name in names {
        let stream_id = stream(name);
        let loaded = load_all(&store, &stream_id).await;
        assert_eq!(version_list(&loaded), [1, 2], "loading `{name}`");
        for event in &loaded {
            assert_eq!(
                event.stream_id, stream_id,
                "loading `{name}` returned another stream's event"
            );
            assert_eq!(
                payload(event)["stream"],
                name,
                "loading `{name}` returned another stream's event"
            );
        }
    }
}

/// A stream of 5,000 events, appended in batches of 500, loads completely and in order.
pub async fn long_stream_loads_completely_in_order<S: EventStore + CheckpointStore>(store: S) {
    const TOTAL: u64 = 5_000;
    const BATCH: u64 = 500;
    let ids = Ids::new("long_stream_loads_completely_in_order");
    let stream_id = stream("conformance-long");
    for start in (1..=TOTAL).step_by(BATCH as usize) {
        append_ok(
            &store,
            &stream_id,
            ExpectedVersion::Exact(StreamVersion(start - 1)),
            numbered(ids, start..start + BATCH),
        )
        .await;
    }
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(
        loaded.len() as u64,
        TOTAL,
        "the stream did not load completely"
    );
    for (index, event) in loaded.iter().enumerate() {
        let n = index as u64 + 1;
        assert_eq!(
            event.stream_version,
            StreamVersion(n),
            "version out of order"
        );
        assert_eq!(event.id, ids.event(n), "event out of order at version {n}");
    }
    assert_eq!(payload(&loaded[4_321])["n"], 4_322);
    let rest = load(&store, &stream_id, StreamVersion(4_321)).await;
    assert_eq!(version_list(&rest), versions(4_322..=TOTAL));
    assert_eq!(version_of(&store, &stream_id).await, StreamVersion(TOTAL));
}
