//! The drift state machine: a pure function from the previous record and an observation (and
//! the time, passed in) to the next record and the events.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::audit::{merge_writers, AuditFinding, AuditWrite};
use crate::by_id::{ById, Identified};
use crate::compare::{Comparison, FieldDiff};
use crate::findings::Finding;
use crate::hash::FieldHashes;
use crate::id::ResourceId;
use crate::managed::FieldOwner;
use crate::model::{CommitInfo, Provenance};
use crate::names::named_enum;
use crate::severity::Severity;

named_enum! {
    /// What kind of drift.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum DriftKind: "drift kind" {
        /// Both sides exist and differ.
        Modified => "modified",
        /// In Git, not in the cluster.
        Missing => "missing",
        /// In the cluster (and tracked), not in Git.
        Orphan => "orphan",
    }
}

named_enum! {
    /// Which side moved.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Direction: "direction" {
        /// Live changed since the two last agreed; Git did not.
        Forward => "forward",
        /// Git changed; live did not (not applied).
        Reverse => "reverse",
        /// Both changed.
        Conflict => "conflict",
        /// No evidence either way.
        Unknown => "unknown",
    }
}

named_enum! {
    /// How a drift ended.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Resolution: "resolution" {
        /// Live went back to Git.
        Reverted => "reverted",
        /// Git changed to match live.
        Adopted => "adopted",
        /// The desired side was applied: a reverse drift, or any drift an apply ended when the
        /// source knows its applies (Terraform).
        Applied => "applied",
        /// The object left both sides.
        Removed => "removed",
    }
}

named_enum! {
    /// What happened to a drift.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum EventKind: "event kind" {
        /// A drift began.
        Detected => "detected",
        /// The drifted fields, direction, severity or findings changed, or the audit log
        /// named new writers.
        Changed => "changed",
        /// The drift ended.
        Resolved => "resolved",
        /// DriftGuard remediated the drift (or tried to): see [`DriftEvent::remediation`].
        Remediated => "remediated",
        /// A drift that had been reverted came back, the same change on the same fields soon
        /// after ([`RECURRENCE_WINDOW`]): its episode opens again ([`Drift::recurrences`]).
        Recurred => "recurred",
        /// A person acknowledged the drift: see [`DriftEvent::acknowledgement`] and
        /// [`crate::ack`].
        Acknowledged => "acknowledged",
        /// The drift's acknowledgement lapsed (the drift changed or ended, the expiry passed)
        /// or was withdrawn: see [`DriftEvent::acknowledgement`].
        Unacknowledged => "unacknowledged",
    }
}

/// A 64-bit hash, written as 16 hex digits (safe for JSON and BSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash64(pub u64);

impl fmt::Display for Hash64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for Hash64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Hash64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16)
            .map(Hash64)
            .map_err(serde::de::Error::custom)
    }
}

/// Who changed a drifted object: field managers and, from the audit log, the people behind
/// them on the live side; the commit on the Git side.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// Owners of the drifted fields (from `metadata.managedFields`; where it names none, from
    /// the audit log's write, see [`crate::audit::attribute`]).
    #[serde(default)]
    pub owners: Vec<FieldOwner>,
    /// The commit that last changed the object in Git.
    #[serde(default)]
    pub commit: Option<CommitInfo>,
    /// The writes of the audit log that may have made the drift, oldest first: who, with what,
    /// from where, when (forward, conflict and unknown drift, in an environment with an audit
    /// index). They only grow while the drift is open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writers: Vec<AuditWrite>,
    /// Writes were taken from this time on: when the object last agreed with Git, as far as
    /// was known when the drift was detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_since: Option<DateTime<Utc>>,
}

impl Attribution {
    /// Distinct field managers, most recent first.
    pub fn managers(&self) -> Vec<String> {
        let mut owners: Vec<&FieldOwner> = self.owners.iter().collect();
        owners.sort_by_key(|o| std::cmp::Reverse(o.time));
        let mut out: Vec<String> = Vec::new();
        for o in owners {
            if !out.contains(&o.manager) {
                out.push(o.manager.clone());
            }
        }
        out
    }

    /// The write of the audit log that set an owner's field, when one is named.
    pub fn writer_of(&self, owner: &FieldOwner) -> Option<&AuditWrite> {
        let id = owner.audit_id.as_deref()?;
        self.writers.iter().find(|w| w.audit_id == id)
    }

