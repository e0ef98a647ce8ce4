//! Retention rules (SPEC §3), pure: the state of one package folded from its events, the checks
//! every retention operation must pass, and the explanation of a verdict. No IO.
//!
//! The catalog keeps `retention_state` and `holds` as SQL views updated event by event; this
//! module is the reference the views are tested against, and the source of `explain`.

use std::collections::BTreeMap;

use crate::cbor::Value;
use crate::digest::PackageId;
use crate::error::{ConflictKind, Error, Result};
use crate::event::{Event, EventData, types};
use crate::time::Timestamp;

/// Longest accepted reason, in bytes.
pub const MAX_REASON_BYTES: usize = 4096;

/// Checks a mandatory reason: not blank, at most [`MAX_REASON_BYTES`].
pub fn validate_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::invalid(
            "a reason is mandatory and must not be blank",
        ));
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(Error::invalid(format!(
            "a reason must be at most {MAX_REASON_BYTES} bytes"
        )));
    }
    Ok(())
}

/// One hold on a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// Opaque id (`hold-<seq>`: the seq of the event that applied it).
    pub hold_id: String,
    /// Why it was applied.
    pub reason: String,
    /// Who applied it.
    pub actor: String,
    /// When.
    pub applied_at: Timestamp,
    /// The `hold_applied` event.
    pub applied_seq: u64,
    /// Set once released: (seq, at, actor, reason).
    pub released: Option<(u64, Timestamp, String, String)>,
}

impl Hold {
    /// Whether the hold still applies.
    pub fn is_active(&self) -> bool {
        self.released.is_none()
    }
}

/// The retention state of one package, as a pure function of its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionState {
    /// The package.
    pub package_id: PackageId,
    /// Its class.
    pub retention_class: String,
    /// The class default period, as text (`730d`, `permanent`).
    pub default_period: String,
    /// Expiry computed at creation (`None` = permanent).
    pub default_expires_at: Option<Timestamp>,
    /// Current expiry (`None` = permanent).
    pub current_expires_at: Option<Timestamp>,
    /// Every hold, active or released, by id.
    pub holds: BTreeMap<String, Hold>,
    /// Whether the sweeper has marked the package eligible since the last flip back.
    pub eligible_for_deletion: bool,
    /// The `deletion_eligible` event that marked it, while eligible.
    pub eligible_seq: Option<u64>,
    /// The last event that changed this state.
    pub updated_seq: u64,
    /// Set when garbage collection purged the package.
    pub purged_seq: Option<u64>,
}

impl RetentionState {
    /// Number of active holds.
    pub fn active_holds(&self) -> usize {
        self.holds.values().filter(|h| h.is_active()).count()
    }

    /// Whether a sweep at `as_of` must mark the package eligible now.
    pub fn due_for_eligibility(&self, as_of: Timestamp) -> bool {
        !self.eligible_for_deletion
            && self.purged_seq.is_none()
            && self.active_holds() == 0
            && self.current_expires_at.is_some_and(|t| t <= as_of)
    }

