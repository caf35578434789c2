//! The JSON shapes the API answers (mirrors of the core types, described in the OpenAPI
//! document).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use driftguard_core::ack::{self, Acknowledgement};
use driftguard_core::audit::AuditWrite;
use driftguard_core::findings::{drift_risk, Finding};
use driftguard_core::id::ResourceId;
use driftguard_core::path::FieldPath;
use driftguard_core::ports::ScanSummary;
use driftguard_core::remediate::advice::{FieldChange, PlanStep, RemediationPlan};
use driftguard_core::state::{recurrences_label, Drift, DriftEvent, DriftRecord};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The identity of an object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ObjectRef {
    /// Environment.
    pub environment: String,
    /// API group (empty for the core group).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace (absent for cluster-scoped objects).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// `Kind[.group]/[namespace/]name`, as used in the object history URL.
    pub reference: String,
}

impl From<&ResourceId> for ObjectRef {
    fn from(id: &ResourceId) -> Self {
        let kg = if id.group.is_empty() {
            id.kind.clone()
        } else {
            format!("{}.{}", id.kind, id.group)
        };
        ObjectRef {
            environment: id.environment.clone(),
            group: id.group.clone(),
            kind: id.kind.clone(),
            namespace: id.namespace.clone(),
            name: id.name.clone(),
            reference: format!("{kg}/{}", id.namespaced_name()),
        }
    }
}

/// A drift episode, without its field values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct DriftSummary {
    /// Episode id (stable from detection to resolution).
    pub episode: String,
    /// The object.
    pub object: ObjectRef,
    /// API version of the object.
    pub api_version: String,
    /// Kind of drift: `modified`, `missing` or `orphan`.
    pub drift: String,
    /// `forward` (live changed), `reverse` (Git not applied), `conflict` or `unknown`.
    pub direction: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// `open` or `resolved`.
    pub status: String,
    /// Drifted field paths.
    pub paths: Vec<String>,
    /// Who: the people the audit log names, else the field managers (forward), or the commit
    /// author (reverse); `driftguard` for a drift DriftGuard's remediation ended; may be empty.
    pub who: String,
    /// First seen.
    pub detected_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Ended.
    pub resolved_at: Option<DateTime<Utc>>,
    /// How it ended: `reverted`, `adopted`, `applied` or `removed`.
    pub resolution: Option<String>,
    /// Who ended it: `driftguard` for a remediation, else the field manager that wrote the
    /// drifted fields back (a GitOps tool's correction: `kustomize-controller`,
    /// `argocd-controller`); absent when unknown or still open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// How many times the episode came back after it was reverted (a hand change a tool
    /// keeps undoing is one episode: event `recurred`).
    #[serde(default)]
    pub recurrences: u32,
    /// Git revision at the last update.
    pub revision: Option<String>,
    /// How much the drift weighs: its severity raised by its findings (`low` .. `critical`;
    /// a drift whose only findings say likely noise or cosmetic is `low`).
    pub risk: String,
    /// What the drift means: risk findings, highest risk first (empty: nothing to say beyond
    /// the severity).
    pub findings: Vec<FindingDto>,
    /// Its acknowledgement, when a person acknowledged it (holding or lapsed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgement: Option<AcknowledgementDto>,
}

/// A person's acknowledgement of a drift: "we know, leave it" (see `docs/api.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct AcknowledgementDto {
    /// The episode.
    pub episode: String,
    /// Who: `token:<name>`, `user:<name>`, `cli:<user>`.
    pub by: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Until when at most (absent: until the drift changes or ends).
    pub until: Option<DateTime<Utc>>,
    /// `holds` (the drift is not announced again and the CLI guardrail leaves it out) or
    /// `lapsed`.
    pub standing: String,
    /// Why it lapsed: `changed`, `expired`, `resolved` or `withdrawn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lapse: Option<String>,
}

impl AcknowledgementDto {
    /// `ack` as it stands for `drift` at `now` (the core's rule, [`ack::standing`]).
    pub fn of(ack: &Acknowledgement, drift: &Drift, now: DateTime<Utc>) -> Self {
        let (standing, lapse) = match ack::standing(ack, drift, now) {
            ack::Standing::Holds => ("holds", None),
            ack::Standing::Lapsed(why) => ("lapsed", Some(why.as_str().to_owned())),
        };
        AcknowledgementDto {
            episode: ack.episode.clone(),
            by: ack.by.clone(),
            reason: ack.reason.clone(),
            at: ack.at,
            until: ack.until,
            standing: standing.to_owned(),
            lapse,
        }
    }

