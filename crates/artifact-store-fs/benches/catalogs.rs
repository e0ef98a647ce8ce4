//! Metadata stores side by side: the same library operations on the SQLite catalog and on the
//! PostgreSQL catalog, in one run, each beside its own raw transaction rate.
//!
//! ```sh
//! cargo bench -p artifact-store-fs --bench catalogs
//! cargo bench -p artifact-store-fs --bench catalogs -- --packages 500 --writers 4 --fill 50000 --due 1000
//! ```
//! PostgreSQL is a throwaway cluster started like the tests' (`artifact_core::testing_postgres`)
//! but with `fsync = on` and `synchronous_commit = on` (the server defaults), so that a commit is
//! durable on both sides: SQLite runs WAL with `synchronous = FULL` (the catalog's settings).
//! Both live on the same filesystem (`BENCH_DIR`, default the system temp dir; the cluster's
//! directory must be reachable by the `postgres` user when run as root). With
//! `ARTIFACTSTORE_TEST_POSTGRES_URL` set, that server is used instead (its own settings apply).
//!
//! Figures, per backend:
//! - raw txn: a bare transaction of 2 event-sized inserts + 1 upsert, one connection — the
//!   commit ceiling of the database on this machine;
//! - small packages: packages of one 1 KiB file each through the library (blob write + fsync +
//!   rename, then one catalog transaction: `v1.blob.stored` for the file and the manifest,
//!   `v1.package.created`, `v1.retention.default_applied`), from one writer and from
//!   `--writers` store handles at once (separate pools, like replicas; appends serialise);
//! - sweep: `--due` packages newly due among `--fill` packages (appended in batches through the
//!   catalog's write transaction, as `benches/sweep.rs` does), and a repeat sweep with nothing
//!   due.

#[path = "support/fill.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use artifact_core::ArtifactStore;
use artifact_core::config::Config;
use artifact_core::testing::{bench_arg, bench_dir, bench_runtime, one_file_manifest};
use artifact_core::testing_postgres::{self, Cluster, ClusterOptions};
use artifact_core::time::{ManualClock, Period, ymd};
use artifact_store_fs::EmbeddedOptions;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// Where each backend's databases come from.
struct Databases {
    dir: PathBuf,
    postgres_server: String,
    next: usize,
}

impl Databases {
    /// A new catalog URL for `backend`.
    async fn url(&mut self, backend: Backend, name: &str) -> String {
        self.next += 1;
        match backend {
            Backend::Sqlite => format!(
                "sqlite://{}",
                self.dir.join(format!("{name}-{}.db", self.next)).display()
            ),
            Backend::Postgres => testing_postgres::create_database(
                &self.postgres_server,
                &format!("bench_{name}_{}_{}", std::process::id(), self.next),
            )
            .await
            .expect("create a PostgreSQL database"),
        }
    }
}

async fn open(url: &str, data_dir: &Path, clock: &ManualClock, pool: u32) -> ArtifactStore {
    let mut config = Config::default();
    config.metadata.url = Some(url.to_owned());
    config.metadata.max_connections = pool;
    EmbeddedOptions::new(data_dir)
        .with_config(config)
        .with_clock(Arc::new(clock.clone()))
        .open()
        .await
        .expect("open the store")
}

async fn create_small_packages(store: ArtifactStore, writer: usize, n: usize) {
    for i in 0..n {
        let mut content = vec![0x5au8; 1024];
        content[..8].copy_from_slice(&(i as u64).to_le_bytes());
        content[8..16].copy_from_slice(&(writer as u64).to_le_bytes());
        let info = store.write_blob(&content[..], &[]).await.expect("blob");
        store
            .create_package_with_blobs(
                "bench",
                &one_file_manifest(format!("small-{writer}"), format!("1.0.{i}"), &info),
                &[info],
            )
            .await
            .expect("package");
    }
}

/// Packages per second: `n` packages from one store handle, then `n` from `writers` handles
/// at once.
async fn small_package_rates(
    databases: &mut Databases,
    backend: Backend,
    n: usize,
    writers: usize,
) -> (f64, f64) {
    let clock = ManualClock::new(ymd(2026, 11, 23));
    let url = databases.url(backend, "small").await;
    let data_dir = databases.dir.join(format!("small-{}", backend.name()));
    let store = open(&url, &data_dir, &clock, 4).await;
    let start = Instant::now();
    create_small_packages(store.clone(), 0, n).await;
    let sequential = n as f64 / start.elapsed().as_secs_f64();

    let mut handles = Vec::new();
    for _ in 0..writers {
        handles.push(open(&url, &data_dir, &clock, 4).await);
    }
    let per_writer = n.div_ceil(writers);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (writer, handle) in handles.iter().enumerate() {
        tasks.spawn(create_small_packages(
            handle.clone(),
            writer + 1,
            per_writer,
        ));
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("writer");
    }
    let concurrent = (per_writer * writers) as f64 / start.elapsed().as_secs_f64();
    for handle in handles {
        handle.catalog().close().await;
    }
    store.catalog().close().await;
    (sequential, concurrent)
}

