//! The store contract every back end implements, one job per trait, and the in-memory store:
//! - [`EventLog`]: append, read and load streams and the global log, its head, a watch;
//! - [`SnapshotStore`]: the latest snapshot of each stream;
//! - [`CommandLog`]: the records of idempotent commands, and the [`CommandSession`] a command
//!   runs on;
//! - [`EventStore`]: the three together, what the command path needs (implemented for every
//!   store that has them);
//! - [`CheckpointStore`] and [`LeaseStore`]: projection checkpoints, committed with the read
//!   model's writes, fenced by a lease.
//!
//! The contract, checked for every store by the conformance suite
//! (`es_core::testing::conformance`, feature `testing`):
//! - an append is atomic (all its events or none), checked against an [`ExpectedVersion`](crate::ExpectedVersion);
//!   a mismatch is [`AppendError::Conflict`] naming the actual version, and nothing is written;
//! - an acknowledged append has committed; stream versions run 1, 2, 3 ... without holes;
//! - a command id recorded with an append makes a second append with that id fail with
//!   [`AppendError::DuplicateCommand`], in the same transaction as the first; the command id is
//!   checked before the expected version, so a retried command learns it already happened;
//!   the record keeps the command's fingerprint and outcome as the append gave them
//!   ([`AppendRequest::refusal`] records a refused command: no events, the version checked);
//! - an append without events and without a command id checks the expected version and writes
//!   nothing;
//! - [`EventLog::read_all`] returns events ordered by [`LogPosition`](crate::LogPosition), and an event that
//!   becomes visible later never sorts before one already returned;
//! - a [`CommandSession`] keeps the contract of the store methods it stands for: it only
//!   chooses what they run on (one connection for a whole command, say).

pub mod checkpoint;
pub mod column;
pub mod command_log;
pub mod command_record;
pub mod error;
pub mod event_store;
pub mod lease;
pub mod log;
pub mod memory;
pub mod snapshot_store;

pub use checkpoint::CheckpointStore;
pub use command_log::{CommandLog, CommandSession};
pub use command_record::{CommandOutcome, CommandRecord};
pub use error::{AppendError, BackendError, BackendErrorKind, LoadError};
pub use event_store::EventStore;
pub use lease::{Lease, LeaseHolder, LeaseRenewal, LeaseStore};
pub use log::{
    AppendRequest, Committed, EventFilter, EventLog, LogWatch, ReadVersion, StoredEvent,
};
pub use snapshot_store::SnapshotStore;