    /// Whether it holds.
    pub fn holds(&self) -> bool {
        self.standing == "holds"
    }
}

/// One risk finding on a drift (see `docs/findings.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct FindingDto {
    /// The rule that found it, e.g. `rbac-widened`, `image-not-in-git`.
    pub rule: String,
    /// `security`, `availability`, `supply-chain`, `likely-noise` or `cosmetic`.
    pub category: String,
    /// `low`, `medium`, `high` or `critical`.
    pub risk: String,
    /// The field it concerns (absent: the whole object).
    pub path: Option<String>,
    /// Why, in words a person can read.
    pub reason: String,
}

impl From<&Finding> for FindingDto {
    fn from(f: &Finding) -> Self {
        FindingDto {
            rule: f.rule.clone(),
            category: f.category.as_str().to_owned(),
            risk: f.risk.as_str().to_owned(),
            path: f.path.as_ref().map(FieldPath::to_string),
            reason: f.reason.clone(),
        }
    }
}

impl DriftSummary {
    /// How it ended, in words ([`driftguard_core::state::ended_how`]); `None` while open.
    pub fn ended_how(&self) -> Option<String> {
        let r = self.resolution.as_ref()?;
        Some(driftguard_core::state::ended_how(
            r,
            self.resolved_by.as_deref(),
        ))
    }

    /// The status in words: `open`, `open, came back twice`, `resolved (reverted by …)`.
    pub fn status_label(&self) -> String {
        match (self.ended_how(), recurrences_label(self.recurrences)) {
            (Some(how), _) => format!("resolved ({how})"),
            (None, Some(again)) => format!("{}, {again}", self.status),
            (None, None) => self.status.clone(),
        }
    }
}

impl From<&Drift> for DriftSummary {
    fn from(d: &Drift) -> Self {
        DriftSummary {
            episode: d.episode.clone(),
            object: ObjectRef::from(&d.id),
            api_version: d.api_version.clone(),
            drift: d.kind.as_str().to_owned(),
            direction: d.direction.as_str().to_owned(),
            severity: d.severity.as_str().to_owned(),
            status: if d.is_open() { "open" } else { "resolved" }.to_owned(),
            paths: d.fields.iter().map(|f| f.path.to_string()).collect(),
            who: d.who(),
            detected_at: d.detected_at,
            updated_at: d.updated_at,
            resolved_at: d.resolved_at,
            resolution: d.resolution.map(|r| r.as_str().to_owned()),
            resolved_by: d.resolved_by.clone(),
            recurrences: d.recurrences,
            revision: d.revision.clone(),
            risk: drift_risk(d.severity, &d.findings).as_str().to_owned(),
            findings: d.findings.iter().map(FindingDto::from).collect(),
            acknowledgement: None,
        }
    }
}

/// One drifted field. Secret values are redacted by the core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct FieldDiffDto {
    /// Path.
    pub path: String,
    /// Value in Git (absent: not set in Git).
    pub desired: Option<serde_json::Value>,
    /// Value in the cluster (absent: not set live).
    pub live: Option<serde_json::Value>,
}

/// A Git commit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct CommitDto {
    /// Commit id.
    pub id: String,
    /// Author.
    pub author: String,
    /// Author e-mail.
    pub email: String,
    /// Author time.
    pub time: DateTime<Utc>,
    /// First line of the message.
    pub message: String,
}

/// The field manager that owns a drifted field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct FieldOwnerDto {
    /// Drifted path.
    pub path: String,
    /// Field manager (`kubectl-edit`, ...).
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// Subresource, or empty.
    pub subresource: String,
    /// When it wrote.
    pub time: Option<DateTime<Utc>>,
    /// Who the manager is, by its name: `person` (a person's tool: `kubectl edit`, a web
    /// console), `applier` (Helm, Argo CD, Flux, any server-side apply) or `controller`
    /// (anything else writing with `Update`).
    pub writer: String,
    /// Who set the field, from the audit log: the user as the privacy setting keeps it (a
    /// name, `hmac:...`, or `(a person)`); absent when the audit log names no one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The audit id of that write (one of `writers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<String>,
}

