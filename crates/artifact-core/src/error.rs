//! The library's error type.

use crate::digest::{BlobInfo, DigestParseError};

/// A blob a manifest names that the store does not hold (with the same size and digests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingBlob {
    /// The file path in the manifest.
    pub path: String,
    /// What the manifest says the blob is.
    pub expected: BlobInfo,
}

/// Everything that can go wrong in the library.
///
/// Variants name what went wrong precisely enough for the server to pick a status code
/// (`NotFound` → 404, `Conflict` → 409, `InvalidInput`/`DigestMismatch`/`MissingBlobs` → 400/422)
/// and for the CLI to print one actionable line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named thing does not exist.
    #[error("{what} not found: {id}")]
    NotFound {
        /// What kind of thing (`package`, `blob`, `file`, `hold`).
        what: &'static str,
        /// How it was named.
        id: String,
    },
    /// The thing existed but its bytes were purged by garbage collection (its manifest and
    /// events are kept).
    #[error("gone: {0}")]
    Gone(String),
    /// The request contradicts what is already recorded; [`Conflict::kind`] says how (callers
    /// branch on it, never on the message).
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The request is malformed or breaks a rule; nothing was changed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Content did not hash to the digest the caller expected; nothing was stored.
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        /// What the caller claimed.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A manifest names blobs the store does not hold; upload them first.
    #[error("{} blob(s) named by the manifest are not stored (upload them first): {}", missing.len(), summarize_missing(missing))]
    MissingBlobs {
        /// Every missing blob.
        missing: Vec<MissingBlob>,
    },
    /// Stored bytes no longer match their digests (or size): the blob is corrupt.
    #[error(
        "stored blob {blake3} is corrupt: {reason}; run `artifactstore verify` and restore it from a replica or backup"
    )]
    Corrupt {
        /// The blob.
        blake3: String,
        /// What was found.
        reason: String,
    },
    /// The event log fails verification.
    #[error("event log integrity failure at seq {seq}: {reason}")]
    Integrity {
        /// The first bad sequence number.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// Bad configuration.
    #[error("configuration error: {0}")]
    Config(String),
    /// Canonical CBOR input rejected.
    #[error(transparent)]
    Cbor(#[from] crate::cbor::CborError),
    /// JSON input rejected.
    #[error(transparent)]
    Json(#[from] crate::jcs::JsonError),
    /// A digest's text form rejected.
    #[error(transparent)]
    Digest(#[from] DigestParseError),
    /// The metadata database failed.
    #[error("metadata store error: {0}")]
    Database(#[source] sqlx::Error),
    /// The catalog is locked by another process and stayed locked for the whole busy timeout
    /// (`[metadata] busy_timeout`).
    #[error(
        "catalog is locked by another process (still locked after the busy timeout, [metadata] busy_timeout): {0}"
    )]
    Locked(String),
    /// The catalog was opened read-only and the operation would write.
    #[error("the catalog is open read-only: {0}")]
    ReadOnly(String),
    /// A migration could not be applied.
    #[error("metadata store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A blob backend failed.
    #[error("blob store `{store}` error: {source}")]
    Backend {
        /// Which backend.
        store: &'static str,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Local IO failed.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// The storage a write needed is full or over quota (`ENOSPC`, `EDQUOT`). Nothing was
    /// stored and the partial bytes were removed; reads keep working. Free space and retry.
    #[error("storage full: {what} has no space left ({source}); nothing was stored")]
    StorageFull {
        /// Which storage, without paths (`blob store `fs``, `upload directory`).
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// How a request contradicts what is already recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConflictKind {
    /// The package is retained permanently: it cannot be extended.
    PermanentRetention,
    /// The hold was already released.
    HoldReleased,
    /// The token was already revoked.
    TokenRevoked,
    /// The package was purged by garbage collection: retention no longer applies to it.
    PackagePurged,
    /// The name and version belonged to a package that was purged (never reused).
    NameRetired,
    /// The name and version exist with a different manifest.
    ManifestDiffers,
    /// The blob is being deleted by garbage collection.
    BlobBeingDeleted,
    /// The blob's digests or size disagree with what is recorded for it.
    BlobMismatch,
}

/// The payload of [`Error::Conflict`]: its kind, and the message shown to people (derefs to
/// `str`, so it reads like the message it always was).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    kind: ConflictKind,
    message: String,
}

impl Conflict {
    /// A conflict of `kind` described by `message`.
    pub fn new(kind: ConflictKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What kind of conflict.
    pub fn kind(&self) -> ConflictKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::ops::Deref for Conflict {
    type Target = str;

    fn deref(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Whether an IO error means the storage is full or over quota (`ENOSPC`, `EDQUOT`), as
/// opposed to any other failure.
pub fn is_storage_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// SQLite's SQLITE_BUSY and its extended codes (recovery, snapshot, timeout).
const SQLITE_BUSY_CODES: [&str; 4] = ["5", "261", "517", "773"];

impl From<sqlx::Error> for Error {
    /// A database error; a lock that outlasted the busy timeout becomes [`Error::Locked`].
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error
            && db
                .code()
                .is_some_and(|code| SQLITE_BUSY_CODES.contains(&code.as_ref()))
        {
            return Error::Locked(format!(
                "{} (SQLite code {})",
                db.message(),
                db.code().unwrap_or_default()
            ));
        }
        Error::Database(error)
    }
}

fn summarize_missing(missing: &[MissingBlob]) -> String {
    let mut names: Vec<String> = missing
        .iter()
        .take(5)
        .map(|m| format!("{} ({})", m.path, m.expected.blake3.fmt_short()))
        .collect();
    if missing.len() > 5 {
        names.push(format!("and {} more", missing.len() - 5));
    }
    names.join(", ")
}

impl Error {
    /// An IO error of a write to `what`: [`Error::StorageFull`] when the storage is full or
    /// over quota, else [`Error::Io`].
    pub fn from_write(what: &str, error: std::io::Error) -> Self {
        if is_storage_full(&error) {
            Error::StorageFull {
                what: what.to_owned(),
                source: error,
            }
        } else {
            Error::Io(error)
        }
    }

    /// Whether this error means a full disk: [`Error::StorageFull`], or the metadata store
    /// refusing a write for lack of space (SQLite `SQLITE_FULL`, PostgreSQL `disk_full`).
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::StorageFull { .. } => true,
            Error::Database(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("13" | "53100"))
            }
            Error::Database(sqlx::Error::Io(io)) | Error::Io(io) => is_storage_full(io),
            _ => false,
        }
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(kind: ConflictKind, message: impl Into<String>) -> Self {
        Error::Conflict(Conflict::new(kind, message))
    }

    /// The kind of conflict, if this is one.
    pub fn conflict_kind(&self) -> Option<ConflictKind> {
        match self {
            Error::Conflict(conflict) => Some(conflict.kind()),
            _ => None,
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            what,
            id: id.into(),
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
