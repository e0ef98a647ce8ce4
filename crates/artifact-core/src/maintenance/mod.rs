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
mod fsck;
mod gc;
mod reports;
mod scrub;

pub use gc::GcOptions;
pub use reports::{Finding, FsckReport, GcReport, IntegrityFailure, VerifyReport, refusals_value};
pub use scrub::VerifyOptions;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt as _;

use crate::catalog::{self, BlobRecord};
use crate::cbor::Value;
use crate::digest::{Blake3, BlobInfo, DualHasher, PackageId};
use crate::error::{Error, Result};
use crate::event::types::{
    BlobDeleted, BlobDeletionStarted, Extra, IntegrityChecked, IntegrityFailed, PackagePurged,
};
use crate::event::{EventData, Head};
use crate::log_facts::{self, LogReferences, Refusal};
use crate::store::ArtifactStore;
use crate::time::{Period, Timestamp};

/// Blobs handled per transaction.
const BATCH: i64 = 500;

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

/// An unreferenced blob the storage still retains, by what the log recorded of its lock: its
/// retain-until not passed by `now`. `None` when nothing recorded retains it (the storage is
/// still the last word when the bytes are deleted).
/// A recorded legal hold does not keep it: no live package references an unreferenced blob,
/// so none can be held, and deletion clears such a leftover hold.
fn recorded_lock_keeps(lock: &crate::catalog::RecordedLock, now: Timestamp) -> Option<String> {
    lock.retain_until
        .filter(|until| *until > now)
        .map(|until| format!("kept: locked until {until}"))
}

/// The data of a `v1.blob.deleted` event.
fn deleted_data(info: &BlobInfo) -> BlobDeleted {
    BlobDeleted {
        blake3: info.blake3,
        sha256: info.sha256,
        size: info.size,
        extra: Extra::new(),
    }
}
