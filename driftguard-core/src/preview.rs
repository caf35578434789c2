//! What merging a change to Git would do to an environment, judged against its drift history.
//!
//! A preview compares three sides of every object a change touches: Git at the base revision,
//! Git at the head revision and the cluster now, each normalized and compared by the engine as
//! a scan does ([`Engine::index`], [`Engine::observe`]). Each field the change would write is
//! classified against the environment's open drifts ([`DriftRecord`]s):
//!
//! | class | when |
//! | --- | --- |
//! | [`ChangeClass::Overwrites`] | the field is a hand change now (an open drift that is not Git's own unapplied change) and head does not carry the live value: the merge undoes it |
//! | [`ChangeClass::Adopts`] | head writes what the cluster already runs: the drift resolves as adopted |
//! | [`ChangeClass::Conflicts`] | the change and the cluster both moved the field, to different values |
//! | [`ChangeClass::New`] | an ordinary change |
//!
//! Objects head adds are created (or adopted, when the cluster already runs them as head has
//! them), objects head drops are pruned. An object whose desired state the change does not
//! touch is left out: merging does not change what Git says of it. Risk findings
//! ([`crate::findings`]) judge what applying head would change in the cluster, the live value as
//! the one before and head's as the one after. Secret values are never shown: field values of a
//! Secret pass through [`crate::secret::redact_at`].
//!
//! Pure: the caller renders both revisions, reads the live side and the stored records
//! ([`Scanner::preview`](crate::scanner::Scanner::preview) does, through its ports, in
//! `gather`).

mod gather;

pub use gather::{PreviewError, PreviewRun};

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compare::{compare_docs, Comparison, FieldDiff};
use crate::engine::{Engine, EnvState};
use crate::findings::{Finding, FindingCategory, FindingInput};
use crate::id::ResourceId;
use crate::model::{Provenance, Revision};
use crate::names::named_enum;
use crate::normalize::DesiredObject;
use crate::path::FieldPath;
use crate::severity::Severity;
use crate::state::{Direction, Drift, DriftKind, DriftRecord, Presence};

named_enum! {
    /// How one change of a preview relates to the drift history, least to most worrying.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum ChangeClass: "change class" {
        /// An ordinary change: the cluster runs what Git said before.
        New => "new",
        /// Head writes into Git what the cluster already runs.
        Adopts => "adopts",
        /// The field is a hand change now and head does not carry it: the merge undoes it.
        Overwrites => "overwrites",
        /// The change and the cluster both moved the field, to different values.
        Conflicts => "conflicts",
    }
}

named_enum! {
    /// What happens to an object.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum ObjectChange: "object change" {
        /// Both revisions define it: some of its fields change.
        Modified => "modified",
        /// Applying head creates it.
        Created => "created",
        /// Head drops it: a pruning sync deletes it.
        Pruned => "pruned",
        /// Head adds it to Git as the cluster already runs it.
        Adopted => "adopted",
    }
}

/// A hand change a preview names: who made it and when, from the drift's attribution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandChange {
    /// Who: the audit log's user and tool (`alice (kubectl-set)`), else the field manager;
    /// empty when nothing names anyone.
    pub who: String,
    /// When the field was written, else when the drift opened.
    pub at: DateTime<Utc>,
    /// The drift episode.
    pub episode: String,
    /// The drift's direction.
    pub direction: Direction,
}

/// One field a merge would write, classified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field.
    pub path: FieldPath,
    /// How it relates to the drift history.
    pub class: ChangeClass,
    /// Git's value at the base revision (`None`: absent).
    pub base: Option<Value>,
    /// Git's value at the head revision.
    pub head: Option<Value>,
    /// The cluster's value now.
    pub live: Option<Value>,
    /// The hand change this field holds now (overwritten, adopted or in conflict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand_change: Option<HandChange>,
}

/// One object a merge would change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectPreview {
    /// The object.
    pub id: ResourceId,
    /// Its API version (head's, else base's).
    pub api_version: String,
    /// What happens to it.
    pub change: ObjectChange,
    /// The most worrying class among its changes.
    pub class: ChangeClass,
    /// The fields that change (empty for whole-object changes).
    #[serde(default)]
    pub fields: Vec<FieldChange>,
    /// A hand change to the whole object: deleted by hand and created again, or pruned while
    /// it holds hand changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand_change: Option<HandChange>,
    /// Risk findings of the result: what applying head changes in the cluster.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Where head (else base) defines it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// The cluster's side could not be read: the fields are classified as new.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live_unknown: bool,
}

