//! The event log: queries, the chain audit and view rebuilds.

use super::*;

impl ArtifactStore {
    /// Events in seq order, filtered. A type filter that is not shaped like an event type is
    /// an error (never an empty answer that looks like "no such events").
    pub async fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        if let Some(event_type) = &query.event_type {
            crate::event::validate_event_type(event_type)?;
        }
        self.catalog.events(query).await
    }

    /// Every committed event after `after_seq`, in seq order, without end: the log as it is,
    /// then each event as it is committed (see [`Catalog::follow`]: this process's commits
    /// wake it at once, other replicas' within [`crate::catalog::FOLLOW_RECHECK`]). One
    /// stream serves the server's SSE and the CLI's `--follow`.
    pub fn follow(
        &self,
        after_seq: u64,
    ) -> impl futures_util::Stream<Item = Result<Event>> + Send + use<> {
        self.catalog.follow(after_seq)
    }

    /// The head of the log.
    pub async fn head(&self) -> Result<Head> {
        self.catalog.head().await
    }

    /// Verifies the hash chain; [`Error::Integrity`] names the first bad seq.
    pub async fn audit_verify(&self) -> Result<Head> {
        self.catalog.verify_chain().await
    }

    /// The full audit: the hash chain, the latest stored checkpoint's root recomputed from the
    /// event bytes (rule `checkpoint-mismatch`), and every event replayed through the store's rules
    /// ([`crate::rules::LogRules`]: no expiry moved earlier, no eligibility while held or
    /// before expiry, no purge of a package that was not eligible, no bytes deleted while a
    /// live package referenced them, no unknown actor), in one pass over the log.
    pub async fn audit(&self) -> Result<AuditReport> {
        let mut rules = crate::rules::LogRules::new();
        // The latest stored checkpoint's root is recomputed from today's event bytes in the
        // same pass (not from the stored tree). A rewrite that also replaced the checkpoint
        // table passes this; a checkpoint saved or published elsewhere is what catches that.
        let latest = self.catalog.latest_checkpoint().await?;
        let covered = latest.as_ref().map_or(0, |c| c.tree_size);
        let mut frontier = crate::tlog::Frontier::new();
        let mut replayed_root = (covered == 0).then(|| frontier.root());
        let chain = self
            .catalog
            .verify_chain_with(|event, bytes| {
                rules.check(event);
                if event.seq <= covered {
                    frontier.push(crate::tlog::leaf_hash(bytes));
                    if event.seq == covered {
                        replayed_root = Some(frontier.root());
                    }
                }
            })
            .await;
        let (head, chain_error) = match chain {
            Ok(head) => (Some(head), None),
            Err(Error::Integrity { seq, reason }) => (None, Some((seq, reason))),
            Err(other) => return Err(other),
        };
        let mut violations = rules.into_violations();
        if chain_error.is_none()
            && let Some(latest) = latest
            && replayed_root != Some(latest.root_hash)
        {
            violations.push(crate::rules::RuleViolation {
                seq: latest.tree_size,
                rule: "checkpoint-mismatch",
                detail: format!(
                    "today's events do not reproduce the root of the stored checkpoint of tree size {} (events up to it were changed or removed)",
                    latest.tree_size
                ),
            });
        }
        Ok(AuditReport {
            head,
            chain_error,
            violations,
        })
    }

    /// Rebuilds every view from the log; returns the number of events replayed.
    pub async fn rebuild_views(&self) -> Result<u64> {
        self.catalog.rebuild_views(&self.classes).await
    }
}
