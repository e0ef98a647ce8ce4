//! Shared fixtures: an embedded store on a manual clock in its own tempdir, package builders,
//! whole-log readers and deterministic content.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use artifact_core::catalog::EventQuery;
use artifact_core::digest::{BlobInfo, PackageId};
use artifact_core::event::Event;
use artifact_core::manifest::{FileEntry, Manifest};
use artifact_core::time::{ManualClock, Period, Timestamp};
use artifact_core::{ArtifactStore, CreatedPackage, Error, PackageRef};
use artifact_store_fs::EmbeddedOptions;

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

/// An embedded store (SQLite catalog + fs blobs) in its own tempdir, on a manual clock.
pub struct Fixture {
    /// Keeps the directory alive for the life of the fixture.
    pub dir: tempfile::TempDir,
    /// The clock every handle on this store shares.
    pub clock: ManualClock,
    /// The store.
    pub store: ArtifactStore,
}

impl Fixture {
    /// A new store whose clock starts at `start`.
    pub async fn new(start: Timestamp) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(start);
        let store = open_store(dir.path(), &clock).await;
        Self { dir, clock, store }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The catalog database file.
    pub fn catalog_db(&self) -> PathBuf {
        self.dir.path().join("catalog.db")
    }

    /// Another handle on the same data directory: its own pool and writer lock, like a
    /// second process.
    pub async fn second_handle(&self) -> ArtifactStore {
        open_store(self.dir.path(), &self.clock).await
    }

    /// Closes the store and opens the same data directory again (a "reboot").
    pub async fn reopen(&mut self) {
        self.store.catalog().close().await;
        self.store = open_store(self.dir.path(), &self.clock).await;
    }
}

/// Opens the embedded store in `data_dir` with `clock`.
pub async fn open_store(data_dir: &Path, clock: &ManualClock) -> ArtifactStore {
    EmbeddedOptions::new(data_dir)
        .with_clock(Arc::new(clock.clone()))
        .open()
        .await
        .expect("open the embedded store")
}

/// A manifest file entry for `content` at `path`.
pub fn file_entry(path: &str, content: &[u8], media_type: &str) -> FileEntry {
    let info = BlobInfo::of(content);
    FileEntry {
        path: path.to_owned(),
        size: info.size,
        blake3: info.blake3,
        sha256: info.sha256,
        media_type: Some(media_type.to_owned()),
    }
}

/// A manifest of `files` (sorted here), without labels.
pub fn manifest(name: &str, version: &str, class: &str, files: &[(&str, &[u8])]) -> Manifest {
    let mut manifest = Manifest {
        name: name.to_owned(),
        version: version.to_owned(),
        retention_class: class.to_owned(),
        files: files
            .iter()
            .map(|(path, content)| file_entry(path, content, "application/octet-stream"))
            .collect(),
        labels: Default::default(),
    };
    manifest.sort_files();
    manifest
}

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

/// Every event of the log, in seq order.
pub async fn all_events(store: &ArtifactStore) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let page = store
            .events(&EventQuery {
                after: events.last().map_or(0, |e: &Event| e.seq),
                limit: Some(1000),
                event_type: None,
                package_id: None,
            })
            .await
            .expect("read events");
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
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

/// Deterministic pseudo-random bytes (xorshift64*), different per `seed`.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
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
