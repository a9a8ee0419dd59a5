//! Awkward data: odd ids, payloads and metadata kept exactly.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::event::{NewEvent, RecordedEvent};
use crate::metadata::Metadata;
use crate::snapshot::Snapshot;
use crate::store::checkpoint::CheckpointStore;
use crate::store::event_store::EventStore;
use crate::store::log::{AppendRequest, EventFilter};
use crate::stream::{ExpectedVersion, MAX_STREAM_ID_LEN, StreamVersion};

use super::helpers::{
    Ids, NUMBERED, OrFail as _, append_ok, id_list, load_all, load_snapshot, new_event, numbered,
    payload, raw, read_log, settle, start_stream, stream, version_list, version_of,
};

/// Stream ids with quotes, SQL, pattern characters, unicode and the maximum length are stored
/// and found exactly.
pub async fn awkward_stream_ids_round_trip<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("awkward_stream_ids_round_trip");
    let longest = "x".repeat(MAX_STREAM_ID_LEN);
    let names = [
        "order-'; DROP TABLE events; --",
        "it's \"quoted\"",
        "back\\slash",
        "percent%_like",
        "percentile",
        "with space",
        "$1 placeholder ?",
        "ünïcødé-流-🦀-مرحبا",
        longest.as_str(),
    ];
    let mut n = 0;
    for name in names {
        let stream_id = stream(name);
        start_stream(&store, &stream_id, numbered(ids, [n, n + 1])).await;
        n += 2;
        store
            .save_snapshot(
                &stream_id,
                Snapshot::new(StreamVersion(2), 1, raw(&json!({ "stream": name }))),
            )
            .await
            .or_fail(format_args!("saving a snapshot of {name:?}"));
    }
    for name in names {
        let stream_id = stream(name);
        assert_eq!(
            version_of(&store, &stream_id).await,
            StreamVersion(2),
            "version of {name:?}"
        );
        let loaded = load_all(&store, &stream_id).await;
        assert_eq!(version_list(&loaded), [1, 2], "loading {name:?}");
        for event in &loaded {
            assert_eq!(event.stream_id.as_str(), name, "the stream id changed");
        }
        let Some(snapshot) = load_snapshot(&store, &stream_id).await else {
            panic!("the snapshot of {name:?} did not load");
        };
        let state: Value = serde_json::from_str(snapshot.state.get()).or_fail("parsing a snapshot");
        assert_eq!(
            state,
            json!({ "stream": name }),
            "loaded another stream's snapshot"
        );
    }
    let log = read_log(&store, EventFilter::All).await;
    let stored: BTreeSet<&str> = log.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(
        stored,
        names.into_iter().collect::<BTreeSet<&str>>(),
        "stream ids changed in the log"
    );
}

/// Payloads round-trip as JSON values: unicode, escapes, nested structures, numbers at the
/// edges of `i64` and `u64`, odd keys, and top-level arrays, strings and `null`.
pub async fn awkward_payloads_round_trip<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("awkward_payloads_round_trip");
    let stream_id = stream("conformance-payloads");
    let payloads = [
        json!({ "text": "ünïcødé 流 🦀 😀", "rtl": "مرحبا", "combining": "e\u{301}" }),
        json!({ "a": { "b": { "c": [1, [2, [3, { "d": null }]]] } }, "empty_object": {}, "empty_array": [] }),
        json!({
            "i64_max": i64::MAX, "i64_min": i64::MIN, "u64_max": u64::MAX,
            "zero": 0, "minus_one": -1, "half": 0.5, "fraction": -2.25,
        }),
        json!({
            "quote": "\"", "backslash": "\\", "newline": "line 1\nline 2", "tab": "\t",
            "controls": "\u{1}\u{1f}\u{7f}", "slash": "a/b", "json_in_a_string": "{\"k\": [1, 2]}",
            "sql": "'; DROP TABLE events; --",
        }),
        json!({ "": "empty key", "key with \"quotes\"": 1, "ключ": 2, "$1": 3 }),
        json!([1, "two", { "three": 3 }]),
        json!("just a string with a \"quote\""),
        json!(true),
        json!(null),
    ];
    let events: Vec<NewEvent> = (0..)
        .zip(&payloads)
        .map(|(n, value)| new_event(ids.event(n), "conformance.payload", value))
        .collect();
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, events).await;

    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(loaded.len(), payloads.len());
    for (event, expected) in loaded.iter().zip(&payloads) {
        assert_eq!(&payload(event), expected, "a payload changed through load");
    }
    let read = read_log(&store, EventFilter::All).await;
    for (event, expected) in read.iter().zip(&payloads) {
        assert_eq!(
            &payload(event),
            expected,
            "a payload changed through read_all"
        );
    }
}

