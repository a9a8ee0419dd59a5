//! [`CheckpointStore`] for [`PostgresStore`]: projection checkpoints, committed in the
//! projection's transaction, and the leases that fence its workers.

use es_core::store::LeaseStore;
use std::time::Duration;

use es_core::{BackendError, CheckpointStore, Lease, LeaseHolder, LeaseRenewal, LogPosition};
use sqlx::Postgres;

use crate::error::{BACKEND, classify, from_i64, log_position, millis, to_i64};
use crate::store::PostgresStore;

/// The unit of work handed to projection handlers: a transaction on the store's pool, in which
/// the runner also writes the checkpoint.
pub type PgTransaction = sqlx::Transaction<'static, Postgres>;

impl CheckpointStore for PostgresStore {
    type Transaction = PgTransaction;

    async fn checkpoint(&self, projection: &str) -> Result<LogPosition, BackendError> {
        let context = || format!("read the checkpoint of projection `{projection}`");
        let row: Option<(i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(self.inner.queries.checkpoint.as_str()))
                .bind(projection)
                .fetch_optional(&self.pool)
                .await
                .map_err(|error| classify(context(), error))?;
        match row {
            None => Ok(LogPosition::START),
            Some((transaction, position)) => log_position(transaction, position, &context),
        }
    }

    async fn begin(&self, projection: &str) -> Result<PgTransaction, BackendError> {
        let context = || format!("begin a batch of projection `{projection}`");
        self.pool
            .begin_with(sqlx::AssertSqlSafe(self.inner.begin_batch.clone()))
            .await
            .map_err(|error| classify(context(), error))
    }

    async fn commit(
        &self,
        mut transaction: PgTransaction,
        projection: &str,
        checkpoint: LogPosition,
    ) -> Result<(), BackendError> {
        let context = || format!("commit a batch of projection `{projection}` at {checkpoint}");
        sqlx::query(sqlx::AssertSqlSafe(
            self.inner.queries.save_checkpoint.as_str(),
        ))
        .bind(projection)
        .bind(checkpoint.transaction.to_string())
        .bind(to_i64(checkpoint.position.get(), &context)?)
        .execute(&mut *transaction)
        .await
        .map_err(|error| classify(context(), error))?;
        transaction
            .commit()
            .await
            .map_err(|error| classify(context(), error))
    }

    async fn commit_fenced(
        &self,
        mut transaction: PgTransaction,
        projection: &str,
        checkpoint: LogPosition,
        lease: &Lease,
    ) -> Result<(), BackendError> {
        let context = || lease.fenced_commit_context(projection, checkpoint);
        let saved: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(
            self.inner.queries.save_checkpoint_fenced.as_str(),
        ))
        .bind(projection)
        .bind(checkpoint.transaction.to_string())
        .bind(to_i64(checkpoint.position.get(), &context)?)
        .bind(&lease.owner)
        .bind(to_i64(lease.epoch, &context)?)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(|error| classify(context(), error))?;
        if saved.is_none() {
            // Dropping the transaction rolls the batch back.
            return Err(lease.lost(BACKEND, projection, checkpoint));
        }
        transaction
            .commit()
            .await
            .map_err(|error| classify(context(), error))
    }

    async fn reset_checkpoint(&self, projection: &str) -> Result<(), BackendError> {
        sqlx::query(sqlx::AssertSqlSafe(
            self.inner.queries.reset_checkpoint.as_str(),
        ))
        .bind(projection)
        .execute(&self.pool)
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

impl LeaseStore for PostgresStore {
    async fn acquire_lease(
        &self,
        projection: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, BackendError> {
        let context = || format!("take the lease on projection `{projection}`");
        let epoch: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(
            self.inner.queries.acquire_lease.as_str(),
        ))
        .bind(projection)
        .bind(owner)
        .bind(millis(ttl))
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| classify(context(), error))?;
        epoch
            .map(|epoch| {
                Ok(Lease::new(
                    projection,
                    owner,
                    from_i64(epoch, &context)?.get(),
                ))
            })
            .transpose()
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<LeaseRenewal, BackendError> {
        let context = || format!("renew the lease on projection `{}`", lease.projection);
        let renewed: Option<Option<String>> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(self.inner.queries.renew_lease.as_str()))
                .bind(&lease.projection)
                .bind(&lease.owner)
                .bind(to_i64(lease.epoch, &context)?)
                .bind(millis(ttl))
                .fetch_optional(&self.pool)
                .await
                .map_err(|error| classify(context(), error))?;
        Ok(match renewed {
            None => LeaseRenewal::Lost,
            Some(None) => LeaseRenewal::Renewed,
            Some(Some(requested_by)) => LeaseRenewal::HandOver { requested_by },
        })
    }

    async fn request_lease(
        &self,
        projection: &str,
        requester: &str,
        ttl: Duration,
    ) -> Result<Option<LeaseHolder>, BackendError> {
        let context = || format!("ask for the lease on projection `{projection}`");
        let holder: Option<(String, i64, i64, Option<String>)> = sqlx::query_as(
            sqlx::AssertSqlSafe(self.inner.queries.request_lease.as_str()),
        )
        .bind(projection)
        .bind(requester)
        .bind(millis(ttl))
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| classify(context(), error))?;
        holder
            .map(|(owner, epoch, left, requested_by)| {
                Ok(LeaseHolder::new(
                    owner,
                    from_i64(epoch, &context)?.get(),
                    Duration::from_millis(from_i64(left, &context)?.get()),
                    requested_by,
                ))
            })
            .transpose()
    }

    async fn take_over_lease(
        &self,
        projection: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Lease, BackendError> {
        let context = || format!("take over the lease on projection `{projection}`");
        let epoch: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(
            self.inner.queries.take_over_lease.as_str(),
        ))
        .bind(projection)
        .bind(owner)
        .bind(millis(ttl))
        .fetch_one(&self.pool)
        .await
        .map_err(|error| classify(context(), error))?;
        Ok(Lease::new(
            projection,
            owner,
            from_i64(epoch, &context)?.get(),
        ))
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), BackendError> {
        let context = || format!("release the lease on projection `{}`", lease.projection);
        sqlx::query(sqlx::AssertSqlSafe(
            self.inner.queries.release_lease.as_str(),
        ))
        .bind(&lease.projection)
        .bind(&lease.owner)
        .bind(to_i64(lease.epoch, &context)?)
        .execute(&self.pool)
        .await
        .map_err(|error| classify(context(), error))?;
        Ok(())
    }

    async fn lease_owner(&self, projection: &str) -> Result<Option<(String, bool)>, BackendError> {
        sqlx::query_as(sqlx::AssertSqlSafe(self.inner.queries.lease_owner.as_str()))
            .bind(projection)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| {
                classify(
                    format!("read the lease on projection `{projection}`"),
                    error,
                )
            })
    }
}
