//! Resumable upload sessions (SPEC §4.4), shaped like the OCI blob upload protocol.
//!
//! A session is a file `<upload_dir>/<id>.part`; its offset is the number of bytes received.
//! Chunks must arrive in order (`Upload-Offset` equal to the current offset, else 409 with the
//! current offset). Bytes are hashed as they arrive (both digests, on a blocking thread beside
//! the file write), so finishing a session costs an fsync and a rename (fs backend on the same
//! filesystem), not a second pass. Sessions survive a restart on disk; after a restart the
//! hasher state is rebuilt from the file on the next chunk or at finish. Sessions idle longer
//! than `upload_ttl` are deleted by the reaper.
//!
//! A session belongs to the principal that created it, recorded in `<upload_dir>/<id>.owner`
//! (written before the session file, so it survives restarts): anyone else but an admin gets
//! the same 404 as for an unknown session. A session file without an owner file (left by a
//! version that did not record owners) is for admins only.
//!
//! **Takeover.** One request uses a session at a time, and every new request on a session
//! takes it over: the request holding it stops reading its body (its chunk in flight lands,
//! the bytes it received are kept) and answers 409, and the new one proceeds from the offset
//! that was written. So a client whose PATCH hangs on a half-open connection resumes at once
//! with `HEAD` + `PATCH` instead of waiting for the stalled connection to die.
//!
//! **Full disk.** A request whose bytes do not fit (`ENOSPC`, `EDQUOT`) appends nothing: the
//! session file is cut back to its offset before the request (freeing the space) and the
//! answer is 507 naming the cause.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use artifact_core::auth::Role;
use artifact_core::cbor::Value;
use artifact_core::digest::{AnyDigest, BlobInfo, DualHasher};
use artifact_store_fs::sessions::{Idle, SessionDir, start_writeback};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt as _;
use tokio::sync::{MutexGuard, watch};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{NoQuery, Path};

/// Start writeback of received bytes every this many bytes (keeps the final fsync short).
const WRITEBACK_WINDOW: u64 = 8 << 20;
/// Chunk size for hashing and writing.
const CHUNK: usize = 1 << 20;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/uploads", post(create)).route(
        "/uploads/{id}",
        axum::routing::patch(append)
            .head(status)
            .put(finish)
            .delete(abort),
    )
}

#[derive(Debug)]
struct Session {
    /// The session directory and this session's id there.
    files: SessionDir,
    id: String,
    /// Its `.part` file (what finishing ingests).
    path: PathBuf,
    offset: u64,
    /// Hash state of bytes `[0, offset)`; `None` after a restart until rebuilt.
    hasher: Option<DualHasher>,
    /// Bytes written since the last writeback start.
    unflushed: u64,
    /// A chunk still being written and hashed. It lives in the session, not in the request,
    /// so that if a request is dropped mid-chunk the next one waits for it instead of
    /// rebuilding the hash while the write is still landing.
    in_flight: Option<InFlight>,
}

/// A session, the principal that created it (`None`: a session file from before owners were
/// recorded, which only an admin may use) and the takeover counter of the requests that want
/// it.
#[derive(Debug)]
struct Slot {
    owner: Option<String>,
    session: tokio::sync::Mutex<Session>,
    /// Bumped by every request that wants the session (and by the reaper): the request
    /// holding it sees the change and lets go (see the module documentation).
    takeover: watch::Sender<u64>,
}

/// What a request that holds a session watches to learn it was taken over.
#[derive(Debug)]
struct Claim {
    generation: u64,
    watch: watch::Receiver<u64>,
}

impl Claim {
    /// Resolves once a later request (or the reaper) wants the session.
    async fn superseded(&mut self) {
        let generation = self.generation;
        // An error means the slot is gone: nobody can use the session any more either.
        let _ = self.watch.wait_for(|current| *current != generation).await;
    }
}

