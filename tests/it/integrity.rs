//! Integrity of the catalog and the blobs (SPEC §2.4, §2.5, §5, §6):
//!
//! - the views are a pure function of the log: rebuilding them reproduces the live views;
//! - the database refuses to change history, and when an attacker gets around that (drops the
//!   triggers), `audit_verify` names the first bad seq;
//! - bad input of every kind is refused with a precise error and changes nothing;
//! - a corrupt blob on disk fails a full read instead of being served as good.

use artifact_core::raw_sql;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use artifact_core::blob::ByteRange;
use artifact_core::cbor::{self, CborErrorReason, Value};
use artifact_core::digest::{AnyDigest, Blake3, BlobInfo};
use artifact_core::event::{Event, Head};
use artifact_core::manifest::Manifest;
use artifact_core::time::ymd;
use artifact_core::{ArtifactStore, Error};
use artifact_store_fs::FsBlobStore;
use sqlx::AnyPool;
use tokio::io::AsyncReadExt as _;

use crate::support::{
    Backend, Fixture, backend_tests, by_id, days, error_kind, head_seq, manifest, plus_days,
    pseudo_random_bytes, push,
};

backend_tests! {
    #[tokio::test]
    rebuild_views_reproduces_the_live_views,
    #[tokio::test]
    events_table_refuses_update_and_delete,
    #[tokio::test]
    events_table_refuses_insert_or_replace,
    #[tokio::test]
    audit_names_an_altered_event_body,
    #[tokio::test]
    audit_names_the_successor_of_a_rewritten_event_with_its_hash,
    #[tokio::test]
    audit_head_changes_when_the_last_event_is_rewritten,
    #[tokio::test]
    audit_names_a_deleted_event,
    #[tokio::test]
    audit_names_swapped_events,
    #[tokio::test]
    audit_names_an_event_whose_type_column_was_altered,
    #[tokio::test]
    audit_names_an_event_whose_package_id_column_was_altered,
    #[tokio::test]
    audit_names_an_event_whose_actor_or_at_column_was_altered,
    #[tokio::test]
    audit_names_an_event_whose_body_is_not_canonical_cbor,
    #[tokio::test]
    non_canonical_manifest_cbor_is_rejected_with_its_offset,
    #[tokio::test]
    path_traversal_in_a_manifest_is_rejected,
    #[tokio::test]
    unknown_retention_class_is_rejected,
    #[tokio::test]
    manifest_naming_an_unstored_blob_is_rejected,
    #[tokio::test]
    same_name_version_is_idempotent_or_a_conflict,
    #[tokio::test]
    digest_mismatch_stores_nothing,
    #[tokio::test]
    bad_retention_requests_change_nothing,
    #[tokio::test]
    corrupt_blob_fails_a_full_read,
    #[tokio::test]
    truncated_or_grown_blob_fails_a_full_read,
    #[tokio::test]
    corrupt_manifest_blob_fails_manifest_reads,
}

// ----- (a) rebuild-views equality ------------------------------------------------------------

/// A store with several packages of every shipped class, a shared blob, holds (released and
/// active), extensions, sweeps, a flip back after eligibility and an idempotent repeat.
async fn busy_store(backend: Backend) -> Fixture {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    let clock = &fixture.clock;
    let shared = b"shared by every package".as_slice();
    let mut ids = Vec::new();
    for (n, class) in [
        "ephemeral",
        "build-cache",
        "release-evidence",
        "compliance-record",
        "permanent-record",
    ]
    .into_iter()
    .enumerate()
    {
        let own = format!("own content {n}").into_bytes();
        let created = push(
            store,
            &format!("pkg-{n}"),
            "1.0.0",
            class,
            &[("shared.txt", shared), ("own.txt", &own)],
        )
        .await;
        ids.push(created.package_id);
    }
    // Idempotent repeat: no events, same views.
    let own = b"own content 0".as_slice();
    let again = push(
        store,
        "pkg-0",
        "1.0.0",
        "ephemeral",
        &[("shared.txt", shared), ("own.txt", own)],
    )
    .await;
    assert!(!again.created);

    clock.advance(days(3));
    let held = store
        .hold("legal", &by_id(ids[0]), "litigation")
        .await
        .unwrap();
    let released_later = store
        .hold("legal", &by_id(ids[1]), "short review")
        .await
        .unwrap();
    store
        .extend(
            "ops",
            &by_id(ids[2]),
            ymd(2029, 1, 1),
            "kept for the next audit",
        )
        .await
        .unwrap();
    clock.advance(days(40));
    assert!(
        store
            .sweep("sweeper", None)
            .await
            .unwrap()
            .newly_eligible
            .is_empty()
    );
    store
        .release("legal", &by_id(ids[1]), &released_later, "done")
        .await
        .unwrap();
    assert_eq!(
        store.sweep("sweeper", None).await.unwrap().newly_eligible,
        vec![ids[1]]
    );
    // Flip back after eligibility, then marked again.
    let status = store.retention_status(&by_id(ids[1])).await.unwrap();
    store
        .extend(
            "ops",
            &by_id(ids[1]),
            plus_days(status.current_expires_at.unwrap(), 5),
            "one more week",
        )
        .await
        .unwrap();
    assert_eq!(
        store.sweep("sweeper", None).await.unwrap().newly_eligible,
        vec![ids[1]]
    );
    assert!(
        store
            .retention_status(&by_id(ids[0]))
            .await
            .unwrap()
            .active_holds
            .iter()
            .any(|h| h.hold_id == held)
    );
    fixture
}

