//! The second stage: open the store (embedded) or a client (`--server`) and carry out a parsed
//! command. Every command works the same on both targets: the local path calls the library, the
//! remote path calls the HTTP API over the same library; both produce the same values, printed
//! by one set of functions.

use artifact_core::paging::{DEFAULT_EVENT_LIMIT, MAX_LIST_LIMIT};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use artifact_core::auth::Role;
use artifact_core::catalog::{EventQuery, PackageFilter};
use artifact_core::cbor::{self, Value};
use artifact_core::config::{Config, DEFAULT_CONFIG_TOML};
use artifact_core::digest::{AnyDigest, BlobInfo};
use artifact_core::event::Event;
use artifact_core::manifest::{FileEntry, Manifest};
use artifact_core::results::{
    self, AuditResult, ExplainResult, FsckResult, GcResult, RefusalResult, RetentionStatusResult,
    SweepResult, TokenMintedResult, VerifyResult,
};
use artifact_core::time::Timestamp;
use artifact_core::{ArtifactStore, PackageRef};
use artifact_store_fs::EmbeddedOptions;
use futures_util::{StreamExt as _, TryStreamExt as _};
use reqwest::Method;
use tokio::io::AsyncWriteExt as _;

use crate::args::{
    AdminCommand, AuditCommand, BlobCommand, Cli, Command, EventsArgs, PushArgs, RetentionCommand,
    TokenCommand,
};
use crate::files;
use crate::output::{self, print_json, text};
use crate::remote::{Remote, encode_path, encode_segment};

/// Where commands go.
pub(crate) enum Target {
    Local { store: ArtifactStore, actor: String },
    Remote(Remote),
}

/// Runs one command.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Init => return init(&cli).await,
        Command::Audit(AuditCommand::VerifyReceipt { file, key }) => {
            return crate::tlog::verify_receipt(file, key, cli.json);
        }
        Command::Serve { listen } => {
            let listen = listen.clone();
            return serve(&cli, listen).await;
        }
        _ => {}
    }
    let target = match &cli.server {
        Some(server) => Target::Remote(Remote::new(server, cli.token.clone())?),
        None => Target::Local {
            store: open(&cli, false, reads_only(&cli.command)).await?,
            actor: cli.actor.clone().unwrap_or_else(default_actor),
        },
    };
    let json = cli.json;
    // GC's grace: the flag, else [gc] grace of the local configuration (a server applies its own
    // default when asked remotely without one).
    let default_grace = match &target {
        Target::Local { .. } => effective_config(&cli)?.gc.grace,
        Target::Remote(_) => artifact_core::config::DEFAULT_GC_GRACE.to_owned(),
    };
    let log_config = match &target {
        Target::Local { .. } => Some((cli.data_dir.clone(), effective_config(&cli)?)),
        Target::Remote(_) => None,
    };
    match cli.command {
        // Handled above.
        Command::Init | Command::Serve { .. } => {}
        Command::Push(args) => push(&target, args, json).await?,
        Command::Pull {
            package,
            dest,
            force,
        } => pull(&target, &package, &dest, force, json).await?,
        Command::Ls {
            name,
            class,
            eligible,
            limit,
        } => ls(&target, name, class, eligible, limit, json).await?,
        Command::Show { package } => {
            let value = package_value(&target, &package).await?;
            if json {
                print_json(&value)?;
            } else {
                output::print_package(&value);
            }
        }
        Command::Cat { package, path } => cat(&target, &package, &path).await?,
        Command::Manifest { package, cbor } => {
            let (value, bytes) = manifest(&target, &package).await?;
            if cbor {
                output::print_bytes(&bytes)?;
            } else {
                print_json(&value)?;
            }
        }
        Command::Blob(BlobCommand::Put { file }) => blob_put(&target, &file, json).await?,
        Command::Blob(BlobCommand::Get { digest, output }) => {
            blob_get(&target, &digest, output.as_deref()).await?
        }
        Command::Retention(RetentionCommand::History {
            package,
            proof: true,
            ..
        }) => {
            let log = log_config.as_ref().map(|(d, c)| (d.as_path(), c));
            crate::tlog::history_receipts(&target, log, &package).await?
        }
        Command::Retention(command) => retention(&target, command, json).await?,
        Command::Events(args) => events(&target, args, json).await?,
        Command::Audit(AuditCommand::Verify {
            checkpoint: None,
            key: None,
            published: false,
        }) => return audit_verify(&target, json).await,
        Command::Audit(command) => {
            let (Target::Local { store, .. }, Some((data_dir, config))) = (&target, &log_config)
            else {
                bail!(
                    "the verifiable-log audit commands work on the embedded store only (not yet over --server)"
                );
            };
            return crate::tlog::audit(store, data_dir, config, command, json).await;
        }
        Command::Admin(AdminCommand::RebuildViews) => {
            let value = match &target {
                Target::Local { store, .. } => {
                    let replayed = store.rebuild_views().await?;
                    Value::map([("events_replayed", Value::Int(replayed as i64))])
                }
                Target::Remote(remote) => remote.post_empty("/admin/rebuild-views").await?,
            };
            if json {
                print_json(&value)?;
            } else {
                println!(
                    "rebuilt every view from {} events",
                    output::member(&value, "events_replayed")
                );
            }
        }
        Command::Admin(AdminCommand::RebuildTree) => {
            let Target::Local { store, .. } = &target else {
                bail!("admin rebuild-tree runs on this machine's store; drop --server");
            };
            let leaves = store.rebuild_tree().await?;
            if json {
                print_json(&Value::map([("leaves", Value::Int(leaves as i64))]))?;
            } else {
                println!("rebuilt the merkle tree over {leaves} events");
            }
        }
        Command::Gc { grace, dry_run } => {
            let grace = grace.unwrap_or(default_grace);
            return gc(&target, &grace, dry_run, json).await;
        }
        Command::Verify {
            sample,
            max_bytes_per_sec,
        } => return verify(&target, sample, max_bytes_per_sec, json).await,
        Command::Fsck => return fsck(&target, json).await,
        Command::Admin(AdminCommand::Token(command)) => token(&target, command, json).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `admin token create|list|revoke`, locally or over `--server`.
async fn token(target: &Target, command: TokenCommand, json: bool) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            principal,
            roles,
            expires,
        } => {
            let roles = roles
                .iter()
                .map(|r| r.parse::<Role>())
                .collect::<Result<Vec<_>, _>>()?;
            let expires_at = expires.as_deref().map(parse_time).transpose()?;
            let minted: TokenMintedResult = match target {
                Target::Local { store, actor } => {
                    let mut secret = [0u8; 32];
                    getrandom::fill(&mut secret)
                        .map_err(|e| anyhow!("no randomness from the operating system: {e}"))?;
                    TokenMintedResult::from(
                        &store
                            .mint_token(actor, &principal, &roles, expires_at, &secret)
                            .await?,
                    )
                }
                Target::Remote(remote) => {
                    remote
                        .post_value_result(
                            "/admin/tokens",
                            &Value::map([
                                ("principal", text(&principal)),
                                (
                                    "roles",
                                    Value::Array(roles.iter().map(|r| text(r.as_str())).collect()),
                                ),
                                (
                                    "expires_at",
                                    expires_at.map_or(Value::Null, |t| text(t.to_string())),
                                ),
                            ]),
                        )
                        .await?
                }
            };
            if json {
                print_json(&results::encode(&minted)?)?;
            } else {
                println!("{}", minted.token);
                let expiry = match expires_at {
                    Some(t) => format!(", expires {t}"),
                    None => String::new(),
                };
                eprintln!(
                    "token {} for `{principal}` created{expiry}; it is shown only this once (only its hash is stored)",
                    minted.token_id
                );
            }
        }
        TokenCommand::List => {
            let value = match target {
                Target::Local { store, .. } => Value::Array(
                    store
                        .list_tokens()
                        .await?
                        .iter()
                        .map(|t| t.to_value())
                        .collect(),
                ),
                Target::Remote(remote) => remote.get_value("/admin/tokens").await?,
            };
            if json {
                print_json(&value)?;
            } else {
                output::print_tokens(&value);
            }
        }
        TokenCommand::Revoke { token_id, reason } => {
            let value = match target {
                Target::Local { store, actor } => store
                    .revoke_token(actor, &token_id, &reason)
                    .await?
                    .to_value(),
                Target::Remote(remote) => {
                    remote
                        .post_value(
                            &format!("/admin/tokens/{}/revoke", encode_segment(&token_id)),
                            &Value::map([("reason", text(&reason))]),
                        )
                        .await?
                }
            };
            if json {
                print_json(&value)?;
            } else {
                println!(
                    "revoked token {} of `{}`",
                    output::member(&value, "token_id"),
                    output::member(&value, "principal")
                );
            }
        }
    }
    Ok(())
}

