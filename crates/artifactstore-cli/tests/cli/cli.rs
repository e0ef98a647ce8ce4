//! End-to-end tests of the `artifactstore` binary on an embedded store (SPEC §4.5 contract).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use artifact_core::time::{Clock as _, Period, SystemClock, Timestamp};
use serde_json::Value as Json;

struct Cli {
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cli = Cli {
            data_dir: dir.path().join("data"),
            _dir: dir,
        };
        cli.ok(&["init"]);
        cli
    }

    fn work(&self) -> &Path {
        self._dir.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_artifactstore"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .env_remove("ARTIFACTSTORE_CONFIG")
            .env("ARTIFACTSTORE_ACTOR", "ci-bot")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "artifactstore {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    fn json(&self, args: &[&str]) -> Json {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let stdout = self.ok(&with_json);
        serde_json::from_slice(&stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&stdout)
            )
        })
    }

    /// Runs a command that must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            !output.status.success(),
            "artifactstore {args:?} should have failed"
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            stderr.starts_with("artifactstore: ") || stderr.contains("error:"),
            "one-line reason expected, got {stderr:?}"
        );
        stderr
    }

    fn head_seq(&self) -> i64 {
        self.json(&["audit", "verify"])["head_seq"]
            .as_i64()
            .unwrap()
    }

    /// Appends `toml` to the store's `config.toml` (which `init` wrote): every later command
    /// reads it.
    fn configure(&self, toml: &str) {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir.join("config.toml"))
            .unwrap();
        write!(file, "\n{toml}").unwrap();
    }
}

/// Sleeps until the system clock (the store's clock) is past `t`: sweeps run on the real clock
/// and refuse an `as_of` later than it.
fn sleep_until_past(t: Timestamp) {
    loop {
        let now = SystemClock.now();
        if now > t {
            return;
        }
        let wait = (t.unix_millis() - now.unix_millis()).max(0) as u64 + 20;
        std::thread::sleep(std::time::Duration::from_millis(wait));
    }
}

/// A sample directory: nested paths, an empty file, and a 3 MiB file so that the pipelined
/// hashing path (above 4 MiB in total? no: per blob) and several chunks are exercised.
fn sample_tree(root: &Path) -> PathBuf {
    let src = root.join("guide-board-run");
    std::fs::create_dir_all(src.join("report/assets")).unwrap();
    std::fs::write(src.join("report/index.html"), b"<html>guide board</html>").unwrap();
    std::fs::write(src.join("report/assets/style.css"), b"body{}").unwrap();
    std::fs::write(src.join("empty.log"), b"").unwrap();
    let big: Vec<u8> = (0..(5 << 20) + 17)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("trace.bin"), big).unwrap();
    src
}

