//! Faults and hostile clients (issue 11): a full disk, silent and slow connections, stalled
//! bodies, a stalled upload taken over by a new request, concurrent readiness probes, and
//! Range headers per RFC 9110. Full-disk tests use a real small tmpfs (see
//! [`Tmpfs`]: they need root, as CI has, and fail rather than skip without it).

use std::time::Duration;

use artifact_core::digest::BlobInfo;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::*;

/// Reads until the server closes the connection (EOF or reset); returns what it sent.
/// Panics if the connection is still open after [`HANG`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 << 10];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("reading from the server: {e}"),
            }
        }
    };
    tokio::time::timeout(HANG, read)
        .await
        .expect("the server closes the connection");
    received
}

/// Reads one HTTP/1.1 response with a `Content-Length` body; returns (status, head, body).
async fn read_response(stream: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 << 10];
    let read = async {
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    let status = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .expect("a status line");
                    let body = received[end + 4..end + 4 + length].to_vec();
                    return (status, head, body);
                }
            }
            let n = stream.read(&mut buffer).await.expect("read a response");
            assert!(n > 0, "the connection closed before a whole response");
            received.extend_from_slice(&buffer[..n]);
        }
    };
    tokio::time::timeout(HANG, read)
        .await
        .expect("a response arrives")
}

/// Connects to a running server.
async fn connect(server: &Running) -> TcpStream {
    let address = server.base.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connect")
}

