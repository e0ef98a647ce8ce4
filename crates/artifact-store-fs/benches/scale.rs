//! Cost that does not grow with the log (issue 16): the everyday operations on one package, on
//! one page and on an idle sweeper, at `--small` and at `--events` events, on SQLite and on
//! PostgreSQL. The goal is a ratio large/small of at most 1.3 for each.
//!
//! ```sh
//! cargo bench -p artifact-store-fs --bench scale                        # 100,000 vs 10,000,000 events
//! cargo bench -p artifact-store-fs --bench scale -- --events 1000000 --small 100000 --rounds 31
//! cargo bench -p artifact-store-fs --bench scale -- --backend sqlite    # or postgres; default both
//! cargo bench -p artifact-store-fs --bench scale -- --explain           # also print each query plan
//! ```
//!
//! Each store is built once per size. The SQLite store is filled through the catalog's write
//! transaction (`WriteTx::append`: the event rows, the view updates and the Merkle tree, the
//! same path as the library), 20,000 packages a transaction, with events that keep the rules
//! `audit verify` checks — `v1.package.created` (no files), `v1.retention.default_applied`
//! (class `release-evidence`, expiring at its time + 2 years, so nothing is due) and, for every
//! other package, a later `v1.retention.extended` (the bench itself does not run the audit). Four probe packages, spread through the log, are made through
//! the library (a real file, extended, held and released); they are what the per-package
//! operations read. The PostgreSQL store is then a copy of the SQLite one, table by table
//! (`INSERT … SELECT * FROM unnest(…)` in batches, then `VACUUM ANALYZE` as autovacuum would,
//! and a `CHECKPOINT` so that none runs while operations are timed): both backends hold the
//! same rows. Appending 10,000,000 events one statement at a time over a socket would take
//! well over half an hour on two cores (SQLite's in-process fill alone runs ~6,000 events/s).
//!
//! Figures, per backend and operation: the median of `--rounds` timed calls (after 3 untimed)
//! at each size, and the ratio. Operations: `retention history` and `explain` of a probe, `ls`
//! (one page of 1,000 packages with their retention states: the first page, and the page after
//! a cursor in the middle of the log; beside it the old way, two lookups per package), `show`
//! (by name@version), a sweep with nothing due, and creating a one-file package (its blob
//! already recorded; the commit's fsync included).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use artifact_core::catalog::PackageFilter;
use artifact_core::config::Config;
use artifact_core::event::types::{
    Extra, PackageCreated, RetentionDefaultApplied, RetentionExtended,
};
use artifact_core::testing::{bench_arg, bench_dir, bench_runtime, median, one_file_manifest};
use artifact_core::testing_postgres::{self, Cluster, ClusterOptions};
use artifact_core::time::{Clock as _, ManualClock, Period, Timestamp, ymd};
use artifact_core::{ArtifactStore, PackageRef};
use artifact_store_fs::EmbeddedOptions;
use sqlx::Row as _;

/// Packages appended per write transaction.
const FILL_BATCH: usize = 20_000;
/// The probe packages, made when the fill reaches these fractions of its events.
const PROBES_AT: [f64; 4] = [0.25, 0.5, 0.75, 1.0];

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

/// One filled store: where it lives and what its probes are.
struct Filled {
    data_dir: PathBuf,
    events: u64,
    probes: Vec<(String, String)>,
    /// The `created_seq` of the probe in the middle of the log (the `ls` cursor).
    middle_seq: u64,
    fill_secs: f64,
}

fn config_for(url: Option<&str>) -> Config {
    let mut config = Config::default();
    config.metadata.url = url.map(str::to_owned);
    config
}

async fn open(
    data_dir: &Path,
    url: Option<&str>,
    clock: &ManualClock,
    create: bool,
) -> ArtifactStore {
    EmbeddedOptions::new(data_dir)
        .with_config(config_for(url))
        .with_clock(Arc::new(clock.clone()))
        .with_create(create)
        .open()
        .await
        .expect("open the store")
}

