//! Garbage collection, integrity scrubbing and fsck (SPEC §5): the only path that deletes bytes.
//!
//! # Garbage collection
//! 1. **Purge.** For each package marked eligible, inside a write transaction that re-checks it
//!    is still eligible (no extension or hold flipped it back, not purged yet), append
//!    `v1.package.purged`. Its manifest and events stay forever.
//! 2. **Delete.** Per batch of recorded blobs older than the grace period that no live package
//!    references and that are not manifests: commit the intent, one `v1.blob.deletion_started`
//!    naming them (from then on they count as missing to package creation and to recording, so
//!    they can gain no reference); then, under the write lock, delete their bytes and append one
//!    `v1.blob.deleted` per blob, and commit. A process killed between deleting the bytes and
//!    that commit leaves blobs marked as being deleted; whoever opens the store next (or the
//!    next GC) finishes them ([`ArtifactStore::finish_blob_deletions`]; deleting absent bytes
//!    succeeds). Only blobs GC committed to are finished that way: bytes lost by other means
//!    are never recorded as a deletion, they stay an fsck finding.
//! 3. **Orphans.** Bytes in the backend that no event names (a crash between a durable write and
//!    its event) are deleted once older than the grace period; nothing is recorded for them,
//!    since nothing ever recorded them.
//!
//! # Scrub (`verify`)
//! Re-reads recorded blobs (all, or a random sample), checks size and both digests, and records
//! `v1.integrity.checked` or `v1.integrity.failed` per blob, optionally rate-limited.
//!
//! # fsck
//! Live packages' blobs (and manifests) present with the right size, every other recorded blob
//! present with the right size too (no event names bytes that are gone), no blob whose latest
//! check failed, views equal a replay of the log, the hash chain intact, no orphaned staging files.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt as _;

use crate::catalog::{self, BlobRecord};
use crate::cbor::Value;
use crate::digest::{Blake3, BlobInfo, DualHasher, PackageId};
use crate::error::{Error, Result};
use crate::event::{Head, types};
use crate::log_facts::{self, LogReferences, Refusal};
use crate::store::ArtifactStore;
use crate::time::{Period, Timestamp};

/// Blobs handled per transaction.
const BATCH: i64 = 500;

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
            grace: Period::Millis(24 * 3_600_000),
            dry_run: false,
        }
    }
}

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
        ]))
    }
}

/// Options of [`ArtifactStore::verify_blobs`].
#[derive(Clone, Copy, Debug)]
pub struct VerifyOptions {
    /// Fraction of blobs to check, in (0, 1]; each blob is picked at random with this probability.
    pub sample: f64,
    /// Read at most this many bytes per second (`None`: as fast as possible).
    pub max_bytes_per_sec: Option<u64>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            sample: 1.0,
            max_bytes_per_sec: None,
        }
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

/// Bytes a scrub reads at a time.
const CHUNK: usize = 1 << 20;
/// Chunks a scrub reads ahead of the hashing.
const READ_AHEAD: usize = 4;

/// Aborts a task when dropped (a scrub that stops early does not leave its reader running).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn purge_refused(package: &PackageId, why: String) -> Refusal {
    Refusal {
        subject: package.to_string(),
        detail: format!("retention_state says it is eligible and unheld, but {why}; not purged"),
    }
}

