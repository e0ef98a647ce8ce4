//! Model-based test of the retention lifecycle (SPEC §2.4, §2.5, §3), in the manner of sled's
//! `fuzz_model.rs`: random sequences of operations — including `Reopen`, sled's "Reboot" — run
//! against a real embedded store on a manual clock and against a small in-memory model, and
//! after every operation the two must agree:
//!
//! - the library accepts exactly what the model accepts (and rejects with the same kind of
//!   error), and a rejected operation leaves the log head unchanged;
//! - an accepted one appends exactly the events the model expects;
//! - expiry never moves earlier, a held package is never eligible;
//! - `retention_status` equals the model and `RetentionState::fold` of the package's events;
//! - each package has exactly as many `v1.retention.deletion_eligible` events as the model has
//!   eligibility transitions (never duplicated).
//!
//! At the end the views equal a replay of the log and the hash chain verifies.

use artifact_core::raw_sql;
use std::collections::BTreeSet;

use artifact_core::PackageRef;
use artifact_core::config::RetentionClasses;
use artifact_core::digest::{Blake3, PackageId};
use artifact_core::event::types;
use artifact_core::retention::RetentionState;
use artifact_core::time::{Timestamp, ymd};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

use crate::support::{
    Backend, Fixture, by_id, days, error_kind, events_of, head_seq, manifest, plus_days,
};

/// At most this many distinct packages; further creations repeat an existing one.
const MAX_PACKAGES: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Ephemeral,
    BuildCache,
    ReleaseEvidence,
    PermanentRecord,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Ephemeral => "ephemeral",
            Class::BuildCache => "build-cache",
            Class::ReleaseEvidence => "release-evidence",
            Class::PermanentRecord => "permanent-record",
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Creates the next package; once there are `MAX_PACKAGES`, re-posts package
    /// `class as usize % n` with this class (identical → idempotent, different → conflict).
    CreatePackage(Class),
    /// Extends to the current expiry plus `days_from_current` (≤ 0 must be refused).
    Extend {
        pkg: usize,
        by_name: bool,
        days_from_current: i64,
        reason: String,
    },
    Hold {
        pkg: usize,
        by_name: bool,
        reason: String,
    },
    /// Releases the `k`-th most recent hold ever applied (possibly already released), or with
    /// `None` (or too few holds) an unknown hold; on the hold's own package when `pkg` is
    /// `None`, else on package `pkg` (possibly not the hold's).
    Release {
        pkg: Option<usize>,
        hold: Option<usize>,
        reason: String,
    },
    Sweep,
    AdvanceClock {
        days: i64,
    },
    RebuildViews,
    /// Drops the store and opens the same data directory again.
    Reopen,
    /// A sweep as of `days_ahead` after the clock: always refused, nothing changes.
    FutureSweep {
        days_ahead: i64,
    },
    /// An insider edits package `pkg`'s rows in the views (no event), then a sweep and a GC
    /// run, then the views are rebuilt from the log. The sweep may mark and the GC may purge
    /// only what the model (the log) allows: never before expiry, never while held.
    TamperThenCollect {
        pkg: usize,
        edit: ViewEdit,
    },
}

/// What an insider changes in the views of one package.
#[derive(Clone, Copy, Debug)]
enum ViewEdit {
    /// `active_holds = 0` and the package's `holds` rows deleted.
    ClearHolds,
    /// `current_expires_at` = the epoch.
    ExpireNow,
    /// Marked eligible (and unheld) in `retention_state`.
    ForgeEligible,
    /// All three.
    All,
}

impl ViewEdit {
    fn statements(self) -> &'static [&'static str] {
        const CLEAR: [&str; 2] = [
            "UPDATE retention_state SET active_holds = 0 WHERE package_id = $1",
            "DELETE FROM holds WHERE package_id = $1",
        ];
        const EXPIRE: [&str; 1] =
            ["UPDATE retention_state SET current_expires_at = 0 WHERE package_id = $1"];
        const ELIGIBLE: [&str; 1] = [
            "UPDATE retention_state SET eligible_for_deletion = 1, eligible_seq = 1, active_holds = 0 WHERE package_id = $1",
        ];
        const ALL: [&str; 4] = [CLEAR[0], CLEAR[1], EXPIRE[0], ELIGIBLE[0]];
        match self {
            ViewEdit::ClearHolds => &CLEAR,
            ViewEdit::ExpireNow => &EXPIRE,
            ViewEdit::ForgeEligible => &ELIGIBLE,
            ViewEdit::All => &ALL,
        }
    }
}

