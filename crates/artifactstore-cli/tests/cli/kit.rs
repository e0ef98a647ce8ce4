//! A store in a temp dir driven through the real `artifactstore` binary, and the consistency
//! checks the crash and maintenance tests share (SPEC §5, §6).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use serde_json::Value as Json;

/// An embedded store (`init`ed) in its own temp dir.
pub struct Store {
    pub data_dir: PathBuf,
    dir: tempfile::TempDir,
    /// Walk state of the event log: blobs recorded and not deleted, and the last seq read.
    recorded: BTreeMap<String, u64>,
    events_after: u64,
    /// `ARTIFACTSTORE_ACTOR` of every command.
    actor: &'static str,
    /// More environment of every command (e.g. S3 credentials).
    env: Vec<(String, String)>,
}

impl Store {
    pub fn new() -> Self {
        Self::with_actor("crash-bot")
    }

    /// An `init`ed store whose commands run as `actor`.
    pub fn with_actor(actor: &'static str) -> Self {
        Self::with_actor_in(actor, &std::env::temp_dir())
    }

    /// An `init`ed store whose commands run as `actor`, its directories under `parent` (e.g.
    /// a [`artifact_core::testing::Tmpfs`]).
    pub fn with_actor_in(actor: &'static str, parent: &Path) -> Self {
        let dir = tempfile::tempdir_in(parent).unwrap();
        let store = Store {
            data_dir: dir.path().join("data"),
            dir,
            recorded: BTreeMap::new(),
            events_after: 0,
            actor,
            env: Vec::new(),
        };
        store.ok(&["init"]);
        store
    }

