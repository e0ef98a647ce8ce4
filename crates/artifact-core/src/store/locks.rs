//! Storage-enforced retention (issue 13, ADR 0015): when the blob backend has Object Lock
//! (`[blobs] object_lock = "compliance" | "governance"`), every blob a live package references
//! carries on the storage itself a retention until at least that package's expiry and, while
//! any package referencing it is held (or permanent), a legal hold.
//!
//! Order: protection is added on the storage **before** the event that promises it commits
//! (package creation, extension, hold); it is removed (legal hold cleared after a release)
//! only **after** the event that allows it commits. A crash therefore leaves the storage
//! protecting at least what the log says, never less. Each storage change is recorded
//! (`v1.blob.lock_extended`, `v1.blob.legal_hold_set`), naming the package it was for.
//!
//! What a blob needs comes from the log (the package's folded state, the manifest read back
//! and verified against its id); what the storage holds is asked of the storage, not of a
//! view row, before anything is skipped.

use std::collections::BTreeSet;

use super::*;
use crate::blob::{LockMode, ObjectLocks, VersionLock};
use crate::catalog::{LockNeed, RecordedLock};
use crate::event::types::{BlobLegalHoldSet, BlobLockExtended};
use crate::log_facts::Refusal;
use crate::maintenance::{Finding, FsckReport};

/// What `admin reconcile-locks` changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Live blobs checked.
    pub checked: u64,
    /// Retentions extended on the storage (blob: the new retain-until).
    pub extended: Vec<Refusal>,
    /// Legal holds set on the storage.
    pub holds_set: Vec<String>,
    /// Legal holds cleared (no live package referencing the blob is held or permanent).
    pub holds_cleared: Vec<String>,
    /// Delete markers and versions stacked over a live blob's locked version, removed so plain
    /// reads of the bucket see the locked version again.
    pub versions_removed: Vec<String>,
    /// Blobs whose recorded version is gone from the storage and that have no other version.
    pub missing: Vec<Refusal>,
}

impl ReconcileReport {
    /// As a data-model value.
    pub fn to_value(&self) -> crate::cbor::Value {
        use crate::cbor::Value;
        let texts =
            |items: &[String]| Value::Array(items.iter().cloned().map(Value::Text).collect());
        Value::Map(BTreeMap::from([
            ("checked".to_owned(), Value::Int(self.checked as i64)),
            (
                "extended".to_owned(),
                crate::maintenance::refusals_value(&self.extended),
            ),
            ("holds_set".to_owned(), texts(&self.holds_set)),
            ("holds_cleared".to_owned(), texts(&self.holds_cleared)),
            ("versions_removed".to_owned(), texts(&self.versions_removed)),
            (
                "missing".to_owned(),
                crate::maintenance::refusals_value(&self.missing),
            ),
        ]))
    }
}

/// What one blob needs from the storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Need {
    /// Retained at least until.
    pub(crate) until: Option<Timestamp>,
    /// Legal hold on.
    pub(crate) legal_hold: bool,
}

/// S3 retain-until dates are whole seconds: round up so the lock never ends before `at`.
pub(crate) fn whole_second_ceil(at: Timestamp) -> Timestamp {
    let ms = at.unix_millis();
    let rounded = ms.div_euclid(1000) * 1000 + if ms.rem_euclid(1000) == 0 { 0 } else { 1000 };
    Timestamp::from_unix_millis(rounded).unwrap_or(at)
}

/// The retain-until a package's blobs need: its expiry, or for a permanent package the
/// horizon from now.
pub(crate) fn retain_target(
    expires_at: Option<Timestamp>,
    now: Timestamp,
    locks: &dyn ObjectLocks,
) -> Result<Timestamp> {
    let at = match expires_at {
        Some(at) => at,
        None => now
            .checked_add(locks.permanent_horizon())
            .ok_or_else(|| Error::invalid("[blobs] object_lock_horizon lies beyond year 9999"))?,
    };
    Ok(whole_second_ceil(at))
}