fn class_strategy() -> impl Strategy<Value = Class> {
    prop_oneof![
        Just(Class::Ephemeral),
        Just(Class::BuildCache),
        Just(Class::ReleaseEvidence),
        Just(Class::PermanentRecord),
    ]
}

fn reason_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z]{1,10}( [a-z]{1,10})?",
        1 => Just(String::new()),
        1 => Just(" \t ".to_owned()),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let days_from_current = prop_oneof![1 => -40i64..=0, 3 => 1i64..=400];
    let advance = prop_oneof![0i64..=10, 0i64..=800];
    prop_oneof![
        2 => class_strategy().prop_map(Op::CreatePackage),
        3 => (0..MAX_PACKAGES, any::<bool>(), days_from_current, reason_strategy()).prop_map(
            |(pkg, by_name, days_from_current, reason)| Op::Extend {
                pkg,
                by_name,
                days_from_current,
                reason,
            }
        ),
        3 => (0..MAX_PACKAGES, any::<bool>(), reason_strategy())
            .prop_map(|(pkg, by_name, reason)| Op::Hold { pkg, by_name, reason }),
        3 => (
            prop_oneof![3 => Just(None), 1 => (0..MAX_PACKAGES).prop_map(Some)],
            prop_oneof![1 => Just(None), 4 => (0usize..4).prop_map(Some)],
            reason_strategy()
        )
            .prop_map(|(pkg, hold, reason)| Op::Release { pkg, hold, reason }),
        3 => Just(Op::Sweep),
        3 => advance.prop_map(|days| Op::AdvanceClock { days }),
        1 => Just(Op::RebuildViews),
        1 => Just(Op::Reopen),
        1 => (1i64..=2_000_000).prop_map(|days_ahead| Op::FutureSweep { days_ahead }),
        2 => (
            0..MAX_PACKAGES,
            prop_oneof![
                Just(ViewEdit::ClearHolds),
                Just(ViewEdit::ExpireNow),
                Just(ViewEdit::ForgeEligible),
                Just(ViewEdit::All),
            ]
        )
            .prop_map(|(pkg, edit)| Op::TamperThenCollect { pkg, edit }),
    ]
}

#[derive(Debug)]
struct ModelPackage {
    package_id: PackageId,
    name: String,
    class: Class,
    content: Vec<u8>,
    default_expires_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    eligible: bool,
    eligibility_transitions: usize,
    /// Purged by a GC (retention no longer applies; re-pushing is a conflict).
    purged: bool,
}

#[derive(Debug)]
struct ModelHold {
    package: usize,
    hold_id: String,
    active: bool,
}

/// The reference: what the store must look like.
#[derive(Debug)]
struct Model {
    now: Timestamp,
    head: u64,
    classes: RetentionClasses,
    packages: Vec<ModelPackage>,
    holds: Vec<ModelHold>,
}

/// What the model decides for one operation.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Accept { new_events: u64 },
    Reject(&'static str),
}

impl Model {
    fn active_holds(&self, package: usize) -> BTreeSet<String> {
        self.holds
            .iter()
            .filter(|h| h.package == package && h.active)
            .map(|h| h.hold_id.clone())
            .collect()
    }

    fn package_ref(&self, package: usize, by_name: bool) -> PackageRef {
        let model = &self.packages[package];
        if by_name {
            PackageRef::NameVersion {
                name: model.name.clone(),
                version: "1".to_owned(),
            }
        } else {
            PackageRef::Id(model.package_id)
        }
    }

    /// The packages a sweep now must mark.
    fn due_packages(&self) -> BTreeSet<PackageId> {
        (0..self.packages.len())
            .filter(|&i| self.due(i))
            .map(|i| self.packages[i].package_id)
            .collect()
    }

    fn due(&self, package: usize) -> bool {
        let model = &self.packages[package];
        !model.eligible
            && !model.purged
            && self.active_holds(package).is_empty()
            && model.expires_at.is_some_and(|t| t <= self.now)
    }
}

/// A sweep on the store's clock by `sweeper`; an error fails the case.
async fn sweep(fixture: &Fixture) -> Result<artifact_core::SweepReport, TestCaseError> {
    fixture
        .store
        .sweep("sweeper", None)
        .await
        .map_err(|e| TestCaseError::fail(format!("sweep: {e}")))
}

fn is_blank(reason: &str) -> bool {
    reason.trim().is_empty()
}

