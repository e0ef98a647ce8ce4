//! Shared fixtures: a store on a manual clock in its own tempdir, its catalog on SQLite or on
//! PostgreSQL ([`Backend`], [`backend_tests!`]), package builders, whole-log readers and
//! deterministic content.

use std::path::Path;
use std::sync::Arc;

use artifact_core::catalog::EventQuery;
use artifact_core::config::Config;
use artifact_core::digest::PackageId;
use artifact_core::event::Event;
use artifact_core::time::{ManualClock, Period, Timestamp};
use artifact_core::{ArtifactStore, CreatedPackage, Error, PackageRef};
use artifact_store_fs::EmbeddedOptions;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// A period of `days` days.
pub fn days(days: i64) -> Period {
    Period::Millis(days * DAY_MS)
}

/// `at` plus `days` days (which may be negative).
pub fn plus_days(at: Timestamp, days: i64) -> Timestamp {
    Timestamp::from_unix_millis(at.unix_millis() + days * DAY_MS).expect("timestamp in range")
}

/// The metadata store a test runs against. Every test of the suite runs once per backend: the
/// same test code is the metadata conformance suite (SPEC §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `catalog.db` in the fixture's data directory (the embedded default).
    Sqlite,
    /// A fresh database of its own on the test PostgreSQL
    /// (`artifact_core::testing_postgres::fresh_database`).
    Postgres,
}

/// Generates, for each `async fn name(backend: Backend)` listed, one test per backend:
/// `sqlite::name` and `postgres::name` (so `cargo test postgres::` runs the PostgreSQL half).
/// Each entry carries the test attribute to use, e.g. `#[tokio::test] name`.
macro_rules! backend_tests {
    ($( $(#[$attr:meta])+ $name:ident ),* $(,)?) => {
        mod sqlite {
            $( $(#[$attr])+ async fn $name() {
                super::$name($crate::support::Backend::Sqlite).await
            } )*
        }
        mod postgres {
            $( $(#[$attr])+ async fn $name() {
                super::$name($crate::support::Backend::Postgres).await
            } )*
        }
    };
}
pub(crate) use backend_tests;

/// A store (fs blobs in its own tempdir, the catalog on `backend`) on a manual clock.
pub struct Fixture {
    /// Keeps the directory alive for the life of the fixture.
    pub dir: tempfile::TempDir,
    /// The clock every handle on this store shares.
    pub clock: ManualClock,
    /// The store.
    pub store: ArtifactStore,
    /// The configuration every handle is opened with (`[metadata] url` names the catalog).
    pub config: Config,
}

impl Fixture {
    /// A new store on `backend` whose clock starts at `start`.
    pub async fn new(backend: Backend, start: Timestamp) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(start);
        let mut config = Config::default();
        if backend == Backend::Postgres {
            config.metadata.url = Some(artifact_core::testing_postgres::fresh_database().await);
        }
        let store = open_store(dir.path(), &config, &clock).await;
        Self {
            dir,
            clock,
            store,
            config,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The catalog's URL (`sqlite://<data-dir>/catalog.db` or `postgres://…`).
    pub fn metadata_url(&self) -> String {
        self.config.metadata_url(self.dir.path())
    }

    /// A direct connection to the catalog database, bypassing the library, as an attacker (or
    /// a careless DBA) would have. SQL for it uses `$N` placeholders, which both dialects read.
    pub async fn raw_catalog(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.metadata_url())
            .await
            .expect("open the catalog database directly")
    }

    /// Another handle on the same store: its own pool and writer lock, like a second process.
    pub async fn second_handle(&self) -> ArtifactStore {
        open_store(self.dir.path(), &self.config, &self.clock).await
    }

    /// Closes the store and opens the same data directory again (a "reboot").
    pub async fn reopen(&mut self) {
        self.store.catalog().close().await;
        self.store = open_store(self.dir.path(), &self.config, &self.clock).await;
    }
}

/// Opens the store in `data_dir` with `config` and `clock`.
pub async fn open_store(data_dir: &Path, config: &Config, clock: &ManualClock) -> ArtifactStore {
    EmbeddedOptions::new(data_dir)
        .with_config(config.clone())
        .with_clock(Arc::new(clock.clone()))
        .open()
        .await
        .expect("open the store")
}

pub use artifact_core::testing::{
    assert_views_match_replay, events_after, manifest_of as manifest, test_bytes,
};

/// Ingests every file's bytes, then creates the package.
pub async fn push(
    store: &ArtifactStore,
    name: &str,
    version: &str,
    class: &str,
    files: &[(&str, &[u8])],
) -> CreatedPackage {
    for (_, content) in files {
        store
            .ingest_blob("ci", *content, &[])
            .await
            .expect("ingest a blob");
    }
    store
        .create_package("ci", &manifest(name, version, class, files))
        .await
        .expect("create the package")
}

/// The events of one type for one package, in seq order.
pub async fn events_of(
    store: &ArtifactStore,
    package_id: PackageId,
    event_type: &str,
) -> Vec<Event> {
    store
        .events(&EventQuery {
            after: 0,
            limit: Some(100_000),
            event_type: Some(event_type.to_owned()),
            package_id: Some(package_id),
        })
        .await
        .expect("read events")
}

/// The current head seq.
pub async fn head_seq(store: &ArtifactStore) -> u64 {
    store.head().await.expect("head").seq
}

/// `PackageRef::Id`.
pub fn by_id(package_id: PackageId) -> PackageRef {
    PackageRef::Id(package_id)
}

/// Every event of the log, in seq order.
pub async fn all_events(store: &ArtifactStore) -> Vec<Event> {
    events_after(store, 0).await
}

/// Deterministic pseudo-random bytes, different per `seed`.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    test_bytes(len as u64, seed)
}

/// A short name of an error's variant, for comparing decisions.
pub fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::NotFound { .. } => "NotFound",
        Error::Conflict(_) => "Conflict",
        Error::InvalidInput(_) => "InvalidInput",
        Error::DigestMismatch { .. } => "DigestMismatch",
        Error::MissingBlobs { .. } => "MissingBlobs",
        Error::Corrupt { .. } => "Corrupt",
        Error::Integrity { .. } => "Integrity",
        Error::Cbor(_) => "Cbor",
        _ => "Other",
    }
}
