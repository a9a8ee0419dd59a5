//! [`PostgresStore`]: the es-core store contract on PostgreSQL: the handle, its pool and
//! shared state, and the migrations. What it does lives beside: `append`, `read`, `notify`,
//! `checkpoint` (checkpoints and leases), `event_store` (the trait).

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use es_core::{BackendError, BackendErrorKind};
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use tokio::sync::watch;

use crate::announce::Announcer;
use crate::error::{BACKEND, classify, error_kind};
use crate::options::PostgresOptions;
use crate::sql::Queries;

/// What every clone of a store shares: its statements, schema, notification channel and tasks.
pub(crate) struct Inner {
    pub(crate) queries: Queries,
    pub(crate) quoted_schema: String,
    pub(crate) channel: String,
    pub(crate) head: Arc<watch::Sender<u64>>,
    /// The notifier and listener tasks, stopped when the last handle goes.
    pub(crate) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Whether the listener was started (by the first [`EventLog::watch`]).
    pub(crate) listening: AtomicBool,
    /// Held while the listener's registration lives (see `register_listener`): dropped with
    /// the last handle, which tells the registering task to remove it.
    pub(crate) registered: std::sync::OnceLock<tokio::sync::oneshot::Sender<()>>,
    /// When this store last told other processes about its commits (see `crate::announce`).
    pub(crate) announcer: Arc<Announcer>,
    /// The payload of this store's own announcements: its listener skips them, since this
    /// process's readers were woken at the commit already.
    pub(crate) instance: String,
    /// Opens a projection batch's transaction and bounds how long it may sit idle, in one round
    /// trip (one simple-query message holding both statements).
    pub(crate) begin_batch: String,
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
    pub(crate) pool: PgPool,
    pub(crate) inner: Arc<Inner>,
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
            .map_err(|error| classify("migrate", error))?;
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

    /// Keeps `task` until the last handle of the store goes, which stops it.
    pub(crate) fn keep_task(&self, task: tokio::task::JoinHandle<()>) {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
    }

    /// A connection of the pool, for the statements of `context()`.
    pub(crate) async fn acquire(
        &self,
        context: impl FnOnce() -> String,
    ) -> Result<PoolConnection<Postgres>, BackendError> {
        self.pool
            .acquire()
            .await
            .map_err(|error| classify(context(), error))
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
