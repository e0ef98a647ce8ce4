//! The verifiable log (issue 12, ADR 0011) on real catalogs: the Merkle tree kept with each
//! append, signed checkpoints, proofs and receipts, and what they catch that the hash chain
//! alone does not (a chain rewritten consistently, triggers dropped).

use crate::support::assert_views_match_replay;
use artifact_core::raw_sql;
use std::collections::BTreeSet;

use artifact_core::Error;
use artifact_core::digest::Blake3;
use artifact_core::event::Event;
use artifact_core::time::ymd;
use artifact_core::tlog::{self, LogSigner, LogVerifier, Receipt};
use sha2::{Digest as _, Sha256};
use sqlx::AnyPool;

use crate::support::{Backend, Fixture, backend_tests, head_seq, push};

backend_tests! {
    #[tokio::test]
    checkpoints_agree_with_an_independent_root_of_the_stored_event_bytes,
    #[tokio::test]
    every_event_has_a_verifying_receipt_and_checkpoints_are_consistent,
    #[tokio::test]
    a_checkpoint_changes_no_event_and_is_made_only_when_the_log_grew,
    #[tokio::test]
    checkpoints_table_refuses_update_and_delete,
    #[tokio::test]
    a_consistently_rewritten_chain_fails_against_a_saved_checkpoint,
    #[tokio::test]
    a_receipt_verifies_offline_after_the_store_is_deleted,
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    replicas_never_sign_two_roots_for_one_size,
    #[tokio::test]
    the_tree_catches_up_over_events_appended_before_it_existed,
    #[tokio::test]
    verify_tree_names_a_damaged_node_and_rebuild_repairs_it,
    #[tokio::test]
    bad_proof_requests_change_nothing,
}

// ----- an independent verifier: RFC 6962 §2.1 MTH, recursively, with sha2 directly ----------

fn reference_root(leaves: &[Vec<u8>]) -> [u8; 32] {
    fn sha(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }
    match leaves.len() {
        0 => sha(&[]),
        1 => sha(&[&[0], &leaves[0]]),
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            sha(&[
                &[1],
                &reference_root(&leaves[..k]),
                &reference_root(&leaves[k..]),
            ])
        }
    }
}

/// Every event body, read directly from the catalog.
async fn raw_bodies(pool: &AnyPool) -> Vec<Vec<u8>> {
    sqlx::query_scalar("SELECT body FROM events ORDER BY seq")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// The root a checkpoint note states, read from its third line (no library parsing).
fn note_root(note: &str) -> [u8; 32] {
    let line = note.lines().nth(2).expect("a root line");
    tlog::b64_hash(line, "root").unwrap()
}

fn signer(fixture: &Fixture) -> LogSigner {
    artifact_store_fs::log_signer(fixture.data_dir(), &fixture.config, false)
        .expect("the fixture's store was created with a signing key")
}

async fn store_with_history(backend: Backend, packages: usize) -> (Fixture, LogSigner) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    for i in 0..packages {
        let content = format!("content {i}");
        push(
            &fixture.store,
            "app",
            &format!("1.{i}"),
            "ephemeral",
            &[("a.txt", content.as_bytes())],
        )
        .await;
    }
    let signer = signer(&fixture);
    (fixture, signer)
}

async fn checkpoints_agree_with_an_independent_root_of_the_stored_event_bytes(backend: Backend) {
    let (fixture, signer) = store_with_history(backend, 0).await;
    let store = &fixture.store;
    let verifier = signer.verifier();
    for i in 0..6 {
        push_version(store, i).await;
        store.checkpoint(&signer).await.unwrap();
    }
    let pool = fixture.raw_catalog().await;
    let bodies = raw_bodies(&pool).await;
    let checkpoints = store.checkpoints(None, 100).await.unwrap();
    assert_eq!(checkpoints.len(), 6);
    for stored in &checkpoints {
        let size = stored.tree_size as usize;
        let want = reference_root(&bodies[..size]);
        assert_eq!(note_root(&stored.note), want, "size {size}");
        assert_eq!(stored.root_hash, want);
        let opened = verifier.open_checkpoint(&stored.note).unwrap();
        assert_eq!(opened.tree_size, stored.tree_size);
        assert_eq!(opened.origin, signer.name());
    }
    assert_eq!(store.verify_tree().await.unwrap(), bodies.len() as u64);
    // Paging by tree size.
    let first = store.checkpoints(None, 2).await.unwrap();
    let rest = store
        .checkpoints(Some(first[1].tree_size), 100)
        .await
        .unwrap();
    assert_eq!(first.len() + rest.len(), 6);
    assert_eq!(rest[0].tree_size, checkpoints[2].tree_size);
}

