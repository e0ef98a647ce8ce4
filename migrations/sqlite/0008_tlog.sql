-- The verifiable log (issue 12, ADR 0011): an RFC 6962 Merkle tree over `events` and the
-- signed checkpoints of it.
--
-- `tlog_nodes` holds the hash of every complete subtree: level L, index I covers the leaves
-- (events seq - 1) [I * 2^L, (I + 1) * 2^L). It is written in the same transaction as each
-- event (the leaf and each subtree the event completes), is a pure function of the log, and
-- `artifactstore admin rebuild-tree` recreates it. Opening the store fills it in for events
-- appended before this migration.
CREATE TABLE tlog_nodes (
    level INTEGER NOT NULL CHECK (level >= 0 AND level < 64),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    hash  BLOB    NOT NULL,   -- 32 bytes of SHA-256
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

-- Signed checkpoints (C2SP tlog-checkpoint notes), one per tree size, append-only like
-- events. Checkpoints are not events: making one changes no event. The UNIQUE tree size means
-- replicas never keep two different notes (or roots) for one size.
CREATE TABLE tlog_checkpoints (
    tree_size  INTEGER PRIMARY KEY NOT NULL CHECK (tree_size >= 0),
    root_hash  BLOB    NOT NULL,   -- 32 bytes
    note       TEXT    NOT NULL,   -- the signed note, verbatim
    created_at INTEGER NOT NULL    -- unix milliseconds
);
CREATE TRIGGER tlog_checkpoints_refuse_update BEFORE UPDATE ON tlog_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only: UPDATE refused');
END;
CREATE TRIGGER tlog_checkpoints_refuse_delete BEFORE DELETE ON tlog_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only: DELETE refused');
END;
CREATE TRIGGER tlog_checkpoints_refuse_replace BEFORE INSERT ON tlog_checkpoints
WHEN EXISTS (SELECT 1 FROM tlog_checkpoints WHERE tree_size = NEW.tree_size)
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only: REPLACE refused');
END;
