//! SQLite failures as [`BackendError`]s: classified by SQLite result code and `sqlx` error
//! variant, never by message text.

use std::borrow::Cow;

use es_core::store::column;
use es_core::{BackendError, BackendErrorKind, GlobalPosition, LogPosition, StreamVersion};

/// The name the store gives itself in [`BackendError`]s.
pub(crate) const BACKEND: &str = "sqlite";

// Primary SQLite result codes (the low byte of an extended code); see
// <https://www.sqlite.org/rescode.html>.
const SQLITE_PERM: i64 = 3;
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_NOMEM: i64 = 7;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_PROTOCOL: i64 = 15;
const SQLITE_TOOBIG: i64 = 18;
const SQLITE_MISMATCH: i64 = 20;
const SQLITE_RANGE: i64 = 25;
const SQLITE_NOTADB: i64 = 26;

/// What kind of failure a `sqlx` error from SQLite is, as the store classifies its own (for
/// queries of your own on the store's pools, so that they map to the same kinds).
///
/// Busy or locked databases, I/O errors, a full disk, a file that cannot be opened and a pool
/// that timed out are [`Unavailable`](BackendErrorKind::Unavailable) (retrying may succeed); a
/// damaged file or an undecodable column is [`Corrupt`](BackendErrorKind::Corrupt); a value
/// SQLite refuses (too big, wrong type) is [`InvalidInput`](BackendErrorKind::InvalidInput).
#[must_use]
pub fn error_kind(error: &sqlx::Error) -> BackendErrorKind {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => BackendErrorKind::Unavailable,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => BackendErrorKind::Corrupt,
        sqlx::Error::Database(db) => {
            let code = db
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .unwrap_or(0);
            match code & 0xff {
                SQLITE_BUSY | SQLITE_LOCKED | SQLITE_NOMEM | SQLITE_READONLY | SQLITE_IOERR
                | SQLITE_FULL | SQLITE_CANTOPEN | SQLITE_PROTOCOL | SQLITE_PERM => {
                    BackendErrorKind::Unavailable
                }
                SQLITE_CORRUPT | SQLITE_NOTADB => BackendErrorKind::Corrupt,
                SQLITE_TOOBIG | SQLITE_MISMATCH | SQLITE_RANGE => BackendErrorKind::InvalidInput,
                _ => BackendErrorKind::Other,
            }
        }
        _ => BackendErrorKind::Other,
    }
}

/// `error` as a [`BackendError`] that says what was being done (`context`).
pub(crate) fn classify(context: impl Into<Cow<'static, str>>, error: sqlx::Error) -> BackendError {
    BackendError::new(BACKEND, error_kind(&error), context).with_source(error)
}

/// Stored data that breaks the store's own invariants.
pub(crate) fn corrupt(
    context: impl Into<Cow<'static, str>>,
    error: impl std::error::Error + Send + Sync + 'static,
) -> BackendError {
    BackendError::new(BACKEND, BackendErrorKind::Corrupt, context).with_source(error)
}

/// A number from the API as a signed 64-bit column value ([`column::to_i64`]).
pub(crate) fn to_i64(value: u64, context: impl FnOnce() -> String) -> Result<i64, BackendError> {
    column::to_i64(BACKEND, value, context)
}

/// A stored signed 64-bit number as an unsigned one ([`column::to_u64`]).
pub(crate) fn to_u64(value: i64, context: impl FnOnce() -> String) -> Result<u64, BackendError> {
    column::to_u64(BACKEND, value, context)
}

/// A stored stream version ([`column::to_version`]).
pub(crate) fn version(
    value: i64,
    context: impl FnOnce() -> String,
) -> Result<StreamVersion, BackendError> {
    column::to_version(BACKEND, value, context)
}

/// The log position of the event stored at `position`: writes are serialised, so the commit
/// order key is the position itself.
pub(crate) fn log_position(
    position: i64,
    context: impl FnOnce() -> String,
) -> Result<LogPosition, BackendError> {
    let position = to_u64(position, context)?;
    Ok(LogPosition::new(position, GlobalPosition(position)))
}
