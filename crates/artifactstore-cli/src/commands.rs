//! The second stage: open a client — the embedded store, or the HTTP API with `--server` —
//! and carry out a parsed command. Each command is written once over [`Client`]: typed
//! arguments → one call → one renderer, the same on both targets. The verifiable-log audit
//! commands and `admin rebuild-tree` work on this machine's store only ([`Local`]).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use artifact_client::{Client, EmbeddedClient, HttpClient, NoProgress, PackageQuery};
use artifact_core::ArtifactStore;
use artifact_core::auth::Role;
use artifact_core::catalog::EventQuery;
use artifact_core::cbor::{self, Value};
use artifact_core::config::Config;
use artifact_core::digest::{AnyDigest, BlobInfo};
use artifact_core::event::Event;
use artifact_core::manifest::{FileEntry, Manifest};
use artifact_core::results::{HoldAppliedResult, RebuildViewsResult, RefusalResult};
use artifact_core::time::Timestamp;
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio::io::AsyncWriteExt as _;

use crate::args::{
    AdminCommand, AuditCommand, BlobCommand, Cli, Command, EventsArgs, PushArgs, RetentionCommand,
    TokenCommand,
};
use crate::files;
use crate::local;
use crate::output::{self, Bar, print_json, print_result, text};
use crate::pull::{PullStaging, check_pull_targets, install_pulled};

/// This machine's store, for the commands that work on it only.
pub(crate) struct Local<'a> {
    pub(crate) store: &'a ArtifactStore,
    pub(crate) data_dir: &'a Path,
    pub(crate) config: &'a Config,
    /// Who local changes are recorded as.
    pub(crate) actor: &'a str,
}

/// Runs one command.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Init => return local::init(&cli).await,
        Command::Audit(AuditCommand::VerifyReceipt { file, key }) => {
            return crate::tlog::verify_receipt(file, key, cli.json);
        }
        Command::Serve { listen } => {
            let listen = listen.clone();
            return local::serve(&cli, listen).await;
        }
        _ => {}
    }
    if let Some(server) = &cli.server {
        let client = HttpClient::new(server, cli.token.clone())?;
        return run_on(&client, None, cli).await;
    }
    let config = local::effective_config(&cli)?;
    let store = local::open(&cli, config.clone(), false, local::reads_only(&cli.command)).await?;
    let actor = cli.actor.clone().unwrap_or_else(local::default_actor);
    let mut client = EmbeddedClient::new(store.clone(), actor.clone());
    if matches!(
        cli.command,
        Command::Retention(RetentionCommand::History { proof: true, .. })
    ) && config.log.key_path(&cli.data_dir).exists()
    {
        // Receipts need a checkpoint that covers the history: made with the log's key.
        client = client.with_log_signer(artifact_store_fs::log_signer(
            &cli.data_dir,
            &config,
            false,
        )?);
    }
    let data_dir = cli.data_dir.clone();
    let local = Local {
        store: &store,
        data_dir: &data_dir,
        config: &config,
        actor: &actor,
    };
    run_on(&client, Some(local), cli).await
}