impl ArtifactStore {
    /// The backend's Object Lock calls, when `[blobs] object_lock` is on.
    pub fn object_locks(&self) -> Option<&dyn ObjectLocks> {
        self.blob_store().object_locks()
    }

    /// Inside `tx`, before the event that promises it commits: makes the storage retain every
    /// blob in `blobs` until at least `need.until` and, if `need.legal_hold`, puts its legal
    /// hold on; records each change, for `package_id`. A failed storage call fails the whole
    /// operation (the caller rolls back: no promise without the lock).
    pub(crate) async fn lock_blobs_in(
        &self,
        tx: &mut WriteTx,
        actor: &str,
        package_id: Option<PackageId>,
        blobs: &BTreeSet<Blake3>,
        need: Need,
    ) -> Result<()> {
        let Some(locks) = self.object_locks() else {
            return Ok(());
        };
        for key in blobs {
            let recorded = catalog::views_blob_lock(tx.conn(), key)
                .await?
                .ok_or_else(|| Error::not_found("blob", key.to_string()))?;
            self.lock_one(tx, locks, actor, package_id, key, &recorded, need, None)
                .await?;
        }
        Ok(())
    }

    /// One blob: finds its stored version (the recorded one, else the current one), reads
    /// what the storage enforces, and adds what `need` asks for that is missing. Returns the
    /// version and what was changed (`extended`, `hold set`), or `None` when the blob has no
    /// version at all on the storage.
    #[allow(clippy::too_many_arguments)]
    async fn lock_one(
        &self,
        tx: &mut WriteTx,
        locks: &dyn ObjectLocks,
        actor: &str,
        package_id: Option<PackageId>,
        key: &Blake3,
        recorded: &RecordedLock,
        need: Need,
        mut report: Option<&mut ReconcileReport>,
    ) -> Result<()> {
        let rebind = report.is_some();
        let Some((version, state)) = self.stored_version(locks, key, recorded, rebind).await?
        else {
            let detail = format!(
                "no stored version in the `{}` backend (recorded version {})",
                self.blob_store().name(),
                recorded.version_id.as_deref().unwrap_or("none")
            );
            return match report {
                Some(report) => {
                    report.missing.push(Refusal {
                        subject: key.to_string(),
                        detail,
                    });
                    Ok(())
                }
                None => Err(Error::Integrity {
                    seq: 0,
                    reason: format!("cannot lock blob {key}: {detail}"),
                }),
            };
        };
        let now = self.clock.now();
        let storage_until = state.retention.map(|(_, until)| until);
        // COMPLIANCE is never downgraded: S3 refuses to change it.
        let mode = match state.retention {
            Some((LockMode::Compliance, _)) => LockMode::Compliance,
            _ => locks.mode(),
        };
        let version_changed = recorded.version_id.as_deref() != Some(version.as_str());
        // Never below what the log already promised for this version (a retention shortened
        // behind the store's back is restored, not lowered further).
        let promised = recorded.retain_until.filter(|_| !version_changed);
        let need_until = need
            .until
            .map(|until| promised.map_or(until, |p| p.max(until)));
        match need_until {
            Some(until) if storage_until.is_none_or(|s| s < until) => {
                locks.retain_until(key, &version, mode, until).await?;
                let data = BlobLockExtended {
                    blake3: *key,
                    version_id: version.clone(),
                    mode,
                    retain_until: until,
                    extra: Extra::new(),
                };
                tx.append(package_id, actor, now, data).await?;
                if let Some(report) = report.as_deref_mut() {
                    report.extended.push(Refusal {
                        subject: key.to_string(),
                        detail: format!("retained until {until} ({})", mode.as_str()),
                    });
                }
            }
            _ => {
                // The storage already retains it long enough; the log learns what it holds if
                // it does not know (a lock applied just before a crash).
                if let Some((storage_mode, until)) = state.retention
                    && (version_changed || recorded.retain_until.is_none_or(|r| r < until))
                {
                    let data = BlobLockExtended {
                        blake3: *key,
                        version_id: version.clone(),
                        mode: storage_mode,
                        retain_until: until,
                        extra: Extra::new(),
                    };
                    tx.append(package_id, actor, now, data).await?;
                }
            }
        }
        if need.legal_hold && !state.legal_hold {
            locks.set_legal_hold(key, &version, true).await?;
            self.record_legal_hold(tx, actor, package_id, key, &version, true)
                .await?;
            if let Some(report) = report {
                report.holds_set.push(key.to_string());
            }
        } else if state.legal_hold && (!recorded.legal_hold || version_changed) {
            self.record_legal_hold(tx, actor, package_id, key, &version, true)
                .await?;
        }
        Ok(())
    }

