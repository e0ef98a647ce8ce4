//! Upload sessions: resume after an interrupted request and across a server restart, digest
//! mismatches store nothing, abandoned sessions expire.

use std::time::Duration;

use artifact_core::digest::BlobInfo;
use axum::http::Method;
use bytes::Bytes;

use crate::support::{
    HANG, Harness, READER, Running, WRITER, json_of, problem_of, pseudo_random_bytes,
};

/// What the interrupted request sends before failing: several chunks, more than the server's
/// 1 MiB write unit so at least one write lands.
const SENT_BEFORE_FAILURE: usize = (2 << 20) + 100_000;
const TOTAL: usize = (4 << 20) + 777;
const PIECE: usize = 64 << 10;

/// Waits until `path` holds at least `len` bytes.
async fn wait_for_file_len(path: &std::path::Path, len: u64) {
    tokio::time::timeout(HANG, async {
        loop {
            if tokio::fs::metadata(path)
                .await
                .is_ok_and(|meta| meta.len() >= len)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the server writes what it received");
}

async fn create_session(server: &Running) -> (String, String) {
    let response = server.call(Method::POST, "/uploads", WRITER).await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body = json_of(response, 201).await;
    (body["upload_id"].as_str().unwrap().to_owned(), location)
}

async fn head_offset(server: &Running, location: &str) -> u64 {
    let response = server.call(Method::HEAD, location, WRITER).await;
    assert_eq!(response.status(), 204, "HEAD {location}");
    response.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn patch(server: &Running, location: &str, offset: u64, body: Vec<u8>) -> reqwest::Response {
    server
        .request(Method::PATCH, location, WRITER)
        .header("upload-offset", offset.to_string())
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn finish(server: &Running, location: &str, info: &BlobInfo) -> reqwest::Response {
    server
        .call(
            Method::PUT,
            &format!("{location}?digest={}&digest={}", info.blake3, info.sha256),
            WRITER,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_patch_resumes_from_the_offset_the_server_reports() {
    let harness = Harness::new().await;
    let server = harness.start().await;
    let content = pseudo_random_bytes(TOTAL, 21);
    let info = BlobInfo::of(&content);
    let (upload_id, location) = create_session(&server).await;
    let part = harness.upload_dir().join(format!("{upload_id}.part"));

    // A body that yields some chunks, waits until the server has written part of them, then
    // fails: the client aborts the connection mid-stream.
    let sent = content[..SENT_BEFORE_FAILURE].to_vec();
    let part_path = part.clone();
    let body = futures_util::stream::unfold(0usize, move |cursor| {
        let sent = sent.clone();
        let part_path = part_path.clone();
        async move {
            if cursor < sent.len() {
                let end = (cursor + PIECE).min(sent.len());
                let chunk = Bytes::copy_from_slice(&sent[cursor..end]);
                return Some((Ok::<Bytes, std::io::Error>(chunk), end));
            }
            if cursor == sent.len() {
                wait_for_file_len(&part_path, 1 << 20).await;
                // Let the handler go back to waiting for the body before the failure.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Some((
                    Err(std::io::Error::other("client gave up mid-stream")),
                    cursor + 1,
                ));
            }
            None
        }
    });
    let interrupted = server
        .request(Method::PATCH, &location, WRITER)
        .header("upload-offset", "0")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    assert!(interrupted.is_err(), "the aborted request fails");

    // HEAD: the offset is what the server received, > 0, and those bytes are a prefix.
    let offset = head_offset(&server, &location).await;
    assert!(offset > 0, "some bytes were received");
    assert!(offset as usize <= SENT_BEFORE_FAILURE, "offset {offset}");
    let on_disk = std::fs::read(&part).unwrap();
    assert_eq!(
        on_disk.len() as u64,
        offset,
        "offset = bytes in the session"
    );
    assert!(
        on_disk == content[..offset as usize],
        "a prefix of what was sent"
    );

    // A wrong offset is a 409 naming the current one; nothing is appended.
    for wrong in [0, offset - 1, offset + 1] {
        let response = patch(&server, &location, wrong, content[..10].to_vec()).await;
        assert_eq!(
            response.headers()["upload-offset"],
            offset.to_string().as_str()
        );
        let problem = problem_of(response, 409).await;
        assert_eq!(problem["upload_offset"], offset);
    }
    assert_eq!(head_offset(&server, &location).await, offset);

    // Resume from the reported offset; finish → 201 with the right digests.
    let response = patch(
        &server,
        &location,
        offset,
        content[offset as usize..].to_vec(),
    )
    .await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        response.headers()["upload-offset"],
        TOTAL.to_string().as_str()
    );
    let finished = json_of(finish(&server, &location, &info).await, 201).await;
    assert_eq!(finished["blake3"], info.blake3.to_string());
    assert_eq!(finished["sha256"], info.sha256.to_string());
    assert_eq!(finished["size"], TOTAL as u64);
    let stored = server.get(&format!("/blobs/{}", info.sha256), READER).await;
    assert_eq!(stored.bytes().await.unwrap(), content.as_slice());
    assert!(!part.exists(), "the session file is gone once finished");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_across_a_graceful_restart() {
    let mut harness = Harness::new().await;
    let content = pseudo_random_bytes(TOTAL, 22);
    let info = BlobInfo::of(&content);
    let first_part = 1_500_001usize;

    let server = harness.start().await;
    let (_, location) = create_session(&server).await;
    let response = patch(&server, &location, 0, content[..first_part].to_vec()).await;
    assert_eq!(response.status(), 202);
    // A second, idle session that is aborted after the restart.
    let (abandoned_id, abandoned) = create_session(&server).await;
    assert_eq!(
        patch(&server, &abandoned, 0, b"xyz".to_vec())
            .await
            .status(),
        202
    );
    server.stop().await;

    // A new process over the same data directory and upload directory.
    harness.reopen().await;
    let server = harness.start().await;
    assert_eq!(head_offset(&server, &location).await, first_part as u64);
    // The rebuilt session still checks offsets.
    let wrong = patch(&server, &location, 0, content[..10].to_vec()).await;
    assert_eq!(problem_of(wrong, 409).await["upload_offset"], first_part);
    let response = patch(
        &server,
        &location,
        first_part as u64,
        content[first_part..3_000_000].to_vec(),
    )
    .await;
    assert_eq!(response.status(), 202);
    // The final chunk rides on the PUT.
    let finished = server
        .request(
            Method::PUT,
            &format!("{location}?digest={}", info.sha256),
            WRITER,
        )
        .header("upload-offset", "3000000")
        .body(content[3_000_000..].to_vec())
        .send()
        .await
        .unwrap();
    let finished = json_of(finished, 201).await;
    assert_eq!(finished["blake3"], info.blake3.to_string());
    assert_eq!(finished["size"], TOTAL as u64);
    let stored = harness
        .store
        .read_blob_bytes(&info)
        .await
        .expect("stored after the restart");
    assert!(stored == content);

    // DELETE aborts a session from before the restart: the file goes, HEAD is 404.
    let deleted = server.call(Method::DELETE, &abandoned, WRITER).await;
    assert_eq!(deleted.status(), 204);
    assert!(
        !harness
            .upload_dir()
            .join(format!("{abandoned_id}.part"))
            .exists()
    );
    let gone = server.call(Method::HEAD, &abandoned, WRITER).await;
    assert_eq!(gone.status(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_mismatch_is_400_and_stores_nothing() {
    let harness = Harness::new().await;
    let server = harness.start().await;
    let content = pseudo_random_bytes(300_000, 23);
    let real = BlobInfo::of(&content);
    let other = BlobInfo::of(b"something else entirely");
    let head_before = harness.head_seq().await;

    // Session: one claimed digest (either form) is wrong → 400; the session is kept as it was
    // (bad input changes nothing), so it can be finished with the right digest or deleted.
    for claims in [
        format!("digest={}", other.blake3),
        format!("digest={}", other.sha256),
        // Right BLAKE3, wrong SHA-256: every claimed digest must match.
        format!("digest={}&digest={}", real.blake3, other.sha256),
    ] {
        let (upload_id, location) = create_session(&server).await;
        assert_eq!(
            patch(&server, &location, 0, content.clone()).await.status(),
            202
        );
        let response = server
            .call(Method::PUT, &format!("{location}?{claims}"), WRITER)
            .await;
        let problem = problem_of(response, 400).await;
        assert_eq!(problem["title"], "digest mismatch", "{claims}");
        // The session is kept, at its offset.
        assert_eq!(
            head_offset(&server, &location).await,
            content.len() as u64,
            "{claims}"
        );
        let deleted = server.call(Method::DELETE, &location, WRITER).await;
        assert_eq!(deleted.status(), 204);
        assert!(
            !harness
                .upload_dir()
                .join(format!("{upload_id}.part"))
                .exists(),
            "a deleted session leaves nothing"
        );
    }

    // Monolithic PUT under a wrong digest (either form) → 400.
    for wrong in [other.blake3.to_string(), other.sha256.to_string()] {
        let response = server
            .request(Method::PUT, &format!("/blobs/{wrong}"), WRITER)
            .body(content.clone())
            .send()
            .await
            .unwrap();
        let problem = problem_of(response, 400).await;
        assert_eq!(problem["title"], "digest mismatch");
    }

    // Nothing stored: not under the real digest (either form), not on disk, no event.
    for digest in [real.blake3.to_string(), real.sha256.to_string()] {
        let response = server.get(&format!("/blobs/{digest}"), READER).await;
        problem_of(response, 404).await;
    }
    assert!(
        !harness.blob_path(&real).exists(),
        "no bytes in the backend"
    );
    assert_eq!(harness.head_seq().await, head_before, "no event appended");

    // A session whose finish named the wrong digest is finished again with the right one; the
    // refused finish's body is not kept (the session is back at its offset before it).
    let (_, location) = create_session(&server).await;
    let (head, tail) = content.split_at(100_000);
    assert_eq!(
        patch(&server, &location, 0, head.to_vec()).await.status(),
        202
    );
    let wrong = server
        .request(
            Method::PUT,
            &format!("{location}?digest={}", other.sha256),
            WRITER,
        )
        .body(tail.to_vec())
        .send()
        .await
        .unwrap();
    problem_of(wrong, 400).await;
    assert_eq!(head_offset(&server, &location).await, head.len() as u64);
    assert_eq!(
        patch(&server, &location, head.len() as u64, tail.to_vec())
            .await
            .status(),
        202
    );
    problem_of(finish(&server, &location, &other).await, 400).await;
    let right = finish(&server, &location, &real).await;
    assert_eq!(json_of(right, 201).await["blake3"], real.blake3.to_string());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_sessions_expire_and_are_deleted_by_the_reaper() {
    let harness = Harness::with(|options| options.upload_ttl = Duration::from_secs(1)).await;
    let server = harness.start().await;
    let (upload_id, location) = create_session(&server).await;
    assert_eq!(
        patch(&server, &location, 0, vec![7; 1000]).await.status(),
        202
    );
    let part = harness.upload_dir().join(format!("{upload_id}.part"));
    assert!(part.exists());
    // The reaper inside `serve` deletes the file once the session has been idle past the TTL.
    tokio::time::timeout(HANG, async {
        while part.exists() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the reaper deletes the expired session");
    let head = server.call(Method::HEAD, &location, WRITER).await;
    assert_eq!(head.status(), 404);
    let resumed = patch(&server, &location, 1000, vec![7; 10]).await;
    problem_of(resumed, 404).await;
    let finished = finish(&server, &location, &BlobInfo::of(&[7; 1000])).await;
    problem_of(finished, 404).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_patch_is_refused_and_leaves_the_session_unchanged() {
    let harness = Harness::with(|options| options.max_blob_bytes = 1 << 20).await;
    let server = harness.start().await;
    let (_, location) = create_session(&server).await;
    assert_eq!(
        patch(&server, &location, 0, vec![1; 1000]).await.status(),
        202
    );
    // 1 MiB + 64 KiB, streamed in 64 KiB pieces (a real client's chunked body).
    let pieces = (0..17).map(|_| Ok::<Bytes, std::io::Error>(Bytes::from(vec![2u8; PIECE])));
    let response = server
        .request(Method::PATCH, &location, WRITER)
        .header("upload-offset", "1000")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await;
    if let Ok(response) = response {
        problem_of(response, 413).await;
    }
    assert_eq!(
        head_offset(&server, &location).await,
        1000,
        "the refused body appended nothing"
    );
    server.stop().await;
}

/// Regression: an oversize PATCH appended the bytes before the limit. A body whose length is
/// declared (here: a buffered body, so `Content-Length` is known) is refused before it is read,
/// and a final chunk riding on PUT is refused alike; the session keeps offset and bytes and
/// still finishes to the right blob.
#[tokio::test]
async fn oversize_bodies_with_a_declared_length_change_no_session() {
    let limit: usize = 64 << 10;
    let harness = Harness::with(|options| options.max_blob_bytes = limit as u64).await;
    let location = harness.open_upload(WRITER).await;
    harness
        .patch_upload(&location, WRITER, 0, b"first".to_vec())
        .await
        .expect_status(202);
    let offset = async || {
        let reply = harness
            .send(
                Method::HEAD,
                &location,
                WRITER,
                &[],
                axum::body::Body::empty(),
            )
            .await;
        reply.expect_status(204);
        reply.header("upload-offset").unwrap().to_owned()
    };
    let patch = harness
        .send(
            Method::PATCH,
            &location,
            WRITER,
            &[("upload-offset", "5")],
            vec![2u8; limit + 1],
        )
        .await;
    patch.problem(413);
    assert_eq!(offset().await, "5", "the refused PATCH appended nothing");
    let info = BlobInfo::of(b"first");
    let put = harness
        .send(
            Method::PUT,
            &format!("{location}?digest={}", info.blake3),
            WRITER,
            &[],
            vec![3u8; limit + 1],
        )
        .await;
    put.problem(413);
    assert_eq!(
        offset().await,
        "5",
        "the refused final chunk appended nothing"
    );
    let finished = harness
        .send(
            Method::PUT,
            &format!("{location}?digest={}", info.blake3),
            WRITER,
            &[],
            axum::body::Body::empty(),
        )
        .await
        .expect(201);
    assert_eq!(finished["size"], 5);
}
