//! Appending: the version check, idempotent event ids and command records, in the statement
//! forms `sql` prepares.

use es_core::EventLog;
use std::sync::atomic::Ordering;

use es_core::store::{CommandRecord, column};
use es_core::{
    AppendError, AppendRequest, BackendError, BackendErrorKind, Committed, EventId,
    ExpectedVersion, LoadError, LogPosition, Metadata, StreamVersion,
};
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row as _};
use uuid::Uuid;

use crate::announce::Claim;
use crate::error::{BACKEND, classify, corrupt, from_i64, log_position, to_i64};
use crate::store::PostgresStore;

/// How often an append under `ExpectedVersion::Any` is retried when a concurrent writer took the
/// same version number (it checks nothing, so it must not fail with a conflict).
pub(crate) const ANY_VERSION_ATTEMPTS: u32 = 5;

impl PostgresStore {
    /// Appends inside the caller's transaction (the outbox pattern): the events commit, or roll
    /// back, with the caller's own writes. Listeners are notified at that commit.
    ///
    /// A conflict aborts the caller's transaction (PostgreSQL aborts a transaction on any
    /// failed statement), so it is returned at once, never retried here.
    ///
    /// # Errors
    /// As [`EventLog::append`].
    pub async fn append_in(
        &self,
        connection: &mut PgConnection,
        request: AppendRequest,
    ) -> Result<Committed, AppendError> {
        // The caller commits: the notification is queued in that transaction and sent at its
        // commit, so no reader is woken for events that roll back. It is needed when this
        // process listens (the store does not see that commit, so it wakes nobody itself) or
        // another may; otherwise the commit waits, pending, for the notifier's next look.
        let notify =
            self.inner.listening.load(Ordering::Acquire) || !self.inner.announcer.nobody_listens();
        match self
            .append_once(&mut *connection, &request, true, notify)
            .await
        {
            Ok(committed) => {
                if !notify {
                    self.inner.announcer.committed_unannounced();
                }
                Ok(committed)
            }
            Err(Attempt::Failed(error)) => Err(error),
            Err(Attempt::VersionTaken) => Err(AppendError::Conflict {
                stream_id: request.stream_id.clone(),
                expected: request.expected,
                // The transaction is aborted: the actual version cannot be read in it.
                actual: self
                    .stream_version(&request.stream_id)
                    .await
                    .unwrap_or(StreamVersion::INITIAL),
            }),
        }
    }

    /// After an append committed outside a caller's transaction: wakes this process's readers
    /// at once, and has other processes told (see `crate::announce`): `claim` is the append's
    /// claim, which its commit carried, if it announced.
    pub(crate) fn committed_elsewhere(&self, claim: Option<Claim<'_>>) {
        // With no reader watching, nobody is woken: a reader that subscribes later reads the
        // log from its checkpoint before it waits. Skipping the send spares every append the
        // channel's lock and its eight wake-up lists, which the command path paid for nothing
        // (M9 in `es-bench/README.md`).
        if self.inner.head.receiver_count() > 0 {
            self.inner.head.send_modify(|n| *n = n.wrapping_add(1));
        }
        match claim {
            Some(claim) => claim.carried(),
            None => self.inner.announcer.committed_unannounced(),
        }
    }

    /// The record of command `command_id`, read on `executor` (a [`column::CommandRow`]).
    pub(crate) async fn command_on(
        &self,
        executor: impl sqlx::PgExecutor<'_>,
        command_id: Uuid,
    ) -> Result<Option<CommandRecord>, LoadError> {
        let context = || format!("find command {command_id}");
        let row: Option<column::CommandRow> = sqlx::query_as(sqlx::AssertSqlSafe(
            self.inner.queries.find_command.as_str(),
        ))
        .bind(command_id)
        .fetch_optional(executor)
        .await
        .map_err(|error| classify(context(), error))?;
        row.map(|row| column::command_record(BACKEND, command_id, row, context))
            .transpose()
            .map_err(LoadError::from)
    }

