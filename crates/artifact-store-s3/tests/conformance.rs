//! The S3 backend against a real S3-compatible server: SeaweedFS started on loopback by
//! `support/seaweed.rs` (or the server named by `ARTIFACTSTORE_TEST_S3_ENDPOINT`). A server
//! that cannot be started fails these tests; they never skip.

#[path = "support/seaweed.rs"]
mod seaweed;

use std::io::Cursor;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use artifact_core::blob::BlobStore;
use artifact_core::digest::{AnyDigest, BlobInfo};
use artifact_core::testing::{self, ConformanceOptions, run_all};
use artifact_core::{ArtifactStore, Error, StoreOptions};
use artifact_store_s3::{BackoffConfig, RetryConfig, S3BlobStore, S3Options};
use futures_util::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore as _, ObjectStoreExt as _};
use tokio::io::{AsyncRead, ReadBuf};

use seaweed::{SeaweedFs, TestS3};

/// S3's minimum part size: keeps multipart tests fast.
const PART: usize = 5 << 20;

/// A key prefix no other test (or earlier run on an external server) uses.
fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("it/{test}-{}-{nanos}", std::process::id())
}

/// Retries that give up within seconds, so failure paths stay quick.
fn short_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(3),
    }
}

async fn list_keys(s3: &S3BlobStore, prefix: &Path) -> Vec<String> {
    s3.object_store()
        .list(Some(prefix))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("list")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_passes_the_blob_conformance_suite() {
    let server = TestS3::start().await;
    let prefix = unique_prefix("conformance");
    let s3 = server
        .target()
        .options()
        .with_prefix(&prefix)
        .with_part_size(PART)
        .build()
        .expect("build store");
    let store: Arc<dyn BlobStore> = Arc::new(s3.clone());
    run_all(
        Arc::clone(&store),
        ConformanceOptions::default().with_part_size(PART as u64),
    )
    .await;

    // Commits and aborts cleaned up their staging objects.
    assert_eq!(
        list_keys(&s3, &s3.staging_prefix()).await,
        Vec::<String>::new(),
        "staging objects left behind"
    );
    // Every object the suite wrote is under the prefix in the shared key shape, and it
    // deleted them all.
    assert_eq!(
        list_keys(&s3, &Path::from(prefix.as_str())).await,
        Vec::<String>::new()
    );
}

/// Blobs above the copy limit are published by streaming the staged object into a multipart
/// upload of the final key (AWS's `CopyObject` stops at 5 GiB; a limit of 0 forces the path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_copy_above_the_copy_limit_round_trips() {
    let server = TestS3::start().await;
    let s3 = server
        .target()
        .options()
        .with_prefix(unique_prefix("streamed-copy"))
        .with_part_size(PART)
        .with_copy_limit(0)
        .build()
        .expect("build store");
    for size in [PART as u64 + 1, 3 * PART as u64 + 17] {
        let data = testing::test_bytes(size, size);
        let info = testing::put_bytes(&s3, &data, (1 << 20) + 7).await;
        assert_eq!(testing::read_info(&s3, &info.blake3).await, info);
        s3.delete(&info.blake3).await.expect("delete");
    }
    assert_eq!(
        list_keys(&s3, &s3.staging_prefix()).await,
        Vec::<String>::new()
    );
}

/// Keys are `<prefix>/blobs/blake3/<2 hex>/<64 hex>`; another prefix in the same bucket sees
/// none of them; staging leftovers are reclaimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_isolate_stores_and_staging_is_reclaimed() {
    let server = TestS3::start().await;
    let prefix = unique_prefix("layout");
    let s3 = server
        .target()
        .options()
        .with_prefix(format!("/{prefix}/"))
        .with_part_size(PART)
        .build()
        .expect("build store");
    let other = server
        .target()
        .options()
        .with_prefix(unique_prefix("layout-other"))
        .build()
        .expect("build store");
    let info = testing::put_bytes(&s3, b"layout", 3).await;
    let hex = info.blake3.to_hex();
    assert_eq!(
        list_keys(&s3, &Path::from(prefix.as_str())).await,
        vec![format!("{prefix}/blobs/blake3/{}/{hex}", &hex[..2])]
    );
    assert_eq!(s3.list().await.expect("list"), vec![info.blake3]);
    assert_eq!(other.list().await.expect("list"), Vec::new());
    assert_eq!(other.head(&info.blake3).await.expect("head"), None);

    // A leftover staging object (a writer died between complete and delete).
    let leftover = Path::from(format!("{prefix}/staging/0123456789abcdef"));
    s3.object_store()
        .put(&leftover, "partial".into())
        .await
        .expect("put leftover");
    assert_eq!(
        s3.reclaim_staging(Duration::from_secs(3600))
            .await
            .expect("reclaim"),
        0,
        "a young staging object is kept (it may belong to a live writer)"
    );
    assert_eq!(
        s3.reclaim_staging(Duration::ZERO).await.expect("reclaim"),
        1
    );
    assert_eq!(
        list_keys(&s3, &s3.staging_prefix()).await,
        Vec::<String>::new()
    );
    // Reclaiming never touches blobs.
    assert_eq!(s3.list().await.expect("list"), vec![info.blake3]);
    s3.delete(&info.blake3).await.expect("delete");
}

