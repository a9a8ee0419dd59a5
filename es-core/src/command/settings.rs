//! How an aggregate's commands run ([`AggregateSettings`]) and what one command asks for
//! ([`CommandOptions`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::fingerprint::CommandFingerprint;
use crate::metadata::Metadata;
use crate::snapshot::SnapshotPolicy;
use crate::stream::ExpectedVersion;

/// The default number of times a command is decided before a conflict is returned.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// The default bounds of the pause before a command is decided again after a conflict with
/// another process: the first retry waits up to 1 ms, each later one up to twice as long, never
/// more than 64 ms.
pub const DEFAULT_RETRY_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(1), Duration::from_millis(64));

/// How one aggregate type is run: its services, snapshot policy and retry bounds.
pub struct AggregateSettings<A: Aggregate> {
    services: Arc<A::Services>,
    pub(crate) snapshot_policy: SnapshotPolicy,
    pub(crate) max_attempts: u32,
    pub(crate) retry_backoff: (Duration, Duration),
}

impl<A: Aggregate> AggregateSettings<A> {
    /// Settings with these services, no snapshots, [`DEFAULT_MAX_ATTEMPTS`] and
    /// [`DEFAULT_RETRY_BACKOFF`].
    #[must_use]
    pub fn new(services: A::Services) -> Self {
        Self {
            services: Arc::new(services),
            snapshot_policy: SnapshotPolicy::Never,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
        }
    }

    /// How long a command pauses before it is decided again after losing a race to another
    /// process: the `n`-th retry waits a random time up to `first * 2^(n-1)`, at most
    /// `longest` ("full jitter", so that two processes contending on one stream drift apart).
    /// Commands of one application never race each other: they queue (see the
    /// [module docs](crate::command)).
    #[must_use]
    pub fn retry_backoff(mut self, first: Duration, longest: Duration) -> Self {
        self.retry_backoff = (first, longest.max(first));
        self
    }

    /// Saves a snapshot whenever an append crosses a multiple of `events` (the aggregate must
    /// declare `#[aggregate(snapshot = N)]`; otherwise this has no effect).
    #[must_use]
    pub const fn snapshot_every(mut self, events: u64) -> Self {
        self.snapshot_policy = SnapshotPolicy::Every(events);
        self
    }

    /// How many times a command is decided before a conflict is returned (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The services handed to async command handlers.
    #[must_use]
    pub fn services(&self) -> &A::Services {
        &self.services
    }
}

impl<A: Aggregate> Default for AggregateSettings<A>
where
    A::Services: Default,
{
    fn default() -> Self {
        Self::new(A::Services::default())
    }
}

impl<A: Aggregate> Clone for AggregateSettings<A> {
    fn clone(&self) -> Self {
        Self {
            services: Arc::clone(&self.services),
            snapshot_policy: self.snapshot_policy,
            max_attempts: self.max_attempts,
            retry_backoff: self.retry_backoff,
        }
    }
}

impl<A: Aggregate> fmt::Debug for AggregateSettings<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateSettings")
            .field("aggregate", &A::NAME)
            .field("snapshot_policy", &self.snapshot_policy)
            .field("max_attempts", &self.max_attempts)
            .field("retry_backoff", &self.retry_backoff)
            .finish_non_exhaustive()
    }
}

/// Per-call options of a command: the expected version, an idempotency id, metadata.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CommandOptions {
    /// What the caller expects the aggregate's version to be; `Any` lets the command path retry.
    pub expected: ExpectedVersion,
    /// Makes the command idempotent: the same id appends once and returns the first result.
    pub command_id: Option<Uuid>,
    /// The fingerprint recorded with `command_id`: the same id with another fingerprint is
    /// refused (see the [module docs](crate::command)).
    pub fingerprint: Option<CommandFingerprint>,
    /// Stored with every event the command appends.
    pub metadata: Metadata,
}

impl Default for CommandOptions {
    fn default() -> Self {
        Self {
            expected: ExpectedVersion::Any,
            command_id: None,
            fingerprint: None,
            metadata: Metadata::default(),
        }
    }
}
