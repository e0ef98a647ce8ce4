//! Concurrent writers (SPEC §3 "safe when several server replicas sweep at once", §6): two
//! `ArtifactStore` handles on one data directory — two pools and two in-process writer locks,
//! like two processes — with sweepers on both racing holders, releasers and extenders.
//!
//! Whatever the interleaving: no package is marked eligible twice without a flip back in
//! between, nor while it holds a hold or before its expiry; expiry never moves earlier; the
//! log has no seq gap and its chain verifies; the views equal a replay.

use crate::support::assert_views_match_replay;
use artifact_core::raw_sql;
use std::collections::BTreeSet;

use artifact_core::digest::PackageId;
use artifact_core::event::{Event, types};
use artifact_core::retention::RetentionState;
use artifact_core::time::ymd;
use artifact_core::{ArtifactStore, Error};

use crate::support::{
    Backend, Fixture, all_events, backend_tests, by_id, days, manifest, plus_days, push,
};

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    concurrent_sweeps_holds_and_extensions_keep_retention_consistent,
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    concurrent_identical_creates_record_one_package,
}

const PACKAGES: usize = 6;
const SWEEPS_PER_SWEEPER: usize = 12;
const HOLD_ROUNDS: usize = 6;
const EXTEND_ROUNDS: usize = 6;

async fn sweeper(store: ArtifactStore, name: String) -> usize {
    let mut marked = 0;
    for _ in 0..SWEEPS_PER_SWEEPER {
        marked += store.sweep(&name, None).await.unwrap().newly_eligible.len();
        tokio::task::yield_now().await;
    }
    marked
}

/// Holds each of `packages` through `apply_on` and releases it through `release_on`.
async fn holder(apply_on: ArtifactStore, release_on: ArtifactStore, packages: Vec<PackageId>) {
    for round in 0..HOLD_ROUNDS {
        for package in &packages {
            let hold_id = apply_on
                .hold("legal", &by_id(*package), &format!("round {round}"))
                .await
                .unwrap();
            tokio::task::yield_now().await;
            release_on
                .release("legal", &by_id(*package), &hold_id, "cleared")
                .await
                .unwrap();
        }
    }
}

/// Extends each package by a day past its current expiry (still in the past, so a later sweep
/// marks it again). Losing a race to another extender is a legitimate refusal.
async fn extender(store: ArtifactStore, packages: Vec<PackageId>) -> usize {
    let mut extended = 0;
    for _ in 0..EXTEND_ROUNDS {
        for package in &packages {
            let status = store.retention_status(&by_id(*package)).await.unwrap();
            let until = plus_days(status.current_expires_at.unwrap(), 1);
            match store
                .extend("ops", &by_id(*package), until, "one more day")
                .await
            {
                Ok(status) => {
                    assert!(status.current_expires_at >= Some(until));
                    extended += 1;
                }
                Err(Error::InvalidInput(message)) => {
                    assert!(message.contains("strictly later"), "{message}")
                }
                Err(other) => panic!("extend: {other}"),
            }
            tokio::task::yield_now().await;
        }
    }
    extended
}

/// `count` one-file `ephemeral` packages `<prefix>-<n>` version 1; their ids in order.
async fn push_ephemeral(store: &ArtifactStore, prefix: &str, count: usize) -> Vec<PackageId> {
    let mut packages = Vec::new();
    for n in 0..count {
        let content = format!("{prefix} {n}").into_bytes();
        let name = format!("{prefix}-{n}");
        let created = push(store, &name, "1", "ephemeral", &[("data.txt", &content)]).await;
        packages.push(created.package_id);
    }
    packages
}

/// Four sweepers, two on each handle.
fn spawn_sweepers(tasks: &mut tokio::task::JoinSet<()>, a: &ArtifactStore, b: &ArtifactStore) {
    for (n, store) in [a, b, a, b].into_iter().enumerate() {
        let store = store.clone();
        tasks.spawn(async move {
            sweeper(store, format!("sweeper-{n}")).await;
        });
    }
}

