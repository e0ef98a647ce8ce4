//! The OCI Distribution API of `artifactstore serve` (issue 14, ADR 0016) driven by real
//! clients: oras-py (PyPI `oras`) pushes files with annotations and a referrer and pulls them
//! back; skopeo copies an OCI image layout in and out with `--preserve-digests`. What they
//! pushed is then a package under the store's retention: explain, events, a refused DELETE,
//! GC keeping its blobs.
//!
//! The clients: `ARTIFACTSTORE_TEST_ORAS_PYTHON` (a Python with `oras` installed), else
//! `<workspace>/target/tools/oras-venv/bin/python`, created on first use (`python3 -m venv`,
//! `pip install oras==0.2.43`); `skopeo` from `PATH` (Debian package `skopeo`; `.ci/run`
//! installs it). A missing client fails the test; nothing skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

use crate::kit::{Store, parse_json};

/// The oras-py release the tests drive.
const ORAS_VERSION: &str = "0.2.43";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Python interpreter with oras-py, provisioned under `target/tools/` if needed.
fn oras_python() -> PathBuf {
    if let Ok(python) = std::env::var("ARTIFACTSTORE_TEST_ORAS_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = workspace().join("target/tools/oras-venv");
    let python = venv.join("bin/python");
    let has_oras = |python: &Path| {
        Command::new(python)
            .args(["-c", "import oras.client, requests"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has_oras(&python) {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs (needed to provision oras-py)");
        assert!(status.success(), "python3 -m venv {}", venv.display());
        let status = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", &format!("oras=={ORAS_VERSION}")])
            .status()
            .expect("pip runs");
        assert!(status.success(), "pip install oras=={ORAS_VERSION}");
        assert!(has_oras(&python), "oras-py is importable after install");
    }
    python
}

fn skopeo() -> Command {
    let probe = Command::new("skopeo").arg("--version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "skopeo is not installed (Debian package `skopeo`; .ci/run installs it)"
    );
    Command::new("skopeo")
}

fn run(command: &mut Command, what: &str) -> Vec<u8> {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// One raw request: status, headers, body.
fn request(
    method: reqwest::Method,
    url: &str,
    token: &str,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Json) {
    runtime().block_on(async {
        let response = reqwest::Client::new()
            .request(method, url)
            .basic_auth("ci-pipeline", Some(token))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Json::Null),
        )
    })
}

/// oras-py: files with annotations and a referrer pushed under one repository, pulled back
/// byte-identical; the push is a package with the annotated retention class, its events carry
/// the token's principal, a DELETE of the retained manifest is refused with the reason, and GC
/// keeps every blob it references.
#[test]
fn oras_pushes_and_pulls_files_and_a_referrer_under_retention() {
    let store = Store::with_actor("ops");
    let token = store.mint("ci-pipeline", &["writer", "retention-admin"]);
    let server = store.serve(None);
    let host = server.base.trim_start_matches("http://").to_owned();
    let work = store.work().join("oras");
    std::fs::create_dir_all(&work).unwrap();
    let repo = "guide/board";
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/oci/oras_round_trip.py");
    let out = run(
        Command::new(oras_python())
            .arg(&script)
            .args([&host, &token, repo])
            .arg(&work),
        "oras_round_trip.py",
    );
    let result = parse_json(&["oras_round_trip.py"], &out);

    // Pulled back byte-identical.
    assert_eq!(
        result["pulled"],
        serde_json::json!(["data.bin", "report.txt"]),
        "{result}"
    );
    for file in ["report.txt", "data.bin"] {
        assert_eq!(
            std::fs::read(work.join(file)).unwrap(),
            std::fs::read(work.join("out").join(file)).unwrap(),
            "{file} differs after the round trip"
        );
    }
    assert_eq!(
        result["tags"],
        serde_json::json!({"name": repo, "tags": ["v1", "v1-signature"]}),
    );
    let digest = result["digest"].as_str().unwrap();
    let signature = result["signature_digest"].as_str().unwrap();
    assert_eq!(result["signature_subject"], digest, "{result}");
    let referrers = result["referrers"]["manifests"].as_array().unwrap();
    assert_eq!(referrers.len(), 1, "{result}");
    assert_eq!(referrers[0]["digest"], signature);

    // The push is a package under retention.
    let status = store.json(&["retention", "status", "guide/board@v1"]);
    assert_eq!(status["retention_class"], "release-evidence", "{status}");
    let events = store.json(&["events", "--package", "guide/board@v1"]);
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "ci-pipeline"),
        "{events}"
    );
    let manifest = store.json(&["manifest", "guide/board@v1"]);
    let files: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"manifest.json"), "{manifest}");
    assert_eq!(
        files.len(),
        4,
        "manifest, config and two layers: {manifest}"
    );

    // The referrer is kept at least as long as its subject, and explain says so.
    let explained = store.json(&["retention", "explain", "guide/board@v1-signature"]);
    assert!(
        explained["verdict"]
            .as_str()
            .unwrap()
            .contains("kept: its subject"),
        "{explained}"
    );
    assert!(
        explained["lines"]
            .to_string()
            .contains("an OCI referrer lives as long as its subject"),
        "{explained}"
    );

    // DELETE of the retained manifest: refused with the explain verdict, nothing changes.
    let head = store.json(&["audit", "verify"])["head_seq"].clone();
    let (status, _, body) = request(
        reqwest::Method::DELETE,
        &format!("{}/v2/{repo}/manifests/v1", server.base),
        &token,
    );
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("kept by retention"),
        "{body}"
    );
    assert_eq!(store.json(&["audit", "verify"])["head_seq"], head);

    // GC keeps every blob a live manifest references.
    let gc = store.json(&["gc", "--grace", "0s"]);
    assert_eq!(gc["deleted_blobs"], serde_json::json!([]), "{gc}");
    let (status, _, _) = request(
        reqwest::Method::GET,
        &format!("{}/v2/{repo}/manifests/{digest}", server.base),
        &token,
    );
    assert_eq!(status, reqwest::StatusCode::OK);

    // Unauthenticated: 401 with a challenge clients understand.
    let unauthenticated = runtime().block_on(async {
        reqwest::Client::new()
            .get(format!("{}/v2/", server.base))
            .send()
            .await
            .unwrap()
    });
    assert_eq!(unauthenticated.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(
        unauthenticated.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm=")
    );
}

