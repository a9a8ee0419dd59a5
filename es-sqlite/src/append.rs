//! Appends: the checks and the inserts of one append, in one transaction (or a savepoint of the
//! caller's).

use std::borrow::Cow;
use std::collections::HashSet;

use es_core::{
    AppendError, AppendRequest, BackendError, BackendErrorKind, Committed, EventId, NewEvent,
};
use sqlx::error::ErrorKind;
use sqlx::{Connection as _, SqliteConnection};
use time::OffsetDateTime;

use crate::error::{BACKEND, classify, log_position, to_i64};
use crate::read;

/// How every write transaction of the store begins: it takes SQLite's write lock at once, so a
/// transaction that has read never has to upgrade to a write lock later (in WAL mode that
/// upgrade fails at once with `SQLITE_BUSY_SNAPSHOT` when another connection wrote meanwhile,
/// whatever the busy timeout).
pub(crate) const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";

/// Events per `INSERT` statement: 6 bound values each plus 2 shared ones stay far below
/// SQLite's limit of 32 766 parameters, and one statement covers any usual append.
const ROWS_PER_INSERT: usize = 500;

/// The start of the multi-row insert; [`insert_sql`] adds one `VALUES` tuple per event.
/// `?1` is the stream id and `?2` the time of the append, shared by every row.
const INSERT_EVENTS: &str = "INSERT INTO events (stream_id, recorded_at, stream_version, \
     event_id, event_type, schema_version, payload, metadata) VALUES ";

/// The insert for `rows` events: only numbered placeholders, never a value.
fn insert_sql(rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(INSERT_EVENTS.len() + rows * 40);
    sql.push_str(INSERT_EVENTS);
    for row in 0..rows {
        let first = 3 + row * 6;
        if row > 0 {
            sql.push(',');
        }
        // Writing to a String cannot fail.
        let _ = write!(
            sql,
            "(?1, ?2, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
            first,
            first + 1,
            first + 2,
            first + 3,
            first + 4,
            first + 5
        );
    }
    sql
}

const RECORD_COMMAND: &str = "INSERT INTO commands \
     (command_id, stream_id, version_before, version_after, recorded_at, fingerprint, refused) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

const EVENT_ID_EXISTS: &str = "SELECT 1 FROM events WHERE event_id = ?1";

/// Why the writes of an append did not happen.
enum Refused {
    /// Final: nothing to find out.
    Error(AppendError),
    /// An insert broke a unique constraint: which event id is to blame is found out after the
    /// rollback, so that the events inserted by this append do not count.
    Unique(sqlx::Error),
}

impl From<BackendError> for Refused {
    fn from(error: BackendError) -> Self {
        Self::Error(error.into())
    }
}

/// Appends `request` on `connection`: in a savepoint when the connection is already in a
/// transaction, else in a transaction of its own begun with `BEGIN IMMEDIATE` and committed
/// here. Either all of it is written or none.
pub(crate) async fn append_on(
    connection: &mut SqliteConnection,
    request: &AppendRequest,
) -> Result<Committed, AppendError> {
    let context = || format!("append to stream `{}`", request.stream_id);
    let begun = if connection.is_in_transaction() {
        connection.begin().await
    } else {
        connection.begin_with(BEGIN_IMMEDIATE).await
    };
    let mut transaction = begun.map_err(|error| classify(context(), error))?;
    match write(&mut transaction, request).await {
        Ok(committed) => {
            transaction
                .commit()
                .await
                .map_err(|error| classify(context(), error))?;
            Ok(committed)
        }
        Err(refused) => {
            transaction
                .rollback()
                .await
                .map_err(|error| classify(context(), error))?;
            match refused {
                Refused::Error(error) => Err(error),
                Refused::Unique(error) => Err(explain_unique(connection, request, error).await),
            }
        }
    }
}

/// `event`'s metadata as the JSON text stored for it. Most events carry none: `{}`, with
/// nothing serialised.
fn metadata_text(
    event: &NewEvent,
    context: &impl Fn() -> String,
) -> Result<Cow<'static, str>, BackendError> {
    if event.metadata.is_empty() {
        return Ok(Cow::Borrowed("{}"));
    }
    serde_json::to_string(&event.metadata)
        .map(Cow::Owned)
        .map_err(|error| {
            BackendError::new(
                BACKEND,
                BackendErrorKind::InvalidInput,
                format!("{}: encode the metadata of event {}", context(), event.id),
            )
            .with_source(error)
        })
}