/// Whether a command only reads, so that it opens the store read-only: it then works on a
/// catalog this process cannot write (a backup, another user's store, a read-only mount) and
/// never writes as a side effect of opening. `fsck` compares the views with a replay inside a
/// rolled-back write transaction, and `verify` records events: both open read-write.
fn reads_only(command: &Command) -> bool {
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
fn default_actor() -> String {
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

fn effective_config(cli: &Cli) -> anyhow::Result<Config> {
    Ok(match load_config(cli)? {
        Some(config) => config,
        None => Config::load_or_default(&cli.data_dir)?,
    })
}

async fn open(cli: &Cli, create: bool, read_only: bool) -> anyhow::Result<ArtifactStore> {
    let config = effective_config(cli)?;
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

async fn init(cli: &Cli) -> anyhow::Result<ExitCode> {
    if cli.server.is_some() {
        bail!("init creates an embedded store; it does not apply to --server");
    }
    let config_path = Config::default_path(&cli.data_dir);
    let existed = cli.data_dir.join("catalog.db").exists();
    let store = open(cli, true, false).await?;
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

async fn serve(cli: &Cli, listen: Option<String>) -> anyhow::Result<ExitCode> {
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
    let store = open(cli, false, false).await?;
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

/// Streams a local file into the target as a blob (not yet recorded locally; recorded remotely).
/// Files `push` sends at the same time.
const PUSH_CONCURRENCY: usize = 8;

async fn send_file(target: &Target, path: &Path, label: &str) -> anyhow::Result<BlobInfo> {
    let total = tokio::fs::metadata(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let bar = output::progress(total, label.to_owned());
    let info = match target {
        Target::Local { store, .. } => {
            let file = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?;
            store.write_blob(bar.wrap_async_read(file), &[]).await?
        }
        Target::Remote(remote) => remote.upload_file(path, &bar).await?,
    };
    bar.finish_and_clear();
    Ok(info)
}

async fn push(target: &Target, args: PushArgs, json: bool) -> anyhow::Result<()> {
    // Validate everything cheap before moving any bytes.
    artifact_core::manifest::validate_name(&args.name)?;
    artifact_core::manifest::validate_version(&args.version)?;
    if let Target::Local { store, .. } = target {
        store.classes().period(&args.class)?;
    }
    let files = artifact_store_fs::walk::package_files(&args.paths)?;

    // Several files in flight: small files are bound by fsync (or request) latency, which
    // concurrent writers share instead of paying one after another. Results keep file order.
    let infos: Vec<BlobInfo> = futures_util::stream::iter(&files)
        .map(|(package_path, source)| send_file(target, source, package_path))
        .buffered(PUSH_CONCURRENCY)
        .try_collect()
        .await?;
    let entries = files
        .iter()
        .zip(&infos)
        .map(|((package_path, _), info)| FileEntry {
            path: package_path.clone(),
            size: info.size,
            blake3: info.blake3,
            sha256: info.sha256,
            media_type: Some(artifact_core::manifest::guess_media_type(package_path).to_owned()),
        })
        .collect();
    let manifest = Manifest {
        name: args.name,
        version: args.version,
        retention_class: args.class,
        files: entries,
        labels: args.labels.into_iter().collect(),
    };
    let (package, created) = match target {
        Target::Local { store, actor } => {
            // One transaction records every blob (bytes are already durable) and the package.
            let created = store
                .create_package_with_blobs(actor, &manifest, &infos)
                .await?;
            (
                created.package.to_value(&created.retention),
                created.created,
            )
        }
        Target::Remote(remote) => {
            let response = remote
                .send(
                    remote
                        .request(Method::POST, "/packages")
                        .header("content-type", "application/cbor")
                        .body(manifest.canonical_bytes()?),
                )
                .await?;
            let created = response.status() == reqwest::StatusCode::CREATED;
            (
                artifact_core::jcs::from_json(&response.bytes().await?)?,
                created,
            )
        }
    };
    if json {
        print_json(&Value::map([
            ("package_id", text(output::member(&package, "package_id"))),
            ("name", text(&manifest.name)),
            ("version", text(&manifest.version)),
            ("retention_class", text(&manifest.retention_class)),
            (
                "expires_at",
                package
                    .as_map()
                    .and_then(|m| m.get("current_expires_at"))
                    .cloned()
                    .unwrap_or(Value::Null),
            ),
            ("created", Value::Bool(created)),
            ("file_count", Value::Int(manifest.files.len() as i64)),
            (
                "total_size",
                Value::Int(manifest.files.iter().map(|f| f.size as i64).sum()),
            ),
        ]))?;
    } else {
        println!(
            "{} {}@{}",
            if created {
                "created"
            } else {
                "already exists (identical manifest):"
            },
            manifest.name,
            manifest.version
        );
        println!("  package_id  {}", output::member(&package, "package_id"));
        println!(
            "  class       {} (expires {})",
            manifest.retention_class,
            output::expiry_of(&package, "current_expires_at")
        );
        println!(
            "  files       {} ({})",
            manifest.files.len(),
            output::size(manifest.files.iter().map(|f| f.size).sum())
        );
    }
    Ok(())
}

pub(crate) fn package_path(package: &str) -> anyhow::Result<String> {
    // Validate locally for a precise error, then address it on the server as given.
    let _: PackageRef = package.parse()?;
    Ok(format!("/packages/{}", encode_segment(package)))
}

async fn package_value(target: &Target, package: &str) -> anyhow::Result<Value> {
    match target {
        Target::Local { store, .. } => {
            let record = store.package(&package.parse()?).await?;
            let retention = store
                .retention_status(&PackageRef::Id(record.package_id))
                .await?;
            Ok(record.to_value(&retention))
        }
        Target::Remote(remote) => remote.get_value(&package_path(package)?).await,
    }
}

/// The manifest (as a value) and its canonical CBOR bytes, checked against each other.
async fn manifest(target: &Target, package: &str) -> anyhow::Result<(Value, Vec<u8>)> {
    match target {
        Target::Local { store, .. } => {
            let (manifest, bytes) = store.manifest(&package.parse()?).await?;
            Ok((manifest.to_value(), bytes))
        }
        Target::Remote(remote) => {
            let bytes = remote
                .get_bytes(
                    &format!("{}/manifest", package_path(package)?),
                    "application/cbor",
                )
                .await?;
            let manifest = Manifest::from_canonical_bytes(&bytes)?;
            if let Ok(PackageRef::Id(id)) = package.parse::<PackageRef>()
                && manifest.package_id()? != id
            {
                bail!("the server sent a manifest that does not hash to {id}");
            }
            Ok((manifest.to_value(), bytes))
        }
    }
}

async fn pull(
    target: &Target,
    package: &str,
    dest: &Path,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    if let Target::Local { store, .. } = target {
        // Before writing anything: a purged package's files may be partly shared with live
        // packages, so reading them one by one would write some before failing. (Over HTTP the
        // first file request is refused with 410 before anything is written.)
        store.live_package(&package.parse()?).await?;
    }
    let (value, _) = manifest(target, package).await?;
    let manifest = Manifest::from_value(&value)?;
    // Every target checked before anything is written.
    check_pull_targets(dest, &manifest, force)?;
    tokio::fs::create_dir_all(dest)
        .await
        .with_context(|| format!("cannot create {}", dest.display()))?;
    let root = files::Dir::open(dest).with_context(|| format!("cannot open {}", dest.display()))?;
    let staging = PullStaging::create(&root, &manifest)?;
    let written = async {
        // 1. Every file into the private staging directory, verified; nothing under DEST yet.
        let mut total = 0u64;
        for (index, file) in manifest.files.iter().enumerate() {
            let out = staging
                .dir
                .create_new(&index.to_string())
                .with_context(|| {
                    format!(
                        "cannot create a temp file in {}",
                        staging.dir.path().display()
                    )
                })?;
            let mut out = tokio::fs::File::from_std(out);
            let bar = output::progress(file.size, file.path.clone());
            // A corrupt blob fails here, before the file appears under its name.
            let copied = copy_blob(target, package, file, &mut out, &bar).await;
            bar.finish_and_clear();
            copied.with_context(|| file.path.clone())?;
            out.flush()
                .await
                .with_context(|| format!("cannot write {}", file.path))?;
            let size = out
                .metadata()
                .await
                .with_context(|| format!("cannot write {}", file.path))?
                .len();
            if size != file.size {
                bail!(
                    "{}: wrote {size} bytes, the manifest says {}",
                    file.path,
                    file.size
                );
            }
            total += file.size;
        }
        // 2. Into place.
        install_pulled(&root, &staging, &manifest, force)?;
        Ok::<_, anyhow::Error>(total)
    }
    .await;
    staging.remove(manifest.files.len());
    let total = written?;
    if json {
        print_json(&Value::map([
            ("package_id", text(manifest.package_id()?.to_string())),
            ("dest", text(dest.display().to_string())),
            ("file_count", Value::Int(manifest.files.len() as i64)),
            ("total_size", Value::Int(total as i64)),
        ]))?;
    } else {
        println!(
            "wrote {} file(s) ({}) of {}@{} under {}",
            manifest.files.len(),
            output::size(total),
            manifest.name,
            manifest.version,
            dest.display()
        );
    }
    Ok(())
}

/// Refuses, before anything is written, a pull that would follow a link inside DEST, put a file
/// where a directory is (or the reverse), or (without `--force`) replace an existing file or
/// link (a dangling link too).
fn check_pull_targets(dest: &Path, manifest: &Manifest, force: bool) -> anyhow::Result<()> {
    let lookup = |path: &Path| match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta.file_type())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
    };
    if lookup(dest)?.is_none() {
        return Ok(());
    }
    if !dest.is_dir() {
        bail!("{} is not a directory", dest.display());
    }
    // Directory prefix → whether it exists (as a real directory).
    let mut dirs: BTreeMap<&str, bool> = BTreeMap::new();
    let mut existing = Vec::new();
    'files: for file in &manifest.files {
        let mut end = 0;
        while let Some(slash) = file.path[end..].find('/') {
            end += slash;
            let prefix = &file.path[..end];
            end += 1;
            let exists = match dirs.get(prefix) {
                Some(exists) => *exists,
                None => {
                    let path = dest.join(prefix);
                    let exists = match lookup(&path)? {
                        None => false,
                        Some(kind) if kind.is_dir() => true,
                        Some(kind) if kind.is_symlink() => bail!(
                            "{} is a symbolic link; pull never follows links inside the destination \
                             (remove it or pull elsewhere)",
                            path.display()
                        ),
                        Some(_) => bail!(
                            "{} is in the way: the package has files under {prefix}/",
                            path.display()
                        ),
                    };
                    dirs.insert(prefix, exists);
                    exists
                }
            };
            if !exists {
                continue 'files;
            }
        }
        let path = dest.join(&file.path);
        match lookup(&path)? {
            None => {}
            Some(kind) if kind.is_dir() => bail!(
                "{} is a directory; the package has a file there",
                path.display()
            ),
            Some(_) if force => {}
            Some(_) => existing.push(file.path.as_str()),
        }
    }
    if let Some(first) = existing.first() {
        bail!(
            "{} file(s) already exist under {} (first: {first}); use --force to overwrite",
            existing.len(),
            dest.display(),
        );
    }
    Ok(())
}

/// The private directory a pull stages its files in: `DEST/.artifactstore-pull-<12 hex>`,
/// created exclusively (mode 0700) at DEST's top level, so renames from it stay on one
/// filesystem and no temp name can collide with a package file or be planted in advance.
/// Files in it are named by their index in the manifest.
struct PullStaging<'a> {
    root: &'a files::Dir,
    name: String,
    dir: files::Dir,
}

impl<'a> PullStaging<'a> {
    fn create(root: &'a files::Dir, manifest: &Manifest) -> anyhow::Result<Self> {
        let top_level: std::collections::BTreeSet<&str> = manifest
            .files
            .iter()
            .map(|f| f.path.split('/').next().unwrap_or_default())
            .collect();
        loop {
            let name = format!(".artifactstore-pull-{}", files::random_hex(12)?);
            if top_level.contains(name.as_str()) {
                continue;
            }
            match root.mkdir(&name, 0o700) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => bail!(
                    "cannot create a staging directory in {}: {e}",
                    root.path().display()
                ),
            }
            let dir = root
                .subdir(&name)
                .with_context(|| format!("cannot open {}", root.path().join(&name).display()))?;
            return Ok(Self { root, name, dir });
        }
    }

    /// Removes whatever is left of the staging files and the directory itself.
    fn remove(self, count: usize) {
        for index in 0..count {
            let _ = self.dir.unlink(&index.to_string());
        }
        let _ = self.root.rmdir(&self.name);
    }
}

/// Renames every staged file into place, creating directories one component at a time without
/// following links. Without `--force` nothing is replaced (an entry that appeared since the
/// check is an error), and on failure the files and directories this pull created are removed
/// again, so DEST is as before; with `--force` files already moved into place are kept.
fn install_pulled(
    root: &files::Dir,
    staging: &PullStaging<'_>,
    manifest: &Manifest,
    force: bool,
) -> anyhow::Result<()> {
    // Opened directories by prefix ("" = DEST), and what this pull created, in order.
    let mut dirs: BTreeMap<String, files::Dir> = BTreeMap::new();
    let mut created_dirs: Vec<String> = Vec::new();
    let mut installed: Vec<(String, String)> = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for (index, file) in manifest.files.iter().enumerate() {
            let (parent, name) = file.path.rsplit_once('/').unwrap_or(("", &file.path));
            let mut prefix = String::new();
            for segment in parent.split('/').filter(|s| !s.is_empty()) {
                let child = if prefix.is_empty() {
                    segment.to_owned()
                } else {
                    format!("{prefix}/{segment}")
                };
                if !dirs.contains_key(&child) {
                    let holder = dirs.get(&prefix).unwrap_or(root);
                    let shown = holder.path().join(segment);
                    match holder.mkdir(segment, 0o777) {
                        Ok(()) => created_dirs.push(child.clone()),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => bail!("cannot create {}: {e}", shown.display()),
                    }
                    let opened =
                        holder
                            .subdir(segment)
                            .map_err(|e| match holder.kind(segment) {
                                Ok(Some(files::EntryKind::Symlink)) => anyhow!(
                                    "{} is a symbolic link; pull never follows links inside the \
                                 destination",
                                    shown.display()
                                ),
                                _ => anyhow!("cannot open {}: {e}", shown.display()),
                            })?;
                    dirs.insert(child.clone(), opened);
                }
                prefix = child;
            }
            let holder = dirs.get(parent).unwrap_or(root);
            let shown = holder.path().join(name);
            staging
                .dir
                .rename(&index.to_string(), holder, name, force)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => anyhow!(
                        "{} appeared while pulling; use --force to overwrite",
                        shown.display()
                    ),
                    _ => anyhow!("cannot write {}: {e}", shown.display()),
                })?;
            installed.push((parent.to_owned(), name.to_owned()));
        }
        Ok(())
    })();
    let Err(error) = result else {
        return Ok(());
    };
    if force {
        return Err(error.context(format!(
            "{} file(s) of the package were already written and are kept",
            installed.len()
        )));
    }
    // Nothing was replaced: removing what this pull created restores DEST.
    for (parent, name) in &installed {
        if let Some(holder) = dirs
            .get(parent.as_str())
            .or((parent.is_empty()).then_some(root))
        {
            let _ = holder.unlink(name);
        }
    }
    for child in created_dirs.iter().rev() {
        let (parent, name) = child.rsplit_once('/').unwrap_or(("", child));
        if let Some(holder) = dirs.get(parent).or((parent.is_empty()).then_some(root)) {
            let _ = holder.rmdir(name);
        }
    }
    Err(error)
}

