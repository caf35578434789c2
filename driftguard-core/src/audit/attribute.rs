//! The matching rule: which writes of the audit log explain a drift, and which field owner
//! gains which user.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use crate::id::ResourceId;
use crate::managed::{FieldOwner, ManagedFieldsEntry};
use crate::path::FieldPath;
use crate::state::{Direction, DriftKind, DriftRecord};

use super::AuditWrite;

/// Clock difference allowed between the API server and DriftGuard: a window of writes starts
/// this much before the time it is computed from.
pub const SKEW: Duration = Duration::seconds(2);

/// How far a write's time may lie from the `managedFields` time of the manager it is matched
/// with (that time has whole seconds, and is taken while the request runs).
pub const TIME_TOLERANCE: Duration = Duration::seconds(2);

/// Most writes a drift names (the newest).
pub const MAX_WRITERS: usize = 20;

/// The audit evidence of one evaluation, read before it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditEvidence {
    /// Whether the environment keeps an audit index (without it, drifts name no writers and
    /// keep no window).
    pub enabled: bool,
    /// The indexed writes of the drifted objects, oldest first.
    pub writes: HashMap<ResourceId, Vec<AuditWrite>>,
    /// When the previous full scan started: every object it found in sync agreed with Git
    /// then.
    pub last_scan: Option<DateTime<Utc>>,
    /// The writes are a cloud's trail (CloudTrail, for a Terraform environment): they name a
    /// drift's writers, and no field owner (a cloud resource has no `managedFields` to match
    /// them with, and an API call is no field manager).
    pub cloud: bool,
}

/// What the audit log says of one drifted object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFinding {
    /// The writes that may have made the drift, oldest first (at most [`MAX_WRITERS`]).
    pub writers: Vec<AuditWrite>,
    /// The start of the window the writes were taken from: when the object last agreed with
    /// Git as far as is known (`None`: every indexed write).
    pub since: Option<DateTime<Utc>>,
}

/// When `prev`'s object last agreed with Git, as far as is known: for an open drift, the
/// window it was detected with (kept in its attribution); for a record in sync, the later of
/// its last change and the previous full scan (`last_scan`), which saw it in sync; for an
/// object never seen, the previous full scan.
pub fn window_start(
    prev: Option<&DriftRecord>,
    last_scan: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match prev {
        Some(r) => match &r.drift {
            Some(d) => d.attribution.audit_since,
            None => Some(r.updated_at).max(last_scan),
        },
        None => last_scan,
    }
}

/// The `managedFields` entries that may have set a drifted field's live value: all, except the
/// last client-side apply when the live object differs from what it applied (`evidence` is
/// then `Forward`): that manager wrote Git's values, not the live ones (a 1.20 server records
/// no manager for a `kubectl scale`, so the applier would otherwise be named for it).
pub fn attributable(
    mut managed: Vec<ManagedFieldsEntry>,
    evidence: Option<Direction>,
) -> Vec<ManagedFieldsEntry> {
    if evidence == Some(Direction::Forward) {
        managed.retain(|e| e.manager != "kubectl-client-side-apply");
    }
    managed
}

