//! Crash safety (SPEC §6) with real process kills: the `artifactstore` binary is SIGKILLed at a
//! random point of an ingest, a package creation, a sweep and a GC on an embedded store. After
//! every kill the store is opened again and must be consistent (fsck clean, every recorded blob
//! has its bytes, no staging file left, every package that was live and not eligible still
//! pulls byte-identical), and the same operation then runs to completion.
//!
//! Each kill lands after a random delay, drawn from a seeded generator (the seed is printed;
//! rerun with `CRASH_SEED=<seed>`), up to a little more than the operation's own duration as
//! measured by an uninterrupted run first, so the kills spread over start-up, hashing, writing,
//! fsync, the catalog transaction and exit. No assertion depends on timing.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt as _;
use std::time::{Duration, Instant};

use crate::kit::{Rng, Source, Store, push_args, sleep_until_past};
use artifact_core::time::Timestamp;

const ITERATIONS: usize = 18;

/// The sweep and GC tests' stores: `ephemeral` packages expire a second after creation, so each
/// round waits for them on the real clock (a sweep refuses an `as_of` later than the store's).
const EPHEMERAL_1S: &str = "[retention.classes.ephemeral]\ndefault = \"1s\"\n";

/// What a kill attempt hit.
#[derive(Default, Debug)]
struct Tally {
    killed: usize,
    finished: usize,
}

impl Tally {
    fn report(&self, test: &str) {
        eprintln!(
            "{test}: {} killed mid-run, {} finished before the kill",
            self.killed, self.finished
        );
        assert!(self.killed > 0, "{test}: no run was interrupted");
    }
}

/// Spawns `args`, sleeps `delay`, SIGKILLs the process unless it has finished; records which.
fn kill_after(store: &Store, args: &[&str], delay: Duration, tally: &mut Tally) {
    let mut child = store.spawn(args);
    std::thread::sleep(delay);
    let _ = child.kill();
    let status = child.wait().unwrap();
    if status.signal() == Some(9) {
        tally.killed += 1;
    } else {
        assert!(status.success(), "{args:?} failed on its own: {status}");
        tally.finished += 1;
    }
}

/// Tallies what a kill left before the store is opened again: staging files (reclaimed by the
/// next open), and whether the catalog transaction had committed.
fn note_leftovers(
    store: &Store,
    before: &BTreeMap<String, i64>,
    leftovers: &mut BTreeMap<&'static str, usize>,
) {
    let after = store.raw_event_counts();
    let committed = after.values().sum::<i64>() > before.values().sum::<i64>();
    let staging = !store.staging_files().is_empty();
    let key = match (staging, committed) {
        (true, _) => "staging files left",
        (false, true) => "committed",
        (false, false) => "nothing committed, no staging file",
    };
    *leftovers.entry(key).or_insert(0) += 1;
}

/// How long an uninterrupted run of `args` takes.
fn timed(store: &Store, args: &[&str]) -> Duration {
    let started = Instant::now();
    store.ok(args);
    started.elapsed()
}

/// A random delay in [0, 1.25 × `span`]; every fifth is 0 (killed during start-up).
fn delay(rng: &mut Rng, span: Duration, iteration: usize) -> Duration {
    if iteration.is_multiple_of(5) {
        return Duration::ZERO;
    }
    let max = (span.as_micros() as u64 * 5 / 4).max(1);
    Duration::from_micros(rng.below(max))
}

fn in_days(days: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    Timestamp::from_unix_millis(now + days * 86_400_000)
        .unwrap()
        .to_string()
}

/// Pulls the newest live packages and a few random older ones.
fn assert_live_pull(store: &Store, live: &[(String, Source)], rng: &mut Rng, context: &str) {
    if live.is_empty() {
        return;
    }
    let mut picks = vec![live.len() - 1];
    for _ in 0..2 {
        picks.push(rng.below(live.len() as u64) as usize);
    }
    for i in picks {
        let (package, source) = &live[i];
        source.assert_pulls(store, package, context);
        let show = store.json(&["show", package]);
        assert_eq!(show["purged_seq"], serde_json::Value::Null, "{context}");
    }
}