    /// Appends `toml` to the store's `config.toml` (which `init` wrote): every later command,
    /// and a server started without a `--config` of its own, reads it.
    pub fn configure(&self, toml: &str) {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir.join("config.toml"))
            .unwrap();
        write!(file, "\n{toml}").unwrap();
    }

    /// Sets `key` to `value` in the environment of every later command.
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A scratch directory next to the store.
    pub fn work(&self) -> &Path {
        self.dir.path()
    }

    /// The binary on this store's data dir with `args`, the environment cleared of settings.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = clean_command(&self.data_dir, self.actor);
        command
            .args(args)
            .env_remove("ARTIFACTSTORE_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        ok(args, self.run(args))
    }

    pub fn json(&self, args: &[&str]) -> Json {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        parse_json(args, &self.ok(&with_json))
    }

    /// Runs a command expected to fail; returns (exit code, stdout, stderr).
    pub fn fails(&self, args: &[&str]) -> (Option<i32>, Vec<u8>, String) {
        let output = self.run(args);
        assert!(
            !output.status.success(),
            "artifactstore {args:?} should have failed"
        );
        (
            output.status.code(),
            output.stdout,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs a command that must fail with a one-line reason (`artifactstore: …`, or clap's
    /// `error: …` for a usage error); returns its stderr.
    pub fn refused(&self, args: &[&str]) -> String {
        let (_, _, stderr) = self.fails(args);
        assert!(
            stderr.starts_with("artifactstore: ") || stderr.contains("error:"),
            "one-line reason expected, got {stderr:?}"
        );
        stderr
    }

    /// Runs a command that must exit with `code`; returns its stderr.
    pub fn exits(&self, code: i32, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "artifactstore {args:?} should exit {code}"
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Runs a command that must succeed; returns its stdout as text.
    pub fn ok_text(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok(args)).unwrap()
    }

    /// Writes `content` to `name` in the scratch directory; returns its path.
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.work().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Pushes the directory `src` as NAME@VERSION; returns the push's JSON.
    pub fn push_dir(&self, src: &Path, name: &str, version: &str) -> Json {
        self.json(&push_args(src.to_str().unwrap(), name, version, &[]))
    }

    /// Pushes `files` (package path → bytes) as NAME@VERSION; returns the push's JSON.
    pub fn push_files(&self, name: &str, version: &str, files: &[(&str, &[u8])]) -> Json {
        let src = self.work().join(format!("src-{name}-{version}"));
        std::fs::create_dir_all(&src).unwrap();
        for (path, bytes) in files {
            let path = src.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        self.push_dir(&src, name, version)
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    pub fn head_seq(&self) -> u64 {
        self.json(&["audit", "verify"])["head_seq"]
            .as_u64()
            .unwrap()
    }

    /// The fs backend's file for a blob (docs/DURABILITY.md).
    pub fn blob_path(&self, blake3: &str) -> PathBuf {
        let hex = blake3.trim_start_matches("blake3:");
        self.data_dir.join("blobs/blake3").join(&hex[..2]).join(hex)
    }

    /// Files in the fs backend's staging directory.
    pub fn staging_files(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.data_dir.join("blobs/tmp")) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Reads the events appended since the last call and folds them: a `v1.blob.stored` records
    /// a blob, a `v1.blob.deleted` forgets it.
    fn walk_events(&mut self) {
        loop {
            let after = self.events_after.to_string();
            let page = self.json(&["events", "--after", &after, "--limit", "1000"]);
            let page = page.as_array().unwrap().clone();
            let Some(last) = page.last() else {
                return;
            };
            self.events_after = last["seq"].as_u64().unwrap();
            for event in &page {
                let blake3 = event["data"]["blake3"].as_str().unwrap_or_default();
                match event["type"].as_str().unwrap() {
                    "v1.blob.stored" => {
                        self.recorded
                            .insert(blake3.to_owned(), event["data"]["size"].as_u64().unwrap());
                    }
                    "v1.blob.deleted" => {
                        self.recorded.remove(blake3);
                    }
                    _ => {}
                }
            }
        }
    }

    /// The checks every state must pass (run after a kill and after every completed
    /// operation): fsck is clean, every blob a `v1.blob.stored` names that no later
    /// `v1.blob.deleted` removes has its bytes with the right size, and no staging file is left
    /// once the store has been opened again.
    pub fn assert_consistent(&mut self, context: &str) {
        // Opening the store read-write (fsck does; read-only commands such as `ls` write
        // nothing, not even this) reclaims staging files of dead writers and finishes an
        // interrupted GC's deletions.
        self.json(&["fsck"]);
        assert_eq!(
            self.staging_files(),
            Vec::<PathBuf>::new(),
            "{context}: staging files left after the store was opened again"
        );
        let output = self.run(&["--json", "fsck"]);
        let fsck: Json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{context}: fsck printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        assert!(
            output.status.success() && fsck["ok"] == Json::Bool(true),
            "{context}: fsck is not clean: {fsck} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(fsck["findings"], Json::Array(vec![]), "{context}");
        self.walk_events();
        let mut missing = BTreeSet::new();
        for (blake3, size) in &self.recorded {
            match std::fs::metadata(self.blob_path(blake3)) {
                Ok(meta) if meta.len() == *size => {}
                _ => {
                    missing.insert(blake3.clone());
                }
            }
        }
        assert!(
            missing.is_empty(),
            "{context}: events name blobs whose bytes are gone: {missing:?}"
        );
    }

    /// Events per type, read straight from `catalog.db` without opening the store (so nothing
    /// is recovered or reclaimed first): what a killed process left behind.
    pub fn raw_event_counts(&self) -> BTreeMap<String, i64> {
        self.open_catalog("?mode=ro", async |pool| {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT type, COUNT(*) FROM events GROUP BY type")
                    .fetch_all(pool)
                    .await
                    .unwrap();
            rows.into_iter().collect()
        })
    }

    /// Runs `f` on the store's `catalog.db` opened directly, as an insider with the file (or
    /// the database's credentials) would, no artifactstore code in between; then closes it.
    pub fn insider<T>(&self, f: impl AsyncFnOnce(&sqlx::AnyPool) -> T) -> T {
        self.open_catalog("", f)
    }

    fn open_catalog<T>(&self, query: &str, f: impl AsyncFnOnce(&sqlx::AnyPool) -> T) -> T {
        let db = self.data_dir.join("catalog.db");
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&format!("sqlite://{}{query}", db.display()))
                .await
                .unwrap();
            let out = f(&pool).await;
            pool.close().await;
            out
        })
    }
}

/// `artifactstore serve` on a loopback port; SIGKILLed and reaped when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    // Kept open so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Spawns `command` (an `artifactstore … serve --listen 127.0.0.1:0`) and waits for its
    /// `listening on URL` line; its stderr goes to `log` (appended) if given, else nowhere.
    pub fn start(mut command: Command, log: Option<&Path>) -> Server {
        let stderr = match log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap(),
            ),
            None => Stdio::null(),
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let log = log
                    .and_then(|path| std::fs::read_to_string(path).ok())
                    .unwrap_or_default();
                panic!("serve printed {line:?}; log: {log}")
            })
            .to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Server {
            child,
            base,
            _stdout: stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILLs the server and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Peak resident set size (`VmHWM`) of the server process, in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM in /proc/<pid>/status");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("VmHWM value");
        kib * 1024
    }

    /// Sends SIGTERM and waits (at most `bound`) for the exit status.
    pub fn terminate(mut self, bound: std::time::Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM");
        let deadline = std::time::Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit after SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Store {
    /// Starts `serve --listen 127.0.0.1:0`, with `config` (TOML) as its configuration if given;
    /// its stderr is appended to [`Store::server_log`].
    pub fn serve(&self, config: Option<&str>) -> Server {
        let mut args = Vec::new();
        let path = self.work().join("server.toml");
        if let Some(config) = config {
            std::fs::write(&path, config).unwrap();
            args.extend(["--config", path.to_str().unwrap()]);
        }
        args.extend(["serve", "--listen", "127.0.0.1:0"]);
        Server::start(self.command(&args), Some(&self.work().join("server.log")))
    }

    /// What the servers this store started wrote to stderr.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.work().join("server.log")).unwrap_or_default()
    }
}

