//! The blob backend seam (SPEC §4.3): [`BlobStore`] and its staged writer.
//!
//! Backends store opaque bytes under their BLAKE3 key
//! (`blobs/blake3/<2 hex>/<64 hex>`); hashing, verification and the catalog live in the
//! library, so a backend's contract stays small: stage bytes, publish them atomically under a
//! key, read (optionally a range), stat, delete, list.

use std::fmt::Debug;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncRead;

use crate::digest::Blake3;
use crate::error::Result;

/// Where a blob lives, for tiering (`hot` now; `cold` for archive storage classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Immediately readable storage.
    Hot,
    /// Cheaper storage that may be slower or costlier to read.
    Cold,
}

impl Tier {
    /// The wire name (`hot` / `cold`).
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Cold => "cold",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "hot" => Some(Tier::Hot),
            "cold" => Some(Tier::Cold),
            _ => None,
        }
    }
}

/// The storage key of a blob, identical in every backend: `blobs/blake3/<2 hex>/<64 hex>`.
pub fn blob_key(blake3: &Blake3) -> String {
    let hex = blake3.to_hex();
    format!("blobs/blake3/{}/{hex}", &hex[..2])
}

/// A byte range `[start, end)` of a blob; `end: None` means "to the end".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte, or `None` for the end of the blob.
    pub end: Option<u64>,
}

impl ByteRange {
    /// The concrete `[start, end)` within a blob of `size` bytes, or `None` when unsatisfiable
    /// (start beyond the end, or an empty range).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        let end = self.end.unwrap_or(size).min(size);
        (self.start < end).then_some((self.start, end))
    }
}

/// A readable byte stream.
pub type ByteReader = Pin<Box<dyn AsyncRead + Send>>;

/// An open read of a blob (or of a range of it).
pub struct BlobRead {
    /// Total size of the blob in the backend.
    pub size: u64,
    /// The `[start, end)` range this reader yields.
    pub range: (u64, u64),
    /// The bytes.
    pub reader: ByteReader,
}

impl Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// What a backend knows of a stored blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    /// Size in bytes.
    pub size: u64,
}

/// A blob storage backend. Object-safe: the library holds `Arc<dyn BlobStore>`.
#[async_trait]
pub trait BlobStore: Debug + Send + Sync + 'static {
    /// A short backend name for messages and metrics (`fs`, `s3`).
    fn name(&self) -> &'static str;

    /// The tier new blobs land in.
    fn tier(&self) -> Tier {
        Tier::Hot
    }

    /// Starts a staged write; staged bytes are invisible to readers until
    /// [`StagedBlob::commit`] publishes them.
    async fn stage(&self) -> Result<Box<dyn StagedBlob>>;

    /// Opens a blob (or a range of it). `NotFound` when absent; an unsatisfiable range is
    /// `InvalidInput`.
    async fn get(&self, key: &Blake3, range: Option<ByteRange>) -> Result<BlobRead>;

    /// Stats a blob; `None` when absent.
    async fn head(&self, key: &Blake3) -> Result<Option<BlobMeta>>;

    /// Deletes a blob; deleting an absent blob succeeds.
    async fn delete(&self, key: &Blake3) -> Result<()>;

    /// Every stored key.
    async fn list(&self) -> Result<Vec<Blake3>>;

    /// Checks the backend is reachable and writable (for `readyz` and start-up).
    async fn check(&self) -> Result<()>;

    /// Every stored key with its last-modified time, for garbage collection of bytes no event
    /// names (GC deletes such bytes only when they are older than its grace period, so a key
    /// whose time is unknown is never collected). The default knows no times.
    async fn list_with_modified(&self) -> Result<Vec<(Blake3, Option<crate::time::Timestamp>)>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .map(|key| (key, None))
            .collect())
    }

    /// Deletes several blobs; a backend may batch the durability work (the fs backend fsyncs
    /// each touched directory once). Absent blobs are fine.
    async fn delete_many(&self, keys: &[Blake3]) -> Result<()> {
        for key in keys {
            self.delete(key).await?;
        }
        Ok(())
    }

    /// Staging leftovers no live writer owns (e.g. temp files of a killed process), for fsck.
    /// The default reports none.
    async fn orphaned_staging(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// The storage's own retention and legal holds (S3 Object Lock), when the backend enforces
    /// them (`[blobs] object_lock`); `None` (the default) when it does not.
    fn object_locks(&self) -> Option<&dyn ObjectLocks> {
        None
    }

    /// Takes a complete local file whose content is the blob `key` and publishes it under
    /// `key` with the same guarantees as [`StagedBlob::commit`]; the file is consumed (gone
    /// afterwards, whatever the outcome). The default streams it through [`BlobStore::stage`];
    /// a backend on the same filesystem can move it into place instead (no second copy).
    async fn adopt_file(&self, path: &std::path::Path, key: &Blake3) -> Result<()> {
        let result = copy_file_into(self, path, key).await;
        let _ = tokio::fs::remove_file(path).await;
        result
    }
}

