//! Event sourcing and CQRS for Rust: annotate your domain types, get the plumbing generated.
//!
//! ```
//! use es_core::{event, Aggregate, Apply, Events, Handle, MemoryStore, Registry};
//!
//! #[event]
//! pub struct Incremented { pub by: u32 }
//!
//! #[derive(Clone)]
//! pub struct Increment { pub by: u32 }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("a counter only goes up")]
//! pub struct Refused;
//!
//! #[derive(Default, Aggregate)]
//! #[aggregate(name = "counter", error = Refused, events(Incremented), commands(Increment))]
//! pub struct Counter { value: u64 }
//!
//! impl Apply<Incremented> for Counter {
//!     fn apply(&mut self, event: &Incremented) { self.value += u64::from(event.by) }
//! }
//!
//! impl Handle<Increment> for Counter {
//!     fn handle(&self, command: Increment) -> Result<Events<Self>, Refused> {
//!         if command.by == 0 { return Err(Refused) }
//!         Ok(Events::one(Incremented { by: command.by }))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Registry::new(MemoryStore::new()).aggregate::<Counter>().build().await?;
//! app.execute::<Counter>("c1", Increment { by: 2 }).await?;
//! let loaded = app.load::<Counter>("c1").await?;
//! assert_eq!((loaded.state.value, loaded.version.get()), (2, 1));
//! # Ok(()) }
//! ```
//!
//! # Where things are
//!
//! - [`mod@event`], [`aggregate`], [`projection`]: what the macros implement and you implement.
//! - [`store`]: the store contract, one trait per job ([`EventLog`], [`SnapshotStore`],
//!   [`CommandLog`], [`CheckpointStore`], [`LeaseStore`]; [`EventStore`] is the first three),
//!   and the in-memory [`MemoryStore`];
//!   `testing::conformance` (feature `testing`) is the suite every store passes.
//! - [`command`]: load, decide, append, bounded retry, idempotent command ids.
//! - [`registry`]: wires aggregates and projections to a store and builds the [`App`];
//!   [`runner`] runs projections and process managers (batches, leases, workers, rebuilds).
//! - [`subscription`]: catch up on the global log, then follow it live.
//! - [`process`]: process managers, which react to events with commands, exactly once.
//! - [`codec`], [`upcast`], [`snapshot`]: how events and states are stored and evolve.
//!
//! # Features
//!
//! - `derive` (default): re-exports `#[event]`, `#[derive(Aggregate)]`, `#[derive(Projection)]`.
//! - `testing`: given/when/then fixtures and the store conformance suite.
//!

#![cfg_attr(feature = "derive", doc = include_str!("tour.md"))]

pub mod aggregate;
mod app;
mod chain;
pub mod codec;
pub mod command;
pub mod event;
mod execute;
pub mod fingerprint;
pub mod metadata;
pub mod process;
pub mod projection;
pub mod registry;
pub mod runner;
pub mod snapshot;
pub mod store;
pub mod stream;
pub mod subscription;
pub mod upcast;

#[cfg(feature = "testing")]
pub mod testing;

#[doc(hidden)]
pub mod __private;

pub use aggregate::{Aggregate, Apply, EventSet, Events, Handle, HandleAsync};
pub use app::App;
pub use chain::ErrorChain;
pub use command::CommandError;
pub use command::{AggregateSettings, CommandOptions, Executed, Loaded};
pub use event::{Event, EventEnvelope, EventId, NewEvent, RecordedEvent};
pub use execute::Execute;
pub use fingerprint::CommandFingerprint;
pub use metadata::Metadata;
pub use projection::{BeginBatch, Dispatch, EndBatch, Project, Projection, Reset};
pub use projection::{HandlerError, ProjectionError, ProjectionFailure};
pub use registry::Registry;
pub use registry::RegistryError;
pub use runner::{LeaseLoss, RunnerError};
pub use runner::{
    ProjectionReport, ProjectionStatus, ProjectionWorkers, RebuildOptions, RebuildProgress,
    RebuildStep, RunnerSettings,
};
pub use store::memory::MemoryStore;
pub use store::{AppendError, BackendError, BackendErrorKind, LoadError};
pub use store::{
    AppendRequest, CheckpointStore, CommandLog, CommandOutcome, CommandSession, Committed,
    EventFilter, EventLog, EventStore, Lease, LeaseHolder, LeaseRenewal, LeaseStore, ReadVersion,
    SnapshotStore, StoredEvent,
};
pub use stream::InvalidStreamId;
pub use stream::{ExpectedVersion, GlobalPosition, LogPosition, StreamId, StreamVersion};
pub use subscription::Subscription;

#[cfg(feature = "derive")]
pub use es_macros::{Aggregate, Projection, event};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