/// The binary on `data_dir` as `actor`, its environment cleared of every setting a developer's
/// shell may carry (server, token, database, log filter, AWS profile and endpoint).
pub fn clean_command(data_dir: &Path, actor: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_artifactstore"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("ARTIFACTSTORE_SERVER")
        .env_remove("ARTIFACTSTORE_TOKEN")
        .env_remove("ARTIFACTSTORE_DATABASE_URL")
        .env_remove("ARTIFACTSTORE_LOG")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT")
        .env_remove("AWS_ENDPOINT_URL")
        .env("ARTIFACTSTORE_ACTOR", actor);
    command
}

/// The stdout of a command that must have succeeded.
pub fn ok(args: &[&str], output: Output) -> Vec<u8> {
    assert!(
        output.status.success(),
        "artifactstore {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// `stdout` (of `artifactstore --json ARGS`) parsed as JSON.
pub fn parse_json(args: &[&str], stdout: &[u8]) -> Json {
    serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(stdout)
        )
    })
}

/// A package's source: a directory of files kept in memory for comparison.
pub struct Source {
    pub dir: PathBuf,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Source {
    /// Writes `files` under `dir`.
    pub fn write(dir: PathBuf, files: BTreeMap<String, Vec<u8>>) -> Self {
        for (path, content) in &files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        Source { dir, files }
    }

    /// Pulls `package` into a fresh directory and checks every file is byte-identical.
    pub fn assert_pulls(&self, store: &Store, package: &str, context: &str) {
        let dest = tempfile::tempdir_in(store.work()).unwrap();
        let dest_dir = dest.path().join("out");
        let output = store.run(&["pull", package, dest_dir.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "{context}: pull {package} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        for (path, content) in &self.files {
            let pulled = std::fs::read(dest_dir.join(path)).unwrap();
            if pulled != *content {
                let same_as: Vec<&String> = self
                    .files
                    .iter()
                    .filter(|(_, c)| **c == pulled)
                    .map(|(p, _)| p)
                    .collect();
                let on_disk = std::fs::read(self.dir.join(path)).ok();
                panic!(
                    "{context}: {package} {path} differs after pull: {} bytes pulled, {} expected, source on disk matches: {:?}, pulled equals source files {same_as:?}; manifest: {}",
                    pulled.len(),
                    content.len(),
                    on_disk.map(|d| d == *content),
                    String::from_utf8_lossy(&store.ok(&["manifest", package])),
                );
            }
        }
    }
}

/// Sleeps until the system clock (the store's clock) is past `t`: a sweep marks only what has
/// expired by the store's clock (it refuses an `as_of` later than it), so tests on the real clock
/// use short retention classes and wait.
pub fn sleep_until_past(t: artifact_core::time::Timestamp) {
    use artifact_core::time::Clock as _;
    loop {
        let now = artifact_core::time::SystemClock.now();
        if now > t {
            return;
        }
        let wait = (t.unix_millis() - now.unix_millis()).max(0) as u64 + 20;
        std::thread::sleep(std::time::Duration::from_millis(wait));
    }
}

/// A small seeded generator (xorshift64*), so a failing run can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `CRASH_SEED` if set, else from the clock; prints the seed.
    pub fn from_env(test: &str) -> Self {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: seed {seed} (rerun with CRASH_SEED={seed})");
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// Where a CLI contract test runs: an embedded store (`--data-dir`), or the same kind of store
/// behind a running `artifactstore serve` driven with `--server URL --token T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Server,
}

/// The principal of the contract target's admin token, and the actor of its embedded commands:
/// the same name on both sides, so the same assertions on actors hold for both.
pub const CONTRACT_ACTOR: &str = "ci-bot";

/// The store a contract test drives (see [`cli_contract_tests!`]): commands run either on the
/// embedded store or through a server over it, with an admin token. Both modes mint that token
/// (locally, before any server starts), so their event logs have the same shape.
pub struct Target {
    pub mode: Mode,
    store: Store,
    server: Option<Server>,
    token: String,
}

impl Target {
    /// A fresh store (and, in [`Mode::Server`], a server over it).
    pub fn new(mode: Mode) -> Self {
        let store = Store::with_actor(CONTRACT_ACTOR);
        let token = token_of(&store.json(&token_args(CONTRACT_ACTOR, &["admin"])));
        let mut target = Target {
            mode,
            store,
            server: None,
            token,
        };
        target.start();
        target
    }

    fn start(&mut self) {
        if self.mode == Mode::Server {
            self.server = Some(self.store.serve(None));
        }
    }

    /// A scratch directory next to the store.
    pub fn work(&self) -> &Path {
        self.store.work()
    }

    /// Appends `toml` to the store's `config.toml`; a server is restarted to read it.
    pub fn configure(&mut self, toml: &str) {
        self.store.configure(toml);
        if let Some(mut server) = self.server.take() {
            server.kill();
            self.start();
        }
    }

    /// Runs `artifactstore ARGS` against the target.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut command = self.store.command(&[]);
        if let Some(server) = &self.server {
            command
                .arg("--server")
                .arg(&server.base)
                .arg("--token")
                .arg(&self.token);
        }
        command.args(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{:?}: artifactstore {args:?} failed: {}",
            self.mode,
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// Runs `artifactstore --json ARGS`, which must succeed, and parses its stdout.
    pub fn json(&self, args: &[&str]) -> Json {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let stdout = self.ok(&with_json);
        serde_json::from_slice(&stdout).unwrap_or_else(|e| {
            panic!(
                "{:?}: {args:?}: not JSON ({e}): {}",
                self.mode,
                String::from_utf8_lossy(&stdout)
            )
        })
    }

    /// Runs a command that must fail with a one-line reason; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            !output.status.success(),
            "{:?}: artifactstore {args:?} should have failed",
            self.mode
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            stderr.starts_with("artifactstore: ") || stderr.contains("error:"),
            "{:?}: one-line reason expected, got {stderr:?}",
            self.mode
        );
        stderr
    }

    /// The event log's head, from `audit verify`.
    pub fn head_seq(&self) -> u64 {
        self.json(&["audit", "verify"])["head_seq"]
            .as_u64()
            .unwrap()
    }
}

/// Declares CLI contract tests: each listed `fn name(target: &mut Target)` (in the invoking
/// module) becomes two tests, `embedded::name` on an embedded store and `server::name` through
/// a running `artifactstore serve`, with the same assertions. Like `backend_tests!` in
/// artifact-core.
macro_rules! cli_contract_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[test]
                fn $name() {
                    super::$name(&mut $crate::kit::Target::new($crate::kit::Mode::Embedded));
                }
            )*
        }
        mod server {
            $(
                #[test]
                fn $name() {
                    super::$name(&mut $crate::kit::Target::new($crate::kit::Mode::Server));
                }
            )*
        }
    };
}
pub(crate) use cli_contract_tests;

