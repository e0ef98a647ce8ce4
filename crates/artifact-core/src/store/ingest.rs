//! Ingest: streaming blobs into the backend while hashing them, and recording them.

use super::*;

impl ArtifactStore {
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
                if let Err(mismatch) = check_expected(&info, expected) {
                    staged.abort().await?;
                    return Err(mismatch);
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
    pub(super) async fn check_durable(&self, info: &BlobInfo) -> Result<()> {
        match self.blobs.head(&info.blake3).await? {
            Some(meta) if meta.size == info.size => Ok(()),
            Some(meta) => Err(Error::Corrupt {
                blake3: info.blake3.to_string(),
                reason: format!("backend holds {} bytes, expected {}", meta.size, info.size),
            }),
            None => Err(Error::not_found("blob bytes", info.blake3.to_string())),
        }
    }

    pub(super) async fn record_blob_in(
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
                return Err(Error::conflict(
                    ConflictKind::BlobMismatch,
                    format!(
                        "blob {} is recorded with sha256 {} and size {}, not {} and {}",
                        info.blake3,
                        existing.info.sha256,
                        existing.info.size,
                        info.sha256,
                        info.size
                    ),
                ));
            }
            return Ok(existing);
        }
        if let Some(existing) =
            catalog::views_blob(tx.conn(), &AnyDigest::Sha256(info.sha256)).await?
        {
            return Err(Error::conflict(
                ConflictKind::BlobMismatch,
                format!(
                    "sha256 {} is already recorded for blob {}",
                    info.sha256, existing.info.blake3
                ),
            ));
        }
        // Under the write lock: garbage collection cannot remove the bytes between this check
        // and the commit.
        self.check_durable(info).await?;
        let tier = self.blobs.tier();
        let data = BlobStored::new(info, tier);
        let event = tx.append(None, actor, self.clock.now(), data).await?;
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
        check_expected(&info, expected)?;
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
}

/// Reads `reader` to the end in [`CHUNK_SIZE`] chunks, hashing every byte once and writing it
/// to `staged`. Large streams hash on a separate thread so hashing overlaps the backend's
/// writes.
pub(super) async fn pump<R>(mut reader: R, staged: &mut dyn StagedBlob) -> Result<BlobInfo>
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
pub(super) async fn hash_file(path: &std::path::Path) -> Result<BlobInfo> {
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

pub(super) async fn read_chunk<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Bytes> {
    let mut buffer = BytesMut::with_capacity(CHUNK_SIZE);
    while buffer.len() < CHUNK_SIZE {
        if reader.read_buf(&mut buffer).await? == 0 {
            break;
        }
    }
    Ok(buffer.freeze())
}

pub(super) fn corrupt_or_io(info: &BlobInfo, error: std::io::Error) -> Error {
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
pub(super) struct VerifyingReader {
    pub(super) inner: crate::blob::ByteReader,
    pub(super) hasher: Option<DualHasher>,
    pub(super) expected: BlobInfo,
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

/// `DigestMismatch` naming the first of `expected` that `info` does not match (and the
/// actual digest of the same algorithm).
fn check_expected(info: &BlobInfo, expected: &[AnyDigest]) -> Result<()> {
    match expected.iter().find(|d| !info.matches(d)) {
        None => Ok(()),
        Some(wrong) => Err(Error::DigestMismatch {
            expected: wrong.to_string(),
            actual: match wrong {
                AnyDigest::Blake3(_) => info.blake3.to_string(),
                AnyDigest::Sha256(_) => info.sha256.to_string(),
            },
        }),
    }
}
