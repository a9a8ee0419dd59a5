-- The event store, created inside the store's schema (the migrator sets search_path).

CREATE TABLE events (
    -- Global position: taken from a sequence at insert time, so it can become visible out of
    -- order; readers therefore order by (transaction_id, position), see the crate docs.
    position        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  XID8 NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       TEXT NOT NULL,
    stream_version  BIGINT NOT NULL CHECK (stream_version > 0),
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL,
    schema_version  BIGINT NOT NULL,
    payload         JSONB NOT NULL,
    metadata        JSONB NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

-- Reading the global log in commit order (and filtering by type while doing so).
CREATE INDEX events_log_idx ON events (transaction_id, position);

CREATE TABLE snapshots (
    stream_id       TEXT PRIMARY KEY,
    stream_version  BIGINT NOT NULL,
    schema_version  BIGINT NOT NULL,
    state           JSONB NOT NULL,
    taken_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Idempotent commands: written in the same statement as their events.
CREATE TABLE commands (
    command_id      UUID PRIMARY KEY,
    stream_id       TEXT NOT NULL,
    version_before  BIGINT NOT NULL,
    version_after   BIGINT NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Projection checkpoints: committed in the same transaction as the read model.
CREATE TABLE checkpoints (
    projection      TEXT PRIMARY KEY,
    transaction_id  XID8 NOT NULL,
    position        BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
