//! The catalog: the event log and its materialised views in SQL (SPEC §2.4, §2.5, §4.2).
//!
//! This is the only module that knows SQL. It runs on sqlx's `Any` driver so that one
//! implementation serves every dialect; dialect differences (how a write transaction is
//! serialised, migrations) are confined to [`Dialect`].
//!
//! Every state change goes through a [`WriteTx`]: it serialises writers, reads the log head,
//! and for each appended event inserts the event row and applies the event to the views with
//! `apply_event` — the same function `rebuild_views` replays the log through, so the views are
//! a pure function of the log by construction.

mod follow;
mod project;
mod read;
mod rows;
mod tlog;
mod view_row;

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Executor as _, Row as _};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::config::RetentionClasses;
use crate::digest::{Blake3, PackageId};
use crate::error::{Error, Result};
use crate::event::{ChainVerifier, Event, EventData, Head, StoredEvent};
use crate::time::Timestamp;

pub use follow::FOLLOW_RECHECK;
pub(crate) use project::apply_event;
pub use read::{LockNeed, RecordedLock};
pub(crate) use read::{
    blob as views_blob, blob_lock as views_blob_lock, blobs_page as views_blobs_page,
    deleting_blobs as views_deleting_blobs, due_for_sweep as views_due_for_sweep,
    eligible_unpurged as views_eligible_unpurged, events_at as views_events_at,
    events_of_package_type as views_events_of_package_type, events_of_type as views_events_of_type,
    indexes_listing as views_indexes_listing, legal_holds_page as views_legal_holds_page,
    list_packages as views_list_packages, list_tokens as views_list_tokens,
    live_files_page as views_live_files_page, live_packages_page as views_live_packages_page,
    live_referrers as views_live_referrers, lock_needs_page as views_lock_needs_page,
    oci_tag as views_oci_tag, oci_tags as views_oci_tags, package as views_package,
    package_id_by_name as views_package_id_by_name, package_with_file as views_package_with_file,
    packages_with_file as views_packages_with_file,
    retention_events_of as views_retention_events_of, retention_status as views_retention_status,
    retention_statuses as views_retention_statuses, token_by_hash as views_token_by_hash,
    token_by_seq as views_token_by_seq, unreferenced_blobs as views_unreferenced_blobs,
};
pub use rows::{
    BlobRecord, EventQuery, HoldRecord, PackageFilter, PackageRecord, RetentionStatus, TokenRecord,
};
pub use tlog::{ReplayedRoots, StoredCheckpoint};

/// The SQL dialect behind a catalog URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (embedded default).
    Sqlite,
    /// PostgreSQL (scale-out).
    Postgres,
}

impl Dialect {
    /// The dialect of a `sqlite://` or `postgres://` URL.
    pub fn of_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            Err(Error::Config(format!(
                "metadata url `{url}` must start with sqlite:// or postgres://"
            )))
        }
    }
}

/// Catalog connection settings.
#[derive(Clone, Debug)]
pub struct CatalogOptions {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// SQLite only: create the database file if missing.
    pub create_if_missing: bool,
    /// Open without writing anything: no migrations (a catalog whose schema differs from this
    /// binary's is refused), no seeding, and `Catalog::write` fails with
    /// [`Error::ReadOnly`]. SQLite opens the file with `mode=ro` (and, when its directory is
    /// not writable and no process has it open, as `immutable`); PostgreSQL sessions run with
    /// `default_transaction_read_only`.
    pub read_only: bool,
    /// How long a statement waits for another process's lock before failing with
    /// [`Error::Locked`] (SQLite's busy timeout; default 60 s).
    pub busy_timeout: std::time::Duration,
    /// Grow the Merkle tree over the log with each append (default). Off, appends skip it and
    /// the tree is extended when the next checkpoint is made (or the catalog opens with it on):
    /// for bulk loads, and the baseline of `benches/tlog.rs`.
    pub merkle_tree: bool,
}

/// The default [`CatalogOptions::busy_timeout`].
pub const DEFAULT_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl CatalogOptions {
    /// Read-write options for `url` with the defaults (pool of 8, no file creation, 60 s busy
    /// timeout).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 8,
            create_if_missing: false,
            read_only: false,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            merkle_tree: true,
        }
    }
}

