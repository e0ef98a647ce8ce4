//! A first end-to-end check of the embedded store.

#[tokio::test]
async fn embedded_store_opens_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = artifact_store_fs::open_embedded(dir.path()).await.unwrap();
    assert_eq!(store.head().await.unwrap().seq, 0);
}

/// A PostgreSQL catalog that cannot be opened fails with the server's reason ("database … does
/// not exist"), not with the pool's "pool timed out" after its 30 s acquire timeout, and the
/// message never shows the password.
#[tokio::test]
async fn postgres_open_errors_name_the_cause_without_the_password() {
    use artifact_core::catalog::{Catalog, CatalogOptions};
    let server = artifact_core::testing_postgres::server_url();
    let missing = artifact_core::testing_postgres::with_database(server, "no_such_database");
    let with_password = missing.replacen("postgres@", "postgres:s3cret@", 1);
    let options = CatalogOptions {
        max_connections: 2,
        ..CatalogOptions::new(with_password.clone())
    };
    match Catalog::open(&options).await {
        Err(artifact_core::Error::Config(message)) => {
            assert!(message.contains("no_such_database"), "{message}");
            assert!(message.contains("does not exist"), "{message}");
            if with_password.contains("s3cret") {
                assert!(!message.contains("s3cret"), "{message}");
                assert!(message.contains(":***@"), "{message}");
            }
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}
