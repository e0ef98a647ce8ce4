//! # artifact-store-s3
//!
//! The S3-compatible blob backend of artifactstore (AWS S3, SeaweedFS, MinIO, Ceph RGW,
//! Cloudflare R2, Garage…), built on the `object_store` crate.
//!
//! # Configuration
//!
//! From the operator's TOML (`[blobs]`, SPEC §4.6), credentials from the usual AWS
//! environment variables:
//!
//! ```toml
//! [blobs]
//! backend = "s3"
//! bucket = "artifacts"
//! prefix = "prod"                      # optional
//! endpoint = "http://127.0.0.1:8333"   # optional; AWS when absent
//! region = "us-east-1"
//! allow_http = true                    # only for plain-http endpoints
//! ```
//!
//! ```no_run
//! # async fn demo(config: artifact_core::config::Config) -> artifact_core::Result<()> {
//! use std::sync::Arc;
//! use artifact_core::blob::BlobStore;
//! use artifact_core::{ArtifactStore, StoreOptions};
//! use artifact_store_s3::S3BlobStore;
//!
//! let s3 = S3BlobStore::from_config(&config.blobs)?;
//! s3.check().await?; // fails clearly on bad credentials, a missing bucket, a dead endpoint
//! let store = ArtifactStore::open(StoreOptions::new("sqlite:///var/lib/artifactstore/catalog.db", Arc::new(s3))).await?;
//! # Ok(()) }
//! ```
//!
//! Or in code, with [`S3Options`] (`new` / `from_env` and `with_*` setters: endpoint, region,
//! credentials, path- or virtual-hosted-style requests, part size, upload concurrency,
//! retries).
//!
//! # Layout
//!
//! - `<prefix>/blobs/blake3/<2 hex>/<64 hex>`: published blobs, the key shape of every
//!   backend ([`artifact_core::blob::blob_key`]).
//! - `<prefix>/staging/<32 hex>`: a large blob while it is being published (see below). Only a
//!   crash leaves one behind; [`S3BlobStore::reclaim_staging`] or a bucket lifecycle rule
//!   removes them.
//!
//! # Writes (ADR 0007)
//!
//! A blob's key is its BLAKE3 digest, known only after the last byte. A staged write buffers
//! up to one part ([`S3Options::with_part_size`], default 16 MiB):
//! - **small blobs** (at most one part) are PUT in one request directly under their final key
//!   at commit: a single PUT is atomic.
//! - **large blobs** stream into a multipart upload of a fresh staging key (parts upload in the
//!   background while the next one fills). At commit, if the final key already holds an object
//!   of the same size the upload is aborted (deduplication). Otherwise the upload is completed,
//!   copied server-side to the final key (one `CopyObject`, atomic), and the staging key is
//!   deleted. Above the copy limit (5 GiB, AWS's `CopyObject` maximum) the staged object is
//!   streamed into a multipart upload of the final key instead.
//! - **abort**, a failed write, or dropping the staged blob aborts the multipart upload. The
//!   bytes never appear under a final key, whatever fails.
//!
//! Conditional writes (`If-None-Match`) are never used: several S3-compatible servers (Garage)
//! ignore them, and content addressing makes overwriting a key with the same bytes harmless.
//!
//! # Retries
//!
//! Every request retries transient failures (connection errors, 5xx, throttling) with
//! exponential backoff ([`S3Options::with_retry`], object_store's `RetryConfig`: by default
//! 10 retries within 3 minutes). [`BlobStore::check`] uses a short policy of its own so that
//! start-up and readiness probes fail fast.
//!
//! # Tiers and storage classes
//!
//! [`BlobStore::tier`] is always [`Tier::Hot`](artifact_core::blob::Tier::Hot): every object
//! is written in the bucket's default storage class (`STANDARD`). Tier moves are not
//! implemented; when they are, the mapping is:
//! - `hot` → `STANDARD` (or the provider's equivalent; R2 Standard, MinIO/SeaweedFS default).
//! - `cold` → `STANDARD_IA` or `GLACIER_IR` (Glacier Instant Retrieval): cheaper storage
//!   that is still read with an ordinary ranged `GET`, so reads keep working without a
//!   restore step. `GLACIER` / `DEEP_ARCHIVE` need a `RestoreObject` before any read and do
//!   not fit the `get` contract; they would need a third tier.
//!
//! A lifecycle transition rule on `<prefix>/blobs/` changes the storage class without the
//! store knowing; the recorded tier then only says where the blob landed.
#![warn(missing_docs, unreachable_pub)]

