//! The CLI against a real `artifactstore serve` child process (SPEC §4.4, §4.5): large bodies
//! stream through the server without whole-blob buffering, every `--server` command prints
//! what the local store would, and SIGTERM shuts down gracefully with upload sessions
//! resumable after a restart.

use artifact_core::testing::{Tmpfs, names_in};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use artifact_core::digest::{BlobInfo, DualHasher};
use artifact_core::time::{Period, Timestamp};
use bytes::Bytes;
use serde_json::Value as Json;

use crate::kit::{
    self, PILOT_HISTORY, SHOW_KEYS, Server, event_types, ok, parse_json, push_args, sample_tree,
    sleep_until_past,
};

/// Size of each large body (the brief: well above anything the server may hold in memory).
const BIG: u64 = 512 << 20;
/// The server's peak RSS must stay well below the body size.
const RSS_LIMIT: u64 = 200 << 20;
/// Pieces of the generated bodies.
const PIECE: usize = 1 << 20;

/// Upper bound on waiting for a process (a hang detector, not a performance threshold).
const HANG: Duration = Duration::from_secs(120);

/// A [`kit::Store`] (commands run as `local-operator`) and the tokens its remote commands use.
struct Store {
    kit: kit::Store,
    /// writer + retention-admin, principal `release-bot`.
    token: String,
    /// admin, principal `ops`.
    admin_token: String,
}

impl std::ops::Deref for Store {
    type Target = kit::Store;

    fn deref(&self) -> &kit::Store {
        &self.kit
    }
}

impl Store {
    fn new() -> Self {
        Self::new_in(&std::env::temp_dir())
    }

    /// A store whose directories live under `parent` (e.g. a [`Tmpfs`]).
    fn new_in(parent: &Path) -> Self {
        let kit = kit::Store::with_actor_in("local-operator", parent);
        Store {
            token: kit.mint("release-bot", &["writer", "retention-admin"]),
            admin_token: kit.mint("ops", &["admin"]),
            kit,
        }
    }
}

/// CLI commands through the server.
impl Server {
    /// Runs a CLI command with `--server` and `ARTIFACTSTORE_TOKEN`.
    fn remote(&self, store: &Store, token: &str, args: &[&str]) -> Output {
        store
            .command(&[])
            .arg("--server")
            .arg(&self.base)
            .env("ARTIFACTSTORE_TOKEN", token)
            .args(args)
            .output()
            .unwrap()
    }

    fn remote_ok(&self, store: &Store, args: &[&str]) -> Vec<u8> {
        ok(args, self.remote(store, &store.token, args))
    }

    fn remote_json(&self, store: &Store, args: &[&str]) -> Json {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        parse_json(args, &self.remote_ok(store, &with_json))
    }
}

/// A deterministic body of `len` bytes, generated piece by piece (never held whole): a
/// pseudo-random 1 MiB block, stamped with the piece number so no two pieces are equal.
struct Generator {
    block: Vec<u8>,
    len: u64,
}

