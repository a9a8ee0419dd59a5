//! Event sourcing and CQRS for Rust: annotate your domain types, get the plumbing generated.
//!
//! PLACEHOLDER crate docs: replaced by the runnable example once the macros land.

pub mod aggregate;
pub mod codec;
pub mod command;
pub mod error;
pub mod event;
pub mod metadata;
pub mod projection;
pub mod registry;
pub mod runner;
pub mod snapshot;
pub mod store;
pub mod stream;
pub mod upcast;

#[cfg(feature = "testing")]
pub mod testing;

#[doc(hidden)]
pub mod __private;

pub use aggregate::{Aggregate, Apply, EventSet, Events, Handle, HandleAsync};
pub use command::{AggregateSettings, CommandOptions, Executed, Loaded};
pub use error::{
    AppendError, BackendError, BackendErrorKind, CommandError, HandlerError, InvalidStreamId,
    LoadError, ProjectionError, RegistryError, RunnerError,
};
pub use event::{Event, EventEnvelope, EventId, NewEvent, RecordedEvent};
pub use metadata::Metadata;
pub use projection::{Dispatch, Project, Projection};
pub use registry::{App, Execute, ProjectionWorkers, Registry};
pub use runner::{ProjectionStatus, RunnerSettings};
pub use store::memory::MemoryStore;
pub use store::{AppendRequest, CheckpointStore, Committed, EventFilter, EventStore};
pub use stream::{ExpectedVersion, GlobalPosition, LogPosition, StreamId, StreamVersion};

#[cfg(feature = "derive")]
pub use es_macros::{Aggregate, Projection, event};
