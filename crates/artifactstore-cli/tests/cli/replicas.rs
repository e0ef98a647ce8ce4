//! Multi-replica operation (SPEC §3 "safe when several server replicas sweep at once", §4.2,
//! §6): two real `artifactstore serve` processes share one PostgreSQL catalog
//! (`--database-url`) and one fs blob directory (`[blobs] path` in a shared config file), each
//! with its own data and upload directory. Clients drive both over HTTP at once: uploads of the
//! same and of different blobs, identical package creations racing on both replicas,
//! extensions, holds applied on one replica and released on the other, and sweeps
//! (`POST /retention/sweep?as_of=`) from both.
//!
//! Afterwards: no seq gap and the same log seen from both replicas; `GET /audit/verify` ok on
//! both with the same head; each package and blob recorded once; no package marked eligible
//! twice without a flip back in between, while it held a hold, or before its expiry; no expiry
//! moved earlier; the sweeps' reported counts equal the `deletion_eligible` events.
//!
//! The PostgreSQL is `ARTIFACTSTORE_TEST_POSTGRES_URL` or a throwaway cluster
//! (`artifact_core::testing_postgres`); a missing PostgreSQL fails this test.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use artifact_core::digest::{BlobInfo, PackageId};
use artifact_core::event::{Event, types};
use artifact_core::manifest::{FileEntry, Manifest};
use artifact_core::time::{Clock as _, Period, SystemClock, Timestamp};
use serde_json::Value as Json;

use crate::kit::{ok, parse_json, token_args, token_of};

const PACKAGES: usize = 8;
const HOLD_ROUNDS: usize = 4;
const EXTEND_ROUNDS: usize = 4;
const SWEEPS_PER_SWEEPER: usize = 10;

/// The config both replicas share: one blob directory (`shared-blobs` under `dir`), a small
/// pool, an hourly sweep and a 1-second `ephemeral` class. Returns its path.
fn shared_config(dir: &Path) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[blobs]\npath = {:?}\n\n[metadata]\nmax_connections = 4\n\n[retention]\nsweep_interval = \"1h\"\n\n[retention.classes.ephemeral]\ndefault = \"1s\"\n",
            dir.join("shared-blobs").display().to_string()
        ),
    )
    .unwrap();
    config
}

/// An admin token (principal `ops`), minted through the CLI straight into the shared catalog
/// (this also migrates it).
fn mint_admin_token(database_url: &str, config: &Path, data_dir: &Path) -> String {
    let args = token_args("ops", &["admin"]);
    let minted = command(database_url, config, data_dir)
        .arg("--json")
        .args(&args)
        .output()
        .unwrap();
    token_of(&parse_json(&args, &ok(&args, minted)))
}

fn command(database_url: &str, config: &Path, data_dir: &Path) -> Command {
    let mut command = crate::kit::clean_command(data_dir, "replica-operator");
    command
        .arg("--config")
        .arg(config)
        .arg("--database-url")
        .arg(database_url)
        .env_remove("ARTIFACTSTORE_CONFIG");
    command
}

/// A running `artifactstore serve`; killed and reaped on drop.
struct Replica {
    child: Child,
    _stdout: std::io::BufReader<std::process::ChildStdout>,
    base: String,
    log: PathBuf,
}

