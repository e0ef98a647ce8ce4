//! The `artifactstore` binary with `[blobs] backend = "s3"` against a real S3-compatible server
//! (SeaweedFS on loopback, started by artifact-store-s3's `tests/support/seaweed.rs`, or the
//! server named by `ARTIFACTSTORE_TEST_S3_ENDPOINT`): the pilot scenario of SPEC §8, a
//! byte-identical round trip, gc, verify and fsck on the embedded CLI, then the same store
//! served by `artifactstore serve` and driven with `--server`. The bytes are checked to be in
//! the bucket (and not on local disk) by listing the bucket directly. A server that cannot be
//! started fails these tests; they never skip.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use artifact_core::blob::BlobStore as _;
use artifact_core::digest::Blake3;
use artifact_store_s3::S3BlobStore;
use serde_json::Value as Json;

use crate::kit::{
    Server, clean_command, ok, parse_json, pilot_retention, push_args, sample_tree_seeded,
    token_args, token_of,
};
use crate::seaweed::{self, S3Target, TestS3};

/// The stores' `release-evidence` class: 2 seconds, so the pilot package really expires during
/// the test (a sweep marks only what has expired by the store's clock; it refuses a later
/// `as_of`).
const RELEASE_EVIDENCE_2S: &str = "[retention.classes.release-evidence]\ndefault = \"2s\"\n";

/// A data directory (SQLite catalog) whose blobs live under a fresh prefix of the bucket.
pub(crate) struct S3Cli {
    dir: tempfile::TempDir,
    pub(crate) target: S3Target,
    pub(crate) prefix: String,
    pub(crate) runtime: tokio::runtime::Runtime,
    /// writer + retention-admin token for `--server` runs.
    token: String,
    /// A PostgreSQL catalog instead of the embedded SQLite one.
    database_url: Option<String>,
}

impl S3Cli {
    fn new(target: &S3Target, runtime: tokio::runtime::Runtime, test: &str) -> Self {
        Self::new_with(target, runtime, test, "")
    }

    /// A store whose config also has `more` (TOML: `[blobs]` keys first, then sections).
    pub(crate) fn new_with(
        target: &S3Target,
        runtime: tokio::runtime::Runtime,
        test: &str,
        more: &str,
    ) -> Self {
        Self::new_on(target, runtime, test, more, None)
    }