/// Copies one file's verified bytes into `out`.
async fn copy_blob<W: tokio::io::AsyncWrite + Unpin>(
    target: &Target,
    package: &str,
    file: &FileEntry,
    out: &mut W,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    match target {
        Target::Local { store, .. } => {
            let read = store
                .read_blob(&AnyDigest::Blake3(file.blake3), None)
                .await?;
            let mut reader = bar.wrap_async_read(read.reader);
            tokio::io::copy(&mut reader, out)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            Ok(())
        }
        Target::Remote(remote) => {
            let path = format!(
                "{}/files/{}",
                package_path(package)?,
                encode_path(&file.path)
            );
            remote.download(&path, &file.blob(), out, bar).await?;
            Ok(())
        }
    }
}

async fn ls(
    target: &Target,
    name: Option<String>,
    class: Option<String>,
    eligible: bool,
    limit: u32,
    json: bool,
) -> anyhow::Result<()> {
    let packages: Vec<Value> = match target {
        Target::Local { store, .. } => {
            let records = store
                .list_packages(&PackageFilter {
                    name,
                    version: None,
                    retention_class: class,
                    eligible,
                    after_seq: 0,
                    limit: Some(limit),
                })
                .await?;
            let mut values = Vec::with_capacity(records.len());
            for record in &records {
                let retention = store
                    .retention_status(&PackageRef::Id(record.package_id))
                    .await?;
                values.push(record.to_value(&retention));
            }
            values
        }
        Target::Remote(remote) => {
            let mut query = vec![format!("limit={}", limit.clamp(1, MAX_LIST_LIMIT))];
            if let Some(name) = &name {
                query.push(format!("name={}", encode_segment(name)));
            }
            if let Some(class) = &class {
                query.push(format!("class={}", encode_segment(class)));
            }
            if eligible {
                query.push("eligible=true".to_owned());
            }
            let page = remote
                .get_value(&format!("/packages?{}", query.join("&")))
                .await?;
            match page.as_map().and_then(|m| m.get("packages")) {
                Some(Value::Array(items)) => items.clone(),
                _ => bail!("the server's package list has no `packages` array"),
            }
        }
    };
    if json {
        return print_json(&Value::Array(packages));
    }
    if packages.is_empty() {
        println!("no packages");
        return Ok(());
    }
    println!(
        "{:<40}  {:<18}  {:<26}  {:<5}  {:<8}  PACKAGE_ID",
        "NAME@VERSION", "CLASS", "EXPIRES", "HOLDS", "ELIGIBLE"
    );
    for package in &packages {
        output::print_package_row(package);
    }
    Ok(())
}