/// How many of each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewCounts {
    /// Hand changes the merge undoes (fields, and objects deleted by hand or pruned with
    /// hand changes).
    pub overwrites: usize,
    /// Drifts the merge adopts (fields, and objects adopted whole).
    pub adopts: usize,
    /// Fields in conflict.
    pub conflicts: usize,
    /// Ordinary changes (fields).
    pub new: usize,
    /// Objects created.
    pub created: usize,
    /// Objects pruned.
    pub pruned: usize,
    /// Findings of high or critical risk.
    pub high: usize,
}

/// What a merge would do to one environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvPreview {
    /// The environment.
    pub environment: String,
    /// Git at the base revision.
    pub base: Option<Revision>,
    /// Git at the head revision.
    pub head: Option<Revision>,
    /// The objects the change touches, by identity.
    pub objects: Vec<ObjectPreview>,
}

impl EnvPreview {
    /// How many of each.
    pub fn counts(&self) -> PreviewCounts {
        let mut c = PreviewCounts::default();
        for o in &self.objects {
            match o.change {
                ObjectChange::Created => c.created += 1,
                ObjectChange::Pruned => c.pruned += 1,
                ObjectChange::Adopted => c.adopts += 1,
                ObjectChange::Modified => {}
            }
            if o.hand_change.is_some() && o.fields.is_empty() {
                match o.class {
                    ChangeClass::Adopts => {}
                    ChangeClass::Conflicts => c.conflicts += 1,
                    _ => c.overwrites += 1,
                }
            }
            for f in &o.fields {
                match f.class {
                    ChangeClass::New => c.new += 1,
                    ChangeClass::Adopts => c.adopts += 1,
                    ChangeClass::Overwrites => c.overwrites += 1,
                    ChangeClass::Conflicts => c.conflicts += 1,
                }
            }
            c.high += o
                .findings
                .iter()
                .filter(|f| f.risk >= Severity::High)
                .count();
        }
        c
    }

    /// Whether the change touches this environment's desired state.
    pub fn touched(&self) -> bool {
        !self.objects.is_empty()
    }
}

/// Findings about where a value came from (a drift's provenance) rather than what it does:
/// they say nothing of a change reviewed in Git.
const DRIFT_ONLY_RULES: &[&str] = &["image-not-in-git"];

impl Engine {
    /// What merging head into base would do to the environment: `base` and `head` are the
    /// environment indexed at each revision against the same live snapshot, `records` the
    /// stored drift records. Objects by identity; only those the change touches.
    pub fn preview(&self, base: &EnvState, head: &EnvState, records: &[DriftRecord]) -> EnvPreview {
        let records: HashMap<&ResourceId, &Drift> = records
            .iter()
            .filter_map(|r| {
                r.drift
                    .as_deref()
                    .filter(|d| d.is_open())
                    .map(|d| (&r.id, d))
            })
            .collect();
        let mut ids: Vec<&ResourceId> = base.desired.keys().chain(head.desired.keys()).collect();
        ids.sort();
        ids.dedup();
        let objects = ids
            .into_iter()
            .filter_map(|id| self.preview_object(base, head, id, records.get(id).copied()))
            .collect();
        EnvPreview {
            environment: self.spec.name.clone(),
            base: base.revision.clone(),
            head: head.revision.clone(),
            objects,
        }
    }

