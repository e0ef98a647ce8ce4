//! The OCI Distribution API (v1.1) under `/v2/` (issue 14, ADR 0016): push and pull with
//! oras, skopeo and other OCI clients, onto the store's own packages, retention and log.
//!
//! - **Blobs** are the store's blobs, addressed by their `sha256:` digest (the store keeps
//!   both digests of every blob, ADR 0001). Only sha256 is accepted.
//! - **Uploads** are the store's upload sessions ([`crate::uploads`]): resumable, both digests
//!   in one pass, durable before acknowledged. Streamed and chunked `PATCH`, `PUT ?digest=`,
//!   single-request `POST ?digest=`, and cross-repository mounts.
//! - **Manifests**: a manifest pushed under a tag is a package named after the repository with
//!   the tag as its version (by digest only: version `sha256-<hex>`). Its files are
//!   `manifest.json` (the exact bytes pushed, with their media type) and every blob the
//!   manifest references (`blobs/sha256/<hex>`, with the descriptor's media type), so GC keeps
//!   every blob a live manifest references; an index also lists every file of its children,
//!   so GC keeps what pulling the index needs. The retention class comes from the annotation
//!   `org.artifactstore.retention-class`, else the repository's `[oci.repositories]` class,
//!   else `[oci] default_class` (`build-cache`). Tags are immutable, like package versions,
//!   unless the repository's rule sets `mutable_tags`: then every manifest is a package by
//!   digest and a tag is a `v1.oci.tag_set` event that moves it.
//! - **Retention beyond a package's own**: a referrer is kept while its subject is, an index's
//!   children while the index is (`ArtifactStore::explain` says so).
//! - **Errors** are OCI error bodies (`{"errors":[{"code","message","detail"}]}`), never
//!   problem+json.
//! - **Auth**: the server's bearer tokens, as `Bearer <token>` or HTTP Basic with any user
//!   name and the token as password; unauthenticated requests get 401 with a Basic challenge.
//!   Readers pull, writers push, retention admins delete.

use std::collections::BTreeSet;

use artifact_core::auth::{Principal, Role};
use artifact_core::catalog::PackageFilter;
use artifact_core::digest::{AnyDigest, BlobInfo, Sha256};
use artifact_core::error::ConflictKind;
use artifact_core::manifest::{FileEntry, Manifest};
use artifact_core::{Error, PackageRef};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use serde_json::{Value as Json, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// Marks a response as an OCI error body, which the problem+json layer leaves alone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OciBody;

/// The annotation that names a manifest's retention class.
pub const RETENTION_CLASS_ANNOTATION: &str = "org.artifactstore.retention-class";
/// The file of an OCI package that holds the manifest's exact bytes.
pub const MANIFEST_FILE: &str = artifact_core::OCI_MANIFEST_FILE;
/// The label that records a manifest's `subject` (referrers API; the store keeps a referrer
/// at least as long as its subject).
const SUBJECT_LABEL: &str = artifact_core::SUBJECT_LABEL;
/// The label that records a manifest's artifact type.
const ARTIFACT_TYPE_LABEL: &str = "oci.artifact-type";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
}

/// One OCI error answer.
#[derive(Debug)]
struct OciError {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(HeaderName, String)>,
}

type OciResult<T> = Result<T, OciError>;

impl OciError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message).with_header(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"artifactstore\", charset=\"UTF-8\"",
        )
    }

    /// The OCI form of a store or session error; `not_found` is the code a 404 gets.
    fn from_api(error: ApiError, not_found: &'static str) -> Self {
        let status = error.status();
        let code = match status {
            StatusCode::NOT_FOUND | StatusCode::GONE => not_found,
            StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
            StatusCode::FORBIDDEN => "DENIED",
            StatusCode::PAYLOAD_TOO_LARGE => "SIZE_INVALID",
            StatusCode::TOO_MANY_REQUESTS => "TOOMANYREQUESTS",
            _ if status.is_client_error() => "UNSUPPORTED",
            _ => "UNKNOWN",
        };
        let status = if status == StatusCode::GONE {
            StatusCode::NOT_FOUND
        } else {
            status
        };
        Self::new(status, code, error.detail().to_owned())
    }

    fn from_store(error: Error, not_found: &'static str) -> Self {
        Self::from_api(ApiError::from(error), not_found)
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = json!({"errors": [{"code": self.code, "message": self.message, "detail": {}}]});
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response.extensions_mut().insert(OciBody);
        response
    }
}

/// What a `/v2/` path names.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    Base,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Upload(&'a str, Option<&'a str>),
    Blob(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

/// Parses the part of the path after `/v2`. Repository names contain `/`, so each endpoint is
/// found by its last marker.
fn endpoint(rest: &str) -> Option<Endpoint<'_>> {
    if rest.is_empty() || rest == "/" {
        return Some(Endpoint::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Endpoint::Tags(name));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Endpoint::Upload(name, None));
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(Endpoint::Upload(name, Some(id)));
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return Some(Endpoint::Manifest(name, reference));
    }
    if let Some((name, digest)) = rest.rsplit_once("/referrers/") {
        return Some(Endpoint::Referrers(name, digest));
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Some(Endpoint::Blob(name, digest));
    }
    None
}

