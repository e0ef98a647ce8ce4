//! The S3 checkpoint sink (`[log.publish_s3]`, ADR 0011): every signed checkpoint is written
//! once to `<prefix>/checkpoints/<tree_size>.checkpoint`, create-only, and under an S3 Object
//! Lock retention when the bucket has Object Lock enabled, so that neither a rewrite of the
//! catalog nor the bucket's own credentials can make a published checkpoint disappear.

use std::sync::Arc;

use artifact_core::catalog::StoredCheckpoint;
use artifact_core::config::PublishS3Config;
use artifact_core::publish::{CheckpointSink, fork_error};
use artifact_core::time::{Clock, Period, SystemClock};
use artifact_core::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::S3Options;
use crate::signed::{Created, LockMode, SignedClient};

/// How published checkpoints are locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkLock {
    /// COMPLIANCE when the bucket has Object Lock enabled, none otherwise.
    Auto,
    /// Always this mode; the bucket must have Object Lock enabled.
    Mode(LockMode),
    /// Never.
    Off,
}

impl SinkLock {
    /// Parses `auto`, `compliance`, `governance` or `off`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "auto" => Ok(SinkLock::Auto),
            "compliance" => Ok(SinkLock::Mode(LockMode::Compliance)),
            "governance" => Ok(SinkLock::Mode(LockMode::Governance)),
            "off" => Ok(SinkLock::Off),
            other => Err(Error::Config(format!(
                "[log.publish_s3] object_lock = `{other}`: use auto, compliance, governance or off"
            ))),
        }
    }
}

/// Checkpoints in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3CheckpointSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    signed: SignedClient,
    /// `<prefix>/checkpoints` (no trailing `/`).
    dir: String,
    lock: SinkLock,
    retain: Period,
    clock: Arc<dyn Clock>,
    /// The mode to write with, decided on first use from the bucket's configuration.
    mode: OnceCell<Option<LockMode>>,
}

impl S3CheckpointSink {
    /// A sink from `[log.publish_s3]` (credentials from the AWS environment).
    pub fn from_config(config: &PublishS3Config) -> Result<Self> {
        let options = S3Options::from_env(&config.bucket).with_location(
            config.prefix.as_deref(),
            config.endpoint.as_deref(),
            config.region.as_deref(),
            config.allow_http,
        );
        let lock = SinkLock::parse(&config.object_lock)?;
        let retain: Period = config
            .retain
            .parse()
            .map_err(|e| Error::Config(format!("[log.publish_s3] retain: {e}")))?;
        if retain == Period::Permanent {
            return Err(Error::Config(
                "[log.publish_s3] retain must be a period (S3 retention needs a date), e.g. `100y`"
                    .to_owned(),
            ));
        }
        Self::new(options, lock, retain)
    }

    /// A sink writing under `options`' bucket and prefix.
    pub fn new(options: S3Options, lock: SinkLock, retain: Period) -> Result<Self> {
        let signed = options.signed_client()?;
        let prefix = options.prefix().to_owned();
        let dir = if prefix.is_empty() {
            "checkpoints".to_owned()
        } else {
            format!("{prefix}/checkpoints")
        };
        Ok(Self {
            inner: Arc::new(Inner {
                signed,
                dir,
                lock,
                retain,
                clock: Arc::new(SystemClock),
                mode: OnceCell::new(),
            }),
        })
    }

    /// Replaces the clock the retain-until dates are computed from (tests).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                signed: inner.signed.clone(),
                dir: inner.dir.clone(),
                lock: inner.lock,
                retain: inner.retain,
                clock,
                mode: OnceCell::new(),
            }),
        }
    }

    /// The object key of the checkpoint of `tree_size`.
    pub fn key(&self, tree_size: u64) -> String {
        format!("{}/{tree_size}.checkpoint", self.inner.dir)
    }

    /// The signed-request client (tests and tools read retention through it).
    pub fn signed_client(&self) -> &SignedClient {
        &self.inner.signed
    }

    /// The lock mode published checkpoints get (`None`: unlocked), from the configuration and
    /// the bucket's Object Lock configuration (read once).
    pub async fn lock_mode(&self) -> Result<Option<LockMode>> {
        let inner = &self.inner;
        inner
            .mode
            .get_or_try_init(|| async {
                match inner.lock {
                    SinkLock::Off => Ok(None),
                    SinkLock::Auto => Ok(inner
                        .signed
                        .bucket_lock()
                        .await?
                        .enabled
                        .then_some(LockMode::Compliance)),
                    SinkLock::Mode(mode) => {
                        if inner.signed.bucket_lock().await?.enabled {
                            Ok(Some(mode))
                        } else {
                            Err(Error::Config(format!(
                                "[log.publish_s3] object_lock = \"{}\" but the bucket `{}` has no Object Lock enabled (create it with Object Lock, or set object_lock = \"auto\" or \"off\")",
                                mode.as_str().to_lowercase(),
                                inner.signed.bucket()
                            )))
                        }
                    }
                }
            })
            .await
            .copied()
    }

    async fn same_or_fork(&self, key: &str, checkpoint: &StoredCheckpoint) -> Result<bool> {
        match self.inner.signed.get(key).await? {
            Some(existing) if existing == checkpoint.note.as_bytes() => Ok(false),
            Some(_) => Err(fork_error(
                &self.describe(),
                &format!("s3://{}/{key}", self.inner.signed.bucket()),
                checkpoint.tree_size,
            )),
            None => Err(Error::Backend {
                store: "s3",
                source: format!("`{key}` was reported to exist but cannot be read; publish again")
                    .into(),
            }),
        }
    }
}

