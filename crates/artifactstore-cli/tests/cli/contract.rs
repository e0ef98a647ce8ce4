//! The CLI contract (SPEC §4.5): each test here runs twice through [`cli_contract_tests!`],
//! on an embedded store (`--data-dir`) and through a running `artifactstore serve`
//! (`--server URL --token T`), with the same assertions.

use artifact_core::time::{Period, Timestamp};
use serde_json::Value as Json;

use crate::kit::{
    CONTRACT_ACTOR, PILOT_HISTORY, SHOW_KEYS, Target, cli_contract_tests, event_types, push_args,
    sample_tree, sleep_until_past, tool_digest,
};

cli_contract_tests! {
    push_pull_round_trip_is_byte_identical_and_digests_match_independent_tools,
    sweep_as_of_the_future_is_refused_and_gc_purges_nothing,
    push_of_many_files_keeps_each_path_with_its_own_bytes,
    ls_show_manifest_and_cat_describe_the_pushed_package,
    extend_hold_release_sweep_and_history_follow_the_retention_rules,
    explain_and_status_report_the_retention_state,
    events_filter_by_package_type_and_after_and_name_the_actor,
    audit_verify_is_ok_and_its_head_is_the_last_event,
    blob_put_then_get_by_either_digest,
    an_unknown_package_is_an_error_and_changes_nothing,
}

const PKG: &str = "guide-board@2026.11.23-1";

/// Pushes the sample tree as [`PKG`] in `class`; returns the push's JSON.
fn push_sample(cli: &Target, class: &str) -> Json {
    let src = sample_tree(cli.work());
    cli.json(&push_args(
        src.to_str().unwrap(),
        "guide-board",
        "2026.11.23-1",
        &["--class", class, "--label", "git.commit=abc123"],
    ))
}

fn push_pull_round_trip_is_byte_identical_and_digests_match_independent_tools(cli: &mut Target) {
    let pushed = push_sample(cli, "release-evidence");
    let src = cli.work().join("guide-board-run");
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
    let again = push_sample(cli, "release-evidence");
    assert_eq!(again["package_id"].as_str().unwrap(), package_id);
    assert_eq!(again["created"], Json::Bool(false));
    let head = cli.head_seq();
    let stderr = cli.fails(&push_args(
        src.to_str().unwrap(),
        "guide-board",
        "2026.11.23-1",
        &[],
    ));
    assert!(stderr.contains("conflict"), "{stderr}");
    assert_eq!(cli.head_seq(), head);

    // blob put / get by either digest.
    let blob = cli.json(&["blob", "put", src.join("trace.bin").to_str().unwrap()]);
    let by_sha = cli.ok(&["blob", "get", blob["sha256"].as_str().unwrap()]);
    assert_eq!(by_sha, std::fs::read(src.join("trace.bin")).unwrap());
}