#[test]
fn kill_during_ingest_of_a_large_file() {
    let mut rng = Rng::from_env("kill_during_ingest_of_a_large_file");
    let mut store = Store::new();
    let mut tally = Tally::default();
    let mut live: Vec<(String, Source)> = Vec::new();
    let mut span = Duration::ZERO;
    let mut leftovers: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..ITERATIONS {
        let size = (3 << 20) + rng.below(2 << 20) as usize;
        let dir = store.work().join(format!("big-{i}"));
        let source = Source::write(
            dir,
            BTreeMap::from([("big.bin".to_owned(), rng.bytes(size))]),
        );
        let file = source.dir.join("big.bin");
        let file = file.to_str().unwrap().to_owned();
        let version = i.to_string();
        let push_args = [
            "push",
            &file,
            "--name",
            "big",
            "--version",
            &version,
            "--class",
            "build-cache",
        ];
        let put_args = ["blob", "put", &file];
        let args: &[&str] = if i % 2 == 0 { &push_args } else { &put_args };
        if i == 0 {
            // Calibrate on a separate file of the same size (so the killed run is a new blob).
            let calibration = store.work().join("calibration.bin");
            std::fs::write(&calibration, rng.bytes(size)).unwrap();
            span = timed(&store, &["blob", "put", calibration.to_str().unwrap()]);
        }
        let context = format!("ingest {i} ({args:?})");
        let before = store.raw_event_counts();
        kill_after(&store, args, delay(&mut rng, span, i), &mut tally);
        note_leftovers(&store, &before, &mut leftovers);
        store.assert_consistent(&context);
        assert_live_pull(&store, &live, &mut rng, &context);

        // The same operation completes afterwards, and its bytes read back.
        if i % 2 == 0 {
            let pushed = store.json(args);
            let package = pushed["package_id"].as_str().unwrap().to_owned();
            source.assert_pulls(&store, &package, &context);
            live.push((package, source));
        } else {
            let put = store.json(args);
            let digest = put["blake3"].as_str().unwrap().to_owned();
            let out = store.work().join("got.bin");
            store.ok(&["blob", "get", &digest, "--output", out.to_str().unwrap()]);
            assert!(
                std::fs::read(&out).unwrap() == source.files["big.bin"],
                "{context}"
            );
        }
        store.assert_consistent(&format!("{context}, completed"));
    }
    eprintln!("ingest: after the kills: {leftovers:?}");
    tally.report("ingest");
}

#[test]
fn kill_during_creation_of_a_package_of_many_small_files() {
    let mut rng = Rng::from_env("kill_during_creation_of_a_package_of_many_small_files");
    let mut store = Store::new();
    let mut tally = Tally::default();
    let mut live: Vec<(String, Source)> = Vec::new();
    let mut span = Duration::ZERO;
    let mut leftovers: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..ITERATIONS {
        let files: BTreeMap<String, Vec<u8>> = (0..60)
            .map(|f| {
                let len = 256 + rng.below(4096) as usize;
                (format!("d{}/f{f}.txt", f % 4), rng.bytes(len))
            })
            .collect();
        let source = Source::write(store.work().join(format!("many-{i}")), files);
        let dir = source.dir.to_str().unwrap().to_owned();
        let version = i.to_string();
        let args = ["push", &dir, "--name", "many", "--version", &version];
        if i == 0 {
            let files: BTreeMap<String, Vec<u8>> = (0..60)
                .map(|f| (format!("f{f}"), rng.bytes(1024)))
                .collect();
            let calibration = Source::write(store.work().join("calibration"), files);
            span = timed(
                &store,
                &push_args(calibration.dir.to_str().unwrap(), "calibration", "1", &[]),
            );
        }
        let context = format!("package {i}");
        let before = store.raw_event_counts();
        kill_after(&store, &args, delay(&mut rng, span, i), &mut tally);
        note_leftovers(&store, &before, &mut leftovers);
        store.assert_consistent(&context);
        assert_live_pull(&store, &live, &mut rng, &context);
        // Either the package exists whole or not at all; pushing again completes it.
        let pushed = store.json(&args);
        let package = pushed["package_id"].as_str().unwrap().to_owned();
        source.assert_pulls(&store, &package, &context);
        live.push((package, source));
        store.assert_consistent(&format!("{context}, completed"));
    }
    eprintln!("package creation: after the kills: {leftovers:?}");
    tally.report("package creation");
}

