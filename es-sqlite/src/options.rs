//! [`SqliteOptions`]: how a [`SqliteStore`](crate::SqliteStore) opens its file (opening it is
//! in `open.rs`).

use std::time::Duration;

/// How a [`SqliteStore`](crate::SqliteStore) is opened: whether the file may be created, whether it is migrated,
/// how many reader connections it keeps and how long writers wait.
///
/// Whatever the options, every connection uses write-ahead logging (`journal_mode=WAL`),
/// `synchronous=FULL` (the write-ahead log is synced to disk at every commit, so an acknowledged
/// append survives a power loss, not only a crash of the process) and `foreign_keys=ON`.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    pub(crate) create_if_missing: bool,
    pub(crate) run_migrations: bool,
    pub(crate) max_readers: u32,
    pub(crate) busy_timeout: Duration,
    pub(crate) write_timeout: Duration,
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
    /// does not exist fails with [`BackendErrorKind::Unavailable`](es_core::BackendErrorKind::Unavailable).
    #[must_use]
    pub const fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Whether opening applies the embedded migrations (default `true`). With `false`, call
    /// [`SqliteStore::migrate`](crate::SqliteStore::migrate) yourself (from a deploy step, say).
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
    /// [`BackendErrorKind::Unavailable`](es_core::BackendErrorKind::Unavailable) (SQLite's `busy_timeout`, default 5 s). Writers in this
    /// process never wait on it: they queue for the writer connection instead.
    #[must_use]
    pub const fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How long a write waits for its turn on the writer connection before failing with
    /// [`BackendErrorKind::Unavailable`](es_core::BackendErrorKind::Unavailable) (default 30 s). Also bounds how long opening waits
    /// for the first connection.
    #[must_use]
    pub const fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }
}