/// A sweep "as of" the far future is refused: it would make an 11-year compliance record
/// eligible today and let GC purge it. Exit 1 with the reason, nothing on stdout, the log
/// unchanged; the GC that follows purges nothing and the package still pulls.
fn sweep_as_of_the_future_is_refused_and_gc_purges_nothing(cli: &mut Target) {
    let src = sample_tree(cli.work());
    cli.json(&push_args(
        src.to_str().unwrap(),
        "ledger",
        "2026.12",
        &["--class", "compliance-record"],
    ));
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
fn push_of_many_files_keeps_each_path_with_its_own_bytes(cli: &mut Target) {
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
    cli.json(&push_args(src.to_str().unwrap(), "many", "1", &[]));
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

fn ls_show_manifest_and_cat_describe_the_pushed_package(cli: &mut Target) {
    let pushed = push_sample(cli, "release-evidence");
    let package_id = pushed["package_id"].as_str().unwrap().to_owned();
    assert_eq!(pushed["created"], true);
    let listed = cli.json(&["ls"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["package_id"], package_id.as_str());
    let filtered = cli.json(&["ls", "--name", "guide-board", "--class", "release-evidence"]);
    assert_eq!(filtered, listed);
    let other = cli.json(&["ls", "--name", "other"]);
    assert_eq!(other, Json::Array(vec![]));
    let shown = cli.json(&["show", PKG]);
    assert_eq!(shown["created_by"], CONTRACT_ACTOR);
    for key in SHOW_KEYS {
        assert!(shown.get(key).is_some(), "show --json lacks {key}");
    }
    assert_eq!(cli.json(&["show", &package_id]), shown);
    let manifest = cli.json(&["manifest", PKG]);
    assert_eq!(manifest["files"].as_array().unwrap().len(), 4, "{manifest}");
    let src = cli.work().join("guide-board-run");
    assert_eq!(
        cli.ok(&["cat", &package_id, "trace.bin"]),
        std::fs::read(src.join("trace.bin")).unwrap()
    );
    assert!(cli.ok(&["cat", PKG, "empty.log"]).is_empty());
    let head = cli.head_seq();
    let stderr = cli.fails(&["cat", PKG, "no/such/file"]);
    assert!(stderr.contains("no/such/file"), "{stderr}");
    assert_eq!(cli.head_seq(), head);
}

fn extend_hold_release_sweep_and_history_follow_the_retention_rules(cli: &mut Target) {
    // A 2-second class, so the package really expires during the test: sweeps run on the
    // store's clock and refuse an `as_of` later than it.
    cli.configure("[retention.classes.release-evidence]\ndefault = \"2s\"\n");
    let pushed = push_sample(cli, "release-evidence");
    let package_id = pushed["package_id"].as_str().unwrap().to_owned();
    let expires: Timestamp = pushed["expires_at"].as_str().unwrap().parse().unwrap();

    // No expiry moves earlier: an extension to before the current expiry is refused.
    let head = cli.head_seq();
    let earlier = expires.checked_add(Period::Millis(-1_000)).unwrap();
    cli.fails(&[
        "retention",
        "extend",
        PKG,
        "--until",
        &earlier.to_string(),
        "--reason",
        "shorter",
    ]);
    assert_eq!(cli.head_seq(), head, "a refused extension changed the log");

    let until = expires.checked_add(Period::Millis(1_000)).unwrap();
    let extended = cli.json(&[
        "retention",
        "extend",
        PKG,
        "--until",
        &until.to_string(),
        "--reason",
        "audit cycle",
    ]);
    assert_eq!(extended["current_expires_at"], until.to_string().as_str());
    let hold = cli.json(&["retention", "hold", PKG, "--reason", "inquiry"]);
    let hold_id = hold["hold_id"].as_str().unwrap().to_owned();
    assert_eq!(cli.json(&["retention", "status", PKG])["active_holds"], 1);
    // Expired (by the store's clock), but held: nothing is marked.
    sleep_until_past(until);
    let during = cli.json(&["retention", "sweep"]);
    assert_eq!(during["newly_eligible"], 0);
    cli.json(&["retention", "release", PKG, &hold_id, "--reason", "closed"]);
    let swept = cli.json(&["retention", "sweep"]);
    assert_eq!(swept["newly_eligible"], 1);
    assert_eq!(swept["package_ids"][0], package_id.as_str());
    let status = cli.json(&["retention", "status", PKG]);
    assert_eq!(status["eligible_for_deletion"], true);
    let eligible = cli.json(&["ls", "--eligible"]);
    assert_eq!(eligible[0]["package_id"], package_id.as_str(), "{eligible}");
    let history = cli.json(&["retention", "history", PKG]);
    assert_eq!(event_types(&history), PILOT_HISTORY);
    assert!(!cli.ok(&["retention", "history", PKG, "--cbor"]).is_empty());
}

fn explain_and_status_report_the_retention_state(cli: &mut Target) {
    let pushed = push_sample(cli, "release-evidence");
    let status = cli.json(&["retention", "status", PKG]);
    assert_eq!(status["eligible_for_deletion"], false);
    assert_eq!(status["active_holds"], 0);
    assert_eq!(status["current_expires_at"], pushed["expires_at"]);
    let explained = cli.json(&[
        "retention",
        "explain",
        PKG,
        "--as-of",
        "2100-01-01T00:00:00Z",
    ]);
    assert!(explained.is_object(), "{explained}");
    let head = cli.head_seq();
    cli.fails(&["retention", "explain", PKG, "--as-of", "not-a-time"]);
    assert_eq!(cli.head_seq(), head);
}

fn events_filter_by_package_type_and_after_and_name_the_actor(cli: &mut Target) {
    push_sample(cli, "release-evidence");
    cli.json(&["retention", "hold", PKG, "--reason", "inquiry"]);
    let events = cli.json(&["events"]);
    let events = events.as_array().unwrap();
    assert!(events.len() >= 3, "{events:?}");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], i as u64 + 1, "seqs without gaps");
        assert_eq!(event["actor"], CONTRACT_ACTOR, "{event}");
    }
    let for_package = cli.json(&["events", "--package", PKG]);
    assert!(!for_package.as_array().unwrap().is_empty());
    assert!(
        for_package
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] != "v1.auth.token_created")
    );
    let holds = cli.json(&[
        "events",
        "--after",
        "1",
        "--type",
        "v1.retention.hold_applied",
    ]);
    let holds = holds.as_array().unwrap();
    assert_eq!(holds.len(), 1, "{holds:?}");
    assert_eq!(holds[0]["type"], "v1.retention.hold_applied");
    let last = events.last().unwrap()["seq"].as_u64().unwrap();
    let after_last = cli.json(&["events", "--after", &last.to_string()]);
    assert_eq!(after_last, Json::Array(vec![]));
    let limited = cli.json(&["events", "--limit", "1"]);
    assert_eq!(limited.as_array().unwrap().len(), 1);
    assert!(!cli.ok(&["events", "--cbor"]).is_empty());
}