    /// [`S3Cli::new_with`] on the catalog `database_url` (PostgreSQL) when given.
    pub(crate) fn new_on(
        target: &S3Target,
        runtime: tokio::runtime::Runtime,
        test: &str,
        more: &str,
        database_url: Option<String>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let target = target.clone();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let prefix = format!("cli/{test}-{}-{nanos}", std::process::id());
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "[blobs]\nbackend = \"s3\"\nbucket = \"{}\"\nprefix = \"{prefix}\"\nendpoint = \"{}\"\nregion = \"{}\"\nallow_http = true\n{more}\n{RELEASE_EVIDENCE_2S}",
                target.bucket, target.endpoint, target.region
            ),
        )
        .unwrap();
        let mut cli = S3Cli {
            dir,
            target,
            prefix,
            runtime,
            token: String::new(),
            database_url,
        };
        cli.ok(&["init"]);
        cli.token = token_of(&cli.json(&token_args(
            "release-bot",
            &["writer", "retention-admin", "admin"],
        )));
        cli
    }

    pub(crate) fn work(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The binary on this store: config from the temp dir, S3 credentials from the
    /// environment (the usual AWS chain), 5 MiB parts so the 5 MiB + 17 file is multipart.
    pub(crate) fn command(&self) -> Command {
        let mut command = clean_command(&self.data_dir(), "ci-bot");
        command
            .env("ARTIFACTSTORE_CONFIG", self.work().join("config.toml"))
            .env("AWS_ACCESS_KEY_ID", &self.target.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.target.secret_access_key)
            .env("ARTIFACTSTORE_S3_PART_SIZE_MIB", "5");
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        command
    }

    pub(crate) fn ok(&self, args: &[&str]) -> Vec<u8> {
        ok(args, self.command().args(args).output().unwrap())
    }

    /// Runs a command that must fail; returns its stderr.
    pub(crate) fn fails(&self, command: &mut Command, args: &[&str]) -> String {
        let output = command.args(args).output().unwrap();
        assert!(
            !output.status.success(),
            "artifactstore {args:?} should have failed"
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Writes a config like the store's own with `key = value` replaced in `[blobs]`.
    pub(crate) fn config_with(&self, key: &str, value: &str) -> PathBuf {
        let text = std::fs::read_to_string(self.work().join("config.toml")).unwrap();
        let changed: String = text
            .lines()
            .map(|line| {
                if line.starts_with(&format!("{key} = ")) {
                    format!("{key} = {value}\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        assert_ne!(changed, text, "{key} is in the config");
        let path = self.work().join(format!("bad-{key}.toml"));
        std::fs::write(&path, changed).unwrap();
        path
    }

    pub(crate) fn json(&self, args: &[&str]) -> Json {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        parse_json(args, &self.ok(&with_json))
    }

    /// The blob keys under this store's prefix, listed from the bucket itself.
    pub(crate) fn bucket_blobs(&self) -> BTreeSet<Blake3> {
        let store: S3BlobStore = self
            .target
            .options()
            .with_prefix(&self.prefix)
            .build()
            .unwrap();
        self.runtime
            .block_on(store.list())
            .unwrap()
            .into_iter()
            .collect()
    }

    /// Files under the data directory's local blob root (the fs backend's place): must stay
    /// empty, since the bytes go to S3.
    fn local_blob_files(&self) -> usize {
        fn count(dir: &Path) -> usize {
            std::fs::read_dir(dir).map_or(0, |entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let path = e.path();
                        if path.is_dir() { count(&path) } else { 1 }
                    })
                    .sum()
            })
        }
        count(&self.data_dir().join("blobs"))
    }

    /// Starts `artifactstore serve --listen 127.0.0.1:0` over this store.
    pub(crate) fn serve(&self) -> Server {
        let mut command = self.command();
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        let log = self.work().join("server.log");
        // A fresh log per server.
        let _ = std::fs::remove_file(&log);
        Server::start(command, Some(&log))
    }

    /// Runs a command with `--server` and the writer token.
    pub(crate) fn remote_ok(&self, server: &Server, args: &[&str]) -> Vec<u8> {
        let output = self
            .command()
            .arg("--server")
            .arg(&server.base)
            .env("ARTIFACTSTORE_TOKEN", &self.token)
            .args(args)
            .output()
            .unwrap();
        ok(args, output)
    }

    pub(crate) fn remote_json(&self, server: &Server, args: &[&str]) -> Json {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        parse_json(args, &self.remote_ok(server, &with_json))
    }
}

/// Every file of `a` has the same bytes under `b`.
fn assert_same_tree(a: &Path, b: &Path) {
    for rel in [
        "report/index.html",
        "report/assets/style.css",
        "empty.log",
        "trace.bin",
    ] {
        assert_eq!(
            std::fs::read(a.join(rel)).unwrap(),
            std::fs::read(b.join(rel)).unwrap(),
            "{rel} differs after the round trip"
        );
    }
}

/// The file digests (blake3) a manifest names.
fn manifest_blobs(manifest: &Json) -> BTreeSet<Blake3> {
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["blake3"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn pilot_round_trip_gc_verify_and_fsck_on_the_s3_backend_locally_and_over_http() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = runtime.block_on(TestS3::start());
    let cli = S3Cli::new(s3.target(), runtime, "pilot");
    let readiness = cli.json(&["fsck"]);
    assert_eq!(readiness["ok"], Json::Bool(true), "{readiness}");

    // --- Embedded CLI, blobs in S3 ---------------------------------------------------------
    let src = sample_tree_seeded(cli.work(), "guide-board-run", 1);
    let pushed = cli.json(&push_args(
        src.to_str().unwrap(),
        "guide-board",
        "2026.11.23-1",
        &[
            "--class",
            "release-evidence",
            "--label",
            "git.commit=3f2a9c1",
        ],
    ));
    let pilot_id = pushed["package_id"].as_str().unwrap().to_owned();
    let package = "guide-board@2026.11.23-1";
    let manifest = cli.json(&["manifest", package]);
    let pilot_blobs = manifest_blobs(&manifest);
    assert_eq!(pilot_blobs.len(), 4);
    let in_bucket = cli.bucket_blobs();
    assert!(
        pilot_blobs.is_subset(&in_bucket),
        "every file's bytes are in the bucket: {pilot_blobs:?} vs {in_bucket:?}"
    );
    let manifest_key: Blake3 = pilot_id.parse().unwrap();
    assert!(
        in_bucket.contains(&manifest_key),
        "the manifest is stored as a blob"
    );
    assert_eq!(cli.local_blob_files(), 0, "nothing lands on the fs backend");

    let pulled = cli.work().join("pulled");
    cli.ok(&["pull", package, pulled.to_str().unwrap()]);
    assert_same_tree(&src, &pulled);
    assert_eq!(
        cli.ok(&["cat", package, "report/index.html"]),
        b"<html>guide board 1</html>"
    );

    // A second, live package that shares style.css and empty.log with the pilot.
    let other_src = sample_tree_seeded(cli.work(), "other-run", 2);
    cli.json(&push_args(
        other_src.to_str().unwrap(),
        "other",
        "1",
        &["--class", "permanent-record"],
    ));
    let other_blobs = manifest_blobs(&cli.json(&["manifest", "other@1"]));

    pilot_retention(package, &|args| cli.json(args), &|args| cli.ok(args));

    // gc purges the eligible pilot and deletes from the bucket exactly the file blobs no live
    // package shares; manifests are kept forever.
    let unique: BTreeSet<Blake3> = pilot_blobs.difference(&other_blobs).copied().collect();
    assert_eq!(unique.len(), 2, "index.html and trace.bin differ by seed");
    let dry = cli.json(&["gc", "--grace", "1ms", "--dry-run"]);
    assert_eq!(dry["purged"], serde_json::json!([pilot_id]));
    let head_before = cli.json(&["audit", "verify"])["head_seq"].as_i64().unwrap();
    let gc = cli.json(&["gc", "--grace", "1ms"]);
    assert_eq!(gc["purged"], dry["purged"]);
    assert_eq!(gc["deleted_blobs"], dry["deleted_blobs"]);
    let deleted: BTreeSet<Blake3> = gc["deleted_blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(deleted, unique);
    let after_gc = cli.bucket_blobs();
    assert!(
        after_gc.is_disjoint(&unique),
        "gc removed the pilot's unique blobs from the bucket"
    );
    assert!(
        other_blobs.is_subset(&after_gc),
        "the live package keeps its blobs"
    );
    assert!(
        after_gc.contains(&manifest_key),
        "manifests are kept forever"
    );
    let events = cli.json(&["events", "--after", &head_before.to_string()]);
    let types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "v1.package.purged",
            "v1.blob.deletion_started",
            "v1.blob.deleted",
            "v1.blob.deleted"
        ]
    );
    let pulled_other = cli.work().join("pulled-other");
    cli.ok(&["pull", "other@1", pulled_other.to_str().unwrap()]);
    assert_same_tree(&other_src, &pulled_other);

    let verify = cli.json(&["verify"]);
    assert_eq!(verify["ok"], Json::Bool(true), "{verify}");
    assert!(verify["checked"].as_i64().unwrap() >= 5, "{verify}");
    let fsck = cli.json(&["fsck"]);
    assert_eq!(fsck["ok"], Json::Bool(true), "{fsck}");
    cli.ok(&["audit", "verify"]);

    // --- The same store served over HTTP --------------------------------------------------
    let server = cli.serve();
    let http_src = sample_tree_seeded(cli.work(), "http-run", 3);
    let pushed = cli.remote_json(
        &server,
        &push_args(
            http_src.to_str().unwrap(),
            "guide-board",
            "2026.11.24-1",
            &["--class", "release-evidence"],
        ),
    );
    let http_package = "guide-board@2026.11.24-1";
    let http_blobs = manifest_blobs(&cli.remote_json(&server, &["manifest", http_package]));
    let in_bucket = cli.bucket_blobs();
    assert!(
        http_blobs.is_subset(&in_bucket),
        "uploads through the server land in the bucket"
    );
    assert!(in_bucket.contains(&pushed["package_id"].as_str().unwrap().parse().unwrap()));
    assert_eq!(cli.local_blob_files(), 0, "nothing lands on the fs backend");
    let pulled_http = cli.work().join("pulled-http");
    cli.remote_ok(
        &server,
        &["pull", http_package, pulled_http.to_str().unwrap()],
    );
    assert_same_tree(&http_src, &pulled_http);
    pilot_retention(
        http_package,
        &|args| cli.remote_json(&server, args),
        &|args| cli.remote_ok(&server, args),
    );
    let verify = cli.remote_json(&server, &["verify"]);
    assert_eq!(verify["ok"], Json::Bool(true), "{verify}");
    let fsck = cli.remote_json(&server, &["fsck"]);
    assert_eq!(fsck["ok"], Json::Bool(true), "{fsck}");
    drop(server);
    drop(s3);
}

/// Start-up with a bad S3 configuration fails at once with the reason and changes nothing; a
/// running server's `/readyz` turns 503 (problem+json naming the backend) while the S3 server is
/// down and 200 again once it is back, and the store then works again.
#[test]
fn bad_s3_settings_fail_at_start_up_and_readyz_follows_the_s3_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut weed = runtime.block_on(seaweed::SeaweedFs::start());
    let cli = S3Cli::new(weed.target(), runtime, "readyz");
    let src = sample_tree_seeded(cli.work(), "run", 4);
    cli.json(&push_args(src.to_str().unwrap(), "r", "1", &[]));
    let head = cli.json(&["audit", "verify"]);

    let wrong_secret = cli.fails(
        cli.command().env("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        &["ls"],
    );
    assert!(
        wrong_secret.contains("refused the credentials"),
        "{wrong_secret}"
    );
    let bad_bucket = cli.config_with("bucket", "\"artifactstore-no-such-bucket\"");
    let missing = cli.fails(
        cli.command().env("ARTIFACTSTORE_CONFIG", &bad_bucket),
        &["serve", "--listen", "127.0.0.1:0"],
    );
    assert!(missing.contains("does not exist"), "{missing}");
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let dead = cli.config_with("endpoint", &format!("\"http://127.0.0.1:{dead_port}\""));
    let unreachable = cli.fails(
        cli.command().env("ARTIFACTSTORE_CONFIG", &dead),
        &push_args(src.to_str().unwrap(), "r", "2", &[]),
    );
    assert!(
        unreachable.contains("cannot reach the S3 endpoint"),
        "{unreachable}"
    );
    assert_eq!(
        cli.json(&["audit", "verify"]),
        head,
        "failed start-ups change nothing"
    );

    let server = cli.serve();
    let readyz = |expect: u16| {
        let response = cli
            .runtime
            .block_on(reqwest::get(format!("{}/readyz", server.base)))
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = cli.runtime.block_on(response.text()).unwrap();
        assert_eq!(status, expect, "/readyz: {body}");
        (content_type, body)
    };
    readyz(200);
    weed.kill();
    let (content_type, body) = readyz(503);
    assert_eq!(content_type, "application/problem+json");
    let problem: Json = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 503);
    assert!(
        problem["detail"].as_str().unwrap().contains("`s3`"),
        "{problem}"
    );
    cli.runtime.block_on(weed.restart());
    readyz(200);
    let pulled = cli.work().join("pulled");
    cli.remote_ok(&server, &["pull", "r@1", pulled.to_str().unwrap()]);
    assert_same_tree(&src, &pulled);
}
