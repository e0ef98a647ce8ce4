//! Scrub benchmark: `verify_blobs` (re-read every blob, check size and both digests, record
//! `v1.integrity.checked`) beside this machine's read and hash ceilings measured in the same run.
//!
//! ```sh
//! cargo bench -p artifact-store-fs --bench scrub                    # 10 GiB in 64 MiB blobs
//! cargo bench -p artifact-store-fs --bench scrub -- --size-gib 2 --blob-mib 16
//! ```
//! Set `BENCH_DIR` to choose the filesystem (default: a temp dir under the system temp dir).
//!
//! The store is filled through the library (`write_blob` + `record_blobs`). Then, under two
//! page-cache conditions, the same bytes are read by:
//! - a plain sequential read of the blob files (1 MiB reads, no hashing): the read ceiling;
//! - `verify_blobs` (sample 1.0, no rate limit);
//!
//! and, once, BLAKE3 + SHA-256 of 1 GiB in memory (`DualHasher::update_parallel`, 1 MiB chunks): the hash
//! ceiling. Conditions: **cold** — every blob file's pages are dropped with
//! `posix_fadvise(POSIX_FADV_DONTNEED)` before the pass (only this benchmark's files, so other
//! work on the machine keeps its cache); **warm** — the pass runs right after a full read of the
//! same files (the whole set fits in memory when RAM allows; the figure says so if it did not).
//! Scrub figures are reported as ratios to min(read, hash) of the same condition.

use std::io::Read as _;
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use artifact_core::digest::DualHasher;
use artifact_core::maintenance::VerifyOptions;
use artifact_core::testing::{bench_arg, bench_dir, bench_runtime};
use artifact_store_fs::EmbeddedOptions;

fn gbps(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e9
}

/// Fills `buffer` with incompressible-looking bytes (xorshift) from `seed`.
fn fill(buffer: &mut [u8], seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buffer.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Drops the page cache of these files only.
fn evict(files: &[PathBuf]) {
    for path in files {
        let file = std::fs::File::open(path).expect("open");
        // SAFETY: the fd is valid for the life of `file`; fadvise only reads its arguments.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "posix_fadvise failed on {}", path.display());
    }
}

/// Plain sequential read of every file (1 MiB reads, no hashing).
fn read_all(files: &[PathBuf]) -> (u64, Duration) {
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let start = Instant::now();
    for path in files {
        let mut file = std::fs::File::open(path).expect("open");
        loop {
            let n = file.read(&mut buffer).expect("read");
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    std::hint::black_box(&buffer);
    (total, start.elapsed())
}

/// Pages of `files` resident in the page cache, as a fraction (mincore).
fn resident_fraction(files: &[PathBuf]) -> f64 {
    let page = 4096usize;
    let (mut resident, mut pages) = (0usize, 0usize);
    for path in files {
        let file = std::fs::File::open(path).expect("open");
        let len = file.metadata().expect("stat").len() as usize;
        if len == 0 {
            continue;
        }
        // SAFETY: a read-only shared mapping of a file we keep open for its whole use; mincore
        // writes one byte per page into a vector of exactly that many bytes.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            if map == libc::MAP_FAILED {
                continue;
            }
            let n = len.div_ceil(page);
            let mut vec = vec![0u8; n];
            if libc::mincore(map, len, vec.as_mut_ptr()) == 0 {
                resident += vec.iter().filter(|b| **b & 1 == 1).count();
                pages += n;
            }
            libc::munmap(map, len);
        }
    }
    if pages == 0 {
        0.0
    } else {
        resident as f64 / pages as f64
    }
}

fn main() {
    let size_gib = bench_arg("--size-gib", 10.0);
    let blob_mib = bench_arg("--blob-mib", 64).max(1);
    let dir = bench_dir();
    let runtime = bench_runtime();
    let blob_bytes = blob_mib << 20;
    let total_bytes = (size_gib * (1u64 << 30) as f64) as u64;
    let blobs = (total_bytes as usize).div_ceil(blob_bytes).max(1);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# artifactstore scrub benchmark: {blobs} blobs of {} MiB ({:.2} GiB), {cpus} CPUs, dir {}",
        blob_mib,
        (blobs * blob_bytes) as f64 / (1u64 << 30) as f64,
        dir.path().display()
    );

    // Hash ceiling: both digests over 1 GiB in memory, one thread per digest, 1 MiB chunks.
    let hash = {
        let mut data = vec![0u8; 1 << 30];
        fill(&mut data, 1);
        let start = Instant::now();
        let mut hasher = DualHasher::new();
        for chunk in data.chunks(1 << 20) {
            // What the scrub does: one thread per digest.
            hasher.update_parallel(chunk);
        }
        std::hint::black_box(hasher.finalize());
        gbps(data.len() as u64, start.elapsed())
    };

    let store_dir = dir.path().join("store");
    runtime.block_on(async {
        let store = EmbeddedOptions::new(&store_dir).open().await.expect("open");
        let fill_start = Instant::now();
        let mut buffer = vec![0u8; blob_bytes];
        for i in 0..blobs {
            fill(&mut buffer, 1000 + i as u64);
            let info = store.write_blob(&buffer[..], &[]).await.expect("write");
            store.record_blobs("bench", &[info]).await.expect("record");
        }
        println!(
            "  filled {blobs} blobs through the library in {:.1} s",
            fill_start.elapsed().as_secs_f64()
        );
        let mut files = Vec::new();
        files_under(&store_dir.join("blobs/blake3"), &mut files);
        assert_eq!(files.len(), blobs);

        let mut rows = Vec::new();
        for condition in ["cold", "warm"] {
            let prepare = || {
                if condition == "cold" {
                    evict(&files);
                } else {
                    read_all(&files);
                }
                resident_fraction(&files)
            };
            let resident_read = prepare();
            let (bytes, elapsed) = read_all(&files);
            let read = gbps(bytes, elapsed);
            let resident_scrub = prepare();
            let start = Instant::now();
            let report = store
                .verify_blobs("bench", VerifyOptions::default(), |_| {})
                .await
                .expect("verify");
            let scrub = gbps(report.bytes, start.elapsed());
            assert_eq!(report.checked as usize, blobs);
            assert!(report.failed.is_empty());
            rows.push((condition, resident_read, read, resident_scrub, scrub));
        }
        println!("  hash-only (BLAKE3 | SHA-256 threads, in memory)   {hash:6.3} GB/s");
        for (condition, resident_read, read, resident_scrub, scrub) in rows {
            let ceiling = read.min(hash);
            println!(
                "  {condition}: sequential read {read:6.3} GB/s ({:.0}% cached before); scrub {scrub:6.3} GB/s ({:.0}% cached before) = {:.2} x min(read, hash) = {:.2} x read, {:.2} x hash",
                resident_read * 100.0,
                resident_scrub * 100.0,
                scrub / ceiling,
                scrub / read,
                scrub / hash
            );
        }
        store.catalog().close().await;
    });
}
