//! Projection leases in the file, shared by every process that opens it: one worker runs a
//! projection at a time, the others stand by, and a batch commits only while its worker still
//! holds the lease (see [`es_core::LeaseStore::acquire_lease`] for the rules).
//!
//! Every lease statement is a write on the store's writer connection, and a batch's fence is
//! checked inside the batch's own `BEGIN IMMEDIATE` transaction, so a takeover (a write) cannot
//! fall between the check and the commit: SQLite runs one write transaction at a time, across
//! processes too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use es_core::{BackendError, Lease, LeaseHolder, LeaseRenewal};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqlitePool;

use crate::error::{classify, to_i64, to_u64};

/// Takes the lease if it is free, expired, or already ours, unless another owner's request for
/// it stands; taken anew it gets the next epoch. `?3` is now, `?4` the expiry (milliseconds).
const ACQUIRE: &str = "INSERT INTO projection_leases (projection, owner, epoch, expires_at) \
     VALUES (?1, ?2, 1, ?4) \
     ON CONFLICT (projection) DO UPDATE SET \
     epoch = epoch + CASE WHEN owner = excluded.owner AND expires_at > ?3 THEN 0 ELSE 1 END, \
     owner = excluded.owner, expires_at = excluded.expires_at, \
     requested_by = CASE WHEN requested_by = excluded.owner THEN NULL ELSE requested_by END, \
     requested_until = CASE WHEN requested_by = excluded.owner THEN NULL \
         ELSE requested_until END \
     WHERE (owner = excluded.owner OR expires_at <= ?3) \
       AND (requested_by IS NULL OR requested_by = excluded.owner OR requested_until <= ?3) \
     RETURNING epoch";

/// Renews to `?5` unless another owner's request stands (`?4` is now). No row: lost; NULL:
/// renewed; a name: to be handed over to it.
const RENEW: &str = "UPDATE projection_leases SET expires_at = CASE \
         WHEN requested_by IS NULL OR requested_by = ?2 OR requested_until <= ?4 THEN ?5 \
         ELSE expires_at END \
     WHERE projection = ?1 AND owner = ?2 AND epoch = ?3 \
     RETURNING CASE WHEN requested_by IS NULL OR requested_by = ?2 OR requested_until <= ?4 \
         THEN NULL ELSE requested_by END";

/// Expires the lease at once but keeps the epoch, so the next owner still bumps it.
const RELEASE: &str = "UPDATE projection_leases SET expires_at = 0 \
     WHERE projection = ?1 AND owner = ?2 AND epoch = ?3";

/// Asks the holder of an unexpired lease held by another owner to hand it to `?2`, unless a
/// third owner's request stands (`?3` now, `?4` until when the request stands). Returns the
/// holder: owner, epoch, milliseconds left, the standing requester.
const REQUEST: &str = "UPDATE projection_leases SET \
     requested_by = CASE WHEN requested_by IS NULL OR requested_by = ?2 \
         OR requested_until <= ?3 THEN ?2 ELSE requested_by END, \
     requested_until = CASE WHEN requested_by IS NULL OR requested_by = ?2 \
         OR requested_until <= ?3 THEN ?4 ELSE requested_until END \
     WHERE projection = ?1 AND owner <> ?2 AND expires_at > ?3 \
     RETURNING owner, epoch, max(0, expires_at - ?3), requested_by";

/// Takes the lease for `?2` whoever holds it, with the next epoch, expiring at `?3`.
const TAKE_OVER: &str = "INSERT INTO projection_leases (projection, owner, epoch, expires_at) \
     VALUES (?1, ?2, 1, ?3) \
     ON CONFLICT (projection) DO UPDATE SET owner = excluded.owner, epoch = epoch + 1, \
     expires_at = excluded.expires_at, requested_by = NULL, requested_until = NULL \
     RETURNING epoch";

/// Whether `?2` still holds the lease at epoch `?3`, unexpired at `?4`.
const HELD: &str = "SELECT 1 FROM projection_leases \
     WHERE projection = ?1 AND owner = ?2 AND epoch = ?3 AND expires_at > ?4";

const OWNER: &str = "SELECT owner, expires_at > ?2 FROM projection_leases WHERE projection = ?1";