impl Slot {
    fn new(session: Session, owner: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            owner,
            session: tokio::sync::Mutex::new(session),
            takeover: watch::Sender::new(0),
        })
    }

    /// Takes the session over: tells the request holding it to let go, then waits for it
    /// (that request only finishes landing its chunk in flight, which is bounded).
    async fn acquire(&self) -> (MutexGuard<'_, Session>, Claim) {
        let mut generation = 0;
        self.takeover.send_modify(|current| {
            *current += 1;
            generation = *current;
        });
        let watch = self.takeover.subscribe();
        let guard = self.session.lock().await;
        (guard, Claim { generation, watch })
    }

    /// Asks whichever request holds the session to let go, without waiting.
    fn interrupt(&self) {
        self.takeover.send_modify(|current| *current += 1);
    }
}

/// The sessions of this server.
#[derive(Debug)]
pub(crate) struct UploadSessions {
    files: SessionDir,
    ttl: Duration,
    open: Mutex<HashMap<String, Arc<Slot>>>,
}

/// An IO error of a session write: 507 when the upload directory is full, else internal.
fn write_error(error: std::io::Error) -> ApiError {
    ApiError::from(artifact_core::Error::from_write(
        "the upload directory",
        error,
    ))
}

/// A blocking session-file operation on the blocking pool.
async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
}

impl UploadSessions {
    pub(crate) fn open(dir: PathBuf, ttl: Duration) -> std::io::Result<Self> {
        Ok(Self {
            files: SessionDir::open(dir)?,
            ttl,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn session(&self, id: &str, offset: u64, hasher: Option<DualHasher>) -> Session {
        Session {
            files: self.files.clone(),
            id: id.to_owned(),
            path: self.files.part_path(id),
            offset,
            hasher,
            unflushed: 0,
            in_flight: None,
        }
    }

    pub(crate) fn active(&self) -> usize {
        self.files.count()
    }

    async fn create(&self, owner: &str) -> ApiResult<String> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| {
            ApiError::from(artifact_core::Error::Io(std::io::Error::other(
                e.to_string(),
            )))
        })?;
        let id = hex::encode(bytes);
        let (files, new_id, new_owner) = (self.files.clone(), id.clone(), owner.to_owned());
        blocking(move || files.create(&new_id, &new_owner))
            .await
            .map_err(write_error)?;
        let session = self.session(&id, 0, Some(DualHasher::new()));
        if let Ok(mut open) = self.open.lock() {
            open.insert(id.clone(), Slot::new(session, Some(owner.to_owned())));
        }
        Ok(id)
    }

    /// The session, from memory or (after a restart) from its files, if `caller` may use it:
    /// its creator or an admin (a session without a recorded owner: an admin only). Anyone else
    /// gets the same 404 as for a session that does not exist, so ids are not confirmed, and
    /// cannot take the session over.
    async fn get(&self, id: &str, caller: &Caller) -> ApiResult<Arc<Slot>> {
        let not_found = || {
            ApiError::not_found(format!(
                "upload session `{}` not found (finished, aborted or expired, or not yours)",
                id.escape_debug()
            ))
        };
        if !SessionDir::valid_id(id) {
            return Err(not_found());
        }
        let entry = match self.open.lock().ok().and_then(|open| open.get(id).cloned()) {
            Some(entry) => entry,
            None => self.load(id).await.ok_or_else(not_found)?,
        };
        let allowed = caller.0.has(Role::Admin) || entry.owner.as_deref() == Some(&caller.0.name);
        if allowed { Ok(entry) } else { Err(not_found()) }
    }

    /// A session left on disk by an earlier run: its offset is its file's length.
    async fn load(&self, id: &str) -> Option<Arc<Slot>> {
        let (files, wanted) = (self.files.clone(), id.to_owned());
        let (length, owner) = blocking(move || Ok(files.find(&wanted))).await.ok()??;
        let slot = Slot::new(self.session(id, length, None), owner);
        let mut open = self.open.lock().ok()?;
        Some(open.entry(id.to_owned()).or_insert(slot).clone())
    }

    /// Drops a finished, aborted or expired session (its owner file too).
    fn forget(&self, id: &str) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(id);
        }
        self.files.remove_owner(id);
    }

    /// Deletes sessions idle longer than the TTL; returns how many.
    pub(crate) async fn reap_expired(&self) -> usize {
        let mut removed = 0;
        for idle in self.files.idle(self.ttl) {
            let id = match idle {
                Idle::OrphanOwner(id) => {
                    self.files.remove_owner(&id);
                    continue;
                }
                Idle::Session(id) => id,
            };
            // Never reap a session a request is using right now; but a request that has used
            // it without writing for the whole TTL is stalled: ask it to let go, and the next
            // round reaps the session.
            let slot = self
                .open
                .lock()
                .ok()
                .and_then(|open| open.get(&id).cloned());
            let _guard = match &slot {
                Some(slot) => match slot.session.try_lock() {
                    Ok(guard) => Some(guard),
                    Err(_) => {
                        slot.interrupt();
                        continue;
                    }
                },
                None => None,
            };
            if self.files.remove_part(&id) {
                removed += 1;
            }
            self.forget(&id);
        }
        removed
    }
}