/// One write of the audit log that may have made the drift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct WriterDto {
    /// The user: a name, its keyed hash (`hmac:...`) or `(a person)`, as the environment's
    /// `audit.userNames` keeps it.
    pub user: String,
    /// `person`, `service-account` or `system`.
    pub user_class: String,
    /// The user's groups (as kept).
    pub groups: Vec<String>,
    /// The user it impersonated, if any.
    pub acting_as: Option<String>,
    /// `create`, `update`, `patch` or `delete`.
    pub verb: String,
    /// The subresource written (`scale`), or empty.
    pub subresource: String,
    /// The field manager it wrote as (`kubectl-edit`; the user agent's product when the
    /// client named none, `kubectl`).
    pub manager: String,
    /// The client's user agent.
    pub user_agent: String,
    /// The client's address (absent when names of people are hashed or dropped).
    pub source_ip: Option<String>,
    /// When the API server received it.
    pub at: DateTime<Utc>,
    /// The request's audit id (to find it in the API server's log).
    pub audit_id: String,
    /// One line: `alice (kubectl-edit, patch, from 10.0.0.7) at 2024-05-01 12:03:04 UTC`.
    pub summary: String,
}

impl From<&AuditWrite> for WriterDto {
    fn from(w: &AuditWrite) -> Self {
        WriterDto {
            user: w.user.display(),
            user_class: w.user.class.as_str().to_owned(),
            groups: w.user.groups.clone(),
            acting_as: w.user.acting_as.clone(),
            verb: w.verb.clone(),
            subresource: w.subresource.clone(),
            manager: w.manager.clone(),
            user_agent: w.user_agent.clone(),
            source_ip: w.source_ip.clone(),
            at: w.at,
            audit_id: w.audit_id.clone(),
            summary: w.describe(),
        }
    }
}

/// Who changed a drifted object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct AttributionDto {
    /// Owners of the drifted fields, each with the user that set it when the audit log says.
    pub owners: Vec<FieldOwnerDto>,
    /// The commit that last changed the object in Git.
    pub commit: Option<CommitDto>,
    /// The writes of the audit log that may have made the drift, oldest first (forward,
    /// conflict and unknown drift, in an environment with `audit` settings).
    #[serde(default)]
    pub writers: Vec<WriterDto>,
    /// The users of `writers`, each once with what they wrote with, people first
    /// (`alice (kubectl-edit)`).
    #[serde(default)]
    pub users: Vec<String>,
    /// One-line summary: the users for forward drift (else the field managers), the commit
    /// author for reverse drift.
    pub who: String,
}

/// Where the object is defined in Git.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ProvenanceDto {
    /// File.
    pub file: String,
    /// YAML document index in the file (0-based).
    pub document: usize,
    /// Line (1-based).
    pub line: usize,
    /// Revision read.
    pub revision: Option<String>,
    /// How the object was rendered (a Helm chart, a command); absent for a manifest file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered: Option<RenderingDto>,
    /// The file and line on the repository's web page (when the environment's `git.webUrl`
    /// is set; never for a rendered object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
}

/// How a rendered object was made: `file` is then its template (helm's `# Source:`) or the
/// command line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct RenderingDto {
    /// `helm`, `kustomize` or `command`.
    pub renderer: String,
    /// The chart folder (or the command's folder), relative to the repository root.
    pub source: String,
    /// The value files in play, in order (the last wins).
    pub values: Vec<String>,
    /// The newest commit that changed an input of the rendering (chart or values).
    pub inputs_commit: Option<String>,
}

/// A drift episode with its field diff and attribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct DriftDetail {
    /// The episode.
    pub drift: DriftSummary,
    /// Drifted fields with both values.
    pub fields: Vec<FieldDiffDto>,
    /// Who.
    pub attribution: AttributionDto,
    /// Where it is defined in Git.
    pub provenance: Option<ProvenanceDto>,
    /// Why the direction is what it is, in one sentence.
    #[serde(default)]
    pub direction_reason: String,
}

impl From<&Drift> for DriftDetail {
    fn from(d: &Drift) -> Self {
        DriftDetail {
            drift: DriftSummary::from(d),
            fields: d
                .fields
                .iter()
                .map(|f| FieldDiffDto {
                    path: f.path.to_string(),
                    desired: f.desired.clone(),
                    live: f.live.clone(),
                })
                .collect(),
            attribution: AttributionDto {
                owners: d
                    .attribution
                    .owners
                    .iter()
                    .map(|o| FieldOwnerDto {
                        path: o.path.to_string(),
                        manager: o.manager.clone(),
                        operation: o.operation.clone(),
                        subresource: o.subresource.clone(),
                        time: o.time,
                        writer: o.kind().as_str().to_owned(),
                        user: d.attribution.writer_of(o).map(|w| w.user.display()),
                        audit_id: o.audit_id.clone(),
                    })
                    .collect(),
                writers: d.attribution.writers.iter().map(WriterDto::from).collect(),
                users: d.attribution.users(),
                commit: d.attribution.commit.as_ref().map(|c| CommitDto {
                    id: c.id.clone(),
                    author: c.author.clone(),
                    email: c.email.clone(),
                    time: c.time,
                    message: c.message.clone(),
                }),
                who: d.attribution.who(d.direction),
            },
            provenance: d.provenance.as_ref().map(|p| ProvenanceDto {
                file: p.file.clone(),
                document: p.document,
                line: p.line,
                revision: p.revision.clone(),
                rendered: p.rendered.as_ref().map(|r| RenderingDto {
                    renderer: r.renderer.clone(),
                    source: r.source.clone(),
                    values: r.values.clone(),
                    inputs_commit: r.inputs_commit.clone(),
                }),
                web_url: None,
            }),
            direction_reason: d.direction_reason().to_owned(),
        }
    }
}