/// Streams a local file through [`BlobStore::stage`] and commits it under `key` (the portable
/// way to [`BlobStore::adopt_file`]); does not remove the file.
pub async fn copy_file_into<S: BlobStore + ?Sized>(
    store: &S,
    path: &std::path::Path,
    key: &Blake3,
) -> Result<()> {
    use tokio::io::AsyncReadExt as _;
    let mut file = tokio::fs::File::open(path).await?;
    let mut staged = store.stage().await?;
    loop {
        let mut buffer = bytes::BytesMut::with_capacity(1 << 20);
        let n = match file.read_buf(&mut buffer).await {
            Ok(n) => n,
            Err(e) => {
                let _ = staged.abort().await;
                return Err(e.into());
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = staged.write(buffer.freeze()).await {
            let _ = staged.abort().await;
            return Err(e);
        }
    }
    staged.commit(key).await
}

/// Bytes being written to a backend, not yet visible.
#[async_trait]
pub trait StagedBlob: Send {
    /// Appends the next bytes.
    async fn write(&mut self, chunk: Bytes) -> Result<()>;

    /// Makes the bytes durable and publishes them under `key` atomically: readers see the whole
    /// blob or nothing. If `key` already exists the staged bytes are discarded (same content).
    async fn commit(self: Box<Self>, key: &Blake3) -> Result<()>;

    /// Discards the staged bytes.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// Object Lock retention modes (S3's `x-amz-object-lock-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Nobody, not even the account's root user, can shorten or remove the retention.
    Compliance,
    /// Principals with `s3:BypassGovernanceRetention` can.
    Governance,
}

impl LockMode {
    /// The wire value (`COMPLIANCE` / `GOVERNANCE`).
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Compliance => "COMPLIANCE",
            LockMode::Governance => "GOVERNANCE",
        }
    }

    /// Parses the wire value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "COMPLIANCE" => Some(LockMode::Compliance),
            "GOVERNANCE" => Some(LockMode::Governance),
            _ => None,
        }
    }
}

/// What the storage enforces on one stored version of a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionLock {
    /// The retention mode and retain-until date, if the version has a retention.
    pub retention: Option<(LockMode, crate::time::Timestamp)>,
    /// Whether its legal hold is on.
    pub legal_hold: bool,
}

/// What deleting every version of a blob did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionsDeleted {
    /// Every version and delete marker of the key is gone.
    Deleted,
    /// The storage refused: a version is still retained or under a legal hold. Nothing the
    /// storage locks was removed (unlocked versions may have been).
    Locked {
        /// The version that is still locked.
        version_id: String,
        /// Its retain-until date, if it has a retention.
        retain_until: Option<crate::time::Timestamp>,
        /// Whether its legal hold is on.
        legal_hold: bool,
    },
}

/// A version of a blob's key other than the one its lock is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherVersion {
    /// Its version id.
    pub version_id: String,
    /// A delete marker rather than an object version.
    pub delete_marker: bool,
}

/// A backend's Object Lock calls (S3 `PutObjectRetention`, `PutObjectLegalHold`, versioned
/// reads and deletes). The library decides what each blob needs from the log; the storage then
/// refuses early deletes even to whoever holds the bucket's credentials.
#[async_trait]
pub trait ObjectLocks: Send + Sync {
    /// The mode every retention is applied in.
    fn mode(&self) -> LockMode;

    /// How far ahead a permanent package's blobs are retained (pushed forward by the sweep).
    fn permanent_horizon(&self) -> crate::time::Period;

    /// The version id of the current version of a blob; `None` when there is none.
    async fn current_version(&self, key: &Blake3) -> Result<Option<String>>;

    /// The size of one version; `None` when that version does not exist.
    async fn version_size(&self, key: &Blake3, version_id: &str) -> Result<Option<u64>>;

    /// What the storage enforces on one version; `None` when that version does not exist.
    async fn version_lock(&self, key: &Blake3, version_id: &str) -> Result<Option<VersionLock>>;

    /// Sets the retention of a version to `until` in `mode` (the storage refuses to shorten
    /// one, or to weaken COMPLIANCE; callers only extend).
    async fn retain_until(
        &self,
        key: &Blake3,
        version_id: &str,
        mode: LockMode,
        until: crate::time::Timestamp,
    ) -> Result<()>;

    /// Sets or clears the legal hold of a version.
    async fn set_legal_hold(&self, key: &Blake3, version_id: &str, on: bool) -> Result<()>;

    /// Opens one version of a blob (what scrub and fsck read: the version the log recorded).
    async fn get_version(
        &self,
        key: &Blake3,
        version_id: &str,
        range: Option<ByteRange>,
    ) -> Result<BlobRead>;

    /// Deletes every version and delete marker of a blob, or reports the one still locked.
    async fn delete_versions(&self, key: &Blake3) -> Result<VersionsDeleted>;

    /// Every version and delete marker of a blob's key other than `keep` (an operator's
    /// unversioned DELETE stacks a marker that hides `keep` from plain reads; a PUT under the
    /// key, or a rare concurrent duplicate upload, adds a version).
    async fn other_versions(&self, key: &Blake3, keep: &str) -> Result<Vec<OtherVersion>>;

    /// Deletes one version or delete marker: `true` once it is gone (or was absent), `false`
    /// when the storage refuses because it is locked.
    async fn delete_version(&self, key: &Blake3, version_id: &str) -> Result<bool>;
}
