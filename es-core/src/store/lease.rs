//! Projection leases: the right to run one projection, held by one worker at a time, fenced by
//! an epoch (see [`CheckpointStore`](super::CheckpointStore)'s lease methods).

use std::time::Duration;

/// The right to run one projection, held by one worker at a time (see
/// [`CheckpointStore::acquire_lease`](super::CheckpointStore::acquire_lease)).
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
/// [`CheckpointStore::request_lease`](super::CheckpointStore::request_lease) reports it.
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
