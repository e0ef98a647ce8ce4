//! Retention endpoints over the library's retention calls.

use std::collections::BTreeMap;

use artifact_core::auth::Role;
use artifact_core::cbor::{self, Value};
use artifact_core::event::Event;
use artifact_core::time::Timestamp;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, NoQuery, Path, Query};
use crate::packages::{
    cbor_response, created_response, json_response, package_ref, result_response, wants_cbor,
};
use artifact_core::results::{ExplainResult, RetentionStatusResult};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/packages/{pkg}/retention", get(status))
        .route("/packages/{pkg}/retention/history", get(history))
        .route("/packages/{pkg}/retention/explain", get(explain))
        .route("/packages/{pkg}/retention/extensions", post(extend))
        .route("/packages/{pkg}/retention/holds", post(hold))
        .route(
            "/packages/{pkg}/retention/holds/{hold_id}/release",
            post(release),
        )
        .route("/retention/sweep", post(sweep))
}

/// Parses a JSON request body of the data model into a map.
pub(crate) fn body_map(body: &[u8]) -> ApiResult<BTreeMap<String, Value>> {
    match artifact_core::jcs::from_json(body)? {
        Value::Map(map) => Ok(map),
        _ => Err(ApiError::bad_request(
            "the request body must be a JSON object",
        )),
    }
}

pub(crate) fn text_member(
    map: &BTreeMap<String, Value>,
    key: &str,
    allowed: &[&str],
) -> ApiResult<String> {
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown member `{}`",
            unknown.escape_debug()
        )));
    }
    match map.get(key) {
        Some(Value::Text(text)) => Ok(text.clone()),
        Some(_) => Err(ApiError::bad_request(format!("`{key}` must be a string"))),
        None => Err(ApiError::bad_request(format!("`{key}` is required"))),
    }
}

/// The `reason` of a `{reason}` body (non-blank is the store's check).
fn reason_only(body: &[u8]) -> ApiResult<String> {
    text_member(&body_map(body)?, "reason", &["reason"])
}

fn parse_time(text: &str, what: &str) -> ApiResult<Timestamp> {
    text.parse()
        .map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
    _: NoQuery,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let status = state.store().retention_status(&package_ref(&pkg)?).await?;
    result_response(&RetentionStatusResult::from(&status))
}

fn events_response(events: &[Event], headers: &HeaderMap) -> ApiResult<Response> {
    let value = Value::Array(events.iter().map(Event::to_value).collect());
    if wants_cbor(headers) {
        Ok(cbor_response(cbor::encode(&value)?))
    } else {
        Ok(json_response(&value))
    }
}

/// `GET /packages/{pkg}/retention/history`: JCS array of envelopes, or canonical CBOR.
async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
    _: NoQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let history = state.store().retention_history(&package_ref(&pkg)?).await?;
    events_response(&history, &headers)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AsOf {
    as_of: Option<String>,
}

/// `GET /packages/{pkg}/retention/explain?as_of=`.
async fn explain(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
    Query(query): Query<AsOf>,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let as_of = query
        .as_of
        .as_deref()
        .map(|t| parse_time(t, "as_of"))
        .transpose()?;
    let explanation = state.store().explain(&package_ref(&pkg)?, as_of).await?;
    result_response(&ExplainResult::from(&explanation))
}

/// `POST /packages/{pkg}/retention/extensions` `{new_expires_at, reason}` → 201 new state.
async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
    _: NoQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let actor = caller.require(Role::RetentionAdmin)?.to_owned();
    let package = package_ref(&pkg)?;
    let map = body_map(&body)?;
    let allowed = ["new_expires_at", "reason"];
    let until = parse_time(
        &text_member(&map, "new_expires_at", &allowed)?,
        "new_expires_at",
    )?;
    let reason = text_member(&map, "reason", &allowed)?;
    let status = state
        .store()
        .extend(&actor, &package, until, &reason)
        .await?;
    created_response(&RetentionStatusResult::from(&status))
}

/// `POST /packages/{pkg}/retention/holds` `{reason}` → 201 `{hold_id}`.
async fn hold(
    State(state): State<AppState>,
    caller: Caller,
    Path(pkg): Path<String>,
    _: NoQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let actor = caller.require(Role::RetentionAdmin)?.to_owned();
    let package = package_ref(&pkg)?;
    let reason = reason_only(&body)?;
    let hold_id = state.store().hold(&actor, &package, &reason).await?;
    created_response(&artifact_core::results::HoldAppliedResult { hold_id })
}

/// `POST /packages/{pkg}/retention/holds/{hold_id}/release` `{reason}` → 201 new state.
async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Path((pkg, hold_id)): Path<(String, String)>,
    _: NoQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let actor = caller.require(Role::RetentionAdmin)?.to_owned();
    let package = package_ref(&pkg)?;
    let reason = reason_only(&body)?;
    let status = state
        .store()
        .release(&actor, &package, &hold_id, &reason)
        .await?;
    created_response(&RetentionStatusResult::from(&status))
}

/// `POST /retention/sweep?as_of=` (retention-admin) → `{as_of, newly_eligible, package_ids,
/// refused}`; an `as_of` later than the store's clock is a 400.
async fn sweep(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AsOf>,
) -> ApiResult<Response> {
    let actor = caller.require(Role::RetentionAdmin)?.to_owned();
    let as_of = query
        .as_of
        .as_deref()
        .map(|t| parse_time(t, "as_of"))
        .transpose()?;
    let report = state.store().sweep(&actor, as_of).await?;
    result_response(&artifact_core::results::SweepResult::from(&report))
}
