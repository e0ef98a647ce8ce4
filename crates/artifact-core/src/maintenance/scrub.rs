//! Scrubbing (`verify`): re-reading recorded blobs and recording the outcome.

use super::*;

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

/// A tiny xorshift generator for sampling (not for secrets).
pub(super) struct Sampler(u64);

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
                let data: EventData = match &outcome {
                    Ok(()) => IntegrityChecked {
                        blake3: info.blake3,
                        size: info.size,
                        extra: Extra::new(),
                    }
                    .into(),
                    Err(reason) => {
                        report.failed.push(IntegrityFailure {
                            blake3: info.blake3,
                            reason: reason.clone(),
                        });
                        IntegrityFailed {
                            blake3: info.blake3,
                            size: info.size,
                            reason: reason.clone(),
                            extra: Extra::new(),
                        }
                        .into()
                    }
                };
                tx.append(None, actor, at, data).await?;
            }
            tx.commit().await?;
        }
        Ok(report)
    }

    /// Reads one blob fully; `Err(reason)` when it is missing or does not match.
    pub(super) async fn check_blob(
        &self,
        info: &BlobInfo,
        total: &mut u64,
        options: VerifyOptions,
        started: Instant,
        progress: &mut (impl FnMut(u64) + Send),
    ) -> Result<std::result::Result<(), String>> {
        let mut read = match self.open_recorded_version(&info.blake3, None).await {
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
}