fn blob_refused(blob: &Blake3, why: &str) -> Refusal {
    Refusal {
        subject: blob.to_string(),
        detail: format!("the views nominate it for deletion, but {why}; its bytes are kept"),
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

/// The data of a `v1.blob.deleted` event.
fn deleted_data(info: &BlobInfo) -> Value {
    Value::Map(BTreeMap::from([
        ("blake3".to_owned(), Value::Text(info.blake3.to_string())),
        ("sha256".to_owned(), Value::Text(info.sha256.to_string())),
        ("size".to_owned(), Value::Int(info.size as i64)),
    ]))
}

/// A tiny xorshift generator for sampling (not for secrets).
struct Sampler(u64);

impl Sampler {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self(nanos ^ (u64::from(std::process::id()) << 32) | 1)
    }

    fn pick(&mut self, fraction: f64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) < fraction
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
                    None => blobs.push(blob),
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
                let data = Value::Map(BTreeMap::from([(
                    "eligible_seq".to_owned(),
                    state
                        .and_then(|s| s.eligible_seq)
                        .map_or(Value::Null, |s| Value::Int(s as i64)),
                )]));
                tx.append(types::PACKAGE_PURGED, Some(*package_id), actor, at, data)
                    .await?;
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
            for blob in nominated {
                match log_refs.deletion_refusal(&blob.info.blake3) {
                    None => candidates.push(blob),
                    Some(why) => report.refused.push(blob_refused(&blob.info.blake3, why)),
                }
            }
            if candidates.is_empty() {
                tx.rollback().await?;
                continue;
            }
            let data = Value::Map(BTreeMap::from([(
                "blobs".to_owned(),
                Value::Array(
                    candidates
                        .iter()
                        .map(|b| Value::Text(b.info.blake3.to_string()))
                        .collect(),
                ),
            )]));
            let at = self.clock().now();
            tx.append(types::BLOB_DELETION_STARTED, None, actor, at, data)
                .await?;
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
            self.blob_store().delete_many(&orphans).await?;
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
        let mut refused: BTreeSet<Blake3> = BTreeSet::new();
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
            let keys: Vec<Blake3> = confirmed.iter().map(|b| b.info.blake3).collect();
            // Bytes first, then the events that say they are gone (SPEC §5).
            self.blob_store().delete_many(&keys).await?;
            let at = self.clock().now();
            for blob in &confirmed {
                tx.append(
                    types::BLOB_DELETED,
                    None,
                    actor,
                    at,
                    deleted_data(&blob.info),
                )
                .await?;
            }
            tx.commit().await?;
            finished.extend(confirmed.into_iter().map(|b| b.info));
        }
        Ok(finished)
    }

    async fn recorded_keys(&self) -> Result<BTreeSet<Blake3>> {
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
    async fn orphan_bytes(&self, cutoff: Timestamp) -> Result<Vec<Blake3>> {
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

    /// Re-reads recorded blobs and checks both digests, recording `v1.integrity.checked` or
    /// `v1.integrity.failed` for each. `progress` is called with the bytes read so far.
    pub async fn verify_blobs(
        &self,
        actor: &str,
        options: VerifyOptions,
        mut progress: impl FnMut(u64) + Send,
    ) -> Result<VerifyReport> {
        if !(options.sample > 0.0 && options.sample <= 1.0) {
            return Err(Error::invalid("the sample fraction must be in (0, 1]"));
        }
        let mut sampler = Sampler::new();
        let mut report = VerifyReport::default();
        let started = Instant::now();
        let mut after = 0;
        loop {
            let page = {
                let mut conn = self.catalog().read().await?;
                catalog::views_blobs_page(&mut conn, after, 64).await?
            };
            let Some((last, _)) = page.last() else {
                break;
            };
            after = last.stored_seq;
            let mut results = Vec::new();
            for (blob, _) in page {
                // Blobs GC is deleting are about to go; their bytes may be gone already.
                if blob.deleting_seq.is_some()
                    || (options.sample < 1.0 && !sampler.pick(options.sample))
                {
                    continue;
                }
                let outcome = self
                    .check_blob(
                        &blob.info,
                        &mut report.bytes,
                        options,
                        started,
                        &mut progress,
                    )
                    .await?;
                report.checked += 1;
                results.push((blob.info, outcome));
            }
            if results.is_empty() {
                continue;
            }
            let mut tx = self.catalog().write().await?;
            let at = self.clock().now();
            for (info, outcome) in results {
                // A blob GC deleted (or started deleting) meanwhile: its bytes being gone is not
                // a failure, and there is nothing left to record a check of.
                let current =
                    catalog::views_blob(tx.conn(), &crate::digest::AnyDigest::Blake3(info.blake3))
                        .await?;
                if current.is_none_or(|b| b.deleting_seq.is_some()) {
                    continue;
                }
                let mut data = BTreeMap::from([
                    ("blake3".to_owned(), Value::Text(info.blake3.to_string())),
                    ("size".to_owned(), Value::Int(info.size as i64)),
                ]);
                let event_type = match &outcome {
                    Ok(()) => types::INTEGRITY_CHECKED,
                    Err(reason) => {
                        data.insert("reason".to_owned(), Value::Text(reason.clone()));
                        report.failed.push(IntegrityFailure {
                            blake3: info.blake3,
                            reason: reason.clone(),
                        });
                        types::INTEGRITY_FAILED
                    }
                };
                tx.append(event_type, None, actor, at, Value::Map(data))
                    .await?;
            }
            tx.commit().await?;
        }
        Ok(report)
    }

    /// Reads one blob fully; `Err(reason)` when it is missing or does not match.
    async fn check_blob(
        &self,
        info: &BlobInfo,
        total: &mut u64,
        options: VerifyOptions,
        started: Instant,
        progress: &mut (impl FnMut(u64) + Send),
    ) -> Result<std::result::Result<(), String>> {
        let mut read = match self.blob_store().get(&info.blake3, None).await {
            Ok(read) => read,
            Err(Error::NotFound { .. }) => return Ok(Err("bytes are missing".to_owned())),
            Err(e) => return Err(e),
        };
        // A reader task keeps up to READ_AHEAD chunks in flight while this task hashes, so the
        // disk and the hashing overlap (one after the other, a cold scrub ran at a third of
        // min(read, hash) in benches/scrub.rs).
        let (sender, mut chunks) =
            tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(READ_AHEAD);
        let reader = tokio::spawn(async move {
            loop {
                let mut buffer = vec![0u8; CHUNK];
                let mut filled = 0;
                // Fill whole chunks (short reads are common) so hashing sees few, large pieces.
                let result = loop {
                    match read.reader.read(&mut buffer[filled..]).await {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == CHUNK {
                                break Ok(());
                            }
                        }
                        Err(e) => break Err(e),
                    }
                };
                let done = filled < CHUNK;
                buffer.truncate(filled);
                let message = match result {
                    Ok(()) => Ok(buffer),
                    Err(e) => Err(e),
                };
                let failed = message.is_err();
                if (filled > 0 || failed) && sender.send(message).await.is_err() {
                    return;
                }
                if done || failed {
                    return;
                }
            }
        });
        let _abort_reader = AbortOnDrop(reader);
        let mut hasher = DualHasher::new();
        while let Some(chunk) = chunks.recv().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => return Ok(Err(format!("read failed: {e}"))),
            };
            // Off the runtime's worker threads (a scrub in the server must not stall requests).
            let chunk_len = chunk.len() as u64;
            hasher = tokio::task::spawn_blocking(move || {
                hasher.update_parallel(&chunk);
                hasher
            })
            .await
            .map_err(|e| Error::Io(std::io::Error::other(format!("hashing failed: {e}"))))?;
            *total += chunk_len;
            progress(*total);
            if let Some(rate) = options.max_bytes_per_sec.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(*total as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        let actual = hasher.finalize();
        Ok(if actual.size != info.size {
            Err(format!(
                "size is {} bytes, recorded {}",
                actual.size, info.size
            ))
        } else if actual.blake3 != info.blake3 {
            Err(format!("content hashes to {}", actual.blake3))
        } else if actual.sha256 != info.sha256 {
            Err(format!("content's sha256 is {}", actual.sha256))
        } else {
            Ok(())
        })
    }

    /// Checks the store's consistency (see the module docs); read-only.
    pub async fn fsck(&self) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        // Keys checked as live references (not checked again as recorded blobs below).
        let mut checked = BTreeSet::new();
        // Live packages: manifest blob and every file's blob present with the right size.
        let mut after = String::new();
        loop {
            let page = {
                let mut conn = self.catalog().read().await?;
                catalog::views_live_packages_page(&mut conn, &after, 1000).await?
            };
            let Some((last, _)) = page.last() else {
                break;
            };
            after = last.to_string();
            for (package_id, manifest_size) in page {
                report.packages += 1;
                checked.insert(package_id);
                self.check_present(
                    &package_id,
                    manifest_size,
                    format!("manifest of {package_id}"),
                    &mut report,
                )
                .await?;
            }
        }
        let mut cursor = (String::new(), String::new());
        loop {
            let page = {
                let mut conn = self.catalog().read().await?;
                catalog::views_live_files_page(&mut conn, &cursor, 1000).await?
            };
            let Some((package_id, path, _)) = page.last() else {
                break;
            };
            cursor = (package_id.clone(), path.clone());
            for (package_id, path, info) in page {
                report.files += 1;
                checked.insert(info.blake3);
                self.check_present(
                    &info.blake3,
                    info.size,
                    format!("{path} of {package_id}"),
                    &mut report,
                )
                .await?;
            }
        }
        // Blobs whose latest integrity check failed; recorded blobs whose bytes are gone.
        let mut after_seq = 0;
        let mut deleting = 0u64;
        loop {
            let page = {
                let mut conn = self.catalog().read().await?;
                catalog::views_blobs_page(&mut conn, after_seq, 5000).await?
            };
            let Some((last, _)) = page.last() else {
                break;
            };
            after_seq = last.stored_seq;
            for (blob, last_check_ok) in page {
                // Every recorded blob (not only live references) must have its bytes: no event
                // may name bytes that are gone (SPEC §6). Re-read the row before reporting, so
                // a GC deleting it meanwhile is not a finding.
                if blob.deleting_seq.is_some() {
                    deleting += 1;
                }
                let found = if checked.contains(&blob.info.blake3) || blob.deleting_seq.is_some() {
                    None
                } else {
                    Some(self.blob_store().head(&blob.info.blake3).await?)
                };
                match found {
                    None => {}
                    Some(Some(meta)) if meta.size == blob.info.size => {}
                    Some(found) => {
                        let mut conn = self.catalog().read().await?;
                        let still_recorded = catalog::views_blob(
                            &mut conn,
                            &crate::digest::AnyDigest::Blake3(blob.info.blake3),
                        )
                        .await?
                        .is_some_and(|b| b.deleting_seq.is_none());
                        if still_recorded {
                            report.findings.push(match found {
                                Some(meta) => Finding {
                                    kind: "wrong-size",
                                    subject: blob.info.blake3.to_string(),
                                    detail: format!(
                                        "recorded blob holds {} bytes, expected {}",
                                        meta.size, blob.info.size
                                    ),
                                },
                                None => Finding {
                                    kind: "missing-blob",
                                    subject: blob.info.blake3.to_string(),
                                    detail: format!(
                                        "recorded blob is missing from the `{}` backend",
                                        self.blob_store().name()
                                    ),
                                },
                            });
                        }
                    }
                }
                if last_check_ok == Some(false) {
                    report.findings.push(Finding {
                        kind: "failed-check",
                        subject: blob.info.blake3.to_string(),
                        detail: "the latest integrity check of this blob failed; restore it"
                            .to_owned(),
                    });
                }
            }
        }
        if deleting > 0 {
            report.notes.push(format!(
                "{deleting} blob(s) are being deleted by garbage collection (v1.blob.deletion_started); the running gc, or the next open of the store, records their deletion"
            ));
        }
        // Views equal a replay; the chain is intact.
        let differing = self.catalog().views_match_replay(self.classes()).await?;
        for table in differing {
            report.findings.push(Finding {
                kind: "views",
                subject: table,
                detail: "this view differs from a replay of the log; run `artifactstore admin rebuild-views`".to_owned(),
            });
        }
        let audit = self.audit().await?;
        report.head = audit.head;
        if let Some((seq, reason)) = audit.chain_error {
            report.findings.push(Finding {
                kind: "chain",
                subject: format!("seq {seq}"),
                detail: reason,
            });
        }
        // The Merkle tree (ADR 0011) agrees with the stored event bytes.
        match self.verify_tree().await {
            Ok(_) => {}
            Err(Error::Integrity { seq, reason }) => report.findings.push(Finding {
                kind: "tree",
                subject: format!("seq {seq}"),
                detail: reason,
            }),
            Err(other) => return Err(other),
        }
        for violation in audit.violations {
            report.findings.push(Finding {
                kind: "rule",
                subject: format!("seq {}", violation.seq),
                detail: format!("{}: {}", violation.rule, violation.detail),
            });
        }
        for path in self.blob_store().orphaned_staging().await? {
            report.findings.push(Finding {
                kind: "orphaned-staging",
                subject: path,
                detail: "a staging file no writer owns (reclaimed when the store is next opened)"
                    .to_owned(),
            });
        }
        let recorded = self.recorded_keys().await?;
        let unrecorded = self
            .blob_store()
            .list()
            .await?
            .into_iter()
            .filter(|k| !recorded.contains(k))
            .count();
        if unrecorded > 0 {
            report.notes.push(format!(
                "{unrecorded} stored blob(s) are named by no event (interrupted writes or uploads in flight); gc deletes them after its grace period"
            ));
        }
        Ok(report)
    }

    async fn check_present(
        &self,
        key: &Blake3,
        size: u64,
        subject: String,
        report: &mut FsckReport,
    ) -> Result<()> {
        match self.blob_store().head(key).await? {
            Some(meta) if meta.size == size => {}
            Some(meta) => report.findings.push(Finding {
                kind: "wrong-size",
                subject,
                detail: format!("blob {key} holds {} bytes, expected {size}", meta.size),
            }),
            None => report.findings.push(Finding {
                kind: "missing-blob",
                subject,
                detail: format!(
                    "blob {key} is missing from the `{}` backend",
                    self.blob_store().name()
                ),
            }),
        }
        Ok(())
    }
}
