//! Throwaway PostgreSQL for tests and benchmarks (cargo feature `testing`).
//!
//! Tests call [`fresh_database`]: it returns the URL of a new, empty database
//! (`CREATE DATABASE t_<pid>_<n>`) on
//!
//! - the server named by `ARTIFACTSTORE_TEST_POSTGRES_URL` (a server URL such as
//!   `postgres://postgres@127.0.0.1:5432/postgres`; its database is only used to issue
//!   `CREATE DATABASE`), if that variable is set, or else
//! - one throwaway cluster per test process, started on first use from the PostgreSQL server
//!   binaries (`ARTIFACTSTORE_TEST_POSTGRES_BIN`, else the newest `/usr/lib/postgresql/*/bin`):
//!   `initdb -A trust --no-sync` into a temporary directory, then `postgres` spawned directly
//!   as a child (no `pg_ctl`, no daemonising) on a free loopback port with `fsync=off`.
//!
//! When neither is available, [`fresh_database`] panics: a missing PostgreSQL fails the test
//! run instead of skipping the PostgreSQL half of the conformance suite. Test databases are
//! not dropped: on a server named by [`URL_ENV`] they accumulate, so point it at a disposable
//! server.
//!
//! PostgreSQL refuses to run as root. When the test process is root, the cluster runs as the
//! `postgres` user (its temporary directory is chowned to it).
//!
//! No server outlives the test process: the shared cluster is stopped (SIGQUIT, waited for,
//! directory removed) by an `atexit` handler when the process exits normally, and the server is
//! started with `PR_SET_PDEATHSIG` so the kernel signals it if the process dies any other way
//! (the signal is tied to the spawning *thread*, so a dedicated thread that lives as long as the
//! cluster spawns it). A [`Cluster`] started by hand (benchmarks) is stopped on drop.
//!
//! ```no_run
//! # async fn demo() {
//! let url = artifact_core::testing_postgres::fresh_database().await;
//! // open a store on `url` …
//! # }
//! ```

use std::fs;
use std::io;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection as _;

/// Environment variable naming an existing PostgreSQL server to create test databases in.
pub const URL_ENV: &str = "ARTIFACTSTORE_TEST_POSTGRES_URL";
/// Environment variable naming the directory of `initdb` and `postgres`.
pub const BIN_ENV: &str = "ARTIFACTSTORE_TEST_POSTGRES_BIN";

/// How to start a throwaway cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// `fsync` (tests: off, since the data is thrown away; benchmarks: on, for a fair
    /// comparison with SQLite's `synchronous = FULL`).
    pub fsync: bool,
    /// The server's `max_connections`.
    pub max_connections: u32,
    /// Directory of `initdb` and `postgres`; `None` = [`BIN_ENV`], else the newest
    /// `/usr/lib/postgresql/*/bin`.
    pub bin_dir: Option<PathBuf>,
    /// Where the cluster's temporary directory goes; `None` = the system temp dir. When the
    /// server runs as `postgres` (we are root), the `postgres` user must be able to reach it.
    pub parent_dir: Option<PathBuf>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            fsync: false,
            max_connections: 300,
            bin_dir: None,
            parent_dir: None,
        }
    }
}

impl ClusterOptions {
    /// Sets `fsync`.
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// Puts the cluster's directory under `parent_dir`.
    pub fn with_parent_dir(mut self, parent_dir: impl Into<PathBuf>) -> Self {
        self.parent_dir = Some(parent_dir.into());
        self
    }
}

/// A running throwaway cluster; stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct Cluster {
    server_url: String,
    pid: i32,
    version: String,
    dir: Option<tempfile::TempDir>,
    /// Dropping it lets the thread that spawned the server (and whose death would signal it)
    /// finish, once the server has been reaped.
    keeper: Option<std::sync::mpsc::Sender<()>>,
}

