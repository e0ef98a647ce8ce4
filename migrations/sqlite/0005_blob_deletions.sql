-- Garbage collection's intent (v1.blob.deletion_started): the seq of the event that committed
-- to deleting a blob's bytes, until its v1.blob.deleted removes the row. A GC killed after
-- deleting bytes and before recording it leaves marked rows; opening the store finishes them.
-- The partial index keeps "is any deletion pending?" a constant-time question.
ALTER TABLE blobs ADD COLUMN deleting_seq INTEGER;
CREATE INDEX blobs_deleting ON blobs (deleting_seq) WHERE deleting_seq IS NOT NULL;
