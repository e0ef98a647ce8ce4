//! Garbage collection: purge eligible packages, delete unreferenced blobs, remove orphans.

use super::*;

/// Options of [`ArtifactStore::gc`].
#[derive(Clone, Copy, Debug)]
pub struct GcOptions {
    /// Only blobs (and unrecorded bytes) older than this are deleted, so uploads in flight and
    /// packages being assembled are safe.
    pub grace: Period,
    /// Report what would go; change nothing.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            // `[gc] grace`'s default (one place: `config::DEFAULT_GC_GRACE`).
            grace: Period::parse_duration(crate::config::DEFAULT_GC_GRACE)
                .unwrap_or(Period::Millis(24 * 3_600_000)),
            dry_run: false,
        }
    }
}

impl ArtifactStore {
    /// Garbage collection (see the module docs). Returns what was purged and deleted.
    pub async fn gc(&self, actor: &str, options: GcOptions) -> Result<GcReport> {
        let now = self.clock().now();
        let cutoff = match options.grace {
            Period::Millis(ms) => Timestamp::from_unix_millis(now.unix_millis().saturating_sub(ms)),
            _ => None,
        }
        .ok_or_else(|| {
            Error::invalid("the GC grace period must be a fixed duration such as 24h")
        })?;
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };
        if options.dry_run {
            let mut conn = self.catalog().read().await?;
            let candidates: Vec<PackageId> =
                catalog::views_eligible_unpurged(&mut conn, 0, i64::MAX)
                    .await?
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
            let mut purged = BTreeSet::new();
            for chunk in candidates.chunks(BATCH as usize) {
                let states = log_facts::fold_states(&mut conn, chunk).await?;
                for id in chunk {
                    match log_facts::purge_refusal(states.get(id), now) {
                        None => {
                            if let Some((_, _, why)) = self.oci_keeper(&mut conn, id, now).await? {
                                push_kept(
                                    &mut report,
                                    Refusal {
                                        subject: id.to_string(),
                                        detail: format!("kept: {why}"),
                                    },
                                );
                                continue;
                            }
                            purged.insert(*id);
                            report.purged.push(*id);
                        }
                        Some(why) => report.refused.push(purge_refused(id, why)),
                    }
                }
            }
            // Deletions already committed to go first, then what this run would pick: blobs
            // the views call unreferenced once the packages above are purged, that the log
            // agrees no other live package references.
            let refs = LogReferences::load(&mut conn, &purged).await?;
            let mut blobs = catalog::views_deleting_blobs(&mut conn, i64::MAX).await?;
            for blob in
                catalog::views_unreferenced_blobs(&mut conn, cutoff, true, 0, i64::MAX).await?
            {
                match refs.deletion_refusal(&blob.info.blake3) {
                    None => {
                        if let Some(kept) =
                            self.lock_keeps(&mut conn, &blob.info.blake3, now).await?
                        {
                            push_kept(&mut report, kept);
                        } else {
                            blobs.push(blob);
                        }
                    }
                    Some(why) => report.refused.push(blob_refused(&blob.info.blake3, why)),
                }
            }
            report.bytes_reclaimed = blobs.iter().map(|b| b.info.size).sum();
            report.deleted = blobs.into_iter().map(|b| b.info).collect();
            drop(conn);
            report.orphans = self.orphan_bytes(cutoff).await?;
            return Ok(report);
        }

        // 1. Purge eligible packages, re-checking each in the transaction that purges it. The
        //    cursor walks eligibility order once (a package skipped here is not eligible now).
        let mut after_eligible = 0;
        loop {
            let mut tx = self.catalog().write().await?;
            let due = catalog::views_eligible_unpurged(tx.conn(), after_eligible, BATCH).await?;
            let Some((_, last)) = due.last() else {
                tx.rollback().await?;
                break;
            };
            after_eligible = *last;
            let at = self.clock().now();
            // The view nominated them; the log decides, by the store's clock (SPEC §5a).
            let ids: Vec<PackageId> = due.iter().map(|(id, _)| *id).collect();
            let states = log_facts::fold_states(tx.conn(), &ids).await?;
            for (package_id, _) in &due {
                let state = states.get(package_id);
                if let Some(why) = log_facts::purge_refusal(state, at) {
                    report.refused.push(purge_refused(package_id, why));
                    continue;
                }
                // A referrer is purged no earlier than its subject (held or retained again
                // since the sweep marked the referrer).
                if let Some((_, _, why)) = self.oci_keeper(tx.conn(), package_id, at).await? {
                    push_kept(
                        &mut report,
                        Refusal {
                            subject: package_id.to_string(),
                            detail: format!("kept: {why}"),
                        },
                    );
                    continue;
                }
                let data = PackagePurged {
                    eligible_seq: state.and_then(|s| s.eligible_seq),
                    extra: Extra::new(),
                };
                tx.append(Some(*package_id), actor, at, data).await?;
                report.purged.push(*package_id);
            }
            tx.commit().await?;
        }

