//! Push and pull over a real loopback socket with a real HTTP client: upload sessions and
//! monolithic PUT, packages as JSON and canonical CBOR, (ranged) file downloads, manifests in
//! both encodings, lookup by NAME@VERSION, and listing with filters and cursor paging.

use std::collections::BTreeSet;

use artifact_core::digest::{Blake3, BlobInfo};
use artifact_core::manifest::Manifest;
use axum::http::Method;

use crate::support::{
    Harness, READER, WRITER, guide_board_run, json_of, manifest, problem_of, pseudo_random_bytes,
};

/// Size of the file sent through an upload session: three PATCH chunks plus a final chunk
/// riding on the PUT, none of them aligned to the server's 1 MiB write chunk.
const TRACE_SIZE: usize = (3 << 20) + 12_345;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_round_trip_over_a_real_socket() {
    let harness = Harness::new().await;
    let server = harness.start().await;

    // --- an upload session: POST, three PATCHes at the right offsets, PUT with a final chunk.
    let trace = pseudo_random_bytes(TRACE_SIZE, 11);
    let trace_info = BlobInfo::of(&trace);
    let created = server.call(Method::POST, "/uploads", WRITER).await;
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(created.headers()["upload-offset"], "0");
    let created = json_of(created, 201).await;
    let upload_id = created["upload_id"].as_str().unwrap();
    assert_eq!(location, format!("/uploads/{upload_id}"));

    let cuts = [0, 1_000_000, 2_000_001, 3_000_002, TRACE_SIZE];
    for window in cuts[..4].windows(2) {
        let (from, to) = (window[0], window[1]);
        let response = server
            .request(Method::PATCH, &location, WRITER)
            .header("upload-offset", from.to_string())
            .body(trace[from..to].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        assert_eq!(response.headers()["upload-offset"], to.to_string().as_str());
    }
    let head = server.call(Method::HEAD, &location, WRITER).await;
    assert_eq!(
        head.headers()["upload-offset"],
        cuts[3].to_string().as_str()
    );
    let finished = server
        .request(
            Method::PUT,
            &format!(
                "{location}?digest={}&digest={}",
                trace_info.blake3, trace_info.sha256
            ),
            WRITER,
        )
        .header("upload-offset", cuts[3].to_string())
        .body(trace[cuts[3]..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        finished.headers()["location"],
        format!("/blobs/{}", trace_info.blake3).as_str()
    );
    let finished = json_of(finished, 201).await;
    assert_eq!(finished["blake3"], trace_info.blake3.to_string());
    assert_eq!(finished["sha256"], trace_info.sha256.to_string());
    assert_eq!(finished["size"], TRACE_SIZE as u64);
    // The session is gone once finished.
    let gone = server.call(Method::HEAD, &location, WRITER).await;
    assert_eq!(gone.status(), 404);

    // --- monolithic PUT, by the SHA-256 form; a repeat is 200 (deduplicated).
    let index = b"<!doctype html><title>guide-board</title><p>all green</p>\n".to_vec();
    let summary = b"guide-board: 412 passed, 0 failed\n".to_vec();
    for content in [&index, &summary] {
        let info = BlobInfo::of(content);
        let response = server
            .request(Method::PUT, &format!("/blobs/{}", info.sha256), WRITER)
            .body(content.clone())
            .send()
            .await
            .unwrap();
        let body = json_of(response, 201).await;
        assert_eq!(body["blake3"], info.blake3.to_string());
        assert_eq!(body["size"], content.len() as u64);
    }
    let again = server
        .request(
            Method::PUT,
            &format!("/blobs/{}", BlobInfo::of(&index).blake3),
            WRITER,
        )
        .body(index.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "an existing blob is not created again");

    // Blobs download by either digest; HEAD reports both digests and the size.
    for digest in [trace_info.blake3.to_string(), trace_info.sha256.to_string()] {
        let response = server.get(&format!("/blobs/{digest}"), READER).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().await.unwrap(), trace.as_slice());
        let head = server
            .call(Method::HEAD, &format!("/blobs/{digest}"), READER)
            .await;
        assert_eq!(head.status(), 200);
        assert_eq!(
            head.headers()["content-length"],
            TRACE_SIZE.to_string().as_str()
        );
        assert_eq!(
            head.headers()["artifactstore-blake3"],
            trace_info.blake3.to_string().as_str()
        );
        assert_eq!(
            head.headers()["artifactstore-sha256"],
            trace_info.sha256.to_string().as_str()
        );
    }

    // --- POST /packages as JSON: 201 with package_id and expires_at; a repeat is 200.
    let mut run = guide_board_run(
        &trace,
        &[
            ("report/index.html", &index, "text/html"),
            ("summary.txt", &summary, "text/plain"),
        ],
    );
    run.labels
        .insert("git.commit".to_owned(), "4e1f0c2".to_owned());
    let package_id = run.package_id().unwrap();
    let created = server.post_package(&run).await;
    assert_eq!(
        created.headers()["location"],
        format!("/packages/{package_id}").as_str()
    );
    let created = json_of(created, 201).await;
    assert_eq!(created["package_id"], package_id.to_string());
    // 2026-11-23T10:00Z + 2 years (the shipped release-evidence default).
    assert_eq!(created["expires_at"], "2028-11-23T10:00:00.000Z");
    assert_eq!(created["current_expires_at"], created["expires_at"]);
    assert_eq!(created["created_by"], WRITER.principal);
    let repeat = server.post_package(&run).await;
    let repeat = json_of(repeat, 200).await;
    assert_eq!(repeat["package_id"], package_id.to_string());

    // --- POST /packages as canonical CBOR.
    let cbor_manifest = manifest(
        "guide-board",
        "2026.11.24-1",
        "build-cache",
        &[("summary.txt", &summary)],
    );
    let cbor_id = cbor_manifest.package_id().unwrap();
    let created = server
        .request(Method::POST, "/packages", WRITER)
        .header("content-type", "application/cbor")
        .body(cbor_manifest.canonical_bytes().unwrap())
        .send()
        .await
        .unwrap();
    let created = json_of(created, 201).await;
    assert_eq!(created["package_id"], cbor_id.to_string());
    assert_eq!(created["retention_class"], "build-cache");

    // --- files: full, ranged (206 + Content-Range), suffix, open-ended, unsatisfiable (416).
    let file_url = format!("/packages/{package_id}/files/traces/run.bin");
    let full = server.get(&file_url, READER).await;
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    assert_eq!(full.bytes().await.unwrap(), trace.as_slice());
    let html = server
        .get(
            &format!("/packages/{package_id}/files/report/index.html"),
            READER,
        )
        .await;
    assert_eq!(html.headers()["content-type"], "text/html");
    assert_eq!(html.bytes().await.unwrap(), index.as_slice());
    let ranges: [(&str, usize, usize); 4] = [
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=0-0", 0, 0),
        ("bytes=-100", TRACE_SIZE - 100, TRACE_SIZE - 1),
        ("bytes=3000000-", 3_000_000, TRACE_SIZE - 1),
    ];
    for (range, first, last) in ranges {
        let response = server
            .request(Method::GET, &file_url, READER)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {first}-{last}/{TRACE_SIZE}").as_str(),
            "{range}"
        );
        assert_eq!(
            response.bytes().await.unwrap(),
            &trace[first..=last],
            "{range}"
        );
    }
    // A last byte past the end is clamped (RFC 9110 §14.1.2).
    let clamped = server
        .request(Method::GET, &file_url, READER)
        .header(
            "range",
            format!("bytes={}-{}", TRACE_SIZE - 10, TRACE_SIZE + 1000),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(clamped.status(), 206);
    assert_eq!(clamped.bytes().await.unwrap(), &trace[TRACE_SIZE - 10..]);
    let unsatisfiable = server
        .request(Method::GET, &file_url, READER)
        .header("range", format!("bytes={TRACE_SIZE}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unsatisfiable.headers()["content-range"],
        format!("bytes */{TRACE_SIZE}").as_str()
    );
    problem_of(unsatisfiable, 416).await;
    // Blobs take ranges too.
    let blob_range = server
        .request(
            Method::GET,
            &format!("/blobs/{}", trace_info.sha256),
            READER,
        )
        .header("range", "bytes=5-9")
        .send()
        .await
        .unwrap();
    assert_eq!(blob_range.status(), 206);
    assert_eq!(blob_range.bytes().await.unwrap(), &trace[5..10]);

    // --- manifest as JCS (equal to the manifest's projection) and as canonical CBOR whose
    // BLAKE3 is the package id.
    let jcs = server
        .get(&format!("/packages/{package_id}/manifest"), READER)
        .await;
    assert!(
        jcs.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        jcs.text().await.unwrap(),
        artifact_core::jcs::to_jcs(&run.to_value())
    );
    let cbor = server
        .request(
            Method::GET,
            &format!("/packages/{package_id}/manifest"),
            READER,
        )
        .header("accept", "application/cbor")
        .send()
        .await
        .unwrap();
    assert_eq!(cbor.headers()["content-type"], "application/cbor");
    let cbor = cbor.bytes().await.unwrap();
    assert_eq!(Blake3::of(&cbor), package_id);
    assert_eq!(Manifest::from_canonical_bytes(&cbor).unwrap(), run);

    // --- lookup by NAME@VERSION: package, manifest, files.
    let by_name = server
        .get("/packages/guide-board@2026.11.23-1", READER)
        .await;
    let by_name = json_of(by_name, 200).await;
    assert_eq!(by_name["package_id"], package_id.to_string());
    assert_eq!(by_name["name"], "guide-board");
    assert_eq!(by_name["version"], "2026.11.23-1");
    assert_eq!(by_name["labels"]["git.commit"], "4e1f0c2");
    assert_eq!(by_name["file_count"], 3);
    let by_id = server.get(&format!("/packages/{package_id}"), READER).await;
    assert_eq!(json_of(by_id, 200).await, by_name);
    let cbor_by_name = server
        .request(
            Method::GET,
            "/packages/guide-board@2026.11.23-1/manifest",
            READER,
        )
        .header("accept", "application/cbor")
        .send()
        .await
        .unwrap();
    assert_eq!(cbor_by_name.bytes().await.unwrap(), cbor);
    let summary_by_name = server
        .get(
            "/packages/guide-board@2026.11.23-1/files/summary.txt",
            READER,
        )
        .await;
    assert_eq!(summary_by_name.bytes().await.unwrap(), summary.as_slice());
    let missing_file = server
        .get("/packages/guide-board@2026.11.23-1/files/nope.txt", READER)
        .await;
    problem_of(missing_file, 404).await;

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_pages_with_a_cursor() {
    let harness = Harness::new().await;
    let server = harness.start().await;
    // Seven packages: five `nightly` (build-cache), two `release` (release-evidence).
    let mut expected_order = Vec::new();
    for n in 0..7 {
        let content = format!("build output {n}").into_bytes();
        harness.put_blob(WRITER, &content).await;
        let (name, class) = if n % 3 == 2 {
            ("release", "release-evidence")
        } else {
            ("nightly", "build-cache")
        };
        let manifest = manifest(name, &format!("1.{n}"), class, &[("out.txt", &content)]);
        let response = server.post_package(&manifest).await;
        json_of(response, 201).await;
        expected_order.push((name, format!("1.{n}"), manifest.package_id().unwrap()));
    }

    // Page through everything, three at a time.
    let mut seen = Vec::new();
    let mut cursor: Option<u64> = None;
    let mut pages = 0;
    loop {
        let path = match cursor {
            Some(c) => format!("/packages?limit=3&cursor={c}"),
            None => "/packages?limit=3".to_owned(),
        };
        let page = json_of(server.get(&path, READER).await, 200).await;
        pages += 1;
        let items = page["packages"].as_array().unwrap();
        assert!(items.len() <= 3);
        for item in items {
            seen.push(item["package_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_u64() {
            Some(next) => {
                assert_eq!(items.len(), 3, "a full page before a cursor");
                cursor = Some(next);
            }
            None => {
                assert!(page["next_cursor"].is_null());
                break;
            }
        }
        assert!(pages < 10, "paging does not terminate");
    }
    assert_eq!(pages, 3);
    let expected_ids: Vec<String> = expected_order
        .iter()
        .map(|(_, _, id)| id.to_string())
        .collect();
    assert_eq!(seen, expected_ids, "every package once, in creation order");

    // Filters: name, class, name+version, eligible.
    let ids_of = |page: &serde_json::Value| -> BTreeSet<String> {
        page["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["package_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let expect = |f: &dyn Fn(&str, &str) -> bool| -> BTreeSet<String> {
        expected_order
            .iter()
            .filter(|(name, version, _)| f(name, version))
            .map(|(_, _, id)| id.to_string())
            .collect()
    };
    let get = |path: String| {
        let request = server.request(Method::GET, &path, READER);
        async move { json_of(request.send().await.unwrap(), 200).await }
    };
    let releases = get("/packages?name=release".to_owned()).await;
    assert_eq!(ids_of(&releases), expect(&|name, _| name == "release"));
    for item in releases["packages"].as_array().unwrap() {
        assert_eq!(item["name"], "release");
        assert_eq!(item["retention_class"], "release-evidence");
    }
    let cache = get("/packages?class=build-cache".to_owned()).await;
    assert_eq!(ids_of(&cache), expect(&|name, _| name == "nightly"));
    let one = get("/packages?name=nightly&version=1.3".to_owned()).await;
    assert_eq!(
        ids_of(&one),
        expect(&|name, version| name == "nightly" && version == "1.3")
    );
    let eligible = get("/packages?eligible=true".to_owned()).await;
    assert!(ids_of(&eligible).is_empty(), "nothing swept yet");
    // Filtered paging: two nightly per page.
    let first = get("/packages?name=nightly&limit=2".to_owned()).await;
    assert_eq!(first["packages"].as_array().unwrap().len(), 2);
    let next = first["next_cursor"]
        .as_u64()
        .expect("more nightly packages");
    let second = get(format!("/packages?name=nightly&limit=2&cursor={next}")).await;
    let mut union = ids_of(&first);
    union.extend(ids_of(&second));
    assert_eq!(union.len(), 4);
    server.stop().await;
}

#[tokio::test]
async fn the_version_filter_finds_matches_beyond_the_first_page() {
    let harness = Harness::new().await;
    let mut wanted = None;
    for n in 0..5 {
        let content = format!("nightly {n}").into_bytes();
        let id = harness
            .setup_package(
                "nightly",
                &format!("1.{n}"),
                "build-cache",
                &[("f", &content)],
            )
            .await;
        if n == 4 {
            wanted = Some(id.to_string());
        }
    }
    // Page through `version=1.4` two at a time until the cursor runs out.
    let mut found = Vec::new();
    let mut cursor: Option<u64> = None;
    for _ in 0..10 {
        let uri = match cursor {
            Some(c) => format!("/packages?version=1.4&limit=2&cursor={c}"),
            None => "/packages?version=1.4&limit=2".to_owned(),
        };
        let page = harness
            .send(Method::GET, &uri, READER, &[], axum::body::Body::empty())
            .await
            .expect(200);
        for item in page["packages"].as_array().unwrap() {
            found.push(item["package_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_u64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(found, [wanted.unwrap()]);
}

#[tokio::test]
async fn accept_with_q_zero_for_cbor_is_answered_with_json() {
    let harness = Harness::new().await;
    harness
        .setup_package("q", "1.0", "build-cache", &[("f", b"q")])
        .await;
    let reply = harness
        .send(
            Method::GET,
            "/packages/q@1.0/manifest",
            READER,
            &[("accept", "application/json, application/cbor;q=0")],
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(reply.header("content-type"), Some("application/json"));
}
