//! Reads: streams, the global log, its head, command records; and stored rows as
//! [`RecordedEvent`]s.

use std::ops::ControlFlow;

use es_core::store::{CommandRecord, StoredEvent, column};
use es_core::{
    BackendError, EventFilter, EventId, LoadError, LogPosition, Metadata, RecordedEvent, StreamId,
    StreamVersion,
};
use futures_core::Stream;
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde_json::value::RawValue;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row as _, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{BACKEND, classify, corrupt, log_position, to_i64, version};

/// One stream's events after a version, in version order (served by the unique index on
/// `(stream_id, stream_version)`).
const LOAD_STREAM: &str = "SELECT position, stream_id, stream_version, event_id, event_type, \
     schema_version, payload, metadata, recorded_at FROM events \
     WHERE stream_id = ?1 AND stream_version > ?2 ORDER BY stream_version";

/// The events of one stream above `after`, streamed row by row from one statement (one
/// consistent snapshot of the file, however long the stream).
pub(crate) fn load<'a>(
    readers: &'a SqlitePool,
    stream_id: &'a StreamId,
    after: StreamVersion,
) -> impl Stream<Item = Result<RecordedEvent, LoadError>> + Send + 'a {
    let context = move || format!("load stream `{stream_id}` after version {after}");
    match to_i64(after.get(), context) {
        Err(error) => futures_util::stream::once(async move { Err(error.into()) }).boxed(),
        Ok(after_column) => sqlx::query(LOAD_STREAM)
            .bind(stream_id.as_str())
            .bind(after_column)
            .fetch(readers)
            .map(move |row| {
                let row = row.map_err(|error| classify(context(), error))?;
                recorded_event(&row)
            })
            .boxed(),
    }
}

/// What folding a stream into its aggregate reads of each event (version, type, schema version,
/// payload; the position only names a corrupt row), and no more.
const FOLD_STREAM: &str = "SELECT position, stream_version, event_type, schema_version, payload \
     FROM events WHERE stream_id = ?1 AND stream_version > ?2 ORDER BY stream_version";

/// Hands one stream's events above `after` to `visit` in version order, borrowed from the row:
/// no [`RecordedEvent`] is built and nothing is allocated per event before the aggregate
/// decodes it. Stops early when `visit` breaks.
pub(crate) async fn fold_stream<F>(
    readers: &SqlitePool,
    stream_id: &StreamId,
    after: StreamVersion,
    mut visit: F,
) -> Result<(), LoadError>
where
    F: FnMut(StoredEvent<'_>) -> Result<ControlFlow<()>, LoadError>,
{
    let context = || format!("load stream `{stream_id}` after version {after}");
    let mut rows = sqlx::query(FOLD_STREAM)
        .bind(stream_id.as_str())
        .bind(to_i64(after.get(), context)?)
        .fetch(readers);
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|error| classify(context(), error))?
    {
        let position: i64 = row.try_get(0).map_err(|error| corrupt(context(), error))?;
        let at_position =
            || format!("decode the event at position {position} of stream `{stream_id}`");
        let stream_version = version(
            row.try_get(1)
                .map_err(|error| corrupt(at_position(), error))?,
            at_position,
        )?;
        let at = || event_at(position, stream_version, stream_id);
        let event_type: &str = row.try_get(2).map_err(|error| corrupt(at(), error))?;
        let schema_version = schema_version(&row, 3, at)?;
        let payload: &str = row.try_get(4).map_err(|error| corrupt(at(), error))?;
        let payload: &RawValue = serde_json::from_str(payload)
            .map_err(|error| payload_not_json(&at(), event_type, error))?;
        let stored = StoredEvent::new(stream_version, event_type, schema_version, payload);
        if visit(stored)?.is_break() {
            break;
        }
    }
    Ok(())
}

const STREAM_VERSION: &str =
    "SELECT COALESCE(MAX(stream_version), 0) FROM events WHERE stream_id = ?1";

/// The stream's version, read on `connection` (inside a writer's transaction, or a reader).
pub(crate) async fn stream_version(
    connection: &mut SqliteConnection,
    stream_id: &StreamId,
) -> Result<StreamVersion, BackendError> {
    let context = || format!("read the version of stream `{stream_id}`");
    let stored: i64 = sqlx::query_scalar(STREAM_VERSION)
        .bind(stream_id.as_str())
        .fetch_one(connection)
        .await
        .map_err(|error| classify(context(), error))?;
    version(stored, context)
}

/// The whole log after a position, in position order.
const READ_ALL: &str = "SELECT position, stream_id, stream_version, event_id, event_type, \
     schema_version, payload, metadata, recorded_at FROM events \
     WHERE position > ?1 ORDER BY position LIMIT ?2";

/// The log after a position restricted to the event types in the JSON array `?3`. The type
/// test is a filter on the primary-key scan (see the migration on why there is no type index).
const READ_ALL_TYPES: &str = "SELECT position, stream_id, stream_version, event_id, event_type, \
     schema_version, payload, metadata, recorded_at FROM events \
     WHERE position > ?1 AND event_type IN (SELECT value FROM json_each(?3)) \
     ORDER BY position LIMIT ?2";