    /// The users of the writers, each once with what they wrote with: people first, then
    /// service accounts, then system users, the most recent first (`alice (kubectl-edit)`,
    /// `bob (kubectl/scale, kubectl-patch)`).
    pub fn users(&self) -> Vec<String> {
        let mut by_user: Vec<(&AuditWrite, Vec<String>)> = Vec::new();
        for w in self.writers.iter().rev() {
            match by_user.iter_mut().find(|(x, _)| x.user == w.user) {
                Some((_, via)) => {
                    if !via.contains(&w.via()) {
                        via.push(w.via());
                    }
                }
                None => by_user.push((w, vec![w.via()])),
            }
        }
        by_user.sort_by_key(|(w, _)| w.user.class);
        by_user
            .into_iter()
            .map(|(w, via)| format!("{} ({})", w.user.display(), via.join(", ")))
            .collect()
    }

    /// A one-line summary of who: for forward drift the users the audit log names (else the
    /// field managers), for reverse drift the commit author.
    pub fn who(&self, direction: Direction) -> String {
        let users = self.users();
        let live = if users.is_empty() {
            self.managers().join(", ")
        } else {
            users.join(", ")
        };
        let commit = self
            .commit
            .as_ref()
            .map(|c| format!("{} ({})", c.author, &c.id[..c.id.len().min(8)]));
        match direction {
            // Git moved: the commit is who; the cluster's managers only applied older Git
            Direction::Reverse => commit.unwrap_or_default(),
            // the cluster moved: only its writers can say who (the commit that last changed
            // the object in Git is not the person who changed the cluster)
            Direction::Forward => live,
            Direction::Conflict => match commit {
                Some(c) if !live.is_empty() => format!("{live}; {c}"),
                Some(c) => c,
                None => live,
            },
            Direction::Unknown => {
                if live.is_empty() {
                    commit.unwrap_or_default()
                } else {
                    live
                }
            }
        }
    }
}

/// One drift episode: from detection to resolution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Episode id (stable across scans).
    pub episode: String,
    /// The object.
    pub id: ResourceId,
    /// Its API version.
    pub api_version: String,
    /// Kind of drift.
    pub kind: DriftKind,
    /// Direction.
    pub direction: Direction,
    /// Severity.
    pub severity: Severity,
    /// Drifted fields (empty for missing and orphan objects).
    #[serde(default)]
    pub fields: Vec<FieldDiff>,
    /// Who.
    #[serde(default)]
    pub attribution: Attribution,
    /// When it was first seen.
    pub detected_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it ended.
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// How it ended.
    #[serde(default)]
    pub resolution: Option<Resolution>,
    /// Who ended it: DriftGuard for a remediation ([`crate::remediate::ACTOR`]); otherwise,
    /// for a drift that ended with the object still live (reverted or applied), the field
    /// manager that wrote the drifted fields back ([`Observation::resolver`]: a GitOps tool's
    /// correction names `kustomize-controller`, `argocd-controller`). Absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// How many times the episode came back after it was reverted ([`EventKind::Recurred`]):
    /// a hand change a GitOps tool keeps undoing is one episode, not a new one every time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recurrences: u32,
    /// When it last came back ([`EventKind::Recurred`]); absent for an episode that never
    /// did. The current opening began then (or at [`Drift::detected_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurred_at: Option<DateTime<Utc>>,
    /// Git revision at the last update.
    #[serde(default)]
    pub revision: Option<String>,
    /// Where the object is defined in Git.
    #[serde(default)]
    pub provenance: Option<Provenance>,
    /// What the drift means: risk findings, highest risk first (see [`crate::findings`]).
    /// Absent in data stored before findings existed.
    #[serde(default)]
    pub findings: Vec<Finding>,
}

/// How a drift ended, in words, from its resolution and who ended it: `reverted by
/// kustomize-controller`, `adopted`. Every frontend says it this way.
pub fn ended_how(resolution: &str, resolved_by: Option<&str>) -> String {
    match resolved_by {
        Some(by) => format!("{resolution} by {by}"),
        None => resolution.to_owned(),
    }
}