/// A page of drifts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct DriftPage {
    /// The drifts.
    pub items: Vec<DriftSummary>,
    /// How many matched in all.
    pub total: usize,
    /// Page size asked.
    pub limit: usize,
    /// Offset asked.
    pub offset: usize,
    /// Offset of the next page, if any.
    pub next_offset: Option<usize>,
}

/// One event of the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct EventDto {
    /// Event id.
    pub event_id: String,
    /// `detected`, `changed`, `resolved`, `remediated`, `recurred`, `acknowledged` or
    /// `unacknowledged`.
    pub event: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The scan that saw it.
    pub scan_id: String,
    /// Git revision then.
    pub revision: Option<String>,
    /// The drift as it stood after the event.
    pub drift: DriftSummary,
    /// What DriftGuard did (`remediated` events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<RemediationEventDto>,
    /// The acknowledgement (`acknowledged` and `unacknowledged` events only), as it stood
    /// at the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgement: Option<AcknowledgementDto>,
}

/// The audit of one remediation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct RemediationEventDto {
    /// The plan's id.
    pub plan: String,
    /// `revert` or `adopt`.
    pub action: String,
    /// `apply`, `create`, `delete` or `adopt`.
    pub operation: String,
    /// Who asked for it to be carried out (confirmed the plan): `token:<name>`, `cli:<user>`,
    /// `policy`.
    pub requested_by: String,
    /// Who made the plan, when another caller than the one who confirmed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_by: Option<String>,
    /// The change (Secret values redacted).
    pub changes: Vec<FieldChangeDto>,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result in words.
    pub result: String,
}

impl From<&DriftEvent> for EventDto {
    fn from(e: &DriftEvent) -> Self {
        EventDto {
            event_id: e.event_id.clone(),
            event: e.kind.as_str().to_owned(),
            at: e.at,
            scan_id: e.scan_id.clone(),
            revision: e.revision.clone(),
            drift: DriftSummary::from(&e.drift),
            remediation: e.remediation.as_ref().map(|r| RemediationEventDto {
                plan: r.plan_id.clone(),
                action: r.action.to_string(),
                operation: r.operation.to_string(),
                requested_by: r.requested_by.clone(),
                planned_by: r.planned_by.clone(),
                changes: r
                    .changes
                    .iter()
                    .map(|c| FieldChangeDto {
                        path: c.path.clone(),
                        from: c.from.clone(),
                        to: c.to.clone(),
                    })
                    .collect(),
                ok: r.ok,
                result: r.result.clone(),
            }),
            acknowledgement: e
                .acknowledgement
                .as_ref()
                .map(|a| AcknowledgementDto::of(a, &e.drift, e.at)),
        }
    }
}

/// A page of events, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct EventPage {
    /// Events.
    pub items: Vec<EventDto>,
    /// How many matched in all.
    pub total: usize,
    /// Page size asked.
    pub limit: usize,
    /// Offset asked.
    pub offset: usize,
    /// Offset of the next page, if any.
    pub next_offset: Option<usize>,
}

/// Counts of a scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct CountsDto {
    /// Objects tracked.
    pub tracked: usize,
    /// In sync.
    pub in_sync: usize,
    /// Modified.
    pub modified: usize,
    /// Missing.
    pub missing: usize,
    /// Orphans.
    pub orphan: usize,
    /// Live state unknown.
    pub unknown: usize,
}

/// A scan summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ScanDto {
    /// Scan id.
    pub scan_id: String,
    /// Environment.
    pub environment: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// Git revision.
    pub revision: Option<String>,
    /// Counts.
    pub counts: CountsDto,
    /// Drift score (0 in sync .. 100).
    pub score: f64,
    /// Problems met, one line each.
    pub errors: Vec<String>,
    /// Events emitted.
    pub events: usize,
}

