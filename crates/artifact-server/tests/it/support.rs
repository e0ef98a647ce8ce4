//! Shared fixtures: an embedded store on a manual clock with a server state over it, called
//! either through `app(state).oneshot(request)` (no socket) or on a real loopback socket;
//! bearer tokens for every role; problem+json checks; an SSE reader; deterministic content.

pub use artifact_core::testing::{Tmpfs, events_after, manifest_of as manifest, names_in};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use artifact_core::ArtifactStore;
use artifact_core::auth::{Principal, Role, token_hash};
use artifact_core::digest::BlobInfo;
use artifact_core::manifest::{FileEntry, Manifest};
use artifact_core::time::ManualClock;
use artifact_server::{AppState, ServerOptions, app};
use artifact_store_fs::EmbeddedOptions;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// Where every store's manual clock starts: the pilot's run date.
pub const START: &str = "2026-11-23T10:00:00.000Z";

/// Upper bound on waiting for something that must happen (a hang detector, never a
/// performance threshold: every wait in these tests normally ends in milliseconds).
pub const HANG: Duration = Duration::from_secs(60);

/// A caller of the API: a bearer token and the principal it maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The bearer token (`None` = no `Authorization` header).
    pub token: Option<&'static str>,
    /// The principal recorded as actor.
    pub principal: &'static str,
}

/// Read-only auditor (`reader`).
pub const READER: Caller = Caller {
    token: Some("tok-reader-7f3a9c"),
    principal: "auditor",
};
/// A build pipeline (`writer`).
pub const WRITER: Caller = Caller {
    token: Some("tok-writer-41be02"),
    principal: "ci-pipeline",
};
/// A retention officer (`retention-admin`).
pub const RETENTION_ADMIN: Caller = Caller {
    token: Some("tok-retention-9d07e4"),
    principal: "records-officer",
};
/// An operator (`admin`).
pub const ADMIN: Caller = Caller {
    token: Some("tok-admin-c3d8f1"),
    principal: "ops-root",
};
/// No token at all.
pub const ANONYMOUS: Caller = Caller {
    token: None,
    principal: "",
};
/// A token the server has never seen.
pub const UNKNOWN: Caller = Caller {
    token: Some("tok-nobody-000000"),
    principal: "",
};

/// The configuration tokens every harness knows.
pub fn config_tokens() -> Vec<(artifact_core::digest::Sha256, Principal)> {
    [
        (READER, Role::Reader),
        (WRITER, Role::Writer),
        (RETENTION_ADMIN, Role::RetentionAdmin),
        (ADMIN, Role::Admin),
    ]
    .into_iter()
    .map(|(caller, role)| {
        (
            token_hash(caller.token.expect("a token")),
            Principal {
                name: caller.principal.to_owned(),
                roles: BTreeSet::from([role]),
            },
        )
    })
    .collect()
}

/// A store and a server state over it, in a tempdir: `data/` (catalog + blobs) and
/// `uploads/` (sessions) side by side on one filesystem.
pub struct Harness {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The clock of the store.
    pub clock: ManualClock,
    /// The store (the same one the state serves).
    pub store: ArtifactStore,
    /// The server state.
    pub state: AppState,
    /// The options the state was built with.
    pub options: ServerOptions,
}

impl Harness {
    /// Defaults: no scheduled sweeper (tests sweep explicitly), the four role tokens.
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// Defaults changed by `configure`.
    pub async fn with(configure: impl FnOnce(&mut ServerOptions)) -> Self {
        Self::in_dir(&std::env::temp_dir(), configure).await
    }

    /// [`Harness::with`], its directories created under `parent` (e.g. a [`Tmpfs`]).
    pub async fn in_dir(
        parent: &std::path::Path,
        configure: impl FnOnce(&mut ServerOptions),
    ) -> Self {
        let dir = tempfile::tempdir_in(parent).expect("tempdir");
        let clock = ManualClock::new(START.parse().expect("start time"));
        let mut options = ServerOptions::new(dir.path().join("uploads"));
        options.sweep_interval = None;
        options.config_tokens = config_tokens();
        configure(&mut options);
        let store = open_store(&dir.path().join("data"), &clock).await;
        let state = AppState::new(store.clone(), options.clone()).expect("server state");
        Self {
            dir,
            clock,
            store,
            state,
            options,
        }
    }

