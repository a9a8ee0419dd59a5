//! The SQL the store runs, as templates over the store's schema (`{schema}` is replaced by the
//! quoted schema name once, when the store is built).

/// Appends a batch in one statement: read the stream's version, check the expectation, insert
/// every event (`UNNEST` of arrays), record the command id, and (when parameter 10 names a
/// channel) notify listeners at commit.
/// Returns the version before and one row per inserted event; no inserted rows with events
/// requested means the expectation did not hold.
///
/// Parameters: 1 stream id, 2 expectation kind (0 any, 1 no stream, 2 exists, 3 exact),
/// 3 exact version, 4..8 event arrays (ids, types, schema versions, payloads, metadata; a NULL
/// metadata array stores `{}` for every event), 9 command id (nullable), 10 notification
/// channel (nullable: no notification), 11 notification payload, 12 and 13 the type and schema
/// version of every event when they share them (then the arrays 5 and 6 are NULL: see `Columns`
/// in the store), 14 the command's fingerprint (nullable), 15 whether the command was refused
/// (recorded with no events).
pub(crate) const APPEND: &str = r#"
WITH current AS (
    SELECT COALESCE(MAX(stream_version), 0) AS version
    FROM {schema}.events WHERE stream_id = $1
), allowed AS (
    SELECT version FROM current
    WHERE CASE $2::int
        WHEN 0 THEN TRUE
        WHEN 1 THEN version = 0
        WHEN 2 THEN version > 0
        ELSE version = $3
    END
), inserted AS (
    INSERT INTO {schema}.events
        (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata)
    SELECT $1, allowed.version + e.ord, e.event_id, COALESCE(e.event_type, $12::text),
           COALESCE(e.schema_version, $13::bigint), e.payload, COALESCE(e.metadata, '{}'::jsonb)
    FROM allowed,
         UNNEST($4::uuid[], $5::text[], $6::bigint[], $7::jsonb[], $8::jsonb[])
             WITH ORDINALITY AS e(event_id, event_type, schema_version, payload, metadata, ord)
    RETURNING position, transaction_id, stream_version
), command AS (
    INSERT INTO {schema}.commands
        (command_id, stream_id, version_before, version_after, fingerprint, refused)
    SELECT $9, $1, allowed.version, allowed.version + cardinality($4::uuid[]), $14, $15
    FROM allowed WHERE $9::uuid IS NOT NULL
    RETURNING command_id
), notified AS (
    SELECT pg_notify($10, $11) WHERE $10::text IS NOT NULL AND EXISTS (SELECT 1 FROM inserted)
)
SELECT (SELECT version FROM current) AS version_before,
       (SELECT COUNT(*) FROM allowed) AS allowed,
       (SELECT COUNT(*) FROM command) AS commands,
       (SELECT COUNT(*) FROM notified) AS notified,
       (SELECT MAX(stream_version) FROM inserted) AS version_after,
       (SELECT transaction_id::text::bigint FROM inserted ORDER BY position DESC LIMIT 1) AS last_transaction,
       (SELECT MAX(position) FROM inserted) AS last_position
"#;

