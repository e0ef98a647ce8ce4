//! Operations: the OpenAPI document covers exactly the routes the router serves, `/metrics`
//! counts requests and events, `/healthz` and `/readyz` answer.

use std::collections::{BTreeMap, BTreeSet};

use artifact_core::digest::BlobInfo;
use axum::body::Body;
use axum::http::Method;

use crate::support::{ADMIN, ANONYMOUS, Harness, READER, WRITER, manifest, manifest_json};

/// The routes these tests drive with a successful request, as (method, path template as in
/// openapi.json).
const ROUTES: [(&str, &str); 32] = [
    ("post", "/uploads"),
    ("patch", "/uploads/{id}"),
    ("head", "/uploads/{id}"),
    ("put", "/uploads/{id}"),
    ("delete", "/uploads/{id}"),
    ("get", "/blobs/{digest}"),
    ("head", "/blobs/{digest}"),
    ("put", "/blobs/{digest}"),
    ("get", "/packages"),
    ("post", "/packages"),
    ("get", "/packages/{pkg}"),
    ("get", "/packages/{pkg}/manifest"),
    ("get", "/packages/{pkg}/files/{path}"),
    ("get", "/packages/{pkg}/retention"),
    ("get", "/packages/{pkg}/retention/history"),
    ("get", "/packages/{pkg}/retention/explain"),
    ("post", "/packages/{pkg}/retention/extensions"),
    ("post", "/packages/{pkg}/retention/holds"),
    ("post", "/packages/{pkg}/retention/holds/{hold_id}/release"),
    ("post", "/retention/sweep"),
    ("get", "/events"),
    ("get", "/events/head"),
    ("get", "/events/stream"),
    ("get", "/audit/verify"),
    ("post", "/admin/rebuild-views"),
    ("post", "/admin/tokens"),
    ("get", "/admin/tokens"),
    ("post", "/admin/tokens/{token_id}/revoke"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

/// The path of every `.route("…", …)` in the server's sources, as openapi.json spells it
/// (`{*path}` → `{path}`): what the router serves, read from the code that builds it.
fn routes_in_source() -> BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut paths = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("src") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("source");
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = rest[at + ".route(".len()..].trim_start();
            if let Some(quoted) = rest.strip_prefix('"') {
                let end = quoted.find('"').expect("closing quote");
                // `/v2/` is the OCI Distribution API, specified by that standard (tests/it/oci.rs).
                if !quoted[..end].starts_with("/v2") {
                    paths.insert(quoted[..end].replace("{*path}", "{path}"));
                }
            }
        }
    }
    paths
}

/// One driven request: method, route template, URI, headers, body.
type Call = (
    &'static str,
    &'static str,
    String,
    Vec<(&'static str, String)>,
    Vec<u8>,
);

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// (method, path) → documented response statuses.
fn documented(openapi: &serde_json::Value) -> BTreeMap<(String, String), BTreeSet<u16>> {
    let mut out = BTreeMap::new();
    for (path, item) in openapi["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if !HTTP_METHODS.contains(&method.as_str()) {
                continue;
            }
            let statuses = operation["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .map(|s| s.parse().expect("numeric status"))
                .collect();
            out.insert((method.clone(), path.clone()), statuses);
        }
    }
    out
}

fn openapi_file() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

/// The `route` labels of `artifactstore_http_requests_total` with their methods and statuses.
fn metric_routes(metrics: &str) -> BTreeSet<(String, String, u16)> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("artifactstore_http_requests_total{"))
        .map(|rest| {
            // Route labels contain braces themselves: the label set ends at the last `}`.
            let labels = &rest[..rest.rfind('}').expect("labels end")];
            let label = |name: &str| {
                let start = labels.find(&format!("{name}=\"")).expect("label") + name.len() + 2;
                let end = start + labels[start..].find('"').expect("quote");
                labels[start..end].to_owned()
            };
            (
                label("method").to_lowercase(),
                label("route").replace("{*path}", "{path}"),
                label("status").parse().expect("status"),
            )
        })
        .collect()
}