/// How often an episode came back, in words (`came back once`, `came back 3 times`); `None`
/// for one that never did.
pub fn recurrences_label(n: u32) -> Option<String> {
    match n {
        0 => None,
        1 => Some("came back once".into()),
        n => Some(format!("came back {n} times")),
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Drift {
    /// Whether the drift is still open.
    pub fn is_open(&self) -> bool {
        self.resolved_at.is_none()
    }

    /// Who: for a drift DriftGuard ended, DriftGuard ([`Drift::resolved_by`]); otherwise who
    /// changed the object ([`Attribution::who`]), also when a tool wrote it back (that one is
    /// [`Drift::resolved_by`]).
    pub fn who(&self) -> String {
        match &self.resolved_by {
            Some(by) if by == crate::remediate::ACTOR => by.clone(),
            _ => self.attribution.who(self.direction),
        }
    }

    /// When the current opening began: when it last came back, else when it was detected.
    pub fn opened_at(&self) -> DateTime<Utc> {
        self.recurred_at.unwrap_or(self.detected_at)
    }

    /// How it ended, in words (`reverted by kustomize-controller`); `None` while open.
    pub fn ended_how(&self) -> Option<String> {
        self.resolution
            .map(|r| ended_how(r.as_str(), self.resolved_by.as_deref()))
    }

    /// The drifted paths, owned.
    pub fn paths_owned(&self) -> Vec<crate::path::FieldPath> {
        self.fields.iter().map(|f| f.path.clone()).collect()
    }

    /// The drifted paths.
    pub fn paths(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.path.as_str()).collect()
    }

    /// Whether the object is a Terraform resource (or a cloud account's resource in no state):
    /// its API version is a provider's source address (`registry.terraform.io/hashicorp/aws`,
    /// two `/`, which no Kubernetes API version has), or it was rendered by terraform.
    pub fn is_terraform(&self) -> bool {
        self.api_version.matches('/').count() == 2
            || self
                .provenance
                .as_ref()
                .and_then(|p| p.rendered.as_ref())
                .is_some_and(|r| r.renderer == "terraform")
    }

    /// Why the direction is what it is, in one sentence (the CLI's `explain` and the
    /// dashboard show it), in the words of the environment's kind: the code, the state and
    /// the cloud for Terraform; Git and the cluster otherwise.
    pub fn direction_reason(&self) -> &'static str {
        if self.is_terraform() {
            return self.terraform_direction_reason();
        }
        match (self.kind, self.direction) {
            (DriftKind::Modified, Direction::Forward) => {
                "live changed since it last matched Git (or it differs from what was last applied); Git did not"
            }
            (DriftKind::Modified, Direction::Reverse) => {
                "Git changed and the change was not applied: live still equals the last applied (or an earlier Git) version"
            }
            (DriftKind::Modified, Direction::Conflict) => {
                "both Git and live changed since they last agreed"
            }
            (DriftKind::Missing, Direction::Forward) => {
                "the object was live before and was deleted by hand"
            }
            (DriftKind::Missing, Direction::Reverse) => {
                "the object is new in Git and was never applied"
            }
            (DriftKind::Orphan, Direction::Forward) => {
                "the object was created by hand in a namespace Git manages"
            }
            (DriftKind::Orphan, Direction::Reverse) => {
                "the object was removed from Git and not pruned"
            }
            (_, Direction::Unknown) => {
                "no history and no evidence yet: later scans will tell which side moves"
            }
            _ => "",
        }
    }

    fn terraform_direction_reason(&self) -> &'static str {
        match (self.kind, self.direction) {
            (DriftKind::Modified, Direction::Forward) => {
                "the cloud changed outside Terraform: the state (the last apply) still agrees with the code, the cloud does not"
            }
            (DriftKind::Modified, Direction::Reverse) => {
                "the code changed and was not applied: the cloud still equals the state; terraform apply would change it"
            }
            (DriftKind::Modified, Direction::Conflict) => {
                "both the code and the cloud changed since the last apply"
            }
            (DriftKind::Missing, Direction::Forward) => {
                "in the state, gone from the cloud: deleted outside Terraform"
            }
            (DriftKind::Missing, Direction::Reverse) => {
                "in the code, never applied: not in the state nor the cloud"
            }
            (DriftKind::Orphan, Direction::Forward) => {
                "in the cloud account and in no Terraform state: made outside Terraform"
            }
            (DriftKind::Orphan, Direction::Reverse) => {
                "removed from the code, still in the state and the cloud: terraform apply would destroy it"
            }
            (_, Direction::Unknown) => {
                "no history and no evidence yet: later checks will tell which side moves"
            }
            _ => "",
        }
    }
}