async fn concurrent_sweeps_holds_and_extensions_keep_retention_consistent(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store_a = fixture.store.clone();
    let store_b = fixture.second_handle().await;
    let packages = push_ephemeral(&store_a, "race", PACKAGES).await;
    // Every package expired long ago: each sweep may mark whatever is not held.
    fixture.clock.advance(days(60));

    let mut tasks = tokio::task::JoinSet::new();
    spawn_sweepers(&mut tasks, &store_a, &store_b);
    let (first_half, second_half) = packages.split_at(PACKAGES / 2);
    tasks.spawn(holder(
        store_a.clone(),
        store_b.clone(),
        first_half.to_vec(),
    ));
    tasks.spawn(holder(
        store_b.clone(),
        store_a.clone(),
        second_half.to_vec(),
    ));
    let (a, b) = (store_a.clone(), store_b.clone());
    let (evens, odds): (Vec<_>, Vec<_>) =
        packages.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let evens: Vec<PackageId> = evens.into_iter().map(|(_, p)| *p).collect();
    let odds: Vec<PackageId> = odds.into_iter().map(|(_, p)| *p).collect();
    let all = packages.clone();
    tasks.spawn(async move {
        extender(a, evens).await;
    });
    tasks.spawn(async move {
        extender(b, odds).await;
    });
    let c = store_a.clone();
    tasks.spawn(async move {
        extender(c, all).await;
    });
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a task panicked");
    }
    // Every hold was released: a last sweep marks whatever is left.
    store_b.sweep("final-sweeper", None).await.unwrap();

    // No seq gap: events 1..=head are all there, in order.
    let head = store_a.head().await.unwrap();
    let events = all_events(&store_a).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=head.seq).collect::<Vec<_>>());
    assert_eq!(store_a.audit_verify().await.unwrap(), head);
    assert_eq!(store_b.audit_verify().await.unwrap(), head);

    let mut total_marks = 0;
    for package in &packages {
        let marks = artifact_core::testing::check_package_history(*package, &events);
        assert!(marks >= 1, "{package} was never marked eligible");
        total_marks += marks;

        let status_a = store_a.retention_status(&by_id(*package)).await.unwrap();
        let status_b = store_b.retention_status(&by_id(*package)).await.unwrap();
        assert_eq!(status_a, status_b);
        assert!(status_a.active_holds.is_empty());
        assert!(
            status_a.eligible_for_deletion,
            "{package} is expired, unheld, unmarked"
        );
        let package_events: Vec<Event> = events
            .iter()
            .filter(|e| e.package_id == Some(*package))
            .cloned()
            .collect();
        let folded = RetentionState::fold(&package_events).unwrap();
        assert_eq!(folded.eligible_seq, status_a.eligible_seq);
        assert_eq!(folded.current_expires_at, status_a.current_expires_at);
    }
    assert_eq!(
        total_marks,
        events
            .iter()
            .filter(|e| e.event_type == types::RETENTION_DELETION_ELIGIBLE)
            .count()
    );
    for store in [&store_a, &store_b] {
        assert_views_match_replay(store).await;
    }
}