    /// The data directory (catalog + blobs).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The upload-session directory.
    pub fn upload_dir(&self) -> PathBuf {
        self.options.upload_dir.clone()
    }

    /// Where the fs backend keeps a blob.
    pub fn blob_path(&self, info: &BlobInfo) -> PathBuf {
        let hex = info.blake3.to_hex();
        self.data_dir()
            .join("blobs")
            .join("blake3")
            .join(&hex[..2])
            .join(hex)
    }

    /// Closes the store and opens the same directories again, with a new server state (as a
    /// restarted process would).
    pub async fn reopen(&mut self) {
        self.store.catalog().close().await;
        self.store = open_store(&self.data_dir(), &self.clock).await;
        self.state = AppState::new(self.store.clone(), self.options.clone()).expect("state");
    }

    /// One request through the router, no socket.
    pub async fn call(&self, request: Request<Body>) -> Reply {
        let response = app(self.state.clone())
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `call` of a request built from parts.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        caller: Caller,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Reply {
        self.call(request(method, uri, caller, headers, body)).await
    }

    /// The head seq of the event log.
    pub async fn head_seq(&self) -> u64 {
        self.store.head().await.expect("head").seq
    }

    /// Mints a token as the admin (`POST /admin/tokens` with the JSON `body`, 201); the answer.
    pub async fn mint_token(&self, body: &str) -> serde_json::Value {
        self.send(
            Method::POST,
            "/admin/tokens",
            ADMIN,
            &[("content-type", "application/json")],
            body.to_owned(),
        )
        .await
        .expect(201)
    }

    /// Opens an upload session as `caller` (`POST /uploads`, 201); its location.
    pub async fn open_upload(&self, caller: Caller) -> String {
        self.send(Method::POST, "/uploads", caller, &[], Body::empty())
            .await
            .expect(201)["location"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `PATCH location` as `caller` with `bytes` at `offset`.
    pub async fn patch_upload(
        &self,
        location: &str,
        caller: Caller,
        offset: u64,
        bytes: impl Into<Body>,
    ) -> Reply {
        let offset = offset.to_string();
        self.send(
            Method::PATCH,
            location,
            caller,
            &[("upload-offset", offset.as_str())],
            bytes,
        )
        .await
    }

    /// Stores `content` through `PUT /blobs/{blake3}` as `caller`.
    pub async fn put_blob(&self, caller: Caller, content: &[u8]) -> BlobInfo {
        let info = BlobInfo::of(content);
        let reply = self
            .send(
                Method::PUT,
                &format!("/blobs/{}", info.blake3),
                caller,
                &[],
                content.to_vec(),
            )
            .await;
        assert!(
            reply.status == StatusCode::CREATED || reply.status == StatusCode::OK,
            "PUT /blobs: {}",
            reply.describe()
        );
        info
    }

    /// Stores the files' contents (library, actor `setup`) and creates the package
    /// (library, actor `setup`); returns its id.
    pub async fn setup_package(
        &self,
        name: &str,
        version: &str,
        class: &str,
        files: &[(&str, &[u8])],
    ) -> artifact_core::digest::PackageId {
        for (_, content) in files {
            self.store
                .ingest_blob("setup", *content, &[])
                .await
                .expect("ingest");
        }
        self.store
            .create_package("setup", &manifest(name, version, class, files))
            .await
            .expect("create package")
            .package_id
    }

    /// Serves the state on a loopback socket until [`Running::stop`].
    pub async fn start(&self) -> Running {
        Running::start(self.state.clone()).await
    }
}

/// Opens the embedded store in `data_dir` on `clock`.
pub async fn open_store(data_dir: &std::path::Path, clock: &ManualClock) -> ArtifactStore {
    EmbeddedOptions::new(data_dir)
        .with_clock(Arc::new(clock.clone()))
        .open()
        .await
        .expect("open the embedded store")
}

/// A request built from parts, with the caller's bearer token.
pub fn request(
    method: Method,
    uri: &str,
    caller: Caller,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = caller.token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.into()).expect("request")
}

/// A buffered response.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.describe()))
    }