impl Replica {
    fn start(database_url: &str, config: &Path, data_dir: &Path) -> Self {
        let log = data_dir.with_extension("log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut child = command(database_url, config, data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let Some(base) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve printed {line:?}; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Self {
            base: base.to_owned(),
            child,
            _stdout: stdout,
            log,
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- {} ---\n{}",
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// An HTTP client for one replica.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Json) {
        let response = request
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        let json = serde_json::from_slice(&body).unwrap_or(Json::Null);
        (status, json)
    }

    async fn get(&self, path: &str) -> Json {
        let (status, json) = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await;
        assert_eq!(status, 200, "GET {path}: {json}");
        json
    }

    async fn post(&self, path: &str, body: Json) -> (u16, Json) {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    async fn put_blob(&self, content: &[u8]) -> u16 {
        let info = BlobInfo::of(content);
        let (status, json) = self
            .send(
                self.http
                    .put(format!("{}/blobs/{}", self.base, info.blake3))
                    .body(content.to_vec()),
            )
            .await;
        assert!(status == 201 || status == 200, "PUT blob: {status} {json}");
        status
    }

    async fn create_package(&self, manifest: &Manifest) -> (u16, Json) {
        let body = artifact_core::jcs::to_jcs(&manifest.to_value());
        self.send(
            self.http
                .post(format!("{}/packages", self.base))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    async fn expiry(&self, package: PackageId) -> Timestamp {
        let status = self.get(&format!("/packages/{package}/retention")).await;
        status["current_expires_at"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("an expiring package")
    }

    /// A sweep as of the server's clock (a later `as_of` would be refused).
    async fn sweep(&self) -> usize {
        let (status, json) = self.post("/retention/sweep", Json::Null).await;
        assert_eq!(status, 200, "sweep: {json}");
        json["newly_eligible"].as_u64().unwrap() as usize
    }

    async fn all_events(&self) -> Vec<Event> {
        let mut events: Vec<Event> = Vec::new();
        loop {
            let after = events.last().map_or(0, |e| e.seq);
            let page = self
                .get(&format!("/events?after={after}&limit=10000"))
                .await;
            let page = page.as_array().unwrap();
            if page.is_empty() {
                return events;
            }
            for event in page {
                let value = artifact_core::jcs::from_json(event.to_string().as_bytes()).unwrap();
                events.push(Event::from_value(&value).unwrap());
            }
        }
    }
}

fn content_of(package: usize) -> Vec<u8> {
    format!("replica test package {package}\n")
        .repeat(100 + package)
        .into_bytes()
}

const SHARED: &[u8] = b"one blob every package shares, uploaded through both replicas at once\n";

fn manifest_of(package: usize) -> Manifest {
    let entry = |path: &str, content: &[u8]| FileEntry::of(path, content, Some("text/plain"));
    let mut manifest = Manifest {
        name: format!("replicated-{package}"),
        version: "1".to_owned(),
        retention_class: "ephemeral".to_owned(),
        files: vec![
            entry("own.txt", &content_of(package)),
            entry("shared.txt", SHARED),
        ],
        labels: BTreeMap::new(),
    };
    manifest.sort_files();
    manifest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_replicas_share_one_catalog_and_one_blob_store() {
    let database_url = artifact_core::testing_postgres::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let config = shared_config(dir.path());
    let data_a = dir.path().join("replica-a");
    let data_b = dir.path().join("replica-b");

    // A token, minted through the CLI straight into the shared catalog (this also migrates it).
    let token = mint_admin_token(&database_url, &config, &data_a);

    let replica_a = Replica::start(&database_url, &config, &data_a);
    let replica_b = Replica::start(&database_url, &config, &data_b);
    let http = reqwest::Client::new();
    let a = Client {
        http: http.clone(),
        base: replica_a.base.clone(),
        token: token.clone(),
    };
    let b = Client {
        http,
        base: replica_b.base.clone(),
        token,
    };
    let replicas = [a.clone(), b.clone()];

    // Phase 1: every blob through both replicas at once, then every package created on both
    // at once (one creates, the other answers 200 with the same id).
    let mut tasks = tokio::task::JoinSet::new();
    for package in 0..PACKAGES {
        for client in &replicas {
            let client = client.clone();
            tasks.spawn(async move {
                client.put_blob(&content_of(package)).await;
                client.put_blob(SHARED).await;
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("an upload task panicked");
    }
    let mut creates = tokio::task::JoinSet::new();
    for package in 0..PACKAGES {
        for client in &replicas {
            let client = client.clone();
            creates.spawn(async move {
                let manifest = manifest_of(package);
                let (status, json) = client.create_package(&manifest).await;
                (package, status, json)
            });
        }
    }
    let mut statuses: BTreeMap<usize, Vec<u16>> = BTreeMap::new();
    let mut package_ids = vec![None; PACKAGES];
    while let Some(joined) = creates.join_next().await {
        let (package, status, json) = joined.expect("a create task panicked");
        assert!(status == 201 || status == 200, "create: {status} {json}");
        let id: PackageId = json["package_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(id, manifest_of(package).package_id().unwrap());
        package_ids[package] = Some(id);
        statuses.entry(package).or_default().push(status);
    }
    for (package, mut codes) in statuses {
        codes.sort();
        assert_eq!(
            codes,
            vec![200, 201],
            "package {package}: one create, one idempotent"
        );
    }
    let packages: Vec<PackageId> = package_ids.into_iter().map(Option::unwrap).collect();

    // Phase 2: sweepers on both replicas race holders (apply on one replica, release on the
    // other) and extenders. The class lasts 1 s: once it has passed (by the real clock, the
    // store's), whatever is unheld is due; extensions by 1 ms keep the expiry in the past, so
    // each flips the package back and a later sweep may mark it again.
    let mut latest_expiry = None;
    for package in &packages {
        latest_expiry = latest_expiry.max(Some(a.expiry(*package).await));
    }
    let latest_expiry = latest_expiry.expect("packages");
    while SystemClock.now() <= latest_expiry {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    let reported = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for n in 0..4 {
        let client = replicas[n % 2].clone();
        let reported = reported.clone();
        tasks.spawn(async move {
            for _ in 0..SWEEPS_PER_SWEEPER {
                let marked = client.sweep().await;
                reported.fetch_add(marked, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    for (n, half) in packages.chunks(PACKAGES / 2).enumerate() {
        let (apply_on, release_on) = (replicas[n % 2].clone(), replicas[(n + 1) % 2].clone());
        let half = half.to_vec();
        tasks.spawn(async move {
            for round in 0..HOLD_ROUNDS {
                for package in &half {
                    let (status, json) = apply_on
                        .post(
                            &format!("/packages/{package}/retention/holds"),
                            serde_json::json!({ "reason": format!("review {round}") }),
                        )
                        .await;
                    assert_eq!(status, 201, "hold: {json}");
                    let hold_id = json["hold_id"].as_str().unwrap().to_owned();
                    let (status, json) = release_on
                        .post(
                            &format!("/packages/{package}/retention/holds/{hold_id}/release"),
                            serde_json::json!({ "reason": "cleared" }),
                        )
                        .await;
                    assert_eq!(status, 201, "release: {json}");
                }
            }
        });
    }
    for client in &replicas {
        let client = client.clone();
        let packages = packages.clone();
        tasks.spawn(async move {
            for _ in 0..EXTEND_ROUNDS {
                for package in &packages {
                    let until = client
                        .expiry(*package)
                        .await
                        .checked_add(Period::Millis(1))
                        .unwrap();
                    let (status, json) = client
                        .post(
                            &format!("/packages/{package}/retention/extensions"),
                            serde_json::json!({
                                "new_expires_at": until.to_string(),
                                "reason": "one more millisecond",
                            }),
                        )
                        .await;
                    // Losing the race to the other extender is a legitimate refusal.
                    assert!(
                        status == 201
                            || (status == 400 && json.to_string().contains("strictly later")),
                        "extend: {status} {json}"
                    );
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a task panicked");
    }
    // Every hold was released: one last sweep marks whatever is left.
    reported.fetch_add(b.sweep().await, std::sync::atomic::Ordering::SeqCst);

    // The same gap-free log from both replicas.
    let events = a.all_events().await;
    assert_eq!(events, b.all_events().await);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "seq gap"
    );
    let verified_a = a.get("/audit/verify").await;
    let verified_b = b.get("/audit/verify").await;
    assert_eq!(verified_a["ok"], Json::Bool(true), "{verified_a}");
    assert_eq!(verified_a, verified_b);
    assert_eq!(verified_a["head_seq"].as_u64(), Some(events.len() as u64));

    // Each blob and each package recorded once.
    let stored: Vec<&str> = events
        .iter()
        .filter(|e| e.event_type == types::BLOB_STORED)
        .filter_map(|e| e.data_text("blake3"))
        .collect();
    let distinct: BTreeSet<&str> = stored.iter().copied().collect();
    assert_eq!(stored.len(), distinct.len(), "a blob was recorded twice");
    // Own files + the shared one + every manifest.
    assert_eq!(distinct.len(), 2 * PACKAGES + 1);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type == types::PACKAGE_CREATED)
            .count(),
        PACKAGES
    );

    let mut marks = 0;
    for package in &packages {
        let package_marks = artifact_core::testing::check_package_history(*package, &events);
        assert!(package_marks >= 1, "{package} was never marked eligible");
        marks += package_marks;
        let status_a = a.get(&format!("/packages/{package}/retention")).await;
        let status_b = b.get(&format!("/packages/{package}/retention")).await;
        assert_eq!(status_a, status_b);
        assert_eq!(status_a["eligible_for_deletion"], Json::Bool(true));
        assert_eq!(status_a["active_holds"], Json::from(0));
    }
    let eligible_events = events
        .iter()
        .filter(|e| e.event_type == types::RETENTION_DELETION_ELIGIBLE)
        .count();
    assert_eq!(marks, eligible_events);
    assert_eq!(
        reported.load(std::sync::atomic::Ordering::SeqCst),
        eligible_events,
        "sweeps reported a different number of packages than they marked"
    );
    eprintln!(
        "two replicas: {} events, {} deletion_eligible marks over {PACKAGES} packages, head {}",
        events.len(),
        eligible_events,
        verified_a["head_hash"]
    );
    drop((replica_a, replica_b));
}

/// A token revoked through one replica is refused by the other on its very next request (each
/// request reads the token from the shared catalog; nothing is cached per replica).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_token_revoked_on_one_replica_is_refused_by_the_other_at_once() {
    let database_url = artifact_core::testing_postgres::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let config = shared_config(dir.path());
    let data_a = dir.path().join("replica-a");
    let data_b = dir.path().join("replica-b");
    let admin_token = mint_admin_token(&database_url, &config, &data_a);
    let replica_a = Replica::start(&database_url, &config, &data_a);
    let replica_b = Replica::start(&database_url, &config, &data_b);
    let http = reqwest::Client::new();
    let admin_a = Client {
        http: http.clone(),
        base: replica_a.base.clone(),
        token: admin_token.clone(),
    };
    let admin_b = Client {
        http: http.clone(),
        base: replica_b.base.clone(),
        token: admin_token,
    };

    // A writer's token, minted through A, works on B at once.
    let (status, minted) = admin_a
        .post(
            "/admin/tokens",
            serde_json::json!({"principal": "ci", "roles": ["writer"]}),
        )
        .await;
    assert_eq!(status, 201, "{minted}");
    let writer_b = Client {
        http: http.clone(),
        base: replica_b.base.clone(),
        token: minted["token"].as_str().unwrap().to_owned(),
    };
    let token_id = minted["token_id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        writer_b.get("/events/head").await;
    }
    let listed = admin_b.get("/admin/tokens").await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["token_id"] == token_id.as_str() && t["revoked"] == false),
        "{listed}"
    );

    // Revoked through A: B's next request with it is 401, saying why.
    let (status, revoked) = admin_a
        .post(
            &format!("/admin/tokens/{token_id}/revoke"),
            serde_json::json!({"reason": "the pipeline was decommissioned"}),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    let (status, problem) = writer_b
        .send(http.get(format!("{}/events/head", replica_b.base)))
        .await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("revoked"),
        "{problem}"
    );
    let writer_a = Client {
        base: replica_a.base.clone(),
        ..writer_b.clone()
    };
    let (status, _) = writer_a
        .send(http.get(format!("{}/events/head", replica_a.base)))
        .await;
    assert_eq!(status, 401);

    // Revoking it again through B is a conflict and appends nothing.
    let head = admin_b.get("/events/head").await;
    let (status, problem) = admin_b
        .post(
            &format!("/admin/tokens/{token_id}/revoke"),
            serde_json::json!({"reason": "again"}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(admin_a.get("/events/head").await, head);
}