/// The event log and views in a SQL database.
#[derive(Clone, Debug)]
pub struct Catalog {
    pool: AnyPool,
    dialect: Dialect,
    /// Serialises this process's writers before the database does (fair queueing instead of
    /// SQLite busy-waiting); cross-process serialisation is the database's job.
    write_lock: Arc<Mutex<()>>,
    /// Events this process has committed (for metrics).
    appended: Arc<std::sync::atomic::AtomicU64>,
    /// The seq of the last event this process committed, sent on every commit (wakes
    /// [`Catalog::follow`] streams).
    committed: Arc<tokio::sync::watch::Sender<u64>>,
    /// Opened with [`CatalogOptions::read_only`].
    read_only: bool,
    /// [`CatalogOptions::merkle_tree`].
    merkle_tree: bool,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The key of the transaction-scoped advisory lock that serialises appends on PostgreSQL
/// (ADR 0009). Advisory locks are per database, so catalogs in different databases of one
/// cluster do not contend.
const POSTGRES_APPEND_LOCK: i64 = 7232917406151681;

/// How a PostgreSQL write transaction starts. READ COMMITTED is required, not a default we
/// accept: each statement then reads a fresh snapshot, so the head read *after*
/// `pg_advisory_xact_lock` returns sees the previous writer's commit. Under REPEATABLE READ or
/// SERIALIZABLE the snapshot would be taken by the lock statement itself, before the lock is
/// granted, and two writers would both append `head + 1`. Spelled out so that a server or role
/// whose `default_transaction_isolation` is stricter cannot break the log (ADR 0009).
const POSTGRES_BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// `url` with any password replaced by `***`, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Catalog {
    /// Connects, configures and migrates (read-only: connects and checks the schema version).
    pub async fn open(options: &CatalogOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of_url(&options.url)?;
        let read_only = options.read_only;
        let sqlite_path = options
            .url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:")
            .to_owned();
        let sqlite_options = |immutable: bool| -> Result<AnyConnectOptions> {
            use sqlx::ConnectOptions as _;
            let sqlite = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&sqlite_path)
                .create_if_missing(options.create_if_missing && !read_only)
                .read_only(read_only)
                .immutable(immutable);
            Ok(AnyConnectOptions::from_url(&sqlite.to_url_lossy())?)
        };
        let connect_options: AnyConnectOptions = match dialect {
            Dialect::Sqlite => sqlite_options(false)?,
            Dialect::Postgres => options.url.parse()?,
        };
        let unreachable_postgres = |e: sqlx::Error| {
            Error::Config(format!(
                "cannot connect to the PostgreSQL catalog {}: {e} (is the server running, and \
                 does the database exist? create it with `createdb`)",
                redact_url(&options.url)
            ))
        };
        if dialect == Dialect::Postgres {
            // One direct attempt first: the pool would retry a refused or failed connection
            // until its acquire timeout (30 s) and then report only "pool timed out".
            use sqlx::Connection as _;
            let probe = AnyConnection::connect_with(&connect_options)
                .await
                .map_err(unreachable_postgres)?;
            let _ = probe.close().await;
        }
        let busy_ms = options.busy_timeout.as_millis().min(i32::MAX as u128);
        let pool_options = || {
            AnyPoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .after_connect(move |conn, _meta| {
                    Box::pin(async move { configure(conn, dialect, read_only, busy_ms).await })
                })
        };
        let open_error = |e: sqlx::Error| match Error::from(e) {
            // SQLITE_READONLY: the file, its directory or the mount is read-only.
            Error::Database(e)
                if dialect == Dialect::Sqlite && sqlite_primary_code(&e) == Some(8) =>
            {
                Error::ReadOnly(format!(
                    "{} cannot be written by this process (a read-only file, directory or \
                     mount): {e}; commands that only read (show, ls, pull, audit verify, …) \
                     still work",
                    sqlite_path
                ))
            }
            Error::Database(e) => match dialect {
                Dialect::Sqlite if !options.create_if_missing => Error::Config(format!(
                    "cannot open the catalog {}: {e} (run `artifactstore init` first?)",
                    options.url
                )),
                Dialect::Postgres => unreachable_postgres(e),
                Dialect::Sqlite => Error::Database(e),
            },
            other => other,
        };
        let mut connect_options = connect_options;
        if dialect == Dialect::Sqlite && read_only {
            // A WAL catalog read-only in a directory this process cannot write (a backup, a
            // read-only mount): SQLite cannot create the shared-memory index, so the first read
            // fails. When no process has the catalog open (no `-wal` file with content), it is
            // safe to read it as immutable. One direct connection finds out (and reports the
            // real reason instead of the pool's "timed out").
            use sqlx::Connection as _;
            let probe = async {
                let mut conn = AnyConnection::connect_with(&connect_options).await?;
                let read = sqlx::query("SELECT count(*) FROM sqlite_master")
                    .fetch_one(&mut conn)
                    .await
                    .map(|_| ());
                let _ = conn.close().await;
                read
            };
            if let Err(e) = probe.await {
                if !is_sqlite_readonly_open(&e) {
                    return Err(open_error(e));
                }
                let wal = std::path::PathBuf::from(format!("{sqlite_path}-wal"));
                if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                    return Err(Error::ReadOnly(format!(
                        "cannot read {sqlite_path}: it has a write-ahead log ({}) but SQLite \
                         cannot open its index read-only ({e}); copy the catalog with its -wal \
                         file somewhere writable, or checkpoint it first",
                        wal.display()
                    )));
                }
                connect_options = sqlite_options(true)?;
            }
        }
        if dialect == Dialect::Sqlite && !read_only {
            // One direct attempt first, configured like every pooled connection: the pool would
            // retry a failing connection (a read-only file or directory, a lock held past the
            // busy timeout) until its acquire timeout and report only "pool timed out".
            use sqlx::Connection as _;
            let mut probe = AnyConnection::connect_with(&connect_options)
                .await
                .map_err(open_error)?;
            let configured = configure(&mut probe, dialect, read_only, busy_ms).await;
            let _ = probe.close().await;
            configured.map_err(open_error)?;
        }
        let pool = pool_options()
            .connect_with(connect_options)
            .await
            .map_err(open_error)?;
        if read_only {
            check_schema(&pool, dialect).await?;
        } else {
            // Both migrators take a lock first (SQLite: the write lock; PostgreSQL: a session
            // advisory lock), so replicas starting at once apply each migration exactly once.
            let migrated = match dialect {
                Dialect::Sqlite => SQLITE_MIGRATOR.run(&pool).await,
                Dialect::Postgres => POSTGRES_MIGRATOR.run(&pool).await,
            };
            migrated.map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => match Error::from(e) {
                    Error::Database(e) => sqlx::migrate::MigrateError::Execute(e).into(),
                    other => other,
                },
                other => other.into(),
            })?;
        }
        let catalog = Self {
            pool,
            dialect,
            write_lock: Arc::new(Mutex::new(())),
            appended: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            committed: Arc::new(tokio::sync::watch::Sender::new(0)),
            read_only,
            merkle_tree: options.merkle_tree,
        };
        // Events appended before migration 0008 get their Merkle tree leaves (one indexed
        // read when the tree is complete). A read-only open writes nothing.
        if !read_only && options.merkle_tree {
            catalog.catch_up_tree().await?;
        }
        Ok(catalog)
    }

    /// Whether the catalog was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The dialect in use.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a serialised write transaction positioned at the current head (test and bench
    /// access, behind the `testing` feature: outside this crate, events are appended by the
    /// store's operations, which check the rules first).
    #[cfg(feature = "testing")]
    pub async fn write(&self) -> Result<WriteTx> {
        self.begin_write().await
    }

    /// Starts a serialised write transaction positioned at the current head.
    #[cfg(not(feature = "testing"))]
    pub(crate) async fn write(&self) -> Result<WriteTx> {
        self.begin_write().await
    }

    async fn begin_write(&self) -> Result<WriteTx> {
        if self.read_only {
            return Err(Error::ReadOnly(
                "this operation records events; open the store read-write".to_owned(),
            ));
        }
        let guard = self.write_lock.clone().lock_owned().await;
        let mut tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => {
                let mut tx = self.pool.begin_with(POSTGRES_BEGIN).await?;
                // One transaction-scoped advisory lock serialises appends across processes
                // (replicas); it is released by COMMIT or ROLLBACK, or when the connection
                // dies. It must be taken before the head is read (ADR 0009).
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(POSTGRES_APPEND_LOCK)
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        // Read only now, under the lock: the head every append of this transaction chains to.
        let head = read_head(&mut tx).await?;
        Ok(WriteTx {
            tx,
            head,
            appended: Vec::new(),
            counter: self.appended.clone(),
            committed: self.committed.clone(),
            merkle_tree: self.merkle_tree,
            tree: tlog::TreeAppender::default(),
            _guard: guard,
        })
    }

    /// Events committed by this process since it opened the catalog.
    pub fn events_appended(&self) -> u64 {
        self.appended.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The head of the log.
    pub async fn head(&self) -> Result<Head> {
        let mut conn = self.pool.acquire().await?;
        read_head(&mut conn).await
    }

    /// Seeds `retention_classes` from configuration.
    pub async fn seed_classes(&self, classes: &RetentionClasses) -> Result<()> {
        let mut tx = self.write().await?;
        seed_classes(tx.conn(), classes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events in seq order, filtered.
    pub async fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        let mut conn = self.pool.acquire().await?;
        read::events(&mut conn, query).await
    }

    /// Verifies the whole hash chain; returns the verified head, or the first bad seq as
    /// [`Error::Integrity`].
    pub async fn verify_chain(&self) -> Result<Head> {
        self.verify_chain_with(|_, _| {}).await
    }

    /// [`Catalog::verify_chain`], handing each verified event and its stored canonical bytes
    /// to `visit` in seq order (one pass for the chain and whatever else replays the log, e.g.
    /// the rules of [`crate::rules::LogRules`] and the Merkle leaves of a checkpoint).
    pub async fn verify_chain_with(
        &self,
        mut visit: impl FnMut(&Event, &[u8]) + Send,
    ) -> Result<Head> {
        let mut conn = self.pool.acquire().await?;
        let mut verifier = ChainVerifier::new();
        let mut after: i64 = 0;
        loop {
            let rows = sqlx::query(
                "SELECT seq, type, package_id, actor, at, body, hash FROM events WHERE seq > $1 ORDER BY seq LIMIT 5000",
            )
            .bind(after)
            .fetch_all(&mut *conn)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let stored = StoredEvent {
                    seq: row.try_get::<i64, _>("seq")? as u64,
                    event_type: row.try_get("type")?,
                    package_id: row.try_get("package_id")?,
                    actor: row.try_get("actor")?,
                    at: row.try_get("at")?,
                    body: row.try_get("body")?,
                    hash: row.try_get("hash")?,
                };
                after = stored.seq as i64;
                let event = verifier.check(&stored)?;
                visit(&event, &stored.body);
            }
        }
        let stored_head = self.head().await?;
        let verified = verifier.head();
        if stored_head != verified {
            return Err(Error::Integrity {
                seq: verified.seq + 1,
                reason: "the log changed while it was being verified; run it again".to_owned(),
            });
        }
        Ok(verified)
    }

    /// Rebuilds every view by replaying the log through `apply_event`; returns the number of
    /// events replayed. Runs in one write transaction: readers see the old views until it commits.
    pub async fn rebuild_views(&self, classes: &RetentionClasses) -> Result<u64> {
        let mut tx = self.write().await?;
        let replayed = rebuild_in(tx.conn(), classes).await?;
        tx.commit().await?;
        Ok(replayed)
    }

    /// Every view's rows as sorted text lines, table by table (for equality checks).
    pub async fn dump_views(&self) -> Result<BTreeMap<&'static str, Vec<String>>> {
        let mut conn = self.pool.acquire().await?;
        read::dump_views(&mut conn).await
    }

    /// Whether the live views equal a replay of the log: replays inside a transaction that is
    /// rolled back, and compares dumps. Returns the tables that differ.
    pub async fn views_match_replay(&self, classes: &RetentionClasses) -> Result<Vec<String>> {
        let mut tx = self.write().await?;
        let live = read::dump_views(tx.conn()).await?;
        rebuild_in(tx.conn(), classes).await?;
        let replayed = read::dump_views(tx.conn()).await?;
        tx.rollback().await?;
        Ok(live
            .iter()
            .filter(|(table, rows)| replayed.get(*table) != Some(rows))
            .map(|(table, _)| (*table).to_owned())
            .collect())
    }

    /// Runs a read with a pooled connection (crate-private: other crates read through methods).
    pub(crate) async fn read(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.pool.acquire().await?)
    }
}

