//! `application/problem+json` errors (RFC 9457).

use std::collections::BTreeMap;

use artifact_core::Error;
use artifact_core::cbor::Value;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answered as problem+json. Each constructor documents its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    title: &'static str,
    detail: String,
    /// Extension members (e.g. `upload_offset`, `missing`).
    extra: BTreeMap<String, Value>,
    /// Extra response headers.
    headers: Vec<(header::HeaderName, String)>,
}

impl ApiError {
    /// Its detail.
    pub(crate) fn detail(&self) -> &str {
        &self.detail
    }

    /// The `upload_offset` member of a wrong-offset problem.
    pub(crate) fn upload_offset(&self) -> Option<u64> {
        match self.extra.get("upload_offset") {
            Some(Value::Int(n)) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    /// A problem with a status, a short title and a specific detail.
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
            extra: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad request", detail)
    }

    /// 401: no or an unknown bearer token.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
            .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"artifactstore\"")
    }

    /// 403: the principal lacks the role.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found", detail)
    }

    /// 413: a body beyond the configured limit.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload too large", detail)
    }

    /// 507: the storage a write needed is full (or over quota); nothing was stored. The detail
    /// names which storage and the operating system's reason, never a path.
    pub fn insufficient_storage(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient storage",
            detail,
        )
    }

    /// 405: the route exists but not with this method (the router adds `Allow`).
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed", detail)
    }

    /// 415.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type",
            detail,
        )
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match &error {
            Error::NotFound { .. } => ApiError::not_found(error.to_string()),
            Error::Gone(_) => ApiError::new(StatusCode::GONE, "gone", error.to_string()),
            Error::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            Error::InvalidInput(_) | Error::Cbor(_) | Error::Json(_) | Error::Digest(_) => {
                ApiError::bad_request(error.to_string())
            }
            Error::DigestMismatch { expected, actual } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "digest mismatch",
                error.to_string(),
            )
            .with("expected", Value::Text(expected.clone()))
            .with("actual", Value::Text(actual.clone())),
            Error::MissingBlobs { missing } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "missing blobs",
                error.to_string(),
            )
            .with(
                "missing",
                Value::Array(
                    missing
                        .iter()
                        .map(|m| {
                            Value::Map(BTreeMap::from([
                                ("path".to_owned(), Value::Text(m.path.clone())),
                                (
                                    "blake3".to_owned(),
                                    Value::Text(m.expected.blake3.to_string()),
                                ),
                                (
                                    "sha256".to_owned(),
                                    Value::Text(m.expected.sha256.to_string()),
                                ),
                                ("size".to_owned(), Value::Int(m.expected.size as i64)),
                            ]))
                        })
                        .collect(),
                ),
            ),
            Error::StorageFull { .. } => {
                tracing::error!(%error, "storage full");
                ApiError::insufficient_storage(error.to_string())
            }
            _ if error.is_storage_full() => {
                // The catalog (or a local file) out of space: say so, without its details.
                tracing::error!(%error, "storage full");
                ApiError::insufficient_storage(
                    "storage full: the metadata store or a local file has no space left; \
                     nothing was recorded",
                )
            }
            Error::Corrupt { .. } | Error::Integrity { .. } => {
                tracing::error!(%error, "integrity failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "integrity failure",
                    error.to_string(),
                )
            }
            _ => {
                // Internal details go to the log, not to the client.
                tracing::error!(%error, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                    "internal error; the server log has the details (see x-request-id)",
                )
            }
        }
    }
}

impl From<artifact_core::cbor::CborError> for ApiError {
    fn from(error: artifact_core::cbor::CborError) -> Self {
        ApiError::from(Error::from(error))
    }
}

impl From<artifact_core::results::EncodeError> for ApiError {
    fn from(err: artifact_core::results::EncodeError) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            err.to_string(),
        )
    }
}

impl From<artifact_core::jcs::JsonError> for ApiError {
    fn from(error: artifact_core::jcs::JsonError) -> Self {
        ApiError::from(Error::from(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("type".to_owned(), Value::Text("about:blank".to_owned()));
        body.insert("title".to_owned(), Value::Text(self.title.to_owned()));
        body.insert(
            "status".to_owned(),
            Value::Int(i64::from(self.status.as_u16())),
        );
        body.insert("detail".to_owned(), Value::Text(self.detail));
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            artifact_core::jcs::to_jcs(&Value::Map(body)),
        )
            .into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// Result of a handler.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The problem title of a status this server answers (lowercase, like the constructors').
fn title_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not found",
        405 => "method not allowed",
        408 => "request timeout",
        409 => "conflict",
        413 => "payload too large",
        415 => "unsupported media type",
        422 => "unprocessable content",
        503 => "service unavailable",
        507 => "insufficient storage",
        code if code >= 500 => "internal error",
        _ => "request refused",
    }
}

// The framework's rejections, mapped to problems here and nowhere else: the extractors of
// `crate::extract` convert with these, and `problem_responses` catches what layers answer.

impl From<axum::extract::rejection::PathRejection> for ApiError {
    /// 400 (e.g. invalid UTF-8 in a path parameter); 500 if the route is miswired.
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        let status = rejection.status();
        ApiError::new(status, title_of(status), rejection.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    /// 400: an unknown, repeated or malformed query parameter.
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        let status = rejection.status();
        ApiError::new(status, title_of(status), rejection.body_text())
    }
}

/// A buffered body's rejection: 413 names the limit, other failures keep axum's reason.
pub(crate) fn body_rejection(
    rejection: axum::extract::rejection::BytesRejection,
    limit: u64,
) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!(
            "a JSON or CBOR request body may carry at most {limit} bytes ([server] max_json_bytes)"
        ))
    } else {
        ApiError::new(status, title_of(status), rejection.body_text())
    }
}

/// 404 for unknown routes, as problem+json.
pub(crate) async fn not_found_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

/// 405 for a known route with another method, as problem+json (the router adds `Allow`).
pub(crate) async fn method_not_allowed_route(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ApiError {
    ApiError::method_not_allowed(format!(
        "{method} is not allowed on {}; the Allow header lists the methods that are",
        uri.path()
    ))
}

/// The last resort of "every error is problem+json": an error response that is not one (e.g.
/// the 408 of the request timeout layer) is replaced by a problem with the same status and
/// headers; a short plain-text body becomes its detail.
pub(crate) async fn problem_responses(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    // OCI error bodies under `/v2/` are JSON of their own shape, not problems.
    let is_oci = response.extensions().get::<crate::oci::OciBody>().is_some();
    if !(status.is_client_error() || status.is_server_error()) || is_problem || is_oci {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let detail = text.unwrap_or_else(|| match status {
        StatusCode::REQUEST_TIMEOUT => {
            "the request took longer than [server] request_timeout".to_owned()
        }
        _ => format!("the request was refused with status {}", status.as_u16()),
    });
    let mut problem = ApiError::new(status, title_of(status), detail).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().append(name, value.clone());
        }
    }
    problem
}
