//! # artifact-server
//!
//! The thin axum HTTP server of artifactstore over the `artifact-core` library (SPEC §4.4).
//! Every handler parses and authorises the request, calls one library method and encodes the
//! answer; the rules live in the library.
//!
//! - [`app`] builds the [`axum::Router`] from an [`AppState`] (tests drive it with
//!   `oneshot`, no socket);
//! - [`serve`] runs it on a listener until a shutdown future resolves, with the scheduled
//!   sweeper and the upload-session reaper beside it.
//!
//! Routes (module per resource): `uploads` (resumable sessions shaped like the OCI blob
//! upload protocol), `blobs`, `packages` (+ files, manifest), `retention`, `events` (JSON, CBOR,
//! Server-Sent Events), `ops` (health, readiness, metrics, OpenAPI, audit, admin), `log`
//! (the verifiable log: checkpoints, proofs; the scheduled checkpoint and directory sink).
//! Errors are `application/problem+json` (RFC 9457). Auth: bearer tokens (minted ones from the
//! event log, or `[[server.tokens]]` hashes from configuration) map to a principal with roles;
//! the principal is the actor of every event the request causes.
#![warn(missing_docs, unreachable_pub)]

mod auth;
mod blobs;
mod error;
mod events;
mod extract;
mod limits;
mod log;
mod metrics;
pub mod oci;
pub mod openapi;
mod ops;
mod packages;
mod retention;
mod uploads;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use artifact_core::ArtifactStore;
use artifact_core::auth::Principal;
use artifact_core::digest::Sha256;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::ApiError;
pub use log::publish_checkpoint;
pub use metrics::Metrics;

/// The OpenAPI document of this server (also served at `GET /openapi.json`).
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Server settings (from `[server]` and `[retention]` of the configuration).
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Largest blob body (monolithic PUT or one upload request), in bytes.
    pub max_blob_bytes: u64,
    /// Largest JSON/CBOR request body, in bytes.
    pub max_json_bytes: u64,
    /// Timeout of non-streaming requests.
    pub request_timeout: Duration,
    /// Directory of upload sessions (same filesystem as fs blobs, so finishing is a rename).
    pub upload_dir: PathBuf,
    /// Idle upload sessions older than this are deleted.
    pub upload_ttl: Duration,
    /// Interval of the scheduled sweeper; `None` disables it.
    pub sweep_interval: Option<Duration>,
    /// Tokens from configuration: (SHA-256 of the token, principal).
    pub config_tokens: Vec<(Sha256, Principal)>,
    /// Scheduled garbage collection: interval and options; `None` disables it (the default).
    pub gc: Option<(Duration, artifact_core::maintenance::GcOptions)>,
    /// Scheduled scrub: interval and options; `None` disables it.
    pub verify: Option<(Duration, artifact_core::maintenance::VerifyOptions)>,
    /// A connection must deliver a whole request head within this time of starting to wait
    /// for one: from the connection's start, and on a keep-alive connection from the end of
    /// the previous response (so it also closes idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// A request body that delivers no bytes for this long while the server waits for them
    /// fails (the bytes already received by an upload session are kept); a connection whose
    /// client accepts no response bytes for this long while the server has some to send is
    /// closed.
    pub body_idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// After shutdown begins, in-flight requests get this long to finish; then their
    /// connections are cut (upload sessions keep what they wrote and resume after a restart).
    pub shutdown_grace: Duration,
    /// The verifiable log's signing key (`[log] key_path`): with it the server makes
    /// checkpoints (on schedule and on demand for `GET /log/checkpoint` and inclusion proofs);
    /// without it, it serves only the checkpoints stored already.
    pub log_signer: Option<artifact_core::tlog::LogSigner>,
    /// Interval of the scheduled checkpoint (`[log] checkpoint_interval`, made only when the
    /// log grew); `None` disables it. Needs [`ServerOptions::log_signer`].
    pub checkpoint_interval: Option<Duration>,
    /// Directory sink (`[log] publish_dir`): every checkpoint the server makes or serves is
    /// also written there as `<tree_size>.checkpoint`, never overwriting a different one.
    pub publish_dir: Option<PathBuf>,
    /// `[oci]`: the class and tag mutability of manifests pushed through `/v2/` (ADR 0016).
    pub oci: artifact_core::config::OciConfig,
}

