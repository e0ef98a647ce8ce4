//! The SPEC §8 pilot scenario through the library: a guide-board run is ingested as a
//! `release-evidence` package, extended once, held for a quarter, released, swept and marked
//! eligible — all visible through `retention_state` and the event log, with its history in
//! order as JCS and as canonical CBOR, and `explain` citing the events it relies on.

use crate::support::assert_views_match_replay;
use std::collections::BTreeMap;

use artifact_core::catalog::PackageFilter;
use artifact_core::cbor::{self, Value};
use artifact_core::digest::{AnyDigest, Blake3, BlobInfo};
use artifact_core::event::{Event, types};
use artifact_core::jcs;
use artifact_core::manifest::{FileEntry, Manifest};
use artifact_core::retention::RetentionState;
use artifact_core::time::{Timestamp, ymd};
use artifact_core::{ArtifactStore, PackageRef};
use tokio::io::AsyncReadExt as _;

use crate::support::{
    Backend, Fixture, backend_tests, by_id, events_of, head_seq, pseudo_random_bytes,
};

backend_tests! {
    #[tokio::test]
    pilot_guide_board_release_evidence_lifecycle,
}

/// Size of the run's trace file: above the store's 4 MiB pipeline threshold (hashing moves to
/// its own thread, overlapping the backend's writes) and not a multiple of the 1 MiB chunk
/// (a short last chunk).
const TRACE_SIZE: usize = (5 << 20) + 7;

struct GuideBoardRun {
    files: Vec<(&'static str, &'static str, Vec<u8>)>,
}

impl GuideBoardRun {
    fn new() -> Self {
        Self {
            files: vec![
                (
                    "report/index.html",
                    "text/html",
                    b"<!doctype html><title>guide-board 2026.11.23-1</title><p>all green</p>\n"
                        .to_vec(),
                ),
                (
                    "report/results.json",
                    "application/json",
                    br#"{"passed":412,"failed":0,"skipped":3}"#.to_vec(),
                ),
                (
                    "summary.txt",
                    "text/plain",
                    b"guide-board: 412 passed, 0 failed\n".to_vec(),
                ),
                (
                    "traces/run.bin",
                    "application/octet-stream",
                    pseudo_random_bytes(TRACE_SIZE, 2026),
                ),
            ],
        }
    }

