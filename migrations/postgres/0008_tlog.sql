-- The verifiable log (issue 12, ADR 0011): an RFC 6962 Merkle tree over `events` and the
-- signed checkpoints of it. Same tables as migrations/sqlite/0008_tlog.sql.
--
-- `tlog_nodes` holds the hash of every complete subtree: level L, index I covers the leaves
-- (events seq - 1) [I * 2^L, (I + 1) * 2^L). It is written in the same transaction as each
-- event, is a pure function of the log, and `artifactstore admin rebuild-tree` recreates it.
-- Opening the store fills it in for events appended before this migration.
CREATE TABLE tlog_nodes (
    level BIGINT NOT NULL CHECK (level >= 0 AND level < 64),
    idx   BIGINT NOT NULL CHECK (idx >= 0),
    hash  BYTEA  NOT NULL,   -- 32 bytes of SHA-256
    PRIMARY KEY (level, idx)
);

-- Signed checkpoints (C2SP tlog-checkpoint notes), one per tree size, append-only like
-- events. Checkpoints are not events: making one changes no event. The primary key on the
-- tree size means replicas never keep two different notes (or roots) for one size.
CREATE TABLE tlog_checkpoints (
    tree_size  BIGINT PRIMARY KEY NOT NULL CHECK (tree_size >= 0),
    root_hash  BYTEA  NOT NULL,   -- 32 bytes
    note       TEXT   NOT NULL,   -- the signed note, verbatim
    created_at BIGINT NOT NULL    -- unix milliseconds
);
CREATE FUNCTION tlog_checkpoints_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'checkpoints are append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER tlog_checkpoints_refuse_update BEFORE UPDATE ON tlog_checkpoints
    FOR EACH ROW EXECUTE FUNCTION tlog_checkpoints_refuse_change();
CREATE TRIGGER tlog_checkpoints_refuse_delete BEFORE DELETE ON tlog_checkpoints
    FOR EACH ROW EXECUTE FUNCTION tlog_checkpoints_refuse_change();
CREATE TRIGGER tlog_checkpoints_refuse_truncate BEFORE TRUNCATE ON tlog_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION tlog_checkpoints_refuse_change();
