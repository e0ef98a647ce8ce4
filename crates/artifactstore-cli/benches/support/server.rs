//! Helpers the HTTP benchmarks share (`#[path]`-included by `http.rs` and `oci.rs`).

use std::path::Path;
use std::time::Duration;

/// A server on loopback over `store`: its base URL and a handle that stops it.
pub async fn start_server(
    store: artifact_core::ArtifactStore,
    upload_dir: std::path::PathBuf,
) -> (
    String,
    impl FnOnce() -> tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let options = artifact_server::ServerOptions::new(upload_dir);
    let state = artifact_server::AppState::new(store, options).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(artifact_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    (base, move || {
        let _ = stop.send(());
        server
    })
}

pub fn gbps(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e9
}

pub async fn file_body(path: &Path) -> reqwest::Body {
    let file = tokio::fs::File::open(path).await.expect("open");
    reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20))
}

/// The middle value (upper middle for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[sorted.len() / 2]
}