/// The common appends are lean: at an exact version, with no command id and no notification in
/// the caller's transaction. [`APPEND`]'s bookkeeping costs the server time on every statement,
/// and its planning more on a connection's first uses (PostgreSQL plans each of a connection's
/// first five executions anew; M2 in `es-bench/README.md`). Each lean statement is one insert.
///
/// `guarded`: the insert happens only if the stream is at version `$2`, and writes nothing
/// otherwise (the caller then reads the actual version: a conflict is the rare case, and a
/// statement that also returned it cost every append). Unguarded, for a stream that cannot be
/// behind `$2` (a new stream, or a version the caller just read from it: see
/// `AppendRequest::after_read`): a writer that came first fails the insert on the unique
/// key of version `$2 + 1`, so no version is read.
///
/// `announcing`: the announcing form also queues the
/// store's announcement (see `crate::announce`), sent at its commit, once however many events
/// it writes; its last two parameters are the channel and the payload. At most one append per
/// announcement interval takes it. The plain form spares every other append the common table
/// expression and the two parameters (M3 in `es-bench/README.md`). A connection parses each
/// text it runs once in its life and plans it anew only for its first five executions, so more
/// texts cost a running service nothing that lasts.
///
/// `returning`: the statement returns the position and transaction id of the event it wrote
/// (the transaction id as it is: `xid8` is an unsigned 64-bit integer on the wire, read as an
/// `i64`, as [`EVENT_COLUMNS`] does). Not returning, for an append made without a position
/// (`AppendRequest::without_position`, the command path's): the caller counts the rows
/// written. A returned row costs PostgreSQL a tuple store and the client a row to decode (M1 in
/// `es-bench/README.md`).
///
/// One event: parameters 1 stream id, 2 version before, 3 event id, 4 type, 5 schema version,
/// 6 payload, 7 metadata (NULL stores `{}`); announcing, 8 channel and 9 payload.
pub(crate) fn append_one(guarded: bool, announcing: bool, returning: bool) -> String {
    let (with, from) = match announce(announcing, 8) {
        Some(announce) => (format!("WITH {announce}"), "FROM announce"),
        None => (String::new(), ""),
    };
    let returning = if returning {
        "RETURNING position, transaction_id"
    } else {
        ""
    };
    format!(
        "{with} {INSERT_EVENTS} \
         SELECT $1, $2 + 1, $3, $4, $5, $6::jsonb, COALESCE($7::jsonb, '{{}}'::jsonb) \
         {from} {} {returning}",
        version_guard(guarded)
    )
}

/// [`append_one`] for several events. Parameters: 1 stream id, 2 version before, 3..7 event
/// arrays (ids, types, schema versions, payloads, metadata; a NULL metadata array stores `{}`
/// for every event), 8 and 9 the type and schema version of every event when they share them
/// (then the arrays 4 and 5 are NULL: see `Columns` in the store); announcing, 10 channel and
/// 11 payload.
///
/// `returning`: returns one row, the last position written and the transaction id, both NULL
/// when the version check failed (a row per event costs the server and the client more than
/// the aggregate: M4 in `es-bench/README.md`). Not returning: nothing; the caller counts the
/// rows written.
pub(crate) fn append_many(guarded: bool, announcing: bool, returning: bool) -> String {
    let announce = announce(announcing, 10);
    let join = if announce.is_some() {
        "CROSS JOIN announce"
    } else {
        ""
    };
    let insert = format!(
        "{INSERT_EVENTS} \
         SELECT $1, $2 + e.ord, e.event_id, COALESCE(e.event_type, $8::text), \
                COALESCE(e.schema_version, $9::bigint), e.payload, \
                COALESCE(e.metadata, '{{}}'::jsonb) \
         FROM UNNEST($3::uuid[], $4::text[], $5::bigint[], $6::jsonb[], $7::jsonb[]) \
              WITH ORDINALITY AS e(event_id, event_type, schema_version, payload, metadata, ord) \
              {join} \
         {}",
        version_guard(guarded)
    );
    let mut ctes: Vec<String> = announce.into_iter().collect();
    let statement = if returning {
        ctes.push(format!("written AS ({insert} RETURNING position)"));
        "SELECT MAX(position), pg_current_xact_id_if_assigned() FROM written".to_owned()
    } else {
        insert
    };
    if ctes.is_empty() {
        statement
    } else {
        format!("WITH {} {statement}", ctes.join(", "))
    }
}

/// For an announcing statement whose channel and payload are parameters `first` and
/// `first + 1`: the common table expression `announce`, one row, that queues the notification.
/// The insert must read it (an unread `SELECT` in a `WITH` is never run); with a failed version
/// guard the insert reads nothing, so nothing is queued. Not announcing: none.
fn announce(announcing: bool, first: usize) -> Option<String> {
    announcing.then(|| {
        format!(
            "announce AS MATERIALIZED (SELECT pg_notify(${first}, ${}))",
            first + 1
        )
    })
}

const INSERT_EVENTS: &str = "INSERT INTO {schema}.events \
     (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata)";

fn version_guard(guarded: bool) -> &'static str {
    if guarded {
        "WHERE (SELECT COALESCE(MAX(stream_version), 0) FROM {schema}.events \
         WHERE stream_id = $1) = $2"
    } else {
        ""
    }
}