/// Fills `total` packages (`due` of them expired yesterday) and times a sweep and a repeat.
async fn sweep_times(
    databases: &mut Databases,
    backend: Backend,
    total: usize,
    due: usize,
) -> (f64, f64, f64, usize) {
    let start = ymd(2026, 11, 23);
    let clock = ManualClock::new(start);
    let url = databases.url(backend, "sweep").await;
    let data_dir = databases.dir.join(format!("sweep-{}", backend.name()));
    let store = open(&url, &data_dir, &clock, 4).await;
    let yesterday = start
        .checked_add(Period::Millis(-86_400_000))
        .expect("time");
    let later = start.checked_add(Period::Years(10)).expect("time");
    let stride = (total / due).max(1);
    let fill_start = Instant::now();
    let batch = 10_000;
    support::fill_packages(&store, total, batch, start, |i| {
        if i % stride == 0 && i / stride < due {
            yesterday
        } else {
            later
        }
    })
    .await;
    let fill = fill_start.elapsed().as_secs_f64();
    let _ = store.head().await.expect("head");
    let sweep_start = Instant::now();
    let marked = store
        .sweep("bench", Some(start))
        .await
        .expect("sweep")
        .newly_eligible
        .len();
    let sweep = sweep_start.elapsed().as_secs_f64();
    let repeat_start = Instant::now();
    let again = store.sweep("bench", Some(start)).await.expect("sweep");
    assert!(again.newly_eligible.is_empty());
    let repeat = repeat_start.elapsed().as_secs_f64();
    store.catalog().close().await;
    (fill, sweep, repeat, marked)
}

fn main() {
    let packages = bench_arg("--packages", 1000).max(1);
    let writers = bench_arg("--writers", 4).max(1);
    let fill_packages = bench_arg("--fill", 100_000).max(1);
    let due = bench_arg("--due", 2_000).max(1).min(fill_packages);
    let dir = bench_dir();
    let runtime = bench_runtime();
    sqlx::any::install_default_drivers();

    let external = std::env::var(testing_postgres::URL_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty());
    let cluster = match &external {
        Some(_) => None,
        None => Some(
            Cluster::start(
                &ClusterOptions::default()
                    .with_fsync(true)
                    .with_parent_dir(dir.path().parent().expect("BENCH_DIR")),
            )
            .expect("start a throwaway PostgreSQL cluster"),
        ),
    };
    let postgres_server = external.clone().unwrap_or_else(|| {
        cluster
            .as_ref()
            .map(|c| c.server_url().to_owned())
            .unwrap_or_default()
    });
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# artifactstore catalogs benchmark: SQLite vs PostgreSQL ({cpus} CPUs, dir {})",
        dir.path().display()
    );
    match &cluster {
        Some(cluster) => println!(
            "# PostgreSQL {}: throwaway cluster, fsync=on, synchronous_commit=on (durable commits); \
             SQLite: WAL, synchronous=FULL",
            cluster.version()
        ),
        None => println!(
            "# PostgreSQL: {} (its own fsync settings); SQLite: WAL, synchronous=FULL",
            artifact_core::catalog::redact_url(&postgres_server)
        ),
    }
    let mut databases = Databases {
        dir: dir.path().to_path_buf(),
        postgres_server,
        next: 0,
    };

    runtime.block_on(async {
        let mut rows = Vec::new();
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let raw_url = databases.url(backend, "raw").await;
            let raw = artifact_core::testing::raw_commit_rate(&raw_url, packages).await;
            let (sequential, concurrent) =
                small_package_rates(&mut databases, backend, packages, writers).await;
            let (fill, sweep, repeat, marked) =
                sweep_times(&mut databases, backend, fill_packages, due).await;
            assert_eq!(marked, due);
            rows.push((backend, raw, sequential, concurrent, fill, sweep, repeat));
        }
        println!(
            "small packages (1 file of 1 KiB each), {} packages; {} writers = {} store handles (separate pools) at once:",
            packages, writers, writers
        );
        for (backend, raw, sequential, concurrent, ..) in &rows {
            println!(
                "  {:<10} raw txn {raw:7.0} txn/s | 1 writer {sequential:7.0} pkg/s = {:.2} x raw | {} writers {concurrent:7.0} pkg/s = {:.2} x raw",
                backend.name(),
                sequential / raw,
                writers,
                concurrent / raw
            );
        }
        println!(
            "sweep: {} newly due among {} packages:",
            due, fill_packages
        );
        for (backend, _, _, _, fill, sweep, repeat) in &rows {
            println!(
                "  {:<10} sweep {sweep:7.3} s ({:6.0} marked/s) | repeat (nothing due) {repeat:7.4} s | fill {fill:6.1} s",
                backend.name(),
                due as f64 / sweep
            );
        }
    });
    drop(cluster);
}
