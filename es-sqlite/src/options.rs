//! [`SqliteOptions`]: how a [`SqliteStore`] opens its file.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use es_core::{BackendError, BackendErrorKind};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{BACKEND, classify};
use crate::store::SqliteStore;

/// How a [`SqliteStore`] is opened: whether the file may be created, whether it is migrated,
/// how many reader connections it keeps and how long writers wait.
///
/// Whatever the options, every connection uses write-ahead logging (`journal_mode=WAL`),
/// `synchronous=FULL` (the write-ahead log is synced to disk at every commit, so an acknowledged
/// append survives a power loss, not only a crash of the process) and `foreign_keys=ON`.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    create_if_missing: bool,
    run_migrations: bool,
    max_readers: u32,
    busy_timeout: Duration,
    write_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            create_if_missing: true,
            run_migrations: true,
            max_readers: 8,
            busy_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
        }
    }
}

impl SqliteOptions {
    /// Whether a missing file is created (default `true`). With `false`, opening a file that
    /// does not exist fails with [`BackendErrorKind::Unavailable`].
    #[must_use]
    pub const fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Whether opening applies the embedded migrations (default `true`). With `false`, call
    /// [`SqliteStore::migrate`] yourself (from a deploy step, say).
    #[must_use]
    pub const fn run_migrations(mut self, run: bool) -> Self {
        self.run_migrations = run;
        self
    }

    /// How many read-only connections serve loads and reads of the log (default 8, at least 1).
    /// Writes always go through the one writer connection (see the crate docs).
    #[must_use]
    pub fn max_readers(mut self, readers: u32) -> Self {
        self.max_readers = readers.max(1);
        self
    }

    /// How long a connection waits for a lock held by another process before failing with
    /// [`BackendErrorKind::Unavailable`] (SQLite's `busy_timeout`, default 5 s). Writers in this
    /// process never wait on it: they queue for the writer connection instead.
    #[must_use]
    pub const fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How long a write waits for its turn on the writer connection before failing with
    /// [`BackendErrorKind::Unavailable`] (default 30 s). Also bounds how long opening waits
    /// for the first connection.
    #[must_use]
    pub const fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Opens the store in the file at `path_or_url`: a plain path (`events.db`,
    /// `/var/lib/app/events.db`) or a `sqlite:` URL (`sqlite://events.db`,
    /// `sqlite:events.db?mode=rwc`).
    ///
    /// # Errors
    /// [`BackendErrorKind::InvalidInput`] for a malformed URL or an in-memory database (use
    /// `es_core::MemoryStore` for that), [`BackendErrorKind::Unavailable`] when the file cannot
    /// be opened or created, [`BackendErrorKind::SchemaMismatch`] when it was migrated by a
    /// newer version of the framework.
    pub async fn connect(self, path_or_url: &str) -> Result<SqliteStore, BackendError> {
        if path_or_url.contains(":memory:") || path_or_url.contains("mode=memory") {
            return Err(BackendError::new(
                BACKEND,
                BackendErrorKind::InvalidInput,
                format!(
                    "open `{path_or_url}`: an in-memory SQLite database is not durable and not shared between connections; use es_core::MemoryStore"
                ),
            ));
        }
        let base = if path_or_url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(path_or_url).map_err(|error| {
                BackendError::new(
                    BACKEND,
                    BackendErrorKind::InvalidInput,
                    format!("parse the SQLite URL `{path_or_url}`"),
                )
                .with_source(error)
            })?
        } else {
            SqliteConnectOptions::new().filename(path_or_url)
        };
        self.connect_with(base).await
    }

    /// Opens the store in the file at `path`.
    ///
    /// # Errors
    /// As [`SqliteOptions::connect`].
    pub async fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, BackendError> {
        self.connect_with(SqliteConnectOptions::new().filename(path))
            .await
    }

    async fn connect_with(self, base: SqliteConnectOptions) -> Result<SqliteStore, BackendError> {
        let file = base.get_filename().display().to_string();
        let context = || format!("open the event store in `{file}`");
        let base = base
            .busy_timeout(self.busy_timeout)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Full);
        // The writer opens (and creates) the file first and switches it to WAL, which is a
        // property of the file: the read-only connections opened afterwards find it so.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(self.write_timeout)
            // Keep the writer open: it holds the WAL index the readers share.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                base.clone()
                    .create_if_missing(self.create_if_missing)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await
            .map_err(|error| classify(context(), error))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(self.max_readers)
            .acquire_timeout(self.write_timeout)
            .connect_with(base.create_if_missing(false).read_only(true))
            .await
            .map_err(|error| classify(context(), error))?;
        let store = SqliteStore::from_pools(writer, readers, file);
        if self.run_migrations {
            store.migrate().await?;
        }
        Ok(store)
    }
}
