//! Anchoring (issue 12, ADR 0011): checkpoints published to a directory and to an S3 bucket
//! under Object Lock (SeaweedFS on loopback) catch a consistent rewrite of the whole catalog —
//! hash chain, Merkle tree and checkpoint table included — that `audit verify` alone passes.

use artifact_core::raw_sql;
use std::sync::Arc;

use artifact_core::Error;
use artifact_core::publish::CheckpointSink as _;
use artifact_core::time::{Clock as _, Period, SystemClock, ymd};
use artifact_core::tlog::LogSigner;
use artifact_store_fs::EmbeddedOptions;
use artifact_store_s3::signed::LockMode;
use artifact_store_s3::{S3CheckpointSink, SinkLock};

use crate::seaweed::SeaweedFs;
use crate::support::{Backend, Fixture, backend_tests, head_seq, push};
use crate::tlog::rewrite_history_consistently;

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_rewrite_is_caught_by_checkpoints_published_to_a_directory_and_to_a_locked_bucket,
}

async fn a_rewrite_is_caught_by_checkpoints_published_to_a_directory_and_to_a_locked_bucket(
    backend: Backend,
) {
    let weed = SeaweedFs::start().await;
    let target = weed.target();
    let options = target.options();
    let anchors = artifact_store_s3::S3Options::new("anchors")
        .with_endpoint(&target.endpoint)
        .with_allow_http(true)
        .with_region(&target.region)
        .with_credentials(&target.access_key_id, &target.secret_access_key)
        .with_prefix("store-a");
    // A bucket without Object Lock: `auto` writes unlocked, an explicit mode is refused with
    // the reason before anything is written.
    let unlocked =
        S3CheckpointSink::new(options.clone(), SinkLock::Auto, Period::Years(1)).expect("sink");
    assert_eq!(unlocked.lock_mode().await.expect("bucket lock"), None);
    let strict = S3CheckpointSink::new(
        options,
        SinkLock::Mode(LockMode::Compliance),
        Period::Years(1),
    )
    .expect("sink");
    match strict.lock_mode().await {
        Err(Error::Config(reason)) => assert!(reason.contains("no Object Lock"), "{reason}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    assert_eq!(strict.latest().await.expect("list"), None);
    anchors
        .signed_client()
        .expect("signed client")
        .create_bucket(true)
        .await
        .expect("create a bucket with Object Lock");
    let s3 = S3CheckpointSink::new(anchors, SinkLock::Auto, Period::Years(100)).expect("sink");
    assert_eq!(
        s3.lock_mode().await.expect("bucket lock"),
        Some(LockMode::Compliance),
        "auto locks in COMPLIANCE mode on a bucket with Object Lock"
    );

    // The store: a directory sink from `[log] publish_dir`, the S3 sink added by the caller.
    let mut fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let publish_dir = fixture.data_dir().join("anchors");
    fixture.config.log.publish_dir = Some(publish_dir.clone());
    fixture.store.catalog().close().await;
    fixture.store = EmbeddedOptions::new(fixture.data_dir())
        .with_config(fixture.config.clone())
        .with_clock(Arc::new(fixture.clock.clone()))
        .with_checkpoint_sink(Arc::new(s3.clone()))
        .open()
        .await
        .expect("open with sinks");
    let store = &fixture.store;
    let signer = LogSigner::from_seed("artifactstore/anchors-test", [9; 32]).expect("signer");
    let verifier = signer.verifier();

    push(store, "app", "1.0", "ephemeral", &[("a", b"a")]).await;
    let early = store.checkpoint(&signer).await.expect("checkpoint");
    push(store, "app", "2.0", "ephemeral", &[("b", b"b")]).await;
    let latest = store.checkpoint(&signer).await.expect("checkpoint");
    assert_eq!(latest.tree_size, head_seq(store).await);

    // Published to both, and S3 holds it under COMPLIANCE retention that refuses a delete of
    // the version, even with the bucket's own credentials.
    let key = s3.key(latest.tree_size);
    let signed = s3.signed_client();
    assert_eq!(
        signed.get(&key).await.expect("get").as_deref(),
        Some(latest.note.as_bytes())
    );
    let (mode, until) = signed
        .retention(&key)
        .await
        .expect("retention")
        .expect("the published checkpoint is locked");
    assert_eq!(mode, LockMode::Compliance);
    // 100 years from now by the system clock (S3 compares retain-until dates with its own).
    let year: i32 = SystemClock.now().to_string()[..4].parse().expect("year");
    assert!(until.starts_with(&format!("{}-", year + 100)), "{until}");
    let version = signed
        .version_id(&key)
        .await
        .expect("head")
        .expect("exists")
        .expect("a lock-enabled bucket is versioned");
    let status = signed.delete(&key, Some(&version)).await.expect("delete");
    assert!(
        status.is_client_error(),
        "a locked version cannot be deleted: {status}"
    );
    assert_eq!(
        signed.get(&key).await.expect("get").as_deref(),
        Some(latest.note.as_bytes()),
        "still there"
    );
    assert_eq!(
        std::fs::read_to_string(publish_dir.join(format!("{}.checkpoint", latest.tree_size)))
            .expect("published file"),
        latest.note
    );
    let checks = store.verify_published(&verifier).await.expect("verify");
    assert_eq!(checks.len(), 2);
    assert!(
        checks
            .iter()
            .all(|c| c.ok && c.tree_size == Some(latest.tree_size)),
        "{checks:?}"
    );

    // The insider: rewrites an event after the early checkpoint, recomputes the chain,
    // rebuilds the tree, and empties the checkpoint table so no stored checkpoint betrays it.
    let pool = fixture.raw_catalog().await;
    rewrite_history_consistently(backend, &pool, early.tree_size + 1).await;
    for trigger in [
        "tlog_checkpoints_refuse_update",
        "tlog_checkpoints_refuse_delete",
    ] {
        let statement = match backend {
            Backend::Sqlite => format!("DROP TRIGGER IF EXISTS {trigger}"),
            Backend::Postgres => format!("DROP TRIGGER IF EXISTS {trigger} ON tlog_checkpoints"),
        };
        raw_sql!(&pool, &statement).await.expect("drop trigger");
    }
    raw_sql!(&pool, "DELETE FROM tlog_checkpoints")
        .await
        .expect("delete checkpoints");
    assert_eq!(store.checkpoints(None, 10).await.expect("list").len(), 0);
    store.rebuild_tree().await.expect("rebuild tree");
    // Self-consistent: the chain audit and the tree check pass.
    assert!(store.audit().await.expect("audit").head.is_some());
    store.verify_tree().await.expect("tree");

    // Both published checkpoints betray it, naming the size.
    let checks = store.verify_published(&verifier).await.expect("verify");
    assert_eq!(checks.len(), 2, "{checks:?}");
    for check in &checks {
        assert!(!check.ok, "{check:?}");
        assert_eq!(
            check.first_diverging_size,
            Some(latest.tree_size),
            "{check:?}"
        );
        assert!(
            check
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("diverges")),
            "{check:?}"
        );
    }
    // Normal traffic goes on, and the server would sign the next checkpoint with its own key:
    // it refuses, because the log no longer extends what the sinks hold, so the rewrite
    // cannot be laundered behind a new checkpoint — neither by this process (which remembers
    // what it published) nor by a fresh one (which reads the sinks).
    push(store, "app", "3.0", "ephemeral", &[("c", b"c")]).await;
    let refused =
        |result: artifact_core::Result<artifact_core::catalog::StoredCheckpoint>| match result {
            Err(Error::Integrity { seq, reason }) => {
                assert_eq!(seq, latest.tree_size, "{reason}");
                assert!(reason.contains("no longer extends"), "{reason}");
                assert!(reason.contains("nothing was signed"), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        };
    refused(store.checkpoint(&signer).await);
    let fresh = EmbeddedOptions::new(fixture.data_dir())
        .with_config(fixture.config.clone())
        .with_clock(Arc::new(fixture.clock.clone()))
        .with_checkpoint_sink(Arc::new(s3.clone()))
        .open()
        .await
        .expect("a second handle");
    refused(fresh.checkpoint(&signer).await);
    assert_eq!(
        store.checkpoints(None, 10).await.expect("list").len(),
        0,
        "nothing signed"
    );
    let checks = store.verify_published(&verifier).await.expect("verify");
    assert!(checks.iter().all(|c| !c.ok), "{checks:?}");
    assert_eq!(
        signed.get(&key).await.expect("get").as_deref(),
        Some(latest.note.as_bytes())
    );
    assert_eq!(
        s3.latest().await.expect("latest").as_deref(),
        Some(latest.note.as_str())
    );

    // With the bucket's credentials (no key): a DELETE without a version id is allowed on a
    // locked object but only adds a delete marker. It cannot hide the checkpoint: the sink
    // reads versions, so the marker is reported, and nothing is signed over it.
    let status = signed.delete(&key, None).await.expect("delete");
    assert!(status.is_success(), "a delete marker is allowed: {status}");
    assert_eq!(
        signed.get(&key).await.expect("get"),
        None,
        "hidden from a plain GET"
    );
    match s3.latest().await {
        Err(Error::Integrity { seq, reason }) => {
            assert_eq!(seq, latest.tree_size);
            assert!(reason.contains("delete marker"), "{reason}");
        }
        other => panic!("expected the marker to be reported, got {other:?}"),
    }
    let checks = store.verify_published(&verifier).await.expect("verify");
    let s3_check = checks
        .iter()
        .find(|c| c.sink.starts_with("s3://"))
        .expect("the S3 sink");
    assert!(
        !s3_check.ok
            && s3_check
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("delete marker")),
        "{s3_check:?}"
    );
    let third = EmbeddedOptions::new(fixture.data_dir())
        .with_config(fixture.config.clone())
        .with_clock(Arc::new(fixture.clock.clone()))
        .with_checkpoint_sink(Arc::new(s3.clone()))
        .open()
        .await
        .expect("a third handle");
    assert!(third.checkpoint(&signer).await.is_err(), "nothing signed");
}
