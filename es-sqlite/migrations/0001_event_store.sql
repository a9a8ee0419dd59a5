-- The event store in one SQLite file. STRICT tables: SQLite checks every column's type.

CREATE TABLE events (
    -- The global position. Writes are serialised (one writer connection, BEGIN IMMEDIATE), so
    -- positions are taken and committed in the same order: a reader following them never passes
    -- an event that becomes visible later. AUTOINCREMENT never hands a position out twice.
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id       TEXT NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    event_id        BLOB NOT NULL UNIQUE CHECK (length(event_id) = 16),
    event_type      TEXT NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    recorded_at     TEXT NOT NULL,
    UNIQUE (stream_id, stream_version)
) STRICT;

-- No index on event_type: a filtered read of the log scans the primary key from the
-- checkpoint and stops at its limit (linear over a catch-up). An (event_type, position) index
-- could not return several types in position order without sorting every matching event after
-- the checkpoint, once per batch.

CREATE TABLE snapshots (
    stream_id       TEXT PRIMARY KEY,
    stream_version  INTEGER NOT NULL,
    schema_version  INTEGER NOT NULL,
    state           TEXT NOT NULL,
    taken_at        TEXT NOT NULL
) STRICT;

-- Idempotent commands: written in the same transaction as their events.
CREATE TABLE commands (
    command_id      BLOB PRIMARY KEY CHECK (length(command_id) = 16),
    stream_id       TEXT NOT NULL,
    version_before  INTEGER NOT NULL,
    version_after   INTEGER NOT NULL,
    recorded_at     TEXT NOT NULL
) STRICT;

-- Projection checkpoints: committed in the same transaction as the read model.
CREATE TABLE checkpoints (
    projection      TEXT PRIMARY KEY,
    transaction_id  INTEGER NOT NULL,
    position        INTEGER NOT NULL,
    updated_at      TEXT NOT NULL
) STRICT;