/// The head of a PATCH of `session` at `offset` declaring a `length`-byte body.
/// Opens an upload session as the writer over the network; its location.
async fn open_session(server: &Running) -> String {
    json_of(server.call(Method::POST, "/uploads", WRITER).await, 201).await["location"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A PATCH of all of `content` to `session` that sends only its first `sent` bytes and then
/// stops (the connection stays open).
async fn stall_patch(server: &Running, session: &str, content: &[u8], sent: usize) -> TcpStream {
    let mut stalled = connect(server).await;
    stalled
        .write_all(patch_head(session, 0, content.len() as u64).as_bytes())
        .await
        .unwrap();
    stalled.write_all(&content[..sent]).await.unwrap();
    stalled
}

fn patch_head(session: &str, offset: u64, length: u64) -> String {
    format!(
        "PATCH {session} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\
         upload-offset: {offset}\r\ncontent-length: {length}\r\n\r\n",
        WRITER.token.expect("token")
    )
}

/// The size of a session's file (`uploads/<id>.part`).
fn session_file_len(harness: &Harness, session: &str) -> u64 {
    let id = session.trim_start_matches("/uploads/");
    std::fs::metadata(harness.upload_dir().join(format!("{id}.part")))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Waits (at most [`HANG`]) until the session's file holds at least `len` bytes.
async fn wait_for_session_bytes(harness: &Harness, session: &str, len: u64) {
    tokio::time::timeout(HANG, async {
        while session_file_len(harness, session) < len {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the server writes the bytes it received");
}

/// A full disk (item 10): a monolithic PUT and an upload PATCH that do not fit answer 507
/// naming the cause, leave no staging bytes behind and change nothing; reads, audits,
/// readiness and fsck keep working, and writes work again once space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_and_leaves_nothing_behind() {
    let tmpfs = Tmpfs::mount(8 << 20);
    let harness = Harness::in_dir(&tmpfs.path(), |_| {}).await;
    let small = b"stored before the disk filled up".to_vec();
    let small_info = harness.put_blob(WRITER, &small).await;
    let tmp_dir = harness.data_dir().join("blobs").join("tmp");
    let head = harness.head_seq().await;

    // A monolithic PUT bigger than the disk.
    let big = pseudo_random_bytes(16 << 20, 10);
    let big_info = BlobInfo::of(&big);
    let reply = harness
        .send(
            Method::PUT,
            &format!("/blobs/{}", big_info.blake3),
            WRITER,
            &[],
            big.clone(),
        )
        .await;
    let problem = reply.problem(507);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("storage full") && detail.contains("blob store `fs`"),
        "the cause is named: {detail}"
    );
    assert!(!detail.contains('/'), "no paths in the answer: {detail}");
    assert_eq!(problem["title"], "insufficient storage");
    assert_eq!(names_in(&tmp_dir), Vec::<String>::new(), "no staging file");
    assert_eq!(harness.head_seq().await, head, "nothing recorded");

    // An upload session: a chunk that fits, then one that does not.
    let session = harness.open_upload(WRITER).await;
    let first = pseudo_random_bytes(2 << 20, 11);
    harness
        .patch_upload(&session, WRITER, 0, first.clone())
        .await
        .expect_status(202);
    let reply = harness
        .send(
            Method::PATCH,
            &session,
            WRITER,
            &[("upload-offset", &first.len().to_string())],
            pseudo_random_bytes(8 << 20, 12),
        )
        .await;
    let detail = reply.problem(507)["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("upload directory"), "{detail}");
    assert_eq!(
        session_file_len(&harness, &session),
        first.len() as u64,
        "the failed request's bytes are gone, the earlier ones kept"
    );
    let status = harness
        .send(Method::HEAD, &session, WRITER, &[], Body::empty())
        .await;
    status.expect_status(204);
    assert_eq!(
        status.header("upload-offset"),
        Some(first.len().to_string().as_str())
    );
    harness
        .send(Method::DELETE, &session, WRITER, &[], Body::empty())
        .await
        .expect_status(204);

    // The disk is usable again: ready, consistent.
    let ready = harness
        .send(Method::GET, "/readyz", ANONYMOUS, &[], Body::empty())
        .await;
    ready.expect_status(200);
    assert_eq!(ready.body, "ready\n");
    let fsck = harness
        .send(Method::GET, "/admin/fsck", ADMIN, &[], Body::empty())
        .await
        .expect(200);
    assert_eq!(fsck["ok"], true, "{fsck}");

    // Now really full: reads, audits and readiness keep working; writes are 507.
    let filler = tmpfs.fill();
    let read = harness
        .send(
            Method::GET,
            &format!("/blobs/{}", small_info.sha256),
            READER,
            &[],
            Body::empty(),
        )
        .await;
    read.expect_status(200);
    assert_eq!(read.body, small);
    let audit = harness
        .send(Method::GET, "/audit/verify", READER, &[], Body::empty())
        .await
        .expect(200);
    assert_eq!(audit["ok"], true);
    let ready = harness
        .send(Method::GET, "/readyz", ANONYMOUS, &[], Body::empty())
        .await;
    ready.expect_status(200);
    assert!(
        String::from_utf8_lossy(&ready.body).contains("blob storage full"),
        "{}",
        ready.describe()
    );
    let other = pseudo_random_bytes(256 << 10, 13);
    harness
        .send(
            Method::PUT,
            &format!("/blobs/{}", BlobInfo::of(&other).blake3),
            WRITER,
            &[],
            other.clone(),
        )
        .await
        .problem(507);
    assert_eq!(names_in(&tmp_dir), Vec::<String>::new(), "no staging file");
    assert_eq!(harness.head_seq().await, head, "nothing recorded");

    std::fs::remove_file(filler).unwrap();
    harness.put_blob(WRITER, &other).await;
    assert_eq!(names_in(&tmp_dir), Vec::<String>::new());
}

/// Item 11: a connection that sends nothing, or half a request head, is closed once
/// `header_read_timeout` has passed, and so is an idle keep-alive connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_header_connections_are_closed() {
    let harness = Harness::with(|o| o.header_read_timeout = Duration::from_secs(1)).await;
    let server = harness.start().await;

    let mut silent = connect(&server).await;
    read_until_closed(&mut silent).await;

    let mut slow = connect(&server).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-slow: ")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "a half head is never served"
    );

    let mut idle = connect(&server).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut idle).await;
    assert_eq!((status, body.as_slice()), (200, b"ok\n".as_slice()));
    // Keep-alive, then silence: closed too.
    assert_eq!(read_until_closed(&mut idle).await, b"");

    // The server itself is fine.
    let health = server.get("/healthz", ANONYMOUS).await;
    assert_eq!(health.status(), 200);
    server.stop().await;
}

/// Item 11: with `max_connections` connections open, the next one waits (in the backlog) and
/// is served as soon as a slot frees. Here the one slot is held by a silent connection until
/// the header timeout closes it; the waiting request is answered only after that: when its
/// answer has arrived, the silent connection has already been closed by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let harness = Harness::with(|o| {
        o.max_connections = 1;
        o.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    let server = harness.start().await;
    let mut holder = connect(&server).await;
    // Make sure the holder is the accepted one: it is served (keep-alive keeps its slot).
    holder
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut holder).await.0, 200);

    let mut waiting = connect(&server).await;
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut waiting).await;
    assert_eq!((status, body.as_slice()), (200, b"ok\n".as_slice()));
    // The holder's slot had to be freed first: its close is already here.
    let mut probe = [0u8; 1024];
    loop {
        match holder.try_read(&mut probe) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => {
                panic!("the waiting request was served while the only slot was taken (holder: {e})")
            }
        }
    }
    server.stop().await;
}

