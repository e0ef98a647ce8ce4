//! Packages: create, list, get (by id or `NAME@VERSION`), manifest, files.

use artifact_core::paging::{DEFAULT_PAGE_LIMIT, MAX_LIST_LIMIT};
use artifact_core::results::{PackageCreatedResult, PackagePageResult, PackageViewResult};

use artifact_core::PackageRef;
use artifact_core::auth::Role;
use artifact_core::catalog::PackageFilter;
use artifact_core::cbor::Value;
use artifact_core::digest::AnyDigest;
use artifact_core::manifest::Manifest;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, NoQuery, Path, Query};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/packages", get(list).post(create))
        .route("/packages/{pkg}", get(show))
        .route("/packages/{pkg}/manifest", get(manifest))
}

pub(crate) fn streaming_router() -> Router<AppState> {
    Router::new().route("/packages/{pkg}/files/{*path}", get(file))
}

/// A JCS JSON response body.
pub(crate) fn json_response(value: &Value) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        artifact_core::jcs::to_jcs(value),
    )
        .into_response()
}

/// A JCS JSON response body encoding a typed result (see `artifact_core::results`).
pub(crate) fn result_response<T: artifact_core::results::Dto>(dto: &T) -> ApiResult<Response> {
    Ok(json_response(&artifact_core::results::encode(dto)?))
}

/// A 201 JSON response of a result type: what an accepted change answers.
pub(crate) fn created_response<T: artifact_core::results::Dto>(dto: &T) -> ApiResult<Response> {
    let mut response = result_response(dto)?;
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

/// A canonical CBOR response body.
pub(crate) fn cbor_response(bytes: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/cbor"),
        )],
        bytes,
    )
        .into_response()
}

/// Whether the client asked for canonical CBOR: `Accept` names `application/cbor` with a
/// q-value above 0 and at least that of JSON (the most specific of `application/json`,
/// `application/*`, `*/*`). JSON is the default: no `Accept`, `*/*`, or
/// `application/cbor;q=0` (RFC 9110 §12.5.1: q=0 means not acceptable) all get JSON.
pub(crate) fn wants_cbor(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // (specificity, q) of the most specific range matching each type.
    let mut cbor: Option<(u8, f32)> = None;
    let mut json: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let mut q = Some(1.0_f32);
        for param in parts {
            if let Some((name, value)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                q = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q));
            }
        }
        // A malformed q-value makes the range unusable rather than preferred.
        let Some(q) = q else { continue };
        let (for_cbor, for_json) = match media.as_str() {
            "application/cbor" => (Some(2), None),
            "application/json" => (None, Some(2)),
            "application/*" => (None, Some(1)),
            "*/*" => (None, Some(0)),
            _ => (None, None),
        };
        for (slot, specificity) in [(&mut cbor, for_cbor), (&mut json, for_json)] {
            if let Some(specificity) = specificity
                && slot.is_none_or(|(known, _)| specificity > known)
            {
                *slot = Some((specificity, q));
            }
        }
    }
    match cbor {
        Some((_, cbor_q)) => cbor_q > 0.0 && cbor_q >= json.map_or(0.0, |(_, q)| q),
        None => false,
    }
}

/// Parses a `{pkg}` path segment: `blake3:…` or `NAME@VERSION`.
pub(crate) fn package_ref(text: &str) -> ApiResult<PackageRef> {
    Ok(text.parse::<PackageRef>()?)
}

