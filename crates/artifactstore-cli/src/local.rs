//! The embedded store on this machine: which commands open it read-only, the default actor,
//! the configuration, opening (fs or S3 blobs, checkpoint sinks), `init` and `serve`.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use artifact_core::ArtifactStore;
use artifact_core::cbor::Value;
use artifact_core::config::{Config, DEFAULT_CONFIG_TOML};
use artifact_store_fs::EmbeddedOptions;

use crate::args::{AuditCommand, BlobCommand, Cli, Command, RetentionCommand};
use crate::output::{print_json, text};

/// Whether a command only reads, so that it opens the store read-only: it then works on a
/// catalog this process cannot write (a backup, another user's store, a read-only mount) and
/// never writes as a side effect of opening. `fsck` compares the views with a replay inside a
/// rolled-back write transaction, and `verify` records events: both open read-write.
pub(crate) fn reads_only(command: &Command) -> bool {
    match command {
        Command::Pull { .. }
        | Command::Ls { .. }
        | Command::Show { .. }
        | Command::Cat { .. }
        | Command::Manifest { .. }
        | Command::Blob(BlobCommand::Get { .. })
        | Command::Retention(
            RetentionCommand::Status { .. }
            | RetentionCommand::History { proof: false, .. }
            | RetentionCommand::Explain { .. },
        )
        | Command::Events(_)
        | Command::Audit(AuditCommand::Verify { .. }) => true,
        Command::Init
        | Command::Serve { .. }
        | Command::Push(_)
        | Command::Blob(BlobCommand::Put { .. })
        | Command::Retention(
            RetentionCommand::Extend { .. }
            // Receipts may sign and store a checkpoint.
            | RetentionCommand::History { proof: true, .. }
            | RetentionCommand::Hold { .. }
            | RetentionCommand::Release { .. }
            | RetentionCommand::Sweep { .. },
        )
        | Command::Admin(_)
        | Command::Gc { .. }
        | Command::Verify { .. }
        // Checkpoints and proofs may sign and store a checkpoint; the key may be created.
        | Command::Audit(
            AuditCommand::Key
            | AuditCommand::Checkpoint
            | AuditCommand::Checkpoints { .. }
            | AuditCommand::Prove { .. }
            | AuditCommand::Consistency { .. }
            | AuditCommand::VerifyReceipt { .. },
        )
        | Command::Fsck => false,
    }
}

/// The actor of local changes without `--actor`: `local:$USER` (or `$LOGNAME`), else the OS
/// user name of the process's uid (`$USER` is unset in CI jobs and containers), else
/// `local:uid-<n>`.
pub(crate) fn default_actor() -> String {
    let from_env = |key: &str| std::env::var(key).ok().filter(|v| !v.trim().is_empty());
    match from_env("USER")
        .or_else(|| from_env("LOGNAME"))
        .or_else(os_user_name)
    {
        Some(user) => format!("local:{user}"),
        // SAFETY: getuid has no preconditions and cannot fail.
        None => format!("local:uid-{}", unsafe { libc::getuid() }),
    }
}