fn tool_digest(tool: &str, path: &Path) -> String {
    let output = Command::new(tool)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("{tool} must be installed (scripts/test.sh installs it): {e}"));
    assert!(output.status.success(), "{tool} failed");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn push_pull_round_trip_is_byte_identical_and_digests_match_independent_tools() {
    let cli = Cli::new();
    let src = sample_tree(cli.work());
    let pushed = cli.json(&[
        "push",
        src.to_str().unwrap(),
        "--name",
        "guide-board",
        "--version",
        "2026.11.23-1",
        "--class",
        "release-evidence",
        "--label",
        "git.commit=abc123",
    ]);
    let package_id = pushed["package_id"].as_str().unwrap().to_owned();
    for key in ["name", "version", "retention_class", "expires_at"] {
        assert!(pushed.get(key).is_some(), "push --json lacks {key}");
    }

    // package_id is the BLAKE3 of the bytes `manifest --cbor` prints (checked by b3sum).
    let cbor = cli.ok(&["manifest", &package_id, "--cbor"]);
    let cbor_path = cli.work().join("manifest.cbor");
    std::fs::write(&cbor_path, &cbor).unwrap();
    assert_eq!(
        format!("blake3:{}", tool_digest("b3sum", &cbor_path)),
        package_id
    );

    // Every file's digests match b3sum and sha256sum of the original.
    let manifest = cli.json(&["manifest", "guide-board@2026.11.23-1"]);
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    for file in files {
        let original = src.join(file["path"].as_str().unwrap());
        assert_eq!(
            file["blake3"].as_str().unwrap(),
            format!("blake3:{}", tool_digest("b3sum", &original))
        );
        assert_eq!(
            file["sha256"].as_str().unwrap(),
            format!("sha256:{}", tool_digest("sha256sum", &original))
        );
        assert_eq!(
            file["size"].as_u64().unwrap(),
            std::fs::metadata(&original).unwrap().len()
        );
    }

    // Round trip.
    let dest = cli.work().join("pulled");
    cli.ok(&["pull", &package_id, dest.to_str().unwrap()]);
    for file in files {
        let path = file["path"].as_str().unwrap();
        assert_eq!(
            std::fs::read(dest.join(path)).unwrap(),
            std::fs::read(src.join(path)).unwrap(),
            "{path} differs after pull"
        );
    }
    // Pulling again refuses to overwrite.
    assert!(
        cli.fails(&["pull", &package_id, dest.to_str().unwrap()])
            .contains("--force")
    );

    // cat prints one file.
    assert_eq!(
        cli.ok(&["cat", "guide-board@2026.11.23-1", "report/index.html"]),
        b"<html>guide board</html>"
    );

    // Pushing the same content again is idempotent; a different manifest under the same
    // name@version is a conflict and changes nothing.
    let again = cli.json(&[
        "push",
        src.to_str().unwrap(),
        "--name",
        "guide-board",
        "--version",
        "2026.11.23-1",
        "--class",
        "release-evidence",
        "--label",
        "git.commit=abc123",
    ]);
    assert_eq!(again["package_id"].as_str().unwrap(), package_id);
    assert_eq!(again["created"], Json::Bool(false));
    let head = cli.head_seq();
    let stderr = cli.fails(&[
        "push",
        src.to_str().unwrap(),
        "--name",
        "guide-board",
        "--version",
        "2026.11.23-1",
    ]);
    assert!(stderr.contains("conflict"), "{stderr}");
    assert_eq!(cli.head_seq(), head);

    // blob put / get by either digest.
    let blob = cli.json(&["blob", "put", src.join("trace.bin").to_str().unwrap()]);
    let by_sha = cli.ok(&["blob", "get", blob["sha256"].as_str().unwrap()]);
    assert_eq!(by_sha, std::fs::read(src.join("trace.bin")).unwrap());
}

