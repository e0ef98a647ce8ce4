//! Typed results (DTOs): what the API answers for the store's reports, encoded once.
//!
//! Each DTO is the wire form of one report (`SweepReport`, `GcReport`, `VerifyReport`,
//! `FsckReport`, `AuditReport`, `MintedToken`, `RetentionStatus`, `Explanation`): its fields are exactly the members of the JSON document the
//! server answers and the CLI prints with `--json`. The server builds the DTO from the report
//! and answers with [`encode`]; the CLI builds the same DTO locally or [`decode`]s it from the
//! server's answer, and renders from its typed fields, so a renamed or missing member is a
//! decode error naming the route instead of a `-` in the output.
//!
//! Adding a field to a report: add it to the DTO here (and to its `From`), keep the report's
//! `to_value` in step (the unit tests below compare the two), and render it in the CLI.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::catalog::{BlobRecord, PackageRecord, RetentionStatus, TokenRecord};
use crate::cbor::Value;
use crate::log_facts::Refusal;
use crate::maintenance::{FsckReport, GcReport, VerifyReport};
use crate::retention::Explanation;
use crate::store::{AuditReport, MintedToken, SweepReport};

/// A typed result: what one route answers. Front ends name this bound instead of serde's.
pub trait Dto: Serialize + DeserializeOwned {}

impl Dto for SweepResult {}
impl Dto for GcResult {}
impl Dto for VerifyResult {}
impl Dto for FsckResult {}
impl Dto for AuditResult {}
impl Dto for TokenMintedResult {}
impl Dto for RetentionStatusResult {}
impl Dto for ExplainResult {}
impl Dto for PackageViewResult {}
impl Dto for PackagePageResult {}
impl Dto for PackageCreatedResult {}
impl Dto for TokenResult {}
impl Dto for Vec<TokenResult> {}
impl Dto for BlobResult {}
impl Dto for HoldAppliedResult {}
impl Dto for RebuildViewsResult {}
impl Dto for crate::tlog::Receipt {}

/// A DTO that did not encode into the data model (e.g. a number beyond ±(2^53−1)).
#[derive(Debug, thiserror::Error)]
#[error("the result does not encode: {0}")]
pub struct EncodeError(String);

/// An answer that did not decode into the DTO of its route.
#[derive(Debug, thiserror::Error)]
#[error("the answer of {route} does not decode: {reason}")]
pub struct DecodeError {
    /// The route that answered, e.g. `POST /admin/gc`.
    pub route: String,
    /// What was wrong (serde's message: the missing or mistyped member).
    pub reason: String,
}

/// Encodes a DTO as a data-model value (printed or answered as JCS).
///
/// # Errors
///
/// [`EncodeError`] when a member leaves the data model (integers beyond ±(2^53−1)).
pub fn encode<T: Dto>(dto: &T) -> Result<Value, EncodeError> {
    let bytes = serde_json::to_vec(dto).map_err(|e| EncodeError(e.to_string()))?;
    crate::jcs::from_json(&bytes).map_err(|e| EncodeError(e.to_string()))
}

/// Decodes the answer of `route` into its DTO.
///
/// # Errors
///
/// [`DecodeError`] naming `route` when a member is missing or has the wrong type.
pub fn decode<T: Dto>(value: &Value, route: &str) -> Result<T, DecodeError> {
    serde_json::from_value(crate::jcs::to_json_value(value)).map_err(|e| DecodeError {
        route: route.to_owned(),
        reason: e.to_string(),
    })
}

/// A candidate left alone because the log does not support what a view claimed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RefusalResult {
    /// The package or blob concerned.
    pub subject: String,
    /// What the view claimed and what the log says.
    pub detail: String,
}

impl From<&Refusal> for RefusalResult {
    fn from(refusal: &Refusal) -> Self {
        RefusalResult {
            subject: refusal.subject.clone(),
            detail: refusal.detail.clone(),
        }
    }
}

fn refusals(items: &[Refusal]) -> Vec<RefusalResult> {
    items.iter().map(RefusalResult::from).collect()
}