impl From<&ScanSummary> for ScanDto {
    fn from(s: &ScanSummary) -> Self {
        ScanDto {
            scan_id: s.scan_id.clone(),
            environment: s.environment.clone(),
            started_at: s.started_at,
            duration_ms: s.duration_ms,
            revision: s.revision.clone(),
            counts: CountsDto {
                tracked: s.counts.tracked,
                in_sync: s.counts.in_sync,
                modified: s.counts.modified,
                missing: s.counts.missing,
                orphan: s.counts.orphan,
                unknown: s.counts.unknown,
            },
            score: s.score,
            errors: s.errors.clone(),
            events: s.events,
        }
    }
}

/// Scan summaries, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ScanList {
    /// Scans.
    pub items: Vec<ScanDto>,
}

/// The state of one source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct SourceDto {
    /// `git` or `live`.
    pub source: String,
    /// Description of the source.
    pub description: String,
    /// Whether it answered at its last use (absent: not used yet).
    pub up: Option<bool>,
    /// When it last answered.
    pub last_ok: Option<DateTime<Utc>>,
    /// Last error.
    pub error: Option<String>,
}

/// An environment with its status and score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct EnvironmentDto {
    /// Name.
    pub name: String,
    /// `pending` (no scan yet), `in_sync`, `drifted` or `error` (last scan failed).
    pub status: String,
    /// Drift score of the last scan.
    pub score: Option<f64>,
    /// Open drifts.
    pub open_drifts: usize,
    /// Whether a scan is running.
    pub scanning: bool,
    /// Whether the cluster is being watched.
    pub watching: bool,
    /// The last successful scan.
    pub last_scan: Option<ScanDto>,
    /// The last scan failure, if the last scan failed.
    pub last_error: Option<String>,
    /// Sources.
    pub sources: Vec<SourceDto>,
    /// Who leads the environment, with leader election (`server.ha`; absent without). When
    /// another replica leads it, the status, score, open drifts and last scan are the store's
    /// (its leader's last scan), and the sources say nothing of this replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderDto>,
    /// What the deployment tool says of an environment discovered from it (Argo CD's sync
    /// and health, Flux's `Ready` condition), as last seen (absent: an environment of the
    /// configuration file, or nothing seen yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolDto>,
    /// The share of the cloud account's resources that code manages, from this replica's last
    /// check of a Terraform environment that lists its account (`terraform.orphans`; absent
    /// otherwise, and for an environment another replica leads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iac_coverage: Option<IacCoverageDto>,
}

/// The IaC coverage of an environment: of the cloud account's resources of the kinds listed,
/// those a Terraform state holds (`managed`) and those none holds (`unmanaged`: the orphans).
/// The cloud's own resources (a default VPC) and those `exclude` names are not counted; a kind
/// that could not be listed is left out and named in `unknown_kinds`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct IacCoverageDto {
    /// Resources a state holds.
    pub managed: usize,
    /// Resources no state holds.
    pub unmanaged: usize,
    /// `managed / (managed + unmanaged)` (absent: nothing counted).
    pub ratio: Option<f64>,
    /// By kind (the Terraform resource type: `aws_s3_bucket`).
    pub by_kind: BTreeMap<String, KindCoverageDto>,
    /// Kinds that could not be listed at the last check: not counted.
    pub unknown_kinds: Vec<String>,
}

/// One kind's part of [`IacCoverageDto`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct KindCoverageDto {
    /// Resources a state holds.
    pub managed: usize,
    /// Resources no state holds.
    pub unmanaged: usize,
}

impl From<&driftguard_core::terraform::codify::Coverage> for IacCoverageDto {
    fn from(c: &driftguard_core::terraform::codify::Coverage) -> Self {
        IacCoverageDto {
            managed: c.managed,
            unmanaged: c.unmanaged,
            ratio: c.ratio(),
            by_kind: c
                .by_kind
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        KindCoverageDto {
                            managed: v.managed,
                            unmanaged: v.unmanaged,
                        },
                    )
                })
                .collect(),
            unknown_kinds: c.unknown_kinds.clone(),
        }
    }
}

