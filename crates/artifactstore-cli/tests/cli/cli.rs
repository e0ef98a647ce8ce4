//! End-to-end tests of the `artifactstore` binary on an embedded store (SPEC §4.5 contract).

use std::process::Command;

use serde_json::Value as Json;

use crate::kit::{SHOW_KEYS, Store, pilot_retention, push_args, sample_tree};

#[test]
fn audit_verify_names_the_first_bad_seq_after_tampering() {
    let cli = Store::with_actor("ci-bot");
    let src = sample_tree(cli.work());
    cli.push_dir(&src, "a", "1");
    let verified = cli.json(&["audit", "verify"]);
    assert_eq!(verified["ok"], Json::Bool(true));
    assert!(
        verified["head_hash"]
            .as_str()
            .unwrap()
            .starts_with("blake3:")
    );

    cli.insider(async |pool| {
        // The database itself refuses to change history...
        let refused = sqlx::query("UPDATE events SET actor = 'mallory' WHERE seq = 2")
            .execute(pool)
            .await;
        assert!(refused.unwrap_err().to_string().contains("append-only"));
        let refused = sqlx::query("DELETE FROM events WHERE seq = 2")
            .execute(pool)
            .await;
        assert!(refused.unwrap_err().to_string().contains("append-only"));
        // ...so an attacker with database access drops the trigger first and rewrites seq 2's
        // body (a different actor), leaving the stored hash column as it was.
        sqlx::query("DROP TRIGGER events_refuse_update")
            .execute(pool)
            .await
            .unwrap();
        let body: Vec<u8> = sqlx::query_scalar("SELECT body FROM events WHERE seq = 2")
            .fetch_one(pool)
            .await
            .unwrap();
        let mut event = artifact_core::event::Event::from_canonical_bytes(&body).unwrap();
        event.actor = "mallory".into();
        sqlx::query("UPDATE events SET body = $1 WHERE seq = 2")
            .bind(event.canonical_bytes().unwrap())
            .execute(pool)
            .await
            .unwrap();
    });
    let output = cli.run(&["audit", "verify"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("first bad seq 2"), "{stderr}");
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let cli = Store::with_actor("ci-bot");
    let src = sample_tree(cli.work());
    cli.push_dir(&src, "a", "1");
    let head = cli.head_seq();

    let cases: &[(&[&str], &str)] = &[
        (
            &push_args(src.to_str().unwrap(), "b", "1", &["--class", "forever"]),
            "unknown retention class `forever`",
        ),
        (
            &push_args(src.to_str().unwrap(), "../b", "1", &[]),
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
        let stderr = cli.refused(args);
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
    let cli = Store::with_actor("ci-bot");
    let src = sample_tree(cli.work());
    let pushed = cli.push_dir(&src, "a", "1");
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

    let stderr = cli.refused(&["cat", "a@1", "trace.bin"]);
    assert!(stderr.contains("corrupt"), "{stderr}");
    let dest = cli.work().join("pulled");
    let stderr = cli.refused(&["pull", "a@1", dest.to_str().unwrap()]);
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
    let cli = Store::with_actor("ci-bot");
    cli.configure("[retention.classes.release-evidence]\ndefault = \"2s\"\n");
    let src = sample_tree(cli.work());
    let pushed = cli.json(&push_args(
        src.to_str().unwrap(),
        "guide-board",
        "2026.11.23-1",
        &["--class", "release-evidence"],
    ));
    let package = "guide-board@2026.11.23-1";
    let package_id = pushed["package_id"].as_str().unwrap().to_owned();
    let history = pilot_retention(package, &|args| cli.json(args), &|args| cli.ok(args));

    let show = cli.json(&["show", package]);
    let status = cli.json(&["retention", "status", package]);
    for key in SHOW_KEYS {
        assert!(show.get(key).is_some(), "show --json lacks {key}");
        assert_eq!(show[key], status[key], "show and status disagree on {key}");
    }
    assert_eq!(show["package_id"], package_id.as_str());
    assert_eq!(show["eligible_seq"], history[4]["seq"]);

    // explain (as of the store's clock, after every event) cites the sweep that marked it.
    let explanation = cli.json(&["retention", "explain", package]);
    let cites: Vec<i64> = explanation["cites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_i64().unwrap())
        .collect();
    assert!(
        cites.contains(&history[4]["seq"].as_i64().unwrap()),
        "{explanation}"
    );
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