/// `POST /retention/sweep`: what a sweep marked eligible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SweepResult {
    /// The instant swept for (RFC 3339).
    pub as_of: String,
    /// How many packages this sweep marked eligible.
    pub newly_eligible: u64,
    /// Those packages.
    pub package_ids: Vec<String>,
    /// Candidates left alone.
    pub refused: Vec<RefusalResult>,
    /// Expired packages kept for now: referrers whose OCI subject is still retained.
    #[serde(default)]
    pub deferred: Vec<RefusalResult>,
}

impl From<&SweepReport> for SweepResult {
    fn from(report: &SweepReport) -> Self {
        SweepResult {
            as_of: report.as_of.to_string(),
            newly_eligible: report.newly_eligible.len() as u64,
            package_ids: report
                .newly_eligible
                .iter()
                .map(ToString::to_string)
                .collect(),
            refused: refusals(&report.refused),
            deferred: refusals(&report.deferred),
        }
    }
}

/// `POST /admin/gc`: what a GC run did (or would do).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GcResult {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Packages purged.
    pub purged: Vec<String>,
    /// Recorded blobs deleted (BLAKE3 hex).
    pub deleted_blobs: Vec<String>,
    /// Unrecorded blobs deleted (BLAKE3 hex).
    pub orphans_deleted: Vec<String>,
    /// Bytes reclaimed by recorded blobs.
    pub bytes_reclaimed: u64,
    /// Candidates left alone.
    pub refused: Vec<RefusalResult>,
    /// Candidates kept for now, retried by a later run: unreferenced blobs the storage still
    /// locks (Object Lock), eligible referrers whose OCI subject is retained.
    #[serde(default)]
    pub kept: Vec<RefusalResult>,
}

impl From<&GcReport> for GcResult {
    fn from(report: &GcReport) -> Self {
        GcResult {
            dry_run: report.dry_run,
            purged: report.purged.iter().map(ToString::to_string).collect(),
            deleted_blobs: report
                .deleted
                .iter()
                .map(|b| b.blake3.to_string())
                .collect(),
            orphans_deleted: report.orphans.iter().map(ToString::to_string).collect(),
            bytes_reclaimed: report.bytes_reclaimed,
            refused: refusals(&report.refused),
            kept: refusals(&report.kept),
        }
    }
}

/// One blob that failed its check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FailedBlobResult {
    /// The blob (BLAKE3 hex).
    pub blake3: String,
    /// What was wrong.
    pub reason: String,
}

/// `POST /admin/verify`: what a scrub found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct VerifyResult {
    /// Blobs checked.
    pub checked: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Whether every blob passed.
    pub ok: bool,
    /// Blobs that failed.
    pub failed: Vec<FailedBlobResult>,
}

impl From<&VerifyReport> for VerifyResult {
    fn from(report: &VerifyReport) -> Self {
        VerifyResult {
            checked: report.checked,
            bytes: report.bytes,
            ok: report.failed.is_empty(),
            failed: report
                .failed
                .iter()
                .map(|f| FailedBlobResult {
                    blake3: f.blake3.to_string(),
                    reason: f.reason.clone(),
                })
                .collect(),
        }
    }
}

/// One fsck finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FindingResult {
    /// A short kind (`missing-blob`, `chain`, …).
    pub kind: String,
    /// What it concerns.
    pub subject: String,
    /// Details.
    pub detail: String,
}

/// `GET /admin/fsck`: what fsck found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FsckResult {
    /// Whether nothing is wrong.
    pub ok: bool,
    /// Live packages checked.
    pub packages: u64,
    /// Live files checked.
    pub files: u64,
    /// The verified head seq of the log (`null` when none was verified).
    pub head_seq: Option<u64>,
    /// Problems.
    pub findings: Vec<FindingResult>,
    /// Observations that are not problems.
    pub notes: Vec<String>,
}

impl From<&FsckReport> for FsckResult {
    fn from(report: &FsckReport) -> Self {
        FsckResult {
            ok: report.ok(),
            packages: report.packages,
            files: report.files,
            head_seq: report.head.map(|h| h.seq),
            findings: report
                .findings
                .iter()
                .map(|f| FindingResult {
                    kind: f.kind.to_owned(),
                    subject: f.subject.clone(),
                    detail: f.detail.clone(),
                })
                .collect(),
            notes: report.notes.clone(),
        }
    }
}

