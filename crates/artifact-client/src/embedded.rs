//! [`EmbeddedClient`]: the [`Client`] over an [`ArtifactStore`] opened in this process.

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use artifact_core::auth::Role;
use artifact_core::catalog::{EventQuery, PackageFilter};
use artifact_core::digest::{AnyDigest, BlobInfo};
use artifact_core::event::Event;
use artifact_core::maintenance::{GcOptions, VerifyOptions};
use artifact_core::manifest::{FileEntry, Manifest};
use artifact_core::results::{
    AuditResult, BlobResult, ExplainResult, FsckResult, GcResult, PackageViewResult,
    RetentionStatusResult, SweepResult, TokenMintedResult, TokenResult, VerifyResult,
};
use artifact_core::time::{Period, Timestamp};
use artifact_core::tlog::{LogSigner, Receipt};
use artifact_core::{ArtifactStore, PackageRef};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};

use crate::{Client, ClientError, Created, PackageQuery, Progress, Result};

/// A store in this process, called as `actor`.
pub struct EmbeddedClient {
    store: ArtifactStore,
    actor: String,
    signer: Option<LogSigner>,
}

impl std::fmt::Debug for EmbeddedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedClient")
            .field("actor", &self.actor)
            .field("signer", &self.signer.is_some())
            .finish_non_exhaustive()
    }
}

impl EmbeddedClient {
    /// Calls `store`, recording changes as made by `actor`.
    pub fn new(store: ArtifactStore, actor: impl Into<String>) -> Self {
        EmbeddedClient {
            store,
            actor: actor.into(),
            signer: None,
        }
    }

    /// The log's signing key: [`Client::receipt`] signs (and publishes) a checkpoint with it
    /// when no stored checkpoint covers the event yet.
    pub fn with_log_signer(mut self, signer: LogSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The store.
    pub fn store(&self) -> &ArtifactStore {
        &self.store
    }

    /// The actor changes are recorded as.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    async fn view(&self, package: &PackageRef) -> Result<PackageViewResult> {
        let (record, retention) = self.store.package_view(package).await?;
        Ok(PackageViewResult::new(&record, &retention))
    }

    async fn copy_verified<W: AsyncWrite + Unpin + Send>(
        reader: artifact_core::blob::ByteReader,
        out: &mut W,
        progress: &dyn Progress,
        what: &str,
    ) -> Result<()> {
        let mut reader = Counting {
            inner: reader,
            progress,
        };
        tokio::io::copy(&mut reader, out)
            .await
            .map_err(|e| ClientError::io(format!("reading {what}"), e))?;
        out.flush()
            .await
            .map_err(|e| ClientError::io(format!("cannot write {what}"), e))?;
        Ok(())
    }
}

/// An [`AsyncRead`] that reports the bytes read to a [`Progress`].
struct Counting<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<'_, R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.progress.advance(read as u64);
        }
        polled
    }
}