    /// Status and body, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {:?}: {}",
            self.status,
            self.header("content-type"),
            String::from_utf8_lossy(&self.body)
        )
    }

    /// Asserts `status`.
    pub fn expect_status(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "{}", self.describe());
    }

    /// Asserts `status` and returns the JSON body (which must be JCS).
    pub fn expect(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.describe());
        assert_jcs(&self.body);
        self.json()
    }

    /// Asserts an `application/problem+json` answer with `status`; returns the problem.
    pub fn problem(&self, status: u16) -> serde_json::Value {
        self.try_problem(status)
            .unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`Reply::problem`] without panicking.
    pub fn try_problem(&self, status: u16) -> Result<serde_json::Value, String> {
        if self.status.as_u16() != status {
            return Err(format!("expected {status}, got {}", self.describe()));
        }
        problem_result(self.header("content-type"), &self.body, status)
    }
}

/// Checks an RFC 9457 problem document: content type, `type`, `title`, `status`, `detail`.
pub fn check_problem(content_type: Option<&str>, body: &[u8], status: u16) -> serde_json::Value {
    problem_result(content_type, body, status).unwrap_or_else(|why| panic!("{why}"))
}

/// [`check_problem`] without panicking.
pub fn problem_result(
    content_type: Option<&str>,
    body: &[u8],
    status: u16,
) -> Result<serde_json::Value, String> {
    let text = String::from_utf8_lossy(body);
    if !content_type.is_some_and(|t| t.starts_with("application/problem+json")) {
        return Err(format!(
            "content type {content_type:?} is not application/problem+json: {text}"
        ));
    }
    let problem: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("problem is not JSON ({e}): {text}"))?;
    for key in ["type", "title", "detail"] {
        if problem[key].as_str().is_none_or(str::is_empty) {
            return Err(format!("problem lacks a non-empty `{key}`: {text}"));
        }
    }
    if problem["status"].as_u64() != Some(u64::from(status)) {
        return Err(format!("problem `status` is not {status}: {text}"));
    }
    Ok(problem)
}