/// One event that breaks a store rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ViolationResult {
    /// The event's seq.
    pub seq: u64,
    /// The rule it breaks.
    pub rule: String,
    /// Details.
    pub detail: String,
}

/// The verified head of an intact chain (present together, or not at all).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditHeadResult {
    /// Last sequence number (0 for an empty log).
    pub head_seq: u64,
    /// Hash of the last event (`null` for an empty log).
    pub head_hash: Option<String>,
}

/// Where and why the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChainBreakResult {
    /// The first bad seq.
    pub first_bad_seq: u64,
    /// Why it is bad.
    pub reason: String,
}

/// `GET /audit/verify`: `{ok, violations}`, plus `head_seq`/`head_hash` when the chain is
/// intact and `first_bad_seq`/`reason` when it is not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditResult {
    /// Whether the chain is intact and no event breaks a rule.
    pub ok: bool,
    /// Events that break the store's rules.
    pub violations: Vec<ViolationResult>,
    /// The verified head, when the chain is intact.
    #[serde(flatten)]
    pub head: Option<AuditHeadResult>,
    /// The first bad seq and why, when the chain is broken.
    #[serde(flatten)]
    pub chain_error: Option<ChainBreakResult>,
}

impl From<&AuditReport> for AuditResult {
    fn from(report: &AuditReport) -> Self {
        AuditResult {
            ok: report.ok(),
            violations: report
                .violations
                .iter()
                .map(|v| ViolationResult {
                    seq: v.seq,
                    rule: v.rule.to_owned(),
                    detail: v.detail.clone(),
                })
                .collect(),
            head: report.head.map(|h| AuditHeadResult {
                head_seq: h.seq,
                head_hash: h.hash.map(|hash| hash.to_string()),
            }),
            chain_error: report
                .chain_error
                .as_ref()
                .map(|(seq, reason)| ChainBreakResult {
                    first_bad_seq: *seq,
                    reason: reason.clone(),
                }),
        }
    }
}

/// `POST /admin/tokens` (201): the token just minted, as recorded, plus the token text
/// (shown this once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TokenMintedResult {
    /// The bearer token (`ast_…`).
    pub token: String,
    /// Its record (the members of [`TokenResult`], at the top level; never revoked when just
    /// minted).
    #[serde(flatten)]
    pub record: TokenResult,
}

impl From<&MintedToken> for TokenMintedResult {
    fn from(minted: &MintedToken) -> Self {
        TokenMintedResult {
            token: minted.token.clone(),
            record: TokenResult::from(&minted.record),
        }
    }
}

/// One active hold of a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HoldResult {
    /// Hold id.
    pub hold_id: String,
    /// Why.
    pub reason: String,
    /// Who applied it.
    pub actor: String,
    /// When (RFC 3339).
    pub applied_at: String,
    /// The `hold_applied` event.
    pub applied_seq: u64,
}

/// `GET /packages/{pkg}/retention` and the answers of extensions and releases: a package's
/// retention state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RetentionStatusResult {
    /// The package.
    pub package_id: String,
    /// Its class.
    pub retention_class: String,
    /// The class default period at creation (`730d`, `permanent`).
    pub default_period: String,
    /// Expiry computed at creation (`null` = permanent).
    pub default_expires_at: Option<String>,
    /// Current expiry (`null` = permanent).
    pub current_expires_at: Option<String>,
    /// How many holds are active.
    pub active_holds: u64,
    /// The active holds.
    pub holds: Vec<HoldResult>,
    /// Marked eligible by the sweeper.
    pub eligible_for_deletion: bool,
    /// The `deletion_eligible` event, while eligible.
    pub eligible_seq: Option<u64>,
    /// The last event that changed this state.
    pub updated_seq: u64,
}

impl From<&RetentionStatus> for RetentionStatusResult {
    fn from(status: &RetentionStatus) -> Self {
        RetentionStatusResult {
            package_id: status.package_id.to_string(),
            retention_class: status.retention_class.clone(),
            default_period: status.default_period.clone(),
            default_expires_at: status.default_expires_at.map(|t| t.to_string()),
            current_expires_at: status.current_expires_at.map(|t| t.to_string()),
            active_holds: status.active_holds.len() as u64,
            holds: status
                .active_holds
                .iter()
                .map(|h| HoldResult {
                    hold_id: h.hold_id.clone(),
                    reason: h.reason.clone(),
                    actor: h.actor.clone(),
                    applied_at: h.applied_at.to_string(),
                    applied_seq: h.applied_seq,
                })
                .collect(),
            eligible_for_deletion: status.eligible_for_deletion,
            eligible_seq: status.eligible_seq,
            updated_seq: status.updated_seq,
        }
    }
}