/// The deployment tool's own verdict on a discovered environment's object, next to
/// DriftGuard's. Fields the tool did not write are absent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ToolDto {
    /// `argocd` or `flux`.
    #[schema(example = "argocd")]
    pub tool: String,
    /// `Application`, `Kustomization` or `HelmRelease`.
    pub kind: String,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The index in `spec.sources` of the source this environment renders (a multi-source
    /// Application).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<usize>,
    /// Whether the tool says the cluster runs what Git says (Argo CD `Synced`, Flux `Ready`
    /// `True`); absent when it does not say (`Unknown`, nothing yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_sync: Option<bool>,
    /// Whether the tool says the objects are healthy (Argo CD `Healthy`, Flux `Ready`
    /// `True`); absent when it does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Argo CD `status.sync.status`: `Synced`, `OutOfSync`, `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<String>,
    /// Argo CD `status.health.status`: `Healthy`, `Progressing`, `Degraded`, `Suspended`,
    /// `Missing`, `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Argo CD `status.operationState.phase` of the last or running sync: `Running`,
    /// `Terminating`, `Failed`, `Error`, `Succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Flux: the `Ready` condition's status, `True`, `False` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Flux: the `Ready` condition's reason (`ReconciliationSucceeded`, `BuildFailed`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Flux: the `Ready` condition's message (its first line, at most 240 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The revision the tool last synced or applied (Argo CD `status.sync.revision(s)`, Flux
    /// `status.lastAppliedRevision`, a HelmRelease's `status.lastAttemptedRevision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When the tool last reconciled (Argo CD `status.reconciledAt`) or its `Ready` condition
    /// last changed (Flux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<DateTime<Utc>>,
    /// Flux `spec.suspend`: the tool applies no change.
    pub suspended: bool,
    /// The newest Kubernetes Event the tool recorded on the object: Flux's change set of
    /// an apply (the drift it corrected, `Deployment/shop/web configured`), a failure, Argo
    /// CD's sync; absent when none is kept by the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<ToolEventDto>,
    /// The newest of the tool's Events that says it changed objects (`changes`): what Flux
    /// last corrected or applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<ToolEventDto>,
    /// When DriftGuard last read the object.
    pub observed_at: DateTime<Utc>,
}

/// A Kubernetes Event a deployment tool recorded on its object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ToolEventDto {
    /// When it last happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its reason (Flux: `Progressing`, `ReconciliationSucceeded`, `BuildFailed`...).
    pub reason: String,
    /// Its message: at most 10 lines of at most 240 characters, Secret values the
    /// environment took replaced by `<redacted>`.
    pub message: String,
    /// How many times it happened.
    pub count: u64,
    /// The objects it says the tool changed (`Deployment/shop/web configured`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

impl From<&crate::config::discover::ToolEvent> for ToolEventDto {
    fn from(e: &crate::config::discover::ToolEvent) -> Self {
        ToolEventDto {
            at: e.time(),
            event_type: if e.warning { "Warning" } else { "Normal" }.into(),
            reason: e.reason.clone(),
            message: e.message.clone(),
            count: e.count,
            changes: e.changes.clone(),
        }
    }
}

impl From<&crate::verdicts::ToolStatus> for ToolDto {
    fn from(s: &crate::verdicts::ToolStatus) -> Self {
        let v = &s.verdict;
        ToolDto {
            tool: crate::verdicts::tool_name(s.tool).into(),
            kind: s.kind.clone(),
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            source: s.source,
            in_sync: v.in_sync(),
            healthy: v.healthy(),
            sync: v.sync.clone(),
            health: v.health.clone(),
            operation: v.operation.clone(),
            ready: v.ready.clone(),
            reason: v.reason.clone(),
            message: v.message.clone(),
            revision: v.revision.clone(),
            reconciled_at: v
                .reconciled_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            suspended: v.suspended,
            last_event: v.last_event.as_ref().map(ToolEventDto::from),
            last_change: v.last_change.as_ref().map(ToolEventDto::from),
            observed_at: s.observed_at,
        }
    }
}

/// The leadership of an environment, as the answering replica knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct LeaderDto {
    /// The replica holding the environment's Lease, as last seen (absent: none).
    pub replica: Option<String>,
    /// Whether the answering replica is that one.
    pub this_replica: bool,
    /// The epoch of the leader's term, as last seen.
    pub epoch: Option<u64>,
    /// The highest epoch the store has seen written for the environment (writes of older
    /// epochs are refused).
    pub store_epoch: Option<u64>,
}

/// Environments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct EnvironmentList {
    /// Environments.
    pub items: Vec<EnvironmentDto>,
}

/// The current record of an object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct RecordDto {
    /// API version.
    pub api_version: String,
    /// In Git.
    pub in_git: bool,
    /// In the cluster.
    pub in_cluster: bool,
    /// The open drift, if any.
    pub drift: Option<DriftSummary>,
    /// Last change of the record.
    pub updated_at: DateTime<Utc>,
}

impl From<&DriftRecord> for RecordDto {
    fn from(r: &DriftRecord) -> Self {
        RecordDto {
            api_version: r.api_version.clone(),
            in_git: r.desired_hash.is_some(),
            in_cluster: r.live_hash.is_some(),
            drift: r.drift.as_deref().map(DriftSummary::from),
            updated_at: r.updated_at,
        }
    }
}

