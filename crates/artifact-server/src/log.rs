//! The verifiable log over HTTP (ADR 0011, reader role): the latest signed checkpoint, the
//! stored checkpoints, inclusion and consistency proofs, in exactly the JSON shapes of the
//! `artifactstore audit` CLI; plus the scheduled checkpoint and the directory sink.
//!
//! Checkpoints are not events: making one changes no event and no view.

use artifact_core::paging::{DEFAULT_PAGE_LIMIT, MAX_LIST_LIMIT};
use std::path::Path;

use artifact_core::ArtifactStore;
use artifact_core::auth::Role;
use artifact_core::catalog::StoredCheckpoint;
use artifact_core::cbor::Value;
use artifact_core::tlog;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{NoQuery, Query};
use crate::packages::json_response;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/log/checkpoint", get(latest))
        .route("/log/checkpoints", get(list))
        .route("/log/proof/inclusion", get(inclusion))
        .route("/log/proof/consistency", get(consistency))
}

/// Makes a checkpoint if the log grew since the latest one (when the server has the signing
/// key) and publishes it to the store's sinks and to the server's own directory sink (when one
/// is configured); returns the latest
/// checkpoint, `None` when there is neither a key nor any stored checkpoint.
pub(crate) async fn checkpoint_now(
    state: &AppState,
) -> artifact_core::Result<Option<StoredCheckpoint>> {
    let options = state.options();
    let Some(signer) = options.log_signer.as_ref() else {
        return state.store().latest_checkpoint().await;
    };
    let checkpoint = state.store().checkpoint(signer).await?;
    if let Some(dir) = options.publish_dir.as_deref() {
        publish_checkpoint(dir, &checkpoint)?;
    }
    Ok(Some(checkpoint))
}

/// Writes `checkpoint` to `dir/<tree_size>.checkpoint`, create-only
/// ([`artifact_core::publish::DirectorySink`]): a file already there with the same note is left
/// alone; one with a different note is a fork of the log and an error (never overwritten).
/// Returns whether a new file was written.
pub fn publish_checkpoint(
    dir: &Path,
    checkpoint: &StoredCheckpoint,
) -> artifact_core::Result<bool> {
    artifact_core::publish::DirectorySink::new(dir).publish_blocking(checkpoint)
}

/// `GET /log/checkpoint` → the latest signed checkpoint note (`text/plain`), made first if the
/// log grew since the latest one; 404 if the server has no signing key and none was made.
async fn latest(State(state): State<AppState>, caller: Caller, _: NoQuery) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let Some(checkpoint) = checkpoint_now(&state).await? else {
        return Err(ApiError::not_found(
            "no checkpoint yet (make one with `artifactstore audit checkpoint`)",
        ));
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        checkpoint.note,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<u64>,
    limit: Option<u32>,
}

fn checkpoint_value(checkpoint: &StoredCheckpoint) -> Value {
    let origin = checkpoint.note.lines().next().unwrap_or_default();
    Value::map([
        ("origin", Value::Text(origin.to_owned())),
        ("tree_size", Value::Int(checkpoint.tree_size as i64)),
        (
            "root_hash",
            Value::Text(tlog::b64_encode(&checkpoint.root_hash)),
        ),
        ("note", Value::Text(checkpoint.note.clone())),
    ])
}

/// `GET /log/checkpoints?after=&limit=` → `{checkpoints: [{origin, tree_size, root_hash,
/// note}]}`, smallest tree size first (limit 1 to 1000, default 100).
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
    let checkpoints = state.store().checkpoints(query.after, limit).await?;
    Ok(json_response(&Value::map([(
        "checkpoints",
        Value::Array(checkpoints.iter().map(checkpoint_value).collect()),
    )])))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    seq: u64,
    tree_size: Option<u64>,
}

/// `GET /log/proof/inclusion?seq=N[&tree_size=M]` → a receipt `{seq, leaf_index, tree_size,
/// leaf, proof, checkpoint}` (`audit prove --json`). Without `tree_size`, against the latest
/// checkpoint, made first if it does not cover `seq` yet (and the server has the key).
async fn inclusion(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<InclusionQuery>,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let store: &ArtifactStore = state.store();
    if query.seq == 0 {
        return Err(ApiError::bad_request("seq must be at least 1"));
    }
    if query.tree_size.is_none() {
        let covered = store
            .latest_checkpoint()
            .await?
            .is_some_and(|latest| latest.tree_size >= query.seq);
        if !covered && query.seq <= store.head().await?.seq {
            checkpoint_now(&state).await?;
        }
    }
    let receipt = store.inclusion_proof(query.seq, query.tree_size).await?;
    crate::packages::result_response(&receipt)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

/// `GET /log/proof/consistency?from=A[&to=B]` → `{from_size, to_size, proof}` (`audit
/// consistency --json`); `to` defaults to the latest checkpoint's size.
async fn consistency(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ConsistencyQuery>,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let proof = state
        .store()
        .consistency_proof(query.from, query.to)
        .await?;
    Ok(json_response(&Value::map([
        ("from_size", Value::Int(proof.from_size as i64)),
        ("to_size", Value::Int(proof.to_size as i64)),
        (
            "proof",
            Value::Array(
                proof
                    .proof
                    .iter()
                    .map(|h| Value::Text(tlog::b64_encode(h)))
                    .collect(),
            ),
        ),
    ])))
}
