-- OCI repositories with mutable tags (issue 14, ADR 0016): which manifest each tag names now,
-- as the latest v1.oci.tag_set of (repository, tag) recorded it. A view like the others: a
-- pure function of the log, rebuilt by replay. Empty in stores written before this release,
-- which have no such events.
CREATE TABLE oci_tags (
    repository      TEXT    NOT NULL,
    tag             TEXT    NOT NULL,
    package_id      TEXT    NOT NULL,
    manifest_sha256 TEXT    NOT NULL,
    set_seq         BIGINT NOT NULL,
    PRIMARY KEY (repository, tag)
);

-- The OCI façade finds manifests (and an index's children, a referrer's subject) by SHA-256.
CREATE INDEX package_files_by_sha256 ON package_files (sha256);