/// Metadata round-trips: correlation and causation ids (each alone and together) and headers
/// holding quotes, unicode, SQL, JSON, escapes and empty values.
pub async fn metadata_round_trips<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("metadata_round_trips");
    let stream_id = stream("conformance-metadata");
    let headers = Metadata::new()
        .with_header("quote", "it's \"quoted\"")
        .with_header("unicode-ключ", "значение 🦀")
        .with_header("empty", "")
        .with_header("json", "{\"a\": 1}")
        .with_header("sql", "'; DROP TABLE events; --")
        .with_header("escapes", "a\nb\tc\\d")
        .with_header("key \"with\" quotes", "v");
    let metadata = [
        headers,
        Metadata::new().with_correlation_id(ids.command(1)),
        Metadata::new().with_causation_id(ids.command(2)),
        Metadata::new()
            .with_correlation_id(ids.command(3))
            .with_causation_id(ids.command(4))
            .with_header("tenant", "t-1"),
        Metadata::new(),
    ];
    let events: Vec<NewEvent> = (0..)
        .zip(&metadata)
        .map(|(n, metadata)| NewEvent {
            metadata: metadata.clone(),
            ..new_event(ids.event(n), NUMBERED, &json!({ "n": n }))
        })
        .collect();
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, events).await;
    // A single event too: stores may append one event by another statement than a batch.
    let single = NewEvent {
        metadata: metadata[0].clone(),
        ..new_event(ids.event(5), NUMBERED, &json!({ "n": 5 }))
    };
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::Exact(StreamVersion(5)),
        vec![single],
    )
    .await;
    let metadata: Vec<Metadata> = metadata.iter().chain(&metadata[..1]).cloned().collect();
    let loaded = load_all(&store, &stream_id).await;
    let loaded_metadata: Vec<Metadata> = loaded.iter().map(|e| e.metadata.clone()).collect();
    assert_eq!(loaded_metadata, metadata, "metadata changed through load");
    let read = read_log(&store, EventFilter::All).await;
    let read_metadata: Vec<Metadata> = read.iter().map(|e| e.metadata.clone()).collect();
    assert_eq!(read_metadata, metadata, "metadata changed through read_all");
}

/// Event type names with dots, quotes, unicode and pattern characters are stored exactly and
/// each matches itself alone in a type filter.
pub async fn awkward_event_types_round_trip<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("awkward_event_types_round_trip");
    let stream_id = stream("conformance-event-types");
    let types = [
        "order.placed",
        "order.item.added.v2",
        "it's \"quoted\"",
        "ünïcødé.тип.流",
        "with space",
        "percent%_",
        "percent",
        "back\\slash",
        "'; DROP TABLE events; --",
    ];
    let events: Vec<NewEvent> = (0..)
        .zip(types)
        .map(|(n, event_type)| new_event(ids.event(n), event_type, &json!({ "type": event_type })))
        .collect();
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, events).await;
    let loaded = load_all(&store, &stream_id).await;
    let loaded_types: Vec<&str> = loaded.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(loaded_types, types, "event type names changed");
    for event_type in types {
        let only = read_log(&store, EventFilter::Types(&[event_type])).await;
        let found: Vec<&str> = only.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(found, [event_type], "filtering on {event_type:?}");
    }
}

