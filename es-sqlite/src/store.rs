//! [`SqliteStore`]: the es-core store contract on one SQLite file.

use es_core::store::{CommandLog, EventLog, SnapshotStore};
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use es_core::snapshot::Snapshot;
use es_core::store::{CommandRecord, LogWatch, StoredEvent};
use es_core::{
    AppendError, AppendRequest, BackendError, Committed, EventFilter, LoadError, LogPosition,
    RecordedEvent, StreamId, StreamVersion,
};
use futures_core::Stream;
use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, SqliteConnection};
use tokio::sync::watch;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::append::BEGIN_IMMEDIATE;
use crate::error::{BACKEND, classify};
use crate::options::SqliteOptions;
use crate::{append, read, snapshot};

/// A write transaction on the store's writer connection, begun with `BEGIN IMMEDIATE`: the
/// unit of work handed to projection handlers, and what [`SqliteStore::begin_write`] returns
/// for the outbox pattern.
pub type SqliteTransaction = sqlx::Transaction<'static, Sqlite>;

/// The SQLite event store: one file, one writer connection, a pool of read-only connections.
/// Cheap to clone: clones share the pools and the watch.
///
/// See the crate docs for the schema, why writes are serialised and what that guarantees.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// One connection: every write of the store queues here.
    writer: SqlitePool,
    /// Read-only connections for loads and reads of the log.
    readers: SqlitePool,
    /// The file, for messages.
    file: String,
    /// The head position, sent after every committed append in this process.
    head: watch::Sender<u64>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("file", &self.inner.file)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the store in `path_or_url` (a path or a `sqlite:` URL) with the default options:
    /// the file is created if missing and migrated.
    ///
    /// # Errors
    /// As [`SqliteOptions::connect`].
    pub async fn connect(path_or_url: &str) -> Result<Self, BackendError> {
        SqliteOptions::default().connect(path_or_url).await
    }

    /// Opens the store in the file at `path` with the default options.
    ///
    /// # Errors
    /// As [`SqliteOptions::connect`].
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self, BackendError> {
        SqliteOptions::default().open(path).await
    }

    /// Options to open a store with.
    #[must_use]
    pub fn options() -> SqliteOptions {
        SqliteOptions::default()
    }

    pub(crate) fn from_pools(writer: SqlitePool, readers: SqlitePool, file: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                writer,
                readers,
                file,
                head: watch::Sender::new(0),
            }),
        }
    }

    /// The pool holding the store's one writer connection. Writes of your own on the same file
    /// should go through it (best with [`SqliteStore::begin_write`]): they then queue behind
    /// the store's writes instead of contending for SQLite's lock.
    #[must_use]
    pub fn writer(&self) -> &SqlitePool {
        &self.inner.writer
    }

    /// The pool of read-only connections the store reads with; use it for queries of your own
    /// (a read model kept in the same file, say).
    #[must_use]
    pub fn readers(&self) -> &SqlitePool {
        &self.inner.readers
    }

    /// Closes the store's connections, for every clone: readers first, then the writer, which
    /// checkpoints the write-ahead log into the main file and removes the `-wal` and `-shm`
    /// files. Waits for the connections in use to be returned. Later calls on any clone fail
    /// with [`BackendErrorKind::Unavailable`](es_core::BackendErrorKind::Unavailable). Dropping the last clone also closes the store,
    /// in the background.
    pub async fn close(&self) {
        self.inner.readers.close().await;
        self.inner.writer.close().await;
    }

    /// Applies the embedded migrations that are missing (idempotent; `connect` does it unless
    /// told otherwise). Their record is kept in the table `_es_migrations`.
    ///
    /// # Errors
    /// [`BackendErrorKind::SchemaMismatch`](es_core::BackendErrorKind::SchemaMismatch) when the file holds migrations this version does
    /// not know (written by a newer version of the framework), or a changed or half-applied
    /// one; [`BackendErrorKind::Unavailable`](es_core::BackendErrorKind::Unavailable) when the file cannot be written.
    pub async fn migrate(&self) -> Result<(), BackendError> {
        crate::migrate::migrate(&self.inner.writer, &self.inner.file).await
    }

    /// Begins a write transaction on the store's writer connection (`BEGIN IMMEDIATE`), for
    /// the outbox pattern: write your own rows in it, call [`SqliteStore::append_in`], commit.
    /// While it is open every other write of the store waits, so keep it short, and do not call
    /// [`EventLog::append`] on this store before it ends (it would wait for this very
    /// transaction until the write timeout).
    ///
    /// # Errors
    /// [`BackendErrorKind::Unavailable`](es_core::BackendErrorKind::Unavailable) when the writer connection does not become free within
    /// the write timeout, or the file is locked by another process beyond the busy timeout.
    pub async fn begin_write(&self) -> Result<SqliteTransaction, BackendError> {
        self.inner
            .writer
            .begin_with(BEGIN_IMMEDIATE)
            .await
            .map_err(|error| {
                classify(
                    format!("begin a write transaction on `{}`", self.inner.file),
                    error,
                )
            })
    }

    /// Appends inside the caller's transaction (the outbox pattern): the events commit, or roll
    /// back, with the caller's own writes.
    ///
    /// `connection` should be in a transaction begun through `sqlx`, best one from
    /// [`SqliteStore::begin_write`]: the append then runs in a savepoint of it, so a refused
    /// append (a conflict, say) leaves the caller's transaction usable and unchanged. A
    /// connection outside a transaction gets a transaction of its own, committed here. A
    /// transaction begun with a plain `BEGIN` on a connection of another pool may fail with
    /// [`BackendErrorKind::Unavailable`](es_core::BackendErrorKind::Unavailable) (SQLite's busy snapshot) if the store wrote since it
    /// began reading: begin it with `BEGIN IMMEDIATE`.
    ///
    /// The store's watch cannot see the caller's commit: call [`SqliteStore::wake_readers`]
    /// after committing, or live readers find the events at their next poll.
    ///
    /// # Errors
    /// As [`EventLog::append`].
    pub async fn append_in(
        &self,
        connection: &mut SqliteConnection,
        request: AppendRequest,
    ) -> Result<Committed, AppendError> {
        let span = append_span(&request, "append_in");
        async move {
            let own_transaction = !sqlx::Connection::is_in_transaction(&*connection);
            let committed = append::append_on(connection, &request).await?;
            if own_transaction {
                self.committed(&committed);
            }
            Ok(committed)
        }
        .instrument(span)
        .await
    }

    /// Wakes this store's watchers ([`EventLog::watch`]), as an append does when it commits:
    /// call it after committing a transaction that used [`SqliteStore::append_in`].
    pub fn wake_readers(&self) {
        self.inner.head.send_modify(|_| {});
    }

    /// Wakes watchers after a commit that wrote events.
    fn committed(&self, committed: &Committed) {
        if let Some(last) = committed.last_position {
            let head = last.position.get();
            self.inner.head.send_modify(|current| {
                *current = (*current).max(head);
            });
        }
    }
}

