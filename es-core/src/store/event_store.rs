//! [`EventStore`]: everything the command path needs of a store, in one bound.

use crate::store::command_log::CommandLog;
use crate::store::log::EventLog;
use crate::store::snapshot_store::SnapshotStore;

/// Everything the command path needs of a store: the log, snapshots and the command log.
/// Implemented for every store that implements the three; a store implements those, and
/// callers that need only one job name only that trait.
pub trait EventStore: EventLog + SnapshotStore + CommandLog {}

impl<S: EventLog + SnapshotStore + CommandLog> EventStore for S {}
