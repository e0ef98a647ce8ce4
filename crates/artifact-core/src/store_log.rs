//! The verifiable log on [`ArtifactStore`] (issue 12, ADR 0011): signed checkpoints, inclusion
//! and consistency proofs, and checking today's log against a checkpoint saved earlier.
//!
//! The signing key is passed in ([`LogSigner`]): it never lives in the catalog, and a store
//! opened without it can still prove and verify, only not sign.

use serde::Serialize;

use crate::catalog::StoredCheckpoint;
use crate::error::{Error, Result};
use crate::store::ArtifactStore;
use crate::tlog::{self, Checkpoint, Hash, LogSigner, LogVerifier, Receipt, tree};

/// A consistency proof between two tree sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The older size.
    pub from_size: u64,
    /// The newer size.
    pub to_size: u64,
    /// RFC 9162 §2.1.4 proof hashes.
    pub proof: Vec<Hash>,
}

/// The JSON of a consistency proof (`{from_size, to_size, proof}`, proof hashes base64).
#[derive(Clone, Debug, Serialize)]
pub struct ConsistencyProofJson {
    /// The older size.
    pub from_size: u64,
    /// The newer size.
    pub to_size: u64,
    /// base64 hashes.
    pub proof: Vec<String>,
}

impl ConsistencyProof {
    /// The JSON form.
    pub fn to_json(&self) -> ConsistencyProofJson {
        ConsistencyProofJson {
            from_size: self.from_size,
            to_size: self.to_size,
            proof: self.proof.iter().map(|h| tlog::b64_encode(h)).collect(),
        }
    }
}

impl ArtifactStore {
    /// Makes a checkpoint of the whole log, signed by `signer`, if the log grew since the
    /// latest one; returns the latest checkpoint either way. Changes no event.
    ///
    /// Before signing, the log must still extend the last checkpoint published to each sink
    /// of the store ([`crate::publish`]): the stored tree's root at that size must be the
    /// published root. If it is not, history was rewritten (or events removed) since, and
    /// signing a new checkpoint would launder the rewrite: [`Error::Integrity`] names the sink
    /// and the size, and nothing is signed. The checkpoint (new or the latest) is then
    /// published to every sink; a fork there (a different note for that size) is an
    /// integrity error, any other failure a backend error naming every sink that failed,
    /// after the checkpoint itself was stored.
    pub async fn checkpoint(&self, signer: &LogSigner) -> Result<StoredCheckpoint> {
        self.check_sinks_extended(&signer.verifier()).await?;
        let at = self.clock().now();
        let (checkpoint, _new) = self
            .catalog()
            .make_checkpoint(at, |size, root| {
                Ok(signer.sign_checkpoint(&Checkpoint::new(signer.name(), size, root))?)
            })
            .await?;
        let mut fork = None;
        let mut failed = Vec::new();
        for (index, sink) in self.checkpoint_sinks().iter().enumerate() {
            match sink.publish(&checkpoint).await {
                Ok(_) => self.set_published(index, checkpoint.tree_size, checkpoint.root_hash),
                Err(e @ Error::Integrity { .. }) => {
                    fork.get_or_insert(e);
                }
                Err(other) => failed.push(format!("{}: {other}", sink.describe())),
            }
        }
        if let Some(fork) = fork {
            return Err(fork);
        }
        if !failed.is_empty() {
            return Err(Error::Backend {
                store: "checkpoint sink",
                source: format!(
                    "the checkpoint of tree size {} was made but publishing it failed ({}); the next checkpoint publishes it again",
                    checkpoint.tree_size,
                    failed.join("; ")
                )
                .into(),
            });
        }
        Ok(checkpoint)
    }