/// A package through the library: one 1 KiB file, then extended, held and released.
async fn make_probe(store: &ArtifactStore, clock: &ManualClock, name: &str, version: &str) {
    let mut content = format!("probe {name} {version} ").into_bytes();
    content.resize(1024, 0x5a);
    let info = store.write_blob(&content[..], &[]).await.expect("blob");
    let mut manifest = one_file_manifest(name, version, &info);
    manifest.retention_class = "release-evidence".into();
    store
        .create_package_with_blobs("bench", &manifest, &[info])
        .await
        .expect("probe package");
    let package = PackageRef::NameVersion {
        name: name.to_owned(),
        version: version.to_owned(),
    };
    let until = clock.now().checked_add(Period::Years(5)).expect("time");
    store
        .extend("bench", &package, until, "bench: keep longer")
        .await
        .expect("extend");
    let hold = store
        .hold("bench", &package, "bench: legal")
        .await
        .expect("hold");
    store
        .release("bench", &package, &hold, "bench: done")
        .await
        .expect("release");
}

/// Fills a new SQLite store in `data_dir` with about `events` events (see the module doc).
async fn fill_sqlite(data_dir: &Path, events: u64, start: Timestamp) -> Filled {
    let clock = ManualClock::new(start);
    let store = open(data_dir, None, &clock, true).await;
    let period: Period = "2y".parse().expect("period");
    let expires_at = start.checked_add(period).expect("time");
    let extended_to = start.checked_add(Period::Years(3)).expect("time");
    let fill_start = Instant::now();
    let mut probes = Vec::new();
    let mut middle_seq = 0;
    let mut next_probe = 0;
    let mut package = 0usize;
    let mut head = store.head().await.expect("head").seq;
    while next_probe < PROBES_AT.len() {
        // A probe appends 7 events (2 blobs, created, default, extended, hold, release) and a
        // fill package at most 3: fill until the next package would pass the probe's place.
        let limit = ((events as f64 * PROBES_AT[next_probe]) as u64).saturating_sub(7);
        if head + 3 > limit {
            let version = format!("1.{next_probe}");
            make_probe(&store, &clock, "probe", &version).await;
            if next_probe == 1 {
                let found = store
                    .package(&PackageRef::NameVersion {
                        name: "probe".into(),
                        version: version.clone(),
                    })
                    .await
                    .expect("probe");
                middle_seq = found.created_seq;
            }
            probes.push(("probe".to_owned(), version));
            next_probe += 1;
            head = store.head().await.expect("head").seq;
            continue;
        }
        let mut tx = store.catalog().write().await.expect("write");
        for _ in 0..FILL_BATCH {
            if tx.head().seq + 3 > limit {
                break;
            }
            let mut manifest = artifact_core::testing::empty_manifest(package);
            manifest.retention_class = "release-evidence".into();
            let package_id = manifest.package_id().expect("id");
            let created = PackageCreated {
                manifest,
                extra: Extra::new(),
            };
            tx.append(Some(package_id), "bench", start, created)
                .await
                .expect("append");
            let default_applied = RetentionDefaultApplied {
                retention_class: "release-evidence".into(),
                period,
                expires_at: Some(expires_at),
                extra: Extra::new(),
            };
            tx.append(Some(package_id), "bench", start, default_applied)
                .await
                .expect("append");
            if package % 2 == 1 {
                let extended = RetentionExtended {
                    previous_expires_at: expires_at,
                    new_expires_at: extended_to,
                    reason: "bench: extended".into(),
                    extra: Extra::new(),
                };
                tx.append(Some(package_id), "bench", start, extended)
                    .await
                    .expect("append");
            }
            package += 1;
        }
        tx.commit().await.expect("commit");
        head = store.head().await.expect("head").seq;
    }
    store.catalog().close().await;
    Filled {
        data_dir: data_dir.to_path_buf(),
        events: head,
        probes,
        middle_seq,
        fill_secs: fill_start.elapsed().as_secs_f64(),
    }
}