        // 2. Delete unreferenced recorded blobs older than the grace period: first finish what
        //    an earlier run committed to, then per batch commit the intent
        //    (`v1.blob.deletion_started`, after which the blobs can gain no reference), delete
        //    the bytes, and record `v1.blob.deleted` for each.
        let mut refs: Option<LogReferences> = None;
        let finished = self
            .finish_deletions_into(actor, &mut report, &mut refs)
            .await?;
        report.bytes_reclaimed += finished.iter().map(|b| b.size).sum::<u64>();
        report.deleted.extend(finished);
        // The cursor walks stored order once: a blob passed over is referenced, too young or
        // being deleted, and a blob recorded meanwhile is younger than the grace period. The
        // view nominates; the log's references (read once, caught up inside each transaction)
        // decide.
        let mut after_stored = 0;
        loop {
            let mut tx = self.catalog().write().await?;
            let nominated: Vec<BlobRecord> =
                catalog::views_unreferenced_blobs(tx.conn(), cutoff, false, after_stored, BATCH)
                    .await?;
            let Some(last) = nominated.last() else {
                tx.rollback().await?;
                break;
            };
            after_stored = last.stored_seq;
            let log_refs = match &mut refs {
                Some(log_refs) => {
                    log_refs.catch_up(tx.conn()).await?;
                    log_refs
                }
                None => refs.insert(LogReferences::load(tx.conn(), &BTreeSet::new()).await?),
            };
            let mut candidates = Vec::with_capacity(nominated.len());
            let at = self.clock().now();
            for blob in nominated {
                match log_refs.deletion_refusal(&blob.info.blake3) {
                    // A blob the storage still locks is not committed to deletion yet: a later
                    // run takes it once its lock has passed.
                    None => match self.lock_keeps(tx.conn(), &blob.info.blake3, at).await? {
                        Some(kept) => push_kept(&mut report, kept),
                        None => candidates.push(blob),
                    },
                    Some(why) => report.refused.push(blob_refused(&blob.info.blake3, why)),
                }
            }
            if candidates.is_empty() {
                tx.rollback().await?;
                continue;
            }
            let data = BlobDeletionStarted {
                blobs: candidates.iter().map(|b| b.info.blake3).collect(),
                extra: Extra::new(),
            };
            let at = self.clock().now();
            tx.append(None, actor, at, data).await?;
            tx.commit().await?;
            let finished = self
                .finish_deletions_into(actor, &mut report, &mut refs)
                .await?;
            report.bytes_reclaimed += finished.iter().map(|b| b.size).sum::<u64>();
            report.deleted.extend(finished);
        }