/// A sample directory `guide-board-run` under `root`: nested paths, an empty file, and a
/// 5 MiB (+17 bytes) `trace.bin`, so several chunks and the pipelined hashing path are exercised.
pub fn sample_tree(root: &Path) -> PathBuf {
    tree(root, "guide-board-run", "<html>guide board</html>", 0)
}

/// A sample tree like [`sample_tree`] named `name`, whose `report/index.html` and
/// `trace.bin` differ with `seed`.
pub fn sample_tree_seeded(root: &Path, name: &str, seed: u32) -> PathBuf {
    tree(
        root,
        name,
        &format!("<html>guide board {seed}</html>"),
        seed,
    )
}

fn tree(root: &Path, name: &str, html: &str, seed: u32) -> PathBuf {
    let src = root.join(name);
    std::fs::create_dir_all(src.join("report/assets")).unwrap();
    std::fs::write(src.join("report/index.html"), html).unwrap();
    std::fs::write(src.join("report/assets/style.css"), b"body{}").unwrap();
    std::fs::write(src.join("empty.log"), b"").unwrap();
    std::fs::write(src.join("trace.bin"), pattern((5 << 20) + 17, seed)).unwrap();
    src
}

/// `len` deterministic bytes that differ with `seed` (a multiplicative hash of the offset).
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