/// The history of one object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ObjectHistory {
    /// The object.
    pub object: ObjectRef,
    /// Its current record (absent: not tracked now).
    pub record: Option<RecordDto>,
    /// Its events, oldest first.
    pub events: Vec<EventDto>,
}

/// Liveness.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// One readiness check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Check {
    /// `store`, or `<environment>/git`, `<environment>/live`.
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// Why not.
    pub reason: Option<String>,
}

/// Readiness (answered with 200 when ready, 503 when not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Ready {
    /// Every check passed.
    pub ready: bool,
    /// `ready`; `degraded` when detection runs but the store cannot be written (writes are
    /// kept and retried in order; the checks say why); `unready` otherwise.
    pub status: String,
    /// Checks.
    pub checks: Vec<Check>,
}

/// Answer to a Git push webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct WebhookAccepted {
    /// Event type as sent (`push`, `Push Hook`, `ping`, ...).
    pub event: String,
    /// Environments whose Git fetch was triggered.
    pub triggered: Vec<String>,
}

/// What an audit post gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditAccepted {
    /// The environment.
    pub environment: String,
    /// Events received.
    pub received: usize,
    /// Writes added to the index.
    pub indexed: usize,
    /// Events that are not writes DriftGuard keeps (reads, failed or dry-run writes, earlier
    /// stages).
    pub ignored: usize,
    /// Writes already indexed (a post sent again), or older than the index keeps.
    pub duplicates: usize,
}

/// One field a remediation changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct FieldChangeDto {
    /// Path.
    pub path: String,
    /// Value now, where the change happens (absent: not set). Secret values are redacted.
    pub from: Option<serde_json::Value>,
    /// Value after the change (absent: removed).
    pub to: Option<serde_json::Value>,
}

/// One step of a remediation plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct PlanStepDto {
    /// What to do.
    pub description: String,
    /// The command that does it, when there is one.
    pub command: Option<String>,
    /// The field changes it makes.
    pub changes: Vec<FieldChangeDto>,
}

/// How to end a drift: the revert or adopt plan. DriftGuard never applies it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct RemediationDto {
    /// Episode id.
    pub episode: String,
    /// The object, `env:Kind[.group]/[namespace/]name`.
    pub object: String,
    /// This plan's action: `revert` (the cluster back to Git, or Git's newer version applied)
    /// or `adopt` (Git takes what the cluster runs).
    pub action: String,
    /// The action DriftGuard suggests.
    pub suggested: String,
    /// Why.
    pub reason: String,
    /// The steps, in order.
    pub steps: Vec<PlanStepDto>,
    /// What to watch out for.
    pub notes: Vec<String>,
    /// Always false: the plan is never applied by DriftGuard.
    pub applied: bool,
    /// The plan as text, one step a line.
    pub text: String,
}