/// The current record of one tracked object. Holds hashes, never values (except the display
/// values of an open drift's fields, where Secret values are redacted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftRecord {
    /// The object.
    pub id: ResourceId,
    /// Its API version.
    pub api_version: String,
    /// Hash of the desired side (`None`: not in Git).
    pub desired_hash: Option<Hash64>,
    /// Hash of the live side (`None`: not in the cluster).
    pub live_hash: Option<Hash64>,
    /// Field hashes when the two sides last agreed.
    #[serde(default)]
    pub baseline: Option<FieldHashes>,
    /// The open drift, if any.
    #[serde(default)]
    pub drift: Option<Box<Drift>>,
    /// While a drift is open: the mark of the desired side's last apply as the source saw it
    /// at the last evaluation ([`Observation::applied_mark`]; Terraform: the state's lineage
    /// and serial). `None` when in sync, or when the source knows no such mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_mark: Option<Hash64>,
    /// The object's last episode, when it ended as [`Resolution::Reverted`] less than
    /// [`RECURRENCE_WINDOW`] ago: the same drift coming back reopens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted: Option<Box<RevertedEpisode>>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
}

/// Drift records by resource, each found by its own `id` ([`ById`]: the identity is held
/// once, and an empty slot of the table costs a pointer, not a record; a scanner keeps one
/// record per tracked object for as long as it runs).
pub type Records = ById<DriftRecord>;

impl Identified for DriftRecord {
    fn id(&self) -> &ResourceId {
        &self.id
    }
}

/// How long after a revert the same drift coming back is the same episode recurring: a day,
/// the span of a person (or a script) fighting a GitOps tool's corrections. A drift that
/// comes back later is a new episode.
pub const RECURRENCE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// What a record keeps of its last reverted episode (see [`DriftRecord::reverted`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevertedEpisode {
    /// The episode.
    pub episode: String,
    /// Its kind.
    pub kind: DriftKind,
    /// Its drifted paths (empty for a missing object).
    #[serde(default)]
    pub paths: Vec<crate::path::FieldPath>,
    /// When it was first detected.
    pub detected_at: DateTime<Utc>,
    /// When it was last reverted.
    pub reverted_at: DateTime<Utc>,
    /// How many times it had come back ([`Drift::recurrences`]).
    #[serde(default)]
    pub recurrences: u32,
}

impl RevertedEpisode {
    /// What a record keeps of `d`, reverted at `at`.
    fn of(d: &Drift, at: DateTime<Utc>) -> Self {
        RevertedEpisode {
            episode: d.episode.clone(),
            kind: d.kind,
            paths: d.fields.iter().map(|f| f.path.clone()).collect(),
            detected_at: d.detected_at,
            reverted_at: at,
            recurrences: d.recurrences,
        }
    }

    /// Whether a drift of `kind` on `fields`, opening at `now`, is this episode coming back:
    /// the same kind on the same fields, within [`RECURRENCE_WINDOW`] of the revert.
    fn recurs(&self, kind: DriftKind, fields: &[FieldDiff], now: DateTime<Utc>) -> bool {
        self.kind == kind
            && self.paths.len() == fields.len()
            && self.paths.iter().zip(fields).all(|(p, f)| *p == f.path)
            && now - self.reverted_at <= RECURRENCE_WINDOW
    }
}

/// One event of the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftEvent {
    /// Deterministic id: a retried scan yields the same ids.
    pub event_id: String,
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub at: DateTime<Utc>,
    /// The scan that saw it.
    pub scan_id: String,
    /// Git revision at the time.
    #[serde(default)]
    pub revision: Option<String>,
    /// The drift as it stands after the event.
    pub drift: Drift,
    /// What DriftGuard did, for a `remediated` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<crate::remediate::RemediationRecord>,
    /// The acknowledgement, for an `acknowledged` or `unacknowledged` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgement: Option<crate::ack::Acknowledgement>,
}

/// What the engine saw of one object in one scan.
#[derive(Clone, Debug, PartialEq)]
pub enum Presence {
    /// On both sides, compared.
    Both(Comparison),
    /// In Git only.
    DesiredOnly {
        /// Hash of the desired side.
        desired_hash: u64,
        /// Its field hashes.
        fields: FieldHashes,
    },
    /// Live only, and eligible as an orphan.
    LiveOnly {
        /// Hash of the live object.
        live_hash: u64,
    },
    /// On neither side (or live but not tracked).
    Neither,
    /// The live side could not be read (its kind is forbidden or failed to list, or the watch
    /// is down): nothing can be said, so the record stays as it is and nothing resolves.
    Unknown,
}

impl Presence {
    /// Whether this observation shows a drift.
    pub fn drifted(&self) -> bool {
        drift_kind(self).is_some()
    }

    /// Which kind of drift this observation shows, if any.
    pub fn drift_kind(&self) -> Option<DriftKind> {
        drift_kind(self)
    }
}