impl Cluster {
    /// Runs `initdb` and starts `postgres`, blocking until it accepts connections.
    pub fn start(options: &ClusterOptions) -> io::Result<Self> {
        let bin_dir = match &options.bin_dir {
            Some(dir) => dir.clone(),
            None => find_bin_dir().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "no PostgreSQL server binaries: set {BIN_ENV}, install the `postgresql` \
                         package (scripts/provision-postgres.sh), or point {URL_ENV} at a server"
                    ),
                )
            })?,
        };
        let run_as = RunAs::detect()?;
        let mut builder = tempfile::Builder::new();
        builder.prefix("artifactstore-pg.");
        let dir = match &options.parent_dir {
            Some(parent) => builder.tempdir_in(parent)?,
            None => builder.tempdir()?,
        };
        run_as.own(dir.path())?;
        let data = dir.path().join("data");
        let initdb = Command::new(bin_dir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"])
            .arg("--no-sync")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .with_credentials(run_as)
            .output()?;
        if !initdb.status.success() {
            return Err(io::Error::other(format!(
                "initdb failed ({}): {}",
                initdb.status,
                String::from_utf8_lossy(&initdb.stderr).trim()
            )));
        }
        let version = fs::read_to_string(data.join("PG_VERSION"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let mut last_error = None;
        // A free port can be taken between our probe and the server's bind: retry a few times.
        for _attempt in 0..5 {
            let port = free_port()?;
            match spawn_server(&bin_dir, dir.path(), port, options, run_as) {
                Ok((pid, keeper)) => {
                    return Ok(Self {
                        server_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                        pid,
                        version,
                        dir: Some(dir),
                        keeper: Some(keeper),
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("postgres did not start")))
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`: the cluster's maintenance database.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The server's major version (`PG_VERSION`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Leaks the cluster: it runs until the process exits, then the `atexit` handler stops it.
    fn into_process_lifetime(mut self) -> String {
        SHARED_PID.store(self.pid, Ordering::SeqCst);
        if let Some(dir) = self.dir.take() {
            let _ = SHARED_DIR.set(dir.keep());
        }
        // SAFETY: registers a plain `extern "C" fn` without captured state.
        unsafe {
            libc::atexit(stop_shared_cluster);
        }
        // The keeper thread must outlive the server: never tell it to stop.
        std::mem::forget(self.keeper.take());
        let url = self.server_url.clone();
        self.pid = 0;
        url
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.pid > 0 {
            stop_server(self.pid);
        }
        drop(self.keeper.take());
    }
}

/// The credentials the server runs with: our own, or `postgres`'s when we are root.
#[derive(Clone, Copy, Debug)]
struct RunAs {
    ids: Option<(libc::uid_t, libc::gid_t)>,
}

impl RunAs {
    fn detect() -> io::Result<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(Self { ids: None });
        }
        let name = c"postgres";
        // SAFETY: `name` is NUL-terminated; the returned entry is read before any other
        // passwd call on this thread.
        let entry = unsafe { libc::getpwnam(name.as_ptr()) };
        if entry.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "running as root, PostgreSQL must run as the `postgres` user, which does not \
                 exist (install the `postgresql` package)",
            ));
        }
        // SAFETY: non-null pointer from getpwnam.
        let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
        Ok(Self {
            ids: Some((uid, gid)),
        })
    }

    fn own(self, path: &Path) -> io::Result<()> {
        match self.ids {
            Some((uid, gid)) => chown(path, Some(uid), Some(gid)),
            None => Ok(()),
        }
    }
}

trait WithCredentials {
    /// Drops to `run_as` in the child (before exec), and asks the kernel to send SIGQUIT to
    /// the child when the spawning thread dies.
    fn with_credentials(&mut self, run_as: RunAs) -> &mut Self;
}

impl WithCredentials for Command {
    fn with_credentials(&mut self, run_as: RunAs) -> &mut Self {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let ids = run_as.ids;
        // SAFETY: the closure only makes async-signal-safe system calls. The credential change
        // happens here, before PR_SET_PDEATHSIG, because the kernel clears the parent-death
        // signal whenever the effective uid or gid changes.
        unsafe {
            self.pre_exec(move || {
                if let Some((uid, gid)) = ids
                    && (libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0)
                {
                    return Err(io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent died before prctl took effect: do not start an orphan.
                if libc::getppid() != parent {
                    return Err(io::Error::other("the test process is gone"));
                }
                Ok(())
            })
        }
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Spawns `postgres` from a dedicated thread (the parent-death signal follows the spawning
/// thread) and waits until `postmaster.pid` says it is ready.
fn spawn_server(
    bin_dir: &Path,
    dir: &Path,
    port: u16,
    options: &ClusterOptions,
    run_as: RunAs,
) -> io::Result<(i32, std::sync::mpsc::Sender<()>)> {
    let log_path = dir.join(format!("server-{port}.log"));
    let log = fs::File::create(&log_path)?;
    run_as.own(&log_path)?;
    let mut command = Command::new(bin_dir.join("postgres"));
    command
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-k")
        .arg(dir)
        .arg("-p")
        .arg(port.to_string())
        .args(["-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!(
            "fsync={}",
            if options.fsync { "on" } else { "off" }
        ))
        .arg("-c")
        .arg(format!("max_connections={}", options.max_connections))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .with_credentials(run_as);
    if !options.fsync {
        command.args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
    }
    let (started_tx, started_rx) = std::sync::mpsc::channel::<io::Result<i32>>();
    let (keeper_tx, keeper_rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(format!("postgres-{port}"))
        .spawn(move || {
            let spawned = command.spawn().map(|child| child.id() as i32);
            let ok = spawned.is_ok();
            let _ = started_tx.send(spawned);
            if ok {
                // Lives until the cluster is stopped (or forever, for the shared one).
                let _ = keeper_rx.recv();
            }
        })?;
    let pid = started_rx
        .recv()
        .map_err(|_| io::Error::other("the postgres keeper thread died"))??;
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid_file = dir.join("data").join("postmaster.pid");
    loop {
        let mut status = 0;
        // SAFETY: pid is our child; WNOHANG never blocks.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            return Err(io::Error::other(format!(
                "postgres exited during startup (status {status}): {}",
                fs::read_to_string(&log_path).unwrap_or_default().trim()
            )));
        }
        let ready = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.lines().nth(7).map(|line| line.trim() == "ready"))
            .unwrap_or(false);
        if ready {
            return Ok((pid, keeper_tx));
        }
        if Instant::now() > deadline {
            stop_server(pid);
            return Err(io::Error::other(format!(
                "postgres did not become ready in 60 s: {}",
                fs::read_to_string(&log_path).unwrap_or_default().trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Immediate shutdown (SIGQUIT: the postmaster stops its children and exits), reaped; SIGKILL
/// if it takes more than 10 s.
fn stop_server(pid: i32) {
    // SAFETY: signals and waits for our own child.
    unsafe {
        libc::kill(pid, libc::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = 0;
        loop {
            let reaped = libc::waitpid(pid, &mut status, libc::WNOHANG);
            if reaped == pid || reaped < 0 {
                return;
            }
            if Instant::now() > deadline {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

static SHARED_PID: AtomicI32 = AtomicI32::new(0);
static SHARED_DIR: OnceLock<PathBuf> = OnceLock::new();
static SHARED_URL: OnceLock<String> = OnceLock::new();
static NEXT_DATABASE: AtomicU64 = AtomicU64::new(1);

extern "C" fn stop_shared_cluster() {
    let pid = SHARED_PID.swap(0, Ordering::SeqCst);
    if pid > 0 {
        stop_server(pid);
    }
    if let Some(dir) = SHARED_DIR.get() {
        let _ = fs::remove_dir_all(dir);
    }
}

/// The server test databases are created in: [`URL_ENV`], else this process's throwaway
/// cluster, started on first call. Panics (failing the test) if neither is available.
pub fn server_url() -> &'static str {
    SHARED_URL.get_or_init(|| {
        if let Ok(url) = std::env::var(URL_ENV)
            && !url.trim().is_empty()
        {
            return url.trim().to_owned();
        }
        match Cluster::start(&ClusterOptions::default()) {
            Ok(cluster) => cluster.into_process_lifetime(),
            Err(error) => panic!(
                "PostgreSQL is required for the PostgreSQL half of the metadata conformance \
                 suite and could not be started: {error}"
            ),
        }
    })
}

/// `server_url` with its database replaced by `database`.
pub fn with_database(server_url: &str, database: &str) -> String {
    let (scheme, rest) = server_url
        .split_once("://")
        .unwrap_or(("postgres", server_url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{scheme}://{authority}/{database}{query}")
}

/// Creates an empty database `name` on `server_url` and returns its URL.
pub async fn create_database(server_url: &str, name: &str) -> Result<String, sqlx::Error> {
    let mut admin = sqlx::postgres::PgConnection::connect(server_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(with_database(server_url, name))
}

/// A new, empty database (`t_<pid>_<n>`) on [`server_url`]; returns its URL. Panics if
/// PostgreSQL is unavailable, so that CI cannot silently skip it.
pub async fn fresh_database() -> String {
    let server = server_url();
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );
    match create_database(server, &name).await {
        Ok(url) => url,
        Err(error) => panic!(
            "cannot create test database {name} on {}: {error}",
            crate::catalog::redact_url(server)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "t_1"),
            "postgres://u:p@h:5432/t_1"
        );
        assert_eq!(
            with_database("postgres://u@h:1/postgres?sslmode=disable", "t_2"),
            "postgres://u@h:1/t_2?sslmode=disable"
        );
        assert_eq!(with_database("postgresql://h", "t_3"), "postgresql://h/t_3");
    }
}
