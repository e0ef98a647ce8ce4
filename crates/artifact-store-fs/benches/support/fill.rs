//! Bulk fill shared by the catalog benchmarks (`sweep`, `catalogs`, `gc`), included with
//! `#[path]`: appends the events `create_package` would, inside the caller's transaction,
//! without writing blobs, so a store of 100,000s of packages fills in seconds.

use std::collections::BTreeMap;

use artifact_core::catalog::WriteTx;
use artifact_core::cbor::Value;
use artifact_core::event::types;
use artifact_core::manifest::Manifest;
use artifact_core::time::Timestamp;

/// Appends `v1.package.created` for `manifest` and its `v1.retention.default_applied` (class
/// `ephemeral`, period `7d`) with the given expiry, both at `at`.
pub async fn append_ephemeral_package(
    tx: &mut WriteTx,
    manifest: &Manifest,
    at: Timestamp,
    expires_at: Timestamp,
) {
    let package_id = manifest.package_id().expect("id");
    let data = Value::Map(BTreeMap::from([(
        "manifest".to_owned(),
        manifest.to_value(),
    )]));
    tx.append(types::PACKAGE_CREATED, Some(package_id), "bench", at, data)
        .await
        .expect("append");
    let data = Value::Map(BTreeMap::from([
        (
            "retention_class".to_owned(),
            Value::Text("ephemeral".into()),
        ),
        ("period".to_owned(), Value::Text("7d".into())),
        ("expires_at".to_owned(), Value::Text(expires_at.to_string())),
    ]));
    tx.append(
        types::RETENTION_DEFAULT_APPLIED,
        Some(package_id),
        "bench",
        at,
        data,
    )
    .await
    .expect("append");
}
