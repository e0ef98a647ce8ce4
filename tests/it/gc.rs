//! Garbage collection and scrubbing (SPEC §5, §6), against SQLite and PostgreSQL:
//!
//! - GC purges only eligible packages and deletes only the blobs no live package needs; a blob
//!   shared with a live package stays readable; purge, byte deletion and `v1.blob.deleted`
//!   happen in that order; a dry run reports exactly what the real run then does and changes
//!   nothing;
//! - the grace period protects young blobs, and a package created while GC runs can never end
//!   up naming deleted bytes;
//! - a GC that died between deleting bytes and recording it is finished when the store opens
//!   (only blobs GC committed to deleting: bytes lost otherwise stay an fsck finding), and a
//!   blob being deleted can gain no reference;
//! - `verify_blobs` finds a flipped byte, records `v1.integrity.failed` with a reason, full
//!   reads fail instead of returning the wrong bytes, and fsck reports the failed check;
//!   sampled and rate-limited scrubs check what they say they check.

use crate::support::assert_views_match_replay;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use artifact_core::blob::{BlobMeta, BlobRead, BlobStore, ByteRange, StagedBlob};
use artifact_core::catalog::EventQuery;
use artifact_core::digest::{AnyDigest, Blake3, BlobInfo, PackageId};
use artifact_core::event::{Event, types};
use artifact_core::maintenance::{GcOptions, GcReport, VerifyOptions};
use artifact_core::time::{Clock as _, Timestamp, ymd};
use artifact_core::{ArtifactStore, Error};
use artifact_store_fs::{EmbeddedOptions, FsBlobStore};
use sqlx::AnyPool;
use tokio::io::AsyncReadExt as _;

use crate::support::{
    Backend, Fixture, all_events, backend_tests, by_id, days, error_kind, head_seq, manifest,
    plus_days, pseudo_random_bytes, push,
};

backend_tests! {
    #[tokio::test]
    gc_purges_the_eligible_package_and_only_its_unique_blobs,
    #[tokio::test]
    gc_keeps_blobs_younger_than_the_grace_period,
    #[tokio::test]
    gc_never_purges_a_held_or_extended_package,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    package_created_during_gc_never_names_deleted_bytes,
    #[tokio::test]
    interrupted_gc_is_finished_when_the_store_opens,
    #[tokio::test]
    bytes_lost_outside_gc_stay_an_fsck_finding,
    #[tokio::test]
    gc_deletes_orphaned_bytes_only_after_the_grace_period,
    #[tokio::test]
    verify_finds_a_flipped_byte_and_fsck_reports_it,
    #[tokio::test]
    sampled_and_rate_limited_verify_check_what_they_report,
}

const GRACE_DAYS: i64 = 1;

fn gc_options(dry_run: bool) -> GcOptions {
    GcOptions {
        grace: days(GRACE_DAYS),
        dry_run,
    }
}

fn data_text<'a>(event: &'a Event, key: &str) -> Option<&'a str> {
    event.data.as_map()?.get(key)?.as_str()
}

/// Events of one type, in seq order.
async fn events_of_type(store: &ArtifactStore, event_type: &str) -> Vec<Event> {
    store
        .events(&EventQuery {
            after: 0,
            limit: Some(100_000),
            event_type: Some(event_type.to_owned()),
            package_id: None,
        })
        .await
        .unwrap()
}

async fn read_file(
    store: &ArtifactStore,
    package: PackageId,
    path: &str,
) -> Result<Vec<u8>, Error> {
    let (_, mut read) = store.read_file(&by_id(package), path, None).await?;
    let mut bytes = Vec::new();
    read.reader.read_to_end(&mut bytes).await?;
    Ok(bytes)
}

async fn bytes_present(store: &ArtifactStore, blake3: &Blake3) -> bool {
    store.blob_store().head(blake3).await.unwrap().is_some()
}

/// The fs blob file of `blake3` in a fixture's data directory (docs/DURABILITY.md layout).
fn blob_file(fixture: &Fixture, blake3: &Blake3) -> PathBuf {
    let hex = blake3.to_hex();
    let path = fixture
        .data_dir()
        .join("blobs/blake3")
        .join(&hex[..2])
        .join(&hex);
    assert!(path.is_file(), "{} should be a blob file", path.display());
    path
}

// ----- a blob store that records the committed head when bytes are deleted -------------------