impl ServerOptions {
    /// Defaults for a given upload directory.
    pub fn new(upload_dir: impl Into<PathBuf>) -> Self {
        Self {
            max_blob_bytes: 64 << 30,
            max_json_bytes: 16 << 20,
            request_timeout: Duration::from_secs(60),
            upload_dir: upload_dir.into(),
            upload_ttl: Duration::from_secs(24 * 3600),
            sweep_interval: Some(Duration::from_secs(3600)),
            config_tokens: Vec::new(),
            gc: None,
            verify: None,
            header_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(30),
            max_connections: 512,
            shutdown_grace: Duration::from_secs(30),
            log_signer: None,
            checkpoint_interval: None,
            publish_dir: None,
            oci: artifact_core::config::OciConfig::default(),
        }
    }
}

impl ServerOptions {
    /// The options `[server]`, `[gc]`, `[verify]`, `[retention]`, `[log]` and `[auth]` of
    /// `config` describe, for a store in `data_dir` (uploads default to
    /// `<data-dir>/uploads`). `log_signer` is the loaded `[log]` key, if any. `[log]
    /// publish_dir` and `[log.publish_s3]` are sinks of the store itself, so
    /// [`ServerOptions::publish_dir`] stays `None`.
    ///
    /// # Errors
    ///
    /// When a duration, limit or token of `config` is invalid.
    pub fn from_config(
        config: &artifact_core::config::Config,
        data_dir: &std::path::Path,
        log_signer: Option<artifact_core::tlog::LogSigner>,
    ) -> artifact_core::error::Result<Self> {
        let (request_timeout, upload_ttl) = config.server_durations()?;
        let limits = config.server_limits()?;
        let (gc_interval, grace) = config.gc_schedule()?;
        let (verify_interval, sample, rate) = config.verify_schedule()?;
        Ok(Self {
            log_signer,
            oci: config.oci.clone(),
            checkpoint_interval: config.log.checkpoint_interval()?,
            publish_dir: None,
            header_read_timeout: limits.header_read_timeout,
            body_idle_timeout: limits.body_idle_timeout,
            max_connections: limits.max_connections,
            shutdown_grace: limits.shutdown_grace,
            max_blob_bytes: config.server.max_blob_bytes,
            max_json_bytes: config.server.max_json_bytes,
            request_timeout,
            upload_dir: config
                .server
                .upload_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("uploads")),
            upload_ttl,
            sweep_interval: Some(config.sweep_interval()?),
            config_tokens: config.config_tokens()?,
            gc: gc_interval.map(|every| {
                (
                    every,
                    artifact_core::maintenance::GcOptions {
                        grace,
                        dry_run: false,
                    },
                )
            }),
            verify: verify_interval.map(|every| {
                (
                    every,
                    artifact_core::maintenance::VerifyOptions {
                        sample,
                        max_bytes_per_sec: rate,
                    },
                )
            }),
        })
    }
}

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: ArtifactStore,
    options: ServerOptions,
    uploads: uploads::UploadSessions,
    metrics: Metrics,
    /// `/readyz`'s single-flight check.
    ready: ops::ReadyCheck,
    /// `true` once [`serve`]'s shutdown future has resolved: event streams end and the
    /// background tasks stop, so the graceful shutdown does not wait for endless responses.
    shutting_down: watch::Sender<bool>,
}

impl AppState {
    /// State over a store. Creates the upload directory.
    pub fn new(store: ArtifactStore, options: ServerOptions) -> std::io::Result<Self> {
        let uploads =
            uploads::UploadSessions::open(options.upload_dir.clone(), options.upload_ttl)?;
        Ok(Self(Arc::new(Inner {
            store,
            options,
            uploads,
            metrics: Metrics::default(),
            ready: ops::ReadyCheck::default(),
            shutting_down: watch::Sender::new(false),
        })))
    }

