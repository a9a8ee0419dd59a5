//! Snapshots: one row per stream, replaced by each save.

use es_core::snapshot::Snapshot;
use es_core::{BackendError, LoadError, StreamId};
use serde_json::value::RawValue;
use sqlx::sqlite::SqlitePool;
use time::OffsetDateTime;

use crate::error::{classify, corrupt, to_i64, version};

const SAVE_SNAPSHOT: &str = "INSERT INTO snapshots \
     (stream_id, stream_version, schema_version, state, taken_at) VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (stream_id) DO UPDATE SET stream_version = excluded.stream_version, \
     schema_version = excluded.schema_version, state = excluded.state, \
     taken_at = excluded.taken_at";

/// Saves (or replaces) the snapshot of `stream_id`, in one statement on the writer.
pub(crate) async fn save(
    writer: &SqlitePool,
    stream_id: &StreamId,
    snapshot: Snapshot,
) -> Result<(), BackendError> {
    let context = || format!("save the snapshot of stream `{stream_id}`");
    sqlx::query(SAVE_SNAPSHOT)
        .bind(stream_id.as_str())
        .bind(to_i64(snapshot.stream_version.get(), context)?)
        .bind(i64::from(snapshot.schema_version))
        .bind(snapshot.state.get())
        .bind(OffsetDateTime::now_utc())
        .execute(writer)
        .await
        .map_err(|error| classify(context(), error))?;
    Ok(())
}

const LOAD_SNAPSHOT: &str =
    "SELECT stream_version, schema_version, state FROM snapshots WHERE stream_id = ?1";

/// The snapshot of `stream_id`, if one was saved.
pub(crate) async fn load(
    readers: &SqlitePool,
    stream_id: &StreamId,
) -> Result<Option<Snapshot>, LoadError> {
    let context = || format!("load the snapshot of stream `{stream_id}`");
    let row: Option<(i64, i64, String)> = sqlx::query_as(LOAD_SNAPSHOT)
        .bind(stream_id.as_str())
        .fetch_optional(readers)
        .await
        .map_err(|error| classify(context(), error))?;
    let Some((stream_version, schema_version, state)) = row else {
        return Ok(None);
    };
    let state = RawValue::from_string(state).map_err(|error| corrupt(context(), error))?;
    let schema_version =
        u32::try_from(schema_version).map_err(|error| corrupt(context(), error))?;
    Ok(Some(Snapshot::new(
        version(stream_version, context)?,
        schema_version,
        state,
    )))
}
