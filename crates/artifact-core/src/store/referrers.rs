//! OCI packages (ADR 0016): what keeps a package pushed through `/v2/` longer than its own
//! retention, and the tags of repositories whose tags may move.
//!
//! - A **referrer** (a manifest whose `subject` names another: a signature, an SBOM, an
//!   attestation) is kept at least as long as its subject.
//! - An **index's children** (the manifests an image index lists) are kept at least as long as
//!   the index.
//!
//! Both are transitive (a signature of an SBOM of an image is kept while the image is, and so
//! is a child of an index that is itself a referrer), up to [`MAX_KEEP_DEPTH`] links. A
//! package's own expiry still applies; the sweep does not mark it eligible, and GC does not
//! purge it, while a keeper is live and retained (not yet expired, or held). Which package
//! keeps which is read from the manifests recorded in the log (`v1.package.created`); the
//! lookup of a digest's package goes through the `package_files` view, and the keeper's
//! retention is folded from the log.

use super::*;
use crate::event::types::OciTagSet;

/// The manifest label naming a package's OCI subject: the `sha256:` digest of the subject's
/// `manifest.json`, in a package of the same name.
pub const SUBJECT_LABEL: &str = "oci.subject";
/// The file of an OCI package that holds the manifest's exact bytes.
pub const OCI_MANIFEST_FILE: &str = "manifest.json";
/// How many subject/index links are followed from a package to the one that keeps it.
pub const MAX_KEEP_DEPTH: usize = 64;

/// The path under which an OCI package lists a blob (or a child manifest) by its SHA-256.
pub fn oci_blob_path(sha256: &crate::digest::Sha256) -> String {
    format!("blobs/sha256/{}", sha256.to_hex())
}

impl ArtifactStore {
    /// The manifest `package_id` was created with, from its `v1.package.created` event.
    pub(crate) async fn created_manifest(
        conn: &mut sqlx::AnyConnection,
        package_id: &PackageId,
    ) -> Result<Manifest> {
        let events = catalog::views_events_of_package_type(
            conn,
            package_id,
            crate::event::types::PACKAGE_CREATED,
        )
        .await?;
        let event = events
            .first()
            .ok_or_else(|| Error::not_found("package", package_id.to_string()))?;
        match event.typed()? {
            crate::event::EventData::PackageCreated(created) => Ok(created.manifest),
            _ => Err(Error::Integrity {
                seq: event.seq,
                reason: format!("the creation event of {package_id} is not v1.package.created"),
            }),
        }
    }

    /// The packages that keep `package_id` directly, with how: every live package of the same
    /// name holding its subject (the same manifest may be several packages: pushed by digest
    /// and under tags), and every live index of the name that lists it (by the `package_files`
    /// view).
    async fn oci_keepers_of(
        conn: &mut sqlx::AnyConnection,
        package_id: &PackageId,
    ) -> Result<Vec<(PackageId, String)>> {
        let manifest = Self::created_manifest(conn, package_id).await?;
        let mut keepers = Vec::new();
        if let Some(subject) = manifest.labels.get(SUBJECT_LABEL)
            && let Ok(sha256) = subject.parse::<crate::digest::Sha256>()
        {
            for subject_id in
                catalog::views_packages_with_file(conn, &manifest.name, OCI_MANIFEST_FILE, &sha256)
                    .await?
            {
                if subject_id != *package_id {
                    keepers.push((subject_id, format!("subject {subject_id} ({subject})")));
                }
            }
        }
        if let Some(own) = manifest.file(OCI_MANIFEST_FILE) {
            for index in catalog::views_indexes_listing(conn, &manifest.name, &own.sha256).await? {
                if index != *package_id {
                    keepers.push((index, format!("index {index}")));
                }
            }
        }
        Ok(keepers)
    }

