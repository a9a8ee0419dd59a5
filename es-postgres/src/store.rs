//! [`PostgresStore`]: the es-core store contract on PostgreSQL.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use es_core::snapshot::Snapshot;
use es_core::store::{CommandRecord, LogWatch, column};
use es_core::{
    AppendError, AppendRequest, BackendError, BackendErrorKind, CheckpointStore,
    CommandFingerprint, CommandOutcome, CommandSession, Committed, EventFilter, EventId,
    EventStore, ExpectedVersion, GlobalPosition, Lease, LeaseHolder, LeaseRenewal, LoadError,
    LogPosition, Metadata, RecordedEvent, StoredEvent, StreamId, StreamVersion,
};
use futures_core::Stream;
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde_json::value::RawValue;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, Row as _, ValueRef as _};
use tokio::sync::watch;
use uuid::Uuid;

use crate::announce::{Announcer, Claim};
use crate::sql::{self, Queries};

const BACKEND: &str = "postgres";

/// The default PostgreSQL schema the store's tables live in.
pub const DEFAULT_SCHEMA: &str = "es";

/// How often an append under `ExpectedVersion::Any` is retried when a concurrent writer took the
/// same version number (it checks nothing, so it must not fail with a conflict).
const ANY_VERSION_ATTEMPTS: u32 = 5;

/// How a [`PostgresStore`] is built: the schema its tables live in, whether it migrates.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    schema: String,
    run_migrations: bool,
    max_connections: u32,
    connect_timeout: Duration,
    batch_idle_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: DEFAULT_SCHEMA.to_owned(),
            run_migrations: true,
            max_connections: 16,
            connect_timeout: Duration::from_secs(10),
            batch_idle_timeout: Duration::from_secs(5),
        }
    }
}

impl PostgresOptions {
    /// The PostgreSQL schema for the store's tables (default `es`): lower-case letters, digits
    /// and `_`, starting with a letter, at most 48 bytes. Several stores (or tests) can share a
    /// database in different schemas.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Whether `connect` creates and migrates the schema (default `true`). With `false`, run
    /// [`PostgresStore::migrate`] yourself (from a deploy step, say).
    #[must_use]
    pub const fn run_migrations(mut self, run: bool) -> Self {
        self.run_migrations = run;
        self
    }

    /// The pool size when the store opens its own pool (default 16).
    #[must_use]
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// How long to wait for a connection from the store's own pool, including the first one
    /// (default 10 s): a database that is down fails `connect` after this long.
    #[must_use]
    pub const fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a projection batch's transaction may sit idle (waiting for its worker) before
    /// PostgreSQL ends it (default 5 s; `idle_in_transaction_session_timeout`). A worker that is
    /// paused or cut off mid-batch then releases its row locks, so the worker that takes over
    /// its lease is not kept waiting; handlers must not leave the transaction idle this long.
    #[must_use]
    pub fn batch_idle_timeout(mut self, timeout: Duration) -> Self {
        self.batch_idle_timeout = timeout.max(Duration::from_millis(100));
        self
    }

    /// Opens a pool to `url` and builds the store on it.
    ///
    /// # Errors
    /// [`BackendErrorKind::Unavailable`] when the database cannot be reached,
    /// [`BackendErrorKind::InvalidInput`] for a bad schema name,
    /// [`BackendErrorKind::SchemaMismatch`] when the schema was migrated by a newer version.
    pub async fn connect(self, url: &str) -> Result<PostgresStore, BackendError> {
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.connect_timeout)
            .connect(url)
            .await
            .map_err(|error| classify("connect to the database", &error).with_source(error))?;
        self.with_pool(pool).await
    }

    /// Builds the store on an existing pool (shared with the application's own queries).
    ///
    /// # Errors
    /// As [`PostgresOptions::connect`].
    pub async fn with_pool(self, pool: PgPool) -> Result<PostgresStore, BackendError> {
        let quoted_schema = quote_schema(&self.schema)?;
        let (head, _) = watch::channel(0);
        let store = PostgresStore {
            pool,
            inner: Arc::new(Inner {
                queries: Queries::new(&quoted_schema),
                channel: format!("es_events_{}", self.schema),
                quoted_schema,
                head: Arc::new(head),
                tasks: Mutex::new(Vec::new()),
                listening: AtomicBool::new(false),
                registered: std::sync::OnceLock::new(),
                announcer: Arc::new(Announcer::new()),
                instance: Uuid::now_v7().to_string(),
                begin_batch: format!(
                    "BEGIN; SET LOCAL idle_in_transaction_session_timeout = {}",
                    millis(self.batch_idle_timeout)
                ),
            }),
        };
        if self.run_migrations {
            store.migrate().await?;
        }
        store.start_notifier();
        Ok(store)
    }
}

/// Checks a schema name and returns it quoted. Only a safe subset is accepted, so the name can
/// be spliced into SQL text: it never comes from a user at run time, but it is still checked.
fn quote_schema(schema: &str) -> Result<String, BackendError> {
    let valid = !schema.is_empty()
        && schema.len() <= 48
        && schema.starts_with(|c: char| c.is_ascii_lowercase())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(BackendError::new(
            BACKEND,
            BackendErrorKind::InvalidInput,
            format!(
                "schema name `{schema}` is not valid: use lower-case letters, digits and `_`, starting with a letter, at most 48 bytes"
            ),
        ));
    }
    Ok(format!("\"{schema}\""))
}

struct Inner {
    queries: Queries,
    quoted_schema: String,
    channel: String,
    head: Arc<watch::Sender<u64>>,
    /// The notifier and listener tasks, stopped when the last handle goes.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Whether the listener was started (by the first [`EventStore::watch`]).
    listening: AtomicBool,
    /// Held while the listener's registration lives (see `register_listener`): dropped with
    /// the last handle, which tells the registering task to remove it.
    registered: std::sync::OnceLock<tokio::sync::oneshot::Sender<()>>,
    /// When this store last told other processes about its commits (see `crate::announce`).
    announcer: Arc<Announcer>,
    /// The payload of this store's own announcements: its listener skips them, since this
    /// process's readers were woken at the commit already.
    instance: String,
    /// Opens a projection batch's transaction and bounds how long it may sit idle, in one round
    /// trip (one simple-query message holding both statements).
    begin_batch: String,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The notifier announces what it had yet to announce, then stops by itself; other
        // processes' readers would otherwise only find those commits by polling.
        self.announcer.close();
        let tasks = self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner);
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

