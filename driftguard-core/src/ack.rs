//! Acknowledged drift: "we know about this one, leave it until Friday".
//!
//! A person acknowledges an open drift with a reason and an optional expiry
//! ([`acknowledge`]). The drift stays open and visible, marked with who, why and until when; its
//! events are not announced again ([`announced`]) and the CLI's guardrail leaves it out
//! ([`held`]). The acknowledgement lapses — and the drift is announced again — when:
//!
//! - the drift changes: a new field drifts, a value moves again, a write by someone else is
//!   seen, or the episode ends and comes back ([`fingerprint`] differs from the one taken when
//!   it was acknowledged);
//! - its expiry passes;
//! - the drift is resolved;
//! - a person withdraws it.
//!
//! [`standing`] is the one rule every frontend, store and notifier asks. Stores keep the
//! acknowledgements beside the episodes ([`crate::ports::DriftStore::acknowledgements`]); a
//! lapse is recorded once, as an `unacknowledged` event, by whoever notices it first
//! ([`due`]). Time is passed in, never read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::ResourceId;
use crate::names::named_enum;
use crate::state::{Drift, DriftEvent, EventKind, Hash64};

/// The longest reason kept, in characters.
pub const MAX_REASON: usize = 500;

/// One acknowledgement of one drift episode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The episode acknowledged.
    pub episode: String,
    /// Its object (the environment is `id.environment`).
    pub id: ResourceId,
    /// Who acknowledged it (`token:ops`, `user:alice@example.com`, `cli:alice`).
    pub by: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Until when it holds at most (`None`: until the drift changes or ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// The drift's [`fingerprint`] when it was acknowledged.
    pub fingerprint: Hash64,
    /// When and why the lapse was recorded (`unacknowledged` event written); set once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lapsed: Option<Lapsed>,
}

impl Acknowledgement {
    /// The environment.
    pub fn environment(&self) -> &str {
        &self.id.environment
    }
}

named_enum! {
    /// Why an acknowledgement no longer holds.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Lapse: "lapse" {
        /// The drift changed since it was acknowledged.
        Changed => "changed",
        /// Its expiry passed.
        Expired => "expired",
        /// The drift was resolved.
        Resolved => "resolved",
        /// A person withdrew it.
        Withdrawn => "withdrawn",
    }
}

/// A recorded lapse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lapsed {
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// Why.
    pub why: Lapse,
    /// Who, for [`Lapse::Withdrawn`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// Whether an acknowledgement holds for a drift at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It holds: the drift is not announced again and the guardrail leaves it out.
    Holds,
    /// It lapsed.
    Lapsed(Lapse),
}

/// What a drift is, for acknowledgement: its kind, when its current opening began, each
/// drifted field with both values, and who wrote the drifted fields (field managers with their
/// times, the audit log's writes). Any of these moving is the drift changing. Severity,
/// direction and findings are judgements of the same change and do not count.
pub fn fingerprint(d: &Drift) -> Hash64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut put = |s: &str| {
        h.update(s.as_bytes());
        h.update(&[0xff]);
    };
    put(d.kind.as_str());
    put(&d.opened_at().to_rfc3339());
    put(&d.recurrences.to_string());
    for f in &d.fields {
        put(f.path.as_str());
        put(&value(f.desired.as_ref()));
        put(&value(f.live.as_ref()));
    }
    let mut owners: Vec<String> = d
        .attribution
        .owners
        .iter()
        .map(|o| format!("{}|{:?}", o.manager, o.time))
        .collect();
    owners.sort();
    for o in &owners {
        put(o);
    }
    for w in &d.attribution.writers {
        put(&w.audit_id);
    }
    Hash64(h.digest())
}

fn value(v: Option<&serde_json::Value>) -> String {
    v.map_or_else(|| "\u{0}absent".to_owned(), |v| v.to_string())
}

/// The one rule: whether `ack` holds for `drift` (its episode as it stands) at `now`.
pub fn standing(ack: &Acknowledgement, drift: &Drift, now: DateTime<Utc>) -> Standing {
    if let Some(l) = &ack.lapsed {
        return Standing::Lapsed(l.why);
    }
    if !drift.is_open() {
        return Standing::Lapsed(Lapse::Resolved);
    }
    if fingerprint(drift) != ack.fingerprint {
        return Standing::Lapsed(Lapse::Changed);
    }
    if ack.until.is_some_and(|u| now >= u) {
        return Standing::Lapsed(Lapse::Expired);
    }
    Standing::Holds
}

