//! Conformance suites as library code (cargo feature `testing`), run by every backend crate's
//! tests against a real backend (object_store's `integration.rs` style).
//!
//! # Blob backends
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn artifact_core::blob::BlobStore>) {
//! use artifact_core::testing::{ConformanceOptions, run_all};
//!
//! run_all(store, ConformanceOptions::default().with_part_size(5 << 20)).await;
//! # }
//! ```
//!
//! Each suite function takes the store and the capability/size parameters it needs, panics
//! with a message naming the broken guarantee, and leaves the store as it found it (it
//! deletes what it wrote), so the functions may run in any order on a shared store. The one
//! assumption: no other writer creates or deletes blobs in the same store while
//! [`list_exact`] runs.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncReadExt as _;

use crate::blob::{BlobStore, ByteRange};
use crate::digest::{Blake3, BlobInfo, DualHasher};
use crate::error::Error;

/// How the blob suite drives a backend.
#[derive(Clone, Debug)]
pub struct ConformanceOptions {
    /// The backend's multipart part size (or write-buffer size), when it has one: adds the
    /// threshold sizes `part − 1`, `part`, `part + 1` and `2 × part + 1` to the size table.
    pub part_size: Option<u64>,
    /// The largest blob round-tripped (default 64 MiB).
    pub large_size: u64,
    /// How many writers race to store the same content in [`concurrent_same_content`].
    pub concurrent_writers: usize,
    /// Size of the chunks handed to [`StagedBlob::write`](crate::blob::StagedBlob::write).
    /// Deliberately not a power of two by default (1 MiB + 7), so part boundaries fall inside
    /// chunks.
    pub chunk_size: usize,
}

impl Default for ConformanceOptions {
    fn default() -> Self {
        Self {
            part_size: None,
            large_size: 64 << 20,
            concurrent_writers: 4,
            chunk_size: (1 << 20) + 7,
        }
    }
}

impl ConformanceOptions {
    /// Sets [`ConformanceOptions::part_size`].
    pub fn with_part_size(mut self, part_size: u64) -> Self {
        self.part_size = Some(part_size);
        self
    }

    /// Sets [`ConformanceOptions::large_size`].
    pub fn with_large_size(mut self, large_size: u64) -> Self {
        self.large_size = large_size;
        self
    }

    /// Sets [`ConformanceOptions::concurrent_writers`].
    pub fn with_concurrent_writers(mut self, writers: usize) -> Self {
        self.concurrent_writers = writers.max(1);
        self
    }

    /// Sets [`ConformanceOptions::chunk_size`].
    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size.max(1);
        self
    }
}

/// One entry of the size table: a size and the path it exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterestingSize {
    /// Bytes.
    pub size: u64,
    /// What this size exercises.
    pub why: &'static str,
}

/// S3's minimum part size: the smallest multipart upload has two parts, the first this big.
pub const S3_MIN_PART: u64 = 5 << 20;

/// The sizes every round trip covers (like iroh-blobs' `INTERESTING_SIZES`), with the
/// multipart thresholds when the part size is known. Sorted, without duplicates.
pub fn interesting_sizes(options: &ConformanceOptions) -> Vec<InterestingSize> {
    let chunk = options.chunk_size as u64;
    let mut sizes = vec![
        // Nothing written at all: commit must publish an empty object (single PUT, or an
        // empty temp file renamed).
        InterestingSize {
            size: 0,
            why: "empty blob: no write call",
        },
        // One write of one byte.
        InterestingSize {
            size: 1,
            why: "one byte",
        },
        // Exactly one write chunk, then one more byte: the second write is tiny.
        InterestingSize {
            size: chunk + 1,
            why: "one chunk + 1: a tiny trailing write",
        },
        // S3's minimum part + 1: with 5 MiB parts, a two-part upload whose last part is 1 B.
        InterestingSize {
            size: S3_MIN_PART + 1,
            why: "S3 minimum part + 1: smallest real multipart upload",
        },
        // Many parts (many chunks), with part boundaries inside chunks; hashing is pipelined
        // on a thread above 4 MiB in the library's ingest.
        InterestingSize {
            size: options.large_size,
            why: "large: many parts, pipelined writes",
        },
    ];
    if let Some(part) = options.part_size {
        sizes.extend([
            // One byte short of a part: single-request path.
            InterestingSize {
                size: part - 1,
                why: "part − 1: largest single-request upload but one",
            },
            // Exactly one part: the largest blob that still takes the single-request path.
            InterestingSize {
                size: part,
                why: "exactly one part: largest single-request upload",
            },
            // One byte over: the smallest multipart upload (one full part + 1 byte).
            InterestingSize {
                size: part + 1,
                why: "part + 1: smallest multipart upload of this store",
            },
            // Two full parts and a 1-byte tail.
            InterestingSize {
                size: 2 * part + 1,
                why: "2 × part + 1: full parts then a 1-byte last part",
            },
        ]);
    }
    sizes.sort_by_key(|s| s.size);
    sizes.dedup_by_key(|s| s.size);
    sizes
}

