//! `artifactstore verify`, `fsck` and `gc` through the real binary (SPEC §5), and the server's
//! scheduled GC and scrub (`[gc]`, `[verify]` in the configuration).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::kit::{Rng, Source, Store, push_args, sleep_until_past};
use serde_json::Value as Json;

/// Configuration for stores whose `ephemeral` packages expire while the test runs (sweeps
/// run on the store's clock).
const EPHEMERAL_2S: &str = "[retention.classes.ephemeral]\ndefault = \"2s\"\n";

fn flip_byte(path: &std::path::Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x20;
    let mut permissions = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(path, permissions).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn blake3_of(content: &[u8]) -> String {
    artifact_core::digest::Blake3::of(content).to_string()
}

fn events_of_type(store: &Store, event_type: &str) -> Vec<Json> {
    store
        .json(&["events", "--type", event_type, "--limit", "1000"])
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn verify_finds_a_flipped_byte_reads_fail_and_fsck_reports_it() {
    let mut rng = Rng::from_env("verify_finds_a_flipped_byte");
    let mut store = Store::new();
    let bad = rng.bytes(300_000);
    let good = rng.bytes(50_000);
    let source = Source::write(
        store.work().join("src"),
        BTreeMap::from([
            ("bad.bin".to_owned(), bad.clone()),
            ("good.bin".to_owned(), good.clone()),
        ]),
    );
    let pushed = store.push_dir(&source.dir, "scrubbed", "1");
    let package = pushed["package_id"].as_str().unwrap().to_owned();
    let clean = store.json(&["verify"]);
    assert_eq!(clean["ok"], true);
    assert_eq!(clean["checked"], 3, "two files and the manifest: {clean}");
    store.assert_consistent("before the flip");

    let blob = blake3_of(&bad);
    flip_byte(&store.blob_path(&blob), 150_001);

    // verify: exit non-zero, names the blob and why, records v1.integrity.failed.
    let (code, stdout, stderr) = store.fails(&["--json", "verify"]);
    assert_eq!(code, Some(1));
    let report: Json = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["checked"], 3);
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["blake3"], blob.as_str());
    assert!(!failed[0]["reason"].as_str().unwrap().is_empty());
    assert!(
        stderr.contains(&blob) && stderr.contains("failed its check"),
        "{stderr}"
    );
    let (_, _, human) = store.fails(&["verify"]);
    assert!(human.contains(&blob), "{human}");
    let events = events_of_type(&store, "v1.integrity.failed");
    assert_eq!(events.len(), 2, "one per failing run");
    for event in &events {
        assert_eq!(event["data"]["blake3"], blob.as_str());
        assert!(!event["data"]["reason"].as_str().unwrap().is_empty());
    }

    // Full reads fail and never hand out the wrong bytes.
    let cat = store.run(&["cat", &package, "bad.bin"]);
    assert!(!cat.status.success());
    assert!(
        cat.stdout.is_empty(),
        "cat wrote {} bytes of a corrupt blob",
        cat.stdout.len()
    );
    assert!(String::from_utf8_lossy(&cat.stderr).contains("corrupt"));
    let get = store.run(&["blob", "get", &blob]);
    assert!(!get.status.success());
    assert!(
        get.stdout.is_empty(),
        "blob get wrote {} bytes of a corrupt blob",
        get.stdout.len()
    );
    let out = store.work().join("got.bin");
    store.fails(&["blob", "get", &blob, "--output", out.to_str().unwrap()]);
    assert!(!out.exists());
    let dest = store.work().join("pulled");
    store.fails(&["pull", &package, dest.to_str().unwrap()]);
    assert!(!dest.join("bad.bin").exists());
    // The intact file still reads.
    assert_eq!(store.ok(&["cat", &package, "good.bin"]), good);

    // fsck: the failed check is a finding; exit non-zero.
    let (code, stdout, stderr) = store.fails(&["--json", "fsck"]);
    assert_eq!(code, Some(1));
    let fsck: Json = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(fsck["ok"], false);
    let findings = fsck["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{fsck}");
    assert_eq!(findings[0]["kind"], "failed-check");
    assert_eq!(findings[0]["subject"], blob.as_str());
    assert!(stderr.contains("failed-check"), "{stderr}");
    // Restoring the byte repairs the blob: the next scrub passes and fsck is clean again.
    flip_byte(&store.blob_path(&blob), 150_001);
    assert_eq!(store.json(&["verify"])["ok"], true);
    store.assert_consistent("after the repair");
}