/// The PostgreSQL event store. Cheap to clone: clones share the pool and the notification
/// listener.
///
/// See the crate docs for the schema and why its global read never skips an event.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    inner: Arc<Inner>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.quoted_schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` with the default options (schema `es`, migrations run).
    ///
    /// # Errors
    /// As [`PostgresOptions::connect`].
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        PostgresOptions::default().connect(url).await
    }

    /// Options to build a store with.
    #[must_use]
    pub fn options() -> PostgresOptions {
        PostgresOptions::default()
    }

    /// The pool the store runs on.
    #[must_use]
    pub const fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the schema and applies the embedded migrations that are missing.
    ///
    /// # Errors
    /// [`BackendErrorKind::SchemaMismatch`] when the schema holds migrations this version does
    /// not know (written by a newer version of the framework), or was changed by hand.
    pub async fn migrate(&self) -> Result<(), BackendError> {
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.create_schema(self.schema().to_owned());
        migrator.dangerous_set_table_name(format!("{}._es_migrations", self.inner.quoted_schema));
        let mut connection = self.acquire(|| "migrate".to_owned()).await?;
        // The migrations name their tables unqualified; the search path puts them in our schema.
        let set_path = format!("SET search_path TO {}", self.inner.quoted_schema);
        sqlx::raw_sql(sqlx::AssertSqlSafe(set_path))
            .execute(&mut *connection)
            .await
            .map_err(|error| classify("migrate", &error).with_source(error))?;
        let migrated = migrator.run_direct(None, &mut *connection, false).await;
        let reset = sqlx::raw_sql("RESET search_path")
            .execute(&mut *connection)
            .await;
        if reset.is_err() {
            // Never hand a connection with our search path back to a shared pool.
            connection.detach();
        }
        migrated.map_err(|error| {
            let kind = match error {
                sqlx::migrate::MigrateError::VersionMissing(_)
                | sqlx::migrate::MigrateError::VersionMismatch(_)
                | sqlx::migrate::MigrateError::Dirty(_) => BackendErrorKind::SchemaMismatch,
                sqlx::migrate::MigrateError::Execute(ref inner) => error_kind(inner),
                _ => BackendErrorKind::Other,
            };
            BackendError::new(
                BACKEND,
                kind,
                format!("migrate schema {}", self.inner.quoted_schema),
            )
            .with_source(error)
        })
    }

    /// The PostgreSQL schema holding the store's tables (unquoted; a valid identifier).
    #[must_use]
    pub fn schema(&self) -> &str {
        self.inner.quoted_schema.trim_matches('"')
    }

    /// Appends inside the caller's transaction (the outbox pattern): the events commit, or roll
    /// back, with the caller's own writes. Listeners are notified at that commit.
    ///
    /// A conflict aborts the caller's transaction (PostgreSQL aborts a transaction on any
    /// failed statement), so it is returned at once, never retried here.
    ///
    /// # Errors
    /// As [`EventStore::append`].
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
    fn committed_elsewhere(&self, claim: Option<Claim<'_>>) {
        // With no reader watching, nobody is woken: a reader that subscribes later reads the
        // log from its checkpoint before it waits. Skipping the send spares every append the
        // channel's lock and its eight wake-up lists, which the command path paid for nothing
        // (callgrind: 424 instructions a command in S1).
        if self.inner.head.receiver_count() > 0 {
            self.inner.head.send_modify(|n| *n = n.wrapping_add(1));
        }
        match claim {
            Some(claim) => claim.carried(),
            None => self.inner.announcer.committed_unannounced(),
        }
    }

    /// The stream's version, read on `executor`.
    async fn version_on(
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
        .map_err(|error| classify(context(), &error).with_source(error))?;
        Ok(from_i64(version, &context)?)
    }

    /// The record of command `command_id`, read on `executor` (a [`CommandRow`]).
    pub(crate) async fn command_on(
        &self,
        executor: impl sqlx::PgExecutor<'_>,
        command_id: Uuid,
    ) -> Result<Option<CommandRecord>, LoadError> {
        let context = || format!("find command {command_id}");
        let row: Option<CommandRow> = sqlx::query_as(sqlx::AssertSqlSafe(
            self.inner.queries.find_command.as_str(),
        ))
        .bind(command_id)
        .fetch_optional(executor)
        .await
        .map_err(|error| classify(context(), &error).with_source(error))?;
        let Some((stream_id, before, after, fingerprint, refused)) = row else {
            return Ok(None);
        };
        let stream_id = StreamId::new(stream_id).map_err(|error| corrupt(context(), error))?;
        let fingerprint = fingerprint
            .map(|bytes| {
                CommandFingerprint::try_from(bytes.as_slice())
                    .map_err(|error| corrupt(context(), error))
            })
            .transpose()?;
        Ok(Some(
            CommandRecord::new(
                command_id,
                stream_id,
                from_i64(before, &context)?,
                from_i64(after, &context)?,
            )
            .with_fingerprint(fingerprint)
            .with_outcome(CommandOutcome::from_refused(refused)),
        ))
    }

    /// Starts the task that announces this store's commits to other processes when no
    /// append did (see `crate::announce`).
    fn start_notifier(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "no tokio runtime: other processes' readers find our commits by polling"
            );
            return;
        };
        // Not kept with the tasks the last handle aborts: it ends by itself once the announcer
        // closes, after its last announcement.
        drop(runtime.spawn(notify(Notifier {
            pool: self.pool.clone(),
            channel: self.inner.channel.clone(),
            instance: self.inner.instance.clone(),
            announcer: Arc::clone(&self.inner.announcer),
            others_listen: self.inner.queries.others_listen.clone(),
        })));
    }

    /// Starts listening for other processes' commits, once, when the first reader watches the
    /// log: only watchers need them, so a store that only writes holds no `LISTEN` connection
    /// and is sent no notifications. The listener wakes the watchers once it listens, so a
    /// commit between the first watch and the `LISTEN` is not missed.
    fn listen_once(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // A later watch inside a runtime starts it.
            tracing::warn!("no tokio runtime: live notifications are off, readers poll");
            return;
        };
        if self.inner.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        let listener = runtime.spawn(listen(
            self.pool.clone(),
            self.inner.channel.clone(),
            self.inner.instance.clone(),
            Arc::downgrade(&self.inner.head),
        ));
        self.keep_task(listener);
        // Not kept with the tasks the last handle aborts: it removes the registration when
        // that handle goes (the sender kept in `Inner` drops), then ends.
        let (registered, store_gone) = tokio::sync::oneshot::channel();
        if self.inner.registered.set(registered).is_ok() {
            drop(runtime.spawn(register_listener(
                self.pool.clone(),
                self.inner.queries.register_listener.clone(),
                self.inner.queries.unregister_listener.clone(),
                self.inner.instance.clone(),
                store_gone,
            )));
        }
    }

    /// Keeps `task` until the last handle of the store goes, which stops it.
    fn keep_task(&self, task: tokio::task::JoinHandle<()>) {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
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
    async fn append_alone(
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

    /// A connection of the pool, for the statements of `context()`.
    pub(crate) async fn acquire(
        &self,
        context: impl FnOnce() -> String,
    ) -> Result<PoolConnection<Postgres>, BackendError> {
        self.pool
            .acquire()
            .await
            .map_err(|error| classify(context(), &error).with_source(error))
    }

    /// [`EventStore::fold_stream`] on `connection`. It reads there rather than through the
    /// pool's executor, which wraps the connection's row stream in a boxed stream of its own,
    /// with sqlx's 8.6 KB `acquire` future copied into it (callgrind, S1: 11,000 instructions
    /// a command less).
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
            .map_err(|error| classify(context(), &error).with_source(error))?
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

    /// One attempt at `request`. `announce`: the statement also queues a notification: this
    /// store's announcement (the append holds the claim) or, in the caller's transaction, one
    /// of its own, with an empty payload (this process's readers are woken by it too: the
    /// store does not see that commit).
    async fn append_once(
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
    async fn append_at(
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
        // saves an index scan (about 20 µs of server time per append).
        let guarded = usize::from(before != StreamVersion::INITIAL && !request.expected_was_read);
        let announcing = usize::from(announce);
        let returning = usize::from(!request.without_position);
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
        let (wrote, last_position) = if request.without_position {
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
    async fn append_failed(
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
                Ok(None) => Attempt::Failed(classify(context, &error).with_source(error).into()),
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
                    Err(lookup) => {
                        Attempt::Failed(classify(context, &lookup).with_source(lookup).into())
                    }
                }
            }
            _ => Attempt::Failed(classify(context, &error).with_source(error).into()),
        }
    }

    /// The first of `ids` already stored, read on `executor`.
    async fn stored_event_id_on(
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
    async fn recorded_command(
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

/// A row of `sql::FIND_COMMAND`: stream id, versions before and after, fingerprint, refused.
type CommandRow = (String, i64, i64, Option<Vec<u8>>, bool);

fn first_repeated(ids: &[Uuid]) -> Option<Uuid> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.iter().copied().find(|id| !seen.insert(*id))
}

/// An append request's events as the column arrays the append statements bind.
///
/// When every event has the same type and schema version (a batch import, most commands'
/// events), those are sent once, as two scalar parameters, and their arrays as NULL: `UNNEST`
/// pads a NULL array's column with NULLs, which the statements replace by the scalars. Two
/// arrays of a hundred elements cost the server about 10 µs per append to receive and unnest
/// (the bind of S6's 100-event append: median 0.093 ms instead of 0.106 in the server's log,
/// 1,400 appends), and the client their encoding. One statement text serves both forms, so a
/// pooled connection parses it once and needs no second plan.
struct Columns<'r> {
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

/// An event's metadata as the JSON text the append statements cast to `jsonb`.
fn metadata_json(metadata: &Metadata, context: &impl Fn() -> String) -> Result<String, Attempt> {
    serde_json::to_string(metadata).map_err(|error| {
        Attempt::Failed(
            BackendError::new(BACKEND, BackendErrorKind::InvalidInput, context())
                .with_source(error)
                .into(),
        )
    })
}

/// Why one append statement did not commit.
enum Attempt {
    /// Another writer took a version number first (a unique violation on the stream version).
    VersionTaken,
    /// Anything else: final.
    Failed(AppendError),
}

impl From<BackendError> for Attempt {
    fn from(error: BackendError) -> Self {
        Self::Failed(error.into())
    }
}

fn load_to_append(error: LoadError) -> AppendError {
    match error {
        LoadError::Backend(backend) => AppendError::Backend(backend),
        other => AppendError::Backend(
            BackendError::new(BACKEND, BackendErrorKind::Corrupt, "read a command record")
                .with_source(other),
        ),
    }
}

fn to_i64(value: u64, context: &impl Fn() -> String) -> Result<i64, BackendError> {
    column::to_i64(BACKEND, value, context)
}

fn from_i64(value: i64, context: &impl Fn() -> String) -> Result<StreamVersion, BackendError> {
    column::to_version(BACKEND, value, context)
}

/// The log position of a stored (transaction id, position) pair.
fn log_position(
    transaction: i64,
    position: i64,
    context: &impl Fn() -> String,
) -> Result<LogPosition, BackendError> {
    Ok(LogPosition::new(
        from_i64(transaction, context)?.get(),
        GlobalPosition(from_i64(position, context)?.get()),
    ))
}

/// The last written event's position from a returning lean append's row: its position and
/// transaction id, or no row (one event) or NULLs (a batch) when the version check failed.
fn last_written(
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

/// The schema version in column `index` of an event row, which the reads send as NULL when it
/// is 1 (see `sql::fold_stream`).
fn schema_version_at(
    row: &PgRow,
    index: usize,
    context: &impl Fn() -> String,
) -> Result<u32, BackendError> {
    let sent: Option<i64> = row
        .try_get_unchecked(index)
        .map_err(|error| corrupt(context(), error))?;
    sent.map_or(Ok(1), |version| {
        u32::try_from(version).map_err(|error| corrupt(context(), error))
    })
}

fn corrupt(context: String, error: impl std::error::Error + Send + Sync + 'static) -> BackendError {
    BackendError::new(BACKEND, BackendErrorKind::Corrupt, context).with_source(error)
}

/// What kind of failure a `sqlx` error from PostgreSQL is, as the store classifies its own: by
/// SQLSTATE class and sqlx error variant, never by message text. For queries of your own on
/// the store's pool (a read model's), so that they map to the same kinds (a connection cut or
/// the server shutting down is [`BackendErrorKind::Unavailable`]).
#[must_use]
pub fn error_kind(error: &sqlx::Error) -> BackendErrorKind {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => BackendErrorKind::Unavailable,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // connection exceptions, operator intervention (shutdown, terminated backend)
            Some(code) if code.starts_with("08") || code.starts_with("57") => {
                BackendErrorKind::Unavailable
            }
            // data exceptions (NUL in text or jsonb, bad encoding), program limits
            Some(code) if code.starts_with("22") || code.starts_with("54") => {
                BackendErrorKind::InvalidInput
            }
            _ => BackendErrorKind::Other,
        },
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => BackendErrorKind::Corrupt,
        _ => BackendErrorKind::Other,
    }
}

fn classify(
    context: impl Into<std::borrow::Cow<'static, str>>,
    error: &sqlx::Error,
) -> BackendError {
    BackendError::new(BACKEND, error_kind(error), context)
}

impl PostgresStore {
    /// Runs a global read (`sql::read_all` or `sql::read_with_head`): the events, and the
    /// head if the query returned its row (the one whose `event_id` is NULL).
    async fn read_log(
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
            .map_err(|error| classify(context(), &error).with_source(error))?
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
const READ_CAPACITY: usize = 4096;

fn recorded_event(row: &PgRow) -> Result<RecordedEvent, BackendError> {
    recorded_event_of(row, None)
}

/// Decodes an event row, reading columns by position (see `sql::EVENT_COLUMNS`): rows come by
/// the thousand, and a lookup by name cost more than decoding the values. The columns' types
/// are those of our own query, so they are not checked again per row (`try_get_unchecked`; a
/// value of the wrong size still fails to decode). `stream_id` is given when the query read one
/// stream and so did not select the column.
fn recorded_event_of(
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

/// The notifier's first pause after a failed `NOTIFY`; it doubles with each failure in a row.
const NOTIFY_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between attempts of a failing `NOTIFY`.
const NOTIFY_RETRY_MAX: Duration = Duration::from_secs(10);

/// What the notifier task works with.
struct Notifier {
    pool: PgPool,
    channel: String,
    instance: String,
    announcer: Arc<Announcer>,
    /// [`sql::OTHERS_LISTEN`] for the store's schema.
    others_listen: String,
}

impl Notifier {
    /// Whether a process other than this store's has a live row in `listeners` (`None`: the
    /// look failed, and is logged the first time in a row).
    async fn others_listen(&self, failing: &mut bool) -> Option<bool> {
        let found = sqlx::query_scalar(sqlx::AssertSqlSafe(self.others_listen.as_str()))
            .bind(&self.instance)
            .fetch_one(&self.pool)
            .await;
        match found {
            Ok(found) => {
                *failing = false;
                Some(found)
            }
            Err(error) => {
                if !std::mem::replace(failing, true) {
                    tracing::warn!(
                        %error,
                        "cannot read the listeners table; announcing every commit meanwhile"
                    );
                }
                None
            }
        }
    }

    /// Looks at the listeners (see `crate::announce`).
    async fn check(&self, failing: &mut bool) {
        let covered = self.announcer.start_check();
        let found = self.others_listen(failing).await;
        self.announcer.checked(found, covered);
    }
}

/// Announces this store's pending commits to other processes when no append carried the
/// announcement in time (see `crate::announce`): one `NOTIFY` after a quiet spell, with the
/// store's `instance` as payload. Looks whether anybody listens first, at most once per
/// [`crate::announce::LISTENERS_CHECK`]; while nobody does, announces nothing.
async fn notify(notifier: Notifier) {
    let announcer = &notifier.announcer;
    let mut backoff = NOTIFY_RETRY_FIRST;
    let mut failing = false;
    loop {
        announcer.signal.notified().await;
        loop {
            if announcer.is_closing() {
                // The store's last handle went: what is pending is announced now, claimed or
                // not, if someone may listen (looked at again: a reader may have come since).
                if announcer.is_pending() && announcer.nobody_listens() {
                    notifier.check(&mut failing).await;
                }
                if announcer.is_pending() && !announcer.nobody_listens() {
                    match send_notify(&notifier.pool, &notifier.channel, &notifier.instance).await {
                        // The application closed the pool first: it is shutting down.
                        Ok(()) | Err(sqlx::Error::PoolClosed) => {}
                        Err(error) => {
                            tracing::warn!(%error, "a closed store's last NOTIFY failed");
                        }
                    }
                }
                return;
            }
            if !announcer.is_pending() {
                break;
            }
            let check_in = announcer.check_wait();
            if check_in.is_zero() {
                notifier.check(&mut failing).await;
                continue;
            }
            if announcer.nobody_listens() {
                // Commits stay pending until the next look; the store closing ends the wait.
                let _ = tokio::time::timeout(check_in, announcer.signal.notified()).await;
                continue;
            }
            // An append that claims meanwhile moves the deadline, and covers what is pending;
            // the store closing ends the wait early.
            let wait = announcer.notifier_wait();
            if !wait.is_zero() {
                let _ = tokio::time::timeout(wait, announcer.signal.notified()).await;
                continue;
            }
            let Some(claim) = announcer.claim() else {
                continue;
            };
            match send_notify(&notifier.pool, &notifier.channel, &notifier.instance).await {
                Ok(()) => {
                    claim.carried();
                    backoff = NOTIFY_RETRY_FIRST;
                }
                Err(error) => {
                    // Dropping the claim keeps the commits pending, and they are tried again
                    // after a growing pause (a pool closed for good must not be hammered);
                    // other processes' readers fall back to their poll meanwhile.
                    tracing::warn!(%error, retry_in = ?backoff, "NOTIFY failed");
                    drop(claim);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(NOTIFY_RETRY_MAX);
                }
            }
            break;
        }
    }
}

/// One `NOTIFY` of this store's commits on `channel`, in a transaction of its own.
async fn send_notify(pool: &PgPool, channel: &str, instance: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(instance)
        .execute(pool)
        .await
        .map(drop)
}

/// The type names a filter binds as `text[]` (`NULL`: every type).
fn type_names<'a>(filter: EventFilter<'a>) -> Option<Vec<&'a str>> {
    match filter {
        EventFilter::Types(types) => Some(types.to_vec()),
        _ => None,
    }
}

/// A lease's time to live in whole milliseconds, for `interval` arithmetic in SQL.
fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// How long a listener's registration lasts unless renewed: a crashed process's registration
/// makes the other stores announce for at most this long.
const LISTENER_TTL: Duration = Duration::from_secs(30);
/// How often a listener renews its registration.
const LISTENER_RENEW: Duration = Duration::from_secs(10);
/// The pause before a failed registration is tried again.
const LISTENER_RETRY: Duration = Duration::from_secs(1);

/// Registers this store's listener in the `listeners` table, so that other processes' stores
/// announce their commits (see `crate::announce`), and renews it until `store_gone` fires (the
/// store's last handle went): then removes it.
async fn register_listener(
    pool: PgPool,
    register: String,
    unregister: String,
    instance: String,
    mut store_gone: tokio::sync::oneshot::Receiver<()>,
) {
    let ttl = millis(LISTENER_TTL);
    let mut failing = false;
    loop {
        let registered = sqlx::query(sqlx::AssertSqlSafe(register.as_str()))
            .bind(&instance)
            .bind(ttl)
            .execute(&pool)
            .await;
        let pause = match registered {
            Ok(_) => {
                failing = false;
                LISTENER_RENEW
            }
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(
                        %error,
                        "cannot register this store's listener; other processes may not announce their commits, and its readers poll"
                    );
                }
                LISTENER_RETRY
            }
        };
        // Both cancel-safe: a pause cut short by the store going loses nothing.
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = &mut store_gone => break,
        }
    }
    if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(unregister.as_str()))
        .bind(&instance)
        .execute(&pool)
        .await
    {
        // The registration expires by itself.
        tracing::debug!(%error, "removing this store's listener registration failed");
    }
}

