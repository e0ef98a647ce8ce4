//! Operations: health, readiness, metrics, the OpenAPI document, audit and admin endpoints.

use std::sync::atomic::{AtomicU64, Ordering};

use artifact_core::auth::Role;
use artifact_core::cbor::Value;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, NoQuery, Path, Query};
use crate::packages::result_response;
use crate::{AppState, OPENAPI_JSON};
use artifact_core::results::{AuditResult, FsckResult, GcResult, TokenMintedResult, VerifyResult};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/audit/verify", get(audit_verify))
        .route("/admin/rebuild-views", post(rebuild_views))
        .route("/admin/tokens", post(create_token).get(list_tokens))
        .route("/admin/tokens/{token_id}/revoke", post(revoke_token))
        .route("/admin/gc", post(gc))
        .route("/admin/verify", post(verify))
        .route("/admin/fsck", get(fsck))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GcQuery {
    grace: Option<String>,
    dry_run: Option<bool>,
}

/// `POST /admin/gc?grace=24h&dry_run=true` (admin) → the GC report.
async fn gc(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<GcQuery>,
) -> ApiResult<Response> {
    let actor = caller.require(Role::Admin)?.to_owned();
    let mut options = artifact_core::maintenance::GcOptions::default();
    if let Some(grace) = &query.grace {
        options.grace = artifact_core::time::Period::parse_duration_param(grace)
            .map_err(|e| ApiError::bad_request(format!("grace: {e}")))?;
    }
    options.dry_run = query.dry_run.unwrap_or(false);
    let report = state.store().gc(&actor, options).await?;
    result_response(&GcResult::from(&report))
}

/// The slowest scrub rate `POST /admin/verify` takes (1 MiB/s).
pub(crate) const MIN_HTTP_SCRUB_RATE: u64 = 1 << 20;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    sample: Option<f64>,
    max_bytes_per_sec: Option<u64>,
}

/// `POST /admin/verify?sample=0.1&max_bytes_per_sec=N` (admin) → the scrub report.
async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<VerifyQuery>,
) -> ApiResult<Response> {
    let actor = caller.require(Role::Admin)?.to_owned();
    if let Some(rate) = query.max_bytes_per_sec
        && rate > 0
        && rate < MIN_HTTP_SCRUB_RATE
    {
        return Err(ApiError::bad_request(format!(
            "max_bytes_per_sec {rate} is below {MIN_HTTP_SCRUB_RATE} (1 MiB/s): a scrub over \
             HTTP holds its request open; throttle slower scrubs on the data directory itself \
             (`artifactstore --data-dir DIR verify --max-bytes-per-sec N`, without --server)"
        )));
    }
    let options = artifact_core::maintenance::VerifyOptions {
        sample: query.sample.unwrap_or(1.0),
        // 0 means no limit, as in the configuration.
        max_bytes_per_sec: query.max_bytes_per_sec.filter(|r| *r > 0),
    };
    let report = state.store().verify_blobs(&actor, options, |_| {}).await?;
    result_response(&VerifyResult::from(&report))
}

/// `GET /admin/fsck` (admin) → the fsck report (`ok`, `findings`, `notes`).
async fn fsck(State(state): State<AppState>, caller: Caller, _: NoQuery) -> ApiResult<Response> {
    caller.require(Role::Admin)?;
    let report = state.store().fsck().await?;
    result_response(&FsckResult::from(&report))
}

/// `GET /healthz`: the process is up.
async fn healthz(_: NoQuery) -> &'static str {
    "ok\n"
}

/// `GET /readyz` (no token): 200 `ready` when the metadata store answers and the blob backend
/// passes its check, 503 naming the component otherwise. Safe to expose: the answer names a
/// component and nothing else (no paths, no error text: those go to the log). Concurrent probes
/// share one check (see [`ReadyCheck`]), so a flood of probes costs one backend probe at a
/// time. A full blob storage is ready — reads and audits keep working, writes answer 507 — and
/// the body says so.
async fn readyz(State(state): State<AppState>, _: NoQuery) -> ApiResult<Response> {
    match state.ready_check().run(&state).await {
        Readiness::Ready => Ok("ready\n".into_response()),
        Readiness::StorageFull => {
            Ok("ready (blob storage full: writes answer 507)\n".into_response())
        }
        Readiness::MetadataDown => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready",
            "the metadata store is unreachable",
        )),
        Readiness::BackendDown => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready",
            format!(
                "the blob backend `{}` is unreachable or not writable",
                state.store().blob_store().name()
            ),
        )),
    }
}

/// The outcome of one readiness check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    Ready,
    StorageFull,
    MetadataDown,
    BackendDown,
}

/// Single-flight readiness checks: a probe is answered by a check that started after it
/// arrived (never a stale one), but however many probes arrive together only one check runs
/// at a time, and the probes that waited for it share its outcome.
#[derive(Debug, Default)]
pub(crate) struct ReadyCheck {
    /// Generation of the last check started (only incremented under `last`).
    started: AtomicU64,
    /// Generation and outcome of the last check finished.
    last: tokio::sync::Mutex<(u64, Option<Readiness>)>,
}