/// Settings every connection gets. SQLite: busy_timeout first, so that other processes' locks
/// (and the journal-mode switch) are waited for instead of failing; WAL: readers never block the
/// writer; FULL: a committed event survives power loss (NORMAL would not). A read-only
/// connection changes no setting stored in the file. PostgreSQL read-only sessions refuse
/// writes.
async fn configure(
    conn: &mut AnyConnection,
    dialect: Dialect,
    read_only: bool,
    busy_ms: u128,
) -> std::result::Result<(), sqlx::Error> {
    match dialect {
        Dialect::Sqlite => {
            conn.execute(sqlx::AssertSqlSafe(format!(
                "PRAGMA busy_timeout = {busy_ms}"
            )))
            .await?;
            if !read_only {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
            }
        }
        Dialect::Postgres if read_only => {
            conn.execute("SET default_transaction_read_only = on")
                .await?;
        }
        Dialect::Postgres => {}
    }
    Ok(())
}

/// Whether a read-only SQLite open failed because the WAL index could not be created
/// (SQLITE_READONLY and its extended codes, or SQLITE_CANTOPEN).
fn is_sqlite_readonly_open(error: &sqlx::Error) -> bool {
    matches!(sqlite_primary_code(error), Some(8 | 14))
}

/// SQLite's primary result code of a database error (the extended code's low byte).
fn sqlite_primary_code(error: &sqlx::Error) -> Option<i32> {
    match error {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff),
        _ => None,
    }
}