/// Rebuilds the hasher of a session resumed after a restart (hashes the bytes on disk).
async fn ensure_hasher(session: &mut Session) -> ApiResult<()> {
    // A chunk left in flight by a dropped request lands first.
    finish_chunk(session, &mut None).await?;
    if session.hasher.is_some() {
        return Ok(());
    }
    let (files, id) = (session.files.clone(), session.id.clone());
    let hasher = blocking(move || files.rehash(&id))
        .await
        .map_err(|e| ApiError::from(artifact_core::Error::Io(e)))?;
    if hasher.size() != session.offset {
        session.offset = hasher.size();
    }
    session.hasher = Some(hasher);
    Ok(())
}

/// Appends a body to a session: each 1 MiB chunk is written to the file and hashed (one thread
/// per digest) on blocking threads while the next chunk is received. An interrupted body keeps
/// the bytes written before the interruption (the client resumes from the new offset). A body
/// over `max_blob_bytes` changes nothing: it is refused before any byte is read when its length
/// is declared, and otherwise the bytes already written are truncated away and the hash state
/// restored.
async fn append_body(
    state: &AppState,
    session: &mut Session,
    claim: &mut Claim,
    body: Body,
) -> ApiResult<()> {
    let limit = state.options().max_blob_bytes;
    let too_large = || {
        ApiError::too_large(format!(
            "a request body may carry at most {limit} bytes ([server] max_blob_bytes); \
             nothing was appended"
        ))
    };
    if axum::body::HttpBody::size_hint(&body).lower() > limit {
        return Err(too_large());
    }
    ensure_hasher(session).await?;
    let before = (session.offset, session.hasher.clone(), session.unflushed);
    let result = append_chunks(state, session, claim, body, &before).await;
    if let Err(error) = &result
        && error.status() == StatusCode::INSUFFICIENT_STORAGE
    {
        // A full disk: nothing of this request stays (its bytes would keep the disk full).
        let _ = finish_chunk(session, &mut None).await;
        let (offset, hasher, unflushed) = before;
        truncate_to(session, offset, hasher, unflushed)?;
    }
    result
}