#[test]
fn audit_verify_names_the_first_bad_seq_after_tampering() {
    let cli = Cli::new();
    let src = sample_tree(cli.work());
    cli.ok(&[
        "push",
        src.to_str().unwrap(),
        "--name",
        "a",
        "--version",
        "1",
    ]);
    let verified = cli.json(&["audit", "verify"]);
    assert_eq!(verified["ok"], Json::Bool(true));
    assert!(
        verified["head_hash"]
            .as_str()
            .unwrap()
            .starts_with("blake3:")
    );

    let db = cli.data_dir.join("catalog.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        // The database itself refuses to change history...
        let refused = sqlx::query("UPDATE events SET actor = 'mallory' WHERE seq = 2")
            .execute(&pool)
            .await;
        assert!(refused.unwrap_err().to_string().contains("append-only"));
        let refused = sqlx::query("DELETE FROM events WHERE seq = 2")
            .execute(&pool)
            .await;
        assert!(refused.unwrap_err().to_string().contains("append-only"));
        // ...so an attacker with database access drops the trigger first and rewrites seq 2's
        // body (a different actor), leaving the stored hash column as it was.
        sqlx::query("DROP TRIGGER events_refuse_update")
            .execute(&pool)
            .await
            .unwrap();
        let body: Vec<u8> = sqlx::query_scalar("SELECT body FROM events WHERE seq = 2")
            .fetch_one(&pool)
            .await
            .unwrap();
        let mut event = artifact_core::event::Event::from_canonical_bytes(&body).unwrap();
        event.actor = "mallory".into();
        sqlx::query("UPDATE events SET body = $1 WHERE seq = 2")
            .bind(event.canonical_bytes().unwrap())
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let output = cli.run(&["audit", "verify"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("first bad seq 2"), "{stderr}");
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let cli = Cli::new();
    let src = sample_tree(cli.work());
    cli.ok(&[
        "push",
        src.to_str().unwrap(),
        "--name",
        "a",
        "--version",
        "1",
    ]);
    let head = cli.head_seq();

    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "push",
                src.to_str().unwrap(),
                "--name",
                "b",
                "--version",
                "1",
                "--class",
                "forever",
            ],
            "unknown retention class `forever`",
        ),
        (
            &[
                "push",
                src.to_str().unwrap(),
                "--name",
                "../b",
                "--version",
                "1",
            ],
            "package name",
        ),
        (
            &["push", "/nonexistent/path", "--name", "b", "--version", "1"],
            "cannot read /nonexistent/path",
        ),
        (&["show", "nosuch@1"], "package not found: nosuch@1"),
        (&["show", "blake3:xyz"], "digest hex must be 64 characters"),
        (&["show", "just-a-name"], "neither a package id"),
        (
            &[
                "blob",
                "get",
                "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ],
            "blob not found",
        ),
        (&["blob", "get", "md5:00"], "unknown digest algorithm `md5`"),
        (&["cat", "a@1", "no/such/file"], "file not found"),
        (
            &[
                "retention",
                "extend",
                "a@1",
                "--until",
                "2020-01-01T00:00:00Z",
                "--reason",
                "x",
            ],
            "strictly later",
        ),
        (
            &[
                "retention",
                "extend",
                "a@1",
                "--until",
                "2099-01-01T00:00:00Z",
                "--reason",
                "  ",
            ],
            "reason is mandatory",
        ),
        (
            &[
                "retention",
                "extend",
                "a@1",
                "--until",
                "next year",
                "--reason",
                "x",
            ],
            "not an RFC 3339 timestamp",
        ),
        (
            &["retention", "hold", "a@1", "--reason", ""],
            "reason is mandatory",
        ),
        (
            &["retention", "release", "a@1", "hold-999", "--reason", "x"],
            "hold not found",
        ),
        (
            &["retention", "sweep", "--as-of", "soon"],
            "not an RFC 3339 timestamp",
        ),
    ];
    for (args, expected) in cases {
        let stderr = cli.fails(args);
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr:?}"
        );
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: one line: {stderr:?}"
        );
        assert_eq!(cli.head_seq(), head, "{args:?} changed the log");
    }

    // An uninitialised data dir is an error, not a silent new store.
    let output = Command::new(env!("CARGO_BIN_EXE_artifactstore"))
        .args([
            "--data-dir",
            cli.work().join("nothing").to_str().unwrap(),
            "ls",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("artifactstore init"));
}

#[test]
fn corrupt_blob_on_disk_is_an_error_never_wrong_bytes() {
    let cli = Cli::new();
    let src = sample_tree(cli.work());
    let pushed = cli.json(&[
        "push",
        src.to_str().unwrap(),
        "--name",
        "a",
        "--version",
        "1",
    ]);
    let manifest = cli.json(&["manifest", pushed["package_id"].as_str().unwrap()]);
    let trace = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "trace.bin")
        .unwrap()
        .clone();
    let hex = trace["blake3"]
        .as_str()
        .unwrap()
        .trim_start_matches("blake3:")
        .to_owned();
    let blob_path = cli.data_dir.join("blobs/blake3").join(&hex[..2]).join(&hex);
    let mut bytes = std::fs::read(&blob_path).unwrap();
    bytes[1234] ^= 0x01;
    std::fs::write(&blob_path, bytes).unwrap();

    let stderr = cli.fails(&["cat", "a@1", "trace.bin"]);
    assert!(stderr.contains("corrupt"), "{stderr}");
    let dest = cli.work().join("pulled");
    let stderr = cli.fails(&["pull", "a@1", dest.to_str().unwrap()]);
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert!(
        !dest.join("trace.bin").exists(),
        "a corrupt file must not appear under its name"
    );
}

