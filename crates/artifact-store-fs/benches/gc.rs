//! Garbage-collection benchmark: purge and delete rates of `gc` beside ceilings measured in the
//! same run.
//!
//! ```sh
//! cargo bench -p artifact-store-fs --bench gc                          # 100,000 packages
//! cargo bench -p artifact-store-fs --bench gc -- --packages 20000
//! ```
//! Set `BENCH_DIR` to choose the filesystem (default: a temp dir under the system temp dir).
//!
//! The store holds `--packages` packages of one unique 256-byte file each, all expired. To fill
//! it in reasonable time the benchmark writes the blob files straight into the fs backend's
//! layout (no per-file fsync; GC does not care how they got there) and appends
//! `v1.blob.stored`, `v1.package.created` and `v1.retention.default_applied` through the
//! catalog's write transaction in batches (the same `append` + view updates the library uses),
//! as benches/sweep.rs does. Then:
//! 1. `sweep` marks every package eligible;
//! 2. `gc` with a grace longer than the blobs' age: purges every package, deletes no blob
//!    (purge rate, packages/s);
//! 3. `gc` with a grace shorter than their age: deletes every blob (delete rate, blobs/s).
//!
//! Ceilings, same filesystem, same run:
//! - raw SQLite (WAL, synchronous=FULL, the catalog's settings), 500 rows per transaction as GC
//!   batches: one event insert + one row update per item (purge), one event insert + one row
//!   delete per item (delete);
//! - fs deletes: unlinking as many 256-byte files in the same `blake3/<2 hex>/` layout, then
//!   fsyncing each directory once (what the fs backend's `delete_many` does).
//!
//! Both GC runs also list the backend once for orphaned bytes (a full directory walk), which the
//! ceilings do not include.

#[path = "support/fill.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use artifact_core::blob::Tier;
use artifact_core::digest::BlobInfo;
use artifact_core::event::types::BlobStored;
use artifact_core::maintenance::GcOptions;
use artifact_core::testing::one_file_manifest;
use artifact_core::testing::{bench_arg, bench_dir, bench_runtime};
use artifact_core::time::{Clock as _, ManualClock, Period, Timestamp, ymd};
use artifact_store_fs::EmbeddedOptions;

const BATCH: usize = 500;
const BLOB_BYTES: usize = 256;

fn content(i: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; BLOB_BYTES];
    let mut state = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in bytes.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    bytes
}

fn blob_path(root: &Path, info: &BlobInfo) -> PathBuf {
    let hex = info.blake3.to_hex();
    root.join("blake3").join(&hex[..2]).join(hex)
}

async fn fill(dir: &Path, total: usize, stored_at: Timestamp, clock: &ManualClock) {
    let store = EmbeddedOptions::new(dir)
        .with_clock(Arc::new(clock.clone()))
        .open()
        .await
        .expect("open");
    // Created (and stored) at `stored_at` with the class's 7 days: expired by now, and the
    // log agrees with itself (fsck replays it through the rules).
    let expires_at = stored_at
        .checked_add(Period::Millis(7 * 86_400_000))
        .expect("time");
    assert!(
        expires_at < clock.now(),
        "the fill's packages must have expired"
    );
    let blob_root = dir.join("blobs");
    let fill_start = Instant::now();
    let batch = 5_000;
    let mut created = 0;
    while created < total {
        let mut tx = store.catalog().write().await.expect("write");
        for i in created..(created + batch).min(total) {
            let bytes = content(i);
            let info = BlobInfo::of(&bytes);
            let path = blob_path(&blob_root, &info);
            std::fs::create_dir_all(path.parent().expect("shard")).expect("shard dir");
            std::fs::write(&path, &bytes).expect("blob file");
            let data = BlobStored::new(&info, Tier::Hot);
            tx.append(None, "bench", stored_at, data)
                .await
                .expect("append");
            let manifest = one_file_manifest("bulk", format!("1.{i}"), &info);
            support::append_ephemeral_package(&mut tx, &manifest, stored_at, expires_at).await;
        }
        tx.commit().await.expect("commit");
        created = (created + batch).min(total);
    }
    println!(
        "  filled {total} packages (one 256-byte blob each) in {:.1} s",
        fill_start.elapsed().as_secs_f64()
    );
    store.catalog().close().await;
}