/// The rule. For a drift of `kind` with the `drifted` paths, whose fields `owners` own (from
/// the `attributable` entries among `managed`, every `managedFields` entry), and the indexed
/// `writes` of the object (oldest first), taking the writes made since `since` (less
/// [`SKEW`]):
///
/// - each field owner gains the write its manager made at the time it wrote (same manager,
///   times within [`TIME_TOLERANCE`]: `audit_id` names it);
/// - a drifted field no manager owns, or whose owner last wrote before the window (so it did
///   not set the live value), gets an owner from the audit log: for `spec.replicas` the newest
///   write to the `scale` subresource (a 1.20 server records no manager for it), else the
///   newest write when all the candidate writes are one user's;
/// - the writers named are, for a missing object, its deletions; for an orphan, its creation
///   and updates; for a modified one, the writes that may have set a drifted field: those
///   matched above, those of a manager `managedFields` does not know (it recorded nothing),
///   and those of a manager owning a drifted field. Writes to `status`, and those of managers
///   that own none of the drifted fields (a controller's annotation), are left out.
///
/// Returns the writers, oldest first, at most [`MAX_WRITERS`].
pub fn attribute(
    kind: DriftKind,
    drifted: &[FieldPath],
    owners: &mut Vec<FieldOwner>,
    managed: &[ManagedFieldsEntry],
    attributable: &[ManagedFieldsEntry],
    writes: &[AuditWrite],
    since: Option<DateTime<Utc>>,
) -> Vec<AuditWrite> {
    let from = since.map(|s| s - SKEW);
    let recent = writes.iter().filter(|w| from.is_none_or(|f| w.at >= f));
    match kind {
        DriftKind::Missing => newest(recent.filter(|w| w.verb == "delete")),
        DriftKind::Orphan => newest(recent.filter(|w| w.verb != "delete")),
        DriftKind::Modified => {
            let recent: Vec<&AuditWrite> = recent
                .filter(|w| w.subresource != "status" && w.verb != "delete")
                .collect();
            for o in owners.iter_mut() {
                o.audit_id = match o.time {
                    Some(t) => recent
                        .iter()
                        .filter(|w| w.manager == o.manager)
                        .map(|w| ((w.at - t).abs(), *w))
                        .filter(|(d, _)| *d <= TIME_TOLERANCE)
                        .min_by_key(|(d, _)| *d)
                        .map(|(_, w)| w.audit_id.clone()),
                    // the API server records no time for some entries (a `kubectl scale`'s,
                    // on the scale subresource, since 1.2x): the manager's newest write there
                    None => recent
                        .iter()
                        .rev()
                        .find(|w| w.manager == o.manager && w.subresource == o.subresource)
                        .map(|w| w.audit_id.clone()),
                };
            }
            let matched: HashSet<&str> = owners
                .iter()
                .filter_map(|o| o.audit_id.as_deref())
                .collect();
            let known = |m: &str| managed.iter().any(|e| e.manager == m);
            let owns_drifted = |m: &str| {
                attributable.iter().any(|e| {
                    e.manager == m
                        && e.paths
                            .iter()
                            .any(|p| drifted.iter().any(|d| p.is_within(d) || d.is_within(p)))
                })
            };
            let candidates: Vec<&AuditWrite> = recent
                .into_iter()
                .filter(|w| {
                    matched.contains(w.audit_id.as_str())
                        || !known(&w.manager)
                        || owns_drifted(&w.manager)
                })
                .collect();
            let one_user = candidates
                .first()
                .filter(|first| candidates.iter().all(|w| w.user == first.user))
                .and(candidates.last().copied());
            // an owner that last wrote before the window cannot have set the live value
            let stale = |o: &FieldOwner| {
                o.audit_id.is_none() && from.is_some_and(|f| o.time.is_some_and(|t| t < f))
            };
            let unexplained: Vec<&FieldPath> = drifted
                .iter()
                .filter(|p| owners.iter().find(|o| &o.path == *p).is_none_or(stale))
                .collect();
            let replicas = FieldPath::from_keys(["spec", "replicas"]);
            for p in unexplained {
                let scaled = p
                    .is_within(&replicas)
                    .then(|| candidates.iter().rev().find(|w| w.subresource == "scale"))
                    .flatten()
                    .copied();
                if let Some(w) = scaled.or(one_user) {
                    owners.retain(|o| &o.path != p);
                    owners.push(FieldOwner {
                        path: p.clone(),
                        manager: w.manager.clone(),
                        operation: "Update".into(),
                        subresource: w.subresource.clone(),
                        time: Some(w.at),
                        audit_id: Some(w.audit_id.clone()),
                    });
                }
            }
            newest(candidates.into_iter())
        }
    }
}

