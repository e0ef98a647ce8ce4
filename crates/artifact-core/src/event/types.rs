//! Typed event payloads (SPEC §2.4): one struct per event type, each with one encoding and one
//! decoding, and [`EventData`], the payload of any event. Pure: no IO.
//!
//! Version tolerance: every struct keeps the data fields it does not know in `extra`, and
//! [`EventData::Unknown`] keeps events of types this release does not know, so re-encoding a
//! decoded payload gives back exactly the stored value (and so the stored canonical bytes).
//! [`EventData::decode`] checks that: a payload whose known fields are not in the form this
//! release writes (e.g. a timestamp with an offset) is refused, never silently rewritten.

use std::collections::BTreeMap;
use std::fmt;

use crate::blob::Tier;
use crate::cbor::Value;
use crate::digest::{Blake3, Sha256};
use crate::manifest::Manifest;
use crate::time::{Period, Timestamp};

/// A blob's bytes are durable in the blob backend.
pub const BLOB_STORED: &str = "v1.blob.stored";
/// A package was created (data carries the whole manifest).
pub const PACKAGE_CREATED: &str = "v1.package.created";
/// The retention class default was applied at creation.
pub const RETENTION_DEFAULT_APPLIED: &str = "v1.retention.default_applied";
/// The expiry was moved later.
pub const RETENTION_EXTENDED: &str = "v1.retention.extended";
/// A legal/operational hold was applied.
pub const RETENTION_HOLD_APPLIED: &str = "v1.retention.hold_applied";
/// A hold was released.
pub const RETENTION_HOLD_RELEASED: &str = "v1.retention.hold_released";
/// The sweeper marked the package eligible for deletion.
pub const RETENTION_DELETION_ELIGIBLE: &str = "v1.retention.deletion_eligible";
/// Garbage collection purged an eligible package.
pub const PACKAGE_PURGED: &str = "v1.package.purged";
/// Garbage collection committed to deleting these blobs' bytes (data: `blobs`, their
/// BLAKE3 digests). From this event on they can gain no reference; their
/// `v1.blob.deleted` follows once the bytes are gone (by the same run, or by whoever opens
/// the store next if that run died).
pub const BLOB_DELETION_STARTED: &str = "v1.blob.deletion_started";
/// Garbage collection deleted a blob's bytes.
pub const BLOB_DELETED: &str = "v1.blob.deleted";
/// A scrub re-read a blob and both digests matched.
pub const INTEGRITY_CHECKED: &str = "v1.integrity.checked";
/// A scrub found a blob missing or corrupt.
pub const INTEGRITY_FAILED: &str = "v1.integrity.failed";
/// The storage's retention of a blob's stored version was set to a later retain-until
/// (S3 Object Lock; the package the change is for is the event's package).
pub const BLOB_LOCK_EXTENDED: &str = "v1.blob.lock_extended";
/// The storage's legal hold on a blob's stored version was set or cleared.
pub const BLOB_LEGAL_HOLD_SET: &str = "v1.blob.legal_hold_set";
/// A tag of an OCI repository was set to name the event's package's manifest (ADR 0016: in a
/// repository with mutable tags, moving a tag is this event; the manifest it named before keeps
/// its own package and retention).
pub const OCI_TAG_SET: &str = "v1.oci.tag_set";
/// A bearer token was minted (data: principal, roles, token_sha256 — never the token).
pub const AUTH_TOKEN_CREATED: &str = "v1.auth.token_created";
/// A bearer token was revoked.
pub const AUTH_TOKEN_REVOKED: &str = "v1.auth.token_revoked";

/// Data fields a payload does not know, kept so re-encoding is lossless.
pub type Extra = BTreeMap<String, Value>;

/// Why an event's data does not decode as its type's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The event type.
    pub event_type: String,
    /// The data field at fault, if one is.
    pub field: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "`{}` data: `{field}` {}", self.event_type, self.problem),
            None => write!(f, "`{}` data: {}", self.event_type, self.problem),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads the fields of one payload, removing each as it is read; what is left is `extra`.
struct Fields {
    event_type: &'static str,
    map: BTreeMap<String, Value>,
}

impl Fields {
    fn new(event_type: &'static str, data: &Value) -> Result<Self, DecodeError> {
        match data {
            Value::Map(map) => Ok(Self {
                event_type,
                map: map.clone(),
            }),
            _ => Err(DecodeError {
                event_type: event_type.to_owned(),
                field: None,
                problem: "must be a map".to_owned(),
            }),
        }
    }

