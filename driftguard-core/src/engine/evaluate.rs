//! The pure evaluation of an environment: the observations of its objects, direction evidence
//! from Git history, the state machine run against the stored records, and the counts and
//! verdicts of the result. No IO and no awaits: the Git history it needs is read before it, in
//! one batch, for the objects [`history_wanted`] names.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::SubsecRound;

use crate::audit::{attributable, attribute, window_start, AuditEvidence, AuditFinding};
use crate::id::ResourceId;
use crate::managed::{owners_of, ManagedFieldsEntry};
use crate::ports::{ObjectVersion, ScanCounts};
use crate::state::{
    transition, Direction, DriftEvent, DriftKind, DriftRecord, Observation, Presence, Records, Tick,
};

use super::report::{Verdict, VerdictStatus};
use super::{Engine, EnvState};

/// How many Git versions of a drifted object are read for evidence and attribution.
pub const HISTORY_DEPTH: usize = 20;

/// Git history read for an evaluation: the versions of each object, newest first. An object
/// that is not in the map has no known history (the source cannot tell, or the read failed).
pub type Histories = HashMap<ResourceId, Vec<ObjectVersion>>;

/// What evaluating some objects of an environment gives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// New events, in object order.
    pub events: Vec<DriftEvent>,
    /// Records that changed and must be written.
    pub upserts: Vec<DriftRecord>,
    /// Records to forget (the object left both sides).
    pub deletes: Vec<ResourceId>,
    /// The record of every evaluated object that still has one.
    pub records: Records,
    /// The verdict on every evaluated object, drifted first, then unknown, then in sync.
    pub verdicts: Vec<Verdict>,
    /// Counts of the evaluated objects.
    pub counts: ScanCounts,
}

/// Whether the evaluation of `obs` wants the object's Git history: it shows a drift, and
/// something new is to be said of it (no open drift yet, or its drifted fields changed). An
/// open drift that did not change keeps the commit named when it was detected.
pub fn history_wanted(prev: Option<&DriftRecord>, obs: &Observation) -> bool {
    if !obs.presence.drifted() {
        return false;
    }
    let open = prev.and_then(|r| r.drift.as_ref());
    let unchanged = match (&obs.presence, open) {
        (Presence::Both(c), Some(d)) => d.fields == c.drifted,
        (_, Some(_)) => true,
        _ => false,
    };
    !unchanged
}