/// Now, in Unix milliseconds.
fn now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// `ttl` after `now`, in Unix milliseconds.
fn after(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) async fn acquire(
    writer: &SqlitePool,
    projection: &str,
    owner: &str,
    ttl: Duration,
) -> Result<Option<Lease>, BackendError> {
    let context = || format!("take the lease on projection `{projection}`");
    let now = now();
    let epoch: Option<i64> = sqlx::query_scalar(ACQUIRE)
        .bind(projection)
        .bind(owner)
        .bind(now)
        .bind(after(now, ttl))
        .fetch_optional(writer)
        .await
        .map_err(|error| classify(context(), error))?;
    epoch
        .map(|epoch| Ok(Lease::new(projection, owner, to_u64(epoch, context)?)))
        .transpose()
}

pub(crate) async fn renew(
    writer: &SqlitePool,
    lease: &Lease,
    ttl: Duration,
) -> Result<LeaseRenewal, BackendError> {
    let context = || format!("renew the lease on projection `{}`", lease.projection);
    let now = now();
    let renewed: Option<Option<String>> = sqlx::query_scalar(RENEW)
        .bind(&lease.projection)
        .bind(&lease.owner)
        .bind(to_i64(lease.epoch, context)?)
        .bind(now)
        .bind(after(now, ttl))
        .fetch_optional(writer)
        .await
        .map_err(|error| classify(context(), error))?;
    Ok(match renewed {
        None => LeaseRenewal::Lost,
        Some(None) => LeaseRenewal::Renewed,
        Some(Some(requested_by)) => LeaseRenewal::HandOver { requested_by },
    })
}

pub(crate) async fn release(writer: &SqlitePool, lease: &Lease) -> Result<(), BackendError> {
    let context = || format!("release the lease on projection `{}`", lease.projection);
    sqlx::query(RELEASE)
        .bind(&lease.projection)
        .bind(&lease.owner)
        .bind(to_i64(lease.epoch, context)?)
        .execute(writer)
        .await
        .map_err(|error| classify(context(), error))?;
    Ok(())
}

pub(crate) async fn request(
    writer: &SqlitePool,
    projection: &str,
    requester: &str,
    ttl: Duration,
) -> Result<Option<LeaseHolder>, BackendError> {
    let context = || format!("ask for the lease on projection `{projection}`");
    let now = now();
    let holder: Option<(String, i64, i64, Option<String>)> = sqlx::query_as(REQUEST)
        .bind(projection)
        .bind(requester)
        .bind(now)
        .bind(after(now, ttl))
        .fetch_optional(writer)
        .await
        .map_err(|error| classify(context(), error))?;
    holder
        .map(|(owner, epoch, left, requested_by)| {
            Ok(LeaseHolder::new(
                owner,
                to_u64(epoch, context)?,
                Duration::from_millis(to_u64(left, context)?),
                requested_by,
            ))
        })
        .transpose()
}

pub(crate) async fn take_over(
    writer: &SqlitePool,
    projection: &str,
    owner: &str,
    ttl: Duration,
) -> Result<Lease, BackendError> {
    let context = || format!("take over the lease on projection `{projection}`");
    let epoch: i64 = sqlx::query_scalar(TAKE_OVER)
        .bind(projection)
        .bind(owner)
        .bind(after(now(), ttl))
        .fetch_one(writer)
        .await
        .map_err(|error| classify(context(), error))?;
    Ok(Lease::new(projection, owner, to_u64(epoch, context)?))
}

/// Whether `lease` is still held, read in the batch's write transaction on `connection`.
pub(crate) async fn held(
    connection: &mut SqliteConnection,
    lease: &Lease,
    context: impl Fn() -> String,
) -> Result<bool, BackendError> {
    let found: Option<i64> = sqlx::query_scalar(HELD)
        .bind(&lease.projection)
        .bind(&lease.owner)
        .bind(to_i64(lease.epoch, &context)?)
        .bind(now())
        .fetch_optional(connection)
        .await
        .map_err(|error| classify(context(), error))?;
    Ok(found.is_some())
}

pub(crate) async fn owner(
    readers: &SqlitePool,
    projection: &str,
) -> Result<Option<(String, bool)>, BackendError> {
    sqlx::query_as(OWNER)
        .bind(projection)
        .bind(now())
        .fetch_optional(readers)
        .await
        .map_err(|error| {
            classify(
                format!("read the lease on projection `{projection}`"),
                error,
            )
        })
}
