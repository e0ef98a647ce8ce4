-- artifactstore catalog, PostgreSQL dialect, version 1. Same tables, columns and indexes as
-- migrations/sqlite/0001_init.sql: every integer column is BIGINT (sqlx's Any driver decodes
-- it as i64, like SQLite's INTEGER), `body` is BYTEA, everything else TEXT.
-- `events` is the source of truth; every other table is a view that
-- `artifactstore admin rebuild-views` recreates by replaying the log.
-- Never edit an applied migration: add a new one.

CREATE TABLE events (
    seq        BIGINT PRIMARY KEY NOT NULL CHECK (seq >= 1),
    type       TEXT   NOT NULL,
    package_id TEXT,
    actor      TEXT   NOT NULL,
    at         TEXT   NOT NULL,
    body       BYTEA  NOT NULL,  -- canonical CBOR of the whole envelope
    hash       TEXT   NOT NULL   -- blake3:<hex> of body; the next event's prev
);
CREATE INDEX events_by_package ON events (package_id, seq) WHERE package_id IS NOT NULL;
CREATE INDEX events_by_type ON events (type, seq);

-- The database itself refuses to change history. Row triggers cover UPDATE and DELETE (and
-- the UPDATE of an `INSERT … ON CONFLICT DO UPDATE`, and MERGE's UPDATE/DELETE actions); row
-- triggers do not fire on TRUNCATE, so a statement-level BEFORE TRUNCATE trigger refuses that.
CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

CREATE TABLE blobs (
    blake3     TEXT   PRIMARY KEY NOT NULL,
    sha256     TEXT   NOT NULL UNIQUE,
    size       BIGINT NOT NULL,
    tier       TEXT   NOT NULL,
    stored_seq BIGINT NOT NULL,
    stored_at  BIGINT NOT NULL      -- unix milliseconds
);

CREATE TABLE packages (
    package_id      TEXT   PRIMARY KEY NOT NULL,
    name            TEXT   NOT NULL,
    version         TEXT   NOT NULL,
    retention_class TEXT   NOT NULL,
    created_seq     BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    actor           TEXT   NOT NULL,
    file_count      BIGINT NOT NULL,
    total_size      BIGINT NOT NULL,
    manifest_size   BIGINT NOT NULL,
    labels          TEXT   NOT NULL,  -- JCS of the labels map
    purged_seq      BIGINT,
    UNIQUE (name, version)
);
CREATE INDEX packages_by_created ON packages (created_seq);
CREATE INDEX packages_by_class ON packages (retention_class, created_seq);

CREATE TABLE package_files (
    package_id TEXT   NOT NULL,
    path       TEXT   NOT NULL,
    blake3     TEXT   NOT NULL,
    sha256     TEXT   NOT NULL,
    size       BIGINT NOT NULL,
    media_type TEXT,
    PRIMARY KEY (package_id, path)
);
CREATE INDEX package_files_by_blob ON package_files (blake3);

CREATE TABLE retention_classes (
    name           TEXT PRIMARY KEY NOT NULL,
    default_period TEXT NOT NULL
);

CREATE TABLE retention_state (
    package_id            TEXT   PRIMARY KEY NOT NULL,
    retention_class       TEXT   NOT NULL,
    default_period        TEXT   NOT NULL,
    default_expires_at    BIGINT,          -- unix ms; NULL = permanent
    current_expires_at    BIGINT,          -- unix ms; NULL = permanent
    active_holds          BIGINT NOT NULL,
    eligible_for_deletion BIGINT NOT NULL,  -- 0 / 1 (an integer, as in SQLite, so the SQL is shared)
    eligible_seq          BIGINT,
    updated_seq           BIGINT NOT NULL
);
-- The sweeper's index: only packages that may still become eligible are in it, so a sweep
-- costs in proportion to the packages that are newly due, not to the store's size.
CREATE INDEX retention_sweep ON retention_state (current_expires_at)
    WHERE eligible_for_deletion = 0 AND active_holds = 0 AND current_expires_at IS NOT NULL;

CREATE TABLE holds (
    hold_id        TEXT   PRIMARY KEY NOT NULL,
    package_id     TEXT   NOT NULL,
    reason         TEXT   NOT NULL,
    actor          TEXT   NOT NULL,
    applied_seq    BIGINT NOT NULL,
    applied_at     BIGINT NOT NULL,
    released_seq   BIGINT,
    released_at    BIGINT,
    released_by    TEXT,
    release_reason TEXT
);
CREATE INDEX holds_by_package ON holds (package_id, applied_seq);
