//! [`HttpClient`]: the [`Client`] over the HTTP API of `artifactstore serve` — JSON calls
//! decoded into the typed results, problem+json errors, resumable uploads, verified downloads
//! and the SSE event stream.

use std::path::Path;
use std::time::Duration;

use artifact_core::PackageRef;
use artifact_core::auth::Role;
use artifact_core::catalog::EventQuery;
use artifact_core::cbor::Value;
use artifact_core::digest::{AnyDigest, BlobInfo, DualHasher};
use artifact_core::event::Event;
use artifact_core::manifest::{FileEntry, Manifest};
use artifact_core::paging::{DEFAULT_EVENT_LIMIT, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use artifact_core::results::{
    self, AuditResult, BlobResult, Dto, ExplainResult, FsckResult, GcResult, HoldAppliedResult,
    PackageCreatedResult, PackagePageResult, PackageViewResult, RebuildViewsResult,
    RetentionStatusResult, SweepResult, TokenMintedResult, TokenResult, VerifyResult,
};
use artifact_core::time::Timestamp;
use artifact_core::tlog::Receipt;
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::{Client, ClientError, Created, PackageQuery, Progress, Result};

/// Bytes per PATCH request of an upload session.
const UPLOAD_CHUNK: usize = 16 << 20;
/// Attempts per chunk before giving up (each failure re-reads the server's offset).
const UPLOAD_ATTEMPTS: u32 = 6;
/// How long a dropped event stream waits before reconnecting.
const FOLLOW_RECONNECT: Duration = Duration::from_millis(500);

/// A server and the token to call it with.
#[derive(Debug, Clone)]
pub struct HttpClient {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// Encodes a path segment (package refs contain `:` and `@`, file paths `/`).
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:@".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Encodes a file path, keeping its `/` separators.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// `/packages/{package}`, the reference checked first for a precise error.
fn package_path(package: &str) -> Result<String> {
    let _: PackageRef = package.parse()?;
    Ok(format!("/packages/{}", encode_segment(package)))
}

/// `METHOD /path` without the query, for error messages.
fn route(method: &Method, path: &str) -> String {
    format!("{method} {}", path.split('?').next().unwrap_or(path))
}

/// `?key=value&…` of the pairs that are set, values encoded.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| {
            value
                .as_ref()
                .map(|value| format!("{key}={}", encode_segment(value)))
        })
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

fn text(value: impl Into<String>) -> Value {
    Value::Text(value.into())
}

