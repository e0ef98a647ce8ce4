//! The store's rules checked over the log itself (SPEC §5a), pure: replays events in seq order
//! through the retention kernel ([`RetentionState`]) and reports every event that breaks a
//! rule. No IO.
//!
//! The hash chain proves the log was not edited after the fact; this check proves that what the
//! log says happened was allowed: no expiry moved earlier, no package marked eligible while
//! held or before its expiry (by the `at` of the marking event, which is the store's clock),
//! no purge of a package that was not eligible, no bytes deleted while a live package
//! referenced them, no manifest deleted, no actor the store does not know. `audit verify` and
//! `fsck` run it; a store whose views were edited to fool the sweeper or GC shows up here once
//! the views are rebuilt, even though every event is chained correctly.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::digest::{Blake3, PackageId};
use crate::error::Error;
use crate::event::{Event, EventData};
use crate::manifest::Manifest;
use crate::retention::{RetentionState, validate_reason};
use crate::time::Timestamp;

/// The actors the store itself records for work nobody asked for (the server's schedules and
/// recovery at open). Any other `system:` actor in the log is unknown; tokens cannot be minted
/// for `system:` principals.
pub const SYSTEM_ACTORS: [&str; 4] = [
    "system:sweeper",
    "system:gc",
    "system:verify",
    "system:recovery",
];

/// How far an event's `at` may lie before an earlier event's before the log says a writer's
/// clock ran ahead (or went back): replicas' clocks differ by a little, never by this much.
pub const CLOCK_SKEW_TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// One event that breaks a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleViolation {
    /// The offending event.
    pub seq: u64,
    /// A short name of the rule (`expiry-moved-earlier`, `eligible-while-held`,
    /// `eligible-before-expiry`, `purged-not-eligible`, `deleted-while-referenced`,
    /// `manifest-deleted`, `unknown-actor`, `unknown-package`, `unknown-hold`, `missing-reason`, `malformed`, `tag-mismatch`, `checkpoint-mismatch` (added by
    /// [`crate::ArtifactStore::audit`]), …).
    pub rule: &'static str,
    /// What happened, naming the package or blob.
    pub detail: String,
}

/// Per-package facts the rules need beyond the retention state.
#[derive(Debug, Default)]
struct PackageFacts {
    /// The retention state folded so far (`None` before `default_applied`).
    state: Option<RetentionState>,
    /// Distinct blobs the manifest references.
    files: Vec<Blake3>,
    /// Whether `v1.package.created` was seen.
    created: bool,
    /// The package's name and the SHA-256 of its OCI `manifest.json`, if it has one.
    oci_manifest: Option<(String, crate::digest::Sha256)>,
}

/// Replays the log through the rules. Feed every event in seq order with [`LogRules::check`],
/// then read [`LogRules::violations`].
#[derive(Debug, Default)]
pub struct LogRules {
    packages: HashMap<PackageId, PackageFacts>,
    /// Blob → number of live (created, not purged) packages referencing it.
    live_refs: HashMap<Blake3, u32>,
    /// Manifest blobs (package ids): kept forever.
    manifests: HashSet<Blake3>,
    /// The latest `at` so far, and its seq.
    latest: Option<(Timestamp, u64)>,
    /// Blob → (version, retain-until, seq) of its latest recorded storage lock.
    locks: HashMap<Blake3, (String, Timestamp, u64)>,
    violations: Vec<RuleViolation>,
}

impl LogRules {
    /// An empty replay.
    pub fn new() -> Self {
        Self::default()
    }

    /// The violations found so far, in seq order.
    pub fn violations(&self) -> &[RuleViolation] {
        &self.violations
    }

    /// Consumes the replay, returning its violations.
    pub fn into_violations(self) -> Vec<RuleViolation> {
        self.violations
    }

    /// Whether a live package references `blob` (as of the events checked so far).
    pub fn is_live_reference(&self, blob: &Blake3) -> bool {
        self.live_refs.get(blob).is_some_and(|n| *n > 0) || self.manifests.contains(blob)
    }

    fn flag(&mut self, event: &Event, rule: &'static str, detail: String) {
        self.violations.push(RuleViolation {
            seq: event.seq,
            rule,
            detail,
        });
    }

