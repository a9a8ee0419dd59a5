//! [`SnapshotStore`]: where aggregate snapshots are kept beside the log.

use std::future::Future;

use crate::snapshot::Snapshot;
use crate::store::error::{BackendError, LoadError};
use crate::store::log::EventLog;
use crate::stream::StreamId;

/// Keeps the latest snapshot of each stream, so a load can start from it.
pub trait SnapshotStore: EventLog {
    /// Saves (or replaces) the snapshot of a stream.
    ///
    /// # Errors
    /// Back-end failures.
    fn save_snapshot(
        &self,
        stream_id: &StreamId,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// The latest snapshot of a stream, if any.
    ///
    /// # Errors
    /// Back-end failures.
    fn load_snapshot(
        &self,
        stream_id: &StreamId,
    ) -> impl Future<Output = Result<Option<Snapshot>, LoadError>> + Send;
}
