//! `PUT|HEAD|GET /blobs/{digest}`: monolithic upload and (ranged) download by either digest.

use artifact_core::auth::Role;
use artifact_core::blob::{BlobRead, ByteRange};
use artifact_core::catalog::BlobRecord;
use artifact_core::digest::AnyDigest;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{NoQuery, Path};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/blobs/{digest}", get(download).head(head).put(upload))
}

pub(crate) fn parse_digest(text: &str) -> ApiResult<AnyDigest> {
    text.parse()
        .map_err(|e| ApiError::bad_request(format!("digest `{}`: {e}", text.escape_debug())))
}

/// A parsed `Range` header: `None` when absent.
pub(crate) fn parse_range(headers: &HeaderMap, size: u64) -> ApiResult<Option<ByteRange>> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let unsatisfiable = |detail: String| {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range not satisfiable",
            detail,
        )
        .with_header(header::CONTENT_RANGE, format!("bytes */{size}"))
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("the Range header is not ASCII"))?;
    let spec = text.strip_prefix("bytes=").ok_or_else(|| {
        unsatisfiable(format!("only `bytes=` ranges are supported, got `{text}`"))
    })?;
    if spec.contains(',') {
        return Err(unsatisfiable(
            "multiple ranges are not supported; ask for one".to_owned(),
        ));
    }
    let (first, last) = spec
        .split_once('-')
        .ok_or_else(|| unsatisfiable(format!("malformed range `{text}`")))?;
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| unsatisfiable(format!("malformed range `{text}`")))
    };
    let range = match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => {
            let suffix = number(last)?;
            if suffix == 0 {
                return Err(unsatisfiable(
                    "a suffix range of 0 bytes is empty".to_owned(),
                ));
            }
            ByteRange {
                start: size.saturating_sub(suffix),
                end: None,
            }
        }
        // bytes=N-
        (false, true) => ByteRange {
            start: number(first)?,
            end: None,
        },
        // bytes=N-M (inclusive)
        (false, false) => {
            let start = number(first)?;
            let last = number(last)?;
            if last < start {
                return Err(unsatisfiable(format!(
                    "range `{text}` ends before it starts"
                )));
            }
            ByteRange {
                start,
                end: Some(last.saturating_add(1)),
            }
        }
        (true, true) => return Err(unsatisfiable(format!("malformed range `{text}`"))),
    };
    if range.resolve(size).is_none() {
        return Err(unsatisfiable(format!(
            "range `{text}` is outside the blob's {size} bytes"
        )));
    }
    Ok(Some(range))
}

fn digest_headers(record: &BlobRecord) -> [(header::HeaderName, HeaderValue); 4] {
    let text = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("-"));
    [
        (
            header::ETAG,
            text(format!("\"{}\"", record.info.blake3.to_hex())),
        ),
        (
            header::HeaderName::from_static("artifactstore-blake3"),
            text(record.info.blake3.to_string()),
        ),
        (
            header::HeaderName::from_static("artifactstore-sha256"),
            text(record.info.sha256.to_string()),
        ),
        (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
    ]
}

/// Streams an opened blob as a 200 or 206 response.
pub(crate) fn stream_response(
    state: &AppState,
    record: &BlobRecord,
    read: BlobRead,
    ranged: bool,
    media_type: &str,
) -> Response {
    let (start, end) = read.range;
    let metrics = state.metrics().clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(read.reader, 256 << 10)
        .inspect_ok(move |chunk| metrics.add_bytes_out(chunk.len() as u64));
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    for (name, value) in digest_headers(record) {
        headers.insert(name, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(media_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if ranged {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(value) = HeaderValue::from_str(&format!(
            "bytes {start}-{}/{}",
            end.saturating_sub(1),
            read.size
        )) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

async fn record(state: &AppState, digest: &AnyDigest) -> ApiResult<BlobRecord> {
    state
        .store()
        .blob(digest)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("blob not found: {digest}")))
}

/// `GET /blobs/{digest}` (either form), `Range` supported.
async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(digest): Path<String>,
    _: NoQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let digest = parse_digest(&digest)?;
    let record = record(&state, &digest).await?;
    let range = parse_range(&headers, record.info.size)?;
    let read = state.store().read_blob(&digest, range).await?;
    Ok(stream_response(
        &state,
        &record,
        read,
        range.is_some(),
        "application/octet-stream",
    ))
}

/// `HEAD /blobs/{digest}`.
async fn head(
    State(state): State<AppState>,
    caller: Caller,
    Path(digest): Path<String>,
    _: NoQuery,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let digest = parse_digest(&digest)?;
    let record = record(&state, &digest).await?;
    let mut response = StatusCode::OK.into_response();
    for (name, value) in digest_headers(&record) {
        response.headers_mut().insert(name, value);
    }
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(record.info.size));
    Ok(response)
}

/// `PUT /blobs/{digest}`: the whole blob in the body, streamed to storage while hashing;
/// 201 when stored, 200 when it already was; digest mismatch → 400, nothing stored.
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(digest): Path<String>,
    _: NoQuery,
    body: Body,
) -> ApiResult<Response> {
    let actor = caller.require(Role::Writer)?.to_owned();
    let digest = parse_digest(&digest)?;
    let existed = state.store().blob(&digest).await?.is_some();
    let limit = state.options().max_blob_bytes;
    let metrics = state.metrics().clone();
    let mut received: u64 = 0;
    let stream = body.into_data_stream().map(move |chunk| match chunk {
        Ok(bytes) => {
            received += bytes.len() as u64;
            metrics.add_bytes_in(bytes.len() as u64);
            if received > limit {
                Err(std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    format!(
                        "a blob body may carry at most {limit} bytes ([server] max_blob_bytes)"
                    ),
                ))
            } else {
                Ok(bytes)
            }
        }
        Err(e) => Err(std::io::Error::other(e)),
    });
    let reader = tokio_util::io::StreamReader::new(stream);
    let record = match state.store().ingest_blob(&actor, reader, &[digest]).await {
        Ok(record) => record,
        Err(artifact_core::Error::Io(e)) if e.kind() == std::io::ErrorKind::FileTooLarge => {
            return Err(ApiError::too_large(e.to_string()));
        }
        Err(artifact_core::Error::Io(e)) => {
            return Err(ApiError::bad_request(format!(
                "the request body was interrupted: {e}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    state.notify_appended();
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        [(
            header::LOCATION,
            HeaderValue::from_str(&format!("/blobs/{}", record.info.blake3))
                .unwrap_or(HeaderValue::from_static("/blobs")),
        )],
        crate::packages::json_response(&record.to_value()),
    )
        .into_response())
}