/// Whether some acknowledgement among `acks` holds for `drift` at `now`.
pub fn held(acks: &[Acknowledgement], drift: &Drift, now: DateTime<Utc>) -> bool {
    holding(acks, drift, now).is_some()
}

/// The acknowledgement among `acks` that holds for `drift` at `now`, if one does (the newest).
pub fn holding<'a>(
    acks: &'a [Acknowledgement],
    drift: &Drift,
    now: DateTime<Utc>,
) -> Option<&'a Acknowledgement> {
    acks.iter()
        .filter(|a| a.episode == drift.episode)
        .filter(|a| standing(a, drift, now) == Standing::Holds)
        .max_by_key(|a| a.at)
}

/// Whether [`crate::ports::DriftStore::prune`] with `before` removes `ack`: one whose lapse
/// was recorded before that time.
pub fn pruned(ack: &Acknowledgement, before: DateTime<Utc>) -> bool {
    ack.lapsed.as_ref().is_some_and(|l| l.at < before)
}

/// What a person asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckRequest {
    /// Who.
    pub by: String,
    /// Why (required, at most [`MAX_REASON`] characters).
    pub reason: String,
    /// Until when (must be later than now).
    pub until: Option<DateTime<Utc>>,
}

/// Why a drift cannot be acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The episode is resolved: there is nothing to leave alone.
    #[error("drift {episode} is resolved; only an open drift can be acknowledged")]
    Resolved {
        /// The episode.
        episode: String,
    },
    /// No reason was given.
    #[error("a reason is required")]
    NoReason,
    /// The reason is longer than [`MAX_REASON`].
    #[error("the reason is longer than {MAX_REASON} characters")]
    ReasonTooLong,
    /// The expiry is not in the future.
    #[error("`until` ({until}) is not in the future")]
    UntilPassed {
        /// The expiry given.
        until: DateTime<Utc>,
    },
}

/// Acknowledges `drift` as `req` asks, at `now`: the acknowledgement to save and its
/// `acknowledged` event. Refuses a resolved drift, a missing or overlong reason and an expiry
/// that has passed. Control characters of the reason become spaces.
pub fn acknowledge(
    drift: &Drift,
    req: &AckRequest,
    now: DateTime<Utc>,
) -> Result<(Acknowledgement, DriftEvent), AckError> {
    if !drift.is_open() {
        return Err(AckError::Resolved {
            episode: drift.episode.clone(),
        });
    }
    let reason: String = req
        .reason
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if reason.is_empty() {
        return Err(AckError::NoReason);
    }
    if reason.chars().count() > MAX_REASON {
        return Err(AckError::ReasonTooLong);
    }
    if let Some(until) = req.until.filter(|u| *u <= now) {
        return Err(AckError::UntilPassed { until });
    }
    let ack = Acknowledgement {
        episode: drift.episode.clone(),
        id: drift.id.clone(),
        by: req.by.clone(),
        reason,
        at: now,
        until: req.until,
        fingerprint: fingerprint(drift),
        lapsed: None,
    };
    let event = ack_event(EventKind::Acknowledged, &ack, drift, now);
    Ok((ack, event))
}

/// Records the lapse of `ack` (why, and who for a withdrawal) at `now`: the acknowledgement
/// to save and its `unacknowledged` event.
pub fn lapse(
    ack: &Acknowledgement,
    drift: &Drift,
    why: Lapse,
    by: Option<String>,
    now: DateTime<Utc>,
) -> (Acknowledgement, DriftEvent) {
    let mut out = ack.clone();
    out.lapsed = Some(Lapsed { at: now, why, by });
    let event = ack_event(EventKind::Unacknowledged, &out, drift, now);
    (out, event)
}

/// The acknowledgements among `acks` whose lapse is not yet recorded and no longer hold at
/// `now`, with why: `drift` finds each one's episode as it stands (`None`: no longer stored,
/// which counts as resolved).
pub fn due(
    acks: &[Acknowledgement],
    mut drift: impl FnMut(&str) -> Option<Drift>,
    now: DateTime<Utc>,
) -> Vec<(&Acknowledgement, Option<Drift>, Lapse)> {
    let mut out = Vec::new();
    for a in acks.iter().filter(|a| a.lapsed.is_none()) {
        let d = drift(&a.episode);
        let why = match &d {
            None => Some(Lapse::Resolved),
            Some(d) => match standing(a, d, now) {
                Standing::Holds => None,
                Standing::Lapsed(why) => Some(why),
            },
        };
        if let Some(why) = why {
            out.push((a, d, why));
        }
    }
    out
}

