//! Prometheus metrics (text exposition) and request ids.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::{MakeRequestId, RequestId};

use crate::AppState;

/// Counters exposed at `GET /metrics`. Clones share the counters.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    /// (method, route, status) → count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    uploads_created: AtomicU64,
    uploads_completed: AtomicU64,
    sweeper_runs: AtomicU64,
    sweeper_failures: AtomicU64,
    sweeper_marked: AtomicU64,
}

impl Metrics {
    pub(crate) fn add_bytes_in(&self, n: u64) {
        self.0.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_bytes_out(&self, n: u64) {
        self.0.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn upload_created(&self) {
        self.0.uploads_created.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn upload_completed(&self) {
        self.0.uploads_completed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_sweep(&self, report: &artifact_core::Result<artifact_core::SweepReport>) {
        self.0.sweeper_runs.fetch_add(1, Ordering::Relaxed);
        match report {
            Ok(report) => {
                self.0
                    .sweeper_marked
                    .fetch_add(report.newly_eligible.len() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.0.sweeper_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The text exposition.
    pub(crate) fn render(
        &self,
        active_uploads: usize,
        events_appended: u64,
        head_seq: u64,
    ) -> String {
        let mut out = String::new();
        let counters = &self.0;
        out.push_str(
            "# HELP artifactstore_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE artifactstore_http_requests_total counter\n");
        if let Ok(requests) = counters.requests.lock() {
            for ((method, route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "artifactstore_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        counter(
            "artifactstore_http_bytes_in_total",
            "Blob bytes received.",
            "counter",
            counters.bytes_in.load(Ordering::Relaxed),
        );
        counter(
            "artifactstore_http_bytes_out_total",
            "Blob bytes sent.",
            "counter",
            counters.bytes_out.load(Ordering::Relaxed),
        );
        counter(
            "artifactstore_upload_sessions_created_total",
            "Upload sessions started.",
            "counter",
            counters.uploads_created.load(Ordering::Relaxed),
        );
        counter(
            "artifactstore_upload_sessions_completed_total",
            "Upload sessions finished into a blob.",
            "counter",
            counters.uploads_completed.load(Ordering::Relaxed),
        );
        counter(
            "artifactstore_upload_sessions_active",
            "Upload sessions open on this replica.",
            "gauge",
            active_uploads as u64,
        );
        counter(
            "artifactstore_sweeper_runs_total",
            "Scheduled sweeps run.",
            "counter",
            counters.sweeper_runs.load(Ordering::Relaxed),
        );
        counter(
            "artifactstore_sweeper_failures_total",
            "Scheduled sweeps that failed.",
            "counter",
            counters.sweeper_failures.load(Ordering::Relaxed),
        );
        counter(
            "artifactstore_sweeper_marked_total",
            "Packages marked eligible by scheduled sweeps.",
            "counter",
            counters.sweeper_marked.load(Ordering::Relaxed),
        );
        counter(
            "artifactstore_events_appended_total",
            "Events appended by this process.",
            "counter",
            events_appended,
        );
        counter(
            "artifactstore_event_log_head_seq",
            "Sequence number of the log head.",
            "gauge",
            head_seq,
        );
        out
    }
}

/// Middleware: counts every request by method, matched route and status.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    if let Ok(mut requests) = state.metrics().0.requests.lock() {
        *requests
            .entry((method, route, response.status().as_u16()))
            .or_insert(0) += 1;
    }
    response
}

/// Request ids: a per-process random prefix and a counter.
#[derive(Clone, Debug)]
pub(crate) struct RequestIds {
    prefix: String,
    counter: Arc<AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        let mut bytes = [0u8; 4];
        let _ = getrandom::fill(&mut bytes);
        Self {
            prefix: hex::encode(bytes),
            counter: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.prefix)
            .parse()
            .ok()
            .map(RequestId::new)
    }
}