async fn every_event_has_a_verifying_receipt_and_checkpoints_are_consistent(backend: Backend) {
    let (fixture, signer) = store_with_history(backend, 0).await;
    let store = &fixture.store;
    let verifier = signer.verifier();
    let mut sizes = Vec::new();
    for i in 0..5 {
        push_version(store, i).await;
        sizes.push(store.checkpoint(&signer).await.unwrap().tree_size);
    }
    let head = head_seq(store).await;
    for &size in &sizes {
        for seq in 1..=size {
            let receipt = store.inclusion_proof(seq, Some(size)).await.unwrap();
            let event = Receipt::from_json(&receipt.to_json())
                .unwrap()
                .verify(&verifier)
                .unwrap();
            assert_eq!(event.seq, seq);
        }
    }
    // Default: the latest checkpoint.
    assert_eq!(
        store.inclusion_proof(1, None).await.unwrap().tree_size,
        head
    );
    for &a in &sizes {
        for &b in sizes.iter().filter(|&&b| b >= a) {
            let proof = store.consistency_proof(a, Some(b)).await.unwrap();
            let root_a = store
                .catalog()
                .checkpoint_at(a)
                .await
                .unwrap()
                .unwrap()
                .root_hash;
            let root_b = store
                .catalog()
                .checkpoint_at(b)
                .await
                .unwrap()
                .unwrap()
                .root_hash;
            tlog::verify_consistency(a, b, &root_a, &root_b, &proof.proof).unwrap();
        }
    }
    let to_latest = store.consistency_proof(sizes[0], None).await.unwrap();
    assert_eq!(to_latest.to_size, head);
}

async fn a_checkpoint_changes_no_event_and_is_made_only_when_the_log_grew(backend: Backend) {
    let (fixture, signer) = store_with_history(backend, 2).await;
    let store = &fixture.store;
    let head = store.head().await.unwrap();
    let first = store.checkpoint(&signer).await.unwrap();
    assert_eq!(first.tree_size, head.seq);
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "a checkpoint is not an event"
    );
    let again = store.checkpoint(&signer).await.unwrap();
    assert_eq!(
        again, first,
        "the log did not grow: the latest is returned, not re-signed"
    );
    assert_eq!(store.checkpoints(None, 10).await.unwrap().len(), 1);
    push(store, "app", "2.0", "ephemeral", &[("b", b"b")]).await;
    let grown = store.checkpoint(&signer).await.unwrap();
    assert!(grown.tree_size > first.tree_size);
    assert_eq!(store.latest_checkpoint().await.unwrap(), Some(grown));
    // The tree tables are not views and do not disturb them.
    assert_views_match_replay(store).await;
}

async fn checkpoints_table_refuses_update_and_delete(backend: Backend) {
    let (fixture, signer) = store_with_history(backend, 1).await;
    fixture.store.checkpoint(&signer).await.unwrap();
    let pool = fixture.raw_catalog().await;
    for statement in [
        "UPDATE tlog_checkpoints SET note = 'forged'",
        "DELETE FROM tlog_checkpoints",
    ] {
        let error = raw_sql!(&pool, statement).await.unwrap_err();
        assert!(
            error.to_string().contains("checkpoints are append-only"),
            "{statement}: {error}"
        );
    }
    let size = fixture
        .store
        .latest_checkpoint()
        .await
        .unwrap()
        .unwrap()
        .tree_size;
    let error = raw_sql!(&pool, "INSERT INTO tlog_checkpoints (tree_size, root_hash, note, created_at) VALUES ($1, $2, 'forged', 0)", size as i64, vec![0u8; 32])
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("refused")
            || error.to_string().contains("unique")
            || error.to_string().contains("UNIQUE"),
        "{error}"
    );
}

