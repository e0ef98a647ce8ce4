//! The fs backend's precise errors, mapped into the core error at the crate boundary.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create a temporary file in {dir}: {source}")]
    CreateTemp {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path} failed: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("making {path} durable failed: {source}")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("publishing {from} as {to} failed: {source}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    #[error("reading {path} failed: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("deleting {path} failed: {source}")]
    Delete {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the writer thread stopped unexpectedly")]
    WriterGone,
}

impl FsError {
    /// The IO error underneath, if any.
    fn io(&self) -> Option<&std::io::Error> {
        match self {
            FsError::CreateDir { source, .. }
            | FsError::CreateTemp { source, .. }
            | FsError::Write { source, .. }
            | FsError::Sync { source, .. }
            | FsError::Rename { source, .. }
            | FsError::Read { source, .. }
            | FsError::Delete { source, .. } => Some(source),
            FsError::WriterGone => None,
        }
    }
}

impl From<FsError> for artifact_core::Error {
    /// A full disk (or quota) becomes [`artifact_core::Error::StorageFull`] (the server's 507),
    /// naming the backend but no path; everything else is `Backend` with the whole story.
    fn from(error: FsError) -> Self {
        if let Some(io) = error.io()
            && artifact_core::error::is_storage_full(io)
        {
            return artifact_core::Error::StorageFull {
                what: "blob store `fs`".to_owned(),
                source: std::io::Error::new(io.kind(), io.to_string()),
            };
        }
        artifact_core::Error::Backend {
            store: "fs",
            source: Box::new(error),
        }
    }
}