/// The user name of the real uid from the password database (getpwuid_r), if it has one.
fn os_user_name() -> Option<String> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut buffer = vec![0u8; 1024];
    loop {
        // SAFETY: `passwd` is plain data that getpwuid_r fills in; `buffer` outlives every
        // pointer it stores there, and its length is passed along.
        let mut passwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let code = unsafe {
            libc::getpwuid_r(
                uid,
                &mut passwd,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut found,
            )
        };
        if code == libc::ERANGE && buffer.len() < (1 << 20) {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if code != 0 || found.is_null() || passwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points at a NUL-terminated string inside `buffer`.
        let name = unsafe { std::ffi::CStr::from_ptr(passwd.pw_name) };
        return name
            .to_str()
            .ok()
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Option<Config>> {
    let mut config = match &cli.config {
        Some(path) => Some(Config::load(path)?),
        None => None,
    };
    if let Some(url) = &cli.database_url {
        let mut with_url = config
            .take()
            .map_or_else(|| Config::load_or_default(&cli.data_dir), Ok)?;
        with_url.metadata.url = Some(url.clone());
        config = Some(with_url);
    }
    Ok(config)
}

pub(crate) fn effective_config(cli: &Cli) -> anyhow::Result<Config> {
    Ok(match load_config(cli)? {
        Some(config) => config,
        None => Config::load_or_default(&cli.data_dir)?,
    })
}

/// Opens the store of `cli`'s data directory with `config` (loaded once by the caller).
pub(crate) async fn open(
    cli: &Cli,
    config: Config,
    create: bool,
    read_only: bool,
) -> anyhow::Result<ArtifactStore> {
    let mut options = EmbeddedOptions::new(&cli.data_dir)
        .with_create(create)
        .with_read_only(read_only);
    match config.blobs.backend.as_str() {
        "fs" => {}
        "s3" => {
            let s3 = artifact_store_s3::S3BlobStore::from_config(&config.blobs)?;
            // Fail fast, with the reason (credentials refused, no such bucket, endpoint
            // unreachable), rather than at the first blob operation: one list request, so
            // read-only credentials can still read. `serve` also probes a write at start-up.
            s3.check_readable().await?;
            options = options.with_blob_store(std::sync::Arc::new(s3));
        }
        other => bail!("[blobs] backend `{other}` is unknown (use `fs` or `s3`)"),
    }
    if let Some(publish) = &config.log.publish_s3 {
        let sink = artifact_store_s3::S3CheckpointSink::from_config(publish)?;
        options = options.with_checkpoint_sink(std::sync::Arc::new(sink));
    }
    Ok(options.with_config(config).open().await?)
}

pub(crate) async fn init(cli: &Cli) -> anyhow::Result<ExitCode> {
    if cli.server.is_some() {
        bail!("init creates an embedded store; it does not apply to --server");
    }
    let config_path = Config::default_path(&cli.data_dir);
    let existed = cli.data_dir.join("catalog.db").exists();
    let store = open(cli, effective_config(cli)?, true, false).await?;
    if !config_path.exists() && cli.config.is_none() {
        std::fs::write(&config_path, DEFAULT_CONFIG_TOML)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
    }
    let head = store.head().await?;
    if cli.json {
        print_json(&Value::map([
            ("data_dir", text(cli.data_dir.display().to_string())),
            ("created", Value::Bool(!existed)),
            ("head_seq", Value::Int(head.seq as i64)),
        ]))?;
    } else if existed {
        println!(
            "store already initialised at {} (head seq {})",
            cli.data_dir.display(),
            head.seq
        );
    } else {
        println!(
            "initialised an embedded store at {}",
            cli.data_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn serve(cli: &Cli, listen: Option<String>) -> anyhow::Result<ExitCode> {
    if cli.server.is_some() {
        bail!("serve runs a server on this machine's store; drop --server");
    }
    let level = std::env::var("ARTIFACTSTORE_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .try_init();
    let config = effective_config(cli)?;
    let store = open(cli, config.clone(), false, false).await?;
    // The whole backend check (for S3 also a write probe): a server must be able to store.
    store.blob_store().check().await?;
    // The verifiable log's key: a store from before issue 12 may have none yet (`init`
    // creates it); the server then serves stored checkpoints only.
    let log_signer = if config.log.key_path(&cli.data_dir).exists() {
        Some(artifact_store_fs::log_signer(
            &cli.data_dir,
            &config,
            false,
        )?)
    } else {
        tracing::warn!(
            "no log signing key (run `artifactstore init` to create one): the server makes no checkpoints"
        );
        None
    };
    let options = artifact_server::ServerOptions::from_config(&config, &cli.data_dir, log_signer)?;
    let state = artifact_server::AppState::new(store, options)
        .context("cannot prepare the upload directory")?;
    let listen = listen.unwrap_or_else(|| config.server.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    // One line on stdout so scripts and tests can find the (possibly ephemeral) port.
    println!("listening on http://{address}");
    std::io::Write::flush(&mut std::io::stdout())?;
    tracing::info!(%address, "artifactstore server started");
    artifact_server::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("artifactstore server stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
