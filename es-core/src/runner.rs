//! Running projections: catch up from the checkpoint in batches, then follow the log live.
//!
//! One batch is: read up to `batch_size` events of the projection's types after its checkpoint,
//! open the store's unit of work, run the projection's [`BeginBatch`](crate::BeginBatch) hook
//! on all of them (the `begin_batch` flag), dispatch each event to its handler, run its
//! [`EndBatch`](crate::EndBatch) hook (the `end_batch` flag), then commit the unit of work
//! together with the new checkpoint. On a store whose unit of work is a database transaction, a
//! crash anywhere leaves the batch applied entirely or not at all.
//!
//! A failing batch is rolled back, recorded in the projection's [`ProjectionStatus`] and retried
//! with exponential back-off; other projections go on. A poison event is never skipped. (On a
//! store whose unit of work cannot roll back, such as the in-memory store, the events before
//! the failing one stay applied and their checkpoint is committed, so none is applied twice; a
//! handler there must leave the read model unchanged when it fails.)
//!
//! Once a projection reaches the end of the log its checkpoint moves to the head, past events of
//! types it does not consume, so they are not scanned again.

pub(crate) mod batch;
pub mod error;
pub(crate) mod settings;
pub(crate) mod status;
pub(crate) mod worker;

pub use error::{LeaseLoss, RunnerError};
pub use settings::RunnerSettings;
pub use status::{
    ProjectionReport, ProjectionStatus, RebuildOptions, RebuildProgress, RebuildStep,
};
pub use worker::ProjectionWorkers;
