//! Bearer-token authentication: the [`Caller`] extractor and role checks.

use artifact_core::TokenCheck;
use artifact_core::auth::{Principal, Role, token_hash};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::AppState;
use crate::error::ApiError;

/// The authenticated principal of a request (401 when the token is missing, unknown, revoked or
/// expired, with a problem saying which).
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Principal);

impl Caller {
    /// The principal if it has `role`, else 403.
    pub(crate) fn require(&self, role: Role) -> Result<&str, ApiError> {
        if self.0.has(role) {
            Ok(&self.0.name)
        } else {
            Err(ApiError::forbidden(format!(
                "principal `{}` lacks the `{role}` role",
                self.0.name
            )))
        }
    }
}

/// The token of an `Authorization` value `Bearer <token>`; the scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` are accepted too.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header_value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("an `Authorization: Bearer <token>` header is required")
        })?;
        let token = header_value
            .to_str()
            .ok()
            .and_then(bearer_token)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        principal_of(state, token).await.map(Caller)
    }
}

/// The principal a bearer token authenticates (401 when it is unknown, revoked or expired,
/// saying which). Shared by the native API and `/v2/` (where it may arrive as Basic auth).
pub(crate) async fn principal_of(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    {
        let hash = token_hash(token);
        if let Some((_, principal)) = state
            .options()
            .config_tokens
            .iter()
            .find(|(known, _)| *known == hash)
        {
            return Ok(principal.clone());
        }
        // Read from the catalog on every request: a revocation committed through any replica
        // refuses the token on the next request everywhere.
        match state.store().check_token(token).await? {
            TokenCheck::Valid(principal) => Ok(principal),
            TokenCheck::Unknown => Err(ApiError::unauthorized("unknown bearer token")),
            TokenCheck::Revoked {
                token_id,
                revoked_seq,
            } => Err(ApiError::unauthorized(format!(
                "bearer token {token_id} was revoked (seq {revoked_seq})"
            ))),
            TokenCheck::Expired {
                token_id,
                expires_at,
            } => Err(ApiError::unauthorized(format!(
                "bearer token {token_id} expired at {expires_at}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_required() {
        for value in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "Bearer   abc ",
            "bearer\tabc",
        ] {
            assert_eq!(bearer_token(value), Some("abc"), "{value:?}");
        }
        for value in [
            "Basic abc",
            "Bearer",
            "Bearer ",
            "Bearerabc",
            "",
            "Token abc",
        ] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