/// Wakes readers on every notification but this store's own (`instance`: its readers were woken
/// at the commit); reconnects after a lost connection (and wakes readers then too, since
/// notifications sent meanwhile are lost).
async fn listen(pool: PgPool, channel: String, instance: String, head: Weak<watch::Sender<u64>>) {
    let wake = |head: &Weak<watch::Sender<u64>>| match head.upgrade() {
        Some(sender) => {
            sender.send_modify(|n| *n = n.wrapping_add(1));
            true
        }
        None => false,
    };
    // A connection of its own, so the listener does not take one of the pool's.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with((*pool.connect_options()).clone());
    loop {
        match PgListener::connect_with(&own).await.map(|mut listener| {
            listener.ignore_pool_close_event(true);
            listener
        }) {
            Ok(mut listener) => match listener.listen(&channel).await {
                Ok(()) => {
                    if !wake(&head) {
                        return;
                    }
                    while let Ok(notification) = listener.recv().await {
                        if notification.payload() != instance && !wake(&head) {
                            return;
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "LISTEN failed; retrying"),
            },
            Err(error) => tracing::warn!(%error, "notification listener cannot connect; retrying"),
        }
        if head.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl EventStore for PostgresStore {
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
                    let row = row.map_err(|error| {
                        classify(format!("load stream `{stream_id}`"), &error).with_source(error)
                    })?;
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
        .map_err(|error| classify(context(), &error).with_source(error))?;
        Ok(from_i64(count, &context)?.get())
    }

    async fn head(&self) -> Result<Option<LogPosition>, LoadError> {
        let context = || "read the head of the log".to_owned();
        let head: Option<(i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(self.inner.queries.head.as_str()))
                .fetch_optional(&self.pool)
                .await
                .map_err(|error| classify(context(), &error).with_source(error))?;
        Ok(head
            .map(|(transaction, position)| log_position(transaction, position, &context))
            .transpose()?)
    }

    fn watch(&self) -> LogWatch {
        let watch = LogWatch::new(self.inner.head.subscribe());
        self.listen_once();
        watch
    }

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
        .map_err(|error| classify(context(), &error).with_source(error))?;
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
        .map_err(|error| classify(context(), &error).with_source(error))?;
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

/// The unit of work handed to projection handlers: a transaction on the store's pool, in which
/// the runner also writes the checkpoint.
pub type PgTransaction = sqlx::Transaction<'static, Postgres>;

impl CheckpointStore for PostgresStore {
    type Transaction = PgTransaction;

    async fn checkpoint(&self, projection: &str) -> Result<LogPosition, BackendError> {
        let context = || format!("read the checkpoint of projection `{projection}`");
        let row: Option<(i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(self.inner.queries.checkpoint.as_str()))
                .bind(projection)
                .fetch_optional(&self.pool)
                .await
                .map_err(|error| classify(context(), &error).with_source(error))?;
        match row {
            None => Ok(LogPosition::START),
            Some((transaction, position)) => log_position(transaction, position, &context),
        }
    }

    async fn begin(&self, projection: &str) -> Result<PgTransaction, BackendError> {
        let context = || format!("begin a batch of projection `{projection}`");
        self.pool
            .begin_with(sqlx::AssertSqlSafe(self.inner.begin_batch.clone()))
            .await
            .map_err(|error| classify(context(), &error).with_source(error))
    }

    async fn commit(
        &self,
        mut transaction: PgTransaction,
        projection: &str,
        checkpoint: LogPosition,
    ) -> Result<(), BackendError> {
        let context = || format!("commit a batch of projection `{projection}` at {checkpoint}");
        sqlx::query(sqlx::AssertSqlSafe(
            self.inner.queries.save_checkpoint.as_str(),
        ))
        .bind(projection)
        .bind(checkpoint.transaction.to_string())
        .bind(to_i64(checkpoint.position.get(), &context)?)
        .execute(&mut *transaction)
        .await
        .map_err(|error| classify(context(), &error).with_source(error))?;
        transaction
            .commit()
            .await
            .map_err(|error| classify(context(), &error).with_source(error))
    }

    async fn acquire_lease(
        &self,
        projection: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, BackendError> {
        let context = || format!("take the lease on projection `{projection}`");
        let epoch: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(
            self.inner.queries.acquire_lease.as_str(),
        ))
        .bind(projection)
        .bind(owner)
        .bind(millis(ttl))
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| classify(context(), &error).with_source(error))?;
        epoch
            .map(|epoch| {
                Ok(Lease::new(
                    projection,
                    owner,
                    from_i64(epoch, &context)?.get(),
                ))
            })
            .transpose()
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<LeaseRenewal, BackendError> {
        let context = || format!("renew the lease on projection `{}`", lease.projection);
        let renewed: Option<Option<String>> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.queries.renew_lease.as_str()))
                .bind(&lease.projection)
                .bind(&lease.owner)
                .bind(to_i64(lease.epoch, &context)?)
                .bind(millis(ttl))
                .fetch_optional(&self.pool)
                .await
                .map_err(|error| classify(context(), &error).with_source(error))?;
        Ok(match renewed {
            None => LeaseRenewal::Lost,
            Some(None) => LeaseRenewal::Renewed,
            Some(Some(requested_by)) => LeaseRenewal::HandOver { requested_by },
        })
    }

    async fn request_lease(
        &self,
        projection: &str,
        requester: &str,
        ttl: Duration,
    ) -> Result<Option<LeaseHolder>, BackendError> {
        let context = || format!("ask for the lease on projection `{projection}`");
        let holder: Option<(String, i64, i64, Option<String>)> = sqlx::query_as(
            sqlx::AssertSqlSafe(self.inner.queries.request_lease.as_str()),
        )
        .bind(projection)
        .bind(requester)
        .bind(millis(ttl))
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| classify(context(), &error).with_source(error))?;
        holder
            .map(|(owner, epoch, left, requested_by)| {
                Ok(LeaseHolder::new(
                    owner,
                    from_i64(epoch, &context)?.get(),
                    Duration::from_millis(from_i64(left, &context)?.get()),
                    requested_by,
                ))
            })
            .transpose()
    }

    async fn take_over_lease(
        &self,
        projection: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Lease, BackendError> {
        let context = || format!("take over the lease on projection `{projection}`");
        let epoch: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(
            self.inner.queries.take_over_lease.as_str(),
        ))
        .bind(projection)
        .bind(owner)
        .bind(millis(ttl))
        .fetch_one(&self.pool)
        .await
        .map_err(|error| classify(context(), &error).with_source(error))?;
        Ok(Lease::new(
            projection,
            owner,
            from_i64(epoch, &context)?.get(),
        ))
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), BackendError> {
        let context = || format!("release the lease on projection `{}`", lease.projection);
        sqlx::query(sqlx::AssertSqlSafe(
            self.inner.queries.release_lease.as_str(),
        ))
        .bind(&lease.projection)
        .bind(&lease.owner)
        .bind(to_i64(lease.epoch, &context)?)
        .execute(&self.pool)
        .await
        .map_err(|error| classify(context(), &error).with_source(error))?;
        Ok(())
    }

    async fn commit_fenced(
        &self,
        mut transaction: PgTransaction,
        projection: &str,
        checkpoint: LogPosition,
        lease: &Lease,
    ) -> Result<(), BackendError> {
        let context = || {
            format!(
                "commit a batch of projection `{projection}` at {checkpoint} under lease epoch {} of `{}`",
                lease.epoch, lease.owner
            )
        };
        let saved: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(
            self.inner.queries.save_checkpoint_fenced.as_str(),
        ))
        .bind(projection)
        .bind(checkpoint.transaction.to_string())
        .bind(to_i64(checkpoint.position.get(), &context)?)
        .bind(&lease.owner)
        .bind(to_i64(lease.epoch, &context)?)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(|error| classify(context(), &error).with_source(error))?;
        if saved.is_none() {
            // Dropping the transaction rolls the batch back.
            return Err(BackendError::new(
                BACKEND,
                BackendErrorKind::LeaseLost,
                context(),
            ));
        }
        transaction
            .commit()
            .await
            .map_err(|error| classify(context(), &error).with_source(error))
    }

    async fn lease_owner(&self, projection: &str) -> Result<Option<(String, bool)>, BackendError> {
        sqlx::query_as(sqlx::AssertSqlSafe(self.inner.queries.lease_owner.as_str()))
            .bind(projection)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| {
                classify(
                    format!("read the lease on projection `{projection}`"),
                    &error,
                )
                .with_source(error)
            })
    }

    async fn reset_checkpoint(&self, projection: &str) -> Result<(), BackendError> {
        sqlx::query(sqlx::AssertSqlSafe(
            self.inner.queries.reset_checkpoint.as_str(),
        ))
        .bind(projection)
        .execute(&self.pool)
        .await
        .map_err(|error| {
            classify(
                format!("reset the checkpoint of projection `{projection}`"),
                &error,
            )
            .with_source(error)
        })?;
        Ok(())
    }
}

