//! Packages: creating them from manifests, resolving and reading them.

use super::*;

impl ArtifactStore {
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
        let created = PackageCreated {
            manifest: manifest.clone(),
            extra: Extra::new(),
        };
        tx.append(Some(package_id), actor, now, created).await?;
        let default_applied = RetentionDefaultApplied {
            retention_class: manifest.retention_class.clone(),
            period,
            expires_at: now.checked_add(period),
            extra: Extra::new(),
        };
        let expires_at = default_applied.expires_at;
        tx.append(Some(package_id), actor, now, default_applied)
            .await?;
        // The storage locks come before the commit that promises them (ADR 0015).
        if let Some(locks) = self.object_locks() {
            let need = locks::Need {
                until: Some(locks::retain_target(expires_at, now, locks)?),
                legal_hold: expires_at.is_none(),
            };
            let blobs = locks::manifest_blobs(&package_id, manifest);
            self.lock_blobs_in(&mut tx, actor, Some(package_id), &blobs, need)
                .await?;
        }
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

    pub(super) async fn existing_package(
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

    pub(super) async fn resolve_existing(
        &self,
        existing: PackageId,
        package_id: PackageId,
        manifest: &Manifest,
    ) -> Result<CreatedPackage> {
        if existing != package_id {
            return Err(Error::conflict(
                ConflictKind::ManifestDiffers,
                format!(
                    "{}@{} already exists as package {existing} with a different manifest",
                    manifest.name, manifest.version
                ),
            ));
        }
        let package = self.package(&PackageRef::Id(package_id)).await?;
        if let Some(purged_seq) = package.purged_seq {
            // Its files are gone: answering "exists" would hand out a package nobody can read.
            return Err(Error::conflict(
                ConflictKind::NameRetired,
                format!(
                    "{}@{} was package {package_id}, purged by garbage collection (seq {purged_seq}); \
                     a name and version are never reused: push it under a new version",
                    manifest.name, manifest.version
                ),
            ));
        }
        Ok(CreatedPackage {
            package_id,
            created: false,
            package,
            retention: self.retention_status(&PackageRef::Id(package_id)).await?,
        })
    }

    pub(super) async fn missing_blobs(
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

    /// The first live package named `name` that has a file at `path` with SHA-256 `sha256`
    /// (how the OCI façade finds a manifest by digest).
    pub async fn package_with_file(
        &self,
        name: &str,
        path: &str,
        sha256: &crate::digest::Sha256,
    ) -> Result<Option<PackageId>> {
        let mut conn = self.catalog.read().await?;
        catalog::views_package_with_file(&mut conn, name, path, sha256).await
    }

    /// Every live package named `name` with a file at `path` whose SHA-256 is `sha256`, in
    /// creation order.
    pub async fn packages_with_file(
        &self,
        name: &str,
        path: &str,
        sha256: &crate::digest::Sha256,
    ) -> Result<Vec<PackageId>> {
        let mut conn = self.catalog.read().await?;
        catalog::views_packages_with_file(&mut conn, name, path, sha256).await
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
        // A filter no package can match (e.g. an empty name) is an error, not an empty page.
        if let Some(name) = &filter.name {
            crate::manifest::validate_name(name)?;
        }
        if let Some(version) = &filter.version {
            crate::manifest::validate_version(version)?;
        }
        if let Some(class) = &filter.retention_class {
            crate::manifest::validate_class_name(class)?;
        }
        let mut conn = self.catalog.read().await?;
        catalog::views_list_packages(&mut conn, filter).await
    }

    /// A package's record and its retention state, read on one connection (what `show` and
    /// `GET /packages/{pkg}` answer): three indexed lookups whatever the store's size.
    pub async fn package_view(
        &self,
        package: &PackageRef,
    ) -> Result<(PackageRecord, RetentionStatus)> {
        let mut conn = self.catalog.read().await?;
        let record = match package {
            PackageRef::Id(id) => catalog::views_package(&mut conn, id).await?,
            PackageRef::NameVersion { name, version } => {
                match catalog::views_package_id_by_name(&mut conn, name, version).await? {
                    Some(id) => catalog::views_package(&mut conn, &id).await?,
                    None => None,
                }
            }
        }
        .ok_or_else(|| Error::not_found("package", package.to_string()))?;
        let retention = catalog::views_retention_status(&mut conn, &record.package_id)
            .await?
            .ok_or_else(|| Error::not_found("retention state", record.package_id.to_string()))?;
        Ok((record, retention))
    }

    /// Lists packages in creation order like [`ArtifactStore::list_packages`], each with its
    /// retention state (what `ls` and `GET /packages` show). A page costs three queries — the
    /// packages, their retention states, their active holds — not two more per package.
    pub async fn list_package_views(
        &self,
        filter: &PackageFilter,
    ) -> Result<Vec<(PackageRecord, RetentionStatus)>> {
        let records = self.list_packages(filter).await?;
        self.with_retention(records).await
    }

    /// Each of `records` with its retention state, in two queries (states, active holds) per
    /// page; a package without one is [`Error::NotFound`], as
    /// [`ArtifactStore::retention_status`] says.
    pub async fn with_retention(
        &self,
        records: Vec<PackageRecord>,
    ) -> Result<Vec<(PackageRecord, RetentionStatus)>> {
        let mut conn = self.catalog.read().await?;
        let ids: Vec<PackageId> = records.iter().map(|r| r.package_id).collect();
        let mut statuses = catalog::views_retention_statuses(&mut conn, &ids).await?;
        records
            .into_iter()
            .map(|record| {
                let retention = statuses.remove(&record.package_id).ok_or_else(|| {
                    Error::not_found("retention state", record.package_id.to_string())
                })?;
                Ok((record, retention))
            })
            .collect()
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
}
