//! The signed Object Lock calls of `artifact_store_s3::signed` against a real SeaweedFS bucket
//! created with Object Lock (which enforces COMPLIANCE, GOVERNANCE and legal holds at its S3
//! API): what issue 13's blob locks and the checkpoint sink rely on.

#[path = "support/seaweed.rs"]
mod seaweed;

use artifact_core::time::{Clock as _, Period, SystemClock};
use artifact_store_s3::S3Options;
use artifact_store_s3::signed::{Created, LockMode, SignedClient};
use bytes::Bytes;

use seaweed::SeaweedFs;

fn client(weed: &SeaweedFs, bucket: &str) -> SignedClient {
    let target = weed.target();
    S3Options::new(bucket)
        .with_endpoint(&target.endpoint)
        .with_allow_http(true)
        .with_region(&target.region)
        .with_credentials(&target.access_key_id, &target.secret_access_key)
        .signed_client()
        .expect("signed client")
}

fn in_seconds(seconds: i64) -> artifact_core::time::Timestamp {
    SystemClock
        .now()
        .checked_add(Period::Millis(seconds * 1000))
        .expect("time")
}

#[tokio::test]
async fn retention_extends_never_shortens_and_legal_holds_block_deletes() {
    let weed = SeaweedFs::start().await;
    let s3 = client(&weed, "locked");
    s3.create_bucket(true).await.expect("create the bucket");
    let lock = s3.bucket_lock().await.expect("lock configuration");
    assert!(lock.enabled, "{lock:?}");
    let plain = client(&weed, seaweed::BUCKET);
    assert!(
        !plain
            .bucket_lock()
            .await
            .expect("lock configuration")
            .enabled
    );
    // A bucket that does not exist is an error, never "no such object".
    let missing = client(&weed, "no-such-bucket");
    let error = missing
        .get("checkpoints/1.checkpoint")
        .await
        .expect_err("a missing bucket is not an empty one");
    assert!(error.to_string().contains("NoSuchBucket"), "{error}");

    // A create-only PUT under COMPLIANCE: the version is locked, a second create is refused.
    let key = "blobs/one";
    let created = s3
        .put_if_absent(
            key,
            Bytes::from_static(b"one"),
            "application/octet-stream",
            Some((LockMode::Compliance, in_seconds(3600))),
        )
        .await
        .expect("put");
    let Created::New {
        version_id: Some(version),
    } = created
    else {
        panic!("a lock-enabled bucket is versioned: {created:?}");
    };
    assert_eq!(
        s3.put_if_absent(key, Bytes::from_static(b"two"), "text/plain", None)
            .await
            .expect("second put"),
        Created::Exists
    );
    assert_eq!(
        s3.get(key).await.expect("get").as_deref(),
        Some(b"one".as_slice())
    );
    let (mode, _) = s3.retention(key).await.expect("read").expect("locked");
    assert_eq!(mode, LockMode::Compliance);

    // Extending works; shortening is refused by the storage, with S3's reason.
    s3.put_retention(key, Some(&version), LockMode::Compliance, in_seconds(7200))
        .await
        .expect("extend");
    let refused = s3
        .put_retention(key, Some(&version), LockMode::Compliance, in_seconds(60))
        .await
        .expect_err("COMPLIANCE retention must not be shortened");
    assert!(
        refused.to_string().contains("retention") && refused.to_string().contains(key),
        "{refused}"
    );
    let status = s3.delete(key, Some(&version)).await.expect("delete");
    assert!(status.is_client_error(), "locked: {status}");

    // A legal hold on an unretained version blocks its delete until it is cleared.
    let held = "blobs/held";
    let Created::New {
        version_id: Some(held_version),
    } = s3
        .put_if_absent(held, Bytes::from_static(b"held"), "text/plain", None)
        .await
        .expect("put")
    else {
        panic!("versioned");
    };
    assert!(
        !s3.legal_hold(held, Some(&held_version))
            .await
            .expect("read")
    );
    s3.put_legal_hold(held, Some(&held_version), true)
        .await
        .expect("hold on");
    assert!(
        s3.legal_hold(held, Some(&held_version))
            .await
            .expect("read")
    );
    let status = s3.delete(held, Some(&held_version)).await.expect("delete");
    assert!(status.is_client_error(), "held: {status}");
    s3.put_legal_hold(held, Some(&held_version), false)
        .await
        .expect("hold off");
    assert!(
        !s3.legal_hold(held, Some(&held_version))
            .await
            .expect("read")
    );
    let status = s3.delete(held, Some(&held_version)).await.expect("delete");
    assert!(status.is_success(), "released: {status}");
    assert_eq!(s3.version_id(held).await.expect("head"), None);
}
