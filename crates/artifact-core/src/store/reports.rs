//! The result structs of store-level operations (sweep, audit).

use super::*;

/// The result of a sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepReport {
    /// The instant swept for.
    pub as_of: Timestamp,
    /// Packages marked eligible by this sweep.
    pub newly_eligible: Vec<PackageId>,
    /// Candidates the `retention_state` view nominated that the log does not support (left
    /// alone; an integrity problem of the views).
    pub refused: Vec<Refusal>,
    /// Expired packages kept for now by retention itself: referrers whose OCI subject is
    /// still retained (a later sweep marks them once it is not).
    pub deferred: Vec<Refusal>,
}

/// What [`ArtifactStore::audit`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// The verified head, when the chain is intact.
    pub head: Option<Head>,
    /// The first bad seq and why, when it is not.
    pub chain_error: Option<(u64, String)>,
    /// Events that break the store's rules (up to the first bad seq, if any).
    pub violations: Vec<crate::rules::RuleViolation>,
}

impl AuditReport {
    /// Whether the chain is intact and no event breaks a rule.
    pub fn ok(&self) -> bool {
        self.chain_error.is_none() && self.violations.is_empty()
    }

    /// As a data-model value: `{ok, head_seq, head_hash, violations}` plus `first_bad_seq` and
    /// `reason` when the chain is broken.
    pub fn to_value(&self) -> Value {
        let mut map = BTreeMap::from([
            ("ok".to_owned(), Value::Bool(self.ok())),
            (
                "violations".to_owned(),
                Value::Array(
                    self.violations
                        .iter()
                        .map(|v| {
                            Value::Map(BTreeMap::from([
                                ("seq".to_owned(), Value::Int(v.seq as i64)),
                                ("rule".to_owned(), Value::Text(v.rule.to_owned())),
                                ("detail".to_owned(), Value::Text(v.detail.clone())),
                            ]))
                        })
                        .collect(),
                ),
            ),
        ]);
        if let Some(head) = self.head {
            map.insert("head_seq".to_owned(), Value::Int(head.seq as i64));
            map.insert(
                "head_hash".to_owned(),
                head.hash
                    .map_or(Value::Null, |h| Value::Text(h.to_string())),
            );
        }
        if let Some((seq, reason)) = &self.chain_error {
            map.insert("first_bad_seq".to_owned(), Value::Int(*seq as i64));
            map.insert("reason".to_owned(), Value::Text(reason.clone()));
        }
        Value::Map(map)
    }
}

impl SweepReport {
    /// As a data-model value: `{as_of, newly_eligible, package_ids, refused, deferred}`.
    pub fn to_value(&self) -> Value {
        Value::Map(BTreeMap::from([
            ("as_of".to_owned(), Value::Text(self.as_of.to_string())),
            (
                "newly_eligible".to_owned(),
                Value::Int(self.newly_eligible.len() as i64),
            ),
            (
                "package_ids".to_owned(),
                Value::Array(
                    self.newly_eligible
                        .iter()
                        .map(|p| Value::Text(p.to_string()))
                        .collect(),
                ),
            ),
            (
                "refused".to_owned(),
                crate::maintenance::refusals_value(&self.refused),
            ),
            (
                "deferred".to_owned(),
                crate::maintenance::refusals_value(&self.deferred),
            ),
        ]))
    }
}