/// An observation of one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The object.
    pub id: ResourceId,
    /// API version seen.
    pub api_version: String,
    /// What was seen.
    pub presence: Presence,
    /// Owners of the drifted fields.
    pub owners: Vec<FieldOwner>,
    /// The last commit that changed the object in Git, if known.
    pub commit: Option<CommitInfo>,
    /// Direction from evidence, used when there is no history (first scan).
    pub evidence: Option<Direction>,
    /// Severity the rules give this drift (ignored when in sync).
    pub severity: Severity,
    /// Risk findings on this drift (empty when in sync).
    pub findings: Vec<Finding>,
    /// Where the object is defined in Git.
    pub provenance: Option<Provenance>,
    /// A mark that moves whenever the desired side is applied, when the source knows one
    /// (Terraform: a hash of the state's lineage and serial, which every `terraform apply`
    /// that changes something moves). A drift that ends while the mark moved was ended by an
    /// apply: it is resolved as [`Resolution::Applied`]. `None` for Kubernetes sources.
    pub applied_mark: Option<u64>,
    /// What the audit log says of the drift (`None`: the environment keeps no audit index).
    pub audit: Option<AuditFinding>,
    /// When an open drift ends with the object live: the field manager that wrote it back
    /// (see [`Drift::resolved_by`]; filled in by the engine from `managedFields`).
    pub resolver: Option<String>,
    /// The files and folders of the source (from its root) whose changes can change the
    /// desired side, when more than the provenance's file: for a Terraform resource, its
    /// module's folder, the files calling its module chain and the variable files. The commit
    /// named for a drift is the newest that changed any of them. Empty: the provenance's file.
    pub depends_on: Vec<String>,
}

impl Observation {
    /// An observation with no drift-specific facts filled in.
    pub fn new(id: ResourceId, api_version: impl Into<String>, presence: Presence) -> Self {
        Observation {
            id,
            api_version: api_version.into(),
            presence,
            owners: Vec::new(),
            commit: None,
            evidence: None,
            severity: Severity::Low,
            findings: Vec::new(),
            provenance: None,
            applied_mark: None,
            audit: None,
            resolver: None,
            depends_on: Vec::new(),
        }
    }
}

/// The context of one evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tick {
    /// Now (never read from the clock inside the core).
    pub now: DateTime<Utc>,
    /// The scan id.
    pub scan_id: String,
    /// The Git revision.
    pub revision: Option<String>,
    /// Whether the environment has no history yet: with no stored records, a missing or orphan
    /// object says nothing about which side moved.
    pub first_scan: bool,
}

/// The result of a transition.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The next record (`None`: forget the object).
    pub record: Option<DriftRecord>,
    /// Events.
    pub events: Vec<DriftEvent>,
    /// Whether the record differs from the previous one (must be written).
    pub changed: bool,
}

/// Which kind of drift an observation shows, if any.
fn drift_kind(p: &Presence) -> Option<DriftKind> {
    match p {
        Presence::Both(c) if !c.in_sync() => Some(DriftKind::Modified),
        Presence::DesiredOnly { .. } => Some(DriftKind::Missing),
        Presence::LiveOnly { .. } => Some(DriftKind::Orphan),
        _ => None,
    }
}