impl HttpClient {
    /// A client of the server at `base` (`http://host:port`, or https), calling with `token`
    /// (`None`: anonymous, for servers that allow it).
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`] when `base` is not an http(s) URL.
    pub fn new(base: &str, token: Option<String>) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Invalid(format!(
                "--server `{base}` must be an http:// or https:// URL"
            )));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            base,
            token,
            client,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (below the base URL) with the token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends; a non-success status becomes [`ClientError::Status`] with the problem's detail.
    ///
    /// # Errors
    ///
    /// [`ClientError::Unreachable`] without an answer, [`ClientError::Status`] for an error
    /// answer.
    pub async fn send(&self, builder: RequestBuilder) -> Result<Response> {
        let response = builder.send().await.map_err(|e| self.unreachable(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(problem(response).await)
    }

    fn unreachable(&self, error: impl std::fmt::Display) -> ClientError {
        ClientError::Unreachable {
            server: self.base.clone(),
            reason: error.to_string(),
        }
    }

    async fn body(&self, response: Response) -> Result<Bytes> {
        response.bytes().await.map_err(|e| self.unreachable(e))
    }

    /// Calls `method path` with an optional JSON body and decodes the answer into the
    /// typed result `T` of its route; a missing or renamed member is an error naming the route.
    async fn call<T: Dto>(&self, method: Method, path: &str, body: Option<&Value>) -> Result<T> {
        let mut builder = self.request(method.clone(), path);
        if let Some(body) = body {
            builder = builder
                .header("content-type", "application/json")
                .body(artifact_core::jcs::to_jcs(body));
        }
        let response = self.send(builder).await?;
        let value = artifact_core::jcs::from_json(&self.body(response).await?)?;
        Ok(results::decode(&value, &route(&method, path))?)
    }

    async fn get_events(&self, path: &str) -> Result<Vec<Event>> {
        let response = self.send(self.request(Method::GET, path)).await?;
        match artifact_core::jcs::from_json(&self.body(response).await?)? {
            Value::Array(items) => Ok(items
                .iter()
                .map(Event::from_value)
                .collect::<Result<_, _>>()?),
            _ => Err(ClientError::Protocol(format!(
                "the server answered {path} with something other than an array"
            ))),
        }
    }

    /// Streams a download into `out`, verifying size and both digests against `expected`;
    /// returns the bytes written. The caller decides what to do with a partial `out` on error.
    async fn download<W: AsyncWrite + Unpin + Send>(
        &self,
        path: &str,
        expected: &BlobInfo,
        out: &mut W,
        progress: &dyn Progress,
    ) -> Result<u64> {
        let response = self.send(self.request(Method::GET, path)).await?;
        let mut hasher = DualHasher::new();
        let mut stream = response.bytes_stream();
        let writing = || format!("cannot write the download of {path}");
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ClientError::Protocol(format!("download of {path} was interrupted: {e}"))
            })?;
            hasher.update(&chunk);
            if hasher.size() > expected.size {
                return Err(ClientError::Protocol(format!(
                    "{path}: the server sent more than the recorded {} bytes",
                    expected.size
                )));
            }
            out.write_all(&chunk)
                .await
                .map_err(|e| ClientError::io(writing(), e))?;
            progress.advance(chunk.len() as u64);
        }
        let actual = hasher.finalize();
        if actual != *expected {
            return Err(ClientError::Protocol(format!(
                "{path}: downloaded bytes are corrupt ({} bytes hashing to {}, expected {} bytes {})",
                actual.size, actual.blake3, expected.size, expected.blake3
            )));
        }
        out.flush()
            .await
            .map_err(|e| ClientError::io(writing(), e))?;
        Ok(actual.size)
    }

    /// Uploads a file through a resumable session, hashing it on the way; returns the
    /// server's answer to the finishing PUT (the recorded blob). A failed chunk is retried
    /// from the offset the server reports (`HEAD`), so an interrupted transfer resumes instead
    /// of starting over; an answer no retry can change (a full disk's 507, a 413, a refused
    /// token) is not retried. When the upload fails for good, the session is deleted
    /// (`DELETE`), so its bytes do not wait for the server's `upload_ttl`.
    async fn upload_file(&self, path: &Path, progress: &dyn Progress) -> Result<BlobResult> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::io(format!("cannot open {}", path.display()), e))?;
        let created = self.send(self.request(Method::POST, "/uploads")).await?;
        let location = created
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                ClientError::Protocol("the server did not say where the upload session is".into())
            })?;
        let result = self.upload_into(&location, &mut file, path, progress).await;
        if result.is_err() {
            // Best effort: a server that cannot be reached reaps the session after its TTL. A
            // server that refused a chunk early (507, 413) closes that connection, and the pool
            // may hand the DELETE the dying one: retry a transport error a few times.
            for attempt in 1..=3u64 {
                match self.request(Method::DELETE, &location).send().await {
                    Ok(_) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100 * attempt)).await,
                }
            }
        }
        result
    }

    /// The chunks and the finishing PUT of [`HttpClient::upload_file`].
    async fn upload_into(
        &self,
        location: &str,
        file: &mut tokio::fs::File,
        path: &Path,
        progress: &dyn Progress,
    ) -> Result<BlobResult> {
        let mut hasher = DualHasher::new();
        let mut offset: u64 = 0;
        let mut buffer = vec![0u8; UPLOAD_CHUNK];
        loop {
            let filled = read_full(file, &mut buffer)
                .await
                .map_err(|e| ClientError::io(format!("cannot read {}", path.display()), e))?;
            if filled == 0 {
                break;
            }
            let chunk = Bytes::copy_from_slice(&buffer[..filled]);
            let chunk_start = offset;
            let mut sent_from = 0usize;
            let mut attempt = 0;
            loop {
                let body = chunk.slice(sent_from..);
                let result = self
                    .send(
                        self.request(Method::PATCH, location)
                            .header(
                                "upload-offset",
                                (chunk_start + sent_from as u64).to_string(),
                            )
                            .header("content-type", "application/octet-stream")
                            .body(body),
                    )
                    .await;
                match result {
                    Ok(_) => break,
                    Err(error) => {
                        attempt += 1;
                        if attempt >= UPLOAD_ATTEMPTS || !retryable(&error) {
                            return Err(ClientError::Upload {
                                path: path.display().to_string(),
                                attempts: attempt,
                                source: Box::new(error),
                            });
                        }
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                        // Where did the server get to? Resume from there.
                        let server_offset = self.upload_offset(location).await?;
                        if server_offset < chunk_start
                            || server_offset > chunk_start + filled as u64
                        {
                            return Err(ClientError::Protocol(format!(
                                "the server's upload offset {server_offset} is outside the chunk being sent ({chunk_start}..{})",
                                chunk_start + filled as u64
                            )));
                        }
                        sent_from = (server_offset - chunk_start) as usize;
                    }
                }
            }
            hasher.update_parallel(&chunk);
            offset += filled as u64;
            progress.advance(filled as u64);
        }
        let info = hasher.finalize();
        let finish = format!(
            "{location}?digest={}&digest={}",
            encode_segment(&info.blake3.to_string()),
            encode_segment(&info.sha256.to_string())
        );
        let response = self
            .send(
                self.request(Method::PUT, &finish)
                    .header("upload-offset", offset.to_string()),
            )
            .await?;
        let value = artifact_core::jcs::from_json(&self.body(response).await?)?;
        let blob: BlobResult = results::decode(&value, "PUT /uploads/{id}")?;
        if blob.blake3 != info.blake3.to_string() || blob.size != info.size {
            return Err(ClientError::Protocol(format!(
                "the server recorded {} ({} bytes) for an upload of {} ({} bytes)",
                blob.blake3, blob.size, info.blake3, info.size
            )));
        }
        Ok(blob)
    }

    async fn upload_offset(&self, location: &str) -> Result<u64> {
        let response = self.send(self.request(Method::HEAD, location)).await?;
        response
            .headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                ClientError::Protocol("the server did not report the upload offset".into())
            })
    }

    /// The digests and size the server records for a blob (`HEAD /blobs/{digest}`), checked
    /// to be the blob asked for.
    async fn blob_info(&self, digest: &AnyDigest) -> Result<BlobInfo> {
        let path = format!("/blobs/{}", encode_segment(&digest.to_string()));
        let head = self.send(self.request(Method::HEAD, &path)).await?;
        let header = |name: &str| {
            head.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let missing = |what: &str| {
            ClientError::Protocol(format!("the server did not send the blob's {what}"))
        };
        let expected = BlobInfo {
            blake3: header("artifactstore-blake3")
                .ok_or_else(|| missing("BLAKE3"))?
                .parse()?,
            sha256: header("artifactstore-sha256")
                .ok_or_else(|| missing("SHA-256"))?
                .parse()?,
            size: header("content-length")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| missing("size"))?,
        };
        if !expected.matches(digest) {
            return Err(ClientError::Protocol(format!(
                "the server answered {digest} with a different blob"
            )));
        }
        Ok(expected)
    }
}

impl Client for HttpClient {
    async fn send_file(&self, path: &Path, progress: &dyn Progress) -> Result<BlobInfo> {
        let blob = self.upload_file(path, progress).await?;
        Ok(BlobInfo {
            blake3: blob.blake3.parse()?,
            sha256: blob.sha256.parse()?,
            size: blob.size,
        })
    }

    async fn put_blob(&self, path: &Path, progress: &dyn Progress) -> Result<BlobResult> {
        self.upload_file(path, progress).await
    }

    async fn create_package(&self, manifest: &Manifest, _blobs: &[BlobInfo]) -> Result<Created> {
        // The server records each blob when its upload session finishes.
        let response = self
            .send(
                self.request(Method::POST, "/packages")
                    .header("content-type", "application/cbor")
                    .body(manifest.canonical_bytes()?),
            )
            .await?;
        let value = artifact_core::jcs::from_json(&self.body(response).await?)?;
        let answer: PackageCreatedResult = results::decode(&value, "POST /packages")?;
        Ok(Created {
            package: answer.package,
            created: answer.created,
        })
    }

    async fn check_class(&self, _class: &str) -> Result<()> {
        Ok(())
    }

    async fn package(&self, package: &str) -> Result<PackageViewResult> {
        self.call(Method::GET, &package_path(package)?, None).await
    }

    async fn list_packages(&self, filter: &PackageQuery) -> Result<Vec<PackageViewResult>> {
        let limit = filter
            .limit
            .unwrap_or(DEFAULT_LIST_LIMIT)
            .clamp(1, MAX_LIST_LIMIT);
        let path = format!(
            "/packages{}",
            query(&[
                ("limit", Some(limit.to_string())),
                ("name", filter.name.clone()),
                ("class", filter.class.clone()),
                ("eligible", filter.eligible.then(|| "true".to_owned())),
            ])
        );
        let page: PackagePageResult = self.call(Method::GET, &path, None).await?;
        Ok(page.packages)
    }

    async fn manifest(&self, package: &str) -> Result<(Manifest, Vec<u8>)> {
        let path = format!("{}/manifest", package_path(package)?);
        let response = self
            .send(
                self.request(Method::GET, &path)
                    .header("accept", "application/cbor"),
            )
            .await?;
        let bytes = self.body(response).await?.to_vec();
        let manifest = Manifest::from_canonical_bytes(&bytes)?;
        if let Ok(PackageRef::Id(id)) = package.parse::<PackageRef>()
            && manifest.package_id()? != id
        {
            return Err(ClientError::Protocol(format!(
                "the server sent a manifest that does not hash to {id}"
            )));
        }
        Ok((manifest, bytes))
    }

    async fn check_live(&self, _package: &str) -> Result<()> {
        Ok(())
    }

    async fn copy_file<W: AsyncWrite + Unpin + Send>(
        &self,
        package: &str,
        file: &FileEntry,
        out: &mut W,
        progress: &dyn Progress,
    ) -> Result<()> {
        let path = format!(
            "{}/files/{}",
            package_path(package)?,
            encode_path(&file.path)
        );
        self.download(&path, &file.blob(), out, progress).await?;
        Ok(())
    }

    async fn copy_blob<W: AsyncWrite + Unpin + Send>(
        &self,
        digest: &AnyDigest,
        out: &mut W,
        progress: &dyn Progress,
    ) -> Result<()> {
        let expected = self.blob_info(digest).await?;
        progress.set_length(expected.size);
        let path = format!("/blobs/{}", encode_segment(&digest.to_string()));
        self.download(&path, &expected, out, progress).await?;
        Ok(())
    }

    async fn extend(
        &self,
        package: &str,
        until: Timestamp,
        reason: &str,
    ) -> Result<RetentionStatusResult> {
        let body = Value::map([
            ("new_expires_at", text(until.to_string())),
            ("reason", text(reason)),
        ]);
        let path = format!("{}/retention/extensions", package_path(package)?);
        self.call(Method::POST, &path, Some(&body)).await
    }

    async fn hold(&self, package: &str, reason: &str) -> Result<String> {
        let body = Value::map([("reason", text(reason))]);
        let path = format!("{}/retention/holds", package_path(package)?);
        let applied: HoldAppliedResult = self.call(Method::POST, &path, Some(&body)).await?;
        Ok(applied.hold_id)
    }

    async fn release(
        &self,
        package: &str,
        hold_id: &str,
        reason: &str,
    ) -> Result<RetentionStatusResult> {
        let body = Value::map([("reason", text(reason))]);
        let path = format!(
            "{}/retention/holds/{}/release",
            package_path(package)?,
            encode_segment(hold_id)
        );
        self.call(Method::POST, &path, Some(&body)).await
    }

    async fn retention_history(&self, package: &str) -> Result<Vec<Event>> {
        self.get_events(&format!("{}/retention/history", package_path(package)?))
            .await
    }

    async fn receipt(&self, seq: u64) -> Result<Receipt> {
        self.call(
            Method::GET,
            &format!("/log/proof/inclusion?seq={seq}"),
            None,
        )
        .await
    }

    async fn sweep(&self, as_of: Option<Timestamp>) -> Result<SweepResult> {
        let path = format!(
            "/retention/sweep{}",
            query(&[("as_of", as_of.map(|t| t.to_string()))])
        );
        self.call(Method::POST, &path, None).await
    }

    async fn explain(&self, package: &str, as_of: Option<Timestamp>) -> Result<ExplainResult> {
        let path = format!(
            "{}/retention/explain{}",
            package_path(package)?,
            query(&[("as_of", as_of.map(|t| t.to_string()))])
        );
        self.call(Method::GET, &path, None).await
    }

    async fn events(&self, filter: &EventQuery) -> Result<Vec<Event>> {
        let path = format!(
            "/events{}",
            query(&[
                ("after", Some(filter.after.to_string())),
                (
                    "limit",
                    Some(filter.limit.unwrap_or(DEFAULT_EVENT_LIMIT).to_string())
                ),
                ("type", filter.event_type.clone()),
                ("package_id", filter.package_id.map(|id| id.to_string())),
            ])
        );
        self.get_events(&path).await
    }

    fn follow(&self, after: u64) -> BoxStream<'static, Result<Event>> {
        follow_stream(self.clone(), after)
    }

    async fn audit(&self) -> Result<AuditResult> {
        self.call(Method::GET, "/audit/verify", None).await
    }

    async fn rebuild_views(&self) -> Result<u64> {
        let rebuilt: RebuildViewsResult = self
            .call(Method::POST, "/admin/rebuild-views", None)
            .await?;
        Ok(rebuilt.events_replayed)
    }

    async fn gc(&self, grace: Option<&str>, dry_run: bool) -> Result<GcResult> {
        let path = format!(
            "/admin/gc{}",
            query(&[
                ("grace", grace.map(str::to_owned)),
                ("dry_run", Some(dry_run.to_string())),
            ])
        );
        self.call(Method::POST, &path, None).await
    }

    async fn verify(
        &self,
        sample: f64,
        max_bytes_per_sec: Option<u64>,
        _progress: &dyn Progress,
    ) -> Result<VerifyResult> {
        let path = format!(
            "/admin/verify{}",
            query(&[
                ("sample", Some(sample.to_string())),
                (
                    "max_bytes_per_sec",
                    max_bytes_per_sec.map(|r| r.to_string())
                ),
            ])
        );
        self.call(Method::POST, &path, None).await
    }

    async fn fsck(&self) -> Result<FsckResult> {
        self.call(Method::GET, "/admin/fsck", None).await
    }

    async fn mint_token(
        &self,
        principal: &str,
        roles: &[Role],
        expires_at: Option<Timestamp>,
    ) -> Result<TokenMintedResult> {
        let body = Value::map([
            ("principal", text(principal)),
            (
                "roles",
                Value::Array(roles.iter().map(|r| text(r.as_str())).collect()),
            ),
            (
                "expires_at",
                expires_at.map_or(Value::Null, |t| text(t.to_string())),
            ),
        ]);
        self.call(Method::POST, "/admin/tokens", Some(&body)).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenResult>> {
        self.call(Method::GET, "/admin/tokens", None).await
    }

    async fn revoke_token(&self, token_id: &str, reason: &str) -> Result<TokenResult> {
        let body = Value::map([("reason", text(reason))]);
        let path = format!("/admin/tokens/{}/revoke", encode_segment(token_id));
        self.call(Method::POST, &path, Some(&body)).await
    }
}

/// `GET /events/stream` as a stream of events; reconnects with `Last-Event-ID` after the last
/// event received when the connection drops. An error answer (a refused token) ends it.
fn follow_stream(client: HttpClient, after: u64) -> BoxStream<'static, Result<Event>> {
    struct State {
        client: HttpClient,
        last: u64,
        body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
        decoder: crate::SseDecoder,
        pending: std::collections::VecDeque<String>,
        failed: bool,
    }
    let state = State {
        client,
        last: after,
        body: None,
        decoder: crate::SseDecoder::default(),
        pending: Default::default(),
        failed: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.failed {
            return None;
        }
        loop {
            if let Some(data) = state.pending.pop_front() {
                let event = artifact_core::jcs::from_json(data.as_bytes())
                    .map_err(ClientError::from)
                    .and_then(|value| Ok(Event::from_value(&value)?));
                return Some(match event {
                    Ok(event) => {
                        state.last = event.seq;
                        (Ok(event), state)
                    }
                    Err(error) => {
                        state.failed = true;
                        (Err(error), state)
                    }
                });
            }
            match &mut state.body {
                Some(body) => match body.next().await {
                    Some(Ok(chunk)) => match state.decoder.push(&chunk) {
                        Ok(events) => state.pending.extend(events),
                        Err(error) => {
                            state.failed = true;
                            return Some((Err(error), state));
                        }
                    },
                    // Dropped: reconnect after the last event received.
                    Some(Err(_)) | None => {
                        state.body = None;
                        state.decoder = crate::SseDecoder::default();
                        tokio::time::sleep(FOLLOW_RECONNECT).await;
                    }
                },
                None => {
                    let request = state
                        .client
                        .request(Method::GET, &format!("/events/stream?after={}", state.last))
                        .header("accept", "text/event-stream")
                        .header("last-event-id", state.last.to_string());
                    match state.client.send(request).await {
                        Ok(response) => state.body = Some(response.bytes_stream().boxed()),
                        Err(error) => {
                            state.failed = true;
                            return Some((Err(error), state));
                        }
                    }
                }
            }
        }
    })
    .boxed()
}

/// Whether a failed request may succeed when sent again: no answer at all (the connection
/// failed), a timeout, an offset conflict (resumed from the server's offset), throttling, or a
/// transient server error. A full disk (507), an oversize body (413) or an auth failure is not.
fn retryable(error: &ClientError) -> bool {
    match error {
        ClientError::Unreachable { .. } => true,
        ClientError::Status { status, .. } => {
            matches!(status, 408 | 409 | 429 | 500 | 502..=504)
        }
        _ => false,
    }
}

async fn read_full(file: &mut tokio::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        let n = file.read(&mut buffer[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Turns an error response into [`ClientError::Status`]: the problem's detail and the status.
async fn problem(response: Response) -> ClientError {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    let detail = artifact_core::jcs::from_json(&body)
        .ok()
        .and_then(|value| match value {
            Value::Map(map) => map.get("detail").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    let hint = match status {
        StatusCode::UNAUTHORIZED => " (set ARTIFACTSTORE_TOKEN)",
        _ => "",
    };
    ClientError::Status {
        status: status.as_u16(),
        message: format!("{detail} (HTTP {}){hint}", status.as_u16()),
    }
}
