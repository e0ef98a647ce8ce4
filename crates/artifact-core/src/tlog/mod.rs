//! The verifiable log (issue 12): an RFC 6962 Merkle tree over the event log, C2SP
//! `tlog-checkpoint` signed notes, and RFC 9162 inclusion and consistency proofs. Pure: no IO.
//!
//! - Leaf `i` of the tree is the event with `seq = i + 1`; its hash is
//!   `SHA-256(0x00 ‖ canonical CBOR bytes of the event)` — exactly the bytes the catalog stores.
//!   Interior nodes are `SHA-256(0x01 ‖ left ‖ right)` ([`leaf_hash`], [`node_hash`]).
//! - [`tree`]: which stored nodes (complete subtrees, [`NodeId`]) a root or a proof needs, the
//!   nodes one append creates, proof generation from a [`NodeSource`], and a [`Frontier`] that
//!   folds a stream of leaves into roots (rebuilds and independent verification).
//! - [`proof`]: the RFC 9162 §2.1.3.2 and §2.1.4.2 verification algorithms.
//! - [`note`]: C2SP signed notes with Ed25519 keys ([`note::LogSigner`],
//!   [`note::LogVerifier`]) and the checkpoint body ([`note::Checkpoint`]).
//! - [`receipt`]: a self-contained proof that one event is in a signed checkpoint, checked
//!   offline.
//!
//! The catalog stores the complete-subtree hashes keyed by `(level, index)`, written in the
//! same transaction as each event, so a root or a proof costs `O(log n)` node reads.

pub mod note;
pub mod proof;
pub mod receipt;
pub mod tree;

use sha2::{Digest as _, Sha256};

pub use note::{Checkpoint, LogSigner, LogVerifier};
pub use proof::{verify_consistency, verify_inclusion};
pub use receipt::Receipt;
pub use tree::{Frontier, NodeId, NodeSource};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ data)`: the hash of a leaf (RFC 6962 §2.1).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node (RFC 6962 §2.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// Why a tree operation, a proof, a note or a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogError {
    /// Text or bytes that do not parse as what they claim to be.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed (`checkpoint`, `signed note`, `verifier key`, …).
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A note carries no valid signature by the expected key.
    #[error("signature check failed: {0}")]
    BadSignature(String),
    /// A proof does not lead to the expected root.
    #[error("proof does not verify: {0}")]
    BadProof(String),
    /// Sizes or indexes that no proof can relate (e.g. a leaf beyond the tree).
    #[error("invalid range: {0}")]
    Range(String),
    /// A stored tree node a computation needed is absent.
    #[error("merkle tree node at level {} index {} is missing", .0.level, .0.index)]
    MissingNode(NodeId),
}

impl TlogError {
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        TlogError::Malformed {
            what,
            reason: reason.into(),
        }
    }
}

impl From<TlogError> for crate::Error {
    fn from(e: TlogError) -> Self {
        match e {
            TlogError::MissingNode(id) => crate::Error::Integrity {
                seq: (id.index << id.level) + 1,
                reason: format!(
                    "merkle tree node at level {} index {} is missing (run `artifactstore admin rebuild-tree`)",
                    id.level, id.index
                ),
            },
            other => crate::Error::InvalidInput(other.to_string()),
        }
    }
}

/// Standard base64 (RFC 4648 §4, padded), the encoding of roots, proofs and signatures.
pub fn b64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard padded base64.
pub fn b64_decode(text: &str, what: &'static str) -> Result<Vec<u8>, TlogError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| TlogError::malformed(what, format!("not base64: {e}")))
}

/// Decodes one base64 hash of 32 bytes.
pub fn b64_hash(text: &str, what: &'static str) -> Result<Hash, TlogError> {
    let bytes = b64_decode(text, what)?;
    bytes.as_slice().try_into().map_err(|_| {
        TlogError::malformed(what, format!("a hash is 32 bytes, this is {}", bytes.len()))
    })
}

#[cfg(test)]
mod reference;
