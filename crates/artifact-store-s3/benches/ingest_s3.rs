//! S3 ingest benchmark: one large blob through `ArtifactStore::write_blob` + `record_blobs`
//! into S3 (a SeaweedFS started on loopback by the tests' harness), beside the same ingest into
//! the fs backend and the machine's ceilings, all measured in the same run.
//!
//! ```sh
//! cargo bench -p artifact-store-s3 --bench ingest_s3                  # 1 GiB, 1 round
//! cargo bench -p artifact-store-s3 --bench ingest_s3 -- --size-mib 128 --rounds 3 --part-size-mib 16
//! ```
//! `BENCH_DIR` chooses the filesystem for the source file, the fs store and SeaweedFS's data
//! (default: the system temp dir); `ARTIFACTSTORE_TEST_S3_ENDPOINT` (and friends, see
//! `tests/support/seaweed.rs`) benchmarks another S3 server instead.
//!
//! Figures:
//! - hash-only: BLAKE3 + SHA-256 over the bytes in memory (one thread per digest, 1 MiB chunks): the bound
//!   ingest cannot beat.
//! - s3 upload-only: the same bytes uploaded by object_store's multipart writer to one key, no
//!   hashing, no staging copy: the bound the S3 path cannot beat on this server.
//! - fs ingest: `artifact-store-fs` (write, fsync, rename, dir fsync, event).
//! - s3 ingest: this crate (multipart to a staging key, complete, server-side copy to the
//!   digest key, delete staging, event).
//!
//! With SeaweedFS on the same 2-core machine, the server's CPU competes with the client's
//! hashing, so the ratios say more than the absolute numbers.

#[path = "../tests/support/seaweed.rs"]
mod seaweed;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use artifact_core::testing::{bench_arg, gbps, hash_only, median};
use artifact_core::{ArtifactStore, StoreOptions};
use artifact_store_fs::EmbeddedOptions;
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, WriteMultipart};

fn main() {
    let size_mib = bench_arg("--size-mib", 1024).max(1);
    let rounds = bench_arg("--rounds", 1).max(1);
    let part_size_mib = bench_arg("--part-size-mib", 16).max(5);
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = tempfile::tempdir_in(&base).expect("bench dir");
    // SeaweedFS keeps its data in its own temp dir; point TMPDIR at BENCH_DIR's filesystem.
    if std::env::var_os("BENCH_DIR").is_some() {
        // SAFETY: single-threaded here, before the runtime starts.
        unsafe { std::env::set_var("TMPDIR", &base) };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let size = size_mib << 20;
    let part_size = part_size_mib << 20;
    println!(
        "# artifactstore S3 ingest benchmark ({} MiB, {} round(s), part {} MiB, {cpus} CPUs, dir {})",
        size_mib,
        rounds,
        part_size_mib,
        dir.path().display()
    );

    let data = artifact_core::testing::test_bytes(size as u64, 0xB10B);
    let source = dir.path().join("source.bin");
    std::fs::write(&source, &data).expect("write source");

    runtime.block_on(async {
        let server = seaweed::TestS3::start().await;
        println!("# S3 server: {}", server.target().endpoint);

        let mut hash = Vec::new();
        let mut upload = Vec::new();
        let mut fs_ingest = Vec::new();
        let mut s3_ingest = Vec::new();
        for round in 0..rounds {
            hash.push(gbps(size, hash_only(&data)));

            // s3 upload-only: raw multipart upload of the same bytes, same part size and
            // concurrency as the store.
            let s3 = server
                .target()
                .options()
                .with_prefix(format!("bench-{}-{round}", std::process::id()))
                .with_part_size(part_size)
                .build()
                .expect("s3 store");
            let client = s3.object_store();
            let location = Path::from(format!("bench-{}-{round}/raw", std::process::id()));
            let start = Instant::now();
            let multipart = client.put_multipart(&location).await.expect("multipart");
            let mut writer = WriteMultipart::new_with_chunk_size(multipart, part_size);
            for chunk in data.chunks(1 << 20) {
                writer
                    .wait_for_capacity(artifact_store_s3::DEFAULT_UPLOAD_CONCURRENCY)
                    .await
                    .expect("part");
                writer.put(bytes::Bytes::copy_from_slice(chunk));
            }
            writer.finish().await.expect("complete");
            upload.push(gbps(size, start.elapsed()));
            client.delete(&location).await.expect("delete raw");

            // fs ingest.
            let store_dir = dir.path().join(format!("fs-{round}"));
            let store = EmbeddedOptions::new(&store_dir).open().await.expect("open fs");
            let start = Instant::now();
            let file = tokio::fs::File::open(&source).await.expect("open source");
            let info = store.write_blob(file, &[]).await.expect("fs ingest");
            store.record_blobs("bench", &[info]).await.expect("record");
            fs_ingest.push(gbps(size, start.elapsed()));
            store.catalog().close().await;
            std::fs::remove_dir_all(&store_dir).expect("clean fs store");

            // s3 ingest.
            let catalog_dir = dir.path().join(format!("s3-{round}"));
            std::fs::create_dir_all(&catalog_dir).expect("catalog dir");
            let catalog_url =
                artifact_core::config::sqlite_url(&catalog_dir.join("catalog.db"));
            let store = ArtifactStore::open(StoreOptions::new(catalog_url, Arc::new(s3.clone())))
                .await
                .expect("open s3 store");
            let start = Instant::now();
            let file = tokio::fs::File::open(&source).await.expect("open source");
            let info = store.write_blob(file, &[]).await.expect("s3 ingest");
            store.record_blobs("bench", &[info]).await.expect("record");
            s3_ingest.push(gbps(size, start.elapsed()));
            store.catalog().close().await;
            use artifact_core::blob::BlobStore as _;
            s3.delete(&info.blake3).await.expect("delete blob");
            std::fs::remove_dir_all(&catalog_dir).expect("clean catalog");
        }
        let (hash, upload, fs_ingest, s3_ingest) = (
            median(hash),
            median(upload),
            median(fs_ingest),
            median(s3_ingest),
        );
        println!(
            "large blob ({} MiB), medians of {} round(s):",
            size_mib, rounds
        );
        println!("  hash-only (BLAKE3 | SHA-256 threads)   {hash:6.3} GB/s");
        println!("  s3 upload-only (multipart, no hash)    {upload:6.3} GB/s");
        println!(
            "  fs ingest (write_blob + record)        {fs_ingest:6.3} GB/s  = {:5.1}% of hash-only",
            100.0 * fs_ingest / hash
        );
        println!(
            "  s3 ingest (write_blob + record)        {s3_ingest:6.3} GB/s  = {:5.1}% of hash-only, {:5.1}% of s3 upload-only, {:5.1}% of fs ingest",
            100.0 * s3_ingest / hash,
            100.0 * s3_ingest / upload,
            100.0 * s3_ingest / fs_ingest
        );
    });
}