impl ReadyCheck {
    async fn run(&self, state: &AppState) -> Readiness {
        let arrived = self.started.load(Ordering::Acquire);
        let mut last = self.last.lock().await;
        if let (generation, Some(outcome)) = *last
            && generation > arrived
        {
            return outcome;
        }
        let generation = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        let outcome = check_readiness(state).await;
        *last = (generation, Some(outcome));
        outcome
    }
}

async fn check_readiness(state: &AppState) -> Readiness {
    if let Err(error) = state.store().head().await {
        tracing::warn!(%error, "readyz: metadata store unreachable");
        return Readiness::MetadataDown;
    }
    match state.store().blob_store().check().await {
        Ok(()) => Readiness::Ready,
        Err(error) if error.is_storage_full() => {
            tracing::warn!(%error, "readyz: blob storage full (reads work, writes answer 507)");
            Readiness::StorageFull
        }
        Err(error) => {
            tracing::warn!(%error, "readyz: blob backend unreachable");
            Readiness::BackendDown
        }
    }
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics(State(state): State<AppState>, _: NoQuery) -> Response {
    let head = state.store().head().await.map(|h| h.seq).unwrap_or(0);
    let text = state.metrics().render(
        state.uploads().active(),
        state.store().catalog().events_appended(),
        head,
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

/// `GET /openapi.json`: the OpenAPI 3.1 document (checked in as `openapi.json`).
async fn openapi(_: NoQuery) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON,
    )
        .into_response()
}

/// `GET /audit/verify`: checks the hash chain and replays the log through the store's rules →
/// `{ok, head_seq, head_hash, violations}`, with `first_bad_seq` and `reason` when the chain
/// is broken.
async fn audit_verify(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    result_response(&AuditResult::from(&state.store().audit().await?))
}

/// `POST /admin/rebuild-views` (admin) → `{events_replayed}`.
async fn rebuild_views(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Response> {
    caller.require(Role::Admin)?;
    let events_replayed = state.store().rebuild_views().await?;
    result_response(&artifact_core::results::RebuildViewsResult { events_replayed })
}

/// `POST /admin/tokens` (admin) `{principal, roles, expires_at?}` → 201 `{token, token_id,
/// principal, roles, created_at, expires_at, revoked}`; the token is shown once (only its hash
/// is recorded). Reserved principals (`system:*`) and an expiry not in the future are 400.
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let actor = caller.require(Role::Admin)?.to_owned();
    let map = crate::retention::body_map(&body)?;
    if let Some(unknown) = map
        .keys()
        .find(|k| !["principal", "roles", "expires_at"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "unknown member `{}`",
            unknown.escape_debug()
        )));
    }
    let principal = map
        .get("principal")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("`principal` (a string) is required"))?
        .to_owned();
    let roles = map
        .get("roles")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("`roles` (an array of role names) is required"))?
        .iter()
        .map(|r| {
            r.as_str()
                .ok_or_else(|| ApiError::bad_request("roles must be strings"))
                .and_then(|r| r.parse::<Role>().map_err(ApiError::from))
        })
        .collect::<ApiResult<Vec<Role>>>()?;
    let expires_at = match map.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(Value::Text(text)) => Some(
            text.parse::<artifact_core::time::Timestamp>()
                .map_err(|e| ApiError::bad_request(format!("expires_at: {e}")))?,
        ),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`expires_at` must be an RFC 3339 timestamp or null",
            ));
        }
    };
    let secret = random_secret()?;
    let minted = state
        .store()
        .mint_token(&actor, &principal, &roles, expires_at, &secret)
        .await?;
    crate::packages::created_response(&TokenMintedResult::from(&minted))
}

/// `GET /admin/tokens` (admin) → `[{token_id, principal, roles, created_at, expires_at,
/// revoked}]`, oldest first; never a token or its hash.
async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Response> {
    caller.require(Role::Admin)?;
    let tokens = state.store().list_tokens().await?;
    result_response(
        &tokens
            .iter()
            .map(artifact_core::results::TokenResult::from)
            .collect::<Vec<_>>(),
    )
}

/// `POST /admin/tokens/{token_id}/revoke` (admin) `{reason}` → 200 the revoked token; 404 for
/// an unknown id, 409 if already revoked. Every replica refuses the token from the commit on.
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(token_id): Path<String>,
    _: NoQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let actor = caller.require(Role::Admin)?.to_owned();
    let map = crate::retention::body_map(&body)?;
    let reason = crate::retention::text_member(&map, "reason", &["reason"])?;
    let record = state
        .store()
        .revoke_token(&actor, &token_id, &reason)
        .await?;
    result_response(&artifact_core::results::TokenResult::from(&record))
}

/// 32 bytes from the operating system's CSPRNG.
pub(crate) fn random_secret() -> ApiResult<[u8; 32]> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| {
        ApiError::from(artifact_core::Error::Io(std::io::Error::other(
            e.to_string(),
        )))
    })?;
    Ok(secret)
}
