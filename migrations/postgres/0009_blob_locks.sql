-- Storage-enforced retention (issue 13, ADR 0015): what the blob backend's Object Lock holds on
-- each blob's stored version, as v1.blob.lock_extended and v1.blob.legal_hold_set recorded it.
-- A view like the rest of `blobs`: a pure function of the log, rebuilt by replay.
ALTER TABLE blobs ADD COLUMN lock_version TEXT;
ALTER TABLE blobs ADD COLUMN lock_mode TEXT;
ALTER TABLE blobs ADD COLUMN lock_until BIGINT;         -- unix milliseconds
ALTER TABLE blobs ADD COLUMN legal_hold BIGINT NOT NULL DEFAULT 0;
