//! The second stage: open the store and carry out a parsed command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use artifact_core::catalog::{EventQuery, PackageFilter};
use artifact_core::cbor::{self, Value};
use artifact_core::config::{Config, DEFAULT_CONFIG_TOML};
use artifact_core::digest::{AnyDigest, BlobInfo};
use artifact_core::event::Event;
use artifact_core::manifest::{FileEntry, Manifest};
use artifact_core::time::Timestamp;
use artifact_core::{ArtifactStore, PackageRef};
use artifact_store_fs::EmbeddedOptions;
use tokio::io::AsyncWriteExt as _;

use crate::args::{
    AdminCommand, AuditCommand, BlobCommand, Cli, Command, EventsArgs, PushArgs, RetentionCommand,
};
use crate::output::{self, print_json, text, ts};

/// Runs one command.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let actor = cli.actor.clone().unwrap_or_else(default_actor);
    if matches!(cli.command, Command::Init) {
        return init(&cli).await;
    }
    let store = open(&cli, false).await?;
    let json = cli.json;
    match cli.command {
        // Handled before the store was opened.
        Command::Init => {}
        Command::Push(args) => push(&store, &actor, args, json).await?,
        Command::Pull {
            package,
            dest,
            force,
        } => pull(&store, &package.parse()?, &dest, force, json).await?,
        Command::Ls {
            name,
            class,
            eligible,
            limit,
        } => ls(&store, name, class, eligible, limit, json).await?,
        Command::Show { package } => show(&store, &package.parse()?, json).await?,
        Command::Cat { package, path } => cat(&store, &package.parse()?, &path).await?,
        Command::Manifest { package, cbor } => {
            let (manifest, bytes) = store.manifest(&package.parse()?).await?;
            if cbor {
                output::print_bytes(&bytes)?;
            } else {
                print_json(&manifest.to_value())?;
            }
        }
        Command::Blob(BlobCommand::Put { file }) => blob_put(&store, &actor, &file, json).await?,
        Command::Blob(BlobCommand::Get { digest, output }) => {
            blob_get(&store, &digest.parse()?, output.as_deref()).await?
        }
        Command::Retention(command) => retention(&store, &actor, command, json).await?,
        Command::Events(args) => events(&store, args, json).await?,
        Command::Audit(AuditCommand::Verify) => {
            return audit_verify(&store, json).await;
        }
        Command::Admin(AdminCommand::RebuildViews) => {
            let replayed = store.rebuild_views().await?;
            if json {
                print_json(&Value::map([(
                    "events_replayed",
                    Value::Int(replayed as i64),
                )]))?;
            } else {
                println!("rebuilt every view from {replayed} events");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn default_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("local:{user}")
}

fn load_config(cli: &Cli) -> anyhow::Result<Option<Config>> {
    let mut config = match &cli.config {
        Some(path) => Some(Config::load(path)?),
        None => None,
    };
    if let Some(url) = &cli.database_url {
        let mut with_url = config.take().map_or_else(
            || {
                let path = cli.data_dir.join("config.toml");
                if path.exists() {
                    Config::load(&path)
                } else {
                    Ok(Config::default())
                }
            },
            Ok,
        )?;
        with_url.metadata.url = Some(url.clone());
        config = Some(with_url);
    }
    Ok(config)
}

async fn open(cli: &Cli, create: bool) -> anyhow::Result<ArtifactStore> {
    let mut options = EmbeddedOptions::new(&cli.data_dir).with_create(create);
    if let Some(config) = load_config(cli)? {
        options = options.with_config(config);
    }
    Ok(options.open().await?)
}

async fn init(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config_path = cli.data_dir.join("config.toml");
    let existed = cli.data_dir.join("catalog.db").exists();
    let store = open(cli, true).await?;
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

/// Guesses a media type from a file extension.
fn media_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("html" | "htm") => "text/html",
        Some("txt" | "log") => "text/plain",
        Some("md") => "text/markdown",
        Some("css") => "text/css",
        Some("csv") => "text/csv",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        Some("cbor") => "application/cbor",
        _ => "application/octet-stream",
    }
}

/// Every regular file under the given paths, with its path inside the package.
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read directory {}", dir.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot read directory {}", dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| {
                anyhow!("{} has a name that is not UTF-8", entry.path().display())
            })?;
            let package_path = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                bail!(
                    "{} is a symbolic link; push the target itself (links are not stored)",
                    entry.path().display()
                );
            } else if kind.is_dir() {
                walk(&entry.path(), &package_path, out)?;
            } else if kind.is_file() {
                out.push((package_path, entry.path()));
            } else {
                bail!("{} is not a regular file", entry.path().display());
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            walk(path, "", &mut found)?;
        } else if meta.is_file() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("{} has no UTF-8 file name", path.display()))?;
            found.push((name.to_owned(), path.clone()));
        } else {
            bail!("{} is not a regular file or directory", path.display());
        }
    }
    let mut files = BTreeMap::new();
    for (package_path, source) in found {
        artifact_core::manifest::validate_path(&package_path)?;
        if let Some(previous) = files.insert(package_path.clone(), source.clone()) {
            bail!(
                "two inputs map to the package path `{package_path}`: {} and {}",
                previous.display(),
                source.display()
            );
        }
    }
    if files.is_empty() {
        bail!("nothing to push: the given paths hold no files");
    }
    Ok(files)
}

