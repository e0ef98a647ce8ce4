//! The library facade: [`ArtifactStore`] ties a [`Catalog`] and a [`BlobStore`] together and
//! enforces the control-plane / data-plane contract (ADR-0004): bytes are durable before the
//! event that names them.

mod ingest;
use ingest::{VerifyingReader, corrupt_or_io};
mod locks;
mod log;
mod packages;
mod read;
mod referrers;
mod reports;
mod retention;
mod tokens;

pub use locks::ReconcileReport;
pub use referrers::{MAX_KEEP_DEPTH, OCI_MANIFEST_FILE, SUBJECT_LABEL, oci_blob_path};
pub use reports::{AuditReport, SweepReport};

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::blob::{BlobRead, BlobStore, ByteRange, StagedBlob};
use crate::catalog::{
    self, BlobRecord, Catalog, CatalogOptions, EventQuery, PackageFilter, PackageRecord,
    RetentionStatus, TokenRecord, WriteTx,
};
use crate::cbor::Value;
use crate::config::RetentionClasses;
use crate::digest::{AnyDigest, Blake3, BlobInfo, DualHasher, PackageId};
use crate::error::{ConflictKind, Error, MissingBlob, Result};
use crate::event::types::{
    AuthTokenCreated, AuthTokenRevoked, BlobStored, Extra, PackageCreated, RetentionDefaultApplied,
    RetentionDeletionEligible, RetentionExtended, RetentionHoldApplied, RetentionHoldReleased,
};
use crate::event::{Event, Head};
use crate::log_facts::Refusal;
use crate::manifest::{Manifest, validate_name, validate_version};
use crate::retention::{Explanation, RetentionState, validate_reason};
use crate::time::{Clock, SystemClock, Timestamp};

/// Size of the chunks the ingest pipeline reads, hashes and writes.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Above this many bytes a blob's hashing moves to its own thread, overlapping the backend's
/// writes; below it, hashing inline is cheaper than a thread hand-off.
const PIPELINE_THRESHOLD: u64 = 4 << 20;

/// How to open an [`ArtifactStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Catalog connection settings.
    pub catalog: CatalogOptions,
    /// The blob backend.
    pub blob_store: Arc<dyn BlobStore>,
    /// The source of "now".
    pub clock: Arc<dyn Clock>,
    /// Retention classes in force.
    pub classes: RetentionClasses,
    /// Where every checkpoint made is also published ([`crate::publish`]).
    pub checkpoint_sinks: Vec<Arc<dyn crate::publish::CheckpointSink>>,
}

impl StoreOptions {
    /// Options with the system clock and the shipped retention classes.
    pub fn new(catalog_url: impl Into<String>, blob_store: Arc<dyn BlobStore>) -> Self {
        Self {
            catalog: CatalogOptions {
                create_if_missing: true,
                ..CatalogOptions::new(catalog_url)
            },
            blob_store,
            clock: Arc::new(SystemClock),
            classes: RetentionClasses::default(),
            checkpoint_sinks: Vec::new(),
        }
    }

    /// Adds a sink every checkpoint is published to.
    pub fn with_checkpoint_sink(mut self, sink: Arc<dyn crate::publish::CheckpointSink>) -> Self {
        self.checkpoint_sinks.push(sink);
        self
    }

    /// Replaces the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the retention classes.
    pub fn with_classes(mut self, classes: RetentionClasses) -> Self {
        self.classes = classes;
        self
    }
}

/// A package named by id (`blake3:…`) or by `NAME@VERSION`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackageRef {
    /// By package id.
    Id(PackageId),
    /// By name and version.
    NameVersion {
        /// Name.
        name: String,
        /// Version.
        version: String,
    },
}

/// What a [`PackageRef`] parses from, as an ECMA-262 regular expression: a package id
/// (`blake3:` + 64 lowercase hex) or `NAME@VERSION`.
pub const PACKAGE_REF_PATTERN: &str = concat!(
    "^(blake3:[0-9a-f]{64}|",
    crate::__name_re!(),
    "@",
    crate::__version_re!(),
    ")$"
);

impl FromStr for PackageRef {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        if text.starts_with("blake3:") {
            return Ok(PackageRef::Id(text.parse()?));
        }
        match text.rsplit_once('@') {
            Some((name, version)) => {
                validate_name(name)?;
                validate_version(version)?;
                Ok(PackageRef::NameVersion {
                    name: name.to_owned(),
                    version: version.to_owned(),
                })
            }
            None => Err(Error::invalid(format!(
                "`{}` is neither a package id (blake3:…) nor NAME@VERSION",
                text.escape_debug()
            ))),
        }
    }
}

impl fmt::Display for PackageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageRef::Id(id) => id.fmt(f),
            PackageRef::NameVersion { name, version } => write!(f, "{name}@{version}"),
        }
    }
}

/// The result of creating a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedPackage {
    /// The package id.
    pub package_id: PackageId,
    /// `false` when the identical manifest already existed (idempotent repeat).
    pub created: bool,
    /// The package as recorded.
    pub package: PackageRecord,
    /// Its retention state.
    pub retention: RetentionStatus,
}