/// The fs backend, plus: for every key deleted, the head seq *committed* at that moment (read
/// through a separate connection, so the deleting transaction's own appends are invisible).
#[derive(Debug)]
struct DeletionWitness {
    inner: FsBlobStore,
    catalog: AnyPool,
    deleted_at_head: Mutex<Vec<(Blake3, i64)>>,
    /// When set, `delete_many` deletes the bytes and then fails: what a process killed right
    /// after deleting them (before committing `v1.blob.deleted`) leaves behind.
    die_after_deleting: AtomicBool,
}

impl DeletionWitness {
    async fn new(fixture: &Fixture) -> Arc<Self> {
        Arc::new(DeletionWitness {
            inner: FsBlobStore::open(fixture.data_dir().join("blobs")).unwrap(),
            catalog: fixture.raw_catalog().await,
            deleted_at_head: Mutex::new(Vec::new()),
            die_after_deleting: AtomicBool::new(false),
        })
    }

    /// A store on the fixture's catalog whose blob backend is this witness.
    async fn store(self: &Arc<Self>, fixture: &Fixture) -> ArtifactStore {
        EmbeddedOptions::new(fixture.data_dir())
            .with_config(fixture.config.clone())
            .with_clock(Arc::new(fixture.clock.clone()))
            .with_blob_store(self.clone())
            .open()
            .await
            .unwrap()
    }
}

impl DeletionWitness {
    async fn committed_head(&self) -> i64 {
        let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&self.catalog)
            .await
            .unwrap();
        seq
    }
}

#[async_trait::async_trait]
impl BlobStore for DeletionWitness {
    fn name(&self) -> &'static str {
        "fs"
    }
    async fn stage(&self) -> artifact_core::Result<Box<dyn StagedBlob>> {
        self.inner.stage().await
    }
    async fn get(&self, key: &Blake3, range: Option<ByteRange>) -> artifact_core::Result<BlobRead> {
        self.inner.get(key, range).await
    }
    async fn head(&self, key: &Blake3) -> artifact_core::Result<Option<BlobMeta>> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &Blake3) -> artifact_core::Result<()> {
        let head = self.committed_head().await;
        self.deleted_at_head.lock().unwrap().push((*key, head));
        self.inner.delete(key).await
    }
    async fn delete_many(&self, keys: &[Blake3]) -> artifact_core::Result<()> {
        let head = self.committed_head().await;
        self.deleted_at_head
            .lock()
            .unwrap()
            .extend(keys.iter().map(|k| (*k, head)));
        self.inner.delete_many(keys).await?;
        if self.die_after_deleting.load(Ordering::SeqCst) {
            return Err(Error::Io(std::io::Error::other(
                "simulated crash after deleting bytes",
            )));
        }
        Ok(())
    }
    async fn list(&self) -> artifact_core::Result<Vec<Blake3>> {
        self.inner.list().await
    }
    async fn list_with_modified(&self) -> artifact_core::Result<Vec<(Blake3, Option<Timestamp>)>> {
        self.inner.list_with_modified().await
    }
    async fn check(&self) -> artifact_core::Result<()> {
        self.inner.check().await
    }
    async fn orphaned_staging(&self) -> artifact_core::Result<Vec<String>> {
        self.inner.orphaned_staging().await
    }
}

// ----- GC ------------------------------------------------------------------------------------

