//! History is forever: `tests/fixtures/v1-store`, an embedded store written by the release
//! before migrations 0007 (token expiry) and 0008 (Merkle tree) — made by
//! `tests/fixtures/make-v1-store.sh` with that release's binary and never regenerated — opens
//! with this release, migrates, and then:
//!
//! - every event's stored bytes and hash are exactly what the old release wrote;
//! - the chain verifies and the log breaks none of the store's rules (`audit`);
//! - `fsck` is clean, a rebuild of the views equals the migrated live views;
//! - every file of the live packages reads back byte-identical (the guide board equals
//!   `examples/guide-board`), the purged package stays purged, its shared blob stays readable;
//! - the old token is listed with an id, and the new tree covers the old events (a checkpoint
//!   of the whole log has inclusion proofs that verify).

use crate::support::assert_views_match_replay;
use std::path::{Path, PathBuf};

use artifact_core::PackageRef;
use artifact_core::config::Config;
use artifact_core::time::{Clock as _, ManualClock, SystemClock};
use sqlx::Row as _;
use tokio::io::AsyncReadExt as _;

use crate::support::open_store;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1-store")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `(seq, body, hash)` of every event, read straight from a catalog file.
async fn raw_events(catalog: &Path) -> Vec<(i64, Vec<u8>, String)> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", catalog.display());
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let rows = sqlx::query("SELECT seq, body, hash FROM events ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| (r.get("seq"), r.get("body"), r.get("hash")))
        .collect()
}

async fn read_all(
    store: &artifact_core::ArtifactStore,
    package: &PackageRef,
    path: &str,
) -> Vec<u8> {
    let (_, mut read) = store.read_file(package, path, None).await.unwrap();
    let mut bytes = Vec::new();
    read.reader.read_to_end(&mut bytes).await.unwrap();
    bytes
}

fn example_files(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            example_files(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, std::fs::read(&path).unwrap()));
        }
    }
}

#[tokio::test]
async fn a_store_written_by_the_previous_release_opens_verifies_and_serves_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("v1-store");
    copy_dir(&fixture(), &data);
    let before = raw_events(&data.join("catalog.db")).await;
    assert!(before.len() >= 15, "the fixture holds a real history");

    let config = Config::load(&data.join("config.toml")).unwrap();
    let clock = ManualClock::new(SystemClock.now());
    let store = open_store(&data, &config, &clock).await;

    // Bytes unchanged, and this release re-encodes each body to the same bytes.
    let after = raw_events(&data.join("catalog.db")).await;
    assert_eq!(after, before, "migrating changed stored events");
    for (seq, body, _) in &after {
        let event = artifact_core::event::Event::from_canonical_bytes(body)
            .unwrap_or_else(|e| panic!("seq {seq}: {e}"));
        assert_eq!(
            &event.canonical_bytes().unwrap(),
            body,
            "seq {seq} re-encodes differently"
        );
    }

    let audit = store.audit().await.unwrap();
    assert!(audit.ok(), "{audit:?}");
    assert_eq!(audit.head.unwrap().seq, before.len() as u64);
    let fsck = store.fsck().await.unwrap();
    assert!(fsck.ok(), "{fsck:?}");
    assert_views_match_replay(&store).await;

    // Files, byte-identical.
    let board = PackageRef::NameVersion {
        name: "guide-board".to_owned(),
        version: "2026.11.23-1".to_owned(),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/guide-board");
    let mut files = Vec::new();
    example_files(&root, &root, &mut files);
    assert!(!files.is_empty());
    for (path, content) in &files {
        assert_eq!(&read_all(&store, &board, path).await, content, "{path}");
    }
    let keeper = PackageRef::NameVersion {
        name: "keeper".to_owned(),
        version: "1".to_owned(),
    };
    assert_eq!(
        read_all(&store, &keeper, "shared.txt").await,
        b"shared bytes\n"
    );
    let scratch = PackageRef::NameVersion {
        name: "scratch".to_owned(),
        version: "1".to_owned(),
    };
    assert!(store.package(&scratch).await.unwrap().purged_seq.is_some());
    assert!(matches!(
        store.read_file(&scratch, "shared.txt", None).await,
        Err(artifact_core::Error::Gone(_))
    ));
    let status = store.retention_status(&board).await.unwrap();
    assert!(status.active_holds.is_empty() && !status.eligible_for_deletion);

    // The old token is listed; the tree covers the old events.
    let tokens = store.list_tokens().await.unwrap();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0].principal, "ci");
    assert!(store.verify_tree().await.is_ok());
}
