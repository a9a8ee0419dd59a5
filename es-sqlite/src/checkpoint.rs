//! Projection checkpoints, committed in the same transaction as the read model's writes.

use es_core::{BackendError, CheckpointStore, GlobalPosition, LogPosition};

use crate::error::{classify, to_i64, to_u64};
use crate::store::{BEGIN_IMMEDIATE, SqliteStore, SqliteTransaction};

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
