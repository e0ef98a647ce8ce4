-- Garbage collection, scrub and fsck walk these in order with a cursor (`eligible_seq > $n`,
-- `stored_seq > $n`); without the indexes every batch was a full scan plus a sort, which made
-- a GC of N packages or blobs quadratic in N.
CREATE INDEX retention_by_eligible_seq ON retention_state (eligible_seq);
CREATE INDEX blobs_by_stored_seq ON blobs (stored_seq);