    /// The store.
    pub fn store(&self) -> &ArtifactStore {
        &self.0.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub(crate) fn options(&self) -> &ServerOptions {
        &self.0.options
    }

    pub(crate) fn ready_check(&self) -> &ops::ReadyCheck {
        &self.0.ready
    }

    pub(crate) fn uploads(&self) -> &uploads::UploadSessions {
        &self.0.uploads
    }

    /// Watches the shutdown flag (see [`serve`]).
    pub(crate) fn shutdown_watch(&self) -> watch::Receiver<bool> {
        self.0.shutting_down.subscribe()
    }
}

/// The router: every route, with body limits, timeouts, request ids, tracing and metrics.
pub fn app(state: AppState) -> Router {
    let options = state.options().clone();
    // Streaming routes (blob bodies, downloads, event streams) have no request timeout and
    // enforce max_blob_bytes while streaming.
    let streaming = Router::new()
        .merge(uploads::router())
        .merge(blobs::router())
        .merge(oci::router())
        .merge(packages::streaming_router())
        .merge(events::streaming_router())
        .layer(DefaultBodyLimit::disable());
    let bounded = Router::new()
        .merge(packages::router())
        .merge(retention::router())
        .merge(events::router())
        .merge(ops::router())
        .merge(log::router())
        .layer(DefaultBodyLimit::max(
            usize::try_from(options.max_json_bytes).unwrap_or(usize::MAX),
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ));
    Router::new()
        .merge(streaming)
        .merge(bounded)
        .method_not_allowed_fallback(error::method_not_allowed_route)
        .fallback(error::not_found_route)
        .layer(axum::middleware::map_request(
            move |request: axum::extract::Request| async move {
                limits::with_body_timeout(request, options.body_idle_timeout)
            },
        ))
        .layer(axum::middleware::map_response(error::problem_responses))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id)
            },
        ))
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            metrics::RequestIds::default(),
        ))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting connections and
/// lets in-flight requests finish for at most [`ServerOptions::shutdown_grace`]; connections
/// still open then are cut (upload sessions keep the bytes they wrote and resume after a
/// restart). Open event streams (`/events/stream`) end when shutdown begins: they never finish
/// on their own, and a client resumes with `Last-Event-ID`. Runs the scheduled sweeper and the
/// upload-session reaper beside the server.
///
/// Slow and silent clients: a connection must send a whole request head within
/// [`ServerOptions::header_read_timeout`] (also the idle limit of keep-alive connections),
/// request bodies and responses must make progress within
/// [`ServerOptions::body_idle_timeout`], and at most
/// [`ServerOptions::max_connections`] connections are served at once (more wait in the
/// listen backlog).
pub async fn serve<F>(listener: TcpListener, state: AppState, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    // A state served again after an earlier shutdown starts afresh.
    state.0.shutting_down.send_replace(false);
    let stop_rx = state.shutdown_watch();
    let background = tokio::spawn(background_tasks(state.clone(), stop_rx));
    let options = state.options().clone();
    let max_connections = options.max_connections.max(1);
    if let Some(fds) = limits::fd_limit()
        && (max_connections as u64).saturating_add(64) > fds
    {
        tracing::warn!(
            max_connections,
            fd_limit = fds,
            "[server] max_connections is close to or above the open-file limit (ulimit -n): \
             raise the limit or lower max_connections"
        );
    }
    let router = app(state.clone());
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Reap finished connection tasks.
        while connections.try_join_next().is_some() {}
        // A free slot first: while none is free, connections wait in the backlog.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) if limits::is_connection_error(&error) => continue,
                Err(error) => {
                    // E.g. out of file descriptors: retry soon rather than spin.
                    tracing::error!(%error, "accepting a connection failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .keep_alive(true);
        let io = limits::WriteStallTimeout::new(stream, options.body_idle_timeout);
        let connection =
            graceful.watch(builder.serve_connection(hyper_util::rt::TokioIo::new(io), service));
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    state.0.shutting_down.send_replace(true);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.shutdown_grace) => {
            tracing::warn!(
                connections = connections.len(),
                "[server] shutdown_grace expired: cutting the connections still open"
            );
        }
    }
    // Whatever is left is cut here (dropping a request mid-upload keeps what it wrote).
    connections.shutdown().await;
    let _ = background.await;
    Ok(())
}

