//! Storage-enforced retention (issue 13, ADR 0015): the `artifactstore` binary with
//! `[blobs] object_lock` on a real SeaweedFS bucket created with Object Lock (SeaweedFS
//! enforces COMPLIANCE, GOVERNANCE, legal holds and extend-only retention at its S3 API). What
//! the storage holds is read back with signed S3 requests acting as an operator with the
//! bucket's credentials, never from the store's own records.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use artifact_core::digest::Blake3;
use artifact_core::time::{Clock as _, Period, SystemClock, Timestamp};
use artifact_store_s3::signed::{LockMode, SignedClient};
use serde_json::Value as Json;

use crate::kit::{parse_json, push_args, sleep_until_past};
use crate::s3::S3Cli;
use crate::seaweed::SeaweedFs;

/// The bucket every test creates with Object Lock.
const LOCKED_BUCKET: &str = "locked";

/// A store on a lock-enabled bucket of its own SeaweedFS, and an operator's signed client.
struct Locked {
    cli: S3Cli,
    s3: SignedClient,
    // Last: the server outlives the clients.
    _weed: SeaweedFs,
}

/// What the storage holds on the current version of a blob.
#[derive(Debug)]
struct OnStorage {
    version: String,
    retention: Option<(LockMode, Timestamp)>,
    legal_hold: bool,
}

impl Locked {
    fn start(test: &str, mode: &str) -> Self {
        Self::start_on(test, mode, false)
    }