mod error;
mod locks;
mod options;
pub mod publish;
pub mod signed;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use artifact_core::blob::{BlobMeta, BlobRead, BlobStore, ByteRange, StagedBlob, blob_key};
use artifact_core::digest::Blake3;
use artifact_core::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, PutPayload, WriteMultipart,
};

use artifact_core::blob::{LockMode, ObjectLocks};
use artifact_core::time::Period;
use error::{S3Error, is_unreachable};
pub use object_store::{BackoffConfig, ClientOptions, RetryConfig};
pub use options::{
    DEFAULT_COPY_LIMIT, DEFAULT_PART_SIZE, DEFAULT_UPLOAD_CONCURRENCY, MAX_PART_SIZE,
    MIN_PART_SIZE, PART_SIZE_ENV, S3Options,
};
pub use publish::{S3CheckpointSink, SinkLock};
use signed::SignedClient;

/// Blobs in an S3-compatible bucket. Cheap to clone (one shared HTTP client).
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The client every blob operation uses (full retry policy).
    client: Arc<AmazonS3>,
    /// A client with a short retry policy, for `check`.
    probe: AmazonS3,
    bucket: String,
    endpoint: String,
    /// `None` for the bucket root.
    prefix: Option<Path>,
    part_size: usize,
    upload_concurrency: usize,
    copy_limit: u64,
    /// Object Lock mode and permanent horizon (`None` = off).
    object_lock: Option<(LockMode, Period)>,
    /// Signed requests for what object_store cannot send (present with Object Lock).
    signed: Option<SignedClient>,
}

/// What [`S3Options::build`] hands over.
pub(crate) struct Parts {
    pub(crate) client: AmazonS3,
    pub(crate) probe: AmazonS3,
    pub(crate) bucket: String,
    pub(crate) endpoint: String,
    pub(crate) prefix: String,
    pub(crate) part_size: usize,
    pub(crate) upload_concurrency: usize,
    pub(crate) copy_limit: u64,
    pub(crate) object_lock: Option<(LockMode, Period)>,
    pub(crate) signed: Option<SignedClient>,
}

impl S3BlobStore {
    /// Builds a store from the `[blobs]` configuration section (`backend = "s3"`), credentials
    /// from the environment. See [`S3Options::from_config`].
    pub fn from_config(config: &artifact_core::config::BlobsConfig) -> Result<Self> {
        S3Options::from_config(config)?.build()
    }

    /// Builds a store from options (same as [`S3Options::build`]).
    pub fn new(options: S3Options) -> Result<Self> {
        options.build()
    }