/// A read-only open applies no migration: the catalog must have exactly this binary's
/// migrations, or reads could meet a schema they do not expect.
async fn check_schema(pool: &AnyPool, dialect: Dialect) -> Result<()> {
    let migrator = match dialect {
        Dialect::Sqlite => &SQLITE_MIGRATOR,
        Dialect::Postgres => &POSTGRES_MIGRATOR,
    };
    let known: BTreeMap<i64, &sqlx::migrate::Migration> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, m))
        .collect();
    let rows = sqlx::query(
        "SELECT version, description, CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT) AS success, \
         checksum FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| match Error::from(e) {
        Error::Database(e) => Error::Config(format!(
            "the catalog has no schema version table ({e}): it was never initialised; run \
             `artifactstore init` (read-write) first"
        )),
        other => other,
    })?;
    let mut applied = std::collections::BTreeSet::new();
    for row in &rows {
        let version: i64 = row.try_get("version")?;
        let description: String = row.try_get("description")?;
        let success = row.try_get::<i64, _>("success")? == 1;
        let checksum: Vec<u8> = row.try_get("checksum")?;
        match known.get(&version) {
            None => {
                return Err(Error::Config(format!(
                    "the catalog has migration {version} ({description}) that this binary does \
                     not know: a newer artifactstore wrote it; read it with that version"
                )));
            }
            Some(migration) if !success || *migration.checksum != *checksum => {
                return Err(Error::Config(format!(
                    "the catalog's migration {version} ({description}) is {} this binary's",
                    if success {
                        "different from"
                    } else {
                        "partly applied, unlike"
                    }
                )));
            }
            Some(_) => {
                applied.insert(version);
            }
        }
    }
    if let Some((version, migration)) = known.iter().find(|(v, _)| !applied.contains(*v)) {
        return Err(Error::Config(format!(
            "the catalog lacks migration {version} ({}) that this binary needs; open it \
             read-write once with this version (any command that writes, e.g. `artifactstore \
             retention sweep`) to migrate it, or read it with the version that wrote it",
            migration.description
        )));
    }
    Ok(())
}

