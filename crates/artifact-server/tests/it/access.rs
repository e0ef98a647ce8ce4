//! Access (issue 11): the token lifecycle over HTTP (list, revoke, expiry, reserved
//! principals), the file route of a purged package (410 like the library), and upload sessions
//! that belong to their creator.

use artifact_core::PackageRef;
use artifact_core::auth::Role;
use artifact_core::digest::BlobInfo;
use artifact_core::maintenance::GcOptions;
use axum::body::Body;
use axum::http::Method;

use crate::support::{ADMIN, ANONYMOUS, Caller, Harness, READER, WRITER, events_after};

const JSON: (&str, &str) = ("content-type", "application/json");

/// `Authorization: Bearer <token>` for a minted token.
fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// A request as the bearer of a minted token.
async fn send_as(
    harness: &Harness,
    method: Method,
    uri: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> crate::support::Reply {
    let (name, value) = bearer(token);
    let mut all: Vec<(&str, &str)> = vec![(name, value.as_str())];
    all.extend_from_slice(headers);
    harness.send(method, uri, ANONYMOUS, &all, body).await
}

/// `GET /events/head` with `token`.
async fn head_as(harness: &Harness, token: &str) -> crate::support::Reply {
    send_as(
        harness,
        Method::GET,
        "/events/head",
        token,
        &[],
        Body::empty(),
    )
    .await
}

#[tokio::test]
async fn tokens_are_listed_without_secrets_and_a_revoked_token_gets_401() {
    let harness = Harness::new().await;
    let minted = harness
        .mint_token(
            r#"{"principal":"nightly-bot","roles":["writer"],"expires_at":"2027-06-01T00:00:00Z"}"#,
        )
        .await;
    let token = minted["token"].as_str().unwrap().to_owned();
    let token_id = minted["token_id"].as_str().unwrap().to_owned();
    assert!(token_id.starts_with("tok-"), "{minted}");
    assert_eq!(minted["expires_at"], "2027-06-01T00:00:00.000Z");
    assert_eq!(minted["revoked"], false);

    // The list: every minted token, the documented members only, never a token or its hash.
    let list = harness
        .send(Method::GET, "/admin/tokens", ADMIN, &[], Body::empty())
        .await;
    let listed = list.expect(200);
    let text = String::from_utf8_lossy(&list.body).into_owned();
    assert!(!text.contains(&token), "no token in the list");
    assert!(
        !text.contains(&artifact_core::auth::token_hash(&token).to_hex()),
        "no token hash in the list"
    );
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["token_id"] == token_id.as_str())
        .expect("the minted token is listed")
        .clone();
    assert_eq!(
        crate::support::sorted_keys(&entry),
        [
            "created_at",
            "expires_at",
            "principal",
            "revoked",
            "roles",
            "token_id"
        ]
    );
    assert_eq!(entry["principal"], "nightly-bot");
    assert_eq!(entry["roles"], serde_json::json!(["writer"]));
    assert_eq!(entry["created_at"], crate::support::START);
    // Listing is an admin's call.
    harness
        .send(Method::GET, "/admin/tokens", WRITER, &[], Body::empty())
        .await
        .problem(403);

    // The token works until it is revoked.
    head_as(&harness, &token).await.expect(200);
    let before = harness.head_seq().await;
    let revoked = harness
        .send(
            Method::POST,
            &format!("/admin/tokens/{token_id}/revoke"),
            ADMIN,
            &[JSON],
            r#"{"reason":"leaked in a build log"}"#,
        )
        .await
        .expect(200);
    assert_eq!(revoked["token_id"], token_id.as_str());
    assert_eq!(revoked["revoked"], true);
    let appended = events_after(&harness.store, before).await;
    assert_eq!(appended.len(), 1);
    assert_eq!(appended[0].event_type, "v1.auth.token_revoked");
    assert_eq!(appended[0].actor, ADMIN.principal);
    assert_eq!(
        appended[0].data_text("reason"),
        Some("leaked in a build log")
    );
    assert_eq!(appended[0].data_text("token_id"), Some(token_id.as_str()));
    let refused = head_as(&harness, &token).await;
    let problem = refused.problem(401);
    assert!(
        problem["detail"].as_str().unwrap().contains("revoked"),
        "{problem}"
    );
    let listed = harness
        .send(Method::GET, "/admin/tokens", ADMIN, &[], Body::empty())
        .await
        .expect(200);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["token_id"] == token_id.as_str() && t["revoked"] == true)
    );

    // Refused revocations change nothing: again (409), unknown (404), no reason (400), not a
    // token id (400), not an admin (403).
    let head = harness.head_seq().await;
    let revoke = |id: String, caller: Caller, body: &'static str| {
        let harness = &harness;
        async move {
            harness
                .send(
                    Method::POST,
                    &format!("/admin/tokens/{id}/revoke"),
                    caller,
                    &[JSON],
                    body,
                )
                .await
        }
    };
    let again = revoke(token_id.clone(), ADMIN, r#"{"reason":"twice"}"#)
        .await
        .problem(409);
    assert!(
        again["detail"]
            .as_str()
            .unwrap()
            .contains("already revoked"),
        "{again}"
    );
    revoke("tok-999999".into(), ADMIN, r#"{"reason":"unknown"}"#)
        .await
        .problem(404);
    revoke(token_id.clone(), ADMIN, r#"{"reason":""}"#)
        .await
        .problem(400);
    revoke(token_id.clone(), ADMIN, r#"{}"#).await.problem(400);
    revoke("ast_secret".into(), ADMIN, r#"{"reason":"bad id"}"#)
        .await
        .problem(400);
    let fresh = harness
        .store
        .mint_token("setup", "other-bot", &[Role::Reader], None, &[3; 32])
        .await
        .unwrap();
    let head = head.max(harness.head_seq().await);
    revoke(
        fresh.record.token_id.clone(),
        WRITER,
        r#"{"reason":"not mine"}"#,
    )
    .await
    .problem(403);
    assert_eq!(
        harness.head_seq().await,
        head,
        "refused revocations append nothing"
    );
    head_as(&harness, &fresh.token).await.expect(200);
}

#[tokio::test]
async fn an_expired_token_gets_401_saying_so_by_the_store_clock() {
    let harness = Harness::new().await;
    // START is 2026-11-23T10:00Z: an hour of validity.
    let minted = harness
        .mint_token(
            r#"{"principal":"temp-bot","roles":["reader"],"expires_at":"2026-11-23T11:00:00Z"}"#,
        )
        .await;
    let token = minted["token"].as_str().unwrap().to_owned();
    let created = events_after(&harness.store, 0)
        .await
        .into_iter()
        .rfind(|e| e.event_type == "v1.auth.token_created")
        .unwrap();
    assert_eq!(
        created.data_text("expires_at"),
        Some("2026-11-23T11:00:00.000Z")
    );
    head_as(&harness, &token).await.expect(200);
    harness
        .clock
        .advance(artifact_core::time::Period::Millis(3_600_000 - 1));
    head_as(&harness, &token).await.expect(200);
    harness
        .clock
        .advance(artifact_core::time::Period::Millis(1));
    let problem = head_as(&harness, &token).await.problem(401);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("expired") && detail.contains("2026-11-23T11:00:00.000Z"),
        "{problem}"
    );

    // An expiry that is not in the future (by the store's clock) is refused; nothing recorded.
    let head = harness.head_seq().await;
    for expires in ["2026-11-23T11:00:00Z", "2020-01-01T00:00:00Z"] {
        let body =
            format!(r#"{{"principal":"late-bot","roles":["reader"],"expires_at":"{expires}"}}"#);
        let problem = harness
            .send(Method::POST, "/admin/tokens", ADMIN, &[JSON], body)
            .await
            .problem(400);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("not in the future"),
            "{problem}"
        );
    }
    harness
        .send(
            Method::POST,
            "/admin/tokens",
            ADMIN,
            &[JSON],
            r#"{"principal":"late-bot","roles":["reader"],"expires_at":"tomorrow"}"#,
        )
        .await
        .problem(400);
    assert_eq!(harness.head_seq().await, head);
}

#[tokio::test]
async fn tokens_for_reserved_principals_are_refused() {
    let harness = Harness::new().await;
    let head = harness.head_seq().await;
    for principal in ["system:gc", "system:sweeper", "SYSTEM:recovery"] {
        let body = format!(r#"{{"principal":"{principal}","roles":["admin"]}}"#);
        let problem = harness
            .send(Method::POST, "/admin/tokens", ADMIN, &[JSON], body)
            .await
            .problem(400);
        assert!(
            problem["detail"].as_str().unwrap().contains("reserved"),
            "{problem}"
        );
        let error = harness
            .store
            .mint_token("setup", principal, &[Role::Admin], None, &[1; 32])
            .await
            .unwrap_err();
        assert!(error.to_string().contains("reserved"), "{error}");
    }
    assert_eq!(harness.head_seq().await, head, "nothing was minted");
    // A name merely containing `system` is fine.
    harness
        .mint_token(r#"{"principal":"ci-system:builder","roles":["reader"]}"#)
        .await;
}

#[tokio::test]
async fn the_file_route_of_a_purged_package_is_410_like_the_library() {
    let harness = Harness::new().await;
    let content = b"short-lived build output".to_vec();
    let id = harness
        .setup_package(
            "purged-pkg",
            "1.0",
            "ephemeral",
            &[("out/log.txt", &content)],
        )
        .await;
    let file = format!("/packages/{id}/files/out/log.txt");
    harness
        .send(Method::GET, &file, READER, &[], Body::empty())
        .await
        .expect_status(200);
    // Past its 7-day expiry by the store's clock.
    harness
        .clock
        .advance(artifact_core::time::Period::Millis(8 * 86_400_000));
    harness.store.sweep("setup", None).await.unwrap();
    // A grace longer than the 8 days the clock moved keeps the blob's bytes.
    let options = GcOptions {
        grace: artifact_core::time::Period::Millis(30 * 86_400_000),
        ..GcOptions::default()
    };
    let report = harness.store.gc("setup", options).await.unwrap();
    assert_eq!(report.purged, vec![id], "the package is purged");
    // Its bytes are still in the backend (the grace has not passed), so only the purge check
    // can refuse the read.
    assert!(harness.blob_path(&BlobInfo::of(&content)).exists());

    let head = harness.head_seq().await;
    for uri in [
        file.clone(),
        "/packages/purged-pkg@1.0/files/out/log.txt".to_owned(),
    ] {
        for range in [None, Some("bytes=0-3")] {
            let headers: Vec<(&str, &str)> = range.iter().map(|r| ("range", *r)).collect();
            let problem = harness
                .send(Method::GET, &uri, READER, &headers, Body::empty())
                .await
                .problem(410);
            assert!(
                problem["detail"].as_str().unwrap().contains("purged"),
                "{problem}"
            );
        }
    }
    // The library refuses the same way.
    let error = harness
        .store
        .read_file(&PackageRef::Id(id), "out/log.txt", None)
        .await
        .unwrap_err();
    assert!(matches!(error, artifact_core::Error::Gone(_)), "{error}");
    // Manifest and record stay readable (OPERATOR.md: manifests and events are kept).
    harness
        .send(
            Method::GET,
            &format!("/packages/{id}/manifest"),
            READER,
            &[],
            Body::empty(),
        )
        .await
        .expect(200);
    let shown = harness
        .send(
            Method::GET,
            &format!("/packages/{id}"),
            READER,
            &[],
            Body::empty(),
        )
        .await
        .expect(200);
    assert!(shown["purged_seq"].is_u64(), "{shown}");
    assert_eq!(harness.head_seq().await, head, "reads append nothing");
}

/// A second writer, minted in the log.
async fn other_writer(harness: &Harness) -> String {
    harness
        .store
        .mint_token("setup", "other-team", &[Role::Writer], None, &[77; 32])
        .await
        .unwrap()
        .token
}

/// A request another principal tries on a session: method, URI, headers, body.
type Attempt<'a> = (Method, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>);

fn offset_of(reply: &crate::support::Reply) -> u64 {
    reply.header("upload-offset").unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_upload_session_belongs_to_its_creator_and_admins() {
    let mut harness = Harness::new().await;
    let intruder = other_writer(&harness).await;
    let location = harness.open_upload(WRITER).await;
    harness
        .patch_upload(&location, WRITER, 0, b"owner's bytes".to_vec())
        .await
        .expect_status(202);
    let content = b"owner's bytes and more".to_vec();
    let info = BlobInfo::of(&content);

    let refuse_all = async |harness: &Harness| {
        let head = harness.head_seq().await;
        let finish = format!("{location}?digest={}", info.blake3);
        let attempts: [Attempt; 4] = [
            (Method::HEAD, &location, vec![], vec![]),
            (
                Method::PATCH,
                &location,
                vec![("upload-offset", "13")],
                b" and more".to_vec(),
            ),
            (
                Method::PUT,
                &finish,
                vec![("upload-offset", "13")],
                b" and more".to_vec(),
            ),
            (Method::DELETE, &location, vec![], vec![]),
        ];
        for (method, uri, headers, body) in attempts {
            let reply = send_as(harness, method.clone(), uri, &intruder, &headers, body).await;
            assert_eq!(
                reply.status,
                404,
                "{method} by another writer: {}",
                reply.describe()
            );
            if method != Method::HEAD {
                reply.problem(404);
            }
        }
        assert_eq!(
            harness.head_seq().await,
            head,
            "refused calls append nothing"
        );
        // The session is untouched: the owner still sees its offset.
        let owner = harness
            .send(Method::HEAD, &location, WRITER, &[], Body::empty())
            .await;
        assert_eq!(owner.status, 204, "{}", owner.describe());
        assert_eq!(offset_of(&owner), 13);
    };
    refuse_all(&harness).await;
    // Ownership survives a restart (it is on disk beside the session).
    harness.reopen().await;
    refuse_all(&harness).await;

    // An admin may act on any session; the owner finishes it.
    let admin = harness
        .send(Method::HEAD, &location, ADMIN, &[], Body::empty())
        .await;
    assert_eq!(admin.status, 204);
    harness
        .patch_upload(&location, ADMIN, 13, b" and more".to_vec())
        .await
        .expect_status(202);
    let stored = harness
        .send(
            Method::PUT,
            &format!("{location}?digest={}", info.blake3),
            WRITER,
            &[],
            Body::empty(),
        )
        .await
        .expect(201);
    assert_eq!(stored["blake3"], info.blake3.to_string());
    let id = location.trim_start_matches("/uploads/");
    assert!(
        !harness.upload_dir().join(format!("{id}.owner")).exists(),
        "a finished session leaves no owner file"
    );
}

#[tokio::test]
async fn a_session_file_without_an_owner_is_for_admins_only() {
    let harness = Harness::new().await;
    // A session left by a version that did not record owners: only the `.part` file.
    let id = "0123456789abcdef0123456789abcdef";
    std::fs::write(harness.upload_dir().join(format!("{id}.part")), b"old").unwrap();
    let location = format!("/uploads/{id}");
    let writer = harness
        .send(Method::HEAD, &location, WRITER, &[], Body::empty())
        .await;
    assert_eq!(writer.status, 404, "{}", writer.describe());
    let admin = harness
        .send(Method::HEAD, &location, ADMIN, &[], Body::empty())
        .await;
    assert_eq!(admin.status, 204, "{}", admin.describe());
    assert_eq!(offset_of(&admin), 3);
    harness
        .send(Method::DELETE, &location, ADMIN, &[], Body::empty())
        .await
        .expect_status(204);
    assert!(!harness.upload_dir().join(format!("{id}.part")).exists());
}