/// What an attacker with write access to the catalog does: drop the guards, change one event,
/// recompute every later `prev` and `hash` so that `audit verify` passes, and rebuild the
/// Merkle tree too.
pub(crate) async fn rewrite_history_consistently(backend: Backend, pool: &AnyPool, target: u64) {
    for trigger in ["events_refuse_update", "events_refuse_delete"] {
        let statement = match backend {
            Backend::Sqlite => format!("DROP TRIGGER {trigger}"),
            Backend::Postgres => format!("DROP TRIGGER {trigger} ON events"),
        };
        raw_sql!(&pool, &statement).await.unwrap();
    }
    let bodies = raw_bodies(pool).await;
    let mut prev = None;
    for (i, body) in bodies.iter().enumerate() {
        let seq = i as u64 + 1;
        let mut event = Event::from_canonical_bytes(body).unwrap();
        if seq == target {
            event.actor = "mallory".to_owned();
        }
        if seq >= target {
            event.prev = prev;
            let body = event.canonical_bytes().unwrap();
            raw_sql!(
                &pool,
                "UPDATE events SET body = $1, actor = $2, hash = $3 WHERE seq = $4",
                &body,
                event.actor.as_str(),
                Blake3::of(&body).to_string(),
                seq as i64
            )
            .await
            .unwrap();
            prev = Some(Blake3::of(&body));
        } else {
            prev = Some(Blake3::of(body));
        }
    }
}

async fn a_consistently_rewritten_chain_fails_against_a_saved_checkpoint(backend: Backend) {
    let (fixture, signer) = store_with_history(backend, 2).await;
    let store = &fixture.store;
    let early = store.checkpoint(&signer).await.unwrap();
    push(store, "app", "2.0", "ephemeral", &[("b", b"b")]).await;
    let middle = store.checkpoint(&signer).await.unwrap();
    push(store, "app", "3.0", "ephemeral", &[("c", b"c")]).await;
    let saved = store.checkpoint(&signer).await.unwrap();
    let verifier = signer.verifier();
    store
        .verify_against_checkpoint(&saved.note, &verifier)
        .await
        .unwrap();

    // The attack targets an event after the early checkpoint, inside the middle one.
    let target = early.tree_size + 1;
    assert!(target <= middle.tree_size);
    let pool = fixture.raw_catalog().await;
    rewrite_history_consistently(backend, &pool, target).await;
    store.rebuild_tree().await.unwrap();
    // The hash chain and the (rebuilt) tree are self-consistent: only the signatures catch it.
    store.audit_verify().await.unwrap();
    store.verify_tree().await.unwrap();
    match store
        .verify_against_checkpoint(&saved.note, &verifier)
        .await
    {
        Err(Error::Integrity { seq, reason }) => {
            assert_eq!(seq, middle.tree_size, "{reason}");
            assert!(
                reason.contains(&format!("tree size {}", middle.tree_size)),
                "{reason}"
            );
        }
        other => panic!("expected a divergence, got {other:?}"),
    }
    // The early checkpoint still holds: history up to it is intact.
    store
        .verify_against_checkpoint(&early.note, &verifier)
        .await
        .unwrap();
    // A note not signed by this key proves nothing.
    let other = LogSigner::from_seed(signer.name(), [42; 32]).unwrap();
    assert!(matches!(
        store
            .verify_against_checkpoint(&saved.note, &other.verifier())
            .await,
        Err(Error::InvalidInput(_))
    ));
}

async fn a_receipt_verifies_offline_after_the_store_is_deleted(backend: Backend) {
    let (fixture, signer) = store_with_history(backend, 3).await;
    fixture.store.checkpoint(&signer).await.unwrap();
    let receipt = fixture
        .store
        .inclusion_proof(4, None)
        .await
        .unwrap()
        .to_json();
    let vkey = signer.verifier().to_vkey();
    let data_dir = fixture.data_dir().to_owned();
    fixture.store.catalog().close().await;
    drop(fixture);
    assert!(!data_dir.exists());
    let verifier = LogVerifier::from_vkey(&vkey).unwrap();
    let event = Receipt::from_json(&receipt)
        .unwrap()
        .verify(&verifier)
        .unwrap();
    assert_eq!(event.seq, 4);
    // One altered byte of the event fails it.
    let mut altered = Receipt::from_json(&receipt).unwrap();
    let mut bytes = tlog::b64_decode(&altered.leaf, "leaf").unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    altered.leaf = tlog::b64_encode(&bytes);
    assert!(altered.verify(&verifier).is_err());
}

