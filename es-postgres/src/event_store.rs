//! [`EventStore`] for [`PostgresStore`]: the trait, over the store's own operations.

use es_core::store::{CommandLog, EventLog, SnapshotStore};
use std::ops::ControlFlow;

use es_core::snapshot::Snapshot;
use es_core::store::{CommandRecord, LogWatch};
use es_core::{
    AppendError, AppendRequest, BackendError, CommandSession, Committed, EventFilter, LoadError,
    LogPosition, RecordedEvent, StoredEvent, StreamId, StreamVersion,
};
use futures_core::Stream;
use futures_util::StreamExt as _;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::error::{classify, corrupt, from_i64, log_position, to_i64};
use crate::read::{recorded_event_of, type_names};
use crate::sql::{self};
use crate::store::PostgresStore;

impl EventLog for PostgresStore {
    async fn append(&self, request: AppendRequest) -> Result<Committed, AppendError> {
        let mut connection = self
            .acquire(|| format!("append to stream `{}`", request.stream_id))
            .await?;
        self.append_committing(&mut connection, &request).await
    }

    fn load<'a>(
        &'a self,
        stream_id: &'a StreamId,
        after: StreamVersion,
    ) -> impl Stream<Item = Result<RecordedEvent, LoadError>> + Send + 'a {
        let context = || format!("load stream `{stream_id}`");
        match to_i64(after.get(), &context) {
            Err(error) => futures_util::stream::once(async move { Err(error.into()) }).boxed(),
            Ok(after) => sqlx::query(sqlx::AssertSqlSafe(self.inner.queries.load_stream.as_str()))
                .bind(stream_id.as_str())
                .bind(after)
                .bind(sql::NO_LIMIT)
                .fetch(&self.pool)
                .map(move |row| {
                    let row =
                        row.map_err(|error| classify(format!("load stream `{stream_id}`"), error))?;
                    Ok(recorded_event_of(&row, Some(stream_id))?)
                })
                .boxed(),
        }
    }

    async fn fold_stream<'a, F>(
        &'a self,
        stream_id: &'a StreamId,
        after: StreamVersion,
        visit: F,
    ) -> Result<(), LoadError>
    where
        F: FnMut(StoredEvent<'_>) -> Result<ControlFlow<()>, LoadError> + Send + 'a,
    {
        let mut connection = self
            .acquire(|| format!("load stream `{stream_id}`"))
            .await?;
        self.fold_on(&mut connection, stream_id, after, visit).await
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<StreamVersion, LoadError> {
        self.version_on(&self.pool, stream_id).await
    }

    async fn read_all(
        &self,
        after: LogPosition,
        limit: usize,
        filter: EventFilter<'_>,
    ) -> Result<Vec<RecordedEvent>, LoadError> {
        let (_, events) = self
            .read_log(&self.inner.queries.read_all, after, limit, filter)
            .await?;
        Ok(events)
    }

    async fn read_with_head(
        &self,
        after: LogPosition,
        limit: usize,
        filter: EventFilter<'_>,
    ) -> Result<(Option<LogPosition>, Vec<RecordedEvent>), LoadError> {
        self.read_log(&self.inner.queries.read_with_head, after, limit, filter)
            .await
    }

    async fn count_events(
        &self,
        after: LogPosition,
        filter: EventFilter<'_>,
    ) -> Result<u64, LoadError> {
        let context = || format!("count the events after {after}");
        let types = type_names(filter);
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(
            self.inner.queries.count_events.as_str(),
        ))
        .bind(after.transaction.to_string())
        .bind(to_i64(after.position.get(), &context)?)
        .bind(types)
        .fetch_one(&self.pool)
        .await
        .map_err(|error| classify(context(), error))?;
        Ok(from_i64(count, &context)?.get())
    }

    async fn head(&self) -> Result<Option<LogPosition>, LoadError> {
        let context = || "read the head of the log".to_owned();
        let head: Option<(i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(self.inner.queries.head.as_str()))
                .fetch_optional(&self.pool)
                .await
                .map_err(|error| classify(context(), error))?;
        Ok(head
            .map(|(transaction, position)| log_position(transaction, position, &context))
            .transpose()?)
    }

    fn watch(&self) -> LogWatch {
        let watch = LogWatch::new(self.inner.head.subscribe());
        self.listen_once();
        watch
    }
}

impl SnapshotStore for PostgresStore {
    async fn save_snapshot(
        &self,
        stream_id: &StreamId,
        snapshot: Snapshot,
    ) -> Result<(), BackendError> {
        let context = || format!("save the snapshot of stream `{stream_id}`");
        sqlx::query(sqlx::AssertSqlSafe(
            self.inner.queries.save_snapshot.as_str(),
        ))
        .bind(stream_id.as_str())
        .bind(to_i64(snapshot.stream_version.get(), &context)?)
        .bind(i64::from(snapshot.schema_version))
        .bind(snapshot.state.get())
        .execute(&self.pool)
        .await
        .map_err(|error| classify(context(), error))?;
        Ok(())
    }

    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, LoadError> {
        let context = || format!("load the snapshot of stream `{stream_id}`");
        let row: Option<(i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(
            self.inner.queries.load_snapshot.as_str(),
        ))
        .bind(stream_id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| classify(context(), error))?;
        let Some((version, schema_version, state)) = row else {
            return Ok(None);
        };
        let state = RawValue::from_string(state).map_err(|error| corrupt(context(), error))?;
        let schema_version =
            u32::try_from(schema_version).map_err(|error| corrupt(context(), error))?;
        Ok(Some(Snapshot::new(
            from_i64(version, &context)?,
            schema_version,
            state,
        )))
    }
}

impl CommandLog for PostgresStore {
    async fn find_command(&self, command_id: Uuid) -> Result<Option<CommandRecord>, LoadError> {
        self.command_on(&self.pool, command_id).await
    }

    /// One pooled connection for the whole command (see `crate::session`): taken by its first
    /// call, kept for every later one (the append, a retry, a refusal's or replay's reads),
    /// given back on [`CommandSession::release`] or when the command ends.
    fn command_session(&self) -> impl CommandSession + '_ {
        crate::session::Session::new(self)
    }
}
