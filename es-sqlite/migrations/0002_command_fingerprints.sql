-- An idempotent command's record says what the command was and whether it took effect, so that
-- a command id answers only the command it was made for: `fingerprint` is the SHA-256 digest
-- es-core takes of the command (NULL for commands recorded without one, and for every record
-- written before this migration), `refused` marks a command the aggregate refused (recorded
-- with no events, so that the same command sent again is refused again).
ALTER TABLE commands ADD COLUMN fingerprint BLOB CHECK (length(fingerprint) = 32);
ALTER TABLE commands ADD COLUMN refused INTEGER NOT NULL DEFAULT 0 CHECK (refused IN (0, 1));
