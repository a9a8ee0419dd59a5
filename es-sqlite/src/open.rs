//! Opening a store: the writer and reader pools a [`SqliteOptions`] describes, then the
//! migrations.

use std::path::Path;
use std::str::FromStr as _;

use es_core::{BackendError, BackendErrorKind};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{BACKEND, classify};
use crate::migrate::migrate;
use crate::options::SqliteOptions;
use crate::store::SqliteStore;

impl SqliteOptions {
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
        if self.run_migrations {
            migrate(&writer, &file).await?;
        }
        Ok(SqliteStore::from_pools(writer, readers, file))
    }
}