/// The pure transition function.
pub fn transition(prev: Option<&DriftRecord>, obs: &Observation, tick: &Tick) -> Transition {
    if matches!(obs.presence, Presence::Unknown) {
        // an unreadable side says nothing: no event, no change, nothing resolved by silence
        return Transition {
            record: prev.cloned(),
            events: Vec::new(),
            changed: false,
        };
    }
    let mut events = Vec::new();
    let prev_drift = prev.and_then(|r| r.drift.as_deref());
    let (desired_hash, live_hash) = match &obs.presence {
        Presence::Both(c) => (Some(c.desired_hash()), Some(c.live_hash())),
        Presence::DesiredOnly { desired_hash, .. } => (Some(*desired_hash), None),
        Presence::LiveOnly { live_hash } => (None, Some(*live_hash)),
        Presence::Neither | Presence::Unknown => (None, None),
    };
    let baseline = match &obs.presence {
        Presence::Both(c) if c.in_sync() => Some(c.desired_fields()),
        _ => prev.and_then(|r| r.baseline.clone()),
    };

    let new_kind = drift_kind(&obs.presence);
    // what is kept of the last reverted episode: while it may recur
    let mut reverted = prev
        .and_then(|r| r.reverted.clone())
        .filter(|r| tick.now - r.reverted_at <= RECURRENCE_WINDOW);
    // close the open drift if it ended or changed kind
    if let Some(open) = prev_drift {
        if new_kind != Some(open.kind) {
            let how = resolution(prev, open, obs, desired_hash, live_hash);
            let mut closed = open.clone();
            closed.resolved_at = Some(tick.now);
            closed.resolution = Some(how);
            closed.updated_at = tick.now;
            closed.revision = tick.revision.clone().or(closed.revision);
            // who wrote the object back, when it is still live (a tool's correction)
            if matches!(how, Resolution::Reverted | Resolution::Applied) {
                closed.resolved_by = obs.resolver.clone();
            }
            reverted = (how == Resolution::Reverted)
                .then(|| Box::new(RevertedEpisode::of(&closed, tick.now)));
            events.push(event(EventKind::Resolved, closed, tick));
        }
    }

    let drift = match new_kind {
        None => None,
        Some(kind) => {
            let fields = match &obs.presence {
                Presence::Both(c) => c.drifted.clone(),
                _ => Vec::new(),
            };
            let direction = direction(prev, obs, kind, tick);
            // the cluster's writers say nothing of a drift Git made
            let writers_for = |d: Direction| {
                obs.audit
                    .as_ref()
                    .filter(|_| d != Direction::Reverse)
                    .map(|f| f.writers.as_slice())
            };
            let attribution = Attribution {
                owners: obs.owners.clone(),
                commit: obs.commit.clone(),
                writers: writers_for(direction).unwrap_or_default().to_vec(),
                audit_since: obs.audit.as_ref().and_then(|f| f.since),
            };
            match prev_drift.filter(|d| d.kind == kind) {
                Some(open) => {
                    let moved = open.fields != fields
                        || open.severity != obs.severity
                        || prev.and_then(|r| r.live_hash) != live_hash.map(Hash64)
                        || prev.and_then(|r| r.desired_hash) != desired_hash.map(Hash64);
                    let direction = if moved { direction } else { open.direction };
                    let mut next = open.clone();
                    next.direction = direction;
                    next.severity = obs.severity;
                    next.fields = fields;
                    next.findings = obs.findings.clone();
                    next.api_version = obs.api_version.clone();
                    if !obs.owners.is_empty() || obs.commit.is_some() {
                        next.attribution.owners = attribution.owners;
                        next.attribution.commit = attribution.commit;
                    }
                    if let Some(found) = writers_for(direction) {
                        next.attribution.writers = merge_writers(&open.attribution.writers, found);
                    }
                    if next.attribution.audit_since.is_none() {
                        next.attribution.audit_since = attribution.audit_since;
                    }
                    if obs.provenance.is_some() {
                        next.provenance = obs.provenance.clone();
                    }
                    // newly named writers are news too: who did it, once the audit log said
                    if next.fields != open.fields
                        || next.direction != open.direction
                        || next.severity != open.severity
                        || next.findings != open.findings
                        || next.attribution.writers != open.attribution.writers
                    {
                        next.updated_at = tick.now;
                        next.revision = tick.revision.clone();
                        events.push(event(EventKind::Changed, next.clone(), tick));
                        Some(next)
                    } else {
                        Some(Drift {
                            updated_at: open.updated_at,
                            revision: open.revision.clone(),
                            ..next
                        })
                    }
                }
                None => {
                    // the same drift back soon after a revert: the episode recurs
                    let recurs = reverted
                        .take()
                        .filter(|r| r.recurs(kind, &fields, tick.now));
                    let d = Drift {
                        episode: recurs.as_ref().map_or_else(
                            || episode_id(&obs.id, kind, tick.now),
                            |r| r.episode.clone(),
                        ),
                        id: obs.id.clone(),
                        api_version: obs.api_version.clone(),
                        kind,
                        direction,
                        severity: obs.severity,
                        fields,
                        attribution,
                        detected_at: recurs.as_ref().map_or(tick.now, |r| r.detected_at),
                        updated_at: tick.now,
                        resolved_at: None,
                        resolution: None,
                        resolved_by: None,
                        recurrences: recurs.as_ref().map_or(0, |r| r.recurrences + 1),
                        recurred_at: recurs.as_ref().map(|_| tick.now),
                        revision: tick.revision.clone(),
                        provenance: obs.provenance.clone(),
                        findings: obs.findings.clone(),
                    };
                    let kind = match recurs {
                        Some(_) => EventKind::Recurred,
                        None => EventKind::Detected,
                    };
                    events.push(event(kind, d.clone(), tick));
                    Some(d)
                }
            }
        }
    };

    if matches!(obs.presence, Presence::Neither) {
        return Transition {
            changed: prev.is_some(),
            record: None,
            events,
        };
    }
    // the mark is only needed to tell how an open drift ends: in-sync records do not keep
    // it, so an apply does not rewrite them
    let applied_mark = drift.as_ref().and(obs.applied_mark).map(Hash64);
    let mut record = DriftRecord {
        id: obs.id.clone(),
        api_version: obs.api_version.clone(),
        desired_hash: desired_hash.map(Hash64),
        live_hash: live_hash.map(Hash64),
        baseline,
        drift: drift.map(Box::new),
        applied_mark,
        reverted,
        updated_at: prev.map_or(tick.now, |p| p.updated_at),
    };
    let changed = prev != Some(&record);
    if changed {
        record.updated_at = tick.now;
    }
    Transition {
        record: Some(record),
        events,
        changed,
    }
}