/// `check()` tells bad credentials, a missing bucket and a dead endpoint apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_clearly_for_wrong_secret_missing_bucket_and_dead_endpoint() {
    let server = TestS3::start().await;
    let target = server.target().clone();

    let good = target.options().build().expect("build store");
    good.check().await.expect("check with the right secret");

    let wrong_secret = S3Options::new(&target.bucket)
        .with_endpoint(&target.endpoint)
        .with_allow_http(true)
        .with_region(&target.region)
        .with_credentials(&target.access_key_id, "not-the-secret")
        .build()
        .expect("build store");
    let error = wrong_secret
        .check()
        .await
        .expect_err("wrong secret must fail");
    let message = error.to_string();
    assert!(
        matches!(error, Error::Backend { store: "s3", .. }),
        "{message}"
    );
    assert!(message.contains("refused the credentials"), "{message}");
    // Blob operations with a wrong secret fail too (and are not mistaken for "absent").
    assert!(
        wrong_secret
            .head(&artifact_core::digest::Blake3::of(b"x"))
            .await
            .is_err()
    );

    let missing_bucket = S3Options::new("artifactstore-no-such-bucket")
        .with_endpoint(&target.endpoint)
        .with_allow_http(true)
        .with_region(&target.region)
        .with_credentials(&target.access_key_id, &target.secret_access_key)
        .build()
        .expect("build store");
    let message = missing_bucket
        .check()
        .await
        .expect_err("missing bucket must fail")
        .to_string();
    assert!(message.contains("does not exist"), "{message}");

    // A loopback port nobody listens on.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let dead = S3Options::new("test")
        .with_endpoint(format!("http://127.0.0.1:{dead_port}"))
        .with_allow_http(true)
        .with_credentials("k", "s")
        .with_check_retry(short_retry())
        .build()
        .expect("build store");
    let message = dead
        .check()
        .await
        .expect_err("dead endpoint must fail")
        .to_string();
    assert!(
        message.contains("cannot reach the S3 endpoint"),
        "{message}"
    );
}

/// Reads `inner`, and once `kill_after` bytes have been read SIGKILLs process `pid`: the
/// server dies while the multipart upload is in the middle of its parts.
struct KillingReader {
    inner: Cursor<Vec<u8>>,
    kill_after: u64,
    pid: u32,
    killed: bool,
}

impl AsyncRead for KillingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.killed && self.inner.position() >= self.kill_after {
            self.killed = true;
            // SAFETY: plain syscall on a pid we own (our child, not yet reaped).
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// SIGKILL of the S3 server during a multipart ingest: the ingest fails cleanly (an error, no
/// event, no blob row, nothing visible under the final key); after a restart on the same data
/// directory the same ingest succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_s3_mid_upload_fails_cleanly_and_a_retry_succeeds() {
    let mut server = SeaweedFs::start().await;
    let s3 = server
        .target()
        .options()
        .with_prefix(unique_prefix("fault"))
        .with_part_size(PART)
        .with_retry(short_retry())
        .build()
        .expect("build store");
    let dir = tempfile::tempdir().expect("temp dir");
    let catalog_url = artifact_core::config::sqlite_url(&dir.path().join("catalog.db"));
    let store = ArtifactStore::open(StoreOptions::new(catalog_url, Arc::new(s3.clone())))
        .await
        .expect("open store");
    // Something recorded first, so the head is not the empty log.
    store
        .ingest_blob("test", &b"before the fault"[..], &[])
        .await
        .expect("ingest before the fault");
    let head_before = store.head().await.expect("head");

    let data = testing::test_bytes(48 << 20, 4242);
    let expected = BlobInfo::of(&data);
    let reader = KillingReader {
        inner: Cursor::new(data.clone()),
        kill_after: 3 * PART as u64 + 12_345,
        pid: server.pid().expect("server running"),
        killed: false,
    };
    let error = store
        .write_blob(reader, &[])
        .await
        .expect_err("an ingest whose S3 server died must fail");
    assert!(
        matches!(error, Error::Backend { store: "s3", .. }),
        "expected an s3 backend error, got {error}"
    );
    server.kill();

    assert_eq!(
        store.head().await.expect("head"),
        head_before,
        "an event was appended"
    );
    assert_eq!(
        store
            .blob(&AnyDigest::Blake3(expected.blake3))
            .await
            .expect("blob lookup"),
        None,
        "a blob row was recorded"
    );

    server.restart().await;
    assert_eq!(
        s3.head(&expected.blake3).await.expect("head after restart"),
        None,
        "the interrupted upload is visible under its final key"
    );
    assert!(!s3.list().await.expect("list").contains(&expected.blake3));

    let record = store
        .ingest_blob("test", Cursor::new(data), &[])
        .await
        .expect("retry after restart");
    assert_eq!(record.info, expected);
    assert_eq!(
        store
            .read_blob_bytes(&expected)
            .await
            .expect("read back")
            .len() as u64,
        expected.size
    );
    assert_eq!(
        testing::read_info(&s3, &expected.blake3).await,
        expected,
        "the retried blob reads back intact"
    );
    assert_eq!(
        list_keys(&s3, &s3.staging_prefix()).await,
        Vec::<String>::new()
    );
    assert_eq!(store.head().await.expect("head").seq, head_before.seq + 1);
    store.catalog().close().await;
}