fn append_span(request: &AppendRequest, name: &'static str) -> tracing::Span {
    tracing::debug_span!(
        "append",
        backend = BACKEND,
        via = name,
        stream_id = %request.stream_id,
        expected = %request.expected,
        events = request.events.len(),
    )
}

impl EventLog for SqliteStore {
    async fn append(&self, request: AppendRequest) -> Result<Committed, AppendError> {
        let span = append_span(&request, "append");
        async move {
            let mut connection = self.inner.writer.acquire().await.map_err(|error| {
                classify(format!("append to stream `{}`", request.stream_id), error)
            })?;
            let committed = append::append_on(&mut connection, &request).await?;
            drop(connection);
            self.committed(&committed);
            Ok(committed)
        }
        .instrument(span)
        .await
    }

    fn load<'a>(
        &'a self,
        stream_id: &'a StreamId,
        after: StreamVersion,
    ) -> impl Stream<Item = Result<RecordedEvent, LoadError>> + Send + 'a {
        read::load(&self.inner.readers, stream_id, after)
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
        read::fold_stream(&self.inner.readers, stream_id, after, visit).await
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<StreamVersion, LoadError> {
        let mut connection = self.inner.readers.acquire().await.map_err(|error| {
            classify(format!("read the version of stream `{stream_id}`"), error)
        })?;
        Ok(read::stream_version(&mut connection, stream_id).await?)
    }

    async fn read_all(
        &self,
        after: LogPosition,
        limit: usize,
        filter: EventFilter<'_>,
    ) -> Result<Vec<RecordedEvent>, LoadError> {
        read::read_all(&self.inner.readers, after, limit, filter).await
    }

    async fn head(&self) -> Result<Option<LogPosition>, LoadError> {
        read::head(&self.inner.readers).await
    }

    fn watch(&self) -> LogWatch {
        LogWatch::new(self.inner.head.subscribe())
    }
}

impl SnapshotStore for SqliteStore {
    async fn save_snapshot(
        &self,
        stream_id: &StreamId,
        snapshot: Snapshot,
    ) -> Result<(), BackendError> {
        snapshot::save(&self.inner.writer, stream_id, snapshot).await
    }

    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, LoadError> {
        snapshot::load(&self.inner.readers, stream_id).await
    }
}

impl CommandLog for SqliteStore {
    async fn find_command(&self, command_id: Uuid) -> Result<Option<CommandRecord>, LoadError> {
        let mut connection = self
            .inner
            .readers
            .acquire()
            .await
            .map_err(|error| classify(format!("find command {command_id}"), error))?;
        Ok(read::find_command(&mut connection, command_id).await?)
    }
}