/// `cat` reads files up to this size into memory (verified) before writing any byte; larger
/// files are verified by a first full read and then streamed (verified again). Either way a
/// corrupt blob fails before stdout receives any of its bytes.
const CAT_BUFFER_LIMIT: u64 = 16 << 20;

async fn cat(target: &Target, package: &str, path: &str) -> anyhow::Result<()> {
    let mut stdout = tokio::io::stdout();
    let reading = || format!("reading {path}");
    match target {
        Target::Local { store, .. } => {
            let package = package.parse()?;
            let (file, read) = store.read_file(&package, path, None).await?;
            let mut reader = read.reader;
            if file.size <= CAT_BUFFER_LIMIT {
                let mut bytes = Vec::with_capacity(file.size as usize);
                tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes)
                    .await
                    .with_context(reading)?;
                stdout.write_all(&bytes).await?;
            } else {
                tokio::io::copy(&mut reader, &mut tokio::io::sink())
                    .await
                    .with_context(reading)?;
                let (_, read) = store.read_file(&package, path, None).await?;
                let mut reader = read.reader;
                tokio::io::copy(&mut reader, &mut stdout)
                    .await
                    .with_context(reading)?;
            }
        }
        Target::Remote(_) => {
            let (value, _) = manifest(target, package).await?;
            let manifest = Manifest::from_value(&value)?;
            let file = manifest
                .file(path)
                .ok_or_else(|| anyhow!("file not found: {path} in {package}"))?;
            let hidden = indicatif::ProgressBar::hidden();
            if file.size <= CAT_BUFFER_LIMIT {
                let mut bytes = Vec::with_capacity(file.size as usize);
                copy_blob(target, package, file, &mut bytes, &hidden)
                    .await
                    .with_context(reading)?;
                stdout.write_all(&bytes).await?;
            } else {
                copy_blob(target, package, file, &mut tokio::io::sink(), &hidden)
                    .await
                    .with_context(reading)?;
                copy_blob(target, package, file, &mut stdout, &hidden)
                    .await
                    .with_context(reading)?;
            }
        }
    }
    stdout.flush().await?;
    Ok(())
}

