//! [`CheckpointStore`]: projection checkpoints, committed with the read model's writes in one
//! unit of work, under the projection's lease.

use std::future::Future;

use crate::store::error::BackendError;
use crate::store::event_store::EventStore;
use crate::store::lease::{Lease, LeaseStore};
use crate::stream::LogPosition;

/// A store that also keeps projection checkpoints, committed together with the read model's
/// writes in one unit of work, fenced by the projection's lease (see [`LeaseStore`]).
pub trait CheckpointStore: EventStore + LeaseStore {
    /// The unit of work handed to projection handlers (a database transaction; `()` in memory).
    type Transaction: Send;

    /// Whether dropping an uncommitted unit of work undoes what handlers wrote in it. `false`
    /// for stores like the in-memory one, whose read models live in the handlers themselves:
    /// the runner then commits the progress made before a failing event.
    const ROLLS_BACK: bool = true;

    /// Whether checkpoints outlive the process (a file, a database): then a projection whose
    /// state lives in the process must not keep its checkpoint here (see
    /// [`Registry::in_memory_projection`](crate::Registry::in_memory_projection)). `false` for
    /// the in-memory store.
    const DURABLE_CHECKPOINTS: bool = true;

    /// The projection's checkpoint ([`LogPosition::START`] when it never ran).
    ///
    /// # Errors
    /// Back-end failures.
    fn checkpoint(
        &self,
        projection: &str,
    ) -> impl Future<Output = Result<LogPosition, BackendError>> + Send;

    /// Opens a unit of work for one batch of `projection`.
    ///
    /// # Errors
    /// Back-end failures.
    fn begin(
        &self,
        projection: &str,
    ) -> impl Future<Output = Result<Self::Transaction, BackendError>> + Send;

    /// Moves the checkpoint to `checkpoint` and commits the unit of work with it: both or
    /// neither.
    ///
    /// # Errors
    /// Back-end failures; the unit of work is then rolled back.
    fn commit(
        &self,
        transaction: Self::Transaction,
        projection: &str,
        checkpoint: LogPosition,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// [`commit`](Self::commit), but only while `lease` is still held (its owner and epoch, and
    /// unexpired): otherwise the unit of work is rolled back and the error's kind is
    /// [`BackendErrorKind::LeaseLost`](crate::BackendErrorKind::LeaseLost). The check and the
    /// commit are atomic: a takeover waits for a batch that passed the check, or the batch
    /// fails.
    ///
    /// # Errors
    /// As [`commit`](Self::commit), and a lost lease.
    fn commit_fenced(
        &self,
        transaction: Self::Transaction,
        projection: &str,
        checkpoint: LogPosition,
        lease: &Lease,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Resets the checkpoint to the start, for a rebuild.
    ///
    /// # Errors
    /// Back-end failures.
    fn reset_checkpoint(
        &self,
        projection: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}
