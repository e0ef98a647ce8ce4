//! `artifactstore audit key|checkpoint|checkpoints|prove|consistency|verify --checkpoint|
//! verify-receipt`: the verifiable log (ADR 0011) on the embedded store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use artifact_core::ArtifactStore;
use artifact_core::catalog::StoredCheckpoint;
use artifact_core::cbor::Value;
use artifact_core::config::Config;
use artifact_core::tlog::{self, LogVerifier, Receipt};

use crate::args::AuditCommand;
use crate::output::{print_json, text};

/// A verifier key given on the command line: the key text itself, or a file holding it.
fn verifier_from_arg(key: &str) -> anyhow::Result<LogVerifier> {
    let path = Path::new(key);
    let text = if !key.contains('+') && path.exists() {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the verifier key {}", path.display()))?
    } else if key.contains('+') {
        key.to_owned()
    } else {
        bail!("--key `{key}` is neither a verifier key (NAME+KEYID+KEY) nor a readable file");
    };
    Ok(LogVerifier::from_vkey(&text)?)
}

fn checkpoint_value(origin: &str, checkpoint: &StoredCheckpoint) -> Value {
    Value::map([
        ("origin", text(origin)),
        ("tree_size", Value::Int(checkpoint.tree_size as i64)),
        ("root_hash", text(tlog::b64_encode(&checkpoint.root_hash))),
        ("note", text(checkpoint.note.clone())),
    ])
}