#[test]
fn kill_during_retention_sweep() {
    let mut rng = Rng::from_env("kill_during_retention_sweep");
    let mut store = Store::new();
    store.configure(EPHEMERAL_1S);
    let mut tally = Tally::default();
    let mut live: Vec<(String, Source)> = Vec::new();
    let mut expiring = Vec::new();
    let mut span = Duration::ZERO;
    for i in 0..ITERATIONS {
        // Two that the sweep makes eligible (ephemeral, 1 s in this store), one that stays live.
        let mut latest_expiry = Timestamp::EPOCH;
        for (class, n) in [("ephemeral", 0), ("ephemeral", 1), ("build-cache", 2)] {
            let files = BTreeMap::from([(format!("{class}.bin"), rng.bytes(2048))]);
            let source = Source::write(store.work().join(format!("sweep-{i}-{n}")), files);
            let version = format!("{i}.{n}");
            let pushed = store.json(&push_args(
                source.dir.to_str().unwrap(),
                "swept",
                &version,
                &["--class", class],
            ));
            let package = pushed["package_id"].as_str().unwrap().to_owned();
            if class == "ephemeral" {
                let expires: Timestamp = pushed["expires_at"].as_str().unwrap().parse().unwrap();
                latest_expiry = latest_expiry.max(expires);
                expiring.push(package);
            } else {
                live.push((package, source));
            }
        }
        // A sweep marks what has expired by the store's clock: wait for this round's expiry.
        sleep_until_past(latest_expiry);
        let args = ["retention", "sweep"];
        if i == 0 {
            span = timed(&store, &["retention", "sweep", "--as-of", &in_days(-1)]);
        }
        let context = format!("sweep {i}");
        kill_after(&store, &args, delay(&mut rng, span, i), &mut tally);
        store.assert_consistent(&context);
        assert_live_pull(&store, &live, &mut rng, &context);
        for (package, _) in &live {
            let status = store.json(&["retention", "status", package]);
            assert_eq!(
                status["eligible_for_deletion"], false,
                "{context}: {package}"
            );
        }
        // The sweep completes: every ephemeral package is eligible, nothing else.
        store.json(&args);
        let eligible = store.json(&["ls", "--eligible", "--limit", "1000"]);
        let mut eligible: Vec<String> = eligible
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["package_id"].as_str().unwrap().to_owned())
            .collect();
        eligible.sort();
        let mut expected = expiring.clone();
        expected.sort();
        assert_eq!(eligible, expected, "{context}");
        store.assert_consistent(&format!("{context}, completed"));
    }
    tally.report("sweep");
}

#[test]
fn kill_during_gc() {
    let mut rng = Rng::from_env("kill_during_gc");
    let mut store = Store::new();
    store.configure(EPHEMERAL_1S);
    let mut tally = Tally::default();
    let mut live: Vec<(String, Source)> = Vec::new();
    let mut span = Duration::ZERO;
    let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..ITERATIONS {
        // One live package and four that become eligible, all sharing one blob; each with
        // unique blobs too.
        let shared = rng.bytes(8192);
        let mut doomed = Vec::new();
        let mut latest_expiry = Timestamp::EPOCH;
        for n in 0..5 {
            let class = if n == 0 { "build-cache" } else { "ephemeral" };
            let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for f in 0..8 {
                let len = 1024 + rng.below(2048) as usize;
                files.insert(format!("u{f}.bin"), rng.bytes(len));
            }
            files.insert("shared.bin".to_owned(), shared.clone());
            let source = Source::write(store.work().join(format!("gc-{i}-{n}")), files);
            let version = format!("{i}.{n}");
            let pushed = store.json(&push_args(
                source.dir.to_str().unwrap(),
                "collected",
                &version,
                &["--class", class],
            ));
            let package = pushed["package_id"].as_str().unwrap().to_owned();
            if n == 0 {
                live.push((package, source));
            } else {
                let expires: Timestamp = pushed["expires_at"].as_str().unwrap().parse().unwrap();
                latest_expiry = latest_expiry.max(expires);
                doomed.push((package, source));
            }
        }
        // The four ephemeral ones (1 s in this store) expire by the store's clock.
        sleep_until_past(latest_expiry);
        let swept = store.json(&["retention", "sweep"]);
        assert_eq!(swept["newly_eligible"], 4, "{swept}");
        // Blobs must be older than the grace period (1 ms).
        std::thread::sleep(Duration::from_millis(5));
        let args = ["gc", "--grace", "1ms"];
        if i == 0 {
            // Calibrate on a dry run (the same reads, no deletions).
            span = timed(&store, &["gc", "--grace", "1ms", "--dry-run"]) * 2;
        }
        let context = format!("gc {i}");
        let before = store.raw_event_counts();
        kill_after(&store, &args, delay(&mut rng, span, i), &mut tally);
        // Which phase the kill hit, from what it left in the log (before anything recovers).
        let after = store.raw_event_counts();
        let grew = |t: &str| after.get(t).unwrap_or(&0) - before.get(t).unwrap_or(&0);
        let phase = match (
            grew("v1.package.purged"),
            grew("v1.blob.deletion_started"),
            grew("v1.blob.deleted"),
        ) {
            (0, 0, 0) => "before any purge",
            (p, 0, 0) if p < 4 => "mid-purge",
            (_, 0, 0) => "purged, no deletion started",
            (_, _, 0) => "deletion started, none recorded",
            (_, _, d) if d < 32 => "some deletions recorded",
            _ => "completed",
        };
        *phases.entry(phase).or_insert(0) += 1;
        store.assert_consistent(&context);
        assert_live_pull(&store, &live, &mut rng, &context);

        // The next run finishes the purge and the deletions.
        store.json(&args);
        store.assert_consistent(&format!("{context}, completed"));
        let (newest, source) = live.last().unwrap();
        source.assert_pulls(&store, newest, &context);
        for (package, source) in &doomed {
            let show = store.json(&["show", package]);
            assert!(
                show["purged_seq"].is_u64(),
                "{context}: {package} not purged"
            );
            for (path, content) in &source.files {
                let blake3 = blake3_hex(content);
                let present = store.blob_path(&blake3).exists();
                assert_eq!(present, path == "shared.bin", "{context}: {path}");
            }
        }
        let dry = store.json(&["gc", "--grace", "1ms", "--dry-run"]);
        assert_eq!(dry["purged"], serde_json::json!([]), "{context}: {dry}");
        assert_eq!(
            dry["deleted_blobs"],
            serde_json::json!([]),
            "{context}: {dry}"
        );
    }
    eprintln!("gc: kills by phase reached: {phases:?}");
    tally.report("gc");
}