/// The events among `events` to announce, given the environment's acknowledgements at `now`:
/// a person's acknowledgement is not announced, nor any event of a drift whose
/// acknowledgement holds for the drift as the event carries it. A lapse is announced when the
/// drift changed, the expiry passed or a person withdrew it: the drift is announced again (a
/// resolution is announced by its own event).
pub fn announced(
    events: Vec<DriftEvent>,
    acks: &[Acknowledgement],
    now: DateTime<Utc>,
) -> Vec<DriftEvent> {
    events
        .into_iter()
        .filter(|e| match e.kind {
            EventKind::Acknowledged => false,
            EventKind::Unacknowledged => e
                .acknowledgement
                .as_ref()
                .and_then(|a| a.lapsed.as_ref())
                .is_some_and(|l| l.why != Lapse::Resolved),
            EventKind::Resolved => true,
            _ => !held(acks, &e.drift, now),
        })
        .collect()
}

fn ack_event(
    kind: EventKind,
    ack: &Acknowledgement,
    drift: &Drift,
    now: DateTime<Utc>,
) -> DriftEvent {
    let seed = format!(
        "{}|{}|{}|{}",
        drift.episode,
        kind.as_str(),
        ack.at.timestamp_nanos_opt().unwrap_or_default(),
        now.timestamp_nanos_opt().unwrap_or_default()
    );
    DriftEvent {
        event_id: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes())),
        kind,
        at: now,
        scan_id: format!("{}-{}", kind.as_str(), ack.at.timestamp_millis()),
        revision: drift.revision.clone(),
        drift: drift.clone(),
        remediation: None,
        acknowledgement: Some(ack.clone()),
    }
}