    fn from_parts(parts: Parts) -> Self {
        let prefix = (!parts.prefix.is_empty()).then(|| Path::from(parts.prefix));
        Self {
            inner: Arc::new(Inner {
                client: Arc::new(parts.client),
                probe: parts.probe,
                bucket: parts.bucket,
                endpoint: parts.endpoint,
                prefix,
                part_size: parts.part_size,
                upload_concurrency: parts.upload_concurrency,
                copy_limit: parts.copy_limit,
                object_lock: parts.object_lock,
                signed: parts.signed,
            }),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The multipart part size in bytes.
    pub fn part_size(&self) -> usize {
        self.inner.part_size
    }

    /// The underlying object_store client (for tools and tests that inspect the bucket).
    pub fn object_store(&self) -> Arc<AmazonS3> {
        Arc::clone(&self.inner.client)
    }

    /// The object key of a blob: `<prefix>/blobs/blake3/<2 hex>/<64 hex>`.
    pub fn blob_location(&self, key: &Blake3) -> Path {
        self.inner.under_prefix(&blob_key(key))
    }

    /// Where staged uploads live: `<prefix>/staging`.
    pub fn staging_prefix(&self) -> Path {
        self.inner.under_prefix("staging")
    }

    /// Deletes staging objects older than `older_than` (left by a process that died between
    /// completing an upload and deleting its staging key); returns how many were removed.
    /// Incomplete multipart uploads are invisible to listing: an `AbortIncompleteMultipartUpload`
    /// lifecycle rule removes those (see OPERATOR.md).
    pub async fn reclaim_staging(&self, older_than: Duration) -> Result<usize> {
        let prefix = self.staging_prefix();
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let stale: Vec<Path> = self
            .inner
            .client
            .list(Some(&prefix))
            .try_filter_map(|meta| async move {
                Ok((SystemTime::from(meta.last_modified) <= cutoff).then_some(meta.location))
            })
            .try_collect()
            .await
            .map_err(|source| S3Error::List {
                prefix: prefix.to_string(),
                source,
            })?;
        for location in &stale {
            match &self.inner.signed {
                // A versioned (Object Lock) bucket: every version goes, not just the current
                // one under a new delete marker.
                Some(signed) => {
                    for entry in signed.list_versions(location.as_ref()).await? {
                        if entry.key == location.as_ref() {
                            let _ = signed.delete(&entry.key, Some(&entry.version_id)).await?;
                        }
                    }
                }
                None => self.inner.delete_location(location).await?,
            }
        }
        Ok(stale.len())
    }
}

impl Inner {
    fn under_prefix(&self, key: &str) -> Path {
        match &self.prefix {
            Some(prefix) => Path::from(format!("{prefix}/{key}")),
            None => Path::from(key),
        }
    }

    fn blobs_root(&self) -> Path {
        self.under_prefix("blobs/blake3")
    }

    async fn head_location(&self, location: &Path) -> Result<Option<u64>> {
        match self.client.head(location).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(S3Error::Head {
                key: location.to_string(),
                source,
            }
            .into()),
        }
    }

    async fn delete_location(&self, location: &Path) -> Result<()> {
        match self.client.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(S3Error::Delete {
                key: location.to_string(),
                source,
            }
            .into()),
        }
    }

    /// Publishes a completed staging object under `target`: one server-side copy, or above the
    /// copy limit a streamed multipart copy.
    async fn publish_staged(&self, staging: &Path, target: &Path, size: u64) -> Result<()> {
        if size <= self.copy_limit {
            return self.client.copy(staging, target).await.map_err(|source| {
                S3Error::Copy {
                    from: staging.to_string(),
                    to: target.to_string(),
                    source,
                }
                .into()
            });
        }
        let copy_error = |source| S3Error::Copy {
            from: staging.to_string(),
            to: target.to_string(),
            source,
        };
        let mut stream = self
            .client
            .get(staging)
            .await
            .map_err(copy_error)?
            .into_stream();
        let upload = self
            .client
            .put_multipart(target)
            .await
            .map_err(copy_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        loop {
            let next = match stream.next().await {
                None => break,
                Some(Ok(bytes)) => writer
                    .wait_for_capacity(self.upload_concurrency)
                    .await
                    .map(|()| bytes),
                Some(Err(e)) => Err(e),
            };
            match next {
                Ok(bytes) => writer.put(bytes),
                Err(source) => {
                    let _ = writer.abort().await;
                    return Err(copy_error(source).into());
                }
            }
        }
        writer.finish().await.map_err(copy_error)?;
        Ok(())
    }
}

/// A blob key, with the version when one is named.
fn describe(key: &Blake3, version: Option<&str>) -> String {
    match version {
        Some(version) => format!("{key} (version {version})"),
        None => key.to_string(),
    }
}

/// A fresh staging key: 128 random bits in hex, unique across processes and hosts.
fn staging_name() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to something unique to this process and instant.
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A blob being written: buffered until it outgrows one part, then streamed to a multipart
/// upload of a staging key.
struct S3StagedBlob {
    store: Arc<Inner>,
    staging: Path,
    /// Bytes not yet handed to an upload (at most one part before the upload starts).
    pending: Vec<Bytes>,
    pending_len: usize,
    total: u64,
    /// The multipart upload, once the blob is larger than one part.
    upload: Option<WriteMultipart>,
}

impl std::fmt::Debug for S3StagedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3StagedBlob")
            .field("staging", &self.staging)
            .field("total", &self.total)
            .field("multipart", &self.upload.is_some())
            .finish_non_exhaustive()
    }
}