async fn background_tasks(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let sweeper_state = state.clone();
    let mut sweeper_stop = stop.clone();
    let stop_maintenance = stop.clone();
    let stop_checkpoints = stop.clone();
    let sweeper = async move {
        let Some(interval) = sweeper_state.options().sweep_interval else {
            return;
        };
        let metrics = sweeper_state.metrics().clone();
        sweeper_state
            .store()
            .run_sweeper(
                "system:sweeper",
                interval,
                async move {
                    let _ = sweeper_stop.wait_for(|stopped| *stopped).await;
                },
                move |report| {
                    metrics.record_sweep(&report);
                    match report {
                        Ok(report) if !report.newly_eligible.is_empty() => {
                            tracing::info!(
                                newly_eligible = report.newly_eligible.len(),
                                "scheduled sweep"
                            );
                        }
                        Ok(_) => {}
                        Err(error) => tracing::error!(%error, "scheduled sweep failed"),
                    }
                },
            )
            .await;
    };
    let reaper_state = state.clone();
    let reaper = async move {
        let period = (reaper_state.options().upload_ttl / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(600));
        loop {
            let removed = reaper_state.uploads().reap_expired().await;
            if removed > 0 {
                tracing::info!(removed, "expired upload sessions reclaimed");
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    };
    let maintenance = maintenance_schedule(state.clone(), stop_maintenance);
    let checkpoints = checkpoint_schedule(state.clone(), stop_checkpoints);
    tokio::join!(sweeper, reaper, maintenance, checkpoints);
}

/// The scheduled checkpoint: every [`ServerOptions::checkpoint_interval`], a signed
/// checkpoint if the log grew since the latest one (published to the directory sink if set).
/// The first one is made right away, so a restarted server covers what it missed.
async fn checkpoint_schedule(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(every) = state.options().checkpoint_interval else {
        return;
    };
    if state.options().log_signer.is_none() {
        tracing::warn!(
            "[log] checkpoint_interval is set but the server has no signing key: no scheduled checkpoints"
        );
        return;
    }
    loop {
        match log::checkpoint_now(&state).await {
            Ok(Some(checkpoint)) => {
                tracing::debug!(tree_size = checkpoint.tree_size, "scheduled checkpoint")
            }
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "scheduled checkpoint failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Scheduled GC and scrub (each on its own interval; the first run waits one interval).
async fn maintenance_schedule(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let gc = state.options().gc;
    let verify = state.options().verify;
    if gc.is_none() && verify.is_none() {
        return;
    }
    let far = Duration::from_secs(365 * 24 * 3600);
    let mut next_gc = tokio::time::Instant::now() + gc.map_or(far, |(every, _)| every);
    let mut next_verify = tokio::time::Instant::now() + verify.map_or(far, |(every, _)| every);
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(next_gc), if gc.is_some() => {
                if let Some((every, options)) = gc {
                    match state.store().gc("system:gc", options).await {
                        Ok(report) => tracing::info!(purged = report.purged.len(), deleted = report.deleted.len(), bytes = report.bytes_reclaimed, "scheduled gc"),
                        Err(error) => tracing::error!(%error, "scheduled gc failed"),
                    }
                    next_gc = tokio::time::Instant::now() + every;
                }
            }
            _ = tokio::time::sleep_until(next_verify), if verify.is_some() => {
                if let Some((every, options)) = verify {
                    match state.store().verify_blobs("system:verify", options, |_| {}).await {
                        Ok(report) if report.failed.is_empty() => tracing::info!(checked = report.checked, "scheduled scrub"),
                        Ok(report) => tracing::error!(checked = report.checked, failed = report.failed.len(), "scheduled scrub found corrupt blobs"),
                        Err(error) => tracing::error!(%error, "scheduled scrub failed"),
                    }
                    next_verify = tokio::time::Instant::now() + every;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use artifact_core::config::Config;

    #[test]
    fn from_config_takes_every_option_from_the_configuration() {
        let data_dir = std::path::Path::new("/data");
        let options = ServerOptions::from_config(&Config::default(), data_dir, None).unwrap();
        assert_eq!(options.upload_dir, data_dir.join("uploads"));
        assert!(options.gc.is_none());
        let (every, verify) = options.verify.unwrap();
        assert_eq!(every, Duration::from_secs(86_400));
        assert_eq!(verify.sample, 0.01);
        assert_eq!(verify.max_bytes_per_sec, Some(100 << 20));
        assert!(options.publish_dir.is_none() && options.log_signer.is_none());
        let defaults = ServerOptions::new(data_dir.join("uploads"));
        assert_eq!(options.max_blob_bytes, defaults.max_blob_bytes);
        assert_eq!(options.sweep_interval, defaults.sweep_interval);

        let config = Config::from_toml(
            "[server]\nupload_dir = \"/up\"\nmax_json_bytes = 1024\n[gc]\ninterval = \"1h\"\ngrace = \"2h\"\n[verify]\ninterval = \"off\"\n",
            "t",
        )
        .unwrap();
        let options = ServerOptions::from_config(&config, data_dir, None).unwrap();
        assert_eq!(options.upload_dir, PathBuf::from("/up"));
        assert_eq!(options.max_json_bytes, 1024);
        let (every, gc) = options.gc.unwrap();
        assert_eq!(every, Duration::from_secs(3600));
        assert_eq!(gc.grace, artifact_core::time::Period::Millis(2 * 3_600_000));
        assert!(!gc.dry_run);
        assert!(options.verify.is_none());
    }
}
