//! Who, in the cloud: the writes a cloud's own audit trail (AWS CloudTrail) records for the
//! resources of a Terraform environment that changed outside Terraform, turned into the same
//! [`AuditWrite`]s the Kubernetes audit log gives, so that a hand change in the cloud names
//! its writer as a `kubectl edit` does. Pure: an adapter reads the trail
//! ([`crate::ports::PlanSource::cloud_writes`]) and hands the events here.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::id::ResourceId;
use crate::normalize::Normalizer;
use crate::state::{Direction, DriftRecord, Observation};

use super::event::UserInfo;
use super::{window_start, AuditEvidence, AuditUser, AuditWrite, UserClass, UserNames};

/// One resource whose writers are asked for: a drift made in the cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudWriteQuery {
    /// The drifted resource (its name is the Terraform address, or the cloud id of an orphan).
    pub id: ResourceId,
    /// Its type (`aws_security_group`).
    pub kind: String,
    /// Its id in the cloud (`sg-0123`, a bucket's name): what the trail names it by.
    pub cloud_id: String,
    /// The start of the window of writes ([`window_start`]; `None`: as far back as the trail
    /// keeps).
    pub since: Option<DateTime<Utc>>,
}

/// One event of the trail, as the adapter read it (metadata only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloudEvent {
    /// The trail's id of the event.
    pub event_id: String,
    /// The API call (`AuthorizeSecurityGroupIngress`).
    pub event_name: String,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The user name the trail gives (an IAM user's name, a role session's name).
    pub username: Option<String>,
    /// The caller's ARN (`userIdentity.arn`).
    pub arn: Option<String>,
    /// The caller's type (`userIdentity.type`: `IAMUser`, `AssumedRole`, `Root`,
    /// `AWSService`, ...).
    pub identity_type: Option<String>,
    /// The service that made the call for the caller (`userIdentity.invokedBy`).
    pub invoked_by: Option<String>,
    /// The caller's address (`sourceIPAddress`).
    pub source_ip: Option<String>,
    /// The caller's user agent (`userAgent`).
    pub user_agent: String,
    /// Whether the call only read (`readOnly`; `None`: the trail did not say).
    pub read_only: Option<bool>,
    /// The call's error (`errorCode`): it changed nothing.
    pub error_code: Option<String>,
}

/// Prefixes of API calls that only read, for events that do not say (`readOnly` absent).
const READ_PREFIXES: &[&str] = &["Describe", "List", "Get", "Head", "Lookup", "Search"];

impl CloudEvent {
    /// Whether the event is a successful write: not read only (by its `readOnly`, else by its
    /// name: `Describe*`, `List*`, `Get*`, ...), and without an error.
    pub fn is_write(&self) -> bool {
        let reads = self
            .read_only
            .unwrap_or_else(|| READ_PREFIXES.iter().any(|p| self.event_name.starts_with(p)));
        !reads && self.error_code.is_none() && !self.event_id.is_empty()
    }