impl S3StagedBlob {
    fn part_error(&self, source: object_store::Error) -> Error {
        S3Error::UploadPart {
            key: self.staging.to_string(),
            source,
        }
        .into()
    }

    /// Starts the multipart upload and hands it the pending bytes.
    async fn start_upload(&mut self) -> Result<()> {
        let upload = self
            .store
            .client
            .put_multipart(&self.staging)
            .await
            .map_err(|source| S3Error::StartUpload {
                key: self.staging.to_string(),
                source,
            })?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.store.part_size);
        for bytes in self.pending.drain(..) {
            writer.put(bytes);
        }
        self.pending_len = 0;
        self.upload = Some(writer);
        Ok(())
    }

    /// Aborts the multipart upload (best effort: an upload that cannot be aborted stays
    /// invisible and is removed by the bucket's lifecycle rule).
    async fn abort_upload(&mut self) {
        if let Some(writer) = self.upload.take() {
            let _ = writer.abort().await;
        }
    }

    async fn commit_inner(&mut self, key: &Blake3) -> Result<()> {
        let target = self.store.under_prefix(&blob_key(key));
        let existing = self.store.head_location(&target).await?;
        if existing == Some(self.total) {
            // Same key and size: the content is already there (deduplication).
            self.abort_upload().await;
            return Ok(());
        }
        let Some(mut writer) = self.upload.take() else {
            // At most one part: one PUT straight to the final key is atomic.
            let payload: PutPayload = self.pending.drain(..).collect();
            self.pending_len = 0;
            self.store
                .client
                .put(&target, payload)
                .await
                .map_err(|source| S3Error::Put {
                    key: target.to_string(),
                    source,
                })?;
            return Ok(());
        };
        if let Err(source) = writer.wait_for_capacity(0).await {
            let _ = writer.abort().await;
            return Err(self.part_error(source));
        }
        // `finish` uploads the last part and completes; on failure it aborts the upload.
        let completed = writer
            .finish()
            .await
            .map_err(|source| S3Error::CompleteUpload {
                key: self.staging.to_string(),
                source,
            })?;
        let published = self
            .store
            .publish_staged(&self.staging, &target, self.total)
            .await;
        // The blob is published (or the copy failed); either way the staging object goes.
        // A failed delete leaves garbage for `reclaim_staging`, never a visible partial blob.
        // On a versioned (Object Lock) bucket the exact version goes: a plain DELETE would only
        // stack a delete marker on it.
        match (&self.store.signed, completed.version) {
            (Some(signed), Some(version)) => {
                let _ = signed.delete(self.staging.as_ref(), Some(&version)).await;
            }
            _ => {
                let _ = self.store.delete_location(&self.staging).await;
            }
        }
        published
    }
}

