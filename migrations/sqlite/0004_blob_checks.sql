-- The latest integrity check of each blob (v1.integrity.checked / v1.integrity.failed), so fsck
-- can find blobs whose latest check failed without scanning the log.
ALTER TABLE blobs ADD COLUMN last_check_seq INTEGER;
ALTER TABLE blobs ADD COLUMN last_check_ok INTEGER;