/// A server on `127.0.0.1:0` and a client for it.
pub struct Running {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client (keep-alive pool).
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Binds a loopback port and serves `state` on it.
    pub async fn start(state: AppState) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(artifact_server::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request as `caller`.
    pub fn request(&self, method: Method, path: &str, caller: Caller) -> reqwest::RequestBuilder {
        let builder = self.client.request(
            reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("method"),
            self.url(path),
        );
        match caller.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// `GET path` as `caller`, answered.
    pub async fn get(&self, path: &str, caller: Caller) -> reqwest::Response {
        self.call(Method::GET, path, caller).await
    }

    /// `method path` as `caller` without a body, answered.
    pub async fn call(&self, method: Method, path: &str, caller: Caller) -> reqwest::Response {
        self.request(method.clone(), path, caller)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} is answered: {e}"))
    }

    /// `POST /packages` of `manifest` as JSON by the writer.
    pub async fn post_package(&self, manifest: &Manifest) -> reqwest::Response {
        self.request(Method::POST, "/packages", WRITER)
            .header("content-type", "application/json")
            .body(manifest_json(manifest))
            .send()
            .await
            .expect("POST /packages is answered")
    }

    /// Graceful shutdown; waits until `serve` has returned (in-flight requests finished).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(HANG, &mut self.task)
            .await
            .expect("serve returns after a graceful shutdown")
            .expect("the serve task does not panic");
        result.expect("serve ends without an error");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Asserts a reqwest answer is problem+json with `status`; returns the problem.
pub async fn problem_of(response: reqwest::Response, status: u16) -> serde_json::Value {
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await.expect("body");
    assert_eq!(got, status, "{}", String::from_utf8_lossy(&body));
    check_problem(content_type.as_deref(), &body, status)
}

/// A reqwest answer's JSON body, after checking `status` and that the body is JCS.
pub async fn json_of(response: reqwest::Response, status: u16) -> serde_json::Value {
    let got = response.status().as_u16();
    let body = response.bytes().await.expect("body");
    assert_eq!(got, status, "{}", String::from_utf8_lossy(&body));
    assert_jcs(&body);
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

/// Asserts that `body` is the JCS (RFC 8785) form of its own value: sorted keys, no
/// insignificant whitespace, canonical numbers and strings.
pub fn assert_jcs(body: &[u8]) {
    let value = artifact_core::jcs::from_json(body).unwrap_or_else(|e| {
        panic!(
            "not data-model JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(
        artifact_core::jcs::to_jcs(&value).as_bytes(),
        body,
        "the body is not JCS"
    );
}

/// The member names of a JSON object, sorted: to assert a response's exact shape.
pub fn sorted_keys(value: &serde_json::Value) -> Vec<&str> {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {value}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// A manifest file entry.
pub fn file_entry(path: &str, content: &[u8], media_type: &str) -> FileEntry {
    FileEntry::of(path, content, Some(media_type))
}

/// The pilot run `guide-board@2026.11.23-1` (release-evidence): `traces/run.bin` holds
/// `trace`, plus the `typed` files (path, bytes, media type); files sorted.
pub fn guide_board_run(trace: &[u8], typed: &[(&str, &[u8], &str)]) -> Manifest {
    let mut run = manifest(
        "guide-board",
        "2026.11.23-1",
        "release-evidence",
        &[("traces/run.bin", trace)],
    );
    for (path, content, media_type) in typed {
        run.files.push(file_entry(path, content, media_type));
    }
    run.sort_files();
    run
}

/// The JSON (JCS) text of a manifest.
pub fn manifest_json(manifest: &Manifest) -> String {
    artifact_core::jcs::to_jcs(&manifest.to_value())
}

/// Deterministic pseudo-random bytes (xorshift64*), different per `seed`.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`
    pub id: Option<String>,
    /// `event:`
    pub event: Option<String>,
    /// `data:` lines joined by `\n`.
    pub data: String,
}

/// Reads Server-Sent Events from a streaming response.
pub struct SseReader {
    stream: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    /// Bytes after the last complete line (a chunk may end inside a UTF-8 character).
    pending: Vec<u8>,
}

impl SseReader {
    /// Wraps a `text/event-stream` response.
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "event stream status");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "content type {content_type}"
        );
        Self {
            stream: Box::pin(response.bytes_stream()),
            pending: Vec::new(),
        }
    }

    /// The next event with data (comments and keep-alives skipped); panics if none arrives
    /// before [`HANG`] or the stream ends.
    pub async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(HANG, self.next_inner())
            .await
            .expect("an SSE event arrives")
            .expect("the event stream is still open")
    }

    async fn next_inner(&mut self) -> Option<SseEvent> {
        let mut event = SseEvent {
            id: None,
            event: None,
            data: String::new(),
        };
        let mut has_data = false;
        loop {
            while let Some(newline) = self.pending.iter().position(|&b| b == b'\n') {
                let bytes: Vec<u8> = self.pending.drain(..=newline).collect();
                let line = std::str::from_utf8(&bytes[..newline])
                    .expect("an SSE line is UTF-8")
                    .trim_end_matches('\r')
                    .to_owned();
                if line.is_empty() {
                    if has_data {
                        return Some(event);
                    }
                    continue;
                }
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => event.id = Some(value.to_owned()),
                    "event" => event.event = Some(value.to_owned()),
                    "data" => {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(value);
                        has_data = true;
                    }
                    _ => {}
                }
            }
            let chunk = self.stream.next().await?.ok()?;
            self.pending.extend_from_slice(&chunk);
        }
    }
}
