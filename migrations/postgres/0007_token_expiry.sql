-- Token expiry: `expires_at` (unix ms) of a v1.auth.token_created event that names one
-- (`admin token create --expires`). Tokens minted before this migration have no expiry: their
-- events carry none, so NULL is also what a replay gives.
ALTER TABLE auth_tokens ADD COLUMN expires_at BIGINT;
-- `admin token revoke TOKEN_ID` names a token by its id, `tok-<created_seq>`.
CREATE UNIQUE INDEX auth_tokens_by_created_seq ON auth_tokens (created_seq);