impl Generator {
    fn new(len: u64, seed: u64) -> Self {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut block = Vec::with_capacity(PIECE);
        while block.len() < PIECE {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            block.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        Self { block, len }
    }

    fn pieces(&self) -> u64 {
        self.len.div_ceil(PIECE as u64)
    }

    fn piece(&self, index: u64) -> Bytes {
        let start = index * PIECE as u64;
        let size = (self.len - start).min(PIECE as u64) as usize;
        let mut piece = self.block[..size].to_vec();
        let stamp = index.to_le_bytes();
        let n = stamp.len().min(size);
        piece[..n].copy_from_slice(&stamp[..n]);
        Bytes::from(piece)
    }

    fn info(&self) -> BlobInfo {
        let mut hasher = DualHasher::new();
        for index in 0..self.pieces() {
            hasher.update(&self.piece(index));
        }
        hasher.finalize()
    }

    /// A streaming request body.
    fn body(self) -> reqwest::Body {
        let pieces = self.pieces();
        let stream = futures_util::stream::unfold(0u64, move |index| {
            let piece = (index < pieces).then(|| self.piece(index));
            async move { piece.map(|p| (Ok::<Bytes, std::io::Error>(p), index + 1)) }
        });
        reqwest::Body::wrap_stream(stream)
    }

    /// Writes the body to `path`.
    fn write_to(&self, path: &Path) {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        for index in 0..self.pieces() {
            file.write_all(&self.piece(index)).unwrap();
        }
        file.flush().unwrap();
    }
}

/// Whether two files have identical bytes (compared piece by piece).
fn same_bytes(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut x, mut y) = (vec![0u8; PIECE], vec![0u8; PIECE]);
    loop {
        let n = read_full(&mut a, &mut x);
        let m = read_full(&mut b, &mut y);
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(file: &mut std::fs::File, buffer: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buffer.len() {
        let n = file.read(&mut buffer[filled..]).unwrap();
        if n == 0 {
            break;
        }
        filled += n;
    }
    filled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_gigabyte_bodies_stream_through_the_server_without_buffering() {
    let store = Store::new();
    let server = store.serve(None);
    let client = reqwest::Client::new();
    let baseline = server.peak_rss();

    // --- monolithic PUT of a generated 512 MiB body.
    let monolithic = Generator::new(BIG, 1);
    let info = monolithic.info();
    let response = client
        .put(server.url(&format!("/blobs/{}", info.blake3)))
        .bearer_auth(&store.token)
        .body(monolithic.body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let stored: Json = response.json().await.unwrap();
    assert_eq!(stored["size"], BIG);
    assert_eq!(stored["sha256"], info.sha256.to_string());
    let after_put = server.peak_rss();

    // --- `push --server` of a 512 MiB file (resumable upload session, 16 MiB PATCHes).
    let source = store.work().join("src");
    std::fs::create_dir_all(&source).unwrap();
    let big_file = source.join("trace.bin");
    let pushed_body = Generator::new(BIG, 2);
    pushed_body.write_to(&big_file);
    let pushed_info = pushed_body.info();
    let pushed = server.remote_json(
        &store,
        &push_args(
            big_file.to_str().unwrap(),
            "big-run",
            "1.0",
            &["--class", "ephemeral"],
        ),
    );
    assert_eq!(pushed["total_size"], BIG);
    let manifest = server.remote_json(&store, &["manifest", "big-run@1.0"]);
    assert_eq!(
        manifest["files"][0]["blake3"],
        pushed_info.blake3.to_string()
    );
    assert_eq!(
        manifest["files"][0]["sha256"],
        pushed_info.sha256.to_string()
    );
    let after_push = server.peak_rss();

    // --- `pull --server` is byte-identical (and streams the download).
    let dest = store.work().join("pulled");
    server.remote_ok(&store, &["pull", "big-run@1.0", dest.to_str().unwrap()]);
    assert!(
        same_bytes(&big_file, &dest.join("trace.bin")),
        "pull differs"
    );
    let after_pull = server.peak_rss();

    // The server never held a body: its peak RSS stays far below one.
    for (what, peak) in [
        ("baseline", baseline),
        ("monolithic PUT", after_put),
        ("push --server", after_push),
        ("pull --server", after_pull),
    ] {
        eprintln!("server peak RSS after {what}: {} MiB", peak >> 20);
        assert!(
            peak < RSS_LIMIT,
            "server peak RSS after {what}: {} MiB (limit {} MiB, body {} MiB)",
            peak >> 20,
            RSS_LIMIT >> 20,
            BIG >> 20
        );
    }
}

#[test]
fn remote_commands_print_what_the_local_store_would() {
    let store = Store::new();
    // A 2-second release-evidence class (server and local commands read the data dir's
    // config.toml), so the package really expires during the test: sweeps run on the store's
    // clock and refuse an `as_of` later than it.
    store.configure("[retention.classes.release-evidence]\ndefault = \"2s\"\n");
    let server = store.serve(None);
    let src = sample_tree(store.work());
    let pkg = "guide-board@2026.11.23-1";

    let pushed = server.remote_json(
        &store,
        &push_args(
            src.to_str().unwrap(),
            "guide-board",
            "2026.11.23-1",
            &[
                "--class",
                "release-evidence",
                "--label",
                "git.commit=abc123",
            ],
        ),
    );
    for key in [
        "package_id",
        "name",
        "version",
        "retention_class",
        "expires_at",
    ] {
        assert!(
            pushed.get(key).is_some(),
            "push --json lacks {key}: {pushed}"
        );
    }
    let package_id = pushed["package_id"].as_str().unwrap().to_owned();
    assert_eq!(pushed["created"], true);

    // Each read command: the server's answer equals the embedded store's.
    let same_json = |args: &[&str]| {
        let remote = server.remote_json(&store, args);
        let local = store.json(args);
        assert_eq!(remote, local, "{args:?}: --server and local differ");
        remote
    };
    let same_bytes = |args: &[&str]| {
        let remote = server.remote_ok(&store, args);
        let local = store.ok(args);
        assert!(remote == local, "{args:?}: --server and local bytes differ");
        remote
    };
    let listed = same_json(&["ls"]);
    assert_eq!(listed[0]["package_id"], package_id.as_str());
    same_json(&["ls", "--name", "guide-board", "--class", "release-evidence"]);
    let shown = same_json(&["show", pkg]);
    assert_eq!(shown["created_by"], "release-bot", "the token's principal");
    for key in SHOW_KEYS {
        assert!(shown.get(key).is_some(), "show --json lacks {key}");
    }
    same_json(&["show", &package_id]);
    same_json(&["manifest", pkg]);
    same_bytes(&["manifest", pkg, "--cbor"]);
    let html = same_bytes(&["cat", pkg, "report/index.html"]);
    assert_eq!(html, b"<html>guide board</html>");
    let trace = same_bytes(&["cat", &package_id, "trace.bin"]);
    assert!(trace == std::fs::read(src.join("trace.bin")).unwrap());
    assert!(same_bytes(&["cat", pkg, "empty.log"]).is_empty());

    // pull --server is byte-identical.
    let dest = store.work().join("pulled");
    server.remote_ok(&store, &["pull", pkg, dest.to_str().unwrap()]);
    for path in [
        "report/index.html",
        "report/assets/style.css",
        "empty.log",
        "trace.bin",
    ] {
        assert!(
            std::fs::read(dest.join(path)).unwrap() == std::fs::read(src.join(path)).unwrap(),
            "{path} differs after pull --server"
        );
    }

    // Retention through the server; the state reads the same from both sides.
    let expires: Timestamp = pushed["expires_at"].as_str().unwrap().parse().unwrap();
    let until = expires.checked_add(Period::Millis(1_000)).unwrap();
    let extended = server.remote_json(
        &store,
        &[
            "retention",
            "extend",
            pkg,
            "--until",
            &until.to_string(),
            "--reason",
            "audit cycle",
        ],
    );
    assert_eq!(extended["current_expires_at"], until.to_string().as_str());
    let hold = server.remote_json(&store, &["retention", "hold", pkg, "--reason", "inquiry"]);
    let hold_id = hold["hold_id"].as_str().unwrap().to_owned();
    let status = same_json(&["retention", "status", pkg]);
    assert_eq!(status["active_holds"], 1);
    // Expired (by the store's clock), but held: nothing is marked.
    sleep_until_past(until);
    let during = server.remote_json(&store, &["retention", "sweep"]);
    assert_eq!(during["newly_eligible"], 0);
    server.remote_json(
        &store,
        &["retention", "release", pkg, &hold_id, "--reason", "closed"],
    );
    let swept = server.remote_json(&store, &["retention", "sweep"]);
    assert_eq!(swept["newly_eligible"], 1);
    assert_eq!(swept["package_ids"][0], package_id.as_str());
    let status = same_json(&["retention", "status", pkg]);
    assert_eq!(status["eligible_for_deletion"], true);
    same_json(&["ls", "--eligible"]);
    let history = same_json(&["retention", "history", pkg]);
    assert_eq!(event_types(&history), PILOT_HISTORY);
    same_bytes(&["retention", "history", pkg, "--cbor"]);
    same_json(&[
        "retention",
        "explain",
        pkg,
        "--as-of",
        "2100-01-01T00:00:00Z",
    ]);

    // Events and the audit.
    let events = same_json(&["events"]);
    same_json(&["events", "--package", pkg]);
    same_json(&["events", "--after", "3", "--type", "v1.retention.extended"]);
    same_bytes(&["events", "--cbor"]);
    for event in events.as_array().unwrap() {
        let expected = match event["type"].as_str().unwrap() {
            // Tokens were minted locally, before the server started.
            "v1.auth.token_created" => "local-operator",
            _ => "release-bot",
        };
        assert_eq!(event["actor"], expected, "{event}");
    }
    let audit = same_json(&["audit", "verify"]);
    assert_eq!(audit["ok"], true);
    assert_eq!(audit["head_seq"], events.as_array().unwrap().len());

    // Blobs in and out.
    let blob = server.remote_json(
        &store,
        &["blob", "put", src.join("trace.bin").to_str().unwrap()],
    );
    let by_sha = same_bytes(&["blob", "get", blob["sha256"].as_str().unwrap()]);
    assert!(by_sha == std::fs::read(src.join("trace.bin")).unwrap());

    // Operator commands need an admin token; errors are one line with the reason.
    let refused = server.remote(&store, &store.token, &["admin", "rebuild-views"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.starts_with("artifactstore: ")
            && stderr.contains("403")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    let rebuilt = ok(
        &["admin", "rebuild-views"],
        server.remote(
            &store,
            &store.admin_token,
            &["--json", "admin", "rebuild-views"],
        ),
    );
    assert!(
        parse_json(&[], &rebuilt)["events_replayed"]
            .as_u64()
            .unwrap()
            > 0
    );
    let anonymous = store
        .command(&[])
        .args(["--server", &server.base, "ls"])
        .output()
        .unwrap();
    assert!(!anonymous.status.success());
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).contains("ARTIFACTSTORE_TOKEN"),
        "a hint to set the token"
    );
}

/// Opens an upload session (`POST /uploads`, 201); returns its location.
async fn open_session(client: &reqwest::Client, server: &Server, token: &str) -> String {
    let created = client
        .post(server.url("/uploads"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    created.headers()["location"].to_str().unwrap().to_owned()
}

/// The session's `upload-offset` (`HEAD`, 204).
async fn upload_offset(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    location: &str,
) -> usize {
    let head = client
        .head(server.url(location))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 204);
    head.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Finishes the session as the blob `info` (`PUT ?digest=…`, 201).
async fn finish_session(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    location: &str,
    info: &BlobInfo,
) {
    let finished = client
        .put(server.url(&format!(
            "{location}?digest={}&digest={}",
            info.blake3, info.sha256
        )))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(finished.status(), 201);
}

/// SIGTERMs `server`: it exits 0 within [`HANG`] and its log says `needle`.
fn assert_exits_0_after_sigterm(server: Server, store: &Store, needle: &str) {
    let status = server.terminate(HANG);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    assert!(
        store.server_log().contains(needle),
        "{}",
        store.server_log()
    );
}

/// PATCHes `body` at `offset`.
async fn patch(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    location: &str,
    offset: u64,
    body: Vec<u8>,
) -> reqwest::Response {
    client
        .patch(server.url(location))
        .bearer_auth(token)
        .header("upload-offset", offset.to_string())
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_an_open_upload_session_exits_0_and_the_session_resumes() {
    let store = Store::new();
    let content = Generator::new((3 << 20) + 11, 4);
    let bytes: Vec<u8> = (0..content.pieces())
        .flat_map(|i| content.piece(i).to_vec())
        .collect();
    let info = BlobInfo::of(&bytes);
    let first = (1 << 20) + 5;

    let server = store.serve(None);
    let client = reqwest::Client::new();
    let location = open_session(&client, &server, &store.token).await;
    let response = patch(
        &client,
        &server,
        &store.token,
        &location,
        0,
        bytes[..first].to_vec(),
    )
    .await;
    assert_eq!(response.status(), 202);
    drop(client);

    assert_exits_0_after_sigterm(server, &store, "stopped");

    // A new server over the same data directory: the session is still there.
    let server = store.serve(None);
    let client = reqwest::Client::new();
    assert_eq!(
        upload_offset(&client, &server, &store.token, &location).await,
        first
    );
    let response = patch(
        &client,
        &server,
        &store.token,
        &location,
        first as u64,
        bytes[first..].to_vec(),
    )
    .await;
    assert_eq!(response.status(), 202);
    finish_session(&client, &server, &store.token, &location, &info).await;
    let fetched = client
        .get(server.url(&format!("/blobs/{}", info.sha256)))
        .bearer_auth(&store.token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        fetched == bytes,
        "the resumed upload stored the right bytes"
    );
    // And the local store agrees.
    let local = store.ok(&["blob", "get", &info.blake3.to_string()]);
    assert!(local == bytes);
}

#[test]
fn sigterm_exits_although_an_event_follower_is_connected() {
    let store = Store::new();
    let server = store.serve(None);
    let mut follower = store
        .command(&[])
        .args(["--server", &server.base, "--json", "events", "--follow"])
        .env("ARTIFACTSTORE_TOKEN", &store.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The follower is connected once it has printed the first event.
    let mut lines = BufReader::new(follower.stdout.take().unwrap());
    let mut first = String::new();
    lines.read_line(&mut first).unwrap();
    assert!(first.contains("v1.auth.token_created"), "{first}");
    let status = server.terminate(Duration::from_secs(20));
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(status.code(), Some(0));
}

/// Fails with a one-line reason containing each of `needles`.
fn fails_with(args: &[&str], output: Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "artifactstore {args:?} succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    for needle in needles {
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
}

#[test]
fn token_lifecycle_through_the_cli_locally_and_over_the_server() {
    let store = Store::new();
    let server = store.serve(None);
    let admin = |args: &[&str]| server.remote(&store, &store.admin_token, args);

    // create --expires, over the server and locally.
    let args = [
        "--json",
        "admin",
        "token",
        "create",
        "--principal",
        "nightly",
        "--role",
        "reader",
        "--expires",
        "2099-01-01T00:00:00Z",
    ];
    let remote = parse_json(&args, &ok(&args, admin(&args)));
    assert_eq!(remote["expires_at"], "2099-01-01T00:00:00.000Z");
    assert_eq!(remote["principal"], "nightly");
    let nightly = remote["token"].as_str().unwrap().to_owned();
    let nightly_id = remote["token_id"].as_str().unwrap().to_owned();
    let local = store.json(&args[1..]);
    assert!(local["token"].as_str().unwrap().starts_with("ast_"));
    assert_eq!(local["expires_at"], "2099-01-01T00:00:00.000Z");
    let local_id = local["token_id"].as_str().unwrap().to_owned();
    // Human output: the token on stdout, its id on stderr.
    let human = ok(
        &[],
        store.run(&[
            "admin",
            "token",
            "create",
            "--principal",
            "plain",
            "--role",
            "reader",
        ]),
    );
    assert!(String::from_utf8_lossy(&human).trim().starts_with("ast_"));

    // Refused: reserved principals, past expiry, malformed expiry.
    for (args, needle) in [
        (
            vec![
                "admin",
                "token",
                "create",
                "--principal",
                "system:gc",
                "--role",
                "admin",
            ],
            "reserved",
        ),
        (
            vec![
                "admin",
                "token",
                "create",
                "--principal",
                "late",
                "--role",
                "reader",
                "--expires",
                "2001-01-01T00:00:00Z",
            ],
            "not in the future",
        ),
    ] {
        fails_with(&args, admin(&args), &[needle]);
        fails_with(&args, store.run(&args), &[needle]);
    }

    // list: the same from both sides, never a secret.
    let list_args = ["--json", "admin", "token", "list"];
    let listed_remote = parse_json(&list_args, &ok(&list_args, admin(&list_args)));
    let listed_local = store.json(&list_args[1..]);
    assert_eq!(listed_remote, listed_local);
    let text = listed_remote.to_string();
    assert!(!text.contains(&nightly) && !text.contains(&store.token));
    let ids: Vec<&str> = listed_remote
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5, "{listed_remote}");
    assert!(ids.contains(&nightly_id.as_str()) && ids.contains(&local_id.as_str()));
    let human = String::from_utf8(store.ok(&["admin", "token", "list"])).unwrap();
    assert!(
        human.contains(&nightly_id)
            && human.contains("release-bot")
            && human.contains("2099-01-01"),
        "{human}"
    );
    // Listing needs the admin role.
    let args = ["admin", "token", "list"];
    fails_with(&args, server.remote(&store, &store.token, &args), &["403"]);

    // revoke over the server: the token is refused on its next request.
    let reader = |args: &[&str]| server.remote(&store, &nightly, args);
    ok(&["events"], reader(&["events"]));
    let args = [
        "--json",
        "admin",
        "token",
        "revoke",
        &nightly_id,
        "--reason",
        "rotated",
    ];
    let revoked = parse_json(&args, &ok(&args, admin(&args)));
    assert_eq!(revoked["revoked"], true);
    fails_with(&["events"], reader(&["events"]), &["401", "revoked"]);
    // Revoked locally while the server runs: the server refuses it too (it reads the catalog
    // on every request).
    let release_bot_id = listed_local
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["principal"] == "release-bot")
        .unwrap()["token_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&["ls"], server.remote(&store, &store.token, &["ls"]));
    let out = store.ok(&[
        "admin",
        "token",
        "revoke",
        &release_bot_id,
        "--reason",
        "leaked",
    ]);
    assert!(
        String::from_utf8_lossy(&out).contains(&release_bot_id),
        "{}",
        String::from_utf8_lossy(&out)
    );
    fails_with(
        &["ls"],
        server.remote(&store, &store.token, &["ls"]),
        &["401", "revoked"],
    );

    // Refused revocations: again (409), unknown (404), no reason; nothing appended.
    let head = store.json(&["audit", "verify"])["head_seq"].clone();
    for (args, needle) in [
        (
            vec![
                "admin",
                "token",
                "revoke",
                nightly_id.as_str(),
                "--reason",
                "again",
            ],
            "409",
        ),
        (
            vec![
                "admin",
                "token",
                "revoke",
                "tok-99999",
                "--reason",
                "unknown",
            ],
            "404",
        ),
        (
            vec![
                "admin",
                "token",
                "revoke",
                nightly_id.as_str(),
                "--reason",
                "",
            ],
            "400",
        ),
    ] {
        fails_with(&args, admin(&args), &[needle]);
    }
    for (args, needle) in [
        (
            vec![
                "admin",
                "token",
                "revoke",
                nightly_id.as_str(),
                "--reason",
                "again",
            ],
            "already revoked",
        ),
        (
            vec![
                "admin",
                "token",
                "revoke",
                "tok-99999",
                "--reason",
                "unknown",
            ],
            "not found",
        ),
    ] {
        fails_with(&args, store.run(&args), &[needle]);
    }
    assert_eq!(store.json(&["audit", "verify"])["head_seq"], head);
}

#[test]
fn cat_and_pull_over_the_server_refuse_a_purged_package() {
    let store = Store::new();
    // A 1-second class, so the package really expires (sweeps run on the store's clock).
    store.configure("[retention.classes.ephemeral]\ndefault = \"1s\"\n");
    let server = store.serve(None);
    let src = sample_tree(store.work());
    let pkg = "scratch@1";
    server.remote_json(
        &store,
        &push_args(
            src.to_str().unwrap(),
            "scratch",
            "1",
            &["--class", "ephemeral"],
        ),
    );
    let before = server.remote_ok(&store, &["cat", pkg, "report/index.html"]);
    assert_eq!(before, b"<html>guide board</html>");
    let expires: Timestamp = server.remote_json(&store, &["show", pkg])["current_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    sleep_until_past(expires);
    let swept = server.remote_json(&store, &["retention", "sweep"]);
    assert_eq!(swept["newly_eligible"], 1, "{swept}");
    let gc = parse_json(
        &[],
        &ok(
            &["gc"],
            server.remote(&store, &store.admin_token, &["--json", "gc"]),
        ),
    );
    assert_eq!(gc["purged"].as_array().map(Vec::len), Some(1), "{gc}");

    // The bytes are still in the blob store (grace), yet every file read is refused.
    let args = ["cat", pkg, "report/index.html"];
    let cat = server.remote(&store, &store.token, &args);
    assert!(cat.stdout.is_empty(), "cat wrote nothing");
    fails_with(&args, cat, &["410", "purged"]);
    fails_with(&args, store.run(&args), &["purged"]);
    let dest = store.work().join("pulled-purged");
    let args = ["pull", pkg, dest.to_str().unwrap()];
    fails_with(
        &args,
        server.remote(&store, &store.token, &args),
        &["410", "purged"],
    );
    assert!(
        !dest.join("report/index.html").exists() && !dest.join("trace.bin").exists(),
        "pull wrote no file"
    );
    // The manifest and the record stay readable.
    server.remote_json(&store, &["manifest", pkg]);
    let shown = server.remote_json(&store, &["show", pkg]);
    assert!(shown["purged_seq"].is_u64(), "{shown}");
}

/// Issue 11, item 10: `push --server` onto a server whose disk is full fails with the cause
/// (507, storage full), does not retry what cannot succeed, and deletes its upload session:
/// nothing stays behind on the server (no session file, no staging file, no event).
#[test]
fn a_push_onto_a_full_disk_fails_naming_the_cause_and_leaves_no_session() {
    let tmpfs = Tmpfs::mount(8 << 20);
    let store = Store::new_in(&tmpfs.path());
    let head = store.json(&["audit", "verify"]);
    let server = store.serve(None);
    let source = tempfile::tempdir().unwrap();
    Generator::new(12 << 20, 31).write_to(&source.path().join("big.bin"));
    let output = server.remote(
        &store,
        &store.token,
        &push_args(
            source.path().to_str().unwrap(),
            "too-big",
            "1",
            &["--class", "build-cache"],
        ),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("storage full") && stderr.contains("HTTP 507"),
        "the cause is named: {stderr}"
    );
    assert_eq!(
        names_in(&store.data_dir.join("uploads")),
        Vec::<String>::new(),
        "the failed push deleted its session; the push said: {stderr}"
    );
    assert_eq!(
        names_in(&store.data_dir.join("blobs").join("tmp")),
        Vec::<String>::new()
    );
    drop(server);
    assert_eq!(store.json(&["audit", "verify"]), head, "nothing recorded");
}

/// Issue 11, item 13: SIGTERM finishes although a client trickles an upload body: after
/// `shutdown_grace` the connection is cut, the process exits 0, and after a restart the
/// session resumes from what was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_a_trickling_upload_after_the_grace_and_the_session_resumes() {
    use tokio::io::AsyncWriteExt as _;
    let store = Store::new();
    std::fs::write(
        store.data_dir.join("config.toml"),
        "[server]\nshutdown_grace = \"1s\"\nbody_idle_timeout = \"1h\"\n",
    )
    .unwrap();
    let content = Generator::new((3 << 20) + 9, 32);
    let bytes: Vec<u8> = (0..content.pieces())
        .flat_map(|i| content.piece(i).to_vec())
        .collect();
    let info = BlobInfo::of(&bytes);

    let server = store.serve(None);
    let client = reqwest::Client::new();
    let location = open_session(&client, &server, &store.token).await;
    let id = location.trim_start_matches("/uploads/").to_owned();
    let part = store.data_dir.join("uploads").join(format!("{id}.part"));

    // A PATCH that sends a little over 1 MiB of its 3 MiB, then trickles nothing more.
    let mut trickle = tokio::net::TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\
         upload-offset: 0\r\ncontent-length: {}\r\n\r\n",
        store.token,
        bytes.len()
    );
    trickle.write_all(head.as_bytes()).await.unwrap();
    trickle.write_all(&bytes[..(1 << 20) + 5]).await.unwrap();
    let deadline = std::time::Instant::now() + HANG;
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 1 << 20 {
        assert!(std::time::Instant::now() < deadline, "the first MiB lands");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    assert_exits_0_after_sigterm(server, &store, "shutdown_grace expired");
    drop(trickle);

    // Restarted: the session is at what was written, and resumes.
    let server = store.serve(None);
    let offset = upload_offset(&client, &server, &store.token, &location).await;
    assert!(
        (1 << 20..=(1 << 20) + 5).contains(&offset),
        "the offset is what was written: {offset}"
    );
    assert_eq!(std::fs::metadata(&part).unwrap().len(), offset as u64);
    let response = patch(
        &client,
        &server,
        &store.token,
        &location,
        offset as u64,
        bytes[offset..].to_vec(),
    )
    .await;
    assert_eq!(response.status(), 202);
    finish_session(&client, &server, &store.token, &location, &info).await;
    let local = store.ok(&["blob", "get", &info.blake3.to_string()]);
    assert!(local == bytes, "the resumed upload stored the right bytes");
}

/// A server of another version whose reports lack members: the CLI names the route and the
/// missing member and fails, instead of printing `-` for what it cannot find (it printed
/// `ok: head seq - hash -` and exited 0 before the typed results).
#[test]
fn a_report_missing_members_is_a_decode_error_naming_the_route() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Answers every request with the same incomplete report.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let body = br#"{"ok":true}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    let work = tempfile::tempdir().unwrap();
    for (args, route, member) in [
        (&["audit", "verify"][..], "GET /audit/verify", "violations"),
        (&["fsck"][..], "GET /admin/fsck", "packages"),
        (&["gc"][..], "POST /admin/gc", "dry_run"),
        (&["verify"][..], "POST /admin/verify", "checked"),
        (
            &["retention", "sweep"][..],
            "POST /retention/sweep",
            "as_of",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_artifactstore"))
            .current_dir(work.path())
            .env_remove("ARTIFACTSTORE_TOKEN")
            .arg("--server")
            .arg(&base)
            .args(args)
            .output()
            .unwrap();
        fails_with(
            args,
            output,
            &[
                &format!("the answer of {route} does not decode"),
                &format!("missing field `{member}`"),
            ],
        );
    }
}