/// Every event of a batch keeps its own type and schema version, whether the batch's events
/// share both, only the type, or only the version, and whichever way the batch is appended (an
/// exact version, `Any`, with a command id). A store may send a type or version the events share
/// once per batch instead of once per event. Load, the global read and `fold_stream` all return
/// them.
pub async fn batches_keep_each_events_type_and_schema_version<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("batches_keep_each_events_type_and_schema_version");
    let stream_id = stream("conformance-batch-types");
    let event = |n: u64, event_type: &'static str, schema_version: u32| NewEvent {
        id: ids.event(n),
        event_type: Cow::Borrowed(event_type),
        schema_version,
        payload: raw(&json!({ "n": n })),
        metadata: Metadata::new(),
    };
    let batches: [(ExpectedVersion, Option<Uuid>, Vec<NewEvent>); 5] = [
        // Type and schema version shared, the schema version not 1.
        (
            ExpectedVersion::NoStream,
            None,
            vec![event(1, "a", 3), event(2, "a", 3), event(3, "a", 3)],
        ),
        // The type shared, not the version.
        (
            ExpectedVersion::Exact(StreamVersion(3)),
            None,
            vec![event(4, "a", 1), event(5, "a", 2)],
        ),
        // The version shared, not the type.
        (
            ExpectedVersion::Any,
            None,
            vec![event(6, "a", 2), event(7, "b", 2)],
        ),
        // Both shared, with a command id.
        (
            ExpectedVersion::Exact(StreamVersion(7)),
            Some(ids.command(1)),
            vec![event(8, "c", 4), event(9, "c", 4)],
        ),
        // Neither shared, with a command id; the last event alone differs.
        (
            ExpectedVersion::StreamExists,
            Some(ids.command(2)),
            vec![event(10, "c", 4), event(11, "c", 4), event(12, "d", 5)],
        ),
    ];
    for (expected, command_id, events) in batches {
        let count = events.len();
        let mut request = AppendRequest::new(stream_id.clone(), expected, events);
        if let Some(command_id) = command_id {
            request = request.with_command_id(command_id);
        }
        let committed = store.append(request).await.or_fail(format_args!(
            "appending {count} event(s) to `{stream_id}` expecting {expected}"
        ));
        settle(&store, committed.last_position).await;
    }
    let expected = [
        ("a", 3),
        ("a", 3),
        ("a", 3),
        ("a", 1),
        ("a", 2),
        ("a", 2),
        ("b", 2),
        ("c", 4),
        ("c", 4),
        ("c", 4),
        ("c", 4),
        ("d", 5),
    ];
    let summary = |events: &[RecordedEvent]| -> Vec<(String, u32)> {
        events
            .iter()
            .map(|e| (e.event_type.clone(), e.schema_version))
            .collect()
    };
    let expected: Vec<(String, u32)> = expected
        .iter()
        .map(|&(event_type, version)| (event_type.to_owned(), version))
        .collect();
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(
        summary(&loaded),
        expected,
        "load returned other types or schema versions than were appended"
    );
    assert_eq!(
        id_list(&loaded),
        (1..=12).map(|n| ids.event(n)).collect::<Vec<_>>(),
        "load returned other events than were appended"
    );
    let read = read_log(&store, EventFilter::All).await;
    assert_eq!(
        summary(&read),
        expected,
        "read_all returned other types or schema versions than were appended"
    );
    let mut folded = Vec::new();
    store
        .fold_stream(&stream_id, StreamVersion::INITIAL, |event| {
            folded.push((event.event_type.to_owned(), event.schema_version));
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .await
        .or_fail(format_args!("folding `{stream_id}`"));
    assert_eq!(
        folded, expected,
        "fold_stream gave other types or schema versions than were appended"
    );
}