    fn preview_object(
        &self,
        base: &EnvState,
        head: &EnvState,
        id: &ResourceId,
        drift: Option<&Drift>,
    ) -> Option<ObjectPreview> {
        let (b, h) = (base.desired.get(id), head.desired.get(id));
        let live_unknown = head.unknown_kinds.contains(&id.group_kind());
        let live = head.live.get(id).or_else(|| base.live.get(id));
        let mut out = ObjectPreview {
            id: id.clone(),
            api_version: h.or(b).map(|d| d.object.api_version.clone())?,
            change: ObjectChange::Modified,
            class: ChangeClass::New,
            fields: Vec::new(),
            hand_change: None,
            findings: Vec::new(),
            provenance: h.or(b).map(|d| d.provenance.clone()),
            live_unknown,
        };
        match (b, h) {
            (Some(b), Some(h)) => {
                let changed = changed_fields(id, b, h);
                if changed.is_empty() {
                    return None;
                }
                if live_unknown {
                    out.fields = changed
                        .into_iter()
                        .map(|f| FieldChange {
                            path: f.path,
                            class: ChangeClass::New,
                            base: f.live,
                            head: f.desired,
                            live: None,
                            hand_change: None,
                        })
                        .collect();
                } else if live.is_none() {
                    out.change = ObjectChange::Created;
                    out.hand_change = drift
                        .filter(|d| d.kind == DriftKind::Missing && moved_live(d))
                        .map(whole);
                    out.class = class_of_whole(&out.hand_change);
                    out.findings = self.created_findings(id, h);
                } else {
                    let bl = self.both(base, id);
                    let hl = self.both(head, id);
                    out.fields = classify(&changed, &bl, &hl, drift);
                    out.findings = self.modified_findings(head, id, &out.fields);
                }
            }
            (None, Some(h)) => {
                if live_unknown || live.is_none() {
                    out.change = ObjectChange::Created;
                    out.findings = self.created_findings(id, h);
                } else {
                    let hl = self.both(head, id);
                    if hl.in_sync() {
                        out.change = ObjectChange::Adopted;
                        out.class = ChangeClass::Adopts;
                        out.hand_change = drift.map(whole);
                    } else {
                        // the cluster runs it, Git did not have it: every field head sets
                        // that live lacks is written, the rest adopted
                        out.fields = hl
                            .drifted
                            .iter()
                            .map(|f| FieldChange {
                                path: f.path.clone(),
                                class: ChangeClass::New,
                                base: None,
                                head: f.desired.clone(),
                                live: f.live.clone(),
                                hand_change: None,
                            })
                            .collect();
                        out.findings = self.modified_findings(head, id, &out.fields);
                    }
                }
            }
            (Some(b), None) => {
                if !live_unknown && live.is_none() {
                    return None;
                }
                out.change = ObjectChange::Pruned;
                out.hand_change = drift.filter(|d| moved_live(d)).map(whole);
                out.class = class_of_whole(&out.hand_change);
                out.findings = self.pruned_findings(id, b);
            }
            (None, None) => return None,
        }
        if !out.fields.is_empty() {
            out.class = out
                .fields
                .iter()
                .map(|f| f.class)
                .max()
                .unwrap_or(ChangeClass::New);
        }
        if crate::secret::is_secret(&id.group, &id.kind) {
            for f in &mut out.fields {
                let pointer = pointer_of(&f.path);
                for v in [&mut f.base, &mut f.head, &mut f.live]
                    .into_iter()
                    .flatten()
                {
                    *v = crate::secret::redact_at(&pointer, v);
                }
            }
        }
        Some(out)
    }

    /// The comparison of Git and live at one revision (empty when either is missing).
    fn both(&self, st: &EnvState, id: &ResourceId) -> Comparison {
        match self.observe(st, id).presence {
            Presence::Both(cmp) => cmp,
            _ => Comparison {
                leaves: Vec::new(),
                drifted: Vec::new(),
                drifted_hashes: Vec::new(),
            },
        }
    }

    /// Findings of what applying head changes in an object: live before, head after.
    fn modified_findings(
        &self,
        head: &EnvState,
        id: &ResourceId,
        fields: &[FieldChange],
    ) -> Vec<Finding> {
        let applied: Vec<FieldDiff> = fields
            .iter()
            .filter(|f| f.class != ChangeClass::Adopts)
            .map(|f| FieldDiff {
                path: f.path.clone(),
                desired: f.live.clone(),
                live: f.head.clone(),
            })
            .collect();
        if applied.is_empty() {
            return Vec::new();
        }
        let after = head.desired.get(id).map(|d| &d.object.content);
        let before = head.live.get(id).map(|l| &l.object.content);
        let found = self.spec.findings.judge(&FindingInput {
            desired: before,
            live: after,
            ..FindingInput::new(id, DriftKind::Modified, &applied)
        });
        of_the_result(found)
    }

    /// Findings of an object head creates: judged as an object the cluster gains.
    fn created_findings(&self, id: &ResourceId, h: &DesiredObject) -> Vec<Finding> {
        of_the_result(self.spec.findings.judge(&FindingInput {
            live: Some(&h.object.content),
            ..FindingInput::new(id, DriftKind::Orphan, &[])
        }))
    }

    /// Findings of an object head prunes: judged as an object the cluster loses.
    fn pruned_findings(&self, id: &ResourceId, b: &DesiredObject) -> Vec<Finding> {
        of_the_result(self.spec.findings.judge(&FindingInput {
            desired: Some(&b.object.content),
            ..FindingInput::new(id, DriftKind::Missing, &[])
        }))
    }
}

fn of_the_result(found: Vec<Finding>) -> Vec<Finding> {
    found
        .into_iter()
        .filter(|f| {
            !matches!(
                f.category,
                FindingCategory::LikelyNoise | FindingCategory::Cosmetic
            ) && !DRIFT_ONLY_RULES.contains(&f.rule.as_str())
        })
        .collect()
}

