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

/// A parsed `Range` header (RFC 9110 §14.1.2, §14.2). `None` means "answer with the whole
/// representation (200)", which is what this server does, always, for:
/// - no `Range` header;
/// - a range unit other than `bytes` (RFC 9110: a server MUST ignore a range unit it does not
///   understand); the unit is compared case-insensitively, so `Bytes=0-1` is a byte range;
/// - more than one range (`bytes=0-1,5-9`): the server sends no `multipart/byteranges`, and
///   RFC 9110 lets it ignore `Range`; a syntactically bad element still gets 416;
/// - a suffix range of a zero-length representation (there is no byte to name).
///
/// One syntactically bad byte range (anything but `N-`, `N-M` or `-N` of ASCII digits, so
/// `bytes=+1-2` too), a range ending before it starts, `-0`, or a range starting at or after
/// the end is 416 with `Content-Range: bytes */SIZE`.
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
    let malformed = || unsatisfiable(format!("malformed range `{}`", text.escape_debug()));
    let (unit, set) = text.split_once('=').ok_or_else(malformed)?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return Ok(None);
    }
    // range-set = 1#range-spec: elements separated by OWS "," OWS (empty elements tolerated).
    let specs: Vec<RangeSpec> = set
        .split(',')
        .map(|element| element.trim_matches([' ', '\t']))
        .filter(|element| !element.is_empty())
        .map(|element| RangeSpec::parse(element).ok_or_else(malformed))
        .collect::<ApiResult<_>>()?;
    let spec = match specs.as_slice() {
        [] => return Err(malformed()),
        [one] => *one,
        _ => return Ok(None),
    };
    let range = match spec {
        RangeSpec::Suffix(0) => {
            return Err(unsatisfiable(
                "a suffix range of 0 bytes is empty".to_owned(),
            ));
        }
        RangeSpec::Suffix(_) if size == 0 => return Ok(None),
        RangeSpec::Suffix(suffix) => ByteRange {
            start: size.saturating_sub(suffix),
            end: None,
        },
        RangeSpec::From(start) => ByteRange { start, end: None },
        RangeSpec::Between(start, last) => {
            if last < start {
                return Err(unsatisfiable(format!(
                    "range `{}` ends before it starts",
                    text.escape_debug()
                )));
            }
            ByteRange {
                start,
                end: Some(last.saturating_add(1)),
            }
        }
    };
    if range.resolve(size).is_none() {
        return Err(unsatisfiable(format!(
            "range `{}` is outside the blob's {size} bytes",
            text.escape_debug()
        )));
    }
    Ok(Some(range))
}

/// One `range-spec` of RFC 9110 §14.1.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeSpec {
    /// `first-` .
    From(u64),
    /// `first-last` (inclusive).
    Between(u64, u64),
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// Parses `N-`, `N-M` or `-N` where each number is 1*DIGIT (no sign, no spaces); numbers
    /// beyond u64 saturate (they are beyond any blob anyway).
    fn parse(text: &str) -> Option<Self> {
        let (first, last) = text.split_once('-')?;
        let number = |digits: &str| -> Option<u64> {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(digits.parse::<u64>().unwrap_or(u64::MAX))
        };
        match (first.is_empty(), last.is_empty()) {
            (true, false) => number(last).map(RangeSpec::Suffix),
            (false, true) => number(first).map(RangeSpec::From),
            (false, false) => Some(RangeSpec::Between(number(first)?, number(last)?)),
            (true, true) => None,
        }
    }
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

/// Streams a request body into the store as one blob checked against `digests`, recorded by
/// `actor`, enforcing `[server] max_blob_bytes` (413 above it; 400 for a body cut short or a
/// digest mismatch, nothing stored). Shared by `PUT /blobs/{digest}` and the OCI
/// single-request upload.
pub(crate) async fn ingest_body(
    state: &AppState,
    actor: &str,
    body: Body,
    digests: &[AnyDigest],
) -> ApiResult<BlobRecord> {
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
    match state.store().ingest_blob(actor, reader, digests).await {
        Ok(record) => Ok(record),
        Err(artifact_core::Error::Io(e)) if e.kind() == std::io::ErrorKind::FileTooLarge => {
            Err(ApiError::too_large(e.to_string()))
        }
        Err(artifact_core::Error::Io(e)) => Err(ApiError::bad_request(format!(
            "the request body was interrupted: {e}"
        ))),
        Err(e) => Err(e.into()),
    }
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
    let record = ingest_body(&state, &actor, body, &[digest]).await?;
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
        crate::packages::json_response(&artifact_core::results::encode(
            &artifact_core::results::BlobResult::from(&record),
        )?),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Result<Option<ByteRange>, u16> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        parse_range(&headers, size).map_err(|e| e.status().as_u16())
    }

    fn span(start: u64, end: Option<u64>) -> Result<Option<ByteRange>, u16> {
        Ok(Some(ByteRange { start, end }))
    }

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        assert_eq!(range("bytes=1-2", 10), span(1, Some(3)));
        assert_eq!(
            range("Bytes=1-2", 10),
            span(1, Some(3)),
            "the unit is case-insensitive"
        );
        assert_eq!(range("BYTES=5-", 10), span(5, None));
        assert_eq!(range("bytes=-3", 10), span(7, None));
        assert_eq!(
            range("bytes=-30", 10),
            span(0, None),
            "a long suffix is the whole"
        );
        assert_eq!(
            range("bytes=2-99999999999999999999999", 10),
            span(2, Some(u64::MAX))
        );
        assert_eq!(
            range("bytes= 1-2 ", 10),
            span(1, Some(3)),
            "OWS around elements"
        );
        assert_eq!(
            range("bytes=1-2,", 10),
            span(1, Some(3)),
            "an empty list element"
        );
        // Signs, spaces inside a range, other garbage: 416.
        for bad in [
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=-+2",
            "bytes=1 -2",
            "bytes=a-b",
            "bytes=-",
            "bytes=",
            "bytes",
            "bytes=1-2,x",
            "bytes=0x1-2",
        ] {
            assert_eq!(range(bad, 10), Err(416), "{bad}");
        }
        // Unsatisfiable: 416.
        for bad in ["bytes=9-2", "bytes=-0", "bytes=10-", "bytes=10-20"] {
            assert_eq!(range(bad, 10), Err(416), "{bad}");
        }
        // The whole representation: another unit, several ranges, a suffix of nothing.
        assert_eq!(range("items=0-1", 10), Ok(None));
        assert_eq!(range("bytes=0-1,3-4", 10), Ok(None));
        assert_eq!(range("bytes=0-1, 3-", 10), Ok(None));
        assert_eq!(range("bytes=-5", 0), Ok(None));
    }
}