async fn gc_purges_the_eligible_package_and_only_its_unique_blobs(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let shared = pseudo_random_bytes(200_000, 1);
    let only_old = pseudo_random_bytes(150_000, 2);
    let only_live = pseudo_random_bytes(120_000, 3);
    // `ephemeral` (7 days) becomes eligible; `build-cache` (30 days) stays live.
    let old = push(
        &fixture.store,
        "old",
        "1",
        "ephemeral",
        &[("shared.bin", &shared), ("only.bin", &only_old)],
    )
    .await;
    let live = push(
        &fixture.store,
        "live",
        "1",
        "build-cache",
        &[("shared.bin", &shared), ("only.bin", &only_live)],
    )
    .await;
    fixture.clock.advance(days(10));
    let swept = fixture.store.sweep("ci", None).await.unwrap();
    assert_eq!(swept.newly_eligible, vec![old.package_id]);

    // The store the GC runs on watches the committed head whenever bytes go.
    let witness = DeletionWitness::new(&fixture).await;
    let store = witness.store(&fixture).await;

    let only_old_info = BlobInfo::of(&only_old);
    let head_before = store.head().await.unwrap();
    let dry = store.gc("ops", gc_options(true)).await.unwrap();
    assert_eq!(
        store.head().await.unwrap(),
        head_before,
        "a dry run appends nothing"
    );
    assert!(
        witness.deleted_at_head.lock().unwrap().is_empty(),
        "a dry run deletes nothing"
    );
    assert!(bytes_present(&store, &only_old_info.blake3).await);
    assert_eq!(
        dry,
        GcReport {
            dry_run: true,
            purged: vec![old.package_id],
            deleted: vec![only_old_info],
            orphans: vec![],
            bytes_reclaimed: only_old.len() as u64,
            refused: vec![],
            kept: vec![],
        }
    );

    let report = store.gc("ops", gc_options(false)).await.unwrap();
    assert_eq!(
        GcReport {
            dry_run: true,
            ..report.clone()
        },
        dry,
        "the real run does exactly what the dry run reported"
    );

    // Bytes: only the eligible package's unique blob is gone.
    assert!(!bytes_present(&store, &only_old_info.blake3).await);
    assert!(
        store
            .blob(&AnyDigest::Blake3(only_old_info.blake3))
            .await
            .unwrap()
            .is_none()
    );
    for content in [&shared, &only_live] {
        assert!(bytes_present(&store, &BlobInfo::of(content).blake3).await);
    }
    // The live package is fully readable, verified; the purged one is not, but its manifest is.
    assert_eq!(
        read_file(&store, live.package_id, "shared.bin")
            .await
            .unwrap(),
        shared
    );
    assert_eq!(
        read_file(&store, live.package_id, "only.bin")
            .await
            .unwrap(),
        only_live
    );
    let purged_read = read_file(&store, old.package_id, "shared.bin").await;
    assert!(
        matches!(purged_read, Err(Error::Gone(_))),
        "files of a purged package are not served, even one whose blob is shared: {purged_read:?}"
    );
    let gone = store
        .live_package(&by_id(old.package_id))
        .await
        .unwrap_err();
    assert!(matches!(gone, Error::Gone(_)), "{gone}");
    // Pushing the identical manifest again does not hand back the purged package.
    let head_before_repush = store.head().await.unwrap();
    let (old_manifest, _) = store.manifest(&by_id(old.package_id)).await.unwrap();
    let repush = store.create_package("ci", &old_manifest).await.unwrap_err();
    assert_eq!(error_kind(&repush), "Conflict", "{repush}");
    assert!(repush.to_string().contains("purged"), "{repush}");
    assert_eq!(store.head().await.unwrap(), head_before_repush);
    let (manifest, _) = store.manifest(&by_id(old.package_id)).await.unwrap();
    assert_eq!(manifest.files.len(), 2);
    assert!(
        store
            .package(&by_id(old.package_id))
            .await
            .unwrap()
            .purged_seq
            .is_some()
    );

    // Events: purged (committed) before the bytes went; bytes gone before `v1.blob.deleted`.
    let purged = events_of_type(&store, types::PACKAGE_PURGED).await;
    assert_eq!(purged.len(), 1);
    assert_eq!(purged[0].package_id, Some(old.package_id));
    let deleted = events_of_type(&store, types::BLOB_DELETED).await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        data_text(&deleted[0], "blake3"),
        Some(only_old_info.blake3.to_string().as_str())
    );
    assert!(purged[0].seq < deleted[0].seq);
    let started = events_of_type(&store, types::BLOB_DELETION_STARTED).await;
    assert_eq!(started.len(), 1);
    assert!(purged[0].seq < started[0].seq && started[0].seq < deleted[0].seq);
    let deletions = witness.deleted_at_head.lock().unwrap().clone();
    assert_eq!(deletions.len(), 1, "{deletions:?}");
    let (key, head_when_deleted) = deletions[0];
    assert_eq!(key, only_old_info.blake3);
    assert!(
        purged[0].seq as i64 <= head_when_deleted,
        "the purge was committed before the bytes were deleted"
    );
    assert!(
        started[0].seq as i64 <= head_when_deleted,
        "the intent to delete was committed before the bytes were deleted"
    );
    assert!(
        (deleted[0].seq as i64) > head_when_deleted,
        "v1.blob.deleted was committed after the bytes were deleted"
    );

    // A second run has nothing left to do; the store is consistent.
    let again = store.gc("ops", gc_options(false)).await.unwrap();
    assert!(again.purged.is_empty() && again.deleted.is_empty() && again.orphans.is_empty());
    let fsck = store.fsck().await.unwrap();
    assert!(fsck.ok(), "{:?}", fsck.findings);
    assert_eq!(fsck.packages, 1);
}

