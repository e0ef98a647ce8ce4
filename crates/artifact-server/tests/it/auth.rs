//! The auth matrix: every mutating endpoint × every kind of caller, with the statuses the
//! role rules give (`artifact_core::auth::Principal::has`: admin may do everything; writer and
//! retention-admin may read), and the actor of every event created = the token's principal.

use std::collections::BTreeSet;

use artifact_core::auth::Role;
use artifact_core::digest::BlobInfo;
use axum::body::Body;
use axum::http::{Method, Request};

use crate::support::{
    ADMIN, ANONYMOUS, Caller, Harness, READER, RETENTION_ADMIN, UNKNOWN, WRITER, events_after,
    manifest, manifest_json, request,
};

/// A token minted through the event log (not configuration) with two roles.
const MINTED: Caller = Caller {
    token: None,
    principal: "release-bot",
};

#[derive(Clone, Copy, Debug)]
enum Endpoint {
    CreateUpload,
    AppendUpload,
    FinishUpload,
    AbortUpload,
    PutBlob,
    CreatePackage,
    Extend,
    Hold,
    Release,
    Sweep,
    RebuildViews,
    CreateToken,
}

impl Endpoint {
    const ALL: [Endpoint; 12] = [
        Endpoint::CreateUpload,
        Endpoint::AppendUpload,
        Endpoint::FinishUpload,
        Endpoint::AbortUpload,
        Endpoint::PutBlob,
        Endpoint::CreatePackage,
        Endpoint::Extend,
        Endpoint::Hold,
        Endpoint::Release,
        Endpoint::Sweep,
        Endpoint::RebuildViews,
        Endpoint::CreateToken,
    ];

    /// The role each endpoint requires.
    fn required(self) -> Role {
        match self {
            Endpoint::CreateUpload
            | Endpoint::AppendUpload
            | Endpoint::FinishUpload
            | Endpoint::AbortUpload
            | Endpoint::PutBlob
            | Endpoint::CreatePackage => Role::Writer,
            Endpoint::Extend | Endpoint::Hold | Endpoint::Release | Endpoint::Sweep => {
                Role::RetentionAdmin
            }
            Endpoint::RebuildViews | Endpoint::CreateToken => Role::Admin,
        }
    }

    /// The status of an allowed call.
    fn success(self) -> u16 {
        match self {
            Endpoint::CreateUpload
            | Endpoint::FinishUpload
            | Endpoint::PutBlob
            | Endpoint::CreatePackage
            | Endpoint::Extend
            | Endpoint::Hold
            | Endpoint::Release
            | Endpoint::CreateToken => 201,
            Endpoint::AppendUpload => 202,
            Endpoint::AbortUpload => 204,
            Endpoint::Sweep | Endpoint::RebuildViews => 200,
        }
    }

    /// Whether an allowed call appends at least one event.
    fn appends(self) -> bool {
        matches!(
            self,
            Endpoint::FinishUpload
                | Endpoint::PutBlob
                | Endpoint::CreatePackage
                | Endpoint::Extend
                | Endpoint::Hold
                | Endpoint::Release
                | Endpoint::Sweep
                | Endpoint::CreateToken
        )
    }
}

/// The rules, spelled out: admin does everything; a role allows its own endpoints; reading
/// needs any role.
fn allowed(roles: &[Role], required: Role) -> bool {
    roles.contains(&Role::Admin)
        || roles.contains(&required)
        || (required == Role::Reader && !roles.is_empty())
}

