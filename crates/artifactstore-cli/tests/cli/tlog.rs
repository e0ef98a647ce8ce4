//! The verifiable-log CLI contract (issue 12, ADR 0011): `audit key|checkpoint|checkpoints|
//! prove|consistency|verify --checkpoint|verify-receipt`, end to end on an embedded store,
//! including a consistently rewritten chain and a receipt checked after the store is gone.

use serde_json::Value as Json;

use crate::kit::Store;

/// Pushes a one-file package NAME@VERSION whose file names both.
fn push(cli: &Store, name: &str, version: &str) {
    let content = format!("{name} {version}");
    cli.push_files(name, version, &[("f.txt", content.as_bytes())]);
}

/// A store with package `a@1` whose `[log]` publishes checkpoints to the returned directory,
/// plus the `[log]` settings `more`.
fn publishing(more: &str) -> (Store, std::path::PathBuf) {
    let cli = Store::with_actor("ci-bot");
    let published = cli.work().join("published");
    cli.configure(&format!(
        "[log]\n{more}publish_dir = {:?}\n",
        published.to_str().unwrap()
    ));
    push(&cli, "a", "1");
    (cli, published)
}

/// Signing the rewritten log is refused: it no longer extends the checkpoint of `size`.
fn assert_fork_refused(cli: &Store, size: impl std::fmt::Display) {
    let stderr = cli.refused(&["audit", "checkpoint"]);
    assert!(
        stderr.contains(&format!(
            "no longer extends the checkpoint of tree size {size}"
        )),
        "{stderr}"
    );
}