/// A package id no package has.
fn unknown_package() -> PackageRef {
    PackageRef::Id(Blake3::of(b"no such package"))
}

/// Compares the library's outcome with the model's decision; on a rejection the head must
/// not have moved, on acceptance it must have moved by exactly the expected events.
fn check_decision<T: std::fmt::Debug>(
    op: &Op,
    decision: &Decision,
    result: &artifact_core::Result<T>,
    head_before: u64,
    head_after: u64,
) -> Result<(), TestCaseError> {
    match (decision, result) {
        (Decision::Accept { new_events }, Ok(_)) => {
            prop_assert_eq!(
                head_after,
                head_before + new_events,
                "{:?} was accepted but appended the wrong number of events",
                op
            );
        }
        (Decision::Reject(kind), Err(error)) => {
            prop_assert_eq!(
                error_kind(error),
                *kind,
                "{:?} was rejected with the wrong error: {}",
                op,
                error
            );
            prop_assert_eq!(
                head_after,
                head_before,
                "{:?} was rejected ({}) but the log moved",
                op,
                error
            );
        }
        (decision, result) => {
            return Err(TestCaseError::fail(format!(
                "{op:?}: model decided {decision:?}, library returned {result:?}"
            )));
        }
    }
    Ok(())
}

async fn run_op(fixture: &mut Fixture, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let head_before = head_seq(&fixture.store).await;
    prop_assert_eq!(head_before, model.head);
    match op {
        Op::CreatePackage(class) => {
            if model.packages.len() < MAX_PACKAGES {
                let n = model.packages.len();
                let name = format!("model-pkg-{n}");
                let content = format!("payload of package {n}").into_bytes();
                let manifest = manifest(&name, "1", class.name(), &[("data.bin", &content)]);
                fixture
                    .store
                    .ingest_blob("ci", &content[..], &[])
                    .await
                    .map_err(|e| TestCaseError::fail(format!("ingest: {e}")))?;
                let created = fixture
                    .store
                    .create_package("ci", &manifest)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("create: {e}")))?;
                // blob.stored (file) + blob.stored (manifest) + package.created + default_applied.
                let head_after = head_seq(&fixture.store).await;
                prop_assert_eq!(head_after, head_before + 4);
                prop_assert!(created.created);
                let period = model
                    .classes
                    .period(class.name())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let expires_at = model.now.checked_add(period);
                prop_assert_eq!(created.retention.current_expires_at, expires_at);
                prop_assert_eq!(created.retention.default_expires_at, expires_at);
                model.packages.push(ModelPackage {
                    package_id: created.package_id,
                    name,
                    class: *class,
                    content,
                    default_expires_at: expires_at,
                    expires_at,
                    eligible: false,
                    eligibility_transitions: 0,
                    purged: false,
                });
                model.head = head_after;
            } else {
                let index = *class as usize % model.packages.len();
                let existing = &model.packages[index];
                let manifest = manifest(
                    &existing.name,
                    "1",
                    class.name(),
                    &[("data.bin", &existing.content)],
                );
                let decision = if existing.class == *class && !existing.purged {
                    Decision::Accept { new_events: 0 }
                } else {
                    Decision::Reject("Conflict")
                };
                let result = fixture.store.create_package("ci", &manifest).await;
                let head_after = head_seq(&fixture.store).await;
                check_decision(op, &decision, &result, head_before, head_after)?;
                if let Ok(created) = result {
                    prop_assert!(!created.created, "an identical repeat must not create");
                    prop_assert_eq!(created.package_id, existing.package_id);
                }
            }
        }
        Op::Extend {
            pkg,
            by_name,
            days_from_current,
            reason,
        } => {
            let (package_ref, until, decision) = if model.packages.is_empty() {
                let decision = if is_blank(reason) {
                    Decision::Reject("InvalidInput")
                } else {
                    Decision::Reject("NotFound")
                };
                (unknown_package(), plus_days(model.now, 1), decision)
            } else {
                let index = pkg % model.packages.len();
                let package = &model.packages[index];
                let current = package.expires_at;
                let until = plus_days(current.unwrap_or(model.now), *days_from_current);
                let decision = if is_blank(reason) {
                    Decision::Reject("InvalidInput")
                } else if package.purged || current.is_none() {
                    // Purged: retention no longer applies; permanent: nothing to extend.
                    Decision::Reject("Conflict")
                } else if *days_from_current <= 0 {
                    Decision::Reject("InvalidInput")
                } else {
                    Decision::Accept { new_events: 1 }
                };
                (model.package_ref(index, *by_name), until, decision)
            };
            let result = fixture
                .store
                .extend("operator", &package_ref, until, reason)
                .await;
            let head_after = head_seq(&fixture.store).await;
            check_decision(op, &decision, &result, head_before, head_after)?;
            if let Ok(status) = result {
                let index = pkg % model.packages.len();
                let package = &mut model.packages[index];
                package.expires_at = Some(until);
                package.eligible = false;
                prop_assert_eq!(status.current_expires_at, Some(until));
                prop_assert!(!status.eligible_for_deletion);
                model.head = head_after;
            }
        }
        Op::Hold {
            pkg,
            by_name,
            reason,
        } => {
            let (package_ref, decision) = if model.packages.is_empty() {
                let decision = if is_blank(reason) {
                    Decision::Reject("InvalidInput")
                } else {
                    Decision::Reject("NotFound")
                };
                (unknown_package(), decision)
            } else {
                let index = pkg % model.packages.len();
                let decision = if is_blank(reason) {
                    Decision::Reject("InvalidInput")
                } else if model.packages[index].purged {
                    Decision::Reject("Conflict")
                } else {
                    Decision::Accept { new_events: 1 }
                };
                (model.package_ref(index, *by_name), decision)
            };
            let result = fixture.store.hold("legal", &package_ref, reason).await;
            let head_after = head_seq(&fixture.store).await;
            check_decision(op, &decision, &result, head_before, head_after)?;
            if let Ok(hold_id) = result {
                prop_assert!(
                    model.holds.iter().all(|h| h.hold_id != hold_id),
                    "hold id {} handed out twice",
                    hold_id
                );
                let index = pkg % model.packages.len();
                model.holds.push(ModelHold {
                    package: index,
                    hold_id,
                    active: true,
                });
                model.packages[index].eligible = false;
                model.head = head_after;
            }
        }
        Op::Release { pkg, hold, reason } => {
            // `hold-0` names no hold: hold ids are `hold-<seq>` and seqs start at 1.
            let hold_index = hold.and_then(|k| model.holds.len().checked_sub(k + 1));
            let hold_id =
                hold_index.map_or_else(|| "hold-0".to_owned(), |i| model.holds[i].hold_id.clone());
            let (package_ref, decision) = if model.packages.is_empty() {
                let decision = if is_blank(reason) {
                    Decision::Reject("InvalidInput")
                } else {
                    Decision::Reject("NotFound")
                };
                (unknown_package(), decision)
            } else {
                let index = match (pkg, hold_index) {
                    (Some(pkg), _) => pkg % model.packages.len(),
                    (None, Some(i)) => model.holds[i].package,
                    (None, None) => 0,
                };
                let decision = if is_blank(reason) {
                    Decision::Reject("InvalidInput")
                } else if model.packages[index].purged {
                    Decision::Reject("Conflict")
                } else {
                    match hold_index.map(|i| &model.holds[i]) {
                        None => Decision::Reject("NotFound"),
                        Some(h) if h.package != index => Decision::Reject("NotFound"),
                        Some(h) if !h.active => Decision::Reject("Conflict"),
                        Some(_) => Decision::Accept { new_events: 1 },
                    }
                };
                (model.package_ref(index, false), decision)
            };
            let result = fixture
                .store
                .release("legal", &package_ref, &hold_id, reason)
                .await;
            let head_after = head_seq(&fixture.store).await;
            check_decision(op, &decision, &result, head_before, head_after)?;
            if let (Ok(_), Some(i)) = (&result, hold_index) {
                model.holds[i].active = false;
                model.head = head_after;
            }
        }
        Op::Sweep => {
            let due = model.due_packages();
            let report = sweep(fixture).await?;
            let head_after = head_seq(&fixture.store).await;
            prop_assert_eq!(report.as_of, model.now);
            let marked: BTreeSet<PackageId> = report.newly_eligible.iter().copied().collect();
            prop_assert_eq!(
                report.newly_eligible.len(),
                marked.len(),
                "a sweep reported a package twice"
            );
            prop_assert_eq!(&marked, &due);
            prop_assert_eq!(head_after, head_before + due.len() as u64);
            for package in &mut model.packages {
                if due.contains(&package.package_id) {
                    package.eligible = true;
                    package.eligibility_transitions += 1;
                }
            }
            model.head = head_after;
        }
        Op::AdvanceClock { days: n } => {
            fixture.clock.advance(days(*n));
            model.now = plus_days(model.now, *n);
        }
        Op::RebuildViews => {
            let before = fixture.store.catalog().dump_views().await;
            let replayed = fixture
                .store
                .rebuild_views()
                .await
                .map_err(|e| TestCaseError::fail(format!("rebuild: {e}")))?;
            prop_assert_eq!(replayed, model.head);
            let after = fixture.store.catalog().dump_views().await;
            prop_assert_eq!(before.ok(), after.ok(), "rebuild changed the views");
            prop_assert_eq!(head_seq(&fixture.store).await, head_before);
        }
        Op::Reopen => {
            let before = fixture.store.catalog().dump_views().await.ok();
            fixture.reopen().await;
            let after = fixture.store.catalog().dump_views().await.ok();
            prop_assert_eq!(before, after, "reopening changed the views");
            prop_assert_eq!(head_seq(&fixture.store).await, head_before);
        }
        Op::FutureSweep { days_ahead } => {
            let as_of = plus_days(model.now, *days_ahead);
            let result = fixture.store.sweep("ops", Some(as_of)).await;
            let head_after = head_seq(&fixture.store).await;
            check_decision(
                op,
                &Decision::Reject("InvalidInput"),
                &result,
                head_before,
                head_after,
            )?;
        }
        Op::TamperThenCollect { pkg, edit } => {
            if model.packages.is_empty() {
                return Ok(());
            }
            let index = pkg % model.packages.len();
            let raw = fixture.raw_catalog().await;
            for sql in edit.statements() {
                raw_sql!(&raw, *sql, model.packages[index].package_id.to_string())
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{sql}: {e}")))?;
            }
            raw.close().await;
            let due = model.due_packages();
            let report = sweep(fixture).await?;
            for marked in &report.newly_eligible {
                prop_assert!(
                    due.contains(marked),
                    "{:?}: the sweep marked {} which the log does not allow",
                    op,
                    marked
                );
            }
            for package in &mut model.packages {
                if report.newly_eligible.contains(&package.package_id) {
                    package.eligible = true;
                    package.eligibility_transitions += 1;
                }
            }
            let gc = fixture
                .store
                .gc(
                    "gc",
                    artifact_core::maintenance::GcOptions {
                        grace: artifact_core::time::Period::Millis(0),
                        dry_run: false,
                    },
                )
                .await
                .map_err(|e| TestCaseError::fail(format!("gc: {e}")))?;
            for (i, package) in model.packages.iter_mut().enumerate() {
                if !gc.purged.contains(&package.package_id) {
                    continue;
                }
                let held = model.holds.iter().any(|h| h.package == i && h.active);
                prop_assert!(
                    package.eligible && !held && package.expires_at.is_some_and(|t| t <= model.now),
                    "{:?}: GC purged {} (eligible {}, held {}, expires {:?}, now {})",
                    op,
                    package.package_id,
                    package.eligible,
                    held,
                    package.expires_at,
                    model.now
                );
                package.purged = true;
            }
            fixture
                .store
                .rebuild_views()
                .await
                .map_err(|e| TestCaseError::fail(format!("rebuild: {e}")))?;
            model.head = head_seq(&fixture.store).await;
        }
    }
    Ok(())
}