fn direction(
    prev: Option<&DriftRecord>,
    obs: &Observation,
    kind: DriftKind,
    tick: &Tick,
) -> Direction {
    match kind {
        DriftKind::Modified => {
            let Presence::Both(c) = &obs.presence else {
                return Direction::Unknown;
            };
            let Some(base) = prev.and_then(|r| r.baseline.as_ref()) else {
                return obs.evidence.unwrap_or(Direction::Unknown);
            };
            let (mut fwd, mut rev, mut both) = (false, false, false);
            for (i, _) in c.drifted.iter().enumerate() {
                let ph = c.drifted_hashes[i];
                let Some(leaf) = c.leaves.iter().find(|l| l.path == ph) else {
                    continue;
                };
                let b = base.get(ph);
                let git_moved = leaf.desired() != b;
                let live_moved = leaf.live() != b;
                match (git_moved, live_moved) {
                    (true, true) => both = true,
                    (true, false) => rev = true,
                    (false, true) => fwd = true,
                    (false, false) => {}
                }
            }
            match (fwd, rev, both) {
                (_, _, true) | (true, true, _) => Direction::Conflict,
                (true, false, false) => Direction::Forward,
                (false, true, false) => Direction::Reverse,
                _ => obs.evidence.unwrap_or(Direction::Unknown),
            }
        }
        DriftKind::Missing => match prev {
            // it was live before and now is gone: deleted by hand
            Some(r) if r.live_hash.is_some() => Direction::Forward,
            Some(r) => r
                .drift
                .as_ref()
                .filter(|d| d.kind == DriftKind::Missing)
                .map_or(Direction::Reverse, |d| d.direction),
            // new in Git since the last scan, never applied
            None if !tick.first_scan => Direction::Reverse,
            None => obs.evidence.unwrap_or(Direction::Unknown),
        },
        DriftKind::Orphan => match prev {
            // it was in Git before: removed from Git and not pruned
            Some(r) if r.desired_hash.is_some() => Direction::Reverse,
            Some(r) => r
                .drift
                .as_ref()
                .filter(|d| d.kind == DriftKind::Orphan)
                .map_or(Direction::Forward, |d| d.direction),
            None if !tick.first_scan => Direction::Forward,
            None => obs.evidence.unwrap_or(Direction::Unknown),
        },
    }
}

fn resolution(
    prev: Option<&DriftRecord>,
    open: &Drift,
    obs: &Observation,
    desired_hash: Option<u64>,
    live_hash: Option<u64>,
) -> Resolution {
    // the source says the desired side was applied since the drift was last seen open
    let applied = match (prev.and_then(|r| r.applied_mark), obs.applied_mark) {
        (Some(before), Some(now)) => before.0 != now,
        _ => false,
    };
    match (&obs.presence, open.kind) {
        (Presence::Neither | Presence::Unknown, _) => Resolution::Removed,
        (_, DriftKind::Orphan) => Resolution::Adopted,
        (_, DriftKind::Missing) if applied => Resolution::Applied,
        (Presence::Both(_), DriftKind::Modified) if applied => Resolution::Applied,
        (_, DriftKind::Missing) => match open.direction {
            Direction::Forward => Resolution::Reverted,
            _ => Resolution::Applied,
        },
        (Presence::DesiredOnly { .. }, DriftKind::Modified)
        | (Presence::LiveOnly { .. }, DriftKind::Modified) => Resolution::Removed,
        (Presence::Both(_), DriftKind::Modified) => {
            let prev_desired = prev.and_then(|r| r.desired_hash).map(|h| h.0);
            let prev_live = prev.and_then(|r| r.live_hash).map(|h| h.0);
            let desired_moved = desired_hash != prev_desired;
            let live_moved = live_hash != prev_live;
            match (desired_moved, live_moved) {
                (true, false) => Resolution::Adopted,
                (false, true) if open.direction == Direction::Reverse => Resolution::Applied,
                (false, true) => Resolution::Reverted,
                (true, true) => Resolution::Applied,
                (false, false) => Resolution::Reverted,
            }
        }
    }
}