/// Writes an OCI image layout (one config, one tar layer, one manifest under tag `v1`).
fn image_layout(dir: &Path) -> Vec<String> {
    use sha2_free::sha256_hex;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = sha256_hex(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let source = dir.join("src");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("hello.txt"), "hello from an image layer\n").unwrap();
    let tar = dir.join("layer.tar");
    run(
        Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&source)
            .arg("hello.txt"),
        "tar",
    );
    let (layer, layer_size) = put(&std::fs::read(&tar).unwrap());
    std::fs::remove_file(&tar).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer]},
        "config": {},
    })
    .to_string();
    let (config_digest, config_size) = put(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}],
        "annotations": {"org.artifactstore.retention-class": "release-evidence"},
    })
    .to_string();
    let (manifest_digest, manifest_size) = put(manifest.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }],
        })
        .to_string(),
    )
    .unwrap();
    vec![manifest_digest, config_digest, layer]
}

/// skopeo: an OCI image layout copied into the store and back out with `--preserve-digests`;
/// every blob of the copy is byte-identical to the original's, and the image is a package.
#[test]
fn skopeo_copies_an_image_layout_in_and_out_with_every_digest_preserved() {
    let store = Store::with_actor("ops");
    let token = store.mint("ci-pipeline", &["writer"]);
    let server = store.serve(None);
    let host = server.base.trim_start_matches("http://").to_owned();
    let layout = store.work().join("layout");
    let digests = image_layout(&layout);
    let creds = format!("ci-pipeline:{token}");
    run(
        skopeo()
            .args([
                "copy",
                "--preserve-digests",
                "--dest-tls-verify=false",
                "--dest-creds",
            ])
            .arg(&creds)
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{host}/images/hello:v1")),
        "skopeo copy into the store",
    );
    let back = store.work().join("back");
    run(
        skopeo()
            .args([
                "copy",
                "--preserve-digests",
                "--src-tls-verify=false",
                "--src-creds",
            ])
            .arg(&creds)
            .arg(format!("docker://{host}/images/hello:v1"))
            .arg(format!("oci:{}:v1", back.display())),
        "skopeo copy out of the store",
    );
    for digest in &digests {
        let hex = digest.trim_start_matches("sha256:");
        assert_eq!(
            std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap(),
            std::fs::read(back.join("blobs/sha256").join(hex))
                .unwrap_or_else(|e| panic!("{digest} missing from the copy: {e}")),
            "{digest} differs"
        );
    }
    let status = store.json(&["retention", "status", "images/hello@v1"]);
    assert_eq!(status["retention_class"], "release-evidence", "{status}");
}

/// SHA-256 for the layout (the test crate has no sha2 dependency; the store's own digest type
/// computes it).
mod sha2_free {
    pub fn sha256_hex(bytes: &[u8]) -> String {
        artifact_core::digest::Sha256::of(bytes).to_hex()
    }
}