pub(crate) const STREAM_VERSION: &str =
    "SELECT COALESCE(MAX(stream_version), 0) FROM {schema}.events WHERE stream_id = $1";

pub(crate) const FIND_EVENT_ID: &str =
    "SELECT event_id FROM {schema}.events WHERE event_id = ANY($1::uuid[]) LIMIT 1";

/// The columns of an event row, in the order `store::recorded_event` reads them by position;
/// [`read_all`] adds the stream id as a tenth, [`load_stream`] does not need it. The
/// transaction id is sent as it is (`xid8` is an unsigned 64-bit integer on the wire) and read
/// as an `i64`: a cast through text cost the server and the client a conversion per row.
/// Empty metadata (most events carry none) is sent as NULL: converting `{}` to text is a large
/// part of a global read's server time. Schema version 1, most events', is sent as NULL too
/// (see [`fold_stream`]). The payload comes as `jsonb`, as in [`fold_stream`], which reads
/// faster than a cast to `text` (both: M5 in `es-bench/README.md`).
const EVENT_COLUMNS: &str = "position, transaction_id, \
    stream_version, event_id, event_type, NULLIF(schema_version, 1) AS schema_version, \
    payload, NULLIF(metadata, '{}'::jsonb)::text AS metadata, recorded_at";

/// How a stream's reads end: in version order, `LIMIT $3`, which the store binds to NULL (no
/// limit). The limit is there for the plan. A prepared statement runs on a generic plan from
/// its sixth execution on a connection, and a generic plan assumes a parameterised limit keeps
/// a tenth of the rows, so PostgreSQL reads the `(stream_id, stream_version)` index in order
/// and hands over the first row at once. Without it, on a table it has no statistics for (or
/// with few events per stream in them), it chose a bitmap scan and sorted every row first,
/// which is slower for a long stream (M6 in `es-bench/README.md`).
pub(crate) const IN_VERSION_ORDER: &str = "ORDER BY stream_version LIMIT $3";

/// What [`IN_VERSION_ORDER`]'s `$3` is bound to: no limit.
pub(crate) const NO_LIMIT: Option<i64> = None;

/// One stream's events after a version. The stream id is not selected: the caller has it.
pub(crate) fn load_stream() -> String {
    format!(
        "SELECT {EVENT_COLUMNS} FROM {{schema}}.events \
         WHERE stream_id = $1 AND stream_version > $2 {IN_VERSION_ORDER}"
    )
}

/// What folding a stream into its aggregate needs of its events after a version, and no more:
/// every column sent costs the server and the client per row. The payload comes as `jsonb`
/// (its binary form is a version byte and the JSON text), which costs the server less than a
/// cast to `text`.
///
/// Schema version 1, which most events have, comes as NULL: a NULL is four bytes on the wire
/// and nothing to decode, an `int8` twelve and a conversion (M7 in `es-bench/README.md`).
/// Read in index order, see [`IN_VERSION_ORDER`].
pub(crate) fn fold_stream() -> String {
    format!("{FOLD_SELECT} WHERE stream_id = $1 AND stream_version > $2 {IN_VERSION_ORDER}")
}

/// [`fold_stream`] from the stream's start, the command path's load when there is no snapshot:
/// no version condition and one parameter fewer, so the server neither binds nor checks them.
/// It ends in `LIMIT $2`, bound to NULL, for the plan (see [`IN_VERSION_ORDER`]).
pub(crate) fn fold_whole_stream() -> String {
    format!("{FOLD_SELECT} WHERE stream_id = $1 ORDER BY stream_version LIMIT $2")
}

/// The columns both folds read (see [`fold_stream`]).
const FOLD_SELECT: &str = "SELECT stream_version, event_type, NULLIF(schema_version, 1), \
     payload FROM {schema}.events";

/// The gap-free global read: only rows whose transaction is older than every transaction still
/// running (so no row can commit later with a smaller key), in (transaction, position) order.
/// Parameter 4 is the type filter (NULL = every type).
pub(crate) fn read_all() -> String {
    format!(
        "SELECT {EVENT_COLUMNS}, stream_id FROM {{schema}}.events \
         WHERE (transaction_id, position) > ($1::text::xid8, $2) \
           AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
           AND ($4::text[] IS NULL OR event_type = ANY($4)) \
         ORDER BY events.transaction_id, events.position LIMIT $3"
    )
}

