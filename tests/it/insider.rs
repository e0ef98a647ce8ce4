//! Retention against an insider (issue: "nothing lost early, even by an administrator"), on
//! SQLite and PostgreSQL:
//!
//! - a sweep as of a time later than the store's clock is refused and changes nothing, so a
//!   far-future sweep cannot make 11-year packages eligible;
//! - a replica whose clock runs ahead can mark a package eligible, but GC (on the store's clock)
//!   re-derives the purge from the log and keeps it until it has really expired;
//! - views edited behind the store's back (holds cleared, expiry moved, eligibility or purge
//!   forged, a blob marked as being deleted) nominate candidates the sweeper and GC refuse:
//!   nothing is marked, purged or deleted, the refusals are reported, and extensions are checked
//!   against the log, not the edited view;
//! - `audit` (and fsck) replay the log through the rules and name the events that break them,
//!   even when every event is correctly chained.

use artifact_core::digest::{AnyDigest, Blake3, BlobInfo, PackageId};
use artifact_core::event::types;
use artifact_core::maintenance::GcOptions;
use artifact_core::raw_sql;
use artifact_core::time::{Clock as _, ManualClock, Period, Timestamp, ymd};
use artifact_core::{ArtifactStore, PackageRef};
use sqlx::AnyPool;

use crate::support::{
    Backend, Fixture, backend_tests, by_id, days, error_kind, head_seq, open_store, push,
};

backend_tests! {
    #[tokio::test]
    a_sweep_as_of_the_future_is_refused_and_changes_nothing,
    #[tokio::test]
    gc_keeps_a_package_a_fast_clock_marked_eligible_until_it_expires,
    #[tokio::test]
    edited_views_never_let_sweep_or_gc_remove_a_held_package,
    #[tokio::test]
    edited_views_never_let_gc_delete_referenced_bytes,
    #[tokio::test]
    extensions_are_checked_against_the_log_not_an_edited_view,
    #[tokio::test]
    audit_names_chained_events_that_break_the_rules,
}

fn no_grace() -> GcOptions {
    GcOptions {
        grace: Period::Millis(0),
        dry_run: false,
    }
}

/// Runs each of `statements` (`$1` = `package`'s id) on the raw catalog: view edits only.
async fn edit_views(pool: &AnyPool, package: &PackageId, statements: &[&str]) {
    for sql in statements {
        raw_sql!(pool, sql, package)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Whether the catalog still records `blob` (no `v1.blob.deleted`).
async fn blob_recorded(store: &ArtifactStore, blob: Blake3) -> bool {
    store
        .blob(&AnyDigest::Blake3(blob))
        .await
        .unwrap()
        .is_some()
}

/// Whether the blob store still holds `content`'s bytes.
async fn bytes_present(store: &ArtifactStore, content: &[u8]) -> bool {
    store
        .blob_store()
        .head(&BlobInfo::of(content).blake3)
        .await
        .unwrap()
        .is_some()
}

async fn a_sweep_as_of_the_future_is_refused_and_changes_nothing(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    let evidence = push(
        store,
        "evidence",
        "1",
        "compliance-record",
        &[("a.txt", b"eleven years")],
    )
    .await;
    let short = push(
        store,
        "cache",
        "1",
        "release-evidence",
        &[("b.txt", b"two")],
    )
    .await;
    let head = head_seq(store).await;
    let now = fixture.clock.now();
    for as_of in [
        "9999-12-31T23:59:59Z".parse::<Timestamp>().unwrap(),
        Timestamp::from_unix_millis(now.unix_millis() + 1).unwrap(),
    ] {
        let refused = store.sweep("ops", Some(as_of)).await.unwrap_err();
        assert_eq!(error_kind(&refused), "InvalidInput", "{refused}");
        assert!(
            refused.to_string().contains("later than the store's clock"),
            "{refused}"
        );
        assert_eq!(
            head_seq(store).await,
            head,
            "a refused sweep appends nothing"
        );
    }
    // As of now, or the past, is fine, and marks nothing unexpired.
    for as_of in [None, Some(now), Some(ymd(2025, 6, 1))] {
        let report = store.sweep("ops", as_of).await.unwrap();
        assert!(report.newly_eligible.is_empty());
        assert!(report.refused.is_empty());
    }
    let gc = store.gc("ops", no_grace()).await.unwrap();
    assert!(gc.purged.is_empty() && gc.deleted.is_empty(), "{gc:?}");
    for package in [evidence.package_id, short.package_id] {
        let status = store.retention_status(&by_id(package)).await.unwrap();
        assert!(!status.eligible_for_deletion);
    }
    assert!(bytes_present(store, b"eleven years").await);
    assert_eq!(head_seq(store).await, head);
}

async fn gc_keeps_a_package_a_fast_clock_marked_eligible_until_it_expires(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    let package = push(
        store,
        "evidence",
        "1",
        "release-evidence",
        &[("a", b"kept")],
    )
    .await;
    // A second process whose clock is three years ahead (a careless operator, or faketime).
    let fast_clock = ManualClock::new(ymd(2029, 1, 1));
    let fast = open_store(fixture.data_dir(), &fixture.config, &fast_clock).await;
    let marked = fast.sweep("ops", None).await.unwrap();
    assert_eq!(marked.newly_eligible, vec![package.package_id]);

    // GC on the store's clock: the log says it is retained until 2028.
    let head = head_seq(store).await;
    let report = store.gc("ops", no_grace()).await.unwrap();
    assert!(report.purged.is_empty(), "{report:?}");
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].subject, package.package_id.to_string());
    assert!(
        report.refused[0]
            .detail
            .contains("retained until 2028-01-01"),
        "{}",
        report.refused[0].detail
    );
    assert_eq!(head_seq(store).await, head);
    assert!(bytes_present(store, b"kept").await);

    // The audit sees the writer whose clock ran ahead once the store writes again.
    push(store, "later", "1", "build-cache", &[("b", b"later")]).await;
    let audit = store.audit().await.unwrap();
    assert!(
        audit
            .violations
            .iter()
            .any(|v| v.rule == "clock-went-backwards"),
        "{audit:?}"
    );

    // Once it has really expired, GC purges it.
    fixture.clock.set(ymd(2028, 1, 2));
    let report = store.gc("ops", no_grace()).await.unwrap();
    assert_eq!(report.purged, vec![package.package_id]);
    assert!(!bytes_present(store, b"kept").await);
}

