-- Projection leases: one worker (in any process on this file) runs a projection at a time.
-- Taking a lease anew bumps `epoch`; a batch commits only while its worker's (owner, epoch) is
-- the row's and unexpired, checked in the batch's own write transaction (fencing). Times are
-- Unix milliseconds of the machine's clock, which every process on one file shares. A rebuild
-- asks the holder to hand the lease over: `requested_by` until `requested_until`.
CREATE TABLE projection_leases (
    projection      TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    epoch           INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    requested_by    TEXT,
    requested_until INTEGER
) STRICT;