/// Runs one command on `client`; `local` is this machine's store when the client is embedded.
async fn run_on<C: Client>(
    client: &C,
    local: Option<Local<'_>>,
    cli: Cli,
) -> anyhow::Result<ExitCode> {
    let json = cli.json;
    match cli.command {
        // Handled by `run`.
        Command::Init | Command::Serve { .. } => {}
        Command::Push(args) => push(client, args, json).await?,
        Command::Pull {
            package,
            dest,
            force,
        } => pull(client, &package, &dest, force, json).await?,
        Command::Ls {
            name,
            class,
            eligible,
            limit,
        } => {
            let query = PackageQuery {
                name,
                class,
                eligible,
                limit: Some(limit),
            };
            ls(client, &query, json).await?
        }
        Command::Show { package } | Command::Retention(RetentionCommand::Status { package }) => {
            let view = client.package(&package).await?;
            if json {
                print_result(&view)?;
            } else {
                output::print_package(&view);
            }
        }
        Command::Cat { package, path } => cat(client, &package, &path).await?,
        Command::Manifest { package, cbor } => {
            let (manifest, bytes) = client.manifest(&package).await?;
            if cbor {
                output::print_bytes(&bytes)?;
            } else {
                print_json(&manifest.to_value())?;
            }
        }
        Command::Blob(BlobCommand::Put { file }) => {
            let bar = Bar::sized(file_size(&file).await?, file.display().to_string());
            let blob = client.put_blob(&file, &bar).await;
            bar.finish();
            let blob = blob?;
            if json {
                print_result(&blob)?;
            } else {
                println!("{}", blob.blake3);
                println!("{}", blob.sha256);
                println!("{} bytes", blob.size);
            }
        }
        Command::Blob(BlobCommand::Get { digest, output }) => {
            blob_get(client, &digest, output.as_deref()).await?
        }
        Command::Retention(command) => return retention(client, command, json).await,
        Command::Events(args) => events(client, args, json).await?,
        Command::Audit(AuditCommand::Verify {
            checkpoint: None,
            key: None,
            published: false,
        }) => return audit_verify(client, json).await,
        Command::Audit(command) => {
            let Some(local) = local else {
                bail!(
                    "the verifiable-log audit commands work on the embedded store only (not yet over --server)"
                );
            };
            return crate::tlog::audit(local.store, local.data_dir, local.config, command, json)
                .await;
        }
        Command::Admin(AdminCommand::RebuildViews) => {
            let events_replayed = client.rebuild_views().await?;
            if json {
                print_result(&RebuildViewsResult { events_replayed })?;
            } else {
                println!("rebuilt every view from {events_replayed} events");
            }
        }
        Command::Admin(AdminCommand::RebuildTree) => {
            let Some(local) = local else {
                bail!("admin rebuild-tree runs on this machine's store; drop --server");
            };
            let leaves = local.store.rebuild_tree().await?;
            if json {
                print_json(&Value::map([("leaves", Value::Int(leaves as i64))]))?;
            } else {
                println!("rebuilt the merkle tree over {leaves} events");
            }
        }
        Command::Admin(AdminCommand::ReconcileLocks) => {
            let Some(local) = local else {
                bail!("admin reconcile-locks runs on this machine's store; drop --server");
            };
            let report = local.store.reconcile_locks(local.actor, false).await?;
            let failure = if report.missing.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
            for item in &report.missing {
                eprintln!(
                    "artifactstore: cannot lock {}: {}",
                    item.subject, item.detail
                );
            }
            if json {
                print_json(&report.to_value())?;
                return Ok(failure);
            }
            println!(
                "checked the storage locks of {} live blob(s)",
                report.checked
            );
            for item in &report.extended {
                println!("  extended {}: {}", item.subject, item.detail);
            }
            for key in &report.holds_set {
                println!("  legal hold set on {key}");
            }
            for key in &report.holds_cleared {
                println!("  legal hold cleared on {key}");
            }
            for removed in &report.versions_removed {
                println!("  removed from over the locked version: {removed}");
            }
            let changes = report.extended.len()
                + report.holds_set.len()
                + report.holds_cleared.len()
                + report.versions_removed.len();
            println!("{changes} change(s) recorded");
            return Ok(failure);
        }
        Command::Gc { grace, dry_run } => {
            // The flag, else [gc] grace of this machine's configuration; a server applies its
            // own default when asked without one.
            if let Some(grace) = &grace {
                artifact_core::time::Period::parse_duration(grace)
                    .map_err(|e| anyhow!("--grace: {e}"))?;
            }
            let grace = grace.or_else(|| local.as_ref().map(|l| l.config.gc.grace.clone()));
            return gc(client, grace.as_deref(), dry_run, json).await;
        }
        Command::Verify {
            sample,
            max_bytes_per_sec,
        } => return verify(client, sample, max_bytes_per_sec, json).await,
        Command::Fsck => return fsck(client, json).await,
        Command::Admin(AdminCommand::Token(command)) => token(client, command, json).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `admin token create|list|revoke`.
async fn token<C: Client>(client: &C, command: TokenCommand, json: bool) -> anyhow::Result<()> {
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
            let minted = client.mint_token(&principal, &roles, expires_at).await?;
            if json {
                print_result(&minted)?;
            } else {
                println!("{}", minted.token);
                let expiry = match expires_at {
                    Some(t) => format!(", expires {t}"),
                    None => String::new(),
                };
                eprintln!(
                    "token {} for `{principal}` created{expiry}; it is shown only this once (only its hash is stored)",
                    minted.record.token_id
                );
            }
        }
        TokenCommand::List => {
            let tokens = client.list_tokens().await?;
            if json {
                print_result(&tokens)?;
            } else {
                output::print_tokens(&tokens);
            }
        }
        TokenCommand::Revoke { token_id, reason } => {
            let revoked = client.revoke_token(&token_id, &reason).await?;
            if json {
                print_result(&revoked)?;
            } else {
                println!(
                    "revoked token {} of `{}`",
                    revoked.token_id, revoked.principal
                );
            }
        }
    }
    Ok(())
}