/// The first word `tool PATH` prints (`b3sum`, `sha256sum`): a digest from an independent tool.
pub fn tool_digest(tool: &str, path: &Path) -> String {
    let output = Command::new(tool)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("{tool} must be installed (scripts/test.sh installs it): {e}"));
    assert!(output.status.success(), "{tool} failed");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// The retention history of a package pushed, extended, held, released and swept: the pilot
/// scenario of SPEC §8.
pub const PILOT_HISTORY: [&str; 5] = [
    "v1.retention.default_applied",
    "v1.retention.extended",
    "v1.retention.hold_applied",
    "v1.retention.hold_released",
    "v1.retention.deletion_eligible",
];

/// The `type` of each event in a JSON array of events (`events`, `retention history`).
pub fn event_types(events: &Json) -> Vec<&str> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

/// The arguments of `push SRC --name NAME --version VERSION` followed by `more` (`--class`,
/// `--label`, …).
pub fn push_args<'a>(
    src: &'a str,
    name: &'a str,
    version: &'a str,
    more: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["push", src, "--name", name, "--version", version];
    args.extend_from_slice(more);
    args
}

/// The arguments of `admin token create --principal PRINCIPAL --role R…`.
pub fn token_args<'a>(principal: &'a str, roles: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["admin", "token", "create", "--principal", principal];
    for role in roles {
        args.extend(["--role", role]);
    }
    args
}

