//! OCI push benchmark (issue 14): one large blob pushed through `/v2/` the way OCI clients
//! push it — `POST /v2/<name>/blobs/uploads/`, one streamed `PATCH` (no `Content-Range`),
//! `PUT <location>?digest=` — beside the native `PUT /blobs/{digest}` of the same file on the
//! same server build, and beside the CNCF distribution registry (Debian `docker-registry`,
//! started here on loopback, its storage on the same filesystem) doing the same `/v2/` push.
//!
//! ```sh
//! cargo bench -p artifactstore-cli --bench oci                         # 1 GiB, 3 rounds
//! cargo bench -p artifactstore-cli --bench oci -- --size-mib 256 --rounds 1 --small 200
//! ```
//! Then `--small` (default 500) small pushes from one client, each a 1 KiB blob and a package
//! of it: natively (`PUT /blobs` + `POST /packages`), through `/v2/` (`POST`, `PUT ?digest=`
//! with the bytes, `PUT` of a manifest naming it), and the same `/v2/` requests to
//! distribution (issue 16's peer).
//! `BENCH_DIR` chooses the filesystem. Each figure is the median of `--rounds` rounds taken in
//! turn (a fresh store and a fresh registry each round, so no push finds the blob stored). The
//! store acknowledges a blob only once it is durable (fsync'd, ADR 0004); distribution does not
//! fsync its blobs, so its figure is a write-back one.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use artifact_core::auth::Role;
use artifact_core::digest::BlobInfo;
use artifact_core::testing::{bench_arg, bench_dir, bench_runtime};
use artifact_store_fs::EmbeddedOptions;

#[path = "support/server.rs"]
mod support;
use support::{file_body, gbps, median, start_server};

/// The distribution registry on a free loopback port, its storage under `root`; killed on drop.
struct Distribution {
    child: Child,
    base: String,
}