impl Client for EmbeddedClient {
    async fn send_file(&self, path: &Path, progress: &dyn Progress) -> Result<BlobInfo> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::io(format!("cannot open {}", path.display()), e))?;
        let reader = Counting {
            inner: file,
            progress,
        };
        Ok(self.store.write_blob(reader, &[]).await?)
    }

    async fn put_blob(&self, path: &Path, progress: &dyn Progress) -> Result<BlobResult> {
        let info = self.send_file(path, progress).await?;
        let record = self
            .store
            .record_blobs(&self.actor, &[info])
            .await?
            .pop()
            .ok_or_else(|| ClientError::Protocol("the blob was not recorded".into()))?;
        Ok(BlobResult::from(&record))
    }

    async fn create_package(&self, manifest: &Manifest, blobs: &[BlobInfo]) -> Result<Created> {
        // One transaction records every blob (their bytes are already durable) and the package.
        let created = self
            .store
            .create_package_with_blobs(&self.actor, manifest, blobs)
            .await?;
        Ok(Created {
            package: PackageViewResult::new(&created.package, &created.retention),
            created: created.created,
        })
    }

    async fn check_class(&self, class: &str) -> Result<()> {
        self.store.classes().period(class)?;
        Ok(())
    }

    async fn package(&self, package: &str) -> Result<PackageViewResult> {
        self.view(&package.parse()?).await
    }

    async fn list_packages(&self, query: &PackageQuery) -> Result<Vec<PackageViewResult>> {
        let views = self
            .store
            .list_package_views(&PackageFilter {
                name: query.name.clone(),
                version: None,
                retention_class: query.class.clone(),
                eligible: query.eligible,
                after_seq: 0,
                limit: query.limit,
            })
            .await?;
        Ok(views
            .iter()
            .map(|(record, retention)| PackageViewResult::new(record, retention))
            .collect())
    }

    async fn manifest(&self, package: &str) -> Result<(Manifest, Vec<u8>)> {
        Ok(self.store.manifest(&package.parse()?).await?)
    }

    async fn check_live(&self, package: &str) -> Result<()> {
        self.store.live_package(&package.parse()?).await?;
        Ok(())
    }

    async fn copy_file<W: AsyncWrite + Unpin + Send>(
        &self,
        package: &str,
        file: &FileEntry,
        out: &mut W,
        progress: &dyn Progress,
    ) -> Result<()> {
        let (_, read) = self
            .store
            .read_file(&package.parse()?, &file.path, None)
            .await?;
        Self::copy_verified(read.reader, out, progress, &file.path).await
    }

    async fn copy_blob<W: AsyncWrite + Unpin + Send>(
        &self,
        digest: &AnyDigest,
        out: &mut W,
        progress: &dyn Progress,
    ) -> Result<()> {
        let read = self.store.read_blob(digest, None).await?;
        progress.set_length(read.size);
        Self::copy_verified(read.reader, out, progress, &digest.to_string()).await
    }

    async fn extend(
        &self,
        package: &str,
        until: Timestamp,
        reason: &str,
    ) -> Result<RetentionStatusResult> {
        let status = self
            .store
            .extend(&self.actor, &package.parse()?, until, reason)
            .await?;
        Ok(RetentionStatusResult::from(&status))
    }

    async fn hold(&self, package: &str, reason: &str) -> Result<String> {
        Ok(self
            .store
            .hold(&self.actor, &package.parse()?, reason)
            .await?)
    }

    async fn release(
        &self,
        package: &str,
        hold_id: &str,
        reason: &str,
    ) -> Result<RetentionStatusResult> {
        let status = self
            .store
            .release(&self.actor, &package.parse()?, hold_id, reason)
            .await?;
        Ok(RetentionStatusResult::from(&status))
    }

    async fn retention_history(&self, package: &str) -> Result<Vec<Event>> {
        Ok(self.store.retention_history(&package.parse()?).await?)
    }

    async fn receipt(&self, seq: u64) -> Result<Receipt> {
        let covered = self
            .store
            .latest_checkpoint()
            .await?
            .is_some_and(|latest| latest.tree_size >= seq);
        if !covered {
            let signer = self.signer.as_ref().ok_or_else(|| {
                ClientError::Invalid(
                    "no checkpoint covers this event yet and no signing key was given to make one"
                        .into(),
                )
            })?;
            self.store.checkpoint(signer).await?;
        }
        Ok(self.store.inclusion_proof(seq, None).await?)
    }

    async fn sweep(&self, as_of: Option<Timestamp>) -> Result<SweepResult> {
        Ok(SweepResult::from(
            &self.store.sweep(&self.actor, as_of).await?,
        ))
    }

    async fn explain(&self, package: &str, as_of: Option<Timestamp>) -> Result<ExplainResult> {
        Ok(ExplainResult::from(
            &self.store.explain(&package.parse()?, as_of).await?,
        ))
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        Ok(self.store.events(query).await?)
    }

    fn follow(&self, after: u64) -> BoxStream<'static, Result<Event>> {
        self.store
            .follow(after)
            .map(|event| event.map_err(ClientError::from))
            .boxed()
    }

    async fn audit(&self) -> Result<AuditResult> {
        Ok(AuditResult::from(&self.store.audit().await?))
    }

    async fn rebuild_views(&self) -> Result<u64> {
        Ok(self.store.rebuild_views().await?)
    }

    async fn gc(&self, grace: Option<&str>, dry_run: bool) -> Result<GcResult> {
        let mut options = GcOptions {
            dry_run,
            ..GcOptions::default()
        };
        if let Some(grace) = grace {
            options.grace = Period::parse_duration(grace)
                .map_err(|e| ClientError::Invalid(format!("grace: {e}")))?;
        }
        Ok(GcResult::from(&self.store.gc(&self.actor, options).await?))
    }

    async fn verify(
        &self,
        sample: f64,
        max_bytes_per_sec: Option<u64>,
        progress: &dyn Progress,
    ) -> Result<VerifyResult> {
        let report = self
            .store
            .verify_blobs(
                &self.actor,
                VerifyOptions {
                    sample,
                    max_bytes_per_sec,
                },
                |bytes| progress.set_position(bytes),
            )
            .await?;
        Ok(VerifyResult::from(&report))
    }

    async fn fsck(&self) -> Result<FsckResult> {
        Ok(FsckResult::from(&self.store.fsck().await?))
    }

    async fn mint_token(
        &self,
        principal: &str,
        roles: &[Role],
        expires_at: Option<Timestamp>,
    ) -> Result<TokenMintedResult> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| {
            ClientError::Invalid(format!("no randomness from the operating system: {e}"))
        })?;
        let minted = self
            .store
            .mint_token(&self.actor, principal, roles, expires_at, &secret)
            .await?;
        Ok(TokenMintedResult::from(&minted))
    }

    async fn list_tokens(&self) -> Result<Vec<TokenResult>> {
        Ok(self
            .store
            .list_tokens()
            .await?
            .iter()
            .map(TokenResult::from)
            .collect())
    }

    async fn revoke_token(&self, token_id: &str, reason: &str) -> Result<TokenResult> {
        let record = self
            .store
            .revoke_token(&self.actor, token_id, reason)
            .await?;
        Ok(TokenResult::from(&record))
    }
}
