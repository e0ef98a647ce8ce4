//! A first end-to-end check of the embedded store.

#[tokio::test]
async fn embedded_store_opens_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = artifact_store_fs::open_embedded(dir.path()).await.unwrap();
    assert_eq!(store.head().await.unwrap().seq, 0);
}