/// The CNCF distribution registry (Debian `docker-registry`) on a free loopback port, its
/// storage in a temp dir; killed on drop.
struct Distribution {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Distribution {
    fn start() -> Self {
        let probe = Command::new("docker-registry").arg("--version").output();
        assert!(
            probe.is_ok_and(|o| o.status.success()),
            "docker-registry is not installed (Debian package `docker-registry`; .ci/run installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let ready = runtime().block_on(async {
                reqwest::Client::new()
                    .get(format!("{base}/v2/"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            });
            if ready {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "docker-registry did not answer on {base}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Distribution {
            child,
            base,
            _dir: dir,
        }
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One registry under test: its base URL and credentials (none for the reference).
struct Registry {
    base: String,
    token: Option<String>,
}

/// What a request got: status, the first OCI error code, and the headers.
struct Answer {
    status: u16,
    code: Option<String>,
    headers: reqwest::header::HeaderMap,
}

impl Registry {
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        runtime().block_on(async {
            let mut request = reqwest::Client::new()
                .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
                .body(body);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            let code = serde_json::from_str::<Json>(&text)
                .ok()
                .and_then(|j| j["errors"][0]["code"].as_str().map(str::to_owned));
            Answer {
                status,
                code,
                headers,
            }
        })
    }

    /// An absolute upload URL from a `Location` header (relative or absolute).
    fn location(&self, answer: &Answer) -> String {
        let location = answer.headers["location"].to_str().unwrap().to_owned();
        if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        }
    }

    fn with_query(url: &str, query: &str) -> String {
        if url.contains('?') {
            format!("{url}&{query}")
        } else {
            format!("{url}?{query}")
        }
    }
}

/// The same sequence of raw requests, good and bad, against artifactstore and the CNCF
/// distribution registry: the same status and OCI error code from both, except where the
/// issue's design differs from distribution on purpose (listed with the reason).
#[test]
fn raw_requests_answer_like_the_distribution_registry() {
    let store = Store::with_actor("ops");
    let token = store.mint("ci-pipeline", &["writer", "retention-admin"]);
    let server = store.serve(None);
    let reference = Distribution::start();
    let ours = Registry {
        base: server.base.clone(),
        token: Some(token),
    };
    let theirs = Registry {
        base: reference.base.clone(),
        token: None,
    };
    let content = b"differential blob".to_vec();
    let digest = format!("sha256:{}", sha2_free::sha256_hex(&content));
    let wrong = format!("sha256:{}", "0".repeat(64));
    let unknown_blob = format!("sha256:{}", "1".repeat(64));
    let config = b"{}".to_vec();
    let config_digest = format!("sha256:{}", sha2_free::sha256_hex(&config));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/octet-stream", "digest": digest, "size": content.len()}],
    })
    .to_string()
    .into_bytes();
    let manifest_digest = format!("sha256:{}", sha2_free::sha256_hex(&manifest));
    let dangling = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/octet-stream", "digest": unknown_blob, "size": 3}],
    })
    .to_string()
    .into_bytes();
    let manifest_type = [("content-type", "application/vnd.oci.image.manifest.v1+json")];
    let accept = [("accept", "application/vnd.oci.image.manifest.v1+json")];

    let mut compared = 0;
    let mut differences: Vec<String> = Vec::new();
    // Each step runs on both and compares status and OCI error code.
    let mut step = |what: &str, run: &dyn Fn(&Registry) -> Answer| -> (Answer, Answer) {
        let a = run(&ours);
        let b = run(&theirs);
        compared += 1;
        if (a.status, &a.code) != (b.status, &b.code) {
            differences.push(format!(
                "{what}: artifactstore {} {:?}, distribution {} {:?}",
                a.status, a.code, b.status, b.code
            ));
        }
        (a, b)
    };

    step("GET /v2/", &|r| r.send("GET", "/v2/", &[], vec![]));
    let (a, b) = step("POST an upload", &|r| {
        r.send("POST", "/v2/diff/repo/blobs/uploads/", &[], vec![])
    });
    assert_eq!(a.status, 202);
    // Each answer's Location is where the upload continues (distribution rotates its state
    // token in it).
    let uploads = std::cell::RefCell::new([ours.location(&a), theirs.location(&b)]);
    let upload =
        |r: &Registry| -> String { uploads.borrow()[usize::from(!std::ptr::eq(r, &ours))].clone() };
    let follow = |a: &Answer, b: &Answer| {
        if a.headers.contains_key("location") && b.headers.contains_key("location") {
            *uploads.borrow_mut() = [ours.location(a), theirs.location(b)];
        }
    };
    let (a, b) = step("PATCH a streamed chunk", &|r| {
        r.send("PATCH", &upload(r), &[], content[..5].to_vec())
    });
    follow(&a, &b);
    let (a, b) = step("GET the upload's status", &|r| {
        r.send("GET", &upload(r), &[], vec![])
    });
    follow(&a, &b);
    assert_eq!(
        a.headers.get("range"),
        b.headers.get("range"),
        "the received range ({} vs {}; {differences:?})",
        a.status,
        b.status
    );
    let (a, b) = step("PATCH a chunk at the wrong offset", &|r| {
        r.send(
            "PATCH",
            &upload(r),
            &[
                ("content-range", "100-104"),
                ("content-type", "application/octet-stream"),
            ],
            content[5..10].to_vec(),
        )
    });
    follow(&a, &b);
    step("PUT to close with a wrong digest", &|r| {
        r.send(
            "PUT",
            &Registry::with_query(&upload(r), &format!("digest={wrong}")),
            &[],
            content[5..].to_vec(),
        )
    });
    step("GET an unknown upload", &|r| {
        r.send(
            "GET",
            "/v2/diff/repo/blobs/uploads/6a4e6cde-61b2-4d4e-9d8f-7d4d2bb3c0de",
            &[],
            vec![],
        )
    });
    // A fresh upload closed with the right digest in one PUT.
    let (a, b) = step("POST a second upload", &|r| {
        r.send("POST", "/v2/diff/repo/blobs/uploads/", &[], vec![])
    });
    let second = [ours.location(&a), theirs.location(&b)];
    let second_of = |r: &Registry| -> &String {
        if std::ptr::eq(r, &ours) {
            &second[0]
        } else {
            &second[1]
        }
    };
    let (a, b) = step("PUT the whole blob with its digest", &|r| {
        r.send(
            "PUT",
            &Registry::with_query(second_of(r), &format!("digest={digest}")),
            &[("content-type", "application/octet-stream")],
            content.clone(),
        )
    });
    assert_eq!(a.status, 201);
    assert_eq!(
        a.headers["docker-content-digest"],
        b.headers["docker-content-digest"]
    );
    // The config blob: POST, then PUT with the body and its digest.
    let (a, b) = step("POST a third upload", &|r| {
        r.send("POST", "/v2/diff/repo/blobs/uploads/", &[], vec![])
    });
    let third = [ours.location(&a), theirs.location(&b)];
    step("PUT the config blob", &|r| {
        r.send(
            "PUT",
            &Registry::with_query(
                &third[usize::from(!std::ptr::eq(r, &ours))],
                &format!("digest={config_digest}"),
            ),
            &[("content-type", "application/octet-stream")],
            config.clone(),
        )
    });
    let single = b"single request".to_vec();
    let single_digest = format!("sha256:{}", sha2_free::sha256_hex(&single));
    step("POST a single-request upload", &|r| {
        r.send(
            "POST",
            &format!("/v2/diff/repo/blobs/uploads/?digest={single_digest}"),
            &[("content-type", "application/octet-stream")],
            single.clone(),
        )
    });
    let (a, b) = step("HEAD the blob", &|r| {
        r.send(
            "HEAD",
            &format!("/v2/diff/repo/blobs/{digest}"),
            &[],
            vec![],
        )
    });
    assert_eq!(a.headers["content-length"], b.headers["content-length"]);
    step("GET a range of the blob", &|r| {
        r.send(
            "GET",
            &format!("/v2/diff/repo/blobs/{digest}"),
            &[("range", "bytes=1-3")],
            vec![],
        )
    });
    step("GET an unknown blob", &|r| {
        r.send(
            "GET",
            &format!("/v2/diff/repo/blobs/{unknown_blob}"),
            &[],
            vec![],
        )
    });
    step("GET a malformed digest", &|r| {
        r.send("GET", "/v2/diff/repo/blobs/sha256:xyz", &[], vec![])
    });
    step("mount a stored blob from another repository", &|r| {
        r.send(
            "POST",
            &format!("/v2/diff/other/blobs/uploads/?mount={digest}&from=diff/repo"),
            &[],
            vec![],
        )
    });
    step("GET an unknown manifest", &|r| {
        r.send("GET", "/v2/diff/repo/manifests/nope", &accept, vec![])
    });
    step("PUT a manifest naming an unknown blob", &|r| {
        r.send(
            "PUT",
            "/v2/diff/repo/manifests/dangling",
            &manifest_type,
            dangling.clone(),
        )
    });
    step("PUT a manifest that is not JSON", &|r| {
        r.send(
            "PUT",
            "/v2/diff/repo/manifests/broken",
            &manifest_type,
            b"{".to_vec(),
        )
    });
    step("PUT a manifest by a digest it does not have", &|r| {
        r.send(
            "PUT",
            &format!("/v2/diff/repo/manifests/{wrong}"),
            &manifest_type,
            manifest.clone(),
        )
    });
    let (a, b) = step("PUT a manifest by tag", &|r| {
        r.send(
            "PUT",
            "/v2/diff/repo/manifests/v1",
            &manifest_type,
            manifest.clone(),
        )
    });
    assert_eq!((a.status, b.status), (201, 201), "{differences:?}");
    assert_eq!(
        a.headers["docker-content-digest"],
        b.headers["docker-content-digest"]
    );
    assert_eq!(
        a.headers["docker-content-digest"].to_str().unwrap(),
        manifest_digest
    );
    for (what, path) in [
        (
            "GET the manifest by tag",
            "/v2/diff/repo/manifests/v1".to_owned(),
        ),
        (
            "GET the manifest by digest",
            format!("/v2/diff/repo/manifests/{manifest_digest}"),
        ),
    ] {
        // Clients say what they accept (distribution answers OCI manifests only then).
        let (a, b) = step(what, &|r| r.send("GET", &path, &accept, vec![]));
        for header in ["docker-content-digest", "content-type", "content-length"] {
            assert_eq!(
                a.headers.get(header),
                b.headers.get(header),
                "{what}: {header} ({} vs {})",
                a.status,
                b.status
            );
        }
    }
    step("HEAD the manifest", &|r| {
        r.send("HEAD", "/v2/diff/repo/manifests/v1", &accept, vec![])
    });
    step("GET the tags", &|r| {
        r.send("GET", "/v2/diff/repo/tags/list", &[], vec![])
    });
    step("GET the tags of an unknown repository", &|r| {
        r.send("GET", "/v2/diff/none/tags/list", &[], vec![])
    });

    // Where the design differs from distribution on purpose (distribution-spec section):
    let expected: Vec<&str> = vec![
        // "Pushing a blob in chunks": a chunk whose Content-Range does not start at the end of
        // what was received MUST be refused with 416; distribution 2.8 does not check it.
        "PATCH a chunk at the wrong offset: artifactstore 416 Some(\"BLOB_UPLOAD_INVALID\"), distribution 202 None",
        // "Error Codes" (BLOB_UPLOAD_UNKNOWN: "blob upload unknown to registry"); distribution
        // wants its own `_state` token first and answers BLOB_UPLOAD_INVALID without one.
        "GET an unknown upload: artifactstore 404 Some(\"BLOB_UPLOAD_UNKNOWN\"), distribution 404 Some(\"BLOB_UPLOAD_INVALID\")",
        // "Single POST": a registry MAY store the blob at once (201); distribution 2.8 opens a
        // session instead (202), which the spec also allows.
        "POST a single-request upload: artifactstore 201 None, distribution 202 None",
    ];
    assert_eq!(
        differences, expected,
        "{compared} requests compared; unexpected differences"
    );

    // Deletion (spec "Deleting manifests" / "Deleting blobs"): distribution has it disabled by
    // default (405 UNSUPPORTED); here retention decides (403 DENIED with the reason), and blob
    // deletes are always UNSUPPORTED (GC owns bytes).
    let a = ours.send("DELETE", "/v2/diff/repo/manifests/v1", &[], vec![]);
    let b = theirs.send("DELETE", "/v2/diff/repo/manifests/v1", &[], vec![]);
    assert_eq!((a.status, a.code.as_deref()), (403, Some("DENIED")));
    assert_eq!((b.status, b.code.as_deref()), (405, Some("UNSUPPORTED")));
    let a = ours.send(
        "DELETE",
        &format!("/v2/diff/repo/blobs/{digest}"),
        &[],
        vec![],
    );
    assert_eq!((a.status, a.code.as_deref()), (405, Some("UNSUPPORTED")));
}