#[tokio::test]
async fn openapi_documents_exactly_the_routes_the_router_serves() {
    let harness = Harness::new().await;
    let openapi = openapi_file();
    assert_eq!(openapi["openapi"], "3.1.0");
    let documented = documented(&openapi);
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let documented_routes: BTreeSet<(String, String)> = documented.keys().cloned().collect();
    let undocumented: Vec<_> = listed.difference(&documented_routes).collect();
    assert!(
        undocumented.is_empty(),
        "served, not documented: {undocumented:?}"
    );
    // The router's paths (from the code) are exactly the documented paths.
    let documented_paths: BTreeSet<String> =
        documented.keys().map(|(_, path)| path.clone()).collect();
    assert_eq!(
        routes_in_source(),
        documented_paths,
        "openapi.json and the router's paths differ"
    );

    // Fixtures for concrete paths.
    let content = b"openapi fixture".to_vec();
    let info = BlobInfo::of(&content);
    let id = harness
        .setup_package("spec", "1.0", "build-cache", &[("dir/file.txt", &content)])
        .await;
    let hold = harness
        .store
        .hold("setup", &artifact_core::PackageRef::Id(id), "fixture")
        .await
        .unwrap();
    let new_session = async || harness.open_upload(WRITER).await;
    let patched = new_session().await;
    let finished = new_session().await;
    let deleted = new_session().await;
    let other = b"second blob".to_vec();
    let other_info = BlobInfo::of(&other);
    let second = manifest("spec", "2.0", "ephemeral", &[("f", &content)]);
    let pkg = format!("/packages/{id}");
    let revocable = harness
        .store
        .mint_token(
            "setup",
            "revocable-bot",
            &[artifact_core::auth::Role::Reader],
            None,
            &[5; 32],
        )
        .await
        .unwrap()
        .record
        .token_id;

    // One request per route (the SSE stream is answered with 400 here to keep oneshot
    // finite: its success is the subject of the SSE tests).
    let calls: Vec<Call> = vec![
        ("post", "/uploads", "/uploads".into(), vec![], vec![]),
        (
            "patch",
            "/uploads/{id}",
            patched.clone(),
            vec![("upload-offset", "0".into())],
            b"abc".to_vec(),
        ),
        ("head", "/uploads/{id}", patched.clone(), vec![], vec![]),
        (
            "put",
            "/uploads/{id}",
            format!("{finished}?digest={}", info.blake3),
            vec![],
            content.clone(),
        ),
        ("delete", "/uploads/{id}", deleted, vec![], vec![]),
        (
            "get",
            "/blobs/{digest}",
            format!("/blobs/{}", info.sha256),
            vec![("range", "bytes=0-3".into())],
            vec![],
        ),
        (
            "head",
            "/blobs/{digest}",
            format!("/blobs/{}", info.blake3),
            vec![],
            vec![],
        ),
        (
            "put",
            "/blobs/{digest}",
            format!("/blobs/{}", other_info.blake3),
            vec![],
            other.clone(),
        ),
        (
            "get",
            "/packages",
            "/packages?limit=1".into(),
            vec![],
            vec![],
        ),
        (
            "post",
            "/packages",
            "/packages".into(),
            vec![("content-type", "application/json".into())],
            manifest_json(&second).into_bytes(),
        ),
        (
            "get",
            "/packages/{pkg}",
            "/packages/spec@1.0".into(),
            vec![],
            vec![],
        ),
        (
            "get",
            "/packages/{pkg}/manifest",
            format!("{pkg}/manifest"),
            vec![("accept", "application/cbor".into())],
            vec![],
        ),
        (
            "get",
            "/packages/{pkg}/files/{path}",
            format!("{pkg}/files/dir/file.txt"),
            vec![],
            vec![],
        ),
        (
            "get",
            "/packages/{pkg}/retention",
            format!("{pkg}/retention"),
            vec![],
            vec![],
        ),
        (
            "get",
            "/packages/{pkg}/retention/history",
            format!("{pkg}/retention/history"),
            vec![],
            vec![],
        ),
        (
            "get",
            "/packages/{pkg}/retention/explain",
            format!("{pkg}/retention/explain?as_of=2030-01-01T00:00:00Z"),
            vec![],
            vec![],
        ),
        (
            "post",
            "/packages/{pkg}/retention/extensions",
            format!("{pkg}/retention/extensions"),
            vec![],
            br#"{"new_expires_at":"2031-01-01T00:00:00Z","reason":"r"}"#.to_vec(),
        ),
        (
            "post",
            "/packages/{pkg}/retention/holds",
            format!("{pkg}/retention/holds"),
            vec![],
            br#"{"reason":"r"}"#.to_vec(),
        ),
        (
            "post",
            "/packages/{pkg}/retention/holds/{hold_id}/release",
            format!("{pkg}/retention/holds/{hold}/release"),
            vec![],
            br#"{"reason":"r"}"#.to_vec(),
        ),
        (
            "post",
            "/retention/sweep",
            "/retention/sweep".into(),
            vec![],
            vec![],
        ),
        (
            "get",
            "/events",
            "/events?after=1&limit=2".into(),
            vec![],
            vec![],
        ),
        ("get", "/events/head", "/events/head".into(), vec![], vec![]),
        (
            "get",
            "/events/stream",
            "/events/stream".into(),
            vec![("last-event-id", "x".into())],
            vec![],
        ),
        (
            "get",
            "/audit/verify",
            "/audit/verify".into(),
            vec![],
            vec![],
        ),
        (
            "post",
            "/admin/rebuild-views",
            "/admin/rebuild-views".into(),
            vec![],
            vec![],
        ),
        (
            "post",
            "/admin/tokens",
            "/admin/tokens".into(),
            vec![],
            br#"{"principal":"bot","roles":["writer"]}"#.to_vec(),
        ),
        (
            "get",
            "/admin/tokens",
            "/admin/tokens".into(),
            vec![],
            vec![],
        ),
        (
            "post",
            "/admin/tokens/{token_id}/revoke",
            format!("/admin/tokens/{revocable}/revoke"),
            vec![],
            br#"{"reason":"rotated"}"#.to_vec(),
        ),
        ("get", "/healthz", "/healthz".into(), vec![], vec![]),
        ("get", "/readyz", "/readyz".into(), vec![], vec![]),
        ("get", "/metrics", "/metrics".into(), vec![], vec![]),
        (
            "get",
            "/openapi.json",
            "/openapi.json".into(),
            vec![],
            vec![],
        ),
    ];
    assert_eq!(calls.len(), ROUTES.len());
    let mut driven = BTreeSet::new();
    for (method, template, uri, headers, body) in calls {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        // The role the document names is enforced: without it the same request is refused
        // (401 without a token for reader routes, 403 for a reader on the others).
        if let Some(role) = openapi["paths"][template][method]["x-required-role"].as_str() {
            let (lacking, expected) = if role == "reader" {
                (ANONYMOUS, 401)
            } else {
                (READER, 403)
            };
            let refused = harness
                .send(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    &uri,
                    lacking,
                    &headers,
                    body.clone(),
                )
                .await;
            assert_eq!(
                refused.status.as_u16(),
                expected,
                "{method} {uri} is documented for {role}: {}",
                refused.describe()
            );
        }
        let reply = harness
            .send(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                &uri,
                ADMIN,
                &headers,
                body,
            )
            .await;
        let status = reply.status.as_u16();
        let statuses = &documented[&(method.to_owned(), template.to_owned())];
        assert!(
            statuses.contains(&status),
            "{method} {uri}: {status} is not documented for {template} ({statuses:?}): {}",
            reply.describe()
        );
        if template != "/events/stream" {
            assert!(
                reply.status.is_success(),
                "{method} {uri}: {}",
                reply.describe()
            );
        }
        driven.insert((method.to_owned(), template.to_owned()));
    }
    assert_eq!(driven, listed, "every listed route was driven");
    // Documented routes beyond this list (added later) must at least be served.
    let concrete = |template: &str| {
        template
            .replace("{id}", &"0".repeat(32))
            .replace("{digest}", &info.blake3.to_string())
            .replace("{pkg}", &id.to_string())
            .replace("{path}", "dir/file.txt")
            .replace("{hold_id}", &hold)
    };
    // An admin's empty-bodied request of a documented template.
    let call = async |method: &str, path: &str| {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let uri = concrete(path);
        harness.send(method, &uri, ADMIN, &[], Body::empty()).await
    };
    for (method, path) in documented_routes.difference(&listed) {
        let reply = call(method, path).await;
        let fallback = reply.status == 404
            && reply.try_problem(404).is_ok_and(|p| {
                p["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("no route")
            });
        assert!(
            reply.status != 405 && !fallback,
            "{method} {path} is documented but not served: {}",
            reply.describe()
        );
    }

    // The router matched each request to the documented template (the metrics' route label).
    let metrics = harness
        .send(Method::GET, "/metrics", ANONYMOUS, &[], Body::empty())
        .await;
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    let matched: BTreeSet<(String, String)> = metric_routes(&text)
        .into_iter()
        .map(|(method, route, _)| (method, route))
        .collect();
    for route in &listed {
        assert!(
            matched.contains(route),
            "{route:?} was not matched as such: {text}"
        );
    }

    // No undocumented method on a documented path (HEAD comes with every GET).
    for path in &documented_paths {
        for method in ["get", "put", "post", "delete", "patch"] {
            if documented_routes.contains(&(method.to_owned(), path.to_owned())) {
                continue;
            }
            let reply = call(method, path).await;
            assert_eq!(
                reply.status,
                405,
                "{method} {path} is served but not documented: {}",
                reply.describe()
            );
        }
    }
    // Paths outside the document fall through to a problem+json 404.
    for path in ["/", "/admin", "/packages/x/y/z", "/events/tail", "/blobs"] {
        harness
            .send(Method::GET, path, ADMIN, &[], Body::empty())
            .await
            .problem(404);
    }

    // GET /openapi.json serves the checked-in document.
    let served = harness
        .send(Method::GET, "/openapi.json", ANONYMOUS, &[], Body::empty())
        .await;
    assert!(
        served
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    );
    assert_eq!(served.json(), openapi);
    // Operations endpoints are documented with no security requirement (an empty list); every
    // other one with the bearer token and the role it needs.
    for (method, path) in documented.keys() {
        let operation = &openapi["paths"][path][method];
        let ops = ["/healthz", "/readyz", "/metrics", "/openapi.json"].contains(&path.as_str());
        let expected = if ops {
            serde_json::json!([])
        } else {
            serde_json::json!([{"bearer": []}])
        };
        assert_eq!(operation["security"], expected, "{method} {path}: security");
        assert_eq!(
            operation.get("x-required-role").is_none(),
            ops,
            "{method} {path}: role"
        );
    }
}

/// The value of an unlabelled sample.
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from:\n{metrics}"))
        .trim()
        .parse()
        .expect("integer sample")
}