/// [`HEAD`] and [`read_all`] in one statement, so in one snapshot: the head comes as a row of
/// its own, with only the position and transaction id set (its `event_id` is NULL, which an
/// event's never is), then the events.
pub(crate) fn read_with_head() -> String {
    format!(
        "(SELECT position, transaction_id, NULL::bigint, NULL::uuid, NULL::text, NULL::bigint, \
           NULL::jsonb, NULL::text, NULL::timestamptz, NULL::text FROM {{schema}}.events \
         WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY events.transaction_id DESC, events.position DESC LIMIT 1) \
         UNION ALL ({})",
        read_all()
    )
}

pub(crate) const COUNT_EVENTS: &str = "SELECT COUNT(*) FROM {schema}.events \
     WHERE (transaction_id, position) > ($1::text::xid8, $2) \
       AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
       AND ($3::text[] IS NULL OR event_type = ANY($3))";

pub(crate) const HEAD: &str = "SELECT transaction_id::text::bigint, position FROM {schema}.events \
     WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY events.transaction_id DESC, events.position DESC LIMIT 1";

pub(crate) const SAVE_SNAPSHOT: &str = "INSERT INTO {schema}.snapshots \
     (stream_id, stream_version, schema_version, state) VALUES ($1, $2, $3, $4::jsonb) \
     ON CONFLICT (stream_id) DO UPDATE SET stream_version = EXCLUDED.stream_version, \
     schema_version = EXCLUDED.schema_version, state = EXCLUDED.state, taken_at = now()";

pub(crate) const LOAD_SNAPSHOT: &str = "SELECT stream_version, schema_version, state::text \
     FROM {schema}.snapshots WHERE stream_id = $1";

pub(crate) const FIND_COMMAND: &str = "SELECT stream_id, version_before, version_after, \
     fingerprint, refused FROM {schema}.commands WHERE command_id = $1";

pub(crate) const CHECKPOINT: &str = "SELECT transaction_id::text::bigint, position \
     FROM {schema}.checkpoints WHERE projection = $1";

pub(crate) const SAVE_CHECKPOINT: &str = "INSERT INTO {schema}.checkpoints \
     (projection, transaction_id, position) VALUES ($1, $2::text::xid8, $3) \
     ON CONFLICT (projection) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, \
     position = EXCLUDED.position, updated_at = now()";

pub(crate) const RESET_CHECKPOINT: &str = "DELETE FROM {schema}.checkpoints WHERE projection = $1";

/// Takes the lease if it is free, expired, or already ours, unless another owner's request for
/// it stands (see [`REQUEST_LEASE`]); taken anew (not a live renewal by its owner) it gets the
/// next epoch, and the requester taking it clears its request. `$3` is the time to live in
/// milliseconds. No row returned: another owner holds it, or is being handed it.
pub(crate) const ACQUIRE_LEASE: &str = "INSERT INTO {schema}.projection_leases AS lease \
     (projection, owner, epoch, expires_at) \
     VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond') \
     ON CONFLICT (projection) DO UPDATE SET owner = EXCLUDED.owner, \
     epoch = lease.epoch + CASE WHEN lease.owner = EXCLUDED.owner \
         AND lease.expires_at > clock_timestamp() THEN 0 ELSE 1 END, \
     expires_at = EXCLUDED.expires_at, \
     requested_by = CASE WHEN lease.requested_by = EXCLUDED.owner THEN NULL \
         ELSE lease.requested_by END, \
     requested_until = CASE WHEN lease.requested_by = EXCLUDED.owner THEN NULL \
         ELSE lease.requested_until END \
     WHERE (lease.owner = EXCLUDED.owner OR lease.expires_at <= clock_timestamp()) \
       AND (lease.requested_by IS NULL OR lease.requested_by = EXCLUDED.owner \
            OR lease.requested_until <= clock_timestamp()) \
     RETURNING epoch";