/// The body of [`append_body`]: receive, write and hash chunk by chunk.
async fn append_chunks(
    state: &AppState,
    session: &mut Session,
    claim: &mut Claim,
    body: Body,
    before: &(u64, Option<DualHasher>, u64),
) -> ApiResult<()> {
    let limit = state.options().max_blob_bytes;
    let too_large = || {
        ApiError::too_large(format!(
            "a request body may carry at most {limit} bytes ([server] max_blob_bytes); \
             nothing was appended"
        ))
    };
    let mut file = Some(
        session
            .files
            .open_append(&session.id)
            .map_err(|e| ApiError::from(artifact_core::Error::Io(e)))?,
    );
    let mut stream = body.into_data_stream();
    let mut pending = bytes::BytesMut::new();
    let mut received: u64 = 0;
    let mut ended = false;
    while !ended {
        // Gather up to CHUNK bytes.
        let mut failure = None;
        while pending.len() < CHUNK {
            let next = tokio::select! {
                biased;
                () = claim.superseded() => {
                    // Taken over: keep what was received, land it, let go.
                    failure = Some(ApiError::new(
                        StatusCode::CONFLICT,
                        "upload taken over",
                        "another request took this upload session over; \
                         the bytes received so far were kept (HEAD reports the offset)",
                    ));
                    break;
                }
                next = stream.next() => next,
            };
            match next {
                Some(Ok(bytes)) => {
                    received += bytes.len() as u64;
                    if received > limit {
                        finish_chunk(session, &mut file).await?;
                        drop(file);
                        let (offset, hasher, unflushed) = before.clone();
                        truncate_to(session, offset, hasher, unflushed)?;
                        return Err(too_large());
                    }
                    pending.extend_from_slice(&bytes);
                }
                Some(Err(e)) => {
                    failure = Some(ApiError::bad_request(format!(
                        "the request body was interrupted: {e}"
                    )));
                    break;
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        // The previous chunk lands; this one is written and hashed while the next is gathered.
        finish_chunk(session, &mut file).await?;
        if !pending.is_empty() {
            let chunk: Bytes = pending.split().freeze();
            start_chunk(session, &mut file, chunk)?;
        }
        if let Some(failure) = failure {
            finish_chunk(session, &mut file).await?;
            return Err(failure);
        }
    }
    finish_chunk(session, &mut file).await?;
    state.metrics().add_bytes_in(received);
    Ok(())
}

/// Undoes an append: the session file is cut back to `offset` and the state before the
/// request restored. If that fails the hash state is dropped, so the next request rebuilds
/// offset and hash from the file (whatever it holds).
fn truncate_to(
    session: &mut Session,
    offset: u64,
    hasher: Option<DualHasher>,
    unflushed: u64,
) -> ApiResult<()> {
    let truncated = session.files.truncate(&session.id, offset);
    match truncated {
        Ok(()) => {
            session.offset = offset;
            session.hasher = hasher;
            session.unflushed = unflushed.min(offset);
            Ok(())
        }
        Err(error) => {
            session.hasher = None;
            session.unflushed = 0;
            Err(ApiError::from(artifact_core::Error::Io(error)))
        }
    }
}

/// One chunk being written and hashed on blocking threads; the session's file and hasher are
/// out (with the threads) until [`finish_chunk`].
#[derive(Debug)]
struct InFlight {
    writer: tokio::task::JoinHandle<std::io::Result<(File, bool)>>,
    hashing: tokio::task::JoinHandle<DualHasher>,
    unflushed: u64,
}

/// Starts writing and hashing `chunk` (the session's previous chunk must have landed).
fn start_chunk(session: &mut Session, file: &mut Option<File>, chunk: Bytes) -> ApiResult<()> {
    let mut hasher = session.hasher.take().unwrap_or_default();
    let Some(mut out) = file.take() else {
        return Err(ApiError::from(artifact_core::Error::Io(
            std::io::Error::other("session file closed"),
        )));
    };
    let flush_from = session.offset.saturating_sub(session.unflushed);
    let unflushed = session.unflushed + chunk.len() as u64;
    let for_hash = chunk.clone();
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<(File, bool)> {
        out.write_all(&chunk)?;
        let flushed = unflushed >= WRITEBACK_WINDOW;
        if flushed {
            start_writeback(&out, flush_from, unflushed);
        }
        Ok((out, flushed))
    });
    let hashing = tokio::task::spawn_blocking(move || {
        hasher.update_parallel(&for_hash);
        hasher
    });
    session.in_flight = Some(InFlight {
        writer,
        hashing,
        unflushed,
    });
    Ok(())
}

/// Waits for the session's chunk in flight, if any, and puts the file (into `file`) and the
/// hasher back. If the write failed the session keeps no hasher, so the next request rebuilds
/// it from the file.
async fn finish_chunk(session: &mut Session, file: &mut Option<File>) -> ApiResult<()> {
    let Some(chunk) = session.in_flight.take() else {
        return Ok(());
    };
    let io_error = |e: std::io::Error| ApiError::from(artifact_core::Error::Io(e));
    let (written, hashed) = tokio::join!(chunk.writer, chunk.hashing);
    let hasher = hashed.map_err(|e| io_error(std::io::Error::other(e.to_string())))?;
    let (out, flushed) = written
        .map_err(|e| io_error(std::io::Error::other(e.to_string())))?
        .map_err(write_error)?;
    session.offset = hasher.size();
    session.hasher = Some(hasher);
    session.unflushed = if flushed { 0 } else { chunk.unflushed };
    *file = Some(out);
    Ok(())
}

fn offset_headers(id: &str, offset: u64) -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::LOCATION,
            HeaderValue::from_str(&format!("/uploads/{id}"))
                .unwrap_or(HeaderValue::from_static("/uploads")),
        ),
        (
            header::HeaderName::from_static("upload-offset"),
            HeaderValue::from(offset),
        ),
        (
            // OCI-style: the inclusive range received so far.
            header::RANGE,
            HeaderValue::from_str(&format!("0-{}", offset.saturating_sub(1)))
                .unwrap_or(HeaderValue::from_static("0-0")),
        ),
    ]
}