/// The checks, in the order the contract fixes (command id, expected version, event ids), and
/// the inserts.
async fn write(
    connection: &mut SqliteConnection,
    request: &AppendRequest,
) -> Result<Committed, Refused> {
    let context = || format!("append to stream `{}`", request.stream_id);
    if let Some(command_id) = request.command_id
        && let Some(record) = read::find_command(connection, command_id).await?
    {
        return Err(Refused::Error(AppendError::DuplicateCommand(record)));
    }
    // The write lock is held (BEGIN IMMEDIATE, or the caller's transaction): nobody can
    // append to the stream between this read and the inserts.
    let actual = read::stream_version(connection, &request.stream_id).await?;
    if !request.expected.is_satisfied_by(actual) {
        return Err(Refused::Error(AppendError::Conflict {
            stream_id: request.stream_id.clone(),
            expected: request.expected,
            actual,
        }));
    }
    let count = request.events.len() as u64;
    let version_after = actual.advanced_by(count);
    to_i64(version_after.get(), context)?;

    let mut last_position = None;
    if !request.events.is_empty() {
        let recorded_at = OffsetDateTime::now_utc();
        let mut next_version = actual;
        for chunk in request.events.chunks(ROWS_PER_INSERT) {
            let sql = insert_sql(chunk.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(request.stream_id.as_str())
                .bind(recorded_at);
            for event in chunk {
                next_version = next_version.next();
                let metadata = metadata_text(event, &context)?;
                query = query
                    .bind(to_i64(next_version.get(), context)?)
                    .bind(event.id.0)
                    .bind(event.event_type.as_ref())
                    .bind(i64::from(event.schema_version))
                    .bind(event.payload.get())
                    .bind(metadata);
            }
            let done = query.execute(&mut *connection).await.map_err(|error| {
                let unique = error
                    .as_database_error()
                    .is_some_and(|db| db.kind() == ErrorKind::UniqueViolation);
                if unique {
                    Refused::Unique(error)
                } else {
                    Refused::from(classify(context(), error))
                }
            })?;
            // One statement inserts its rows in order with consecutive positions, so the last
            // row id is the position of the chunk's last event.
            last_position = Some(log_position(done.last_insert_rowid(), context)?);
        }
    }

    if let Some(command_id) = request.command_id {
        sqlx::query(RECORD_COMMAND)
            .bind(command_id)
            .bind(request.stream_id.as_str())
            .bind(to_i64(actual.get(), context)?)
            .bind(to_i64(version_after.get(), context)?)
            .bind(OffsetDateTime::now_utc())
            .bind(
                request
                    .command_fingerprint
                    .map(|print| print.as_bytes().to_vec()),
            )
            .bind(request.command_outcome.is_refused())
            .execute(&mut *connection)
            .await
            .map_err(|error| classify(context(), error))?;
    }
    Ok(Committed::new(actual, version_after, last_position))
}

/// Names the event id that broke a unique constraint, after the append was rolled back: the
/// first event (in request order) whose id is stored already or repeats an earlier one of the
/// batch, as the in-memory store reports it.
async fn explain_unique(
    connection: &mut SqliteConnection,
    request: &AppendRequest,
    error: sqlx::Error,
) -> AppendError {
    let context = || format!("append to stream `{}`", request.stream_id);
    let mut seen: HashSet<EventId> = HashSet::with_capacity(request.events.len());
    for event in &request.events {
        let repeated = !seen.insert(event.id);
        let stored = if repeated {
            false
        } else {
            match sqlx::query_scalar::<_, i64>(EVENT_ID_EXISTS)
                .bind(event.id.0)
                .fetch_optional(&mut *connection)
                .await
            {
                Ok(found) => found.is_some(),
                Err(lookup) => return classify(context(), lookup).into(),
            }
        };
        if repeated || stored {
            return AppendError::DuplicateEventId {
                stream_id: request.stream_id.clone(),
                event_id: event.id,
            };
        }
    }
    // No event id is to blame: the command or the stream's versions were taken, which the
    // write lock rules out; should it happen anyway, report what is there now, never success.
    if let Some(command_id) = request.command_id {
        match read::find_command(connection, command_id).await {
            Ok(Some(record)) => return AppendError::DuplicateCommand(record),
            Ok(None) => {}
            Err(lookup) => return lookup.into(),
        }
    }
    match read::stream_version(connection, &request.stream_id).await {
        Ok(actual) => {
            tracing::warn!(%error, stream_id = %request.stream_id, "unique violation on a stream version under the write lock");
            AppendError::Conflict {
                stream_id: request.stream_id.clone(),
                expected: request.expected,
                actual,
            }
        }
        Err(lookup) => lookup.into(),
    }
}