    /// Appends `request` on `connection`, outside any transaction of the caller: claims the
    /// announcement when one is due, and wakes this process's readers once it committed.
    pub(crate) async fn append_committing(
        &self,
        connection: &mut PgConnection,
        request: &AppendRequest,
    ) -> Result<Committed, AppendError> {
        // A claim not carried by a commit (a failure, nothing written) is handed back when
        // dropped.
        let claim = self.inner.announcer.claim();
        let committed = self
            .append_alone(connection, request, claim.is_some())
            .await?;
        // Events were written (an append made without a position has none to show for it).
        if committed.version_after != committed.version_before {
            self.committed_elsewhere(claim);
        }
        Ok(committed)
    }

    /// Appends `request` on `connection`, retrying an `Any` append whose version a concurrent
    /// writer took. `announce`: see [`append_once`](Self::append_once).
    pub(crate) async fn append_alone(
        &self,
        connection: &mut PgConnection,
        request: &AppendRequest,
        announce: bool,
    ) -> Result<Committed, AppendError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.append_once(connection, request, false, announce).await {
                Ok(committed) => return Ok(committed),
                Err(Attempt::Failed(error)) => return Err(error),
                Err(Attempt::VersionTaken) => {
                    if let Some(record) = self.recorded_command(connection, false, request).await? {
                        return Err(AppendError::DuplicateCommand(record));
                    }
                    let retry =
                        request.expected == ExpectedVersion::Any && attempts < ANY_VERSION_ATTEMPTS;
                    if !retry {
                        return Err(AppendError::Conflict {
                            stream_id: request.stream_id.clone(),
                            expected: request.expected,
                            actual: self
                                .version_on(&mut *connection, &request.stream_id)
                                .await
                                .map_err(load_to_append)?,
                        });
                    }
                }
            }
        }
    }

    /// One attempt at `request`. `announce`: the statement also queues a notification: this
    /// store's announcement (the append holds the claim) or, in the caller's transaction, one
    /// of its own, with an empty payload (this process's readers are woken by it too: the
    /// store does not see that commit).
    pub(crate) async fn append_once(
        &self,
        connection: &mut PgConnection,
        request: &AppendRequest,
        in_callers_transaction: bool,
        announce: bool,
    ) -> Result<Committed, Attempt> {
        let context = || format!("append to stream `{}`", request.stream_id);
        // The common case (an exact version, no command id, no notification in the caller's
        // transaction) takes a statement with no bookkeeping.
        let exact_before = match request.expected {
            ExpectedVersion::Exact(version) => Some(version),
            ExpectedVersion::NoStream => Some(StreamVersion::INITIAL),
            _ => None,
        };
        if let Some(before) = exact_before
            && request.command_id.is_none()
            && !in_callers_transaction
            && !request.events.is_empty()
        {
            return self
                .append_at(connection, request, before, announce, &context)
                .await;
        }
        let (kind, exact) = match request.expected {
            ExpectedVersion::Any => (0, 0),
            ExpectedVersion::NoStream => (1, 0),
            ExpectedVersion::StreamExists => (2, 0),
            ExpectedVersion::Exact(version) => (3, to_i64(version.get(), &context)?),
            _ => {
                return Err(Attempt::Failed(
                    BackendError::new(
                        BACKEND,
                        BackendErrorKind::InvalidInput,
                        format!("{}: unsupported expected version", context()),
                    )
                    .into(),
                ));
            }
        };
        let columns = Columns::of(request, &context)?;
        let Columns {
            ids,
            types,
            versions,
            payloads,
            metadata,
            ..
        } = &columns;
        let result = sqlx::query(sqlx::AssertSqlSafe(self.inner.queries.append.as_str()))
            .bind(request.stream_id.as_str())
            .bind(kind)
            .bind(exact)
            .bind(ids)
            .bind(types)
            .bind(versions)
            .bind(payloads)
            .bind(metadata)
            .bind(request.command_id)
            .bind(announce.then_some(self.inner.channel.as_str()))
            .bind(if in_callers_transaction {
                ""
            } else {
                self.inner.instance.as_str()
            })
            .bind(columns.shared_event_type())
            .bind(columns.shared_schema_version())
            .bind(request.command_fingerprint.map(|print| *print.as_bytes()))
            .bind(request.command_outcome.is_refused())
            .fetch_one(&mut *connection)
            .await;
        let row = match result {
            Ok(row) => row,
            Err(error) => {
                return Err(self
                    .append_failed(connection, in_callers_transaction, request, error)
                    .await);
            }
        };
        let get = |column: &str| -> Result<Option<i64>, Attempt> {
            row.try_get::<Option<i64>, _>(column)
                .map_err(|error| Attempt::Failed(corrupt(context(), error).into()))
        };
        let version_before = from_i64(get("version_before")?.unwrap_or(0), &context)?;
        if get("allowed")?.unwrap_or(0) == 0 {
            if let Some(record) = self
                .recorded_command(connection, in_callers_transaction, request)
                .await
                .map_err(Attempt::Failed)?
            {
                return Err(Attempt::Failed(AppendError::DuplicateCommand(record)));
            }
            return Err(Attempt::Failed(AppendError::Conflict {
                stream_id: request.stream_id.clone(),
                expected: request.expected,
                actual: version_before,
            }));
        }
        let version_after = match get("version_after")? {
            Some(version) => from_i64(version, &context)?,
            None => version_before,
        };
        let last_position = match (get("last_transaction")?, get("last_position")?) {
            (Some(transaction), Some(position)) => {
                Some(log_position(transaction, position, &context)?)
            }
            _ => None,
        };
        Ok(Committed::new(version_before, version_after, last_position))
    }

    /// Appends at an exact version with the lean statements (see [`crate::sql::append_one`]):
    /// no command id, not in the caller's transaction; `announce`: the statement carries the
    /// store's announcement.
    pub(crate) async fn append_at(
        &self,
        connection: &mut PgConnection,
        request: &AppendRequest,
        before: StreamVersion,
        announce: bool,
        context: &impl Fn() -> String,
    ) -> Result<Committed, Attempt> {
        let queries = &self.inner.queries;
        let version = to_i64(before.get(), context)?;
        // The version is checked by reading it, unless the stream cannot be behind `before`:
        // a new stream, or a version the caller just read (events are never removed). Then
        // the unique key of version `before + 1` refuses a writer that came first, which
        // saves an index scan (M10 in `es-bench/README.md`).
        let guarded = usize::from(before != StreamVersion::INITIAL && !request.expected_was_read());
        let announcing = usize::from(announce);
        let returning = usize::from(request.wants_position());
        // Built only for a batch; declared here so the query can borrow it.
        let columns;
        let query = if let [event] = &request.events[..] {
            let metadata = (!event.metadata.is_empty())
                .then(|| metadata_json(&event.metadata, context))
                .transpose()?;
            sqlx::query(sqlx::AssertSqlSafe(
                queries.append_one[guarded][announcing][returning].as_str(),
            ))
            .bind(request.stream_id.as_str())
            .bind(version)
            .bind(event.id.0)
            .bind(event.event_type.as_ref())
            .bind(i64::from(event.schema_version))
            .bind(Json(event.payload.as_ref()))
            .bind(metadata)
        } else {
            columns = Columns::of(request, context)?;
            sqlx::query(sqlx::AssertSqlSafe(
                queries.append_many[guarded][announcing][returning].as_str(),
            ))
            .bind(request.stream_id.as_str())
            .bind(version)
            .bind(&columns.ids)
            .bind(&columns.types)
            .bind(&columns.versions)
            .bind(&columns.payloads)
            .bind(&columns.metadata)
            .bind(columns.shared_event_type())
            .bind(columns.shared_schema_version())
        };
        // The announcing statements take the channel and the payload last.
        let query = if announce {
            query
                .bind(self.inner.channel.as_str())
                .bind(self.inner.instance.as_str())
        } else {
            query
        };
        let appended = u64::try_from(request.events.len()).unwrap_or(u64::MAX);
        // The statement wrote versions up to this one, so it fits.
        let after = StreamVersion(before.get().saturating_add(appended));
        // Whether the statement wrote the events (every one or, when the version check
        // failed, none), and where the last one stands if the request wants it.
        let (wrote, last_position) = if !request.wants_position() {
            match query.execute(&mut *connection).await {
                Ok(done) => (done.rows_affected() == appended, None),
                Err(error) => {
                    return Err(self.append_failed(connection, false, request, error).await);
                }
            }
        } else {
            match query.fetch_all(&mut *connection).await {
                Ok(rows) => {
                    let last = last_written(rows.first(), context)?;
                    (last.is_some(), last)
                }
                Err(error) => {
                    return Err(self.append_failed(connection, false, request, error).await);
                }
            }
        };
        if !wrote {
            let actual = self
                .version_on(&mut *connection, &request.stream_id)
                .await
                .map_err(|error| Attempt::Failed(load_to_append(error)))?;
            return Err(Attempt::Failed(AppendError::Conflict {
                stream_id: request.stream_id.clone(),
                expected: request.expected,
                actual,
            }));
        }
        Ok(Committed::new(before, after, last_position))
    }

    /// Classifies a failed append statement by the constraint it violated.
    ///
    /// Lookups run on the append's own `connection` when it ran alone, and on the pool when
    /// it ran in the caller's transaction (which the failure aborted). An append never waits
    /// for a second connection while it holds one: writers racing on a full pool would wait
    /// for each other until the pool's timeout.
    pub(crate) async fn append_failed(
        &self,
        connection: &mut PgConnection,
        in_callers_transaction: bool,
        request: &AppendRequest,
        error: sqlx::Error,
    ) -> Attempt {
        let context = format!("append to stream `{}`", request.stream_id);
        let constraint = error
            .as_database_error()
            .and_then(|db| db.constraint())
            .map(str::to_owned);
        match constraint.as_deref() {
            Some("events_stream_version_key") => Attempt::VersionTaken,
            Some("commands_pkey") => match self
                .recorded_command(connection, in_callers_transaction, request)
                .await
            {
                Ok(Some(record)) => Attempt::Failed(AppendError::DuplicateCommand(record)),
                Ok(None) => Attempt::Failed(classify(context, error).into()),
                Err(lookup) => Attempt::Failed(lookup),
            },
            Some("events_event_id_key") => {
                let ids: Vec<Uuid> = request.events.iter().map(|event| event.id.0).collect();
                let existing = if in_callers_transaction {
                    self.stored_event_id_on(&self.pool, &ids).await
                } else {
                    self.stored_event_id_on(connection, &ids).await
                };
                match existing {
                    Ok(Some(event_id)) => Attempt::Failed(AppendError::DuplicateEventId {
                        stream_id: request.stream_id.clone(),
                        event_id: EventId(event_id),
                    }),
                    // The id repeats inside the batch itself.
                    Ok(None) => Attempt::Failed(AppendError::DuplicateEventId {
                        stream_id: request.stream_id.clone(),
                        event_id: first_repeated(&ids).map_or_else(EventId::new, EventId),
                    }),
                    Err(lookup) => Attempt::Failed(classify(context, lookup).into()),
                }
            }
            _ => Attempt::Failed(classify(context, error).into()),
        }
    }

    /// The first of `ids` already stored, read on `executor`.
    pub(crate) async fn stored_event_id_on(
        &self,
        executor: impl sqlx::PgExecutor<'_>,
        ids: &[Uuid],
    ) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(
            self.inner.queries.find_event_id.as_str(),
        ))
        .bind(ids)
        .fetch_optional(executor)
        .await
    }

    /// The record of the request's command id, if it has one and it was recorded; read as
    /// [`append_failed`](Self::append_failed) says.
    pub(crate) async fn recorded_command(
        &self,
        connection: &mut PgConnection,
        in_callers_transaction: bool,
        request: &AppendRequest,
    ) -> Result<Option<CommandRecord>, AppendError> {
        let Some(command_id) = request.command_id else {
            return Ok(None);
        };
        let found = if in_callers_transaction {
            self.command_on(&self.pool, command_id).await
        } else {
            self.command_on(connection, command_id).await
        };
        found.map_err(load_to_append)
    }
}

