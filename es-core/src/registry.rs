//! The registry: wires aggregates and projections to a store, checks they cannot collide, and
//! returns the running application.
//!
//! ```
//! # use es_core::{MemoryStore, Registry};
//! # async fn demo() -> Result<(), es_core::RegistryError> {
//! let app = Registry::new(MemoryStore::new()).build().await?;
//! # let _ = app; Ok(()) }
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::aggregate::{Aggregate, EventSet};
use crate::command::queue::StreamQueue;
use crate::command::settings::AggregateSettings;
use crate::process::{Commands, ProcessKeeper};
use crate::projection::Dispatch;
use crate::runner::batch::{Erased, ErasedProjection, InProcess, InStore};
use crate::runner::settings::RunnerSettings;
use crate::runner::status::ProjectionStatus;
use crate::store::checkpoint::CheckpointStore;
use crate::store::event_store::EventStore;

use crate::app::{App, AppInner, ProjectionSlot};

pub mod error;

pub use error::RegistryError;

/// What the registry remembers of an aggregate for its collision checks.
struct AggregateClaim {
    name: &'static str,
    event_types: &'static [&'static str],
}

/// Builds an [`App`]: register aggregates and projections, then [`Registry::build`].
pub struct Registry<S> {
    store: S,
    claims: Vec<AggregateClaim>,
    settings: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    projections: Vec<Box<dyn ErasedProjection<App<S>>>>,
    runner: RunnerSettings,
    errors: Vec<RegistryError>,
}

impl<S: EventStore> Registry<S> {
    /// A registry over `store`.
    #[must_use]
    pub fn new(store: S) -> Self {
        Self {
            store,
            claims: Vec::new(),
            settings: HashMap::new(),
            projections: Vec::new(),
            runner: RunnerSettings::default(),
            errors: Vec::new(),
        }
    }

    /// Registers aggregate `A` with default settings (its services built by `Default`).
    #[must_use]
    pub fn aggregate<A: Aggregate>(self) -> Self
    where
        A::Services: Default,
    {
        self.aggregate_with(AggregateSettings::<A>::default())
    }

    /// Registers aggregate `A` with its services, snapshot policy and retry bound.
    #[must_use]
    pub fn aggregate_with<A: Aggregate>(mut self, settings: AggregateSettings<A>) -> Self {
        self.claim(A::NAME, A::Event::NAMES);
        self.settings.insert(TypeId::of::<A>(), Arc::new(settings));
        self
    }

    fn claim(&mut self, name: &'static str, event_types: &'static [&'static str]) {
        if let Some(reason) = crate::stream::aggregate_name_problem(name) {
            self.errors
                .push(RegistryError::InvalidAggregateName { name, reason });
        }
        for claim in &self.claims {
            if claim.name == name {
                self.errors.push(RegistryError::DuplicateAggregate { name });
                return;
            }
            for event_type in event_types {
                if claim.event_types.contains(event_type) {
                    self.errors.push(RegistryError::EventTypeClaimedTwice {
                        event_type,
                        first: claim.name,
                        second: name,
                    });
                }
            }
        }
        self.claims.push(AggregateClaim { name, event_types });
    }

    /// Sets how projections are run (batch size, poll interval, back-off).
    #[must_use]
    pub fn runner_settings(mut self, settings: RunnerSettings) -> Self {
        self.runner = settings;
        self
    }

    /// Checks the registrations and returns the application.
    ///
    /// # Errors
    /// The first [`RegistryError`]: an aggregate registered twice, an event type claimed by two
    /// aggregates, an aggregate name no stream id can begin with, or two projections with one name.
    #[allow(clippy::unused_async)] // async so that stores may verify themselves here later
    pub async fn build(mut self) -> Result<App<S>, RegistryError> {
        if !self.errors.is_empty() {
            return Err(self.errors.swap_remove(0));
        }
        let projections = self
            .projections
            .into_iter()
            .map(|projection| ProjectionSlot {
                name: projection.name(),
                event_types: projection.event_types(),
                leased: projection.leased(),
                resets: projection.resets(),
                issues_commands: projection.issues_commands(),
                status: Mutex::new(ProjectionStatus {
                    name: projection.name(),
                    ..ProjectionStatus::default()
                }),
                projection: tokio::sync::Mutex::new(projection),
            })
            .collect();
        let inner = Arc::new(AppInner {
            store: self.store,
            worker_id: format!("{}-{}", std::process::id(), Uuid::now_v7().simple()),
            settings: self.settings,
            queue: StreamQueue::default(),
            projections,
            runner: self.runner,
        });
        Ok(App::from_inner(inner))
    }
}

impl<S: CheckpointStore> Registry<S> {
    /// Registers a process manager: a `#[derive(Projection)]` type whose handlers receive
    /// [`Commands`] and execute commands exactly once per event (see
    /// [`process`](crate::process)).
    #[must_use]
    pub fn process_manager<P: Dispatch<Commands<S>>>(mut self, process: P) -> Self {
        self.add_projection(Box::new(Erased::<P, ProcessKeeper>::new(process)));
        self
    }

    /// Registers a projection; its handlers receive the store's unit of work, in which the
    /// runner also moves its checkpoint.
    ///
    /// A projection whose handlers accept any unit of work writes nothing through the store,
    /// so its state lives elsewhere (in the process, say): on a store whose checkpoints are
    /// durable it is refused ([`RegistryError::ProjectionStateOutsideStore`] at
    /// [`build`](Self::build)), since after a restart it would start empty yet skip every
    /// event it had seen. Register such a projection with
    /// [`in_memory_projection`](Self::in_memory_projection).
    #[must_use]
    pub fn projection<P: Dispatch<S::Transaction>>(mut self, projection: P) -> Self {
        if S::DURABLE_CHECKPOINTS && P::__accepts_any_unit_of_work() {
            self.errors
                .push(RegistryError::ProjectionStateOutsideStore { name: P::NAME });
        }
        self.add_projection(Box::new(Erased::<P, InStore>::new(projection)));
        self
    }

    /// Registers a projection whose state lives in this process (a map, a cache): its
    /// handlers receive `()` as their unit of work, and its checkpoint lives in the process
    /// beside its state, so the two start together, empty, and it replays the log from the
    /// start in each process run. It runs in every process, without a lease (each process has
    /// its own copy). It cannot be rebuilt unless it has a reset hook.
    #[must_use]
    pub fn in_memory_projection<P: Dispatch<()>>(mut self, projection: P) -> Self {
        self.add_projection(Box::new(Erased::<P, InProcess>::new(projection)));
        self
    }

    fn add_projection(&mut self, projection: Box<dyn ErasedProjection<App<S>>>) {
        if self
            .projections
            .iter()
            .any(|p| p.name() == projection.name())
        {
            self.errors.push(RegistryError::DuplicateProjection {
                name: projection.name(),
            });
        } else {
            self.projections.push(projection);
        }
    }
}

impl<S> fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field(
                "aggregates",
                &self.claims.iter().map(|c| c.name).collect::<Vec<_>>(),
            )
            .field(
                "projections",
                &self
                    .projections
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