/// Copies every table of the SQLite catalog of `filled` into the (migrated, empty) PostgreSQL
/// database `pg_url`, then `VACUUM ANALYZE`.
async fn copy_to_postgres(filled: &Filled, pg_url: &str, clock: &ManualClock) -> f64 {
    let copy_start = Instant::now();
    // Migrate and seed the classes, then write the same rows the SQLite catalog holds.
    let store = open(&filled.data_dir, Some(pg_url), clock, false).await;
    assert_eq!(store.head().await.expect("head").seq, 0, "a fresh database");
    store.catalog().close().await;
    let sqlite_url = format!(
        "sqlite://{}?mode=ro",
        filled.data_dir.join("catalog.db").display()
    );
    let sqlite = sqlx::SqlitePool::connect(&sqlite_url)
        .await
        .expect("open the SQLite catalog");
    let pg = sqlx::PgPool::connect(pg_url).await.expect("connect");
    sqlx::query("DELETE FROM retention_classes")
        .execute(&pg)
        .await
        .expect("clear classes");
    let tables = [
        "events",
        "blobs",
        "packages",
        "package_files",
        "retention_state",
        "holds",
        "retention_classes",
        "auth_tokens",
        "tlog_nodes",
        "tlog_checkpoints",
    ];
    for table in tables {
        let columns: Vec<(String, String)> = sqlx::query(
            "SELECT column_name::text AS name, data_type::text AS ty FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&pg)
        .await
        .expect("columns")
        .iter()
        .map(|r| (r.get("name"), r.get("ty")))
        .collect();
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let arrays: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (_, ty))| format!("${}::{ty}[]", i + 1))
            .collect();
        let insert = format!(
            "INSERT INTO {table} ({}) SELECT * FROM unnest({})",
            names.join(", "),
            arrays.join(", ")
        );
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch(&sqlite);
        let mut batch: Vec<sqlx::sqlite::SqliteRow> = Vec::with_capacity(10_000);
        let mut done = false;
        while !done {
            use futures_util::TryStreamExt as _;
            match rows.try_next().await.expect("read SQLite") {
                Some(row) => batch.push(row),
                None => done = true,
            }
            if batch.len() < 10_000 && !done {
                continue;
            }
            if batch.is_empty() {
                break;
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(insert.clone()));
            for (index, (_, ty)) in columns.iter().enumerate() {
                query = match ty.as_str() {
                    "bigint" => query.bind(
                        batch
                            .iter()
                            .map(|r| r.get::<Option<i64>, _>(index))
                            .collect::<Vec<_>>(),
                    ),
                    "bytea" => query.bind(
                        batch
                            .iter()
                            .map(|r| r.get::<Option<Vec<u8>>, _>(index))
                            .collect::<Vec<_>>(),
                    ),
                    "text" => query.bind(
                        batch
                            .iter()
                            .map(|r| r.get::<Option<String>, _>(index))
                            .collect::<Vec<_>>(),
                    ),
                    other => panic!("{table}: a column of type {other} this copy does not know"),
                };
            }
            query.execute(&pg).await.expect("insert into PostgreSQL");
            batch.clear();
        }
    }
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&pg)
        .await
        .expect("vacuum analyze");
    // Flush the load now, so that no checkpoint of it runs while the operations are timed.
    sqlx::raw_sql("CHECKPOINT")
        .execute(&pg)
        .await
        .expect("checkpoint");
    pg.close().await;
    sqlite.close().await;
    copy_start.elapsed().as_secs_f64()
}

/// The median seconds of `rounds` calls of `op` (after 3 untimed ones); `op` gets the round.
async fn time_op<F, Fut>(rounds: usize, mut op: F) -> f64
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for round in 0..3 {
        op(round).await;
    }
    let mut times = Vec::with_capacity(rounds);
    for round in 3..rounds + 3 {
        let start = Instant::now();
        op(round).await;
        times.push(start.elapsed().as_secs_f64());
    }
    median(times)
}

const OPS: [&str; 9] = [
    "retention history (1 package)",
    "explain (1 package)",
    "ls first page (1000)",
    "ls page after mid-log cursor",
    "ls first page, 2 lookups/package (old)",
    "show name@version",
    "sweep, nothing due",
    "create package (1 file)",
    "events of 1 package (--package)",
];

