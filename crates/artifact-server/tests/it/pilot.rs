//! The SPEC §8 pilot scenario over HTTP: a guide-board run is pushed as a `release-evidence`
//! package, extended once, held for a quarter, released, swept and marked eligible; the
//! retention state, the history (JCS and canonical CBOR) and `/events?package_id=` agree, and
//! every event's actor is the token's principal.

use artifact_core::cbor;
use artifact_core::digest::BlobInfo;
use artifact_core::time::Period;
use axum::http::Method;

use crate::support::{
    Harness, READER, RETENTION_ADMIN, Running, WRITER, guide_board_run, json_of, manifest_json,
    problem_of, pseudo_random_bytes,
};

async fn get_json(server: &Running, path: &str) -> serde_json::Value {
    json_of(server.get(path, READER).await, 200).await
}

async fn post_json(server: &Running, path: &str, body: serde_json::Value) -> reqwest::Response {
    server
        .request(Method::POST, path, RETENTION_ADMIN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn sweep(server: &Running, as_of: Option<&str>) -> serde_json::Value {
    let path = match as_of {
        Some(t) => format!("/retention/sweep?as_of={t}"),
        None => "/retention/sweep".to_owned(),
    };
    json_of(server.call(Method::POST, &path, RETENTION_ADMIN).await, 200).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pilot_scenario_over_http() {
    let harness = Harness::new().await;
    let server = harness.start().await;
    let day = Period::Millis(86_400_000);

    // --- the run is uploaded by the pipeline (writer) and becomes a package.
    let index = b"<!doctype html><title>guide-board 2026.11.23-1</title>".to_vec();
    let results = br#"{"passed":412,"failed":0,"skipped":3}"#.to_vec();
    let trace = pseudo_random_bytes((2 << 20) + 3, 8);
    for content in [&index, &results, &trace] {
        harness.put_blob(WRITER, content).await;
    }
    let run = guide_board_run(
        &trace,
        &[
            ("report/index.html", &index, "text/html"),
            ("report/results.json", &results, "application/json"),
        ],
    );
    let package_id = run.package_id().unwrap();
    let created = server
        .request(Method::POST, "/packages", WRITER)
        .header("content-type", "application/json")
        .body(manifest_json(&run))
        .send()
        .await
        .unwrap();
    let created = json_of(created, 201).await;
    let default_expiry = "2028-11-23T10:00:00.000Z";
    assert_eq!(created["expires_at"], default_expiry);
    let pkg = format!("/packages/{package_id}");
    let by_name = "/packages/guide-board@2026.11.23-1";

    // --- extended once, by the records officer (retention-admin), addressed by NAME@VERSION.
    harness.clock.advance(day);
    let extended = post_json(
        &server,
        &format!("{by_name}/retention/extensions"),
        serde_json::json!({"new_expires_at": "2029-06-30T00:00:00Z", "reason": "audit cycle 2029"}),
    )
    .await;
    let extended = json_of(extended, 201).await;
    assert_eq!(extended["current_expires_at"], "2029-06-30T00:00:00.000Z");
    assert_eq!(extended["default_expires_at"], default_expiry);

    // --- held for a quarter: the hold starts before expiry and outlasts it.
    harness.clock.set("2029-05-01T09:00:00Z".parse().unwrap());
    let hold = post_json(
        &server,
        &format!("{pkg}/retention/holds"),
        serde_json::json!({"reason": "regulator inquiry Q2-2029"}),
    )
    .await;
    let hold_id = json_of(hold, 201).await["hold_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = get_json(&server, &format!("{pkg}/retention")).await;
    assert_eq!(status["active_holds"], 1);
    assert_eq!(status["holds"][0]["hold_id"], hold_id.as_str());
    assert_eq!(status["holds"][0]["actor"], RETENTION_ADMIN.principal);

    // Expired, but held: a sweep marks nothing.
    harness.clock.set("2029-07-15T09:00:00Z".parse().unwrap());
    let during_hold = sweep(&server, Some("2029-07-15T09:00:00Z")).await;
    assert_eq!(during_hold["newly_eligible"], 0);
    assert_eq!(during_hold["as_of"], "2029-07-15T09:00:00.000Z");
    let status = get_json(&server, &format!("{pkg}/retention")).await;
    assert_eq!(status["eligible_for_deletion"], false);
    // The explanation says so, citing the hold.
    let explained = get_json(
        &server,
        &format!("{pkg}/retention/explain?as_of=2029-07-15T09:00:00Z"),
    )
    .await;
    assert_eq!(explained["eligible_for_deletion"], false);

    // --- the quarter ends: release (reason required), then the sweep marks it once.
    harness.clock.set("2029-08-01T09:00:00Z".parse().unwrap());
    let released = post_json(
        &server,
        &format!("{pkg}/retention/holds/{hold_id}/release"),
        serde_json::json!({"reason": "inquiry closed"}),
    )
    .await;
    let released = json_of(released, 201).await;
    assert_eq!(released["active_holds"], 0);
    // Releasing twice is a conflict.
    let twice = post_json(
        &server,
        &format!("{pkg}/retention/holds/{hold_id}/release"),
        serde_json::json!({"reason": "again"}),
    )
    .await;
    problem_of(twice, 409).await;
    let marked = sweep(&server, Some("2029-08-01T09:00:00Z")).await;
    assert_eq!(marked["newly_eligible"], 1);
    assert_eq!(marked["package_ids"][0], package_id.to_string());
    // Again, as of the clock: nothing new (at most once per transition).
    let again = sweep(&server, None).await;
    assert_eq!(again["newly_eligible"], 0);
    assert_eq!(again["as_of"], "2029-08-01T09:00:00.000Z");

    // --- the retention state.
    let status = get_json(&server, &format!("{by_name}/retention")).await;
    assert_eq!(status["package_id"], package_id.to_string());
    assert_eq!(status["retention_class"], "release-evidence");
    assert_eq!(status["default_expires_at"], default_expiry);
    assert_eq!(status["current_expires_at"], "2029-06-30T00:00:00.000Z");
    assert_eq!(status["active_holds"], 0);
    assert_eq!(status["eligible_for_deletion"], true);
    let eligible = get_json(&server, "/packages?eligible=true").await;
    assert_eq!(
        eligible["packages"][0]["package_id"],
        package_id.to_string()
    );

    // --- the history, in order, as JCS and as canonical CBOR (the same values).
    let history = server
        .get(&format!("{pkg}/retention/history"), READER)
        .await;
    let history_text = history.text().await.unwrap();
    let history: serde_json::Value = serde_json::from_str(&history_text).unwrap();
    let history = history.as_array().unwrap().clone();
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
    let seqs: Vec<u64> = history.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in seq order: {seqs:?}"
    );
    assert_eq!(history[1]["data"]["previous_expires_at"], default_expiry);
    assert_eq!(
        history[1]["data"]["new_expires_at"],
        "2029-06-30T00:00:00.000Z"
    );
    assert_eq!(history[1]["data"]["reason"], "audit cycle 2029");
    assert_eq!(history[2]["data"]["hold_id"], hold_id.as_str());
    assert_eq!(history[3]["data"]["reason"], "inquiry closed");
    let cbor_history = server
        .request(Method::GET, &format!("{pkg}/retention/history"), READER)
        .header("accept", "application/cbor")
        .send()
        .await
        .unwrap();
    assert_eq!(cbor_history.headers()["content-type"], "application/cbor");
    let cbor_bytes = cbor_history.bytes().await.unwrap();
    let decoded = cbor::decode(&cbor_bytes).expect("canonical CBOR (the strict decoder)");
    assert_eq!(cbor::encode(&decoded).unwrap(), cbor_bytes, "canonical");
    assert_eq!(artifact_core::jcs::to_jcs(&decoded), history_text);

    // --- /events?package_id= agrees: the same retention events, plus the creation.
    let events = get_json(&server, &format!("/events?package_id={package_id}")).await;
    let events = events.as_array().unwrap();
    assert_eq!(events[0]["type"], "v1.package.created");
    let retention_events: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("v1.retention."))
        .collect();
    assert_eq!(retention_events, history.iter().collect::<Vec<_>>());
    let cbor_events = server
        .request(
            Method::GET,
            &format!("/events?package_id={package_id}"),
            READER,
        )
        .header("accept", "application/cbor")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        artifact_core::jcs::to_json_value(&cbor::decode(&cbor_events).unwrap()),
        serde_json::Value::Array(events.clone())
    );

    // --- actors: the token's principal on every event, never a body field.
    for event in events {
        let expected = match event["type"].as_str().unwrap() {
            "v1.package.created" | "v1.retention.default_applied" => WRITER.principal,
            _ => RETENTION_ADMIN.principal,
        };
        assert_eq!(event["actor"], expected, "{event}");
    }
    let blob_events = get_json(&server, "/events?type=v1.blob.stored").await;
    for event in blob_events.as_array().unwrap() {
        assert_eq!(event["actor"], WRITER.principal);
    }
    let head = harness.head_seq().await;
    let spoofed = post_json(
        &server,
        &format!("{pkg}/retention/holds"),
        serde_json::json!({"reason": "spoof", "actor": "someone-else"}),
    )
    .await;
    problem_of(spoofed, 400).await;
    assert_eq!(harness.head_seq().await, head, "a body `actor` is refused");

    // The chain is intact and `GET /events/head` names the last event.
    let audit = get_json(&server, "/audit/verify").await;
    assert_eq!(audit["ok"], true);
    assert_eq!(audit["head_seq"], head);
    let events_head = get_json(&server, "/events/head").await;
    assert_eq!(events_head["seq"], head);
    assert_eq!(events_head["hash"], audit["head_hash"]);
    // Bytes are never deleted by retention.
    let trace_back = server
        .get(&format!("/blobs/{}", BlobInfo::of(&trace).blake3), READER)
        .await;
    assert_eq!(trace_back.bytes().await.unwrap(), trace.as_slice());
    server.stop().await;
}
