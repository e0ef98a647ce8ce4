-- Bearer tokens minted with `artifactstore admin token create` (a view of
-- v1.auth.token_created / v1.auth.token_revoked events). Only hashes are stored.
CREATE TABLE auth_tokens (
    token_sha256 TEXT   PRIMARY KEY NOT NULL,
    principal    TEXT   NOT NULL,
    roles        TEXT   NOT NULL,     -- JCS array of role names
    created_seq  BIGINT NOT NULL,
    revoked_seq  BIGINT
);