/// Up to `limit` events after `after`, in position order.
pub(crate) async fn read_all(
    readers: &SqlitePool,
    after: LogPosition,
    limit: usize,
    filter: EventFilter<'_>,
) -> Result<Vec<RecordedEvent>, LoadError> {
    let context = || format!("read the log after {after}");
    // Every stored event has `transaction == position`, so `(p, p) > (t, q)` exactly when
    // `p > t`, or `p == t` and `t > q`: a lower bound on the position alone.
    let bound = if after.transaction > after.position.get() {
        after.transaction - 1
    } else {
        after.transaction
    };
    let bound = i64::try_from(bound).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let query = match filter {
        EventFilter::Types([]) => return Ok(Vec::new()),
        EventFilter::Types(types) => {
            let types = serde_json::to_string(types).map_err(|error| {
                BackendError::new(
                    crate::error::BACKEND,
                    es_core::BackendErrorKind::InvalidInput,
                    format!("{}: encode the event type filter", context()),
                )
                .with_source(error)
            })?;
            sqlx::query(READ_ALL_TYPES)
                .bind(bound)
                .bind(limit)
                .bind(types)
        }
        _ => sqlx::query(READ_ALL).bind(bound).bind(limit),
    };
    let rows = query
        .fetch_all(readers)
        .await
        .map_err(|error| classify(context(), error))?;
    rows.iter().map(recorded_event).collect()
}

const HEAD: &str = "SELECT MAX(position) FROM events";

/// The position of the last committed event.
pub(crate) async fn head(readers: &SqlitePool) -> Result<Option<LogPosition>, LoadError> {
    let context = || "read the head of the log".to_owned();
    let head: Option<i64> = sqlx::query_scalar(HEAD)
        .fetch_one(readers)
        .await
        .map_err(|error| classify(context(), error))?;
    Ok(head
        .map(|position| log_position(position, context))
        .transpose()?)
}

const FIND_COMMAND: &str = "SELECT stream_id, version_before, version_after, fingerprint, \
     refused FROM commands WHERE command_id = ?1";

/// The record of an idempotent command, read on `connection`.
pub(crate) async fn find_command(
    connection: &mut SqliteConnection,
    command_id: Uuid,
) -> Result<Option<CommandRecord>, BackendError> {
    let context = || format!("find command {command_id}");
    let row: Option<column::CommandRow> = sqlx::query_as(FIND_COMMAND)
        .bind(command_id)
        .fetch_optional(connection)
        .await
        .map_err(|error| classify(context(), error))?;
    row.map(|row| column::command_record(BACKEND, command_id, row, context))
        .transpose()
}

/// What a broken column of an event names: its position, version and stream.
fn event_at(position: i64, stream_version: StreamVersion, stream_id: &StreamId) -> String {
    format!(
        "decode the event at position {position} (version {stream_version} of stream `{stream_id}`)"
    )
}

/// The schema version in column `index` of an event row; `at` names the event.
fn schema_version(
    row: &SqliteRow,
    index: usize,
    at: impl Fn() -> String,
) -> Result<u32, BackendError> {
    let stored: i64 = row.try_get(index).map_err(|error| corrupt(at(), error))?;
    u32::try_from(stored).map_err(|error| corrupt(at(), error))
}

/// A stored payload that is not JSON: `at` names the event.
fn payload_not_json(at: &str, event_type: &str, error: serde_json::Error) -> BackendError {
    corrupt(
        format!("{at}: its payload (event type `{event_type}`) is not JSON"),
        error,
    )
}

/// A stored row as a [`RecordedEvent`].
///
/// The store only ever writes JSON, so a payload or metadata that is not JSON (a file changed
/// by hand, or damaged), like any other broken column, is a
/// [`Corrupt`](es_core::BackendErrorKind::Corrupt) back-end error naming the event's position,
/// stream and version. A payload that is JSON of the wrong shape loads, and fails later, when
/// it is decoded, with [`LoadError::Decode`].
///
/// Columns are read by position, in the order of the queries' `SELECT` lists (position,
/// stream id, version, event id, type, schema version, payload, metadata, time): rows come by
/// the thousand in a rebuild, and a lookup by name costs more than the value.
fn recorded_event(row: &SqliteRow) -> Result<RecordedEvent, LoadError> {
    let position: i64 = row
        .try_get(0)
        .map_err(|error| corrupt("decode a stored event row", error))?;
    let at_position = || format!("decode the event at position {position}");
    let stream_id: &str = row
        .try_get(1)
        .map_err(|error| corrupt(at_position(), error))?;
    let stream_id = StreamId::try_from(stream_id).map_err(|error| corrupt(at_position(), error))?;
    let stream_version = version(
        row.try_get(2)
            .map_err(|error| corrupt(at_position(), error))?,
        at_position,
    )?;
    let at = || event_at(position, stream_version, &stream_id);
    let bad = |error: sqlx::Error| corrupt(at(), error);
    let event_id: Uuid = row.try_get(3).map_err(bad)?;
    let event_type: String = row.try_get(4).map_err(bad)?;
    let schema_version = schema_version(row, 5, at)?;
    let payload: String = row.try_get(6).map_err(bad)?;
    let payload = RawValue::from_string(payload)
        .map_err(|error| payload_not_json(&at(), &event_type, error))?;
    let metadata: &str = row.try_get(7).map_err(bad)?;
    // Most events carry no metadata: the empty object needs no parser.
    let metadata: Metadata = if metadata == "{}" {
        Metadata::default()
    } else {
        serde_json::from_str(metadata)
            .map_err(|error| corrupt(format!("{}: its metadata", at()), error))?
    };
    let recorded_at: OffsetDateTime = row.try_get(8).map_err(bad)?;
    let position = log_position(position, at)?;
    Ok(RecordedEvent::new(
        EventId(event_id),
        stream_id,
        stream_version,
        position,
        event_type,
        schema_version,
        payload,
        metadata,
        recorded_at,
    ))
}
