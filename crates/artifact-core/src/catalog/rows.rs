//! The rows the views hold, as callers see them, and their data-model projections.

use std::collections::BTreeMap;

use crate::blob::Tier;
use crate::cbor::Value;
use crate::digest::{BlobInfo, PackageId};
use crate::time::Timestamp;

/// A minted token as the `auth_tokens` view records it (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's id, `tok-<created_seq>`: what `admin token list` shows and
    /// `admin token revoke` takes.
    pub token_id: String,
    /// SHA-256 of the token text (what requests are matched against).
    pub token_sha256: String,
    /// The principal the token authenticates.
    pub principal: String,
    /// Granted roles.
    pub roles: std::collections::BTreeSet<crate::auth::Role>,
    /// The `v1.auth.token_created` event.
    pub created_seq: u64,
    /// When it was minted.
    pub created_at: Timestamp,
    /// When it stops being accepted (by the store's clock), if ever.
    pub expires_at: Option<Timestamp>,
    /// The `v1.auth.token_revoked` event, once revoked.
    pub revoked_seq: Option<u64>,
}

impl TokenRecord {
    /// The id of the token minted by event `created_seq`.
    pub fn id_of(created_seq: u64) -> String {
        format!("tok-{created_seq}")
    }

    /// The `created_seq` a token id names, if it has the `tok-<seq>` form.
    pub fn seq_of(token_id: &str) -> Option<u64> {
        token_id
            .strip_prefix("tok-")
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse().ok())
    }

    /// The principal and roles the token grants.
    pub fn principal(&self) -> crate::auth::Principal {
        crate::auth::Principal {
            name: self.principal.clone(),
            roles: self.roles.clone(),
        }
    }

    /// Whether the token has expired at `now`.
    pub fn expired_at(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|expires_at| now >= expires_at)
    }

    /// As a data-model value: `{token_id, principal, roles, created_at, expires_at, revoked}`
    /// (what `admin token list --json` and `GET /admin/tokens` return; never the token).
    pub fn to_value(&self) -> Value {
        Value::Map(BTreeMap::from([
            ("token_id".to_owned(), Value::Text(self.token_id.clone())),
            ("principal".to_owned(), Value::Text(self.principal.clone())),
            (
                "roles".to_owned(),
                Value::Array(
                    self.roles
                        .iter()
                        .map(|r| Value::Text(r.as_str().to_owned()))
                        .collect(),
                ),
            ),
            (
                "created_at".to_owned(),
                Value::Text(self.created_at.to_string()),
            ),
            (
                "expires_at".to_owned(),
                self.expires_at
                    .map_or(Value::Null, |t| Value::Text(t.to_string())),
            ),
            (
                "revoked".to_owned(),
                Value::Bool(self.revoked_seq.is_some()),
            ),
        ]))
    }
}

/// A blob as the `blobs` view records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRecord {
    /// Digests and size.
    pub info: BlobInfo,
    /// Retrieval tier.
    pub tier: Tier,
    /// The `v1.blob.stored` event.
    pub stored_seq: u64,
    /// When it was recorded.
    pub stored_at: Timestamp,
    /// The `v1.blob.deletion_started` event that committed garbage collection to deleting it,
    /// if any: such a blob can gain no reference and is about to go.
    pub deleting_seq: Option<u64>,
}

/// A hold as the `holds` view records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRecord {
    /// Hold id.
    pub hold_id: String,
    /// Why.
    pub reason: String,
    /// Who applied it.
    pub actor: String,
    /// When.
    pub applied_at: Timestamp,
    /// The `hold_applied` event.
    pub applied_seq: u64,
    /// The `hold_released` event, once released.
    pub released_seq: Option<u64>,
}

/// The retention state of a package (the `retention_state` view plus its active holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionStatus {
    /// The package.
    pub package_id: PackageId,
    /// Its class.
    pub retention_class: String,
    /// The class default period at creation (`730d`, `permanent`).
    pub default_period: String,
    /// Expiry computed at creation (`None` = permanent).
    pub default_expires_at: Option<Timestamp>,
    /// Current expiry (`None` = permanent).
    pub current_expires_at: Option<Timestamp>,
    /// Active holds.
    pub active_holds: Vec<HoldRecord>,
    /// Marked eligible by the sweeper (and not flipped back since).
    pub eligible_for_deletion: bool,
    /// The `deletion_eligible` event, while eligible.
    pub eligible_seq: Option<u64>,
    /// The last event that changed this state.
    pub updated_seq: u64,
}

