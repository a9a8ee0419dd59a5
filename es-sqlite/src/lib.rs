//! The embedded SQLite event store for `es-core`, on `sqlx` 0.9: one file, zero setup.
//!
//! ```
//! use es_core::{Aggregate, Apply, EventLog as _, Events, Handle, Registry, StreamId, event};
//! use es_sqlite::SqliteStore;
//!
//! #[event]
//! pub struct Opened { pub owner: String }
//!
//! #[derive(Clone)]
//! pub struct Open { pub owner: String }
//!
//! #[derive(Debug)]
//! pub struct AlreadyOpen;
//! impl std::fmt::Display for AlreadyOpen {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("already open") }
//! }
//! impl std::error::Error for AlreadyOpen {}
//!
//! #[derive(Default, Aggregate)]
//! #[aggregate(name = "account", error = AlreadyOpen, events(Opened), commands(Open))]
//! pub struct Account { open: bool }
//!
//! impl Apply<Opened> for Account { fn apply(&mut self, _: &Opened) { self.open = true } }
//! impl Handle<Open> for Account {
//!     fn handle(&self, c: Open) -> Result<Events<Self>, AlreadyOpen> {
//!         if self.open { return Err(AlreadyOpen) }
//!         Ok(Events::one(Opened { owner: c.owner }))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let path = std::env::temp_dir().join(format!("es-sqlite-doc-{}.db", uuid::Uuid::now_v7()));
//! // Creates the file and its tables on first use.
//! let store = SqliteStore::open(&path).await?;
//! let app = Registry::new(store.clone()).aggregate::<Account>().build().await?;
//! app.execute::<Account>("a-1", Open { owner: "ann".into() }).await?;
//! assert!(app.execute::<Account>("a-1", Open { owner: "bob".into() }).await.is_err());
//! assert_eq!(store.stream_version(&StreamId::new("account-a-1")?).await?.get(), 1);
//!
//! drop(app);
//! store.close().await;
//! std::fs::remove_file(&path)?;
//! # Ok(()) }
//! ```
//!
//! # The file
//!
//! Created by embedded migrations (run on open unless [`SqliteOptions::run_migrations`] says
//! otherwise; their record is the table `_es_migrations`), all `STRICT` tables: `events`
//! (position as `INTEGER PRIMARY KEY AUTOINCREMENT`, stream id and version unique together,
//! event id unique, type, schema version, JSON payload and metadata as text, recorded-at),
//! `snapshots`, `commands` (idempotency records), `checkpoints` and `projection_leases`. A file
//! migrated by a newer version of the framework is refused with
//! [`BackendErrorKind::SchemaMismatch`](es_core::BackendErrorKind::SchemaMismatch).
//!
//! Every connection uses write-ahead logging (`journal_mode=WAL`), so readers never block the
//! writer nor the writer readers, and `synchronous=FULL`: the log is synced to disk at every
//! commit, so **an acknowledged append survives a power loss**, not only a crash of the
//! process. `foreign_keys=ON`, and a busy timeout ([`SqliteOptions::busy_timeout`]) for locks
//! held by other processes.
//!
//! # Writes are serialised
//!
//! SQLite lets one connection write at a time. Several connections that try at once get
//! "database is locked" (`SQLITE_BUSY`), at once in WAL mode when a transaction that has read
//! tries to write after another connection committed, whatever the busy timeout. So the store
//! keeps **one writer connection** (a pool of one) and sends every write there: appends,
//! snapshots, checkpoints and projection batches. Concurrent writers in the process queue for
//! it, first come first served, instead of contending for SQLite's lock; none fails with
//! "database is locked" (a writer that waits longer than [`SqliteOptions::write_timeout`]
//! fails with `Unavailable`). Each write transaction also begins with `BEGIN IMMEDIATE`, taking
//! the file's write lock before it reads, which keeps writers in other processes (and your own
//! connections) from interleaving: they wait up to the busy timeout. Reads run on a pool of
//! read-only connections ([`SqliteOptions::max_readers`]) and see committed data only.
//!
//! Serialising costs nothing SQLite would otherwise give: it never runs two writers at once.
//!
//! # Appends
//!
//! One transaction per append: look up the command id ([`es_core::AppendError::DuplicateCommand`]
//! first, as the contract says), read the stream's version and check the expectation
//! ([`es_core::AppendError::Conflict`] naming the actual version), insert every event in one
//! multi-row `INSERT` (up to 500 events per statement), record the command id, commit. The
//! write lock is held throughout, so the version read cannot go stale; the unique constraints
//! on `(stream_id, stream_version)` and `event_id` still guard every row, and a violation is
//! always reported (a repeated event id as [`es_core::AppendError::DuplicateEventId`]), never
//! ignored. [`SqliteStore::append_in`] appends inside your own transaction (outbox).
//!
//! # The global order is gap-free
//!
//! Positions come from `AUTOINCREMENT` inside the one write transaction at a time, so they are
//! taken and committed in the same order, and a rolled-back append gives its positions back:
//! every event that becomes visible later has a larger position than every event already
//! visible. Each event's [`LogPosition`](es_core::LogPosition) therefore has `transaction`
//! equal to its position (as for the in-memory store), reading the log in position order never
//! skips an event, and a checkpoint is a position.
//!
//! # Projections
//!
//! The unit of work handed to projection handlers is a [`SqliteTransaction`] on the writer
//! connection: keep the read model in the same file, write it with plain `sqlx`
//! (`&mut **tx`), and the runner commits the checkpoint in the same transaction. A crash
//! anywhere leaves a batch applied entirely or not at all.
//!
//! Projection leases are kept in the file (`projection_leases`), so several processes on one
//! file share the projections as workers on PostgreSQL do: one runs each projection, the
//! others stand by and take over within the lease's time to live after it dies, and a batch
//! commits only while its worker still holds the lease (checked inside the batch's write
//! transaction). Lease times come from the machine's clock, which every process on the file
//! shares. While a batch runs it holds the
//! writer: a handler must not call [`EventLog::append`](es_core::EventLog::append) on the
//! same store (it would wait for its own batch until the write timeout).
//!
//! # Reads
//!
//! [`EventLog::load`](es_core::EventLog::load) streams one statement's rows (`sqlx`
//! `fetch`), so a long stream is never held in memory whole and is read from one consistent
//! snapshot of the file. [`EventLog::read_all`](es_core::EventLog::read_all) scans the
//! primary key from the checkpoint, testing the type filter on each row, and stops at its
//! limit.
//!
//! # Errors
//!
//! SQLite failures become [`BackendError`](es_core::BackendError)s that say what was being
//! done to what (stream id, position, projection), classified by SQLite's result code, never
//! by message text: a lock held by another process beyond the busy timeout, a writer that
//! waited longer than the write timeout, I/O errors, a full disk or a file that cannot be
//! opened are `Unavailable`; a damaged file, or a row the store cannot have written (a payload
//! or metadata that is not JSON, a negative version) is `Corrupt`; a value SQLite refuses is
//! `InvalidInput`. A payload that is JSON of the wrong shape loads, and fails to decode with
//! [`LoadError::Decode`](es_core::LoadError::Decode) naming stream, version and event type.
//!
//! # Live readers
//!
//! [`EventLog::watch`](es_core::EventLog::watch) wakes after every append this store
//! (any of its clones) commits. Appends by other processes on the same file are not
//! signalled: readers find them at their fallback poll (the runner's
//! [`poll_interval`](es_core::RunnerSettings::poll_interval)). Nor is the commit of a caller's
//! transaction used with [`SqliteStore::append_in`]: call [`SqliteStore::wake_readers`] after
//! it.

mod append;
mod checkpoint;
mod error;
mod lease;
mod migrate;
mod open;
mod options;
mod read;
mod snapshot;
mod store;

pub use error::error_kind;
pub use options::SqliteOptions;
pub use store::{SqliteStore, SqliteTransaction};