async fn rebuild_in(conn: &mut AnyConnection, classes: &RetentionClasses) -> Result<u64> {
    for table in project::VIEW_TABLES {
        conn.execute(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .await?;
    }
    seed_classes(conn, classes).await?;
    let mut after = 0;
    let mut replayed = 0u64;
    loop {
        let page = read::bodies_page(conn, after, u64::MAX, 5000).await?;
        if page.is_empty() {
            break;
        }
        for (seq, body) in &page {
            apply_event(conn, &read::event_of_body(*seq, body)?).await?;
            after = *seq;
            replayed += 1;
        }
    }
    Ok(replayed)
}

async fn seed_classes(conn: &mut AnyConnection, classes: &RetentionClasses) -> Result<()> {
    conn.execute("DELETE FROM retention_classes").await?;
    for (name, period) in classes.iter() {
        sqlx::query("INSERT INTO retention_classes (name, default_period) VALUES ($1, $2)")
            .bind(name)
            .bind(period.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn read_head(conn: &mut AnyConnection) -> Result<Head> {
    let row = sqlx::query("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => Ok(Head::EMPTY),
        Some(row) => {
            let seq: i64 = row.try_get("seq")?;
            let hash: String = row.try_get("hash")?;
            Ok(Head {
                seq: seq as u64,
                hash: Some(hash.parse().map_err(|e| Error::Integrity {
                    seq: seq as u64,
                    reason: format!("stored hash is not a digest: {e}"),
                })?),
            })
        }
    }
}

/// A serialised write transaction positioned at the log head.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    head: Head,
    appended: Vec<Event>,
    counter: Arc<std::sync::atomic::AtomicU64>,
    committed: Arc<tokio::sync::watch::Sender<u64>>,
    /// [`CatalogOptions::merkle_tree`].
    merkle_tree: bool,
    /// Grows the Merkle tree with each append (flushed before commit).
    tree: tlog::TreeAppender,
    _guard: OwnedMutexGuard<()>,
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx")
            .field("head", &self.head)
            .field("appended", &self.appended.len())
            .finish()
    }
}

impl WriteTx {
    /// The connection inside the transaction, for reads that must see the same snapshot
    /// (crate-private: only `catalog/` and the store's operations read through it).
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// The head including events appended in this transaction.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Appends one event (next seq, chained to the head) and applies it to the views. The type
    /// and data come from the typed payload (one encoding per type, [`crate::event::types`]).
    pub async fn append(
        &mut self,
        package_id: Option<PackageId>,
        actor: &str,
        at: Timestamp,
        data: impl Into<EventData>,
    ) -> Result<Event> {
        let mut data = data.into();
        // An `Unknown` payload under a type this release knows is decoded as that type: its
        // data must be that type's payload (or nothing is appended), and it changes the views.
        if let EventData::Unknown {
            event_type,
            data: value,
        } = &data
        {
            data =
                EventData::decode(event_type, value).map_err(|e| Error::invalid(e.to_string()))?;
        }
        let event = Event {
            seq: self.head.seq + 1,
            event_type: data.event_type().to_owned(),
            package_id,
            actor: actor.to_owned(),
            at,
            data: data.encode(),
            prev: self.head.hash,
        };
        let body = event.canonical_bytes()?;
        let hash = Blake3::of(&body);
        let leaf = crate::tlog::leaf_hash(&body);
        sqlx::query(
            "INSERT INTO events (seq, type, package_id, actor, at, body, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(event.seq as i64)
        .bind(event.event_type.as_str())
        .bind(event.package_id.map(|p| p.to_string()))
        .bind(event.actor.as_str())
        .bind(event.at.to_string())
        .bind(body)
        .bind(hash.to_string())
        .execute(&mut *self.tx)
        .await?;
        project::apply(&mut self.tx, &event, &data).await?;
        // The Merkle tree over the log grows in the same transaction (ADR 0011).
        if self.merkle_tree {
            self.tree.append(&mut self.tx, event.seq, leaf).await?;
        }
        self.head = Head {
            seq: event.seq,
            hash: Some(hash),
        };
        self.appended.push(event.clone());
        Ok(event)
    }

    /// Commits; returns the events appended.
    pub async fn commit(mut self) -> Result<Vec<Event>> {
        self.tree.flush(&mut self.tx).await?;
        self.tx.commit().await?;
        self.counter.fetch_add(
            self.appended.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if let Some(last) = self.appended.last() {
            // Wakes every follower (`send_replace` works with no receiver too).
            self.committed.send_replace(last.seq);
        }
        Ok(self.appended)
    }

    /// Rolls back; nothing appended survives.
    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}
