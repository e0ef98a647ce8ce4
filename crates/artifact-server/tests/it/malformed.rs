//! Bad input of every kind (SPEC §6) gets the right 4xx as `application/problem+json`
//! (`type`, `title`, `status`, `detail`) and changes nothing: the event log head stays put.
//! Driven through `app(state).oneshot(request)`, no socket.

use std::collections::BTreeMap;

use artifact_core::cbor::Value;
use artifact_core::digest::BlobInfo;
use artifact_core::manifest::Manifest;
use axum::body::Body;
use axum::http::Method;

use crate::support::{
    ADMIN, Caller, Harness, READER, RETENTION_ADMIN, UNKNOWN, WRITER, file_entry, manifest,
    manifest_json,
};

/// Small limits, so oversize bodies are cheap to send.
const MAX_BLOB: u64 = 64 << 10;
const MAX_JSON: u64 = 8 << 10;

/// The content every fixture file has (15 bytes: its size encodes as the single byte 0x0f).
const CONTENT: &[u8] = b"hello malformed";

struct Case {
    name: &'static str,
    method: Method,
    uri: String,
    caller: Caller,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
}

fn case(name: &'static str, method: Method, uri: impl Into<String>, status: u16) -> Case {
    Case {
        name,
        method,
        uri: uri.into(),
        caller: ADMIN,
        headers: Vec::new(),
        body: Vec::new(),
        status,
    }
}

impl Case {
    fn by(mut self, caller: Caller) -> Self {
        self.caller = caller;
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.header("content-type", "application/json").body(body)
    }

    fn cbor(self, body: impl Into<Vec<u8>>) -> Self {
        self.header("content-type", "application/cbor").body(body)
    }
}