/// Pushes `bytes` as a blob in one request (`POST …/blobs/uploads/?digest=`); returns its digest.
fn push_blob(registry: &Registry, repo: &str, bytes: &[u8]) -> String {
    let digest = format!("sha256:{}", sha2_free::sha256_hex(bytes));
    let answer = registry.send(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        &[("content-type", "application/octet-stream")],
        bytes.to_vec(),
    );
    assert_eq!(answer.status, 201, "blob {digest}: {:?}", answer.code);
    digest
}

/// Pushes a manifest under `reference`; returns its digest.
fn push_manifest(registry: &Registry, repo: &str, reference: &str, manifest: &Json) -> String {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let digest = format!("sha256:{}", sha2_free::sha256_hex(&bytes));
    let reference = if reference.is_empty() {
        digest.as_str()
    } else {
        reference
    };
    let media_type = manifest["mediaType"].as_str().unwrap().to_owned();
    let answer = registry.send(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("content-type", media_type.as_str())],
        bytes,
    );
    assert_eq!(
        answer.status, 201,
        "manifest {reference}: {:?}",
        answer.code
    );
    digest
}

/// An image manifest of one config and `layers`, optionally a referrer of `subject`.
fn image(config: &str, layers: &[&str], subject: Option<&str>, class: Option<&str>) -> Json {
    let descriptor = |media_type: &str, digest: &str, size: usize| serde_json::json!({"mediaType": media_type, "digest": digest, "size": size});
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.empty.v1+json", config, 2),
        "layers": layers
            .iter()
            .map(|l| descriptor("application/octet-stream", l, 16))
            .collect::<Vec<_>>(),
    });
    if let Some(subject) = subject {
        manifest["artifactType"] = serde_json::json!("application/vnd.example.sbom");
        manifest["subject"] = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": subject,
            "size": 1,
        });
    }
    if let Some(class) = class {
        manifest["annotations"] = serde_json::json!({"org.artifactstore.retention-class": class});
    }
    manifest
}