    /// Checks one event against the rules, then applies it. An event whose data does not
    /// decode as its type's payload is `malformed` (and changes nothing).
    pub fn check(&mut self, event: &Event) {
        self.check_actor(event);
        self.check_clock(event);
        let data = match event.typed() {
            Ok(data) => data,
            Err(e) => {
                let detail = match e {
                    Error::Integrity { reason, .. } => reason,
                    other => other.to_string(),
                };
                self.flag(event, "malformed", detail);
                return;
            }
        };
        match &data {
            EventData::PackageCreated(created) => self.created(event, &created.manifest),
            EventData::BlobDeletionStarted(started) => {
                for blake3 in &started.blobs {
                    self.check_deletable(event, blake3);
                }
            }
            EventData::BlobDeleted(deleted) => self.check_deletable(event, &deleted.blake3),
            EventData::BlobLockExtended(lock) => {
                // Object Lock retention only ever grows on one version (ADR 0015).
                if let Some((version, until, seq)) = self.locks.get(&lock.blake3)
                    && *version == lock.version_id
                    && lock.retain_until < *until
                {
                    let detail = format!(
                        "blob {} version {}: retain-until {} is earlier than {until} recorded at seq {seq}",
                        lock.blake3, lock.version_id, lock.retain_until
                    );
                    self.flag(event, "lock-shortened", detail);
                }
                self.locks.insert(
                    lock.blake3,
                    (lock.version_id.clone(), lock.retain_until, event.seq),
                );
            }
            EventData::RetentionDefaultApplied(_)
            | EventData::RetentionExtended(_)
            | EventData::RetentionHoldApplied(_)
            | EventData::RetentionHoldReleased(_)
            | EventData::RetentionDeletionEligible(_)
            | EventData::PackagePurged(_) => self.retention(event, &data),
            EventData::OciTagSet(tag) => self.tag_set(event, tag),
            _ => {}
        }
    }

    /// A tag names a live package of its repository whose `manifest.json` is the digest.
    fn tag_set(&mut self, event: &Event, tag: &crate::event::types::OciTagSet) {
        let facts = event
            .package_id
            .and_then(|id| self.packages.get(&id).map(|f| (id, f)))
            .filter(|(_, f)| f.created);
        let Some((package_id, facts)) = facts else {
            let detail = format!(
                "tag `{}` of `{}` names a package that was never created",
                tag.tag, tag.repository
            );
            self.flag(event, "unknown-package", detail);
            return;
        };
        let purged = facts.state.as_ref().and_then(|s| s.purged_seq);
        let wanted = Some((tag.repository.clone(), tag.manifest_sha256));
        let detail = if let Some(purged_seq) = purged {
            format!(
                "tag `{}` of `{}` set to package {package_id}, purged at seq {purged_seq}",
                tag.tag, tag.repository
            )
        } else if facts.oci_manifest != wanted {
            format!(
                "tag `{}` of `{}` names manifest {}, which is not package {package_id}'s",
                tag.tag, tag.repository, tag.manifest_sha256
            )
        } else {
            return;
        };
        self.flag(event, "tag-mismatch", detail);
    }

    fn check_actor(&mut self, event: &Event) {
        if crate::auth::validate_principal(&event.actor).is_err() {
            let detail = format!(
                "actor {:?} is not a valid principal name",
                event.actor.escape_debug().to_string()
            );
            self.flag(event, "unknown-actor", detail);
        } else if event.actor.starts_with("system:")
            && !SYSTEM_ACTORS.contains(&event.actor.as_str())
        {
            let detail = format!(
                "actor `{}` is in the reserved `system:` namespace but is not one of the store's own ({})",
                event.actor,
                SYSTEM_ACTORS.join(", ")
            );
            self.flag(event, "unknown-actor", detail);
        }
    }

    fn check_clock(&mut self, event: &Event) {
        match self.latest {
            Some((latest, seq))
                if event.at.unix_millis() + CLOCK_SKEW_TOLERANCE_MS < latest.unix_millis() =>
            {
                let detail = format!(
                    "recorded at {}, but seq {seq} before it was recorded at {latest}: a writer's clock ran ahead of the store's (or went back); decisions seq {seq} made by that clock are suspect",
                    event.at
                );
                self.flag(event, "clock-went-backwards", detail);
                // One finding per jump: later events are judged against this one.
                self.latest = Some((event.at, event.seq));
            }
            Some((latest, _)) if latest >= event.at => {}
            _ => self.latest = Some((event.at, event.seq)),
        }
    }