/// An OCI repository name (distribution-spec: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` components
/// separated by `/`) that is also a package name.
fn repository(name: &str) -> OciResult<&str> {
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        !bytes.is_empty()
            && bytes.first().is_some_and(alnum)
            && bytes.last().is_some_and(alnum)
            && bytes.iter().all(|b| alnum(b) || b"._-".contains(b))
            && !c.contains("..")
            && !c.contains("._")
            && !c.contains("_.")
            && !c.contains("___")
            && !c.contains("-.")
            && !c.contains(".-")
            && !c.contains("_-")
            && !c.contains("-_")
    };
    if name.split('/').all(component_ok) && artifact_core::manifest::validate_name(name).is_ok() {
        Ok(name)
    } else {
        Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            format!(
                "repository name `{}` is not a valid OCI repository name that is also a package \
                 name (lowercase components of a-z 0-9 separated by . _ __ or -, joined by /; \
                 the first at most 128 characters, up to three more of at most 41)",
                name.escape_debug()
            ),
        ))
    }
}

/// A `sha256:` digest; any other algorithm is refused (nothing else is stored).
fn sha256_digest(text: &str) -> OciResult<Sha256> {
    let invalid = |why: String| OciError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", why);
    let Some((algorithm, _)) = text.split_once(':') else {
        return Err(invalid(format!(
            "`{}` is not a digest (algorithm:hex)",
            text.escape_debug()
        )));
    };
    if algorithm != "sha256" {
        return Err(invalid(format!(
            "digest algorithm `{}` is not supported: this registry stores sha256 digests only",
            algorithm.escape_debug()
        )));
    }
    text.parse()
        .map_err(|e| invalid(format!("digest `{}`: {e}", text.escape_debug())))
}

/// Query pairs, percent-decoded.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                crate::uploads::percent_decode(key),
                crate::uploads::percent_decode(value),
            )
        })
        .collect()
}

fn query<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The caller: `Bearer <token>`, or Basic with the token as password.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> OciResult<Principal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(OciError::unauthorized(
            "authentication required: a bearer token, or Basic auth with the token as password",
        ));
    };
    let text = value
        .to_str()
        .map_err(|_| OciError::unauthorized("the Authorization header is not ASCII"))?;
    let (scheme, credentials) = text
        .trim()
        .split_once([' ', '\t'])
        .ok_or_else(|| OciError::unauthorized("the Authorization header has no credentials"))?;
    let credentials = credentials.trim();
    let token = if scheme.eq_ignore_ascii_case("bearer") {
        credentials.to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                OciError::unauthorized("Basic credentials are not base64 of user:token")
            })?;
        let (_, password) = decoded
            .split_once(':')
            .ok_or_else(|| OciError::unauthorized("Basic credentials must be user:token"))?;
        password.to_owned()
    } else {
        return Err(OciError::unauthorized(format!(
            "the Authorization scheme `{}` is not supported (use Bearer or Basic)",
            scheme.escape_debug()
        )));
    };
    crate::auth::principal_of(state, &token)
        .await
        .map_err(|e| OciError::unauthorized(e.detail().to_owned()))
}

fn require(principal: &Principal, role: Role) -> OciResult<()> {
    if principal.has(role) {
        Ok(())
    } else {
        Err(OciError::new(
            StatusCode::FORBIDDEN,
            "DENIED",
            format!("principal `{}` lacks the `{role}` role", principal.name),
        ))
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("-"))
}

fn docker_digest(sha256: &Sha256) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static("docker-content-digest"),
        header_value(&sha256.to_string()),
    )
}