/// Raw SQLite with the catalog's settings: `n` items, `BATCH` per transaction, each one event
/// insert plus `second` (an UPDATE or a DELETE of one row). Returns items/s.
async fn raw_sqlite_rate(path: &Path, n: usize, second: &str) -> f64 {
    use sqlx::Executor as _;
    let pool = artifact_core::testing::raw_pool(&format!("sqlite://{}", path.display())).await;
    pool.execute(
        "CREATE TABLE ev (seq INTEGER PRIMARY KEY, body BLOB NOT NULL, hash TEXT NOT NULL)",
    )
    .await
    .expect("ddl");
    pool.execute("CREATE TABLE rows (id TEXT PRIMARY KEY, n INTEGER)")
        .await
        .expect("ddl");
    // The rows exist beforehand, as packages and blobs do.
    for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
        let mut tx = pool.begin().await.expect("begin");
        for i in chunk {
            sqlx::query("INSERT INTO rows (id, n) VALUES ($1, NULL)")
                .bind(format!("blake3:{i:064}"))
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    let body = vec![7u8; 200];
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(BATCH) {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
        for i in chunk {
            sqlx::query("INSERT INTO ev (seq, body, hash) VALUES ($1, $2, $3)")
                .bind((*i + 1) as i64)
                .bind(body.clone())
                .bind(format!("blake3:{i:064}"))
                .execute(&mut *tx)
                .await
                .expect("insert");
            sqlx::query(sqlx::AssertSqlSafe(second.to_owned()))
                .bind(format!("blake3:{i:064}"))
                .execute(&mut *tx)
                .await
                .expect("second statement");
        }
        tx.commit().await.expect("commit");
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    pool.close().await;
    rate
}

/// Unlinks `n` fresh 256-byte files in the blob layout, then fsyncs each touched directory
/// once. Returns files/s (creation not timed).
fn fs_delete_rate(root: &Path, n: usize) -> f64 {
    let mut paths = Vec::with_capacity(n);
    for i in 0..n {
        let bytes = content(n + i + 7);
        let info = BlobInfo::of(&bytes);
        let path = blob_path(root, &info);
        std::fs::create_dir_all(path.parent().expect("shard")).expect("dir");
        std::fs::write(&path, &bytes).expect("file");
        paths.push(path);
    }
    let start = Instant::now();
    let mut dirs = std::collections::BTreeSet::new();
    for path in &paths {
        std::fs::remove_file(path).expect("unlink");
        dirs.insert(path.parent().expect("shard").to_owned());
    }
    for dir in dirs {
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .expect("fsync dir");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let n = bench_arg("--packages", 100_000);
    let runtime = bench_runtime();
    let dir = bench_dir();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# artifactstore gc benchmark: {n} eligible packages, {cpus} CPUs, dir {}",
        dir.path().display()
    );
    let start = ymd(2026, 11, 23);
    let stored_at = start
        .checked_add(Period::Millis(-10 * 86_400_000))
        .expect("time");
    let clock = ManualClock::new(start);
    let store_dir = dir.path().join("store");
    runtime.block_on(async {
        fill(&store_dir, n, stored_at, &clock).await;
        let store = EmbeddedOptions::new(&store_dir)
            .with_clock(Arc::new(clock.clone()))
            .open()
            .await
            .expect("open");

        let t = Instant::now();
        let swept = store.sweep("bench", None).await.expect("sweep");
        let sweep = t.elapsed();
        assert_eq!(swept.newly_eligible.len(), n);

        // Grace 30 days: blobs are 10 days old, so only the purge happens.
        let t = Instant::now();
        let purge = store
            .gc(
                "bench",
                GcOptions {
                    grace: Period::Millis(30 * 86_400_000),
                    dry_run: false,
                },
            )
            .await
            .expect("gc purge");
        let purge_time = t.elapsed();
        assert_eq!(purge.purged.len(), n);
        assert!(purge.deleted.is_empty());

        // Grace 1 day: every blob goes.
        let t = Instant::now();
        let delete = store
            .gc(
                "bench",
                GcOptions {
                    grace: Period::Millis(86_400_000),
                    dry_run: false,
                },
            )
            .await
            .expect("gc delete");
        let delete_time = t.elapsed();
        assert_eq!(delete.deleted.len(), n);
        let fsck_start = Instant::now();
        let fsck = store.fsck().await.expect("fsck");
        assert!(fsck.ok(), "{:?}", fsck.findings);
        let fsck_time = fsck_start.elapsed();
        store.catalog().close().await;

        let raw_purge = raw_sqlite_rate(
            &dir.path().join("raw-purge.db"),
            n,
            "UPDATE rows SET n = 1 WHERE id = $1",
        )
        .await;
        let raw_delete = raw_sqlite_rate(
            &dir.path().join("raw-delete.db"),
            n,
            "DELETE FROM rows WHERE id = $1",
        )
        .await;
        let fs_delete = fs_delete_rate(&dir.path().join("fs-delete"), n);

        let rate = |count: usize, elapsed: Duration| count as f64 / elapsed.as_secs_f64();
        let purged_rate = rate(n, purge_time);
        let deleted_rate = rate(n, delete_time);
        let delete_ceiling = raw_delete.min(fs_delete);
        println!(
            "  sweep marked {n} eligible in {:.2} s ({:.0} pkg/s)",
            sweep.as_secs_f64(),
            rate(n, sweep)
        );
        println!("  raw SQLite, 500/txn: event insert + row update   {raw_purge:9.0} /s");
        println!("  raw SQLite, 500/txn: event insert + row delete   {raw_delete:9.0} /s");
        println!("  fs unlink 256-byte files + one fsync per dir     {fs_delete:9.0} /s");
        println!(
            "  gc purge:  {n} packages purged in {:.2} s = {purged_rate:9.0} pkg/s   = {:.2} x raw SQLite (insert + update)",
            purge_time.as_secs_f64(),
            purged_rate / raw_purge
        );
        println!(
            "  gc delete: {n} blobs deleted in {:.2} s   = {deleted_rate:9.0} blobs/s = {:.2} x min(raw SQLite insert + delete, fs unlink) ({:.2} x SQLite, {:.2} x fs)",
            delete_time.as_secs_f64(),
            deleted_rate / delete_ceiling,
            deleted_rate / raw_delete,
            deleted_rate / fs_delete
        );
        println!("  fsck afterwards: clean, {:.2} s", fsck_time.as_secs_f64());
    });
}