    async fn ingest(&self, store: &ArtifactStore) -> Manifest {
        let mut entries = Vec::new();
        for (path, media_type, content) in &self.files {
            let expected = BlobInfo::of(content);
            // Claim both digests up front, as a pipeline that computed them locally would.
            let record = store
                .ingest_blob(
                    "ci",
                    &content[..],
                    &[
                        AnyDigest::Blake3(expected.blake3),
                        AnyDigest::Sha256(expected.sha256),
                    ],
                )
                .await
                .expect("ingest a file");
            assert_eq!(record.info, expected, "{path}: both digests in one pass");
            entries.push(FileEntry {
                path: (*path).to_owned(),
                size: record.info.size,
                blake3: record.info.blake3,
                sha256: record.info.sha256,
                media_type: Some((*media_type).to_owned()),
            });
        }
        let mut manifest = Manifest {
            name: "guide-board".to_owned(),
            version: "2026.11.23-1".to_owned(),
            retention_class: "release-evidence".to_owned(),
            files: entries,
            labels: BTreeMap::from([("git.commit".to_owned(), "4f2a9c1".to_owned())]),
        };
        manifest.sort_files();
        manifest
    }
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

async fn pilot_guide_board_release_evidence_lifecycle(backend: Backend) {
    let created_at = ymd(2026, 11, 23);
    let fixture = Fixture::new(backend, created_at).await;
    let store = &fixture.store;
    let clock = &fixture.clock;
    let run = GuideBoardRun::new();

    // Ingest: release-evidence keeps a package 2 years by default.
    let manifest = run.ingest(store).await;
    let created = store.create_package("ci", &manifest).await.unwrap();
    assert!(created.created);
    let package_id = created.package_id;
    let package = by_id(package_id);
    let by_name: PackageRef = "guide-board@2026.11.23-1".parse().unwrap();
    assert_eq!(store.resolve(&by_name).await.unwrap(), package_id);
    assert_eq!(created.retention.retention_class, "release-evidence");
    assert_eq!(created.retention.default_period, "2y");
    let default_expiry = ymd(2028, 11, 23);
    assert_eq!(created.retention.default_expires_at, Some(default_expiry));
    assert_eq!(created.retention.current_expires_at, Some(default_expiry));
    assert!(!created.retention.eligible_for_deletion);

    // The package reads back byte for byte, the large file through the verifying reader.
    let (stored_manifest, manifest_bytes) = store.manifest(&package).await.unwrap();
    assert_eq!(stored_manifest, manifest);
    assert_eq!(Blake3::of(&manifest_bytes), package_id);
    for (path, _, content) in &run.files {
        let (entry, mut read) = store.read_file(&by_name, path, None).await.unwrap();
        assert_eq!(entry.size, content.len() as u64);
        let mut bytes = Vec::new();
        read.reader.read_to_end(&mut bytes).await.unwrap();
        assert!(bytes == *content, "{path} reads back differently");
    }

    // Extended once: six more months.
    clock.set(ymd(2028, 6, 1));
    let extended_to = ymd(2029, 5, 23);
    let status = store
        .extend(
            "release-manager",
            &by_name,
            extended_to,
            "evidence for the 2029 audit",
        )
        .await
        .unwrap();
    assert_eq!(status.current_expires_at, Some(extended_to));
    assert_eq!(status.default_expires_at, Some(default_expiry));

    // Held for a quarter: 2029-03-01 .. 2029-06-01, across the expiry.
    clock.set(ymd(2029, 3, 1));
    let hold_id = store
        .hold("legal", &package, "Q1 2029 legal review")
        .await
        .unwrap();
    let status = store.retention_status(&package).await.unwrap();
    assert_eq!(status.active_holds.len(), 1);
    assert_eq!(status.active_holds[0].hold_id, hold_id);
    assert_eq!(status.active_holds[0].actor, "legal");
    // `ls` and `show` read the same state in one batch (issue 16: not two lookups a package).
    let listed = store
        .list_package_views(&PackageFilter::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, store.package(&package).await.unwrap());
    assert_eq!(listed[0].1, status);
    assert_eq!(
        store.package_view(&package).await.unwrap(),
        listed[0].clone()
    );

    // A sweep during the hold, before the expiry: nothing.
    clock.set(ymd(2029, 4, 15));
    let report = store.sweep("sweeper", None).await.unwrap();
    assert!(report.newly_eligible.is_empty());

    // After the expiry, still held: nothing either.
    clock.set(ymd(2029, 5, 30));
    let head_before = head_seq(store).await;
    let report = store.sweep("sweeper", None).await.unwrap();
    assert!(
        report.newly_eligible.is_empty(),
        "a held package was marked eligible"
    );
    assert_eq!(head_seq(store).await, head_before);
    let status = store.retention_status(&package).await.unwrap();
    assert!(!status.eligible_for_deletion);
    let explanation = store.explain(&package, None).await.unwrap();
    assert!(!explanation.eligible_for_deletion);
    let hold_seq = status.active_holds[0].applied_seq;
    assert_eq!(explanation.cites, vec![hold_seq], "{}", explanation.verdict);

    // Released at the end of the quarter: expired, not yet marked.
    clock.set(ymd(2029, 6, 1));
    let status = store
        .release("legal", &package, &hold_id, "review closed")
        .await
        .unwrap();
    assert!(status.active_holds.is_empty());
    assert!(!status.eligible_for_deletion);

    // Swept: eligible exactly once.
    let report = store.sweep("sweeper", None).await.unwrap();
    assert_eq!(report.as_of, ymd(2029, 6, 1));
    assert_eq!(report.newly_eligible, vec![package_id]);
    let status = store.retention_status(&package).await.unwrap();
    assert!(status.eligible_for_deletion);
    let head = head_seq(store).await;
    assert_eq!(status.eligible_seq, Some(head));
    let eligible_listed = store
        .list_packages(&PackageFilter {
            eligible: true,
            ..PackageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        eligible_listed
            .iter()
            .map(|p| p.package_id)
            .collect::<Vec<_>>(),
        vec![package_id]
    );

    // A second sweep emits nothing.
    let report = store.sweep("sweeper", None).await.unwrap();
    assert!(report.newly_eligible.is_empty());
    assert_eq!(head_seq(store).await, head);
    assert_eq!(
        events_of(store, package_id, types::RETENTION_DELETION_ELIGIBLE)
            .await
            .len(),
        1
    );

    // The retention history, in seq order, says exactly that.
    let history = store.retention_history(&by_name).await.unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            types::RETENTION_DEFAULT_APPLIED,
            types::RETENTION_EXTENDED,
            types::RETENTION_HOLD_APPLIED,
            types::RETENTION_HOLD_RELEASED,
            types::RETENTION_DELETION_ELIGIBLE,
        ]
    );
    assert!(history.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(history.iter().all(|e| e.package_id == Some(package_id)));
    let [
        default_applied,
        extension,
        hold_applied,
        hold_released,
        eligible,
    ] = &history[..]
    else {
        unreachable!("five events checked above");
    };
    assert_eq!(default_applied.at, created_at);
    assert_eq!(
        default_applied.data_text("expires_at"),
        Some(default_expiry.to_string().as_str())
    );
    assert_eq!(extension.actor, "release-manager");
    assert_eq!(extension.at, ymd(2028, 6, 1));
    assert_eq!(
        extension.data_text("previous_expires_at").map(at),
        Some(default_expiry)
    );
    assert_eq!(
        extension.data_text("new_expires_at").map(at),
        Some(extended_to)
    );
    assert_eq!(
        extension.data_text("reason"),
        Some("evidence for the 2029 audit")
    );
    assert_eq!(hold_applied.seq, hold_seq);
    assert_eq!(hold_applied.data_text("hold_id"), Some(hold_id.as_str()));
    assert_eq!(hold_released.data_text("hold_id"), Some(hold_id.as_str()));
    assert_eq!(hold_released.data_text("reason"), Some("review closed"));
    assert_eq!(hold_released.at, ymd(2029, 6, 1));
    assert_eq!(eligible.seq, head);
    assert_eq!(eligible.actor, "sweeper");
    assert_eq!(eligible.data_text("as_of").map(at), Some(ymd(2029, 6, 1)));
    assert_eq!(eligible.data_text("expires_at").map(at), Some(extended_to));

    // As canonical CBOR and as JCS, the history round-trips exactly.
    let history_value = Value::Array(history.iter().map(Event::to_value).collect());
    let cbor_bytes = cbor::encode(&history_value).unwrap();
    let decoded = cbor::decode(&cbor_bytes).unwrap();
    assert_eq!(decoded, history_value);
    assert_eq!(
        cbor::encode(&decoded).unwrap(),
        cbor_bytes,
        "re-encoding changed bytes"
    );
    let decoded_events: Vec<Event> = decoded
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Event::from_value(v).unwrap())
        .collect();
    assert_eq!(decoded_events, history);
    let json = jcs::to_jcs(&history_value);
    assert_eq!(jcs::from_json(json.as_bytes()).unwrap(), history_value);
    for event in &history {
        // Each envelope is the canonical body the chain hashes.
        assert_eq!(
            Event::from_canonical_bytes(&event.canonical_bytes().unwrap()).unwrap(),
            *event
        );
    }