    fn check_deletable(&mut self, event: &Event, blob: &Blake3) {
        if self.manifests.contains(blob) {
            self.flag(
                event,
                "manifest-deleted",
                format!("blob {blob} is the manifest of a package; manifests are kept forever"),
            );
        } else if let Some(n) = self.live_refs.get(blob).filter(|n| **n > 0) {
            let detail = format!("blob {blob} is referenced by {n} live package(s)");
            self.flag(event, "deleted-while-referenced", detail);
        }
    }

    fn created(&mut self, event: &Event, manifest: &Manifest) {
        let Some(package_id) = event.package_id else {
            self.flag(
                event,
                "malformed",
                "package.created has no package_id".to_owned(),
            );
            return;
        };
        let facts = self.packages.entry(package_id).or_default();
        if facts.created {
            self.flag(
                event,
                "duplicate-package",
                format!("package {package_id} was already created"),
            );
            return;
        }
        facts.created = true;
        facts.oci_manifest = manifest
            .file(crate::store::OCI_MANIFEST_FILE)
            .map(|f| (manifest.name.clone(), f.sha256));
        let files: BTreeSet<Blake3> = manifest.files.iter().map(|f| f.blake3).collect();
        facts.files = files.into_iter().collect();
        for blob in &facts.files {
            *self.live_refs.entry(*blob).or_default() += 1;
        }
        self.manifests.insert(package_id);
    }