/// Runs an audit subcommand of the verifiable log on a local store.
pub(crate) async fn audit(
    store: &ArtifactStore,
    data_dir: &Path,
    config: &Config,
    command: AuditCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let signer = || artifact_store_fs::log_signer(data_dir, config, false);
    match command {
        AuditCommand::Key => {
            let verifier = signer()?.verifier();
            if json {
                print_json(&Value::map([
                    ("origin", text(verifier.name())),
                    ("vkey", text(verifier.to_vkey())),
                ]))?;
            } else {
                println!("{}", verifier.to_vkey());
            }
        }
        AuditCommand::Checkpoint => {
            let signer = signer()?;
            // Published to the store's sinks (`[log] publish_dir`, `[log.publish_s3]`).
            let checkpoint = store.checkpoint(&signer).await?;
            if json {
                print_json(&checkpoint_value(signer.name(), &checkpoint))?;
            } else {
                print!("{}", checkpoint.note);
            }
        }
        AuditCommand::Checkpoints { after, limit } => {
            let checkpoints = store.checkpoints(after, limit).await?;
            if json {
                let origin =
                    |c: &StoredCheckpoint| c.note.lines().next().unwrap_or_default().to_owned();
                print_json(&Value::map([(
                    "checkpoints",
                    Value::Array(
                        checkpoints
                            .iter()
                            .map(|c| checkpoint_value(&origin(c), c))
                            .collect(),
                    ),
                )]))?;
            } else {
                for c in &checkpoints {
                    println!(
                        "{}\t{}\t{}",
                        c.tree_size,
                        tlog::b64_encode(&c.root_hash),
                        c.created_at.map(|t| t.to_string()).unwrap_or_default()
                    );
                }
            }
        }
        AuditCommand::Prove { seq, tree_size } => {
            if tree_size.is_none() {
                let covered = store
                    .latest_checkpoint()
                    .await?
                    .is_some_and(|latest| latest.tree_size >= seq);
                if !covered {
                    store.checkpoint(&signer()?).await?;
                }
            }
            let receipt = store.inclusion_proof(seq, tree_size).await?;
            if json {
                crate::output::print_result(&receipt)?;
            } else {
                println!(
                    "seq {} is leaf {} of the checkpoint of tree size {} ({} proof hashes); save the receipt with --json",
                    receipt.seq,
                    receipt.leaf_index,
                    receipt.tree_size,
                    receipt.proof.len()
                );
            }
        }
        AuditCommand::Consistency { from_size, to_size } => {
            let proof = store.consistency_proof(from_size, to_size).await?;
            let hashes: Vec<String> = proof.proof.iter().map(|h| tlog::b64_encode(h)).collect();
            if json {
                print_json(&Value::map([
                    ("from_size", Value::Int(proof.from_size as i64)),
                    ("to_size", Value::Int(proof.to_size as i64)),
                    (
                        "proof",
                        Value::Array(hashes.into_iter().map(text).collect()),
                    ),
                ]))?;
            } else {
                println!(
                    "tree size {} extends tree size {}:",
                    proof.to_size, proof.from_size
                );
                for hash in hashes {
                    println!("{hash}");
                }
            }
        }
        AuditCommand::Verify {
            checkpoint,
            key,
            published,
        } => {
            if published {
                return verify_published(store, key.as_deref(), &signer, json).await;
            }
            let Some(path) = checkpoint else {
                bail!("--key needs --checkpoint FILE or --published");
            };
            return verify_checkpoint(store, &path, key.as_deref(), &signer, json).await;
        }
        AuditCommand::VerifyReceipt { file, key } => return verify_receipt(&file, &key, json),
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit verify --published`: today's log against the latest checkpoint of every sink.
async fn verify_published(
    store: &ArtifactStore,
    key: Option<&str>,
    signer: &dyn Fn() -> artifact_core::Result<tlog::LogSigner>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if store.checkpoint_sinks().is_empty() {
        bail!(
            "no checkpoint sink is configured: set `[log] publish_dir` or `[log.publish_s3]` in config.toml"
        );
    }
    let verifier = match key {
        Some(key) => verifier_from_arg(key)?,
        None => signer()?.verifier(),
    };
    let checks = store.verify_published(&verifier).await?;
    let ok = checks.iter().all(|c| c.ok);
    if json {
        println!("{}", serde_json::json!({ "ok": ok, "published": checks }));
    } else {
        for check in &checks {
            match (check.ok, check.tree_size) {
                (true, Some(size)) => println!(
                    "ok: the log is consistent with the checkpoint of tree size {size} published to {}",
                    check.sink
                ),
                (true, None) => println!("ok: {} holds no checkpoint yet", check.sink),
                (false, _) => eprintln!(
                    "artifactstore: audit failed: {}: {}",
                    check.sink,
                    check.reason.as_deref().unwrap_or("inconsistent")
                ),
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn verify_checkpoint(
    store: &ArtifactStore,
    path: &PathBuf,
    key: Option<&str>,
    signer: &dyn Fn() -> artifact_core::Result<tlog::LogSigner>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let note = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the checkpoint {}", path.display()))?;
    let verifier = match key {
        Some(key) => verifier_from_arg(key)?,
        None => signer()?.verifier(),
    };
    match store.verify_against_checkpoint(&note, &verifier).await {
        Ok(checkpoint) => {
            let head = store.head().await?.seq;
            if json {
                print_json(&Value::map([
                    ("ok", Value::Bool(true)),
                    ("tree_size", Value::Int(checkpoint.tree_size as i64)),
                    ("head_seq", Value::Int(head as i64)),
                ]))?;
            } else {
                println!(
                    "ok: the log ({head} events) is consistent with the checkpoint of tree size {} signed by {}",
                    checkpoint.tree_size,
                    verifier.name()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(artifact_core::Error::Integrity { seq, reason }) => {
            if json {
                print_json(&Value::map([
                    ("ok", Value::Bool(false)),
                    ("first_diverging_size", Value::Int(seq as i64)),
                    ("reason", text(reason.clone())),
                ]))?;
            }
            eprintln!("artifactstore: audit failed: first diverging tree size {seq}: {reason}");
            Ok(ExitCode::FAILURE)
        }
        Err(other) => Err(other.into()),
    }
}

/// `audit verify-receipt FILE --key VKEY`: needs no store.
pub(crate) fn verify_receipt(file: &Path, key: &str, json: bool) -> anyhow::Result<ExitCode> {
    let verifier = verifier_from_arg(key)?;
    let receipt = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the receipt {}", file.display()))?;
    let result = Receipt::from_json(&receipt).and_then(|receipt| {
        let event = receipt.verify(&verifier)?;
        Ok((receipt, event))
    });
    match result {
        Ok((receipt, event)) => {
            if json {
                print_json(&Value::map([
                    ("ok", Value::Bool(true)),
                    ("seq", Value::Int(receipt.seq as i64)),
                    ("tree_size", Value::Int(receipt.tree_size as i64)),
                    ("origin", text(verifier.name())),
                    ("event", event.to_value()),
                ]))?;
            } else {
                println!(
                    "ok: seq {} ({}) is in the log {} at tree size {}",
                    receipt.seq,
                    event.event_type,
                    verifier.name(),
                    receipt.tree_size
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            if json {
                print_json(&Value::map([
                    ("ok", Value::Bool(false)),
                    ("reason", text(error.to_string())),
                ]))?;
            }
            eprintln!("artifactstore: receipt rejected: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
