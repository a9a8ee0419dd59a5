-- A rebuild asks the worker holding a projection's lease to hand it over: `requested_by` names
-- the asking worker until `requested_until`. While the request stands, the holder's renewals
-- are refused (it releases the lease) and nobody but the requester can take the lease.
ALTER TABLE projection_leases
    ADD COLUMN requested_by TEXT,
    ADD COLUMN requested_until TIMESTAMPTZ;
