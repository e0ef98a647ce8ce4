//! Object Lock on the blob backend (`[blobs] object_lock`, ADR 0015): the calls the library's
//! [`ObjectLocks`] seam needs, sent as signed requests ([`crate::signed`]) because
//! object_store has none for retention, legal holds or versioned deletes.

use artifact_core::blob::{
    BlobRead, ByteRange, LockMode, ObjectLocks, OtherVersion, VersionLock, VersionsDeleted,
    blob_key,
};
use artifact_core::digest::Blake3;
use artifact_core::time::{Period, Timestamp};
use artifact_core::{Error, Result};
use async_trait::async_trait;

use crate::S3BlobStore;
use crate::signed::{SignedClient, VersionEntry};

impl S3BlobStore {
    fn signed(&self) -> Result<&SignedClient> {
        self.inner.signed.as_ref().ok_or_else(|| {
            Error::Config("[blobs] object_lock is off: no Object Lock calls are made".to_owned())
        })
    }

    /// The object key of a blob, as signed requests name it.
    fn lock_key(&self, key: &Blake3) -> String {
        self.inner.under_prefix(&blob_key(key)).to_string()
    }

    /// Every version and delete marker of exactly this blob's key.
    async fn versions_of(&self, key: &Blake3) -> Result<Vec<VersionEntry>> {
        let object = self.lock_key(key);
        Ok(self
            .signed()?
            .list_versions(&object)
            .await?
            .into_iter()
            .filter(|entry| entry.key == object)
            .collect())
    }

    /// Checks the bucket can carry the configured locks: Object Lock enabled (so it is
    /// versioned), and no default retention rule (it would lock staging objects and the
    /// start-up probe, which must stay deletable). Changes nothing.
    pub async fn check_object_lock(&self) -> Result<()> {
        let Some((mode, _)) = self.inner.object_lock else {
            return Ok(());
        };
        let bucket = self.signed()?.bucket_lock().await?;
        let name = &self.inner.bucket;
        let wanted = mode.as_str().to_ascii_lowercase();
        if !bucket.enabled {
            return Err(Error::Config(format!(
                "[blobs] object_lock = \"{wanted}\" but the bucket `{name}` has no Object Lock \
                 configuration: create the bucket with Object Lock enabled (it cannot be turned \
                 on for the store's existing objects by the store), or set object_lock = \"off\""
            )));
        }
        if bucket.default_retention {
            return Err(Error::Config(format!(
                "[blobs] object_lock = \"{wanted}\" but the bucket `{name}` has a default \
                 retention rule: it would lock staging objects, which must stay deletable; \
                 remove the rule (the store sets each blob's retention itself)"
            )));
        }
        Ok(())
    }
}

fn backend(detail: String) -> Error {
    Error::Backend {
        store: "s3",
        source: detail.into(),
    }
}

fn parse_date(object: &str, version: &str, text: &str) -> Result<Timestamp> {
    // Servers may answer with more than millisecond precision: drop the extra digits (the
    // date reads at most 1 ms early, which only ever asks for a longer lock).
    let trimmed = match (text.find('.'), text.rfind(['Z', '+', '-'])) {
        (Some(dot), Some(zone)) if zone > dot && zone - dot > 4 => {
            format!("{}{}", &text[..dot + 4], &text[zone..])
        }
        _ => text.to_owned(),
    };
    trimmed.parse().map_err(|e| {
        backend(format!(
            "the retention of `{object}` version {version} has a RetainUntilDate `{text}` that \
             is not a timestamp: {e}"
        ))
    })
}

#[async_trait]
impl ObjectLocks for S3BlobStore {
    fn mode(&self) -> LockMode {
        self.inner
            .object_lock
            .map_or(LockMode::Compliance, |(mode, _)| mode)
    }

    fn permanent_horizon(&self) -> Period {
        self.inner
            .object_lock
            .map_or(Period::Years(100), |(_, horizon)| horizon)
    }

    async fn current_version(&self, key: &Blake3) -> Result<Option<String>> {
        let object = self.lock_key(key);
        match self.signed()?.version_id(&object).await? {
            None => Ok(None),
            Some(Some(version)) => Ok(Some(version)),
            Some(None) => Err(backend(format!(
                "`{object}` has no version id: the bucket `{}` is not versioned, so Object Lock \
                 cannot apply",
                self.inner.bucket
            ))),
        }
    }

