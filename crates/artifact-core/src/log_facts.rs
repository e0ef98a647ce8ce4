//! What the decisions that delete (eligibility, purge, blob deletion) are derived from: the log
//! itself, read inside the deciding transaction, and the store's own clock (SPEC §5a). Views
//! only nominate candidates; a view row that disagrees with the log is reported as a
//! [`Refusal`] and never acted on.

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::AnyConnection;

use crate::catalog;
use crate::digest::{Blake3, PackageId};
use crate::error::{Error, Result};
use crate::event::{Event, EventData, types};
use crate::manifest::Manifest;
use crate::retention::RetentionState;
use crate::time::Timestamp;

/// A candidate a view nominated that the log does not support: the sweeper or GC left it alone.
/// The views were edited, or a replica with an older binary wrote them; `admin rebuild-views`
/// restores them from the log, and `audit verify` checks what the log itself says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The package or blob concerned.
    pub subject: String,
    /// What the view claimed and what the log says.
    pub detail: String,
}

/// Folds the retention state of each of `packages` from its events in the log.
pub(crate) async fn fold_states(
    conn: &mut AnyConnection,
    packages: &[PackageId],
) -> Result<HashMap<PackageId, RetentionState>> {
    let mut by_package: HashMap<PackageId, Option<RetentionState>> = HashMap::new();
    for event in catalog::views_retention_events_of(conn, packages).await? {
        if let Some(id) = event.package_id {
            RetentionState::apply(by_package.entry(id).or_default(), &event);
        }
    }
    Ok(by_package
        .into_iter()
        .filter_map(|(id, state)| state.map(|s| (id, s)))
        .collect())
}

/// What sweeps and purges both require of the log's state at `at`: a state, not purged, no
/// active hold, an expiry at or before `at`.
fn expired_and_unheld(
    state: Option<&RetentionState>,
    at: Timestamp,
) -> Result<&RetentionState, String> {
    let state = state.ok_or_else(|| "the log has no retention state for it".to_owned())?;
    if state.purged_seq.is_some() {
        return Err("the log says it is purged already".to_owned());
    }
    let holds = state.active_holds();
    if holds > 0 {
        return Err(format!("the log says it has {holds} active hold(s)"));
    }
    match state.current_expires_at {
        None => Err("the log says it is retained permanently".to_owned()),
        Some(expiry) if expiry > at => Err(format!(
            "the log says it is retained until {expiry}, later than {at}"
        )),
        Some(_) => Ok(state),
    }
}

/// Why the log says a sweep at `as_of` must not mark a package, or `None` (the explanation of
/// [`RetentionState::due_for_eligibility`], which decides).
pub(crate) fn sweep_refusal(state: Option<&RetentionState>, as_of: Timestamp) -> Option<String> {
    match expired_and_unheld(state, as_of) {
        Err(why) => Some(why),
        Ok(state) if state.eligible_for_deletion => {
            Some("the log says it is marked already".to_owned())
        }
        Ok(_) => None,
    }
}

/// Why the log does not allow purging a package at `now` (store clock), or `None` if it does:
/// marked eligible, no active hold, expired, not purged.
pub(crate) fn purge_refusal(state: Option<&RetentionState>, now: Timestamp) -> Option<String> {
    if state.is_some_and(|s| s.purged_seq.is_none() && !s.eligible_for_deletion) {
        return Some("the log says it is not marked eligible".to_owned());
    }
    expired_and_unheld(state, now)
        .err()
        .map(|why| format!("{why} (the store's clock)"))
}

/// Blobs the log says a live package references, and every manifest (kept forever), derived
/// from `v1.package.created` and `v1.package.purged` events alone.
#[derive(Debug, Default)]
pub(crate) struct LogReferences {
    live: HashSet<Blake3>,
    manifests: HashSet<Blake3>,
    last_created_seq: u64,
}

impl LogReferences {
    /// Reads the references from the log (one pass over its creations and purges, through
    /// `events_by_type`); packages in `assume_purged` count as purged (a dry run's view of
    /// what its purges would free).
    pub(crate) async fn load(
        conn: &mut AnyConnection,
        assume_purged: &BTreeSet<PackageId>,
    ) -> Result<Self> {
        let mut purged: HashSet<PackageId> = assume_purged.iter().copied().collect();
        let mut after = 0;
        loop {
            let page =
                catalog::views_events_of_type(conn, types::PACKAGE_PURGED, after, 5000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            purged.extend(page.into_iter().filter_map(|e| e.package_id));
        }
        let mut refs = Self::default();
        refs.add_created(conn, &purged).await?;
        Ok(refs)
    }

    /// Adds the packages created since the last read (all of them count as live: a purge seen
    /// only later keeps its blobs, which is the safe side).
    pub(crate) async fn catch_up(&mut self, conn: &mut AnyConnection) -> Result<()> {
        self.add_created(conn, &HashSet::new()).await
    }

    async fn add_created(
        &mut self,
        conn: &mut AnyConnection,
        purged: &HashSet<PackageId>,
    ) -> Result<()> {
        loop {
            let page = catalog::views_events_of_type(
                conn,
                types::PACKAGE_CREATED,
                self.last_created_seq,
                2000,
            )
            .await?;
            let Some(last) = page.last() else { break };
            self.last_created_seq = last.seq;
            for event in &page {
                let Some(id) = event.package_id else {
                    return Err(Error::Integrity {
                        seq: event.seq,
                        reason: "package.created has no package_id".to_owned(),
                    });
                };
                self.manifests.insert(id);
                if !purged.contains(&id) {
                    self.live
                        .extend(manifest_of(event)?.files.iter().map(|f| f.blake3));
                }
            }
        }
        Ok(())
    }

    /// Why the log forbids deleting `blob`, or `None`.
    pub(crate) fn deletion_refusal(&self, blob: &Blake3) -> Option<&'static str> {
        if self.manifests.contains(blob) {
            Some("the log says it is a package's manifest, kept forever")
        } else if self.live.contains(blob) {
            Some("the log says a live package references it")
        } else {
            None
        }
    }
}

/// The manifest a `v1.package.created` event carries.
pub(crate) fn manifest_of(event: &Event) -> Result<Manifest> {
    match event.typed()? {
        EventData::PackageCreated(created) => Ok(created.manifest),
        other => Err(Error::Integrity {
            seq: event.seq,
            reason: format!(
                "expected a `{}` event, found `{}`",
                types::PACKAGE_CREATED,
                other.event_type()
            ),
        }),
    }
}

/// Whether the `v1.blob.deletion_started` event `event` names `blob` (an event that does not
/// decode names nothing; the audit reports it).
pub(crate) fn intent_names(event: &Event, blob: &Blake3) -> bool {
    if event.event_type != types::BLOB_DELETION_STARTED {
        return false;
    }
    matches!(event.typed(), Ok(EventData::BlobDeletionStarted(started)) if started.blobs.contains(blob))
}