async fn rebuild_views_reproduces_the_live_views(backend: Backend) {
    let mut fixture = busy_store(backend).await;
    let live = fixture.store.catalog().dump_views().await.unwrap();
    assert_eq!(live["retention_state"].len(), 5);
    assert_eq!(live["packages"].len(), 5);
    assert_eq!(live["package_files"].len(), 10);
    // 5 own blobs + 1 shared + 5 manifests.
    assert_eq!(live["blobs"].len(), 11);
    assert_eq!(live["holds"].len(), 2);

    let replayed = fixture.store.rebuild_views().await.unwrap();
    assert_eq!(replayed, head_seq(&fixture.store).await);
    let rebuilt = fixture.store.catalog().dump_views().await.unwrap();
    assert_eq!(live, rebuilt);
    assert!(
        fixture
            .store
            .catalog()
            .views_match_replay(fixture.store.classes())
            .await
            .unwrap()
            .is_empty()
    );

    // And again after a reopen (a fresh pool, the classes seeded anew).
    fixture.reopen().await;
    fixture.store.rebuild_views().await.unwrap();
    assert_eq!(fixture.store.catalog().dump_views().await.unwrap(), live);
}

// ----- (b) tamper detection ------------------------------------------------------------------

async fn raw_body(pool: &AnyPool, seq: i64) -> Vec<u8> {
    sqlx::query_scalar("SELECT body FROM events WHERE seq = $1")
        .bind(seq)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// What an attacker with write access to the database does first.
async fn drop_guard_triggers(backend: Backend, pool: &AnyPool) {
    for trigger in ["events_refuse_update", "events_refuse_delete"] {
        let statement = match backend {
            Backend::Sqlite => format!("DROP TRIGGER {trigger}"),
            Backend::Postgres => format!("DROP TRIGGER {trigger} ON events"),
        };
        raw_sql!(pool, &statement).await.unwrap();
    }
}

/// The seq `audit_verify` names, or a panic if it does not fail with `Integrity`.
async fn first_bad_seq(store: &ArtifactStore) -> u64 {
    match store.audit_verify().await {
        Err(Error::Integrity { seq, .. }) => seq,
        other => panic!("expected an integrity failure, got {other:?}"),
    }
}

/// A fresh store whose log has at least 14 events, a direct connection to its catalog, and
/// the seq an attack aims at (an event in the middle, not the last).
async fn store_to_tamper(backend: Backend) -> (Fixture, AnyPool, u64) {
    let fixture = busy_store(backend).await;
    let head = fixture.store.audit_verify().await.unwrap();
    assert!(head.seq >= 14, "the log is too short: {}", head.seq);
    let pool = fixture.raw_catalog().await;
    (fixture, pool, 7)
}

/// [`store_to_tamper`] with the guard triggers already dropped: the attacker's starting point.
async fn attack(backend: Backend) -> (Fixture, AnyPool, u64) {
    let (fixture, pool, target) = store_to_tamper(backend).await;
    drop_guard_triggers(backend, &pool).await;
    (fixture, pool, target)
}

/// Rewrites event `seq` consistently, as an attacker who knows the format would: the body
/// names `mallory` as its actor, and the `actor` and `hash` columns agree with it. Returns the
/// new body.
async fn forge_actor(pool: &AnyPool, seq: i64) -> Vec<u8> {
    let mut event = Event::from_canonical_bytes(&raw_body(pool, seq).await).unwrap();
    event.actor = "mallory".to_owned();
    let body = event.canonical_bytes().unwrap();
    let hash = Blake3::of(&body).to_string();
    let statement = "UPDATE events SET body = $1, actor = 'mallory', hash = $2 WHERE seq = $3";
    raw_sql!(pool, statement, &body, hash, seq).await.unwrap();
    body
}

async fn events_table_refuses_update_and_delete(backend: Backend) {
    let (fixture, pool, target) = store_to_tamper(backend).await;
    let head = fixture.store.head().await.unwrap();
    let target = target as i64;
    let overwrite_body = match backend {
        Backend::Sqlite => "UPDATE events SET body = x'00' WHERE seq = $1",
        Backend::Postgres => "UPDATE events SET body = '\\x00'::bytea WHERE seq = $1",
    };
    for statement in [
        "UPDATE events SET actor = 'mallory' WHERE seq = $1",
        overwrite_body,
        "UPDATE events SET seq = seq + 1000 WHERE seq = $1",
        "DELETE FROM events WHERE seq = $1",
        // An upsert's DO UPDATE is an UPDATE as far as the triggers are concerned.
        "INSERT INTO events (seq, type, package_id, actor, at, body, hash) \
         SELECT seq, type, package_id, actor, at, body, hash FROM events WHERE seq = $1 \
         ON CONFLICT (seq) DO UPDATE SET actor = 'mallory'",
    ] {
        let error = raw_sql!(&pool, statement, target)
            .await
            .expect_err(statement);
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    let error = raw_sql!(&pool, "DELETE FROM events")
        .await
        .expect_err("DELETE FROM events");
    assert!(error.to_string().contains("append-only"), "{error}");
    assert_eq!(fixture.store.audit_verify().await.unwrap(), head);
}

/// SPEC §2.4: events are never updated or deleted, and the database refuses it, whatever the
/// statement. SQLite's `INSERT OR REPLACE` (and `REPLACE`) deletes the conflicting row without
/// firing DELETE triggers (unless the writing connection turned `recursive_triggers` on), so a
/// guard made only of UPDATE and DELETE triggers lets anyone overwrite history with an INSERT.
/// A `BEFORE INSERT` trigger refusing a row whose seq already exists closes the gap. On
/// PostgreSQL the same trigger refuses an insert of an existing seq (even `ON CONFLICT DO
/// NOTHING`), row triggers cover MERGE's actions, and a statement trigger covers TRUNCATE
/// (which fires no row trigger). (The chain still exposes a forgery: `audit_verify` names the
/// replaced seq.)
async fn events_table_refuses_insert_or_replace(backend: Backend) {
    let (fixture, pool, target) = store_to_tamper(backend).await;
    let head = fixture.store.head().await.unwrap();
    let mut forged = Event::from_canonical_bytes(&raw_body(&pool, target as i64).await).unwrap();
    forged.actor = "mallory".to_owned();
    let body = forged.canonical_bytes().unwrap();
    let insert = "INTO events (seq, type, package_id, actor, at, body, hash) \
                  SELECT seq, type, package_id, 'mallory', at, $1, hash FROM events WHERE seq = $2";
    let statements: Vec<String> = match backend {
        Backend::Sqlite => vec![
            format!("INSERT OR REPLACE {insert}"),
            format!("REPLACE {insert}"),
        ],
        Backend::Postgres => vec![
            format!("INSERT {insert}"),
            format!("INSERT {insert} ON CONFLICT DO NOTHING"),
            format!("INSERT {insert} ON CONFLICT (seq) DO UPDATE SET body = EXCLUDED.body"),
            "MERGE INTO events e USING (SELECT $1::bytea AS body, $2::bigint AS seq) f \
             ON e.seq = f.seq WHEN MATCHED THEN UPDATE SET body = f.body"
                .to_owned(),
            "MERGE INTO events e USING (SELECT $1::bytea AS body, $2::bigint AS seq) f \
             ON e.seq = f.seq WHEN MATCHED THEN DELETE"
                .to_owned(),
        ],
    };
    for statement in statements {
        let result = raw_sql!(&pool, &statement, &body, target as i64).await;
        match result {
            Err(error) => assert!(
                error.to_string().contains("append-only"),
                "{statement}: refused for the wrong reason: {error}"
            ),
            Ok(_) => panic!("`{statement}` rewrote event {target}; the database must refuse it"),
        }
    }
    if backend == Backend::Postgres {
        for statement in ["TRUNCATE events", "TRUNCATE events CASCADE"] {
            let error = raw_sql!(&pool, statement).await.expect_err(statement);
            assert!(
                error.to_string().contains("append-only"),
                "{statement}: {error}"
            );
        }
    }
    assert_eq!(fixture.store.audit_verify().await.unwrap(), head);
}

/// PostgreSQL only: `INSERT … ON CONFLICT DO UPDATE` is refused by the UPDATE trigger even
/// without the BEFORE INSERT trigger of migration 0003 (which normally refuses it first), so
/// the guard of 0001 alone already covers upserts.
#[tokio::test]
async fn postgres_upsert_is_refused_by_the_update_trigger_alone() {
    let (fixture, pool, target) = store_to_tamper(Backend::Postgres).await;
    let head = fixture.store.head().await.unwrap();
    raw_sql!(&pool, "DROP TRIGGER events_refuse_replace ON events")
        .await
        .unwrap();
    let error = raw_sql!(
        &pool,
        "INSERT INTO events (seq, type, package_id, actor, at, body, hash) \
         SELECT seq, type, package_id, actor, at, body, hash FROM events WHERE seq = $1 \
         ON CONFLICT (seq) DO UPDATE SET actor = 'mallory'",
        target as i64
    )
    .await
    .expect_err("upsert");
    assert!(error.to_string().contains("UPDATE refused"), "{error}");
    // A plain duplicate insert still fails on the primary key.
    let error = raw_sql!(
        &pool,
        "INSERT INTO events (seq, type, package_id, actor, at, body, hash) \
         SELECT seq, type, package_id, actor, at, body, hash FROM events WHERE seq = $1",
        target as i64
    )
    .await
    .expect_err("duplicate insert");
    assert!(
        error
            .as_database_error()
            .is_some_and(|e| e.is_unique_violation()),
        "{error}"
    );
    assert_eq!(fixture.store.audit_verify().await.unwrap(), head);
}

async fn audit_names_an_altered_event_body(backend: Backend) {
    let (fixture, pool, target) = attack(backend).await;
    let mut event = Event::from_canonical_bytes(&raw_body(&pool, target as i64).await).unwrap();
    event.actor = "mallory".to_owned();
    raw_sql!(
        &pool,
        "UPDATE events SET body = $1 WHERE seq = $2",
        event.canonical_bytes().unwrap(),
        target as i64
    )
    .await
    .unwrap();
    assert_eq!(first_bad_seq(&fixture.store).await, target);
}

async fn audit_names_the_successor_of_a_rewritten_event_with_its_hash(backend: Backend) {
    // The attacker recomputes the hash column too: the altered event is self-consistent, but
    // the next event's `prev` no longer matches.
    let (fixture, pool, target) = attack(backend).await;
    forge_actor(&pool, target as i64).await;
    assert_eq!(first_bad_seq(&fixture.store).await, target + 1);
}

async fn audit_head_changes_when_the_last_event_is_rewritten(backend: Backend) {
    // Rewriting the last event consistently leaves a valid chain: only the head an auditor
    // anchored elsewhere reveals it. `audit_verify` must report the new head, not the old.
    let (fixture, pool, _) = store_to_tamper(backend).await;
    let anchored: Head = fixture.store.audit_verify().await.unwrap();
    drop_guard_triggers(backend, &pool).await;
    let body = forge_actor(&pool, anchored.seq as i64).await;
    let verified = fixture.store.audit_verify().await.unwrap();
    assert_eq!(verified.seq, anchored.seq);
    assert_ne!(verified.hash, anchored.hash);
    assert_eq!(verified.hash, Some(Blake3::of(&body)));
}

async fn audit_names_a_deleted_event(backend: Backend) {
    let (fixture, pool, target) = attack(backend).await;
    raw_sql!(&pool, "DELETE FROM events WHERE seq = $1", target as i64)
        .await
        .unwrap();
    assert_eq!(first_bad_seq(&fixture.store).await, target);
}

async fn audit_names_swapped_events(backend: Backend) {
    let (fixture, pool, target) = attack(backend).await;
    let (a, b) = (target as i64, target as i64 + 3);
    for (from, to) in [(a, 100_000), (b, a), (100_000, b)] {
        raw_sql!(&pool, "UPDATE events SET seq = $1 WHERE seq = $2", to, from)
            .await
            .unwrap();
    }
    assert_eq!(first_bad_seq(&fixture.store).await, target);
}

async fn audit_names_an_event_whose_type_column_was_altered(backend: Backend) {
    let (fixture, pool, target) = attack(backend).await;
    raw_sql!(
        &pool,
        "UPDATE events SET type = 'v1.blob.deleted' WHERE seq = $1",
        target as i64
    )
    .await
    .unwrap();
    assert_eq!(first_bad_seq(&fixture.store).await, target);
}

async fn audit_names_an_event_whose_package_id_column_was_altered(backend: Backend) {
    let (fixture, pool, target) = attack(backend).await;
    raw_sql!(
        &pool,
        "UPDATE events SET package_id = $1 WHERE seq = $2",
        Blake3::of(b"another package").to_string(),
        target as i64
    )
    .await
    .unwrap();
    assert_eq!(first_bad_seq(&fixture.store).await, target);
}

/// The `actor` and `at` columns are stored beside the hashed body like `type` and
/// `package_id`; SQL consumers (reports, ad-hoc audits) read them, so a forged value there is
/// a disagreement with the log that the audit should report like the other columns.
async fn audit_names_an_event_whose_actor_or_at_column_was_altered(backend: Backend) {
    for (column, value) in [("actor", "mallory"), ("at", "1999-01-01T00:00:00.000Z")] {
        let (fixture, pool, target) = attack(backend).await;
        raw_sql!(
            &pool,
            &format!("UPDATE events SET {column} = $1 WHERE seq = $2"),
            value,
            target as i64
        )
        .await
        .unwrap();
        match fixture.store.audit_verify().await {
            Err(Error::Integrity { seq, .. }) => assert_eq!(seq, target, "{column}"),
            other => {
                panic!("forged `{column}` column: expected an integrity failure, got {other:?}")
            }
        }
    }
}

async fn audit_names_an_event_whose_body_is_not_canonical_cbor(backend: Backend) {
    let (fixture, pool, target) = attack(backend).await;
    let mut body = raw_body(&pool, target as i64).await;
    body.push(0x00); // trailing byte
    raw_sql!(
        &pool,
        "UPDATE events SET body = $1, hash = $2 WHERE seq = $3",
        &body,
        Blake3::of(&body).to_string(),
        target as i64
    )
    .await
    .unwrap();
    assert_eq!(first_bad_seq(&fixture.store).await, target);
}

// ----- (c) bad input changes nothing ---------------------------------------------------------

/// Everything a bad request could have changed: the log head, every view, the blob keys and
/// leftover temp files.
#[derive(Debug, PartialEq)]
struct Snapshot {
    head: Head,
    views: BTreeMap<&'static str, Vec<String>>,
    blobs: Vec<Blake3>,
    temp_files: Vec<PathBuf>,
}

async fn snapshot(fixture: &Fixture) -> Snapshot {
    Snapshot {
        head: fixture.store.head().await.unwrap(),
        views: fixture.store.catalog().dump_views().await.unwrap(),
        blobs: fixture.store.blob_store().list().await.unwrap(),
        temp_files: std::fs::read_dir(fixture.data_dir().join("blobs").join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect(),
    }
}

async fn bad_input_fixture(backend: Backend) -> Fixture {
    let fixture = Fixture::new(backend, ymd(2026, 3, 1)).await;
    push(
        &fixture.store,
        "existing",
        "1",
        "build-cache",
        &[("hello.txt", b"hello")],
    )
    .await;
    fixture
}

/// Re-encodes the top-level map of `value` with its entries in `order` (each key and value
/// canonical), returning the bytes and the offset of each key's head.
fn encode_map_in_order(value: &Value, order: &[&str]) -> (Vec<u8>, BTreeMap<String, usize>) {
    let map = value.as_map().unwrap();
    assert_eq!(map.len(), order.len());
    assert!(map.len() < 24);
    let mut bytes = vec![0xa0 | map.len() as u8];
    let mut offsets = BTreeMap::new();
    for key in order {
        offsets.insert((*key).to_owned(), bytes.len());
        bytes.extend(cbor::encode(&Value::Text((*key).to_owned())).unwrap());
        bytes.extend(cbor::encode(&map[*key]).unwrap());
    }
    (bytes, offsets)
}

async fn non_canonical_manifest_cbor_is_rejected_with_its_offset(backend: Backend) {
    let fixture = bad_input_fixture(backend).await;
    let store = &fixture.store;
    let before = snapshot(&fixture).await;
    let good = manifest("manifests", "1", "build-cache", &[("hello.txt", b"hello")]);
    let canonical = good.canonical_bytes().unwrap();

    // 1. A long-form integer: the file size 5 written as 0x18 0x05.
    let size_key = cbor::encode(&Value::Text("size".to_owned())).unwrap();
    let size_at = canonical
        .windows(size_key.len())
        .position(|w| w == size_key)
        .unwrap()
        + size_key.len();
    assert_eq!(canonical[size_at], 0x05);
    let mut long_int = canonical.clone();
    long_int.splice(size_at..=size_at, [0x18, 0x05]);
    match store.create_package_from_cbor("ci", &long_int).await {
        Err(Error::Cbor(e)) => {
            assert_eq!(e.reason, CborErrorReason::NonShortestInteger);
            assert_eq!(e.offset, size_at);
            assert!(e.to_string().contains(&format!("byte {size_at}")), "{e}");
        }
        other => panic!("long-form integer: expected a CBOR error, got {other:?}"),
    }

    // 2. Unsorted keys: `retention_class` (15 bytes) before `version` (7 bytes).
    let value = good.to_value();
    let (unsorted, offsets) = encode_map_in_order(
        &value,
        &["name", "files", "schema", "retention_class", "version"],
    );
    match store.create_package_from_cbor("ci", &unsorted).await {
        Err(Error::Cbor(e)) => {
            assert_eq!(
                e.reason,
                CborErrorReason::UnsortedMapKeys {
                    key: "version".to_owned()
                }
            );
            assert_eq!(e.offset, offsets["version"]);
        }
        other => panic!("unsorted keys: expected a CBOR error, got {other:?}"),
    }
    // The same entries in canonical order are exactly the canonical bytes (control).
    let (sorted, _) = encode_map_in_order(
        &value,
        &["name", "files", "schema", "version", "retention_class"],
    );
    assert_eq!(sorted, canonical);

    // 3. Trailing bytes after the manifest.
    let mut trailing = canonical.clone();
    trailing.push(0xf6);
    match store.create_package_from_cbor("ci", &trailing).await {
        Err(Error::Cbor(e)) => {
            assert_eq!(e.reason, CborErrorReason::TrailingBytes);
            assert_eq!(e.offset, canonical.len());
        }
        other => panic!("trailing bytes: expected a CBOR error, got {other:?}"),
    }
    assert_eq!(snapshot(&fixture).await, before);

    // The canonical bytes themselves are accepted, under the id they hash to.
    let created = store
        .create_package_from_cbor("ci", &canonical)
        .await
        .unwrap();
    assert_eq!(created.package_id, Blake3::of(&canonical));
}

async fn path_traversal_in_a_manifest_is_rejected(backend: Backend) {
    let fixture = bad_input_fixture(backend).await;
    let store = &fixture.store;
    let before = snapshot(&fixture).await;
    for bad_path in ["../x", "a/../../etc/passwd", "/etc/passwd", "a//b", "./x"] {
        // The blob is stored: only the path is wrong.
        let mut bad = manifest("traversal", "1", "build-cache", &[("x", b"hello")]);
        bad.files[0].path = bad_path.to_owned();
        match store.create_package("ci", &bad).await {
            Err(Error::InvalidInput(message)) => {
                assert!(message.contains("path"), "{bad_path}: {message}")
            }
            other => panic!("{bad_path}: expected InvalidInput, got {other:?}"),
        }
        // Through canonical CBOR bytes too (the server's and CLI's path).
        let bytes = cbor::encode(&bad.to_value()).unwrap();
        match store.create_package_from_cbor("ci", &bytes).await {
            Err(Error::InvalidInput(_)) => {}
            other => panic!("{bad_path} as CBOR: expected InvalidInput, got {other:?}"),
        }
    }
    assert_eq!(snapshot(&fixture).await, before);
}

async fn unknown_retention_class_is_rejected(backend: Backend) {
    let fixture = bad_input_fixture(backend).await;
    let before = snapshot(&fixture).await;
    let bad = manifest(
        "classless",
        "1",
        "forever-and-a-day",
        &[("hello.txt", b"hello")],
    );
    match fixture.store.create_package("ci", &bad).await {
        Err(Error::InvalidInput(message)) => {
            assert!(message.contains("forever-and-a-day"), "{message}")
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(snapshot(&fixture).await, before);
}

async fn manifest_naming_an_unstored_blob_is_rejected(backend: Backend) {
    let fixture = bad_input_fixture(backend).await;
    let store = &fixture.store;

    // Bytes written but never recorded are not "stored" either: record_blobs is what makes
    // a blob part of the store.
    let unrecorded = b"written, not recorded".as_slice();
    store.write_blob(unrecorded, &[]).await.unwrap();
    let before = snapshot(&fixture).await;

    let cases: Vec<(&str, Manifest)> = vec![
        (
            "never uploaded",
            manifest(
                "missing",
                "1",
                "build-cache",
                &[("a.txt", b"never uploaded")],
            ),
        ),
        (
            "not recorded",
            manifest("missing", "1", "build-cache", &[("a.txt", unrecorded)]),
        ),
        ("wrong size", {
            let mut m = manifest("missing", "1", "build-cache", &[("a.txt", b"hello")]);
            m.files[0].size += 1;
            m
        }),
        ("wrong sha256", {
            let mut m = manifest("missing", "1", "build-cache", &[("a.txt", b"hello")]);
            m.files[0].sha256 = BlobInfo::of(b"other").sha256;
            m
        }),
    ];
    for (case, bad) in cases {
        match store.create_package("ci", &bad).await {
            Err(Error::MissingBlobs { missing }) => {
                assert_eq!(missing.len(), 1, "{case}");
                assert_eq!(missing[0].path, "a.txt", "{case}");
                assert_eq!(missing[0].expected, bad.files[0].blob(), "{case}");
            }
            other => panic!("{case}: expected MissingBlobs, got {other:?}"),
        }
    }
    assert_eq!(snapshot(&fixture).await, before);
}

async fn same_name_version_is_idempotent_or_a_conflict(backend: Backend) {
    let fixture = bad_input_fixture(backend).await;
    let store = &fixture.store;
    let original = manifest("existing", "1", "build-cache", &[("hello.txt", b"hello")]);
    let before = snapshot(&fixture).await;

    // Identical manifest: the same id, nothing new.
    let again = store.create_package("ci", &original).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.package_id, original.package_id().unwrap());
    let again_cbor = store
        .create_package_from_cbor("ci", &original.canonical_bytes().unwrap())
        .await
        .unwrap();
    assert!(!again_cbor.created);
    assert_eq!(again_cbor.package_id, again.package_id);
    assert_eq!(snapshot(&fixture).await, before);

    // A different manifest under the same name@version: a conflict.
    let mut different = original.clone();
    different
        .labels
        .insert("git.commit".to_owned(), "abc".to_owned());
    match store.create_package("ci", &different).await {
        Err(Error::Conflict(message)) => assert!(message.contains("existing@1"), "{message}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let mut other_class = original.clone();
    other_class.retention_class = "ephemeral".to_owned();
    assert!(matches!(
        store.create_package("ci", &other_class).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(snapshot(&fixture).await, before);
}

async fn digest_mismatch_stores_nothing(backend: Backend) {
    let fixture = bad_input_fixture(backend).await;
    let store = &fixture.store;
    let content = pseudo_random_bytes(100_000, 7);
    let actual = BlobInfo::of(&content);
    let wrong = BlobInfo::of(b"what the client claimed");
    let before = snapshot(&fixture).await;

    for expected in [
        vec![AnyDigest::Blake3(wrong.blake3)],
        vec![AnyDigest::Sha256(wrong.sha256)],
        // One right, one wrong: still a mismatch.
        vec![
            AnyDigest::Blake3(actual.blake3),
            AnyDigest::Sha256(wrong.sha256),
        ],
    ] {
        match store.write_blob(&content[..], &expected).await {
            Err(Error::DigestMismatch {
                expected: claimed,
                actual: hashed,
            }) => {
                let wrong_digest = expected.last().unwrap();
                assert_eq!(claimed, wrong_digest.to_string());
                let right = match wrong_digest {
                    AnyDigest::Blake3(_) => actual.blake3.to_string(),
                    AnyDigest::Sha256(_) => actual.sha256.to_string(),
                };
                assert_eq!(hashed, right);
            }
            other => panic!("{expected:?}: expected DigestMismatch, got {other:?}"),
        }
        assert_eq!(store.blob_store().head(&actual.blake3).await.unwrap(), None);
        assert!(matches!(
            store.ingest_blob("ci", &content[..], &expected).await,
            Err(Error::DigestMismatch { .. })
        ));
        assert_eq!(store.blob_store().head(&actual.blake3).await.unwrap(), None);
    }
    assert_eq!(
        store.blob(&AnyDigest::Blake3(actual.blake3)).await.unwrap(),
        None
    );
    assert_eq!(snapshot(&fixture).await, before);

    // The right digests, in either form, are accepted (control).
    let record = store
        .ingest_blob(
            "ci",
            &content[..],
            &[
                AnyDigest::Sha256(actual.sha256),
                AnyDigest::Blake3(actual.blake3),
            ],
        )
        .await
        .unwrap();
    assert_eq!(record.info, actual);
}

async fn bad_retention_requests_change_nothing(backend: Backend) {
    let fixture = bad_input_fixture(backend).await;
    let store = &fixture.store;
    let package = store.resolve(&"existing@1".parse().unwrap()).await.unwrap();
    let permanent = push(
        store,
        "forever",
        "1",
        "permanent-record",
        &[("hello.txt", b"hello")],
    )
    .await
    .package_id;
    let hold_id = store
        .hold("legal", &by_id(package), "review")
        .await
        .unwrap();
    store
        .release("legal", &by_id(package), &hold_id, "done")
        .await
        .unwrap();
    let expiry = store
        .retention_status(&by_id(package))
        .await
        .unwrap()
        .current_expires_at
        .unwrap();
    let before = snapshot(&fixture).await;
    let oversize = "x".repeat(artifact_core::retention::MAX_REASON_BYTES + 1);
    let later = plus_days(expiry, 30);

    let extend = async |id, until, reason: &str| {
        store
            .extend("ops", &by_id(id), until, reason)
            .await
            .map(drop)
    };
    let release = async |id, hold: &str, reason: &str| {
        store
            .release("legal", &by_id(id), hold, reason)
            .await
            .map(drop)
    };
    let cases: Vec<(&str, artifact_core::Result<()>, &str)> = vec![
        (
            "earlier expiry",
            extend(package, plus_days(expiry, -1), "why").await,
            "InvalidInput",
        ),
        (
            "the same expiry",
            extend(package, expiry, "why").await,
            "InvalidInput",
        ),
        (
            "blank reason",
            extend(package, later, " ").await,
            "InvalidInput",
        ),
        (
            "oversize reason",
            extend(package, later, &oversize).await,
            "InvalidInput",
        ),
        (
            "extend a permanent record",
            extend(permanent, later, "why").await,
            "Conflict",
        ),
        (
            "hold without a reason",
            store.hold("legal", &by_id(package), "").await.map(drop),
            "InvalidInput",
        ),
        (
            "hold an unknown package",
            store
                .hold("legal", &"nobody@1".parse().unwrap(), "why")
                .await
                .map(drop),
            "NotFound",
        ),
        (
            "release twice",
            release(package, &hold_id, "again").await,
            "Conflict",
        ),
        (
            "release an unknown hold",
            release(package, "hold-999999", "why").await,
            "NotFound",
        ),
        (
            "release another package's hold",
            release(permanent, &hold_id, "why").await,
            "NotFound",
        ),
        (
            "release without a reason",
            release(package, &hold_id, "").await,
            "InvalidInput",
        ),
    ];
    for (case, result, expected) in cases {
        match result {
            Err(error) => assert_eq!(error_kind(&error), expected, "{case}: {error}"),
            Ok(()) => panic!("{case} was accepted"),
        }
    }
    assert_eq!(snapshot(&fixture).await, before);
}

// ----- (d) a corrupt blob is never served as good --------------------------------------------

/// Where the fs backend keeps a blob: `<data-dir>/blobs/blake3/<2 hex>/<64 hex>`.
fn blob_file(fixture: &Fixture, blake3: &Blake3) -> PathBuf {
    let hex = blake3.to_hex();
    let path = fixture
        .data_dir()
        .join("blobs")
        .join("blake3")
        .join(&hex[..2])
        .join(&hex);
    assert_eq!(
        path,
        FsBlobStore::open(fixture.data_dir().join("blobs"))
            .unwrap()
            .blob_path(blake3)
    );
    assert!(
        path.is_file(),
        "{} is not where the layout says",
        path.display()
    );
    path
}

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x40;
    let mut permissions = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(path, permissions).unwrap();
    std::fs::write(path, bytes).unwrap();
}

async fn read_to_end(mut read: artifact_core::blob::BlobRead) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    read.reader.read_to_end(&mut bytes).await?;
    Ok(bytes)
}

async fn corrupt_blob_fails_a_full_read(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 5, 1)).await;
    let store = &fixture.store;
    let content = pseudo_random_bytes(300_000, 11);
    let created = push(
        store,
        "corrupt",
        "1",
        "build-cache",
        &[("data.bin", &content)],
    )
    .await;
    let info = BlobInfo::of(&content);
    let digest = AnyDigest::Blake3(info.blake3);
    assert_eq!(store.read_blob_bytes(&info).await.unwrap(), content);

    // Same size, one bit pattern changed in the middle.
    flip_byte(&blob_file(&fixture, &info.blake3), content.len() / 2);

    match store.read_blob_bytes(&info).await {
        Err(Error::Corrupt { blake3, .. }) => assert_eq!(blake3, info.blake3.to_string()),
        Ok(_) => panic!("read_blob_bytes returned corrupt bytes as good"),
        Err(other) => panic!("expected Corrupt, got {other}"),
    }
    // Streaming readers fail at the end of the stream instead of ending cleanly.
    let streamed = read_to_end(store.read_blob(&digest, None).await.unwrap()).await;
    assert_eq!(
        streamed.map(|b| b.len()).unwrap_err().kind(),
        std::io::ErrorKind::InvalidData
    );
    let by_sha = AnyDigest::Sha256(info.sha256);
    let streamed = read_to_end(store.read_blob(&by_sha, None).await.unwrap()).await;
    assert_eq!(
        streamed.map(|b| b.len()).unwrap_err().kind(),
        std::io::ErrorKind::InvalidData
    );
    let (_, read) = store
        .read_file(&by_id(created.package_id), "data.bin", None)
        .await
        .unwrap();
    assert_eq!(
        read_to_end(read).await.map(|b| b.len()).unwrap_err().kind(),
        std::io::ErrorKind::InvalidData
    );
    // A ranged read away from the flipped byte is not verified (documented) but is exact.
    let ranged = store
        .read_blob(
            &digest,
            Some(ByteRange {
                start: 0,
                end: Some(1000),
            }),
        )
        .await
        .unwrap();
    assert_eq!(read_to_end(ranged).await.unwrap(), content[..1000]);
}

async fn truncated_or_grown_blob_fails_a_full_read(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 5, 1)).await;
    let store = &fixture.store;
    let content = pseudo_random_bytes(50_000, 12);
    store.ingest_blob("ci", &content[..], &[]).await.unwrap();
    let info = BlobInfo::of(&content);
    let path = blob_file(&fixture, &info.blake3);
    let mut permissions = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&path, permissions).unwrap();

    for changed in [
        content[..content.len() - 1].to_vec(),
        [&content[..], b"x"].concat(),
    ] {
        std::fs::write(&path, &changed).unwrap();
        match store.read_blob_bytes(&info).await {
            Err(Error::Corrupt { .. }) => {}
            Ok(_) => panic!("a blob of {} bytes was served as good", changed.len()),
            Err(other) => panic!("expected Corrupt, got {other}"),
        }
        match store.read_blob(&AnyDigest::Blake3(info.blake3), None).await {
            Err(Error::Corrupt { .. }) => {}
            Ok(read) => assert!(read_to_end(read).await.is_err()),
            Err(other) => panic!("expected Corrupt, got {other}"),
        }
    }
}

async fn corrupt_manifest_blob_fails_manifest_reads(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 5, 1)).await;
    let store = &fixture.store;
    let created = push(store, "m", "1", "ephemeral", &[("a.txt", b"a")]).await;
    flip_byte(&blob_file(&fixture, &created.package_id), 3);
    match store.manifest(&by_id(created.package_id)).await {
        Err(Error::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
