//! Bearer tokens: minting, listing, revoking and checking them.

use super::*;

impl ArtifactStore {
    /// Mints a bearer token for `principal` with `roles`, without expiry; returns the token,
    /// which is shown once: only its SHA-256 is recorded (`v1.auth.token_created`). See
    /// [`ArtifactStore::mint_token`].
    pub async fn create_token(
        &self,
        actor: &str,
        principal: &str,
        roles: &[crate::auth::Role],
        secret: &[u8; 32],
    ) -> Result<String> {
        Ok(self
            .mint_token(actor, principal, roles, None, secret)
            .await?
            .token)
    }

    /// Mints a bearer token for `principal` with `roles`, accepted until `expires_at` (by the
    /// store's clock) if given. The token is returned once: only its SHA-256 is recorded
    /// (`v1.auth.token_created`, with `expires_at` when there is one). Reserved principals
    /// (`system:*`, the store's own processes) are refused, as is an expiry that is not in the
    /// future.
    pub async fn mint_token(
        &self,
        actor: &str,
        principal: &str,
        roles: &[crate::auth::Role],
        expires_at: Option<Timestamp>,
        secret: &[u8; 32],
    ) -> Result<MintedToken> {
        crate::auth::validate_principal(principal)?;
        crate::auth::refuse_reserved_principal(principal)?;
        if roles.is_empty() {
            return Err(Error::invalid("a token needs at least one role"));
        }
        let now = self.clock.now();
        if let Some(expires_at) = expires_at
            && expires_at <= now
        {
            return Err(Error::invalid(format!(
                "token expiry {expires_at} is not in the future (now is {now})"
            )));
        }
        let token = crate::auth::format_token(secret);
        let mut role_names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        role_names.sort_unstable();
        role_names.dedup();
        let data = AuthTokenCreated {
            principal: principal.to_owned(),
            roles: role_names.iter().map(|r| (*r).to_owned()).collect(),
            token_sha256: crate::auth::token_hash(&token),
            // Only present when given: a token without expiry is recorded exactly as before.
            expires_at,
            extra: Extra::new(),
        };
        let mut tx = self.catalog.write().await?;
        let event = tx.append(None, actor, now, data).await?;
        let record = catalog::views_token_by_seq(tx.conn(), event.seq)
            .await?
            .ok_or_else(|| Error::not_found("token", TokenRecord::id_of(event.seq)))?;
        tx.commit().await?;
        Ok(MintedToken { token, record })
    }

    /// Every minted token (revoked and expired ones included), oldest first. Tokens from
    /// configuration (`[[server.tokens]]`) are not events and are not listed.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let mut conn = self.catalog.read().await?;
        catalog::views_list_tokens(&mut conn).await
    }

    /// Revokes a minted token (`v1.auth.token_revoked` with the reason): from the commit on,
    /// every replica refuses it, since each request looks its token up in the catalog. An
    /// unknown id is [`Error::NotFound`], an already revoked token [`Error::Conflict`].
    pub async fn revoke_token(
        &self,
        actor: &str,
        token_id: &str,
        reason: &str,
    ) -> Result<TokenRecord> {
        validate_reason(reason)?;
        let seq = TokenRecord::seq_of(token_id).ok_or_else(|| {
            Error::invalid(format!(
                "token id `{}` must be tok-<number> (see `admin token list`)",
                token_id.escape_debug()
            ))
        })?;
        let mut tx = self.catalog.write().await?;
        let record = catalog::views_token_by_seq(tx.conn(), seq)
            .await?
            .ok_or_else(|| Error::not_found("token", token_id.to_owned()))?;
        if let Some(revoked_seq) = record.revoked_seq {
            return Err(Error::conflict(
                ConflictKind::TokenRevoked,
                format!("token {token_id} was already revoked (seq {revoked_seq})"),
            ));
        }
        let data = AuthTokenRevoked {
            token_id: record.token_id.clone(),
            token_sha256: record.token_sha256.parse().map_err(|e| Error::Integrity {
                seq,
                reason: format!("auth_tokens row {token_id}: token_sha256 is not a digest: {e}"),
            })?,
            reason: reason.to_owned(),
            extra: Extra::new(),
        };
        tx.append(None, actor, self.clock.now(), data).await?;
        let updated = catalog::views_token_by_seq(tx.conn(), seq)
            .await?
            .ok_or_else(|| Error::not_found("token", token_id.to_owned()))?;
        tx.commit().await?;
        Ok(updated)
    }

    /// What a presented token is worth now: judged against the catalog (so a revocation
    /// committed by any replica counts at once) and the store's clock (never the caller's).
    pub async fn check_token(&self, token: &str) -> Result<TokenCheck> {
        let mut conn = self.catalog.read().await?;
        let hash = crate::auth::token_hash(token).to_string();
        let Some(record) = catalog::views_token_by_hash(&mut conn, &hash).await? else {
            return Ok(TokenCheck::Unknown);
        };
        Ok(if let Some(revoked_seq) = record.revoked_seq {
            TokenCheck::Revoked {
                token_id: record.token_id,
                revoked_seq,
            }
        } else if record.expired_at(self.clock.now()) {
            TokenCheck::Expired {
                token_id: record.token_id.clone(),
                expires_at: record.expires_at.unwrap_or(record.created_at),
            }
        } else {
            TokenCheck::Valid(record.principal())
        })
    }

    /// The principal of a minted token that is neither revoked nor expired.
    pub async fn token_principal(&self, token: &str) -> Result<Option<crate::auth::Principal>> {
        Ok(match self.check_token(token).await? {
            TokenCheck::Valid(principal) => Some(principal),
            _ => None,
        })
    }
}