#[async_trait]
impl StagedBlob for S3StagedBlob {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.total += chunk.len() as u64;
        match &mut self.upload {
            Some(writer) => {
                if let Err(source) = writer
                    .wait_for_capacity(self.store.upload_concurrency)
                    .await
                {
                    self.abort_upload().await;
                    return Err(self.part_error(source));
                }
                writer.put(chunk);
                Ok(())
            }
            None => {
                self.pending_len += chunk.len();
                self.pending.push(chunk);
                // Strictly more than one part: a blob of exactly one part stays a single PUT.
                if self.pending_len > self.store.part_size {
                    self.start_upload().await?;
                }
                Ok(())
            }
        }
    }

    async fn commit(mut self: Box<Self>, key: &Blake3) -> Result<()> {
        let result = self.commit_inner(key).await;
        if result.is_err() {
            self.abort_upload().await;
        }
        result
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        // Staged bytes never live under a final key, so discarding cannot fail in a way that
        // matters to the caller: cleanup is best effort.
        self.abort_upload().await;
        self.pending.clear();
        Ok(())
    }
}

impl Drop for S3StagedBlob {
    fn drop(&mut self) {
        // Dropped without commit/abort (a cancelled request): abort the upload in the
        // background so it does not linger until the lifecycle rule.
        if let Some(writer) = self.upload.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = writer.abort().await;
            });
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn name(&self) -> &'static str {
        "s3"
    }

    async fn stage(&self) -> Result<Box<dyn StagedBlob>> {
        let staging = self
            .inner
            .under_prefix(&format!("staging/{}", staging_name()));
        Ok(Box::new(S3StagedBlob {
            store: Arc::clone(&self.inner),
            staging,
            pending: Vec::new(),
            pending_len: 0,
            total: 0,
            upload: None,
        }))
    }

    async fn get(&self, key: &Blake3, range: Option<ByteRange>) -> Result<BlobRead> {
        self.get_version_of(key, range, None).await
    }

    async fn head(&self, key: &Blake3) -> Result<Option<BlobMeta>> {
        let location = self.blob_location(key);
        Ok(self
            .inner
            .head_location(&location)
            .await?
            .map(|size| BlobMeta { size }))
    }

    fn object_locks(&self) -> Option<&dyn ObjectLocks> {
        self.inner
            .object_lock
            .is_some()
            .then_some(self as &dyn ObjectLocks)
    }

    async fn delete(&self, key: &Blake3) -> Result<()> {
        self.inner.delete_location(&self.blob_location(key)).await
    }

    /// Bulk `DeleteObjects` (1,000 keys a request; object_store falls back to single deletes
    /// where a server lacks it). Absent keys count as deleted.
    async fn delete_many(&self, keys: &[Blake3]) -> Result<()> {
        let locations: Vec<object_store::Result<Path>> =
            keys.iter().map(|key| Ok(self.blob_location(key))).collect();
        let mut deleted = self
            .inner
            .client
            .delete_stream(futures_util::stream::iter(locations).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => {
                    return Err(S3Error::Delete {
                        key: format!("{} keys under {}", keys.len(), self.inner.blobs_root()),
                        source,
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Blake3>> {
        let root = self.inner.blobs_root();
        let metas: Vec<object_store::ObjectMeta> = self
            .inner
            .client
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(|source| S3Error::List {
                prefix: root.to_string(),
                source,
            })?;
        let mut keys: Vec<Blake3> = metas
            .iter()
            .filter_map(|meta| parse_blob_location(&root, &meta.location))
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    async fn check(&self) -> Result<()> {
        let inner = &self.inner;
        // The list comes first because some servers (SeaweedFS) create a missing bucket on PUT.
        self.check_readable().await?;
        // Then a write probe under staging/, deleted at once: the bucket is writable.
        let probe_key = inner.under_prefix(&format!("staging/check-{}", staging_name()));
        let not_writable = |source| S3Error::NotWritable {
            endpoint: inner.endpoint.clone(),
            bucket: inner.bucket.clone(),
            key: probe_key.to_string(),
            source,
        };
        let put = inner
            .probe
            .put(&probe_key, PutPayload::from_static(b"ok"))
            .await
            .map_err(|source| inner.classify_check_error(source, not_writable))?;
        if let (Some(signed), Some(version)) = (&inner.signed, put.version) {
            // Versioned (Object Lock) bucket: delete the exact version, leaving nothing behind.
            let status = signed.delete(probe_key.as_ref(), Some(&version)).await?;
            return if status.is_success() {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "the start-up probe `{probe_key}` version {version} could not be deleted \
                     ({status}): does the bucket `{}` apply a default retention?",
                    inner.bucket
                )))
            };
        }
        match inner.probe.delete(&probe_key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(not_writable(source).into()),
        }
    }
}

impl S3BlobStore {
    /// A read of the current version of a blob, or of `version`.
    pub(crate) async fn get_version_of(
        &self,
        key: &Blake3,
        range: Option<ByteRange>,
        version: Option<String>,
    ) -> Result<BlobRead> {
        let version_name = version.clone();
        let location = self.blob_location(key);
        let get_range = match range {
            None => None,
            Some(ByteRange { start, end: None }) => Some(GetRange::Offset(start)),
            Some(ByteRange {
                start,
                end: Some(end),
            }) => {
                if end <= start {
                    return Err(unsatisfiable(start, None));
                }
                Some(GetRange::Bounded(start..end))
            }
        };
        let options = GetOptions {
            range: get_range,
            version,
            ..GetOptions::default()
        };
        let result = match self.inner.client.get_opts(&location, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::not_found(
                    "blob",
                    describe(key, version_name.as_deref()),
                ));
            }
            Err(source) => {
                // A ranged read of an existing blob fails when the range is unsatisfiable
                // (416); servers word that differently, so ask for the size to tell.
                if let Some(range) = range
                    && let Ok(Some(size)) = self.inner.head_location(&location).await
                    && range.resolve(size).is_none()
                {
                    return Err(unsatisfiable(range.start, Some(size)));
                }
                return Err(S3Error::Get {
                    key: location.to_string(),
                    source,
                }
                .into());
            }
        };
        let size = result.meta.size;
        let returned = (result.range.start, result.range.end);
        let stream_key = location.to_string();
        let stream = result.into_stream().map_err(move |source| {
            std::io::Error::other(S3Error::Get {
                key: stream_key.clone(),
                source,
            })
        });
        Ok(BlobRead {
            size,
            range: returned,
            reader: Box::pin(tokio_util::io::StreamReader::new(stream)),
        })
    }

    /// The read half of [`BlobStore::check`]: one signed list of the blob prefix, so the
    /// endpoint answers, the bucket exists and the credentials are accepted (and listing, which
    /// GC and fsck need, is allowed). Writes nothing, so read-only credentials pass; errors
    /// are those of `check`.
    pub async fn check_readable(&self) -> Result<()> {
        let inner = &self.inner;
        let root = inner.blobs_root();
        inner
            .probe
            .list_with_delimiter(Some(&root))
            .await
            .map_err(|source| {
                inner.classify_check_error(source, |source| S3Error::List {
                    prefix: format!("{}/{root}", inner.bucket),
                    source,
                })
            })?;
        self.check_object_lock().await
    }
}