    fn retention(&mut self, event: &Event, data: &EventData) {
        let Some(package_id) = event.package_id else {
            let detail = format!("{} names no package", event.event_type);
            self.flag(event, "malformed", detail);
            return;
        };
        let Some(facts) = self.packages.get(&package_id).filter(|f| f.created) else {
            let detail = format!(
                "{} for package {package_id}, which was never created",
                event.event_type
            );
            self.flag(event, "unknown-package", detail);
            return;
        };
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        match (&facts.state, data) {
            (Some(_), EventData::RetentionDefaultApplied(_)) => problems.push((
                "duplicate-default",
                format!("package {package_id} already had its class default applied"),
            )),
            (None, EventData::RetentionDefaultApplied(p)) => {
                let expected = event.at.checked_add(p.period);
                if expected != p.expires_at {
                    problems.push((
                        "expiry-not-default",
                        format!(
                            "package {package_id}: default `{}` applied at {} must expire at {}, not {}",
                            p.period,
                            event.at,
                            show(expected),
                            show(p.expires_at)
                        ),
                    ));
                }
            }
            (None, _) => problems.push((
                "unknown-package",
                format!(
                    "{} for package {package_id} before its class default was applied",
                    event.event_type
                ),
            )),
            (Some(state), kind) => {
                if let Some(purged) = state.purged_seq {
                    problems.push((
                        "after-purge",
                        format!("package {package_id} was purged at seq {purged}"),
                    ));
                }
                let reason = match kind {
                    EventData::RetentionExtended(p) => Some(&p.reason),
                    EventData::RetentionHoldApplied(p) => Some(&p.reason),
                    EventData::RetentionHoldReleased(p) => Some(&p.reason),
                    _ => None,
                };
                if let Some(reason) = reason
                    && let Err(e) = validate_reason(reason)
                {
                    problems.push(("missing-reason", format!("package {package_id}: {e}")));
                }
                let expired = state.current_expires_at.is_some_and(|t| t <= event.at);
                let holds = state.active_holds();
                match kind {
                    EventData::RetentionExtended(p) => {
                        // The kernel's own rule (the reason is its own finding,
                        // `missing-reason`, so a stand-in is passed here).
                        if let Err(e) = state.check_extend(p.new_expires_at, "-") {
                            problems.push((
                                "expiry-moved-earlier",
                                format!("package {package_id}: {e}"),
                            ));
                        }
                        if let Some(current) = state.current_expires_at
                            && p.previous_expires_at != current
                        {
                            problems.push((
                                "wrong-previous-expiry",
                                format!(
                                    "package {package_id}: extension claims the expiry was {}, it was {current}",
                                    p.previous_expires_at
                                ),
                            ));
                        }
                    }
                    EventData::RetentionHoldApplied(p) if state.holds.contains_key(&p.hold_id) => {
                        problems.push((
                            "duplicate-hold",
                            format!(
                                "package {package_id}: hold {} was already applied",
                                p.hold_id
                            ),
                        ))
                    }
                    EventData::RetentionHoldReleased(p) => {
                        if let Err(e) = state.check_release(&p.hold_id, "-") {
                            problems.push(("unknown-hold", format!("package {package_id}: {e}")));
                        }
                    }
                    EventData::RetentionDeletionEligible(p) => {
                        if holds > 0 {
                            problems.push((
                                "eligible-while-held",
                                format!(
                                    "package {package_id} marked eligible with {holds} active hold(s)"
                                ),
                            ));
                        }
                        if !expired {
                            problems.push((
                                "eligible-before-expiry",
                                format!(
                                    "package {package_id} marked eligible at {} but retained until {}",
                                    event.at,
                                    show(state.current_expires_at)
                                ),
                            ));
                        }
                        if state.eligible_for_deletion {
                            problems.push((
                                "eligible-twice",
                                format!(
                                    "package {package_id} was already eligible (seq {})",
                                    state.eligible_seq.unwrap_or_default()
                                ),
                            ));
                        }
                        if p.as_of > event.at {
                            problems.push((
                                "sweep-in-the-future",
                                format!(
                                    "package {package_id} marked by a sweep as of {}, later than the store's clock ({})",
                                    p.as_of,
                                    event.at
                                ),
                            ));
                        }
                    }
                    EventData::PackagePurged(_) => {
                        if !state.eligible_for_deletion {
                            problems.push((
                                "purged-not-eligible",
                                format!("package {package_id} purged without being eligible"),
                            ));
                        }
                        if holds > 0 {
                            problems.push((
                                "purged-while-held",
                                format!("package {package_id} purged with {holds} active hold(s)"),
                            ));
                        }
                        if !expired {
                            problems.push((
                                "purged-before-expiry",
                                format!(
                                    "package {package_id} purged at {} but retained until {}",
                                    event.at,
                                    show(state.current_expires_at)
                                ),
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        for (rule, detail) in problems {
            self.flag(event, rule, detail);
        }
        let purged_now = matches!(data, EventData::PackagePurged(_));
        if let Some(facts) = self.packages.get_mut(&package_id) {
            let was_purged = facts.state.as_ref().is_some_and(|s| s.purged_seq.is_some());
            RetentionState::apply_typed(&mut facts.state, event, data);
            if purged_now && !was_purged {
                for blob in &facts.files {
                    if let Some(n) = self.live_refs.get_mut(blob) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
        }
    }
}

fn show(t: Option<Timestamp>) -> String {
    t.map_or("never (permanent)".to_owned(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cbor::Value;
    use crate::digest::Sha256;
    use crate::event::types;
    use crate::manifest::FileEntry;

    struct Log {
        events: Vec<Event>,
    }

    impl Log {
        fn new() -> Self {
            Self { events: Vec::new() }
        }
        fn push(
            &mut self,
            event_type: &str,
            package_id: Option<PackageId>,
            actor: &str,
            at: &str,
            data: Vec<(&str, Value)>,
        ) {
            self.events.push(Event {
                seq: self.events.len() as u64 + 1,
                event_type: event_type.to_owned(),
                package_id,
                actor: actor.to_owned(),
                at: at.parse().unwrap(),
                data: Value::Map(data.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
                prev: None,
            });
        }
        /// `actor` places hold `hold_id` on `id` at `at`.
        fn hold(&mut self, id: PackageId, actor: &str, at: &str, hold_id: &str, reason: &str) {
            self.push(
                types::RETENTION_HOLD_APPLIED,
                Some(id),
                actor,
                at,
                vec![("hold_id", text(hold_id)), ("reason", text(reason))],
            );
        }
        /// GC purges `id` at `at`, citing its eligibility event.
        fn purged(&mut self, id: PackageId, at: &str, eligible_seq: i64) {
            self.push(
                types::PACKAGE_PURGED,
                Some(id),
                "system:gc",
                at,
                vec![("eligible_seq", Value::Int(eligible_seq))],
            );
        }
        /// `actor` moves `id`'s expiry from `previous` to `new` at `at`.
        fn extended(&mut self, id: PackageId, at: &str, previous: &str, new: &str, reason: &str) {
            self.push(
                types::RETENTION_EXTENDED,
                Some(id),
                "ops",
                at,
                vec![
                    ("previous_expires_at", text(previous)),
                    ("new_expires_at", text(new)),
                    ("reason", text(reason)),
                ],
            );
        }
        /// `legal` releases hold `hold_id` on `id` at `at`.
        fn released(&mut self, id: PackageId, at: &str, hold_id: &str, reason: &str) {
            self.push(
                types::RETENTION_HOLD_RELEASED,
                Some(id),
                "legal",
                at,
                vec![("hold_id", text(hold_id)), ("reason", text(reason))],
            );
        }
        /// `actor` marks `id` eligible at `at`, for a sweep as of `as_of`.
        fn eligible(&mut self, id: PackageId, actor: &str, at: &str, as_of: &str, expires: &str) {
            self.push(
                types::RETENTION_DELETION_ELIGIBLE,
                Some(id),
                actor,
                at,
                vec![("as_of", text(as_of)), ("expires_at", text(expires))],
            );
        }
        /// `actor` deletes the bytes `x` (blob `blob`) at `at`.
        fn blob_deleted(&mut self, blob: Blake3, actor: &str, at: &str) {
            self.push(
                types::BLOB_DELETED,
                None,
                actor,
                at,
                vec![
                    ("blake3", text(&blob.to_string())),
                    ("sha256", text(&Sha256::of(b"x").to_string())),
                    ("size", Value::Int(1)),
                ],
            );
        }
        /// GC starts deleting `blob` at `at`.
        fn deletion_started(&mut self, blob: Blake3, at: &str) {
            self.push(
                types::BLOB_DELETION_STARTED,
                None,
                "system:gc",
                at,
                vec![("blobs", Value::Array(vec![text(&blob.to_string())]))],
            );
        }
        fn violations(&self) -> Vec<(u64, &'static str)> {
            let mut rules = LogRules::new();
            for event in &self.events {
                rules.check(event);
            }
            rules
                .into_violations()
                .into_iter()
                .map(|v| (v.seq, v.rule))
                .collect()
        }
    }

    fn text(t: &str) -> Value {
        Value::Text(t.to_owned())
    }

    /// A package created at 2026-01-01 with a 10-day class and one file `blob`.
    fn created(log: &mut Log, blob: Blake3) -> PackageId {
        let manifest = Manifest {
            name: "p".to_owned(),
            version: format!("{}", log.events.len()),
            retention_class: "short".to_owned(),
            files: vec![FileEntry {
                path: "f".to_owned(),
                size: 1,
                blake3: blob,
                sha256: Sha256::of(b"x"),
                media_type: None,
            }],
            labels: BTreeMap::new(),
        };
        let id = Blake3::of(&manifest.canonical_bytes().unwrap());
        let at = "2026-01-01T00:00:00Z";
        log.push(
            types::PACKAGE_CREATED,
            Some(id),
            "ci",
            at,
            vec![("manifest", manifest.to_value())],
        );
        log.push(
            types::RETENTION_DEFAULT_APPLIED,
            Some(id),
            "ci",
            at,
            vec![
                ("retention_class", text("short")),
                ("period", text("10d")),
                ("expires_at", text("2026-01-11T00:00:00.000Z")),
            ],
        );
        id
    }

    #[test]
    fn a_tag_must_name_a_live_oci_manifest_of_its_repository() {
        let mut log = Log::new();
        let manifest_sha256 = Sha256::of(b"{}");
        let manifest = Manifest {
            name: "guide/app".to_owned(),
            version: "sha256-00".to_owned(),
            retention_class: "short".to_owned(),
            files: vec![FileEntry {
                path: crate::store::OCI_MANIFEST_FILE.to_owned(),
                size: 2,
                blake3: Blake3::of(b"{}"),
                sha256: manifest_sha256,
                media_type: None,
            }],
            labels: BTreeMap::new(),
        };
        let id = Blake3::of(&manifest.canonical_bytes().unwrap());
        log.push(
            types::PACKAGE_CREATED,
            Some(id),
            "ci",
            "2026-01-01T00:00:00Z",
            vec![("manifest", manifest.to_value())],
        );
        let tag = |log: &mut Log, package: PackageId, repository: &str, digest: Sha256| {
            log.push(
                types::OCI_TAG_SET,
                Some(package),
                "ci",
                "2026-01-01T00:00:01Z",
                vec![
                    ("repository", text(repository)),
                    ("tag", text("latest")),
                    ("manifest_sha256", text(&digest.to_string())),
                ],
            );
        };
        tag(&mut log, id, "guide/app", manifest_sha256);
        tag(&mut log, id, "guide/other", manifest_sha256);
        tag(&mut log, id, "guide/app", Sha256::of(b"x"));
        tag(
            &mut log,
            Blake3::of(b"nothing"),
            "guide/app",
            manifest_sha256,
        );
        assert_eq!(
            log.violations(),
            vec![
                (3, "tag-mismatch"),
                (4, "tag-mismatch"),
                (5, "unknown-package")
            ]
        );
    }

    #[test]
    fn a_lawful_lifecycle_has_no_violations() {
        let mut log = Log::new();
        let blob = Blake3::of(b"x");
        let id = created(&mut log, blob);
        log.extended(
            id,
            "2026-01-05T00:00:00Z",
            "2026-01-11T00:00:00.000Z",
            "2026-01-20T00:00:00.000Z",
            "audit",
        );
        log.hold(id, "legal", "2026-01-06T00:00:00Z", "hold-4", "case");
        log.released(id, "2026-01-25T00:00:00Z", "hold-4", "closed");
        log.eligible(
            id,
            "system:sweeper",
            "2026-01-26T00:00:00Z",
            "2026-01-26T00:00:00.000Z",
            "2026-01-20T00:00:00.000Z",
        );
        log.purged(id, "2026-01-27T00:00:00Z", 6);
        log.deletion_started(blob, "2026-01-27T00:00:00Z");
        log.blob_deleted(blob, "system:gc", "2026-01-27T00:00:00Z");
        assert_eq!(log.violations(), vec![]);
    }

    #[test]
    fn eligibility_and_purge_before_expiry_or_while_held_are_violations() {
        let mut log = Log::new();
        let blob = Blake3::of(b"x");
        let id = created(&mut log, blob);
        // A sweep "as of" the far future, recorded at 2026-01-02 (store clock).
        log.eligible(
            id,
            "ops",
            "2026-01-02T00:00:00Z",
            "9999-12-31T23:59:59.000Z",
            "2026-01-11T00:00:00.000Z",
        );
        log.hold(id, "legal", "2026-01-03T00:00:00Z", "hold-4", "case");
        // Eligible while held (an edited view fooled the sweeper), then purged while held.
        log.eligible(
            id,
            "system:sweeper",
            "2026-02-01T00:00:00Z",
            "2026-02-01T00:00:00.000Z",
            "2026-01-11T00:00:00.000Z",
        );
        log.purged(id, "2026-02-01T00:00:00Z", 5);
        assert_eq!(
            log.violations(),
            vec![
                (3, "eligible-before-expiry"),
                (3, "sweep-in-the-future"),
                (5, "eligible-while-held"),
                (6, "purged-while-held"),
            ]
        );
    }

    #[test]
    fn earlier_expiry_deleting_referenced_bytes_and_unknown_actors_are_violations() {
        let mut log = Log::new();
        let blob = Blake3::of(b"x");
        let id = created(&mut log, blob);
        log.extended(
            id,
            "2026-01-05T00:00:00Z",
            "2026-01-11T00:00:00.000Z",
            "2026-01-08T00:00:00.000Z",
            "oops",
        );
        log.blob_deleted(blob, "system:janitor", "2026-01-06T00:00:00Z");
        // The manifest blob (the package id) is in a deletion.
        log.deletion_started(id, "2026-01-06T00:00:00Z");
        log.released(id, "2026-01-07T00:00:00Z", "hold-99", "never held");
        log.hold(id, "legal", "2026-01-07T00:00:00Z", "hold-7", "  ");
        assert_eq!(
            log.violations(),
            vec![
                (3, "expiry-moved-earlier"),
                (4, "unknown-actor"),
                (4, "deleted-while-referenced"),
                (5, "manifest-deleted"),
                (6, "unknown-hold"),
                (7, "missing-reason"),
            ]
        );
    }

    #[test]
    fn an_event_whose_data_does_not_decode_is_malformed_naming_the_field() {
        let mut log = Log::new();
        let id = created(&mut log, Blake3::of(b"x"));
        log.push(
            types::RETENTION_HOLD_APPLIED,
            Some(id),
            "legal",
            "2026-01-03T00:00:00Z",
            vec![("reason", text("case"))],
        );
        let mut rules = LogRules::new();
        for event in &log.events {
            rules.check(event);
        }
        let violations = rules.into_violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!((violations[0].seq, violations[0].rule), (3, "malformed"));
        assert_eq!(
            violations[0].detail,
            "`v1.retention.hold_applied` data: `hold_id` is missing"
        );
    }
}
