//! Projection: how each event changes the materialised views (the only writer of view rows).

use sqlx::AnyConnection;

use crate::cbor::Value;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::event::types::{EventData, IntegrityChecked, IntegrityFailed};
use crate::manifest::Manifest;
use crate::time::Timestamp;

/// Every view table, in the order `rebuild_views` clears them.
pub(crate) const VIEW_TABLES: [&str; 8] = [
    "blobs",
    "packages",
    "package_files",
    "retention_state",
    "holds",
    "retention_classes",
    "auth_tokens",
    "oci_tags",
];

fn package_id_of(event: &Event) -> Result<String> {
    event
        .package_id
        .map(|p| p.to_string())
        .ok_or_else(|| Error::Integrity {
            seq: event.seq,
            reason: format!("`{}` event has no package_id", event.event_type),
        })
}

/// Applies one event to the views. The live path calls it right after inserting the event in
/// the same transaction; `rebuild_views` calls it for every event in seq order. Unknown event
/// types change nothing.
pub(crate) async fn apply_event(conn: &mut AnyConnection, event: &Event) -> Result<()> {
    apply(conn, event, &event.typed()?).await
}

/// [`apply_event`] with the event's payload already decoded (the append path has it).
pub(crate) async fn apply(conn: &mut AnyConnection, event: &Event, data: &EventData) -> Result<()> {
    let seq = event.seq as i64;
    let at = event.at.unix_millis();
    match data {
        EventData::BlobStored(p) => {
            sqlx::query(
                "INSERT INTO blobs (blake3, sha256, size, tier, stored_seq, stored_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(p.blake3.to_string())
            .bind(p.sha256.to_string())
            .bind(p.size as i64)
            .bind(p.tier.as_str())
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        EventData::BlobDeletionStarted(p) => {
            for blake3 in &p.blobs {
                sqlx::query("UPDATE blobs SET deleting_seq = $1 WHERE blake3 = $2")
                    .bind(seq)
                    .bind(blake3.to_string())
                    .execute(&mut *conn)
                    .await?;
            }
        }
        EventData::BlobDeleted(p) => {
            sqlx::query("DELETE FROM blobs WHERE blake3 = $1")
                .bind(p.blake3.to_string())
                .execute(&mut *conn)
                .await?;
        }
        EventData::PackageCreated(p) => {
            let package_id = package_id_of(event)?;
            let manifest = &p.manifest;
            let manifest_size = crate::cbor::encode(&manifest.to_value())?.len() as i64;
            let labels = Value::Map(
                manifest
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::Text(v.clone())))
                    .collect(),
            );
            sqlx::query(
                "INSERT INTO packages (package_id, name, version, retention_class, created_seq, created_at, actor, file_count, total_size, manifest_size, labels) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(package_id.as_str())
            .bind(manifest.name.as_str())
            .bind(manifest.version.as_str())
            .bind(manifest.retention_class.as_str())
            .bind(seq)
            .bind(at)
            .bind(event.actor.as_str())
            .bind(manifest.files.len() as i64)
            .bind(manifest.files.iter().map(|f| f.size as i64).sum::<i64>())
            .bind(manifest_size)
            .bind(crate::jcs::to_jcs(&labels))
            .execute(&mut *conn)
            .await?;
            insert_files(conn, &package_id, manifest).await?;
        }
        EventData::PackagePurged(_) => {
            sqlx::query("UPDATE packages SET purged_seq = $1 WHERE package_id = $2")
                .bind(seq)
                .bind(package_id_of(event)?)
                .execute(&mut *conn)
                .await?;
        }
        EventData::RetentionDefaultApplied(p) => {
            let expires_at = p.expires_at.map(Timestamp::unix_millis);
            sqlx::query(
                "INSERT INTO retention_state (package_id, retention_class, default_period, default_expires_at, current_expires_at, active_holds, eligible_for_deletion, eligible_seq, updated_seq) \
                 VALUES ($1, $2, $3, $4, $5, 0, 0, NULL, $6)",
            )
            .bind(package_id_of(event)?)
            .bind(p.retention_class.as_str())
            .bind(p.period.to_string())
            .bind(expires_at)
            .bind(expires_at)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        }
        EventData::RetentionExtended(p) => {
            sqlx::query(
                "UPDATE retention_state SET current_expires_at = $1, eligible_for_deletion = 0, eligible_seq = NULL, updated_seq = $2 WHERE package_id = $3",
            )
            .bind(p.new_expires_at.unix_millis())
            .bind(seq)
            .bind(package_id_of(event)?)
            .execute(&mut *conn)
            .await?;
        }
        EventData::RetentionHoldApplied(p) => {
            let package_id = package_id_of(event)?;
            sqlx::query(
                "INSERT INTO holds (hold_id, package_id, reason, actor, applied_seq, applied_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(p.hold_id.as_str())
            .bind(package_id.as_str())
            .bind(p.reason.as_str())
            .bind(event.actor.as_str())
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE retention_state SET active_holds = active_holds + 1, eligible_for_deletion = 0, eligible_seq = NULL, updated_seq = $1 WHERE package_id = $2",
            )
            .bind(seq)
            .bind(package_id.as_str())
            .execute(&mut *conn)
            .await?;
        }
        EventData::RetentionHoldReleased(p) => {
            let package_id = package_id_of(event)?;
            sqlx::query(
                "UPDATE holds SET released_seq = $1, released_at = $2, released_by = $3, release_reason = $4 WHERE hold_id = $5 AND package_id = $6",
            )
            .bind(seq)
            .bind(at)
            .bind(event.actor.as_str())
            .bind(p.reason.as_str())
            .bind(p.hold_id.as_str())
            .bind(package_id.as_str())
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE retention_state SET active_holds = active_holds - 1, updated_seq = $1 WHERE package_id = $2",
            )
            .bind(seq)
            .bind(package_id.as_str())
            .execute(&mut *conn)
            .await?;
        }
        EventData::RetentionDeletionEligible(_) => {
            sqlx::query(
                "UPDATE retention_state SET eligible_for_deletion = 1, eligible_seq = $1, updated_seq = $1 WHERE package_id = $2",
            )
            .bind(seq)
            .bind(package_id_of(event)?)
            .execute(&mut *conn)
            .await?;
        }
        EventData::IntegrityChecked(IntegrityChecked { blake3, .. })
        | EventData::IntegrityFailed(IntegrityFailed { blake3, .. }) => {
            sqlx::query(
                "UPDATE blobs SET last_check_seq = $1, last_check_ok = $2 WHERE blake3 = $3",
            )
            .bind(seq)
            .bind(i64::from(matches!(data, EventData::IntegrityChecked(_))))
            .bind(blake3.to_string())
            .execute(&mut *conn)
            .await?;
        }
        EventData::BlobLockExtended(p) => {
            sqlx::query(
                "UPDATE blobs SET legal_hold = CASE WHEN lock_version = $1 THEN legal_hold ELSE 0 END, \
                 lock_version = $1, lock_mode = $2, lock_until = $3 WHERE blake3 = $4",
            )
            .bind(p.version_id.as_str())
            .bind(p.mode.as_str())
            .bind(p.retain_until.unix_millis())
            .bind(p.blake3.to_string())
            .execute(&mut *conn)
            .await?;
        }
        EventData::BlobLegalHoldSet(p) => {
            // A legal hold on another version than the recorded one: that version's
            // retention is not known yet (its own `lock_extended` follows).
            sqlx::query(
                "UPDATE blobs SET lock_mode = CASE WHEN lock_version = $1 THEN lock_mode ELSE NULL END, \
                 lock_until = CASE WHEN lock_version = $1 THEN lock_until ELSE NULL END, \
                 lock_version = $1, legal_hold = $2 WHERE blake3 = $3",
            )
                .bind(p.version_id.as_str())
                .bind(i64::from(p.on))
                .bind(p.blake3.to_string())
                .execute(&mut *conn)
                .await?;
        }
        EventData::OciTagSet(p) => {
            // A tag names one manifest at a time: the latest event wins.
            sqlx::query("DELETE FROM oci_tags WHERE repository = $1 AND tag = $2")
                .bind(p.repository.as_str())
                .bind(p.tag.as_str())
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO oci_tags (repository, tag, package_id, manifest_sha256, set_seq) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(p.repository.as_str())
            .bind(p.tag.as_str())
            .bind(package_id_of(event)?)
            .bind(p.manifest_sha256.to_string())
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        }
        EventData::AuthTokenCreated(p) => {
            let roles = Value::Array(p.roles.iter().map(|r| Value::Text(r.clone())).collect());
            sqlx::query(
                "INSERT INTO auth_tokens (token_sha256, principal, roles, created_seq, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(p.token_sha256.to_string())
            .bind(p.principal.as_str())
            .bind(crate::jcs::to_jcs(&roles))
            .bind(seq)
            .bind(p.expires_at.map(Timestamp::unix_millis))
            .execute(&mut *conn)
            .await?;
        }
        EventData::AuthTokenRevoked(p) => {
            sqlx::query("UPDATE auth_tokens SET revoked_seq = $1 WHERE token_sha256 = $2")
                .bind(seq)
                .bind(p.token_sha256.to_string())
                .execute(&mut *conn)
                .await?;
        }
        EventData::Unknown { .. } => {}
    }
    Ok(())
}

/// Rows of `package_files` per INSERT: 6 bound values each, well under SQLite's limit of
/// 32,766 host parameters (and PostgreSQL's 65,535).
const FILE_ROWS_PER_INSERT: usize = 500;

/// Inserts a package's file rows, many per statement.
async fn insert_files(
    conn: &mut AnyConnection,
    package_id: &str,
    manifest: &Manifest,
) -> Result<()> {
    for chunk in manifest.files.chunks(FILE_ROWS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO package_files (package_id, path, blake3, sha256, size, media_type) VALUES ",
        );
        for i in 0..chunk.len() {
            let n = i * 6;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6
            ));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for file in chunk {
            query = query
                .bind(package_id)
                .bind(file.path.as_str())
                .bind(file.blake3.to_string())
                .bind(file.sha256.to_string())
                .bind(file.size as i64)
                .bind(file.media_type.as_deref());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sqlx::Row as _;

    use super::*;
    use crate::catalog::{Catalog, CatalogOptions};
    use crate::digest::{Blake3, Sha256};
    use crate::event::types::{Extra, PackageCreated};
    use crate::manifest::FileEntry;

    #[tokio::test]
    async fn file_rows_of_a_large_package_are_inserted_in_batches_and_match_a_replay() {
        let dir = tempfile::tempdir().unwrap();
        let options = CatalogOptions {
            create_if_missing: true,
            ..CatalogOptions::new(format!("sqlite://{}", dir.path().join("c.db").display()))
        };
        let catalog = Catalog::open(&options).await.unwrap();
        let classes = crate::config::RetentionClasses::default();
        catalog.seed_classes(&classes).await.unwrap();
        // Two full batches and a partial one.
        let count = 2 * FILE_ROWS_PER_INSERT + 7;
        let files = (0..count)
            .map(|i| {
                let content = format!("file {i}");
                FileEntry {
                    path: format!("f{i:05}"),
                    size: content.len() as u64,
                    blake3: Blake3::of(content.as_bytes()),
                    sha256: Sha256::of(content.as_bytes()),
                    media_type: (i % 2 == 0).then(|| "text/plain".to_owned()),
                }
            })
            .collect();
        let manifest = Manifest {
            name: "big".into(),
            version: "1".into(),
            retention_class: "ephemeral".into(),
            files,
            labels: BTreeMap::new(),
        };
        manifest.validate().unwrap();
        let package_id = manifest.package_id().unwrap();
        let mut tx = catalog.write().await.unwrap();
        let created = PackageCreated {
            manifest: manifest.clone(),
            extra: Extra::new(),
        };
        let at = Timestamp::from_unix_millis(1000).unwrap();
        tx.append(Some(package_id), "ci", at, created)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut conn = catalog.read().await.unwrap();
        let rows = sqlx::query(
            "SELECT path, blake3, sha256, size, media_type FROM package_files ORDER BY path",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        assert_eq!(rows.len(), count);
        for (row, file) in rows.iter().zip(&manifest.files) {
            assert_eq!(row.get::<String, _>("path"), file.path);
            assert_eq!(row.get::<String, _>("blake3"), file.blake3.to_string());
            assert_eq!(row.get::<String, _>("sha256"), file.sha256.to_string());
            assert_eq!(row.get::<i64, _>("size"), file.size as i64);
            assert_eq!(row.get::<Option<String>, _>("media_type"), file.media_type);
        }
        drop(conn);
        assert_eq!(
            catalog.views_match_replay(&classes).await.unwrap(),
            Vec::<String>::new()
        );
    }
}