/// One fact of an explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ExplainLineResult {
    /// The event it comes from.
    pub seq: u64,
    /// The fact in words.
    pub text: String,
}

/// `GET /packages/{pkg}/retention/explain`: why a package is retained, or eligible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ExplainResult {
    /// The package.
    pub package_id: String,
    /// The instant the verdict is for (RFC 3339).
    pub as_of: String,
    /// The facts, in seq order.
    pub lines: Vec<ExplainLineResult>,
    /// The conclusion in one sentence.
    pub verdict: String,
    /// Current expiry (`null` = permanent).
    pub retained_until: Option<String>,
    /// Whether the package is marked eligible for deletion.
    pub eligible_for_deletion: bool,
    /// Seqs of the events the verdict depends on.
    pub cites: Vec<u64>,
}

impl From<&Explanation> for ExplainResult {
    fn from(explanation: &Explanation) -> Self {
        ExplainResult {
            package_id: explanation.package_id.to_string(),
            as_of: explanation.as_of.to_string(),
            lines: explanation
                .lines
                .iter()
                .map(|line| ExplainLineResult {
                    seq: line.seq,
                    text: line.text.clone(),
                })
                .collect(),
            verdict: explanation.verdict.clone(),
            retained_until: explanation.retained_until.map(|t| t.to_string()),
            eligible_for_deletion: explanation.eligible_for_deletion,
            cites: explanation.cites.clone(),
        }
    }
}

/// `GET /packages/{pkg}`, `show`, `retention status`: a package with its retention state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PackageViewResult {
    /// Its retention state (the members of [`RetentionStatusResult`], at the top level).
    #[serde(flatten)]
    pub retention: RetentionStatusResult,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// The `v1.package.created` event.
    pub created_seq: u64,
    /// Who created it.
    pub created_by: String,
    /// Number of files.
    pub file_count: u64,
    /// Sum of file sizes.
    pub total_size: u64,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The `v1.package.purged` event, once purged.
    pub purged_seq: Option<u64>,
}

impl PackageViewResult {
    /// The view of `record` with its retention state.
    pub fn new(record: &PackageRecord, retention: &RetentionStatus) -> Self {
        PackageViewResult {
            retention: RetentionStatusResult::from(retention),
            name: record.name.clone(),
            version: record.version.clone(),
            created_at: record.created_at.to_string(),
            created_seq: record.created_seq,
            created_by: record.actor.clone(),
            file_count: record.file_count,
            total_size: record.total_size,
            labels: record.labels.clone(),
            purged_seq: record.purged_seq,
        }
    }

    /// The package id.
    pub fn package_id(&self) -> &str {
        &self.retention.package_id
    }
}

/// `GET /packages`: one page of packages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PackagePageResult {
    /// The packages, in creation order.
    pub packages: Vec<PackageViewResult>,
    /// The `after` of the next page (the last package's `created_seq`), `null` on the last.
    pub next_cursor: Option<u64>,
}

/// `POST /packages`: the package created (or the identical one already stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PackageCreatedResult {
    /// The package with its retention state.
    #[serde(flatten)]
    pub package: PackageViewResult,
    /// Its current expiry (`null` = permanent), for scripts that only want this.
    pub expires_at: Option<String>,
    /// Whether this request created it (`false`: an identical manifest was already stored).
    pub created: bool,
}

/// `GET /admin/tokens` (an array of these) and the answer of a revocation: a token's record,
/// never the token itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TokenResult {
    /// Token id (`tok-<seq>`).
    pub token_id: String,
    /// Who it authenticates.
    pub principal: String,
    /// The roles it grants.
    pub roles: Vec<String>,
    /// When it was minted (RFC 3339).
    pub created_at: String,
    /// When it expires (`null` = never).
    pub expires_at: Option<String>,
    /// Whether it was revoked.
    pub revoked: bool,
}

