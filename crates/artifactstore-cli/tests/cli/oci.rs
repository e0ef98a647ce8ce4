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