async fn concurrent_identical_creates_record_one_package(backend: Backend) {
    let fixture = Fixture::new(backend, ymd(2026, 1, 1)).await;
    let store_a = fixture.store.clone();
    let store_b = fixture.second_handle().await;
    let content = b"one package, many writers".as_slice();
    store_a.ingest_blob("ci", content, &[]).await.unwrap();
    let same = manifest("contended", "1", "build-cache", &[("a.txt", content)]);
    let mut different = same.clone();
    different.retention_class = "ephemeral".to_owned();

    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..6 {
        let store = if n % 2 == 0 { &store_a } else { &store_b }.clone();
        let manifest = if n == 5 {
            different.clone()
        } else {
            same.clone()
        };
        tasks.spawn(async move {
            let expected_id = manifest.package_id().unwrap();
            (n, expected_id, store.create_package("ci", &manifest).await)
        });
    }
    let mut created = 0;
    let mut outcomes = BTreeSet::new();
    while let Some(joined) = tasks.join_next().await {
        let (n, expected_id, result) = joined.expect("a task panicked");
        match result {
            Ok(package) => {
                assert_eq!(package.package_id, expected_id, "create {n}");
                created += usize::from(package.created);
                outcomes.insert(format!("{n}: ok"));
            }
            // The different manifest conflicts if the identical one got there first; if it
            // won, every identical create conflicts instead.
            Err(Error::Conflict(_)) => {
                outcomes.insert(format!("{n}: conflict"));
            }
            Err(other) => panic!("create {n}: {other}"),
        }
    }
    let events = all_events(&store_a).await;
    let created_events = events
        .iter()
        .filter(|e| e.event_type == types::PACKAGE_CREATED)
        .count();
    assert_eq!(created_events, 1, "{outcomes:?}");
    let winner = store_a
        .resolve(&"contended@1".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(created, 1, "exactly one writer creates: {outcomes:?}");
    if winner == same.package_id().unwrap() {
        assert!(outcomes.contains("5: conflict"), "{outcomes:?}");
    } else {
        assert_eq!(winner, different.package_id().unwrap());
        assert_eq!(
            outcomes.iter().filter(|o| o.ends_with("conflict")).count(),
            5
        );
    }
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=store_a.head().await.unwrap().seq).collect::<Vec<_>>()
    );
    assert_eq!(
        store_b.audit_verify().await.unwrap(),
        store_a.head().await.unwrap()
    );
}

/// PostgreSQL only. A database (or role) whose `default_transaction_isolation` is stricter than
/// READ COMMITTED must not break the log: under REPEATABLE READ or SERIALIZABLE the snapshot of
/// a write transaction would be taken by its `pg_advisory_xact_lock` statement, before the lock
/// is granted, so the head read next would be stale and two writers would both append
/// `head + 1` (a duplicate-key failure, or with other tables a lost update). `Catalog::write`
/// therefore begins `ISOLATION LEVEL READ COMMITTED` explicitly (ADR 0009).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_writers_stay_serialised_under_a_serializable_default() {
    let mut fixture = Fixture::new(Backend::Postgres, ymd(2026, 1, 1)).await;
    let raw = fixture.raw_catalog().await;
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&raw)
        .await
        .unwrap();
    raw_sql!(
        &raw,
        &format!(
            "ALTER DATABASE \"{database}\" SET default_transaction_isolation = 'serializable'"
        )
    )
    .await
    .unwrap();
    raw.close().await;
    // New pools, whose connections start with the stricter default.
    fixture.reopen().await;
    let store_a = fixture.store.clone();
    let store_b = fixture.second_handle().await;
    let check = fixture.raw_catalog().await;
    let isolation: String = sqlx::query_scalar("SHOW default_transaction_isolation")
        .fetch_one(&check)
        .await
        .unwrap();
    assert_eq!(isolation, "serializable");

    let packages = push_ephemeral(&store_a, "strict", 4).await;
    fixture.clock.advance(days(60));
    let mut tasks = tokio::task::JoinSet::new();
    spawn_sweepers(&mut tasks, &store_a, &store_b);
    tasks.spawn(holder(store_a.clone(), store_b.clone(), packages.clone()));
    tasks.spawn(holder(store_b.clone(), store_a.clone(), packages.clone()));
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a task panicked");
    }
    let head = store_a.head().await.unwrap();
    let events = all_events(&store_a).await;
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=head.seq).collect::<Vec<_>>()
    );
    assert_eq!(store_b.audit_verify().await.unwrap(), head);
    for package in &packages {
        artifact_core::testing::check_package_history(*package, &events);
    }
}