/// Deterministic, incompressible-looking bytes (xorshift), different for every `seed`.
pub fn test_bytes(size: u64, seed: u64) -> Vec<u8> {
    let len = usize::try_from(size).expect("test size fits in memory");
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    data
}

/// Stages `data` in `chunk_size` writes and commits it under its BLAKE3 key.
pub async fn put_bytes(store: &dyn BlobStore, data: &[u8], chunk_size: usize) -> BlobInfo {
    let info = BlobInfo::of(data);
    let mut staged = store.stage().await.expect("stage");
    for chunk in data.chunks(chunk_size.max(1)) {
        staged
            .write(Bytes::copy_from_slice(chunk))
            .await
            .expect("write a staged chunk");
    }
    staged.commit(&info.blake3).await.expect("commit");
    info
}

/// Reads a blob (or a range) to the end and returns `(size reported, range, bytes)`.
pub async fn read_range(
    store: &dyn BlobStore,
    key: &Blake3,
    range: Option<ByteRange>,
) -> crate::Result<(u64, (u64, u64), Vec<u8>)> {
    let mut read = store.get(key, range).await?;
    let mut bytes = Vec::new();
    read.reader.read_to_end(&mut bytes).await?;
    Ok((read.size, read.range, bytes))
}

/// Streams a whole blob through [`DualHasher`] and returns what it hashes to.
pub async fn read_info(store: &dyn BlobStore, key: &Blake3) -> BlobInfo {
    let mut read = store.get(key, None).await.expect("get a stored blob");
    let mut hasher = DualHasher::new();
    let mut buffer = vec![0u8; 256 << 10];
    loop {
        let n = read.reader.read(&mut buffer).await.expect("read a blob");
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    let info = hasher.finalize();
    assert_eq!(
        read.size, info.size,
        "get() reported a size different from the bytes it yielded"
    );
    info
}

/// Every size of [`interesting_sizes`] round-trips: commit, head, streaming get (both
/// digests), then delete.
pub async fn round_trips(store: &dyn BlobStore, options: &ConformanceOptions) {
    for (index, entry) in interesting_sizes(options).into_iter().enumerate() {
        let data = test_bytes(entry.size, 1000 + index as u64);
        let info = put_bytes(store, &data, options.chunk_size).await;
        drop(data);
        let meta = store.head(&info.blake3).await.expect("head");
        assert_eq!(
            meta.map(|m| m.size),
            Some(entry.size),
            "head after commit, size {} ({})",
            entry.size,
            entry.why
        );
        let read = read_info(store, &info.blake3).await;
        assert_eq!(
            read, info,
            "round trip of {} bytes ({}) returned other bytes",
            entry.size, entry.why
        );
        // Committing the same content again is a no-op that keeps the bytes.
        if entry.size <= 2 << 20 {
            let again = put_bytes(store, &test_bytes(entry.size, 1000 + index as u64), 4096).await;
            assert_eq!(again, info);
            assert_eq!(read_info(store, &info.blake3).await, info);
        }
        store.delete(&info.blake3).await.expect("delete");
        assert_eq!(store.head(&info.blake3).await.expect("head"), None);
    }
}

/// Ranged reads: start, middle, suffix, end past the size (clamped), a range inside a later
/// part; unsatisfiable ranges are [`Error::InvalidInput`].
pub async fn ranges(store: &dyn BlobStore, options: &ConformanceOptions) {
    let size = options.part_size.map_or(3 << 20, |part| 2 * part + 1000);
    let data = test_bytes(size, 7);
    let info = put_bytes(store, &data, options.chunk_size).await;
    let cases: Vec<(ByteRange, (u64, u64), &str)> = vec![
        (
            ByteRange {
                start: 0,
                end: Some(10),
            },
            (0, 10),
            "start",
        ),
        (
            ByteRange {
                start: size / 2 - 50,
                end: Some(size / 2 + 50),
            },
            (size / 2 - 50, size / 2 + 50),
            "middle",
        ),
        (
            ByteRange {
                start: size - 10,
                end: None,
            },
            (size - 10, size),
            "suffix (open end)",
        ),
        (
            ByteRange {
                start: size - 3,
                end: Some(size + 100),
            },
            (size - 3, size),
            "end past the size is clamped",
        ),
        (
            ByteRange {
                start: size - 1,
                end: Some(size),
            },
            (size - 1, size),
            "last byte",
        ),
        (
            ByteRange {
                start: 0,
                end: None,
            },
            (0, size),
            "whole blob",
        ),
    ];
    for (range, expected, what) in cases {
        let (total, got_range, bytes) = read_range(store, &info.blake3, Some(range))
            .await
            .unwrap_or_else(|e| panic!("ranged get ({what}) failed: {e}"));
        assert_eq!(total, size, "ranged get ({what}) reports the blob's size");
        assert_eq!(got_range, expected, "ranged get ({what}) range");
        let (start, end) = (expected.0 as usize, expected.1 as usize);
        assert!(
            bytes == data[start..end],
            "ranged get ({what}) returned other bytes"
        );
    }
    let unsatisfiable = [
        (
            ByteRange {
                start: size,
                end: None,
            },
            "start at the size",
        ),
        (
            ByteRange {
                start: size + 10,
                end: Some(size + 20),
            },
            "start past the size",
        ),
        (
            ByteRange {
                start: 5,
                end: Some(5),
            },
            "empty range",
        ),
    ];
    for (range, what) in unsatisfiable {
        match store.get(&info.blake3, Some(range)).await {
            Err(Error::InvalidInput(_)) => {}
            Err(other) => {
                panic!("unsatisfiable range ({what}): expected InvalidInput, got {other}")
            }
            Ok(read) => panic!("unsatisfiable range ({what}) was served: {read:?}"),
        }
    }
    // An empty blob has no satisfiable range at all.
    let empty = put_bytes(store, &[], options.chunk_size).await;
    match store
        .get(
            &empty.blake3,
            Some(ByteRange {
                start: 0,
                end: None,
            }),
        )
        .await
    {
        Err(Error::InvalidInput(_)) => {}
        Err(other) => panic!("range of an empty blob: expected InvalidInput, got {other}"),
        Ok(read) => panic!("range of an empty blob was served: {read:?}"),
    }
    store.delete(&empty.blake3).await.expect("delete");
    store.delete(&info.blake3).await.expect("delete");
}

/// Several writers store the same content at once: all succeed, one blob results, intact.
pub async fn concurrent_same_content(store: Arc<dyn BlobStore>, options: &ConformanceOptions) {
    let size = options.part_size.map_or(S3_MIN_PART + 1, |part| part + 1);
    let data = Arc::new(test_bytes(size, 99));
    let expected = BlobInfo::of(&data);
    let mut writers = Vec::new();
    for writer in 0..options.concurrent_writers {
        let store = Arc::clone(&store);
        let data = Arc::clone(&data);
        // Different chunkings, so parts differ in timing.
        let chunk = options.chunk_size + writer * 4099;
        writers.push(tokio::spawn(async move {
            put_bytes(store.as_ref(), &data, chunk).await
        }));
    }
    for writer in writers {
        let info = writer.await.expect("a concurrent writer panicked");
        assert_eq!(info, expected);
    }
    assert_eq!(
        store.head(&expected.blake3).await.expect("head"),
        Some(crate::blob::BlobMeta { size }),
        "concurrent writers of one content leave one blob of the right size"
    );
    assert_eq!(
        read_info(store.as_ref(), &expected.blake3).await,
        expected,
        "concurrent writers of one content corrupted it"
    );
    let listed = store.list().await.expect("list");
    assert_eq!(
        listed.iter().filter(|k| **k == expected.blake3).count(),
        1,
        "the deduplicated blob is listed once"
    );
    store.delete(&expected.blake3).await.expect("delete");
}

/// An absent blob: `get` is [`Error::NotFound`] (also for a range), `head` is `None`, `delete`
/// succeeds.
pub async fn missing(store: &dyn BlobStore) {
    let key = Blake3::of(b"artifactstore conformance: never stored");
    match store.get(&key, None).await {
        Err(Error::NotFound { .. }) => {}
        Err(other) => panic!("get of a missing blob: expected NotFound, got {other}"),
        Ok(read) => panic!("get of a missing blob succeeded: {read:?}"),
    }
    match store
        .get(
            &key,
            Some(ByteRange {
                start: 0,
                end: Some(1),
            }),
        )
        .await
    {
        Err(Error::NotFound { .. }) => {}
        Err(other) => panic!("ranged get of a missing blob: expected NotFound, got {other}"),
        Ok(read) => panic!("ranged get of a missing blob succeeded: {read:?}"),
    }
    assert_eq!(
        store.head(&key).await.expect("head of a missing blob"),
        None
    );
    store
        .delete(&key)
        .await
        .expect("deleting a missing blob succeeds");
}

/// Aborting (or dropping) a staged write, before or after it outgrew one part, leaves nothing
/// visible: neither `head` nor `list` shows it, and the key can be written afterwards.
pub async fn abort_leaves_nothing(store: &dyn BlobStore, options: &ConformanceOptions) {
    let big = options
        .part_size
        .map_or(S3_MIN_PART * 2 + 1, |part| 2 * part + 1);
    for (size, drop_instead, what) in [
        (1000u64, false, "small, aborted"),
        (big, false, "multipart, aborted mid-stream"),
        (big, true, "multipart, dropped mid-stream"),
    ] {
        let data = test_bytes(size, 500 + size);
        let info = BlobInfo::of(&data);
        let mut staged = store.stage().await.expect("stage");
        for chunk in data.chunks(options.chunk_size) {
            staged
                .write(Bytes::copy_from_slice(chunk))
                .await
                .expect("write");
        }
        if drop_instead {
            drop(staged);
            // Let a backend's background cleanup run.
            tokio::task::yield_now().await;
        } else {
            staged.abort().await.expect("abort");
        }
        assert_eq!(
            store.head(&info.blake3).await.expect("head"),
            None,
            "{what}: the blob is visible"
        );
        assert!(
            !store.list().await.expect("list").contains(&info.blake3),
            "{what}: the blob is listed"
        );
        match store.get(&info.blake3, None).await {
            Err(Error::NotFound { .. }) => {}
            Err(other) => panic!("{what}: get expected NotFound, got {other}"),
            Ok(read) => panic!("{what}: the blob is readable: {read:?}"),
        }
        // The same content can still be stored normally afterwards.
        let stored = put_bytes(store, &data, options.chunk_size).await;
        assert_eq!(read_info(store, &stored.blake3).await, info);
        store.delete(&stored.blake3).await.expect("delete");
    }
}

/// Deleting is idempotent: delete, delete again, both succeed and the blob is gone.
pub async fn delete_idempotent(store: &dyn BlobStore) {
    let info = put_bytes(store, b"delete me twice", 4).await;
    store.delete(&info.blake3).await.expect("first delete");
    assert_eq!(store.head(&info.blake3).await.expect("head"), None);
    store
        .delete(&info.blake3)
        .await
        .expect("second delete of the same blob");
    match store.get(&info.blake3, None).await {
        Err(Error::NotFound { .. }) => {}
        Err(other) => panic!("get after delete: expected NotFound, got {other}"),
        Ok(read) => panic!("get after delete succeeded: {read:?}"),
    }
    assert!(!store.list().await.expect("list").contains(&info.blake3));
}

/// `delete_many` deletes exactly the keys it is given, absent ones included (GC's batches),
/// and leaves every other blob readable.
pub async fn delete_many_exact(store: &dyn BlobStore) {
    let doomed: Vec<BlobInfo> = [b"delete many: one".as_slice(), b"delete many: two"]
        .iter()
        .map(|data| BlobInfo::of(data))
        .collect();
    for (data, info) in [b"delete many: one".as_slice(), b"delete many: two"]
        .iter()
        .zip(&doomed)
    {
        assert_eq!(put_bytes(store, data, 4).await, *info);
    }
    let kept = put_bytes(store, b"delete many: kept", 4).await;
    let mut keys: Vec<Blake3> = doomed.iter().map(|info| info.blake3).collect();
    keys.push(Blake3::of(b"delete many: never stored"));
    store.delete_many(&keys).await.expect("delete_many");
    for info in &doomed {
        assert_eq!(store.head(&info.blake3).await.expect("head"), None);
    }
    assert_eq!(
        store
            .head(&kept.blake3)
            .await
            .expect("head")
            .map(|m| m.size),
        Some(kept.size)
    );
    store
        .delete_many(&keys)
        .await
        .expect("delete_many of keys already gone");
    store
        .delete_many(&[])
        .await
        .expect("delete_many of nothing");
    store.delete(&kept.blake3).await.expect("delete");
}

/// `list` shows exactly the committed keys: what was there before plus what was committed
/// (sorted, no duplicates, nothing staged or aborted), and after deleting them, what was there
/// before.
pub async fn list_exact(store: &dyn BlobStore, options: &ConformanceOptions) {
    let before: BTreeSet<Blake3> = store.list().await.expect("list").into_iter().collect();
    let mut committed = BTreeSet::new();
    for index in 0..5u64 {
        let size = index * 1000 + 1;
        let info = put_bytes(store, &test_bytes(size, 4000 + index), options.chunk_size).await;
        committed.insert(info.blake3);
    }
    // An uncommitted write in progress must not show.
    let mut pending = store.stage().await.expect("stage");
    pending
        .write(Bytes::from_static(b"not committed"))
        .await
        .expect("write");
    let listed = store.list().await.expect("list");
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(listed, sorted, "list() is sorted and has no duplicates");
    let expected: BTreeSet<Blake3> = before.union(&committed).copied().collect();
    assert_eq!(
        listed.into_iter().collect::<BTreeSet<_>>(),
        expected,
        "list() shows exactly the committed keys"
    );
    pending.abort().await.expect("abort");
    for key in &committed {
        store.delete(key).await.expect("delete");
    }
    let after: BTreeSet<Blake3> = store.list().await.expect("list").into_iter().collect();
    assert_eq!(after, before, "list() after deleting what the suite wrote");
}

/// `check` succeeds on a healthy store.
pub async fn check_ok(store: &dyn BlobStore) {
    store
        .check()
        .await
        .unwrap_or_else(|e| panic!("check() of a healthy store failed: {e}"));
}

/// Runs every blob-backend suite function, one after the other.
pub async fn run_all(store: Arc<dyn BlobStore>, options: ConformanceOptions) {
    check_ok(store.as_ref()).await;
    missing(store.as_ref()).await;
    round_trips(store.as_ref(), &options).await;
    ranges(store.as_ref(), &options).await;
    concurrent_same_content(Arc::clone(&store), &options).await;
    abort_leaves_nothing(store.as_ref(), &options).await;
    delete_idempotent(store.as_ref()).await;
    delete_many_exact(store.as_ref()).await;
    list_exact(store.as_ref(), &options).await;
}

/// The timestamp member `key` of an event's payload, if it is one.
fn event_ts(event: &crate::event::Event, key: &str) -> Option<crate::time::Timestamp> {
    event.data_text(key).and_then(|t| t.parse().ok())
}

/// Walks one package's events in order (those of `events`, the whole log or a part of it,
/// that name it) and asserts that every retention transition was legal in the state the log
/// had just before it (no eligibility while held or twice, no extension from a stale or to an
/// earlier expiry); returns how many times it was marked eligible. For concurrency tests that
/// drive many writers at one store.
pub fn check_package_history(
    package: crate::digest::PackageId,
    events: &[crate::event::Event],
) -> usize {
    let mut state: Option<crate::retention::RetentionState> = None;
    let mut eligible_marks = 0;
    for event in events.iter().filter(|e| e.package_id == Some(package)) {
        if let Some(current) = &state {
            match event.event_type.as_str() {
                crate::event::types::RETENTION_DELETION_ELIGIBLE => {
                    let as_of = event_ts(event, "as_of").expect("deletion_eligible has as_of");
                    assert!(
                        !current.eligible_for_deletion,
                        "{package}: seq {} marks it eligible again without a flip back since seq {:?}",
                        event.seq, current.eligible_seq
                    );
                    assert_eq!(
                        current.active_holds(),
                        0,
                        "{package}: seq {} marks it eligible while it holds a hold",
                        event.seq
                    );
                    assert!(
                        current.current_expires_at.is_some_and(|t| t <= as_of),
                        "{package}: seq {} marks it eligible before its expiry",
                        event.seq
                    );
                    eligible_marks += 1;
                }
                crate::event::types::RETENTION_EXTENDED => {
                    let previous = event_ts(event, "previous_expires_at");
                    let new = event_ts(event, "new_expires_at");
                    assert_eq!(
                        previous, current.current_expires_at,
                        "{package}: seq {} extends from a stale expiry",
                        event.seq
                    );
                    assert!(
                        new > previous,
                        "{package}: seq {} moves the expiry earlier",
                        event.seq
                    );
                }
                _ => {}
            }
        }
        crate::retention::RetentionState::apply(&mut state, event);
    }
    eligible_marks
}

/// A benchmark's numeric option: the value after `name` on the command line (`--rounds 3`),
/// else `default`.
pub fn bench_arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of a benchmark's per-round figures (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Throughput in GB/s (10^9 bytes a second).
pub fn gbps(bytes: usize, elapsed: std::time::Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e9
}

/// The small packages of the ingest, catalog and HTTP benchmarks: one file `f.bin` whose
/// content is the blob `info`, in the `ephemeral` class.
pub fn one_file_manifest(
    name: impl Into<String>,
    version: impl Into<String>,
    info: &crate::digest::BlobInfo,
) -> crate::manifest::Manifest {
    crate::manifest::Manifest {
        name: name.into(),
        version: version.into(),
        retention_class: "ephemeral".into(),
        files: vec![crate::manifest::FileEntry::of_blob("f.bin", info, None)],
        labels: Default::default(),
    }
}

/// A package of no files (`bulk` / `1.<i>`, `ephemeral`): the fill of the sweep and catalog
/// benchmarks.
pub fn empty_manifest(i: usize) -> crate::manifest::Manifest {
    crate::manifest::Manifest {
        name: "bulk".into(),
        version: format!("1.{i}"),
        retention_class: "ephemeral".into(),
        files: vec![],
        labels: Default::default(),
    }
}

/// A bare database for benchmark peers: one connection to `url`, for SQLite in WAL mode with
/// `synchronous = FULL` (what the catalog uses), so a peer's commits are as durable as ours.
pub async fn raw_pool(url: &str) -> sqlx::AnyPool {
    use sqlx::Executor as _;
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let url = if sqlite && !url.contains('?') {
        format!("{url}?mode=rwc")
    } else {
        url.to_owned()
    };
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
        .expect("raw database")
}

/// The commit-rate peer of the small-package benchmarks: transactions per second of a bare
/// loop that, per transaction, inserts two 300-byte rows and upserts a counter (what one
/// package creation writes, minus our work), on a fresh database at `url`.
pub async fn raw_commit_rate(url: &str, n: usize) -> f64 {
    use sqlx::Executor as _;
    let sqlite = url.starts_with("sqlite:");
    let pool = raw_pool(url).await;
    let blob = if sqlite { "BLOB" } else { "BYTEA" };
    pool.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE ev (seq BIGINT PRIMARY KEY, body {blob} NOT NULL)"
    )))
    .await
    .expect("ddl");
    pool.execute("CREATE TABLE st (id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        .await
        .expect("ddl");
    let body = vec![7u8; 300];
    let start = std::time::Instant::now();
    for i in 0..n {
        let mut tx = if sqlite {
            pool.begin_with("BEGIN IMMEDIATE").await
        } else {
            pool.begin().await
        }
        .expect("begin");
        for k in 0..2 {
            sqlx::query("INSERT INTO ev (seq, body) VALUES ($1, $2)")
                .bind((i * 2 + k + 1) as i64)
                .bind(body.clone())
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        sqlx::query(
            "INSERT INTO st (id, n) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET n = st.n + 1",
        )
        .bind(format!("p{}", i % 100))
        .execute(&mut *tx)
        .await
        .expect("upsert");
        tx.commit().await.expect("commit");
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    pool.close().await;
    rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_table_has_thresholds_sorted() {
        let options = ConformanceOptions::default().with_part_size(5 << 20);
        let sizes: Vec<u64> = interesting_sizes(&options).iter().map(|s| s.size).collect();
        let part = 5u64 << 20;
        for size in [0, 1, part - 1, part, part + 1, 2 * part + 1, 64 << 20] {
            assert!(sizes.contains(&size), "{size} missing from {sizes:?}");
        }
        assert!(sizes.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(test_bytes(100, 1), test_bytes(100, 1));
        assert_ne!(test_bytes(100, 1), test_bytes(100, 2));
    }
}

/// A manifest of `files` (each `application/octet-stream`, sorted here), without labels: the
/// package builder every test suite uses.
pub fn manifest_of(
    name: &str,
    version: &str,
    class: &str,
    files: &[(&str, &[u8])],
) -> crate::manifest::Manifest {
    let mut manifest = crate::manifest::Manifest {
        name: name.to_owned(),
        version: version.to_owned(),
        retention_class: class.to_owned(),
        files: files
            .iter()
            .map(|(path, content)| {
                crate::manifest::FileEntry::of(*path, content, Some("application/octet-stream"))
            })
            .collect(),
        labels: Default::default(),
    };
    manifest.sort_files();
    manifest
}

/// Asserts that the store's views equal a replay of its log (nothing edited, nothing missed).
pub async fn assert_views_match_replay(store: &crate::ArtifactStore) {
    let differences = store
        .catalog()
        .views_match_replay(store.classes())
        .await
        .expect("replay the log into scratch views");
    assert!(
        differences.is_empty(),
        "views differ from a replay: {differences:?}"
    );
}

/// One value bound to a statement of [`raw_exec`] (`raw_sql!`).
#[derive(Clone, Debug)]
pub enum RawArg {
    /// An integer column.
    Int(i64),
    /// A text column.
    Text(String),
    /// A blob (`BLOB` / `BYTEA`) column.
    Bytes(Vec<u8>),
}

impl From<i64> for RawArg {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<u64> for RawArg {
    fn from(value: u64) -> Self {
        Self::Int(i64::try_from(value).expect("a test seq fits in i64"))
    }
}

impl From<&str> for RawArg {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<String> for RawArg {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<Vec<u8>> for RawArg {
    fn from(value: Vec<u8>) -> Self {
        Self::Bytes(value)
    }
}

impl From<&Vec<u8>> for RawArg {
    fn from(value: &Vec<u8>) -> Self {
        Self::Bytes(value.clone())
    }
}

impl From<&crate::digest::Blake3> for RawArg {
    fn from(value: &crate::digest::Blake3) -> Self {
        Self::Text(value.to_string())
    }
}

impl From<crate::digest::Blake3> for RawArg {
    fn from(value: crate::digest::Blake3) -> Self {
        Self::Text(value.to_string())
    }
}

/// Runs one statement with `args` bound on a raw connection to the catalog (what an insider
/// with database access can do); `$N` placeholders read the same in both dialects. Returns
/// the rows affected.
pub async fn raw_exec(
    pool: &sqlx::AnyPool,
    statement: &str,
    args: Vec<RawArg>,
) -> Result<u64, sqlx::Error> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()));
    for arg in args {
        query = match arg {
            RawArg::Int(value) => query.bind(value),
            RawArg::Text(value) => query.bind(value),
            RawArg::Bytes(value) => query.bind(value),
        };
    }
    Ok(query.execute(pool).await?.rows_affected())
}

/// `raw_sql!(pool, "UPDATE … WHERE seq = $1", seq)`: [`raw_exec`] with each argument
/// converted by `RawArg::from`.
#[macro_export]
macro_rules! raw_sql {
    ($pool:expr, $statement:expr $(, $arg:expr)* $(,)?) => {
        $crate::testing::raw_exec(
            $pool,
            $statement,
            vec![$($crate::testing::RawArg::from($arg)),*],
        )
    };
}

/// Every event after `after`, in seq order.
pub async fn events_after(store: &crate::ArtifactStore, after: u64) -> Vec<crate::event::Event> {
    let mut events: Vec<crate::event::Event> = Vec::new();
    loop {
        let page = store
            .events(&crate::catalog::EventQuery {
                after: events.last().map_or(after, |e| e.seq),
                limit: Some(1000),
                event_type: None,
                package_id: None,
            })
            .await
            .expect("read events");
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

/// A small tmpfs mounted for one test (a real full disk without filling the machine's).
/// Needs root, as CI has: a failed mount fails the test loudly, it never skips. Unmounted
/// (lazily, so open files cannot block it) on drop.
pub struct Tmpfs {
    base: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes.
    pub fn mount(size: u64) -> Self {
        let base = tempfile::tempdir().expect("tempdir");
        let point = base.path().join("mnt");
        std::fs::create_dir(&point).expect("mount point");
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&point)
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "this test needs a small tmpfs for a real full disk (run as root, as CI does): \
             `mount -t tmpfs` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { base }
    }

    /// The mount point.
    pub fn path(&self) -> std::path::PathBuf {
        self.base.path().join("mnt")
    }

    /// Fills the filesystem: writes a file until `ENOSPC`; returns its path.
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0x5a_u8; 64 << 10];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // Smaller writes take the last partial block.
        for size in [4096, 512, 1] {
            while file.write(&block[..size]).is_ok_and(|n| n > 0) {}
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.path())
            .status();
    }
}

/// The names of the entries of `dir` (none if it does not exist), in no particular order.
pub fn names_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A benchmark's scratch directory: a fresh temp dir on `BENCH_DIR`'s filesystem (default the
/// system temp dir), removed on drop.
pub fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    tempfile::tempdir_in(base).expect("bench dir")
}

/// A benchmark's multi-threaded tokio runtime.
pub fn bench_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The hash-only peer of the ingest benchmarks: both digests of `data` the way ingest computes
/// them (1 MiB chunks, one thread per digest); the time it took.
pub fn hash_only(data: &[u8]) -> std::time::Duration {
    let start = std::time::Instant::now();
    let mut hasher = DualHasher::new();
    for chunk in data.chunks(1 << 20) {
        hasher.update_parallel(chunk);
    }
    std::hint::black_box(hasher.finalize());
    start.elapsed()
}
