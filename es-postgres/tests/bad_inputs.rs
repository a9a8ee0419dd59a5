//! Bad input at the store: each case is refused with a typed error, and nothing is stored.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)] // test code

use es_core::EventLog;
mod common;

use es_core::{
    AppendError, AppendRequest, BackendErrorKind, ExpectedVersion, LoadError, Metadata, NewEvent,
    StreamId, StreamVersion,
};
use futures_util::TryStreamExt as _;

fn event(event_type: &'static str, payload: &str) -> NewEvent {
    event_with(event_type, payload, Metadata::new())
}

fn event_with(event_type: &'static str, payload: &str, metadata: Metadata) -> NewEvent {
    let payload = serde_json::value::RawValue::from_string(payload.to_owned()).unwrap();
    NewEvent::new(event_type, 1, payload, metadata)
}

fn invalid_input(error: &AppendError) -> bool {
    matches!(error, AppendError::Backend(backend) if backend.kind() == BackendErrorKind::InvalidInput)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_refused_with_typed_errors_and_store_nothing() {
    common::with_schemas(4, |pool, schemas| async move {
        let store = schemas.store(&pool).await;
        let mut tried = 0;

        // Stream ids: empty, 10 MB, control characters. Refused before the store is asked.
        for bad in [String::new(), "x".repeat(10 << 20), "a\u{0}b".to_owned(), "a\nb".to_owned()] {
            assert!(StreamId::new(bad).is_err());
            tried += 1;
        }

        let stream = StreamId::new("bad-1").unwrap();
        let append = |expected, events| AppendRequest::new(stream.clone(), expected, events);
        let cases: Vec<(&str, AppendRequest)> = vec![
            (
                "an expected version beyond i64",
                append(ExpectedVersion::Exact(StreamVersion(u64::MAX)), vec![event("t", "{}")]),
            ),
            (
                "a NUL character in the payload",
                append(ExpectedVersion::Any, vec![event("t", r#"{"a": "x\u0000y"}"#)]),
            ),
            (
                "a NUL byte in the event type",
                append(ExpectedVersion::Any, vec![event("t\u{0}", "{}")]),
            ),
            (
                "a NUL byte in a metadata header",
                AppendRequest::new(
                    stream.clone(),
                    ExpectedVersion::Any,
                    vec![event_with(
                        "t",
                        "{}",
                        Metadata::new().with_header("k", "v\u{0}"),
                    )],
                ),
            ),
            (
                "a good event batched with a bad one",
                append(
                    ExpectedVersion::Any,
                    vec![event("t", "{}"), event("t", r#"{"a": "\u0000"}"#)],
                ),
            ),
        ];
        for (what, request) in cases {
            let error = store.append(request).await.unwrap_err();
            assert!(invalid_input(&error), "{what}: {error:?}");
            tried += 1;
        }

        // Reading after a version beyond i64.
        let loaded: Result<Vec<_>, LoadError> =
            store.load(&stream, StreamVersion(u64::MAX)).try_collect().await;
        assert!(
            matches!(&loaded, Err(LoadError::Backend(error)) if error.kind() == BackendErrorKind::InvalidInput),
            "{loaded:?}"
        );
        tried += 1;

        // SQL in every text the store takes round-trips as data.
        let sql = StreamId::new("x'); DROP TABLE events; --").unwrap();
        store
            .append(AppendRequest::new(
                sql.clone(),
                ExpectedVersion::NoStream,
                vec![event_with(
                    "'; DELETE FROM events; --",
                    r#"{"q": "' OR '1'='1"}"#,
                    Metadata::new().with_header("'; --", "\" OR 1=1"),
                )],
            ))
            .await
            .unwrap();
        tried += 1;

        // Nothing of the refused appends was stored; the SQL-laden event is there verbatim.
        let stored: Vec<_> = store
            .load(&stream, StreamVersion::INITIAL)
            .try_collect()
            .await
            .unwrap();
        assert!(stored.is_empty(), "refused appends stored {stored:?}");
        let round_trip: Vec<_> = store
            .load(&sql, StreamVersion::INITIAL)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(round_trip.len(), 1);
        assert_eq!(round_trip[0].event_type, "'; DELETE FROM events; --");
        assert_eq!(round_trip[0].payload.get(), r#"{"q": "' OR '1'='1"}"#);
        assert_eq!(round_trip[0].metadata.headers["'; --"], "\" OR 1=1");
        println!("RELIABILITY bad store inputs tried: {tried}, failures: 0");
    })
    .await;
}
