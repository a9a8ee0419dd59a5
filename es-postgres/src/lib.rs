//! The PostgreSQL event store for `es-core`, on `sqlx` 0.9.
//!
//! ```no_run
//! use es_core::{event, Aggregate, Apply, Events, Handle, Registry};
//! use es_postgres::PostgresStore;
//!
//! #[event]
//! pub struct Opened { pub owner: String }
//!
//! #[derive(Clone)]
//! pub struct Open { pub owner: String }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("already open")]
//! pub struct AlreadyOpen;
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
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Creates schema `es` and its tables on first use.
//! let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! let app = Registry::new(store).aggregate::<Account>().build().await?;
//! app.execute::<Account>("a-1", Open { owner: "ann".into() }).await?;
//! # Ok(()) }
//! ```
//!
//! # Tables
//!
//! Created by embedded migrations (run on connect unless
//! [`PostgresOptions::run_migrations`] says otherwise) in a schema of your choice
//! ([`PostgresOptions::schema`], default `es`): `events` (position, writing transaction id as
//! `xid8`, stream id and version unique together, event id unique, type, schema version,
//! `jsonb` payload and metadata, recorded-at), `snapshots`, `commands` (idempotency records),
//! `checkpoints`, `projection_leases` and `listeners` (the processes listening for commits, see
//! below).
//!
//! # Appends
//!
//! One statement, one round trip, for any number of events: it reads the stream's version,
//! checks the expectation, inserts every event through `UNNEST` of arrays, records the command
//! id and, when it is the append that announces (see below), calls `pg_notify`, all
//! atomically. The common append (the command path's: an exact version, no command id) takes
//! a leaner statement with only the version check; a new stream, or a version the command
//! path has just read from the stream's events
//! ([`es_core::AppendRequest::after_read`]), takes none at all: the stream cannot be
//! behind it, and the unique key on `(stream_id, stream_version)` is the check. An append
//! that needs no log position ([`es_core::AppendRequest::without_position`], again the command
//! path's) returns no row: the store counts the rows written.
//! Two writers that read the same version both try to insert the same
//! `(stream_id, stream_version)`; the unique constraint refuses the second, which becomes
//! [`es_core::AppendError::Conflict`] with the actual version. Nothing is ever
//! inserted with `ON CONFLICT DO NOTHING`: an acknowledged append has committed, and a refused
//! one says so. [`PostgresStore::append_in`] appends inside your own transaction (outbox).
//!
//! A command takes one connection from the pool for its load and its append, and for the
//! load and append of a retry after a conflict (the store's [`es_core::CommandSession`]):
//! each checkout from sqlx's pool costs a round trip (it pings the connection it hands out)
//! and lands on another backend than the last. The command gives the connection back before
//! a handler that awaits (a `HandleAsync` command calling a service, which may query the same
//! pool) and before any other call on the store, so it never holds one connection while it
//! waits for a second, and a pool smaller than the number of concurrent commands only queues
//! them.
//!
//! # Why the global read never skips an event
//!
//! Positions come from a sequence when a row is inserted, not when it commits: a transaction
//! may take position 10, stay open, and commit after another transaction's position 11 has
//! become visible. A reader that followed positions would pass 10 and never come back for it.
//!
//! So readers follow the pair (writing transaction id, position), and only see rows whose
//! transaction id is below `pg_snapshot_xmin(pg_current_snapshot())`, the oldest transaction
//! still running. Every such row belongs to a transaction that has finished: committed (and
//! visible) or rolled back (and gone). Any row that becomes visible later belongs to a
//! transaction that was running at the time of the read, or started later, so its id is at
//! least that `xmin`, above every id already returned. Ordered by (transaction id, position), the
//! read therefore only ever moves forward over a prefix that can no longer change, and a
//! checkpoint of that pair is exact. The cost: one long-running transaction holds readers back
//! until it ends (they wait; they never skip). `tests/gap_free.rs` shows both halves: a reader
//! that stops short of an open transaction, and 16 writers holding transactions open at random
//! while a reader must see every committed event exactly once, in stream order.
//!
//! # Projections
//!
//! The unit of work handed to projection handlers is a [`PgTransaction`]: write the read model
//! with plain `sqlx` in it, and the runner commits the checkpoint in the same transaction. A
//! crash anywhere leaves the batch applied entirely or not at all.
//!
//! A handler that runs its own `UPDATE` makes one round trip per event, which bounds a rebuild
//! at a few thousand events a second. [`TableRows`] keeps the handlers plain Rust over a row
//! struct instead: the projection's `begin_batch` hook loads every row the batch touches in one
//! query, the handlers change them in memory, and its `end_batch` hook writes them back in one
//! statement (rows it loaded and found absent inserted, the others upserted), in the same
//! transaction. Rebuilding the benchmark's 12,000-event read model that way
//! runs at about half the speed of a hand-written plain-`sqlx` rebuild that never commits a
//! checkpoint, against a thirtieth with per-event statements.
//!
//! A batch costs four round trips: `BEGIN` (with the batch's idle timeout), the handlers'
//! statements, the checkpoint (written only while the worker's lease holds, in the same
//! statement that checks it) and `COMMIT`. Its events come from one query that also returns
//! the head of the log, and while a full batch is written the runner already reads the next.
//!
//! The global read walks the `(transaction_id, position)` index. PostgreSQL picks that plan
//! once the `events` table has statistics; autovacuum gathers them within a minute of a large
//! load, but a rebuild started right after bulk-loading events should run `ANALYZE` on the
//! table first (without statistics each batch may sort the rest of the log).
//!
//! # Live readers
//!
//! A store wakes its own process's readers at each commit. Other processes hear of it through
//! `NOTIFY` on the store's channel, at most once per 10 ms: the first append of an interval
//! carries the notification in its own statement (no extra transaction, no delay), and commits
//! in between are announced by the next such append or, when none comes within 20 ms, by a
//! `NOTIFY` of the store's own (sent at once when the store's last handle is dropped, while
//! its tokio runtime runs). Once something watches the log (a subscription, a projection
//! runner), the store opens one `LISTEN` connection and wakes its readers on every other
//! store's notification; a store that only writes listens to nothing. Readers also poll slowly
//! in case a notification is lost, and the listener reconnects by itself.
//!
//! A listening store registers itself in the `listeners` table (renewed every 10 s, expiring
//! after 30 s, removed when its last handle goes), and a store announces only while another
//! process is registered there: it looks, at most every 250 ms, while it has commits to
//! announce. So a service nobody listens to sends no `NOTIFY` at all, and a reader that starts
//! in another process hears of other stores' commits within 250 ms of registering (it reads
//! the log itself once it listens). Every process that reads or writes a schema must run a
//! version that knows the `listeners` table: an older reader does not register, and is then
//! only found by its poll.

mod announce;
mod append;
mod checkpoint;
mod error;
mod event_store;
mod notify;
mod open;
mod options;
mod read;
mod rows;
mod session;
mod sql;
mod store;
#[cfg(test)]
mod tests;

// The in-crate tests share `tests/common`, which names this crate as its users do.
#[cfg(test)]
extern crate self as es_postgres;
#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod test_common;

pub use checkpoint::PgTransaction;
pub use error::error_kind;
pub use options::{DEFAULT_SCHEMA, PostgresOptions};
pub use rows::{RowsError, TableRows};
pub use store::PostgresStore;