async fn blob_put(target: &Target, file: &Path, json: bool) -> anyhow::Result<()> {
    let label = file.display().to_string();
    let info = send_file(target, file, &label).await?;
    let value = match target {
        Target::Local { store, actor } => store
            .record_blobs(actor, &[info])
            .await?
            .pop()
            .ok_or_else(|| anyhow!("blob was not recorded"))?
            .to_value(),
        // The server recorded it when the upload session finished.
        Target::Remote(_) => Value::map([
            ("blake3", text(info.blake3.to_string())),
            ("sha256", text(info.sha256.to_string())),
            ("size", Value::Int(info.size as i64)),
        ]),
    };
    if json {
        print_json(&value)?;
    } else {
        println!("{}", info.blake3);
        println!("{}", info.sha256);
        println!("{} bytes", info.size);
    }
    Ok(())
}

async fn blob_get(
    target: &Target,
    digest_text: &str,
    output_path: Option<&Path>,
) -> anyhow::Result<()> {
    let digest: AnyDigest = digest_text.parse()?;
    match output_path {
        Some(path) => {
            // A temp file under a random name, created exclusively without following a link,
            // beside the output (same filesystem), renamed over it once the blob is verified.
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("--output {} has no UTF-8 file name", path.display()))?;
            let parent = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            let dir = files::Dir::open(parent)
                .with_context(|| format!("cannot open {}", parent.display()))?;
            let (out, temp) = dir
                .create_temp(".artifactstore-get-")
                .with_context(|| format!("cannot create a temp file in {}", parent.display()))?;
            let mut out = tokio::fs::File::from_std(out);
            let written = async {
                fetch_blob(target, &digest, &mut out).await?;
                out.flush()
                    .await
                    .with_context(|| format!("cannot write {}", path.display()))?;
                dir.rename(&temp, &dir, name, true)
                    .with_context(|| format!("cannot write {}", path.display()))
            }
            .await;
            if written.is_err() {
                let _ = dir.unlink(&temp);
            }
            written?;
        }
        None => {
            // Verify the whole blob before stdout receives any of it (a corrupt blob fails
            // here), then stream it (verified again).
            fetch_blob(target, &digest, &mut tokio::io::sink()).await?;
            let mut stdout = tokio::io::stdout();
            fetch_blob(target, &digest, &mut stdout).await?;
            stdout.flush().await?;
        }
    }
    Ok(())
}