impl RetentionStatus {
    /// As a data-model value (`--json`, HTTP).
    pub fn to_value(&self) -> Value {
        let ts = |t: Option<Timestamp>| t.map_or(Value::Null, |t| Value::Text(t.to_string()));
        let holds = self
            .active_holds
            .iter()
            .map(|h| {
                Value::Map(BTreeMap::from([
                    ("hold_id".to_owned(), Value::Text(h.hold_id.clone())),
                    ("reason".to_owned(), Value::Text(h.reason.clone())),
                    ("actor".to_owned(), Value::Text(h.actor.clone())),
                    (
                        "applied_at".to_owned(),
                        Value::Text(h.applied_at.to_string()),
                    ),
                    ("applied_seq".to_owned(), Value::Int(h.applied_seq as i64)),
                ]))
            })
            .collect();
        Value::Map(BTreeMap::from([
            (
                "package_id".to_owned(),
                Value::Text(self.package_id.to_string()),
            ),
            (
                "retention_class".to_owned(),
                Value::Text(self.retention_class.clone()),
            ),
            (
                "default_period".to_owned(),
                Value::Text(self.default_period.clone()),
            ),
            ("default_expires_at".to_owned(), ts(self.default_expires_at)),
            ("current_expires_at".to_owned(), ts(self.current_expires_at)),
            (
                "active_holds".to_owned(),
                Value::Int(self.active_holds.len() as i64),
            ),
            ("holds".to_owned(), Value::Array(holds)),
            (
                "eligible_for_deletion".to_owned(),
                Value::Bool(self.eligible_for_deletion),
            ),
            (
                "eligible_seq".to_owned(),
                self.eligible_seq
                    .map_or(Value::Null, |s| Value::Int(s as i64)),
            ),
            (
                "updated_seq".to_owned(),
                Value::Int(self.updated_seq as i64),
            ),
        ]))
    }
}

/// A package as the `packages` view records it, with its retention state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageRecord {
    /// Package id.
    pub package_id: PackageId,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Retention class.
    pub retention_class: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// The `v1.package.created` event.
    pub created_seq: u64,
    /// Who created it.
    pub actor: String,
    /// Number of files.
    pub file_count: u64,
    /// Sum of file sizes.
    pub total_size: u64,
    /// Size of the manifest's canonical CBOR.
    pub manifest_size: u64,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The `v1.package.purged` event, once purged.
    pub purged_seq: Option<u64>,
}

impl PackageRecord {
    /// The package with its retention state as one data-model value: what `show --json`,
    /// `retention status --json` and `GET /packages/{id}` return.
    pub fn to_value(&self, retention: &RetentionStatus) -> Value {
        let mut map = match retention.to_value() {
            Value::Map(map) => map,
            _ => BTreeMap::new(),
        };
        map.insert("name".into(), Value::Text(self.name.clone()));
        map.insert("version".into(), Value::Text(self.version.clone()));
        map.insert(
            "created_at".into(),
            Value::Text(self.created_at.to_string()),
        );
        map.insert("created_seq".into(), Value::Int(self.created_seq as i64));
        map.insert("created_by".into(), Value::Text(self.actor.clone()));
        map.insert("file_count".into(), Value::Int(self.file_count as i64));
        map.insert("total_size".into(), Value::Int(self.total_size as i64));
        map.insert(
            "labels".into(),
            Value::Map(
                self.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::Text(v.clone())))
                    .collect(),
            ),
        );
        map.insert(
            "purged_seq".into(),
            self.purged_seq
                .map_or(Value::Null, |s| Value::Int(s as i64)),
        );
        Value::Map(map)
    }
}

impl BlobRecord {
    /// As a data-model value.
    pub fn to_value(&self) -> Value {
        Value::Map(BTreeMap::from([
            (
                "blake3".to_owned(),
                Value::Text(self.info.blake3.to_string()),
            ),
            (
                "sha256".to_owned(),
                Value::Text(self.info.sha256.to_string()),
            ),
            ("size".to_owned(), Value::Int(self.info.size as i64)),
            (
                "tier".to_owned(),
                Value::Text(self.tier.as_str().to_owned()),
            ),
            ("stored_seq".to_owned(), Value::Int(self.stored_seq as i64)),
            (
                "stored_at".to_owned(),
                Value::Text(self.stored_at.to_string()),
            ),
        ]))
    }
}

/// Filters for listing packages.
#[derive(Clone, Debug, Default)]
pub struct PackageFilter {
    /// Only this name.
    pub name: Option<String>,
    /// Only this version (filtered in SQL, before `limit`, so paging stays correct).
    pub version: Option<String>,
    /// Only this class.
    pub retention_class: Option<String>,
    /// Only packages marked eligible for deletion.
    pub eligible: bool,
    /// Cursor: only packages created after this seq.
    pub after_seq: u64,
    /// At most this many (default 1000).
    pub limit: Option<u32>,
}

/// Filters for reading events.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    /// Only events with seq greater than this.
    pub after: u64,
    /// At most this many (default 1000).
    pub limit: Option<u32>,
    /// Only this type.
    pub event_type: Option<String>,
    /// Only events of this package.
    pub package_id: Option<PackageId>,
}
