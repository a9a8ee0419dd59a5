//! [`PostgresOptions`]: how a [`PostgresStore`](crate::PostgresStore)(crate::PostgresStore) is built (building it
//! is in `open.rs`).

use std::time::Duration;

/// The default PostgreSQL schema the store's tables live in.
pub const DEFAULT_SCHEMA: &str = "es";

/// How a [`PostgresStore`](crate::PostgresStore) is built: the schema its tables live in, whether it migrates.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    pub(crate) schema: String,
    pub(crate) run_migrations: bool,
    pub(crate) max_connections: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) batch_idle_timeout: Duration,
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
    /// [`PostgresStore::migrate`](crate::PostgresStore::migrate) yourself (from a deploy step, say).
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
}