async fn fetch_blob<W: tokio::io::AsyncWrite + Unpin>(
    target: &Target,
    digest: &AnyDigest,
    out: &mut W,
) -> anyhow::Result<()> {
    match target {
        Target::Local { store, .. } => {
            let read = store.read_blob(digest, None).await?;
            let bar = output::progress(read.size, digest.to_string());
            let mut reader = bar.wrap_async_read(read.reader);
            tokio::io::copy(&mut reader, out)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            bar.finish_and_clear();
        }
        Target::Remote(remote) => {
            let path = format!("/blobs/{}", encode_segment(&digest.to_string()));
            let head = remote.send(remote.request(Method::HEAD, &path)).await?;
            let header = |name: &str| {
                head.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let expected = BlobInfo {
                blake3: header("artifactstore-blake3")
                    .ok_or_else(|| anyhow!("the server did not send the blob's BLAKE3"))?
                    .parse()?,
                sha256: header("artifactstore-sha256")
                    .ok_or_else(|| anyhow!("the server did not send the blob's SHA-256"))?
                    .parse()?,
                size: header("content-length")
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| anyhow!("the server did not send the blob's size"))?,
            };
            if !expected.matches(digest) {
                bail!("the server answered {digest} with a different blob");
            }
            let bar = output::progress(expected.size, digest.to_string());
            remote.download(&path, &expected, out, &bar).await?;
            bar.finish_and_clear();
        }
    }
    Ok(())
}

fn parse_time(text_value: &str) -> anyhow::Result<Timestamp> {
    Ok(text_value.parse::<Timestamp>()?)
}

fn events_value(events: &[Event]) -> Value {
    Value::Array(events.iter().map(Event::to_value).collect())
}