impl Engine {
    /// The observations of `ids`, in the order given.
    pub fn observe_each<'a>(
        &self,
        st: &EnvState,
        ids: impl IntoIterator<Item = &'a ResourceId>,
    ) -> Vec<Observation> {
        ids.into_iter().map(|id| self.observe(st, id)).collect()
    }

    /// Every object an environment's full scan looks at: desired, tracked live, and recorded,
    /// in identity order.
    pub fn scan_ids<'a>(&self, st: &'a EnvState, records: &'a Records) -> Vec<&'a ResourceId> {
        let mut ids: Vec<&ResourceId> = st
            .desired
            .keys()
            .chain(st.live.keys().filter(|id| !st.desired.contains_key(id)))
            .chain(
                records
                    .keys()
                    .filter(|id| !st.desired.contains_key(id) && !st.live.contains_key(id)),
            )
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Runs the state machine over `observations` against the stored `records`, with the
    /// evidence `histories` gives: the events, the records to write and the verdicts. Pure.
    pub fn evaluate(
        &self,
        st: &EnvState,
        records: &Records,
        observations: Vec<Observation>,
        histories: &Histories,
        tick: &Tick,
    ) -> Evaluation {
        let none = AuditEvidence::default();
        self.evaluate_audited(st, records, observations, histories, &none, tick)
    }

    /// [`Engine::evaluate`] with the writes of the audit log too: each drift names the
    /// writers the audit rule finds ([`crate::audit::attribute`]). Pure.
    pub fn evaluate_audited(
        &self,
        st: &EnvState,
        records: &Records,
        observations: Vec<Observation>,
        histories: &Histories,
        audit: &AuditEvidence,
        tick: &Tick,
    ) -> Evaluation {
        let mut ev = Evaluation::default();
        ev.records.reserve(observations.len());
        let gathered = Gathered {
            histories,
            audit,
            tick,
        };
        self.evaluate_all(st, ev, observations, &gathered, |_, id| {
            records.get(id).map(Cow::Borrowed)
        })
    }

    /// [`Engine::evaluate_audited`] taking the stored records, as a full scan does: each
    /// observation's record is taken out of `records` and its new one put in its place, so the
    /// evaluation holds one table of records, not the stored ones beside the new ones. Records
    /// of objects not observed stay as they were (a full scan observes every recorded object:
    /// [`Engine::scan_ids`]).
    pub fn evaluate_taking(
        &self,
        st: &EnvState,
        records: Records,
        observations: Vec<Observation>,
        histories: &Histories,
        audit: &AuditEvidence,
        tick: &Tick,
    ) -> Evaluation {
        let ev = Evaluation {
            records,
            ..Evaluation::default()
        };
        let gathered = Gathered {
            histories,
            audit,
            tick,
        };
        self.evaluate_all(st, ev, observations, &gathered, |ev, id| {
            ev.records.remove(id).map(|r| Cow::Owned(*r))
        })
    }

    /// Evaluates each observation into `ev` against the record `prev` gives for it.
    fn evaluate_all<'r>(
        &self,
        st: &EnvState,
        mut ev: Evaluation,
        observations: Vec<Observation>,
        gathered: &Gathered<'_>,
        mut prev: impl FnMut(&mut Evaluation, &ResourceId) -> Option<Cow<'r, DriftRecord>>,
    ) -> Evaluation {
        for obs in observations {
            let record = prev(&mut ev, &obs.id);
            self.evaluate_one(st, record.as_deref(), obs, gathered, &mut ev);
        }
        sort_verdicts(&mut ev.verdicts);
        ev
    }

    /// Evaluates one observation against its stored record into `ev`.
    fn evaluate_one(
        &self,
        st: &EnvState,
        prev: Option<&DriftRecord>,
        mut obs: Observation,
        gathered: &Gathered<'_>,
        ev: &mut Evaluation,
    ) {
        let Gathered {
            histories,
            audit,
            tick,
        } = *gathered;
        if matches!(obs.presence, Presence::Unknown) {
            ev.counts.unknown += 1;
            ev.verdicts.push(Verdict {
                id: obs.id.clone(),
                status: VerdictStatus::Unknown,
                drift: prev.and_then(|r| r.drift.clone()),
            });
            if let Some(p) = prev {
                ev.records.insert(Box::new(p.clone()));
            }
            return;
        }
        let versions = histories.get(&obs.id);
        self.add_evidence(st, prev, &mut obs, versions, tick);
        if audit.enabled {
            add_audit(st, prev, &mut obs, audit);
        }
        add_resolver(st, prev, &mut obs);
        let t = transition(prev, &obs, tick);
        ev.events.extend(t.events);
        match t.record {
            Some(r) => {
                ev.counts.tracked += 1;
                match r.drift.as_ref().map(|d| d.kind) {
                    None => ev.counts.in_sync += 1,
                    Some(DriftKind::Modified) => ev.counts.modified += 1,
                    Some(DriftKind::Missing) => ev.counts.missing += 1,
                    Some(DriftKind::Orphan) => ev.counts.orphan += 1,
                }
                ev.verdicts.push(Verdict {
                    id: obs.id.clone(),
                    status: if r.drift.is_some() {
                        VerdictStatus::Drifted
                    } else {
                        VerdictStatus::InSync
                    },
                    drift: r.drift.clone(),
                });
                if t.changed {
                    ev.upserts.push(r.clone());
                }
                ev.records.insert(Box::new(r));
            }
            None => {
                if prev.is_some() {
                    ev.deletes.push(obs.id);
                }
            }
        }
    }

    /// Fills in the commit and history-based direction evidence of a drifted observation.
    fn add_evidence(
        &self,
        st: &EnvState,
        prev: Option<&DriftRecord>,
        obs: &mut Observation,
        versions: Option<&Vec<ObjectVersion>>,
        tick: &Tick,
    ) {
        if !obs.presence.drifted() {
            return;
        }
        if !history_wanted(prev, obs) {
            // nothing new: the commit named when it was detected still stands
            if obs.commit.is_none() {
                obs.commit = prev
                    .and_then(|r| r.drift.as_ref())
                    .and_then(|d| d.attribution.commit.clone());
            }
            return;
        }
        let Some(versions) = versions else {
            return;
        };
        obs.commit = versions.first().map(|v| v.commit.clone());
        let no_history = prev.is_none_or(|r| r.baseline.is_none());
        match &obs.presence {
            Presence::Both(_) if no_history && obs.evidence.is_none() => {
                // live equals an earlier Git version: the newer commits were not applied
                for (i, v) in versions.iter().enumerate().skip(1) {
                    if let Some(o) = &v.object {
                        if self.live_equals(st, &obs.id, o) {
                            obs.evidence = Some(Direction::Reverse);
                            obs.commit = versions.get(i - 1).map(|v| v.commit.clone());
                            break;
                        }
                    }
                }
            }
            Presence::LiveOnly { .. } if tick.first_scan || prev.is_none() => {
                obs.evidence = Some(if versions.is_empty() {
                    Direction::Forward
                } else {
                    Direction::Reverse
                });
            }
            _ => {}
        }
    }
}