async fn edited_views_never_let_sweep_or_gc_remove_a_held_package(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    let package = push(
        store,
        "evidence",
        "1",
        "compliance-record",
        &[("report.pdf", b"eleven-year evidence")],
    )
    .await;
    let id = package.package_id;
    store
        .hold("legal", &by_id(id), "litigation 2026-17")
        .await
        .unwrap();
    let raw = fixture.raw_catalog().await;

    // The insider clears the hold and the expiry in the views only.
    edit_views(&raw, &id, &["UPDATE retention_state SET active_holds = 0, current_expires_at = 0 WHERE package_id = $1", "DELETE FROM holds WHERE package_id = $1"]).await;
    let head = head_seq(store).await;
    let sweep = store.sweep("system:sweeper", None).await.unwrap();
    assert!(sweep.newly_eligible.is_empty(), "{sweep:?}");
    assert_eq!(sweep.refused.len(), 1, "{sweep:?}");
    assert!(
        sweep.refused[0].detail.contains("1 active hold"),
        "{}",
        sweep.refused[0].detail
    );
    assert_eq!(head_seq(store).await, head, "nothing marked");

    // Then forges the eligibility itself.
    edit_views(&raw, &id, &["UPDATE retention_state SET eligible_for_deletion = 1, eligible_seq = 2 WHERE package_id = $1"]).await;
    let gc = store.gc("system:gc", no_grace()).await.unwrap();
    assert!(gc.purged.is_empty(), "{gc:?}");
    assert!(gc.deleted.is_empty(), "{gc:?}");
    assert!(
        gc.refused
            .iter()
            .any(|r| r.subject == id.to_string() && r.detail.contains("not marked eligible")),
        "{gc:?}"
    );
    assert_eq!(head_seq(store).await, head, "nothing purged");
    assert!(bytes_present(store, b"eleven-year evidence").await);

    // fsck names the edited views; a rebuild restores them from the log; the log is clean.
    let fsck = store.fsck().await.unwrap();
    assert!(fsck.findings.iter().any(|f| f.kind == "views"), "{fsck:?}");
    store.rebuild_views().await.unwrap();
    let status = store.retention_status(&by_id(id)).await.unwrap();
    assert_eq!(status.active_holds.len(), 1);
    assert!(!status.eligible_for_deletion);
    assert!(store.fsck().await.unwrap().ok());
    assert!(store.audit().await.unwrap().ok());
}

async fn edited_views_never_let_gc_delete_referenced_bytes(backend: Backend) {
    let mut fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let package = push(
        &fixture.store,
        "evidence",
        "1",
        "compliance-record",
        &[("a.bin", b"referenced bytes"), ("b.bin", b"more bytes")],
    )
    .await;
    let id = package.package_id;
    let raw = fixture.raw_catalog().await;
    // The package looks purged, its file rows are gone and its manifest row too: every blob
    // looks unreferenced to the views.
    edit_views(
        &raw,
        &id,
        &[
            "UPDATE packages SET purged_seq = 1 WHERE package_id = $1",
            "DELETE FROM package_files WHERE package_id = $1",
        ],
    )
    .await;
    fixture.clock.advance(days(2));
    let head = head_seq(&fixture.store).await;
    let gc = fixture.store.gc("system:gc", no_grace()).await.unwrap();
    assert!(gc.deleted.is_empty(), "{gc:?}");
    assert_eq!(gc.refused.len(), 2, "both file blobs are refused: {gc:?}");
    assert_eq!(head_seq(&fixture.store).await, head);

    // A blob forged as "being deleted" is not deleted when the store opens, nor by GC.
    let blob = BlobInfo::of(b"referenced bytes").blake3;
    raw_sql!(
        &raw,
        "UPDATE blobs SET deleting_seq = 1 WHERE blake3 = $1",
        blob.to_string()
    )
    .await
    .unwrap();
    fixture.reopen().await;
    let gc = fixture.store.gc("system:gc", no_grace()).await.unwrap();
    assert!(gc.deleted.is_empty(), "{gc:?}");
    assert!(
        gc.refused
            .iter()
            .any(|r| r.subject == blob.to_string() && r.detail.contains("deletion_started")),
        "{gc:?}"
    );
    for content in [&b"referenced bytes"[..], b"more bytes"] {
        assert!(bytes_present(&fixture.store, content).await);
    }
    assert_eq!(head_seq(&fixture.store).await, head);
    fixture.store.rebuild_views().await.unwrap();
    let (_, mut read) = fixture
        .store
        .read_file(&by_id(id), "a.bin", None)
        .await
        .unwrap();
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut read.reader, &mut bytes)
        .await
        .unwrap();
    assert_eq!(bytes, b"referenced bytes");
    assert!(fixture.store.fsck().await.unwrap().ok());
    assert!(blob_recorded(&fixture.store, blob).await);
}