/// Builds a valid request for `endpoint` (its preconditions set up by the library as actor
/// `setup`, or by the admin token), without an `Authorization` header. An upload session is
/// created by the caller (`authorization`) when it may, since a session belongs to its
/// creator; otherwise by the admin.
async fn prepare(
    harness: &Harness,
    endpoint: Endpoint,
    case: usize,
    authorization: Option<&str>,
) -> Request<Body> {
    let unique = format!("auth case {case}").into_bytes();
    let new_session = async || {
        if let Some(value) = authorization {
            let own = harness
                .send(
                    Method::POST,
                    "/uploads",
                    ANONYMOUS,
                    &[("authorization", value)],
                    Body::empty(),
                )
                .await;
            if own.status == 201 {
                return own.json()["location"].as_str().unwrap().to_owned();
            }
        }
        let reply = harness
            .send(Method::POST, "/uploads", ADMIN, &[], Body::empty())
            .await;
        reply.expect(201)["location"].as_str().unwrap().to_owned()
    };
    let package = async |class: &str| {
        harness
            .setup_package(
                "auth-pkg",
                &format!("1.{case}"),
                class,
                &[("f.txt", &unique)],
            )
            .await
    };
    match endpoint {
        Endpoint::CreateUpload => request(Method::POST, "/uploads", ANONYMOUS, &[], Body::empty()),
        Endpoint::AppendUpload => {
            let location = new_session().await;
            request(
                Method::PATCH,
                &location,
                ANONYMOUS,
                &[("upload-offset", "0")],
                unique,
            )
        }
        Endpoint::FinishUpload => {
            let location = new_session().await;
            harness
                .patch_upload(&location, ADMIN, 0, unique.clone())
                .await
                .expect_status(202);
            let info = BlobInfo::of(&unique);
            request(
                Method::PUT,
                &format!("{location}?digest={}", info.blake3),
                ANONYMOUS,
                &[],
                Body::empty(),
            )
        }
        Endpoint::AbortUpload => {
            let location = new_session().await;
            request(Method::DELETE, &location, ANONYMOUS, &[], Body::empty())
        }
        Endpoint::PutBlob => {
            let info = BlobInfo::of(&unique);
            request(
                Method::PUT,
                &format!("/blobs/{}", info.sha256),
                ANONYMOUS,
                &[],
                unique,
            )
        }
        Endpoint::CreatePackage => {
            harness
                .store
                .ingest_blob("setup", &unique[..], &[])
                .await
                .unwrap();
            let manifest = manifest(
                "auth-new",
                &format!("1.{case}"),
                "ephemeral",
                &[("f", &unique)],
            );
            request(
                Method::POST,
                "/packages",
                ANONYMOUS,
                &[("content-type", "application/json")],
                manifest_json(&manifest),
            )
        }
        Endpoint::Extend => {
            let id = package("build-cache").await;
            request(
                Method::POST,
                &format!("/packages/{id}/retention/extensions"),
                ANONYMOUS,
                &[("content-type", "application/json")],
                r#"{"new_expires_at":"2040-01-01T00:00:00Z","reason":"kept for the audit"}"#,
            )
        }
        Endpoint::Hold => {
            let id = package("build-cache").await;
            request(
                Method::POST,
                &format!("/packages/{id}/retention/holds"),
                ANONYMOUS,
                &[("content-type", "application/json")],
                r#"{"reason":"litigation"}"#,
            )
        }
        Endpoint::Release => {
            let id = package("build-cache").await;
            let hold_id = harness
                .store
                .hold(
                    "setup",
                    &artifact_core::PackageRef::Id(id),
                    "pending review",
                )
                .await
                .unwrap();
            request(
                Method::POST,
                &format!("/packages/{id}/retention/holds/{hold_id}/release"),
                ANONYMOUS,
                &[("content-type", "application/json")],
                r#"{"reason":"review done"}"#,
            )
        }
        Endpoint::Sweep => {
            // A fresh ephemeral package that has expired by the store's clock, so an allowed
            // sweep marks one (and appends an event).
            package("ephemeral").await;
            harness
                .clock
                .advance(artifact_core::time::Period::Millis(8 * 86_400_000));
            request(
                Method::POST,
                "/retention/sweep",
                ANONYMOUS,
                &[],
                Body::empty(),
            )
        }
        Endpoint::RebuildViews => request(
            Method::POST,
            "/admin/rebuild-views",
            ANONYMOUS,
            &[],
            Body::empty(),
        ),
        Endpoint::CreateToken => request(
            Method::POST,
            "/admin/tokens",
            ANONYMOUS,
            &[("content-type", "application/json")],
            format!(r#"{{"principal":"bot-{case}","roles":["reader"]}}"#),
        ),
    }
}

#[tokio::test]
async fn every_mutating_endpoint_checks_roles_and_records_the_principal() {
    let harness = Harness::new().await;
    let minted_token = harness
        .store
        .create_token(
            "setup",
            MINTED.principal,
            &[Role::Writer, Role::RetentionAdmin],
            &[42; 32],
        )
        .await
        .unwrap();
    // (caller, its roles, Authorization header value).
    let callers: Vec<(Caller, Vec<Role>, Option<String>)> = vec![
        (ANONYMOUS, vec![], None),
        (UNKNOWN, vec![], Some("Bearer tok-nobody-000000".to_owned())),
        (
            UNKNOWN,
            vec![],
            Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l".to_owned()),
        ),
        (READER, vec![Role::Reader], None),
        (WRITER, vec![Role::Writer], None),
        (RETENTION_ADMIN, vec![Role::RetentionAdmin], None),
        (ADMIN, vec![Role::Admin], None),
        (
            MINTED,
            vec![Role::Writer, Role::RetentionAdmin],
            Some(format!("Bearer {minted_token}")),
        ),
    ];
    let mut case = 0;
    let mut checked = 0;
    for endpoint in Endpoint::ALL {
        for (caller, roles, header) in &callers {
            case += 1;
            let authorization = header
                .clone()
                .or_else(|| caller.token.map(|t| format!("Bearer {t}")));
            let mut request = prepare(&harness, endpoint, case, authorization.as_deref()).await;
            if let Some(value) = authorization {
                request
                    .headers_mut()
                    .insert("authorization", value.parse().unwrap());
            }
            let before = harness.head_seq().await;
            let reply = harness.call(request).await;
            let authenticated = !caller.principal.is_empty();
            let what = format!("{endpoint:?} as {:?}", caller.principal);
            if !authenticated {
                reply.problem(401);
                assert_eq!(
                    reply.header("www-authenticate"),
                    Some("Bearer realm=\"artifactstore\""),
                    "{what}"
                );
            } else if allowed(roles, endpoint.required()) {
                assert_eq!(
                    reply.status.as_u16(),
                    endpoint.success(),
                    "{what}: {}",
                    reply.describe()
                );
            } else {
                let problem = reply.problem(403);
                assert!(
                    problem["detail"]
                        .as_str()
                        .unwrap()
                        .contains(endpoint.required().as_str()),
                    "{what}: the detail names the missing role: {problem}"
                );
            }
            // Cross-check the table with the library's rule.
            if authenticated {
                let principal = artifact_core::auth::Principal {
                    name: caller.principal.to_owned(),
                    roles: roles.iter().copied().collect::<BTreeSet<_>>(),
                };
                assert_eq!(
                    principal.has(endpoint.required()),
                    allowed(roles, endpoint.required()),
                    "{what}"
                );
            }
            let created = events_after(&harness.store, before).await;
            if authenticated && allowed(roles, endpoint.required()) {
                assert_eq!(
                    !created.is_empty(),
                    endpoint.appends(),
                    "{what}: {created:?}"
                );
                for event in &created {
                    assert_eq!(event.actor, caller.principal, "{what}: {event:?}");
                }
            } else {
                assert!(created.is_empty(), "{what}: a refused call appends nothing");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, Endpoint::ALL.len() * callers.len());
}

#[tokio::test]
async fn reading_needs_a_token_with_any_role_and_ops_endpoints_need_none() {
    let harness = Harness::new().await;
    let content = b"readable".to_vec();
    let id = harness
        .setup_package("readme", "1.0", "build-cache", &[("a/b.txt", &content)])
        .await;
    let info = BlobInfo::of(&content);
    let session = harness.open_upload(WRITER).await;
    let reads = [
        (Method::GET, format!("/blobs/{}", info.blake3)),
        (Method::HEAD, format!("/blobs/{}", info.sha256)),
        (Method::GET, "/packages".to_owned()),
        (Method::GET, format!("/packages/{id}")),
        (Method::GET, "/packages/readme@1.0".to_owned()),
        (Method::GET, format!("/packages/{id}/manifest")),
        (Method::GET, format!("/packages/{id}/files/a/b.txt")),
        (Method::GET, format!("/packages/{id}/retention")),
        (Method::GET, format!("/packages/{id}/retention/history")),
        (Method::GET, format!("/packages/{id}/retention/explain")),
        (Method::GET, "/events".to_owned()),
        (Method::GET, "/events/head".to_owned()),
        (Method::GET, "/audit/verify".to_owned()),
    ];
    for (method, path) in &reads {
        let anonymous = harness
            .send(method.clone(), path, ANONYMOUS, &[], Body::empty())
            .await;
        assert_eq!(anonymous.status, 401, "{method} {path} without a token");
        assert!(anonymous.header("www-authenticate").is_some());
        if *method != Method::HEAD {
            anonymous.problem(401);
        }
        let unknown = harness
            .send(method.clone(), path, UNKNOWN, &[], Body::empty())
            .await;
        assert_eq!(unknown.status, 401, "{method} {path} with an unknown token");
        for caller in [READER, WRITER, RETENTION_ADMIN, ADMIN] {
            let reply = harness
                .send(method.clone(), path, caller, &[], Body::empty())
                .await;
            assert_eq!(
                reply.status,
                200,
                "{method} {path} as {}: {}",
                caller.principal,
                reply.describe()
            );
        }
    }
    // The event stream: 401 without a token; its success is covered by the SSE tests.
    harness
        .send(Method::GET, "/events/stream", ANONYMOUS, &[], Body::empty())
        .await
        .problem(401);
    // HEAD of an upload session is a writer's call.
    for (caller, status) in [(ANONYMOUS, 401), (READER, 403), (WRITER, 204), (ADMIN, 204)] {
        let reply = harness
            .send(Method::HEAD, &session, caller, &[], Body::empty())
            .await;
        assert_eq!(reply.status, status, "HEAD {session} as {caller:?}");
    }
    // Operations endpoints answer without any token.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let reply = harness
            .send(Method::GET, path, ANONYMOUS, &[], Body::empty())
            .await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.describe());
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let harness = Harness::new().await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let reply = harness
            .send(
                Method::GET,
                "/events/head",
                ANONYMOUS,
                &[(
                    "authorization",
                    &format!("{scheme} {}", READER.token.unwrap()),
                )],
                Body::empty(),
            )
            .await;
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.describe());
    }
}