fn audit_verify_is_ok_and_its_head_is_the_last_event(cli: &mut Target) {
    push_sample(cli, "release-evidence");
    let audit = cli.json(&["audit", "verify"]);
    assert_eq!(audit["ok"], true, "{audit}");
    let events = cli.json(&["events"]);
    let events = events.as_array().unwrap();
    assert_eq!(audit["head_seq"], events.len());
    assert_eq!(audit["head_seq"], events.last().unwrap()["seq"]);
}

fn blob_put_then_get_by_either_digest(cli: &mut Target) {
    let src = sample_tree(cli.work());
    let trace = std::fs::read(src.join("trace.bin")).unwrap();
    let blob = cli.json(&["blob", "put", src.join("trace.bin").to_str().unwrap()]);
    assert_eq!(
        blob["blake3"].as_str().unwrap(),
        format!("blake3:{}", tool_digest("b3sum", &src.join("trace.bin")))
    );
    assert!(cli.ok(&["blob", "get", blob["sha256"].as_str().unwrap()]) == trace);
    assert!(cli.ok(&["blob", "get", blob["blake3"].as_str().unwrap()]) == trace);
    // Putting it again stores nothing new.
    let head = cli.head_seq();
    let again = cli.json(&["blob", "put", src.join("trace.bin").to_str().unwrap()]);
    assert_eq!(again["blake3"], blob["blake3"]);
    assert_eq!(cli.head_seq(), head);
}

fn an_unknown_package_is_an_error_and_changes_nothing(cli: &mut Target) {
    push_sample(cli, "release-evidence");
    let head = cli.head_seq();
    let dest = cli.work().join("nothing");
    for args in [
        vec!["show", "nosuch@1"],
        vec!["manifest", "nosuch@1"],
        vec!["cat", "nosuch@1", "a"],
        vec!["pull", "nosuch@1", dest.to_str().unwrap()],
        vec!["retention", "hold", "nosuch@1", "--reason", "x"],
    ] {
        let stderr = cli.fails(&args);
        assert!(stderr.contains("nosuch"), "{args:?}: {stderr}");
        assert_eq!(cli.head_seq(), head, "{args:?} changed the log");
    }
    assert!(!dest.exists(), "a failed pull created its destination");
}
