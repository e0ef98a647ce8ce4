//! The verifiable log over HTTP (ADR 0011): checkpoints and proofs fetched from the server
//! verify with the kernel's verifier against the signed note; reader role; bad input is a 400
//! that changes nothing; the scheduled checkpoint; the directory sink.

use std::time::Duration;

use artifact_core::tlog::{self, LogSigner, LogVerifier, Receipt};
use axum::http::Method;

use crate::support::*;

fn signer() -> LogSigner {
    LogSigner::from_seed("artifactstore/http-test", [7; 32]).expect("signer")
}

async fn with_signer(configure: impl FnOnce(&mut artifact_server::ServerOptions)) -> Harness {
    Harness::with(|options| {
        options.log_signer = Some(signer());
        configure(options);
    })
    .await
}

async fn add_packages(h: &Harness, from: usize, to: usize) {
    for i in from..to {
        let content = format!("log-content-{i}");
        h.setup_package(
            "log-pkg",
            &format!("1.0.{i}"),
            "build-cache",
            &[("a.txt", content.as_bytes())],
        )
        .await;
    }
}

async fn get(h: &Harness, uri: &str, caller: Caller) -> Reply {
    h.send(Method::GET, uri, caller, &[], Vec::new()).await
}

fn verifier() -> LogVerifier {
    signer().verifier()
}

#[tokio::test]
async fn proofs_fetched_over_http_verify_against_the_signed_note() {
    let h = with_signer(|_| {}).await;
    add_packages(&h, 0, 3).await;
    let head = h.head_seq().await;
    let reply = get(&h, "/log/checkpoint", READER).await;
    reply.expect_status(200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{}",
        reply.describe()
    );
    let note = String::from_utf8(reply.body.to_vec()).expect("utf-8 note");
    let first = verifier()
        .open_checkpoint(&note)
        .expect("a note the key signed");
    assert_eq!(first.tree_size, head);

    for seq in 1..=head {
        let reply = get(&h, &format!("/log/proof/inclusion?seq={seq}"), READER).await;
        reply.expect_status(200);
        let receipt =
            Receipt::from_json(std::str::from_utf8(&reply.body).expect("utf-8")).expect("receipt");
        assert_eq!((receipt.seq, receipt.tree_size), (seq, head));
        assert_eq!(receipt.checkpoint, note);
        receipt.verify(&verifier()).expect("the receipt verifies");
        let json = reply.json();
        assert_eq!(
            crate::support::sorted_keys(&json),
            [
                "checkpoint",
                "leaf",
                "leaf_index",
                "proof",
                "seq",
                "tree_size"
            ]
        );
    }

    // The log grows: an inclusion proof of a new event makes the covering checkpoint.
    add_packages(&h, 3, 6).await;
    let head2 = h.head_seq().await;
    let reply = get(&h, &format!("/log/proof/inclusion?seq={head2}"), READER).await;
    let receipt = Receipt::from_json(std::str::from_utf8(&reply.body).expect("utf-8"))
        .expect("receipt of the newest event");
    assert_eq!(receipt.tree_size, head2);
    let event = receipt.verify(&verifier()).expect("verifies");
    assert_eq!(event.seq, head2);
    // ... against an older checkpoint when asked.
    let reply = get(
        &h,
        &format!("/log/proof/inclusion?seq=2&tree_size={head}"),
        READER,
    )
    .await;
    let old =
        Receipt::from_json(std::str::from_utf8(&reply.body).expect("utf-8")).expect("receipt");
    assert_eq!(
        (old.tree_size, old.checkpoint.as_str()),
        (head, note.as_str())
    );
    old.verify(&verifier()).expect("verifies");

    let second_note =
        String::from_utf8(get(&h, "/log/checkpoint", READER).await.body.to_vec()).expect("utf-8");
    let second = verifier().open_checkpoint(&second_note).expect("signed");
    assert_eq!(second.tree_size, head2);
    let proof = get(&h, &format!("/log/proof/consistency?from={head}"), READER)
        .await
        .expect(200);
    assert_eq!(proof["from_size"], head);
    assert_eq!(proof["to_size"], head2);
    let hashes: Vec<tlog::Hash> = proof["proof"]
        .as_array()
        .expect("proof array")
        .iter()
        .map(|h| tlog::b64_hash(h.as_str().expect("text"), "proof hash").expect("hash"))
        .collect();
    tlog::verify_consistency(head, head2, &first.root_hash, &second.root_hash, &hashes)
        .expect("the newer checkpoint extends the older one");
    // A proof against the wrong root fails: the check above can fail.
    assert!(
        tlog::verify_consistency(head, head2, &second.root_hash, &second.root_hash, &hashes)
            .is_err()
    );
    let explicit = get(
        &h,
        &format!("/log/proof/consistency?from=1&to={head}"),
        READER,
    )
    .await
    .expect(200);
    assert_eq!(explicit["to_size"], head);

    let listed = get(&h, "/log/checkpoints", READER).await.expect(200);
    let sizes: Vec<u64> = listed["checkpoints"]
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["tree_size"].as_u64().expect("size"))
        .collect();
    assert!(sizes.contains(&head) && sizes.contains(&head2), "{sizes:?}");
    let after = get(
        &h,
        &format!("/log/checkpoints?after={head}&limit=1"),
        READER,
    )
    .await
    .expect(200);
    let page = after["checkpoints"].as_array().expect("array");
    assert_eq!(page.len(), 1);
    assert!(page[0]["tree_size"].as_u64().expect("size") > head);
    assert_eq!(page[0]["origin"], "artifactstore/http-test");
    verifier()
        .open_checkpoint(page[0]["note"].as_str().expect("note"))
        .expect("a listed note verifies");
}

