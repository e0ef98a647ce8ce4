//! Projection: how each event changes the materialised views (the only writer of view rows).

use sqlx::AnyConnection;

use super::read::integrity;
use crate::cbor::Value;
use crate::error::{Error, Result};
use crate::event::{Event, types};
use crate::manifest::Manifest;
use crate::time::Timestamp;

/// Every view table, in the order `rebuild_views` clears them.
pub(crate) const VIEW_TABLES: [&str; 7] = [
    "blobs",
    "packages",
    "package_files",
    "retention_state",
    "holds",
    "retention_classes",
    "auth_tokens",
];

fn data_text<'a>(event: &'a Event, key: &str) -> Result<&'a str> {
    event.data_text(key).ok_or_else(|| Error::Integrity {
        seq: event.seq,
        reason: format!(
            "`{}` event has no text `{key}` in its data",
            event.event_type
        ),
    })
}

fn data_ts(event: &Event, key: &str) -> Result<Option<i64>> {
    match &event.data {
        Value::Map(map) => match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Text(text)) => text
                .parse::<Timestamp>()
                .map(|t| Some(t.unix_millis()))
                .map_err(|e| Error::Integrity {
                    seq: event.seq,
                    reason: format!("`{key}`: {e}"),
                }),
            Some(_) => Err(Error::Integrity {
                seq: event.seq,
                reason: format!("`{key}` must be a timestamp or null"),
            }),
        },
        _ => Err(Error::Integrity {
            seq: event.seq,
            reason: "data must be a map".to_owned(),
        }),
    }
}

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
pub async fn apply_event(conn: &mut AnyConnection, event: &Event) -> Result<()> {
    let seq = event.seq as i64;
    let at = event.at.unix_millis();
    match event.event_type.as_str() {
        types::BLOB_STORED => {
            let size = match &event.data {
                Value::Map(map) => map.get("size").and_then(Value::as_i64),
                _ => None,
            }
            .ok_or_else(|| Error::Integrity {
                seq: event.seq,
                reason: "blob.stored has no integer size".to_owned(),
            })?;
            sqlx::query(
                "INSERT INTO blobs (blake3, sha256, size, tier, stored_seq, stored_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(data_text(event, "blake3")?)
            .bind(data_text(event, "sha256")?)
            .bind(size)
            .bind(data_text(event, "tier")?)
            .bind(seq)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        types::BLOB_DELETION_STARTED => {
            let blobs = match &event.data {
                Value::Map(map) => map.get("blobs"),
                _ => None,
            };
            let Some(Value::Array(blobs)) = blobs else {
                return Err(integrity(
                    event.seq,
                    "blob.deletion_started has no blobs array",
                ));
            };
            for blob in blobs {
                let blake3 = blob.as_str().ok_or_else(|| {
                    integrity(event.seq, "blob.deletion_started names a non-text blob")
                })?;
                sqlx::query("UPDATE blobs SET deleting_seq = $1 WHERE blake3 = $2")
                    .bind(seq)
                    .bind(blake3)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        types::BLOB_DELETED => {
            sqlx::query("DELETE FROM blobs WHERE blake3 = $1")
                .bind(data_text(event, "blake3")?)
                .execute(&mut *conn)
                .await?;
        }
        types::PACKAGE_CREATED => {
            let package_id = package_id_of(event)?;
            let manifest_value = match &event.data {
                Value::Map(map) => map.get("manifest"),
                _ => None,
            }
            .ok_or_else(|| Error::Integrity {
                seq: event.seq,
                reason: "package.created has no manifest".to_owned(),
            })?;
            let manifest = Manifest::from_value(manifest_value).map_err(|e| Error::Integrity {
                seq: event.seq,
                reason: format!("manifest: {e}"),
            })?;
            let manifest_size = crate::cbor::encode(manifest_value)?.len() as i64;
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
            for file in &manifest.files {
                sqlx::query(
                    "INSERT INTO package_files (package_id, path, blake3, sha256, size, media_type) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(package_id.as_str())
                .bind(file.path.as_str())
                .bind(file.blake3.to_string())
                .bind(file.sha256.to_string())
                .bind(file.size as i64)
                .bind(file.media_type.as_deref())
                .execute(&mut *conn)
                .await?;
            }
        }
        types::PACKAGE_PURGED => {
            sqlx::query("UPDATE packages SET purged_seq = $1 WHERE package_id = $2")
                .bind(seq)
                .bind(package_id_of(event)?)
                .execute(&mut *conn)
                .await?;
        }
        types::RETENTION_DEFAULT_APPLIED => {
            let expires_at = data_ts(event, "expires_at")?;
            sqlx::query(
                "INSERT INTO retention_state (package_id, retention_class, default_period, default_expires_at, current_expires_at, active_holds, eligible_for_deletion, eligible_seq, updated_seq) \
                 VALUES ($1, $2, $3, $4, $5, 0, 0, NULL, $6)",
            )
            .bind(package_id_of(event)?)
            .bind(data_text(event, "retention_class")?)
            .bind(data_text(event, "period")?)
            .bind(expires_at)
            .bind(expires_at)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        }
        types::RETENTION_EXTENDED => {
            sqlx::query(
                "UPDATE retention_state SET current_expires_at = $1, eligible_for_deletion = 0, eligible_seq = NULL, updated_seq = $2 WHERE package_id = $3",
            )
            .bind(data_ts(event, "new_expires_at")?)
            .bind(seq)
            .bind(package_id_of(event)?)
            .execute(&mut *conn)
            .await?;
        }
        types::RETENTION_HOLD_APPLIED => {
            let package_id = package_id_of(event)?;
            sqlx::query(
                "INSERT INTO holds (hold_id, package_id, reason, actor, applied_seq, applied_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(data_text(event, "hold_id")?)
            .bind(package_id.as_str())
            .bind(data_text(event, "reason")?)
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
        types::RETENTION_HOLD_RELEASED => {
            let package_id = package_id_of(event)?;
            sqlx::query(
                "UPDATE holds SET released_seq = $1, released_at = $2, released_by = $3, release_reason = $4 WHERE hold_id = $5 AND package_id = $6",
            )
            .bind(seq)
            .bind(at)
            .bind(event.actor.as_str())
            .bind(data_text(event, "reason")?)
            .bind(data_text(event, "hold_id")?)
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
        types::RETENTION_DELETION_ELIGIBLE => {
            sqlx::query(
                "UPDATE retention_state SET eligible_for_deletion = 1, eligible_seq = $1, updated_seq = $1 WHERE package_id = $2",
            )
            .bind(seq)
            .bind(package_id_of(event)?)
            .execute(&mut *conn)
            .await?;
        }
        types::INTEGRITY_CHECKED | types::INTEGRITY_FAILED => {
            sqlx::query(
                "UPDATE blobs SET last_check_seq = $1, last_check_ok = $2 WHERE blake3 = $3",
            )
            .bind(seq)
            .bind(i64::from(event.event_type == types::INTEGRITY_CHECKED))
            .bind(data_text(event, "blake3")?)
            .execute(&mut *conn)
            .await?;
        }
        types::AUTH_TOKEN_CREATED => {
            let roles = match &event.data {
                Value::Map(map) => map.get("roles").cloned(),
                _ => None,
            }
            .ok_or_else(|| integrity(event.seq, "token_created has no roles"))?;
            sqlx::query(
                "INSERT INTO auth_tokens (token_sha256, principal, roles, created_seq, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(data_text(event, "token_sha256")?)
            .bind(data_text(event, "principal")?)
            .bind(crate::jcs::to_jcs(&roles))
            .bind(seq)
            .bind(data_ts(event, "expires_at")?)
            .execute(&mut *conn)
            .await?;
        }
        types::AUTH_TOKEN_REVOKED => {
            sqlx::query("UPDATE auth_tokens SET revoked_seq = $1 WHERE token_sha256 = $2")
                .bind(seq)
                .bind(data_text(event, "token_sha256")?)
                .execute(&mut *conn)
                .await?;
        }
        _ => {}
    }
    Ok(())
}