    /// Why another package still keeps `package_id` at `now` (see the module docs): the
    /// keeper's id, the seq of the keeper's latest retention event, and the reason (naming
    /// the chain of subjects and indexes). `None` when nothing keeps it.
    pub(crate) async fn oci_keeper(
        &self,
        conn: &mut sqlx::AnyConnection,
        package_id: &PackageId,
        now: Timestamp,
    ) -> Result<Option<(PackageId, u64, String)>> {
        let mut visited = std::collections::BTreeSet::from([*package_id]);
        let mut frontier = vec![(*package_id, "its".to_owned())];
        for _ in 0..MAX_KEEP_DEPTH {
            // This level's keepers, their states folded from the log in one read.
            let mut level = Vec::new();
            for (id, chain) in frontier {
                for (keeper, relation) in Self::oci_keepers_of(conn, &id).await? {
                    if visited.insert(keeper) {
                        level.push((keeper, format!("{chain} {relation}")));
                    }
                }
            }
            let ids: Vec<PackageId> = level.iter().map(|(id, _)| *id).collect();
            let mut states = std::collections::HashMap::new();
            for chunk in ids.chunks(500) {
                states.extend(crate::log_facts::fold_states(conn, chunk).await?);
            }
            let mut next = Vec::new();
            for (keeper, via) in level {
                let Some(state) = states.get(&keeper) else {
                    continue;
                };
                if state.purged_seq.is_some() {
                    continue;
                }
                let why = if state.active_holds() > 0 {
                    Some(format!("{via} is held"))
                } else {
                    match state.current_expires_at {
                        None => Some(format!("{via} is retained permanently")),
                        Some(until) if until > now => {
                            Some(format!("{via} is retained until {until}"))
                        }
                        Some(_) => None,
                    }
                };
                if let Some(why) = why {
                    return Ok(Some((keeper, state.updated_seq, why)));
                }
                next.push((keeper, format!("{via}, whose")));
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(None)
    }

    /// Sets `tag` of the OCI repository `repository` to the live package `package_id`, whose
    /// `manifest.json` must be `manifest_sha256` (by the log): one `v1.oci.tag_set` event by
    /// `actor`. Returns its seq, or `None` when the tag already names that package.
    pub async fn set_oci_tag(
        &self,
        actor: &str,
        repository: &str,
        tag: &str,
        package_id: &PackageId,
        manifest_sha256: &crate::digest::Sha256,
    ) -> Result<Option<u64>> {
        crate::auth::validate_principal(actor)?;
        let mut tx = self.catalog.write().await?;
        if let Some((current, _)) = catalog::views_oci_tag(tx.conn(), repository, tag).await?
            && current == *package_id
        {
            tx.rollback().await?;
            return Ok(None);
        }
        let manifest = Self::created_manifest(tx.conn(), package_id).await?;
        if manifest.name != repository
            || manifest.file(OCI_MANIFEST_FILE).map(|f| f.sha256) != Some(*manifest_sha256)
        {
            return Err(Error::invalid(format!(
                "package {package_id} is not the manifest {manifest_sha256} of repository \
                 `{repository}`"
            )));
        }
        let state = crate::log_facts::fold_states(tx.conn(), &[*package_id])
            .await?
            .remove(package_id);
        if let Some(purged_seq) = state.and_then(|s| s.purged_seq) {
            return Err(Error::Gone(format!(
                "package {package_id} was purged (seq {purged_seq}); a tag cannot name it"
            )));
        }
        let data = OciTagSet {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            manifest_sha256: *manifest_sha256,
            extra: Extra::new(),
        };
        let event = tx
            .append(Some(*package_id), actor, self.clock.now(), data)
            .await?;
        tx.commit().await?;
        Ok(Some(event.seq))
    }

    /// The package `tag` of `repository` names by `v1.oci.tag_set` (repositories with mutable
    /// tags), if any, with the manifest digest the tag was set to.
    pub async fn oci_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<(PackageId, crate::digest::Sha256)>> {
        let mut conn = self.catalog.read().await?;
        catalog::views_oci_tag(&mut conn, repository, tag).await
    }

    /// Every tag of `repository` set by `v1.oci.tag_set`, sorted, with the package it names.
    pub async fn oci_tags(&self, repository: &str) -> Result<Vec<(String, PackageId)>> {
        let mut conn = self.catalog.read().await?;
        catalog::views_oci_tags(&mut conn, repository).await
    }
}