/// The median time of each of [`OPS`] on `store`.
async fn measure(
    store: &ArtifactStore,
    filled: &Filled,
    rounds: usize,
    tag: &str,
) -> BTreeMap<&'static str, f64> {
    let probes: Vec<PackageRef> = filled
        .probes
        .iter()
        .map(|(name, version)| PackageRef::NameVersion {
            name: name.clone(),
            version: version.clone(),
        })
        .collect();
    let mut ids = Vec::new();
    for probe in &probes {
        ids.push(store.resolve(probe).await.expect("probe"));
    }
    let probe = |round: usize| probes[round % probes.len()].clone();
    let mut figures = BTreeMap::new();
    figures.insert(
        OPS[0],
        time_op(rounds, |round| {
            let package = probe(round);
            async move {
                let history = store.retention_history(&package).await.expect("history");
                assert_eq!(history.len(), 4, "default, extended, hold, release");
            }
        })
        .await,
    );
    figures.insert(
        OPS[1],
        time_op(rounds, |round| {
            let package = probe(round);
            async move {
                let explanation = store.explain(&package, None).await.expect("explain");
                assert!(!explanation.eligible_for_deletion);
            }
        })
        .await,
    );
    let first_page = PackageFilter::default();
    figures.insert(
        OPS[2],
        time_op(rounds, |_| async {
            let page = store.list_package_views(&first_page).await.expect("ls");
            assert_eq!(page.len(), 1000);
        })
        .await,
    );
    let middle_page = PackageFilter {
        after_seq: filled.middle_seq,
        ..PackageFilter::default()
    };
    figures.insert(
        OPS[3],
        time_op(rounds, |_| async {
            let page = store.list_package_views(&middle_page).await.expect("ls");
            assert_eq!(page.len(), 1000);
        })
        .await,
    );
    figures.insert(
        OPS[4],
        time_op(rounds, |_| async {
            let page = store.list_packages(&first_page).await.expect("ls");
            for record in &page {
                store
                    .retention_status(&PackageRef::Id(record.package_id))
                    .await
                    .expect("status");
            }
            assert_eq!(page.len(), 1000);
        })
        .await,
    );
    figures.insert(
        OPS[5],
        time_op(rounds, |round| {
            let package = probe(round);
            async move {
                store.package_view(&package).await.expect("show");
            }
        })
        .await,
    );
    figures.insert(
        OPS[6],
        time_op(rounds, |_| async {
            let report = store.sweep("bench", None).await.expect("sweep");
            assert!(report.newly_eligible.is_empty() && report.refused.is_empty());
        })
        .await,
    );
    // New packages, their one blob written and recorded before the clock starts.
    let mut manifests = Vec::new();
    for round in 0..rounds + 3 {
        let content = format!("new package {tag} {round}").into_bytes();
        let info = store.write_blob(&content[..], &[]).await.expect("blob");
        store.record_blobs("bench", &[info]).await.expect("record");
        let mut manifest = one_file_manifest(format!("new-{tag}"), format!("1.{round}"), &info);
        manifest.retention_class = "release-evidence".into();
        manifests.push(manifest);
    }
    figures.insert(
        OPS[7],
        time_op(rounds, |round| {
            let manifest = manifests[round].clone();
            async move {
                let created = store
                    .create_package("bench", &manifest)
                    .await
                    .expect("create");
                assert!(created.created);
            }
        })
        .await,
    );
    figures.insert(
        OPS[8],
        time_op(rounds, |round| {
            let id = ids[round % ids.len()];
            async move {
                let events = store.package_events(&id).await.expect("events");
                assert_eq!(events.len(), 5);
            }
        })
        .await,
    );
    figures
}