/// Drops the guard triggers, changes the actor of `target` and recomputes every later
/// `prev` and `hash`, then rebuilds the Merkle tree rows to match: a rewrite `audit verify`
/// cannot see.
fn rewrite_history(cli: &Store, target: i64) {
    use artifact_core::digest::Blake3;
    use artifact_core::event::Event;
    cli.insider(async |pool| {
        for trigger in ["events_refuse_update", "events_refuse_delete"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER {trigger}")))
                .execute(pool)
                .await
                .unwrap();
        }
        let bodies: Vec<Vec<u8>> = sqlx::query_scalar("SELECT body FROM events ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap();
        let mut prev = None;
        for (i, body) in bodies.iter().enumerate() {
            let seq = i as i64 + 1;
            let mut event = Event::from_canonical_bytes(body).unwrap();
            if seq < target {
                prev = Some(Blake3::of(body));
                continue;
            }
            if seq == target {
                event.actor = "mallory".into();
            }
            event.prev = prev;
            let body = event.canonical_bytes().unwrap();
            sqlx::query("UPDATE events SET body = $1, actor = $2, hash = $3 WHERE seq = $4")
                .bind(&body)
                .bind(event.actor.as_str())
                .bind(Blake3::of(&body).to_string())
                .bind(seq)
                .execute(pool)
                .await
                .unwrap();
            prev = Some(Blake3::of(&body));
        }
        sqlx::query("DELETE FROM tlog_nodes")
            .execute(pool)
            .await
            .unwrap();
    });
}

/// The rest of a thorough rewrite: drops the checkpoint table's guards and deletes every
/// stored checkpoint, so that plain `audit verify` (which recomputes the latest stored
/// checkpoint's root from the event bytes) has nothing left to compare with.
fn wipe_checkpoints(cli: &Store) {
    cli.insider(async |pool| {
        for trigger in [
            "tlog_checkpoints_refuse_update",
            "tlog_checkpoints_refuse_delete",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER {trigger}")))
                .execute(pool)
                .await
                .unwrap();
        }
        sqlx::query("DELETE FROM tlog_checkpoints")
            .execute(pool)
            .await
            .unwrap();
    });
}

#[test]
fn checkpoints_proofs_and_receipts_end_to_end() {
    let cli = Store::with_actor("ci-bot");
    let key = cli.json(&["audit", "key"]);
    let vkey = key["vkey"].as_str().unwrap().to_owned();
    let origin = key["origin"].as_str().unwrap().to_owned();
    assert!(vkey.starts_with(&format!("{origin}+")), "{vkey}");
    assert_eq!(cli.ok_text(&["audit", "key"]).trim(), vkey);
    let mode = {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(cli.data_dir.join("log.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode, 0o600);

    push(&cli, "a", "1");
    let first = cli.json(&["audit", "checkpoint"]);
    let first_size = first["tree_size"].as_i64().unwrap();
    assert!(first_size >= 2);
    assert_eq!(first["origin"], Json::String(origin.clone()));
    let note = first["note"].as_str().unwrap();
    assert!(
        note.starts_with(&format!("{origin}\n{first_size}\n")),
        "{note}"
    );
    assert!(note.contains(&format!("\n\n\u{2014} {origin} ")), "{note}");
    let saved = cli.write("checkpoint-1.txt", note);
    // Human output is the note itself; no growth, no new checkpoint.
    assert_eq!(cli.ok_text(&["audit", "checkpoint"]), note);

    push(&cli, "b", "1");
    push(&cli, "c", "1");
    let second = cli.json(&["audit", "checkpoint"]);
    let second_size = second["tree_size"].as_i64().unwrap();
    assert!(second_size > first_size);
    let listed = cli.json(&["audit", "checkpoints"]);
    assert_eq!(listed["checkpoints"].as_array().unwrap().len(), 2);

    let receipt = cli.json(&["audit", "prove", "--seq", "2"]);
    assert_eq!(receipt["seq"], 2);
    assert_eq!(receipt["leaf_index"], 1);
    assert_eq!(receipt["tree_size"], second_size);
    assert_eq!(receipt["checkpoint"], second["note"]);
    let at_first = cli.json(&[
        "audit",
        "prove",
        "--seq",
        "2",
        "--tree-size",
        &first_size.to_string(),
    ]);
    assert_eq!(at_first["tree_size"], first_size);
    let consistency = cli.json(&[
        "audit",
        "consistency",
        "--from-size",
        &first_size.to_string(),
    ]);
    assert_eq!(consistency["from_size"], first_size);
    assert_eq!(consistency["to_size"], second_size);
    assert!(!consistency["proof"].as_array().unwrap().is_empty());

    // `audit prove` without --tree-size checkpoints a seq the latest does not cover.
    push(&cli, "d", "1");
    let head = cli.json(&["audit", "verify"])["head_seq"].as_i64().unwrap();
    let newest = cli.json(&["audit", "prove", "--seq", &head.to_string()]);
    assert_eq!(newest["tree_size"], head);

    let verified = cli.json(&["audit", "verify", "--checkpoint", saved.to_str().unwrap()]);
    assert_eq!(verified["ok"], Json::Bool(true));
    assert_eq!(verified["tree_size"], first_size);
    cli.ok_text(&[
        "audit",
        "verify",
        "--checkpoint",
        saved.to_str().unwrap(),
        "--key",
        &vkey,
    ]);

    let receipt_file = cli.write("receipt.json", receipt.to_string());
    let tampered = {
        let mut r = receipt.clone();
        r["seq"] = Json::from(3);
        r["leaf_index"] = Json::from(2);
        cli.write("tampered.json", r.to_string())
    };
    let vkey_file = cli.write("log.vkey", &vkey);

    // Rewrite the chain from seq first_size + 1 on: only the signed checkpoints notice.
    rewrite_history(&cli, first_size + 1);
    wipe_checkpoints(&cli);
    cli.ok_text(&["admin", "rebuild-views"]);
    assert_eq!(cli.json(&["audit", "verify"])["ok"], Json::Bool(true));
    // The tree rows were deleted; opening the store rebuilt them from the rewritten events.
    // History up to the first checkpoint is intact, so it still verifies...
    cli.ok_text(&["audit", "verify", "--checkpoint", saved.to_str().unwrap()]);
    // ...and the second names the first signed size that today's events do not reproduce.
    let second_saved = cli.write("checkpoint-2.txt", second["note"].as_str().unwrap());
    let stderr = cli.exits(
        1,
        &[
            "audit",
            "verify",
            "--checkpoint",
            second_saved.to_str().unwrap(),
        ],
    );
    assert!(
        stderr.contains(&format!("first diverging tree size {second_size}")),
        "{stderr}"
    );

    // Offline: the store is gone; the receipt and the verifier key are enough.
    std::fs::remove_dir_all(&cli.data_dir).unwrap();
    let out = cli.ok_text(&[
        "audit",
        "verify-receipt",
        receipt_file.to_str().unwrap(),
        "--key",
        &vkey,
    ]);
    assert!(out.starts_with("ok: seq 2 "), "{out}");
    let ok = cli.json(&[
        "audit",
        "verify-receipt",
        receipt_file.to_str().unwrap(),
        "--key",
        vkey_file.to_str().unwrap(),
    ]);
    assert_eq!(ok["ok"], Json::Bool(true));
    assert_eq!(ok["event"]["seq"], 2);
    let stderr = cli.exits(
        1,
        &[
            "audit",
            "verify-receipt",
            tampered.to_str().unwrap(),
            "--key",
            &vkey,
        ],
    );
    assert!(stderr.contains("receipt rejected"), "{stderr}");
}

/// fsck checks the Merkle tree against the event bytes (a `tree` finding) and `admin
/// rebuild-tree` repairs a damaged row.
#[test]
fn fsck_finds_a_damaged_tree_and_admin_rebuild_tree_repairs_it() {
    let cli = Store::with_actor("ci-bot");
    push(&cli, "a", "1");
    push(&cli, "b", "1");
    assert_eq!(cli.json(&["fsck"])["findings"], Json::Array(vec![]));
    let head = cli.json(&["audit", "verify"])["head_seq"].as_i64().unwrap();
    cli.insider(async |pool| {
        let changed = sqlx::query("UPDATE tlog_nodes SET hash = $1 WHERE level = 0 AND idx = 1")
            .bind(vec![7u8; 32])
            .execute(pool)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(changed, 1);
    });
    let output = cli.run(&["--json", "fsck"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "fsck fails on a damaged tree"
    );
    let report: Json = serde_json::from_slice(&output.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["kind"], "tree", "{report}");
    assert_eq!(findings[0]["subject"], "seq 2", "{report}");
    // The events are intact: the hash chain verifies and the rebuild changes no event.
    assert_eq!(cli.json(&["audit", "verify"])["ok"], Json::Bool(true));
    let rebuilt = cli.json(&["admin", "rebuild-tree"]);
    assert_eq!(rebuilt["leaves"].as_i64().unwrap(), head);
    assert!(
        cli.ok_text(&["admin", "rebuild-tree"])
            .contains(&format!("over {head} events"))
    );
    assert_eq!(cli.json(&["fsck"])["findings"], Json::Array(vec![]));
    assert_eq!(
        cli.json(&["audit", "verify"])["head_seq"].as_i64().unwrap(),
        head
    );
}

/// `[log] publish_dir`: `audit checkpoint` writes `<tree_size>.checkpoint` there; after a
/// consistent rewrite of the chain, verifying against the published file fails.
#[test]
fn a_checkpoint_published_to_a_directory_detects_a_rewrite() {
    let (cli, published) = publishing("");
    let first = cli.json(&["audit", "checkpoint"]);
    let size = first["tree_size"].as_i64().unwrap();
    let file = published.join(format!("{size}.checkpoint"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        first["note"].as_str().unwrap()
    );
    cli.ok_text(&["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    // Made again without growth: the same file, left alone.
    cli.ok_text(&["audit", "checkpoint"]);
    assert_eq!(std::fs::read_dir(&published).unwrap().count(), 1);

    rewrite_history(&cli, 2);
    cli.ok_text(&["admin", "rebuild-views"]);
    // A rewrite that leaves the stored checkpoints alone fails plain `audit verify`: their
    // roots are recomputed from today's event bytes.
    let stderr = cli.exits(1, &["audit", "verify"]);
    assert!(
        stderr.contains(&format!("seq {size} breaks rule checkpoint-mismatch")),
        "{stderr}"
    );
    // Deleting them too makes it pass; the published file still catches it.
    wipe_checkpoints(&cli);
    assert_eq!(cli.json(&["audit", "verify"])["ok"], Json::Bool(true));
    let stderr = cli.exits(
        1,
        &["audit", "verify", "--checkpoint", file.to_str().unwrap()],
    );
    assert!(
        stderr.contains(&format!("first diverging tree size {size}")),
        "{stderr}"
    );

    // Traffic goes on: signing the rewritten log is refused, because it no longer extends the
    // published checkpoint (a new checkpoint would otherwise launder the rewrite).
    push(&cli, "b", "1");
    assert_fork_refused(&cli, size);
    assert_eq!(
        std::fs::read_dir(&published).unwrap().count(),
        1,
        "nothing new"
    );

    // Something else in the sink under a later size (not signed by this key): refused, kept.
    let next = cli.json(&["audit", "verify"])["head_seq"].as_i64().unwrap();
    let foreign = published.join(format!("{next}.checkpoint"));
    std::fs::write(&foreign, "someone else\n").unwrap();
    let output = cli.run(&["audit", "checkpoint"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not verify with this store's key"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "someone else\n");
}

/// A real `artifactstore serve` loads the store's signing key, checkpoints on its
/// `[log] checkpoint_interval`, publishes to `[log] publish_dir`, and serves the note at
/// `GET /log/checkpoint` to a reader.
#[test]
fn the_server_checkpoints_on_schedule_and_publishes() {
    use std::io::{Read as _, Write as _};
    let (cli, published) = publishing("checkpoint_interval = \"1s\"\n");
    let token = cli.mint("auditor", &["reader"]);
    let head = cli.json(&["audit", "verify"])["head_seq"].as_i64().unwrap();
    let server = cli.serve(None);
    let url = server.url("");
    let address = url.strip_prefix("http://").unwrap().to_owned();
    // The first scheduled checkpoint is made at start; a hang detector, not a threshold.
    let file = published.join(format!("{head}.checkpoint"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no published checkpoint of size {head}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let note = std::fs::read_to_string(&file).unwrap();
    let get = |token: Option<&str>| {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET /log/checkpoint HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let response = get(Some(&token));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(&note), "{response}");
    assert!(get(None).starts_with("HTTP/1.1 401"));
    // `retention history --proof` over --server: receipts from GET /log/proof/inclusion.
    let out: Json = serde_json::from_str(&cli.ok_text(&[
        "--server",
        &url,
        "--token",
        &token,
        "retention",
        "history",
        "a@1",
        "--proof",
    ]))
    .unwrap();
    let receipts = out["receipts"].as_array().unwrap();
    assert!(!receipts.is_empty(), "{out}");
    let vkey = cli.json(&["audit", "key"])["vkey"]
        .as_str()
        .unwrap()
        .to_owned();
    for receipt in receipts {
        let file = cli.write("remote-receipt.json", receipt.to_string());
        let verified = cli.json(&[
            "audit",
            "verify-receipt",
            file.to_str().unwrap(),
            "--key",
            &vkey,
        ]);
        assert_eq!(verified["ok"], Json::Bool(true));
    }
    drop(server);
    cli.ok_text(&["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
}

/// `retention history PKG --proof`: a receipt per retention event, each verifiable offline.
#[test]
fn retention_history_with_proof_prints_a_verifying_receipt_per_event() {
    let cli = Store::with_actor("ci-bot");
    push(&cli, "a", "1");
    cli.ok_text(&["retention", "hold", "a@1", "--reason", "legal"]);
    push(&cli, "b", "1");
    let vkey = cli.json(&["audit", "key"])["vkey"]
        .as_str()
        .unwrap()
        .to_owned();
    let history = cli.json(&["retention", "history", "a@1"]);
    let history = history.as_array().unwrap();
    assert!(history.len() >= 2, "{history:?}");
    // No checkpoint yet: --proof makes the covering one.
    assert!(
        cli.json(&["audit", "checkpoints"])["checkpoints"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let out: Json =
        serde_json::from_str(&cli.ok_text(&["retention", "history", "a@1", "--proof"])).unwrap();
    let receipts = out["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), history.len());
    for (event, receipt) in history.iter().zip(receipts) {
        assert_eq!(receipt["seq"], event["seq"], "{receipt}");
        let file = cli.write(&format!("r-{}.json", receipt["seq"]), receipt.to_string());
        let verified = cli.json(&[
            "audit",
            "verify-receipt",
            file.to_str().unwrap(),
            "--key",
            &vkey,
        ]);
        assert_eq!(verified["ok"], Json::Bool(true));
        assert_eq!(verified["event"]["type"], event["type"]);
    }
    // --proof and --cbor are exclusive (a usage error, exit 2).
    let output = cli.run(&["retention", "history", "a@1", "--proof", "--cbor"]);
    assert_eq!(output.status.code(), Some(2));
}

use crate::seaweed;

/// `[log.publish_s3]` on a bucket with Object Lock (SeaweedFS on loopback): `audit checkpoint`
/// publishes each checkpoint once under COMPLIANCE retention; `audit verify --published` passes,
/// then fails naming the bucket and the size after a consistent rewrite that plain
/// `audit verify` does not see; re-signing the rewritten log is refused as a fork.
#[test]
fn checkpoints_published_to_a_locked_bucket_detect_a_rewrite() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let weed = runtime.block_on(seaweed::SeaweedFs::start());
    let target = weed.target().clone();
    let anchors = artifact_store_s3::S3Options::new("anchors")
        .with_endpoint(&target.endpoint)
        .with_allow_http(true)
        .with_region(&target.region)
        .with_credentials(&target.access_key_id, &target.secret_access_key);
    let signed = anchors.signed_client().unwrap();
    runtime.block_on(signed.create_bucket(true)).unwrap();

    let cli = Store::with_actor("ci-bot")
        .with_env("AWS_ACCESS_KEY_ID", &target.access_key_id)
        .with_env("AWS_SECRET_ACCESS_KEY", &target.secret_access_key);
    cli.configure(&format!(
        "[log.publish_s3]\nbucket = \"anchors\"\nprefix = \"cli\"\nendpoint = {:?}\nregion = {:?}\nallow_http = true\n",
        target.endpoint, target.region
    ));
    let src = cli.write("f.txt", "anchored");
    let args = [
        "push",
        src.to_str().unwrap(),
        "--name",
        "a",
        "--version",
        "1",
    ];
    cli.ok(&args);
    let checkpoint = cli.json(&["audit", "checkpoint"]);
    let size = checkpoint["tree_size"].as_u64().unwrap();
    let key = format!("cli/checkpoints/{size}.checkpoint");
    let published = runtime
        .block_on(signed.get(&key))
        .unwrap()
        .expect("published");
    assert_eq!(published, checkpoint["note"].as_str().unwrap().as_bytes());
    let (mode, _) = runtime
        .block_on(signed.retention(&key))
        .unwrap()
        .expect("locked");
    assert_eq!(mode, artifact_store_s3::signed::LockMode::Compliance);
    let ok = cli.ok_text(&["audit", "verify", "--published"]);
    assert!(
        ok.contains(&format!(
            "tree size {size} published to s3://anchors/cli/checkpoints"
        )),
        "{ok}"
    );

    rewrite_history(&cli, 2);
    wipe_checkpoints(&cli);
    cli.ok_text(&["admin", "rebuild-views"]);
    assert_eq!(cli.json(&["audit", "verify"])["ok"], Json::Bool(true));
    let output = cli.run(&["--json", "audit", "verify", "--published"]);
    assert_eq!(output.status.code(), Some(1));
    let report: Json = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], Json::Bool(false), "{report}");
    assert_eq!(
        report["published"][0]["first_diverging_size"].as_u64(),
        Some(size),
        "{report}"
    );
    // Re-signing the rewritten log is refused: it no longer extends the published checkpoint.
    assert_fork_refused(&cli, size);
    assert_eq!(
        runtime.block_on(signed.get(&key)).unwrap().expect("kept"),
        published
    );
    drop(weed);
}