/// Renews the lease (`$4` milliseconds) unless another owner's request for it stands. No row:
/// the lease was lost; a row with NULL: renewed; a row naming the requester: not renewed, to be
/// handed over.
pub(crate) const RENEW_LEASE: &str = "UPDATE {schema}.projection_leases \
     SET expires_at = CASE WHEN requested_by IS NULL OR requested_by = $2 \
             OR requested_until <= clock_timestamp() \
         THEN clock_timestamp() + $4 * interval '1 millisecond' ELSE expires_at END \
     WHERE projection = $1 AND owner = $2 AND epoch = $3 \
     RETURNING CASE WHEN requested_by IS NULL OR requested_by = $2 \
         OR requested_until <= clock_timestamp() THEN NULL ELSE requested_by END";

/// Asks the holder of an unexpired lease held by another owner to hand it over to `$2`, unless
/// a third owner's request stands; `$3` is how long the request stands, in milliseconds.
/// Returns the holder (owner, epoch, milliseconds left, the standing requester); no row when
/// nobody else holds an unexpired lease.
pub(crate) const REQUEST_LEASE: &str = "UPDATE {schema}.projection_leases SET \
     requested_by = CASE WHEN requested_by IS NULL OR requested_by = $2 \
         OR requested_until <= clock_timestamp() THEN $2 ELSE requested_by END, \
     requested_until = CASE WHEN requested_by IS NULL OR requested_by = $2 \
         OR requested_until <= clock_timestamp() \
         THEN clock_timestamp() + $3 * interval '1 millisecond' ELSE requested_until END \
     WHERE projection = $1 AND owner <> $2 AND expires_at > clock_timestamp() \
     RETURNING owner, epoch, \
       GREATEST(0, EXTRACT(EPOCH FROM expires_at - clock_timestamp()) * 1000)::bigint, \
       requested_by";

/// Takes the lease for `$2` whoever holds it, with the next epoch, and clears any request.
pub(crate) const TAKE_OVER_LEASE: &str = "INSERT INTO {schema}.projection_leases AS lease \
     (projection, owner, epoch, expires_at) \
     VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond') \
     ON CONFLICT (projection) DO UPDATE SET owner = EXCLUDED.owner, epoch = lease.epoch + 1, \
     expires_at = EXCLUDED.expires_at, requested_by = NULL, requested_until = NULL \
     RETURNING epoch";

/// Expires the lease at once but keeps the epoch, so the next owner still bumps it.
pub(crate) const RELEASE_LEASE: &str = "UPDATE {schema}.projection_leases \
     SET expires_at = '-infinity' WHERE projection = $1 AND owner = $2 AND epoch = $3";

/// Saves a batch's checkpoint only if the projection's lease is still ours (`$4` owner, `$5`
/// epoch, unexpired), locking the lease row for the rest of the transaction: a takeover then
/// waits for the batch to commit, and a batch of a lost lease writes nothing. One statement,
/// so one round trip per batch. No row returned: the lease was lost.
pub(crate) const SAVE_CHECKPOINT_FENCED: &str = "WITH fence AS (SELECT 1 FROM {schema}.projection_leases \
     WHERE projection = $1 AND owner = $4 AND epoch = $5 AND expires_at > clock_timestamp() \
     FOR UPDATE) \
     INSERT INTO {schema}.checkpoints (projection, transaction_id, position) \
     SELECT $1, $2::text::xid8, $3 FROM fence \
     ON CONFLICT (projection) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, \
     position = EXCLUDED.position, updated_at = now() RETURNING 1";

pub(crate) const LEASE_OWNER: &str = "SELECT owner, expires_at > clock_timestamp() \
     FROM {schema}.projection_leases WHERE projection = $1";

/// Whether a process other than `$1` listens for the schema's commits (see `crate::announce`).
pub(crate) const OTHERS_LISTEN: &str = "SELECT EXISTS (SELECT 1 FROM {schema}.listeners \
     WHERE instance <> $1 AND expires_at > clock_timestamp())";