    async fn record_legal_hold(
        &self,
        tx: &mut WriteTx,
        actor: &str,
        package_id: Option<PackageId>,
        key: &Blake3,
        version: &str,
        on: bool,
    ) -> Result<()> {
        let data = BlobLegalHoldSet {
            blake3: *key,
            version_id: version.to_owned(),
            on,
            extra: Extra::new(),
        };
        tx.append(package_id, actor, self.clock.now(), data).await?;
        Ok(())
    }

    /// The blob's stored version and what the storage enforces on it: the recorded version;
    /// when none is recorded yet (its first lock), the current one. A recorded version that is
    /// gone is an integrity error naming it — unless `rebind` (reconcile), which takes the
    /// current version only once its bytes verify as the blob. `None` when there is no
    /// usable version.
    async fn stored_version(
        &self,
        locks: &dyn ObjectLocks,
        key: &Blake3,
        recorded: &RecordedLock,
        rebind: bool,
    ) -> Result<Option<(String, VersionLock)>> {
        if let Some(version) = &recorded.version_id {
            if let Some(state) = locks.version_lock(key, version).await? {
                return Ok(Some((version.clone(), state)));
            }
            if !rebind {
                return Err(Error::Integrity {
                    seq: 0,
                    reason: format!(
                        "blob {key}: its locked version {version} is gone from the `{}` backend; \
                         restore it (fsck reports it), or run `artifactstore admin \
                         reconcile-locks` to lock another version holding the same bytes",
                        self.blob_store().name()
                    ),
                });
            }
        }
        let Some(current) = locks.current_version(key).await? else {
            return Ok(None);
        };
        if recorded.version_id.is_some() && !self.version_holds(locks, key, &current).await? {
            return Ok(None);
        }
        Ok(locks
            .version_lock(key, &current)
            .await?
            .map(|state| (current, state)))
    }

