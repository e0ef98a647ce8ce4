//! The in-transaction Merkle tree appender (ADR 0011) against the tree recomputed from the bytes, over
//! many appends per transaction (crossing the 200-node flush), rollbacks, and a replica with
//! `merkle_tree = false` appending in between.
use std::path::Path;
use std::sync::Arc;

use artifact_core::blob::Tier;
use artifact_core::digest::BlobInfo;
use artifact_core::event::types::BlobStored;
use artifact_core::time::ymd;
use artifact_core::tlog::LogSigner;
use artifact_core::{ArtifactStore, StoreOptions};
use artifact_store_fs::FsBlobStore;

async fn open(dir: &Path, merkle_tree: bool) -> ArtifactStore {
    let blobs = FsBlobStore::open(dir.join("blobs")).expect("blobs");
    let mut options = StoreOptions::new(
        format!("sqlite://{}?mode=rwc", dir.join("catalog.db").display()),
        Arc::new(blobs),
    );
    options.catalog.merkle_tree = merkle_tree;
    options.catalog.create_if_missing = true;
    ArtifactStore::open(options).await.expect("open")
}

async fn fill(store: &ArtifactStore, n: usize, tag: &str, commit: bool) {
    let mut tx = store.catalog().write().await.expect("write");
    for i in 0..n {
        let info = BlobInfo::of(format!("{tag} {i}").as_bytes());
        let data = BlobStored::new(&info, Tier::Hot);
        tx.append(None, "tree-test", ymd(2026, 1, 1), data)
            .await
            .expect("append");
    }
    if commit {
        tx.commit().await.expect("commit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_kept_on_append_matches_a_replay_across_batches_rollbacks_and_a_replica_without_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let on = open(dir.path(), true).await;
    let off = open(dir.path(), false).await;
    let signer = LogSigner::from_seed("tree-test", [1; 32]).unwrap();
    let plan: &[(bool, usize, bool)] = &[
        (true, 1, true),
        (true, 2, true),
        (true, 3, false),
        (true, 7, true),
        (false, 5, true),
        (true, 150, true),
        (true, 5, false),
        (false, 1, true),
        (true, 450, true),
        (false, 33, true),
        (true, 1, true),
        (true, 257, true),
    ];
    for (k, &(use_on, n, commit)) in plan.iter().enumerate() {
        let store = if use_on { &on } else { &off };
        fill(store, n, &format!("step {k}"), commit).await;
        if use_on && commit {
            on.verify_tree()
                .await
                .unwrap_or_else(|e| panic!("step {k}: {e}"));
            let cp = on.checkpoint(&signer).await.expect("checkpoint");
            let replayed = on
                .catalog()
                .replay_roots(&[cp.tree_size])
                .await
                .expect("replay");
            assert!(
                replayed
                    .roots
                    .iter()
                    .any(|(s, r)| *s == cp.tree_size && *r == cp.root_hash),
                "step {k}: root differs from replay"
            );
        }
    }
}