impl Distribution {
    async fn start(root: &Path) -> Self {
        let probe = Command::new("docker-registry").arg("--version").output();
        assert!(
            probe.is_ok_and(|o| o.status.success()),
            "docker-registry is not installed (Debian package `docker-registry`)"
        );
        std::fs::create_dir_all(root).expect("registry dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = root.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                root.join("data").display()
            ),
        )
        .expect("registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        while !client
            .get(format!("{base}/v2/"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "docker-registry did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Distribution { child, base }
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `request` with `token` as its bearer credential, if any.
pub fn with_token(
    request: reqwest::RequestBuilder,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    }
}

/// POST + one streamed PATCH + PUT ?digest=, as OCI clients push a blob.
async fn oci_push(base: &str, token: Option<&str>, source: &Path, digest: &str) {
    let client = reqwest::Client::new();
    let auth = |request| with_token(request, token);
    let started = auth(client.post(format!("{base}/v2/bench/blob/blobs/uploads/")))
        .send()
        .await
        .expect("POST");
    assert_eq!(started.status(), 202, "{:?}", started.text().await);
    let location = absolute(
        base,
        started.headers()["location"].to_str().expect("location"),
    );
    let patched = auth(client.patch(&location))
        .header("content-type", "application/octet-stream")
        .body(file_body(source).await)
        .send()
        .await
        .expect("PATCH");
    assert_eq!(patched.status(), 202, "{:?}", patched.text().await);
    let location = absolute(
        base,
        patched.headers()["location"].to_str().expect("location"),
    );
    let separator = if location.contains('?') { '&' } else { '?' };
    let finished = auth(client.put(format!("{location}{separator}digest={digest}")))
        .send()
        .await
        .expect("PUT");
    assert_eq!(finished.status(), 201, "{:?}", finished.text().await);
}

/// `count` small pushes from one client: a 1 KiB blob and a package (or manifest) naming it.
/// `native`: `PUT /blobs` + `POST /packages`; else `/v2/` `POST` + `PUT ?digest=` + `PUT`
/// manifest.
async fn small_pushes(base: &str, token: Option<&str>, native: bool, count: usize) -> f64 {
    let client = reqwest::Client::new();
    let auth = |request| with_token(request, token);
    let start = Instant::now();
    for i in 0..count {
        let content = artifact_core::testing::test_bytes(1024, 10_000 + i as u64);
        let blob = BlobInfo::of(&content);
        if native {
            let put = auth(client.put(format!("{base}/blobs/{}", blob.blake3)))
                .body(content)
                .send()
                .await
                .expect("put");
            assert_eq!(put.status(), 201, "{:?}", put.text().await);
            let manifest =
                artifact_core::testing::one_file_manifest("small", format!("1.{i}"), &blob);
            let post = auth(client.post(format!("{base}/packages")))
                .header("content-type", "application/cbor")
                .body(manifest.canonical_bytes().expect("manifest"))
                .send()
                .await
                .expect("post");
            assert_eq!(post.status(), 201, "{:?}", post.text().await);
        } else {
            let digest = blob.sha256.to_string();
            monolithic_blob(&client, base, token, &digest, content).await;
            let config = "{}";
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": artifact_core::digest::Sha256::of(config.as_bytes()).to_string(),
                    "size": 2,
                },
                "layers": [{"mediaType": "application/octet-stream", "digest": digest, "size": 1024}],
            });
            let put = auth(client.put(format!("{base}/v2/bench/small/manifests/1.{i}")))
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .body(manifest.to_string())
                .send()
                .await
                .expect("manifest");
            assert_eq!(put.status(), 201, "{:?}", put.text().await);
        }
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// A blob in two requests, as both servers take it: `POST` (202 + Location), then `PUT
/// <location>?digest=` with the bytes (distribution 2.8 ignores `?digest=` on the POST).
async fn monolithic_blob(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    digest: &str,
    bytes: Vec<u8>,
) {
    let auth = |request| with_token(request, token);
    let started = auth(client.post(format!("{base}/v2/bench/small/blobs/uploads/")))
        .send()
        .await
        .expect("POST");
    assert_eq!(started.status(), 202, "{:?}", started.text().await);
    let location = absolute(
        base,
        started.headers()["location"].to_str().expect("location"),
    );
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = auth(client.put(format!("{location}{separator}digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), 201, "{:?}", put.text().await);
}

/// Pushes the empty config `{}` every small manifest names.
async fn push_empty_config(base: &str, token: Option<&str>) {
    let digest = artifact_core::digest::Sha256::of(b"{}").to_string();
    monolithic_blob(
        &reqwest::Client::new(),
        base,
        token,
        &digest,
        b"{}".to_vec(),
    )
    .await;
}

fn main() {
    let size_mib = bench_arg("--size-mib", 1024);
    let small = bench_arg("--small", 500);
    let rounds = bench_arg("--rounds", 3).max(1);
    let dir = bench_dir();
    let runtime = bench_runtime();
    println!("# artifactstore OCI push benchmark ({size_mib} MiB, {rounds} round(s))");
    let size = (size_mib << 20) as u64;
    let source = dir.path().join("source.bin");
    std::fs::write(&source, artifact_core::testing::test_bytes(size, 3)).expect("source");
    std::fs::File::open(&source)
        .and_then(|f| f.sync_all())
        .expect("sync source");
    let info = BlobInfo::of(&std::fs::read(&source).expect("read source"));
    let digest = info.sha256.to_string();

    runtime.block_on(async {
        let (mut native, mut oci, mut distribution) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            // artifactstore: native PUT /blobs, then /v2/, each on a fresh store.
            for (index, rates) in [&mut native, &mut oci].into_iter().enumerate() {
                let data_dir = dir.path().join(format!("store-{round}-{index}"));
                let store = EmbeddedOptions::new(&data_dir).open().await.expect("open");
                let token = store
                    .create_token("bench", "bench", &[Role::Admin], &[5; 32])
                    .await
                    .expect("token");
                let (base, stop) = start_server(store, data_dir.join("uploads")).await;
                let start = Instant::now();
                if index == 0 {
                    let response = reqwest::Client::new()
                        .put(format!("{base}/blobs/{}", info.blake3))
                        .bearer_auth(&token)
                        .body(file_body(&source).await)
                        .send()
                        .await
                        .expect("put");
                    assert_eq!(response.status(), 201, "{:?}", response.text().await);
                } else {
                    oci_push(&base, Some(&token), &source, &digest).await;
                }
                rates.push(gbps(size, start.elapsed()));
                let _ = stop().await;
                std::fs::remove_dir_all(&data_dir).expect("clean");
            }
            // The distribution registry, fresh, on the same filesystem.
            let root = dir.path().join(format!("registry-{round}"));
            let registry = Distribution::start(&root).await;
            let start = Instant::now();
            oci_push(&registry.base, None, &source, &digest).await;
            distribution.push(gbps(size, start.elapsed()));
            drop(registry);
            std::fs::remove_dir_all(&root).expect("clean");
        }
        let (native, oci, distribution) =
            (median(&native), median(&oci), median(&distribution));
        println!("one {size_mib} MiB blob, one stream on loopback, medians of {rounds} round(s):");
        println!("  artifactstore PUT /blobs/{{digest}}          {native:6.3} GB/s");
        println!(
            "  artifactstore /v2/ POST+PATCH+PUT          {oci:6.3} GB/s   = {:.2} x PUT /blobs",
            oci / native
        );
        println!(
            "  distribution /v2/ POST+PATCH+PUT           {distribution:6.3} GB/s   -> artifactstore /v2/ = {:.2} x distribution",
            oci / distribution
        );

        // Small pushes from one client, each server fresh.
        let (mut native, mut oci, mut distribution) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            for (index, rates) in [&mut native, &mut oci].into_iter().enumerate() {
                let data_dir = dir.path().join(format!("small-{round}-{index}"));
                let store = EmbeddedOptions::new(&data_dir).open().await.expect("open");
                let token = store
                    .create_token("bench", "bench", &[Role::Admin], &[6; 32])
                    .await
                    .expect("token");
                let (base, stop) = start_server(store, data_dir.join("uploads")).await;
                if index == 1 {
                    push_empty_config(&base, Some(&token)).await;
                }
                rates.push(small_pushes(&base, Some(&token), index == 0, small).await);
                let _ = stop().await;
                std::fs::remove_dir_all(&data_dir).expect("clean");
            }
            let root = dir.path().join(format!("small-registry-{round}"));
            let registry = Distribution::start(&root).await;
            push_empty_config(&registry.base, None).await;
            distribution.push(small_pushes(&registry.base, None, false, small).await);
            drop(registry);
            std::fs::remove_dir_all(&root).expect("clean");
        }
        let (native, oci, distribution) =
            (median(&native), median(&oci), median(&distribution));
        println!("{small} small pushes (1 KiB blob + package/manifest), one client, medians of {rounds} round(s):");
        println!("  artifactstore PUT /blobs + POST /packages    {native:7.0} /s");
        println!(
            "  artifactstore /v2/ blob + manifest          {oci:7.0} /s   = {:.2} x native",
            oci / native
        );
        println!(
            "  distribution /v2/ blob + manifest           {distribution:7.0} /s   -> artifactstore native = {:.2} x, /v2/ = {:.2} x distribution",
            native / distribution,
            oci / distribution
        );
    });
}