        // 3. Unrecorded bytes older than the grace period.
        let orphans = self.orphan_bytes(cutoff).await?;
        if !orphans.is_empty() {
            // Under the write lock: a concurrent writer cannot record one of them meanwhile.
            let tx = self.catalog().write().await?;
            let recorded = self.recorded_keys().await?;
            let orphans: Vec<Blake3> = orphans
                .into_iter()
                .filter(|k| !recorded.contains(k))
                .collect();
            let orphans = match self.object_locks() {
                None => {
                    self.blob_store().delete_many(&orphans).await?;
                    orphans
                }
                // Bytes a killed package creation locked before its commit: every version goes
                // once the lock has passed; until then they are kept and reported.
                Some(locks) => {
                    let mut gone = Vec::with_capacity(orphans.len());
                    for key in orphans {
                        match self
                            .delete_unheld_versions(actor, locks, &key, None)
                            .await?
                        {
                            None => gone.push(key),
                            Some(why) => push_kept(
                                &mut report,
                                Refusal {
                                    subject: key.to_string(),
                                    detail: format!(
                                        "kept: unrecorded bytes the storage locks: {why}"
                                    ),
                                },
                            ),
                        }
                    }
                    gone
                }
            };
            tx.rollback().await?;
            report.orphans = orphans;
        }
        Ok(report)
    }

    /// Finishes every deletion garbage collection has committed to
    /// (`v1.blob.deletion_started` without its `v1.blob.deleted` yet): under the write lock,
    /// deletes the bytes (deleting absent bytes succeeds) and records `v1.blob.deleted` for
    /// each, in batches. GC calls it for its own batches; opening a store calls it to finish a
    /// run that was killed between deleting bytes and recording it. When nothing is pending it
    /// costs one indexed lookup. Only blobs GC committed to are touched: bytes lost any other
    /// way stay an fsck finding, never a recorded deletion. Returns the blobs finished.
    pub async fn finish_blob_deletions(&self, actor: &str) -> Result<Vec<BlobInfo>> {
        let mut report = GcReport::default();
        self.finish_deletions_into(actor, &mut report, &mut None)
            .await
    }

    /// [`ArtifactStore::finish_blob_deletions`], reporting into `report` the blobs the view
    /// marks as being deleted that the log does not support: no `v1.blob.deletion_started` at
    /// the marked seq naming the blob, or a live package referencing it by the log. Those
    /// keep their bytes.
    /// `refs` carries the log's references between calls (read once per GC run, caught up
    /// inside each transaction).
    pub(crate) async fn finish_deletions_into(
        &self,
        actor: &str,
        report: &mut GcReport,
        refs: &mut Option<LogReferences>,
    ) -> Result<Vec<BlobInfo>> {
        let mut finished = Vec::new();
        // Blobs this run already found the storage keeping are not tried again.
        let mut refused: BTreeSet<Blake3> = report
            .kept
            .iter()
            .filter_map(|kept| kept.subject.parse().ok())
            .collect();
        loop {
            {
                // Cheap pre-check without the write lock (the usual answer is "none").
                let mut conn = self.catalog().read().await?;
                let pending =
                    catalog::views_deleting_blobs(&mut conn, refused.len() as i64 + 1).await?;
                if pending.iter().all(|b| refused.contains(&b.info.blake3)) {
                    break;
                }
            }
            let mut tx = self.catalog().write().await?;
            let pending: Vec<BlobRecord> =
                catalog::views_deleting_blobs(tx.conn(), BATCH + refused.len() as i64)
                    .await?
                    .into_iter()
                    .filter(|b| !refused.contains(&b.info.blake3))
                    .collect();
            if pending.is_empty() {
                tx.rollback().await?;
                break;
            }
            // The intent must be in the log, naming the blob, and the log must agree that no
            // live package references it (a view row alone deletes nothing).
            let mut seqs: Vec<u64> = pending.iter().filter_map(|b| b.deleting_seq).collect();
            seqs.sort_unstable();
            seqs.dedup();
            let intents: BTreeMap<u64, crate::event::Event> =
                catalog::views_events_at(tx.conn(), &seqs)
                    .await?
                    .into_iter()
                    .map(|e| (e.seq, e))
                    .collect();
            let refs = match refs {
                Some(refs) => {
                    refs.catch_up(tx.conn()).await?;
                    refs
                }
                None => refs.insert(LogReferences::load(tx.conn(), &BTreeSet::new()).await?),
            };
            let mut confirmed = Vec::with_capacity(pending.len());
            for blob in pending {
                let key = blob.info.blake3;
                let seq = blob.deleting_seq.unwrap_or_default();
                let why = if !intents
                    .get(&seq)
                    .is_some_and(|e| log_facts::intent_names(e, &key))
                {
                    Some(format!(
                        "blobs says it is being deleted since seq {seq}, but that event is no \
                         v1.blob.deletion_started naming it"
                    ))
                } else {
                    refs.deletion_refusal(&key).map(str::to_owned)
                };
                match why {
                    Some(why) => {
                        refused.insert(key);
                        report.refused.push(blob_refused(&key, &why));
                    }
                    None => confirmed.push(blob),
                }
            }
            if confirmed.is_empty() {
                tx.rollback().await?;
                continue;
            }
            // Bytes first, then the events that say they are gone (SPEC §5).
            let confirmed = self
                .delete_bytes(&mut tx, actor, confirmed, report, &mut refused)
                .await?;
            if confirmed.is_empty() {
                tx.rollback().await?;
                continue;
            }
            let at = self.clock().now();
            for blob in &confirmed {
                tx.append(None, actor, at, deleted_data(&blob.info)).await?;
            }
            tx.commit().await?;
            finished.extend(confirmed.into_iter().map(|b| b.info));
        }
        Ok(finished)
    }

    /// Why the storage still locks an unreferenced blob, as the log recorded it (`None` when
    /// the backend has no Object Lock, or nothing recorded locks it now).
    async fn lock_keeps(
        &self,
        conn: &mut sqlx::AnyConnection,
        key: &Blake3,
        now: Timestamp,
    ) -> Result<Option<Refusal>> {
        if self.object_locks().is_none() {
            return Ok(None);
        }
        Ok(catalog::views_blob_lock(conn, key)
            .await?
            .and_then(|lock| recorded_lock_keeps(&lock, now))
            .map(|detail| Refusal {
                subject: key.to_string(),
                detail,
            }))
    }

    /// Deletes the bytes of `blobs`; returns those now gone. On a backend with Object Lock each
    /// blob's every version and delete marker goes, and one the storage still retains is kept
    /// (reported once in `report.kept`, added to `skip`, its deletion left pending for a later
    /// run). A legal hold on such a blob is a leftover (no live package references it, so none
    /// is held: a release whose clearing did not finish, or a creation that never committed):
    /// it is cleared, recorded, and the delete retried.
    async fn delete_bytes(
        &self,
        tx: &mut catalog::WriteTx,
        actor: &str,
        blobs: Vec<BlobRecord>,
        report: &mut GcReport,
        skip: &mut BTreeSet<Blake3>,
    ) -> Result<Vec<BlobRecord>> {
        let Some(locks) = self.object_locks() else {
            let keys: Vec<Blake3> = blobs.iter().map(|b| b.info.blake3).collect();
            self.blob_store().delete_many(&keys).await?;
            return Ok(blobs);
        };
        let mut gone = Vec::with_capacity(blobs.len());
        for blob in blobs {
            let key = blob.info.blake3;
            // What the log recorded as retained is not asked of the storage again.
            let now = self.clock().now();
            if let Some(kept) = self.lock_keeps(tx.conn(), &key, now).await? {
                skip.insert(key);
                push_kept(report, kept);
                continue;
            }
            match self
                .delete_unheld_versions(actor, locks, &key, Some(&mut *tx))
                .await?
            {
                None => gone.push(blob),
                Some(why) => {
                    skip.insert(key);
                    push_kept(
                        report,
                        Refusal {
                            subject: key.to_string(),
                            detail: format!("kept: the storage refuses to delete it: {why}"),
                        },
                    );
                }
            }
        }
        Ok(gone)
    }

    /// Deletes every version of `key`, clearing a leftover legal hold once (recorded as
    /// `v1.blob.legal_hold_set` in `record_in`, the caller's write transaction, for a recorded
    /// blob). `None` once gone; else why the storage keeps it.
    async fn delete_unheld_versions(
        &self,
        actor: &str,
        locks: &dyn crate::blob::ObjectLocks,
        key: &Blake3,
        mut record_in: Option<&mut catalog::WriteTx>,
    ) -> Result<Option<String>> {
        let mut cleared = false;
        loop {
            match locks.delete_versions(key).await? {
                crate::blob::VersionsDeleted::Deleted => return Ok(None),
                crate::blob::VersionsDeleted::Locked {
                    version_id,
                    retain_until,
                    legal_hold,
                } => {
                    let retained = retain_until.filter(|until| *until > self.clock().now());
                    if legal_hold && !cleared {
                        locks.set_legal_hold(key, &version_id, false).await?;
                        if let Some(tx) = record_in.as_deref_mut() {
                            let data = crate::event::types::BlobLegalHoldSet {
                                blake3: *key,
                                version_id: version_id.clone(),
                                on: false,
                                extra: Extra::new(),
                            };
                            tx.append(None, actor, self.clock().now(), data).await?;
                        }
                        cleared = true;
                        if retained.is_none() {
                            continue;
                        }
                    }
                    return Ok(Some(match retained {
                        Some(until) => format!("locked until {until} (version {version_id})"),
                        None => format!("a legal hold on version {version_id}"),
                    }));
                }
            }
        }
    }

    pub(super) async fn recorded_keys(&self) -> Result<BTreeSet<Blake3>> {
        let mut conn = self.catalog().read().await?;
        let mut keys = BTreeSet::new();
        let mut after = 0;
        loop {
            let page = catalog::views_blobs_page(&mut conn, after, 5000).await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = last.stored_seq;
            keys.extend(page.into_iter().map(|(b, _)| b.info.blake3));
        }
        Ok(keys)
    }

    /// Keys in the backend that no event names and that are older than `cutoff`.
    pub(super) async fn orphan_bytes(&self, cutoff: Timestamp) -> Result<Vec<Blake3>> {
        let recorded = self.recorded_keys().await?;
        Ok(self
            .blob_store()
            .list_with_modified()
            .await?
            .into_iter()
            .filter(|(key, modified)| {
                !recorded.contains(key) && modified.is_some_and(|m| m <= cutoff)
            })
            .map(|(key, _)| key)
            .collect())
    }
}

/// Adds a kept blob to the report once.
fn push_kept(report: &mut GcReport, kept: Refusal) {
    if !report.kept.iter().any(|k| k.subject == kept.subject) {
        report.kept.push(kept);
    }
}