/// Who a caller is, in an acknowledgement or an event: `kind:name`.
pub fn actor(kind: &str, name: &str) -> String {
    format!("{kind}:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{DriftKind, Resolution};
    use crate::testkit;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("valid time")
    }

    fn drift() -> Drift {
        testkit::drift()
            .episode("ep-1")
            .kind(DriftKind::Modified)
            .field("spec.replicas", Some(json!(3)), Some(json!(5)))
            .detected(at(0))
            .updated(at(0))
            .build()
    }

    fn req(until: Option<DateTime<Utc>>) -> AckRequest {
        AckRequest {
            by: actor("token", "ops"),
            reason: "known: load test until Friday".into(),
            until,
        }
    }

    #[test]
    fn holds_until_the_drift_changes_or_expires() {
        let d = drift();
        let (ack, event) = acknowledge(&d, &req(Some(at(100))), at(10)).expect("acknowledged");
        assert_eq!(event.kind, EventKind::Acknowledged);
        assert_eq!(event.acknowledgement.as_ref(), Some(&ack));
        assert_eq!(standing(&ack, &d, at(50)), Standing::Holds);
        assert!(held(std::slice::from_ref(&ack), &d, at(50)));
        // the expiry passes
        assert_eq!(
            standing(&ack, &d, at(100)),
            Standing::Lapsed(Lapse::Expired)
        );
        // a value moves again
        let mut moved = d.clone();
        moved.fields[0].live = Some(json!(7));
        assert_eq!(
            standing(&ack, &moved, at(50)),
            Standing::Lapsed(Lapse::Changed)
        );
        // a new field drifts
        let more = testkit::drift()
            .episode("ep-1")
            .field("spec.replicas", Some(json!(3)), Some(json!(5)))
            .field("metadata.labels.debug", None, Some(json!("1")))
            .detected(at(0))
            .updated(at(20))
            .build();
        assert_eq!(
            standing(&ack, &more, at(50)),
            Standing::Lapsed(Lapse::Changed)
        );
        // the drift ends
        let mut ended = d.clone();
        ended.resolved_at = Some(at(30));
        ended.resolution = Some(Resolution::Reverted);
        assert_eq!(
            standing(&ack, &ended, at(50)),
            Standing::Lapsed(Lapse::Resolved)
        );
        // it came back: a new opening
        let mut back = d.clone();
        back.recurrences = 1;
        back.recurred_at = Some(at(40));
        assert_eq!(
            standing(&ack, &back, at(50)),
            Standing::Lapsed(Lapse::Changed)
        );
        // only severity, direction or findings moving is the same drift
        let mut judged = d.clone();
        judged.severity = crate::severity::Severity::Critical;
        judged.direction = crate::state::Direction::Forward;
        judged.updated_at = at(45);
        assert_eq!(standing(&ack, &judged, at(50)), Standing::Holds);
    }

    #[test]
    fn refuses_what_cannot_be_acknowledged() {
        let d = drift();
        let mut ended = d.clone();
        ended.resolved_at = Some(at(1));
        assert!(matches!(
            acknowledge(&ended, &req(None), at(2)),
            Err(AckError::Resolved { .. })
        ));
        let blank = AckRequest {
            reason: "  \n ".into(),
            ..req(None)
        };
        assert_eq!(acknowledge(&d, &blank, at(2)), Err(AckError::NoReason));
        let long = AckRequest {
            reason: "x".repeat(MAX_REASON + 1),
            ..req(None)
        };
        assert_eq!(acknowledge(&d, &long, at(2)), Err(AckError::ReasonTooLong));
        assert!(matches!(
            acknowledge(&d, &req(Some(at(2))), at(2)),
            Err(AckError::UntilPassed { .. })
        ));
        let (ack, _) = acknowledge(
            &d,
            &AckRequest {
                reason: "a\u{1b}[31mred".into(),
                ..req(None)
            },
            at(2),
        )
        .expect("acknowledged");
        assert_eq!(ack.reason, "a [31mred");
    }

    #[test]
    fn lapses_are_due_once_and_announced_when_expired_or_withdrawn() {
        let d = drift();
        let (ack, _) = acknowledge(&d, &req(Some(at(100))), at(10)).expect("acknowledged");
        let acks = vec![ack.clone()];
        assert!(due(&acks, |_| Some(d.clone()), at(50)).is_empty());
        let lapsing = due(&acks, |_| Some(d.clone()), at(100));
        assert_eq!(lapsing.len(), 1);
        assert_eq!(lapsing[0].2, Lapse::Expired);
        assert_eq!(due(&acks, |_| None, at(50))[0].2, Lapse::Resolved);
        let (recorded, event) = lapse(&ack, &d, Lapse::Expired, None, at(100));
        assert_eq!(event.kind, EventKind::Unacknowledged);
        // recorded once: no longer due
        assert!(due(
            std::slice::from_ref(&recorded),
            |_| Some(d.clone()),
            at(200)
        )
        .is_empty());
        assert_eq!(
            standing(&recorded, &d, at(60)),
            Standing::Lapsed(Lapse::Expired)
        );
        // what is announced
        let changed_same = testkit::event(EventKind::Changed, &d, at(20), "s");
        let mut moved = d.clone();
        moved.fields[0].live = Some(json!(9));
        let changed_moved = testkit::event(EventKind::Changed, &moved, at(20), "s");
        let (_, acked) = acknowledge(&d, &req(None), at(10)).expect("acknowledged");
        let (_, changed_lapse) = lapse(&ack, &d, Lapse::Changed, None, at(21));
        let changed_lapse_kept = changed_lapse.clone();
        let (_, withdrawn) = lapse(&ack, &d, Lapse::Withdrawn, Some("token:ops".into()), at(22));
        let out = announced(
            vec![
                changed_same,
                changed_moved.clone(),
                acked,
                changed_lapse,
                withdrawn.clone(),
                event.clone(),
            ],
            &acks,
            at(30),
        );
        assert_eq!(
            out,
            vec![changed_moved, changed_lapse_kept, withdrawn, event]
        );
        let (_, resolved_lapse) = lapse(&ack, &d, Lapse::Resolved, None, at(23));
        assert!(announced(vec![resolved_lapse], &acks, at(30)).is_empty());
        // once expired, the drift's events are announced again
        let again = testkit::event(EventKind::Changed, &d, at(120), "s");
        assert_eq!(announced(vec![again.clone()], &acks, at(120)), vec![again]);
    }

    #[test]
    fn a_secret_like_change_seen_only_through_its_writer_lapses() {
        let d = drift();
        let (ack, _) = acknowledge(&d, &req(None), at(10)).expect("acknowledged");
        let mut rewritten = d.clone();
        rewritten
            .attribution
            .owners
            .push(crate::managed::FieldOwner {
                path: d.fields[0].path.clone(),
                manager: "kubectl-edit".into(),
                operation: "Update".into(),
                subresource: String::new(),
                time: Some(at(30)),
                audit_id: None,
            });
        assert_eq!(
            standing(&ack, &rewritten, at(40)),
            Standing::Lapsed(Lapse::Changed)
        );
    }
}