    /// Checks an extension to `new_expires_at` with `reason`.
    pub fn check_extend(&self, new_expires_at: Timestamp, reason: &str) -> Result<()> {
        validate_reason(reason)?;
        match self.current_expires_at {
            None => Err(Error::conflict(
                ConflictKind::PermanentRetention,
                format!(
                    "package {} is retained permanently (class `{}`); it cannot be extended",
                    self.package_id, self.retention_class
                ),
            )),
            Some(current) if new_expires_at <= current => Err(Error::invalid(format!(
                "new expiry {new_expires_at} must be strictly later than the current expiry {current}"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Checks the release of `hold_id` with `reason`.
    pub fn check_release(&self, hold_id: &str, reason: &str) -> Result<()> {
        validate_reason(reason)?;
        match self.holds.get(hold_id) {
            None => Err(Error::not_found(
                "hold",
                format!("{hold_id} on package {}", self.package_id),
            )),
            Some(hold) if !hold.is_active() => Err(Error::conflict(
                ConflictKind::HoldReleased,
                format!(
                    "hold {hold_id} was already released (seq {})",
                    hold.released.as_ref().map_or(0, |r| r.0)
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Folds a package's events (in seq order) into its state. `None` until the
    /// `default_applied` event. Events of unknown types are ignored.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<Self> {
        let mut state: Option<Self> = None;
        for event in events {
            Self::apply(&mut state, event);
        }
        state
    }

    /// Applies one event. An event whose data does not decode changes nothing here (appending
    /// or replaying it fails with an integrity error, and the audit reports it).
    pub fn apply(state: &mut Option<Self>, event: &Event) {
        if let Ok(data) = event.typed() {
            Self::apply_typed(state, event, &data);
        }
    }

    /// Applies one event whose payload is already decoded. This is where the retention rules
    /// of each event type are written; the views and the audit follow it.
    pub fn apply_typed(state: &mut Option<Self>, event: &Event, data: &EventData) {
        let Some(package_id) = event.package_id else {
            return;
        };
        if let EventData::RetentionDefaultApplied(p) = data {
            *state = Some(RetentionState {
                package_id,
                retention_class: p.retention_class.clone(),
                default_period: p.period.to_string(),
                default_expires_at: p.expires_at,
                current_expires_at: p.expires_at,
                holds: BTreeMap::new(),
                eligible_for_deletion: false,
                eligible_seq: None,
                updated_seq: event.seq,
                purged_seq: None,
            });
            return;
        }
        let Some(state) = state.as_mut() else {
            return;
        };
        match data {
            EventData::RetentionExtended(p) => {
                state.current_expires_at = Some(p.new_expires_at);
                state.eligible_for_deletion = false;
                state.eligible_seq = None;
            }
            EventData::RetentionHoldApplied(p) => {
                state.holds.insert(
                    p.hold_id.clone(),
                    Hold {
                        hold_id: p.hold_id.clone(),
                        reason: p.reason.clone(),
                        actor: event.actor.clone(),
                        applied_at: event.at,
                        applied_seq: event.seq,
                        released: None,
                    },
                );
                state.eligible_for_deletion = false;
                state.eligible_seq = None;
            }
            EventData::RetentionHoldReleased(p) => {
                if let Some(hold) = state.holds.get_mut(&p.hold_id) {
                    hold.released =
                        Some((event.seq, event.at, event.actor.clone(), p.reason.clone()));
                }
            }
            EventData::RetentionDeletionEligible(_) => {
                state.eligible_for_deletion = true;
                state.eligible_seq = Some(event.seq);
            }
            EventData::PackagePurged(_) => {
                state.purged_seq = Some(event.seq);
            }
            _ => return,
        }
        state.updated_seq = event.seq;
    }
}

/// One line of an explanation, citing the event it relies on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplainLine {
    /// The event's seq.
    pub seq: u64,
    /// What the event means for retention.
    pub text: String,
}

/// Why a package is retained until a time, or why it is (not) eligible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The package.
    pub package_id: PackageId,
    /// The instant the verdict is for.
    pub as_of: Timestamp,
    /// The facts, one per relevant event, in seq order.
    pub lines: Vec<ExplainLine>,
    /// The conclusion in one sentence.
    pub verdict: String,
    /// Current expiry (`None` = permanent).
    pub retained_until: Option<Timestamp>,
    /// Whether the package is marked eligible for deletion.
    pub eligible_for_deletion: bool,
    /// Seqs of events the verdict depends on.
    pub cites: Vec<u64>,
}

impl Explanation {
    /// The explanation as a data-model value (for `--json`).
    pub fn to_value(&self) -> Value {
        let lines = self
            .lines
            .iter()
            .map(|line| {
                Value::Map(BTreeMap::from([
                    ("seq".to_owned(), Value::Int(line.seq as i64)),
                    ("text".to_owned(), Value::Text(line.text.clone())),
                ]))
            })
            .collect();
        Value::Map(BTreeMap::from([
            (
                "package_id".to_owned(),
                Value::Text(self.package_id.to_string()),
            ),
            ("as_of".to_owned(), Value::Text(self.as_of.to_string())),
            ("lines".to_owned(), Value::Array(lines)),
            ("verdict".to_owned(), Value::Text(self.verdict.clone())),
            (
                "retained_until".to_owned(),
                self.retained_until
                    .map_or(Value::Null, |t| Value::Text(t.to_string())),
            ),
            (
                "eligible_for_deletion".to_owned(),
                Value::Bool(self.eligible_for_deletion),
            ),
            (
                "cites".to_owned(),
                Value::Array(self.cites.iter().map(|s| Value::Int(*s as i64)).collect()),
            ),
        ]))
    }
}

/// Explains a package's retention at `as_of` from its events alone (in seq order).
pub fn explain(package_id: PackageId, events: &[Event], as_of: Timestamp) -> Result<Explanation> {
    let relevant: Vec<&Event> = events.iter().filter(|e| e.at <= as_of).collect();
    let mut lines = Vec::new();
    let mut state: Option<RetentionState> = None;
    for event in &relevant {
        let data = event.typed()?;
        RetentionState::apply_typed(&mut state, event, &data);
        let quoted = |reason: &str| format!("\"{}\"", reason.escape_debug());
        let text = match &data {
            EventData::PackageCreated(_) => format!("created at {} by {}", event.at, event.actor),
            EventData::RetentionDefaultApplied(p) => format!(
                "class `{}` has default `{}`: {}",
                p.retention_class,
                p.period,
                match p.expires_at {
                    Some(t) => format!("retained until {t}"),
                    None => "retained permanently, never eligible".to_owned(),
                }
            ),
            EventData::RetentionExtended(p) => format!(
                "extended from {} to {} by {}: {}",
                p.previous_expires_at,
                p.new_expires_at,
                event.actor,
                quoted(&p.reason)
            ),
            EventData::RetentionHoldApplied(p) => format!(
                "hold {} applied by {}: {}",
                p.hold_id,
                event.actor,
                quoted(&p.reason)
            ),
            EventData::RetentionHoldReleased(p) => format!(
                "hold {} released by {}: {}",
                p.hold_id,
                event.actor,
                quoted(&p.reason)
            ),
            EventData::RetentionDeletionEligible(p) => format!(
                "marked eligible for deletion by a sweep as of {} run by {}",
                p.as_of, event.actor
            ),
            EventData::PackagePurged(_) => {
                format!("purged by garbage collection at {}", event.at)
            }
            EventData::BlobLockExtended(p) => format!(
                "the storage retains blob {} (version {}) until {} in {} mode (Object Lock: not \
                 deletable before then, even with the bucket's credentials)",
                p.blake3,
                p.version_id,
                p.retain_until,
                p.mode.as_str()
            ),
            EventData::BlobLegalHoldSet(p) => format!(
                "the storage's legal hold on blob {} (version {}) {}",
                p.blake3,
                p.version_id,
                if p.on {
                    "was set: not deletable until it is cleared"
                } else {
                    "was cleared: no package referencing it is held"
                }
            ),
            EventData::OciTagSet(p) => format!(
                "tag `{}` of OCI repository `{}` set to this manifest ({}) by {}",
                p.tag, p.repository, p.manifest_sha256, event.actor
            ),
            _ => continue,
        };
        lines.push(ExplainLine {
            seq: event.seq,
            text,
        });
    }
    let Some(state) = state else {
        return Err(Error::not_found(
            "retention state",
            format!("{package_id} (no default_applied event at or before {as_of})"),
        ));
    };
    let mut cites = vec![];
    let default_seq = relevant
        .iter()
        .find(|e| e.event_type == types::RETENTION_DEFAULT_APPLIED)
        .map_or(0, |e| e.seq);
    let last_extension = relevant
        .iter()
        .filter(|e| e.event_type == types::RETENTION_EXTENDED)
        .map(|e| e.seq)
        .next_back();
    let expiry_seq = last_extension.unwrap_or(default_seq);
    let active: Vec<&Hold> = state.holds.values().filter(|h| h.is_active()).collect();
    let verdict = if let Some(purged) = state.purged_seq {
        cites.push(purged);
        format!("purged (seq {purged}); its manifest and events are kept forever")
    } else if let Some(eligible_seq) = state.eligible_seq {
        cites.extend([expiry_seq, eligible_seq]);
        format!(
            "eligible for deletion since seq {eligible_seq}: expired {} (seq {expiry_seq}) with no active hold",
            state
                .current_expires_at
                .map_or("?".to_owned(), |t| t.to_string())
        )
    } else if !active.is_empty() {
        let names: Vec<String> = active
            .iter()
            .map(|h| format!("{} by {} (seq {})", h.hold_id, h.actor, h.applied_seq))
            .collect();
        cites.extend(active.iter().map(|h| h.applied_seq));
        format!(
            "not eligible: {} active hold(s) keep it whatever its expiry: {}",
            active.len(),
            names.join(", ")
        )
    } else {
        match state.current_expires_at {
            None => {
                cites.push(default_seq);
                format!(
                    "retained permanently: class `{}` never expires (seq {default_seq})",
                    state.retention_class
                )
            }
            Some(expiry) if expiry > as_of => {
                cites.push(expiry_seq);
                format!("retained until {expiry} (seq {expiry_seq}); not eligible before then")
            }
            Some(expiry) => {
                cites.push(expiry_seq);
                format!(
                    "expired at {expiry} (seq {expiry_seq}) with no active hold: the next sweep will mark it eligible"
                )
            }
        }
    };
    Ok(Explanation {
        package_id,
        as_of,
        lines,
        verdict,
        retained_until: state.current_expires_at,
        eligible_for_deletion: state.eligible_for_deletion,
        cites,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::types::{
        Extra, RetentionDefaultApplied, RetentionHoldApplied, RetentionHoldReleased,
    };

    fn event(seq: u64, data: impl Into<EventData>) -> Event {
        let data = data.into();
        Event {
            seq,
            event_type: data.event_type().to_owned(),
            package_id: Some(crate::digest::Blake3::of(b"p")),
            actor: "ops".into(),
            at: Timestamp::from_unix_millis(seq as i64 * 1000).unwrap(),
            data: data.encode(),
            prev: None,
        }
    }

    fn default_applied(expires_at: Option<Timestamp>) -> RetentionDefaultApplied {
        RetentionDefaultApplied {
            retention_class: "c".into(),
            period: if expires_at.is_some() {
                "7d".parse().unwrap()
            } else {
                crate::time::Period::Permanent
            },
            expires_at,
            extra: Extra::new(),
        }
    }

    #[test]
    fn refusals_callers_branch_on_are_distinct_conflict_kinds_with_the_same_message() {
        let permanent = RetentionState::fold(&[event(1, default_applied(None))]).unwrap();
        let error = permanent
            .check_extend(Timestamp::from_unix_millis(5000).unwrap(), "why")
            .unwrap_err();
        assert_eq!(
            error.conflict_kind(),
            Some(ConflictKind::PermanentRetention)
        );
        assert!(
            error.to_string().starts_with("conflict: package ")
                && error
                    .to_string()
                    .ends_with("is retained permanently (class `c`); it cannot be extended"),
            "{error}"
        );

        let expiring = Timestamp::from_unix_millis(1000 + 7 * 86_400_000).unwrap();
        let events = [
            event(1, default_applied(Some(expiring))),
            event(
                2,
                RetentionHoldApplied {
                    hold_id: "hold-2".into(),
                    reason: "case".into(),
                    extra: Extra::new(),
                },
            ),
            event(
                3,
                RetentionHoldReleased {
                    hold_id: "hold-2".into(),
                    reason: "closed".into(),
                    extra: Extra::new(),
                },
            ),
        ];
        let state = RetentionState::fold(&events).unwrap();
        assert_eq!(
            state.holds["hold-2"].released.as_ref().map(|r| r.0),
            Some(3)
        );
        let error = state.check_release("hold-2", "again").unwrap_err();
        assert_eq!(error.conflict_kind(), Some(ConflictKind::HoldReleased));
        assert_eq!(
            error.to_string(),
            "conflict: hold hold-2 was already released (seq 3)"
        );
    }

    #[test]
    fn an_event_whose_data_does_not_decode_changes_no_state() {
        let expiring = Timestamp::from_unix_millis(99_000).unwrap();
        let mut broken = event(2, default_applied(Some(expiring)));
        broken.event_type = types::RETENTION_EXTENDED.to_owned();
        let state =
            RetentionState::fold(&[event(1, default_applied(Some(expiring))), broken]).unwrap();
        assert_eq!(state.current_expires_at, Some(expiring));
        assert_eq!(state.updated_seq, 1);
    }
}