/// `POST /uploads` → 201 `{upload_id}` with `Location`.
async fn create(State(state): State<AppState>, caller: Caller, _: NoQuery) -> ApiResult<Response> {
    let owner = caller.require(Role::Writer)?;
    let id = state.uploads().create(owner).await?;
    state.metrics().upload_created();
    let body = Value::Map(BTreeMap::from([
        ("upload_id".to_owned(), Value::Text(id.clone())),
        ("location".to_owned(), Value::Text(format!("/uploads/{id}"))),
        ("offset".to_owned(), Value::Int(0)),
    ]));
    Ok((StatusCode::CREATED, offset_headers(&id, 0), json(&body)).into_response())
}

fn json(value: &Value) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        artifact_core::jcs::to_jcs(value),
    )
}

fn expected_offset(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    match headers.get("upload-offset") {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("`Upload-Offset` must be a non-negative integer")),
    }
}

fn offset_conflict(id: &str, current: u64, claimed: u64) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "wrong upload offset",
        format!("upload {id} is at offset {current}, the request claimed {claimed}; resume from {current}"),
    )
    .with("upload_offset", Value::Int(current as i64))
    .with_header(header::HeaderName::from_static("upload-offset"), current.to_string())
}

/// `PATCH /uploads/{id}` with `Upload-Offset: N` (required) appends the body.
async fn append(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _: NoQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Role::Writer)?;
    let claimed = expected_offset(&headers)?
        .ok_or_else(|| ApiError::bad_request("PATCH needs an `Upload-Offset` header"))?;
    let offset = state
        .uploads()
        .append_to(&state, &caller, &id, Some(claimed), body)
        .await?;
    Ok((StatusCode::ACCEPTED, offset_headers(&id, offset)).into_response())
}

/// `HEAD /uploads/{id}` → `Upload-Offset`.
async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _: NoQuery,
) -> ApiResult<Response> {
    caller.require(Role::Writer)?;
    let offset = state.uploads().offset(&caller, &id).await?;
    Ok((StatusCode::NO_CONTENT, offset_headers(&id, offset)).into_response())
}

/// Query of `PUT /uploads/{id}`: `digest` repeatable.
#[derive(Debug, Default)]
pub(crate) struct Digests(pub(crate) Vec<AnyDigest>);

