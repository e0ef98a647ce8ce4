//! The client's errors: the store's own locally, the server's problem remotely.

use artifact_core::results::DecodeError;

/// What a [`crate::Client`] call answers on failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The store's own error, unchanged: the embedded store refused or failed, or a value
    /// failed the checks `artifact_core` defines (a malformed manifest, event or digest).
    #[error(transparent)]
    Core(#[from] artifact_core::Error),
    /// The server answered with an error status; `message` is the problem's detail with the
    /// status (`… (HTTP 404)`).
    #[error("{message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The problem's `detail` (or the body) and the status, on one line.
        message: String,
    },
    /// No answer: the connection failed or was cut.
    #[error("cannot reach the server {server}: {reason}")]
    Unreachable {
        /// The server's base URL.
        server: String,
        /// Why.
        reason: String,
    },
    /// The server answered something that is not what its API promises (a missing header, a
    /// malformed document, bytes that do not match their digests).
    #[error("{0}")]
    Protocol(String),
    /// An answer that did not decode into its route's typed result.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A local file operation failed.
    #[error("{what}")]
    Io {
        /// What was being done (`cannot open …`).
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An upload failed for good after retries.
    #[error("upload of {path} failed after {attempts} attempts")]
    Upload {
        /// The file.
        path: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        source: Box<ClientError>,
    },
    /// The arguments are not valid (caught before anything is sent).
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    /// The HTTP status of a server's error answer, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            ClientError::Upload { source, .. } => source.status(),
            _ => None,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io {
            what: what.into(),
            source,
        }
    }
}

/// A client call's result.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// JSON the server sent that is not valid.
impl From<artifact_core::jcs::JsonError> for ClientError {
    fn from(error: artifact_core::jcs::JsonError) -> Self {
        ClientError::Protocol(error.to_string())
    }
}

/// A digest the server sent that does not parse.
impl From<artifact_core::digest::DigestParseError> for ClientError {
    fn from(error: artifact_core::digest::DigestParseError) -> Self {
        ClientError::Protocol(error.to_string())
    }
}