/// Runs every case; each must answer problem+json with its status and leave the head alone.
async fn run(harness: &Harness, cases: Vec<Case>) -> usize {
    let mut failures = Vec::new();
    let count = cases.len();
    for case in cases {
        let before = harness.head_seq().await;
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let reply = harness
            .send(
                case.method.clone(),
                &case.uri,
                case.caller,
                &headers,
                Body::from(case.body),
            )
            .await;
        if let Err(why) = reply.try_problem(case.status) {
            failures.push(format!(
                "{}: {} {}: {why}",
                case.name, case.method, case.uri
            ));
        }
        let after = harness.head_seq().await;
        if after != before {
            failures.push(format!(
                "{}: the head moved from {before} to {after}",
                case.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures in {count} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    count
}

/// A harness with small limits and fixtures: a stored blob, a package, a released hold and
/// an upload session at offset 5.
struct Fixture {
    harness: Harness,
    package: String,
    released_hold: String,
    session: String,
    info: BlobInfo,
    manifest: Manifest,
}

async fn fixture() -> Fixture {
    let harness = Harness::with(|options| {
        options.max_blob_bytes = MAX_BLOB;
        options.max_json_bytes = MAX_JSON;
    })
    .await;
    let info = BlobInfo::of(CONTENT);
    let manifest = manifest(
        "fixture",
        "1.0",
        "build-cache",
        &[("docs/readme.txt", CONTENT)],
    );
    let id = harness
        .setup_package(
            "fixture",
            "1.0",
            "build-cache",
            &[("docs/readme.txt", CONTENT)],
        )
        .await;
    assert_eq!(id, manifest.package_id().unwrap());
    let package_ref = artifact_core::PackageRef::Id(id);
    let released_hold = harness
        .store
        .hold("setup", &package_ref, "short hold")
        .await
        .unwrap();
    harness
        .store
        .release("setup", &package_ref, &released_hold, "done")
        .await
        .unwrap();
    let session = harness.open_upload(WRITER).await;
    harness
        .patch_upload(&session, WRITER, 0, b"12345".to_vec())
        .await
        .expect_status(202);
    Fixture {
        harness,
        package: format!("/packages/{id}"),
        released_hold,
        session,
        info,
        manifest,
    }
}

/// Canonical CBOR of `value` except that every map's keys are written in reverse order.
fn cbor_with_reversed_keys(value: &Value, out: &mut Vec<u8>) {
    fn head(major: u8, n: u64, out: &mut Vec<u8>) {
        let major = major << 5;
        match n {
            0..=23 => out.push(major | n as u8),
            24..=0xff => out.extend([major | 24, n as u8]),
            0x100..=0xffff => {
                out.push(major | 25);
                out.extend((n as u16).to_be_bytes());
            }
            _ => {
                out.push(major | 26);
                out.extend((n as u32).to_be_bytes());
            }
        }
    }
    match value {
        Value::Map(map) => {
            head(5, map.len() as u64, out);
            for (key, item) in map.iter().rev() {
                head(3, key.len() as u64, out);
                out.extend(key.as_bytes());
                cbor_with_reversed_keys(item, out);
            }
        }
        Value::Array(items) => {
            head(4, items.len() as u64, out);
            for item in items {
                cbor_with_reversed_keys(item, out);
            }
        }
        Value::Text(text) => {
            head(3, text.len() as u64, out);
            out.extend(text.as_bytes());
        }
        Value::Int(n) if *n >= 0 => head(0, *n as u64, out),
        Value::Int(n) => head(1, (-1 - *n) as u64, out),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Null => out.push(0xf6),
    }
}

/// `bytes` with the first occurrence of `from` replaced by `to`.
fn splice(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the pattern occurs");
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&bytes[at + from.len()..]);
    out
}

fn with_path(path: &str) -> String {
    let mut manifest = manifest("evil", "1.0", "build-cache", &[]);
    manifest.files.push(file_entry(path, CONTENT, "text/plain"));
    manifest_json(&manifest)
}

#[tokio::test]
async fn malformed_requests_get_problem_json_and_change_nothing() {
    let fixture = fixture().await;
    let harness = &fixture.harness;
    let pkg = &fixture.package;
    let session = &fixture.session;
    let info = &fixture.info;
    let good_json = manifest_json(&fixture.manifest);
    let good_cbor = fixture.manifest.canonical_bytes().unwrap();
    // `"size"` followed by its value 15 (0x0f) in canonical CBOR.
    let size_key: &[u8] = b"\x64size\x0f";
    let mut reversed = Vec::new();
    cbor_with_reversed_keys(&fixture.manifest.to_value(), &mut reversed);
    let missing = BlobInfo::of(b"never uploaded");
    let other_version = {
        let mut m = fixture.manifest.clone();
        m.labels.insert("rebuilt".to_owned(), "yes".to_owned());
        manifest_json(&m)
    };
    let wrong_size = {
        let mut m = manifest("sized", "1.0", "build-cache", &[("a", CONTENT)]);
        m.files[0].size += 1;
        manifest_json(&m)
    };
    let wrong_sha = {
        let mut m = manifest("mixed", "1.0", "build-cache", &[("a", CONTENT)]);
        m.files[0].sha256 = missing.sha256;
        manifest_json(&m)
    };
    let bad_hex = format!("blake3:{}", "g".repeat(64));
    let short = format!("sha256:{}", "a".repeat(63));
    let upper = format!("blake3:{}", info.blake3.to_hex().to_uppercase());
    let md5 = format!("md5:{}", "0".repeat(32));
    let unknown_session = format!("/uploads/{}", "0".repeat(32));
    let too_big_blob = vec![b'x'; MAX_BLOB as usize + 1];
    let extend = format!("{pkg}/retention/extensions");
    let holds = format!("{pkg}/retention/holds");
    let file = format!("{pkg}/files/docs/readme.txt");
    let blob = format!("/blobs/{}", info.blake3);

    let cases =
        vec![
            // --- manifests: syntax, canonical form, data model, content type.
            case("bad JSON", Method::POST, "/packages", 400).json(&b"{\"schema\": "[..]),
            case("JSON float", Method::POST, "/packages", 400)
                .json(good_json.replace("\"size\":15", "\"size\":15.0")),
            case("JSON exponent", Method::POST, "/packages", 400)
                .json(good_json.replace("\"size\":15", "\"size\":1.5e1")),
            case("JSON duplicate key", Method::POST, "/packages", 400).json(good_json.replacen(
                "{\"files\"",
                "{\"name\":\"dup\",\"files\"",
                1,
            )),
            case("JSON not an object", Method::POST, "/packages", 400).json("[1,2,3]"),
            case("JSON unknown member", Method::POST, "/packages", 400).json(good_json.replacen(
                "{\"files\"",
                "{\"extra\":true,\"files\"",
                1,
            )),
            case("JSON unknown schema", Method::POST, "/packages", 400)
                .json(good_json.replace("artifactstore.manifest/v1", "artifactstore.manifest/v9")),
            case("CBOR long-form integer", Method::POST, "/packages", 400).cbor(splice(
                &good_cbor,
                size_key,
                b"\x64size\x18\x0f",
            )),
            case("CBOR unsorted keys", Method::POST, "/packages", 400).cbor(reversed.clone()),
            case("CBOR float", Method::POST, "/packages", 400).cbor(splice(
                &good_cbor,
                size_key,
                b"\x64size\xf9\x4b\x80",
            )),
            case("CBOR indefinite length", Method::POST, "/packages", 400).cbor({
                let mut bytes = good_cbor.clone();
                bytes[0] = 0xbf;
                bytes.push(0xff);
                bytes
            }),
            case("CBOR truncated", Method::POST, "/packages", 400)
                .cbor(good_cbor[..good_cbor.len() - 3].to_vec()),
            case("CBOR trailing bytes", Method::POST, "/packages", 400).cbor({
                let mut bytes = good_cbor.clone();
                bytes.push(0x00);
                bytes
            }),
            case("wrong content type", Method::POST, "/packages", 415)
                .header("content-type", "text/plain")
                .body(good_json.clone()),
            case("manifest path traversal", Method::POST, "/packages", 400)
                .json(with_path("../etc/passwd")),
            case("manifest absolute path", Method::POST, "/packages", 400)
                .json(with_path("/etc/passwd")),
            case("manifest empty segment", Method::POST, "/packages", 400)
                .json(with_path("docs//readme.txt")),
            case("manifest NUL in path", Method::POST, "/packages", 400)
                .json(with_path("docs/read\0me.txt")),
            case("manifest backslash", Method::POST, "/packages", 400)
                .json(with_path("docs\\readme.txt")),
            case("unknown retention class", Method::POST, "/packages", 400).json(manifest_json(
                &manifest("fixture", "2.0", "forever", &[("a", CONTENT)]),
            )),
            case("bad package name", Method::POST, "/packages", 400).json(manifest_json(
                &manifest("../fixture", "2.0", "build-cache", &[("a", CONTENT)]),
            )),
            case("missing blobs", Method::POST, "/packages", 422).json(manifest_json(&manifest(
                "fixture",
                "3.0",
                "build-cache",
                &[("gone.bin", b"never uploaded")],
            ))),
            case("blob size mismatch", Method::POST, "/packages", 422).json(wrong_size),
            case("blob sha256 mismatch", Method::POST, "/packages", 422).json(wrong_sha),
            case("name+version conflict", Method::POST, "/packages", 409).json(other_version),
            // --- digests in paths and queries.
            case(
                "digest bad hex",
                Method::GET,
                format!("/blobs/{bad_hex}"),
                400,
            ),
            case(
                "digest wrong length",
                Method::GET,
                format!("/blobs/{short}"),
                400,
            ),
            case(
                "digest uppercase hex",
                Method::GET,
                format!("/blobs/{upper}"),
                400,
            ),
            case(
                "digest unknown algorithm",
                Method::GET,
                format!("/blobs/{md5}"),
                400,
            ),
            case(
                "digest without algorithm",
                Method::GET,
                format!("/blobs/{}", info.blake3.to_hex()),
                400,
            ),
            case(
                "PUT blob bad digest",
                Method::PUT,
                format!("/blobs/{bad_hex}"),
                400,
            )
            .body(CONTENT),
            case(
                "finish with a bad digest",
                Method::PUT,
                format!("{session}?digest={short}"),
                400,
            ),
            case(
                "finish with an unknown algorithm",
                Method::PUT,
                format!("{session}?digest={md5}"),
                400,
            ),
            case("finish without a digest", Method::PUT, session.clone(), 400),
            case(
                "finish with an unknown parameter",
                Method::PUT,
                format!("{session}?digest={}&size=5", info.blake3),
                400,
            ),
            case(
                "events package_id not a digest",
                Method::GET,
                "/events?package_id=guide-board",
                400,
            ),
            case(
                "events package_id sha256",
                Method::GET,
                format!("/events?package_id={}", info.sha256),
                400,
            ),
            case(
                "package ref neither id nor NAME@VERSION",
                Method::GET,
                "/packages/guide-board",
                400,
            ),
            case(
                "unknown package id",
                Method::GET,
                format!("/packages/{}", missing.blake3),
                404,
            ),
            case(
                "unknown blob",
                Method::GET,
                format!("/blobs/{}", missing.sha256),
                404,
            ),
            // --- file paths.
            case(
                "file path traversal",
                Method::GET,
                format!("{pkg}/files/docs/../../etc/passwd"),
                400,
            ),
            case(
                "file path encoded traversal",
                Method::GET,
                format!("{pkg}/files/%2e%2e/secret"),
                400,
            ),
            case(
                "file path dot segment",
                Method::GET,
                format!("{pkg}/files/./docs/readme.txt"),
                400,
            ),
            case(
                "file path empty segment",
                Method::GET,
                format!("{pkg}/files/docs//readme.txt"),
                400,
            ),
            case(
                "file path encoded NUL",
                Method::GET,
                format!("{pkg}/files/docs/%00"),
                400,
            ),
            case(
                "unknown file",
                Method::GET,
                format!("{pkg}/files/docs/other.txt"),
                404,
            ),
            // --- upload sessions.
            case(
                "PATCH without Upload-Offset",
                Method::PATCH,
                session.clone(),
                400,
            )
            .by(WRITER)
            .body(b"678".to_vec()),
            case(
                "PATCH non-numeric Upload-Offset",
                Method::PATCH,
                session.clone(),
                400,
            )
            .by(WRITER)
            .header("upload-offset", "five")
            .body(b"678".to_vec()),
            case(
                "PATCH negative Upload-Offset",
                Method::PATCH,
                session.clone(),
                400,
            )
            .by(WRITER)
            .header("upload-offset", "-5")
            .body(b"678".to_vec()),
            case(
                "PATCH wrong Upload-Offset",
                Method::PATCH,
                session.clone(),
                409,
            )
            .by(WRITER)
            .header("upload-offset", "3")
            .body(b"678".to_vec()),
            case(
                "PUT wrong Upload-Offset",
                Method::PUT,
                format!("{session}?digest={}", info.blake3),
                409,
            )
            .by(WRITER)
            .header("upload-offset", "6")
            .body(b"678".to_vec()),
            case(
                "PATCH unknown session",
                Method::PATCH,
                unknown_session.clone(),
                404,
            )
            .by(WRITER)
            .header("upload-offset", "0")
            .body(b"1".to_vec()),
            case(
                "PUT unknown session",
                Method::PUT,
                format!("{unknown_session}?digest={}", info.blake3),
                404,
            )
            .by(WRITER),
            case(
                "DELETE unknown session",
                Method::DELETE,
                unknown_session.clone(),
                404,
            )
            .by(WRITER),
            case(
                "malformed session id",
                Method::DELETE,
                "/uploads/..%2F..%2Fetc",
                404,
            )
            .by(WRITER),
            // --- oversize bodies.
            case(
                "oversize monolithic blob",
                Method::PUT,
                format!("/blobs/{}", BlobInfo::of(&too_big_blob).blake3),
                413,
            )
            .by(WRITER)
            .body(too_big_blob.clone()),
            // --- ranges.
            case("range past the end", Method::GET, file.clone(), 416)
                .header("range", "bytes=100-200"),
            case("range with a sign", Method::GET, blob.clone(), 416).header("range", "bytes=+1-2"),
            case("multi-range with garbage", Method::GET, file.clone(), 416)
                .header("range", "bytes=0-1,x"),
            case("range backwards", Method::GET, blob.clone(), 416).header("range", "bytes=9-2"),
            case("range garbage", Method::GET, blob.clone(), 416).header("range", "bytes=a-b"),
            case("range empty suffix", Method::GET, blob.clone(), 416).header("range", "bytes=-0"),
            // --- tokens.
            case("unknown token", Method::GET, "/packages", 401).by(UNKNOWN),
            case("basic auth", Method::GET, "/packages", 401)
                .by(Caller {
                    token: None,
                    principal: "",
                })
                .header("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
            case("empty bearer", Method::GET, "/packages", 401)
                .by(Caller {
                    token: None,
                    principal: "",
                })
                .header("authorization", "Bearer "),
            case(
                "lowercase scheme without token",
                Method::GET,
                "/packages",
                401,
            )
            .by(Caller {
                token: None,
                principal: "",
            })
            .header("authorization", "bearer"),
            case("reader cannot hold", Method::POST, holds.clone(), 403)
                .by(READER)
                .json(r#"{"reason":"x"}"#),
            // --- retention rules.
            case("earlier expiry", Method::POST, extend.clone(), 400)
                .by(RETENTION_ADMIN)
                .json(r#"{"new_expires_at":"2026-12-01T00:00:00Z","reason":"shorter"}"#),
            case("expiry in the past", Method::POST, extend.clone(), 400)
                .by(RETENTION_ADMIN)
                .json(r#"{"new_expires_at":"2001-01-01T00:00:00Z","reason":"past"}"#),
            case("blank reason", Method::POST, extend.clone(), 400)
                .by(RETENTION_ADMIN)
                .json(r#"{"new_expires_at":"2031-01-01T00:00:00Z","reason":"   "}"#),
            case("missing reason", Method::POST, extend.clone(), 400)
                .by(RETENTION_ADMIN)
                .json(r#"{"new_expires_at":"2031-01-01T00:00:00Z"}"#),
            case("expiry not RFC 3339", Method::POST, extend.clone(), 400)
                .by(RETENTION_ADMIN)
                .json(r#"{"new_expires_at":"next year","reason":"r"}"#),
            case("expiry as a number", Method::POST, extend.clone(), 400)
                .by(RETENTION_ADMIN)
                .json(r#"{"new_expires_at":1893456000,"reason":"r"}"#),
            case("actor in the body", Method::POST, holds.clone(), 400)
                .by(RETENTION_ADMIN)
                .json(r#"{"reason":"r","actor":"mallory"}"#),
            case("hold with blank reason", Method::POST, holds.clone(), 400)
                .by(RETENTION_ADMIN)
                .json(r#"{"reason":""}"#),
            case("hold body not JSON", Method::POST, holds.clone(), 400)
                .by(RETENTION_ADMIN)
                .json("reason=r"),
            case(
                "unknown hold",
                Method::POST,
                format!("{pkg}/retention/holds/hold-999999/release"),
                404,
            )
            .by(RETENTION_ADMIN)
            .json(r#"{"reason":"r"}"#),
            case(
                "double release",
                Method::POST,
                format!("{pkg}/retention/holds/{}/release", fixture.released_hold),
                409,
            )
            .by(RETENTION_ADMIN)
            .json(r#"{"reason":"again"}"#),
            case(
                "retention of an unknown package",
                Method::POST,
                format!("/packages/{}/retention/holds", missing.blake3),
                404,
            )
            .by(RETENTION_ADMIN)
            .json(r#"{"reason":"r"}"#),
            // --- query parameters.
            case(
                "packages unknown parameter",
                Method::GET,
                "/packages?colour=red",
                400,
            ),
            case("packages limit 0", Method::GET, "/packages?limit=0", 400),
            case(
                "packages limit too big",
                Method::GET,
                "/packages?limit=1001",
                400,
            ),
            case(
                "packages limit not a number",
                Method::GET,
                "/packages?limit=ten",
                400,
            ),
            case(
                "packages bad cursor",
                Method::GET,
                "/packages?cursor=-1",
                400,
            ),
            case(
                "packages bad eligible",
                Method::GET,
                "/packages?eligible=maybe",
                400,
            ),
            case(
                "events unknown parameter",
                Method::GET,
                "/events?since=3",
                400,
            ),
            case("events limit 0", Method::GET, "/events?limit=0", 400),
            // Filters that no event or package can match are refused, not an empty page.
            case(
                "events type not a type",
                Method::GET,
                "/events?type=null",
                400,
            ),
            case(
                "packages empty version",
                Method::GET,
                "/packages?version=",
                400,
            ),
            case(
                "packages bad class",
                Method::GET,
                "/packages?class=Big",
                400,
            ),
            // Request durations: `0` or 1-5 digits with a unit, nothing around it.
            case(
                "gc grace without unit",
                Method::POST,
                "/admin/gc?grace=5",
                400,
            ),
            case(
                "gc grace with a newline",
                Method::POST,
                "/admin/gc?grace=24h%0A",
                400,
            ),
            case(
                "gc grace of 6 digits",
                Method::POST,
                "/admin/gc?grace=172800s",
                400,
            ),
            // A scrub over HTTP slower than 1 MiB/s would hold its request open for hours.
            case(
                "verify at 1 byte per second",
                Method::POST,
                "/admin/verify?max_bytes_per_sec=1",
                400,
            ),
            case(
                "events negative after",
                Method::GET,
                "/events?after=-1",
                400,
            ),
            case(
                "sweep bad as_of",
                Method::POST,
                "/retention/sweep?as_of=yesterday",
                400,
            )
            .by(RETENTION_ADMIN),
            // A sweep as of the far future would mark 11-year packages eligible: refused.
            case(
                "sweep as_of later than the store's clock",
                Method::POST,
                "/retention/sweep?as_of=9999-12-31T23:59:59Z",
                400,
            )
            .by(RETENTION_ADMIN),
            case(
                "sweep unknown parameter",
                Method::POST,
                "/retention/sweep?dry_run=true",
                400,
            )
            .by(RETENTION_ADMIN),
            case(
                "explain bad as_of",
                Method::GET,
                format!("{pkg}/retention/explain?as_of=2026-13-01T00:00:00Z"),
                400,
            ),
            case(
                "stream unknown parameter",
                Method::GET,
                "/events/stream?from=1",
                400,
            ),
            case(
                "stream bad Last-Event-ID",
                Method::GET,
                "/events/stream",
                400,
            )
            .header("last-event-id", "seven"),
            case(
                "stream negative Last-Event-ID",
                Method::GET,
                "/events/stream",
                400,
            )
            .header("last-event-id", "-1"),
            // --- admin.
            case(
                "token with an unknown role",
                Method::POST,
                "/admin/tokens",
                400,
            )
            .json(r#"{"principal":"bot","roles":["owner"]}"#),
            case(
                "token with a bad principal",
                Method::POST,
                "/admin/tokens",
                400,
            )
            .json(r#"{"principal":"a b","roles":["reader"]}"#),
            case("token without roles", Method::POST, "/admin/tokens", 400)
                .json(r#"{"principal":"bot","roles":[]}"#),
            // --- routes.
            case("unknown route", Method::GET, "/nope", 404),
        ];
    assert!(cases.len() >= 30);
    let count = run(harness, cases).await;
    assert!(count >= 30);
    // The session is where it was.
    let head = harness
        .send(Method::HEAD, session, WRITER, &[], Body::empty())
        .await;
    assert_eq!(head.header("upload-offset"), Some("5"));
}

#[tokio::test]
async fn problem_details_carry_the_facts_a_client_needs() {
    let fixture = fixture().await;
    let harness = &fixture.harness;
    // Wrong offset: the current one, in the body and the header.
    let reply = harness
        .send(
            Method::PATCH,
            &fixture.session,
            WRITER,
            &[("upload-offset", "2")],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(reply.problem(409)["upload_offset"], 5);
    assert_eq!(reply.header("upload-offset"), Some("5"));
    // Missing blobs: which ones.
    let missing = BlobInfo::of(b"never uploaded");
    let reply = harness
        .send(
            Method::POST,
            "/packages",
            WRITER,
            &[("content-type", "application/json")],
            manifest_json(&manifest(
                "fixture",
                "3.0",
                "build-cache",
                &[("gone.bin", b"never uploaded"), ("here.txt", CONTENT)],
            )),
        )
        .await;
    let problem = reply.problem(422);
    let listed: Vec<BTreeMap<String, serde_json::Value>> =
        serde_json::from_value(problem["missing"].clone()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["path"], "gone.bin");
    assert_eq!(listed[0]["blake3"], missing.blake3.to_string());
    // Non-canonical CBOR: the reason names the offset.
    let good = fixture.manifest.canonical_bytes().unwrap();
    let reply = harness
        .send(
            Method::POST,
            "/packages",
            WRITER,
            &[("content-type", "application/cbor")],
            splice(&good, b"\x64size\x0f", b"\x64size\x18\x0f"),
        )
        .await;
    let detail = reply.problem(400)["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("byte 48") && detail.contains("shortest"),
        "offset and reason: {detail}"
    );
    // Unsatisfiable range: the size in Content-Range.
    let reply = harness
        .send(
            Method::GET,
            &format!("/blobs/{}", fixture.info.sha256),
            READER,
            &[("range", "bytes=15-")],
            Body::empty(),
        )
        .await;
    reply.problem(416);
    assert_eq!(reply.header("content-range"), Some("bytes */15"));
}

#[tokio::test]
async fn oversize_json_bodies_are_problem_json() {
    let fixture = fixture().await;
    let harness = &fixture.harness;
    let good_json = manifest_json(&fixture.manifest);
    let too_big_json = format!(r#"{{"reason":"{}"}}"#, "r".repeat(MAX_JSON as usize));
    let cases = vec![
        case(
            "oversize JSON body",
            Method::POST,
            format!("{}/retention/holds", fixture.package),
            413,
        )
        .by(RETENTION_ADMIN)
        .json(too_big_json.clone()),
        case("oversize manifest", Method::POST, "/packages", 413)
            .by(WRITER)
            .json(format!("{good_json}{}", " ".repeat(MAX_JSON as usize))),
        case("oversize token request", Method::POST, "/admin/tokens", 413).json(too_big_json),
    ];
    run(harness, cases).await;
}

#[tokio::test]
async fn framework_rejections_are_problem_json() {
    let fixture = fixture().await;
    let cases = vec![
        case(
            "method not allowed on /packages",
            Method::DELETE,
            "/packages",
            405,
        ),
        case("method not allowed on /events", Method::PUT, "/events", 405),
        case(
            "method not allowed on a blob",
            Method::POST,
            format!("/blobs/{}", fixture.info.blake3),
            405,
        )
        .by(WRITER),
        case("invalid UTF-8 in a digest", Method::GET, "/blobs/%FF", 400),
        case(
            "invalid UTF-8 in a file path",
            Method::GET,
            format!("{}/files/%C3%28", fixture.package),
            400,
        ),
    ];
    run(&fixture.harness, cases).await;
}

#[tokio::test]
async fn unknown_query_parameters_are_rejected_everywhere() {
    let fixture = fixture().await;
    let pkg = &fixture.package;
    let blob = format!("/blobs/{}", fixture.info.blake3);
    let new_blob = BlobInfo::of(b"sent with a typo");
    let cases = vec![
        case("GET blob", Method::GET, format!("{blob}?colour=red"), 400),
        case(
            "PUT blob",
            Method::PUT,
            format!("/blobs/{}?colour=red", new_blob.blake3),
            400,
        )
        .by(WRITER)
        .body(b"sent with a typo".to_vec()),
        case("GET package", Method::GET, format!("{pkg}?colour=red"), 400),
        case(
            "GET manifest",
            Method::GET,
            format!("{pkg}/manifest?format=cbor"),
            400,
        ),
        case(
            "GET file",
            Method::GET,
            format!("{pkg}/files/docs/readme.txt?colour=red"),
            400,
        ),
        case(
            "GET events head",
            Method::GET,
            "/events/head?colour=red",
            400,
        ),
        case("POST uploads", Method::POST, "/uploads?size=5", 400).by(WRITER),
        case(
            "PATCH upload",
            Method::PATCH,
            format!("{}?colour=red", fixture.session),
            400,
        )
        .by(WRITER)
        .header("upload-offset", "5")
        .body(b"6".to_vec()),
    ];
    run(&fixture.harness, cases).await;
}

/// Regression: 405 had an empty body. It is a problem and still names the allowed methods.
#[tokio::test]
async fn method_not_allowed_is_a_problem_with_allow() {
    let fixture = fixture().await;
    let reply = fixture
        .harness
        .send(Method::DELETE, "/packages", ADMIN, &[], Body::empty())
        .await;
    let problem = reply.problem(405);
    assert!(
        problem["detail"].as_str().unwrap().contains("DELETE"),
        "{problem}"
    );
    let allow = reply.header("allow").expect("an Allow header");
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow}"
    );
}
