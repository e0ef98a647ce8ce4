//! A read-only store (`EmbeddedOptions::with_read_only`, `CatalogOptions::read_only`) reads
//! everything and writes nothing, on SQLite and PostgreSQL alike.

use std::sync::Arc;

use artifact_core::digest::AnyDigest;
use artifact_core::time::ymd;
use artifact_core::{Error, PackageRef};
use artifact_store_fs::EmbeddedOptions;

use crate::support::{Backend, Fixture, backend_tests, head_seq, push};

backend_tests! {
    #[tokio::test]
    read_only_store_reads_and_refuses_every_write,
}

async fn read_only_store_reads_and_refuses_every_write(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let created = push(
        &fixture.store,
        "ro",
        "1",
        "build-cache",
        &[("a.txt", b"alpha")],
    )
    .await;
    let head = head_seq(&fixture.store).await;
    let store = EmbeddedOptions::new(fixture.data_dir())
        .with_create(false)
        .with_read_only(true)
        .with_config(fixture.config.clone())
        .with_clock(Arc::new(fixture.clock.clone()))
        .open()
        .await
        .expect("open read-only");
    assert!(store.catalog().is_read_only());

    let package = PackageRef::Id(created.package_id);
    assert_eq!(store.package(&package).await.unwrap().name, "ro");
    assert_eq!(store.audit_verify().await.unwrap().seq, head);
    let (file, _) = store.read_file(&package, "a.txt", None).await.unwrap();
    assert!(
        store
            .read_blob(&AnyDigest::Blake3(file.blake3), None)
            .await
            .is_ok()
    );

    let refused = store.hold("ci", &package, "audit").await.unwrap_err();
    assert!(matches!(refused, Error::ReadOnly(_)), "{refused:?}");
    assert!(refused.to_string().contains("read-only"), "{refused}");
    assert!(matches!(
        store.sweep("ci", None).await.unwrap_err(),
        Error::ReadOnly(_)
    ));
    assert_eq!(head_seq(&fixture.store).await, head, "nothing was recorded");
}