/// The statements the operations above run (as `catalog/read.rs` and `catalog/mod.rs` spell
/// them), with sample values, for `--explain`.
const STATEMENTS: [(&str, &str, &[Sample]); 14] = [
    (
        "resolve name@version",
        "SELECT package_id FROM packages WHERE name = $1 AND version = $2",
        &[Sample::Text("probe"), Sample::Text("1.1")],
    ),
    (
        "package by id",
        "SELECT * FROM packages WHERE package_id = $1",
        &[Sample::Probe],
    ),
    (
        "events of a package (history, explain)",
        "SELECT seq, body FROM events WHERE 1 = 1 AND seq > $1 AND package_id = $2 ORDER BY seq LIMIT $3",
        &[Sample::Int(0), Sample::Probe, Sample::Int(5000)],
    ),
    (
        "retention events of packages (fold_states)",
        "SELECT seq, body FROM events WHERE type <> $1 AND package_id IN ($2) ORDER BY seq",
        &[Sample::Text("v1.package.created"), Sample::Probe],
    ),
    (
        "blob by blake3 (manifest)",
        "SELECT * FROM blobs WHERE blake3 = $1",
        &[Sample::Probe],
    ),
    (
        "retention_state of a package",
        "SELECT * FROM retention_state WHERE package_id = $1",
        &[Sample::Probe],
    ),
    (
        "active holds of a package",
        "SELECT * FROM holds WHERE package_id = $1 AND released_seq IS NULL ORDER BY applied_seq",
        &[Sample::Probe],
    ),
    (
        "retention_state of a page",
        "SELECT * FROM retention_state WHERE package_id IN ($1, $2)",
        &[Sample::Probe, Sample::Text("x")],
    ),
    (
        "active holds of a page",
        "SELECT * FROM holds WHERE package_id IN ($1, $2) AND released_seq IS NULL ORDER BY package_id, applied_seq",
        &[Sample::Probe, Sample::Text("x")],
    ),
    (
        "ls page",
        "SELECT p.* FROM packages p LEFT JOIN retention_state r ON r.package_id = p.package_id WHERE 1 = 1 AND p.created_seq > $1 ORDER BY p.created_seq LIMIT $2",
        &[Sample::Int(0), Sample::Int(1000)],
    ),
    (
        "sweep: due packages",
        "SELECT package_id, current_expires_at FROM retention_state WHERE eligible_for_deletion = 0 AND active_holds = 0 AND current_expires_at IS NOT NULL AND current_expires_at <= $1 AND (current_expires_at > $3 OR (current_expires_at = $3 AND package_id > $4)) ORDER BY current_expires_at, package_id LIMIT $2",
        &[
            Sample::Int(1_795_000_000_000),
            Sample::Int(1000),
            Sample::Int(i64::MIN),
            Sample::Text(""),
        ],
    ),
    (
        "write: log head",
        "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
        &[],
    ),
    (
        "write: tree nodes",
        "SELECT level, idx, hash FROM tlog_nodes WHERE (level = $1 AND idx = $2) OR (level = $3 AND idx = $4)",
        &[
            Sample::Int(0),
            Sample::Int(5),
            Sample::Int(1),
            Sample::Int(2),
        ],
    ),
    (
        "write: leaf count",
        "SELECT MAX(idx) AS m FROM tlog_nodes WHERE level = 0",
        &[],
    ),
];

/// A sample value bound to a statement of [`STATEMENTS`].
enum Sample {
    Int(i64),
    Text(&'static str),
    /// The id of the middle probe.
    Probe,
}

/// Prints the plan of each of [`STATEMENTS`] on `url` (PostgreSQL: the custom and the generic
/// plan, as a prepared statement gets after five executions).
async fn explain(url: &str, probe: &str) {
    use sqlx::Connection as _;
    let postgres = url.starts_with("postgres");
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let modes: &[&str] = if postgres {
        &["force_custom_plan", "force_generic_plan"]
    } else {
        &[""]
    };
    for (name, sql, samples) in STATEMENTS {
        for mode in modes {
            if postgres {
                sqlx::query(sqlx::AssertSqlSafe(format!("SET plan_cache_mode = {mode}")))
                    .execute(&mut conn)
                    .await
                    .expect("set");
            }
            let prefix = if postgres {
                "EXPLAIN (COSTS OFF) "
            } else {
                "EXPLAIN QUERY PLAN "
            };
            let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("{prefix}{sql}")));
            for sample in samples {
                query = match sample {
                    Sample::Int(n) => query.bind(*n),
                    Sample::Text(text) => query.bind(*text),
                    Sample::Probe => query.bind(probe),
                };
            }
            let rows = query.fetch_all(&mut conn).await.expect("explain");
            let column = if postgres { "QUERY PLAN" } else { "detail" };
            let plan: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String, _>(column).expect("plan line"))
                .collect();
            println!(
                "    {name}{}: {}",
                if mode.is_empty() {
                    String::new()
                } else {
                    format!(" [{mode}]")
                },
                plan.join(" / ")
            );
        }
    }
    let _ = conn.close().await;
}