#[tokio::test]
async fn log_routes_need_a_reader_and_bad_input_changes_nothing() {
    let h = with_signer(|_| {}).await;
    add_packages(&h, 0, 2).await;
    get(&h, "/log/checkpoint", READER).await.expect_status(200);
    let head = h.head_seq().await;
    let signed = head;
    let checkpoints = h.store.checkpoints(None, 1000).await.expect("list").len();
    let routes = [
        "/log/checkpoint",
        "/log/checkpoints",
        "/log/proof/inclusion?seq=1",
        "/log/proof/consistency?from=1",
    ];
    for route in routes {
        get(&h, route, ANONYMOUS).await.problem(401);
        get(&h, route, UNKNOWN).await.problem(401);
    }
    add_packages(&h, 2, 3).await;
    let head = {
        let grown = h.head_seq().await;
        assert!(grown > head);
        grown
    };
    // Unauthenticated calls made no checkpoint of the grown log.
    assert_eq!(
        h.store.checkpoints(None, 1000).await.expect("list").len(),
        checkpoints
    );
    let beyond_signed = format!("/log/proof/inclusion?seq={}&tree_size={signed}", signed + 1);
    let bad = [
        beyond_signed.as_str(),
        "/log/checkpoint?x=1",
        "/log/checkpoints?limt=5",
        "/log/checkpoints?limit=0",
        "/log/checkpoints?after=-1",
        "/log/proof/inclusion",
        "/log/proof/inclusion?seq=0",
        "/log/proof/inclusion?seq=abc",
        "/log/proof/inclusion?seq=1&size=2",
        "/log/proof/inclusion?seq=999999",
        "/log/proof/consistency",
        "/log/proof/consistency?from=2&to=1",
        "/log/proof/consistency?from=1&to=999999",
        "/log/proof/consistency?from=1&too=2",
    ];
    for route in bad {
        let problem = get(&h, route, READER).await.problem(400);
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(!detail.is_empty(), "{route}: {problem}");
        assert_eq!(h.head_seq().await, head, "{route} changed the log");
        assert_eq!(
            h.store.checkpoints(None, 1000).await.expect("list").len(),
            checkpoints,
            "{route} made a checkpoint"
        );
    }
    // A tree size no checkpoint has is a 404.
    get(&h, "/log/proof/inclusion?seq=1&tree_size=1", READER)
        .await
        .problem(404);
    // Writers and admins are readers too.
    get(&h, "/log/checkpoints", WRITER).await.expect_status(200);
    get(&h, "/log/checkpoints", ADMIN).await.expect_status(200);
}

#[tokio::test]
async fn without_the_signing_key_the_server_serves_only_stored_checkpoints() {
    let h = Harness::new().await;
    add_packages(&h, 0, 2).await;
    let problem = get(&h, "/log/checkpoint", READER).await.problem(404);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no checkpoint")),
        "{problem}"
    );
    get(&h, "/log/proof/inclusion?seq=1", READER)
        .await
        .problem(404);
    // One made elsewhere (the CLI) is served.
    let made = h.store.checkpoint(&signer()).await.expect("checkpoint");
    let reply = get(&h, "/log/checkpoint", READER).await;
    reply.expect_status(200);
    assert_eq!(reply.body, made.note.as_bytes());
    add_packages(&h, 2, 3).await;
    // The server cannot sign: the latest stays the stored one.
    let reply = get(&h, "/log/checkpoint", READER).await;
    assert_eq!(reply.body, made.note.as_bytes());
}

#[tokio::test]
async fn the_scheduled_checkpoint_covers_appends() {
    let h = with_signer(|options| {
        options.checkpoint_interval = Some(Duration::from_millis(20));
    })
    .await;
    let running = h.start().await;
    add_packages(&h, 0, 2).await;
    let head = h.head_seq().await;
    assert!(head > 0);
    let made = tokio::time::timeout(HANG, async {
        loop {
            if let Some(latest) = h.store.latest_checkpoint().await.expect("latest")
                && latest.tree_size == head
            {
                return latest;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a scheduled checkpoint covers the appends");
    verifier()
        .open_checkpoint(&made.note)
        .expect("signed by the server's key");
    running.stop().await;
}

#[tokio::test]
async fn checkpoints_are_published_to_the_directory_and_a_fork_is_refused() {
    let sink = tempfile::tempdir().expect("sink");
    let dir = sink.path().join("published");
    let h = with_signer(|options| options.publish_dir = Some(dir.clone())).await;
    add_packages(&h, 0, 2).await;
    let head = h.head_seq().await;
    let note = get(&h, "/log/checkpoint", READER).await.body;
    let file = dir.join(format!("{head}.checkpoint"));
    assert_eq!(std::fs::read(&file).expect("published"), note);
    // Serving it again leaves the same file alone.
    get(&h, "/log/checkpoint", READER).await.expect_status(200);
    assert_eq!(std::fs::read(&file).expect("published"), note);

    // Someone else's different checkpoint of the next size is there already: a fork.
    add_packages(&h, 2, 3).await;
    let head2 = h.head_seq().await;
    let foreign = dir.join(format!("{head2}.checkpoint"));
    std::fs::write(&foreign, "other.example/log\n9\nAAAA\n\n— x y\n").expect("write");
    let problem = get(&h, "/log/checkpoint", READER).await.problem(500);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("fork")),
        "{problem}"
    );
    assert_eq!(
        std::fs::read_to_string(&foreign).expect("kept"),
        "other.example/log\n9\nAAAA\n\n— x y\n",
        "a fork never overwrites the published file"
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".checkpoint") && !n.starts_with('.')),
        "no temporary files left: {names:?}"
    );
}