    /// Refuses (before anything is signed) when the log no longer extends the last checkpoint
    /// published to a sink: the stored tree's root at that size differs from the published
    /// root, or the log is shorter than it.
    async fn check_sinks_extended(&self, verifier: &LogVerifier) -> Result<()> {
        for (index, sink) in self.checkpoint_sinks().iter().enumerate() {
            let (size, root) = match self.known_published(index) {
                Some(known) => known,
                None => {
                    let note = sink.latest().await.map_err(|e| Error::Backend {
                        store: "checkpoint sink",
                        source: format!(
                            "cannot read the latest checkpoint published to {}: {e}; nothing was signed",
                            sink.describe()
                        )
                        .into(),
                    })?;
                    let Some(note) = note else { continue };
                    let published = verifier.open_checkpoint(&note).map_err(|e| {
                        Error::Integrity {
                            seq: 0,
                            reason: format!(
                                "the latest checkpoint published to {} does not verify with this store's key ({e}); nothing was signed (after a key rotation, publish under a new prefix or directory)",
                                sink.describe()
                            ),
                        }
                    })?;
                    (published.tree_size, published.root_hash)
                }
            };
            let head = self.catalog().head().await?.seq;
            if size > head {
                return Err(Error::Integrity {
                    seq: size,
                    reason: format!(
                        "{} holds a checkpoint of tree size {size} but the log has {head} events (events were removed); nothing was signed",
                        sink.describe()
                    ),
                });
            }
            if self.catalog().tree_size().await? < size {
                self.catalog().catch_up_tree().await?;
            }
            let nodes = self.catalog().tree_nodes(&tree::root_nodes(size)).await?;
            let root_now = tree::root(&nodes, size)?;
            if root_now != root {
                return Err(Error::Integrity {
                    seq: size,
                    reason: format!(
                        "the log no longer extends the checkpoint of tree size {size} published to {} (history up to it was rewritten); nothing was signed, so the rewrite cannot be hidden behind a new checkpoint (`audit verify --published` names the first diverging size)",
                        sink.describe()
                    ),
                });
            }
            self.set_published(index, size, root);
        }
        Ok(())
    }

    /// Checks today's log against the latest checkpoint each of the store's sinks holds
    /// ([`ArtifactStore::verify_against_checkpoint`], signatures by `verifier`), one entry per
    /// sink. This is what catches a consistent rewrite of the whole catalog, checkpoint table
    /// included: the published notes are out of the rewriter's reach.
    pub async fn verify_published(
        &self,
        verifier: &LogVerifier,
    ) -> Result<Vec<crate::publish::PublishedCheck>> {
        let mut checks = Vec::with_capacity(self.checkpoint_sinks().len());
        for sink in self.checkpoint_sinks() {
            let mut check = crate::publish::PublishedCheck {
                sink: sink.describe(),
                tree_size: None,
                ok: true,
                first_diverging_size: None,
                reason: None,
            };
            match sink.latest().await {
                Ok(None) => {
                    if let Some(stored) = self.latest_checkpoint().await? {
                        check.ok = false;
                        check.reason = Some(format!(
                            "holds no checkpoint although the store made one of tree size {} (its contents were removed, or it was configured since: run `audit checkpoint`)",
                            stored.tree_size
                        ));
                    }
                }
                Ok(Some(note)) => match self.verify_against_checkpoint(&note, verifier).await {
                    Ok(checkpoint) => check.tree_size = Some(checkpoint.tree_size),
                    Err(Error::Integrity { seq, reason }) => {
                        check.ok = false;
                        check.first_diverging_size = Some(seq);
                        check.reason = Some(reason);
                    }
                    Err(other) => {
                        check.ok = false;
                        check.reason = Some(other.to_string());
                    }
                },
                Err(e) => {
                    check.ok = false;
                    check.reason = Some(format!("cannot read the sink: {e}"));
                }
            }
            checks.push(check);
        }
        Ok(checks)
    }