fn main() {
    let large = bench_arg("--events", 10_000_000u64);
    let small = bench_arg("--small", 100_000u64);
    let rounds = bench_arg("--rounds", 31usize).max(1);
    let only = bench_arg("--backend", String::from("both"));
    let show_plans = std::env::args().any(|a| a == "--explain");
    let backends: Vec<Backend> = match only.as_str() {
        "sqlite" => vec![Backend::Sqlite],
        "postgres" => vec![Backend::Postgres],
        _ => vec![Backend::Sqlite, Backend::Postgres],
    };
    let dir = bench_dir();
    let runtime = bench_runtime();
    sqlx::any::install_default_drivers();
    let start = ymd(2026, 11, 23);
    let cluster = backends.contains(&Backend::Postgres).then(|| {
        Cluster::start(
            &ClusterOptions::default()
                .with_fsync(true)
                .with_parent_dir(dir.path().parent().expect("BENCH_DIR")),
        )
        .expect("start a throwaway PostgreSQL cluster")
    });
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# artifactstore scale benchmark: {small} vs {large} events, median of {rounds} ({cpus} CPUs, dir {})",
        dir.path().display()
    );
    if let Some(cluster) = &cluster {
        println!(
            "# PostgreSQL {}: throwaway cluster, fsync=on; SQLite: WAL, synchronous=FULL",
            cluster.version()
        );
    }
    runtime.block_on(async {
        // figures[backend][size] = op -> seconds
        let mut figures: BTreeMap<&str, Vec<BTreeMap<&'static str, f64>>> = BTreeMap::new();
        for (size_index, events) in [small, large].into_iter().enumerate() {
            let data_dir = dir.path().join(format!("store-{events}"));
            let filled = fill_sqlite(&data_dir, events, start).await;
            println!(
                "  filled {} events (SQLite, through WriteTx::append) in {:.1} s",
                filled.events, filled.fill_secs
            );
            let clock = ManualClock::new(start);
            let pg_url = match &cluster {
                Some(cluster) => {
                    let url = testing_postgres::create_database(
                        cluster.server_url(),
                        &format!("scale_{events}"),
                    )
                    .await
                    .expect("create a PostgreSQL database");
                    let secs = copy_to_postgres(&filled, &url, &clock).await;
                    println!("  copied them to PostgreSQL in {secs:.1} s");
                    Some(url)
                }
                None => None,
            };
            for backend in &backends {
                let url = match backend {
                    Backend::Sqlite => None,
                    Backend::Postgres => pg_url.as_deref(),
                };
                let store = open(&data_dir, url, &clock, false).await;
                if show_plans {
                    let probe = store
                        .resolve(&PackageRef::NameVersion {
                            name: "probe".into(),
                            version: "1.1".into(),
                        })
                        .await
                        .expect("probe")
                        .to_string();
                    let url = url.map_or_else(
                        || format!("sqlite://{}", data_dir.join("catalog.db").display()),
                        str::to_owned,
                    );
                    println!("  plans, {} at {} events:", backend.name(), filled.events);
                    explain(&url, &probe).await;
                }
                let tag = format!("{}-{size_index}", backend.name());
                let measured = measure(&store, &filled, rounds, &tag).await;
                store.catalog().close().await;
                figures.entry(backend.name()).or_default().push(measured);
            }
        }
        for (backend, sizes) in &figures {
            println!("{backend}: median ms at {small} | at {large} events | ratio (goal <= 1.3)");
            for op in OPS {
                let (a, b) = (sizes[0][op], sizes[1][op]);
                println!(
                    "  {op:<40} {:9.3} | {:9.3} | {:5.2}{}",
                    a * 1e3,
                    b * 1e3,
                    b / a,
                    if b / a > 1.3 { "  over" } else { "" }
                );
            }
        }
    });
    drop(cluster);
}