    fn error(&self, key: &str, problem: impl Into<String>) -> DecodeError {
        DecodeError {
            event_type: self.event_type.to_owned(),
            field: Some(key.to_owned()),
            problem: problem.into(),
        }
    }

    fn take(&mut self, key: &str) -> Result<Value, DecodeError> {
        self.map
            .remove(key)
            .ok_or_else(|| self.error(key, "is missing"))
    }

    fn text(&mut self, key: &str) -> Result<String, DecodeError> {
        match self.take(key)? {
            Value::Text(text) => Ok(text),
            _ => Err(self.error(key, "must be text")),
        }
    }

    fn parsed<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Result<T, DecodeError>
    where
        T::Err: fmt::Display,
    {
        let text = self.text(key)?;
        text.parse()
            .map_err(|e| self.error(key, format!("must be {what}: {e}")))
    }

    fn ts(&mut self, key: &str) -> Result<Timestamp, DecodeError> {
        self.parsed(key, "a timestamp")
    }

    /// A timestamp that is present as text or `null`.
    fn ts_or_null(&mut self, key: &str) -> Result<Option<Timestamp>, DecodeError> {
        match self.take(key)? {
            Value::Null => Ok(None),
            Value::Text(text) => text
                .parse()
                .map(Some)
                .map_err(|e| self.error(key, format!("must be a timestamp or null: {e}"))),
            _ => Err(self.error(key, "must be a timestamp or null")),
        }
    }

    /// A timestamp that is present as text or absent.
    fn ts_or_absent(&mut self, key: &str) -> Result<Option<Timestamp>, DecodeError> {
        if self.map.contains_key(key) {
            self.ts(key).map(Some)
        } else {
            Ok(None)
        }
    }

    fn uint(&mut self, key: &str) -> Result<u64, DecodeError> {
        match self.take(key)? {
            Value::Int(n) if n >= 0 => Ok(n as u64),
            _ => Err(self.error(key, "must be a non-negative integer")),
        }
    }

    fn uint_or_null(&mut self, key: &str) -> Result<Option<u64>, DecodeError> {
        match self.take(key)? {
            Value::Null => Ok(None),
            Value::Int(n) if n >= 0 => Ok(Some(n as u64)),
            _ => Err(self.error(key, "must be a non-negative integer or null")),
        }
    }

    fn texts(&mut self, key: &str) -> Result<Vec<String>, DecodeError> {
        match self.take(key)? {
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::Text(text) => Ok(text),
                    _ => Err(self.error(key, "must be an array of text")),
                })
                .collect(),
            _ => Err(self.error(key, "must be an array of text")),
        }
    }

    fn extra(self) -> Extra {
        self.map
    }
}

/// Builds a payload map: the unknown fields first, then the known ones (which win).
fn map(extra: &Extra, known: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    let mut map = extra.clone();
    for (key, value) in known {
        map.insert(key.to_owned(), value);
    }
    Value::Map(map)
}

fn text(value: impl fmt::Display) -> Value {
    Value::Text(value.to_string())
}

fn int(n: u64) -> Value {
    Value::Int(n as i64)
}

/// `v1.blob.stored`: a blob's bytes are durable in the blob backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobStored {
    /// Its BLAKE3 digest (the storage key).
    pub blake3: Blake3,
    /// Its SHA-256 digest.
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
    /// The backend's tier.
    pub tier: Tier,
    /// Fields this release does not know.
    pub extra: Extra,
}

impl BlobStored {
    /// The event for `info`'s bytes, durable on `tier`.
    pub fn new(info: &crate::digest::BlobInfo, tier: Tier) -> Self {
        Self {
            blake3: info.blake3,
            sha256: info.sha256,
            size: info.size,
            tier,
            extra: Extra::new(),
        }
    }
}

