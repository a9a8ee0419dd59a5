//! The workers: each projection and process manager runs batch after batch under its lease,
//! follows the log live, backs off on failure; catching up, rebuilding and reports.

use std::time::Duration;

use crate::app::{App, AppInner, ProjectionSlot};
use crate::chain::ErrorChain;
use crate::runner::batch::BatchOutcome;
use crate::runner::batch::ErasedProjection;
use crate::runner::error::{LeaseLoss, RunnerError};
use crate::runner::status::{ProjectionReport, RebuildOptions, RebuildProgress, RebuildStep};
use crate::store::checkpoint::CheckpointStore;
use crate::store::error::BackendErrorKind;
use crate::store::lease::{Lease, LeaseRenewal};
use crate::store::log::EventFilter;
use crate::stream::LogPosition;

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
            projection.reset(self, &lease).await?;
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
        projection: &mut dyn ErasedProjection<App<S>>,
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
            let batch = run_recorded(slot, projection, self, inner.runner.batch(), lease).await?;
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
    pub async fn projection_report(&self) -> Result<Vec<ProjectionReport>, RunnerError> {
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
            reports.push(ProjectionReport {
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

async fn run_recorded<S: CheckpointStore>(
    slot: &ProjectionSlot<S>,
    projection: &mut dyn ErasedProjection<App<S>>,
    app: &App<S>,
    batch_size: usize,
    lease: &Lease,
) -> Result<BatchOutcome, RunnerError> {
    let result = projection.run_batch(app, batch_size, lease).await;
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
        let next = match step(slot, &app, &mut lease).await {
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
    app: &App<S>,
    held: &mut Option<(Lease, tokio::time::Instant)>,
) -> Result<Option<BatchOutcome>, RunnerError> {
    let inner = &app.inner;
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
    run_recorded(slot, &mut **projection, app, inner.runner.batch(), lease)
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