    async fn version_size(&self, key: &Blake3, version_id: &str) -> Result<Option<u64>> {
        self.signed()?
            .version_size(&self.lock_key(key), version_id)
            .await
    }

    async fn version_lock(&self, key: &Blake3, version_id: &str) -> Result<Option<VersionLock>> {
        let signed = self.signed()?;
        let object = self.lock_key(key);
        if signed.version_size(&object, version_id).await?.is_none() {
            return Ok(None);
        }
        let retention = match signed.version_retention(&object, Some(version_id)).await? {
            None => None,
            Some((mode, date)) => Some((mode, parse_date(&object, version_id, &date)?)),
        };
        let legal_hold = signed.legal_hold(&object, Some(version_id)).await?;
        Ok(Some(VersionLock {
            retention,
            legal_hold,
        }))
    }

    async fn retain_until(
        &self,
        key: &Blake3,
        version_id: &str,
        mode: LockMode,
        until: Timestamp,
    ) -> Result<()> {
        self.signed()?
            .put_retention(&self.lock_key(key), Some(version_id), mode, until)
            .await
    }

    async fn set_legal_hold(&self, key: &Blake3, version_id: &str, on: bool) -> Result<()> {
        self.signed()?
            .put_legal_hold(&self.lock_key(key), Some(version_id), on)
            .await
    }

    async fn get_version(
        &self,
        key: &Blake3,
        version_id: &str,
        range: Option<ByteRange>,
    ) -> Result<BlobRead> {
        self.get_version_of(key, range, Some(version_id.to_owned()))
            .await
    }

    async fn delete_versions(&self, key: &Blake3) -> Result<VersionsDeleted> {
        let signed = self.signed()?;
        let object = self.lock_key(key);
        let mut locked = None;
        // Object versions first, then the delete markers (removing a marker over a version the
        // storage still locks only makes that version current again).
        let mut entries = self.versions_of(key).await?;
        entries.sort_by_key(|entry| entry.delete_marker);
        for entry in entries {
            let status = signed.delete(&object, Some(&entry.version_id)).await?;
            if status.is_success() || status == http::StatusCode::NOT_FOUND {
                continue;
            }
            if status == http::StatusCode::FORBIDDEN && !entry.delete_marker {
                if locked.is_none() {
                    let retain_until = match signed
                        .version_retention(&object, Some(&entry.version_id))
                        .await?
                    {
                        Some((_, date)) => Some(parse_date(&object, &entry.version_id, &date)?),
                        None => None,
                    };
                    let legal_hold = signed.legal_hold(&object, Some(&entry.version_id)).await?;
                    let now = artifact_core::time::Clock::now(&artifact_core::time::SystemClock);
                    if !legal_hold && retain_until.is_none_or(|until| until <= now) {
                        return Err(Error::Config(format!(
                            "deleting `{object}` version {} was refused (403) although it has no \
                             retention and no legal hold: do the credentials have \
                             s3:DeleteObjectVersion?",
                            entry.version_id
                        )));
                    }
                    locked = Some(VersionsDeleted::Locked {
                        version_id: entry.version_id.clone(),
                        retain_until,
                        legal_hold,
                    });
                }
                continue;
            }
            return Err(backend(format!(
                "deleting `{object}` version {} was answered {status}",
                entry.version_id
            )));
        }
        Ok(locked.unwrap_or(VersionsDeleted::Deleted))
    }

    async fn other_versions(&self, key: &Blake3, keep: &str) -> Result<Vec<OtherVersion>> {
        Ok(self
            .versions_of(key)
            .await?
            .into_iter()
            .filter(|entry| entry.version_id != keep)
            .map(|entry| OtherVersion {
                version_id: entry.version_id,
                delete_marker: entry.delete_marker,
            })
            .collect())
    }

    async fn delete_version(&self, key: &Blake3, version_id: &str) -> Result<bool> {
        let object = self.lock_key(key);
        let status = self.signed()?.delete(&object, Some(version_id)).await?;
        if status.is_success() || status == http::StatusCode::NOT_FOUND {
            Ok(true)
        } else if status == http::StatusCode::FORBIDDEN {
            Ok(false)
        } else {
            Err(backend(format!(
                "deleting `{object}` version {version_id} was answered {status}"
            )))
        }
    }
}
