//! Reading: a stream folded or loaded, the global log in commit order, stored rows decoded.

use std::ops::ControlFlow;

use es_core::{
    BackendError, EventFilter, EventId, LoadError, LogPosition, Metadata, RecordedEvent,
    StoredEvent, StreamId, StreamVersion,
};
use futures_util::TryStreamExt as _;
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row as _, ValueRef as _};

use crate::error::{classify, corrupt, from_i64, log_position, schema_version_at, to_i64};
use crate::sql::{self};
use crate::store::PostgresStore;

impl PostgresStore {
    /// The stream's version, read on `executor`.
    pub(crate) async fn version_on(
        &self,
        executor: impl sqlx::PgExecutor<'_>,
        stream_id: &StreamId,
    ) -> Result<StreamVersion, LoadError> {
        let context = || format!("read the version of stream `{stream_id}`");
        let version: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(
            self.inner.queries.stream_version.as_str(),
        ))
        .bind(stream_id.as_str())
        .fetch_one(executor)
        .await
        .map_err(|error| classify(context(), error))?;
        Ok(from_i64(version, &context)?)
    }

    /// [`EventLog::fold_stream`] on `connection`. It reads there rather than through the
    /// pool's executor, which wraps the connection's row stream in a boxed stream of its own,
    /// with sqlx's 8.6 KB `acquire` future copied into it (M8 in `es-bench/README.md`).
    pub(crate) async fn fold_on<F>(
        &self,
        connection: &mut PgConnection,
        stream_id: &StreamId,
        after: StreamVersion,
        mut visit: F,
    ) -> Result<(), LoadError>
    where
        F: FnMut(StoredEvent<'_>) -> Result<ControlFlow<()>, LoadError> + Send,
    {
        let context = || format!("load stream `{stream_id}`");
        let bad = |error: sqlx::Error| corrupt(context(), error);
        let queries = &self.inner.queries;
        let query = if after == StreamVersion::INITIAL {
            sqlx::query(sqlx::AssertSqlSafe(queries.fold_whole_stream.as_str()))
                .bind(stream_id.as_str())
                .bind(sql::NO_LIMIT)
        } else {
            sqlx::query(sqlx::AssertSqlSafe(queries.fold_stream.as_str()))
                .bind(stream_id.as_str())
                .bind(to_i64(after.get(), &context)?)
                .bind(sql::NO_LIMIT)
        };
        let mut rows = query.fetch(connection);
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(|error| classify(context(), error))?
        {
            // Borrowed from the row: nothing is allocated per event before it is decoded.
            let stream_version = from_i64(row.try_get_unchecked(0).map_err(bad)?, &context)?;
            let event_type: &str = row.try_get_unchecked(1).map_err(bad)?;
            let schema_version = schema_version_at(&row, 2, &context)?;
            let Json(payload): Json<&RawValue> = row.try_get_unchecked(3).map_err(bad)?;
            let stored = StoredEvent::new(stream_version, event_type, schema_version, payload);
            if visit(stored)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Runs a global read (`sql::read_all` or `sql::read_with_head`): the events, and the
    /// head if the query returned its row (the one whose `event_id` is NULL).
    pub(crate) async fn read_log(
        &self,
        query: &str,
        after: LogPosition,
        limit: usize,
        filter: EventFilter<'_>,
    ) -> Result<(Option<LogPosition>, Vec<RecordedEvent>), LoadError> {
        let context = || format!("read the log after {after}");
        let bad = |error: sqlx::Error| corrupt(context(), error);
        let types = type_names(filter);
        let mut events = Vec::with_capacity(limit.min(READ_CAPACITY));
        let mut head = None;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Rows are decoded as they arrive, while the server is still sending the rest.
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(after.transaction.to_string())
            .bind(to_i64(after.position.get(), &context)?)
            .bind(limit)
            .bind(types)
            .fetch(&self.pool);
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(|error| classify(context(), error))?
        {
            if row.try_get_raw(3).map_err(bad)?.is_null() {
                head = Some(log_position(
                    row.try_get_unchecked(1).map_err(bad)?,
                    row.try_get_unchecked(0).map_err(bad)?,
                    &context,
                )?);
            } else {
                events.push(recorded_event(&row)?);
            }
        }
        Ok((head, events))
    }
}

/// The most events a global read reserves room for before the first row arrives.
pub(crate) const READ_CAPACITY: usize = 4096;

pub(crate) fn recorded_event(row: &PgRow) -> Result<RecordedEvent, BackendError> {
    recorded_event_of(row, None)
}

/// Decodes an event row, reading columns by position (see `sql::EVENT_COLUMNS`): rows come by
/// the thousand, and a lookup by name cost more than decoding the values. The columns' types
/// are those of our own query, so they are not checked again per row (`try_get_unchecked`; a
/// value of the wrong size still fails to decode). `stream_id` is given when the query read one
/// stream and so did not select the column.
pub(crate) fn recorded_event_of(
    row: &PgRow,
    stream_id: Option<&StreamId>,
) -> Result<RecordedEvent, BackendError> {
    let context = || "decode a stored event row".to_owned();
    let bad = |error: sqlx::Error| corrupt(context(), error);
    let stream_id = match stream_id {
        Some(stream_id) => stream_id.clone(),
        None => {
            let stream_id: &str = row.try_get_unchecked(9).map_err(bad)?;
            StreamId::try_from(stream_id).map_err(|error| corrupt(context(), error))?
        }
    };
    // `xid8` on the wire: eight bytes, big-endian, as an `int8`.
    let log_position = log_position(
        row.try_get_unchecked(1).map_err(bad)?,
        row.try_get_unchecked(0).map_err(bad)?,
        &context,
    )?;
    let stream_version = from_i64(row.try_get_unchecked(2).map_err(bad)?, &context)?;
    let event_id = EventId(row.try_get_unchecked(3).map_err(bad)?);
    let event_type: String = row.try_get_unchecked(4).map_err(bad)?;
    let schema_version = schema_version_at(row, 5, &context)?;
    let Json(payload): Json<&RawValue> = row.try_get_unchecked(6).map_err(bad)?;
    let payload = payload.to_owned();
    // Most events carry no metadata, which the query sends as NULL: nothing to parse.
    let metadata: Option<&str> = row.try_get_unchecked(7).map_err(bad)?;
    let metadata = match metadata {
        None | Some("{}") => Metadata::default(),
        Some(metadata) => {
            serde_json::from_str(metadata).map_err(|error| corrupt(context(), error))?
        }
    };
    Ok(RecordedEvent::new(
        event_id,
        stream_id,
        stream_version,
        log_position,
        event_type,
        schema_version,
        payload,
        metadata,
        row.try_get_unchecked(8).map_err(bad)?,
    ))
}

/// The type names a filter binds as `text[]` (`NULL`: every type).
pub(crate) fn type_names<'a>(filter: EventFilter<'a>) -> Option<Vec<&'a str>> {
    match filter {
        EventFilter::Types(types) => Some(types.to_vec()),
        _ => None,
    }
}
