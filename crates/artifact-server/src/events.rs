//! The event log over HTTP: pages (JSON or CBOR), the head, and a live SSE stream.

use artifact_core::paging::{DEFAULT_EVENT_LIMIT, MAX_EVENT_LIMIT};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use artifact_core::auth::Role;
use artifact_core::catalog::EventQuery;
use artifact_core::cbor::{self, Value};
use artifact_core::event::Event;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures_util::{Stream, StreamExt as _};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{NoQuery, Query};
use crate::packages::{cbor_response, json_response, wants_cbor};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/events", get(list))
        .route("/events/head", get(head))
}

pub(crate) fn streaming_router() -> Router<AppState> {
    Router::new().route("/events/stream", get(stream))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<u64>,
    limit: Option<u32>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    package_id: Option<String>,
}

/// `GET /events?after=&limit=&type=&package_id=` → array of envelopes in seq order
/// (canonical CBOR with `Accept: application/cbor`).
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let limit = query.limit.unwrap_or(DEFAULT_EVENT_LIMIT);
    if limit == 0 || limit > MAX_EVENT_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_EVENT_LIMIT}"
        )));
    }
    let package_id = query
        .package_id
        .as_deref()
        .map(|p| {
            crate::blobs::parse_digest(p).and_then(|d| match d {
                artifact_core::digest::AnyDigest::Blake3(id) => Ok(id),
                _ => Err(ApiError::bad_request("package_id must be a blake3: digest")),
            })
        })
        .transpose()?;
    let events = state
        .store()
        .events(&EventQuery {
            after: query.after.unwrap_or(0),
            limit: Some(limit),
            event_type: query.event_type,
            package_id,
        })
        .await?;
    let value = Value::Array(events.iter().map(Event::to_value).collect());
    if wants_cbor(&headers) {
        Ok(cbor_response(cbor::encode(&value)?))
    } else {
        Ok(json_response(&value))
    }
}

/// `GET /events/head` → `{seq, hash}`.
async fn head(State(state): State<AppState>, caller: Caller, _: NoQuery) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let head = state.store().head().await?;
    Ok(json_response(&Value::Map(BTreeMap::from([
        ("seq".to_owned(), Value::Int(head.seq as i64)),
        (
            "hash".to_owned(),
            head.hash
                .map_or(Value::Null, |h| Value::Text(h.to_string())),
        ),
    ]))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    after: Option<u64>,
}

/// `GET /events/stream?after=SEQ` → Server-Sent Events, `id:` = seq, `data:` = the JCS
/// envelope, in seq order without gaps; a reconnect with `Last-Event-ID: N` resumes after N.
/// The stream ends when the server begins shutting down (so the graceful shutdown completes).
async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    caller.require(Role::Reader)?;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be an event seq"))?,
        ),
    };
    // Last-Event-ID (a reconnect) wins over the query.
    let start = last_event_id.or(query.after).unwrap_or(0);
    // One stream of committed events (woken by every commit of this process, other
    // replicas' commits within `FOLLOW_RECHECK`), ended when the server begins shutting down.
    let mut shutdown = state.shutdown_watch();
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    let events = state
        .store()
        .follow(start)
        .take_until(stopping)
        .filter_map(|item| async move {
            match item {
                Ok(event) => Some(Ok(SseEvent::default()
                    .id(event.seq.to_string())
                    .event(event.event_type.clone())
                    .data(event.to_jcs()))),
                Err(error) => {
                    // The follow stream ends after an error; the client reconnects with
                    // Last-Event-ID and resumes where it was.
                    tracing::error!(%error, "event stream read failed");
                    None
                }
            }
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