impl Digests {
    pub(crate) fn parse(query: Option<&str>) -> ApiResult<Self> {
        let mut digests = Vec::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key != "digest" {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{}`",
                    key.escape_debug()
                )));
            }
            let value = percent_decode(value);
            digests.push(
                value
                    .parse::<AnyDigest>()
                    .map_err(|e| ApiError::bad_request(format!("digest `{value}`: {e}")))?,
            );
        }
        Ok(Self(digests))
    }
}

/// The query of `PUT /uploads/{id}`: only `digest` (repeatable, which `Query` cannot express),
/// refused like every other route's unknown parameters.
impl<S: Send + Sync> FromRequestParts<S> for Digests {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Self::parse(parts.uri.query())
    }
}

/// Decodes `%XX` escapes (and `+` as space) of a query value.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        index += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `PUT /uploads/{id}?digest=D[&digest=D2]` (a final chunk may ride in the body, at the current
/// offset or at `Upload-Offset`) → 201 `{blake3, sha256, size}`.
async fn finish(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    digests: Digests,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let actor = caller.require(Role::Writer)?.to_owned();
    if digests.0.is_empty() {
        return Err(ApiError::bad_request(
            "PUT needs at least one `digest` query parameter (blake3:… or sha256:…)",
        ));
    }
    let claimed = expected_offset(&headers)?;
    let record = state
        .uploads()
        .complete(&state, &caller, &actor, &id, claimed, &digests.0, body)
        .await?;
    let body = artifact_core::results::encode(&artifact_core::results::BlobResult::from(&record))?;
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            HeaderValue::from_str(&format!("/blobs/{}", record.info.blake3))
                .unwrap_or(HeaderValue::from_static("/blobs")),
        )],
        json(&body),
    )
        .into_response())
}

/// `DELETE /uploads/{id}` aborts and deletes the bytes.
async fn abort(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    caller.require(Role::Writer)?;
    state.uploads().cancel(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The protocol-neutral session operations: the native `/uploads` routes and the OCI
/// `/v2/<name>/blobs/uploads/` routes are two dialects over these.
impl UploadSessions {
    /// Opens a session owned by `owner`; its id.
    pub(crate) async fn open_for(&self, owner: &str) -> ApiResult<String> {
        self.create(owner).await
    }

    /// Appends `body` at the session's offset; with `claimed`, only if that is the offset
    /// (else 409 naming the current offset). Returns the new offset.
    pub(crate) async fn append_to(
        &self,
        state: &AppState,
        caller: &Caller,
        id: &str,
        claimed: Option<u64>,
        body: Body,
    ) -> ApiResult<u64> {
        let slot = self.get(id, caller).await?;
        let (mut session, mut claim) = slot.acquire().await;
        // A chunk a dropped or taken-over request left in flight lands before the offset counts.
        finish_chunk(&mut session, &mut None).await?;
        if let Some(claimed) = claimed
            && claimed != session.offset
        {
            return Err(offset_conflict(id, session.offset, claimed));
        }
        append_body(state, &mut session, &mut claim, body).await?;
        Ok(session.offset)
    }

    /// The number of bytes the session holds (a chunk left in flight lands first).
    pub(crate) async fn offset(&self, caller: &Caller, id: &str) -> ApiResult<u64> {
        let slot = self.get(id, caller).await?;
        let (mut session, _claim) = slot.acquire().await;
        finish_chunk(&mut session, &mut None).await?;
        Ok(session.offset)
    }

    /// Appends a final `body` (at `claimed`, if given) and ingests the session as a blob
    /// checked against `digests`, recorded by `actor`. A digest mismatch stores nothing and
    /// leaves the session as it was before the request.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn complete(
        &self,
        state: &AppState,
        caller: &Caller,
        actor: &str,
        id: &str,
        claimed: Option<u64>,
        digests: &[AnyDigest],
        body: Body,
    ) -> ApiResult<artifact_core::catalog::BlobRecord> {
        let slot = self.get(id, caller).await?;
        let (mut session, mut claim) = slot.acquire().await;
        finish_chunk(&mut session, &mut None).await?;
        if let Some(claimed) = claimed
            && claimed != session.offset
        {
            return Err(offset_conflict(id, session.offset, claimed));
        }
        ensure_hasher(&mut session).await?;
        let before = (session.offset, session.hasher.clone());
        append_body(state, &mut session, &mut claim, body).await?;
        ensure_hasher(&mut session).await?;
        let info: BlobInfo = session.hasher.clone().unwrap_or_default().finalize();
        let result = state
            .store()
            .ingest_file(actor, &session.path, Some(info), digests)
            .await;
        match result {
            Ok(record) => {
                self.forget(id);
                state.metrics().upload_completed();
                Ok(record)
            }
            // A digest mismatch stores nothing and changes nothing else: the session is cut
            // back to where it was before this request (its body is not appended), so the
            // client can finish it again with the digest it meant, or DELETE it.
            // `ingest_file` leaves the file in place for that.
            Err(error @ artifact_core::Error::DigestMismatch { .. }) => {
                let (offset, hasher) = before;
                if session.offset != offset {
                    let (files, sid) = (session.files.clone(), session.id.clone());
                    blocking(move || files.truncate(&sid, offset))
                        .await
                        .map_err(write_error)?;
                    session.offset = offset;
                    session.hasher = hasher;
                    // The writeback window restarts at the cut (nothing after it is unflushed).
                    session.unflushed = 0;
                }
                Err(error.into())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Aborts a session and deletes its bytes.
    pub(crate) async fn cancel(&self, caller: &Caller, id: &str) -> ApiResult<()> {
        let slot = self.get(id, caller).await?;
        let (mut session, _claim) = slot.acquire().await;
        let _ = finish_chunk(&mut session, &mut None).await;
        session.files.remove_part(&session.id);
        self.forget(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session held by a request that has not written for the whole TTL is not reaped from
    /// under it: the reaper asks it to let go (its `superseded` resolves) and reaps the session
    /// on its next round, once the request has let go.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reaper_interrupts_a_stalled_holder_then_reaps() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = UploadSessions::open(dir.path().to_owned(), Duration::ZERO).unwrap();
        let id = sessions.create("tester").await.unwrap();
        // Idle for longer than the (zero) TTL.
        let path = sessions.files.part_path(&id);
        let past = std::time::SystemTime::now() - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(past)
            .unwrap();
        let slot = sessions.load(&id).await.expect("the session");
        let (guard, mut claim) = slot.acquire().await;
        let stalled = tokio::spawn(async move {
            claim.superseded().await;
        });
        assert_eq!(sessions.reap_expired().await, 0, "not reaped while held");
        assert!(path.exists());
        tokio::time::timeout(Duration::from_secs(60), stalled)
            .await
            .expect("the holder is asked to let go")
            .unwrap();
        drop(guard);
        assert_eq!(sessions.reap_expired().await, 1);
        assert!(!path.exists());
    }

    /// A request dropped while its chunk is in flight leaves the chunk in the session: the next
    /// request's `ensure_hasher` waits for it to land and carries on from its end, instead of
    /// rebuilding the hash from a file that is still being written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_chunk_left_in_flight_lands_before_the_next_request() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = UploadSessions::open(dir.path().to_owned(), Duration::ZERO).unwrap();
        let id = sessions.create("tester").await.unwrap();
        let path = sessions.files.part_path(&id);
        let mut session = sessions.session(&id, 0, Some(DualHasher::new()));
        let data: Vec<u8> = (0..(3 << 20) as u32).map(|i| (i >> 7) as u8).collect();
        let mut file = Some(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap(),
        );
        start_chunk(&mut session, &mut file, Bytes::from(data.clone())).unwrap();
        // The request goes away here: its file handle with it.
        drop(file);
        assert!(session.hasher.is_none() && session.in_flight.is_some());

        ensure_hasher(&mut session).await.unwrap();
        assert!(session.in_flight.is_none());
        assert_eq!(session.offset, data.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let hasher = session.hasher.take().expect("the hasher is back");
        assert_eq!(hasher.finalize(), BlobInfo::of(&data));
    }
}