#[tokio::test]
async fn tokens_minted_over_http_are_shown_once_and_act_as_their_principal() {
    let harness = Harness::new().await;
    let before = harness.head_seq().await;
    let minted = harness
        .mint_token(r#"{"principal":"nightly-bot","roles":["writer"]}"#)
        .await;
    assert_eq!(minted["principal"], "nightly-bot");
    assert_eq!(minted["roles"], serde_json::json!(["writer"]));
    let token = minted["token"].as_str().unwrap().to_owned();
    // The event records who minted it and the token's hash, never the token itself.
    let created = events_after(&harness.store, before).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].event_type, "v1.auth.token_created");
    assert_eq!(created[0].actor, ADMIN.principal);
    assert!(
        !created[0].to_jcs().contains(&token),
        "the token is not logged"
    );
    assert_eq!(
        created[0].data_text("token_sha256"),
        Some(artifact_core::auth::token_hash(&token).to_string().as_str())
    );
    // The new token writes as its principal, and only as a writer.
    let bearer = format!("Bearer {token}");
    let content = b"nightly output".to_vec();
    let info = BlobInfo::of(&content);
    let no_token = Caller {
        token: None,
        principal: "",
    };
    let stored = harness
        .send(
            Method::PUT,
            &format!("/blobs/{}", info.blake3),
            no_token,
            &[("authorization", &bearer)],
            content,
        )
        .await;
    stored.expect(201);
    let last = events_after(&harness.store, before + 1).await;
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].actor, "nightly-bot");
    harness
        .send(
            Method::POST,
            "/retention/sweep",
            no_token,
            &[("authorization", &bearer)],
            Body::empty(),
        )
        .await
        .problem(403);
    harness
        .send(
            Method::POST,
            "/admin/tokens",
            no_token,
            &[("authorization", &bearer)],
            r#"{"principal":"escalated","roles":["admin"]}"#,
        )
        .await
        .problem(403);
}
