//! HTTP benchmark: uploads through the server on loopback beside library ingest of the same
//! file in the same run, and concurrent small-package creation.
//!
//! ```sh
//! cargo bench -p artifactstore-cli --bench http                       # 1 GiB, 16 clients
//! cargo bench -p artifactstore-cli --bench http -- --size-mib 256 --rounds 1 --clients 16 --packages 50
//! ```
//! `BENCH_DIR` chooses the filesystem. Figures:
//! - library ingest (`write_blob` + `record_blobs`) of the file;
//! - `PUT /blobs/{digest}` of the same file (one request, streamed);
//! - an upload session (`POST /uploads`, 16 MiB `PATCH`es, `PUT ?digest=`) made by
//!   `artifact_client::HttpClient::put_blob`, the code `push --server` runs;
//!
//! each as a ratio to library ingest (medians of `--rounds`, default 3, in turn; the source is
//! flushed before any timing); then `--clients` concurrent clients each creating
//! `--packages` packages of one 1 KiB file (`PUT /blobs` + `POST /packages`, the latter by
//! `HttpClient::create_package`).

use std::sync::Arc;
use std::time::Instant;

use artifact_client::{Client as _, HttpClient, NoProgress};
use artifact_core::auth::Role;
use artifact_core::digest::BlobInfo;
use artifact_core::testing::one_file_manifest;
use artifact_core::testing::{bench_arg, bench_dir, bench_runtime};
use artifact_store_fs::EmbeddedOptions;
use reqwest::Method;

#[path = "support/server.rs"]
mod support;
use support::{file_body, gbps, median, start_server};

fn main() {
    let size_mib = bench_arg("--size-mib", 1024);
    let clients = bench_arg("--clients", 16);
    let per_client = bench_arg("--packages", 50);
    let rounds = bench_arg("--rounds", 3).max(1);
    let dir = bench_dir();
    let runtime = bench_runtime();
    println!(
        "# artifactstore HTTP benchmark ({size_mib} MiB; {clients} clients x {per_client} packages)"
    );
    let size = (size_mib << 20) as u64;
    let source = dir.path().join("source.bin");
    std::fs::write(&source, artifact_core::testing::test_bytes(size, 1)).expect("source");
    // Flushed before any timing: otherwise the first figure pays for writing back the source.
    std::fs::File::open(&source)
        .and_then(|f| f.sync_all())
        .expect("sync source");
    let info = BlobInfo::of(&std::fs::read(&source).expect("read source"));

    runtime.block_on(async {
        let mut library_rates = Vec::new();
        let mut figures: Vec<(&str, Vec<f64>)> = vec![
            ("PUT /blobs/{digest}", Vec::new()),
            ("upload session", Vec::new()),
        ];
        for _round in 0..rounds {
            // Library ingest into its own store.
            let library_dir = dir.path().join("library");
            let store = EmbeddedOptions::new(&library_dir)
                .open()
                .await
                .expect("open");
            let start = Instant::now();
            let file = tokio::fs::File::open(&source).await.expect("open source");
            let written = store.write_blob(file, &[]).await.expect("ingest");
            store
                .record_blobs("bench", &[written])
                .await
                .expect("record");
            library_rates.push(gbps(size, start.elapsed()));
            store.catalog().close().await;
            drop(store);
            std::fs::remove_dir_all(&library_dir).expect("clean");

            // The server, twice fresh (so neither upload finds the blob already stored).
            for (index, (mode, rates)) in figures.iter_mut().enumerate() {
                let mode = *mode;
                let data_dir = dir.path().join(format!("server-{index}"));
                let store = EmbeddedOptions::new(&data_dir).open().await.expect("open");
                let token = store
                    .create_token("bench", "bench", &[Role::Admin], &[7; 32])
                    .await
                    .expect("token");
                let (base, stop) = start_server(store, data_dir.join("uploads")).await;
                let client = reqwest::Client::new();
                let start = Instant::now();
                if mode.starts_with("PUT") {
                    let response = client
                        .put(format!("{base}/blobs/{}", info.blake3))
                        .bearer_auth(&token)
                        .body(file_body(&source).await)
                        .send()
                        .await
                        .expect("put");
                    assert_eq!(response.status(), 201, "{:?}", response.text().await);
                } else {
                    let http = HttpClient::new(&base, Some(token.clone())).expect("client");
                    let blob = http.put_blob(&source, &NoProgress).await.expect("upload");
                    assert_eq!(blob.blake3, info.blake3.to_string());
                }
                rates.push(gbps(size, start.elapsed()));
                let _ = stop().await;
                std::fs::remove_dir_all(&data_dir).expect("clean");
            }
        }
        let library = median(&library_rates);
        println!(
            "large blob ({size_mib} MiB), one stream on loopback, medians of {rounds} round(s):"
        );
        println!("  library ingest                 {library:6.3} GB/s");
        for (mode, rates) in &figures {
            let rate = median(rates);
            println!(
                "  HTTP {mode:<26}{rate:6.3} GB/s   = {:.2} x library ingest",
                rate / library
            );
        }

        // Concurrent small packages over HTTP.
        let data_dir = dir.path().join("small");
        let store = EmbeddedOptions::new(&data_dir).open().await.expect("open");
        let token = store
            .create_token("bench", "bench", &[Role::Admin], &[9; 32])
            .await
            .expect("token");
        let (base, stop) = start_server(store, data_dir.join("uploads")).await;
        let base = Arc::new(base);
        let token = Arc::new(token);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for client_index in 0..clients {
            let base = base.clone();
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                let client = HttpClient::new(&base, Some(token.to_string())).expect("client");
                for i in 0..per_client {
                    let content = artifact_core::testing::test_bytes(
                        1024,
                        (client_index * 1_000_000 + i) as u64 + 7,
                    );
                    let blob = BlobInfo::of(&content);
                    client
                        .send(
                            client
                                .request(Method::PUT, &format!("/blobs/{}", blob.blake3))
                                .body(content),
                        )
                        .await
                        .expect("put");
                    let manifest =
                        one_file_manifest(format!("small-{client_index}"), format!("1.{i}"), &blob);
                    let created = client
                        .create_package(&manifest, &[blob])
                        .await
                        .expect("post");
                    assert!(created.created);
                }
            }));
        }
        for task in tasks {
            task.await.expect("client");
        }
        let elapsed = start.elapsed();
        let total = clients * per_client;
        let _ = stop().await;
        println!("small packages over HTTP (1 file of 1 KiB each), {clients} concurrent clients:");
        println!(
            "  {total} packages in {:.2} s = {:.0} pkg/s",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
    });
}