    /// Whether a version's bytes are the blob's (BLAKE3 of a full read).
    async fn version_holds(
        &self,
        locks: &dyn ObjectLocks,
        key: &Blake3,
        version: &str,
    ) -> Result<bool> {
        use tokio::io::AsyncReadExt as _;
        let mut read = match locks.get_version(key, version, None).await {
            Ok(read) => read,
            Err(Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut hasher = crate::digest::DualHasher::new();
        let mut buffer = vec![0u8; CHUNK_SIZE];
        loop {
            let n = read.reader.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        Ok(hasher.finalize().blake3 == *key)
    }

    /// Stats a blob as reads see it: with Object Lock, the recorded version (a delete marker
    /// or a newer version over it changes nothing); otherwise the blob.
    pub(crate) async fn stat_recorded_version(
        &self,
        key: &Blake3,
    ) -> Result<Option<crate::blob::BlobMeta>> {
        if let Some(locks) = self.object_locks() {
            let recorded = {
                let mut conn = self.catalog.read().await?;
                catalog::views_blob_lock(&mut conn, key).await?
            };
            if let Some(version) = recorded.and_then(|r| r.version_id) {
                return Ok(locks
                    .version_size(key, &version)
                    .await?
                    .map(|size| crate::blob::BlobMeta { size }));
            }
        }
        self.blob_store().head(key).await
    }

    /// Opens a blob (or a range of it) for a read or a scrub: with Object Lock, the version
    /// the log recorded (what the storage retains), not whatever version is current — a
    /// delete marker or a newer version an operator wrote under the key changes nothing;
    /// otherwise the blob.
    pub(crate) async fn open_recorded_version(
        &self,
        key: &Blake3,
        range: Option<ByteRange>,
    ) -> Result<BlobRead> {
        if let Some(locks) = self.object_locks() {
            let recorded = {
                let mut conn = self.catalog.read().await?;
                catalog::views_blob_lock(&mut conn, key).await?
            };
            if let Some(version) = recorded.and_then(|r| r.version_id) {
                return locks.get_version(key, &version, range).await;
            }
        }
        self.blob_store().get(key, range).await
    }

    /// The blobs of a package as its manifest (read back and verified against the package id)
    /// names them, the manifest blob included.
    pub(crate) async fn package_blobs(&self, package_id: &PackageId) -> Result<BTreeSet<Blake3>> {
        let (manifest, _) = self.manifest(&PackageRef::Id(*package_id)).await?;
        Ok(manifest_blobs(package_id, &manifest))
    }

    /// After a release committed: clears the legal hold of each blob of `package_id` that no
    /// live package still needs held (by the log: each referrer's state folded from its
    /// events), and records it. A crash before this leaves the hold on (the safe side);
    /// `admin reconcile-locks` clears it.
    pub(crate) async fn clear_unneeded_holds(
        &self,
        actor: &str,
        package_id: &PackageId,
    ) -> Result<()> {
        let Some(locks) = self.object_locks() else {
            return Ok(());
        };
        let blobs = self.package_blobs(package_id).await?;
        let mut tx = self.catalog.write().await?;
        for key in &blobs {
            let Some(recorded) = catalog::views_blob_lock(tx.conn(), key).await? else {
                continue;
            };
            if self.needs_legal_hold(&mut tx, key).await? {
                continue;
            }
            let Some((version, state)) = self.stored_version(locks, key, &recorded, false).await?
            else {
                continue;
            };
            if state.legal_hold {
                locks.set_legal_hold(key, &version, false).await?;
            }
            if state.legal_hold || recorded.legal_hold {
                self.record_legal_hold(&mut tx, actor, Some(*package_id), key, &version, false)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether any live package referencing `key` is held or permanent, by the log.
    async fn needs_legal_hold(&self, tx: &mut WriteTx, key: &Blake3) -> Result<bool> {
        let referrers = catalog::views_live_referrers(tx.conn(), key).await?;
        let states = crate::log_facts::fold_states(tx.conn(), &referrers).await?;
        Ok(states.values().any(|s| {
            s.purged_seq.is_none() && (s.active_holds() > 0 || s.current_expires_at.is_none())
        }))
    }

    /// What a live blob needs, from its live referrers' states: the latest expiry (the
    /// horizon for a permanent one, pushed forward once less than half of it is left), and
    /// a legal hold while one is held or permanent.
    fn need_of(&self, locks: &dyn ObjectLocks, need: &LockNeed, now: Timestamp) -> Result<Need> {
        let until = if need.permanent {
            let horizon = retain_target(None, now, locks)?;
            let half = Timestamp::from_unix_millis(
                now.unix_millis() + (horizon.unix_millis() - now.unix_millis()) / 2,
            )
            .unwrap_or(horizon);
            let until = match need.recorded.retain_until {
                Some(recorded) if recorded >= half => recorded,
                _ => horizon,
            };
            // A finite referrer may need longer than the horizon.
            Some(need.expires_at.map_or(until, |e| e.max(until)))
        } else {
            need.expires_at.map(whole_second_ceil)
        };
        Ok(Need {
            until,
            legal_hold: need.held || need.permanent,
        })
    }

    /// `artifactstore admin reconcile-locks`: for every blob a live package references,
    /// re-applies on the storage the retention and legal hold the log requires (and removes
    /// delete markers hiding its version); clears legal holds nothing requires any more.
    /// Records every change. With `permanent_only`, only renews permanent packages' locks
    /// that are due (what each sweep does).
    pub async fn reconcile_locks(
        &self,
        actor: &str,
        permanent_only: bool,
    ) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        let Some(locks) = self.object_locks() else {
            return Err(Error::invalid(
                "[blobs] object_lock is off: the storage enforces no locks to reconcile",
            ));
        };
        let mut after = String::new();
        loop {
            let mut tx = self.catalog.write().await?;
            let page = catalog::views_lock_needs_page(tx.conn(), &after, 200).await?;
            let Some(last) = page.last() else {
                tx.rollback().await?;
                break;
            };
            after = last.blake3.to_string();
            let now = self.clock.now();
            for need in &page {
                if permanent_only && !need.permanent {
                    continue;
                }
                let wanted = self.need_of(locks, need, now)?;
                if permanent_only && wanted.until == need.recorded.retain_until {
                    continue;
                }
                report.checked += 1;
                if !permanent_only
                    && let Some(keep) = &need.recorded.version_id
                    && locks.version_lock(&need.blake3, keep).await?.is_some()
                {
                    // Markers and versions stacked over the locked one: plain reads of the
                    // bucket see the locked version again (a locked other version stays).
                    for other in locks.other_versions(&need.blake3, keep).await? {
                        if locks
                            .delete_version(&need.blake3, &other.version_id)
                            .await?
                        {
                            let what = if other.delete_marker {
                                "delete marker"
                            } else {
                                "version"
                            };
                            report
                                .versions_removed
                                .push(format!("{} ({what} {})", need.blake3, other.version_id));
                        }
                    }
                }
                self.lock_one(
                    &mut tx,
                    locks,
                    actor,
                    None,
                    &need.blake3,
                    &need.recorded,
                    wanted,
                    Some(&mut report),
                )
                .await?;
                if !wanted.legal_hold
                    && let Some((version, state)) = self
                        .stored_version(locks, &need.blake3, &need.recorded, true)
                        .await?
                    && (state.legal_hold || need.recorded.legal_hold)
                    && !self.needs_legal_hold(&mut tx, &need.blake3).await?
                {
                    if state.legal_hold {
                        locks.set_legal_hold(&need.blake3, &version, false).await?;
                    }
                    self.record_legal_hold(&mut tx, actor, None, &need.blake3, &version, false)
                        .await?;
                    report.holds_cleared.push(need.blake3.to_string());
                }
            }
            tx.commit().await?;
        }
        if permanent_only {
            return Ok(report);
        }
        // Legal holds the log recorded on blobs no live package references any more.
        let mut after = String::new();
        loop {
            let mut tx = self.catalog.write().await?;
            let page = catalog::views_legal_holds_page(tx.conn(), &after, 200).await?;
            let Some((last, _)) = page.last() else {
                tx.rollback().await?;
                break;
            };
            after = last.to_string();
            for (key, recorded) in &page {
                if self.needs_legal_hold(&mut tx, key).await? {
                    continue;
                }
                if let Some((version, state)) =
                    self.stored_version(locks, key, recorded, true).await?
                {
                    if state.legal_hold {
                        locks.set_legal_hold(key, &version, false).await?;
                    }
                    self.record_legal_hold(&mut tx, actor, None, key, &version, false)
                        .await?;
                    report.holds_cleared.push(key.to_string());
                }
            }
            tx.commit().await?;
        }
        Ok(report)
    }

    /// fsck's lock check: for every live blob, the storage's retention and legal hold against
    /// what the log requires; the recorded version must exist and be what plain reads see.
    pub(crate) async fn fsck_locks(&self, report: &mut FsckReport) -> Result<()> {
        let Some(locks) = self.object_locks() else {
            return Ok(());
        };
        let mut after = String::new();
        let mut excess_holds = 0u64;
        let mut other_versions = 0u64;
        loop {
            let page = {
                let mut conn = self.catalog.read().await?;
                catalog::views_lock_needs_page(&mut conn, &after, 500).await?
            };
            let Some(last) = page.last() else {
                break;
            };
            after = last.blake3.to_string();
            let now = self.clock.now();
            for need in &page {
                let subject = need.blake3.to_string();
                let required = Need {
                    until: if need.permanent {
                        need.recorded
                            .retain_until
                            .or(Some(retain_target(None, now, locks)?))
                    } else {
                        need.expires_at.map(whole_second_ceil)
                    },
                    legal_hold: need.held || need.permanent,
                };
                let Some(version) = &need.recorded.version_id else {
                    report.findings.push(Finding {
                        kind: "lock-missing",
                        subject,
                        detail: "a live package references this blob but no storage lock is \
                                 recorded for it; run `artifactstore admin reconcile-locks`"
                            .to_owned(),
                    });
                    continue;
                };
                let Some(state) = locks.version_lock(&need.blake3, version).await? else {
                    report.findings.push(Finding {
                        kind: "lock-version-missing",
                        subject,
                        detail: format!(
                            "the recorded version {version} is gone from the storage; restore it \
                             (or run `artifactstore admin reconcile-locks` to lock the current one)"
                        ),
                    });
                    continue;
                };
                let storage_until = state.retention.map(|(_, until)| until);
                if let Some(until) = required.until
                    && storage_until.is_none_or(|s| s < until)
                {
                    report.findings.push(Finding {
                        kind: "lock-short",
                        subject: subject.clone(),
                        detail: format!(
                            "version {version}: the storage retains it until {}, the log requires \
                             {until}; run `artifactstore admin reconcile-locks`",
                            storage_until
                                .map_or("never (no retention)".to_owned(), |s| s.to_string())
                        ),
                    });
                }
                if required.legal_hold && !state.legal_hold {
                    report.findings.push(Finding {
                        kind: "legal-hold-missing",
                        subject: subject.clone(),
                        detail: format!(
                            "version {version}: a live package referencing it is held or \
                             permanent but the storage has no legal hold on it; run \
                             `artifactstore admin reconcile-locks`"
                        ),
                    });
                } else if !required.legal_hold && state.legal_hold {
                    excess_holds += 1;
                }
                let others = locks.other_versions(&need.blake3, version).await?;
                let markers = others.iter().filter(|o| o.delete_marker).count();
                if markers > 0 {
                    report.findings.push(Finding {
                        kind: "delete-marker",
                        subject: subject.clone(),
                        detail: format!(
                            "{markers} delete marker(s) hide the locked version {version} from \
                             plain reads of the bucket (the store reads that version); run \
                             `artifactstore admin reconcile-locks`"
                        ),
                    });
                }
                if others.len() > markers {
                    other_versions += 1;
                }
            }
        }
        if other_versions > 0 {
            report.notes.push(format!(
                "{other_versions} live blob(s) have object versions besides the locked one (a \
                 PUT under the key, or a concurrent duplicate upload); the store reads the locked \
                 version; `artifactstore admin reconcile-locks` removes the others"
            ));
        }
        if excess_holds > 0 {
            report.notes.push(format!(
                "{excess_holds} blob(s) keep a storage legal hold no live package needs (a release \
                 whose clearing did not finish); `artifactstore admin reconcile-locks` clears them"
            ));
        }
        Ok(())
    }
}

/// A manifest's blobs: its files' and the manifest blob itself (`package_id`).
pub(crate) fn manifest_blobs(package_id: &PackageId, manifest: &Manifest) -> BTreeSet<Blake3> {
    let mut blobs: BTreeSet<Blake3> = manifest.files.iter().map(|f| f.blake3).collect();
    blobs.insert(*package_id);
    blobs
}