pub(crate) fn first_repeated(ids: &[Uuid]) -> Option<Uuid> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.iter().copied().find(|id| !seen.insert(*id))
}

/// An append request's events as the column arrays the append statements bind.
///
/// When every event has the same type and schema version (a batch import, most commands'
/// events), those are sent once, as two scalar parameters, and their arrays as NULL: `UNNEST`
/// pads a NULL array's column with NULLs, which the statements replace by the scalars. The two
/// arrays would cost the server time to receive and unnest (M11 in `es-bench/README.md`) and
/// the client their encoding. One statement text serves both forms, so a pooled connection
/// parses it once and needs no second plan.
pub(crate) struct Columns<'r> {
    ids: Vec<Uuid>,
    /// `None` when the events share [`shared_type`](Self::shared_type).
    types: Option<Vec<&'r str>>,
    /// `None` when the events share [`shared_type`](Self::shared_type).
    versions: Option<Vec<i64>>,
    /// The type and schema version of every event, if they share them.
    shared_type: Option<(&'r str, i64)>,
    /// Sent as `jsonb` (binary: a version byte and the text), which the server parses once.
    payloads: Vec<Json<&'r RawValue>>,
    /// `None` when no event carries metadata, the common case: nothing is serialised or sent,
    /// and the statements store `{}`.
    metadata: Option<Vec<String>>,
}

