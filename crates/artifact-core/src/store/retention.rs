//! Retention: status, extensions, holds, releases, the sweep and explanations.

use super::*;

/// Events a package's history reads a query.
const PACKAGE_EVENTS_PAGE: usize = 5000;

impl ArtifactStore {
    /// A package's retention state.
    pub async fn retention_status(&self, package: &PackageRef) -> Result<RetentionStatus> {
        let id = self.resolve(package).await?;
        let mut conn = self.catalog.read().await?;
        catalog::views_retention_status(&mut conn, &id)
            .await?
            .ok_or_else(|| Error::not_found("retention state", id.to_string()))
    }

    /// The package's retention state folded from its events in the log, inside the write
    /// transaction (the rules are checked against the log, not against a view row an insider
    /// could have edited). A purged package is a conflict.
    pub(super) async fn locked_state(
        &self,
        tx: &mut WriteTx,
        package: &PackageRef,
    ) -> Result<RetentionState> {
        let id = match package {
            PackageRef::Id(id) => *id,
            PackageRef::NameVersion { name, version } => {
                catalog::views_package_id_by_name(tx.conn(), name, version)
                    .await?
                    .ok_or_else(|| Error::not_found("package", package.to_string()))?
            }
        };
        let state = crate::log_facts::fold_states(tx.conn(), &[id])
            .await?
            .remove(&id)
            .ok_or_else(|| Error::not_found("package", package.to_string()))?;
        if let Some(purged_seq) = state.purged_seq {
            return Err(Error::conflict(
                ConflictKind::PackagePurged,
                format!(
                    "package {id} was purged (seq {purged_seq}); retention no longer applies to it"
                ),
            ));
        }
        Ok(state)
    }

    /// The retention view of a package just changed in `tx`.
    pub(super) async fn status_in(
        tx: &mut WriteTx,
        package_id: &PackageId,
    ) -> Result<RetentionStatus> {
        catalog::views_retention_status(tx.conn(), package_id)
            .await?
            .ok_or_else(|| Error::not_found("package", package_id.to_string()))
    }

    /// Extends a package's expiry to `until` (strictly later than the current expiry, as the
    /// log says).
    pub async fn extend(
        &self,
        actor: &str,
        package: &PackageRef,
        until: Timestamp,
        reason: &str,
    ) -> Result<RetentionStatus> {
        let (status, ()) = self
            .change_retention(actor, package, reason, |state, _| {
                state.check_extend(until, reason)?;
                let current = state
                    .current_expires_at
                    .ok_or_else(|| Error::invalid("a permanent package cannot be extended"))?;
                let data = RetentionExtended {
                    previous_expires_at: current,
                    new_expires_at: until,
                    reason: reason.to_owned(),
                    extra: Extra::new(),
                };
                Ok((data.into(), ()))
            })
            .await?;
        Ok(status)
    }

    /// Applies a hold; returns its id.
    pub async fn hold(&self, actor: &str, package: &PackageRef, reason: &str) -> Result<String> {
        let (_, hold_id) = self
            .change_retention(actor, package, reason, |_, seq| {
                let hold_id = format!("hold-{seq}");
                let data = RetentionHoldApplied {
                    hold_id: hold_id.clone(),
                    reason: reason.to_owned(),
                    extra: Extra::new(),
                };
                Ok((data.into(), hold_id))
            })
            .await?;
        Ok(hold_id)
    }

    /// Releases an active hold (active as the log says).
    pub async fn release(
        &self,
        actor: &str,
        package: &PackageRef,
        hold_id: &str,
        reason: &str,
    ) -> Result<RetentionStatus> {
        let (status, ()) = self
            .change_retention(actor, package, reason, |state, _| {
                state.check_release(hold_id, reason)?;
                let data = RetentionHoldReleased {
                    hold_id: hold_id.to_owned(),
                    reason: reason.to_owned(),
                    extra: Extra::new(),
                };
                Ok((data.into(), ()))
            })
            .await?;
        Ok(status)
    }