async fn check_invariants(
    fixture: &Fixture,
    model: &Model,
    last_expiry: &mut Vec<Option<Timestamp>>,
) -> Result<(), TestCaseError> {
    let store = &fixture.store;
    prop_assert_eq!(head_seq(store).await, model.head);
    last_expiry.resize(model.packages.len(), None);
    for (index, package) in model.packages.iter().enumerate() {
        let status = store
            .retention_status(&by_id(package.package_id))
            .await
            .map_err(|e| TestCaseError::fail(format!("status: {e}")))?;
        let active_ids: BTreeSet<String> = status
            .active_holds
            .iter()
            .map(|h| h.hold_id.clone())
            .collect();

        // The model.
        prop_assert_eq!(&status.retention_class, package.class.name());
        prop_assert_eq!(status.default_expires_at, package.default_expires_at);
        prop_assert_eq!(status.current_expires_at, package.expires_at);
        prop_assert_eq!(status.eligible_for_deletion, package.eligible);
        prop_assert_eq!(status.eligible_seq.is_some(), package.eligible);
        prop_assert_eq!(&active_ids, &model.active_holds(index));

        // Invariants of SPEC §3 whatever the model says.
        prop_assert!(
            active_ids.is_empty() || !status.eligible_for_deletion,
            "package {} is eligible with active holds {:?}",
            package.package_id,
            active_ids
        );
        if let Some(previous) = last_expiry[index] {
            prop_assert!(
                status.current_expires_at.is_some_and(|now| now >= previous),
                "expiry moved earlier: {:?} -> {:?}",
                previous,
                status.current_expires_at
            );
        }
        last_expiry[index] = status.current_expires_at;

        // One deletion_eligible event per eligibility transition, never more.
        let eligible_events = events_of(
            store,
            package.package_id,
            types::RETENTION_DELETION_ELIGIBLE,
        )
        .await;
        prop_assert_eq!(
            eligible_events.len(),
            package.eligibility_transitions,
            "deletion_eligible events of {}",
            package.package_id
        );
        if let Some(eligible_seq) = status.eligible_seq {
            prop_assert_eq!(eligible_events.last().map(|e| e.seq), Some(eligible_seq));
        }

        // The pure fold of the package's events agrees with the view.
        let events = store
            .package_events(&package.package_id)
            .await
            .map_err(|e| TestCaseError::fail(format!("events: {e}")))?;
        let folded = RetentionState::fold(&events)
            .ok_or_else(|| TestCaseError::fail("fold found no default_applied event"))?;
        prop_assert_eq!(folded.package_id, status.package_id);
        prop_assert_eq!(&folded.retention_class, &status.retention_class);
        prop_assert_eq!(&folded.default_period, &status.default_period);
        prop_assert_eq!(folded.default_expires_at, status.default_expires_at);
        prop_assert_eq!(folded.current_expires_at, status.current_expires_at);
        prop_assert_eq!(folded.eligible_for_deletion, status.eligible_for_deletion);
        prop_assert_eq!(folded.eligible_seq, status.eligible_seq);
        if package.purged {
            // The fold counts the purge as its last change; `retention_state` does not (the
            // purge is recorded in `packages`).
            prop_assert_eq!(folded.purged_seq.is_some(), true);
        } else {
            prop_assert_eq!(folded.updated_seq, status.updated_seq);
        }
        let folded_active: BTreeSet<String> = folded
            .holds
            .values()
            .filter(|h| h.is_active())
            .map(|h| h.hold_id.clone())
            .collect();
        prop_assert_eq!(&folded_active, &active_ids);
    }
    Ok(())
}