/// Every `/v2/` request.
async fn dispatch(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match route(&state, &method, &uri, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn route(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> OciResult<Response> {
    let rest = uri.path().strip_prefix("/v2").unwrap_or_default();
    let found = endpoint(rest).ok_or_else(|| {
        OciError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("no OCI endpoint at `{}`", uri.path().escape_debug()),
        )
    })?;
    let principal = authenticate(state, headers).await?;
    let unsupported = || {
        OciError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!(
                "{method} is not supported on `{}`",
                uri.path().escape_debug()
            ),
        )
    };
    match found {
        Endpoint::Base => {
            require(&principal, Role::Reader)?;
            Ok((
                StatusCode::OK,
                [(
                    HeaderName::from_static("docker-distribution-api-version"),
                    "registry/2.0",
                )],
                [(header::CONTENT_TYPE, "application/json")],
                "{}",
            )
                .into_response())
        }
        Endpoint::Blob(name, digest) => {
            let name = repository(name)?;
            match *method {
                Method::GET | Method::HEAD => {
                    require(&principal, Role::Reader)?;
                    get_blob(state, name, digest, headers, method == Method::HEAD).await
                }
                Method::DELETE => Err(OciError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "UNSUPPORTED",
                    "blobs are deleted by garbage collection once no live package references \
                     them, never by a request",
                )),
                _ => Err(unsupported()),
            }
        }
        Endpoint::Upload(name, id) => {
            let name = repository(name)?;
            require(&principal, Role::Writer)?;
            let caller = Caller(principal);
            match (method.clone(), id) {
                (Method::POST, None) => start_upload(state, &caller, name, uri, body).await,
                (Method::PATCH, Some(id)) => {
                    patch_upload(state, &caller, name, id, headers, body).await
                }
                (Method::PUT, Some(id)) => finish_upload(state, &caller, name, id, uri, body).await,
                (Method::GET, Some(id)) => upload_status(state, &caller, name, id).await,
                (Method::DELETE, Some(id)) => {
                    state
                        .uploads()
                        .cancel(&caller, id)
                        .await
                        .map_err(|e| OciError::from_api(e, "BLOB_UPLOAD_UNKNOWN"))?;
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                _ => Err(unsupported()),
            }
        }
        Endpoint::Manifest(name, reference) => {
            let name = repository(name)?;
            match *method {
                Method::GET | Method::HEAD => {
                    require(&principal, Role::Reader)?;
                    get_manifest(state, name, reference, method == Method::HEAD).await
                }
                Method::PUT => {
                    require(&principal, Role::Writer)?;
                    put_manifest(state, &principal.name, name, reference, headers, body).await
                }
                Method::DELETE => {
                    require(&principal, Role::RetentionAdmin)?;
                    delete_manifest(state, name, reference).await
                }
                _ => Err(unsupported()),
            }
        }
        Endpoint::Tags(name) => {
            let name = repository(name)?;
            if *method != Method::GET {
                return Err(unsupported());
            }
            require(&principal, Role::Reader)?;
            tags(state, name, uri).await
        }
        Endpoint::Referrers(name, digest) => {
            let name = repository(name)?;
            if *method != Method::GET {
                return Err(unsupported());
            }
            require(&principal, Role::Reader)?;
            referrers(state, name, digest, uri).await
        }
    }
}

async fn get_blob(
    state: &AppState,
    _name: &str,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> OciResult<Response> {
    let sha256 = sha256_digest(digest)?;
    let digest = AnyDigest::Sha256(sha256);
    let record = state
        .store()
        .blob(&digest)
        .await
        .map_err(|e| OciError::from_store(e, "BLOB_UNKNOWN"))?
        .filter(|record| record.deleting_seq.is_none())
        .ok_or_else(|| {
            OciError::new(
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                format!("blob {sha256} is not stored"),
            )
        })?;
    if head {
        let mut response = StatusCode::OK.into_response();
        let out = response.headers_mut();
        out.insert(header::CONTENT_LENGTH, HeaderValue::from(record.info.size));
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let (name, value) = docker_digest(&sha256);
        out.insert(name, value);
        return Ok(response);
    }
    let range = crate::blobs::parse_range(headers, record.info.size).map_err(|e| {
        OciError::from_api(e, "BLOB_UNKNOWN").with_header(
            header::CONTENT_RANGE,
            format!("bytes */{}", record.info.size),
        )
    })?;
    let read = state
        .store()
        .read_blob(&digest, range)
        .await
        .map_err(|e| OciError::from_store(e, "BLOB_UNKNOWN"))?;
    let mut response = crate::blobs::stream_response(
        state,
        &record,
        read,
        range.is_some(),
        "application/octet-stream",
    );
    let (name, value) = docker_digest(&sha256);
    response.headers_mut().insert(name, value);
    Ok(response)
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn upload_answer(status: StatusCode, name: &str, id: &str, offset: u64) -> Response {
    let mut response = status.into_response();
    let out = response.headers_mut();
    out.insert(header::LOCATION, header_value(&upload_location(name, id)));
    out.insert(
        header::RANGE,
        header_value(&format!("0-{}", offset.saturating_sub(1))),
    );
    out.insert(
        HeaderName::from_static("docker-upload-uuid"),
        header_value(id),
    );
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    response
}

/// 201 with `Location` and `Docker-Content-Digest` (a stored blob or manifest).
fn created(location: &str, sha256: &Sha256) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let out = response.headers_mut();
    out.insert(header::LOCATION, header_value(location));
    let (digest_name, value) = docker_digest(sha256);
    out.insert(digest_name, value);
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    response
}

fn blob_created(name: &str, sha256: &Sha256) -> Response {
    created(&format!("/v2/{name}/blobs/{sha256}"), sha256)
}

/// `POST /v2/<name>/blobs/uploads/`: a session (202), a single-request upload with
/// `?digest=` (201), or a mount of a stored blob with `?mount=` (201; without it stored, a
/// session).
async fn start_upload(
    state: &AppState,
    caller: &Caller,
    name: &str,
    uri: &Uri,
    body: Body,
) -> OciResult<Response> {
    let pairs = query_pairs(uri);
    if let Some(mount) = query(&pairs, "mount") {
        let sha256 = sha256_digest(mount)?;
        // The store is deduplicated across repositories: any stored blob mounts.
        let stored = state
            .store()
            .blob(&AnyDigest::Sha256(sha256))
            .await
            .map_err(|e| OciError::from_store(e, "BLOB_UNKNOWN"))?
            .is_some_and(|record| record.deleting_seq.is_none());
        if stored {
            return Ok(blob_created(name, &sha256));
        }
    } else if let Some(digest) = query(&pairs, "digest") {
        let sha256 = sha256_digest(digest)?;
        crate::blobs::ingest_body(state, &caller.0.name, body, &[AnyDigest::Sha256(sha256)])
            .await
            .map_err(|e| match e.status() {
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => OciError::new(
                    StatusCode::BAD_REQUEST,
                    "DIGEST_INVALID",
                    e.detail().to_owned(),
                ),
                _ => OciError::from_api(e, "BLOB_UNKNOWN"),
            })?;
        return Ok(blob_created(name, &sha256));
    }
    let id = state
        .uploads()
        .open_for(&caller.0.name)
        .await
        .map_err(|e| OciError::from_api(e, "BLOB_UPLOAD_UNKNOWN"))?;
    state.metrics().upload_created();
    Ok(upload_answer(StatusCode::ACCEPTED, name, &id, 0))
}

/// `Content-Range: <start>-<end>` of a chunked PATCH: its start.
fn chunk_start(headers: &HeaderMap) -> OciResult<Option<u64>> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let (start, end) = text.split_once('-').unwrap_or((text, ""));
    match (
        start.parse::<u64>(),
        end.split('/').next().unwrap_or("").parse::<u64>(),
    ) {
        (Ok(start), Ok(end)) if end >= start => Ok(Some(start)),
        _ => Err(OciError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!(
                "Content-Range `{}` is not `<start>-<end>`",
                text.escape_debug()
            ),
        )),
    }
}

