//! fsck: the store's consistency checks (read-only).

use super::*;

impl ArtifactStore {
    /// Checks the store's consistency (see the module docs); read-only.
    pub async fn fsck(&self) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let checked = self.fsck_live_references(&mut report).await?;
        self.fsck_recorded_blobs(&checked, &mut report).await?;
        self.fsck_log(&mut report).await?;
        self.fsck_backend(&mut report).await?;
        self.fsck_locks(&mut report).await?;
        Ok(report)
    }

    /// Live packages: the manifest blob and every file's blob present with the right size.
    /// Returns the keys checked (not checked again as recorded blobs).
    async fn fsck_live_references(&self, report: &mut FsckReport) -> Result<BTreeSet<Blake3>> {
        let mut checked = BTreeSet::new();
        let mut after = String::new();
        loop {
            let page = {
                let mut conn = self.catalog().read().await?;
                catalog::views_live_packages_page(&mut conn, &after, 1000).await?
            };
            let Some((last, _)) = page.last() else {
                break;
            };
            after = last.to_string();
            for (package_id, manifest_size) in page {
                report.packages += 1;
                checked.insert(package_id);
                self.check_present(
                    &package_id,
                    manifest_size,
                    format!("manifest of {package_id}"),
                    report,
                )
                .await?;
            }
        }
        let mut cursor = (String::new(), String::new());
        loop {
            let page = {
                let mut conn = self.catalog().read().await?;
                catalog::views_live_files_page(&mut conn, &cursor, 1000).await?
            };
            let Some((package_id, path, _)) = page.last() else {
                break;
            };
            cursor = (package_id.clone(), path.clone());
            for (package_id, path, info) in page {
                report.files += 1;
                checked.insert(info.blake3);
                self.check_present(
                    &info.blake3,
                    info.size,
                    format!("{path} of {package_id}"),
                    report,
                )
                .await?;
            }
        }
        Ok(checked)
    }

    /// Every recorded blob has its bytes (not only live references), and no blob's latest
    /// integrity check failed.
    async fn fsck_recorded_blobs(
        &self,
        checked: &BTreeSet<Blake3>,
        report: &mut FsckReport,
    ) -> Result<()> {
        let mut after_seq = 0;
        let mut deleting = 0u64;
        loop {
            let page = {
                let mut conn = self.catalog().read().await?;
                catalog::views_blobs_page(&mut conn, after_seq, 5000).await?
            };
            let Some((last, _)) = page.last() else {
                break;
            };
            after_seq = last.stored_seq;
            for (blob, last_check_ok) in page {
                // Every recorded blob (not only live references) must have its bytes: no event
                // may name bytes that are gone (SPEC §6). Re-read the row before reporting, so
                // a GC deleting it meanwhile is not a finding.
                if blob.deleting_seq.is_some() {
                    deleting += 1;
                }
                let found = if checked.contains(&blob.info.blake3) || blob.deleting_seq.is_some() {
                    None
                } else {
                    Some(self.stat_recorded_version(&blob.info.blake3).await?)
                };
                match found {
                    None => {}
                    Some(Some(meta)) if meta.size == blob.info.size => {}
                    Some(found) => {
                        let mut conn = self.catalog().read().await?;
                        let still_recorded = catalog::views_blob(
                            &mut conn,
                            &crate::digest::AnyDigest::Blake3(blob.info.blake3),
                        )
                        .await?
                        .is_some_and(|b| b.deleting_seq.is_none());
                        if still_recorded {
                            report.findings.push(match found {
                                Some(meta) => Finding {
                                    kind: "wrong-size",
                                    subject: blob.info.blake3.to_string(),
                                    detail: format!(
                                        "recorded blob holds {} bytes, expected {}",
                                        meta.size, blob.info.size
                                    ),
                                },
                                None => Finding {
                                    kind: "missing-blob",
                                    subject: blob.info.blake3.to_string(),
                                    detail: format!(
                                        "recorded blob is missing from the `{}` backend",
                                        self.blob_store().name()
                                    ),
                                },
                            });
                        }
                    }
                }
                if last_check_ok == Some(false) {
                    report.findings.push(Finding {
                        kind: "failed-check",
                        subject: blob.info.blake3.to_string(),
                        detail: "the latest integrity check of this blob failed; restore it"
                            .to_owned(),
                    });
                }
            }
        }
        if deleting > 0 {
            report.notes.push(format!(
                "{deleting} blob(s) are being deleted by garbage collection (v1.blob.deletion_started); the running gc, or the next open of the store, records their deletion"
            ));
        }
        Ok(())
    }

    /// The views equal a replay, the chain is intact, the Merkle tree agrees with the stored
    /// event bytes, and no event breaks the store's rules.
    async fn fsck_log(&self, report: &mut FsckReport) -> Result<()> {
        let differing = self.catalog().views_match_replay(self.classes()).await?;
        for table in differing {
            report.findings.push(Finding {
                kind: "views",
                subject: table,
                detail: "this view differs from a replay of the log; run `artifactstore admin rebuild-views`".to_owned(),
            });
        }
        let audit = self.audit().await?;
        report.head = audit.head;
        if let Some((seq, reason)) = audit.chain_error {
            report.findings.push(Finding {
                kind: "chain",
                subject: format!("seq {seq}"),
                detail: reason,
            });
        }
        // The Merkle tree (ADR 0011) agrees with the stored event bytes.
        match self.verify_tree().await {
            Ok(_) => {}
            Err(Error::Integrity { seq, reason }) => report.findings.push(Finding {
                kind: "tree",
                subject: format!("seq {seq}"),
                detail: reason,
            }),
            Err(other) => return Err(other),
        }
        for violation in audit.violations {
            report.findings.push(Finding {
                kind: "rule",
                subject: format!("seq {}", violation.seq),
                detail: format!("{}: {}", violation.rule, violation.detail),
            });
        }
        Ok(())
    }

    /// The backend: no orphaned staging file; bytes no event names are a note.
    async fn fsck_backend(&self, report: &mut FsckReport) -> Result<()> {
        for path in self.blob_store().orphaned_staging().await? {
            report.findings.push(Finding {
                kind: "orphaned-staging",
                subject: path,
                detail: "a staging file no writer owns (reclaimed when the store is next opened)"
                    .to_owned(),
            });
        }
        let recorded = self.recorded_keys().await?;
        let unrecorded = self
            .blob_store()
            .list()
            .await?
            .into_iter()
            .filter(|k| !recorded.contains(k))
            .count();
        if unrecorded > 0 {
            report.notes.push(format!(
                "{unrecorded} stored blob(s) are named by no event (interrupted writes or uploads in flight); gc deletes them after its grace period"
            ));
        }
        Ok(())
    }

    pub(super) async fn check_present(
        &self,
        key: &Blake3,
        size: u64,
        subject: String,
        report: &mut FsckReport,
    ) -> Result<()> {
        match self.stat_recorded_version(key).await? {
            Some(meta) if meta.size == size => {}
            Some(meta) => report.findings.push(Finding {
                kind: "wrong-size",
                subject,
                detail: format!("blob {key} holds {} bytes, expected {size}", meta.size),
            }),
            None => report.findings.push(Finding {
                kind: "missing-blob",
                subject,
                detail: format!(
                    "blob {key} is missing from the `{}` backend",
                    self.blob_store().name()
                ),
            }),
        }
        Ok(())
    }
}
