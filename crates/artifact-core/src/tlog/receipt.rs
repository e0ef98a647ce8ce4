//! Receipts: one event's bytes, its inclusion proof and the signed checkpoint the proof is
//! against — everything needed to check offline, with only the log's verifier key, that the
//! log committed to this event.

use serde::{Deserialize, Serialize};

use super::{
    LogVerifier, TlogError, b64_decode, b64_encode, b64_hash, leaf_hash, verify_inclusion,
};
use crate::event::Event;

/// A self-contained inclusion receipt (the JSON of `artifactstore audit prove --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The event's seq.
    pub seq: u64,
    /// Its leaf index (`seq - 1`).
    pub leaf_index: u64,
    /// The size of the tree the proof is against.
    pub tree_size: u64,
    /// base64 of the event's canonical CBOR bytes.
    pub leaf: String,
    /// The inclusion proof, base64 hashes leaf to root.
    pub proof: Vec<String>,
    /// The signed checkpoint note for `tree_size`.
    pub checkpoint: String,
}

impl Receipt {
    /// Assembles a receipt.
    pub fn new(
        seq: u64,
        tree_size: u64,
        event_bytes: &[u8],
        proof: &[super::Hash],
        checkpoint: String,
    ) -> Self {
        Self {
            seq,
            leaf_index: seq.saturating_sub(1),
            tree_size,
            leaf: b64_encode(event_bytes),
            proof: proof.iter().map(|h| b64_encode(h)).collect(),
            checkpoint,
        }
    }

    /// Parses the JSON form.
    pub fn from_json(text: &str) -> Result<Self, TlogError> {
        serde_json::from_str(text).map_err(|e| TlogError::malformed("receipt", e.to_string()))
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks everything: the checkpoint's signature by `verifier`, that it is for
    /// `tree_size`, that the leaf bytes are a canonical event with this seq, and that the
    /// proof leads from the leaf to the checkpoint's root. Returns the event.
    pub fn verify(&self, verifier: &LogVerifier) -> Result<Event, TlogError> {
        let checkpoint = verifier.open_checkpoint(&self.checkpoint)?;
        if checkpoint.tree_size != self.tree_size {
            return Err(TlogError::BadProof(format!(
                "the receipt says tree size {} but its checkpoint is for size {}",
                self.tree_size, checkpoint.tree_size
            )));
        }
        if self.seq == 0 || self.leaf_index != self.seq - 1 {
            return Err(TlogError::malformed(
                "receipt",
                format!(
                    "leaf index {} does not belong to seq {}",
                    self.leaf_index, self.seq
                ),
            ));
        }
        let bytes = b64_decode(&self.leaf, "receipt leaf")?;
        let event = Event::from_canonical_bytes(&bytes).map_err(|e| {
            TlogError::malformed("receipt leaf", format!("not a canonical event: {e}"))
        })?;
        if event.seq != self.seq {
            return Err(TlogError::malformed(
                "receipt leaf",
                format!(
                    "the event is seq {}, the receipt says {}",
                    event.seq, self.seq
                ),
            ));
        }
        let proof = self
            .proof
            .iter()
            .map(|h| b64_hash(h, "receipt proof hash"))
            .collect::<Result<Vec<_>, _>>()?;
        verify_inclusion(
            self.leaf_index,
            self.tree_size,
            &leaf_hash(&bytes),
            &proof,
            &checkpoint.root_hash,
        )?;
        Ok(event)
    }
}