fn event(kind: EventKind, drift: Drift, tick: &Tick) -> DriftEvent {
    let seed = format!(
        "{}|{}|{}|{}",
        drift.episode,
        kind.as_str(),
        tick.scan_id,
        tick.now.to_rfc3339_opts(SecondsFormat::Millis, true)
    );
    DriftEvent {
        remediation: None,
        acknowledgement: None,
        event_id: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes())),
        kind,
        at: tick.now,
        scan_id: tick.scan_id.clone(),
        revision: tick.revision.clone(),
        drift,
    }
}

/// The id of the episode of `id` that began at `at`.
pub fn episode_id(id: &ResourceId, kind: DriftKind, at: DateTime<Utc>) -> String {
    let seed = format!(
        "{}|{}|{}",
        id.key(),
        kind.as_str(),
        at.to_rfc3339_opts(SecondsFormat::Millis, true)
    );
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes()))
}

/// What a store knows of the stored version of a drift episode: enough to decide, with
/// [`episode_replaces`], whether an incoming version replaces it. Stores that keep the episode
/// as indexed columns build it from those columns, without reading the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpisodeStamp {
    /// When the stored version last changed ([`Drift::updated_at`]).
    pub updated_at: DateTime<Utc>,
    /// Whether the stored version is open ([`Drift::is_open`]).
    pub open: bool,
}

impl EpisodeStamp {
    /// The stamp of a stored episode.
    pub fn of(stored: &Drift) -> Self {
        EpisodeStamp {
            updated_at: stored.updated_at,
            open: stored.is_open(),
        }
    }
}

/// The episode rule, shared by every store: whether `incoming` (the drift an event carries, as
/// it stands after the event) replaces the stored version of its episode.
///
/// It does when nothing is stored yet, when the stored version is still open (a later event of
/// an open episode always moves it: `changed`, or the `resolved` that closes it), or when the
/// stored version is not newer than the incoming one. So a resolved episode is not reopened by
/// an older event replayed after it (a buffer draining after an outage), while a replay of the
/// same version, or a newer one, still lands. Stores call this only for events they had not
/// stored yet.
pub fn episode_replaces(stored: Option<EpisodeStamp>, incoming: &Drift) -> bool {
    stored.is_none_or(|s| s.open || s.updated_at <= incoming.updated_at)
}

#[cfg(test)]
mod episode_rule_tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("valid time")
    }

    fn drift(updated: i64, resolved: bool) -> Drift {
        let d = crate::testkit::drift()
            .severity(Severity::High)
            .detected(at(0))
            .updated(at(updated));
        if resolved {
            d.resolved(at(updated), Resolution::Reverted).build()
        } else {
            d.build()
        }
    }

    fn stamp(updated: i64, open: bool) -> Option<EpisodeStamp> {
        Some(EpisodeStamp {
            updated_at: at(updated),
            open,
        })
    }

    #[test]
    fn stamp_of_a_stored_episode() {
        assert_eq!(Some(EpisodeStamp::of(&drift(5, false))), stamp(5, true));
        assert_eq!(Some(EpisodeStamp::of(&drift(5, true))), stamp(5, false));
    }

    #[test]
    fn episode_rule() {
        // (stored, incoming updated_at, incoming resolved, replaces)
        let cases = [
            (None, 10, false, true),
            (None, 10, true, true),
            // an open episode is moved by any later event, even one that says it is older
            (stamp(10, true), 20, false, true),
            (stamp(10, true), 20, true, true),
            (stamp(10, true), 5, false, true),
            (stamp(10, true), 5, true, true),
            // a resolved one only by a version at least as new
            (stamp(10, false), 5, false, false),
            (stamp(10, false), 5, true, false),
            (stamp(10, false), 10, true, true),
            (stamp(10, false), 10, false, true),
            (stamp(10, false), 11, false, true),
        ];
        for (stored, updated, resolved, want) in cases {
            assert_eq!(
                episode_replaces(stored, &drift(updated, resolved)),
                want,
                "stored {stored:?}, incoming updated {updated} resolved {resolved}"
            );
        }
    }
}
