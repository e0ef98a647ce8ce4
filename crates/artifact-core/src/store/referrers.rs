//! Referrers (OCI `subject`, ADR 0016): a package whose manifest names a subject — a
//! signature, an SBOM, an attestation pushed through `/v2/` — is kept at least as long as that
//! subject. Its own expiry still applies; the sweep does not mark it eligible, and GC does not
//! purge it, while the subject is live and retained (not yet expired, or held).

use super::*;

/// The manifest label naming a package's OCI subject: the `sha256:` digest of the subject's
/// `manifest.json`, in a package of the same name.
pub const SUBJECT_LABEL: &str = "oci.subject";
/// The file of an OCI package that holds the manifest's exact bytes.
pub const OCI_MANIFEST_FILE: &str = "manifest.json";

impl ArtifactStore {
    /// Why `package_id`'s subject still keeps it at `now`: the subject's package id and the
    /// reason, when the package's manifest (read back and verified against its id) names a
    /// subject that is a live package of the same name not yet deletable by the log (its
    /// expiry not passed, or held). `None` when it names none, or the subject is gone or
    /// deletable.
    pub(crate) async fn subject_keeps(
        &self,
        conn: &mut sqlx::AnyConnection,
        package_id: &PackageId,
        now: Timestamp,
    ) -> Result<Option<(PackageId, u64, String)>> {
        let (manifest, _) = self.manifest(&PackageRef::Id(*package_id)).await?;
        let Some(subject) = manifest.labels.get(SUBJECT_LABEL) else {
            return Ok(None);
        };
        let Ok(sha256) = subject.parse::<crate::digest::Sha256>() else {
            return Ok(None);
        };
        let Some(subject_id) =
            catalog::views_package_with_file(conn, &manifest.name, OCI_MANIFEST_FILE, &sha256)
                .await?
        else {
            return Ok(None);
        };
        if subject_id == *package_id {
            return Ok(None);
        }
        let states = crate::log_facts::fold_states(conn, &[subject_id]).await?;
        let Some(state) = states.get(&subject_id) else {
            return Ok(None);
        };
        if state.purged_seq.is_some() {
            return Ok(None);
        }
        let why = if state.active_holds() > 0 {
            format!("its subject {subject_id} ({subject}) is held")
        } else {
            match state.current_expires_at {
                None => format!("its subject {subject_id} ({subject}) is retained permanently"),
                Some(until) if until > now => {
                    format!("its subject {subject_id} ({subject}) is retained until {until}")
                }
                Some(_) => return Ok(None),
            }
        };
        Ok(Some((subject_id, state.updated_seq, why)))
    }
}