async fn retention(target: &Target, command: RetentionCommand, json: bool) -> anyhow::Result<()> {
    match command {
        RetentionCommand::Status { package } => {
            let value = package_value(target, &package).await?;
            if json {
                print_json(&value)?;
            } else {
                output::print_package(&value);
            }
        }
        RetentionCommand::Extend {
            package,
            until,
            reason,
        } => {
            let until = parse_time(&until)?;
            let status = match target {
                Target::Local { store, actor } => RetentionStatusResult::from(
                    &store
                        .extend(actor, &package.parse()?, until, &reason)
                        .await?,
                ),
                Target::Remote(remote) => {
                    remote
                        .post_value_result(
                            &format!("{}/retention/extensions", package_path(&package)?),
                            &Value::map([
                                ("new_expires_at", text(until.to_string())),
                                ("reason", text(&reason)),
                            ]),
                        )
                        .await?
                }
            };
            if json {
                print_json(&results::encode(&status)?)?;
            } else {
                println!(
                    "extended {} to {}",
                    status.package_id,
                    status
                        .current_expires_at
                        .as_deref()
                        .unwrap_or("never (permanent)")
                );
            }
        }
        RetentionCommand::Hold { package, reason } => {
            let hold_id = match target {
                Target::Local { store, actor } => {
                    store.hold(actor, &package.parse()?, &reason).await?
                }
                Target::Remote(remote) => output::member(
                    &remote
                        .post_value(
                            &format!("{}/retention/holds", package_path(&package)?),
                            &Value::map([("reason", text(&reason))]),
                        )
                        .await?,
                    "hold_id",
                ),
            };
            if json {
                print_json(&Value::map([("hold_id", text(&hold_id))]))?;
            } else {
                println!("{hold_id}");
            }
        }
        RetentionCommand::Release {
            package,
            hold_id,
            reason,
        } => {
            let status = match target {
                Target::Local { store, actor } => RetentionStatusResult::from(
                    &store
                        .release(actor, &package.parse()?, &hold_id, &reason)
                        .await?,
                ),
                Target::Remote(remote) => {
                    remote
                        .post_value_result(
                            &format!(
                                "{}/retention/holds/{}/release",
                                package_path(&package)?,
                                encode_segment(&hold_id)
                            ),
                            &Value::map([("reason", text(&reason))]),
                        )
                        .await?
                }
            };
            if json {
                print_json(&results::encode(&status)?)?;
            } else {
                println!(
                    "released {hold_id}; {} active hold(s) remain",
                    status.active_holds
                );
            }
        }
        RetentionCommand::History { package, cbor, .. } => {
            let history = match target {
                Target::Local { store, .. } => store.retention_history(&package.parse()?).await?,
                Target::Remote(remote) => {
                    remote
                        .get_events(&format!("{}/retention/history", package_path(&package)?))
                        .await?
                }
            };
            if cbor {
                output::print_bytes(&cbor::encode(&events_value(&history))?)?;
            } else if json {
                print_json(&events_value(&history))?;
            } else {
                for event in &history {
                    output::print_event_line(event);
                }
            }
        }
        RetentionCommand::Sweep { as_of } => {
            let as_of = as_of.as_deref().map(parse_time).transpose()?;
            let report = match target {
                Target::Local { store, actor } => {
                    SweepResult::from(&store.sweep(actor, as_of).await?)
                }
                Target::Remote(remote) => {
                    let path = match as_of {
                        Some(t) => {
                            format!("/retention/sweep?as_of={}", encode_segment(&t.to_string()))
                        }
                        None => "/retention/sweep".to_owned(),
                    };
                    remote.post_result(&path).await?
                }
            };
            if json {
                print_json(&results::encode(&report)?)?;
            } else {
                println!(
                    "{} package(s) newly eligible for deletion as of {}",
                    report.newly_eligible, report.as_of
                );
            }
            if warn_refused(&report.refused) {
                bail!(
                    "the sweep left alone packages whose views disagree with the log (see above)"
                );
            }
        }
        RetentionCommand::Explain { package, as_of } => {
            let as_of = as_of.as_deref().map(parse_time).transpose()?;
            let explanation = match target {
                Target::Local { store, .. } => {
                    ExplainResult::from(&store.explain(&package.parse()?, as_of).await?)
                }
                Target::Remote(remote) => {
                    let mut path = format!("{}/retention/explain", package_path(&package)?);
                    if let Some(t) = as_of {
                        path.push_str(&format!("?as_of={}", encode_segment(&t.to_string())));
                    }
                    remote.get_result(&path).await?
                }
            };
            if json {
                print_json(&results::encode(&explanation)?)?;
            } else {
                println!("{} as of {}", explanation.package_id, explanation.as_of);
                for line in &explanation.lines {
                    println!("  [seq {:>6}] {}", line.seq, line.text);
                }
                println!("verdict: {}", explanation.verdict);
            }
        }
    }
    Ok(())
}

async fn fetch_events(target: &Target, query: &EventQuery) -> anyhow::Result<Vec<Event>> {
    match target {
        Target::Local { store, .. } => Ok(store.events(query).await?),
        Target::Remote(remote) => {
            let mut path = format!(
                "/events?after={}&limit={}",
                query.after,
                query.limit.unwrap_or(DEFAULT_EVENT_LIMIT)
            );
            if let Some(event_type) = &query.event_type {
                path.push_str(&format!("&type={}", encode_segment(event_type)));
            }
            if let Some(package_id) = &query.package_id {
                path.push_str(&format!(
                    "&package_id={}",
                    encode_segment(&package_id.to_string())
                ));
            }
            remote.get_events(&path).await
        }
    }
}

async fn events(target: &Target, args: EventsArgs, json: bool) -> anyhow::Result<()> {
    let package_id = match &args.package {
        Some(package) => Some(match target {
            Target::Local { store, .. } => store.resolve(&package.parse()?).await?,
            Target::Remote(_) => {
                output::member(&package_value(target, package).await?, "package_id").parse()?
            }
        }),
        None => None,
    };
    let mut query = EventQuery {
        after: args.after,
        limit: args.limit,
        event_type: args.event_type.clone(),
        package_id,
    };
    let print_one = |event: &Event| -> anyhow::Result<()> {
        if args.cbor {
            output::print_bytes(&event.canonical_bytes()?)
        } else if json {
            print_json(&event.to_value())
        } else {
            output::print_event_line(event);
            Ok(())
        }
    };
    if args.follow {
        let matches = |event: &Event| {
            args.event_type
                .as_ref()
                .is_none_or(|t| &event.event_type == t)
                && package_id.is_none_or(|p| event.package_id == Some(p))
        };
        return match target {
            // Live: print each new event as it lands (JSON: one JCS per line).
            Target::Remote(remote) => {
                remote
                    .follow_events(args.after, |event| {
                        if matches(event) {
                            print_one(event)
                        } else {
                            Ok(())
                        }
                    })
                    .await
            }
            // The store's follow stream: woken by commits, other processes' within a second.
            Target::Local { store, .. } => {
                let mut events = std::pin::pin!(store.follow(args.after));
                while let Some(event) = futures_util::StreamExt::next(&mut events).await {
                    let event = event?;
                    if matches(&event) {
                        print_one(&event)?;
                    }
                }
                Ok(())
            }
        };
    }
    let mut all = Vec::new();
    loop {
        let page_limit = match args.limit {
            Some(limit) => (limit as usize).saturating_sub(all.len()).min(5000) as u32,
            None => 5000,
        };
        if page_limit == 0 {
            break;
        }
        query.limit = Some(page_limit);
        let page = fetch_events(target, &query).await?;
        let Some(last) = page.last() else {
            break;
        };
        query.after = last.seq;
        all.extend(page);
    }
    if args.cbor {
        output::print_bytes(&cbor::encode(&events_value(&all))?)?;
    } else if json {
        print_json(&events_value(&all))?;
    } else {
        for event in &all {
            output::print_event_line(event);
        }
    }
    Ok(())
}

