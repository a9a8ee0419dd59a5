-- Projection leases: one worker runs a projection at a time. Taking a lease from another owner
-- increments `epoch`; a batch commits only while its worker's (owner, epoch) is still the row's
-- and unexpired, checked under a row lock in the batch's own transaction (fencing).
CREATE TABLE projection_leases (
    projection  TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    epoch       BIGINT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
