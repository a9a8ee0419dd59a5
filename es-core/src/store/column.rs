//! Numbers in signed 64-bit SQL columns, for stores built on SQL databases (PostgreSQL's and
//! SQLite's `BIGINT`/`INTEGER` are signed): versions, positions and counts are `u64` in the
//! API, so a store converts each way and says which value and what it was doing when one does
//! not fit.
//!
//! ```
//! use es_core::store::column;
//!
//! assert_eq!(column::to_i64("mydb", 7, || "append".into()).unwrap(), 7);
//! let too_big = column::to_i64("mydb", u64::MAX, || "append to `order-1`".into()).unwrap_err();
//! assert_eq!(too_big.kind(), es_core::BackendErrorKind::InvalidInput);
//! let stored = column::to_u64("mydb", -1, || "read `order-1`".into()).unwrap_err();
//! assert_eq!(stored.kind(), es_core::BackendErrorKind::Corrupt);
//! ```

use uuid::Uuid;

use crate::fingerprint::CommandFingerprint;
use crate::store::command_record::{CommandOutcome, CommandRecord};
use crate::store::error::{BackendError, BackendErrorKind};
use crate::stream::{StreamId, StreamVersion};

/// `value` as a column value; over `i64::MAX` is [`BackendErrorKind::InvalidInput`] of
/// `backend`, with `context` saying what was being done.
///
/// # Errors
/// When `value` does not fit.
pub fn to_i64(
    backend: &'static str,
    value: u64,
    context: impl FnOnce() -> String,
) -> Result<i64, BackendError> {
    i64::try_from(value).map_err(|_| {
        BackendError::new(
            backend,
            BackendErrorKind::InvalidInput,
            format!("{}: {value} does not fit a signed 64-bit column", context()),
        )
    })
}

/// A stored column value as an unsigned number; a negative one breaks the store's invariants
/// ([`BackendErrorKind::Corrupt`]).
///
/// # Errors
/// When `value` is negative.
pub fn to_u64(
    backend: &'static str,
    value: i64,
    context: impl FnOnce() -> String,
) -> Result<u64, BackendError> {
    u64::try_from(value).map_err(|_| {
        BackendError::new(
            backend,
            BackendErrorKind::Corrupt,
            format!("{}: negative number {value} stored", context()),
        )
    })
}

/// A stored stream version.
///
/// # Errors
/// As [`to_u64`].
pub fn to_version(
    backend: &'static str,
    value: i64,
    context: impl FnOnce() -> String,
) -> Result<StreamVersion, BackendError> {
    to_u64(backend, value, context).map(StreamVersion)
}

/// A command record as SQL stores keep it, one row: the stream id, the versions before and
/// after, the fingerprint's bytes (none for a record written before fingerprints) and whether
/// the command was refused.
pub type CommandRow = (String, i64, i64, Option<Vec<u8>>, bool);

/// The [`CommandRecord`] of command `command_id` from its stored [`CommandRow`]; a column that
/// breaks the record's invariants is [`BackendErrorKind::Corrupt`] of `backend`.
///
/// # Errors
/// When the stream id, a version or the fingerprint is not one the store could have written.
pub fn command_record(
    backend: &'static str,
    command_id: Uuid,
    (stream_id, before, after, fingerprint, refused): CommandRow,
    context: impl Fn() -> String,
) -> Result<CommandRecord, BackendError> {
    let corrupt = || BackendError::new(backend, BackendErrorKind::Corrupt, context());
    let stream_id = StreamId::new(stream_id).map_err(|error| corrupt().with_source(error))?;
    let fingerprint = fingerprint
        .map(|bytes| {
            CommandFingerprint::try_from(bytes.as_slice())
                .map_err(|error| corrupt().with_source(error))
        })
        .transpose()?;
    Ok(CommandRecord::new(
        command_id,
        stream_id,
        to_version(backend, before, &context)?,
        to_version(backend, after, &context)?,
    )
    .with_fingerprint(fingerprint)
    .with_outcome(CommandOutcome::from_refused(refused)))
}