impl Inner {
    /// Turns a failed `check` request into the error that says what to fix.
    fn classify_check_error(
        &self,
        source: object_store::Error,
        otherwise: impl FnOnce(object_store::Error) -> S3Error,
    ) -> Error {
        match source {
            object_store::Error::NotFound { .. } => S3Error::NoBucket {
                endpoint: self.endpoint.clone(),
                bucket: self.bucket.clone(),
                source,
            },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => S3Error::Credentials {
                endpoint: self.endpoint.clone(),
                bucket: self.bucket.clone(),
                source,
            },
            source if is_unreachable(&source) => S3Error::Unreachable {
                endpoint: self.endpoint.clone(),
                source,
            },
            // object_store does not map the status of list requests; the S3 error code in
            // the response body (part of the S3 API) tells what went wrong.
            source => match s3_error_code(&source.to_string()) {
                Some("NoSuchBucket") => S3Error::NoBucket {
                    endpoint: self.endpoint.clone(),
                    bucket: self.bucket.clone(),
                    source,
                },
                Some(
                    "AccessDenied"
                    | "SignatureDoesNotMatch"
                    | "InvalidAccessKeyId"
                    | "ExpiredToken"
                    | "InvalidToken"
                    | "AllAccessDisabled",
                ) => S3Error::Credentials {
                    endpoint: self.endpoint.clone(),
                    bucket: self.bucket.clone(),
                    source,
                },
                _ => otherwise(source),
            },
        }
        .into()
    }
}

