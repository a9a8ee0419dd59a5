//! Projection leases: the right to run one projection, held by one worker at a time, fenced by
//! an epoch (see [`LeaseStore`]'s lease methods).

use std::future::Future;
use std::time::Duration;

use crate::store::error::{BackendError, BackendErrorKind};
use crate::stream::LogPosition;

/// The right to run one projection, held by one worker at a time (see
/// [`LeaseStore::acquire_lease`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The projection.
    pub projection: String,
    /// Who holds it (a worker id, unique per process run).
    pub owner: String,
    /// The fencing epoch: incremented whenever the lease is taken anew.
    pub epoch: u64,
}

impl Lease {
    /// A lease as a store hands it out.
    #[must_use]
    pub fn new(projection: impl Into<String>, owner: impl Into<String>, epoch: u64) -> Self {
        Self {
            projection: projection.into(),
            owner: owner.into(),
            epoch,
        }
    }

    /// What a fenced commit of `projection`'s batch at `checkpoint` under this lease does, for
    /// the context of its errors: every store says it the same way.
    #[must_use]
    pub fn fenced_commit_context(&self, projection: &str, checkpoint: LogPosition) -> String {
        format!(
            "commit a batch of projection `{projection}` at {checkpoint} under lease epoch {} of `{}`",
            self.epoch, self.owner
        )
    }

    /// The error of a fenced commit that found this lease no longer held (taken over, expired
    /// or released): [`BackendErrorKind::LeaseLost`] from back end `backend`, with
    /// [`fenced_commit_context`](Self::fenced_commit_context) as its context.
    #[must_use]
    pub fn lost(
        &self,
        backend: &'static str,
        projection: &str,
        checkpoint: LogPosition,
    ) -> BackendError {
        BackendError::new(
            backend,
            BackendErrorKind::LeaseLost,
            self.fenced_commit_context(projection, checkpoint),
        )
    }
}

/// What renewing a lease found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseRenewal {
    /// Still held, for another time to live.
    Renewed,
    /// Another owner took it: nothing more may be committed under it.
    Lost,
    /// Still held, but not extended: `requested_by` (a rebuild) asked for it. The holder
    /// finishes what it is doing, commits nothing more, and releases it.
    HandOver {
        /// Who asked.
        requested_by: String,
    },
}

/// Who holds a projection's lease, as
/// [`LeaseStore::request_lease`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseHolder {
    /// The worker holding it.
    pub owner: String,
    /// Its fencing epoch.
    pub epoch: u64,
    /// How long until it expires unless renewed.
    pub expires_in: Duration,
    /// Who asked for it, if anyone has and the request has not expired.
    pub requested_by: Option<String>,
}

impl LeaseHolder {
    /// A holder as a store reports it.
    #[must_use]
    pub fn new(
        owner: impl Into<String>,
        epoch: u64,
        expires_in: Duration,
        requested_by: Option<String>,
    ) -> Self {
        Self {
            owner: owner.into(),
            epoch,
            expires_in,
            requested_by,
        }
    }
}

/// Projection leases: the right to run one projection, held by one worker at a time and fenced
/// by an epoch, so a worker that lost its lease commits nothing more.
pub trait LeaseStore: Send + Sync {
    /// Takes (or renews, for the same `owner`) the lease that lets one worker run `projection`
    /// for `ttl`; `None` while another owner holds an unexpired lease, or while another owner
    /// has asked for it ([`request_lease`](Self::request_lease)) and that request has not
    /// expired (its holder is handing it over to that owner).
    ///
    /// Taking the lease anew (from another owner, or after it expired or was released)
    /// increments its fencing epoch, which [`commit_fenced`](crate::CheckpointStore::commit_fenced) checks, so a
    /// worker that lost its lease (paused, cut off) cannot commit a stale batch. Only the owner
    /// of an unexpired lease keeps its epoch, as a renewal. The requester that takes the lease
    /// clears its request.
    ///
    /// # Errors
    /// Back-end failures.
    fn acquire_lease(
        &self,
        projection: &str,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Lease>, BackendError>> + Send;

    /// Extends a held lease by `ttl`: [`LeaseRenewal::Renewed`]; [`LeaseRenewal::Lost`] when
    /// another owner took it (the epoch moved on); [`LeaseRenewal::HandOver`], without
    /// extending it, when another owner has asked for it: the holder should finish its batch,
    /// then [`release_lease`](Self::release_lease).
    ///
    /// # Errors
    /// Back-end failures.
    fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> impl Future<Output = Result<LeaseRenewal, BackendError>> + Send;

    /// Gives a lease up, so another worker may take it at once. A lease already lost is left
    /// alone.
    ///
    /// # Errors
    /// Back-end failures.
    fn release_lease(&self, lease: &Lease)
    -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Asks whoever holds `projection`'s lease to hand it over to `requester` (a rebuild): the
    /// holder's next [`renew_lease`](Self::renew_lease) answers
    /// [`LeaseRenewal::HandOver`], and until the request expires, `ttl` from now, nobody but
    /// `requester` can take the lease. Returns the holder after the request, or `None` when no
    /// other owner holds an unexpired lease (then `requester` may take it at once). Call it
    /// again to keep a request alive while waiting.
    ///
    /// # Errors
    /// Back-end failures.
    fn request_lease(
        &self,
        projection: &str,
        requester: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<LeaseHolder>, BackendError>> + Send;

    /// Takes `projection`'s lease for `owner` for `ttl` whoever holds it, with a new epoch: the
    /// holder's batches from then on commit nothing ([`commit_fenced`](crate::CheckpointStore::commit_fenced)
    /// fails for them), and its next renewal is [`LeaseRenewal::Lost`]. Clears any request.
    ///
    /// # Errors
    /// Back-end failures.
    fn take_over_lease(
        &self,
        projection: &str,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Lease, BackendError>> + Send;

    /// The owner of the projection's lease and whether it is unexpired, if anyone ever held it.
    ///
    /// # Errors
    /// Back-end failures.
    fn lease_owner(
        &self,
        projection: &str,
    ) -> impl Future<Output = Result<Option<(String, bool)>, BackendError>> + Send;
}
