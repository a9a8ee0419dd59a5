//! The running application: the store, the registered aggregates' settings, the command
//! queue and the projections' slots. Commands are started in [`execute`](crate::execute),
//! projections run by the [`runner`](crate::runner).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::aggregate::Aggregate;
use crate::command::load::load;
use crate::command::outcome::Loaded;
use crate::command::queue::StreamQueue;
use crate::runner::batch::{ErasedProjection, RunContext};
use crate::runner::settings::RunnerSettings;
use crate::runner::status::ProjectionStatus;
use crate::store::checkpoint::CheckpointStore;
use crate::store::error::LoadError;
use crate::store::event_store::EventStore;
use crate::stream::{StreamId, StreamVersion};

/// One registered projection or process manager, as the app holds it.
pub(crate) struct ProjectionSlot<S> {
    pub(crate) name: &'static str,
    pub(crate) event_types: &'static [&'static str],
    /// Runs under a lease in the store (see `ErasedProjection::leased`).
    pub(crate) leased: bool,
    /// Can be rebuilt (see `ErasedProjection::resets`).
    pub(crate) resets: bool,
    /// Appends events as it handles them: a process manager.
    pub(crate) issues_commands: bool,
    pub(crate) projection: tokio::sync::Mutex<Box<dyn ErasedProjection<App<S>>>>,
    pub(crate) status: Mutex<ProjectionStatus>,
}

impl<S> ProjectionSlot<S> {
    pub(crate) fn status(&self) -> MutexGuard<'_, ProjectionStatus> {
        // A panic while holding the lock leaves a status that is still a valid status.
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct AppInner<S> {
    pub(crate) store: S,
    /// The owner name of this process's projection leases.
    pub(crate) worker_id: String,
    pub(crate) settings: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    /// Where commands on one stream take turns (see [`command`](crate::command)).
    pub(crate) queue: StreamQueue,
    pub(crate) projections: Vec<ProjectionSlot<S>>,
    pub(crate) runner: RunnerSettings,
}

/// The running application: executes commands, loads aggregates, runs projections.
///
/// Cheap to clone; clones share everything.
pub struct App<S> {
    pub(crate) inner: Arc<AppInner<S>>,
}

impl<S> Clone for App<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> fmt::Debug for App<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field(
                "projections",
                &self
                    .inner
                    .projections
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<S> App<S> {
    pub(crate) const fn from_inner(inner: Arc<AppInner<S>>) -> Self {
        Self { inner }
    }
}

impl<S: CheckpointStore> RunContext for App<S> {
    type Store = S;

    fn store(&self) -> &S {
        &self.inner.store
    }
}

impl<S: EventStore> App<S> {
    /// The store.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Loads aggregate `id` of type `A`: its state and version (read-your-writes).
    ///
    /// # Errors
    /// [`LoadError`] for an invalid id, an undecodable event or a back-end failure.
    pub async fn load<A: Aggregate>(&self, id: impl fmt::Display) -> Result<Loaded<A>, LoadError> {
        let stream_id = StreamId::for_aggregate(A::NAME, id)?;
        load::<S, A>(&self.inner.store, &stream_id, None).await
    }

    /// Loads aggregate `id` of type `A` as it was at `version`.
    ///
    /// # Errors
    /// As [`App::load`].
    pub async fn load_at<A: Aggregate>(
        &self,
        id: impl fmt::Display,
        version: StreamVersion,
    ) -> Result<Loaded<A>, LoadError> {
        let stream_id = StreamId::for_aggregate(A::NAME, id)?;
        load::<S, A>(&self.inner.store, &stream_id, Some(version)).await
    }

    /// A [`Subscription`](crate::Subscription) to the global log after `after`
    /// ([`LogPosition::START`](crate::LogPosition::START) for all of it): catch-up, then live.
    #[must_use]
    pub fn subscribe(&self, after: crate::LogPosition) -> crate::Subscription<S> {
        crate::Subscription::new(self.inner.store.clone(), after)
    }

    /// The status of every projection, in registration order.
    #[must_use]
    pub fn projection_status(&self) -> Vec<ProjectionStatus> {
        self.inner
            .projections
            .iter()
            .map(|slot| slot.status().clone())
            .collect()
    }
}