/// SPEC §8 through the CLI: ingested as release-evidence, extended once, held for a quarter
/// (sweeps during the hold leave it not eligible even after expiry), released, swept →
/// eligible exactly once; show, status and history agree with the event log. On the real clock:
/// the test's config makes `release-evidence` 2 seconds and the extension 1 second, and the test
/// waits for the expiry to pass (a sweep refuses an `as_of` later than the store's clock).
#[test]
fn pilot_scenario_through_the_cli() {
    let cli = Cli::new();
    cli.configure("[retention.classes.release-evidence]\ndefault = \"2s\"\n");
    let src = sample_tree(cli.work());
    let pushed = cli.json(&[
        "push",
        src.to_str().unwrap(),
        "--name",
        "guide-board",
        "--version",
        "2026.11.23-1",
        "--class",
        "release-evidence",
    ]);
    let package = "guide-board@2026.11.23-1";
    let package_id = pushed["package_id"].as_str().unwrap().to_owned();
    let expires: Timestamp = pushed["expires_at"].as_str().unwrap().parse().unwrap();

    let until = expires.checked_add(Period::Millis(1_000)).unwrap();
    let extended = cli.json(&[
        "retention",
        "extend",
        package,
        "--until",
        &until.to_string(),
        "--reason",
        "audit asked for 90 more days",
    ]);
    assert_eq!(
        extended["current_expires_at"].as_str().unwrap(),
        until.to_string()
    );

    let hold = cli.json(&["retention", "hold", package, "--reason", "Q1 legal review"]);
    let hold_id = hold["hold_id"].as_str().unwrap().to_owned();

    // During the hold, after expiry, a sweep leaves it alone.
    let after_expiry = until.checked_add(Period::Millis(1)).unwrap();
    sleep_until_past(after_expiry);
    let after_expiry = after_expiry.to_string();
    let swept = cli.json(&["retention", "sweep"]);
    assert_eq!(swept["newly_eligible"], 0);
    let swept = cli.json(&["retention", "sweep", "--as-of", &after_expiry]);
    assert_eq!(swept["newly_eligible"], 0);
    let status = cli.json(&["retention", "status", package]);
    assert_eq!(status["eligible_for_deletion"], Json::Bool(false));
    assert_eq!(status["active_holds"], 1);

    cli.json(&[
        "retention",
        "release",
        package,
        &hold_id,
        "--reason",
        "review closed",
    ]);
    let swept = cli.json(&["retention", "sweep", "--as-of", &after_expiry]);
    assert_eq!(swept["newly_eligible"], 1);
    let swept = cli.json(&["retention", "sweep"]);
    assert_eq!(
        swept["newly_eligible"], 0,
        "a second sweep must emit nothing"
    );

    let show = cli.json(&["show", package]);
    let status = cli.json(&["retention", "status", package]);
    for key in [
        "package_id",
        "name",
        "version",
        "retention_class",
        "current_expires_at",
        "active_holds",
        "eligible_for_deletion",
    ] {
        assert!(show.get(key).is_some(), "show --json lacks {key}");
        assert_eq!(show[key], status[key], "show and status disagree on {key}");
    }
    assert_eq!(show["package_id"], package_id.as_str());
    assert_eq!(show["eligible_for_deletion"], Json::Bool(true));
    assert_eq!(show["active_holds"], 0);

    // History, in seq order, equals the retention events of the log; CBOR form too.
    let history = cli.json(&["retention", "history", package]);
    let history = history.as_array().unwrap();
    let types: Vec<&str> = history
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "v1.retention.default_applied",
            "v1.retention.extended",
            "v1.retention.hold_applied",
            "v1.retention.hold_released",
            "v1.retention.deletion_eligible",
        ]
    );
    let events = cli.json(&["events", "--package", package]);
    let from_log: Vec<&Json> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("v1.retention."))
        .collect();
    assert_eq!(from_log, history.iter().collect::<Vec<_>>());
    assert_eq!(show["eligible_seq"], history[4]["seq"]);
    let seqs: Vec<i64> = history.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    let cbor = cli.ok(&["retention", "history", package, "--cbor"]);
    let decoded = artifact_core::cbor::decode(&cbor).unwrap();
    assert_eq!(
        artifact_core::jcs::to_jcs(&decoded),
        String::from_utf8(cli.ok(&["--json", "retention", "history", package]))
            .unwrap()
            .trim_end()
    );
    assert_eq!(history[1]["data"]["reason"], "audit asked for 90 more days");
    assert_eq!(history[2]["data"]["reason"], "Q1 legal review");

    // explain (as of the store's clock, after every event) cites the sweep that marked it.
    let explanation = cli.json(&["retention", "explain", package]);
    let cites: Vec<i64> = explanation["cites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_i64().unwrap())
        .collect();
    assert!(cites.contains(&seqs[4]), "{explanation}");
    assert!(
        explanation["verdict"]
            .as_str()
            .unwrap()
            .starts_with("eligible")
    );

    // The views are a pure function of the log.
    cli.ok(&["admin", "rebuild-views"]);
    assert_eq!(cli.json(&["show", package]), show);
}