#[async_trait]
impl CheckpointSink for S3CheckpointSink {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.inner.signed.bucket(), self.inner.dir)
    }

    async fn publish(&self, checkpoint: &StoredCheckpoint) -> Result<bool> {
        let key = self.key(checkpoint.tree_size);
        // Read first: some S3-compatible servers ignore `If-None-Match`, and the check is one
        // small GET per checkpoint.
        if self.inner.signed.get(&key).await?.is_some() {
            return self.same_or_fork(&key, checkpoint).await;
        }
        // Absent as the current version, but versions exist: a delete marker hides what was
        // published under this size. Never write a second version over it.
        let versions = self.inner.signed.list_versions(&key).await?;
        if versions.iter().any(|v| v.key == key) {
            return Err(fork_error(
                &self.describe(),
                &format!(
                    "s3://{}/{key} (hidden by a delete marker)",
                    self.inner.signed.bucket()
                ),
                checkpoint.tree_size,
            ));
        }
        let lock = match self.lock_mode().await? {
            None => None,
            Some(mode) => {
                let until = self
                    .inner
                    .clock
                    .now()
                    .checked_add(self.inner.retain)
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "[log.publish_s3] retain {} reaches past the year 9999",
                            self.inner.retain
                        ))
                    })?;
                Some((mode, until))
            }
        };
        match self
            .inner
            .signed
            .put_if_absent(
                &key,
                Bytes::from(checkpoint.note.clone()),
                "text/plain; charset=utf-8",
                lock,
            )
            .await?
        {
            Created::New { .. } => Ok(true),
            Created::Exists => self.same_or_fork(&key, checkpoint).await,
        }
    }

    async fn latest(&self) -> Result<Option<String>> {
        // Versions, not current objects: on a versioned (Object Lock) bucket a DELETE without a
        // version id only adds a delete marker, which would hide a locked checkpoint from a
        // plain listing, and a plain PUT adds a second version.
        let prefix = format!("{}/", self.inner.dir);
        let versions = self.inner.signed.list_versions(&prefix).await?;
        let size_of = |key: &str| {
            key.strip_prefix(&prefix)
                .and_then(|n| n.strip_suffix(".checkpoint"))
                .and_then(|n| n.parse::<u64>().ok())
        };
        let mut by_size: std::collections::BTreeMap<u64, Vec<&crate::signed::VersionEntry>> =
            std::collections::BTreeMap::new();
        for entry in &versions {
            if let Some(size) = size_of(&entry.key) {
                by_size.entry(size).or_default().push(entry);
            }
        }
        for (size, entries) in &by_size {
            let where_ = format!("s3://{}/{}", self.inner.signed.bucket(), entries[0].key);
            if entries.iter().any(|e| e.delete_marker) {
                return Err(Error::Integrity {
                    seq: *size,
                    reason: format!(
                        "the checkpoint of tree size {size} published at {where_} is hidden by a delete marker (someone with the bucket's credentials deleted it); remove the marker to restore it, and find out who placed it"
                    ),
                });
            }
            if entries.len() > 1 {
                return Err(Error::Integrity {
                    seq: *size,
                    reason: format!(
                        "the checkpoint of tree size {size} published at {where_} has {} versions (it was overwritten); the first one is the published checkpoint",
                        entries.len()
                    ),
                });
            }
        }
        let Some((size, entries)) = by_size.iter().next_back() else {
            return Ok(None);
        };
        let entry = entries[0];
        let bytes = self
            .inner
            .signed
            .get_version(&entry.key, &entry.version_id)
            .await?
            .ok_or_else(|| Error::Backend {
                store: "s3",
                source: format!("`{}` was listed but cannot be read", entry.key).into(),
            })?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| Error::Integrity {
                seq: *size,
                reason: format!("the published checkpoint `{}` is not UTF-8 text", entry.key),
            })
    }
}