/// Names who wrote the object back when its open drift ends with the object live
/// ([`Observation::resolver`]): the newest field manager, in `managedFields`, of the fields
/// that were drifted (a modified object), or of the object's fields (a missing object that is
/// back), among the writes made since the drift opened. A GitOps tool's correction names the
/// tool (`kustomize-controller`, `argocd-controller`); a person's `kubectl` names `kubectl-*`.
/// Status writes say nothing of who restored the spec and are left out. Nothing is named when no manager owns them (a
/// field added by hand and removed again: who removed it is the audit log's to say).
fn add_resolver(st: &EnvState, prev: Option<&DriftRecord>, obs: &mut Observation) {
    let Some(open) = prev.and_then(|r| r.drift.as_ref()) else {
        return;
    };
    if obs.presence.drift_kind() == Some(open.kind) {
        return;
    }
    let Some(live) = st.live.get(&obs.id) else {
        return;
    };
    // only a write since the drift opened can have ended it (`managedFields` times are
    // whole seconds): an owner from before says nothing of who wrote the object back (a dump
    // edited by hand keeps its old owners)
    let since = open.opened_at().trunc_subsecs(0);
    let managed: Vec<ManagedFieldsEntry> = live
        .managed_fields()
        .into_iter()
        .filter(|e| e.subresource != "status" && e.time.is_some_and(|t| t >= since))
        .collect();
    obs.resolver = match open.kind {
        DriftKind::Modified => owners_of(&managed, &open.paths_owned())
            .into_iter()
            .max_by_key(|o| o.time)
            .map(|o| o.manager),
        DriftKind::Missing => managed
            .into_iter()
            .max_by_key(|e| e.time)
            .map(|e| e.manager),
        DriftKind::Orphan => None,
    };
}

/// Fills in what the audit log says of a drifted observation: the writers since the object
/// last agreed with Git, and the users of its field owners.
fn add_audit(
    st: &EnvState,
    prev: Option<&DriftRecord>,
    obs: &mut Observation,
    audit: &AuditEvidence,
) {
    let Some(kind) = obs.presence.drift_kind() else {
        return;
    };
    let since = window_start(prev, audit.last_scan);
    let writes = audit.writes.get(&obs.id).map_or(&[][..], Vec::as_slice);
    let (managed, drifted) = match &obs.presence {
        Presence::Both(c) if !audit.cloud => (
            st.live
                .get(&obs.id)
                .map(|l| l.managed_fields())
                .unwrap_or_default(),
            c.drifted_paths(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let may_have_set = attributable(managed.clone(), obs.evidence);
    let writers = attribute(
        kind,
        &drifted,
        &mut obs.owners,
        &managed,
        &may_have_set,
        writes,
        since,
    );
    obs.audit = Some(AuditFinding { writers, since });
}

/// What an evaluation reads beside the state and the records.
#[derive(Clone, Copy)]
struct Gathered<'a> {
    histories: &'a Histories,
    audit: &'a AuditEvidence,
    tick: &'a Tick,
}

/// Drifted first, then unknown, then in sync; by identity within each.
fn sort_verdicts(verdicts: &mut [Verdict]) {
    verdicts.sort_by(|a, b| {
        let rank = |v: &Verdict| match v.status {
            VerdictStatus::Drifted => 0,
            VerdictStatus::Unknown => 1,
            VerdictStatus::InSync => 2,
        };
        rank(a).cmp(&rank(b)).then(a.id.cmp(&b.id))
    });
}