impl From<&TokenRecord> for TokenResult {
    fn from(record: &TokenRecord) -> Self {
        TokenResult {
            token_id: record.token_id.clone(),
            principal: record.principal.clone(),
            roles: record.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            created_at: record.created_at.to_string(),
            expires_at: record.expires_at.map(|t| t.to_string()),
            revoked: record.revoked_seq.is_some(),
        }
    }
}

/// The answer of a finished upload and of `blob put`: a recorded blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BlobResult {
    /// `blake3:<hex>`.
    pub blake3: String,
    /// `sha256:<hex>`.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Retrieval tier (`hot`, `cold`).
    pub tier: String,
    /// The `v1.blob.stored` event.
    pub stored_seq: u64,
    /// When it was recorded (RFC 3339).
    pub stored_at: String,
}

impl From<&BlobRecord> for BlobResult {
    fn from(record: &BlobRecord) -> Self {
        BlobResult {
            blake3: record.info.blake3.to_string(),
            sha256: record.info.sha256.to_string(),
            size: record.info.size,
            tier: record.tier.as_str().to_owned(),
            stored_seq: record.stored_seq,
            stored_at: record.stored_at.to_string(),
        }
    }
}

/// `POST /packages/{pkg}/retention/holds`: the hold applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HoldAppliedResult {
    /// The new hold's id.
    pub hold_id: String,
}

