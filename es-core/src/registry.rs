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
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use uuid::Uuid;

use crate::aggregate::{Aggregate, EventSet};
use crate::chain::ErrorChain;
use crate::command::error::CommandError;
use crate::command::{self, AggregateSettings, CommandOptions, Executed, Loaded};
use crate::metadata::Metadata;
use crate::projection::Dispatch;
use crate::runner::error::{LeaseLoss, RunnerError};
use crate::runner::{
    Erased, ErasedProjection, InProcess, InStore, ProjectionStatus, RebuildOptions,
    RebuildProgress, RebuildStep, RunnerSettings,
};
use crate::store::error::{BackendErrorKind, LoadError};
use crate::store::{CheckpointStore, EventFilter, EventStore, Lease, LeaseRenewal};
use crate::stream::{ExpectedVersion, LogPosition, StreamId, StreamVersion};

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
    projections: Vec<Box<dyn ErasedProjection<S>>>,
    /// Process managers' handles on the application, filled in by `build`.
    app_cells: Vec<crate::process::AppCell<S>>,
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
            app_cells: Vec::new(),
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
            queue: command::StreamQueue::default(),
            projections,
            runner: self.runner,
        });
        for cell in self.app_cells {
            // Weak: the application owns its process managers, not the other way round.
            let _ = cell.set(Arc::downgrade(&inner));
        }
        Ok(App { inner })
    }
}