/// The newest [`MAX_WRITERS`] of `writes` (oldest first), each once.
fn newest<'a>(writes: impl Iterator<Item = &'a AuditWrite>) -> Vec<AuditWrite> {
    merge_writers(&[], &writes.cloned().collect::<Vec<_>>())
}

/// The writers of a drift after new ones were found: both lists, each write once (by audit
/// id), oldest first, the newest [`MAX_WRITERS`]. A drift's writers only grow while it is
/// open: a write the index no longer keeps is still named.
pub fn merge_writers(old: &[AuditWrite], new: &[AuditWrite]) -> Vec<AuditWrite> {
    let mut seen = HashSet::new();
    let mut out: Vec<AuditWrite> = old
        .iter()
        .chain(new)
        .filter(|w| seen.insert(w.audit_id.clone()))
        .cloned()
        .collect();
    out.sort_by(|a, b| a.at.cmp(&b.at).then(a.audit_id.cmp(&b.audit_id)));
    if out.len() > MAX_WRITERS {
        out.drain(..out.len() - MAX_WRITERS);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditUser, UserClass};
    use crate::managed::owners_of;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("valid time")
    }

    fn user(name: &str, class: UserClass) -> AuditUser {
        AuditUser {
            name: Some(name.into()),
            class,
            groups: Vec::new(),
            acting_as: None,
        }
    }

    fn w(id: &str, who: &str, manager: &str, at: i64) -> AuditWrite {
        AuditWrite {
            audit_id: id.into(),
            at: t(at) + Duration::milliseconds(300),
            verb: "patch".into(),
            subresource: String::new(),
            user: user(who, UserClass::Person),
            manager: manager.into(),
            user_agent: "kubectl/v1.20.2".into(),
            source_ip: Some("10.0.0.7".into()),
        }
    }

    fn entry(manager: &str, at: Option<i64>, paths: &[&str]) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: manager.into(),
            operation: "Update".into(),
            subresource: String::new(),
            time: at.map(t),
            paths: paths.iter().map(|p| FieldPath::parse(p)).collect(),
        }
    }

    fn paths(p: &[&str]) -> Vec<FieldPath> {
        p.iter().map(|x| FieldPath::parse(x)).collect()
    }

    fn run(
        kind: DriftKind,
        drifted: &[&str],
        managed: &[ManagedFieldsEntry],
        writes: &[AuditWrite],
        since: Option<i64>,
    ) -> (Vec<FieldOwner>, Vec<String>) {
        let drifted = paths(drifted);
        let mut owners = owners_of(managed, &drifted);
        let writers = attribute(
            kind,
            &drifted,
            &mut owners,
            managed,
            managed,
            writes,
            since.map(t),
        );
        (owners, writers.into_iter().map(|w| w.audit_id).collect())
    }

    fn owner_ids(owners: &[FieldOwner]) -> Vec<(String, Option<String>)> {
        owners
            .iter()
            .map(|o| (o.path.to_string(), o.audit_id.clone()))
            .collect()
    }

    #[test]
    fn two_people_two_fields_one_object() {
        let managed = [
            entry("kubectl-client-side-apply", Some(0), &["data.A", "data.B"]),
            entry("kubectl-edit", Some(100), &["data.A"]),
            entry("kubectl-patch", Some(130), &["data.B"]),
        ];
        let writes = [
            w("apply", "ci", "kubectl-client-side-apply", 0),
            w("alice-edit", "alice", "kubectl-edit", 100),
            w("bob-patch", "bob", "kubectl-patch", 130),
        ];
        let (owners, writers) = run(
            DriftKind::Modified,
            &["data.A", "data.B"],
            &managed,
            &writes,
            Some(50),
        );
        assert_eq!(
            owner_ids(&owners),
            [
                ("data.A".to_owned(), Some("alice-edit".to_owned())),
                ("data.B".to_owned(), Some("bob-patch".to_owned()))
            ]
        );
        assert_eq!(
            writers,
            ["alice-edit", "bob-patch"],
            "the apply was before the window"
        );
        // without a window every indexed write of a manager owning a drifted field counts
        // (the applier's too, unless the evidence rule leaves it out: see the scale case)
        let (_, writers) = run(
            DriftKind::Modified,
            &["data.A", "data.B"],
            &managed,
            &writes,
            None,
        );
        assert_eq!(writers, ["apply", "alice-edit", "bob-patch"]);
    }

    #[test]
    fn a_scale_whose_entry_has_no_time_names_the_newest_scale() {
        // since 1.2x `kubectl scale` is the manager `kubectl` on the scale subresource, and its
        // managedFields entry carries no time
        let mut scale = entry("kubectl", None, &["spec.replicas"]);
        scale.subresource = "scale".into();
        let managed = [
            entry("kubectl-client-side-apply", Some(0), &["spec.replicas"]),
            scale,
        ];
        let mut early = w("bob-scale", "bob", "kubectl", 40);
        early.subresource = "scale".into();
        let mut late = w("alice-scale", "alice", "kubectl", 90);
        late.subresource = "scale".into();
        let (owners, writers) = run(
            DriftKind::Modified,
            &["spec.replicas"],
            &managed,
            &[early, late, w("patch", "carol", "kubectl", 95)],
            Some(10),
        );
        assert_eq!(
            owner_ids(&owners),
            [("spec.replicas".to_owned(), Some("alice-scale".to_owned()))]
        );
        assert!(writers.contains(&"alice-scale".to_owned()), "{writers:?}");
    }

    #[test]
    fn a_scale_has_no_manager_on_1_20() {
        // the applier is left out of the attributable entries by the evidence rule
        let managed = [
            entry(
                "kubectl-client-side-apply",
                Some(0),
                &["spec.replicas", "spec.template"],
            ),
            entry(
                "kube-controller-manager",
                Some(101),
                &["metadata.annotations.x"],
            ),
        ];
        let mut scale = w("alice-scale", "alice", "kubectl", 100);
        scale.subresource = "scale".into();
        let controller = AuditWrite {
            user: user("system:kube-controller-manager", UserClass::System),
            ..w("kcm", "", "kube-controller-manager", 101)
        };
        let drifted = paths(&["spec.replicas"]);
        let attributable = attributable(managed.to_vec(), Some(Direction::Forward));
        let mut owners = owners_of(&attributable, &drifted);
        assert!(owners.is_empty(), "nobody in managedFields");
        let writers = attribute(
            DriftKind::Modified,
            &drifted,
            &mut owners,
            &managed,
            &attributable,
            &[scale, controller],
            Some(t(50)),
        );
        assert_eq!(
            writers
                .iter()
                .map(|w| w.audit_id.as_str())
                .collect::<Vec<_>>(),
            ["alice-scale"],
            "the controller's annotation is not the drift"
        );
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].path, "spec.replicas");
        assert_eq!(owners[0].subresource, "scale");
        assert_eq!(owners[0].audit_id.as_deref(), Some("alice-scale"));
    }

    #[test]
    fn times_must_match_and_unowned_fields_need_one_user() {
        // kubectl-edit's entry was written at 200, but the only kubectl-edit write indexed is
        // from 100: the field is not given to it
        let managed = [entry("kubectl-edit", Some(200), &["data.A"])];
        let writes = [w("old-edit", "alice", "kubectl-edit", 100)];
        let (owners, writers) = run(DriftKind::Modified, &["data.A"], &managed, &writes, None);
        assert_eq!(owner_ids(&owners), [("data.A".to_owned(), None)]);
        assert_eq!(
            writers,
            ["old-edit"],
            "its manager owns the field: still a writer"
        );
        // a removed field (no owner): one person wrote since, so it was them
        let writes = [
            w("e1", "alice", "kubectl-edit", 100),
            w("e2", "alice", "kubectl-edit", 110),
        ];
        let managed = [entry("kubectl-edit", Some(110), &["data.A"])];
        let (owners, _) = run(
            DriftKind::Modified,
            &["data.A", "data.B"],
            &managed,
            &writes,
            None,
        );
        assert_eq!(
            owner_ids(&owners),
            [
                ("data.A".to_owned(), Some("e2".to_owned())),
                ("data.B".to_owned(), Some("e2".to_owned()))
            ]
        );
        // two people: no guess for the unowned field
        let writes = [
            w("e1", "alice", "kubectl-edit", 100),
            w("e2", "bob", "kubectl-edit", 110),
        ];
        let (owners, writers) = run(
            DriftKind::Modified,
            &["data.A", "data.B"],
            &managed,
            &writes,
            None,
        );
        assert_eq!(
            owner_ids(&owners),
            [("data.A".to_owned(), Some("e2".to_owned()))]
        );
        assert_eq!(writers, ["e1", "e2"]);
    }

    #[test]
    fn deletions_creations_and_status() {
        let mut del = w("del", "alice", "kubectl", 100);
        del.verb = "delete".into();
        let mut create = w("create", "bob", "kubectl-create", 90);
        create.verb = "create".into();
        let mut status = w("status", "kcm", "kube-controller-manager", 95);
        status.subresource = "status".into();
        let writes = [create, status, del];
        let (_, missing) = run(DriftKind::Missing, &[], &[], &writes, None);
        assert_eq!(missing, ["del"]);
        let (_, orphan) = run(DriftKind::Orphan, &[], &[], &writes, Some(80));
        assert_eq!(orphan, ["create", "status"]);
        let (_, orphan) = run(DriftKind::Orphan, &[], &[], &writes, Some(95));
        assert_eq!(
            orphan,
            ["status"],
            "the window starts at the agreement, less the skew"
        );
        let (_, modified) = run(DriftKind::Modified, &["data.A"], &[], &writes, None);
        assert_eq!(
            modified,
            ["create"],
            "status writes and deletions are no modification"
        );
    }

    #[test]
    fn windows_and_merges() {
        use crate::state::Attribution;
        use crate::testkit::{drift, record};
        let id = ResourceId::new("prod", "", "ConfigMap", Some("shop"), "c");
        let rec = |updated: i64, open: Option<Option<i64>>| {
            let d = open.map(|since| {
                drift()
                    .episode("e")
                    .id(id.clone())
                    .severity(crate::severity::Severity::Low)
                    .attribution(Attribution {
                        audit_since: since.map(t),
                        ..Attribution::default()
                    })
                    .at(t(0))
                    .build()
            });
            record(&id, d, t(updated))
        };
        assert_eq!(window_start(None, Some(t(5))), Some(t(5)));
        assert_eq!(window_start(None, None), None);
        assert_eq!(window_start(Some(&rec(10, None)), Some(t(5))), Some(t(10)));
        assert_eq!(window_start(Some(&rec(10, None)), Some(t(50))), Some(t(50)));
        assert_eq!(
            window_start(Some(&rec(10, Some(Some(3)))), Some(t(50))),
            Some(t(3))
        );
        assert_eq!(window_start(Some(&rec(10, Some(None))), Some(t(50))), None);
        let a = [w("1", "a", "m", 1), w("3", "a", "m", 3)];
        let b = [w("2", "b", "m", 2), w("3", "a", "m", 3)];
        let ids: Vec<String> = merge_writers(&a, &b)
            .into_iter()
            .map(|w| w.audit_id)
            .collect();
        assert_eq!(ids, ["1", "2", "3"]);
        let many: Vec<AuditWrite> = (0..30)
            .map(|i| w(&format!("{i:02}"), "a", "m", i))
            .collect();
        let kept = merge_writers(&[], &many);
        assert_eq!(kept.len(), MAX_WRITERS);
        assert_eq!(kept[0].audit_id, "10", "the newest are kept");
    }
}
