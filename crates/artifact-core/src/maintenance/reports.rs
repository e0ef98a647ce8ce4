//! The result structs of maintenance operations (GC, scrub, fsck).

use super::*;

/// What a GC run did (or, for a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Packages purged.
    pub purged: Vec<PackageId>,
    /// Recorded blobs deleted.
    pub deleted: Vec<BlobInfo>,
    /// Unrecorded bytes deleted (orphans of interrupted writes).
    pub orphans: Vec<Blake3>,
    /// Bytes reclaimed by recorded blobs (orphans' sizes are not counted).
    pub bytes_reclaimed: u64,
    /// Candidates a view nominated (an eligible package, an unreferenced blob, a blob marked
    /// as being deleted) that the log does not support: kept, and reported. An integrity
    /// problem of the views, never a licence to delete.
    pub refused: Vec<Refusal>,
    /// Candidates kept for now, not an error, and retried by a later run: unreferenced blobs
    /// the storage still locks (Object Lock), eligible referrers whose OCI subject is retained.
    pub kept: Vec<Refusal>,
}

impl GcReport {
    /// As a data-model value.
    pub fn to_value(&self) -> Value {
        let ids = |items: Vec<String>| Value::Array(items.into_iter().map(Value::Text).collect());
        Value::Map(BTreeMap::from([
            ("dry_run".to_owned(), Value::Bool(self.dry_run)),
            (
                "purged".to_owned(),
                ids(self.purged.iter().map(|p| p.to_string()).collect()),
            ),
            (
                "deleted_blobs".to_owned(),
                ids(self.deleted.iter().map(|b| b.blake3.to_string()).collect()),
            ),
            (
                "orphans_deleted".to_owned(),
                ids(self.orphans.iter().map(|b| b.to_string()).collect()),
            ),
            (
                "bytes_reclaimed".to_owned(),
                Value::Int(self.bytes_reclaimed as i64),
            ),
            ("refused".to_owned(), refusals_value(&self.refused)),
            ("kept".to_owned(), refusals_value(&self.kept)),
        ]))
    }
}

/// One blob that failed a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrityFailure {
    /// The blob.
    pub blake3: Blake3,
    /// What was wrong.
    pub reason: String,
}

/// What a scrub found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blobs checked.
    pub checked: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Blobs that failed.
    pub failed: Vec<IntegrityFailure>,
}

impl VerifyReport {
    /// As a data-model value.
    pub fn to_value(&self) -> Value {
        Value::Map(BTreeMap::from([
            ("checked".to_owned(), Value::Int(self.checked as i64)),
            ("bytes".to_owned(), Value::Int(self.bytes as i64)),
            ("ok".to_owned(), Value::Bool(self.failed.is_empty())),
            (
                "failed".to_owned(),
                Value::Array(
                    self.failed
                        .iter()
                        .map(|f| {
                            Value::Map(BTreeMap::from([
                                ("blake3".to_owned(), Value::Text(f.blake3.to_string())),
                                ("reason".to_owned(), Value::Text(f.reason.clone())),
                            ]))
                        })
                        .collect(),
                ),
            ),
        ]))
    }
}

/// One fsck finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// A short kind: `missing-blob`, `wrong-size`, `failed-check`, `views`, `chain`, `tree`,
    /// `rule`, `orphaned-staging`.
    pub kind: &'static str,
    /// What it concerns.
    pub subject: String,
    /// Details.
    pub detail: String,
}

/// What fsck found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Problems; fsck fails when there is any.
    pub findings: Vec<Finding>,
    /// Observations that are not problems (e.g. unrecorded bytes GC will reclaim).
    pub notes: Vec<String>,
    /// Live packages checked.
    pub packages: u64,
    /// Live files checked.
    pub files: u64,
    /// The verified head of the log.
    pub head: Option<Head>,
}

impl FsckReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// As a data-model value.
    pub fn to_value(&self) -> Value {
        Value::Map(BTreeMap::from([
            ("ok".to_owned(), Value::Bool(self.ok())),
            ("packages".to_owned(), Value::Int(self.packages as i64)),
            ("files".to_owned(), Value::Int(self.files as i64)),
            (
                "head_seq".to_owned(),
                self.head.map_or(Value::Null, |h| Value::Int(h.seq as i64)),
            ),
            (
                "findings".to_owned(),
                Value::Array(
                    self.findings
                        .iter()
                        .map(|f| {
                            Value::Map(BTreeMap::from([
                                ("kind".to_owned(), Value::Text(f.kind.to_owned())),
                                ("subject".to_owned(), Value::Text(f.subject.clone())),
                                ("detail".to_owned(), Value::Text(f.detail.clone())),
                            ]))
                        })
                        .collect(),
                ),
            ),
            (
                "notes".to_owned(),
                Value::Array(self.notes.iter().cloned().map(Value::Text).collect()),
            ),
        ]))
    }
}

/// View mismatches as a data-model array of `{subject, detail}`.
pub fn refusals_value(mismatches: &[Refusal]) -> Value {
    Value::Array(
        mismatches
            .iter()
            .map(|m| {
                Value::Map(BTreeMap::from([
                    ("subject".to_owned(), Value::Text(m.subject.clone())),
                    ("detail".to_owned(), Value::Text(m.detail.clone())),
                ]))
            })
            .collect(),
    )
}