async fn replicas_never_sign_two_roots_for_one_size(backend: Backend) {
    let (fixture, signer) = store_with_history(backend, 1).await;
    let second = fixture.second_handle().await;
    let mut tasks = Vec::new();
    for (replica, store) in [fixture.store.clone(), second].into_iter().enumerate() {
        let signer = signer.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..6 {
                if i % 2 == 0 {
                    let content = format!("r{replica} {i}");
                    push(
                        &store,
                        "replica",
                        &format!("{replica}.{i}"),
                        "ephemeral",
                        &[("f", content.as_bytes())],
                    )
                    .await;
                }
                store.checkpoint(&signer).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let pool = fixture.raw_catalog().await;
    let bodies = raw_bodies(&pool).await;
    let checkpoints = fixture.store.checkpoints(None, 1000).await.unwrap();
    let sizes: BTreeSet<u64> = checkpoints.iter().map(|c| c.tree_size).collect();
    assert_eq!(sizes.len(), checkpoints.len(), "one note per size");
    for checkpoint in &checkpoints {
        signer.verifier().open_checkpoint(&checkpoint.note).unwrap();
        assert_eq!(
            note_root(&checkpoint.note),
            reference_root(&bodies[..checkpoint.tree_size as usize])
        );
    }
}

async fn the_tree_catches_up_over_events_appended_before_it_existed(backend: Backend) {
    let (mut fixture, signer) = store_with_history(backend, 3).await;
    let pool = fixture.raw_catalog().await;
    // A catalog from before migration 0008: events, no tree.
    raw_sql!(&pool, "DELETE FROM tlog_nodes").await.unwrap();
    assert_eq!(fixture.store.catalog().tree_size().await.unwrap(), 0);
    // An append on the old tree catches it up first, in the same transaction.
    push(&fixture.store, "app", "9.0", "ephemeral", &[("z", b"z")]).await;
    fixture.store.verify_tree().await.unwrap();
    // Opening the store catches up too.
    raw_sql!(&pool, "DELETE FROM tlog_nodes").await.unwrap();
    fixture.reopen().await;
    let head = head_seq(&fixture.store).await;
    assert_eq!(fixture.store.catalog().tree_size().await.unwrap(), head);
    assert_eq!(fixture.store.verify_tree().await.unwrap(), head);
    let checkpoint = fixture.store.checkpoint(&signer).await.unwrap();
    assert_eq!(
        checkpoint.root_hash,
        reference_root(&raw_bodies(&pool).await)
    );
}

async fn verify_tree_names_a_damaged_node_and_rebuild_repairs_it(backend: Backend) {
    let (fixture, _signer) = store_with_history(backend, 3).await;
    let pool = fixture.raw_catalog().await;
    // Leaves 4..8 form the subtree at level 2, index 1; the last of them is seq 8.
    raw_sql!(
        &pool,
        "UPDATE tlog_nodes SET hash = $1 WHERE level = 2 AND idx = 1",
        vec![7u8; 32]
    )
    .await
    .unwrap();
    match fixture.store.verify_tree().await {
        Err(Error::Integrity { seq, reason }) => {
            assert_eq!(seq, 8, "{reason}");
            assert!(reason.contains("level 2 index 1"), "{reason}");
        }
        other => panic!("expected a damaged node, got {other:?}"),
    }
    let report = fixture.store.fsck().await.unwrap();
    let tree: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.kind == "tree")
        .collect();
    assert_eq!(tree.len(), 1, "{:?}", report.findings);
    assert_eq!(tree[0].subject, "seq 8");
    assert!(tree[0].detail.contains("level 2 index 1"), "{tree:?}");
    raw_sql!(&pool, "DELETE FROM tlog_nodes WHERE level = 0 AND idx = 2")
        .await
        .unwrap();
    match fixture.store.verify_tree().await {
        Err(Error::Integrity { seq, reason }) => {
            assert_eq!(seq, 3, "{reason}");
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("expected a missing node, got {other:?}"),
    }
    let head = head_seq(&fixture.store).await;
    assert_eq!(fixture.store.rebuild_tree().await.unwrap(), head);
    assert_eq!(fixture.store.verify_tree().await.unwrap(), head);
    let report = fixture.store.fsck().await.unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(
        head_seq(&fixture.store).await,
        head,
        "the rebuild appends nothing"
    );
}

async fn bad_proof_requests_change_nothing(backend: Backend) {
    let (fixture, signer) = store_with_history(backend, 2).await;
    let store = &fixture.store;
    // Nothing checkpointed yet.
    assert!(matches!(
        store.inclusion_proof(1, None).await,
        Err(Error::NotFound {
            what: "checkpoint",
            ..
        })
    ));
    let checkpoint = store.checkpoint(&signer).await.unwrap();
    let head = store.head().await.unwrap();
    let size = checkpoint.tree_size;
    for (seq, tree_size) in [(0, None), (size + 1, None), (size + 1, Some(size))] {
        match store.inclusion_proof(seq, tree_size).await {
            Err(Error::InvalidInput(message)) => {
                assert!(message.contains(&format!("seq {seq}")), "{message}")
            }
            other => panic!("seq {seq}: expected invalid input, got {other:?}"),
        }
    }
    assert!(matches!(
        store.inclusion_proof(1, Some(size - 1)).await,
        Err(Error::NotFound {
            what: "checkpoint",
            ..
        })
    ));
    for (from, to) in [(size, Some(size - 1)), (1, Some(size + 1))] {
        assert!(
            matches!(
                store.consistency_proof(from, to).await,
                Err(Error::InvalidInput(_))
            ),
            "{from} {to:?}"
        );
    }
    for note in [
        "",
        "not a note\n",
        &checkpoint.note.replace('\u{2014}', "-"),
    ] {
        assert!(matches!(
            store
                .verify_against_checkpoint(note, &signer.verifier())
                .await,
            Err(Error::InvalidInput(_))
        ));
    }
    assert_eq!(store.head().await.unwrap(), head);
    assert_eq!(store.checkpoints(None, 10).await.unwrap().len(), 1);
}

/// `init` (an embedded store opened with `create`) writes the signing key as a 0600 file
/// outside the catalog; a key file others can read is refused.
#[tokio::test]
async fn the_signing_key_is_a_private_file_beside_the_catalog() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let store = artifact_store_fs::open_embedded(dir.path()).await.unwrap();
    let path = dir.path().join("log.key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let config = artifact_core::config::Config::default();
    let signer = artifact_store_fs::log_signer(dir.path(), &config, false).unwrap();
    assert!(signer.name().starts_with("artifactstore/"));
    // Reopening keeps the key.
    store.catalog().close().await;
    let again = artifact_store_fs::open_embedded(dir.path()).await.unwrap();
    let reloaded = artifact_store_fs::log_signer(dir.path(), &config, false).unwrap();
    assert_eq!(reloaded.verifier(), signer.verifier());
    // The catalog holds no key material.
    let checkpoint = again.checkpoint(&signer).await.unwrap();
    assert!(!checkpoint.note.contains("PRIVATE"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    match artifact_store_fs::log_signer(dir.path(), &config, false) {
        Err(Error::Config(message)) => assert!(message.contains("chmod 600"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A configured origin names a new key.
    let other = tempfile::tempdir().unwrap();
    let mut config = artifact_core::config::Config::default();
    config.log.origin = Some("example.com/artifacts".to_owned());
    config.log.key_path = Some(other.path().join("keys/log.key"));
    let signer = artifact_store_fs::log_signer(other.path(), &config, true).unwrap();
    assert_eq!(signer.name(), "example.com/artifacts");
    assert!(other.path().join("keys/log.key").exists());
}

/// Package `lib` version `i`, one file of content `i`.
async fn push_version(store: &artifact_core::ArtifactStore, i: usize) {
    let version = i.to_string();
    push(
        store,
        "lib",
        &version,
        "ephemeral",
        &[("x", version.as_bytes())],
    )
    .await;
}