    /// One retention change of `package` by `actor`, in one write transaction: `reason` is
    /// checked, the package's state is folded from the log and locked, and `change` (given that
    /// state and the seq the event will get) checks the request against it and builds the
    /// event. Returns the retention state after the event, and what `change` kept.
    async fn change_retention<T>(
        &self,
        actor: &str,
        package: &PackageRef,
        reason: &str,
        change: impl FnOnce(&RetentionState, u64) -> Result<(crate::event::EventData, T)>,
    ) -> Result<(RetentionStatus, T)> {
        validate_reason(reason)?;
        let mut tx = self.catalog.write().await?;
        let state = self.locked_state(&mut tx, package).await?;
        let (data, kept) = change(&state, tx.head().seq + 1)?;
        // More protection goes on the storage before the event that promises it commits; less
        // comes off only after the event that allows it (ADR 0015).
        let need = match &data {
            crate::event::EventData::RetentionExtended(p) => Some(locks::Need {
                until: Some(locks::whole_second_ceil(p.new_expires_at)),
                legal_hold: false,
            }),
            crate::event::EventData::RetentionHoldApplied(_) => Some(locks::Need {
                until: None,
                legal_hold: true,
            }),
            _ => None,
        };
        if let Some(need) = need
            && self.object_locks().is_some()
        {
            let blobs = self.package_blobs(&state.package_id).await?;
            self.lock_blobs_in(&mut tx, actor, Some(state.package_id), &blobs, need)
                .await?;
        }
        let released = matches!(data, crate::event::EventData::RetentionHoldReleased(_));
        tx.append(Some(state.package_id), actor, self.clock.now(), data)
            .await?;
        let updated = Self::status_in(&mut tx, &state.package_id).await?;
        tx.commit().await?;
        if released {
            // Best effort: the release is committed whatever happens here. A hold left on (the
            // safe side) is an fsck note, and `admin reconcile-locks` clears it.
            let _ = self.clear_unneeded_holds(actor, &state.package_id).await;
        }
        Ok((updated, kept))
    }