/// The fields Git changes between base and head, both ways (what head sets, and what only
/// base set): `desired` is head's value, `live` base's.
fn changed_fields(id: &ResourceId, b: &DesiredObject, h: &DesiredObject) -> Vec<FieldDiff> {
    let (bc, hc) = (&b.object.content, &h.object.content);
    let mut out = compare_docs(&id.group, &id.kind, hc, bc).drifted;
    for f in compare_docs(&id.group, &id.kind, bc, hc).drifted {
        if out.iter().all(|g| g.path != f.path) {
            out.push(FieldDiff {
                path: f.path,
                desired: f.live,
                live: f.desired,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Classifies each field of an object both revisions define and the cluster runs. `changed`:
/// Git base → head (head as `desired`, base as `live`); `bl` and `hl`: each revision against
/// live.
fn classify(
    changed: &[FieldDiff],
    bl: &Comparison,
    hl: &Comparison,
    drift: Option<&Drift>,
) -> Vec<FieldChange> {
    let find = |c: &Comparison, p: &FieldPath| c.drifted.iter().find(|f| &f.path == p).cloned();
    let mut out = Vec::new();
    // the fields the change writes
    for f in changed {
        let at_head = find(hl, &f.path);
        let at_base = find(bl, &f.path);
        let live = match (&at_head, &at_base) {
            (Some(x), _) => x.live.clone(),
            (None, Some(x)) => x.live.clone(),
            (None, None) => f.desired.clone(),
        };
        let hand = hand_change(drift, &f.path);
        // the cluster moved the field away from base, by hand (Git's own unapplied change is
        // not a move of the cluster)
        let live_moved = at_base.is_some() && !reverse_only(drift, &f.path);
        let class = match (at_head.is_some(), live_moved) {
            // head writes what live runs
            (false, _) if at_base.is_some() => ChangeClass::Adopts,
            (false, _) => ChangeClass::New,
            (true, true) => ChangeClass::Conflicts,
            (true, false) => ChangeClass::New,
        };
        out.push(FieldChange {
            path: f.path.clone(),
            class,
            base: f.live.clone(),
            head: f.desired.clone(),
            live,
            hand_change: hand.filter(|_| class != ChangeClass::New),
        });
    }
    // the fields the change leaves as they were in Git, which applying head writes again
    for f in &hl.drifted {
        if changed.iter().any(|c| c.path == f.path) {
            continue;
        }
        let hand = hand_change(drift, &f.path);
        let overwrites = hand.is_some();
        out.push(FieldChange {
            path: f.path.clone(),
            class: if overwrites {
                ChangeClass::Overwrites
            } else {
                ChangeClass::New
            },
            base: f.desired.clone(),
            head: f.desired.clone(),
            live: f.live.clone(),
            hand_change: hand,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Whether an open drift is the cluster's doing (not Git's own unapplied change).
fn moved_live(d: &Drift) -> bool {
    d.direction != Direction::Reverse
}

/// Whether the only open drift on `path` is Git's unapplied change.
fn reverse_only(drift: Option<&Drift>, path: &FieldPath) -> bool {
    drift.is_some_and(|d| {
        d.direction == Direction::Reverse && d.fields.iter().any(|f| &f.path == path)
    })
}

/// The hand change on `path`: a field of an open drift the cluster made, with who wrote it
/// (the audit log's write of the field, else its field manager, else the drift's who) and when.
fn hand_change(drift: Option<&Drift>, path: &FieldPath) -> Option<HandChange> {
    let d = drift.filter(|d| d.kind == DriftKind::Modified && moved_live(d))?;
    d.fields.iter().find(|f| &f.path == path)?;
    let a = &d.attribution;
    let owner = a.owners.iter().find(|o| &o.path == path);
    let (who, at) = match owner {
        Some(o) => match a.writer_of(o) {
            Some(w) => (format!("{} ({})", w.user.display(), w.via()), Some(w.at)),
            None => (o.manager.clone(), o.time),
        },
        None => (String::new(), None),
    };
    let who = if who.is_empty() { d.who() } else { who };
    Some(HandChange {
        who,
        at: at.unwrap_or_else(|| d.opened_at()),
        episode: d.episode.clone(),
        direction: d.direction,
    })
}

/// A whole-object hand change: who the drift names, since it opened.
fn whole(d: &Drift) -> HandChange {
    HandChange {
        who: d.who(),
        at: d.opened_at(),
        episode: d.episode.clone(),
        direction: d.direction,
    }
}

fn class_of_whole(hand: &Option<HandChange>) -> ChangeClass {
    if hand.is_some() {
        ChangeClass::Overwrites
    } else {
        ChangeClass::New
    }
}

/// The JSON pointer of a field path (`data.password` → `/data/password`).
fn pointer_of(path: &FieldPath) -> String {
    let mut out = String::new();
    for s in path.segments() {
        out.push('/');
        out.push_str(&s.map_key().replace('~', "~0").replace('/', "~1"));
    }
    out
}

#[cfg(test)]
mod tests;
