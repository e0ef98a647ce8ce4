//! Reading recorded blobs, verified as they stream.

use super::*;

impl ArtifactStore {
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

    pub(super) async fn open_verified(
        &self,
        info: &BlobInfo,
        range: Option<ByteRange>,
    ) -> Result<BlobRead> {
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
        let read = self.open_recorded_version(&info.blake3, range).await?;
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
}