/// A session error in OCI terms: an out-of-order chunk is 416 with the current range.
fn session_error(error: ApiError, name: &str, id: &str) -> OciError {
    if error.status() == StatusCode::CONFLICT {
        let detail = error.detail().to_owned();
        let offset = error.upload_offset().unwrap_or(0);
        return OciError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            detail,
        )
        .with_header(header::RANGE, format!("0-{}", offset.saturating_sub(1)))
        .with_header(header::LOCATION, upload_location(name, id));
    }
    OciError::from_api(error, "BLOB_UPLOAD_UNKNOWN")
}

async fn patch_upload(
    state: &AppState,
    caller: &Caller,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> OciResult<Response> {
    let claimed = chunk_start(headers)?;
    let offset = state
        .uploads()
        .append_to(state, caller, id, claimed, body)
        .await
        .map_err(|e| session_error(e, name, id))?;
    Ok(upload_answer(StatusCode::ACCEPTED, name, id, offset))
}

async fn finish_upload(
    state: &AppState,
    caller: &Caller,
    name: &str,
    id: &str,
    uri: &Uri,
    body: Body,
) -> OciResult<Response> {
    let pairs = query_pairs(uri);
    let digest = query(&pairs, "digest").ok_or_else(|| {
        OciError::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "closing an upload needs `?digest=sha256:…`",
        )
    })?;
    let sha256 = sha256_digest(digest)?;
    state
        .uploads()
        .complete(
            state,
            caller,
            &caller.0.name,
            id,
            None,
            &[AnyDigest::Sha256(sha256)],
            body,
        )
        .await
        .map_err(|e| match e.status() {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => OciError::new(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                e.detail().to_owned(),
            ),
            _ => session_error(e, name, id),
        })?;
    Ok(blob_created(name, &sha256))
}

async fn upload_status(
    state: &AppState,
    caller: &Caller,
    name: &str,
    id: &str,
) -> OciResult<Response> {
    let offset = state
        .uploads()
        .offset(caller, id)
        .await
        .map_err(|e| session_error(e, name, id))?;
    Ok(upload_answer(StatusCode::NO_CONTENT, name, id, offset))
}

/// The package version of a reference: a tag as is, a digest as `sha256-<hex>`.
fn version_of(reference: &str) -> OciResult<(String, Option<Sha256>)> {
    if reference.contains(':') {
        let sha256 = sha256_digest(reference)?;
        return Ok((format!("sha256-{}", sha256.to_hex()), Some(sha256)));
    }
    let tag_ok = {
        let bytes = reference.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 128
            && bytes[0].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
    };
    if !tag_ok || reference.starts_with("sha256-") {
        return Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            format!(
                "tag `{}` must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit \
                 (and not `sha256-…`, which names a manifest pushed by digest)",
                reference.escape_debug()
            ),
        ));
    }
    Ok((reference.to_owned(), None))
}

/// The media types a manifest may have (what `GET /v2/<name>/manifests/<digest>` may serve
/// from an index's listing of a child).
const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// The most children an index may list.
const MAX_INDEX_CHILDREN: usize = 4096;
/// How many times one manifest may be pushed again after GC purged it (each push is a package
/// `sha256-<hex>`, `sha256-<hex>.2`, …: a purged package's version is never reused).
const MAX_INCARNATIONS: u32 = 1000;