/// Item 11, the other direction: a client that stops reading a response loses its connection
/// once it has accepted no byte for `body_idle_timeout`. With one connection slot, a second
/// request is served only after that: when its answer arrives the reader was cut, and what it
/// can still read is less than the blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_download_is_cut() {
    let harness = Harness::with(|o| {
        o.max_connections = 1;
        o.body_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let content = pseudo_random_bytes(64 << 20, 23);
    let info = BlobInfo::of(&content);
    harness
        .store
        .ingest_blob("setup", content.as_slice(), &[])
        .await
        .unwrap();
    drop(content);
    let server = harness.start().await;
    let mut reader = connect(&server).await;
    reader
        .write_all(
            format!(
                "GET /blobs/{} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\r\n",
                info.blake3,
                READER.token.unwrap()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // The reader now reads nothing. The next connection waits for its slot.
    let mut waiting = connect(&server).await;
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut waiting).await;
    assert_eq!(status, 200);
    let received = read_until_closed(&mut reader).await;
    assert!(
        (received.len() as u64) < info.size,
        "the stalled download was cut ({} bytes arrived)",
        received.len()
    );
    server.stop().await;
}

/// Item 11: a request body that stops arriving fails after `body_idle_timeout`; the upload
/// session keeps every byte received and the client resumes from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_times_out_and_the_session_keeps_its_bytes() {
    let harness = Harness::with(|o| o.body_idle_timeout = Duration::from_secs(1)).await;
    let server = harness.start().await;
    let content = pseudo_random_bytes((3 << 20) + 77, 21);
    let info = BlobInfo::of(&content);
    let session = open_session(&server).await;
    let sent = (1 << 20) + 100;
    let mut stalled = stall_patch(&server, &session, &content, sent).await;
    let (status, _, body) = read_response(&mut stalled).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("body_idle_timeout"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let head = server.call(Method::HEAD, &session, WRITER).await;
    assert_eq!(head.status(), 204);
    assert_eq!(head.headers()["upload-offset"], sent.to_string().as_str());
    let resumed = server
        .request(
            Method::PUT,
            &format!("{session}?digest={}", info.blake3),
            WRITER,
        )
        .header("upload-offset", sent.to_string())
        .body(content[sent..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(resumed, 201).await["size"], content.len() as u64);
    server.stop().await;
}

/// Item 12: a PATCH stalled on a half-open connection does not lock its session: a HEAD from
/// the client takes the session over at once (the stalled request lets go and is answered
/// 409, keeping what it received), and the upload resumes from the written offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_request_takes_over_a_session_from_a_stalled_patch() {
    let harness = Harness::with(|o| o.body_idle_timeout = Duration::from_secs(3600)).await;
    let server = harness.start().await;
    let content = pseudo_random_bytes((4 << 20) + 3, 22);
    let info = BlobInfo::of(&content);
    let session = open_session(&server).await;
    let sent = (1 << 20) + 10;
    let mut stalled = stall_patch(&server, &session, &content, sent).await;
    // The first MiB has been written: the stalled request is inside the session now.
    wait_for_session_bytes(&harness, &session, 1 << 20).await;

    let head = tokio::time::timeout(HANG, server.request(Method::HEAD, &session, WRITER).send())
        .await
        .expect("HEAD is not blocked by the stalled PATCH")
        .unwrap();
    assert_eq!(head.status(), 204);
    let offset: u64 = head.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(offset, sent as u64, "every byte received was kept");
    assert_eq!(session_file_len(&harness, &session), offset);
    // The stalled request was answered (its client may never see it).
    let (status, _, body) = read_response(&mut stalled).await;
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));

    let patched = server
        .request(Method::PATCH, &session, WRITER)
        .header("upload-offset", offset.to_string())
        .body(content[sent..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 202);
    let finished = server
        .call(
            Method::PUT,
            &format!("{session}?digest={}&digest={}", info.blake3, info.sha256),
            WRITER,
        )
        .await;
    assert_eq!(json_of(finished, 201).await["size"], content.len() as u64);
    let fetched = server
        .get(&format!("/blobs/{}", info.blake3), READER)
        .await
        .bytes()
        .await
        .unwrap();
    assert!(
        fetched == content,
        "the resumed upload stored the right bytes"
    );
    server.stop().await;
}

/// Item 14: 2,000 unauthenticated readiness probes at 32-way concurrency all answer 200 (they
/// used to race on one probe file name), and a failing backend is named without any path or
/// error detail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_race_free_under_concurrent_probes_and_leaks_nothing() {
    let harness = Harness::new().await;
    let server = harness.start().await;
    let url = server.url("/readyz");
    let client = server.client.clone();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut probes = futures_util::stream::iter(0..2000)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            async move { client.get(url).send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(32);
    while let Some(status) = probes.next().await {
        *statuses.entry(status).or_default() += 1;
    }
    assert_eq!(statuses, std::collections::BTreeMap::from([(200, 2000)]));
    let tmp = harness.data_dir().join("blobs").join("tmp");
    assert_eq!(
        names_in(&tmp),
        Vec::<String>::new(),
        "no probe file is left"
    );

    // A broken backend: its staging directory replaced by a file.
    std::fs::remove_dir(&tmp).unwrap();
    std::fs::write(&tmp, b"not a directory").unwrap();
    let problem = problem_of(client.get(&url).send().await.unwrap(), 503).await;
    let detail = problem["detail"].as_str().unwrap();
    assert_eq!(
        detail,
        "the blob backend `fs` is unreachable or not writable"
    );
    std::fs::remove_file(&tmp).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    server.stop().await;
}

/// The smaller item: Range headers per RFC 9110 on blobs and package files. The unit is
/// case-insensitive, signs are not digits, and several ranges or an unknown unit get the
/// whole representation (200), consistently on both routes.
#[tokio::test]
async fn range_headers_follow_rfc_9110() {
    let harness = Harness::new().await;
    let content = b"0123456789".to_vec();
    let info = BlobInfo::of(&content);
    let id = harness
        .setup_package("ranges", "1.0", "build-cache", &[("f.bin", &content)])
        .await;
    for path in [
        format!("/blobs/{}", info.blake3),
        format!("/packages/{id}/files/f.bin"),
    ] {
        let get = |range: &'static str| {
            let path = path.clone();
            let harness = &harness;
            async move {
                harness
                    .send(
                        Method::GET,
                        &path,
                        READER,
                        &[("range", range)],
                        Body::empty(),
                    )
                    .await
            }
        };
        for (range, body, content_range) in [
            ("Bytes=1-3", &b"123"[..], "bytes 1-3/10"),
            ("BYTES=-2", &b"89"[..], "bytes 8-9/10"),
            ("bytes=7-", &b"789"[..], "bytes 7-9/10"),
        ] {
            let reply = get(range).await;
            assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(reply.body, body, "{range}");
            assert_eq!(
                reply.header("content-range"),
                Some(content_range),
                "{range}"
            );
        }
        for range in ["bytes=0-1,3-4", "bytes=0-1, 5-", "items=0-1"] {
            let reply = get(range).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{range}: {}",
                reply.describe()
            );
            assert_eq!(reply.body, content, "{range}");
            assert_eq!(reply.header("content-range"), None, "{range}");
        }
        for range in ["bytes=+1-2", "bytes=1-+2", "bytes=0-1,+3-4", "bytes= -"] {
            let reply = get(range).await;
            reply.problem(416);
            assert_eq!(reply.header("content-range"), Some("bytes */10"), "{range}");
        }
    }
}