async fn file_size(path: &Path) -> anyhow::Result<u64> {
    Ok(tokio::fs::metadata(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?
        .len())
}

/// Files `push` sends at the same time.
const PUSH_CONCURRENCY: usize = 8;

/// Sends one file of a push (stored; recorded with the package).
async fn send_file<C: Client>(client: &C, path: &Path, label: &str) -> anyhow::Result<BlobInfo> {
    let bar = Bar::sized(file_size(path).await?, label.to_owned());
    let info = client.send_file(path, &bar).await;
    bar.finish();
    Ok(info?)
}

async fn push<C: Client>(client: &C, args: PushArgs, json: bool) -> anyhow::Result<()> {
    // Validate everything cheap before moving any bytes.
    artifact_core::manifest::validate_name(&args.name)?;
    artifact_core::manifest::validate_version(&args.version)?;
    client.check_class(&args.class).await?;
    let files = artifact_store_fs::walk::package_files(&args.paths)?;

    // Several files in flight: small files are bound by fsync (or request) latency, which
    // concurrent writers share instead of paying one after another. Results keep file order.
    let infos: Vec<BlobInfo> = futures_util::stream::iter(&files)
        .map(|(package_path, source)| send_file(client, source, package_path))
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
    let created = client.create_package(&manifest, &infos).await?;
    let package = &created.package;
    let total_size: u64 = manifest.files.iter().map(|f| f.size).sum();
    if json {
        print_json(&Value::map([
            ("package_id", text(package.package_id())),
            ("name", text(&manifest.name)),
            ("version", text(&manifest.version)),
            ("retention_class", text(&manifest.retention_class)),
            (
                "expires_at",
                package
                    .retention
                    .current_expires_at
                    .as_deref()
                    .map_or(Value::Null, text),
            ),
            ("created", Value::Bool(created.created)),
            ("file_count", Value::Int(manifest.files.len() as i64)),
            ("total_size", Value::Int(total_size as i64)),
        ]))?;
    } else {
        println!(
            "{} {}@{}",
            if created.created {
                "created"
            } else {
                "already exists (identical manifest):"
            },
            manifest.name,
            manifest.version
        );
        println!("  package_id  {}", package.package_id());
        println!(
            "  class       {} (expires {})",
            manifest.retention_class,
            output::expiry(package.retention.current_expires_at.as_deref())
        );
        println!(
            "  files       {} ({})",
            manifest.files.len(),
            output::size(total_size)
        );
    }
    Ok(())
}

async fn pull<C: Client>(
    client: &C,
    package: &str,
    dest: &Path,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    // Before writing anything: a purged package's files may be partly shared with live
    // packages, so reading them one by one would write some before failing.
    client.check_live(package).await?;
    let (manifest, _) = client.manifest(package).await?;
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
            let bar = Bar::sized(file.size, file.path.clone());
            // A corrupt blob fails here, before the file appears under its name.
            let copied = client.copy_file(package, file, &mut out, &bar).await;
            bar.finish();
            copied.with_context(|| file.path.clone())?;
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

async fn ls<C: Client>(client: &C, query: &PackageQuery, json: bool) -> anyhow::Result<()> {
    let packages = client.list_packages(query).await?;
    if json {
        let values = packages
            .iter()
            .map(artifact_core::results::encode)
            .collect::<Result<Vec<_>, _>>()?;
        return print_json(&Value::Array(values));
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

async fn cat<C: Client>(client: &C, package: &str, path: &str) -> anyhow::Result<()> {
    client.check_live(package).await?;
    let (manifest, _) = client.manifest(package).await?;
    let file = manifest
        .file(path)
        .ok_or_else(|| anyhow!("file not found: {path} in {package}"))?;
    let reading = || format!("reading {path}");
    let mut stdout = tokio::io::stdout();
    if file.size <= CAT_BUFFER_LIMIT {
        let mut bytes = Vec::with_capacity(file.size as usize);
        client
            .copy_file(package, file, &mut bytes, &NoProgress)
            .await
            .with_context(reading)?;
        stdout.write_all(&bytes).await?;
    } else {
        client
            .copy_file(package, file, &mut tokio::io::sink(), &NoProgress)
            .await
            .with_context(reading)?;
        client
            .copy_file(package, file, &mut stdout, &NoProgress)
            .await
            .with_context(reading)?;
    }
    stdout.flush().await?;
    Ok(())
}

async fn blob_get<C: Client>(
    client: &C,
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
                fetch_blob(client, &digest, &mut out).await?;
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
            fetch_blob(client, &digest, &mut tokio::io::sink()).await?;
            let mut stdout = tokio::io::stdout();
            fetch_blob(client, &digest, &mut stdout).await?;
            stdout.flush().await?;
        }
    }
    Ok(())
}

/// Copies a blob into `out`, verified, with a progress bar for large ones.
async fn fetch_blob<C: Client, W: tokio::io::AsyncWrite + Unpin + Send>(
    client: &C,
    digest: &AnyDigest,
    out: &mut W,
) -> anyhow::Result<()> {
    let bar = Bar::lazy(digest.to_string());
    let copied = client.copy_blob(digest, out, &bar).await;
    bar.finish();
    Ok(copied?)
}

fn parse_time(text_value: &str) -> anyhow::Result<Timestamp> {
    Ok(text_value.parse::<Timestamp>()?)
}

fn events_value(events: &[Event]) -> Value {
    Value::Array(events.iter().map(Event::to_value).collect())
}

/// Events as `--cbor` (one CBOR array), `--json` (one JCS array) or lines.
fn print_events(events: &[Event], cbor_out: bool, json: bool) -> anyhow::Result<()> {
    if cbor_out {
        output::print_bytes(&cbor::encode(&events_value(events))?)?;
    } else if json {
        print_json(&events_value(events))?;
    } else {
        for event in events {
            output::print_event_line(event);
        }
    }
    Ok(())
}

async fn retention<C: Client>(
    client: &C,
    command: RetentionCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        // With `show`.
        RetentionCommand::Status { .. } => {}
        RetentionCommand::Extend {
            package,
            until,
            reason,
        } => {
            let until = parse_time(&until)?;
            let status = client.extend(&package, until, &reason).await?;
            if json {
                print_result(&status)?;
            } else {
                println!(
                    "extended {} to {}",
                    status.package_id,
                    output::expiry(status.current_expires_at.as_deref())
                );
            }
        }
        RetentionCommand::Hold { package, reason } => {
            let hold_id = client.hold(&package, &reason).await?;
            if json {
                print_result(&HoldAppliedResult { hold_id })?;
            } else {
                println!("{hold_id}");
            }
        }
        RetentionCommand::Release {
            package,
            hold_id,
            reason,
        } => {
            let status = client.release(&package, &hold_id, &reason).await?;
            if json {
                print_result(&status)?;
            } else {
                println!(
                    "released {hold_id}; {} active hold(s) remain",
                    status.active_holds
                );
            }
        }
        RetentionCommand::History {
            package,
            proof: true,
            ..
        } => {
            // A receipt per retention event of the package, in order (locally a checkpoint
            // is made and published first if the latest does not cover the history).
            let history = client.retention_history(&package).await?;
            // The last event first: one checkpoint then covers every receipt.
            let mut last = None;
            if let Some(seq) = history.iter().map(|e| e.seq).max() {
                last = Some((seq, client.receipt(seq).await?));
            }
            let mut receipts = Vec::with_capacity(history.len());
            for event in &history {
                let receipt = match &last {
                    Some((seq, receipt)) if *seq == event.seq => receipt.clone(),
                    _ => client.receipt(event.seq).await?,
                };
                receipts.push(artifact_core::results::encode(&receipt)?);
            }
            print_json(&Value::map([("receipts", Value::Array(receipts))]))?;
        }
        RetentionCommand::History { package, cbor, .. } => {
            let history = client.retention_history(&package).await?;
            print_events(&history, cbor, json)?;
        }
        RetentionCommand::Sweep { as_of } => {
            let as_of = as_of.as_deref().map(parse_time).transpose()?;
            let report = client.sweep(as_of).await?;
            if json {
                print_result(&report)?;
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
            let explanation = client.explain(&package, as_of).await?;
            if json {
                print_result(&explanation)?;
            } else {
                println!("{} as of {}", explanation.package_id, explanation.as_of);
                for line in &explanation.lines {
                    println!("  [seq {:>6}] {}", line.seq, line.text);
                }
                println!("verdict: {}", explanation.verdict);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn events<C: Client>(client: &C, args: EventsArgs, json: bool) -> anyhow::Result<()> {
    let package_id = match &args.package {
        Some(package) => Some(client.package(package).await?.package_id().parse()?),
        None => None,
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
        // Live: each new event as it is committed (JSON: one JCS per line).
        let mut events = client.follow(args.after);
        while let Some(event) = events.next().await {
            let event = event?;
            let wanted = args
                .event_type
                .as_ref()
                .is_none_or(|t| &event.event_type == t)
                && package_id.is_none_or(|p| event.package_id == Some(p));
            if wanted {
                print_one(&event)?;
            }
        }
        return Ok(());
    }
    let mut query = EventQuery {
        after: args.after,
        limit: args.limit,
        event_type: args.event_type.clone(),
        package_id,
    };
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
        let page = client.events(&query).await?;
        let Some(last) = page.last() else {
            break;
        };
        query.after = last.seq;
        all.extend(page);
    }
    print_events(&all, args.cbor, json)
}

async fn audit_verify<C: Client>(client: &C, json: bool) -> anyhow::Result<ExitCode> {
    let report = client.audit().await?;
    if json {
        print_result(&report)?;
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

async fn gc<C: Client>(
    client: &C,
    grace: Option<&str>,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let report = client.gc(grace, dry_run).await?;
    let failure = if warn_refused(&report.refused) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if json {
        print_result(&report)?;
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
    if !report.kept.is_empty() {
        println!(
            "kept {} blob(s) the storage still locks (a later gc deletes them)",
            report.kept.len()
        );
        for item in &report.kept {
            println!("  blob {}: {}", item.subject, item.detail);
        }
    }
    Ok(failure)
}

async fn verify<C: Client>(
    client: &C,
    sample: f64,
    max_bytes_per_sec: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !(sample > 0.0 && sample <= 1.0) {
        bail!("--sample {sample} must be in (0, 1]");
    }
    let bar = Bar::counter("verifying".to_owned());
    let report = client.verify(sample, max_bytes_per_sec, &bar).await;
    bar.finish();
    let report = report?;
    if json {
        print_result(&report)?;
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

async fn fsck<C: Client>(client: &C, json: bool) -> anyhow::Result<ExitCode> {
    let report = client.fsck().await?;
    if json {
        print_result(&report)?;
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