/// The live package of `name` whose `manifest.json` is `reference` (a tag, or a digest). A
/// tag names what its latest `v1.oci.tag_set` set while that package is live, else the
/// version of that name. With `from_index`, a digest no live package has as `manifest.json`
/// is also found as a child a live index of the repository lists (so an index stays pullable
/// whatever becomes of its children's packages): then the record and the manifest are the
/// index's. Returns the package's record, its manifest, and the entry of the OCI manifest.
async fn manifest_package(
    state: &AppState,
    name: &str,
    reference: &str,
    from_index: bool,
) -> OciResult<(artifact_core::catalog::PackageRecord, Manifest, FileEntry)> {
    let (version, digest) = version_of(reference)?;
    let unknown = || {
        OciError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("no manifest `{reference}` in repository `{name}`"),
        )
    };
    let store = state.store();
    let tagged = match digest {
        None => store
            .oci_tag(name, &version)
            .await
            .map_err(|e| OciError::from_store(e, "MANIFEST_UNKNOWN"))?,
        Some(_) => None,
    };
    // A tag whose package is gone falls back to the version of that name.
    let tagged = match tagged {
        Some((id, _)) => match store.live_package(&PackageRef::Id(id)).await {
            Ok(record) => Some(record.package_id),
            Err(Error::Gone(_) | Error::NotFound { .. }) => None,
            Err(other) => return Err(OciError::from_store(other, "MANIFEST_UNKNOWN")),
        },
        None => None,
    };
    let package_id = match (tagged, digest) {
        (Some(id), _) => id,
        (None, None) => store
            .resolve(&PackageRef::NameVersion {
                name: name.to_owned(),
                version,
            })
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => unknown(),
                other => OciError::from_store(other, "MANIFEST_UNKNOWN"),
            })?,
        (None, Some(sha256)) => {
            match store
                .package_with_file(name, MANIFEST_FILE, &sha256)
                .await
                .map_err(|e| OciError::from_store(e, "MANIFEST_UNKNOWN"))?
            {
                Some(id) => id,
                None if from_index => {
                    let path = artifact_core::oci_blob_path(&sha256);
                    let index = store
                        .package_with_file(name, &path, &sha256)
                        .await
                        .map_err(|e| OciError::from_store(e, "MANIFEST_UNKNOWN"))?
                        .ok_or_else(unknown)?;
                    let record = store
                        .live_package(&PackageRef::Id(index))
                        .await
                        .map_err(|_| unknown())?;
                    let (manifest, _) = store
                        .manifest(&PackageRef::Id(index))
                        .await
                        .map_err(|e| OciError::from_store(e, "MANIFEST_UNKNOWN"))?;
                    let entry = manifest
                        .file(&path)
                        .filter(|f| {
                            f.media_type
                                .as_deref()
                                .is_some_and(|t| MANIFEST_MEDIA_TYPES.contains(&t))
                        })
                        .cloned()
                        .ok_or_else(unknown)?;
                    return Ok((record, manifest, entry));
                }
                None => return Err(unknown()),
            }
        }
    };
    let record = store
        .live_package(&PackageRef::Id(package_id))
        .await
        .map_err(|e| match e {
            Error::Gone(_) | Error::NotFound { .. } => unknown(),
            other => OciError::from_store(other, "MANIFEST_UNKNOWN"),
        })?;
    let (manifest, _) = store
        .manifest(&PackageRef::Id(package_id))
        .await
        .map_err(|e| OciError::from_store(e, "MANIFEST_UNKNOWN"))?;
    let entry = manifest.file(MANIFEST_FILE).cloned().ok_or_else(unknown)?;
    Ok((record, manifest, entry))
}

async fn get_manifest(
    state: &AppState,
    name: &str,
    reference: &str,
    head: bool,
) -> OciResult<Response> {
    let (_, _, entry) = manifest_package(state, name, reference, true).await?;
    let media_type = entry
        .media_type
        .clone()
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_owned());
    let mut response = if head {
        StatusCode::OK.into_response()
    } else {
        let read = state
            .store()
            .read_blob(&AnyDigest::Blake3(entry.blake3), None)
            .await
            .map_err(|e| OciError::from_store(e, "MANIFEST_UNKNOWN"))?;
        Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(
            read.reader,
        )))
    };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, header_value(&media_type));
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.size));
    let (digest_name, value) = docker_digest(&entry.sha256);
    out.insert(digest_name, value);
    Ok(response)
}

/// A descriptor of a manifest: `(digest, size, media type)`.
fn descriptor(value: &Json, field: &str) -> OciResult<(Sha256, u64, Option<String>)> {
    let invalid = |why: &str| {
        OciError::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            format!("`{field}`: {why}"),
        )
    };
    let digest = value
        .get("digest")
        .and_then(Json::as_str)
        .ok_or_else(|| invalid("a descriptor needs a `digest`"))?;
    let size = value
        .get("size")
        .and_then(Json::as_u64)
        .ok_or_else(|| invalid("a descriptor needs a non-negative `size`"))?;
    let media_type = value
        .get("mediaType")
        .and_then(Json::as_str)
        .map(str::to_owned);
    Ok((sha256_digest(digest)?, size, media_type))
}

