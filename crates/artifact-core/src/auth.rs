//! Principals and roles (SPEC §4.4 auth), pure: token hashing and role checks. No IO.
//!
//! Bearer tokens are random 256-bit secrets shown once; only their SHA-256 is stored (in the
//! event log as `v1.auth.token_created`, or in the configuration as `[[server.tokens]]`).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::digest::Sha256;
use crate::error::{Error, Result};

/// What a principal may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read packages, blobs, events, retention state.
    Reader,
    /// Upload blobs and create packages (implies reader).
    Writer,
    /// Extend, hold, release, sweep (implies reader).
    RetentionAdmin,
    /// Everything, including operator endpoints.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [
        Role::Reader,
        Role::Writer,
        Role::RetentionAdmin,
        Role::Admin,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::RetentionAdmin => "retention-admin",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown role `{}` (known: reader, writer, retention-admin, admin)",
                    text.escape_debug()
                ))
            })
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The name recorded as `actor` on every event the caller causes.
    pub name: String,
    /// Granted roles.
    pub roles: BTreeSet<Role>,
}

impl Principal {
    /// Whether the principal may act with `role` (admin may do everything; writer and
    /// retention-admin may read).
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&Role::Admin)
            || self.roles.contains(&role)
            || (role == Role::Reader
                && (self.roles.contains(&Role::Writer)
                    || self.roles.contains(&Role::RetentionAdmin)))
    }
}

/// What [`validate_principal`] accepts, as an ECMA-262 regular expression: 1-128 of
/// `A-Z a-z 0-9 . _ - @ :` (minting also refuses the reserved `system:` prefix).
pub const PRINCIPAL_PATTERN: &str = "^[A-Za-z0-9._@:-]{1,128}$";

/// Checks a principal name: 1–128 characters of `A-Z a-z 0-9 . _ - @ :`.
pub fn validate_principal(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "principal `{}` must be 1-128 characters of A-Z a-z 0-9 . _ - @ :",
            name.escape_debug()
        )))
    }
}

/// The prefix of reserved principals: `system:*` names the store's own processes (`system:gc`,
/// `system:sweeper`, `system:recovery`, …), so no token may be minted for one.
pub const RESERVED_PRINCIPAL_PREFIX: &str = "system:";

/// Refuses a reserved principal (`system:*`, in any letter case).
pub fn refuse_reserved_principal(name: &str) -> Result<()> {
    let reserved = name
        .get(..RESERVED_PRINCIPAL_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(RESERVED_PRINCIPAL_PREFIX));
    if reserved {
        Err(Error::invalid(format!(
            "principal `{}` is reserved: `system:*` names the store's own processes; \
             choose another name",
            name.escape_debug()
        )))
    } else {
        Ok(())
    }
}

/// The stored form of a token: the SHA-256 of its text.
pub fn token_hash(token: &str) -> Sha256 {
    Sha256::of(token.as_bytes())
}

/// Formats 32 random bytes as a token (`ast_` + 64 hex).
pub fn format_token(secret: &[u8; 32]) -> String {
    format!("ast_{}", hex::encode(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_imply_reading_and_admin_implies_all() {
        let writer = Principal {
            name: "ci".into(),
            roles: BTreeSet::from([Role::Writer]),
        };
        assert!(writer.has(Role::Reader) && writer.has(Role::Writer));
        assert!(!writer.has(Role::RetentionAdmin) && !writer.has(Role::Admin));
        let admin = Principal {
            name: "root".into(),
            roles: BTreeSet::from([Role::Admin]),
        };
        assert!(Role::ALL.iter().all(|r| admin.has(*r)));
        assert!("owner".parse::<Role>().is_err());
        assert!(validate_principal("ci-bot@example").is_ok());
        assert!(validate_principal("a b").is_err());
        assert!(refuse_reserved_principal("system:gc").is_err());
        assert!(refuse_reserved_principal("SYSTEM:x").is_err());
        assert!(refuse_reserved_principal("systems").is_ok());
        assert!(refuse_reserved_principal("ci:system").is_ok());
        let token = format_token(&[7; 32]);
        assert_eq!(token_hash(&token), token_hash(&token.clone()));
        assert!(token.starts_with("ast_") && token.len() == 68);
    }
}