/// An event's metadata as the JSON text the append statements cast to `jsonb`.
pub(crate) fn metadata_json(
    metadata: &Metadata,
    context: &impl Fn() -> String,
) -> Result<String, Attempt> {
    serde_json::to_string(metadata).map_err(|error| {
        Attempt::Failed(
            BackendError::new(BACKEND, BackendErrorKind::InvalidInput, context())
                .with_source(error)
                .into(),
        )
    })
}

/// Why one append statement did not commit.
pub(crate) enum Attempt {
    /// Another writer took a version number first (a unique violation on the stream version).
    VersionTaken,
    /// Anything else: final.
    Failed(AppendError),
}

pub(crate) fn load_to_append(error: LoadError) -> AppendError {
    match error {
        LoadError::Backend(backend) => AppendError::Backend(backend),
        other => AppendError::Backend(
            BackendError::new(BACKEND, BackendErrorKind::Corrupt, "read a command record")
                .with_source(other),
        ),
    }
}

/// The last written event's position from a returning lean append's row: its position and
/// transaction id, or no row (one event) or NULLs (a batch) when the version check failed.
pub(crate) fn last_written(
    row: Option<&PgRow>,
    context: &impl Fn() -> String,
) -> Result<Option<LogPosition>, Attempt> {
    let Some(row) = row else {
        return Ok(None);
    };
    let bad = |error| Attempt::Failed(corrupt(context(), error).into());
    let position: Option<i64> = row.try_get(0).map_err(bad)?;
    // The transaction id comes as `xid8`, eight bytes like an `int8`: read unchecked, as the
    // event rows' is.
    let transaction: Option<i64> = row.try_get_unchecked(1).map_err(bad)?;
    position
        .zip(transaction)
        .map(|(position, transaction)| log_position(transaction, position, context))
        .transpose()
        .map_err(Attempt::from)
}