/// Registers (or renews) listener `$1` for `$2` milliseconds, and removes expired rows (a
/// crashed process's), so the table stays as small as the number of live listeners.
pub(crate) const REGISTER_LISTENER: &str = "WITH expired AS (DELETE FROM {schema}.listeners \
     WHERE expires_at < clock_timestamp() AND instance <> $1) \
     INSERT INTO {schema}.listeners (instance, expires_at) \
     VALUES ($1, clock_timestamp() + $2 * interval '1 millisecond') \
     ON CONFLICT (instance) DO UPDATE SET expires_at = EXCLUDED.expires_at";

pub(crate) const UNREGISTER_LISTENER: &str = "DELETE FROM {schema}.listeners WHERE instance = $1";

/// Every statement with the schema filled in, rendered once per store.
#[derive(Debug)]
pub(crate) struct Queries {
    pub(crate) append: String,
    /// [`append_one`], by `[guarded][announcing][returning]`.
    pub(crate) append_one: [[[String; 2]; 2]; 2],
    /// [`append_many`], by `[guarded][announcing][returning]`.
    pub(crate) append_many: [[[String; 2]; 2]; 2],
    pub(crate) stream_version: String,
    pub(crate) find_event_id: String,
    pub(crate) load_stream: String,
    pub(crate) fold_stream: String,
    pub(crate) fold_whole_stream: String,
    pub(crate) read_all: String,
    pub(crate) read_with_head: String,
    pub(crate) head: String,
    pub(crate) count_events: String,
    pub(crate) save_snapshot: String,
    pub(crate) load_snapshot: String,
    pub(crate) find_command: String,
    pub(crate) checkpoint: String,
    pub(crate) save_checkpoint: String,
    pub(crate) reset_checkpoint: String,
    pub(crate) acquire_lease: String,
    pub(crate) renew_lease: String,
    pub(crate) request_lease: String,
    pub(crate) take_over_lease: String,
    pub(crate) release_lease: String,
    pub(crate) save_checkpoint_fenced: String,
    pub(crate) lease_owner: String,
    pub(crate) others_listen: String,
    pub(crate) register_listener: String,
    pub(crate) unregister_listener: String,
}

impl Queries {
    /// `quoted_schema` is an already quoted identifier.
    pub(crate) fn new(quoted_schema: &str) -> Self {
        let render = |template: &str| template.replace("{schema}", quoted_schema);
        Self {
            append: render(APPEND),
            append_one: lean_forms(|guarded, announcing, returning| {
                render(&append_one(guarded, announcing, returning))
            }),
            append_many: lean_forms(|guarded, announcing, returning| {
                render(&append_many(guarded, announcing, returning))
            }),
            stream_version: render(STREAM_VERSION),
            find_event_id: render(FIND_EVENT_ID),
            load_stream: render(&load_stream()),
            fold_stream: render(&fold_stream()),
            fold_whole_stream: render(&fold_whole_stream()),
            read_all: render(&read_all()),
            read_with_head: render(&read_with_head()),
            head: render(HEAD),
            count_events: render(COUNT_EVENTS),
            save_snapshot: render(SAVE_SNAPSHOT),
            load_snapshot: render(LOAD_SNAPSHOT),
            find_command: render(FIND_COMMAND),
            checkpoint: render(CHECKPOINT),
            save_checkpoint: render(SAVE_CHECKPOINT),
            reset_checkpoint: render(RESET_CHECKPOINT),
            acquire_lease: render(ACQUIRE_LEASE),
            renew_lease: render(RENEW_LEASE),
            request_lease: render(REQUEST_LEASE),
            take_over_lease: render(TAKE_OVER_LEASE),
            release_lease: render(RELEASE_LEASE),
            save_checkpoint_fenced: render(SAVE_CHECKPOINT_FENCED),
            lease_owner: render(LEASE_OWNER),
            others_listen: render(OTHERS_LISTEN),
            register_listener: render(REGISTER_LISTENER),
            unregister_listener: render(UNREGISTER_LISTENER),
        }
    }
}

/// A lean statement's eight forms, by `[guarded][announcing][returning]`.
fn lean_forms(form: impl Fn(bool, bool, bool) -> String) -> [[[String; 2]; 2]; 2] {
    [false, true].map(|guarded| {
        [false, true]
            .map(|announcing| [false, true].map(|returning| form(guarded, announcing, returning)))
    })
}