/// `POST /admin/rebuild-views`: how many events the views were rebuilt from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RebuildViewsResult {
    /// Events replayed.
    pub events_replayed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{Blake3, BlobInfo};
    use crate::event::Head;
    use crate::maintenance::{Finding, IntegrityFailure};
    use crate::rules::RuleViolation;
    use crate::time::ymd;

    fn refusal() -> Refusal {
        Refusal {
            subject: "package x".to_owned(),
            detail: "view says eligible, log \"disagrees\"\n".to_owned(),
        }
    }

    /// The DTO's serde JSON is exactly the report's `to_value` JSON, its [`encode`] is the
    /// same value, and it round-trips through JSON text and through [`decode`].
    fn check<T>(dto: &T, expected: &Value)
    where
        T: Dto + PartialEq + std::fmt::Debug,
    {
        assert_eq!(
            serde_json::to_value(dto).unwrap(),
            crate::jcs::to_json_value(expected)
        );
        assert_eq!(&encode(dto).unwrap(), expected);
        assert_eq!(
            crate::jcs::to_jcs(&encode(dto).unwrap()),
            crate::jcs::to_jcs(expected)
        );
        let text = serde_json::to_string(dto).unwrap();
        assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), dto);
        assert_eq!(&decode::<T>(expected, "GET /x").unwrap(), dto);
    }

    #[test]
    fn sweep_result_is_the_report_json() {
        let empty = SweepReport {
            as_of: ymd(2026, 1, 2),
            newly_eligible: vec![],
            refused: vec![],
            deferred: vec![],
        };
        check(&SweepResult::from(&empty), &empty.to_value());
        let full = SweepReport {
            as_of: ymd(2026, 1, 2),
            newly_eligible: vec![Blake3::of(b"a"), Blake3::of(b"b")],
            refused: vec![refusal()],
            deferred: vec![refusal()],
        };
        check(&SweepResult::from(&full), &full.to_value());
    }

    #[test]
    fn gc_result_is_the_report_json() {
        let empty = GcReport::default();
        check(&GcResult::from(&empty), &empty.to_value());
        let full = GcReport {
            dry_run: true,
            purged: vec![Blake3::of(b"p")],
            deleted: vec![BlobInfo::of(b"blob")],
            orphans: vec![Blake3::of(b"o")],
            bytes_reclaimed: 4,
            refused: vec![refusal()],
            kept: vec![refusal()],
        };
        check(&GcResult::from(&full), &full.to_value());
    }

    #[test]
    fn verify_result_is_the_report_json() {
        let empty = VerifyReport::default();
        check(&VerifyResult::from(&empty), &empty.to_value());
        let full = VerifyReport {
            checked: 3,
            bytes: 1 << 40,
            failed: vec![IntegrityFailure {
                blake3: Blake3::of(b"f"),
                reason: "bytes do not match".to_owned(),
            }],
        };
        check(&VerifyResult::from(&full), &full.to_value());
    }

    #[test]
    fn fsck_result_is_the_report_json() {
        let empty = FsckReport::default();
        check(&FsckResult::from(&empty), &empty.to_value());
        let full = FsckReport {
            findings: vec![Finding {
                kind: "missing-blob",
                subject: "blob y".to_owned(),
                detail: "not in the backend".to_owned(),
            }],
            notes: vec!["1 unrecorded blob".to_owned()],
            packages: 2,
            files: 5,
            head: Some(Head {
                seq: 9,
                hash: Some(Blake3::of(b"h")),
            }),
        };
        check(&FsckResult::from(&full), &full.to_value());
    }

    #[test]
    fn audit_result_is_the_report_json() {
        let empty_log = AuditReport {
            head: Some(Head { seq: 0, hash: None }),
            chain_error: None,
            violations: vec![],
        };
        check(&AuditResult::from(&empty_log), &empty_log.to_value());
        let nothing = AuditReport {
            head: None,
            chain_error: None,
            violations: vec![],
        };
        check(&AuditResult::from(&nothing), &nothing.to_value());
        let broken = AuditReport {
            head: None,
            chain_error: Some((4, "hash mismatch".to_owned())),
            violations: vec![RuleViolation {
                seq: 2,
                rule: "unknown-actor",
                detail: "actor z".to_owned(),
            }],
        };
        check(&AuditResult::from(&broken), &broken.to_value());
        let intact = AuditReport {
            head: Some(Head {
                seq: 7,
                hash: Some(Blake3::of(b"h")),
            }),
            chain_error: None,
            violations: vec![],
        };
        check(&AuditResult::from(&intact), &intact.to_value());
    }

    #[test]
    fn token_minted_result_is_the_record_json_plus_the_token() {
        use crate::catalog::TokenRecord;
        for (roles, expires_at, revoked_seq) in [
            (vec![], None, None),
            (
                vec![crate::auth::Role::Admin, crate::auth::Role::Reader],
                Some(ymd(2027, 1, 1)),
                Some(8),
            ),
        ] {
            let minted = MintedToken {
                token: "ast_secret".to_owned(),
                record: TokenRecord {
                    token_id: "tok-3".to_owned(),
                    token_sha256: "ab".repeat(32),
                    principal: "ci".to_owned(),
                    roles: roles.into_iter().collect(),
                    created_seq: 3,
                    created_at: ymd(2026, 1, 2),
                    expires_at,
                    revoked_seq,
                },
            };
            let mut expected = minted.record.to_value();
            if let Value::Map(map) = &mut expected {
                map.insert("token".to_owned(), Value::Text(minted.token.clone()));
            }
            check(&TokenMintedResult::from(&minted), &expected);
        }
    }

    #[test]
    fn retention_status_result_is_the_status_json() {
        use crate::catalog::HoldRecord;
        let empty = RetentionStatus {
            package_id: Blake3::of(b"p"),
            retention_class: "build-cache".to_owned(),
            default_period: "permanent".to_owned(),
            default_expires_at: None,
            current_expires_at: None,
            active_holds: vec![],
            eligible_for_deletion: false,
            eligible_seq: None,
            updated_seq: 1,
        };
        check(&RetentionStatusResult::from(&empty), &empty.to_value());
        let full = RetentionStatus {
            default_period: "30d".to_owned(),
            default_expires_at: Some(ymd(2026, 2, 1)),
            current_expires_at: Some(ymd(2026, 3, 1)),
            active_holds: vec![HoldRecord {
                hold_id: "hold-4".to_owned(),
                reason: "legal".to_owned(),
                actor: "alice".to_owned(),
                applied_at: ymd(2026, 1, 5),
                applied_seq: 4,
                released_seq: None,
            }],
            eligible_for_deletion: true,
            eligible_seq: Some(6),
            updated_seq: 6,
            ..empty
        };
        check(&RetentionStatusResult::from(&full), &full.to_value());
    }

    #[test]
    fn explain_result_is_the_explanation_json() {
        use crate::retention::ExplainLine;
        let empty = Explanation {
            package_id: Blake3::of(b"p"),
            as_of: ymd(2026, 1, 2),
            lines: vec![],
            verdict: "unknown".to_owned(),
            retained_until: None,
            eligible_for_deletion: false,
            cites: vec![],
        };
        check(&ExplainResult::from(&empty), &empty.to_value());
        let full = Explanation {
            lines: vec![ExplainLine {
                seq: 3,
                text: "created with class `build-cache`".to_owned(),
            }],
            retained_until: Some(ymd(2026, 3, 1)),
            eligible_for_deletion: true,
            cites: vec![3, 5],
            ..empty
        };
        check(&ExplainResult::from(&full), &full.to_value());
    }

    #[test]
    fn a_renamed_member_is_a_decode_error_naming_the_route() {
        let mut value = SweepReport {
            as_of: ymd(2026, 1, 2),
            newly_eligible: vec![],
            refused: vec![],
            deferred: vec![],
        }
        .to_value();
        if let Value::Map(map) = &mut value {
            let n = map.remove("newly_eligible").unwrap();
            map.insert("eligible".to_owned(), n);
        }
        let err = decode::<SweepResult>(&value, "POST /retention/sweep").unwrap_err();
        assert_eq!(err.route, "POST /retention/sweep");
        assert!(
            err.to_string()
                .starts_with("the answer of POST /retention/sweep does not decode: missing field `newly_eligible`"),
            "{err}"
        );
    }

    #[test]
    fn a_number_beyond_the_data_model_does_not_encode() {
        let report = VerifyReport {
            checked: u64::MAX,
            ..VerifyReport::default()
        };
        assert!(encode(&VerifyResult::from(&report)).is_err());
    }

    #[test]
    fn package_token_and_blob_results_are_the_record_json() {
        use crate::catalog::{BlobRecord, PackageRecord, TokenRecord};
        let retention = RetentionStatus {
            package_id: Blake3::of(b"p"),
            retention_class: "build-cache".to_owned(),
            default_period: "30d".to_owned(),
            default_expires_at: Some(ymd(2026, 2, 1)),
            current_expires_at: None,
            active_holds: vec![],
            eligible_for_deletion: false,
            eligible_seq: None,
            updated_seq: 1,
        };
        for (labels, purged_seq) in [
            (std::collections::BTreeMap::new(), None),
            (
                std::collections::BTreeMap::from([("git".to_owned(), "abc".to_owned())]),
                Some(9),
            ),
        ] {
            let record = PackageRecord {
                package_id: Blake3::of(b"p"),
                name: "app".to_owned(),
                version: "1.0".to_owned(),
                retention_class: "build-cache".to_owned(),
                created_at: ymd(2026, 1, 2),
                created_seq: 1,
                actor: "ci".to_owned(),
                file_count: 2,
                total_size: 1 << 40,
                manifest_size: 300,
                labels,
                purged_seq,
            };
            let view = PackageViewResult::new(&record, &retention);
            check(&view, &record.to_value(&retention));
            assert_eq!(view.package_id(), Blake3::of(b"p").to_string());
        }
        let token = TokenRecord {
            token_id: "tok-3".to_owned(),
            token_sha256: "ab".repeat(32),
            principal: "ci".to_owned(),
            roles: [crate::auth::Role::Writer].into_iter().collect(),
            created_seq: 3,
            created_at: ymd(2026, 1, 2),
            expires_at: Some(ymd(2027, 1, 1)),
            revoked_seq: Some(5),
        };
        check(&TokenResult::from(&token), &token.to_value());
        let blob = BlobRecord {
            info: BlobInfo::of(b"blob"),
            tier: crate::blob::Tier::Hot,
            stored_seq: 2,
            stored_at: ymd(2026, 1, 2),
            deleting_seq: None,
        };
        check(&BlobResult::from(&blob), &blob.to_value());
    }

    #[test]
    fn package_pages_and_creations_round_trip() {
        let text = r#"{"packages":[],"next_cursor":17}"#;
        let page: PackagePageResult = serde_json::from_str(text).unwrap();
        assert_eq!(page.next_cursor, Some(17));
        assert_eq!(serde_json::to_string(&page).unwrap(), text);
        let last: PackagePageResult =
            serde_json::from_str(r#"{"packages":[],"next_cursor":null}"#).unwrap();
        assert_eq!(last.next_cursor, None);
    }
}
