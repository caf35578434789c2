//! One object's two sides turned into an [`Observation`].

use crate::audit::attributable;
use crate::compare::compare_docs;
use crate::doc::Doc;
use crate::findings::FindingInput;
use crate::id::ResourceId;
use crate::managed::{by_hand, direction_from_owners, owners_of, FieldOwner};
use crate::normalize::{DesiredObject, LiveObject};
use crate::state::{Direction, DriftKind, Observation, Presence};

use super::{Engine, EnvState};

impl Engine {
    /// What is seen of one object. Severity, risk findings and evidence from last-applied are
    /// filled in; history-based evidence and the commit are left to [`Engine::evaluate`]. An
    /// object of a kind whose live state could not be read is [`Presence::Unknown`].
    pub fn observe(&self, st: &EnvState, id: &ResourceId) -> Observation {
        if !st.unknown_kinds.is_empty() && st.unknown_kinds.contains(&id.group_kind()) {
            let api_version = st
                .desired
                .get(id)
                .map(|d| d.object.api_version.clone())
                .unwrap_or_default();
            return Observation::new(id.clone(), api_version, Presence::Unknown);
        }
        let d = st.desired.get(id);
        let l = st.live.get(id);
        let api_version = d
            .map(|d| d.object.api_version.clone())
            .or_else(|| l.map(|l| l.object.api_version.clone()))
            .unwrap_or_default();
        let mut obs = match (d, l) {
            (Some(d), Some(l)) => {
                // indexed objects were compared when the live side was indexed
                let cmp = match &l.compared {
                    Some(cmp) => cmp.clone(),
                    None => self.compare_fields(d, st.predicted.get(id), l),
                };
                let cmp = self.ignore_managers(id, l, cmp);
                let mut obs = Observation::new(id.clone(), api_version, Presence::Both(cmp));
                if let Presence::Both(cmp) = &obs.presence {
                    if !cmp.in_sync() {
                        obs.evidence = self.last_applied_evidence(st, d, l);
                        // the last client-side apply wrote Git's values, and live differs:
                        // that manager is not who changed the field
                        let managed = attributable(l.managed_fields(), obs.evidence);
                        obs.owners = owners_of(&managed, &cmp.drifted_paths());
                        if obs.evidence.is_none() {
                            // applied server-side: managedFields say who wrote since
                            obs.evidence =
                                direction_from_owners(&managed, &obs.owners, cmp.drifted.len());
                        }
                        if obs.evidence.is_none()
                            && !managed.is_empty()
                            && only_live_moves(cmp, &obs.owners)
                        {
                            obs.evidence = Some(Direction::Forward);
                        }
                        obs.severity =
                            self.spec
                                .severity
                                .classify(id, DriftKind::Modified, &cmp.drifted);
                        obs.findings = self.spec.findings.judge(&FindingInput {
                            id,
                            kind: DriftKind::Modified,
                            fields: &cmp.drifted,
                            owners: &obs.owners,
                            desired: Some(&d.object.content),
                            live: Some(&l.object.content),
                        });
                    }
                }
                obs
            }
            (Some(d), None) => {
                let fields = compare_docs(&id.group, &id.kind, &d.object.content, &Doc::null())
                    .desired_fields();
                let mut obs = Observation::new(
                    id.clone(),
                    api_version,
                    Presence::DesiredOnly {
                        desired_hash: fields.combined(),
                        fields,
                    },
                );
                obs.severity = self.spec.severity.classify(id, DriftKind::Missing, &[]);
                obs.findings = self.spec.findings.judge(&FindingInput {
                    desired: Some(&d.object.content),
                    ..FindingInput::new(id, DriftKind::Missing, &[])
                });
                obs
            }
            (None, Some(l)) => {
                let mut obs = Observation::new(
                    id.clone(),
                    api_version,
                    Presence::LiveOnly {
                        live_hash: l.object.content.hash(),
                    },
                );
                obs.severity = self.spec.severity.classify(id, DriftKind::Orphan, &[]);
                obs.findings = self.spec.findings.judge(&FindingInput {
                    live: Some(&l.object.content),
                    ..FindingInput::new(id, DriftKind::Orphan, &[])
                });
                obs
            }
            (None, None) => Observation::new(id.clone(), api_version, Presence::Neither),
        };
        obs.provenance = d.map(|d| d.provenance.clone());
        obs
    }
}

impl Engine {
    /// Direction evidence from the last-applied annotation, for objects with no history.
    fn last_applied_evidence(
        &self,
        st: &EnvState,
        d: &DesiredObject,
        l: &LiveObject,
    ) -> Option<Direction> {
        let id = &d.object.id;
        let pointers = self.pointers_in(st, id);
        let la = self
            .normalizer
            .last_applied(&self.spec.name, l, &pointers)?;
        last_applied_evidence(d, l, &la)
    }
}

/// Whether every drifted field is one Git does not set, that nobody owns (scaled through the
/// scale subresource) or a person wrote by hand: Git cannot have moved a field it does not set
/// (an applier that stops setting one removes it, and owns it until then), so live moved.
/// Only for an object whose `managedFields` are known (a dump read with `kubectl get` has
/// none: nobody owning a field says nothing there).
fn only_live_moves(cmp: &crate::compare::Comparison, owners: &[FieldOwner]) -> bool {
    !cmp.drifted.is_empty()
        && cmp.drifted.iter().all(|f| {
            f.desired.is_none()
                && owners
                    .iter()
                    .filter(|o| o.path == f.path)
                    .all(|o| by_hand(&o.manager, &o.operation))
        })
}

fn last_applied_evidence(d: &DesiredObject, l: &LiveObject, la: &Doc) -> Option<Direction> {
    if la == &d.object.content {
        // Git's current version was applied, and live differs from it: changed by hand
        return Some(Direction::Forward);
    }
    let id = &d.object.id;
    if compare_docs(&id.group, &id.kind, la, &l.object.content).in_sync() {
        // live is still what was applied last, and Git moved on
        return Some(Direction::Reverse);
    }
    // Git moved on from what was applied, and live moved away from it too: both moved. Only
    // for an object never applied server-side, whose annotation nothing else leaves stale
    if l.managed_fields().iter().all(|e| e.operation != "Apply") {
        return Some(Direction::Conflict);
    }
    None
}