/// Retention, holds, explain, events and GC on OCI-pushed packages, through raw `/v2/`
/// requests: a held image keeps its referrers (transitively: a signature of its SBOM) and
/// refuses DELETE; an index keeps its children; once released and expired, DELETE is accepted
/// and GC removes the image's unique blobs but not what the retained index needs. Classes
/// come from `[oci.repositories]`; a repository with mutable tags moves a tag by an event.
#[test]
fn oci_packages_follow_retention_holds_referrers_and_index_children() {
    let store = Store::with_actor("ops");
    store.configure(
        "[retention.classes.flash]\ndefault = \"2s\"\n\
         [oci.repositories.\"guide/*\"]\nclass = \"flash\"\n\
         [oci.repositories.\"guide/live*\"]\nmutable_tags = true\n",
    );
    let token = store.mint("ci-pipeline", &["writer", "retention-admin"]);
    let server = store.serve(None);
    let registry = Registry {
        base: server.base.clone(),
        token: Some(token.clone()),
    };
    let repo = "guide/app";
    let url = |path: &str| format!("/v2/{repo}/{path}");
    let config = push_blob(&registry, repo, b"{}");
    let layer = |n: u8| push_blob(&registry, repo, &[n; 16]);
    let (image_layer, sbom_layer, signature_layer, child_layer) =
        (layer(1), layer(2), layer(3), layer(4));
    let image_digest = push_manifest(
        &registry,
        repo,
        "v1",
        &image(&config, &[&image_layer], None, None),
    );
    let sbom = push_manifest(
        &registry,
        repo,
        "",
        &image(&config, &[&sbom_layer], Some(&image_digest), None),
    );
    let signature = push_manifest(
        &registry,
        repo,
        "",
        &image(&config, &[&signature_layer], Some(&sbom), None),
    );
    let child = push_manifest(
        &registry,
        repo,
        "",
        &image(&config, &[&child_layer], None, None),
    );
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": child,
            "size": serde_json::to_vec(&image(&config, &[&child_layer], None, None)).unwrap().len(),
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
        "annotations": {"org.artifactstore.retention-class": "release-evidence"},
    });
    push_manifest(&registry, repo, "multi", &index);
    let by_digest = |d: &str| format!("{repo}@sha256-{}", d.trim_start_matches("sha256:"));
    // The class of an unannotated manifest is the repository rule's.
    assert_eq!(
        store.json(&["retention", "status", "guide/app@v1"])["retention_class"],
        "flash"
    );
    assert_eq!(
        store.json(&["retention", "status", "guide/app@multi"])["retention_class"],
        "release-evidence"
    );
    // The index lists its child's files: GC keeps what pulling the index needs.
    let index_files = store.json(&["manifest", "guide/app@multi"])["files"].to_string();
    assert!(
        index_files.contains(child_layer.trim_start_matches("sha256:")),
        "{index_files}"
    );
    // An index naming a manifest the repository does not hold is refused.
    let mut dangling = index.clone();
    dangling["manifests"][0]["digest"] = serde_json::json!(format!("sha256:{}", "0".repeat(64)));
    let head = store.head_seq();
    let answer = registry.send(
        "PUT",
        &url("manifests/dangling"),
        &[("content-type", "application/vnd.oci.image.index.v1+json")],
        serde_json::to_vec(&dangling).unwrap(),
    );
    assert_eq!(
        (answer.status, answer.code.as_deref()),
        (400, Some("MANIFEST_BLOB_UNKNOWN"))
    );
    assert_eq!(store.head_seq(), head);
    // An index of more than 4,096 distinct children is refused before any lookup.
    let mut huge = index.clone();
    huge["manifests"] = Json::Array(
        (0..4097u32)
            .map(|n| {
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{}", sha2_free::sha256_hex(&n.to_be_bytes())),
                    "size": 2,
                })
            })
            .collect(),
    );
    let answer = registry.send(
        "PUT",
        &url("manifests/huge"),
        &[("content-type", "application/vnd.oci.image.index.v1+json")],
        serde_json::to_vec(&huge).unwrap(),
    );
    assert_eq!(
        (answer.status, answer.code.as_deref()),
        (400, Some("MANIFEST_INVALID"))
    );
    assert_eq!(store.head_seq(), head);

    // Held: DELETE is refused with the reason, nothing changes.
    store.json(&["retention", "hold", "guide/app@v1", "--reason", "inquiry 7"]);
    let head = store.head_seq();
    let (status, _, body) = request(
        reqwest::Method::DELETE,
        &format!("{}{}", server.base, url("manifests/v1")),
        &token,
    );
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("1 active hold(s)"),
        "{body}"
    );
    assert_eq!(store.head_seq(), head);

    // Everything but the index has expired; the sweep marks none of the held image's
    // referrers, nor the index's child.
    let expiry: artifact_core::time::Timestamp =
        store.json(&["retention", "status", &by_digest(&child)])["current_expires_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    crate::kit::sleep_until_past(expiry);
    let sweep = store.json(&["retention", "sweep"]);
    assert_eq!(sweep["newly_eligible"], 0, "{sweep}");
    let deferred = sweep["deferred"].to_string();
    assert_eq!(sweep["deferred"].as_array().unwrap().len(), 3, "{sweep}");
    assert!(deferred.contains("is held"), "{sweep}");
    assert!(deferred.contains("its index"), "{sweep}");
    let explained = store.json(&["retention", "explain", &by_digest(&signature)]);
    let verdict = explained["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("its subject")
            && verdict.contains("whose subject")
            && verdict.contains("is held"),
        "a signature of the SBOM of a held image is kept: {explained}"
    );
    assert_eq!(explained["eligible_for_deletion"], false, "{explained}");
    let gc = store.json(&["gc", "--grace", "0s"]);
    assert_eq!(gc["purged"], serde_json::json!([]), "{gc}");
    assert_eq!(gc["deleted_blobs"], serde_json::json!([]), "{gc}");
    for path in [
        format!("manifests/{signature}"),
        format!("manifests/{sbom}"),
        format!("manifests/{child}"),
        format!("blobs/{image_layer}"),
    ] {
        assert_eq!(
            registry.send("GET", &url(&path), &[], vec![]).status,
            200,
            "{path}"
        );
    }

    // Released: the image and its referrers become eligible; DELETE is accepted, and GC
    // removes their unique blobs but keeps what the retained index needs.
    let hold_id = store.json(&["retention", "status", "guide/app@v1"])["holds"][0]["hold_id"]
        .as_str()
        .unwrap()
        .to_owned();
    store.json(&[
        "retention",
        "release",
        "guide/app@v1",
        &hold_id,
        "--reason",
        "closed",
    ]);
    let sweep = store.json(&["retention", "sweep"]);
    assert_eq!(sweep["newly_eligible"], 3, "{sweep}");
    let answer = registry.send("DELETE", &url("manifests/v1"), &[], vec![]);
    assert_eq!(answer.status, 202, "{:?}", answer.code);
    let gc = store.json(&["gc", "--grace", "0s"]);
    assert_eq!(gc["purged"].as_array().unwrap().len(), 3, "{gc}");
    for gone in [&image_layer, &sbom_layer, &signature_layer] {
        let answer = registry.send("GET", &url(&format!("blobs/{gone}")), &[], vec![]);
        assert_eq!(
            (answer.status, answer.code.as_deref()),
            (404, Some("BLOB_UNKNOWN")),
            "{gone}"
        );
    }
    let answer = registry.send("GET", &url("manifests/v1"), &[], vec![]);
    assert_eq!(
        (answer.status, answer.code.as_deref()),
        (404, Some("MANIFEST_UNKNOWN"))
    );
    for kept in [
        format!("manifests/{child}"),
        format!("blobs/{child_layer}"),
        "manifests/multi".to_owned(),
    ] {
        assert_eq!(
            registry.send("GET", &url(&kept), &[], vec![]).status,
            200,
            "{kept}"
        );
    }

    // Mutable tags: the tag moves by an event; the manifest it named keeps its package.
    let live = "guide/live";
    let first = push_manifest(
        &registry,
        live,
        "latest",
        &image(&config, &[&child_layer], None, None),
    );
    let second = push_manifest(
        &registry,
        live,
        "latest",
        &image(&config, &[&child_layer], None, Some("ephemeral")),
    );
    let answer = registry.send("GET", &format!("/v2/{live}/manifests/latest"), &[], vec![]);
    assert_eq!(
        answer.headers["docker-content-digest"].to_str().unwrap(),
        second
    );
    let answer = registry.send("GET", &format!("/v2/{live}/manifests/{first}"), &[], vec![]);
    assert_eq!(answer.status, 200);
    let tag_events = store.json(&["events", "--type", "v1.oci.tag_set"]);
    assert_eq!(tag_events.as_array().unwrap().len(), 2, "{tag_events}");
    assert!(
        tag_events
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "ci-pipeline")
    );
    let (_, _, tags) = request(
        reqwest::Method::GET,
        &format!("{}/v2/{live}/tags/list", server.base),
        &token,
    );
    assert_eq!(tags["tags"], serde_json::json!(["latest"]), "{tags}");
    assert_eq!(
        store.json(&[
            "retention",
            "status",
            &format!("{live}@sha256-{}", first.trim_start_matches("sha256:"))
        ])["retention_class"],
        "flash"
    );
    // The same manifest again under the same tag: no new event.
    let head = store.head_seq();
    push_manifest(
        &registry,
        live,
        "latest",
        &image(&config, &[&child_layer], None, Some("ephemeral")),
    );
    assert_eq!(store.head_seq(), head);
    // In a repository with immutable tags, a tag is a version: another manifest conflicts.
    let answer = registry.send(
        "PUT",
        &url("manifests/multi"),
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        serde_json::to_vec(&image(&config, &[&child_layer], None, None)).unwrap(),
    );
    assert_eq!(answer.status, 409, "{:?}", answer.code);
    assert_eq!(store.head_seq(), head);

    let verify = store.json(&["audit", "verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
    let fsck = store.json(&["fsck"]);
    assert_eq!(fsck["ok"], true, "{fsck}");
}

/// One manifest pushed twice (by digest, then under a tag) is two packages: a referrer is kept
/// while either is retained. In a repository with mutable tags, a manifest pushed again after
/// GC purged its package is a new package with retention of its own, and the tag names it.
#[test]
fn the_same_manifest_pushed_again_keeps_referrers_and_comes_back_after_purge() {
    let store = Store::with_actor("ops");
    store.configure(
        "[retention.classes.flash]\ndefault = \"2s\"\n\
         [oci.repositories.\"guide/*\"]\nclass = \"flash\"\n\
         [oci.repositories.\"guide/live\"]\nmutable_tags = true\n",
    );
    let token = store.mint("ci-pipeline", &["writer", "retention-admin"]);
    let server = store.serve(None);
    let registry = Registry {
        base: server.base.clone(),
        token: Some(token.clone()),
    };
    let repo = "guide/app";
    let config = push_blob(&registry, repo, b"{}");
    let layer = push_blob(&registry, repo, &[7; 16]);
    let signed = image(&config, &[&layer], None, None);
    let digest = push_manifest(&registry, repo, "", &signed);
    assert_eq!(push_manifest(&registry, repo, "v1", &signed), digest);
    let signature_layer = push_blob(&registry, repo, &[8; 16]);
    let signature = push_manifest(
        &registry,
        repo,
        "",
        &image(&config, &[&signature_layer], Some(&digest), None),
    );
    store.json(&["retention", "hold", "guide/app@v1", "--reason", "inquiry 9"]);
    let expiry: artifact_core::time::Timestamp = store.json(&[
        "retention",
        "status",
        &format!("{repo}@sha256-{}", signature.trim_start_matches("sha256:")),
    ])["current_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    crate::kit::sleep_until_past(expiry);
    // The by-digest package expires; the signature stays, kept by the held `v1`.
    let sweep = store.json(&["retention", "sweep"]);
    assert_eq!(sweep["newly_eligible"], 1, "{sweep}");
    assert!(sweep["deferred"].to_string().contains("is held"), "{sweep}");
    store.json(&["gc", "--grace", "0s"]);
    let answer = registry.send(
        "GET",
        &format!("/v2/{repo}/manifests/{signature}"),
        &[],
        vec![],
    );
    assert_eq!(answer.status, 200, "the held image's signature survives GC");

    // Mutable tags: M1, then M2 under `latest`; M1 expires and is purged; M1 pushed again.
    let live = "guide/live";
    let first = image(&config, &[&layer], None, Some("flash"));
    let second = image(&config, &[&signature_layer], None, Some("release-evidence"));
    let first_digest = push_manifest(&registry, live, "latest", &first);
    push_manifest(&registry, live, "latest", &second);
    let first_package = format!(
        "{live}@sha256-{}",
        first_digest.trim_start_matches("sha256:")
    );
    let expiry: artifact_core::time::Timestamp =
        store.json(&["retention", "status", &first_package])["current_expires_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    crate::kit::sleep_until_past(expiry);
    store.json(&["retention", "sweep"]);
    let gc = store.json(&["gc", "--grace", "0s"]);
    assert!(!gc["purged"].as_array().unwrap().is_empty(), "{gc}");
    let answer = registry.send(
        "GET",
        &format!("/v2/{live}/manifests/{first_digest}"),
        &[],
        vec![],
    );
    assert_eq!(answer.status, 404, "purged");
    assert_eq!(
        push_manifest(&registry, live, "latest", &first),
        first_digest
    );
    let answer = registry.send("GET", &format!("/v2/{live}/manifests/latest"), &[], vec![]);
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.headers["docker-content-digest"].to_str().unwrap(),
        first_digest
    );
    let again = store.json(&["retention", "status", &format!("{first_package}.2")]);
    assert_eq!(again["eligible_for_deletion"], false, "{again}");
    let verify = store.json(&["audit", "verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
    let fsck = store.json(&["fsck"]);
    assert_eq!(fsck["ok"], true, "{fsck}");
}