#[test]
fn sampled_and_rate_limited_verify() {
    let mut rng = Rng::from_env("sampled_and_rate_limited_verify");
    let mut store = Store::new();
    let files: BTreeMap<String, Vec<u8>> = (0..99)
        .map(|i| (format!("f{i}"), rng.bytes(2_000)))
        .collect();
    let source = Source::write(store.work().join("src"), files);
    store.push_dir(&source.dir, "many", "1");
    let blobs = 100; // 99 files and the manifest
    // p = 0.5 over 100 blobs: none or all has probability 2^-99.
    let head = store.head_seq();
    let sampled = store.json(&["verify", "--sample", "0.5"]);
    let checked = sampled["checked"].as_u64().unwrap();
    assert!(checked > 0 && checked < blobs, "{sampled}");
    assert_eq!(sampled["ok"], true);
    assert_eq!(
        store.head_seq(),
        head + checked,
        "one event per blob checked"
    );
    assert_eq!(
        events_of_type(&store, "v1.integrity.checked").len() as u64,
        checked
    );

    // Rate-limited: every blob is still checked (no timing is asserted).
    let limited = store.json(&["verify", "--max-bytes-per-sec", "4000000"]);
    assert_eq!(limited["checked"], blobs);
    assert_eq!(limited["ok"], true);

    // Bad fractions are refused and change nothing.
    let head = store.head_seq();
    for bad in ["0", "1.5", "-1", "nan"] {
        store.fails(&["verify", "--sample", bad]);
    }
    assert_eq!(store.head_seq(), head);
    store.assert_consistent("after the scrubs");
}

#[test]
fn gc_dry_run_matches_the_real_run_and_keeps_shared_blobs() {
    let mut rng = Rng::from_env("gc_dry_run_matches_the_real_run");
    let mut store = Store::new();
    store.configure(EPHEMERAL_2S);
    let shared = rng.bytes(10_000);
    let mut sources = Vec::new();
    let mut expires_0 = artifact_core::time::Timestamp::EPOCH;
    for (n, class) in [(0, "ephemeral"), (1, "build-cache")] {
        let files = BTreeMap::from([
            ("shared.bin".to_owned(), shared.clone()),
            (format!("only-{n}.bin"), rng.bytes(5_000)),
        ]);
        let source = Source::write(store.work().join(format!("p{n}")), files);
        let pushed = store.json(&push_args(
            source.dir.to_str().unwrap(),
            "p",
            &n.to_string(),
            &["--class", class],
        ));
        if n == 0 {
            expires_0 = pushed["expires_at"].as_str().unwrap().parse().unwrap();
        }
        sources.push((pushed["package_id"].as_str().unwrap().to_owned(), source));
    }
    // The ephemeral package (2 s in this store) expires; the build-cache one (30 d) does not.
    sleep_until_past(expires_0);
    let swept = store.json(&["retention", "sweep"]);
    assert_eq!(swept["newly_eligible"], 1, "{swept}");
    std::thread::sleep(Duration::from_millis(5));

    // The default grace (24h) keeps every blob; the purge still happens only in a real run.
    let head = store.head_seq();
    let dry = store.json(&["gc", "--grace", "1ms", "--dry-run"]);
    assert_eq!(store.head_seq(), head, "a dry run changes nothing");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["purged"], serde_json::json!([sources[0].0]));
    let only_0 = blake3_of(&sources[0].1.files["only-0.bin"]);
    assert_eq!(dry["deleted_blobs"], serde_json::json!([only_0]));
    let human = String::from_utf8(store.ok(&["gc", "--grace", "1ms", "--dry-run"])).unwrap();
    assert!(human.contains("would purge 1 package(s)"), "{human}");
    assert!(human.contains("would delete 1 blob(s)"), "{human}");
    assert!(store.blob_path(&only_0).exists());

    let real = store.json(&["gc", "--grace", "1ms"]);
    assert_eq!(real["purged"], dry["purged"]);
    assert_eq!(real["deleted_blobs"], dry["deleted_blobs"]);
    assert_eq!(real["bytes_reclaimed"], dry["bytes_reclaimed"]);
    assert!(!store.blob_path(&only_0).exists());
    assert!(store.blob_path(&blake3_of(&shared)).exists());
    sources[1].1.assert_pulls(&store, &sources[1].0, "after gc");
    // Purged before deleted, in the log.
    let purged = events_of_type(&store, "v1.package.purged");
    let deleted = events_of_type(&store, "v1.blob.deleted");
    assert_eq!((purged.len(), deleted.len()), (1, 1));
    assert!(purged[0]["seq"].as_u64() < deleted[0]["seq"].as_u64());
    assert_eq!(deleted[0]["data"]["blake3"], only_0.as_str());
    // The purged package's files are refused; its manifest stays.
    store.fails(&["cat", &sources[0].0, "only-0.bin"]);
    store.ok(&["manifest", &sources[0].0]);
    // pull refuses before writing anything, although one of its blobs is still present.
    let dest = store.work().join("pulled-purged");
    let (_, _, stderr) = store.fails(&["pull", &sources[0].0, dest.to_str().unwrap()]);
    assert!(stderr.contains("purged"), "{stderr}");
    assert!(
        !dest.exists(),
        "pull of a purged package wrote {}",
        dest.display()
    );
    // Pushing it again does not pretend it exists: a name and version are never reused.
    let (_, _, stderr) = store.fails(&push_args(
        sources[0].1.dir.to_str().unwrap(),
        "p",
        "0",
        &["--class", "ephemeral"],
    ));
    assert!(stderr.contains("purged"), "{stderr}");
    store.assert_consistent("after gc");
}

