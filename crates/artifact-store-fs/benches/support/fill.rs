//! Bulk fill shared by the catalog benchmarks (`sweep`, `catalogs`, `gc`), included with
//! `#[path]`: appends the events `create_package` would, inside the caller's transaction,
//! without writing blobs, so a store of 100,000s of packages fills in seconds.

use artifact_core::catalog::WriteTx;
use artifact_core::event::types::{Extra, PackageCreated, RetentionDefaultApplied};
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
    let created = PackageCreated {
        manifest: manifest.clone(),
        extra: Extra::new(),
    };
    tx.append(Some(package_id), "bench", at, created)
        .await
        .expect("append");
    let default_applied = RetentionDefaultApplied {
        retention_class: "ephemeral".into(),
        period: "7d".parse().expect("period"),
        expires_at: Some(expires_at),
        extra: Extra::new(),
    };
    tx.append(Some(package_id), "bench", at, default_applied)
        .await
        .expect("append");
}

#[allow(dead_code)] // `gc` fills its own way
/// Fills `store` with `total` empty `ephemeral` packages created at `at`, `batch` to a
/// transaction; package `i` expires at `expires_at(i)`.
pub async fn fill_packages(
    store: &artifact_core::ArtifactStore,
    total: usize,
    batch: usize,
    at: Timestamp,
    expires_at: impl Fn(usize) -> Timestamp,
) {
    let mut created = 0;
    while created < total {
        let mut tx = store.catalog().write().await.expect("write");
        for i in created..(created + batch).min(total) {
            let manifest = artifact_core::testing::empty_manifest(i);
            append_ephemeral_package(&mut tx, &manifest, at, expires_at(i)).await;
        }
        tx.commit().await.expect("commit");
        created = (created + batch).min(total);
    }
}
