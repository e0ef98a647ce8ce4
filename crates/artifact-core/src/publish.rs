//! Anchoring: signed checkpoints published to sinks outside the catalog (ADR 0011), so that a
//! later rewrite of the log cannot hide. Whoever rewrites the catalog (triggers dropped, every
//! `prev` and `hash` recomputed, the checkpoint table edited) cannot rewrite what was published
//! to a directory on other storage or to an S3 bucket under Object Lock.
//!
//! - [`CheckpointSink`]: where checkpoints go. Publishing is create-only and idempotent: the
//!   same note again is a no-op, a different note for a tree size already published is a
//!   **fork** ([`Error::Integrity`] with that size) and nothing is overwritten.
//! - [`DirectorySink`]: `<dir>/<tree_size>.checkpoint`. The S3 sink lives in
//!   `artifact-store-s3` (`S3CheckpointSink`).
//!
//! Every checkpoint [`ArtifactStore::checkpoint`](crate::ArtifactStore::checkpoint) makes is
//! published to the store's sinks ([`StoreOptions::with_checkpoint_sink`](crate::StoreOptions::with_checkpoint_sink));
//! [`ArtifactStore::verify_published`](crate::ArtifactStore::verify_published) checks today's
//! log against the latest checkpoint each sink holds.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::catalog::StoredCheckpoint;
use crate::error::{Error, Result};

/// Where signed checkpoints are published.
#[async_trait]
pub trait CheckpointSink: Send + Sync + std::fmt::Debug {
    /// Names the sink in messages and reports (`directory /srv/anchors`,
    /// `s3://bucket/prefix/checkpoints`).
    fn describe(&self) -> String;

    /// Publishes `checkpoint`; `Ok(true)` when it was written, `Ok(false)` when the same note
    /// was already there. A different note under the same tree size is a fork:
    /// [`Error::Integrity`] with `seq` = the tree size, and the published one is left as it is.
    async fn publish(&self, checkpoint: &StoredCheckpoint) -> Result<bool>;

    /// The published note of the largest tree size, if any.
    async fn latest(&self) -> Result<Option<String>>;
}

/// The fork error of a sink: `published` differs from the log's checkpoint of that size.
pub fn fork_error(sink: &str, where_: &str, tree_size: u64) -> Error {
    Error::Integrity {
        seq: tree_size,
        reason: format!(
            "fork: the checkpoint published to {sink} at {where_} differs from the log's checkpoint of tree size {tree_size} (the log was rewritten, or two logs publish to one place); the published one was left as it is"
        ),
    }
}

/// Checkpoints as files `<dir>/<tree_size>.checkpoint` (a temporary file, fsync, a hard link
/// that fails if the name exists, fsync of the directory). Put the directory on storage the
/// catalog's administrators cannot write (another host's mount, a WORM filesystem).
#[derive(Clone, Debug)]
pub struct DirectorySink {
    dir: PathBuf,
}

impl DirectorySink {
    /// A sink writing into `dir` (created on the first publish).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// [`CheckpointSink::publish`] without a runtime (blocking file IO).
    pub fn publish_blocking(&self, checkpoint: &StoredCheckpoint) -> Result<bool> {
        let dir = &self.dir;
        let io = |what: &str, path: &Path, e: std::io::Error| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot {what} {}: {e}", path.display()),
            ))
        };
        let path = dir.join(format!("{}.checkpoint", checkpoint.tree_size));
        let same_or_fork = |path: &Path| -> Result<bool> {
            let existing = std::fs::read_to_string(path)
                .map_err(|e| io("read the published checkpoint", path, e))?;
            if existing == checkpoint.note {
                Ok(false)
            } else {
                Err(fork_error(
                    &self.describe(),
                    &path.display().to_string(),
                    checkpoint.tree_size,
                ))
            }
        };
        if path.exists() {
            return same_or_fork(&path);
        }
        std::fs::create_dir_all(dir).map_err(|e| io("create the publish directory", dir, e))?;
        // Unique per process and call: two publishers at once never share a temp file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let temp = dir.join(format!(
            ".{}.checkpoint.tmp-{}-{}",
            checkpoint.tree_size,
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        {
            let mut file = std::fs::File::create(&temp).map_err(|e| io("create", &temp, e))?;
            file.write_all(checkpoint.note.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| io("write", &temp, e))?;
        }
        // A hard link fails if the target exists (no overwrite even when racing another
        // writer); then compare like above.
        let linked = std::fs::hard_link(&temp, &path);
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return same_or_fork(&path);
            }
            Err(e) => return Err(io("publish", &path, e)),
        }
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(true)
    }

    /// [`CheckpointSink::latest`] without a runtime.
    pub fn latest_blocking(&self) -> Result<Option<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot list {}: {e}", self.dir.display()),
                )));
            }
        };
        let mut best: Option<(u64, PathBuf)> = None;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(size) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".checkpoint"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if best.as_ref().is_none_or(|(b, _)| size > *b) {
                best = Some((size, entry.path()));
            }
        }
        match best {
            None => Ok(None),
            Some((_, path)) => std::fs::read_to_string(&path).map(Some).map_err(|e| {
                Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot read {}: {e}", path.display()),
                ))
            }),
        }
    }
}

#[async_trait]
impl CheckpointSink for DirectorySink {
    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }

    async fn publish(&self, checkpoint: &StoredCheckpoint) -> Result<bool> {
        let sink = self.clone();
        let checkpoint = checkpoint.clone();
        tokio::task::spawn_blocking(move || sink.publish_blocking(&checkpoint))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(format!("publish task: {e}"))))?
    }

    async fn latest(&self) -> Result<Option<String>> {
        let sink = self.clone();
        tokio::task::spawn_blocking(move || sink.latest_blocking())
            .await
            .map_err(|e| Error::Io(std::io::Error::other(format!("publish task: {e}"))))?
    }
}

/// What [`ArtifactStore::verify_published`](crate::ArtifactStore::verify_published) found for
/// one sink.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PublishedCheck {
    /// [`CheckpointSink::describe`].
    pub sink: String,
    /// The tree size of the sink's latest checkpoint; `None` when it holds none.
    pub tree_size: Option<u64>,
    /// Whether today's log is consistent with it (true when the sink holds none).
    pub ok: bool,
    /// The first tree size at which the log diverges, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_diverging_size: Option<u64>,
    /// Why it is not consistent (or why the sink could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(size: u64, note: &str) -> StoredCheckpoint {
        StoredCheckpoint {
            tree_size: size,
            root_hash: [0; 32],
            note: note.to_owned(),
            created_at: None,
        }
    }

    #[test]
    fn a_directory_sink_is_create_only_and_names_a_fork() {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirectorySink::new(dir.path().join("anchors"));
        assert_eq!(sink.latest_blocking().unwrap(), None);
        assert!(sink.publish_blocking(&checkpoint(3, "three\n")).unwrap());
        assert!(!sink.publish_blocking(&checkpoint(3, "three\n")).unwrap());
        assert!(sink.publish_blocking(&checkpoint(12, "twelve\n")).unwrap());
        match sink.publish_blocking(&checkpoint(3, "other\n")) {
            Err(Error::Integrity { seq: 3, reason }) => {
                assert!(reason.contains("fork"), "{reason}")
            }
            other => panic!("expected a fork, got {other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("anchors/3.checkpoint")).unwrap(),
            "three\n"
        );
        // Numeric, not lexical: 12 is later than 3.
        assert_eq!(sink.latest_blocking().unwrap().as_deref(), Some("twelve\n"));
    }
}