    /// The latest checkpoint, if any was made.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>> {
        self.catalog().latest_checkpoint().await
    }

    /// Checkpoints with a tree size above `after`, smallest first, at most `limit`.
    pub async fn checkpoints(
        &self,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        self.catalog().checkpoints(after, limit).await
    }

    async fn checkpoint_for(&self, tree_size: Option<u64>) -> Result<StoredCheckpoint> {
        match tree_size {
            Some(size) => self.catalog().checkpoint_at(size).await?.ok_or_else(|| {
                Error::not_found(
                    "checkpoint",
                    format!("tree size {size} (list them with `artifactstore audit checkpoints`)"),
                )
            }),
            None => self.catalog().latest_checkpoint().await?.ok_or_else(|| {
                Error::not_found(
                    "checkpoint",
                    "any (make one with `artifactstore audit checkpoint`)",
                )
            }),
        }
    }

    /// A receipt for event `seq` against the checkpoint of `tree_size` (default: the latest):
    /// the event's bytes, its inclusion proof and the signed checkpoint.
    pub async fn inclusion_proof(&self, seq: u64, tree_size: Option<u64>) -> Result<Receipt> {
        let checkpoint = self.checkpoint_for(tree_size).await?;
        let size = checkpoint.tree_size;
        if seq == 0 || seq > size {
            return Err(Error::invalid(format!(
                "seq {seq} is not in the checkpoint of tree size {size} (it covers seq 1 to {size}; make a newer checkpoint with `artifactstore audit checkpoint`)"
            )));
        }
        let bytes = self
            .catalog()
            .event_bytes(seq)
            .await?
            .ok_or_else(|| Error::Integrity {
                seq,
                reason: "the event is missing from a checkpointed log".to_owned(),
            })?;
        let nodes = self
            .catalog()
            .tree_nodes(&tree::inclusion_nodes(seq - 1, size))
            .await?;
        let proof = tree::inclusion_proof(&nodes, seq - 1, size)?;
        // A damaged tree or event must not yield a receipt that fails later, offline.
        tlog::verify_inclusion(
            seq - 1,
            size,
            &tlog::leaf_hash(&bytes),
            &proof,
            &checkpoint.root_hash,
        )
        .map_err(|e| Error::Integrity {
            seq,
            reason: format!(
                "the stored event or tree disagrees with the checkpoint of size {size}: {e} (run `artifactstore audit verify`)"
            ),
        })?;
        Ok(Receipt::new(seq, size, &bytes, &proof, checkpoint.note))
    }

    /// A proof that the tree of `to_size` (default: the latest checkpoint's) extends the tree
    /// of `from_size`.
    pub async fn consistency_proof(
        &self,
        from_size: u64,
        to_size: Option<u64>,
    ) -> Result<ConsistencyProof> {
        let to_size = match to_size {
            Some(size) => size,
            None => self.checkpoint_for(None).await?.tree_size,
        };
        let head = self.head().await?.seq;
        if to_size > head {
            return Err(Error::invalid(format!(
                "to size {to_size} is beyond the log ({head} events)"
            )));
        }
        if from_size > to_size {
            return Err(Error::invalid(format!(
                "from size {from_size} is larger than to size {to_size}"
            )));
        }
        let nodes = self
            .catalog()
            .tree_nodes(&tree::consistency_nodes(from_size, to_size))
            .await?;
        Ok(ConsistencyProof {
            from_size,
            to_size,
            proof: tree::consistency_proof(&nodes, from_size, to_size)?,
        })
    }

    /// Checks an earlier checkpoint (a signed note saved outside the store) against today's
    /// log: its signature by `verifier`, then that the roots recomputed from the stored event
    /// bytes — not from the stored tree, which whoever rewrote the log may have rewritten too —
    /// match it and every stored checkpoint up to its size that `verifier` signed. Fails with
    /// [`Error::Integrity`] whose `seq` is the first diverging tree size.
    pub async fn verify_against_checkpoint(
        &self,
        note: &str,
        verifier: &LogVerifier,
    ) -> Result<Checkpoint> {
        let given = verifier.open_checkpoint(note)?;
        let mut signed: Vec<(u64, Hash)> = vec![(given.tree_size, given.root_hash)];
        let mut after = None;
        loop {
            let page = self.checkpoints(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.tree_size);
            for stored in &page {
                if stored.tree_size > given.tree_size {
                    break;
                }
                // Only notes this key signed count; a stored one that does not verify is
                // itself tampered with and proves nothing either way.
                if let Ok(checkpoint) = verifier.open_checkpoint(&stored.note) {
                    signed.push((checkpoint.tree_size, checkpoint.root_hash));
                }
            }
            if last.tree_size >= given.tree_size {
                break;
            }
        }
        signed.sort_unstable();
        let sizes: Vec<u64> = signed.iter().map(|(size, _)| *size).collect();
        let replayed = self.catalog().replay_roots(&sizes).await?;
        let leaf_hint = replayed
            .first_leaf_mismatch
            .map(|seq| {
                format!(
                    "; the stored tree's leaf hashes first differ from the event bytes at seq {seq}"
                )
            })
            .unwrap_or_default();
        for (size, root) in &signed {
            match replayed.roots.iter().find(|(s, _)| s == size) {
                None => {
                    return Err(Error::Integrity {
                        seq: *size,
                        reason: format!(
                            "the log diverges from the checkpoint at tree size {size}: only {} consecutive events remain (events were removed){leaf_hint}",
                            replayed.replayed
                        ),
                    });
                }
                Some((_, replayed_root)) if replayed_root != root => {
                    return Err(Error::Integrity {
                        seq: *size,
                        reason: format!(
                            "the log diverges from the signed checkpoints at tree size {size} (the first signed size whose root today's events do not reproduce; history up to it was rewritten){leaf_hint}"
                        ),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(given)
    }

    /// Drops and recomputes the Merkle tree from the stored event bytes; returns the leaves.
    pub async fn rebuild_tree(&self) -> Result<u64> {
        self.catalog().rebuild_tree().await
    }

    /// Recomputes the Merkle tree from the stored event bytes and compares every stored node
    /// (fsck); returns the leaves checked.
    pub async fn verify_tree(&self) -> Result<u64> {
        self.catalog().verify_tree().await
    }
}