impl<'r> Columns<'r> {
    fn of(request: &'r AppendRequest, context: &impl Fn() -> String) -> Result<Self, Attempt> {
        let count = request.events.len();
        let any_metadata = request
            .events
            .iter()
            .any(|event| !event.metadata.is_empty());
        let shared_type = request.events.split_first().and_then(|(first, rest)| {
            rest.iter()
                .all(|event| {
                    event.event_type == first.event_type
                        && event.schema_version == first.schema_version
                })
                .then(|| (first.event_type.as_ref(), i64::from(first.schema_version)))
        });
        let mut columns = Self {
            ids: Vec::with_capacity(count),
            types: shared_type.is_none().then(|| Vec::with_capacity(count)),
            versions: shared_type.is_none().then(|| Vec::with_capacity(count)),
            shared_type,
            payloads: Vec::with_capacity(count),
            metadata: any_metadata.then(|| Vec::with_capacity(count)),
        };
        for event in &request.events {
            columns.ids.push(event.id.0);
            if let Some(types) = &mut columns.types {
                types.push(event.event_type.as_ref());
            }
            if let Some(versions) = &mut columns.versions {
                versions.push(i64::from(event.schema_version));
            }
            columns.payloads.push(Json(event.payload.as_ref()));
            if let Some(metadata) = &mut columns.metadata {
                metadata.push(metadata_json(&event.metadata, context)?);
            }
        }
        Ok(columns)
    }

    /// The type of every event, bound in place of the type array, if they share one.
    fn shared_event_type(&self) -> Option<&'r str> {
        self.shared_type.map(|(event_type, _)| event_type)
    }

    /// The schema version of every event, bound in place of the version array, if they share
    /// their type and version.
    fn shared_schema_version(&self) -> Option<i64> {
        self.shared_type.map(|(_, schema_version)| schema_version)
    }
}

impl From<BackendError> for Attempt {
    fn from(error: BackendError) -> Self {
        Self::Failed(error.into())
    }
}