/// `POST /packages` with a manifest as canonical CBOR (`Content-Type: application/cbor`,
/// rejected if not canonical) or JSON → 201 (or 200 for an identical repeat) with the package
/// and its retention state, including `package_id` and `expires_at`.
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let actor = caller.require(Role::Writer)?.to_owned();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let manifest = if content_type.starts_with("application/cbor") {
        Manifest::from_canonical_bytes(&body)?
    } else if content_type.starts_with("application/json") {
        Manifest::from_json(&body)?
    } else {
        return Err(ApiError::unsupported_media_type(format!(
            "a manifest must be application/cbor (canonical) or application/json, not `{content_type}`"
        )));
    };
    let created = state.store().create_package(&actor, &manifest).await?;
    let value = artifact_core::results::encode(&PackageCreatedResult {
        package: PackageViewResult::new(&created.package, &created.retention),
        expires_at: created.retention.current_expires_at.map(|t| t.to_string()),
        created: created.created,
    })?;
    let status = if created.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = json_response(&value);
    *response.status_mut() = status;
    if let Ok(location) = HeaderValue::from_str(&format!("/packages/{}", created.package_id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Query of `GET /packages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    name: Option<String>,
    version: Option<String>,
    class: Option<String>,
    eligible: Option<bool>,
    cursor: Option<u64>,
    limit: Option<u32>,
}

/// `GET /packages?name=&version=&class=&eligible=&cursor=&limit=` → `{packages, next_cursor}`
/// in creation order; `next_cursor` is null on the last page.
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if limit == 0 || limit > MAX_LIST_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIST_LIMIT}"
        )));
    }
    let mut packages = state
        .store()
        .list_packages(&PackageFilter {
            name: query.name,
            version: query.version,
            retention_class: query.class,
            eligible: query.eligible.unwrap_or(false),
            after_seq: query.cursor.unwrap_or(0),
            limit: Some(limit + 1),
        })
        .await?;
    let more = packages.len() > limit as usize;
    packages.truncate(limit as usize);
    let next_cursor = if more {
        packages.last().map(|p| p.created_seq)
    } else {
        None
    };
    let items = state
        .store()
        .with_retention(packages)
        .await?
        .iter()
        .map(|(package, retention)| PackageViewResult::new(package, retention))
        .collect();
    result_response(&PackagePageResult {
        packages: items,
        next_cursor,
    })
}

/// `GET /packages/{pkg}`: the package and its retention state.
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
    _: NoQuery,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let (package, retention) = state.store().package_view(&package_ref(&pkg)?).await?;
    result_response(&PackageViewResult::new(&package, &retention))
}

/// `GET /packages/{pkg}/manifest`: JCS, or the canonical CBOR bytes with
/// `Accept: application/cbor` (their BLAKE3 is the package id).
async fn manifest(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
    _: NoQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let (manifest, bytes) = state.store().manifest(&package_ref(&pkg)?).await?;
    if wants_cbor(&headers) {
        Ok(cbor_response(bytes))
    } else {
        Ok(json_response(&manifest.to_value()))
    }
}

/// `GET /packages/{pkg}/files/{path}`: one file's bytes, `Range` supported; 410 once the
/// package is purged (the library's one check of a live package's file, as `pull` and `cat`).
async fn file(
    State(state): State<AppState>,
    caller: Caller,
    Path((pkg, path)): Path<(String, String)>,
    _: NoQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    artifact_core::manifest::validate_path(&path)?;
    let package = package_ref(&pkg)?;
    let file = state.store().live_file(&package, &path).await?;
    let entry = file.entry();
    let digest = AnyDigest::Blake3(entry.blake3);
    let record = state
        .store()
        .blob(&digest)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("blob of {path} not found")))?;
    let range = crate::blobs::parse_range(&headers, entry.size)?;
    let read = state.store().open_live_file(&file, range).await?;
    let media_type = entry
        .media_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    Ok(crate::blobs::stream_response(
        &state,
        &record,
        read,
        range.is_some(),
        &media_type,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        wants_cbor(&headers)
    }

    #[test]
    fn cbor_is_chosen_only_when_acceptable_and_not_less_preferred_than_json() {
        assert!(!wants_cbor(&HeaderMap::new()), "no Accept: JSON");
        assert!(accept("application/cbor"));
        assert!(accept("application/CBOR; q=0.5"));
        assert!(accept("application/cbor, application/json"), "a tie: CBOR");
        assert!(accept("application/json;q=0.4, application/cbor;q=0.5"));
        assert!(accept("application/cbor;q=0.1"), "JSON not listed at all");
        assert!(!accept("*/*"));
        assert!(!accept("application/json"));
        assert!(!accept("application/cbor;q=0"), "q=0: not acceptable");
        assert!(!accept("application/json, application/cbor;q=0"));
        assert!(!accept("application/cbor;q=0.000"));
        assert!(!accept("application/cbor;q=0.5, application/json"));
        assert!(!accept("application/cbor;q=0.5, */*"), "*/* gives JSON q=1");
        assert!(
            !accept("application/cbor;q=zero"),
            "a malformed q is ignored"
        );
        assert!(!accept("application/cborx"));
    }
}