/// A sweep "as of" the far future is refused: it would make an 11-year compliance record
/// eligible today and let GC purge it. Exit 1 with the reason, nothing on stdout, the log
/// unchanged; the GC that follows purges nothing and the package still pulls.
#[test]
fn sweep_as_of_the_future_is_refused_and_gc_purges_nothing() {
    let cli = Cli::new();
    let src = sample_tree(cli.work());
    cli.json(&[
        "push",
        src.to_str().unwrap(),
        "--name",
        "ledger",
        "--version",
        "2026.12",
        "--class",
        "compliance-record",
    ]);
    let head = cli.head_seq();

    for json in [false, true] {
        let mut args = vec!["retention", "sweep", "--as-of", "9999-12-31T23:59:59Z"];
        if json {
            args.insert(0, "--json");
        }
        let output = cli.run(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("later than the store's clock"),
            "{args:?}: {stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "{args:?} printed {:?}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert_eq!(cli.head_seq(), head, "{args:?} changed the log");
    }
    let status = cli.json(&["retention", "status", "ledger@2026.12"]);
    assert_eq!(status["eligible_for_deletion"], Json::Bool(false));

    let gc = cli.json(&["gc", "--grace", "1s"]);
    assert_eq!(gc["purged"], Json::Array(vec![]), "{gc}");
    assert_eq!(gc["deleted_blobs"], Json::Array(vec![]), "{gc}");
    assert_eq!(cli.head_seq(), head, "gc recorded something: {gc}");
    let dest = cli.work().join("pulled");
    cli.ok(&["pull", "ledger@2026.12", dest.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(dest.join("trace.bin")).unwrap(),
        std::fs::read(src.join("trace.bin")).unwrap()
    );
}

/// `push` sends several files at once: with many more files than are in flight, of sizes that
/// finish out of order, every path still names its own bytes (manifest and pull).
#[test]
fn push_of_many_files_keeps_each_path_with_its_own_bytes() {
    let cli = Cli::new();
    let src = cli.work().join("many");
    let mut expected = Vec::new();
    for i in 0..40u32 {
        let dir = src.join(format!("d{}", i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        // Large files early, small late: unordered completion would mix them up.
        let len = ((40 - i) as usize) * 7_919;
        let bytes: Vec<u8> = (0..len)
            .map(|j| (j as u32 ^ i.wrapping_mul(2654435761)) as u8)
            .collect();
        let path = dir.join(format!("f{i:02}.bin"));
        std::fs::write(&path, &bytes).unwrap();
        expected.push((format!("d{}/f{i:02}.bin", i % 3), path));
    }
    cli.json(&[
        "push",
        src.to_str().unwrap(),
        "--name",
        "many",
        "--version",
        "1",
    ]);
    let manifest = cli.json(&["manifest", "many@1"]);
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), expected.len());
    for (rel, source) in &expected {
        let entry = files
            .iter()
            .find(|f| f["path"] == rel.as_str())
            .unwrap_or_else(|| panic!("{rel} missing from {manifest}"));
        assert_eq!(
            entry["blake3"].as_str().unwrap(),
            format!("blake3:{}", tool_digest("b3sum", source)),
            "{rel}"
        );
        assert_eq!(
            cli.ok(&["cat", "many@1", rel]),
            std::fs::read(source).unwrap()
        );
    }
}
