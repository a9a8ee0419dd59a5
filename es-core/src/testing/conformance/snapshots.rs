//! Snapshots.

use serde_json::{Value, json};

use crate::snapshot::Snapshot;
use crate::store::checkpoint::CheckpointStore;
use crate::store::event_store::EventStore;
use crate::stream::StreamVersion;

use super::helpers::{Ids, OrFail as _, append_any, load_snapshot, numbered, raw, stream};

/// A saved snapshot loads back with its stream version, schema version and state.
pub async fn snapshot_round_trips<S: EventStore + CheckpointStore>(store: S) {
    let stream_id = stream("conformance-snapshot");
    let state = json!({ "total_cents": 4_200, "items": ["a", "b"], "note": "ü \"q\" \\ \n", "nested": { "x": null } });
    store
        .save_snapshot(&stream_id, Snapshot::new(StreamVersion(7), 2, raw(&state)))
        .await
        .or_fail("saving a snapshot");
    let Some(loaded) = load_snapshot(&store, &stream_id).await else {
        panic!("a saved snapshot did not load");
    };
    assert_eq!(loaded.stream_version, StreamVersion(7));
    assert_eq!(loaded.schema_version, 2);
    let loaded_state: Value =
        serde_json::from_str(loaded.state.get()).or_fail("parsing the snapshot state");
    assert_eq!(loaded_state, state, "the snapshot state changed");
}

/// Saving again replaces the snapshot: the latest one loads.
pub async fn latest_snapshot_wins<S: EventStore + CheckpointStore>(store: S) {
    let stream_id = stream("conformance-snapshot-latest");
    for (version, schema, total) in [(5, 1, 50), (10, 1, 100), (10, 2, 101), (15, 2, 150)] {
        store
            .save_snapshot(
                &stream_id,
                Snapshot::new(
                    StreamVersion(version),
                    schema,
                    raw(&json!({ "total": total })),
                ),
            )
            .await
            .or_fail(format_args!("saving the snapshot at version {version}"));
        let Some(loaded) = load_snapshot(&store, &stream_id).await else {
            panic!("a saved snapshot did not load");
        };
        assert_eq!(
            loaded.stream_version,
            StreamVersion(version),
            "an older snapshot loaded"
        );
        assert_eq!(loaded.schema_version, schema);
        let state: Value =
            serde_json::from_str(loaded.state.get()).or_fail("parsing the snapshot state");
        assert_eq!(
            state,
            json!({ "total": total }),
            "an older snapshot's state loaded"
        );
    }
}

/// A stream without a snapshot has none, even when it has events or another stream has one.
pub async fn snapshot_of_unknown_stream_is_none<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("snapshot_of_unknown_stream_is_none");
    let with_snapshot = stream("conformance-has-snapshot");
    let with_events = stream("conformance-has-events");
    assert!(load_snapshot(&store, &with_snapshot).await.is_none());
    store
        .save_snapshot(
            &with_snapshot,
            Snapshot::new(StreamVersion(1), 1, raw(&json!({}))),
        )
        .await
        .or_fail("saving a snapshot");
    append_any(&store, &with_events, numbered(ids, 1..=3)).await;
    assert!(
        load_snapshot(&store, &with_events).await.is_none(),
        "a snapshot appeared for a stream that has none"
    );
    assert!(
        load_snapshot(&store, &stream("conformance-has-snapshot-2"))
            .await
            .is_none()
    );
    assert!(
        load_snapshot(&store, &stream("conformance-has"))
            .await
            .is_none()
    );
}