async fn extensions_are_checked_against_the_log_not_an_edited_view(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    let package = push(store, "evidence", "1", "compliance-record", &[("a", b"x")]).await;
    let id = package.package_id;
    let raw = fixture.raw_catalog().await;
    edit_views(
        &raw,
        &id,
        &["UPDATE retention_state SET current_expires_at = 0 WHERE package_id = $1"],
    )
    .await;
    let head = head_seq(store).await;
    // Later than the edited view's expiry, earlier than the real one (2037).
    let refused = store
        .extend("ops", &by_id(id), ymd(2027, 1, 1), "shorten it")
        .await
        .unwrap_err();
    assert_eq!(error_kind(&refused), "InvalidInput", "{refused}");
    assert!(refused.to_string().contains("2037-01-01"), "{refused}");
    assert_eq!(head_seq(store).await, head);
    // A forged release of a hold that only the view knows is refused too.
    raw_sql!(&raw, "INSERT INTO holds (package_id, hold_id, reason, actor, applied_seq, applied_at, released_seq) \
         SELECT package_id, 'hold-999', 'forged', 'x', 1, 0, NULL FROM retention_state WHERE package_id = $1", id.to_string())
    .await
    .expect("the insider forges a hold row");
    let refused = store
        .release("ops", &PackageRef::Id(id), "hold-999", "forged")
        .await
        .unwrap_err();
    assert_eq!(error_kind(&refused), "NotFound", "{refused}");
    assert_eq!(head_seq(store).await, head);
}

async fn audit_names_chained_events_that_break_the_rules(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store = &fixture.store;
    let package = push(store, "evidence", "1", "compliance-record", &[("a", b"x")]).await;
    let id = package.package_id;
    store.hold("legal", &by_id(id), "case").await.unwrap();
    assert!(store.audit().await.unwrap().ok());

    // Someone with the library (or the database and the chain format) appends events the
    // store's own operations would never write: correctly chained, but unlawful.
    let now = fixture.clock.now();
    let mut tx = store.catalog().write().await.unwrap();
    let eligible_seq = tx.head().seq + 1;
    let eligible = types::RetentionDeletionEligible {
        as_of: now,
        expires_at: now,
        extra: Default::default(),
    };
    tx.append(Some(id), "ops", now, eligible).await.unwrap();
    let purged = types::PackagePurged {
        eligible_seq: Some(eligible_seq),
        extra: Default::default(),
    };
    tx.append(Some(id), "system:janitor", now, purged)
        .await
        .unwrap();
    // A storage lock recorded, then "moved earlier" on the same version.
    let blob = id;
    let lock = |days: i64| types::BlobLockExtended {
        blake3: blob,
        version_id: "v1".into(),
        mode: artifact_core::blob::LockMode::Compliance,
        retain_until: now.checked_add(Period::Millis(days * 86_400_000)).unwrap(),
        extra: Default::default(),
    };
    tx.append(Some(id), "ops", now, lock(30)).await.unwrap();
    tx.append(Some(id), "ops", now, lock(1)).await.unwrap();
    tx.commit().await.unwrap();

    let audit = store.audit().await.unwrap();
    assert!(audit.chain_error.is_none(), "the chain itself is intact");
    assert!(!audit.ok());
    let found: Vec<(u64, &str)> = audit.violations.iter().map(|v| (v.seq, v.rule)).collect();
    assert_eq!(
        found,
        vec![
            (eligible_seq, "eligible-while-held"),
            (eligible_seq, "eligible-before-expiry"),
            (eligible_seq + 1, "unknown-actor"),
            (eligible_seq + 1, "purged-while-held"),
            (eligible_seq + 1, "purged-before-expiry"),
            (eligible_seq + 3, "lock-shortened"),
        ]
    );
    let fsck = store.fsck().await.unwrap();
    assert!(
        fsck.findings
            .iter()
            .any(|f| f.kind == "rule" && f.subject == format!("seq {eligible_seq}")),
        "{fsck:?}"
    );
}