async fn run_case(
    backend: Backend,
    initial: Vec<Class>,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let start = ymd(2026, 1, 1);
    let mut fixture = Fixture::new(backend, start).await;
    let mut model = Model {
        now: start,
        head: 0,
        classes: fixture.store.classes().clone(),
        packages: Vec::new(),
        holds: Vec::new(),
    };
    let mut last_expiry = Vec::new();
    let ops: Vec<Op> = initial
        .into_iter()
        .map(Op::CreatePackage)
        .chain(ops)
        .collect();
    for op in &ops {
        run_op(&mut fixture, &mut model, op).await?;
        check_invariants(&fixture, &model, &mut last_expiry).await?;
    }
    let store = &fixture.store;
    let differing = store
        .catalog()
        .views_match_replay(store.classes())
        .await
        .map_err(|e| TestCaseError::fail(format!("views_match_replay: {e}")))?;
    prop_assert!(
        differing.is_empty(),
        "views differ from a replay: {:?}",
        differing
    );
    let verified = store
        .audit_verify()
        .await
        .map_err(|e| TestCaseError::fail(format!("audit_verify: {e}")))?;
    prop_assert_eq!(
        verified,
        store
            .head()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        max_shrink_iters: 512,
        // Beside this file (cargo runs tests from the package root, `tests/`): commit it.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "it/proptest-regressions/retention_model.txt"
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn retention_lifecycle_matches_the_model_sqlite(
        initial in initial_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..40),
    ) {
        run_blocking(Backend::Sqlite, initial, ops)?;
    }

    /// The same model test with the catalog on PostgreSQL (each case in a fresh database).
    #[test]
    fn retention_lifecycle_matches_the_model_postgres(
        initial in initial_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..40),
    ) {
        run_blocking(Backend::Postgres, initial, ops)?;
    }
}

/// Mostly start with packages to act on; sometimes with none (unknown-package paths).
fn initial_strategy() -> impl Strategy<Value = Vec<Class>> {
    prop_oneof![
        1 => Just(Vec::new()),
        6 => prop::collection::vec(class_strategy(), 1..=MAX_PACKAGES),
    ]
}

fn run_blocking(backend: Backend, initial: Vec<Class>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run_case(backend, initial, ops))
}