fn blake3_hex(content: &[u8]) -> String {
    artifact_core::digest::Blake3::of(content).to_hex()
}

/// The server is SIGKILLed while `push --server` uploads through resumable sessions; after
/// each kill the store (opened locally) is consistent, every earlier package still pulls, and a
/// restarted server takes the same push to completion.
#[test]
fn kill_server_during_upload() {
    let mut rng = Rng::from_env("kill_server_during_upload");
    let mut store = Store::new();
    let token = store.mint("uploader", &["writer", "reader"]);
    let remote = |store: &Store, base: &str, args: &[&str]| {
        let mut command = store.command(args);
        command
            .arg("--server")
            .arg(base)
            .env("ARTIFACTSTORE_TOKEN", &token);
        command
    };
    let mut tally = Tally::default();
    let mut live: Vec<(String, Source)> = Vec::new();
    let mut span = Duration::ZERO;
    for i in 0..10 {
        let size = (3 << 20) + rng.below(1 << 20) as usize;
        let files = BTreeMap::from([
            ("big.bin".to_owned(), rng.bytes(size)),
            ("small.txt".to_owned(), rng.bytes(300)),
        ]);
        let source = Source::write(store.work().join(format!("up-{i}")), files);
        let dir = source.dir.to_str().unwrap().to_owned();
        let version = i.to_string();
        let args = [
            "push",
            dir.as_str(),
            "--name",
            "uploaded",
            "--version",
            &version,
        ];
        let mut server = store.serve(None);
        if i == 0 {
            let calibration = Source::write(
                store.work().join("up-calibration"),
                BTreeMap::from([("big.bin".to_owned(), rng.bytes(4 << 20))]),
            );
            let started = Instant::now();
            let status = remote(
                &store,
                &server.base,
                &push_args(calibration.dir.to_str().unwrap(), "cal", "1", &[]),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
            assert!(status.success());
            span = started.elapsed();
        }
        let mut client = remote(&store, &server.base, &args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay(&mut rng, span, i));
        let client_done_first = client.try_wait().unwrap().is_some();
        server.kill();
        if client_done_first {
            tally.finished += 1;
        } else {
            tally.killed += 1;
        }
        // The client fails (or finishes) on its own once its server is gone; stop it if it is
        // still retrying after a while (its outcome is not what this test is about).
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = client.kill();
        let _ = client.wait();
        let context = format!("server killed during upload {i}");
        store.assert_consistent(&context);
        assert_live_pull(&store, &live, &mut rng, &context);

        // A restarted server takes the same push to completion.
        let server = store.serve(None);
        let output = remote(&store, &server.base, &["--json"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{context}: push after restart failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let pushed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let package = pushed["package_id"].as_str().unwrap().to_owned();
        drop(server);
        source.assert_pulls(&store, &package, &context);
        live.push((package, source));
        store.assert_consistent(&format!("{context}, completed"));
    }
    tally.report("server during upload");
}
