//! What the workers report: each projection's status, a rebuild's steps and progress.

use std::time::Duration;

use crate::stream::LogPosition;

/// A projection's progress and health, for status pages and `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: &'static str,
    /// Its committed checkpoint, as far as this process knows.
    pub checkpoint: LogPosition,
    /// The head of the log it last caught up to, if it ever did.
    pub caught_up_to: Option<LogPosition>,
    /// Events applied by this process.
    pub events_applied: u64,
    /// The last error, while the projection is failing.
    pub last_error: Option<String>,
    /// Consecutive failed batches.
    pub consecutive_failures: u32,
    /// Whether this process holds the projection's lease (runs it).
    pub lease_held: bool,
}

/// How a rebuild takes its projection's lease from a worker that holds it (see
/// [`App::rebuild_with`](crate::App::rebuild_with)).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RebuildOptions {
    /// Take the lease at once, whoever holds it, instead of asking for it and waiting.
    pub take_over: bool,
    /// How long to wait for the lease to be handed over before giving up (default 60 s).
    pub wait_at_most: Duration,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            take_over: false,
            wait_at_most: Duration::from_secs(60),
        }
    }
}

impl RebuildOptions {
    /// Takes the lease at once, with a new epoch, instead of waiting for its holder to hand it
    /// over: the holder's batch in flight fails its fence and commits nothing. For a holder
    /// that will not hand over (a worker of an older release) or when waiting is not wanted.
    #[must_use]
    pub const fn take_over(mut self) -> Self {
        self.take_over = true;
        self
    }

    /// Waits at most `wait` for the lease's holder to hand it over.
    #[must_use]
    pub const fn wait_at_most(mut self, wait: Duration) -> Self {
        self.wait_at_most = wait;
        self
    }
}

/// What a rebuild is doing, as [`App::rebuild_with`](crate::App::rebuild_with) reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebuildStep {
    /// Waiting for `holder` to hand the lease over (a live worker does at its next renewal; a
    /// dead one's lease runs out). Reported again while the wait goes on.
    Waiting {
        /// Who holds the lease, and how long it has left.
        holder: crate::store::LeaseHolder,
    },
    /// The lease was taken over from `from`, which commits nothing more under it.
    TookOver {
        /// The worker that held it.
        from: String,
    },
    /// The rebuild holds the lease, with this fencing epoch.
    LeaseTaken {
        /// The epoch its batches commit under.
        epoch: u64,
    },
    /// The read model was cleared and the checkpoint moved back to the start.
    Cleared,
    /// Events applied so far.
    Progress(RebuildProgress),
}

/// How far a rebuild has come, reported after each batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RebuildProgress {
    /// Events of the projection's types applied so far.
    pub done: u64,
    /// Events of its types in the log when the rebuild started (more may arrive meanwhile, so
    /// `done` can end above it).
    pub total: u64,
}

/// A projection's state as the store and this process see it: for status pages and `stats`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ProjectionReport {
    /// What this process knows: errors, failures, events applied, whether it holds the lease.
    pub status: ProjectionStatus,
    /// The committed checkpoint, read from the store.
    pub checkpoint: LogPosition,
    /// The head of the log.
    pub head: Option<LogPosition>,
    /// Events of the projection's types after its checkpoint.
    pub events_behind: u64,
    /// How long the oldest of those events has been waiting (zero when none is).
    pub seconds_behind: f64,
    /// The worker holding (or last holding) the projection's lease, and whether that lease is
    /// still unexpired; `None` on stores without leases or before any worker ran.
    pub owner: Option<(String, bool)>,
}
