//! The S3 backend's precise errors, mapped into the core error at the crate boundary.
//!
//! Every variant names the operation and the object key, so an operator reading
//! `blob store `s3` error: …` knows which request failed and what to check.

use std::error::Error as StdError;

use object_store::client::{HttpError, HttpErrorKind};

#[derive(Debug, thiserror::Error)]
pub(crate) enum S3Error {
    #[error("starting a multipart upload to `{key}` failed: {source}")]
    StartUpload {
        key: String,
        source: object_store::Error,
    },
    #[error("uploading a part of `{key}` failed: {source}")]
    UploadPart {
        key: String,
        source: object_store::Error,
    },
    #[error("completing the multipart upload of `{key}` failed: {source}")]
    CompleteUpload {
        key: String,
        source: object_store::Error,
    },
    #[error("uploading `{key}` failed: {source}")]
    Put {
        key: String,
        source: object_store::Error,
    },
    #[error("copying `{from}` to `{to}` failed: {source}")]
    Copy {
        from: String,
        to: String,
        source: object_store::Error,
    },
    #[error("reading `{key}` failed: {source}")]
    Get {
        key: String,
        source: object_store::Error,
    },
    #[error("stat of `{key}` failed: {source}")]
    Head {
        key: String,
        source: object_store::Error,
    },
    #[error("deleting `{key}` failed: {source}")]
    Delete {
        key: String,
        source: object_store::Error,
    },
    #[error("listing `{prefix}` failed: {source}")]
    List {
        prefix: String,
        source: object_store::Error,
    },
    #[error(
        "cannot reach the S3 endpoint {endpoint}: {source}; check `endpoint`, `allow_http` and the network"
    )]
    Unreachable {
        endpoint: String,
        source: object_store::Error,
    },
    #[error(
        "the S3 endpoint {endpoint} refused the credentials for bucket `{bucket}`: {source}; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the role) and the bucket policy"
    )]
    Credentials {
        endpoint: String,
        bucket: String,
        source: object_store::Error,
    },
    #[error(
        "bucket `{bucket}` does not exist at {endpoint}: create it, or fix `bucket` / `region` / `endpoint`"
    )]
    NoBucket {
        endpoint: String,
        bucket: String,
        source: object_store::Error,
    },
    #[error("bucket `{bucket}` at {endpoint} is not writable (probe `{key}`): {source}")]
    NotWritable {
        endpoint: String,
        bucket: String,
        key: String,
        source: object_store::Error,
    },
}

impl From<S3Error> for artifact_core::Error {
    fn from(error: S3Error) -> Self {
        artifact_core::Error::Backend {
            store: "s3",
            source: Box::new(error),
        }
    }
}

/// Whether an object_store error means "no HTTP answer at all" (connection refused, DNS, TLS,
/// timeout) rather than an answer from the server.
pub(crate) fn is_unreachable(error: &object_store::Error) -> bool {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(http) = current.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Connect | HttpErrorKind::Timeout | HttpErrorKind::Request
            );
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused | ConnectionReset | ConnectionAborted | TimedOut | NotConnected
            ) {
                return true;
            }
        }
        source = current.source();
    }
    false
}