async fn write_file_blob(
    store: &ArtifactStore,
    path: &Path,
    label: &str,
) -> anyhow::Result<BlobInfo> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let total = file.metadata().await?.len();
    let bar = output::progress(total, label.to_owned());
    let info = store.write_blob(bar.wrap_async_read(file), &[]).await?;
    bar.finish_and_clear();
    Ok(info)
}

async fn push(
    store: &ArtifactStore,
    actor: &str,
    args: PushArgs,
    json: bool,
) -> anyhow::Result<()> {
    // Validate everything cheap before moving any bytes.
    artifact_core::manifest::validate_name(&args.name)?;
    artifact_core::manifest::validate_version(&args.version)?;
    store.classes().period(&args.class)?;
    let files = collect_files(&args.paths)?;

    let mut entries = Vec::with_capacity(files.len());
    let mut infos = Vec::with_capacity(files.len());
    for (package_path, source) in &files {
        let info = write_file_blob(store, source, package_path).await?;
        infos.push(info);
        entries.push(FileEntry {
            path: package_path.clone(),
            size: info.size,
            blake3: info.blake3,
            sha256: info.sha256,
            media_type: Some(media_type(package_path).to_owned()),
        });
    }
    let manifest = Manifest {
        name: args.name,
        version: args.version,
        retention_class: args.class,
        files: entries,
        labels: args.labels.into_iter().collect(),
    };
    // One transaction records every blob (bytes are already durable) and the package.
    let created = store
        .create_package_with_blobs(actor, &manifest, &infos)
        .await?;
    if json {
        print_json(&Value::map([
            ("package_id", text(created.package_id.to_string())),
            ("name", text(&manifest.name)),
            ("version", text(&manifest.version)),
            ("retention_class", text(&manifest.retention_class)),
            ("expires_at", ts(created.retention.current_expires_at)),
            ("created", Value::Bool(created.created)),
            ("file_count", Value::Int(manifest.files.len() as i64)),
            ("total_size", Value::Int(created.package.total_size as i64)),
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
        println!("  package_id  {}", created.package_id);
        println!(
            "  class       {} (expires {})",
            manifest.retention_class,
            output::expiry(created.retention.current_expires_at)
        );
        println!(
            "  files       {} ({})",
            manifest.files.len(),
            output::size(created.package.total_size)
        );
    }
    Ok(())
}

async fn pull(
    store: &ArtifactStore,
    package: &PackageRef,
    dest: &Path,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    let (manifest, _) = store.manifest(package).await?;
    if !force {
        let existing: Vec<String> = manifest
            .files
            .iter()
            .filter(|f| dest.join(&f.path).exists())
            .map(|f| f.path.clone())
            .collect();
        if !existing.is_empty() {
            bail!(
                "{} file(s) already exist under {} (first: {}); use --force to overwrite",
                existing.len(),
                dest.display(),
                existing[0]
            );
        }
    }
    tokio::fs::create_dir_all(dest)
        .await
        .with_context(|| format!("cannot create {}", dest.display()))?;
    let mut total = 0u64;
    for file in &manifest.files {
        // Paths were validated (relative, no `..`), so joining stays under dest.
        let target = dest.join(&file.path);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let temp = target.with_file_name(format!(
            ".{}.artifactstore-partial",
            target
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("file")
        ));
        let read = store
            .read_blob(&AnyDigest::Blake3(file.blake3), None)
            .await?;
        let bar = output::progress(file.size, file.path.clone());
        let mut reader = bar.wrap_async_read(read.reader);
        let mut out = tokio::fs::File::create(&temp)
            .await
            .with_context(|| format!("cannot create {}", temp.display()))?;
        // A corrupt blob fails here, before the file appears under its name.
        let copied = tokio::io::copy(&mut reader, &mut out).await;
        bar.finish_and_clear();
        if let Err(e) = copied {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(anyhow!("{}: {e}", file.path));
        }
        out.flush().await?;
        drop(out);
        tokio::fs::rename(&temp, &target)
            .await
            .with_context(|| format!("cannot write {}", target.display()))?;
        total += file.size;
    }
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

async fn ls(
    store: &ArtifactStore,
    name: Option<String>,
    class: Option<String>,
    eligible: bool,
    limit: u32,
    json: bool,
) -> anyhow::Result<()> {
    let packages = store
        .list_packages(&PackageFilter {
            name,
            retention_class: class,
            eligible,
            after_seq: 0,
            limit: Some(limit),
        })
        .await?;
    let mut rows = Vec::with_capacity(packages.len());
    for package in &packages {
        let retention = store
            .retention_status(&PackageRef::Id(package.package_id))
            .await?;
        rows.push((package, retention));
    }
    if json {
        print_json(&Value::Array(
            rows.iter()
                .map(|(p, r)| output::package_value(p, r))
                .collect(),
        ))?;
        return Ok(());
    }
    if rows.is_empty() {
        println!("no packages");
        return Ok(());
    }
    println!(
        "{:<40}  {:<18}  {:<26}  {:<5}  {:<8}  PACKAGE_ID",
        "NAME@VERSION", "CLASS", "EXPIRES", "HOLDS", "ELIGIBLE"
    );
    for (package, retention) in rows {
        println!(
            "{:<40}  {:<18}  {:<26}  {:<5}  {:<8}  {}",
            format!("{}@{}", package.name, package.version),
            package.retention_class,
            output::expiry(retention.current_expires_at),
            retention.active_holds.len(),
            if retention.eligible_for_deletion {
                "yes"
            } else {
                "no"
            },
            package.package_id.fmt_short()
        );
    }
    Ok(())
}

async fn show(store: &ArtifactStore, package: &PackageRef, json: bool) -> anyhow::Result<()> {
    let record = store.package(package).await?;
    let retention = store
        .retention_status(&PackageRef::Id(record.package_id))
        .await?;
    if json {
        print_json(&output::package_value(&record, &retention))?;
    } else {
        output::print_package(&record, &retention);
    }
    Ok(())
}

async fn cat(store: &ArtifactStore, package: &PackageRef, path: &str) -> anyhow::Result<()> {
    let (_, read) = store.read_file(package, path, None).await?;
    let mut reader = read.reader;
    let mut stdout = tokio::io::stdout();
    tokio::io::copy(&mut reader, &mut stdout)
        .await
        .with_context(|| format!("reading {path}"))?;
    stdout.flush().await?;
    Ok(())
}

async fn blob_put(
    store: &ArtifactStore,
    actor: &str,
    file: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let label = file.display().to_string();
    let info = write_file_blob(store, file, &label).await?;
    let record = store
        .record_blobs(actor, &[info])
        .await?
        .pop()
        .ok_or_else(|| anyhow!("blob was not recorded"))?;
    if json {
        print_json(&Value::map([
            ("blake3", text(info.blake3.to_string())),
            ("sha256", text(info.sha256.to_string())),
            ("size", Value::Int(info.size as i64)),
            ("stored_seq", Value::Int(record.stored_seq as i64)),
        ]))?;
    } else {
        println!("{}", info.blake3);
        println!("{}", info.sha256);
        println!("{} bytes", info.size);
    }
    Ok(())
}

async fn blob_get(
    store: &ArtifactStore,
    digest: &AnyDigest,
    output_path: Option<&Path>,
) -> anyhow::Result<()> {
    let read = store.read_blob(digest, None).await?;
    let bar = output::progress(read.size, digest.to_string());
    let mut reader = bar.wrap_async_read(read.reader);
    match output_path {
        Some(path) => {
            let temp = path.with_extension("artifactstore-partial");
            let mut out = tokio::fs::File::create(&temp)
                .await
                .with_context(|| format!("cannot create {}", temp.display()))?;
            if let Err(e) = tokio::io::copy(&mut reader, &mut out).await {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(e.into());
            }
            out.flush().await?;
            tokio::fs::rename(&temp, path).await?;
        }
        None => {
            let mut stdout = tokio::io::stdout();
            tokio::io::copy(&mut reader, &mut stdout).await?;
            stdout.flush().await?;
        }
    }
    bar.finish_and_clear();
    Ok(())
}

fn parse_time(text_value: &str) -> anyhow::Result<Timestamp> {
    Ok(text_value.parse::<Timestamp>()?)
}

fn events_value(events: &[Event]) -> Value {
    Value::Array(events.iter().map(Event::to_value).collect())
}

async fn retention(
    store: &ArtifactStore,
    actor: &str,
    command: RetentionCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        RetentionCommand::Status { package } => show(store, &package.parse()?, json).await?,
        RetentionCommand::Extend {
            package,
            until,
            reason,
        } => {
            let until = parse_time(&until)?;
            let status = store
                .extend(actor, &package.parse()?, until, &reason)
                .await?;
            if json {
                print_json(&status.to_value())?;
            } else {
                println!(
                    "extended {} to {}",
                    status.package_id,
                    output::expiry(status.current_expires_at)
                );
            }
        }
        RetentionCommand::Hold { package, reason } => {
            let package: PackageRef = package.parse()?;
            let hold_id = store.hold(actor, &package, &reason).await?;
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
            let status = store
                .release(actor, &package.parse()?, &hold_id, &reason)
                .await?;
            if json {
                print_json(&status.to_value())?;
            } else {
                println!(
                    "released {hold_id}; {} active hold(s) remain",
                    status.active_holds.len()
                );
            }
        }
        RetentionCommand::History { package, cbor } => {
            let history = store.retention_history(&package.parse()?).await?;
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
            let report = store.sweep(actor, as_of).await?;
            if json {
                print_json(&Value::map([
                    ("as_of", text(report.as_of.to_string())),
                    (
                        "newly_eligible",
                        Value::Int(report.newly_eligible.len() as i64),
                    ),
                    (
                        "package_ids",
                        Value::Array(
                            report
                                .newly_eligible
                                .iter()
                                .map(|p| text(p.to_string()))
                                .collect(),
                        ),
                    ),
                ]))?;
            } else {
                println!(
                    "{} package(s) newly eligible for deletion as of {}",
                    report.newly_eligible.len(),
                    report.as_of
                );
            }
        }
        RetentionCommand::Explain { package, as_of } => {
            let as_of = as_of.as_deref().map(parse_time).transpose()?;
            let explanation = store.explain(&package.parse()?, as_of).await?;
            if json {
                print_json(&explanation.to_value())?;
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

async fn events(store: &ArtifactStore, args: EventsArgs, json: bool) -> anyhow::Result<()> {
    let package_id = match &args.package {
        Some(package) => Some(store.resolve(&package.parse()?).await?),
        None => None,
    };
    let mut query = EventQuery {
        after: args.after,
        limit: args.limit,
        event_type: args.event_type.clone(),
        package_id,
    };
    if !args.follow {
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
            let page = store.events(&query).await?;
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
        return Ok(());
    }
    // --follow: poll the log and print each new event as it lands (JSON: one JCS per line).
    loop {
        query.limit = Some(1000);
        let page = store.events(&query).await?;
        if page.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        for event in &page {
            if args.cbor {
                output::print_bytes(&event.canonical_bytes()?)?;
            } else if json {
                print_json(&event.to_value())?;
            } else {
                output::print_event_line(event);
            }
            query.after = event.seq;
        }
    }
}

async fn audit_verify(store: &ArtifactStore, json: bool) -> anyhow::Result<ExitCode> {
    match store.audit_verify().await {
        Ok(head) => {
            let hash = head.hash.map(|h| h.to_string());
            if json {
                print_json(&Value::map([
                    ("ok", Value::Bool(true)),
                    ("head_seq", Value::Int(head.seq as i64)),
                    ("head_hash", hash.clone().map_or(Value::Null, Value::Text)),
                ]))?;
            } else {
                println!(
                    "ok: {} events, head seq {} hash {}",
                    head.seq,
                    head.seq,
                    hash.as_deref().unwrap_or("(empty log)")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(artifact_core::Error::Integrity { seq, reason }) => {
            if json {
                print_json(&Value::map([
                    ("ok", Value::Bool(false)),
                    ("first_bad_seq", Value::Int(seq as i64)),
                    ("reason", text(&reason)),
                ]))?;
            }
            eprintln!("artifactstore: audit failed: first bad seq {seq}: {reason}");
            Ok(ExitCode::FAILURE)
        }
        Err(other) => Err(other.into()),
    }
}
