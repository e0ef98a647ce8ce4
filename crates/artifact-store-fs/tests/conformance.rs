//! The shared blob-backend conformance suite (`artifact_core::testing`) against the fs backend.

use std::sync::Arc;

use artifact_core::blob::BlobStore;
use artifact_core::testing::{ConformanceOptions, run_all};
use artifact_store_fs::FsBlobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_backend_passes_the_blob_conformance_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fs = FsBlobStore::open(dir.path().join("blobs")).expect("open fs store");
    let store: Arc<dyn BlobStore> = Arc::new(fs.clone());
    // The fs backend has no part size; the 5 MiB thresholds still exercise its chunked writer
    // thread and its 8 MiB writeback window.
    run_all(store, ConformanceOptions::default().with_part_size(5 << 20)).await;
    // Aborted and dropped writes left no temp file behind.
    assert_eq!(
        fs.temp_files().expect("temp files"),
        Vec::<std::path::PathBuf>::new()
    );
}