    /// With `postgres`, on a fresh PostgreSQL catalog (`artifact_core::testing_postgres`).
    fn start_on(test: &str, mode: &str, postgres: bool) -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let database_url =
            postgres.then(|| runtime.block_on(artifact_core::testing_postgres::fresh_database()));
        let weed = runtime.block_on(SeaweedFs::start());
        let mut target = weed.target().clone();
        target.bucket = LOCKED_BUCKET.to_owned();
        let s3 = target.options().signed_client().unwrap();
        runtime.block_on(s3.create_bucket(true)).unwrap();
        let cli = S3Cli::new_on(
            &target,
            runtime,
            test,
            &format!(
                "object_lock = \"{mode}\"\nobject_lock_horizon = \"20s\"\n\n[retention.classes.short]\ndefault = \"6s\"\n\n\
                 [retention.classes.long]\ndefault = \"1h\"\n"
            ),
            database_url,
        );
        Locked {
            cli,
            s3,
            _weed: weed,
        }
    }

    fn key(&self, blob: &Blake3) -> String {
        let hex = blob.to_hex();
        format!("{}/blobs/blake3/{}/{hex}", self.cli.prefix, &hex[..2])
    }

    fn block<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.cli.runtime.block_on(future)
    }

    fn on_storage(&self, blob: &Blake3) -> OnStorage {
        let key = self.key(blob);
        let version = self
            .block(self.s3.version_id(&key))
            .unwrap()
            .unwrap_or_else(|| panic!("{key} is not in the bucket"))
            .expect("a lock-enabled bucket is versioned");
        let retention = self
            .block(self.s3.version_retention(&key, Some(&version)))
            .unwrap()
            .map(|(mode, date)| (mode, date.parse().unwrap()));
        let legal_hold = self
            .block(self.s3.legal_hold(&key, Some(&version)))
            .unwrap();
        OnStorage {
            version,
            retention,
            legal_hold,
        }
    }

    /// The blobs of a package: its files' and its manifest blob.
    fn package_blobs(&self, package: &str) -> BTreeSet<Blake3> {
        let manifest = self.cli.json(&["manifest", package]);
        let mut blobs: BTreeSet<Blake3> = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["blake3"].as_str().unwrap().parse().unwrap())
            .collect();
        let shown = self.cli.json(&["show", package]);
        blobs.insert(shown["package_id"].as_str().unwrap().parse().unwrap());
        blobs
    }

    fn expiry(&self, package: &str) -> Timestamp {
        self.cli.json(&["retention", "status", package])["current_expires_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Every blob of `package` is retained in `mode` until at least `until`.
    fn assert_retained(&self, package: &str, mode: LockMode, until: Timestamp) {
        for blob in self.package_blobs(package) {
            let held = self.on_storage(&blob);
            let (got_mode, got_until) = held
                .retention
                .unwrap_or_else(|| panic!("{blob} of {package} has no retention: {held:?}"));
            assert_eq!(got_mode, mode, "{blob} of {package}");
            assert!(
                got_until >= until,
                "{blob} of {package} is retained until {got_until}, before {until}"
            );
        }
    }

    fn fsck(&self) -> (bool, Json) {
        let output = self
            .cli
            .command()
            .args(["--json", "fsck"])
            .output()
            .unwrap();
        let report = parse_json(&["fsck"], &output.stdout);
        assert_eq!(
            output.status.success(),
            report["ok"] == Json::Bool(true),
            "{report}"
        );
        (output.status.success(), report)
    }

    fn assert_fsck_clean(&self, context: &str) {
        let (ok, report) = self.fsck();
        assert!(ok, "{context}: {report}");
    }

    fn head_seq(&self) -> u64 {
        self.cli.json(&["audit", "verify"])["head_seq"]
            .as_u64()
            .unwrap()
    }
}

fn write_tree(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (path, content) in files {
        std::fs::write(dir.join(path), content).unwrap();
    }
    dir
}

fn in_seconds(seconds: i64) -> Timestamp {
    SystemClock
        .now()
        .checked_add(Period::Millis(seconds * 1000))
        .unwrap()
}

fn blob_of(content: &str) -> Blake3 {
    Blake3::of(content.as_bytes())
}

/// Push → every blob COMPLIANCE-locked until its package's expiry (a shared blob until the
/// longer one); deletes of locked versions refused; extension moves every lock; holds set
/// legal holds, releases clear them unless a sharing package is still held; a legal hold
/// removed behind the store's back is found by fsck and repaired by `admin reconcile-locks`;
/// GC keeps a blob the storage still locks (exit 0) and later removes every version of it.
#[test]
fn object_lock_carries_retention_and_holds_down_to_every_blob() {
    lock_scenario(Locked::start("object-lock", "compliance"));
}

/// The same on a PostgreSQL catalog.
#[test]
fn postgres_object_lock_carries_retention_and_holds_down_to_every_blob() {
    lock_scenario(Locked::start_on("object-lock-pg", "compliance", true));
}

fn lock_scenario(store: Locked) {
    let cli = &store.cli;

    // A store asking for locks on a bucket without Object Lock does not start, and changes
    // nothing.
    let head = store.head_seq();
    let plain = cli.config_with("bucket", "\"test\"");
    let refused = cli.fails(
        cli.command().env("ARTIFACTSTORE_CONFIG", &plain),
        &["retention", "sweep"],
    );
    assert!(
        refused.contains("has no Object Lock configuration") && refused.contains("`test`"),
        "{refused}"
    );
    assert_eq!(store.head_seq(), head);

    // B (6 s) and then A (1 h) share `shared.txt`.
    let shared = "shared between the short and the long package";
    let b_only = "only in the short package";
    let a_only = "only in the long package";
    let b_dir = write_tree(
        cli.work(),
        "b",
        &[("shared.txt", shared), ("b-only.txt", b_only)],
    );
    let a_dir = write_tree(
        cli.work(),
        "a",
        &[("shared.txt", shared), ("a-only.txt", a_only)],
    );
    // Larger than one 5 MiB part: staged in a multipart upload, then copied into place.
    let large: Vec<u8> = (0..6 * 1024 * 1024 + 17u32)
        .map(|i| (i.wrapping_mul(31) >> 3) as u8)
        .collect();
    std::fs::write(a_dir.join("large.bin"), &large).unwrap();
    cli.ok(&push_args(
        b_dir.to_str().unwrap(),
        "lock-demo",
        "b",
        &["--class", "short"],
    ));
    cli.ok(&push_args(
        a_dir.to_str().unwrap(),
        "lock-demo",
        "a",
        &["--class", "long"],
    ));
    let (a, b) = ("lock-demo@a", "lock-demo@b");
    let (a_expiry, b_expiry) = (store.expiry(a), store.expiry(b));
    store.assert_retained(a, LockMode::Compliance, a_expiry);
    store.assert_retained(b, LockMode::Compliance, b_expiry);
    let b_unique = store.on_storage(&blob_of(b_only)).retention.unwrap().1;
    assert!(
        b_unique < a_expiry,
        "b-only follows B ({b_expiry}), not A: {b_unique}"
    );
    let shared_lock = store.on_storage(&blob_of(shared)).retention.unwrap().1;
    assert!(shared_lock >= a_expiry, "shared follows A: {shared_lock}");
    // The staging object of the large blob is gone, every version of it (a plain DELETE would
    // have left a version under a delete marker).
    let staging = format!("{}/staging/", cli.prefix);
    assert_eq!(
        store.block(store.s3.list_versions(&staging)).unwrap(),
        vec![],
        "staging leaves nothing on a versioned bucket"
    );
    // A scrub reads the version each blob's lock is on.
    let verified = cli.json(&["verify"]);
    assert_eq!(verified["ok"], Json::Bool(true), "{verified}");
    assert!(verified["checked"].as_u64().unwrap() >= 6, "{verified}");

    // The storage refuses an operator's delete of a locked version; the bytes stay.
    let a_key = store.key(&blob_of(a_only));
    let a_version = store.on_storage(&blob_of(a_only)).version;
    let status = store
        .block(store.s3.delete(&a_key, Some(&a_version)))
        .unwrap();
    assert!(
        status.is_client_error(),
        "a locked version was deleted: {status}"
    );
    assert_eq!(
        store.on_storage(&blob_of(a_only)).version,
        a_version,
        "the locked version is still there"
    );

    // Extending A moves the retain-until of every one of its blobs.
    let later = a_expiry.checked_add(Period::Millis(3_600_000)).unwrap();
    cli.ok(&[
        "retention",
        "extend",
        a,
        "--until",
        &later.to_string(),
        "--reason",
        "audit asked for longer",
    ]);
    store.assert_retained(a, LockMode::Compliance, later);

    // Holds: every blob of a held package gets a legal hold; a release clears it unless a
    // package sharing the blob is still held.
    let hold = |package: &str| {
        cli.json(&["retention", "hold", package, "--reason", "legal review"])["hold_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let a_hold = hold(a);
    let b_hold = hold(b);
    for blob in store.package_blobs(a).union(&store.package_blobs(b)) {
        assert!(store.on_storage(blob).legal_hold, "{blob} is held");
    }
    cli.ok(&["retention", "release", b, &b_hold, "--reason", "cleared"]);
    assert!(!store.on_storage(&blob_of(b_only)).legal_hold);
    assert!(
        store.on_storage(&blob_of(shared)).legal_hold,
        "A is still held and shares it"
    );
    for blob in store.package_blobs(a) {
        assert!(store.on_storage(&blob).legal_hold, "{blob} of A is held");
    }
    let explained = cli.json(&["retention", "explain", a]);
    let lines = explained["lines"].to_string();
    assert!(
        lines.contains("the storage retains blob") && lines.contains("legal hold"),
        "{explained}"
    );
    store.assert_fsck_clean("after holds and releases");

    // Drift: an operator clears a legal hold the log requires.
    let a_blob = blob_of(a_only);
    store
        .block(store.s3.put_legal_hold(&a_key, Some(&a_version), false))
        .unwrap();
    let (ok, report) = store.fsck();
    assert!(!ok, "{report}");
    let findings = report["findings"].to_string();
    assert!(
        findings.contains("legal-hold-missing") && findings.contains(&a_blob.to_string()),
        "{report}"
    );
    let head = store.head_seq();
    let repaired = cli.json(&["admin", "reconcile-locks"]);
    assert_eq!(
        repaired["holds_set"],
        serde_json::json!([a_blob.to_string()]),
        "{repaired}"
    );
    assert!(store.head_seq() > head, "the repair is recorded");
    assert!(store.on_storage(&a_blob).legal_hold);
    store.assert_fsck_clean("after reconcile-locks");
    // An operator's plain DELETE stacks a delete marker on a locked blob: the locked version
    // stays (a scrub reads it), fsck names the marker, reconcile-locks removes it and plain
    // reads work again.
    let shared_key = store.key(&blob_of(shared));
    let status = store.block(store.s3.delete(&shared_key, None)).unwrap();
    assert!(
        status.is_success(),
        "a plain DELETE adds a marker: {status}"
    );
    let verified = cli.json(&["verify"]);
    assert_eq!(verified["ok"], Json::Bool(true), "{verified}");
    assert_eq!(
        cli.ok(&["cat", a, "shared.txt"]),
        shared.as_bytes(),
        "reads take the recorded version, under the marker"
    );
    let (ok, report) = store.fsck();
    assert!(
        !ok && report["findings"].to_string().contains("delete-marker"),
        "{report}"
    );
    let repaired = cli.json(&["admin", "reconcile-locks"]);
    assert_eq!(
        repaired["versions_removed"].as_array().unwrap().len(),
        1,
        "{repaired}"
    );
    assert_eq!(cli.ok(&["cat", a, "shared.txt"]), shared.as_bytes());
    store.assert_fsck_clean("after the marker was removed");
    // An operator PUTs other bytes (same size) under the blob's key: a new current version.
    // The store keeps reading the locked version; fsck notes it; reconcile-locks removes it.
    let forged = "X".repeat(shared.len());
    let bucket = cli.target.options().build().unwrap().object_store();
    store
        .block(object_store::ObjectStoreExt::put(
            bucket.as_ref(),
            &object_store::path::Path::from(shared_key.as_str()),
            forged.clone().into(),
        ))
        .unwrap();
    assert_eq!(cli.ok(&["cat", a, "shared.txt"]), shared.as_bytes());
    let (ok, report) = store.fsck();
    assert!(
        ok && report["notes"]
            .to_string()
            .contains("versions besides the locked one"),
        "{report}"
    );
    let repaired = cli.json(&["admin", "reconcile-locks"]);
    assert_eq!(
        repaired["versions_removed"].as_array().unwrap().len(),
        1,
        "{repaired}"
    );
    assert_eq!(
        store.block(store.s3.get(&shared_key)).unwrap().as_deref(),
        Some(shared.as_bytes()),
        "plain reads of the bucket see the locked bytes again"
    );
    cli.ok(&["retention", "release", a, &a_hold, "--reason", "cleared"]);
    assert!(!store.on_storage(&blob_of(shared)).legal_hold);
    assert!(!store.on_storage(&a_blob).legal_hold);

    // GC: an operator locked b-only longer than B needs. Once B has expired, a sweep and a GC
    // purge B, and GC keeps b-only while the storage locks it (exit 0); a later GC removes
    // every version of it, with no delete marker left.
    let b_key = store.key(&blob_of(b_only));
    let b_version = store.on_storage(&blob_of(b_only)).version;
    let operator_lock = in_seconds(14);
    store
        .block(store.s3.put_retention(
            &b_key,
            Some(&b_version),
            LockMode::Compliance,
            operator_lock,
        ))
        .unwrap();
    // …and left a legal hold on it: no live package will reference it, so GC clears that
    // leftover hold (recorded) instead of being blocked by it for ever.
    store
        .block(store.s3.put_legal_hold(&b_key, Some(&b_version), true))
        .unwrap();
    // Past B's expiry and past its lock (whole seconds, rounded up).
    sleep_until_past(b_expiry.checked_add(Period::Millis(1000)).unwrap());
    cli.ok(&["retention", "sweep"]);
    let gc = cli.json(&["gc", "--grace", "0s"]);
    assert_eq!(gc["purged"].as_array().unwrap().len(), 1, "{gc}");
    let kept = gc["kept"].to_string();
    assert!(
        kept.contains(&blob_of(b_only).to_string()) && kept.contains("locked until"),
        "{gc}"
    );
    assert!(
        !gc["deleted_blobs"]
            .to_string()
            .contains(&blob_of(b_only).to_string()),
        "{gc}"
    );
    let b_state = store.on_storage(&blob_of(b_only));
    assert_eq!(b_state.version, b_version);
    assert!(!b_state.legal_hold, "GC cleared the leftover legal hold");
    let cleared = cli.json(&["events", "--type", "v1.blob.legal_hold_set"]);
    assert!(
        cleared.to_string().contains(&blob_of(b_only).to_string()),
        "{cleared}"
    );
    sleep_until_past(operator_lock);
    // The deletion GC committed to is finished by the next run (or already by opening the
    // store, which finishes pending deletions): `v1.blob.deleted` for b-only, once.
    let gc = cli.json(&["gc", "--grace", "0s"]);
    assert_eq!(gc["kept"], serde_json::json!([]), "{gc}");
    let deleted = cli.json(&["events", "--type", "v1.blob.deleted"]);
    let named = deleted
        .to_string()
        .matches(&blob_of(b_only).to_string())
        .count();
    assert_eq!(named, 1, "{deleted}");
    assert_eq!(
        store.block(store.s3.list_versions(&b_key)).unwrap(),
        vec![],
        "every version and delete marker of b-only is gone"
    );
    // The shared blob and A's are untouched.
    store.assert_retained(a, LockMode::Compliance, later);
    store.assert_fsck_clean("after gc");
}

/// GOVERNANCE: a retention shortened behind the store's back (bypass) is found by fsck naming
/// the blob and restored by `admin reconcile-locks`.
#[test]
fn a_shortened_governance_retention_is_found_and_repaired() {
    let store = Locked::start("governance", "governance");
    let cli = &store.cli;
    let dir = write_tree(cli.work(), "g", &[("one.txt", "one"), ("two.txt", "two")]);
    cli.ok(&push_args(
        dir.to_str().unwrap(),
        "gov",
        "1",
        &["--class", "long"],
    ));
    let expiry = store.expiry("gov@1");
    store.assert_retained("gov@1", LockMode::Governance, expiry);
    store.assert_fsck_clean("after push");

    // The server starts on the locked bucket (its write probe deletes its exact version) and a
    // push over HTTP is locked like a local one.
    let server = cli.serve();
    let remote = write_tree(cli.work(), "r", &[("remote.txt", "pushed over http")]);
    cli.remote_ok(
        &server,
        &push_args(
            remote.to_str().unwrap(),
            "gov",
            "remote",
            &["--class", "long"],
        ),
    );
    drop(server);
    store.assert_retained(
        "gov@remote",
        LockMode::Governance,
        store.expiry("gov@remote"),
    );
    assert_eq!(
        store
            .block(store.s3.list_versions(&format!("{}/staging/", cli.prefix)))
            .unwrap(),
        vec![],
        "the start-up probe left no version behind"
    );

    let blob = blob_of("two");
    let key = store.key(&blob);
    let version = store.on_storage(&blob).version;
    store
        .block(store.s3.put_retention_bypassing_governance(
            &key,
            Some(&version),
            LockMode::Governance,
            in_seconds(60),
        ))
        .unwrap();
    assert!(store.on_storage(&blob).retention.unwrap().1 < expiry);
    let (ok, report) = store.fsck();
    assert!(!ok, "{report}");
    let findings = report["findings"].to_string();
    assert!(
        findings.contains("lock-short") && findings.contains(&blob.to_string()),
        "{report}"
    );
    let repaired = cli.json(&["admin", "reconcile-locks"]);
    assert!(
        repaired["extended"].to_string().contains(&blob.to_string()),
        "{repaired}"
    );
    store.assert_retained("gov@1", LockMode::Governance, expiry);
    store.assert_fsck_clean("after reconcile-locks");

    // A permanent package: retained to the horizon (20 s in this config) with a legal hold;
    // a sweep pushes the retention forward once less than half the horizon is left.
    let dir = write_tree(cli.work(), "p", &[("record.txt", "kept for ever")]);
    let pushed = Instant::now();
    cli.ok(&push_args(
        dir.to_str().unwrap(),
        "gov",
        "permanent",
        &["--class", "permanent-record"],
    ));
    let record = blob_of("kept for ever");
    let first = store.on_storage(&record);
    assert!(first.legal_hold, "{first:?}");
    let first_until = first.retention.unwrap().1;
    assert!(first_until >= in_seconds(15), "{first:?}");
    cli.ok(&["retention", "sweep"]);
    assert_eq!(
        store.on_storage(&record).retention.unwrap().1,
        first_until,
        "not due yet"
    );
    std::thread::sleep(Duration::from_secs(11).saturating_sub(pushed.elapsed()));
    cli.ok(&["retention", "sweep"]);
    let renewed = store.on_storage(&record);
    assert!(
        renewed.retention.unwrap().1 > first_until && renewed.legal_hold,
        "{renewed:?}"
    );
    store.assert_fsck_clean("after the renewal");
}

/// A small deterministic generator for kill points.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Runs `args` and SIGKILLs it after `delay` (if still running).
fn kill_after(cli: &S3Cli, args: &[&str], delay: Duration) {
    let mut child = cli
        .command()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL during package creation and during an extension on a locked bucket: after each
/// kill, fsck finds every lock the log records on the storage (no drift), and the operation
/// then completes with every blob locked until its package's expiry.
#[test]
fn kill_during_locked_package_creation_and_extension() {
    let store = Locked::start("object-lock-crash", "compliance");
    let cli = &store.cli;
    let mut rng = Rng(13);
    // One timed run gives the span kill points are drawn from.
    let files = |round: usize| -> Vec<(String, String)> {
        (0..12)
            .map(|i| (format!("f{i}.txt"), format!("round {round} file {i}")))
            .collect()
    };
    let tree = |round: usize| {
        let owned = files(round);
        let borrowed: Vec<(&str, &str)> = owned
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        write_tree(cli.work(), &format!("round-{round}"), &borrowed)
    };
    let started = Instant::now();
    let first = tree(0);
    cli.ok(&push_args(
        first.to_str().unwrap(),
        "crash",
        "0",
        &["--class", "long"],
    ));
    let span = started.elapsed();
    for round in 1..=4 {
        let dir = tree(round);
        let version = round.to_string();
        let args = push_args(
            dir.to_str().unwrap(),
            "crash",
            &version,
            &["--class", "long"],
        );
        let delay = Duration::from_millis(rng.below(span.as_millis() as u64));
        kill_after(cli, &args, delay);
        store.assert_fsck_clean(&format!("after a kill {delay:?} into push round {round}"));
        cli.ok(&args);
        let package = format!("crash@{round}");
        store.assert_retained(&package, LockMode::Compliance, store.expiry(&package));

        let until = store
            .expiry(&package)
            .checked_add(Period::Millis(86_400_000))
            .unwrap()
            .to_string();
        let extend = [
            "retention",
            "extend",
            package.as_str(),
            "--until",
            until.as_str(),
            "--reason",
            "longer",
        ];
        let delay = Duration::from_millis(rng.below(span.as_millis() as u64 / 2));
        kill_after(cli, &extend, delay);
        store.assert_fsck_clean(&format!("after a kill {delay:?} into extend round {round}"));
        if store.expiry(&package).to_string() != until {
            cli.ok(&extend);
        }
        store.assert_retained(&package, LockMode::Compliance, until.parse().unwrap());
    }
    store.assert_fsck_clean("at the end");
}