    /// The verb the attribution rule reads (`create`, `update` or `delete`), from the API
    /// call's name: a missing resource names its deletions, an orphan its creation.
    pub fn verb(&self) -> &'static str {
        let n = self.event_name.as_str();
        if ["Delete", "Terminate", "Deregister", "Release"]
            .iter()
            .any(|p| n.starts_with(p))
        {
            "delete"
        } else if ["Create", "Run", "Allocate", "Register", "Import"]
            .iter()
            .any(|p| n.starts_with(p))
        {
            "create"
        } else {
            "update"
        }
    }

    /// The write the event records, with `names` applied to people (as for the Kubernetes
    /// audit log: a person's name and ARN kept, hashed or dropped, the address kept only with
    /// the names); `None` for an event that is not a write ([`CloudEvent::is_write`]). The
    /// API call is what it was written with (the `manager`).
    pub fn to_write(&self, names: UserNames, normalizer: &Normalizer) -> Option<AuditWrite> {
        if !self.is_write() {
            return None;
        }
        let service = self.identity_type.as_deref() == Some("AWSService");
        let user = if service {
            AuditUser {
                name: self
                    .invoked_by
                    .clone()
                    .or_else(|| self.username.clone())
                    .or(Some("AWS service".into())),
                class: UserClass::System,
                groups: Vec::new(),
                acting_as: None,
            }
        } else {
            let name = self
                .username
                .clone()
                .filter(|u| !u.is_empty())
                .or_else(|| self.arn.clone())
                .unwrap_or_else(|| "unknown".into());
            let info = UserInfo {
                username: name,
                groups: Vec::new(),
            };
            // a role's session: the role it acted as is its ARN
            let role = self
                .arn
                .as_ref()
                .filter(|_| self.identity_type.as_deref() == Some("AssumedRole"))
                .map(|arn| UserInfo {
                    username: arn.clone(),
                    groups: Vec::new(),
                });
            let mut user = AuditUser::from_info(&info, role.as_ref(), names, normalizer);
            // a cloud user is never one of a cluster's service accounts or system users
            user.class = UserClass::Person;
            user
        };
        let source_ip = if user.keeps_address(names) {
            self.source_ip.clone()
        } else {
            None
        };
        Some(AuditWrite {
            audit_id: self.event_id.clone(),
            at: self.at,
            verb: self.verb().into(),
            subresource: String::new(),
            user,
            manager: self.event_name.clone(),
            user_agent: self.user_agent.chars().take(256).collect(),
            source_ip,
        })
    }
}

/// What a cloud's trail answered for a set of [`CloudWriteQuery`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloudWrites {
    /// Whether the trail is read for this environment (without it, drifts name no writers).
    pub enabled: bool,
    /// The events of each resource asked for, read and not yet filtered.
    pub events: HashMap<ResourceId, Vec<CloudEvent>>,
    /// What could not be read (a refused signature, a throttled lookup): never a failed scan.
    pub errors: Vec<String>,
    /// Things worth telling (resources left for the next scan).
    pub notes: Vec<String>,
}

/// The resources of a Terraform check whose writers are asked for: the drifts made in the
/// cloud (forward, or a conflict, where the cloud moved too), with their cloud id in
/// `cloud_ids`, whose open drift names no writer yet (a drift's writers are found once; the
/// trail is not asked again while it stays open with them). Each window starts where the
/// Kubernetes rule starts it ([`window_start`]).
pub fn cloud_queries(
    observations: &[Observation],
    records: &crate::state::Records,
    cloud_ids: &std::collections::BTreeMap<ResourceId, String>,
    last_scan: Option<DateTime<Utc>>,
) -> Vec<CloudWriteQuery> {
    observations
        .iter()
        .filter(|o| o.presence.drifted())
        .filter(|o| matches!(o.evidence, Some(Direction::Forward | Direction::Conflict)))
        .filter_map(|o| {
            let prev: Option<&DriftRecord> = records.get(&o.id);
            let named = prev
                .and_then(|r| r.drift.as_ref())
                .is_some_and(|d| !d.attribution.writers.is_empty());
            if named {
                return None;
            }
            Some(CloudWriteQuery {
                id: o.id.clone(),
                kind: o.id.kind.clone(),
                cloud_id: cloud_ids.get(&o.id)?.clone(),
                since: window_start(prev, last_scan),
            })
        })
        .collect()
}