/// Polls `check` until it holds; gives up (failing) after a generous deadline.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn server_runs_gc_and_a_sampled_scrub_on_their_schedules() {
    // GC is off unless configured; a scrub is on (daily, 1% sample) by default.
    let defaults = artifact_core::config::Config::default();
    assert_eq!(defaults.gc_schedule().unwrap().0, None);
    let (verify_every, sample, _) = defaults.verify_schedule().unwrap();
    assert_eq!(verify_every, Some(Duration::from_secs(86_400)));
    assert!(sample < 1.0);

    let mut rng = Rng::from_env("server_runs_gc_and_a_sampled_scrub");
    let mut store = Store::new();
    store.configure(EPHEMERAL_2S);
    let mut pushed = Vec::new();
    let mut expires_0 = artifact_core::time::Timestamp::EPOCH;
    for (n, class) in [(0, "ephemeral"), (1, "build-cache")] {
        let files = BTreeMap::from([(format!("f{n}.bin"), rng.bytes(4_000))]);
        let source = Source::write(store.work().join(format!("s{n}")), files);
        let created = store.json(&push_args(
            source.dir.to_str().unwrap(),
            "scheduled",
            &n.to_string(),
            &["--class", class],
        ));
        if n == 0 {
            expires_0 = created["expires_at"].as_str().unwrap().parse().unwrap();
        }
        let id = created["package_id"].as_str().unwrap().to_owned();
        pushed.push((id, source));
    }
    // The ephemeral package (2 s in this store) expires; the build-cache one (30 d) does not.
    sleep_until_past(expires_0);
    let swept = store.json(&["retention", "sweep"]);
    assert_eq!(swept["newly_eligible"], 1, "{swept}");

    // A server whose GC is off purges nothing; its scrub (every 200 ms, full sample) runs.
    {
        let _server = store.serve(Some(
            "[gc]\ninterval = \"off\"\n[verify]\ninterval = \"200ms\"\nsample = 1.0\nmax_bytes_per_sec = 0\n",
        ));
        eventually("a scheduled scrub", || {
            events_of_type(&store, "v1.integrity.checked")
                .iter()
                .any(|e| e["actor"] == "system:verify")
        });
    }
    assert!(events_of_type(&store, "v1.package.purged").is_empty());

    // With [gc] interval set, the server purges the eligible package and deletes its blob.
    {
        let _server = store.serve(Some(
            "[gc]\ninterval = \"200ms\"\ngrace = \"1ms\"\n[verify]\ninterval = \"off\"\n",
        ));
        eventually("a scheduled gc", || {
            events_of_type(&store, "v1.blob.deleted")
                .iter()
                .any(|e| e["actor"] == "system:gc")
        });
    }
    let purged = events_of_type(&store, "v1.package.purged");
    assert_eq!(purged.len(), 1);
    assert_eq!(purged[0]["package_id"], pushed[0].0.as_str());
    assert_eq!(purged[0]["actor"], "system:gc");
    let gone = blake3_of(&pushed[0].1.files["f0.bin"]);
    assert!(!store.blob_path(&gone).exists());
    pushed[1]
        .1
        .assert_pulls(&store, &pushed[1].0, "after the scheduled gc");
    store.assert_consistent("after the scheduled gc");
}
