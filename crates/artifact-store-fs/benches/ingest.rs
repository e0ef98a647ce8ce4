//! Ingest benchmark: figures beside this machine's ceilings measured in the same run.
//!
//! ```sh
//! cargo bench -p artifact-store-fs --bench ingest                 # 1 GiB, 3 rounds, 2000 packages
//! cargo bench -p artifact-store-fs --bench ingest -- --size-mib 256 --rounds 1 --packages 500
//! ```
//! Set `BENCH_DIR` to choose the filesystem (default: a temp dir under the system temp dir).
//!
//! Large file: library ingest (`write_blob` + `record_blobs`: read, dual hash, write, fsync,
//! rename, dir fsync, event) of one file, beside
//! - hash-only: BLAKE3 + SHA-256 over the same bytes in memory (one thread per digest, as
//!   ingest hashes, 1 MiB chunks),
//! - write-only: writing the same bytes to a new file on the same filesystem the way the fs
//!   backend does (writeback started every 8 MiB, then fdatasync),
//!
//! reported as ratios to min(hash-only, write-only), the bound ingest cannot beat.
//!
//! Small packages: packages of one 1 KiB file each through the library (blob write + fsync +
//! rename + dir fsync, `v1.blob.stored`, manifest blob, `v1.package.created` +
//! `v1.retention.default_applied`), beside a raw SQLite transaction rate (2 event inserts + 1
//! upsert per transaction, WAL, synchronous=FULL — the catalog's settings).

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use artifact_core::testing::{
    bench_arg, bench_dir, bench_runtime, gbps, hash_only, median, one_file_manifest, test_bytes,
};
use artifact_store_fs::EmbeddedOptions;

/// Writes `data` durably the best way this machine allows, as the fs backend does: 1 MiB
/// writes, writeback started every 8 MiB (`sync_file_range`), then `fdatasync`. (A plain
/// write-everything-then-fsync runs into dirty-page throttling and is no ceiling at all.)
fn write_only(data: &[u8], path: &Path) -> Duration {
    use std::os::unix::io::AsRawFd as _;
    const WINDOW: usize = 8 << 20;
    let start = Instant::now();
    let mut file = std::fs::File::create(path).expect("create");
    let mut flushed = 0usize;
    let mut written = 0usize;
    for chunk in data.chunks(1 << 20) {
        file.write_all(chunk).expect("write");
        written += chunk.len();
        if written - flushed >= WINDOW {
            // SAFETY: the fd is valid while `file` lives; sync_file_range only reads its args.
            unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    flushed as libc::off64_t,
                    (written - flushed) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            flushed = written;
        }
    }
    file.sync_data().expect("fdatasync");
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(path).expect("remove");
    elapsed
}

fn main() {
    let size_mib = bench_arg("--size-mib", 1024);
    let rounds = bench_arg("--rounds", 3).max(1);
    let packages = bench_arg("--packages", 2000).max(1);
    let dir = bench_dir();
    let runtime = bench_runtime();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# artifactstore ingest benchmark ({} MiB, {} round(s), {cpus} CPUs, dir {})",
        size_mib,
        rounds,
        dir.path().display()
    );

    let size = size_mib << 20;
    let data = test_bytes(size as u64, 1);
    let source = dir.path().join("source.bin");
    std::fs::write(&source, &data).expect("write source");

    let mut hash = Vec::new();
    let mut write = Vec::new();
    let mut ingest = Vec::new();
    for round in 0..rounds {
        hash.push(gbps(size, hash_only(&data)));
        write.push(gbps(
            size,
            write_only(&data, &dir.path().join("write-only.bin")),
        ));
        let store_dir = dir.path().join(format!("store-{round}"));
        let elapsed = runtime.block_on(async {
            let store = EmbeddedOptions::new(&store_dir).open().await.expect("open");
            let start = Instant::now();
            let file = tokio::fs::File::open(&source).await.expect("open source");
            let info = store.write_blob(file, &[]).await.expect("ingest");
            store.record_blobs("bench", &[info]).await.expect("record");
            let elapsed = start.elapsed();
            store.catalog().close().await;
            elapsed
        });
        ingest.push(gbps(size, elapsed));
        std::fs::remove_dir_all(&store_dir).expect("clean");
    }
    let (hash, write, ingest) = (median(hash), median(write), median(ingest));
    let ceiling = hash.min(write);
    println!(
        "large file ({} MiB), medians of {} round(s):",
        size_mib, rounds
    );
    println!("  hash-only (BLAKE3 | SHA-256 threads)  {hash:6.3} GB/s");
    println!("  write-only (writeback, fdatasync)     {write:6.3} GB/s");
    println!(
        "  library ingest                        {ingest:6.3} GB/s   = {:.2} x min(hash, write) = {:.2} x hash-only, {:.2} x write-only",
        ingest / ceiling,
        ingest / hash,
        ingest / write
    );
    drop(data);
    std::fs::remove_file(&source).expect("remove source");

    // ----- small packages -----------------------------------------------------------------
    let store_dir = dir.path().join("small");
    let n = packages;
    let package_rate = runtime.block_on(async {
        let store = EmbeddedOptions::new(&store_dir).open().await.expect("open");
        let start = Instant::now();
        for i in 0..n {
            let mut content = test_bytes(1024, 1);
            content[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let info = store.write_blob(&content[..], &[]).await.expect("blob");
            let manifest = one_file_manifest("small", format!("1.0.{i}"), &info);
            // The blob is recorded in the package's transaction, as `push` does.
            store
                .create_package_with_blobs("bench", &manifest, &[info])
                .await
                .expect("package");
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        store.catalog().close().await;
        rate
    });

    let raw_rate = runtime.block_on(artifact_core::testing::raw_commit_rate(
        &format!("sqlite://{}", dir.path().join("raw.db").display()),
        n,
    ));
    println!("small packages (1 file of 1 KiB each), {n} packages:");
    println!("  raw SQLite txn (2 inserts + 1 upsert, WAL, FULL)  {raw_rate:8.0} txn/s");
    println!(
        "  library package creation                          {package_rate:8.0} pkg/s   = {:.2} x raw txn rate",
        package_rate / raw_rate
    );
}