/// The `<Code>…</Code>` of an S3 error response quoted in an error message.
fn s3_error_code(message: &str) -> Option<&str> {
    let start = message.find("<Code>")? + "<Code>".len();
    let len = message[start..].find("</Code>")?;
    Some(&message[start..start + len])
}

fn unsatisfiable(start: u64, size: Option<u64>) -> Error {
    match size {
        Some(size) => Error::invalid(format!(
            "range starting at {start} is not satisfiable for a blob of {size} bytes"
        )),
        None => Error::invalid(format!(
            "range starting at {start} is empty and cannot be satisfied"
        )),
    }
}

/// `<root>/<2 hex>/<64 hex>` → the digest; anything else (foreign objects) is skipped.
fn parse_blob_location(root: &Path, location: &Path) -> Option<Blake3> {
    let mut parts = location.prefix_match(root)?;
    let shard = parts.next()?;
    let name = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let hex = name.as_ref();
    if hex.len() != 64 || !hex.starts_with(shard.as_ref()) {
        return None;
    }
    format!("blake3:{hex}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_shared_shape() {
        let store = S3Options::new("b")
            .with_prefix("/team/a/")
            .with_credentials("k", "s")
            .build()
            .unwrap();
        let key = Blake3::of(b"hello");
        let hex = key.to_hex();
        assert_eq!(
            store.blob_location(&key).as_ref(),
            format!("team/a/blobs/blake3/{}/{hex}", &hex[..2])
        );
        assert_eq!(
            parse_blob_location(&store.inner.blobs_root(), &store.blob_location(&key)),
            Some(key)
        );
        assert_eq!(
            parse_blob_location(
                &store.inner.blobs_root(),
                &Path::from(format!("team/a/blobs/blake3/zz/{hex}"))
            ),
            None
        );
        let bare = S3Options::new("b")
            .with_credentials("k", "s")
            .build()
            .unwrap();
        assert_eq!(
            bare.blob_location(&key).as_ref(),
            format!("blobs/blake3/{}/{hex}", &hex[..2])
        );
        assert!(bare.staging_prefix().as_ref() == "staging");
    }

    #[test]
    fn config_errors_say_what_to_fix() {
        use artifact_core::config::BlobsConfig;
        let mut config = BlobsConfig {
            backend: "s3".to_owned(),
            ..BlobsConfig::default()
        };
        let message = S3BlobStore::from_config(&config).unwrap_err().to_string();
        assert!(message.contains("needs `bucket"), "{message}");
        config.bucket = Some("artifacts".to_owned());
        config.endpoint = Some("http://127.0.0.1:9".to_owned());
        let message = S3BlobStore::from_config(&config).unwrap_err().to_string();
        assert!(message.contains("allow_http = true"), "{message}");
        config.allow_http = Some(true);
        config.prefix = Some("a//b".to_owned());
        let message = S3BlobStore::from_config(&config).unwrap_err().to_string();
        assert!(message.contains("prefix"), "{message}");
        let error = S3Options::new("b").with_part_size(1 << 20).build();
        assert!(error.unwrap_err().to_string().contains("5 MiB"));
    }

    #[test]
    fn s3_error_codes_are_read_from_messages() {
        assert_eq!(
            s3_error_code("403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code><Message>"),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(s3_error_code("connection refused"), None);
    }

    #[test]
    fn staging_names_are_unique_hex() {
        let a = staging_name();
        let b = staging_name();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
