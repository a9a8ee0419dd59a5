//! Failures as [`BackendError`]s (classified by SQLSTATE class and sqlx error variant, never
//! by message text), and the conversions of stored numbers.

use std::time::Duration;

use es_core::store::column;
use es_core::{BackendError, BackendErrorKind, GlobalPosition, LogPosition, StreamVersion};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

pub(crate) const BACKEND: &str = "postgres";

pub(crate) fn to_i64(value: u64, context: &impl Fn() -> String) -> Result<i64, BackendError> {
    column::to_i64(BACKEND, value, context)
}

pub(crate) fn from_i64(
    value: i64,
    context: &impl Fn() -> String,
) -> Result<StreamVersion, BackendError> {
    column::to_version(BACKEND, value, context)
}

/// The log position of a stored (transaction id, position) pair.
pub(crate) fn log_position(
    transaction: i64,
    position: i64,
    context: &impl Fn() -> String,
) -> Result<LogPosition, BackendError> {
    Ok(LogPosition::new(
        from_i64(transaction, context)?.get(),
        GlobalPosition(from_i64(position, context)?.get()),
    ))
}

/// The schema version in column `index` of an event row, which the reads send as NULL when it
/// is 1 (see `sql::fold_stream`).
pub(crate) fn schema_version_at(
    row: &PgRow,
    index: usize,
    context: &impl Fn() -> String,
) -> Result<u32, BackendError> {
    let sent: Option<i64> = row
        .try_get_unchecked(index)
        .map_err(|error| corrupt(context(), error))?;
    sent.map_or(Ok(1), |version| {
        u32::try_from(version).map_err(|error| corrupt(context(), error))
    })
}

pub(crate) fn corrupt(
    context: String,
    error: impl std::error::Error + Send + Sync + 'static,
) -> BackendError {
    BackendError::new(BACKEND, BackendErrorKind::Corrupt, context).with_source(error)
}

/// `error` as a [`BackendError`] that says what was being done (`context`), classified by
/// [`error_kind`], with `error` as its source.
pub(crate) fn classify(
    context: impl Into<std::borrow::Cow<'static, str>>,
    error: sqlx::Error,
) -> BackendError {
    BackendError::new(BACKEND, error_kind(&error), context).with_source(error)
}

/// A lease's time to live in whole milliseconds, for `interval` arithmetic in SQL.
pub(crate) fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// What kind of failure a `sqlx` error from PostgreSQL is, as the store classifies its own: by
/// SQLSTATE class and sqlx error variant, never by message text. For queries of your own on
/// the store's pool (a read model's), so that they map to the same kinds (a connection cut or
/// the server shutting down is [`BackendErrorKind::Unavailable`]).
#[must_use]
pub fn error_kind(error: &sqlx::Error) -> BackendErrorKind {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => BackendErrorKind::Unavailable,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // connection exceptions, operator intervention (shutdown, terminated backend)
            Some(code) if code.starts_with("08") || code.starts_with("57") => {
                BackendErrorKind::Unavailable
            }
            // data exceptions (NUL in text or jsonb, bad encoding), program limits
            Some(code) if code.starts_with("22") || code.starts_with("54") => {
                BackendErrorKind::InvalidInput
            }
            _ => BackendErrorKind::Other,
        },
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => BackendErrorKind::Corrupt,
        _ => BackendErrorKind::Other,
    }
}