impl Store {
    /// Mints a token for `principal` with `roles` on this store; returns the secret.
    pub fn mint(&self, principal: &str, roles: &[&str]) -> String {
        token_of(&self.json(&token_args(principal, roles)))
    }
}

/// The secret a `--json admin token create` printed.
pub fn token_of(created: &Json) -> String {
    created["token"].as_str().unwrap().to_owned()
}

/// The keys `show --json` (and `retention status --json`) print for a package.
pub const SHOW_KEYS: [&str; 7] = [
    "package_id",
    "name",
    "version",
    "retention_class",
    "current_expires_at",
    "active_holds",
    "eligible_for_deletion",
];

/// SPEC §8 on the pilot package `package`: extended by a second, held (sweeps after expiry,
/// on the store's clock and as of after it, leave it alone), released, swept → eligible exactly
/// once; history as JCS and canonical CBOR agrees with the event log. `run` executes one
/// `--json` command (local or remote) and `raw` one without. Returns the retention history.
pub fn pilot_retention(
    package: &str,
    run: &dyn Fn(&[&str]) -> Json,
    raw: &dyn Fn(&[&str]) -> Vec<u8>,
) -> Vec<Json> {
    use artifact_core::time::{Period, Timestamp};
    let status = run(&["retention", "status", package]);
    let expires: Timestamp = status["current_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let until = expires.checked_add(Period::Millis(1_000)).unwrap();
    let extended = run(&[
        "retention",
        "extend",
        package,
        "--until",
        &until.to_string(),
        "--reason",
        "audit asked for 90 more days",
    ]);
    assert_eq!(extended["current_expires_at"], until.to_string().as_str());
    let hold = run(&["retention", "hold", package, "--reason", "Q1 legal review"]);
    let hold_id = hold["hold_id"].as_str().unwrap().to_owned();
    // Expired by the store's clock, but held.
    let after_expiry = until.checked_add(Period::Millis(1)).unwrap();
    sleep_until_past(after_expiry);
    let after_expiry = after_expiry.to_string();
    for sweep in [
        &["retention", "sweep"][..],
        &["retention", "sweep", "--as-of", &after_expiry],
    ] {
        let swept = run(sweep);
        assert_eq!(swept["newly_eligible"], 0, "a held package must not go");
    }
    let status = run(&["retention", "status", package]);
    assert_eq!(status["eligible_for_deletion"], Json::Bool(false));
    assert_eq!(status["active_holds"], 1);
    run(&[
        "retention",
        "release",
        package,
        &hold_id,
        "--reason",
        "review closed",
    ]);
    let swept = run(&["retention", "sweep", "--as-of", &after_expiry]);
    assert_eq!(swept["newly_eligible"], 1);
    let swept = run(&["retention", "sweep"]);
    assert_eq!(swept["newly_eligible"], 0, "a second sweep emits nothing");
    let status = run(&["retention", "status", package]);
    assert_eq!(status["eligible_for_deletion"], Json::Bool(true));
    assert_eq!(status["active_holds"], 0);

    let history = run(&["retention", "history", package]);
    assert_eq!(event_types(&history), PILOT_HISTORY);
    let history = history.as_array().unwrap().clone();
    let events = run(&["events", "--package", package]);
    let from_log: Vec<&Json> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("v1.retention."))
        .collect();
    assert_eq!(from_log, history.iter().collect::<Vec<_>>());
    let seqs: Vec<i64> = history.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let cbor = raw(&["retention", "history", package, "--cbor"]);
    let decoded = artifact_core::cbor::decode(&cbor).unwrap();
    assert_eq!(
        artifact_core::jcs::to_jcs(&decoded),
        String::from_utf8(raw(&["--json", "retention", "history", package]))
            .unwrap()
            .trim_end()
    );
    assert_eq!(history[1]["data"]["reason"], "audit asked for 90 more days");
    assert_eq!(history[2]["data"]["reason"], "Q1 legal review");
    history
}