/// `PUT /v2/<name>/manifests/<reference>`: the manifest becomes a package (see the module
/// docs); every blob it references must be stored.
async fn put_manifest(
    state: &AppState,
    actor: &str,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    body: Body,
) -> OciResult<Response> {
    let (version, by_digest) = version_of(reference)?;
    let limit = usize::try_from(state.options().max_json_bytes).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        OciError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("a manifest may be at most {limit} bytes ([server] max_json_bytes): {e}"),
        )
    })?;
    let info = BlobInfo::of(&bytes);
    if let Some(claimed) = by_digest
        && claimed != info.sha256
    {
        return Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            format!("the manifest's digest is {}, not {claimed}", info.sha256),
        ));
    }
    let parsed: Json = serde_json::from_slice(&bytes).map_err(|e| {
        OciError::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            format!("the manifest is not JSON: {e}"),
        )
    })?;
    let media_type = parsed
        .get("mediaType")
        .and_then(Json::as_str)
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            OciError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
                "the manifest has no `mediaType` and the request no Content-Type",
            )
        })?;
    if parsed.get("schemaVersion").and_then(Json::as_u64) != Some(2) {
        return Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            "`schemaVersion` must be 2",
        ));
    }
    // Every blob and child manifest it references, as descriptors.
    let mut referenced = Vec::new();
    let mut children = Vec::new();
    if let Some(config) = parsed.get("config") {
        referenced.push(descriptor(config, "config")?);
    }
    for field in ["layers", "blobs", "manifests"] {
        if let Some(items) = parsed.get(field) {
            let items = items.as_array().ok_or_else(|| {
                OciError::new(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_INVALID",
                    format!("`{field}` must be an array"),
                )
            })?;
            for item in items {
                let described = descriptor(item, field)?;
                if field == "manifests" && !children.contains(&described.0) {
                    if children.len() == MAX_INDEX_CHILDREN {
                        return Err(OciError::new(
                            StatusCode::BAD_REQUEST,
                            "MANIFEST_INVALID",
                            format!(
                                "an index may list at most {MAX_INDEX_CHILDREN} distinct manifests"
                            ),
                        ));
                    }
                    children.push(described.0);
                }
                referenced.push(described);
            }
        }
    }
    let subject = match parsed.get("subject") {
        Some(subject) => Some(descriptor(subject, "subject")?.0),
        None => None,
    };
    let store = state.store();
    let policy = state.options().oci.policy(name);
    let mut files = vec![FileEntry {
        path: MANIFEST_FILE.to_owned(),
        size: info.size,
        blake3: info.blake3,
        sha256: info.sha256,
        media_type: Some(media_type.clone()),
    }];
    let mut seen = BTreeSet::new();
    for (sha256, size, descriptor_type) in referenced {
        if !seen.insert(sha256) {
            continue;
        }
        let record = store
            .blob(&AnyDigest::Sha256(sha256))
            .await
            .map_err(|e| OciError::from_store(e, "MANIFEST_BLOB_UNKNOWN"))?
            .filter(|record| record.deleting_seq.is_none() && record.info.size == size)
            .ok_or_else(|| {
                OciError::new(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_BLOB_UNKNOWN",
                    format!("the manifest references {sha256} ({size} bytes), which is not stored"),
                )
            })?;
        files.push(FileEntry {
            path: artifact_core::oci_blob_path(&sha256),
            size: record.info.size,
            blake3: record.info.blake3,
            sha256,
            media_type: descriptor_type,
        });
    }
    // An index lists its children's files too: GC keeps what pulling the index needs, by
    // the index's own package, whatever becomes of the children's packages.
    for child in &children {
        let (_, child_manifest, _) = manifest_package(state, name, &child.to_string(), false)
            .await
            .map_err(|e| {
                if e.code == "MANIFEST_UNKNOWN" {
                    OciError::new(
                        StatusCode::BAD_REQUEST,
                        "MANIFEST_BLOB_UNKNOWN",
                        format!(
                            "the index lists manifest {child}, which repository `{name}` does not hold"
                        ),
                    )
                } else {
                    e
                }
            })?;
        for file in child_manifest.files {
            if file.path != MANIFEST_FILE && seen.insert(file.sha256) {
                files.push(file);
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let annotations = parsed.get("annotations");
    let retention_class = annotations
        .and_then(|a| a.get(RETENTION_CLASS_ANNOTATION))
        .and_then(Json::as_str)
        .map_or_else(|| policy.class.clone(), str::to_owned);
    let mut labels = std::collections::BTreeMap::new();
    if let Some(subject) = subject {
        labels.insert(SUBJECT_LABEL.to_owned(), subject.to_string());
    }
    if let Some(artifact_type) = parsed.get("artifactType").and_then(Json::as_str) {
        labels.insert(ARTIFACT_TYPE_LABEL.to_owned(), artifact_type.to_owned());
    }
    // Under a tag of a repository with mutable tags, the manifest is a package by digest and
    // the tag an event naming it.
    let tag = (by_digest.is_none()).then(|| version.clone());
    if !policy.mutable_tags
        && let Some(tag) = &tag
        && let Some((_, tagged)) = store
            .oci_tag(name, tag)
            .await
            .map_err(|e| OciError::from_store(e, "MANIFEST_INVALID"))?
    {
        // A tag set while the rule was mutable is frozen: the same manifest again is fine.
        if tagged == info.sha256 {
            return Ok(manifest_created(name, &info.sha256, subject.as_ref()));
        }
        return Err(OciError::new(
            StatusCode::CONFLICT,
            "DENIED",
            format!(
                "tag `{tag}` of `{name}` was set to {tagged} while the repository's tags were \
                 mutable; it can move only under a rule with `mutable_tags = true`"
            ),
        ));
    }
    let by_version = policy.mutable_tags || by_digest.is_some();
    // A manifest the repository already holds by digest is reused while retention keeps it
    // (not while it is eligible for deletion: GC would purge it under the new tag).
    if by_version {
        for existing in store
            .packages_with_file(name, MANIFEST_FILE, &info.sha256)
            .await
            .map_err(|e| OciError::from_store(e, "MANIFEST_INVALID"))?
        {
            if deletable(state, &existing).await? {
                continue;
            }
            if policy.mutable_tags
                && let Some(tag) = &tag
            {
                set_tag(state, actor, name, tag, &existing, &info.sha256).await?;
            }
            return Ok(manifest_created(name, &info.sha256, subject.as_ref()));
        }
    }
    // The manifest's bytes are a blob of the package, durable before it.
    let written = store
        .write_blob(&bytes[..], &[AnyDigest::Sha256(info.sha256)])
        .await
        .map_err(|e| OciError::from_store(e, "MANIFEST_INVALID"))?;
    let mut manifest = Manifest {
        name: name.to_owned(),
        version: version.clone(),
        retention_class,
        files,
        labels,
    };
    // By digest, the version is `sha256-<hex>`, then `sha256-<hex>.2`, … for a manifest pushed
    // again once its earlier package is purged (or while it is eligible): a purged package's
    // version is never reused, and the new push gets retention of its own.
    let mut incarnation = 1;
    let package_id = loop {
        if by_version {
            manifest.version = if incarnation == 1 {
                format!("sha256-{}", info.sha256.to_hex())
            } else {
                format!("sha256-{}.{incarnation}", info.sha256.to_hex())
            };
        }
        match store
            .create_package_with_blobs(actor, &manifest, &[written])
            .await
        {
            Ok(created)
                if !by_version
                    || created.created
                    || !deletable(state, &created.package_id).await? =>
            {
                break created.package_id;
            }
            Ok(_) => {}
            Err(Error::Conflict(conflict))
                if by_version
                    && matches!(
                        conflict.kind(),
                        ConflictKind::NameRetired | ConflictKind::ManifestDiffers
                    ) => {}
            Err(Error::Conflict(conflict)) => {
                return Err(OciError::new(
                    StatusCode::CONFLICT,
                    "DENIED",
                    format!(
                        "tag `{reference}` of `{name}` already names another manifest: tags are \
                         immutable, like package versions ({})",
                        &*conflict
                    ),
                ));
            }
            Err(Error::InvalidInput(detail)) => {
                return Err(OciError::new(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_INVALID",
                    detail,
                ));
            }
            Err(other) => return Err(OciError::from_store(other, "MANIFEST_BLOB_UNKNOWN")),
        }
        incarnation += 1;
        if incarnation > MAX_INCARNATIONS {
            return Err(OciError::new(
                StatusCode::CONFLICT,
                "DENIED",
                format!(
                    "manifest {} of `{name}` was pushed and purged {MAX_INCARNATIONS} times",
                    info.sha256
                ),
            ));
        }
    };
    if policy.mutable_tags
        && let Some(tag) = &tag
    {
        set_tag(state, actor, name, tag, &package_id, &info.sha256).await?;
    }
    Ok(manifest_created(name, &info.sha256, subject.as_ref()))
}

/// Whether retention (the log, by the store's clock) lets `package_id` be deleted now.
async fn deletable(
    state: &AppState,
    package_id: &artifact_core::digest::PackageId,
) -> OciResult<bool> {
    let explanation = state
        .store()
        .explain(&PackageRef::Id(*package_id), None)
        .await
        .map_err(|e| OciError::from_store(e, "MANIFEST_INVALID"))?;
    Ok(explanation.eligible_for_deletion)
}

/// Moves `tag` of `name` to the package `package_id` (a `v1.oci.tag_set` event, none when the
/// tag names it already).
async fn set_tag(
    state: &AppState,
    actor: &str,
    name: &str,
    tag: &str,
    package_id: &artifact_core::digest::PackageId,
    sha256: &Sha256,
) -> OciResult<()> {
    state
        .store()
        .set_oci_tag(actor, name, tag, package_id, sha256)
        .await
        .map_err(|e| OciError::from_store(e, "MANIFEST_INVALID"))?;
    Ok(())
}

fn manifest_created(name: &str, sha256: &Sha256, subject: Option<&Sha256>) -> Response {
    let mut response = created(&format!("/v2/{name}/manifests/{sha256}"), sha256);
    if let Some(subject) = subject {
        response.headers_mut().insert(
            HeaderName::from_static("oci-subject"),
            header_value(&subject.to_string()),
        );
    }
    response
}

/// `DELETE /v2/<name>/manifests/<reference>`: retention decides. A package that is not
/// eligible for deletion (not expired, or held) is refused with the explanation; an eligible
/// one is accepted (202): garbage collection purges it and its unique blobs.
async fn delete_manifest(state: &AppState, name: &str, reference: &str) -> OciResult<Response> {
    let (record, _, _) = manifest_package(state, name, reference, false).await?;
    let explanation = state
        .store()
        .explain(&PackageRef::Id(record.package_id), None)
        .await
        .map_err(|e| OciError::from_store(e, "MANIFEST_UNKNOWN"))?;
    if !explanation.eligible_for_deletion {
        return Err(OciError::new(
            StatusCode::FORBIDDEN,
            "DENIED",
            format!(
                "`{name}` `{reference}` (package {}) is kept by retention: {}",
                record.package_id, explanation.verdict
            ),
        ));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Every live package of a repository, in creation order.
async fn repository_packages(
    state: &AppState,
    name: &str,
) -> OciResult<Vec<artifact_core::catalog::PackageRecord>> {
    let mut all = Vec::new();
    let mut after_seq = 0;
    loop {
        let page = state
            .store()
            .list_packages(&PackageFilter {
                name: Some(name.to_owned()),
                after_seq,
                limit: Some(1000),
                ..PackageFilter::default()
            })
            .await
            .map_err(|e| OciError::from_store(e, "NAME_UNKNOWN"))?;
        let Some(last) = page.last() else { break };
        after_seq = last.created_seq;
        all.extend(page.into_iter().filter(|p| p.purged_seq.is_none()));
    }
    Ok(all)
}

/// `GET /v2/<name>/tags/list[?n=&last=]`.
async fn tags(state: &AppState, name: &str, uri: &Uri) -> OciResult<Response> {
    let pairs = query_pairs(uri);
    let n = match query(&pairs, "n") {
        None => None,
        Some(text) => Some(text.parse::<usize>().map_err(|_| {
            OciError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!(
                    "`n` must be a non-negative integer, not `{}`",
                    text.escape_debug()
                ),
            )
        })?),
    };
    let last = query(&pairs, "last");
    let packages = repository_packages(state, name).await?;
    if packages.is_empty() {
        return Err(OciError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository `{name}` has no manifests"),
        ));
    }
    let live: BTreeSet<_> = packages.iter().map(|p| p.package_id).collect();
    // Tags set by events (mutable tags) whose manifest is live, and versions that are tags.
    let mut tags: BTreeSet<String> = state
        .store()
        .oci_tags(name)
        .await
        .map_err(|e| OciError::from_store(e, "NAME_UNKNOWN"))?
        .into_iter()
        .filter(|(_, package_id)| live.contains(package_id))
        .map(|(tag, _)| tag)
        .collect();
    tags.extend(
        packages
            .into_iter()
            .map(|p| p.version)
            .filter(|v| !v.starts_with("sha256-")),
    );
    let mut tags: Vec<String> = tags
        .into_iter()
        .filter(|v| last.is_none_or(|last| v.as_str() > last))
        .collect();
    let more = n.is_some_and(|n| tags.len() > n);
    if let Some(n) = n {
        tags.truncate(n);
    }
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"name": name, "tags": tags}).to_string(),
    )
        .into_response();
    if more && let Some(last) = tags.last() {
        let link = format!(
            "</v2/{name}/tags/list?n={}&last={}>; rel=\"next\"",
            n.unwrap_or_default(),
            encode_query_value(last)
        );
        response
            .headers_mut()
            .insert(header::LINK, header_value(&link));
    }
    Ok(response)
}