    /// Every event of a package, in seq order (its full history, retention included).
    pub async fn package_events(&self, package_id: &PackageId) -> Result<Vec<Event>> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .events(&EventQuery {
                    after,
                    limit: Some(PACKAGE_EVENTS_PAGE as u32),
                    event_type: None,
                    package_id: Some(*package_id),
                })
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.seq;
            let full = page.len() >= PACKAGE_EVENTS_PAGE;
            all.extend(page);
            // A short page is the last one: no query to find the end.
            if !full {
                break;
            }
        }
        Ok(all)
    }

    /// The retention events of a package, in seq order.
    pub async fn retention_history(&self, package: &PackageRef) -> Result<Vec<Event>> {
        let id = self.resolve(package).await?;
        Ok(self
            .package_events(&id)
            .await?
            .into_iter()
            .filter(|e| e.event_type.starts_with("v1.retention."))
            .collect())
    }

    /// Marks every package whose expiry is at or before `as_of` (default: now), with no active
    /// hold and not yet marked, as eligible for deletion — at most once per transition. Runs
    /// under the catalog's write serialisation, so concurrent sweeps never double-mark.
    ///
    /// `as_of` may lie in the past (back-fills, tests) but never after the store's own clock:
    /// a later one is [`Error::InvalidInput`] and changes nothing, so no sweep makes a package
    /// eligible before its expiry. The `retention_state` view only nominates candidates: each
    /// is re-derived from its events in the log inside the marking transaction, and a candidate
    /// the log does not support is left alone and reported in
    /// [`SweepReport::refused`].
    pub async fn sweep(&self, actor: &str, as_of: Option<Timestamp>) -> Result<SweepReport> {
        let now = self.clock.now();
        let as_of = match as_of {
            Some(t) if t > now => {
                return Err(Error::invalid(format!(
                    "as_of {t} is later than the store's clock ({now}): a sweep can only mark \
                     what has expired by now"
                )));
            }
            Some(t) => t,
            None => now,
        };
        let mut newly_eligible = Vec::new();
        let mut refused = Vec::new();
        let mut deferred = Vec::new();
        let mut cursor = None;
        // Bounded batches keep each transaction short on large back-fills.
        loop {
            let mut tx = self.catalog.write().await?;
            let due = catalog::views_due_for_sweep(tx.conn(), as_of, cursor, 1000).await?;
            let Some(last) = due.last() else {
                tx.rollback().await?;
                break;
            };
            cursor = Some((last.1, last.0));
            let ids: Vec<PackageId> = due.iter().map(|(id, _)| *id).collect();
            let states = crate::log_facts::fold_states(tx.conn(), &ids).await?;
            let now = self.clock.now();
            let mut marked = Vec::new();
            for (package_id, view_expiry) in &due {
                let state = states.get(package_id);
                let Some(expires_at) = state
                    .filter(|s| s.due_for_eligibility(as_of))
                    .and_then(|s| s.current_expires_at)
                else {
                    refused.push(Refusal {
                        subject: package_id.to_string(),
                        detail: format!(
                            "retention_state says it expired at {view_expiry} with no active hold \
                             and is not marked, but {}",
                            crate::log_facts::sweep_refusal(state, as_of)
                                .unwrap_or_else(|| "the log disagrees".to_owned())
                        ),
                    });
                    continue;
                };
                // A referrer lives at least as long as its subject.
                if let Some((_, _, why)) = self.oci_keeper(tx.conn(), package_id, as_of).await? {
                    deferred.push(Refusal {
                        subject: package_id.to_string(),
                        detail: format!("expired at {expires_at}, but kept: {why}"),
                    });
                    continue;
                }
                let data = RetentionDeletionEligible {
                    as_of,
                    expires_at,
                    extra: Extra::new(),
                };
                tx.append(Some(*package_id), actor, now, data).await?;
                marked.push(*package_id);
            }
            tx.commit().await?;
            newly_eligible.extend(marked);
        }
        // Permanent packages' storage locks are pushed forward once half the horizon is used.
        if self.object_locks().is_some() {
            self.reconcile_locks(actor, true).await?;
        }
        Ok(SweepReport {
            as_of,
            newly_eligible,
            refused,
            deferred,
        })
    }

    /// Sweeps every `interval` until `shutdown` resolves (what the server schedules; the
    /// interval comes from `[retention] sweep_interval`, default 1 h). The first sweep runs
    /// immediately. Each sweep's result goes to `on_report`; a failed sweep is retried at the
    /// next tick and never stops the loop. Returns the number of sweeps run.
    pub async fn run_sweeper<F>(
        &self,
        actor: &str,
        interval: std::time::Duration,
        shutdown: F,
        mut on_report: impl FnMut(Result<SweepReport>) + Send,
    ) -> u64
    where
        F: std::future::Future<Output = ()> + Send,
    {
        let mut ticker = tokio::time::interval(interval.max(std::time::Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        let mut sweeps = 0;
        loop {
            tokio::select! {
                _ = &mut shutdown => return sweeps,
                _ = ticker.tick() => {
                    on_report(self.sweep(actor, None).await);
                    sweeps += 1;
                }
            }
        }
    }

    /// Explains a package's retention at `as_of` (default: now) from its events alone.
    pub async fn explain(
        &self,
        package: &PackageRef,
        as_of: Option<Timestamp>,
    ) -> Result<Explanation> {
        let id = self.resolve(package).await?;
        let events = self.package_events(&id).await?;
        let as_of = as_of.unwrap_or_else(|| self.clock.now());
        let mut explanation = crate::retention::explain(id, &events, as_of)?;
        if explanation.verdict.starts_with("purged") {
            return Ok(explanation);
        }
        let mut conn = self.catalog.read().await?;
        if let Some((keeper, seq, why)) = self.oci_keeper(&mut conn, &id, as_of).await? {
            explanation.lines.push(crate::retention::ExplainLine {
                seq,
                text: format!(
                    "kept at least as long as package {keeper} (an OCI referrer lives as long \
                     as its subject, an index's child as long as the index): {why}"
                ),
            });
            explanation.verdict = format!("{}; kept: {why}", explanation.verdict);
            explanation.eligible_for_deletion = false;
            explanation.cites.push(seq);
        }
        Ok(explanation)
    }
}