/// The audit evidence of a check from what the trail answered: each resource's writes (with
/// `names` applied), oldest first.
pub fn cloud_evidence(
    answer: &CloudWrites,
    names: UserNames,
    normalizer: &Normalizer,
    last_scan: Option<DateTime<Utc>>,
) -> AuditEvidence {
    let writes = answer
        .events
        .iter()
        .filter_map(|(id, events)| {
            let mut w: Vec<AuditWrite> = events
                .iter()
                .filter_map(|e| e.to_write(names, normalizer))
                .collect();
            w.sort_by(|a, b| a.at.cmp(&b.at).then(a.audit_id.cmp(&b.audit_id)));
            w.dedup_by(|a, b| a.audit_id == b.audit_id);
            (!w.is_empty()).then(|| (id.clone(), w))
        })
        .collect();
    AuditEvidence {
        enabled: answer.enabled,
        writes,
        last_scan,
        cloud: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::SecretKey;
    use chrono::TimeZone;

    fn test_normalizer() -> Normalizer {
        Normalizer::new(SecretKey::new(b"k".to_vec()))
    }

    fn event(name: &str) -> CloudEvent {
        CloudEvent {
            event_id: format!("ev-{name}"),
            event_name: name.into(),
            at: Utc
                .timestamp_opt(1_700_000_000, 0)
                .single()
                .expect("a time"),
            username: Some("alice".into()),
            arn: Some("arn:aws:iam::123456789012:user/alice".into()),
            identity_type: Some("IAMUser".into()),
            invoked_by: None,
            source_ip: Some("198.51.100.7".into()),
            user_agent: "aws-cli/2.15.0".into(),
            read_only: Some(false),
            error_code: None,
        }
    }

    #[test]
    fn writes_and_reads() {
        let n = test_normalizer();
        let w = event("AuthorizeSecurityGroupIngress")
            .to_write(UserNames::Keep, &n)
            .expect("a write");
        assert_eq!(w.user.name.as_deref(), Some("alice"));
        assert_eq!(w.user.class, UserClass::Person);
        assert_eq!(w.verb, "update");
        assert_eq!(w.manager, "AuthorizeSecurityGroupIngress");
        assert_eq!(w.source_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(
            w.describe(),
            "alice (AuthorizeSecurityGroupIngress, update, from 198.51.100.7) at 2023-11-14 22:13:20 UTC"
        );
        // read only, by the flag or by the name when the flag is absent
        let mut r = event("DescribeSecurityGroups");
        r.read_only = Some(true);
        assert!(r.to_write(UserNames::Keep, &n).is_none());
        r.read_only = None;
        assert!(!r.is_write());
        let mut failed = event("DeleteBucket");
        failed.error_code = Some("AccessDenied".into());
        assert!(!failed.is_write(), "a refused call changed nothing");
        assert_eq!(event("DeleteBucket").verb(), "delete");
        assert_eq!(event("TerminateInstances").verb(), "delete");
        assert_eq!(event("CreateSecurityGroup").verb(), "create");
        assert_eq!(event("RunInstances").verb(), "create");
        assert_eq!(event("PutBucketVersioning").verb(), "update");
    }

    #[test]
    fn privacy_and_roles() {
        let n = test_normalizer();
        let mut e = event("ModifyInstanceAttribute");
        e.identity_type = Some("AssumedRole".into());
        e.username = Some("alice@example.com".into());
        e.arn = Some("arn:aws:sts::123456789012:assumed-role/Admin/alice@example.com".into());
        let kept = e.to_write(UserNames::Keep, &n).expect("a write");
        assert_eq!(kept.user.name.as_deref(), Some("alice@example.com"));
        assert_eq!(kept.user.acting_as.as_deref(), e.arn.as_deref());
        let hashed = e.to_write(UserNames::Hash, &n).expect("a write");
        let name = hashed.user.name.expect("a hash");
        assert!(
            name.starts_with("hmac:") && !name.contains("alice"),
            "{name}"
        );
        assert!(!hashed.user.acting_as.expect("a hash").contains("alice"));
        assert_eq!(hashed.source_ip, None);
        let dropped = e.to_write(UserNames::Drop, &n).expect("a write");
        assert_eq!(dropped.user.display(), "(a person)");
        assert_eq!(dropped.user.acting_as, None);
        // a service acting on its own is no person, and no name is hidden
        let mut s = event("DeleteNetworkInterface");
        s.identity_type = Some("AWSService".into());
        s.username = None;
        s.invoked_by = Some("autoscaling.amazonaws.com".into());
        let w = s.to_write(UserNames::Drop, &n).expect("a write");
        assert_eq!(w.user.class, UserClass::System);
        assert_eq!(w.user.name.as_deref(), Some("autoscaling.amazonaws.com"));
        // no user name: the ARN
        let mut a = event("PutBucketPolicy");
        a.username = None;
        let w = a.to_write(UserNames::Keep, &n).expect("a write");
        assert_eq!(
            w.user.name.as_deref(),
            Some("arn:aws:iam::123456789012:user/alice")
        );
    }

    #[test]
    fn the_queries_are_the_hand_changes_naming_no_one_yet() {
        use crate::compare::Comparison;
        use crate::state::{Attribution, Presence, Records};
        use crate::testkit::{drift, record};
        use std::collections::BTreeMap;
        let t = |s: i64| {
            Utc.timestamp_opt(1_700_000_000 + s, 0)
                .single()
                .expect("a time")
        };
        let id = |n: &str| ResourceId::new("prod", "aws", "aws_s3_bucket", None, n);
        let obs = |n: &str, evidence: Option<Direction>, drifted: bool| {
            let presence = if drifted {
                Presence::LiveOnly { live_hash: 1 }
            } else {
                Presence::Both(Comparison {
                    leaves: Vec::new(),
                    drifted: Vec::new(),
                    drifted_hashes: Vec::new(),
                })
            };
            let mut o = Observation::new(id(n), "registry.terraform.io/hashicorp/aws", presence);
            o.evidence = evidence;
            o
        };
        let observations = [
            obs("hand", Some(Direction::Forward), true),
            obs("both", Some(Direction::Conflict), true),
            obs("code", Some(Direction::Reverse), true),
            obs("in-sync", None, false),
            obs("named", Some(Direction::Forward), true),
            obs("no-id", Some(Direction::Forward), true),
            obs("was-in-sync", Some(Direction::Forward), true),
        ];
        let cloud_ids: BTreeMap<ResourceId, String> = observations
            .iter()
            .filter(|o| o.id.name != "no-id")
            .map(|o| (o.id.clone(), format!("cloud-{}", o.id.name)))
            .collect();
        let named = drift()
            .episode("e")
            .id(id("named"))
            .severity(crate::severity::Severity::Low)
            .attribution(Attribution {
                writers: vec![event("PutBucketPolicy")
                    .to_write(UserNames::Keep, &test_normalizer())
                    .expect("a write")],
                audit_since: Some(t(1)),
                ..Attribution::default()
            })
            .at(t(2))
            .build();
        let records: Records = [
            record(&id("named"), Some(named), t(2)),
            record(&id("was-in-sync"), None, t(50)),
        ]
        .into_iter()
        .collect();
        let q = cloud_queries(&observations, &records, &cloud_ids, Some(t(10)));
        let got: Vec<(&str, &str, Option<DateTime<Utc>>)> = q
            .iter()
            .map(|q| (q.id.name.as_str(), q.cloud_id.as_str(), q.since))
            .collect();
        assert_eq!(
            got,
            [
                ("hand", "cloud-hand", Some(t(10))),
                ("both", "cloud-both", Some(t(10))),
                ("was-in-sync", "cloud-was-in-sync", Some(t(50))),
            ]
        );
        assert_eq!(q[0].kind, "aws_s3_bucket");
    }

    #[test]
    fn evidence_is_sorted_once_and_writes_only() {
        let id = ResourceId::new("prod", "aws", "aws_s3_bucket", None, "aws_s3_bucket.b");
        let mut late = event("PutBucketTagging");
        late.at += chrono::Duration::seconds(60);
        let mut read = event("GetBucketTagging");
        read.read_only = Some(true);
        let answer = CloudWrites {
            enabled: true,
            events: HashMap::from([(
                id.clone(),
                vec![
                    late,
                    event("PutBucketPolicy"),
                    event("PutBucketPolicy"),
                    read,
                ],
            )]),
            ..CloudWrites::default()
        };
        let ev = cloud_evidence(&answer, UserNames::Keep, &test_normalizer(), None);
        assert!(ev.enabled);
        let names: Vec<&str> = ev.writes[&id].iter().map(|w| w.manager.as_str()).collect();
        assert_eq!(names, ["PutBucketPolicy", "PutBucketTagging"]);
    }
}