/// Percent-encodes a query value (tags are `A-Z a-z 0-9 . _ -`, which need none; anything
/// else is escaped).
fn encode_query_value(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=]`: an image index of the manifests in
/// the repository whose `subject` is `digest`.
async fn referrers(state: &AppState, name: &str, digest: &str, uri: &Uri) -> OciResult<Response> {
    let subject = sha256_digest(digest)?;
    let pairs = query_pairs(uri);
    let wanted_type = query(&pairs, "artifactType");
    let mut manifests = Vec::new();
    for package in repository_packages(state, name).await? {
        if package.labels.get(SUBJECT_LABEL) != Some(&subject.to_string()) {
            continue;
        }
        let artifact_type = package.labels.get(ARTIFACT_TYPE_LABEL).cloned();
        if let Some(wanted) = wanted_type
            && artifact_type.as_deref() != Some(wanted)
        {
            continue;
        }
        let (manifest, _) = state
            .store()
            .manifest(&PackageRef::Id(package.package_id))
            .await
            .map_err(|e| OciError::from_store(e, "MANIFEST_UNKNOWN"))?;
        let Some(entry) = manifest.file(MANIFEST_FILE) else {
            continue;
        };
        let mut descriptor = json!({
            "mediaType": entry.media_type.clone().unwrap_or_default(),
            "digest": entry.sha256.to_string(),
            "size": entry.size,
        });
        if let Some(artifact_type) = artifact_type {
            descriptor["artifactType"] = json!(artifact_type);
        }
        manifests.push(descriptor);
    }
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/vnd.oci.image.index.v1+json",
        )],
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        })
        .to_string(),
    )
        .into_response();
    if wanted_type.is_some() {
        response.headers_mut().insert(
            HeaderName::from_static("oci-filters-applied"),
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_found_by_their_last_marker() {
        assert_eq!(endpoint(""), Some(Endpoint::Base));
        assert_eq!(endpoint("/"), Some(Endpoint::Base));
        assert_eq!(endpoint("/a/b/tags/list"), Some(Endpoint::Tags("a/b")));
        assert_eq!(
            endpoint("/a/blobs/uploads/"),
            Some(Endpoint::Upload("a", None))
        );
        assert_eq!(
            endpoint("/a/b/blobs/uploads/xyz"),
            Some(Endpoint::Upload("a/b", Some("xyz")))
        );
        assert_eq!(
            endpoint("/a/manifests/v1"),
            Some(Endpoint::Manifest("a", "v1"))
        );
        // A repository may itself contain a marker-like component.
        assert_eq!(
            endpoint("/blobs/x/manifests/latest"),
            Some(Endpoint::Manifest("blobs/x", "latest"))
        );
        assert_eq!(
            endpoint("/a/blobs/sha256:00"),
            Some(Endpoint::Blob("a", "sha256:00"))
        );
        assert_eq!(
            endpoint("/a/referrers/sha256:00"),
            Some(Endpoint::Referrers("a", "sha256:00"))
        );
        assert_eq!(endpoint("/a/b"), None);
    }

    #[test]
    fn repository_names_follow_the_distribution_grammar() {
        for ok in ["a", "guide/board", "a.b_c__d-e/f--g/h"] {
            assert!(repository(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "a/", "/a", "a//b", "-a", "a-", "a..b", "a/b/c/d/e"] {
            assert!(repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_sha256_digests_are_accepted() {
        let hex = "a".repeat(64);
        assert!(sha256_digest(&format!("sha256:{hex}")).is_ok());
        let other = sha256_digest(&format!("sha512:{}", "a".repeat(128))).unwrap_err();
        assert_eq!(other.code, "DIGEST_INVALID");
        assert!(other.message.contains("not supported"), "{}", other.message);
        assert_eq!(
            sha256_digest("sha256:xyz").unwrap_err().code,
            "DIGEST_INVALID"
        );
    }
}