async fn audit_verify(target: &Target, json: bool) -> anyhow::Result<ExitCode> {
    let report = match target {
        Target::Local { store, .. } => AuditResult::from(&store.audit().await?),
        Target::Remote(remote) => remote.get_result("/audit/verify").await?,
    };
    if json {
        print_json(&results::encode(&report)?)?;
    }
    if report.ok {
        if !json {
            let (seq, hash) = match &report.head {
                Some(head) => (
                    head.head_seq.to_string(),
                    head.head_hash.clone().unwrap_or_else(|| "-".to_owned()),
                ),
                None => ("-".to_owned(), "-".to_owned()),
            };
            println!("ok: head seq {seq} hash {hash}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    for violation in &report.violations {
        eprintln!(
            "artifactstore: audit failed: seq {} breaks rule {}: {}",
            violation.seq, violation.rule, violation.detail
        );
    }
    if let Some(chain) = &report.chain_error {
        eprintln!(
            "artifactstore: audit failed: first bad seq {}: {}",
            chain.first_bad_seq, chain.reason
        );
    }
    Ok(ExitCode::FAILURE)
}

/// Prints each `refused` entry of a sweep or GC report on stderr; whether there was any.
fn warn_refused(refused: &[RefusalResult]) -> bool {
    for item in refused {
        eprintln!("artifactstore: kept {}: {}", item.subject, item.detail);
    }
    !refused.is_empty()
}

async fn gc(target: &Target, grace: &str, dry_run: bool, json: bool) -> anyhow::Result<ExitCode> {
    let grace_period =
        artifact_core::time::Period::parse_duration(grace).map_err(|e| anyhow!("--grace: {e}"))?;
    let report = match target {
        Target::Local { store, actor } => GcResult::from(
            &store
                .gc(
                    actor,
                    artifact_core::maintenance::GcOptions {
                        grace: grace_period,
                        dry_run,
                    },
                )
                .await?,
        ),
        Target::Remote(remote) => {
            let path = format!(
                "/admin/gc?grace={}&dry_run={dry_run}",
                encode_segment(grace)
            );
            remote.post_result(&path).await?
        }
    };
    let failure = if warn_refused(&report.refused) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if json {
        print_json(&results::encode(&report)?)?;
        return Ok(failure);
    }
    let verb = if dry_run { "would purge" } else { "purged" };
    println!("{verb} {} package(s)", report.purged.len());
    for id in &report.purged {
        println!("  package {id}");
    }
    println!(
        "{} {} blob(s), {} reclaimed",
        if dry_run { "would delete" } else { "deleted" },
        report.deleted_blobs.len(),
        output::size(report.bytes_reclaimed)
    );
    for id in &report.deleted_blobs {
        println!("  blob {id}");
    }
    if !report.orphans_deleted.is_empty() {
        println!(
            "{} {} unrecorded blob(s) left by interrupted writes",
            if dry_run { "would delete" } else { "deleted" },
            report.orphans_deleted.len()
        );
    }
    Ok(failure)
}

async fn verify(
    target: &Target,
    sample: f64,
    max_bytes_per_sec: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !(sample > 0.0 && sample <= 1.0) {
        bail!("--sample {sample} must be in (0, 1]");
    }
    let report = match target {
        Target::Local { store, actor } => {
            let bar = output::byte_counter("verifying".to_owned());
            let report = store
                .verify_blobs(
                    actor,
                    artifact_core::maintenance::VerifyOptions {
                        sample,
                        max_bytes_per_sec,
                    },
                    |bytes| bar.set_position(bytes),
                )
                .await?;
            bar.finish_and_clear();
            VerifyResult::from(&report)
        }
        Target::Remote(remote) => {
            let mut path = format!("/admin/verify?sample={sample}");
            if let Some(rate) = max_bytes_per_sec {
                path.push_str(&format!("&max_bytes_per_sec={rate}"));
            }
            remote.post_result(&path).await?
        }
    };
    if json {
        print_json(&results::encode(&report)?)?;
    } else {
        println!(
            "checked {} blob(s), {} read",
            report.checked,
            output::size(report.bytes)
        );
    }
    if report.ok {
        return Ok(ExitCode::SUCCESS);
    }
    for failure in &report.failed {
        eprintln!(
            "artifactstore: blob {} failed its check: {}",
            failure.blake3, failure.reason
        );
    }
    Ok(ExitCode::FAILURE)
}

async fn fsck(target: &Target, json: bool) -> anyhow::Result<ExitCode> {
    let report = match target {
        Target::Local { store, .. } => FsckResult::from(&store.fsck().await?),
        Target::Remote(remote) => remote.get_result("/admin/fsck").await?,
    };
    if json {
        print_json(&results::encode(&report)?)?;
    } else {
        println!(
            "checked {} live package(s), {} file(s); log head seq {}",
            report.packages,
            report.files,
            report
                .head_seq
                .map_or_else(|| "-".to_owned(), |seq| seq.to_string())
        );
        for note in &report.notes {
            println!("note: {note}");
        }
    }
    for finding in &report.findings {
        eprintln!(
            "artifactstore: fsck: {} {}: {}",
            finding.kind, finding.subject, finding.detail
        );
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
