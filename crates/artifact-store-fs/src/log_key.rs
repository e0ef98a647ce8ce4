//! The verifiable log's Ed25519 signing key as a file (ADR 0011): created by `init` with mode
//! 0600 in the data directory (or at `[log] key_path`), never stored in the catalog.
//!
//! The file holds one line in the format of Go's `golang.org/x/mod/sumdb/note` signer keys,
//! `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ seed)>`; the name is the log's origin.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use artifact_core::config::Config;
use artifact_core::tlog::LogSigner;
use artifact_core::{Error, Result};

/// Reads the signing key at `path`. Refuses a file that others can read.
pub fn load_log_signer(path: &Path) -> Result<LogSigner> {
    let metadata = std::fs::metadata(path).map_err(|e| {
        Error::Config(format!(
            "cannot read the log signing key {}: {e} (`artifactstore init` creates it; or set [log] key_path)",
            path.display()
        ))
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Config(format!(
            "the log signing key {} is accessible to other users (mode {mode:o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "cannot read the log signing key {}: {e}",
            path.display()
        ))
    })?;
    LogSigner::from_skey(&text)
        .map_err(|e| Error::Config(format!("log signing key {}: {e}", path.display())))
}

/// The default origin of a new key: `artifactstore/` and 16 hex digits of the SHA-256 of
/// its public key (unique per log, stable for the key's life).
fn default_origin(seed: [u8; 32]) -> Result<String> {
    let provisional = LogSigner::from_seed("artifactstore", seed)?;
    let public = provisional.public_key();
    let digest = artifact_core::digest::Sha256::of(&public).to_string();
    let hex = digest.rsplit(':').next().unwrap_or(&digest);
    Ok(format!("artifactstore/{}", &hex[..16]))
}

/// Creates a new signing key at `path` (mode 0600; refuses to overwrite) named `origin`, or
/// the default origin.
pub fn create_log_signer(path: &Path, origin: Option<&str>) -> Result<LogSigner> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut seed))
        .map_err(|e| Error::Config(format!("cannot read /dev/urandom for a new log key: {e}")))?;
    let name = match origin {
        Some(origin) => origin.to_owned(),
        None => default_origin(seed)?,
    };
    let signer = LogSigner::from_seed(&name, seed)
        .map_err(|e| Error::Config(format!("[log] origin: {e}")))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            Error::Config(format!(
                "cannot create the log signing key {}: {e}",
                path.display()
            ))
        })?;
    file.write_all(format!("{}\n", signer.to_skey()).as_bytes())?;
    file.sync_all()?;
    if let Some(parent) = path.parent() {
        // The key's directory entry survives a crash too.
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(signer)
}

/// The signing key of the store in `data_dir` (at `[log] key_path` if set), created first if
/// `create` and it does not exist.
pub fn log_signer(data_dir: &Path, config: &Config, create: bool) -> Result<LogSigner> {
    let path = config.log.key_path(data_dir);
    if create && !path.exists() {
        return create_log_signer(&path, config.log.origin.as_deref());
    }
    load_log_signer(&path)
}
