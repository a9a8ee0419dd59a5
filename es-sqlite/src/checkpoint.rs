//! Projection checkpoints, committed in the same transaction as the read model's writes.

use es_core::store::LeaseStore;
use std::time::Duration;

use es_core::{
    BackendError, CheckpointStore, GlobalPosition, Lease, LeaseHolder, LeaseRenewal, LogPosition,
};

use crate::append::BEGIN_IMMEDIATE;
use crate::error::{BACKEND, classify, to_i64, to_u64};
use crate::lease;
use crate::store::{SqliteStore, SqliteTransaction};

const CHECKPOINT: &str = "SELECT transaction_id, position FROM checkpoints WHERE projection = ?1";

const SAVE_CHECKPOINT: &str = "INSERT INTO checkpoints \
     (projection, transaction_id, position, updated_at) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (projection) DO UPDATE SET transaction_id = excluded.transaction_id, \
     position = excluded.position, updated_at = excluded.updated_at";

const RESET_CHECKPOINT: &str = "DELETE FROM checkpoints WHERE projection = ?1";

/// The unit of work is a write transaction on the writer connection ([`SqliteTransaction`],
/// begun with `BEGIN IMMEDIATE`): handlers write the read model in it with plain `sqlx`
/// (`&mut **tx`), and [`commit`](CheckpointStore::commit) writes the checkpoint in it and
/// commits, so a batch lands whole or not at all. Dropping it rolls everything back.
///
/// While a batch is open it holds the store's only writer connection: appends wait for it, and
/// a handler must not append to the same store from inside its batch (the append would wait
/// for the batch, the batch for the append, until the write timeout).
///
/// Leases live in the file (the `projection_leases` table, see `crate::lease`), so several
/// processes on one file share them: one runs each projection, the others stand by.
impl CheckpointStore for SqliteStore {
    type Transaction = SqliteTransaction;

    async fn checkpoint(&self, projection: &str) -> Result<LogPosition, BackendError> {
        let context = || format!("read the checkpoint of projection `{projection}`");
        let row: Option<(i64, i64)> = sqlx::query_as(CHECKPOINT)
            .bind(projection)
            .fetch_optional(self.readers())
            .await
            .map_err(|error| classify(context(), error))?;
        match row {
            None => Ok(LogPosition::START),
            Some((transaction, position)) => Ok(LogPosition::new(
                to_u64(transaction, context)?,
                GlobalPosition(to_u64(position, context)?),
            )),
        }
    }

    async fn begin(&self, projection: &str) -> Result<SqliteTransaction, BackendError> {
        self.writer()
            .begin_with(BEGIN_IMMEDIATE)
            .await
            .map_err(|error| classify(format!("begin a batch of projection `{projection}`"), error))
    }

    async fn commit_fenced(
        &self,
        mut transaction: SqliteTransaction,
        projection: &str,
        checkpoint: LogPosition,
        lease: &Lease,
    ) -> Result<(), BackendError> {
        let context = || lease.fenced_commit_context(projection, checkpoint);
        // Inside the batch's write transaction: no takeover can come between this and the
        // commit. Dropping the transaction rolls the batch back.
        if !lease::held(&mut transaction, lease, context).await? {
            return Err(lease.lost(BACKEND, projection, checkpoint));
        }
        self.commit(transaction, projection, checkpoint).await
    }

    async fn commit(
        &self,
        mut transaction: SqliteTransaction,
        projection: &str,
        checkpoint: LogPosition,
    ) -> Result<(), BackendError> {
        let context = || format!("commit a batch of projection `{projection}` at {checkpoint}");
        sqlx::query(SAVE_CHECKPOINT)
            .bind(projection)
            .bind(to_i64(checkpoint.transaction, context)?)
            .bind(to_i64(checkpoint.position.get(), context)?)
            .bind(time::OffsetDateTime::now_utc())
            .execute(&mut *transaction)
            .await
            .map_err(|error| classify(context(), error))?;
        transaction
            .commit()
            .await
            .map_err(|error| classify(context(), error))
    }

    async fn reset_checkpoint(&self, projection: &str) -> Result<(), BackendError> {
        sqlx::query(RESET_CHECKPOINT)
            .bind(projection)
            .execute(self.writer())
            .await
            .map_err(|error| {
                classify(
                    format!("reset the checkpoint of projection `{projection}`"),
                    error,
                )
            })?;
        Ok(())
    }
}

impl LeaseStore for SqliteStore {
    async fn acquire_lease(
        &self,
        projection: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, BackendError> {
        lease::acquire(self.writer(), projection, owner, ttl).await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<LeaseRenewal, BackendError> {
        lease::renew(self.writer(), lease, ttl).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), BackendError> {
        lease::release(self.writer(), lease).await
    }

    async fn request_lease(
        &self,
        projection: &str,
        requester: &str,
        ttl: Duration,
    ) -> Result<Option<LeaseHolder>, BackendError> {
        lease::request(self.writer(), projection, requester, ttl).await
    }

    async fn take_over_lease(
        &self,
        projection: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Lease, BackendError> {
        lease::take_over(self.writer(), projection, owner, ttl).await
    }

    async fn lease_owner(&self, projection: &str) -> Result<Option<(String, bool)>, BackendError> {
        lease::owner(self.readers(), projection).await
    }
}
