//! Extractors whose rejections are problem+json (via the `From` impls in `error.rs`).
//!
//! Every handler takes its query through [`Query`] (or [`NoQuery`] when the route has no
//! parameters), so an unknown query parameter is a 400 on every route alike: a typo such as
//! `?limt=5` or `?fromat=cbor` is refused instead of silently doing something else. Query
//! types therefore carry `#[serde(deny_unknown_fields)]`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::{ApiError, body_rejection};

/// Path parameters; a rejection (e.g. invalid UTF-8) is a 400 problem.
#[derive(Debug)]
pub(crate) struct Path<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// Query parameters of a `#[serde(deny_unknown_fields)]` type; an unknown or malformed
/// parameter is a 400 problem naming it.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::try_from_uri(&parts.uri)?;
        Ok(Self(value))
    }
}

/// The query of a route that takes no parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

/// A route without query parameters: any parameter is a 400 problem.
#[derive(Debug)]
pub(crate) struct NoQuery;

impl<S> FromRequestParts<S> for NoQuery
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(NoParams {}) = Query::<NoParams>::from_request_parts(parts, state).await?;
        Ok(Self)
    }
}

/// A whole JSON or CBOR request body, at most `[server] max_json_bytes` (413 problem beyond).
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.options().max_json_bytes;
        Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|rejection| body_rejection(rejection, limit))
    }
}