async fn gc_keeps_blobs_younger_than_the_grace_period(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    let content = pseudo_random_bytes(50_000, 4);
    let created = push(store, "young", "1", "ephemeral", &[("a.bin", &content)]).await;
    let info = BlobInfo::of(&content);
    // Eligible after 7 days; its blob was stored 8 days ago, so a 10-day grace keeps it.
    fixture.clock.advance(days(8));
    store.sweep("ci", None).await.unwrap();
    // An upload in flight: recorded, no package yet, stored just now.
    let in_flight = pseudo_random_bytes(10_000, 5);
    store.ingest_blob("ci", &in_flight[..], &[]).await.unwrap();
    let in_flight = BlobInfo::of(&in_flight);

    let options = GcOptions {
        grace: days(10),
        dry_run: false,
    };
    let report = store.gc("ops", options).await.unwrap();
    assert_eq!(report.purged, vec![created.package_id]);
    assert!(report.deleted.is_empty(), "{:?}", report.deleted);
    assert!(bytes_present(store, &info.blake3).await);
    assert!(bytes_present(store, &in_flight.blake3).await);

    // Past the grace period the purged package's blob (11 days old) goes; the upload (3 days
    // old) stays.
    fixture.clock.advance(days(3));
    let report = store
        .gc(
            "ops",
            GcOptions {
                grace: days(4),
                dry_run: false,
            },
        )
        .await
        .unwrap();
    assert!(report.purged.is_empty());
    assert_eq!(report.deleted, vec![info]);
    assert!(!bytes_present(store, &info.blake3).await);
    assert!(bytes_present(store, &in_flight.blake3).await);
    assert!(
        store
            .blob(&AnyDigest::Blake3(in_flight.blake3))
            .await
            .unwrap()
            .is_some()
    );
    // A grace that is not a fixed duration is refused, and changes nothing.
    let head = head_seq(store).await;
    let refused = store
        .gc(
            "ops",
            GcOptions {
                grace: artifact_core::time::Period::Years(1),
                dry_run: false,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error_kind(&refused), "InvalidInput", "{refused}");
    assert_eq!(head_seq(store).await, head);
}

async fn gc_never_purges_a_held_or_extended_package(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    let held = push(store, "held", "1", "ephemeral", &[("h", b"held bytes")]).await;
    let extended = push(store, "ext", "1", "ephemeral", &[("e", b"extended bytes")]).await;
    fixture.clock.advance(days(8));
    store.sweep("ci", None).await.unwrap();
    // Both eligible; then one is held and the other extended (both flip back).
    store
        .hold("legal", &by_id(held.package_id), "litigation")
        .await
        .unwrap();
    let until = plus_days(fixture.clock.now(), 30);
    store
        .extend("ops", &by_id(extended.package_id), until, "still needed")
        .await
        .unwrap();
    fixture.clock.advance(days(2));
    let dry = store.gc("ops", gc_options(true)).await.unwrap();
    let report = store.gc("ops", gc_options(false)).await.unwrap();
    assert!(dry.purged.is_empty() && dry.deleted.is_empty(), "{dry:?}");
    assert!(
        report.purged.is_empty() && report.deleted.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        read_file(store, held.package_id, "h").await.unwrap(),
        b"held bytes"
    );
    assert_eq!(
        read_file(store, extended.package_id, "e").await.unwrap(),
        b"extended bytes"
    );
    assert!(
        events_of_type(store, types::PACKAGE_PURGED)
            .await
            .is_empty()
    );
}

async fn package_created_during_gc_never_names_deleted_bytes(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let gc_handle = fixture.second_handle().await;
    // Each round: a blob recorded long ago that nothing references (a client ingested it and
    // never made the package); a package referencing it races a GC that may delete it.
    let rounds = 12u64;
    let (mut created, mut refused) = (0, 0);
    for i in 0..rounds {
        let content = pseudo_random_bytes(30_000, 100 + i);
        let content = &content;
        fixture
            .store
            .ingest_blob("ci", &content[..], &[])
            .await
            .unwrap();
        fixture.clock.advance(days(5));
        let version = i.to_string();
        let m = manifest("racer", &version, "build-cache", &[("f.bin", content)]);
        let (creation, gc) = tokio::join!(
            fixture.store.create_package("ci", &m),
            gc_handle.gc("ops", gc_options(false))
        );
        let gc = gc.unwrap();
        let info = BlobInfo::of(content);
        match creation {
            Ok(package) => {
                created += 1;
                // The package won: GC must have seen the reference and kept the blob.
                assert!(
                    !gc.deleted.contains(&info),
                    "round {i}: deleted a referenced blob"
                );
                assert!(bytes_present(&fixture.store, &info.blake3).await);
                assert_eq!(
                    read_file(&fixture.store, package.package_id, "f.bin")
                        .await
                        .unwrap(),
                    *content
                );
            }
            Err(error) => {
                refused += 1;
                // GC won: the creation is refused for the missing blob, never accepted.
                assert_eq!(error_kind(&error), "MissingBlobs", "round {i}: {error}");
                assert!(gc.deleted.contains(&info));
                assert!(!bytes_present(&fixture.store, &info.blake3).await);
                // Re-ingesting the bytes makes the same package creatable.
                fixture
                    .store
                    .ingest_blob("ci", &content[..], &[])
                    .await
                    .unwrap();
                let package = fixture.store.create_package("ci", &m).await.unwrap();
                assert_eq!(
                    read_file(&fixture.store, package.package_id, "f.bin")
                        .await
                        .unwrap(),
                    *content
                );
            }
        }
    }
    assert_eq!(created + refused, rounds);
    eprintln!("race outcomes: {created} created first, {refused} refused after GC");
    let fsck = fixture.store.fsck().await.unwrap();
    assert!(fsck.ok(), "{:?}", fsck.findings);
    assert_eq!(fsck.packages, rounds);
}

async fn interrupted_gc_is_finished_when_the_store_opens(backend: Backend) {
    let mut fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let content = pseudo_random_bytes(40_000, 6);
    let created = push(
        &fixture.store,
        "doomed",
        "1",
        "ephemeral",
        &[("d.bin", &content)],
    )
    .await;
    let kept = push(
        &fixture.store,
        "kept",
        "1",
        "build-cache",
        &[("k.bin", b"kept")],
    )
    .await;
    fixture.clock.advance(days(10));
    fixture.store.sweep("ci", None).await.unwrap();

    // GC dies right after deleting the bytes, before recording `v1.blob.deleted`.
    let witness = DeletionWitness::new(&fixture).await;
    let dying = witness.store(&fixture).await;
    witness.die_after_deleting.store(true, Ordering::SeqCst);
    let error = dying.gc("ops", gc_options(false)).await.unwrap_err();
    assert!(error.to_string().contains("simulated crash"), "{error}");
    dying.catalog().close().await;
    let info = BlobInfo::of(&content);
    assert!(!bytes_present(&fixture.store, &info.blake3).await);
    let started = events_of_type(&fixture.store, types::BLOB_DELETION_STARTED).await;
    assert_eq!(started.len(), 1, "the intent was committed");
    assert!(
        events_of_type(&fixture.store, types::BLOB_DELETED)
            .await
            .is_empty()
    );
    let record = fixture
        .store
        .blob(&AnyDigest::Blake3(info.blake3))
        .await
        .unwrap()
        .expect("still recorded, marked as being deleted");
    assert_eq!(record.deleting_seq, Some(started[0].seq));
    // A blob being deleted can gain no reference: even with its bytes uploaded again (a client
    // retrying), referencing or recording it is refused until the deletion is finished.
    fixture.store.write_blob(&content[..], &[]).await.unwrap();
    assert!(bytes_present(&fixture.store, &info.blake3).await);
    let error = fixture
        .store
        .create_package(
            "ci",
            &manifest("again", "1", "build-cache", &[("d.bin", &content)]),
        )
        .await
        .unwrap_err();
    assert_eq!(error_kind(&error), "MissingBlobs", "{error}");
    let error = fixture.store.record_blobs("ci", &[info]).await.unwrap_err();
    assert!(error.to_string().contains("being deleted"), "{error}");

    // Opening the store finishes the deletion: `v1.blob.deleted` follows, fsck is clean.
    let head = head_seq(&fixture.store).await;
    fixture.reopen().await;
    let events = all_events(&fixture.store).await;
    assert_eq!(events.len() as u64, head + 1);
    let last = events.last().unwrap();
    assert_eq!(last.event_type, types::BLOB_DELETED);
    assert_eq!(
        data_text(last, "blake3"),
        Some(info.blake3.to_string().as_str())
    );
    let fsck = fixture.store.fsck().await.unwrap();
    assert!(fsck.ok(), "{:?}", fsck.findings);
    // Reopening again changes nothing; the next GC has nothing to do.
    fixture.reopen().await;
    assert_eq!(head_seq(&fixture.store).await, head + 1);
    let report = fixture.store.gc("ops", gc_options(false)).await.unwrap();
    assert!(report.deleted.is_empty() && report.purged.is_empty());
    assert_eq!(
        read_file(&fixture.store, kept.package_id, "k.bin")
            .await
            .unwrap(),
        b"kept"
    );
    // The content can be stored and referenced again now that its deletion is recorded.
    fixture
        .store
        .ingest_blob("ci", &content[..], &[])
        .await
        .unwrap();
    fixture
        .store
        .create_package(
            "ci",
            &manifest("again", "1", "build-cache", &[("d.bin", &content)]),
        )
        .await
        .unwrap();
    assert!(
        fixture
            .store
            .manifest(&by_id(created.package_id))
            .await
            .is_ok(),
        "the purged package's manifest is kept forever"
    );
}

/// Bytes of a recorded blob lost outside GC (here: removed by hand) are never recorded as a
/// deletion: reopening the store leaves them an fsck finding.
async fn bytes_lost_outside_gc_stay_an_fsck_finding(backend: Backend) {
    let mut fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let content = pseudo_random_bytes(30_000, 7);
    let record = fixture
        .store
        .ingest_blob("ci", &content[..], &[])
        .await
        .unwrap();
    std::fs::remove_file(blob_file(&fixture, &record.info.blake3)).unwrap();
    let head = head_seq(&fixture.store).await;
    fixture.reopen().await;
    assert_eq!(
        head_seq(&fixture.store).await,
        head,
        "opening records nothing"
    );
    let fsck = fixture.store.fsck().await.unwrap();
    assert_eq!(fsck.findings.len(), 1, "{:?}", fsck.findings);
    assert_eq!(fsck.findings[0].kind, "missing-blob");
    assert_eq!(fsck.findings[0].subject, record.info.blake3.to_string());
}

async fn gc_deletes_orphaned_bytes_only_after_the_grace_period(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    // Durable bytes no event names (a crash between the write and its event).
    let orphan = store
        .write_blob(&pseudo_random_bytes(20_000, 7)[..], &[])
        .await
        .unwrap();
    let fsck = store.fsck().await.unwrap();
    assert!(fsck.ok(), "{:?}", fsck.findings);
    assert_eq!(fsck.notes.len(), 1, "{:?}", fsck.notes);
    // The fs backend's times are the file's mtime (real time): a grace far longer than the
    // test keeps it; after it has aged past a 1 ms grace it goes.
    let report = store
        .gc(
            "ops",
            GcOptions {
                grace: days(1),
                dry_run: false,
            },
        )
        .await
        .unwrap();
    assert!(report.orphans.is_empty());
    assert!(bytes_present(store, &orphan.blake3).await);
    // The manual clock starts in 2026-01-01; real mtimes are later, so move the clock past them.
    fixture.clock.set(ymd(2100, 1, 1));
    let head = head_seq(store).await;
    let dry = store.gc("ops", gc_options(true)).await.unwrap();
    assert_eq!(dry.orphans, vec![orphan.blake3]);
    assert!(bytes_present(store, &orphan.blake3).await);
    let report = store.gc("ops", gc_options(false)).await.unwrap();
    assert_eq!(report.orphans, vec![orphan.blake3]);
    assert!(!bytes_present(store, &orphan.blake3).await);
    assert_eq!(
        head_seq(store).await,
        head,
        "nothing recorded them, nothing is recorded"
    );
}

// ----- verify (scrub) ------------------------------------------------------------------------

fn flip_byte(path: &std::path::Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x01;
    let mut permissions = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(path, permissions).unwrap();
    std::fs::write(path, bytes).unwrap();
}

async fn verify_finds_a_flipped_byte_and_fsck_reports_it(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    let bad = pseudo_random_bytes(400_000, 8);
    let good = pseudo_random_bytes(100_000, 9);
    let created = push(
        store,
        "scrub",
        "1",
        "build-cache",
        &[("bad.bin", &bad), ("good.bin", &good)],
    )
    .await;
    let clean = store
        .verify_blobs("ops", VerifyOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(clean.failed.is_empty());
    // Two files and the manifest.
    assert_eq!(clean.checked, 3);

    let info = BlobInfo::of(&bad);
    flip_byte(&blob_file(&fixture, &info.blake3), 123_456);
    let mut progress = 0;
    let report = store
        .verify_blobs("ops", VerifyOptions::default(), |bytes| progress = bytes)
        .await
        .unwrap();
    assert_eq!(report.checked, 3);
    assert_eq!(progress, report.bytes);
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert_eq!(report.failed[0].blake3, info.blake3);
    assert!(
        report.failed[0].reason.contains("hashes to"),
        "{}",
        report.failed[0].reason
    );

    let failed = events_of_type(store, types::INTEGRITY_FAILED).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        data_text(&failed[0], "blake3"),
        Some(info.blake3.to_string().as_str())
    );
    assert!(data_text(&failed[0], "reason").is_some_and(|r| !r.is_empty()));
    // 3 from the clean run, 2 from this one.
    assert_eq!(
        events_of_type(store, types::INTEGRITY_CHECKED).await.len(),
        5
    );

    // Full reads fail rather than return the wrong bytes; the intact file still reads.
    match store.read_blob_bytes(&info).await {
        Err(Error::Corrupt { blake3, .. }) => assert_eq!(blake3, info.blake3.to_string()),
        Ok(_) => panic!("corrupt bytes returned as good"),
        Err(other) => panic!("expected Corrupt, got {other}"),
    }
    assert!(
        read_file(store, created.package_id, "bad.bin")
            .await
            .is_err()
    );
    assert_eq!(
        read_file(store, created.package_id, "good.bin")
            .await
            .unwrap(),
        good
    );

    // fsck: the size is right, but the latest check failed.
    let fsck = store.fsck().await.unwrap();
    assert!(!fsck.ok());
    assert_eq!(fsck.findings.len(), 1, "{:?}", fsck.findings);
    assert_eq!(fsck.findings[0].kind, "failed-check");
    assert_eq!(fsck.findings[0].subject, info.blake3.to_string());

    // Views still equal a replay with the integrity events in them.
    assert_views_match_replay(store).await;
}

async fn sampled_and_rate_limited_verify_check_what_they_report(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    let blobs = 200u64;
    for i in 0..blobs {
        store
            .ingest_blob("ci", &pseudo_random_bytes(1_000, 1_000 + i)[..], &[])
            .await
            .unwrap();
    }
    // A sample checks a subset and records exactly what it checked. With 200 blobs and p = 0.5,
    // "none" or "all" has probability 2^-199.
    let head = head_seq(store).await;
    let sampled = store
        .verify_blobs(
            "ops",
            VerifyOptions {
                sample: 0.5,
                max_bytes_per_sec: None,
            },
            |_| {},
        )
        .await
        .unwrap();
    assert!(
        sampled.checked > 0 && sampled.checked < blobs,
        "{sampled:?}"
    );
    assert_eq!(sampled.bytes, sampled.checked * 1_000);
    assert!(sampled.failed.is_empty());
    assert_eq!(head_seq(store).await, head + sampled.checked);
    assert_eq!(
        events_of_type(store, types::INTEGRITY_CHECKED).await.len() as u64,
        sampled.checked
    );

    // A rate-limited full scrub still checks every blob (speed is not asserted).
    let limited = store
        .verify_blobs(
            "ops",
            VerifyOptions {
                sample: 1.0,
                max_bytes_per_sec: Some(2_000_000),
            },
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(limited.checked, blobs);
    assert_eq!(limited.bytes, blobs * 1_000);

    // Bad fractions are refused and change nothing.
    let head = head_seq(store).await;
    for sample in [0.0, -0.5, 1.5, f64::NAN] {
        let error = store
            .verify_blobs(
                "ops",
                VerifyOptions {
                    sample,
                    max_bytes_per_sec: None,
                },
                |_| {},
            )
            .await
            .unwrap_err();
        assert_eq!(error_kind(&error), "InvalidInput", "{sample}: {error}");
    }
    assert_eq!(head_seq(store).await, head);
}