    // `explain` cites the extension (the expiry it relies on) and the sweep that marked it.
    let explanation = store.explain(&by_name, None).await.unwrap();
    assert!(explanation.eligible_for_deletion, "{}", explanation.verdict);
    assert_eq!(explanation.retained_until, Some(extended_to));
    assert_eq!(explanation.cites, vec![extension.seq, eligible.seq]);
    let package_events = store.package_events(&package_id).await.unwrap();
    let explained_seqs: Vec<u64> = explanation.lines.iter().map(|l| l.seq).collect();
    for event in &history {
        assert!(
            explained_seqs.contains(&event.seq),
            "explain has no line for seq {} ({})",
            event.seq,
            event.event_type
        );
    }
    assert!(
        explained_seqs
            .iter()
            .all(|seq| package_events.iter().any(|e| e.seq == *seq)),
        "explain cites an event of another package"
    );

    // Explanations at earlier instants come from the events up to then.
    let before_hold = store
        .explain(&package, Some(ymd(2028, 7, 1)))
        .await
        .unwrap();
    assert_eq!(before_hold.retained_until, Some(extended_to));
    assert_eq!(before_hold.cites, vec![extension.seq]);
    let during_hold = store
        .explain(&package, Some(ymd(2029, 5, 30)))
        .await
        .unwrap();
    assert!(!during_hold.eligible_for_deletion);
    assert_eq!(during_hold.cites, vec![hold_applied.seq]);

    // The view agrees with a fold of the event log, and with a replay of it.
    let status = store.retention_status(&package).await.unwrap();
    let folded = RetentionState::fold(&package_events).unwrap();
    assert_eq!(folded.current_expires_at, status.current_expires_at);
    assert_eq!(folded.default_expires_at, status.default_expires_at);
    assert_eq!(folded.eligible_for_deletion, status.eligible_for_deletion);
    assert_eq!(folded.eligible_seq, status.eligible_seq);
    assert_eq!(folded.updated_seq, status.updated_seq);
    assert_eq!(folded.active_holds(), status.active_holds.len());
    let hold = &folded.holds[&hold_id];
    assert_eq!(hold.applied_seq, hold_applied.seq);
    assert_eq!(hold.released.as_ref().map(|r| r.0), Some(hold_released.seq));
    assert_views_match_replay(store).await;
    assert_eq!(store.audit_verify().await.unwrap().seq, head);
}
