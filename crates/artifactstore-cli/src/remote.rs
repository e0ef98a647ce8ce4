//! The HTTP client of `--server` mode: JSON calls, problem+json errors, resumable uploads,
//! verified downloads and the SSE event stream.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use artifact_core::cbor::Value;
use artifact_core::digest::{BlobInfo, DualHasher};
use artifact_core::event::Event;
use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWrite, AsyncWriteExt as _};

/// Bytes per PATCH request of an upload session.
const UPLOAD_CHUNK: usize = 16 << 20;
/// Attempts per chunk before giving up (each failure re-reads the server's offset).
const UPLOAD_ATTEMPTS: u32 = 6;

/// A server and the token to call it with.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// Encodes a path segment (package refs contain `:` and `@`, file paths `/`).
pub(crate) fn encode_segment(text: &str) -> String {
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
pub(crate) fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

impl Remote {
    pub(crate) fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--server `{base}` must be an http:// or https:// URL");
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base,
            token,
            client,
        })
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends; a non-success status becomes an error carrying the problem's detail.
    pub(crate) async fn send(&self, builder: RequestBuilder) -> anyhow::Result<Response> {
        let response = builder
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach the server {}: {e}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(problem(response).await)
    }

    pub(crate) async fn get_value(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.send(self.request(Method::GET, path)).await?;
        parse_value(response).await
    }

    pub(crate) async fn post_value(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .send(
                self.request(Method::POST, path)
                    .header("content-type", "application/json")
                    .body(artifact_core::jcs::to_jcs(body)),
            )
            .await?;
        parse_value(response).await
    }

    /// POSTs without a body (query parameters only) and parses the JSON answer.
    pub(crate) async fn post_empty(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.send(self.request(Method::POST, path)).await?;
        parse_value(response).await
    }

    /// GETs `path` and decodes the answer into the typed result of its route; a missing or
    /// renamed member is an error naming `GET <route>`.
    pub(crate) async fn get_result<T: artifact_core::results::Dto>(
        &self,
        path: &str,
    ) -> anyhow::Result<T> {
        let value = self.get_value(path).await?;
        Ok(artifact_core::results::decode(&value, &route("GET", path))?)
    }

    /// POSTs to `path` without a body and decodes the answer into the typed result of its
    /// route; a missing or renamed member is an error naming `POST <route>`.
    pub(crate) async fn post_result<T: artifact_core::results::Dto>(
        &self,
        path: &str,
    ) -> anyhow::Result<T> {
        let value = self.post_empty(path).await?;
        Ok(artifact_core::results::decode(
            &value,
            &route("POST", path),
        )?)
    }

    /// POSTs `body` as JSON to `path` and decodes the answer into the typed result of its
    /// route; a missing or renamed member is an error naming `POST <route>`.
    pub(crate) async fn post_value_result<T: artifact_core::results::Dto>(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<T> {
        let value = self.post_value(path, body).await?;
        Ok(artifact_core::results::decode(
            &value,
            &route("POST", path),
        )?)
    }

    pub(crate) async fn get_bytes(&self, path: &str, accept: &str) -> anyhow::Result<Vec<u8>> {
        let response = self
            .send(self.request(Method::GET, path).header("accept", accept))
            .await?;
        Ok(response.bytes().await?.to_vec())
    }

    pub(crate) async fn get_events(&self, path: &str) -> anyhow::Result<Vec<Event>> {
        match self.get_value(path).await? {
            Value::Array(items) => items
                .iter()
                .map(|item| Event::from_value(item).map_err(anyhow::Error::from))
                .collect(),
            _ => bail!("the server answered {path} with something other than an array"),
        }
    }

    /// Streams a download into `out`, verifying size and both digests against `expected`;
    /// returns the bytes written. The caller decides what to do with a partial `out` on error.
    pub(crate) async fn download<W: AsyncWrite + Unpin>(
        &self,
        path: &str,
        expected: &BlobInfo,
        out: &mut W,
        progress: &indicatif::ProgressBar,
    ) -> anyhow::Result<u64> {
        let response = self.send(self.request(Method::GET, path)).await?;
        let mut hasher = DualHasher::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| anyhow!("download of {path} was interrupted: {e}"))?;
            hasher.update(&chunk);
            if hasher.size() > expected.size {
                bail!(
                    "{path}: the server sent more than the recorded {} bytes",
                    expected.size
                );
            }
            out.write_all(&chunk).await?;
            progress.inc(chunk.len() as u64);
        }
        let actual = hasher.finalize();
        if actual != *expected {
            bail!(
                "{path}: downloaded bytes are corrupt ({} bytes hashing to {}, expected {} bytes {})",
                actual.size,
                actual.blake3,
                expected.size,
                expected.blake3
            );
        }
        out.flush().await?;
        Ok(actual.size)
    }

    /// Uploads a file through a resumable session, hashing it on the way; returns its digests.
    /// A failed chunk is retried from the offset the server reports (`HEAD`), so an interrupted
    /// transfer resumes instead of starting over; an answer no retry can change (a full disk's
    /// 507, a 413, a refused token) is not retried. When the upload fails for good, the session
    /// is deleted (`DELETE`), so its bytes do not wait for the server's `upload_ttl`.
    pub(crate) async fn upload_file(
        &self,
        path: &Path,
        progress: &indicatif::ProgressBar,
    ) -> anyhow::Result<BlobInfo> {
        let mut file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let created = self.send(self.request(Method::POST, "/uploads")).await?;
        let location = created
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the server did not say where the upload session is"))?;
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

    /// The chunks and the finishing PUT of [`Remote::upload_file`].
    async fn upload_into(
        &self,
        location: &str,
        file: &mut tokio::fs::File,
        path: &Path,
        progress: &indicatif::ProgressBar,
    ) -> anyhow::Result<BlobInfo> {
        let location = location.to_owned();
        let mut hasher = DualHasher::new();
        let mut offset: u64 = 0;
        let mut buffer = vec![0u8; UPLOAD_CHUNK];
        loop {
            let filled = read_full(file, &mut buffer).await?;
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
                        self.request(Method::PATCH, &location)
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
                            return Err(error.context(format!(
                                "upload of {} failed after {attempt} attempts",
                                path.display()
                            )));
                        }
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                        // Where did the server get to? Resume from there.
                        let server_offset = self.upload_offset(&location).await?;
                        if server_offset < chunk_start
                            || server_offset > chunk_start + filled as u64
                        {
                            bail!(
                                "the server's upload offset {server_offset} is outside the chunk being sent ({chunk_start}..{})",
                                chunk_start + filled as u64
                            );
                        }
                        sent_from = (server_offset - chunk_start) as usize;
                    }
                }
            }
            hasher.update_parallel(&chunk);
            offset += filled as u64;
            progress.inc(filled as u64);
        }
        let info = hasher.finalize();
        let finish = format!(
            "{location}?digest={}&digest={}",
            encode_segment(&info.blake3.to_string()),
            encode_segment(&info.sha256.to_string())
        );
        self.send(
            self.request(Method::PUT, &finish)
                .header("upload-offset", offset.to_string()),
        )
        .await?;
        // Rewind is not needed; the file is done.
        let _ = file.seek(std::io::SeekFrom::Start(0)).await;
        Ok(info)
    }

    async fn upload_offset(&self, location: &str) -> anyhow::Result<u64> {
        let response = self.send(self.request(Method::HEAD, location)).await?;
        response
            .headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("the server did not report the upload offset"))
    }

    /// Follows `GET /events/stream`, calling `each` for every event; reconnects with
    /// `Last-Event-ID` when the connection drops. Never returns on success.
    pub(crate) async fn follow_events(
        &self,
        after: u64,
        mut each: impl FnMut(&Event) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut last = after;
        loop {
            let response = self
                .send(
                    self.request(Method::GET, &format!("/events/stream?after={last}"))
                        .header("accept", "text/event-stream")
                        .header("last-event-id", last.to_string()),
                )
                .await?;
            let mut stream = response.bytes_stream();
            let mut decoder = crate::sse::SseDecoder::default();
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else { break };
                for data in decoder.push(&chunk)? {
                    let value = artifact_core::jcs::from_json(data.as_bytes())?;
                    let event = Event::from_value(&value)?;
                    last = event.seq;
                    each(&event)?;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Whether a failed request may succeed when sent again: no answer at all (the connection
/// failed), a timeout, an offset conflict (resumed from the server's offset), throttling, or a
/// transient server error. A full disk (507), an oversize body (413) or an auth failure is not.
fn retryable(error: &anyhow::Error) -> bool {
    match error.downcast_ref::<HttpStatus>() {
        None => true,
        Some(HttpStatus { status, .. }) => matches!(status, 408 | 409 | 429 | 500 | 502..=504),
    }
}

/// An error answer of the server: the status and the problem's one-line description.
#[derive(Debug)]
struct HttpStatus {
    status: u16,
    message: String,
}

impl std::fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpStatus {}

async fn read_full(file: &mut tokio::fs::File, buffer: &mut [u8]) -> anyhow::Result<usize> {
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

/// `METHOD /path` without the query, for error messages.
fn route(method: &str, path: &str) -> String {
    format!("{method} {}", path.split('?').next().unwrap_or(path))
}

async fn parse_value(response: Response) -> anyhow::Result<Value> {
    let bytes = response.bytes().await?;
    Ok(artifact_core::jcs::from_json(&bytes)?)
}

/// Turns an error response into a one-line error: the problem's detail and the status.
async fn problem(response: Response) -> anyhow::Error {
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
    anyhow::Error::new(HttpStatus {
        status: status.as_u16(),
        message: format!("{detail} (HTTP {}){hint}", status.as_u16()),
    })
}