/// A file of a package that was live when [`ArtifactStore::live_file`] looked (only that
/// method makes one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveFile {
    package_id: PackageId,
    entry: crate::manifest::FileEntry,
}

impl LiveFile {
    /// The package.
    pub fn package_id(&self) -> PackageId {
        self.package_id
    }

    /// The file's manifest entry (path, digests, size, media type).
    pub fn entry(&self) -> &crate::manifest::FileEntry {
        &self.entry
    }
}

/// A token just minted by [`ArtifactStore::mint_token`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintedToken {
    /// The bearer token (`ast_…`), shown once: only its hash is recorded.
    pub token: String,
    /// The token as recorded.
    pub record: TokenRecord,
}

/// What [`ArtifactStore::check_token`] found for a presented token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    /// A live minted token: its principal.
    Valid(crate::auth::Principal),
    /// No minted token has this hash.
    Unknown,
    /// The token was revoked.
    Revoked {
        /// Its id.
        token_id: String,
        /// The `v1.auth.token_revoked` event.
        revoked_seq: u64,
    },
    /// The token's expiry has passed (by the store's clock).
    Expired {
        /// Its id.
        token_id: String,
        /// When it expired.
        expires_at: Timestamp,
    },
}

/// A checkpoint known to be published to a sink: its tree size and root.
type PublishedRoot = (u64, crate::tlog::Hash);

/// An event-sourced, content-addressed artifact store.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    catalog: Catalog,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    classes: RetentionClasses,
    sinks: Vec<Arc<dyn crate::publish::CheckpointSink>>,
    /// Per sink, the last checkpoint known to be published there (tree size, root): what the
    /// next checkpoint must extend. Read from the sink once, then kept as this process
    /// publishes.
    published: Arc<std::sync::Mutex<Vec<Option<PublishedRoot>>>>,
}

impl ArtifactStore {
    /// Opens (and migrates) the catalog and seeds the retention classes. Read-only
    /// ([`CatalogOptions::read_only`]): writes nothing at all — no migration, no seeding, no
    /// recovery of an interrupted GC (the next read-write open does it); every operation that
    /// records events fails with [`Error::ReadOnly`].
    pub async fn open(options: StoreOptions) -> Result<Self> {
        let catalog = Catalog::open(&options.catalog).await?;
        let read_only = catalog.is_read_only();
        if !read_only {
            catalog.seed_classes(&options.classes).await?;
        }
        let store = Self {
            catalog,
            blobs: options.blob_store,
            clock: options.clock,
            classes: options.classes,
            published: Arc::new(std::sync::Mutex::new(vec![
                None;
                options.checkpoint_sinks.len()
            ])),
            sinks: options.checkpoint_sinks,
        };
        if !read_only {
            // A GC killed between deleting bytes and recording it leaves blobs marked as being
            // deleted (one indexed lookup when there are none).
            store.finish_blob_deletions("system:recovery").await?;
        }
        Ok(store)
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The blob backend.
    pub fn blob_store(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The retention classes in force.
    pub fn classes(&self) -> &RetentionClasses {
        &self.classes
    }

    /// The sinks every checkpoint is published to.
    pub fn checkpoint_sinks(&self) -> &[Arc<dyn crate::publish::CheckpointSink>] {
        &self.sinks
    }

    /// The last checkpoint known to be published to sink `index` (see [`crate::publish`]).
    pub(crate) fn known_published(&self, index: usize) -> Option<(u64, crate::tlog::Hash)> {
        self.published
            .lock()
            .map(|known| known.get(index).copied().flatten())
            .unwrap_or(None)
    }

    /// Records that sink `index` holds the checkpoint of `size` with `root`.
    pub(crate) fn set_published(&self, index: usize, size: u64, root: crate::tlog::Hash) {
        if let Ok(mut known) = self.published.lock()
            && let Some(slot) = known.get_mut(index)
            && slot.is_none_or(|(known_size, _)| known_size <= size)
        {
            *slot = Some((size, root));
        }
    }
}

/// The error for recording (or referencing) a blob that garbage collection is deleting.
fn being_deleted(blake3: &Blake3, seq: u64) -> Error {
    Error::conflict(
        ConflictKind::BlobBeingDeleted,
        format!(
            "blob {blake3} is being deleted by garbage collection (seq {seq}); upload it again once \
         that finishes"
        ),
    )
}

async fn missing_blobs_with(
    conn: &mut sqlx::AnyConnection,
    manifest: &Manifest,
    written: &[BlobInfo],
) -> Result<Vec<MissingBlob>> {
    let mut missing = Vec::new();
    for file in &manifest.files {
        let expected = file.blob();
        if written.contains(&expected) {
            continue;
        }
        // A blob garbage collection is deleting counts as missing: it can gain no reference.
        match catalog::views_blob(conn, &AnyDigest::Blake3(file.blake3)).await? {
            Some(record) if record.info == expected && record.deleting_seq.is_none() => {}
            _ => missing.push(MissingBlob {
                path: file.path.clone(),
                expected,
            }),
        }
    }
    Ok(missing)
}
