//! The library facade: [`ArtifactStore`] ties a [`Catalog`] and a [`BlobStore`] together and
//! enforces the control-plane / data-plane contract (ADR-0004): bytes are durable before the
//! event that names them.

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
use crate::error::{Error, MissingBlob, Result};
use crate::event::{Event, Head, types};
use crate::log_facts::Refusal;
use crate::manifest::{Manifest, validate_name, validate_version};
use crate::retention::{self, Explanation, RetentionState, validate_reason};
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
    /// As a data-model value: `{as_of, newly_eligible, package_ids, refused}`.
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
        ]))
    }
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

/// An event-sourced, content-addressed artifact store.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    catalog: Catalog,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    classes: RetentionClasses,
    sinks: Vec<Arc<dyn crate::publish::CheckpointSink>>,
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

    // ----- blobs -------------------------------------------------------------------------

    /// Streams `reader` into the blob backend while hashing it, and makes the bytes durable
    /// under their BLAKE3 key. Records nothing: pair with [`ArtifactStore::record_blobs`], or
    /// use [`ArtifactStore::ingest_blob`]. If `expected` digests are given and any differs,
    /// nothing is stored and the error is [`Error::DigestMismatch`].
    pub async fn write_blob<R>(&self, reader: R, expected: &[AnyDigest]) -> Result<BlobInfo>
    where
        R: AsyncRead + Unpin + Send,
    {
        let mut staged = self.blobs.stage().await?;
        match pump(reader, staged.as_mut()).await {
            Ok(info) => {
                if let Some(wrong) = expected.iter().find(|d| !info.matches(d)) {
                    staged.abort().await?;
                    let actual = match wrong {
                        AnyDigest::Blake3(_) => info.blake3.to_string(),
                        AnyDigest::Sha256(_) => info.sha256.to_string(),
                    };
                    return Err(Error::DigestMismatch {
                        expected: wrong.to_string(),
                        actual,
                    });
                }
                staged.commit(&info.blake3).await?;
                Ok(info)
            }
            Err(e) => {
                // The stream failed; the staged bytes must never become visible.
                let _ = staged.abort().await;
                Err(e)
            }
        }
    }

    /// Records durable blobs in the log (`v1.blob.stored`), one transaction for all; blobs
    /// already recorded are skipped (a blob garbage collection is deleting is refused). Each
    /// blob not yet recorded is checked present in the backend with the right size, under the
    /// write lock (bytes durable before the event that names them).
    pub async fn record_blobs(&self, actor: &str, blobs: &[BlobInfo]) -> Result<Vec<BlobRecord>> {
        let mut tx = self.catalog.write().await?;
        let mut records = Vec::with_capacity(blobs.len());
        for info in blobs {
            records.push(self.record_blob_in(&mut tx, actor, info).await?);
        }
        tx.commit().await?;
        Ok(records)
    }

    /// Checks that a blob's bytes are in the backend with the right size.
    async fn check_durable(&self, info: &BlobInfo) -> Result<()> {
        match self.blobs.head(&info.blake3).await? {
            Some(meta) if meta.size == info.size => Ok(()),
            Some(meta) => Err(Error::Corrupt {
                blake3: info.blake3.to_string(),
                reason: format!("backend holds {} bytes, expected {}", meta.size, info.size),
            }),
            None => Err(Error::not_found("blob bytes", info.blake3.to_string())),
        }
    }

    async fn record_blob_in(
        &self,
        tx: &mut WriteTx,
        actor: &str,
        info: &BlobInfo,
    ) -> Result<BlobRecord> {
        if let Some(existing) =
            catalog::views_blob(tx.conn(), &AnyDigest::Blake3(info.blake3)).await?
        {
            if let Some(seq) = existing.deleting_seq {
                return Err(being_deleted(&info.blake3, seq));
            }
            if existing.info != *info {
                return Err(Error::Conflict(format!(
                    "blob {} is recorded with sha256 {} and size {}, not {} and {}",
                    info.blake3, existing.info.sha256, existing.info.size, info.sha256, info.size
                )));
            }
            return Ok(existing);
        }
        if let Some(existing) =
            catalog::views_blob(tx.conn(), &AnyDigest::Sha256(info.sha256)).await?
        {
            return Err(Error::Conflict(format!(
                "sha256 {} is already recorded for blob {}",
                info.sha256, existing.info.blake3
            )));
        }
        // Under the write lock: garbage collection cannot remove the bytes between this check
        // and the commit.
        self.check_durable(info).await?;
        let tier = self.blobs.tier();
        let data = Value::Map(BTreeMap::from([
            ("blake3".to_owned(), Value::Text(info.blake3.to_string())),
            ("sha256".to_owned(), Value::Text(info.sha256.to_string())),
            ("size".to_owned(), Value::Int(info.size as i64)),
            ("tier".to_owned(), Value::Text(tier.as_str().to_owned())),
        ]));
        let event = tx
            .append(types::BLOB_STORED, None, actor, self.clock.now(), data)
            .await?;
        Ok(BlobRecord {
            info: *info,
            tier,
            stored_seq: event.seq,
            stored_at: event.at,
            deleting_seq: None,
        })
    }

    /// Writes and records one blob.
    pub async fn ingest_blob<R>(
        &self,
        actor: &str,
        reader: R,
        expected: &[AnyDigest],
    ) -> Result<BlobRecord>
    where
        R: AsyncRead + Unpin + Send,
    {
        let info = self.write_blob(reader, expected).await?;
        let mut records = self.record_blobs(actor, &[info]).await?;
        records
            .pop()
            .ok_or_else(|| Error::not_found("blob", info.blake3.to_string()))
    }

    /// Ingests a complete local file (e.g. a finished upload session): hashes it unless its
    /// digests are `known`, checks `expected`, hands the file to the backend
    /// ([`BlobStore::adopt_file`], which consumes it) and records it. On a digest mismatch the
    /// file is left in place for the caller and nothing is stored.
    pub async fn ingest_file(
        &self,
        actor: &str,
        path: &std::path::Path,
        known: Option<BlobInfo>,
        expected: &[AnyDigest],
    ) -> Result<BlobRecord> {
        let info = match known {
            Some(info) => info,
            None => hash_file(path).await?,
        };
        if let Some(wrong) = expected.iter().find(|d| !info.matches(d)) {
            let actual = match wrong {
                AnyDigest::Blake3(_) => info.blake3.to_string(),
                AnyDigest::Sha256(_) => info.sha256.to_string(),
            };
            return Err(Error::DigestMismatch {
                expected: wrong.to_string(),
                actual,
            });
        }
        if self.blobs.head(&info.blake3).await?.is_some() {
            // Deduplicated: record the bytes already there, and only then drop this copy. If
            // garbage collection deleted them in between, fall through and adopt this copy.
            match self.record_blobs(actor, &[info]).await {
                Ok(mut records) => {
                    let _ = tokio::fs::remove_file(path).await;
                    return records
                        .pop()
                        .ok_or_else(|| Error::not_found("blob", info.blake3.to_string()));
                }
                Err(Error::NotFound { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        self.blobs.adopt_file(path, &info.blake3).await?;
        let mut records = self.record_blobs(actor, &[info]).await?;
        records
            .pop()
            .ok_or_else(|| Error::not_found("blob", info.blake3.to_string()))
    }

    // ----- auth --------------------------------------------------------------------------

    /// Mints a bearer token for `principal` with `roles`, without expiry; returns the token,
    /// which is shown once: only its SHA-256 is recorded (`v1.auth.token_created`). See
    /// [`ArtifactStore::mint_token`].
    pub async fn create_token(
        &self,
        actor: &str,
        principal: &str,
        roles: &[crate::auth::Role],
        secret: &[u8; 32],
    ) -> Result<String> {
        Ok(self
            .mint_token(actor, principal, roles, None, secret)
            .await?
            .token)
    }

    /// Mints a bearer token for `principal` with `roles`, accepted until `expires_at` (by the
    /// store's clock) if given. The token is returned once: only its SHA-256 is recorded
    /// (`v1.auth.token_created`, with `expires_at` when there is one). Reserved principals
    /// (`system:*`, the store's own processes) are refused, as is an expiry that is not in the
    /// future.
    pub async fn mint_token(
        &self,
        actor: &str,
        principal: &str,
        roles: &[crate::auth::Role],
        expires_at: Option<Timestamp>,
        secret: &[u8; 32],
    ) -> Result<MintedToken> {
        crate::auth::validate_principal(principal)?;
        crate::auth::refuse_reserved_principal(principal)?;
        if roles.is_empty() {
            return Err(Error::invalid("a token needs at least one role"));
        }
        let now = self.clock.now();
        if let Some(expires_at) = expires_at
            && expires_at <= now
        {
            return Err(Error::invalid(format!(
                "token expiry {expires_at} is not in the future (now is {now})"
            )));
        }
        let token = crate::auth::format_token(secret);
        let mut role_names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        role_names.sort_unstable();
        role_names.dedup();
        let mut data = BTreeMap::from([
            ("principal".to_owned(), Value::Text(principal.to_owned())),
            (
                "roles".to_owned(),
                Value::Array(
                    role_names
                        .iter()
                        .map(|r| Value::Text((*r).to_owned()))
                        .collect(),
                ),
            ),
            (
                "token_sha256".to_owned(),
                Value::Text(crate::auth::token_hash(&token).to_string()),
            ),
        ]);
        // Only present when given: a token without expiry is recorded exactly as before.
        if let Some(expires_at) = expires_at {
            data.insert("expires_at".to_owned(), Value::Text(expires_at.to_string()));
        }
        let mut tx = self.catalog.write().await?;
        let event = tx
            .append(
                types::AUTH_TOKEN_CREATED,
                None,
                actor,
                now,
                Value::Map(data),
            )
            .await?;
        let record = catalog::views_token_by_seq(tx.conn(), event.seq)
            .await?
            .ok_or_else(|| Error::not_found("token", TokenRecord::id_of(event.seq)))?;
        tx.commit().await?;
        Ok(MintedToken { token, record })
    }

    /// Every minted token (revoked and expired ones included), oldest first. Tokens from
    /// configuration (`[[server.tokens]]`) are not events and are not listed.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let mut conn = self.catalog.read().await?;
        catalog::views_list_tokens(&mut conn).await
    }

    /// Revokes a minted token (`v1.auth.token_revoked` with the reason): from the commit on,
    /// every replica refuses it, since each request looks its token up in the catalog. An
    /// unknown id is [`Error::NotFound`], an already revoked token [`Error::Conflict`].
    pub async fn revoke_token(
        &self,
        actor: &str,
        token_id: &str,
        reason: &str,
    ) -> Result<TokenRecord> {
        validate_reason(reason)?;
        let seq = TokenRecord::seq_of(token_id).ok_or_else(|| {
            Error::invalid(format!(
                "token id `{}` must be tok-<number> (see `admin token list`)",
                token_id.escape_debug()
            ))
        })?;
        let mut tx = self.catalog.write().await?;
        let record = catalog::views_token_by_seq(tx.conn(), seq)
            .await?
            .ok_or_else(|| Error::not_found("token", token_id.to_owned()))?;
        if let Some(revoked_seq) = record.revoked_seq {
            return Err(Error::Conflict(format!(
                "token {token_id} was already revoked (seq {revoked_seq})"
            )));
        }
        let data = Value::Map(BTreeMap::from([
            ("token_id".to_owned(), Value::Text(record.token_id.clone())),
            (
                "token_sha256".to_owned(),
                Value::Text(record.token_sha256.clone()),
            ),
            ("reason".to_owned(), Value::Text(reason.to_owned())),
        ]));
        tx.append(
            types::AUTH_TOKEN_REVOKED,
            None,
            actor,
            self.clock.now(),
            data,
        )
        .await?;
        let updated = catalog::views_token_by_seq(tx.conn(), seq)
            .await?
            .ok_or_else(|| Error::not_found("token", token_id.to_owned()))?;
        tx.commit().await?;
        Ok(updated)
    }

    /// What a presented token is worth now: judged against the catalog (so a revocation
    /// committed by any replica counts at once) and the store's clock (never the caller's).
    pub async fn check_token(&self, token: &str) -> Result<TokenCheck> {
        let mut conn = self.catalog.read().await?;
        let hash = crate::auth::token_hash(token).to_string();
        let Some(record) = catalog::views_token_by_hash(&mut conn, &hash).await? else {
            return Ok(TokenCheck::Unknown);
        };
        Ok(if let Some(revoked_seq) = record.revoked_seq {
            TokenCheck::Revoked {
                token_id: record.token_id,
                revoked_seq,
            }
        } else if record.expired_at(self.clock.now()) {
            TokenCheck::Expired {
                token_id: record.token_id.clone(),
                expires_at: record.expires_at.unwrap_or(record.created_at),
            }
        } else {
            TokenCheck::Valid(record.principal())
        })
    }

    /// The principal of a minted token that is neither revoked nor expired.
    pub async fn token_principal(&self, token: &str) -> Result<Option<crate::auth::Principal>> {
        Ok(match self.check_token(token).await? {
            TokenCheck::Valid(principal) => Some(principal),
            _ => None,
        })
    }

    /// The recorded blob named by either digest.
    pub async fn blob(&self, digest: &AnyDigest) -> Result<Option<BlobRecord>> {
        let mut conn = self.catalog.read().await?;
        catalog::views_blob(&mut conn, digest).await
    }

    /// Opens a recorded blob. A full read verifies size and both digests as it streams and
    /// fails at the end instead of completing if they do not match; a ranged read checks the
    /// size only.
    pub async fn read_blob(
        &self,
        digest: &AnyDigest,
        range: Option<ByteRange>,
    ) -> Result<BlobRead> {
        let record = self
            .blob(digest)
            .await?
            .ok_or_else(|| Error::not_found("blob", digest.to_string()))?;
        self.open_verified(&record.info, range).await
    }

    async fn open_verified(&self, info: &BlobInfo, range: Option<ByteRange>) -> Result<BlobRead> {
        if let Some(range) = range
            && range.resolve(info.size).is_none()
        {
            return Err(Error::invalid(format!(
                "range {}-{} is not satisfiable for a blob of {} bytes",
                range.start,
                range
                    .end
                    .map_or(String::new(), |e| (e.saturating_sub(1)).to_string()),
                info.size
            )));
        }
        let read = self.blobs.get(&info.blake3, range).await?;
        if read.size != info.size {
            return Err(Error::Corrupt {
                blake3: info.blake3.to_string(),
                reason: format!("backend holds {} bytes, expected {}", read.size, info.size),
            });
        }
        if range.is_some() {
            return Ok(read);
        }
        Ok(BlobRead {
            size: read.size,
            range: read.range,
            reader: Box::pin(VerifyingReader {
                inner: read.reader,
                hasher: Some(DualHasher::new()),
                expected: *info,
            }),
        })
    }

    /// Reads a whole recorded blob into memory, verified.
    pub async fn read_blob_bytes(&self, info: &BlobInfo) -> Result<Vec<u8>> {
        let mut read = self.open_verified(info, None).await?;
        let mut bytes = Vec::with_capacity(usize::try_from(info.size).unwrap_or(0).min(64 << 20));
        read.reader
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| corrupt_or_io(info, e))?;
        Ok(bytes)
    }

    // ----- packages ----------------------------------------------------------------------

    /// Creates a package from a manifest. Idempotent for the identical manifest; a different
    /// manifest under an existing name@version is [`Error::Conflict`]; blobs the manifest names
    /// that are not recorded with the same size and digests are [`Error::MissingBlobs`].
    pub async fn create_package(&self, actor: &str, manifest: &Manifest) -> Result<CreatedPackage> {
        self.create_package_with_blobs(actor, manifest, &[]).await
    }

    /// Like [`ArtifactStore::create_package`], but also records `written` — blobs this caller
    /// made durable with [`ArtifactStore::write_blob`] and has not recorded yet — in the same
    /// transaction as the package (one commit instead of two; what `push` does). Each one not
    /// yet recorded is checked present in the backend with its size, under the write lock.
    pub async fn create_package_with_blobs(
        &self,
        actor: &str,
        manifest: &Manifest,
        written: &[BlobInfo],
    ) -> Result<CreatedPackage> {
        manifest.validate()?;
        let period = self.classes.period(&manifest.retention_class)?;
        let manifest_bytes = manifest.canonical_bytes()?;
        let package_id = Blake3::of(&manifest_bytes);

        // Fast path for an idempotent repeat, and the checks that need no lock.
        if let Some(existing) = self.existing_package(package_id, manifest).await? {
            return Ok(existing);
        }
        let missing = self.missing_blobs(manifest, written).await?;
        if !missing.is_empty() {
            return Err(Error::MissingBlobs { missing });
        }

        // The manifest bytes are a blob too, durable before the event that names them.
        let manifest_info = self.write_blob(&manifest_bytes[..], &[]).await?;

        let mut tx = self.catalog.write().await?;
        // Re-check under the write lock: a concurrent writer may have created it.
        if let Some(id) =
            catalog::views_package_id_by_name(tx.conn(), &manifest.name, &manifest.version).await?
        {
            tx.rollback().await?;
            return self.resolve_existing(id, package_id, manifest).await;
        }
        // Recorded blobs not marked for deletion have their bytes (GC commits its intent before
        // deleting, ADR 0010), so this needs no request to the backend per file; the blobs
        // written for this package are checked present as they are recorded below.
        let missing = missing_blobs_with(tx.conn(), manifest, written).await?;
        if !missing.is_empty() {
            tx.rollback().await?;
            return Err(Error::MissingBlobs { missing });
        }
        for info in written {
            self.record_blob_in(&mut tx, actor, info).await?;
        }
        self.record_blob_in(&mut tx, actor, &manifest_info).await?;
        let now = self.clock.now();
        let data = Value::Map(BTreeMap::from([(
            "manifest".to_owned(),
            manifest.to_value(),
        )]));
        tx.append(types::PACKAGE_CREATED, Some(package_id), actor, now, data)
            .await?;
        let expires_at = now.checked_add(period);
        let default_data = Value::Map(BTreeMap::from([
            (
                "retention_class".to_owned(),
                Value::Text(manifest.retention_class.clone()),
            ),
            ("period".to_owned(), Value::Text(period.to_string())),
            (
                "expires_at".to_owned(),
                expires_at.map_or(Value::Null, |t| Value::Text(t.to_string())),
            ),
        ]));
        tx.append(
            types::RETENTION_DEFAULT_APPLIED,
            Some(package_id),
            actor,
            now,
            default_data,
        )
        .await?;
        let package = catalog::views_package(tx.conn(), &package_id)
            .await?
            .ok_or_else(|| Error::not_found("package", package_id.to_string()))?;
        let retention = catalog::views_retention_status(tx.conn(), &package_id)
            .await?
            .ok_or_else(|| Error::not_found("retention state", package_id.to_string()))?;
        tx.commit().await?;
        Ok(CreatedPackage {
            package_id,
            created: true,
            package,
            retention,
        })
    }

    /// Creates a package from manifest bytes that claim to be canonical CBOR (rejected, never
    /// re-encoded, if they are not).
    pub async fn create_package_from_cbor(
        &self,
        actor: &str,
        bytes: &[u8],
    ) -> Result<CreatedPackage> {
        let manifest = Manifest::from_canonical_bytes(bytes)?;
        self.create_package(actor, &manifest).await
    }

    async fn existing_package(
        &self,
        package_id: PackageId,
        manifest: &Manifest,
    ) -> Result<Option<CreatedPackage>> {
        let mut conn = self.catalog.read().await?;
        match catalog::views_package_id_by_name(&mut conn, &manifest.name, &manifest.version)
            .await?
        {
            None => Ok(None),
            Some(existing) => {
                drop(conn);
                self.resolve_existing(existing, package_id, manifest)
                    .await
                    .map(Some)
            }
        }
    }

    async fn resolve_existing(
        &self,
        existing: PackageId,
        package_id: PackageId,
        manifest: &Manifest,
    ) -> Result<CreatedPackage> {
        if existing != package_id {
            return Err(Error::Conflict(format!(
                "{}@{} already exists as package {existing} with a different manifest",
                manifest.name, manifest.version
            )));
        }
        let package = self.package(&PackageRef::Id(package_id)).await?;
        if let Some(purged_seq) = package.purged_seq {
            // Its files are gone: answering "exists" would hand out a package nobody can read.
            return Err(Error::Conflict(format!(
                "{}@{} was package {package_id}, purged by garbage collection (seq {purged_seq}); \
                 a name and version are never reused: push it under a new version",
                manifest.name, manifest.version
            )));
        }
        Ok(CreatedPackage {
            package_id,
            created: false,
            package,
            retention: self.retention_status(&PackageRef::Id(package_id)).await?,
        })
    }

    async fn missing_blobs(
        &self,
        manifest: &Manifest,
        written: &[BlobInfo],
    ) -> Result<Vec<MissingBlob>> {
        let mut conn = self.catalog.read().await?;
        missing_blobs_with(&mut conn, manifest, written).await
    }

    /// The id a [`PackageRef`] names (which must exist).
    pub async fn resolve(&self, package: &PackageRef) -> Result<PackageId> {
        let mut conn = self.catalog.read().await?;
        let found = match package {
            PackageRef::Id(id) => catalog::views_package(&mut conn, id)
                .await?
                .map(|p| p.package_id),
            PackageRef::NameVersion { name, version } => {
                catalog::views_package_id_by_name(&mut conn, name, version).await?
            }
        };
        found.ok_or_else(|| Error::not_found("package", package.to_string()))
    }

    /// A package's record.
    pub async fn package(&self, package: &PackageRef) -> Result<PackageRecord> {
        let id = self.resolve(package).await?;
        let mut conn = self.catalog.read().await?;
        catalog::views_package(&mut conn, &id)
            .await?
            .ok_or_else(|| Error::not_found("package", package.to_string()))
    }

    /// Lists packages in creation order.
    pub async fn list_packages(&self, filter: &PackageFilter) -> Result<Vec<PackageRecord>> {
        let mut conn = self.catalog.read().await?;
        catalog::views_list_packages(&mut conn, filter).await
    }

    /// A package's manifest and its canonical bytes, read from the blob backend and verified.
    pub async fn manifest(&self, package: &PackageRef) -> Result<(Manifest, Vec<u8>)> {
        let record = self.package(package).await?;
        let info = self
            .blob(&AnyDigest::Blake3(record.package_id))
            .await?
            .ok_or_else(|| Error::not_found("manifest blob", record.package_id.to_string()))?
            .info;
        let bytes = self.read_blob_bytes(&info).await?;
        let manifest = Manifest::from_canonical_bytes(&bytes)?;
        Ok((manifest, bytes))
    }

    /// The package, if it is live; [`Error::Gone`] once garbage collection purged it (its
    /// manifest and events are kept, its files are not).
    pub async fn live_package(&self, package: &PackageRef) -> Result<PackageRecord> {
        let record = self.package(package).await?;
        match record.purged_seq {
            Some(purged_seq) => Err(Error::Gone(format!(
                "package {} was purged by garbage collection (seq {purged_seq}); its manifest and events are kept, its files are not",
                record.package_id
            ))),
            None => Ok(record),
        }
    }

    /// One file of a live package: [`Error::Gone`] once garbage collection purged the package,
    /// [`Error::NotFound`] for a path the manifest does not name. The one check behind every
    /// read of a package's files (`pull`, `cat`, `GET /packages/{id}/files/{path}`): open it
    /// with [`ArtifactStore::open_live_file`].
    pub async fn live_file(&self, package: &PackageRef, path: &str) -> Result<LiveFile> {
        let record = self.live_package(package).await?;
        let (manifest, _) = self.manifest(&PackageRef::Id(record.package_id)).await?;
        let entry = manifest
            .file(path)
            .cloned()
            .ok_or_else(|| Error::not_found("file", format!("{path} in {package}")))?;
        Ok(LiveFile {
            package_id: record.package_id,
            entry,
        })
    }

    /// Opens a file found by [`ArtifactStore::live_file`] (verified on full reads; a ranged
    /// read checks the size only).
    pub async fn open_live_file(
        &self,
        file: &LiveFile,
        range: Option<ByteRange>,
    ) -> Result<BlobRead> {
        self.open_verified(&file.entry.blob(), range).await
    }

    /// Opens one file of a live package (verified on full reads): [`ArtifactStore::live_file`]
    /// then [`ArtifactStore::open_live_file`].
    pub async fn read_file(
        &self,
        package: &PackageRef,
        path: &str,
        range: Option<ByteRange>,
    ) -> Result<(crate::manifest::FileEntry, BlobRead)> {
        let file = self.live_file(package, path).await?;
        let read = self.open_live_file(&file, range).await?;
        Ok((file.entry, read))
    }

    // ----- events ------------------------------------------------------------------------

    /// Events in seq order, filtered.
    pub async fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        self.catalog.events(query).await
    }

    /// The head of the log.
    pub async fn head(&self) -> Result<Head> {
        self.catalog.head().await
    }

    /// Verifies the hash chain; [`Error::Integrity`] names the first bad seq.
    pub async fn audit_verify(&self) -> Result<Head> {
        self.catalog.verify_chain().await
    }

    /// The full audit: the hash chain, the latest stored checkpoint's root recomputed from the
    /// event bytes (rule `checkpoint-mismatch`), and every event replayed through the store's rules
    /// ([`crate::rules::LogRules`]: no expiry moved earlier, no eligibility while held or
    /// before expiry, no purge of a package that was not eligible, no bytes deleted while a
    /// live package referenced them, no unknown actor), in one pass over the log.
    pub async fn audit(&self) -> Result<AuditReport> {
        let mut rules = crate::rules::LogRules::new();
        let chain = self
            .catalog
            .verify_chain_with(|event| rules.check(event))
            .await;
        let (head, chain_error) = match chain {
            Ok(head) => (Some(head), None),
            Err(Error::Integrity { seq, reason }) => (None, Some((seq, reason))),
            Err(other) => return Err(other),
        };
        let mut violations = rules.into_violations();
        // The latest stored checkpoint's root, recomputed from today's event bytes (not from
        // the stored tree). A rewrite that also replaced the checkpoint table passes this;
        // a checkpoint saved or published elsewhere is what catches that.
        if chain_error.is_none()
            && let Some(latest) = self.catalog.latest_checkpoint().await?
        {
            let replayed = self.catalog.replay_roots(&[latest.tree_size]).await?;
            let matches = replayed
                .roots
                .iter()
                .any(|(size, root)| *size == latest.tree_size && *root == latest.root_hash);
            if !matches {
                violations.push(crate::rules::RuleViolation {
                    seq: latest.tree_size,
                    rule: "checkpoint-mismatch",
                    detail: format!(
                        "today's events do not reproduce the root of the stored checkpoint of tree size {} (events up to it were changed or removed)",
                        latest.tree_size
                    ),
                });
            }
        }
        Ok(AuditReport {
            head,
            chain_error,
            violations,
        })
    }

    /// Rebuilds every view from the log; returns the number of events replayed.
    pub async fn rebuild_views(&self) -> Result<u64> {
        self.catalog.rebuild_views(&self.classes).await
    }

    // ----- retention ---------------------------------------------------------------------

    /// A package's retention state.
    pub async fn retention_status(&self, package: &PackageRef) -> Result<RetentionStatus> {
        let id = self.resolve(package).await?;
        let mut conn = self.catalog.read().await?;
        catalog::views_retention_status(&mut conn, &id)
            .await?
            .ok_or_else(|| Error::not_found("retention state", id.to_string()))
    }

    /// The package's retention state folded from its events in the log, inside the write
    /// transaction (the rules are checked against the log, not against a view row an insider
    /// could have edited). A purged package is a conflict.
    async fn locked_state(&self, tx: &mut WriteTx, package: &PackageRef) -> Result<RetentionState> {
        let id = match package {
            PackageRef::Id(id) => *id,
            PackageRef::NameVersion { name, version } => {
                catalog::views_package_id_by_name(tx.conn(), name, version)
                    .await?
                    .ok_or_else(|| Error::not_found("package", package.to_string()))?
            }
        };
        let state = crate::log_facts::fold_states(tx.conn(), &[id])
            .await?
            .remove(&id)
            .ok_or_else(|| Error::not_found("package", package.to_string()))?;
        if let Some(purged_seq) = state.purged_seq {
            return Err(Error::Conflict(format!(
                "package {id} was purged (seq {purged_seq}); retention no longer applies to it"
            )));
        }
        Ok(state)
    }

    /// The retention view of a package just changed in `tx`.
    async fn status_in(tx: &mut WriteTx, package_id: &PackageId) -> Result<RetentionStatus> {
        catalog::views_retention_status(tx.conn(), package_id)
            .await?
            .ok_or_else(|| Error::not_found("package", package_id.to_string()))
    }

    /// Extends a package's expiry to `until` (strictly later than the current expiry, as the
    /// log says).
    pub async fn extend(
        &self,
        actor: &str,
        package: &PackageRef,
        until: Timestamp,
        reason: &str,
    ) -> Result<RetentionStatus> {
        validate_reason(reason)?;
        let mut tx = self.catalog.write().await?;
        let state = self.locked_state(&mut tx, package).await?;
        state.check_extend(until, reason)?;
        let current = state
            .current_expires_at
            .ok_or_else(|| Error::invalid("a permanent package cannot be extended"))?;
        let data = Value::Map(BTreeMap::from([
            (
                "previous_expires_at".to_owned(),
                Value::Text(current.to_string()),
            ),
            ("new_expires_at".to_owned(), Value::Text(until.to_string())),
            ("reason".to_owned(), Value::Text(reason.to_owned())),
        ]));
        tx.append(
            types::RETENTION_EXTENDED,
            Some(state.package_id),
            actor,
            self.clock.now(),
            data,
        )
        .await?;
        let updated = Self::status_in(&mut tx, &state.package_id).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Applies a hold; returns its id.
    pub async fn hold(&self, actor: &str, package: &PackageRef, reason: &str) -> Result<String> {
        validate_reason(reason)?;
        let mut tx = self.catalog.write().await?;
        let state = self.locked_state(&mut tx, package).await?;
        let hold_id = format!("hold-{}", tx.head().seq + 1);
        let data = Value::Map(BTreeMap::from([
            ("hold_id".to_owned(), Value::Text(hold_id.clone())),
            ("reason".to_owned(), Value::Text(reason.to_owned())),
        ]));
        tx.append(
            types::RETENTION_HOLD_APPLIED,
            Some(state.package_id),
            actor,
            self.clock.now(),
            data,
        )
        .await?;
        tx.commit().await?;
        Ok(hold_id)
    }

    /// Releases an active hold (active as the log says).
    pub async fn release(
        &self,
        actor: &str,
        package: &PackageRef,
        hold_id: &str,
        reason: &str,
    ) -> Result<RetentionStatus> {
        validate_reason(reason)?;
        let mut tx = self.catalog.write().await?;
        let state = self.locked_state(&mut tx, package).await?;
        state.check_release(hold_id, reason)?;
        let data = Value::Map(BTreeMap::from([
            ("hold_id".to_owned(), Value::Text(hold_id.to_owned())),
            ("reason".to_owned(), Value::Text(reason.to_owned())),
        ]));
        tx.append(
            types::RETENTION_HOLD_RELEASED,
            Some(state.package_id),
            actor,
            self.clock.now(),
            data,
        )
        .await?;
        let updated = Self::status_in(&mut tx, &state.package_id).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Every event of a package, in seq order (its full history, retention included).
    pub async fn package_events(&self, package_id: &PackageId) -> Result<Vec<Event>> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .events(&EventQuery {
                    after,
                    limit: Some(5000),
                    event_type: None,
                    package_id: Some(*package_id),
                })
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.seq;
            all.extend(page);
        }
        Ok(all)
    }

    /// The retention events of a package, in seq order.
    pub async fn retention_history(&self, package: &PackageRef) -> Result<Vec<Event>> {
        let id = self.resolve(package).await?;
        Ok(self
            .package_events(&id)
            .await?
            .into_iter()
            .filter(|e| e.event_type.starts_with("v1.retention."))
            .collect())
    }

    /// Marks every package whose expiry is at or before `as_of` (default: now), with no active
    /// hold and not yet marked, as eligible for deletion — at most once per transition. Runs
    /// under the catalog's write serialisation, so concurrent sweeps never double-mark.
    ///
    /// `as_of` may lie in the past (back-fills, tests) but never after the store's own clock:
    /// a later one is [`Error::InvalidInput`] and changes nothing, so no sweep makes a package
    /// eligible before its expiry. The `retention_state` view only nominates candidates: each
    /// is re-derived from its events in the log inside the marking transaction, and a candidate
    /// the log does not support is left alone and reported in
    /// [`SweepReport::refused`].
    pub async fn sweep(&self, actor: &str, as_of: Option<Timestamp>) -> Result<SweepReport> {
        let now = self.clock.now();
        let as_of = match as_of {
            Some(t) if t > now => {
                return Err(Error::invalid(format!(
                    "as_of {t} is later than the store's clock ({now}): a sweep can only mark \
                     what has expired by now"
                )));
            }
            Some(t) => t,
            None => now,
        };
        let mut newly_eligible = Vec::new();
        let mut refused = Vec::new();
        let mut cursor = None;
        // Bounded batches keep each transaction short on large back-fills.
        loop {
            let mut tx = self.catalog.write().await?;
            let due = catalog::views_due_for_sweep(tx.conn(), as_of, cursor, 1000).await?;
            let Some(last) = due.last() else {
                tx.rollback().await?;
                break;
            };
            cursor = Some((last.1, last.0));
            let ids: Vec<PackageId> = due.iter().map(|(id, _)| *id).collect();
            let states = crate::log_facts::fold_states(tx.conn(), &ids).await?;
            let now = self.clock.now();
            let mut marked = Vec::new();
            for (package_id, view_expiry) in &due {
                let state = states.get(package_id);
                let Some(expires_at) = state
                    .filter(|s| s.due_for_eligibility(as_of))
                    .and_then(|s| s.current_expires_at)
                else {
                    refused.push(Refusal {
                        subject: package_id.to_string(),
                        detail: format!(
                            "retention_state says it expired at {view_expiry} with no active hold \
                             and is not marked, but {}",
                            crate::log_facts::sweep_refusal(state, as_of)
                                .unwrap_or_else(|| "the log disagrees".to_owned())
                        ),
                    });
                    continue;
                };
                let data = Value::Map(BTreeMap::from([
                    ("as_of".to_owned(), Value::Text(as_of.to_string())),
                    ("expires_at".to_owned(), Value::Text(expires_at.to_string())),
                ]));
                tx.append(
                    types::RETENTION_DELETION_ELIGIBLE,
                    Some(*package_id),
                    actor,
                    now,
                    data,
                )
                .await?;
                marked.push(*package_id);
            }
            tx.commit().await?;
            newly_eligible.extend(marked);
        }
        Ok(SweepReport {
            as_of,
            newly_eligible,
            refused,
        })
    }

    /// Sweeps every `interval` until `shutdown` resolves (what the server schedules; the
    /// interval comes from `[retention] sweep_interval`, default 1 h). The first sweep runs
    /// immediately. Each sweep's result goes to `on_report`; a failed sweep is retried at the
    /// next tick and never stops the loop. Returns the number of sweeps run.
    pub async fn run_sweeper<F>(
        &self,
        actor: &str,
        interval: std::time::Duration,
        shutdown: F,
        mut on_report: impl FnMut(Result<SweepReport>) + Send,
    ) -> u64
    where
        F: std::future::Future<Output = ()> + Send,
    {
        let mut ticker = tokio::time::interval(interval.max(std::time::Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        let mut sweeps = 0;
        loop {
            tokio::select! {
                _ = &mut shutdown => return sweeps,
                _ = ticker.tick() => {
                    on_report(self.sweep(actor, None).await);
                    sweeps += 1;
                }
            }
        }
    }

    /// Explains a package's retention at `as_of` (default: now) from its events alone.
    pub async fn explain(
        &self,
        package: &PackageRef,
        as_of: Option<Timestamp>,
    ) -> Result<Explanation> {
        let id = self.resolve(package).await?;
        let events = self.package_events(&id).await?;
        retention::explain(id, &events, as_of.unwrap_or_else(|| self.clock.now()))
    }
}

/// The error for recording (or referencing) a blob that garbage collection is deleting.
fn being_deleted(blake3: &Blake3, seq: u64) -> Error {
    Error::Conflict(format!(
        "blob {blake3} is being deleted by garbage collection (seq {seq}); upload it again once \
         that finishes"
    ))
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

/// Reads `reader` to the end in [`CHUNK_SIZE`] chunks, hashing every byte once and writing it
/// to `staged`. Large streams hash on a separate thread so hashing overlaps the backend's
/// writes.
async fn pump<R>(mut reader: R, staged: &mut dyn StagedBlob) -> Result<BlobInfo>
where
    R: AsyncRead + Unpin + Send,
{
    let mut inline = Some(DualHasher::new());
    let mut pipeline: Option<(
        tokio::sync::mpsc::Sender<Bytes>,
        tokio::task::JoinHandle<DualHasher>,
    )> = None;
    let mut total: u64 = 0;
    loop {
        let chunk = read_chunk(&mut reader).await?;
        if chunk.is_empty() {
            break;
        }
        total += chunk.len() as u64;
        if pipeline.is_none() && total > PIPELINE_THRESHOLD {
            let hasher = inline.take().unwrap_or_default();
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
            let handle = tokio::task::spawn_blocking(move || {
                let mut hasher = hasher;
                while let Some(chunk) = receiver.blocking_recv() {
                    hasher.update_parallel(&chunk);
                }
                hasher
            });
            pipeline = Some((sender, handle));
        }
        match (&mut inline, &pipeline) {
            (Some(hasher), _) => hasher.update(&chunk),
            (None, Some((sender, _))) => sender
                .send(chunk.clone())
                .await
                .map_err(|_| Error::Io(std::io::Error::other("the hashing thread stopped")))?,
            (None, None) => unreachable!("a hasher is always inline or pipelined"),
        }
        staged.write(chunk).await?;
    }
    let hasher = match (inline, pipeline) {
        (Some(hasher), _) => hasher,
        (None, Some((sender, handle))) => {
            drop(sender);
            handle.await.map_err(|e| {
                Error::Io(std::io::Error::other(format!("hashing thread failed: {e}")))
            })?
        }
        (None, None) => DualHasher::new(),
    };
    Ok(hasher.finalize())
}

/// Hashes a local file (both digests and size).
async fn hash_file(path: &std::path::Path) -> Result<BlobInfo> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = DualHasher::new();
        let mut buffer = vec![0u8; CHUNK_SIZE];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update_parallel(&buffer[..n]);
        }
        Ok(hasher.finalize())
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(format!("hashing thread failed: {e}"))))?
}