impl<S: CheckpointStore> Registry<S> {
    /// Registers a process manager: a `#[derive(Projection)]` type whose handlers receive
    /// [`Commands`](crate::process::Commands) and execute commands exactly once per event (see
    /// [`process`](crate::process)).
    #[must_use]
    pub fn process_manager<P: Dispatch<crate::process::Commands<S>>>(mut self, process: P) -> Self {
        let cell = crate::process::AppCell::<S>::default();
        self.app_cells.push(Arc::clone(&cell));
        self.add_projection(Box::new(crate::process::ProcessSlot::new(process, cell)));
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

    fn add_projection(&mut self, projection: Box<dyn ErasedProjection<S>>) {
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

struct ProjectionSlot<S> {
    name: &'static str,
    event_types: &'static [&'static str],
    /// Runs under a lease in the store (see `ErasedProjection::leased`).
    leased: bool,
    /// Can be rebuilt (see `ErasedProjection::resets`).
    resets: bool,
    /// Appends events as it handles them: a process manager.
    issues_commands: bool,
    projection: tokio::sync::Mutex<Box<dyn ErasedProjection<S>>>,
    status: Mutex<ProjectionStatus>,
}

impl<S> ProjectionSlot<S> {
    fn status(&self) -> MutexGuard<'_, ProjectionStatus> {
        // A panic while holding the lock leaves a status that is still a valid status.
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct AppInner<S> {
    store: S,
    /// The owner name of this process's projection leases.
    worker_id: String,
    settings: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    /// Where commands on one stream take turns (see [`command`](crate::command)).
    queue: command::StreamQueue,
    projections: Vec<ProjectionSlot<S>>,
    runner: RunnerSettings,
}

/// The running application: executes commands, loads aggregates, runs projections.
///
/// Cheap to clone; clones share everything.
pub struct App<S> {
    inner: Arc<AppInner<S>>,
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

impl<S: EventStore> App<S> {
    /// The store.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Starts a command for aggregate `id` of type `A`; `.await` it, after setting options if
    /// needed:
    ///
    /// ```text
    /// app.execute::<Order>(id, AddItem { .. }).expected_version(v).command_id(key).await?;
    /// ```
    pub fn execute<A: Aggregate>(
        &self,
        id: impl fmt::Display,
        command: impl Into<A::Command> + Clone + Send + 'static,
    ) -> Execute<'_, S, A, impl Into<A::Command> + Clone + Send + 'static> {
        Execute {
            app: self,
            stream_id: StreamId::for_aggregate(A::NAME, id),
            command,
            options: CommandOptions::default(),
            unfingerprinted: None,
            aggregate: std::marker::PhantomData,
        }
    }

    /// Loads aggregate `id` of type `A`: its state and version (read-your-writes).
    ///
    /// # Errors
    /// [`LoadError`] for an invalid id, an undecodable event or a back-end failure.
    pub async fn load<A: Aggregate>(&self, id: impl fmt::Display) -> Result<Loaded<A>, LoadError> {
        let stream_id = StreamId::for_aggregate(A::NAME, id)?;
        command::load::<S, A>(&self.inner.store, &stream_id, None).await
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
        command::load::<S, A>(&self.inner.store, &stream_id, Some(version)).await
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

impl<S: CheckpointStore> App<S> {
    /// This process's worker id: the owner name of the projection leases it takes.
    #[must_use]
    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    /// Runs every projection and process manager until nothing moves: each runs to the end of
    /// the log, in registration order, and the round is repeated while a process manager
    /// applied an event in it (its commands append events that a projection registered before
    /// it, or another process manager, consumes). For tests, tools and scripts. Each leased
    /// projection's lease is taken for its run and released after it.
    ///
    /// # Errors
    /// The first failing batch's error; that projection's checkpoint stays before the event.
    /// [`RunnerError::LeaseLost`] when another worker holds a projection's lease.
    /// [`RunnerError::Unsettled`] after 1,000 rounds that each applied something.
    pub async fn catch_up(&self) -> Result<(), RunnerError> {
        const MAX_ROUNDS: u32 = 1000;
        for _ in 0..MAX_ROUNDS {
            let mut commands_issued = false;
            for slot in &self.inner.projections {
                let applied = self.run_to_end(slot).await?;
                commands_issued |= slot.issues_commands && applied > 0;
            }
            if !commands_issued {
                return Ok(());
            }
        }
        Err(RunnerError::Unsettled { passes: MAX_ROUNDS })
    }

    /// Rebuilds projection `name` from the start of the log, with the default
    /// [`RebuildOptions`] (waiting for a worker that holds its lease to hand it over), calling
    /// `progress` after each batch. See [`rebuild_with`](Self::rebuild_with).
    ///
    /// # Errors
    /// As [`rebuild_with`](Self::rebuild_with).
    pub async fn rebuild(
        &self,
        name: &str,
        mut progress: impl FnMut(RebuildProgress) + Send,
    ) -> Result<u64, RunnerError> {
        self.rebuild_with(name, RebuildOptions::default(), |step| {
            if let RebuildStep::Progress(at) = step {
                progress(at);
            }
        })
        .await
    }

    /// Rebuilds projection `name` from the start of the log; returns the events applied. The
    /// rebuild owns the whole operation:
    ///
    /// 1. It takes the projection's lease, with a new fencing epoch, before it touches
    ///    anything. A worker holding it (a running service) is asked to hand it over, which
    ///    it does at its next renewal (within a third of the lease's time to live); a dead
    ///    worker's lease is waited out. With [`RebuildOptions::take_over`] the lease is taken
    ///    at once instead. `on_step` hears what it waits for ([`RebuildStep::Waiting`]).
    /// 2. It clears the read model through the projection's [`Reset`](crate::Reset) hook and
    ///    moves the checkpoint back to the start, in one unit of work committed only while it
    ///    holds the lease.
    /// 3. It replays the log in batches, each committed under the lease, and releases it.
    ///
    /// A worker that lost the lease to the rebuild commits nothing more (its batches fail the
    /// fence) and never writes its old checkpoint back; it takes the lease again after the
    /// rebuild and goes on from where the rebuild ended. A rebuild cut off half-way (killed)
    /// leaves a read model consistent with its checkpoint: a worker or a second rebuild
    /// finishes the job.
    ///
    /// # Errors
    /// [`RunnerError::UnknownProjection`]; [`RunnerError::NoReset`] for a projection without a
    /// reset hook (nothing is touched); [`RunnerError::LeaseWait`] when the lease was not
    /// handed over in time; [`RunnerError::LeaseLost`] when another rebuild or a takeover took
    /// it meanwhile; the first failing batch's error (the rebuild can be run again).
    pub async fn rebuild_with(
        &self,
        name: &str,
        options: RebuildOptions,
        mut on_step: impl FnMut(RebuildStep) + Send,
    ) -> Result<u64, RunnerError> {
        let slot = self.slot(name)?;
        if !slot.resets {
            return Err(RunnerError::NoReset {
                projection: slot.name,
            });
        }
        let inner = &self.inner;
        let owner = format!("{}/rebuild", inner.worker_id);
        let lease = if slot.leased {
            rebuild_lease(inner, slot.name, &owner, &options, &mut on_step).await?
        } else {
            Lease::new(slot.name, owner, 0)
        };
        on_step(RebuildStep::LeaseTaken { epoch: lease.epoch });
        let outcome = async {
            let mut projection = slot.projection.lock().await;
            projection.reset(&inner.store, &lease).await?;
            on_step(RebuildStep::Cleared);
            let total = inner
                .store
                .count_events(LogPosition::START, EventFilter::Types(slot.event_types))
                .await
                .map_err(|source| RunnerError::Read {
                    projection: slot.name,
                    source,
                })?;
            let mut done = 0u64;
            on_step(RebuildStep::Progress(RebuildProgress { done, total }));
            self.replay(slot, &mut **projection, &lease, |applied| {
                done += applied as u64;
                on_step(RebuildStep::Progress(RebuildProgress { done, total }));
            })
            .await
        }
        .await;
        self.release(slot, &lease).await;
        outcome
    }

    /// Runs `slot` to the end of the log under its lease (taken here, released after); returns
    /// the events applied.
    async fn run_to_end(&self, slot: &ProjectionSlot<S>) -> Result<u64, RunnerError> {
        let inner = &self.inner;
        let lease = if slot.leased {
            let Some(lease) = take_lease(inner, slot.name).await? else {
                let owner = inner
                    .store
                    .lease_owner(slot.name)
                    .await
                    .map_err(|source| RunnerError::Store {
                        projection: slot.name,
                        source,
                    })?
                    .map_or_else(String::new, |(owner, _)| owner);
                return Err(RunnerError::LeaseLost {
                    projection: slot.name,
                    loss: LeaseLoss::HeldBy { owner },
                });
            };
            lease
        } else {
            local_lease(inner, slot)
        };
        let outcome = async {
            let mut projection = slot.projection.lock().await;
            projection.forget_checkpoint();
            self.replay(slot, &mut **projection, &lease, |_| {}).await
        }
        .await;
        self.release(slot, &lease).await;
        outcome
    }

    /// Runs `projection` (locked, of `slot`) batch by batch to the end of the log under
    /// `lease`, renewing it as it goes; `after_batch` sees the events each batch applied.
    /// Returns the events applied.
    async fn replay(
        &self,
        slot: &ProjectionSlot<S>,
        projection: &mut dyn ErasedProjection<S>,
        lease: &Lease,
        mut after_batch: impl FnMut(usize) + Send,
    ) -> Result<u64, RunnerError> {
        let inner = &self.inner;
        let mut renewed = tokio::time::Instant::now();
        let mut applied = 0u64;
        loop {
            if slot.leased {
                renew_if_due(inner, slot.name, lease, &mut renewed).await?;
            }
            let batch =
                run_recorded(slot, projection, &inner.store, inner.runner.batch(), lease).await?;
            applied += batch.applied as u64;
            after_batch(batch.applied);
            if batch.caught_up_to.is_some() {
                return Ok(applied);
            }
        }
    }

    /// Gives `lease` back after a run of `slot`, whatever the run's outcome.
    async fn release(&self, slot: &ProjectionSlot<S>, lease: &Lease) {
        if slot.leased
            && let Err(error) = self.inner.store.release_lease(lease).await
        {
            tracing::warn!(projection = slot.name, %error, "releasing the lease failed");
        }
    }

    /// Every projection's checkpoint, lag (events and seconds behind), lease owner and last
    /// error, read from the store now.
    ///
    /// # Errors
    /// The first failing read.
    pub async fn projection_report(
        &self,
    ) -> Result<Vec<crate::runner::ProjectionReport>, RunnerError> {
        let mut reports = Vec::with_capacity(self.inner.projections.len());
        for slot in &self.inner.projections {
            let store_error = |source| RunnerError::Store {
                projection: slot.name,
                source,
            };
            let read_error = |source| RunnerError::Read {
                projection: slot.name,
                source,
            };
            let store = &self.inner.store;
            // An in-memory projection's checkpoint lives in this process, not in the store.
            let checkpoint = if slot.leased {
                store.checkpoint(slot.name).await.map_err(store_error)?
            } else {
                slot.status().checkpoint
            };
            let head = store.head().await.map_err(read_error)?;
            let filter = EventFilter::Types(slot.event_types);
            let events_behind = store
                .count_events(checkpoint, filter)
                .await
                .map_err(read_error)?;
            let oldest = store
                .read_all(checkpoint, 1, filter)
                .await
                .map_err(read_error)?;
            let seconds_behind = oldest.first().map_or(0.0, |event| {
                (time::OffsetDateTime::now_utc() - event.recorded_at)
                    .as_seconds_f64()
                    .max(0.0)
            });
            let owner = store.lease_owner(slot.name).await.map_err(store_error)?;
            reports.push(crate::runner::ProjectionReport {
                status: slot.status().clone(),
                checkpoint,
                head,
                events_behind,
                seconds_behind,
                owner,
            });
        }
        Ok(reports)
    }

    fn slot(&self, name: &str) -> Result<&ProjectionSlot<S>, RunnerError> {
        self.inner
            .projections
            .iter()
            .find(|slot| slot.name == name)
            .ok_or_else(|| RunnerError::UnknownProjection {
                name: name.to_owned(),
                registered: self
                    .inner
                    .projections
                    .iter()
                    .map(|slot| slot.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Starts one background task per projection: take the projection's lease (waiting while
    /// another worker holds it), catch up, then follow the log, woken by the store's
    /// notifications (with a fallback poll). Requires a tokio runtime.
    #[must_use]
    pub fn start_projections(&self) -> ProjectionWorkers {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tasks = (0..self.inner.projections.len())
            .map(|index| tokio::spawn(run_projection(self.clone(), index, stopped.clone())))
            .collect();
        ProjectionWorkers { stop, tasks }
    }
}

async fn run_recorded<S: EventStore>(
    slot: &ProjectionSlot<S>,
    projection: &mut dyn ErasedProjection<S>,
    store: &S,
    batch_size: usize,
    lease: &Lease,
) -> Result<crate::runner::BatchOutcome, RunnerError> {
    let result = projection.run_batch(store, batch_size, lease).await;
    let mut status = slot.status();
    match &result {
        Ok(outcome) => {
            status.checkpoint = outcome.checkpoint;
            status.events_applied += outcome.applied as u64;
            if outcome.caught_up_to.is_some() {
                status.caught_up_to = outcome.caught_up_to;
            }
            status.last_error = None;
            status.consecutive_failures = 0;
        }
        Err(error) => {
            projection.forget_checkpoint();
            status.last_error = Some(ErrorChain(error).to_string());
            status.consecutive_failures += 1;
        }
    }
    result
}

/// The lease a projection kept in this process runs under: its own, never shared (epoch 0).
fn local_lease<S>(inner: &AppInner<S>, slot: &ProjectionSlot<S>) -> Lease {
    Lease::new(slot.name, inner.worker_id.clone(), 0)
}

/// Takes the projection's lease for this worker; `None` while another worker holds it.
async fn take_lease<S: CheckpointStore>(
    inner: &AppInner<S>,
    projection: &'static str,
) -> Result<Option<Lease>, RunnerError> {
    inner
        .store
        .acquire_lease(projection, &inner.worker_id, inner.runner.lease())
        .await
        .map_err(|source| RunnerError::Store { projection, source })
}

/// The lease a rebuild by `owner` works under: taken over at once, or asked for and waited
/// for (see [`App::rebuild_with`]).
async fn rebuild_lease<S: CheckpointStore>(
    inner: &AppInner<S>,
    projection: &'static str,
    owner: &str,
    options: &RebuildOptions,
    on_step: &mut (impl FnMut(RebuildStep) + Send),
) -> Result<Lease, RunnerError> {
    let store_error = |source| RunnerError::Store { projection, source };
    let ttl = inner.runner.lease();
    if options.take_over {
        let previous = inner
            .store
            .lease_owner(projection)
            .await
            .map_err(store_error)?
            .filter(|(_, unexpired)| *unexpired)
            .map(|(owner, _)| owner);
        let lease = inner
            .store
            .take_over_lease(projection, owner, ttl)
            .await
            .map_err(store_error)?;
        if let Some(previous) = previous {
            tracing::warn!(projection, from = %previous, epoch = lease.epoch, "rebuild took the lease over");
            on_step(RebuildStep::TookOver { from: previous });
        }
        return Ok(lease);
    }
    let started = tokio::time::Instant::now();
    // Often enough to notice a handed-over lease soon, rarely enough to cost nothing.
    let pause = (ttl / 6).clamp(Duration::from_millis(10), Duration::from_millis(500));
    loop {
        let holder = inner
            .store
            .request_lease(projection, owner, ttl)
            .await
            .map_err(store_error)?;
        // Nobody holds it; unless another rebuild has asked for it first, it is ours.
        if holder.is_none()
            && let Some(lease) = inner
                .store
                .acquire_lease(projection, owner, ttl)
                .await
                .map_err(store_error)?
        {
            return Ok(lease);
        }
        if started.elapsed() >= options.wait_at_most {
            return Err(RunnerError::LeaseWait {
                projection,
                holder: holder.map_or_else(|| "another rebuild".to_owned(), |h| h.owner),
                waited: started.elapsed(),
            });
        }
        if let Some(holder) = holder {
            on_step(RebuildStep::Waiting { holder });
        }
        tokio::time::sleep(pause).await;
    }
}

/// Renews `lease` once a third of its time has passed since `renewed`. A lease another worker
/// took over is [`RunnerError::LeaseLost`]; one another worker asked for is released, then
/// reported lost the same way (handed over).
async fn renew_if_due<S: CheckpointStore>(
    inner: &AppInner<S>,
    projection: &'static str,
    lease: &Lease,
    renewed: &mut tokio::time::Instant,
) -> Result<(), RunnerError> {
    let ttl = inner.runner.lease();
    if renewed.elapsed() < ttl / 3 {
        return Ok(());
    }
    let renewal = inner
        .store
        .renew_lease(lease, ttl)
        .await
        .map_err(|source| RunnerError::Store { projection, source })?;
    let loss = match renewal {
        LeaseRenewal::Renewed => {
            *renewed = tokio::time::Instant::now();
            return Ok(());
        }
        LeaseRenewal::HandOver { requested_by } => {
            tracing::info!(projection, to = %requested_by, "handing the lease over");
            inner
                .store
                .release_lease(lease)
                .await
                .map_err(|source| RunnerError::Store { projection, source })?;
            LeaseLoss::HandedOver { to: requested_by }
        }
        // `LeaseRenewal` may grow; anything but a renewal means the lease is not ours.
        _ => LeaseLoss::TakenOver,
    };
    Err(RunnerError::LeaseLost { projection, loss })
}

fn lease_lost(error: &RunnerError) -> bool {
    match error {
        RunnerError::LeaseLost { .. } => true,
        RunnerError::Store { source, .. } => source.kind() == BackendErrorKind::LeaseLost,
        _ => false,
    }
}

/// The first re-read after a wake-up that found nothing.
const FIRST_RECHECK: Duration = Duration::from_millis(5);

/// What a projection task does next, while it holds no lease or after a batch.
enum Next {
    /// Run the next batch at once.
    Batch,
    /// Wait for a wake-up or `Duration`, whichever comes first.
    Wait(Duration),
    /// Wait `Duration` regardless of wake-ups (back-off, or a standby worker).
    Pause(Duration),
}

async fn run_projection<S: CheckpointStore>(
    app: App<S>,
    index: usize,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let inner = &app.inner;
    let Some(slot) = inner.projections.get(index) else {
        return;
    };
    let ttl = inner.runner.lease();
    let mut watch = inner.store.watch();
    let mut backoff = inner.runner.first_backoff();
    // After a wake-up that applied nothing, re-read soon and then less often: on PostgreSQL the
    // notified events stay invisible while an older transaction on the server is open, and its
    // end sends no notification.
    let mut recheck = inner.runner.poll();
    let mut lease: Option<(Lease, tokio::time::Instant)> = None;
    while !*stopped.borrow() {
        let next = match step(slot, inner, &mut lease).await {
            // Another worker (a rebuild, a takeover) has the lease: not a failure of ours.
            Err(error) if lease_lost(&error) => {
                tracing::info!(projection = slot.name, reason = %ErrorChain(&error), "lease lost; standing by");
                lease = None;
                slot.status().lease_held = false;
                Next::Pause(ttl / 3)
            }
            Err(error) => {
                tracing::error!(projection = slot.name, error = %ErrorChain(&error), "projection batch failed; retrying");
                let pause = backoff;
                backoff = (backoff * 2).min(inner.runner.longest_backoff());
                Next::Pause(pause)
            }
            Ok(None) => Next::Pause(ttl / 3),
            Ok(Some(outcome)) if outcome.caught_up_to.is_none() => {
                backoff = inner.runner.first_backoff();
                Next::Batch
            }
            Ok(Some(outcome)) => {
                backoff = inner.runner.first_backoff();
                if outcome.applied > 0 {
                    recheck = inner.runner.poll();
                }
                // Wake in time to renew the lease.
                Next::Wait(recheck.min(ttl / 3))
            }
        };
        let (wait, wakeable) = match next {
            Next::Batch => continue,
            Next::Wait(wait) => (wait, true),
            Next::Pause(pause) => (pause, false),
        };
        tokio::select! {
            () = watch.changed(), if wakeable => {
                recheck = FIRST_RECHECK.min(inner.runner.poll());
            }
            () = tokio::time::sleep(wait) => {
                if wakeable {
                    recheck = (recheck * 2).min(inner.runner.poll());
                }
            }
            changed = stopped.changed() => {
                // The sender is gone: nobody can ask us to stop any more, so stop now.
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    if let Some((lease, _)) = lease {
        if slot.leased
            && let Err(error) = inner.store.release_lease(&lease).await
        {
            tracing::warn!(projection = slot.name, %error, "releasing the lease failed");
        }
        slot.status().lease_held = false;
    }
}

/// Takes or renews the lease as needed, then runs one batch; `None` while another worker
/// holds the lease.
async fn step<S: CheckpointStore>(
    slot: &ProjectionSlot<S>,
    inner: &AppInner<S>,
    held: &mut Option<(Lease, tokio::time::Instant)>,
) -> Result<Option<crate::runner::BatchOutcome>, RunnerError> {
    let mut projection = slot.projection.lock().await;
    match held {
        // Kept in this process: every process runs its own copy, nobody to share a lease with.
        None if !slot.leased => {
            *held = Some((local_lease(inner, slot), tokio::time::Instant::now()));
            slot.status().lease_held = true;
        }
        Some(_) if !slot.leased => {}
        None => {
            let Some(lease) = take_lease(inner, slot.name).await? else {
                return Ok(None);
            };
            tracing::info!(projection = slot.name, epoch = lease.epoch, "lease taken");
            // Another worker may have moved the checkpoint while we stood by.
            projection.forget_checkpoint();
            slot.status().lease_held = true;
            *held = Some((lease, tokio::time::Instant::now()));
        }
        Some((lease, renewed)) => renew_if_due(inner, slot.name, lease, renewed).await?,
    }
    let Some((lease, _)) = held.as_ref() else {
        return Ok(None);
    };
    run_recorded(
        slot,
        &mut **projection,
        &inner.store,
        inner.runner.batch(),
        lease,
    )
    .await
    .map(Some)
}

/// The background projection tasks; stop them with [`ProjectionWorkers::shutdown`] (or by
/// dropping this handle, which does not wait).
#[derive(Debug)]
pub struct ProjectionWorkers {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ProjectionWorkers {
    /// Asks every task to stop after its current batch (which commits), and waits for them.
    pub async fn shutdown(mut self) {
        // Receivers live inside the tasks; a send error means they have all ended already.
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            if let Err(error) = task.await {
                tracing::error!(%error, "projection task ended abnormally");
            }
        }
    }
}

impl Drop for ProjectionWorkers {
    /// Dropping the handle stops the tasks too (after their current batch), without waiting.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A command on its way: set options, then `.await` it.
#[must_use = "a command does nothing until it is awaited"]
pub struct Execute<'a, S, A: Aggregate, C> {
    app: &'a App<S>,
    stream_id: Result<StreamId, crate::stream::InvalidStreamId>,
    command: C,
    options: CommandOptions,
    /// Why the command could not be fingerprinted for its id, if it could not.
    unfingerprinted: Option<crate::fingerprint::FingerprintError>,
    aggregate: std::marker::PhantomData<fn() -> A>,
}

impl<S, A: Aggregate, C> Execute<'_, S, A, C> {
    /// Requires the aggregate to be at `expected`; a mismatch is returned as
    /// [`CommandError::Conflict`] (or [`CommandError::NotFound`] for
    /// [`ExpectedVersion::StreamExists`]) without retrying.
    pub const fn expected_version(mut self, expected: ExpectedVersion) -> Self {
        self.options.expected = expected;
        self
    }

    /// Requires the aggregate to exist ([`CommandError::NotFound`] otherwise).
    pub const fn existing(self) -> Self {
        self.expected_version(ExpectedVersion::StreamExists)
    }

    /// Makes the command idempotent under `command_id` without a fingerprint: for ids that
    /// name one command by construction (a process manager's, derived from the event it
    /// handles), whose command may change shape between a run and its replay.
    pub(crate) const fn command_id_by_construction(mut self, command_id: Uuid) -> Self {
        self.options.command_id = Some(command_id);
        self
    }

    /// Replaces the metadata stored with the command's events.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.options.metadata = metadata;
        self
    }

    /// Sets the correlation id stored with the command's events.
    pub const fn correlation_id(mut self, id: Uuid) -> Self {
        self.options.metadata.correlation_id = Some(id);
        self
    }

    /// Sets the causation id stored with the command's events.
    pub const fn causation_id(mut self, id: Uuid) -> Self {
        self.options.metadata.causation_id = Some(id);
        self
    }

    /// Adds a header stored with the command's events.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.options
            .metadata
            .headers
            .insert(name.into(), value.into());
        self
    }
}

impl<S, A: Aggregate, C: Into<A::Command> + Clone> Execute<'_, S, A, C> {
    /// Makes the command idempotent under `command_id` (an idempotency key): the command is
    /// recorded with it, with a fingerprint of the command, and the same id with the same
    /// command returns the first result (or the same refusal) without deciding again; the same
    /// id with another command is refused ([`CommandError::FingerprintMismatch`],
    /// [`CommandError::CommandIdReused`]). See [`command`](mod@crate::command) for the whole
    /// contract, beside Stripe's idempotency keys.
    ///
    /// The fingerprint is taken from the command's serde form, so every command of the
    /// aggregate must be `Serialize` (`#[derive(Aggregate)]` then makes its command enum
    /// `Serialize`).
    pub fn command_id(mut self, command_id: Uuid) -> Self
    where
        A::Command: serde::Serialize,
    {
        self.options.command_id = Some(command_id);
        let command: A::Command = self.command.clone().into();
        match crate::fingerprint::CommandFingerprint::of(A::NAME, &command) {
            Ok(fingerprint) => self.options.fingerprint = Some(fingerprint),
            Err(error) => self.unfingerprinted = Some(error),
        }
        self
    }
}

impl<'a, S, A, C> IntoFuture for Execute<'a, S, A, C>
where
    S: EventStore,
    A: Aggregate,
    C: Into<A::Command> + Clone + Send + 'static,
{
    type Output = Result<Executed<A>, CommandError<A::Error>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let stream_id = self.stream_id.map_err(|source| CommandError::InvalidId {
                aggregate: A::NAME,
                source,
            })?;
            if let Some(source) = self.unfingerprinted {
                return Err(CommandError::Fingerprint {
                    aggregate: A::NAME,
                    source,
                });
            }
            let settings = self
                .app
                .inner
                .settings
                .get(&TypeId::of::<A>())
                .and_then(|settings| settings.downcast_ref::<AggregateSettings<A>>())
                .ok_or(CommandError::NotRegistered { aggregate: A::NAME })?;
            let runway = command::Runway {
                store: &self.app.inner.store,
                settings,
                queue: &self.app.inner.queue,
            };
            command::execute(runway, stream_id, self.command, self.options).await
        })
    }
}