fn requests(metrics: &str, method: &str, route: &str, status: u16) -> u64 {
    let prefix = format!(
        "artifactstore_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} "
    );
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("integer"))
}

#[tokio::test]
async fn metrics_count_requests_events_and_uploads_and_readyz_is_ready() {
    let harness = Harness::new().await;
    let scrape = async || {
        let reply = harness
            .send(Method::GET, "/metrics", ANONYMOUS, &[], Body::empty())
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; version=0.0.4")
        );
        String::from_utf8(reply.body.to_vec()).expect("UTF-8")
    };

    for _ in 0..3 {
        let reply = harness
            .send(Method::GET, "/healthz", ANONYMOUS, &[], Body::empty())
            .await;
        assert_eq!(reply.status, 200);
    }
    let ready = harness
        .send(Method::GET, "/readyz", ANONYMOUS, &[], Body::empty())
        .await;
    assert_eq!(ready.status, 200, "{}", ready.describe());
    assert_eq!(ready.body.as_ref(), b"ready\n");
    let first = scrape().await;
    assert_eq!(requests(&first, "GET", "/healthz", 200), 3);
    assert_eq!(requests(&first, "GET", "/readyz", 200), 1);
    assert_eq!(
        sample(&first, "artifactstore_upload_sessions_created_total"),
        0
    );
    assert_eq!(sample(&first, "artifactstore_events_appended_total"), 0);

    // Traffic: an upload session, a blob, a package, a refused call, an unknown route.
    let session = harness.open_upload(WRITER).await;
    let content = b"metered bytes".to_vec();
    harness.put_blob(WRITER, &content).await;
    let created = harness
        .send(
            Method::POST,
            "/packages",
            WRITER,
            &[("content-type", "application/json")],
            manifest_json(&manifest("metered", "1.0", "ephemeral", &[("m", &content)])),
        )
        .await;
    created.expect(201);
    harness
        .send(Method::POST, "/uploads", ANONYMOUS, &[], Body::empty())
        .await
        .problem(401);
    harness
        .send(Method::GET, "/no/such/route", ANONYMOUS, &[], Body::empty())
        .await
        .problem(404);
    let head = harness.head_seq().await;

    let second = scrape().await;
    assert_eq!(requests(&second, "GET", "/healthz", 200), 3);
    assert_eq!(
        requests(&second, "GET", "/metrics", 200),
        1,
        "the first scrape"
    );
    assert_eq!(requests(&second, "POST", "/uploads", 201), 1);
    assert_eq!(requests(&second, "POST", "/uploads", 401), 1);
    assert_eq!(requests(&second, "PUT", "/blobs/{digest}", 201), 1);
    assert_eq!(requests(&second, "POST", "/packages", 201), 1);
    assert_eq!(
        sample(&second, "artifactstore_upload_sessions_created_total"),
        1
    );
    assert_eq!(sample(&second, "artifactstore_upload_sessions_active"), 1);
    assert_eq!(sample(&second, "artifactstore_events_appended_total"), head);
    assert_eq!(sample(&second, "artifactstore_event_log_head_seq"), head);
    assert_eq!(
        sample(&second, "artifactstore_http_bytes_in_total"),
        content.len() as u64
    );
    // Every sample line is `name{labels} integer` and has HELP and TYPE lines.
    let mut typed = BTreeSet::new();
    for line in second.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split_whitespace().next().unwrap().to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name, value) = line.rsplit_once(' ').expect("sample");
        value
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{line}: not an integer"));
        let name = name.split('{').next().unwrap();
        assert!(typed.contains(name), "{name} has no # TYPE line");
    }

    // Finishing the session moves the gauges.
    harness
        .send(
            Method::PUT,
            &format!("{session}?digest={}", BlobInfo::of(b"").blake3),
            WRITER,
            &[],
            Body::empty(),
        )
        .await
        .expect(201);
    let third = scrape().await;
    assert_eq!(sample(&third, "artifactstore_upload_sessions_active"), 0);
    assert_eq!(
        sample(&third, "artifactstore_upload_sessions_completed_total"),
        1
    );
    assert_eq!(
        sample(&third, "artifactstore_events_appended_total"),
        harness.head_seq().await
    );
}