#[cfg(test)]
impl PostgresStore {
    /// No append claims an announcement and the notifier takes no connection until the store
    /// closes (see `Announcer::silence`): for tests that count the pool's checkouts.
    pub(crate) fn silence_announcements(&self) {
        self.inner.announcer.silence();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    use crate::test_common as common;

    /// Long enough that the subscriber's own re-reads after its last wake-up (5 ms, 10 ms, 20
    /// ms ... doubling) have spread out: its next one comes about 2 s after the append.
    const SETTLE: Duration = Duration::from_secs(3);
    /// Announcements go out within 20 ms; a subscriber that waits this long was not woken.
    const WOKEN_WITHIN: Duration = Duration::from_millis(1_500);
    /// The longest a test waits for the announcer to reach a state it reaches by itself within
    /// a look or two (250 ms apart); generous, since only a failing test waits it out.
    const SETTLED_WITHIN: Duration = Duration::from_secs(10);

    fn ticks(count: usize) -> Vec<es_core::NewEvent> {
        (0..count)
            .map(|n| {
                let payload = serde_json::value::to_raw_value(&serde_json::json!({ "n": n }));
                es_core::NewEvent::new("tick", 1, payload.unwrap(), Metadata::new())
            })
            .collect()
    }

    /// Two stores on one fresh schema, as in two processes; a subscriber on the second, woken
    /// only by notifications, has settled into waiting. `append` appends with the first store
    /// and returns the first event's id, which the subscriber must then be woken for.
    async fn announced_to_another_process<F, Fut>(append: F)
    where
        F: FnOnce(PostgresStore) -> Fut,
        Fut: Future<Output = EventId>,
    {
        common::with_schemas(4, |pool, schemas| async move {
            let schema = schemas.fresh();
            let open = || {
                PostgresStore::options()
                    .schema(schema.clone())
                    .with_pool(pool.clone())
            };
            let store = open().await.unwrap();
            let reader = open().await.unwrap();
            let mut subscription = es_core::Subscription::new(reader.clone(), LogPosition::START)
                .fallback_poll(Duration::from_secs(3_600));
            let waiting = tokio::spawn(async move { subscription.next().await });
            tokio::time::sleep(SETTLE).await;
            // The store stays open meanwhile: its notifier goes with its last handle.
            let id = append(store.clone()).await;
            let woken = tokio::time::timeout(WOKEN_WITHIN, waiting)
                .await
                .expect("the other store's subscriber was woken")
                .unwrap()
                .unwrap();
            assert_eq!(woken.id, id);
        })
        .await;
    }

    async fn append(store: &PostgresStore, expected: ExpectedVersion, events: usize) -> EventId {
        append_as(store, expected, events, false).await
    }

    /// [`append`], made [`without_position`](AppendRequest::without_position) (as the command
    /// path's) or not.
    async fn append_as(
        store: &PostgresStore,
        expected: ExpectedVersion,
        events: usize,
        without_position: bool,
    ) -> EventId {
        append_to(store, "quiet-1", expected, events, without_position).await
    }

    /// Appends `events` ticks to `stream`; returns the first event's id.
    async fn append_to(
        store: &PostgresStore,
        stream: &str,
        expected: ExpectedVersion,
        events: usize,
        without_position: bool,
    ) -> EventId {
        let events = ticks(events);
        let id = events[0].id;
        let stream = StreamId::new(stream).unwrap();
        let mut request = AppendRequest::new(stream, expected, events);
        request.without_position = without_position;
        store.append(request).await.unwrap();
        id
    }

    /// A lone append claims the announcement and carries it in its own statement: one event,
    /// a batch, and the general statement (an `Any` append).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_append_of_one_event_announces_itself() {
        announced_to_another_process(|store| async move {
            append(&store, ExpectedVersion::NoStream, 1).await
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_append_of_a_batch_announces_itself() {
        announced_to_another_process(|store| async move {
            append(&store, ExpectedVersion::NoStream, 3).await
        })
        .await;
    }

    /// The command path's appends return no position; they announce all the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_append_without_position_announces_itself() {
        announced_to_another_process(|store| async move {
            append_as(&store, ExpectedVersion::NoStream, 1, true).await
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_batch_without_position_announces_itself() {
        announced_to_another_process(|store| async move {
            append_as(&store, ExpectedVersion::NoStream, 3, true).await
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_general_append_announces_itself() {
        announced_to_another_process(|store| async move {
            append(&store, ExpectedVersion::Any, 2).await
        })
        .await;
    }

    /// A store on a fresh schema whose appends never announce by themselves (the notifier
    /// waits as well), and a listener on its channel.
    async fn silenced_store(
        pool: &PgPool,
        schemas: &common::Schemas,
    ) -> (PostgresStore, PgListener) {
        let store = PostgresStore::options()
            .schema(schemas.fresh())
            .with_pool(pool.clone())
            .await
            .unwrap();
        store.inner.announcer.silence();
        let mut listener = PgListener::connect_with(pool).await.unwrap();
        listener.listen(&store.inner.channel).await.unwrap();
        (store, listener)
    }

    /// Sends a marker on `store`'s channel and checks that it is the next notification
    /// `listener` gets: notifications arrive in commit order, so nothing was sent before it
    /// (else fails with `failure`).
    async fn nothing_notified_before_a_marker(
        pool: &PgPool,
        store: &PostgresStore,
        listener: &mut PgListener,
        failure: &str,
    ) {
        send_marker(pool, store).await;
        let next = next_notification(listener).await;
        assert_eq!(next.payload(), "marker", "{failure}");
    }

    /// Sends a notification with payload `marker` on `store`'s channel.
    async fn send_marker(pool: &PgPool, store: &PostgresStore) {
        sqlx::query("SELECT pg_notify($1, 'marker')")
            .bind(&store.inner.channel)
            .execute(pool)
            .await
            .unwrap();
    }

    /// The next notification `listener` gets, within [`WOKEN_WITHIN`].
    async fn next_notification(listener: &mut PgListener) -> sqlx::postgres::PgNotification {
        tokio::time::timeout(WOKEN_WITHIN, listener.recv())
            .await
            .expect("a notification arrived in time")
            .unwrap()
    }

    /// Without the claim the lean appends take their plain form, which sends nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_without_the_claim_notify_nobody() {
        common::with_schemas(2, |pool, schemas| async move {
            let (store, mut listener) = silenced_store(&pool, &schemas).await;
            let appends = [
                ("silent-1", 1, false),
                ("silent-2", 3, false),
                ("silent-3", 1, true),
                ("silent-4", 3, true),
            ];
            for (stream, events, without_position) in appends {
                append_to(
                    &store,
                    stream,
                    ExpectedVersion::NoStream,
                    events,
                    without_position,
                )
                .await;
            }
            nothing_notified_before_a_marker(
                &pool,
                &store,
                &mut listener,
                "an append without the claim notified",
            )
            .await;
        })
        .await;
    }

    /// An append that claims the announcement but fails its version check (the guarded
    /// statements, one event and a batch) sends no notification: the guard keeps the insert,
    /// and with it the announcement, from running.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claiming_append_that_conflicts_announces_nothing() {
        common::with_schemas(2, |pool, schemas| async move {
            let store = PostgresStore::options()
                .schema(schemas.fresh())
                .with_pool(pool.clone())
                .await
                .unwrap();
            let mut listener = PgListener::connect_with(&pool).await.unwrap();
            listener.listen(&store.inner.channel).await.unwrap();
            listen_as_another_process(&pool, &store).await;
            let stream = StreamId::new("guarded-1").unwrap();
            let placed = AppendRequest::new(stream.clone(), ExpectedVersion::NoStream, ticks(1));
            store.append(placed).await.unwrap();
            let first = tokio::time::timeout(WOKEN_WITHIN, listener.recv())
                .await
                .expect("the first append announced itself")
                .unwrap();
            assert_eq!(first.payload(), store.inner.instance);
            for (events, without_position) in [(1, false), (3, false), (1, true), (3, true)] {
                // Past the interval, so this append claims the announcement.
                tokio::time::sleep(crate::announce::INTERVAL * 5).await;
                // Behind the stream and not read from it: the guarded statement.
                let mut behind = AppendRequest::new(
                    stream.clone(),
                    ExpectedVersion::Exact(StreamVersion(5)),
                    ticks(events),
                );
                behind.without_position = without_position;
                match store.append(behind).await {
                    Err(AppendError::Conflict { actual, .. }) => {
                        assert_eq!(actual, StreamVersion(1));
                    }
                    other => panic!("expected a conflict, got {other:?}"),
                }
            }
            assert!(
                !store.inner.announcer.is_pending(),
                "a failed append left a commit to announce"
            );
            nothing_notified_before_a_marker(
                &pool,
                &store,
                &mut listener,
                "a conflicting append notified",
            )
            .await;
            assert_eq!(
                store.stream_version(&stream).await.unwrap(),
                StreamVersion(1)
            );
        })
        .await;
    }

    /// Commits the notifier had yet to announce when the last handle went are announced then,
    /// whether they returned a position or not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_handle_announces_what_is_pending() {
        common::with_schemas(3, |pool, schemas| async move {
            for without_position in [false, true] {
                let (store, mut listener) = silenced_store(&pool, &schemas).await;
                let instance = store.inner.instance.clone();
                // Nothing announces while the store lives: the commit stays pending.
                append_as(&store, ExpectedVersion::NoStream, 1, without_position).await;
                assert!(store.inner.announcer.is_pending());
                drop(store);
                let announced = tokio::time::timeout(WOKEN_WITHIN, listener.recv())
                    .await
                    .expect("the dropped store announced its pending commit")
                    .unwrap();
                assert_eq!(announced.payload(), instance);
            }
        })
        .await;
    }

    /// A commit that comes while another append holds this interval's announcement carries
    /// none, and no append follows it: the notifier announces it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_no_append_announces_is_announced_by_the_notifier() {
        announced_to_another_process(|store| async move {
            let claim = store.inner.announcer.claim();
            assert!(claim.is_some(), "no announcement was claimed before");
            let id = append(&store, ExpectedVersion::NoStream, 1).await;
            drop(claim);
            id
        })
        .await;
    }

    /// Registers a listener in `store`'s schema, as another process's listening store does.
    async fn listen_as_another_process(pool: &PgPool, store: &PostgresStore) {
        sqlx::query(sqlx::AssertSqlSafe(
            store.inner.queries.register_listener.as_str(),
        ))
        .bind(Uuid::now_v7().to_string())
        .bind(millis(LISTENER_TTL))
        .execute(pool)
        .await
        .unwrap();
    }

    /// A store on a fresh schema that has looked and found nobody listening, with an
    /// unregistered `LISTEN` on its channel that has received what the store sent before.
    async fn store_nobody_listens_to(
        pool: &PgPool,
        schemas: &common::Schemas,
    ) -> (PostgresStore, PgListener) {
        let store = PostgresStore::options()
            .schema(schemas.fresh())
            .with_pool(pool.clone())
            .await
            .unwrap();
        let mut listener = PgListener::connect_with(pool).await.unwrap();
        listener.listen(&store.inner.channel).await.unwrap();
        // An append claims while nobody has looked; one inside the interval of the claim
        // leaves its commit pending, which makes the notifier look. On a busy machine the next
        // append may come after the interval and claim again, so this appends until the
        // notifier has something to look at.
        let announcer = &store.inner.announcer;
        let mut early = 0;
        tokio::time::timeout(SETTLED_WITHIN, async {
            while !announcer.nobody_listens() || announcer.is_pending() {
                if announcer.nobody_listens() || announcer.is_pending() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                } else {
                    early += 1;
                    let stream = format!("early-{early}");
                    append_to(&store, &stream, ExpectedVersion::NoStream, 1, false).await;
                }
            }
        })
        .await
        .expect("the notifier looked and found nobody listening");
        // Takes the first append's announcement, up to a marker.
        send_marker(pool, &store).await;
        while next_notification(&mut listener).await.payload() != "marker" {}
        (store, listener)
    }

    /// While no other process listens, appends that would claim the announcement (past the
    /// interval) and the notifier send nothing, and nothing stays pending.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_is_announced_while_nobody_listens() {
        common::with_schemas(2, |pool, schemas| async move {
            let (store, mut listener) = store_nobody_listens_to(&pool, &schemas).await;
            for (stream, events, without_position) in [
                ("alone-1", 1, true),
                ("alone-2", 3, false),
                ("alone-3", 1, false),
            ] {
                tokio::time::sleep(crate::announce::INTERVAL * 3).await;
                append_to(
                    &store,
                    stream,
                    ExpectedVersion::NoStream,
                    events,
                    without_position,
                )
                .await;
            }
            // The notifier's next look drops them.
            let announcer = &store.inner.announcer;
            tokio::time::timeout(SETTLED_WITHIN, async {
                while announcer.is_pending() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("commits nobody listens for stayed pending");
            assert!(announcer.nobody_listens());
            nothing_notified_before_a_marker(
                &pool,
                &store,
                &mut listener,
                "an append notified though nobody listened",
            )
            .await;
        })
        .await;
    }

    /// A reader in another process that starts after the writer found nobody listening is
    /// woken for the writer's next commit: the writer's next look finds its registration and
    /// announces.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_that_comes_later_is_woken_by_the_next_commit() {
        common::with_schemas(3, |pool, schemas| async move {
            let (store, _) = store_nobody_listens_to(&pool, &schemas).await;
            let reader = PostgresStore::options()
                .schema(store.schema().to_owned())
                .with_pool(pool.clone())
                .await
                .unwrap();
            let after = reader.head().await.unwrap().unwrap_or(LogPosition::START);
            let mut subscription = es_core::Subscription::new(reader.clone(), after)
                .fallback_poll(Duration::from_secs(3_600));
            let waiting = tokio::spawn(async move { subscription.next().await });
            tokio::time::sleep(SETTLE).await;
            assert!(
                store.inner.announcer.nobody_listens(),
                "the writer looked again though it committed nothing"
            );
            let id = append(&store, ExpectedVersion::NoStream, 1).await;
            let woken = tokio::time::timeout(WOKEN_WITHIN, waiting)
                .await
                .expect("the later reader was woken")
                .unwrap()
                .unwrap();
            assert_eq!(woken.id, id);
            assert!(!store.inner.announcer.nobody_listens());
        })
        .await;
    }

    /// A store registers its listener when something first watches the log, and removes the
    /// registration when its last handle goes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watching_store_registers_its_listener_until_it_closes() {
        common::with_schemas(2, |pool, schemas| async move {
            let store = PostgresStore::options()
                .schema(schemas.fresh())
                .with_pool(pool.clone())
                .await
                .unwrap();
            let table = format!("{}.listeners", store.inner.quoted_schema);
            let registered = |instance: String| {
                let pool = pool.clone();
                let table = table.clone();
                async move {
                    sqlx::query_scalar::<_, bool>(sqlx::AssertSqlSafe(format!(
                        "SELECT EXISTS (SELECT 1 FROM {table} WHERE instance = $1 \
                         AND expires_at > clock_timestamp())"
                    )))
                    .bind(instance)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
                }
            };
            let instance = store.inner.instance.clone();
            assert!(
                !registered(instance.clone()).await,
                "registered before watching"
            );
            let watch = store.watch();
            tokio::time::timeout(WOKEN_WITHIN, async {
                while !registered(instance.clone()).await {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .expect("the watching store registered its listener");
            drop(watch);
            drop(store);
            tokio::time::timeout(WOKEN_WITHIN, async {
                while registered(instance.clone()).await {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .expect("the closed store removed its registration");
        })
        .await;
    }

    /// An append in the caller's transaction queues a notification only when someone may
    /// listen; otherwise its commit is pending, and the notifier announces it once a look
    /// finds a listener.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_in_a_transaction_notifies_only_when_someone_listens() {
        common::with_schemas(2, |pool, schemas| async move {
            let (store, mut listener) = store_nobody_listens_to(&pool, &schemas).await;
            let append_in = |stream: &'static str| {
                let pool = pool.clone();
                let store = store.clone();
                async move {
                    let mut transaction = pool.begin().await.unwrap();
                    let stream = StreamId::new(stream).unwrap();
                    let request = AppendRequest::new(stream, ExpectedVersion::NoStream, ticks(1));
                    store.append_in(&mut transaction, request).await.unwrap();
                    transaction.commit().await.unwrap();
                }
            };
            append_in("outbox-1").await;
            tokio::time::sleep(crate::announce::LISTENERS_CHECK * 2).await;
            nothing_notified_before_a_marker(
                &pool,
                &store,
                &mut listener,
                "an append in a transaction notified though nobody listened",
            )
            .await;

            listen_as_another_process(&pool, &store).await;
            append_in("outbox-2").await;
            let announced = tokio::time::timeout(WOKEN_WITHIN, listener.recv())
                .await
                .expect("the notifier's look found the listener and announced")
                .unwrap();
            assert_eq!(announced.payload(), store.inner.instance);
            append_in("outbox-3").await;
            let notified = tokio::time::timeout(WOKEN_WITHIN, listener.recv())
                .await
                .expect("the append notified in its transaction")
                .unwrap();
            assert_eq!(
                notified.payload(),
                "",
                "not the transaction's own notification"
            );
        })
        .await;
    }

    /// The reads of a stream (both folds and the load) run, once their plan is generic (from a
    /// statement's sixth execution on a connection), as an ordered scan of the stream's index:
    /// no sort before the first row. The table holds one long stream and was never analyzed,
    /// where PostgreSQL otherwise picks a bitmap scan and a sort (see `sql::IN_VERSION_ORDER`).
    #[tokio::test]
    async fn stream_reads_follow_the_index_without_a_sort() {
        common::with_schemas(2, |pool, schemas| async move {
            let store = schemas.store(&pool).await;
            let stream = StreamId::new("long-1").unwrap();
            let mut version = 0;
            for _ in 0..10 {
                let request = AppendRequest::new(
                    stream.clone(),
                    ExpectedVersion::Exact(StreamVersion(version)),
                    ticks(1_000),
                );
                version = store.append(request).await.unwrap().version_after.get();
            }
            let mut connection = pool.acquire().await.unwrap();
            let queries = &store.inner.queries;
            // (parameter types, arguments) with and without the version condition
            let after = ("text, bigint, bigint", "'long-1', 0, NULL");
            let whole = ("text, bigint", "'long-1', NULL");
            for (name, statement, (types, arguments)) in [
                ("fold", &queries.fold_stream, after),
                ("fold_whole", &queries.fold_whole_stream, whole),
                ("load", &queries.load_stream, after),
            ] {
                let prepare = format!(
                    "SET plan_cache_mode = force_generic_plan; \
                     PREPARE {name}({types}) AS {statement}"
                );
                sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
                    .execute(&mut *connection)
                    .await
                    .unwrap();
                let explain = format!("EXPLAIN EXECUTE {name}({arguments})");
                let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
                    .fetch_all(&mut *connection)
                    .await
                    .unwrap();
                let plan = plan.join("\n");
                assert!(
                    plan.contains("Index Scan using events_stream_version_key")
                        && !plan.contains("Sort"),
                    "the {name} statement's generic plan:\n{plan}"
                );
            }
            sqlx::raw_sql(
                "DEALLOCATE fold; DEALLOCATE fold_whole; DEALLOCATE load; RESET plan_cache_mode",
            )
            .execute(&mut *connection)
            .await
            .unwrap();
        })
        .await;
    }
}