async fn read_chunk<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Bytes> {
    let mut buffer = BytesMut::with_capacity(CHUNK_SIZE);
    while buffer.len() < CHUNK_SIZE {
        if reader.read_buf(&mut buffer).await? == 0 {
            break;
        }
    }
    Ok(buffer.freeze())
}

fn corrupt_or_io(info: &BlobInfo, error: std::io::Error) -> Error {
    if error.kind() == std::io::ErrorKind::InvalidData {
        Error::Corrupt {
            blake3: info.blake3.to_string(),
            reason: error.to_string(),
        }
    } else {
        Error::Io(error)
    }
}

/// Passes bytes through while hashing them; at the end of the stream, a size or digest
/// mismatch becomes an `InvalidData` error instead of a clean end.
struct VerifyingReader {
    inner: crate::blob::ByteReader,
    hasher: Option<DualHasher>,
    expected: BlobInfo,
}

impl AsyncRead for VerifyingReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match this.inner.as_mut().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if let Some(hasher) = this.hasher.as_mut() {
                    if new.is_empty() {
                        let hasher = this.hasher.take().unwrap_or_default();
                        let actual = hasher.finalize();
                        if actual != this.expected {
                            return Poll::Ready(Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!(
                                    "stored blob {} is corrupt: read {} bytes hashing to {}, expected {} bytes",
                                    this.expected.blake3,
                                    actual.size,
                                    actual.blake3,
                                    this.expected.size
                                ),
                            )));
                        }
                    } else {
                        hasher.update(new);
                        if hasher.size() > this.expected.size {
                            return Poll::Ready(Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!(
                                    "stored blob {} is corrupt: longer than its recorded {} bytes",
                                    this.expected.blake3, this.expected.size
                                ),
                            )));
                        }
                    }
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}