impl From<&RemediationPlan> for RemediationDto {
    fn from(p: &RemediationPlan) -> Self {
        let change = |c: &FieldChange| FieldChangeDto {
            path: c.path.clone(),
            from: c.from.clone(),
            to: c.to.clone(),
        };
        let step = |s: &PlanStep| PlanStepDto {
            description: s.description.clone(),
            command: s.command.clone(),
            changes: s.changes.iter().map(change).collect(),
        };
        RemediationDto {
            episode: p.episode.clone(),
            object: p.object.clone(),
            action: p.action.as_str().to_owned(),
            suggested: p.suggested.as_str().to_owned(),
            reason: p.reason.clone(),
            steps: p.steps.iter().map(step).collect(),
            notes: p.notes.clone(),
            applied: p.applied,
            text: p.to_text(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftguard_core::model::Rendering;
    use driftguard_core::severity::Severity;

    #[test]
    fn provenance_says_how_an_object_was_rendered_and_only_then() {
        let mut d = crate::testkit::numbered_drift("prod", 0, Severity::High, true);
        let plain = serde_json::to_value(DriftDetail::from(&d)).expect("json");
        assert!(plain["provenance"].get("rendered").is_none(), "{plain}");
        if let Some(p) = d.provenance.as_mut() {
            p.file = "charts/shop/templates/web.yaml".into();
            p.rendered = Some(Box::new(Rendering {
                unstable: Vec::new(),
                renderer: "helm".into(),
                source: "charts/shop".into(),
                values: vec!["envs/prod/values.yaml".into()],
                inputs_commit: Some("abc".into()),
            }));
        }
        let rendered = serde_json::to_value(DriftDetail::from(&d)).expect("json");
        assert_eq!(
            rendered["provenance"]["rendered"],
            serde_json::json!({"renderer": "helm", "source": "charts/shop",
                "values": ["envs/prod/values.yaml"], "inputs_commit": "abc"})
        );
    }
    #[test]
    fn the_status_says_who_ended_a_drift_and_how_often_it_came_back() {
        let mut d = crate::testkit::numbered_drift("prod", 0, Severity::High, true);
        d.resolved_at = None;
        d.resolution = None;
        assert_eq!(DriftSummary::from(&d).status_label(), "open");
        d.recurrences = 2;
        let s = DriftSummary::from(&d);
        assert_eq!(s.status_label(), "open, came back 2 times");
        assert_eq!(serde_json::to_value(&s).expect("json")["recurrences"], 2);
        d.resolved_at = Some(d.updated_at);
        d.resolution = Some(driftguard_core::state::Resolution::Reverted);
        d.resolved_by = Some("kustomize-controller".into());
        let s = DriftSummary::from(&d);
        assert_eq!(
            s.status_label(),
            "resolved (reverted by kustomize-controller)"
        );
        assert_eq!(
            serde_json::to_value(&s).expect("json")["resolved_by"],
            "kustomize-controller"
        );
    }
}

/// A remediation request: without `confirm`, plan and preview; with `confirm`, carry out
/// exactly the plan of that id.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemediateRequest {
    /// `revert` (default) or `adopt`.
    #[serde(default)]
    pub action: Option<String>,
    /// Delete an orphan (only a tracked one, or in a fully managed namespace).
    #[serde(default)]
    pub prune: bool,
    /// The id of the plan to carry out (from an earlier answer without `confirm`).
    #[serde(default)]
    pub confirm: Option<String>,
}

/// What a person did (`GET /api/v1/actions`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ActionDto {
    /// When (for failed sign-ins: the minute they were counted in).
    pub at: DateTime<Utc>,
    /// Who: `token:<name>`, `cli:<user>`; for failed sign-ins the client's address.
    pub who: String,
    /// `scan`, `acknowledge`, `withdraw`, `remediate` or `sign-in-failed`.
    pub action: String,
    /// The environment it concerned.
    pub environment: Option<String>,
    /// The drift episodes it concerned.
    pub episodes: Vec<String>,
    /// How many (failed sign-ins in that minute; 1 otherwise).
    pub count: u32,
    /// A word more: the reason of an acknowledgement, the outcome of a remediation.
    pub detail: String,
}

impl From<&driftguard_core::actions::PersonAction> for ActionDto {
    fn from(a: &driftguard_core::actions::PersonAction) -> Self {
        ActionDto {
            at: a.at,
            who: a.who.clone(),
            action: a.action.as_str().to_owned(),
            environment: a.environment.clone(),
            episodes: a.episodes.clone(),
            count: a.count,
            detail: a.detail.clone(),
        }
    }
}

/// People's actions, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ActionList {
    /// The actions.
    pub items: Vec<ActionDto>,
}

/// What to acknowledge (`POST /api/v1/acknowledgements`): `episodes`, or every open drift of
/// `environment` (the baseline at onboarding; with `episodes` absent), with a reason and an
/// optional expiry.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    /// The episodes to acknowledge.
    #[serde(default)]
    pub episodes: Vec<String>,
    /// Acknowledge every open drift of this environment (when no episode is given).
    #[serde(default)]
    pub environment: Option<String>,
    /// Why (required, at most 500 characters).
    pub reason: String,
    /// Until when: an RFC 3339 time or a duration from now (`3d`, `12h`); absent: until the
    /// drift changes or ends.
    #[serde(default)]
    pub until: Option<String>,
}

/// The acknowledgements made, or those of an environment.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct AcknowledgementList {
    /// The acknowledgements.
    pub items: Vec<AcknowledgementDto>,
}

/// A remediation plan with its preview, or the result of carrying it out.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemediateAnswer {
    /// The plan's id (send it back as `confirm` to carry it out).
    pub plan: String,
    /// The drift episode.
    pub episode: String,
    /// The object.
    pub object: String,
    /// `apply`, `create`, `delete` or `adopt`.
    pub operation: String,
    /// What changes (the API server's dry run for the cluster; the fields written for adopt).
    /// Secret values are redacted.
    pub preview: Vec<FieldChangeDto>,
    /// Fields left alone, and why.
    pub left_alone: Vec<String>,
    /// Whether it was carried out.
    pub applied: bool,
    /// The result, once carried out.
    pub result: Option<String>,
}