/// `v1.package.created`: a package was created from a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageCreated {
    /// The manifest (its canonical bytes are the package id's preimage).
    pub manifest: Manifest,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.retention.default_applied`: the retention class default was applied at creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionDefaultApplied {
    /// The class.
    pub retention_class: String,
    /// The class's default period.
    pub period: Period,
    /// The expiry it gives (`None` = permanent; stored as `null`).
    pub expires_at: Option<Timestamp>,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.retention.extended`: the expiry was moved later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionExtended {
    /// The expiry before.
    pub previous_expires_at: Timestamp,
    /// The expiry after.
    pub new_expires_at: Timestamp,
    /// Why.
    pub reason: String,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.retention.hold_applied`: a hold was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionHoldApplied {
    /// The hold's id (`hold-<seq>`).
    pub hold_id: String,
    /// Why.
    pub reason: String,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.retention.hold_released`: a hold was released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionHoldReleased {
    /// The hold's id.
    pub hold_id: String,
    /// Why.
    pub reason: String,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.retention.deletion_eligible`: a sweep marked the package eligible for deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionDeletionEligible {
    /// The instant swept for.
    pub as_of: Timestamp,
    /// The expiry that passed.
    pub expires_at: Timestamp,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.package.purged`: garbage collection purged an eligible package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackagePurged {
    /// The seq of the `deletion_eligible` event it relied on (stored as `null` if none).
    pub eligible_seq: Option<u64>,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.blob.deletion_started`: garbage collection committed to deleting these blobs' bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobDeletionStarted {
    /// The blobs, by BLAKE3 digest.
    pub blobs: Vec<Blake3>,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.blob.deleted`: garbage collection deleted a blob's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobDeleted {
    /// Its BLAKE3 digest.
    pub blake3: Blake3,
    /// Its SHA-256 digest.
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.integrity.checked`: a scrub re-read a blob and both digests matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrityChecked {
    /// The blob.
    pub blake3: Blake3,
    /// Its recorded size.
    pub size: u64,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.integrity.failed`: a scrub found a blob missing or corrupt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrityFailed {
    /// The blob.
    pub blake3: Blake3,
    /// Its recorded size.
    pub size: u64,
    /// What was wrong.
    pub reason: String,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.blob.lock_extended`: the storage retains a blob's version until `retain_until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobLockExtended {
    /// The blob.
    pub blake3: Blake3,
    /// The stored version the retention is on.
    pub version_id: String,
    /// The retention mode (`COMPLIANCE` / `GOVERNANCE`).
    pub mode: crate::blob::LockMode,
    /// The retain-until date now on the storage.
    pub retain_until: Timestamp,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.blob.legal_hold_set`: the storage's legal hold on a blob's version was set or cleared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobLegalHoldSet {
    /// The blob.
    pub blake3: Blake3,
    /// The stored version.
    pub version_id: String,
    /// On or off.
    pub on: bool,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.oci.tag_set`: the tag `tag` of the OCI repository `repository` names the manifest
/// `manifest_sha256`, the `manifest.json` of the event's package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciTagSet {
    /// The repository (the package's name).
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The `sha256:` digest of the manifest the tag names.
    pub manifest_sha256: Sha256,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.auth.token_created`: a bearer token was minted (its hash, never the token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthTokenCreated {
    /// Who the token authenticates.
    pub principal: String,
    /// Its roles (sorted, deduplicated).
    pub roles: Vec<String>,
    /// SHA-256 of the token.
    pub token_sha256: Sha256,
    /// When it stops being accepted (`None` = never; then the field is absent).
    pub expires_at: Option<Timestamp>,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// `v1.auth.token_revoked`: a bearer token was revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthTokenRevoked {
    /// The token's id (`tok-<seq>`).
    pub token_id: String,
    /// SHA-256 of the token.
    pub token_sha256: Sha256,
    /// Why.
    pub reason: String,
    /// Fields this release does not know.
    pub extra: Extra,
}

/// The payload of one event: a typed struct per known type, or an unknown type kept as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventData {
    /// `v1.blob.stored`.
    BlobStored(BlobStored),
    /// `v1.package.created`.
    PackageCreated(PackageCreated),
    /// `v1.retention.default_applied`.
    RetentionDefaultApplied(RetentionDefaultApplied),
    /// `v1.retention.extended`.
    RetentionExtended(RetentionExtended),
    /// `v1.retention.hold_applied`.
    RetentionHoldApplied(RetentionHoldApplied),
    /// `v1.retention.hold_released`.
    RetentionHoldReleased(RetentionHoldReleased),
    /// `v1.retention.deletion_eligible`.
    RetentionDeletionEligible(RetentionDeletionEligible),
    /// `v1.package.purged`.
    PackagePurged(PackagePurged),
    /// `v1.blob.deletion_started`.
    BlobDeletionStarted(BlobDeletionStarted),
    /// `v1.blob.deleted`.
    BlobDeleted(BlobDeleted),
    /// `v1.integrity.checked`.
    IntegrityChecked(IntegrityChecked),
    /// `v1.integrity.failed`.
    IntegrityFailed(IntegrityFailed),
    /// `v1.blob.lock_extended`.
    BlobLockExtended(BlobLockExtended),
    /// `v1.blob.legal_hold_set`.
    BlobLegalHoldSet(BlobLegalHoldSet),
    /// `v1.oci.tag_set`.
    OciTagSet(OciTagSet),
    /// `v1.auth.token_created`.
    AuthTokenCreated(AuthTokenCreated),
    /// `v1.auth.token_revoked`.
    AuthTokenRevoked(AuthTokenRevoked),
    /// A type this release does not know, preserved as stored.
    Unknown {
        /// Its wire type name.
        event_type: String,
        /// Its data, as stored.
        data: Value,
    },
}

macro_rules! from_payload {
    ($($name:ident),* $(,)?) => {
        $(impl From<$name> for EventData {
            fn from(payload: $name) -> Self {
                EventData::$name(payload)
            }
        })*
    };
}

from_payload!(
    BlobStored,
    PackageCreated,
    RetentionDefaultApplied,
    RetentionExtended,
    RetentionHoldApplied,
    RetentionHoldReleased,
    RetentionDeletionEligible,
    PackagePurged,
    BlobDeletionStarted,
    BlobDeleted,
    IntegrityChecked,
    IntegrityFailed,
    BlobLockExtended,
    BlobLegalHoldSet,
    OciTagSet,
    AuthTokenCreated,
    AuthTokenRevoked,
);

impl EventData {
    /// The wire type name.
    pub fn event_type(&self) -> &str {
        match self {
            EventData::BlobStored(_) => BLOB_STORED,
            EventData::PackageCreated(_) => PACKAGE_CREATED,
            EventData::RetentionDefaultApplied(_) => RETENTION_DEFAULT_APPLIED,
            EventData::RetentionExtended(_) => RETENTION_EXTENDED,
            EventData::RetentionHoldApplied(_) => RETENTION_HOLD_APPLIED,
            EventData::RetentionHoldReleased(_) => RETENTION_HOLD_RELEASED,
            EventData::RetentionDeletionEligible(_) => RETENTION_DELETION_ELIGIBLE,
            EventData::PackagePurged(_) => PACKAGE_PURGED,
            EventData::BlobDeletionStarted(_) => BLOB_DELETION_STARTED,
            EventData::BlobDeleted(_) => BLOB_DELETED,
            EventData::IntegrityChecked(_) => INTEGRITY_CHECKED,
            EventData::IntegrityFailed(_) => INTEGRITY_FAILED,
            EventData::BlobLockExtended(_) => BLOB_LOCK_EXTENDED,
            EventData::BlobLegalHoldSet(_) => BLOB_LEGAL_HOLD_SET,
            EventData::OciTagSet(_) => OCI_TAG_SET,
            EventData::AuthTokenCreated(_) => AUTH_TOKEN_CREATED,
            EventData::AuthTokenRevoked(_) => AUTH_TOKEN_REVOKED,
            EventData::Unknown { event_type, .. } => event_type,
        }
    }

    /// The data-model value stored as the event's `data`.
    pub fn encode(&self) -> Value {
        match self {
            EventData::BlobStored(p) => map(
                &p.extra,
                [
                    ("blake3", text(p.blake3)),
                    ("sha256", text(p.sha256)),
                    ("size", int(p.size)),
                    ("tier", text(p.tier.as_str())),
                ],
            ),
            EventData::PackageCreated(p) => map(&p.extra, [("manifest", p.manifest.to_value())]),
            EventData::RetentionDefaultApplied(p) => map(
                &p.extra,
                [
                    ("retention_class", text(&p.retention_class)),
                    ("period", text(p.period)),
                    ("expires_at", p.expires_at.map_or(Value::Null, text)),
                ],
            ),
            EventData::RetentionExtended(p) => map(
                &p.extra,
                [
                    ("previous_expires_at", text(p.previous_expires_at)),
                    ("new_expires_at", text(p.new_expires_at)),
                    ("reason", text(&p.reason)),
                ],
            ),
            EventData::RetentionHoldApplied(p) => map(
                &p.extra,
                [("hold_id", text(&p.hold_id)), ("reason", text(&p.reason))],
            ),
            EventData::RetentionHoldReleased(p) => map(
                &p.extra,
                [("hold_id", text(&p.hold_id)), ("reason", text(&p.reason))],
            ),
            EventData::RetentionDeletionEligible(p) => map(
                &p.extra,
                [("as_of", text(p.as_of)), ("expires_at", text(p.expires_at))],
            ),
            EventData::PackagePurged(p) => map(
                &p.extra,
                [("eligible_seq", p.eligible_seq.map_or(Value::Null, int))],
            ),
            EventData::BlobDeletionStarted(p) => map(
                &p.extra,
                [("blobs", Value::Array(p.blobs.iter().map(text).collect()))],
            ),
            EventData::BlobDeleted(p) => map(
                &p.extra,
                [
                    ("blake3", text(p.blake3)),
                    ("sha256", text(p.sha256)),
                    ("size", int(p.size)),
                ],
            ),
            EventData::IntegrityChecked(p) => map(
                &p.extra,
                [("blake3", text(p.blake3)), ("size", int(p.size))],
            ),
            EventData::IntegrityFailed(p) => map(
                &p.extra,
                [
                    ("blake3", text(p.blake3)),
                    ("size", int(p.size)),
                    ("reason", text(&p.reason)),
                ],
            ),
            EventData::BlobLockExtended(p) => map(
                &p.extra,
                [
                    ("blake3", text(p.blake3)),
                    ("version_id", text(&p.version_id)),
                    ("mode", text(p.mode.as_str())),
                    ("retain_until", text(p.retain_until)),
                ],
            ),
            EventData::BlobLegalHoldSet(p) => map(
                &p.extra,
                [
                    ("blake3", text(p.blake3)),
                    ("version_id", text(&p.version_id)),
                    ("on", Value::Bool(p.on)),
                ],
            ),
            EventData::OciTagSet(p) => map(
                &p.extra,
                [
                    ("repository", text(&p.repository)),
                    ("tag", text(&p.tag)),
                    ("manifest_sha256", text(p.manifest_sha256)),
                ],
            ),
            EventData::AuthTokenCreated(p) => {
                let mut value = map(
                    &p.extra,
                    [
                        ("principal", text(&p.principal)),
                        ("roles", Value::Array(p.roles.iter().map(text).collect())),
                        ("token_sha256", text(p.token_sha256)),
                    ],
                );
                // Only present when given: a token without expiry is recorded without it.
                if let (Some(expires_at), Value::Map(map)) = (p.expires_at, &mut value) {
                    map.insert("expires_at".to_owned(), text(expires_at));
                }
                value
            }
            EventData::AuthTokenRevoked(p) => map(
                &p.extra,
                [
                    ("token_id", text(&p.token_id)),
                    ("token_sha256", text(p.token_sha256)),
                    ("reason", text(&p.reason)),
                ],
            ),
            EventData::Unknown { data, .. } => data.clone(),
        }
    }

    /// Decodes the `data` of an event of type `event_type`. Unknown types decode to
    /// [`EventData::Unknown`]; a known type's missing or mistyped field is an error naming it,
    /// and so is a payload that would not re-encode to exactly `data`.
    pub fn decode(event_type: &str, data: &Value) -> Result<Self, DecodeError> {
        let decoded = Self::decode_fields(event_type, data)?;
        if !matches!(decoded, EventData::Unknown { .. }) && decoded.encode() != *data {
            return Err(DecodeError {
                event_type: event_type.to_owned(),
                field: None,
                problem: "is not in the form this release writes (it would not re-encode to the stored bytes)"
                    .to_owned(),
            });
        }
        Ok(decoded)
    }

    fn decode_fields(event_type: &str, data: &Value) -> Result<Self, DecodeError> {
        Ok(match event_type {
            BLOB_STORED => {
                let mut f = Fields::new(BLOB_STORED, data)?;
                let tier = f.text("tier")?;
                let tier = Tier::parse(&tier)
                    .ok_or_else(|| f.error("tier", format!("`{tier}` is not a known tier")))?;
                BlobStored {
                    blake3: f.parsed("blake3", "a blake3 digest")?,
                    sha256: f.parsed("sha256", "a sha256 digest")?,
                    size: f.uint("size")?,
                    tier,
                    extra: f.extra(),
                }
                .into()
            }
            PACKAGE_CREATED => {
                let mut f = Fields::new(PACKAGE_CREATED, data)?;
                let value = f.take("manifest")?;
                let manifest = Manifest::from_value(&value)
                    .map_err(|e| f.error("manifest", format!("is not a manifest: {e}")))?;
                PackageCreated {
                    manifest,
                    extra: f.extra(),
                }
                .into()
            }
            RETENTION_DEFAULT_APPLIED => {
                let mut f = Fields::new(RETENTION_DEFAULT_APPLIED, data)?;
                RetentionDefaultApplied {
                    retention_class: f.text("retention_class")?,
                    period: f.parsed("period", "a period")?,
                    expires_at: f.ts_or_null("expires_at")?,
                    extra: f.extra(),
                }
                .into()
            }
            RETENTION_EXTENDED => {
                let mut f = Fields::new(RETENTION_EXTENDED, data)?;
                RetentionExtended {
                    previous_expires_at: f.ts("previous_expires_at")?,
                    new_expires_at: f.ts("new_expires_at")?,
                    reason: f.text("reason")?,
                    extra: f.extra(),
                }
                .into()
            }
            RETENTION_HOLD_APPLIED => {
                let mut f = Fields::new(RETENTION_HOLD_APPLIED, data)?;
                RetentionHoldApplied {
                    hold_id: f.text("hold_id")?,
                    reason: f.text("reason")?,
                    extra: f.extra(),
                }
                .into()
            }
            RETENTION_HOLD_RELEASED => {
                let mut f = Fields::new(RETENTION_HOLD_RELEASED, data)?;
                RetentionHoldReleased {
                    hold_id: f.text("hold_id")?,
                    reason: f.text("reason")?,
                    extra: f.extra(),
                }
                .into()
            }
            RETENTION_DELETION_ELIGIBLE => {
                let mut f = Fields::new(RETENTION_DELETION_ELIGIBLE, data)?;
                RetentionDeletionEligible {
                    as_of: f.ts("as_of")?,
                    expires_at: f.ts("expires_at")?,
                    extra: f.extra(),
                }
                .into()
            }
            PACKAGE_PURGED => {
                let mut f = Fields::new(PACKAGE_PURGED, data)?;
                PackagePurged {
                    eligible_seq: f.uint_or_null("eligible_seq")?,
                    extra: f.extra(),
                }
                .into()
            }
            BLOB_DELETION_STARTED => {
                let mut f = Fields::new(BLOB_DELETION_STARTED, data)?;
                let blobs = f
                    .texts("blobs")?
                    .iter()
                    .map(|b| b.parse())
                    .collect::<Result<Vec<Blake3>, _>>()
                    .map_err(|e| f.error("blobs", format!("must be blake3 digests: {e}")))?;
                BlobDeletionStarted {
                    blobs,
                    extra: f.extra(),
                }
                .into()
            }
            BLOB_DELETED => {
                let mut f = Fields::new(BLOB_DELETED, data)?;
                BlobDeleted {
                    blake3: f.parsed("blake3", "a blake3 digest")?,
                    sha256: f.parsed("sha256", "a sha256 digest")?,
                    size: f.uint("size")?,
                    extra: f.extra(),
                }
                .into()
            }
            INTEGRITY_CHECKED => {
                let mut f = Fields::new(INTEGRITY_CHECKED, data)?;
                IntegrityChecked {
                    blake3: f.parsed("blake3", "a blake3 digest")?,
                    size: f.uint("size")?,
                    extra: f.extra(),
                }
                .into()
            }
            INTEGRITY_FAILED => {
                let mut f = Fields::new(INTEGRITY_FAILED, data)?;
                IntegrityFailed {
                    blake3: f.parsed("blake3", "a blake3 digest")?,
                    size: f.uint("size")?,
                    reason: f.text("reason")?,
                    extra: f.extra(),
                }
                .into()
            }
            BLOB_LOCK_EXTENDED => {
                let mut f = Fields::new(BLOB_LOCK_EXTENDED, data)?;
                let mode = f.text("mode")?;
                let mode = crate::blob::LockMode::parse(&mode)
                    .ok_or_else(|| f.error("mode", format!("`{mode}` is not a lock mode")))?;
                BlobLockExtended {
                    blake3: f.parsed("blake3", "a blake3 digest")?,
                    version_id: f.text("version_id")?,
                    mode,
                    retain_until: f.ts("retain_until")?,
                    extra: f.extra(),
                }
                .into()
            }
            BLOB_LEGAL_HOLD_SET => {
                let mut f = Fields::new(BLOB_LEGAL_HOLD_SET, data)?;
                let on = match f.take("on")? {
                    Value::Bool(on) => on,
                    _ => return Err(f.error("on", "must be a boolean")),
                };
                BlobLegalHoldSet {
                    blake3: f.parsed("blake3", "a blake3 digest")?,
                    version_id: f.text("version_id")?,
                    on,
                    extra: f.extra(),
                }
                .into()
            }
            OCI_TAG_SET => {
                let mut f = Fields::new(OCI_TAG_SET, data)?;
                OciTagSet {
                    repository: f.text("repository")?,
                    tag: f.text("tag")?,
                    manifest_sha256: f.parsed("manifest_sha256", "a sha256 digest")?,
                    extra: f.extra(),
                }
                .into()
            }
            AUTH_TOKEN_CREATED => {
                let mut f = Fields::new(AUTH_TOKEN_CREATED, data)?;
                AuthTokenCreated {
                    principal: f.text("principal")?,
                    roles: f.texts("roles")?,
                    token_sha256: f.parsed("token_sha256", "a sha256 digest")?,
                    expires_at: f.ts_or_absent("expires_at")?,
                    extra: f.extra(),
                }
                .into()
            }
            AUTH_TOKEN_REVOKED => {
                let mut f = Fields::new(AUTH_TOKEN_REVOKED, data)?;
                AuthTokenRevoked {
                    token_id: f.text("token_id")?,
                    token_sha256: f.parsed("token_sha256", "a sha256 digest")?,
                    reason: f.text("reason")?,
                    extra: f.extra(),
                }
                .into()
            }
            other => EventData::Unknown {
                event_type: other.to_owned(),
                data: data.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::FileEntry;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn manifest() -> Manifest {
        let content = b"hello";
        Manifest {
            name: "demo".into(),
            version: "1".into(),
            retention_class: "ephemeral".into(),
            files: vec![FileEntry {
                path: "hello.txt".into(),
                size: 5,
                blake3: Blake3::of(content),
                sha256: Sha256::of(content),
                media_type: Some("text/plain".into()),
            }],
            labels: BTreeMap::from([("team".to_owned(), "core".to_owned())]),
        }
    }

    /// One sample of every known type (with no unknown fields).
    fn samples() -> Vec<EventData> {
        let blake3 = Blake3::of(b"x");
        let sha256 = Sha256::of(b"x");
        vec![
            BlobStored {
                blake3,
                sha256,
                size: 1,
                tier: Tier::Hot,
                extra: Extra::new(),
            }
            .into(),
            PackageCreated {
                manifest: manifest(),
                extra: Extra::new(),
            }
            .into(),
            RetentionDefaultApplied {
                retention_class: "ephemeral".into(),
                period: "7d".parse().unwrap(),
                expires_at: Some(ts("2026-01-08T00:00:00Z")),
                extra: Extra::new(),
            }
            .into(),
            RetentionDefaultApplied {
                retention_class: "compliance-record".into(),
                period: Period::Permanent,
                expires_at: None,
                extra: Extra::new(),
            }
            .into(),
            RetentionExtended {
                previous_expires_at: ts("2026-01-08T00:00:00Z"),
                new_expires_at: ts("2026-02-08T00:00:00.123Z"),
                reason: "audit".into(),
                extra: Extra::new(),
            }
            .into(),
            RetentionHoldApplied {
                hold_id: "hold-4".into(),
                reason: "case".into(),
                extra: Extra::new(),
            }
            .into(),
            RetentionHoldReleased {
                hold_id: "hold-4".into(),
                reason: "closed".into(),
                extra: Extra::new(),
            }
            .into(),
            RetentionDeletionEligible {
                as_of: ts("2026-03-01T00:00:00Z"),
                expires_at: ts("2026-02-08T00:00:00Z"),
                extra: Extra::new(),
            }
            .into(),
            PackagePurged {
                eligible_seq: Some(9),
                extra: Extra::new(),
            }
            .into(),
            PackagePurged {
                eligible_seq: None,
                extra: Extra::new(),
            }
            .into(),
            BlobDeletionStarted {
                blobs: vec![blake3, Blake3::of(b"y")],
                extra: Extra::new(),
            }
            .into(),
            BlobDeleted {
                blake3,
                sha256,
                size: 1,
                extra: Extra::new(),
            }
            .into(),
            IntegrityChecked {
                blake3,
                size: 1,
                extra: Extra::new(),
            }
            .into(),
            IntegrityFailed {
                blake3,
                size: 1,
                reason: "blob is missing".into(),
                extra: Extra::new(),
            }
            .into(),
            AuthTokenCreated {
                principal: "ci".into(),
                roles: vec!["reader".into(), "writer".into()],
                token_sha256: sha256,
                expires_at: None,
                extra: Extra::new(),
            }
            .into(),
            AuthTokenCreated {
                principal: "ci".into(),
                roles: vec!["reader".into()],
                token_sha256: sha256,
                expires_at: Some(ts("2027-01-01T00:00:00Z")),
                extra: Extra::new(),
            }
            .into(),
            AuthTokenRevoked {
                token_id: "tok-3".into(),
                token_sha256: sha256,
                reason: "leaked".into(),
                extra: Extra::new(),
            }
            .into(),
            BlobLockExtended {
                blake3,
                version_id: "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"
                    .into(),
                mode: crate::blob::LockMode::Compliance,
                retain_until: ts("2037-11-23T10:00:00Z"),
                extra: Extra::new(),
            }
            .into(),
            BlobLegalHoldSet {
                blake3,
                version_id: "v2".into(),
                on: true,
                extra: Extra::new(),
            }
            .into(),
            OciTagSet {
                repository: "guide/app".into(),
                tag: "latest".into(),
                manifest_sha256: sha256,
                extra: Extra::new(),
            }
            .into(),
        ]
    }

    #[test]
    fn every_type_round_trips_through_its_encoding() {
        let samples = samples();
        let types: std::collections::BTreeSet<&str> =
            samples.iter().map(EventData::event_type).collect();
        assert_eq!(types.len(), 17, "a sample of every known type");
        for sample in samples {
            let value = sample.encode();
            let decoded = EventData::decode(sample.event_type(), &value).unwrap();
            assert_eq!(decoded, sample);
            assert_eq!(decoded.encode(), value);
            // And through canonical CBOR bytes.
            let bytes = crate::cbor::encode(&value).unwrap();
            let again =
                EventData::decode(sample.event_type(), &crate::cbor::decode(&bytes).unwrap())
                    .unwrap();
            assert_eq!(crate::cbor::encode(&again.encode()).unwrap(), bytes);
        }
    }

    #[test]
    fn unknown_fields_are_preserved() {
        for sample in samples() {
            let Value::Map(mut map) = sample.encode() else {
                panic!("payloads are maps");
            };
            map.insert("v2_note".to_owned(), Value::Text("from the future".into()));
            let value = Value::Map(map);
            let decoded = EventData::decode(sample.event_type(), &value).unwrap();
            assert_ne!(
                decoded,
                sample,
                "{}: the extra field is kept",
                sample.event_type()
            );
            assert_eq!(decoded.encode(), value, "{}", sample.event_type());
        }
    }

    #[test]
    fn unknown_types_are_preserved() {
        let data = Value::Array(vec![Value::Int(1), Value::Text("two".into())]);
        let decoded = EventData::decode("v9.future.thing", &data).unwrap();
        assert_eq!(
            decoded,
            EventData::Unknown {
                event_type: "v9.future.thing".into(),
                data: data.clone()
            }
        );
        assert_eq!(decoded.event_type(), "v9.future.thing");
        assert_eq!(decoded.encode(), data);
    }

    #[test]
    fn a_missing_required_field_is_an_error_naming_it() {
        for sample in samples() {
            let Value::Map(full) = sample.encode() else {
                panic!("payloads are maps");
            };
            for key in full.keys() {
                // The only optional field: a token without expiry has none.
                if sample.event_type() == AUTH_TOKEN_CREATED && key == "expires_at" {
                    continue;
                }
                let mut map = full.clone();
                map.remove(key);
                let error = EventData::decode(sample.event_type(), &Value::Map(map)).unwrap_err();
                assert_eq!(error.field.as_deref(), Some(key.as_str()), "{error}");
                assert_eq!(error.event_type, sample.event_type());
                assert!(error.to_string().contains("is missing"), "{error}");
            }
        }
    }

    #[test]
    fn mistyped_and_non_canonical_fields_are_errors() {
        let error = EventData::decode(BLOB_STORED, &Value::Text("not a map".into())).unwrap_err();
        assert_eq!(error.to_string(), "`v1.blob.stored` data: must be a map");

        let mut map = BTreeMap::new();
        map.insert("blake3".to_owned(), text(Blake3::of(b"x")));
        map.insert("sha256".to_owned(), text(Sha256::of(b"x")));
        map.insert("size".to_owned(), Value::Int(1));
        map.insert("tier".to_owned(), Value::Text("lukewarm".into()));
        let error = EventData::decode(BLOB_STORED, &Value::Map(map.clone())).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("tier"));
        map.insert("tier".to_owned(), Value::Text("hot".into()));
        map.insert("size".to_owned(), Value::Int(-1));
        let error = EventData::decode(BLOB_STORED, &Value::Map(map)).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("size"));

        // A timestamp with an offset means the same instant but other bytes: refused.
        let value = map_of(&[
            ("as_of", "2026-03-01T01:00:00+01:00"),
            ("expires_at", "2026-02-08T00:00:00Z"),
        ]);
        let error = EventData::decode(RETENTION_DELETION_ELIGIBLE, &value).unwrap_err();
        assert_eq!(error.field, None);
        assert!(error.to_string().contains("re-encode"), "{error}");
    }

    fn map_of(pairs: &[(&str, &str)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::Text((*v).to_owned())))
                .collect(),
        )
    }
}
