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

impl From<FsError> for artifact_core::Error {
    fn from(error: FsError) -> Self {
        artifact_core::Error::Backend {
            store: "fs",
            source: Box::new(error),
        }
    }
}
