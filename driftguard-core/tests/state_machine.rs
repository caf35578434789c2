//! The drift state machine, walked through the scan engine with the in-memory ports: every
//! kind of drift and direction, every way a drift ends, and resolution after a restart (records
//! read back from the store).

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use driftguard_core::memory::{
    ManualClock, MemoryGitSource, MemoryLiveSource, MemoryStore, RecordingNotifier,
};
use driftguard_core::ports::{KindError, ObjectVersion};
use driftguard_core::prelude::*;
use driftguard_core::query::DriftStatus;
use driftguard_core::testkit::{configmap, deployment};
use futures_executor::block_on;
use serde_json::{json, Value};

const ENV: &str = "prod";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// The Deployment `shop/web` of these tests.
fn web(replicas: i64, image: &str) -> Value {
    deployment("web")
        .label("app", "web")
        .replicas(replicas)
        .image(image)
        .build()
}

/// A ConfigMap of these tests, in `shop`, with `labels`.
fn config(name: &str, labels: Value) -> Value {
    configmap(name)
        .set("/metadata/labels", labels)
        .data("k", "v")
        .build()
}

/// What the API server would return for a desired object: defaults, status, uid.
fn served(mut v: Value) -> Value {
    v["metadata"]["uid"] = json!("1234");
    v["metadata"]["resourceVersion"] = json!("99");
    if v["kind"] == "Deployment" {
        v["spec"]["revisionHistoryLimit"] = json!(10);
        v["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        v["status"] = json!({"replicas": 1});
    }
    v
}

struct World {
    git: Arc<MemoryGitSource>,
    live: Arc<MemoryLiveSource>,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    notifier: Arc<RecordingNotifier>,
    scanner: Scanner,
    rev: usize,
}

impl World {
    fn new() -> World {
        let git = Arc::new(MemoryGitSource::new());
        let live = Arc::new(MemoryLiveSource::new());
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(t0()));
        let notifier = Arc::new(RecordingNotifier::default());
        let scanner = World::scanner(&git, &live, &store, &clock, &notifier);
        World {
            git,
            live,
            store,
            clock,
            notifier,
            scanner,
            rev: 0,
        }
    }

    fn scanner(
        git: &Arc<MemoryGitSource>,
        live: &Arc<MemoryLiveSource>,
        store: &Arc<MemoryStore>,
        clock: &Arc<ManualClock>,
        notifier: &Arc<RecordingNotifier>,
    ) -> Scanner {
        let mut spec = EnvironmentSpec::new(ENV);
        spec.managed_namespaces = Some(vec!["shop".into()]);
        Scanner::new(
            Engine::new(spec, Normalizer::new(SecretKey::new(b"k".to_vec()))),
            git.clone(),
            live.clone(),
            store.clone(),
            clock.clone(),
        )
        .with_notifier(notifier.clone())
    }

    /// A new process on the same store.
    fn restart(&mut self) {
        self.scanner = World::scanner(
            &self.git,
            &self.live,
            &self.store,
            &self.clock,
            &self.notifier,
        );
    }

    fn git(&mut self, objects: &[Value]) {
        self.rev += 1;
        self.git.set(DesiredSet {
            revision: Some(Revision::plain(format!("rev{}", self.rev))),
            objects: objects
                .iter()
                .map(|o| RawManifest {
                    object: RawObject::new(o.clone()),
                    provenance: Provenance::default(),
                })
                .collect(),
            ..DesiredSet::default()
        });
    }

    fn live(&self, objects: &[Value]) {
        self.live.set(
            objects
                .iter()
                .cloned()
                .map(served)
                .map(RawLive::new)
                .collect(),
        );
    }

    /// Scans and renders the events as `kind:object:drift:direction[:resolution]`.
    fn scan(&self) -> Vec<String> {
        self.clock.advance(Duration::minutes(1));
        let report = block_on(self.scanner.scan()).expect("scan succeeds");
        report.events.iter().map(render).collect()
    }
}

fn render(e: &DriftEvent) -> String {
    let mut s = format!(
        "{}:{}/{}:{}:{}",
        e.kind, e.drift.id.kind, e.drift.id.name, e.drift.kind, e.drift.direction
    );
    if let Some(r) = e.drift.resolution {
        s.push_str(&format!(":{r}"));
    }
    s
}

#[test]
fn forward_drift_reverted() {
    let mut w = World::new();
    w.git(&[web(3, "app:1")]);
    w.live(&[web(3, "app:1")]);
    assert_eq!(w.scan(), Vec::<String>::new());
    w.live(&[web(5, "app:1")]);
    assert_eq!(w.scan(), vec!["detected:Deployment/web:modified:forward"]);
    // nothing new: no event, no write
    assert_eq!(w.scan(), Vec::<String>::new());
    w.live(&[web(3, "app:1")]);
    assert_eq!(
        w.scan(),
        vec!["resolved:Deployment/web:modified:forward:reverted"]
    );
}

#[test]
fn forward_drift_adopted_into_git() {
    let mut w = World::new();
    w.git(&[web(3, "app:1")]);
    w.live(&[web(3, "app:1")]);
    w.scan();
    w.live(&[web(3, "app:2")]);
    assert_eq!(w.scan(), vec!["detected:Deployment/web:modified:forward"]);
    w.git(&[web(3, "app:2")]);
    assert_eq!(
        w.scan(),
        vec!["resolved:Deployment/web:modified:forward:adopted"]
    );
}

#[test]
fn reverse_drift_applied() {
    let mut w = World::new();
    w.git(&[web(3, "app:1")]);
    w.live(&[web(3, "app:1")]);
    w.scan();
    w.git(&[web(3, "app:2")]);
    assert_eq!(w.scan(), vec!["detected:Deployment/web:modified:reverse"]);
    w.live(&[web(3, "app:2")]);
    assert_eq!(
        w.scan(),
        vec!["resolved:Deployment/web:modified:reverse:applied"]
    );
}

#[test]
fn conflict_when_both_sides_moved() {
    let mut w = World::new();
    w.git(&[web(3, "app:1")]);
    w.live(&[web(3, "app:1")]);
    w.scan();
    w.git(&[web(3, "app:2")]);
    w.live(&[web(3, "app:3")]);
    assert_eq!(w.scan(), vec!["detected:Deployment/web:modified:conflict"]);
}

#[test]
fn changed_when_drifted_fields_change() {
    let mut w = World::new();
    w.git(&[web(3, "app:1")]);
    w.live(&[web(3, "app:1")]);
    w.scan();
    w.live(&[web(5, "app:1")]);
    w.scan();
    w.live(&[web(5, "app:9")]);
    assert_eq!(w.scan(), vec!["changed:Deployment/web:modified:forward"]);
    let drifts = block_on(w.store.drifts(&DriftQuery::default())).expect("query");
    assert_eq!(drifts.total, 1, "one episode across the change");
    let paths = drifts.items[0].paths();
    assert_eq!(
        paths,
        vec!["spec.replicas", "spec.template.spec.containers[app].image"]
    );
    assert_eq!(drifts.items[0].severity, Severity::High);
}

#[test]
fn missing_forward_then_recreated() {
    let mut w = World::new();
    w.git(&[web(3, "app:1")]);
    w.live(&[web(3, "app:1")]);
    w.scan();
    w.live(&[]);
    assert_eq!(w.scan(), vec!["detected:Deployment/web:missing:forward"]);
    w.live(&[web(3, "app:1")]);
    assert_eq!(
        w.scan(),
        vec!["resolved:Deployment/web:missing:forward:reverted"]
    );
}

#[test]
fn missing_reverse_when_added_to_git_and_never_applied() {
    let mut w = World::new();
    w.git(&[web(3, "app:1")]);
    w.live(&[web(3, "app:1")]);
    w.scan();
    let cm = config("settings", json!({}));
    w.git(&[web(3, "app:1"), cm.clone()]);
    assert_eq!(
        w.scan(),
        vec!["detected:ConfigMap/settings:missing:reverse"]
    );
    w.live(&[web(3, "app:1"), cm]);
    assert_eq!(
        w.scan(),
        vec!["resolved:ConfigMap/settings:missing:reverse:applied"]
    );
}

#[test]
fn missing_removed_from_git() {
    let mut w = World::new();
    let cm = config("settings", json!({}));
    w.git(&[web(3, "app:1"), cm]);
    w.live(&[web(3, "app:1")]);
    assert_eq!(
        w.scan(),
        vec!["detected:ConfigMap/settings:missing:unknown"]
    );
    w.git(&[web(3, "app:1")]);
    assert_eq!(
        w.scan(),
        vec!["resolved:ConfigMap/settings:missing:unknown:removed"]
    );
}

#[test]
fn orphan_forward_created_by_hand_then_deleted() {
    let mut w = World::new();
    w.git(&[web(3, "app:1"), config("a", json!({}))]);
    w.live(&[web(3, "app:1"), config("a", json!({}))]);
    w.scan();
    let hand = config("hand", json!({"driftguard.io/tracked": "true"}));
    w.live(&[web(3, "app:1"), config("a", json!({})), hand]);
    assert_eq!(w.scan(), vec!["detected:ConfigMap/hand:orphan:forward"]);
    w.live(&[web(3, "app:1"), config("a", json!({}))]);
    assert_eq!(
        w.scan(),
        vec!["resolved:ConfigMap/hand:orphan:forward:removed"]
    );
}

#[test]
fn orphan_reverse_removed_from_git_then_adopted_back() {
    let mut w = World::new();
    let b = config("b", json!({}));
    w.git(&[config("a", json!({})), b.clone()]);
    w.live(&[config("a", json!({})), b.clone()]);
    w.scan();
    w.git(&[config("a", json!({}))]);
    assert_eq!(w.scan(), vec!["detected:ConfigMap/b:orphan:reverse"]);
    w.git(&[config("a", json!({})), b]);
    assert_eq!(
        w.scan(),
        vec!["resolved:ConfigMap/b:orphan:reverse:adopted"]
    );
}

#[test]
fn resolution_after_restart_and_no_repeat_announcements() {
    let mut w = World::new();
    w.git(&[web(3, "app:1")]);
    w.live(&[web(3, "app:1")]);
    w.scan();
    w.live(&[web(1, "app:1")]);
    assert_eq!(w.scan(), vec!["detected:Deployment/web:modified:forward"]);
    w.restart();
    // the new process reads the records back: nothing announced twice
    assert_eq!(w.scan(), Vec::<String>::new());
    w.live(&[web(3, "app:1")]);
    w.restart();
    assert_eq!(
        w.scan(),
        vec!["resolved:Deployment/web:modified:forward:reverted"]
    );
    let announced: Vec<String> = w
        .notifier
        .received
        .lock()
        .expect("lock")
        .iter()
        .flat_map(|n| n.events.iter().map(render))
        .collect();
    assert_eq!(
        announced,
        vec![
            "detected:Deployment/web:modified:forward",
            "resolved:Deployment/web:modified:forward:reverted"
        ]
    );
    let history = block_on(w.store.history(
        &ResourceId::new(ENV, "apps", "Deployment", Some("shop"), "web"),
        10,
    ))
    .expect("history");
    assert_eq!(history.len(), 2);
}

#[test]
fn unreachable_cluster_resolves_nothing() {
    let mut w = World::new();
    w.git(&[web(3, "app:1")]);
    w.live(&[web(3, "app:1")]);
    w.scan();
    w.live(&[web(5, "app:1")]);
    w.scan();
    w.live.set_unreachable();
    w.clock.advance(Duration::minutes(1));
    assert!(block_on(w.scanner.scan()).is_err());
    let open = block_on(w.store.drifts(&DriftQuery::default())).expect("query");
    assert_eq!(open.total, 1, "still open");
    // a kind that cannot be listed is unknown, not resolved and not missing
    w.live(&[]);
    w.live.set_errors(vec![KindError {
        kind: GroupKind::new("apps", "Deployment"),
        message: "forbidden".into(),
    }]);
    assert_eq!(w.scan(), Vec::<String>::new());
    let open = block_on(w.store.drifts(&DriftQuery::default())).expect("query");
    assert_eq!(open.total, 1, "still open");
}

#[test]
fn first_scan_direction_from_git_history() {
    let mut w = World::new();
    w.git.enable_history();
    let commit = |id: &str, author: &str, message: &str| CommitInfo {
        id: id.into(),
        author: author.into(),
        email: String::new(),
        time: t0(),
        message: message.into(),
    };
    w.git.set_history(
        ResourceId::new(ENV, "apps", "Deployment", Some("shop"), "web"),
        vec![
            ObjectVersion {
                commit: commit("bbbb", "Bea", "bump app to 2"),
                object: Some(RawObject::new(web(3, "app:2"))),
            },
            ObjectVersion {
                commit: commit("aaaa", "Al", "first"),
                object: Some(RawObject::new(web(3, "app:1"))),
            },
        ],
    );
    w.git(&[web(3, "app:2")]);
    w.live(&[web(3, "app:1")]);
    w.clock.advance(Duration::minutes(1));
    let report = block_on(w.scanner.scan()).expect("scan");
    let drift = report.drifts().next().expect("one drift");
    assert_eq!(drift.direction, Direction::Reverse);
    let c = drift.attribution.commit.as_ref().expect("commit named");
    assert_eq!(
        (c.author.as_str(), c.message.as_str()),
        ("Bea", "bump app to 2")
    );
    // an orphan that never was in Git was created by hand
    let hand = config("hand", json!({"driftguard.io/tracked": "true"}));
    w.git(&[web(3, "app:2"), config("x", json!({}))]);
    w.live(&[web(3, "app:1"), config("x", json!({})), hand]);
    let events = w.scan();
    assert_eq!(events, vec!["detected:ConfigMap/hand:orphan:forward"]);
    // a later scan (Git moved elsewhere, the drift unchanged) still names the commit
    let open = block_on(w.store.drifts(&DriftQuery::default())).expect("query");
    let web = open
        .items
        .iter()
        .find(|d| d.id.kind == "Deployment")
        .expect("still open");
    let c = web.attribution.commit.as_ref().expect("commit still named");
    assert_eq!(c.author, "Bea");
}

#[test]
fn first_scan_without_evidence_is_unknown() {
    let w = {
        let mut w = World::new();
        w.git(&[web(3, "app:2")]);
        w
    };
    w.live(&[web(3, "app:1")]);
    assert_eq!(w.scan(), vec!["detected:Deployment/web:modified:unknown"]);
}

#[test]
fn incremental_live_change_touches_one_object() {
    let mut w = World::new();
    w.git(&[web(3, "app:1"), config("a", json!({}))]);
    w.live(&[web(3, "app:1"), config("a", json!({}))]);
    w.scan();
    let changed = RawLive::new(served(web(3, "app:hotfix")));
    let events =
        block_on(w.scanner.apply_live_change(&LiveChange::Applied(changed))).expect("applies");
    assert_eq!(
        events.iter().map(render).collect::<Vec<_>>(),
        vec!["detected:Deployment/web:modified:forward"]
    );
    let back = RawLive::new(served(web(3, "app:1")));
    let events =
        block_on(w.scanner.apply_live_change(&LiveChange::Applied(back))).expect("applies");
    assert_eq!(
        events.iter().map(render).collect::<Vec<_>>(),
        vec!["resolved:Deployment/web:modified:forward:reverted"]
    );
    // a full scan afterwards agrees and says nothing new
    w.live(&[web(3, "app:1"), config("a", json!({}))]);
    assert_eq!(w.scan(), Vec::<String>::new());
}

#[test]
fn findings_are_kept_on_the_drift_and_weigh_in_the_score() {
    let mut w = World::new();
    w.git(&[web(3, "app:1")]);
    w.live(&[web(3, "app:1")]);
    w.scan();
    // a hotfix: a supply-chain finding on the detected drift, in the store too
    w.live(&[web(3, "app:1-hotfix")]);
    assert_eq!(w.scan(), vec!["detected:Deployment/web:modified:forward"]);
    let open = block_on(w.store.drifts(&Default::default())).expect("drifts");
    let rules: Vec<&str> = open.items[0]
        .findings
        .iter()
        .map(|f| f.rule.as_str())
        .collect();
    assert_eq!(rules, ["image-not-in-git"]);
    // the same field, now on a mutable tag: the judgement changed, and the drift with it
    w.live(&[web(3, "app:latest")]);
    assert_eq!(w.scan(), vec!["changed:Deployment/web:modified:forward"]);
    let report = block_on(w.scanner.scan()).expect("scan succeeds");
    let d = report.drifts().next().expect("one open drift");
    assert_eq!(d.findings[0].rule, "image-mutable-tag");
    assert_eq!(d.findings[0].risk, Severity::High);
    // one tracked object with a high drift: the score is the high weight (severity high, and
    // the finding's risk is high too)
    assert_eq!(report.summary.score, 50.0);
    // scaled to zero as well: the availability finding is high, severity stays high
    w.live(&[web(0, "app:latest")]);
    w.scan();
    let open = block_on(w.store.drifts(&Default::default())).expect("drifts");
    let mut rules: Vec<&str> = open.items[0]
        .findings
        .iter()
        .map(|f| f.rule.as_str())
        .collect();
    rules.sort();
    assert_eq!(rules, ["image-mutable-tag", "replicas-zero"]);
}

#[test]
fn a_security_finding_raises_the_score_above_the_severity() {
    let mut w = World::new();
    let privileged = |on: bool| {
        let mut d = web(3, "app:1");
        if on {
            d["spec"]["template"]["spec"]["containers"][0]["securityContext"] =
                json!({"runAsNonRoot": false});
        } else {
            d["spec"]["template"]["spec"]["containers"][0]["securityContext"] =
                json!({"runAsNonRoot": true});
        }
        d
    };
    w.git(&[privileged(false)]);
    w.live(&[privileged(false)]);
    w.scan();
    w.live(&[privileged(true)]);
    w.clock.advance(Duration::minutes(1));
    let report = block_on(w.scanner.scan()).expect("scan succeeds");
    let d = report.drifts().next().expect("one open drift");
    // the built-in severity of a securityContext field is medium; the finding says high
    assert_eq!(d.severity, Severity::Medium);
    assert_eq!(d.findings[0].rule, "run-as-root");
    assert_eq!(report.summary.score, 50.0);
}

/// `v` as the API server returns it after these writes: (manager, operation, subresource,
/// minutes after t0, the fields it owns as `fieldsV1`).
fn managed(mut v: Value, writes: &[(&str, &str, &str, i64, Value)]) -> Value {
    v["metadata"]["managedFields"] = writes
        .iter()
        .map(|(manager, op, sub, at, fields)| {
            let mut e = json!({
                "manager": manager,
                "operation": op,
                "apiVersion": "apps/v1",
                "time": (t0() + Duration::minutes(*at)).to_rfc3339(),
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            });
            if !sub.is_empty() {
                e["subresource"] = json!(sub);
            }
            e
        })
        .collect();
    v
}

/// Flux's kustomize-controller applied `web` at `at`, owning what Git sets.
fn flux_applied(replicas: i64, at: i64) -> Value {
    managed(
        web(replicas, "app:1"),
        &[(
            "kustomize-controller",
            "Apply",
            "",
            at,
            json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}),
        )],
    )
}

/// A person scaled `web` to `replicas` at `at` (`kubectl scale`: the scale subresource) after
/// Flux applied it at `applied`.
fn scaled_by_hand(replicas: i64, applied: i64, at: i64) -> Value {
    managed(
        web(replicas, "app:1"),
        &[
            (
                "kustomize-controller",
                "Apply",
                "",
                applied,
                json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}),
            ),
            (
                "kubectl",
                "Update",
                "scale",
                at,
                json!({"f:spec": {"f:replicas": {}}}),
            ),
        ],
    )
}

#[test]
fn a_tool_correction_names_the_tool_and_a_repeated_hand_change_recurs() {
    let w = World::new_with_git(&[web(3, "app:1")]);
    w.live(&[flux_applied(3, 0)]);
    assert_eq!(w.scan(), Vec::<String>::new());
    w.live(&[scaled_by_hand(5, 0, 2)]);
    assert_eq!(w.scan(), vec!["detected:Deployment/web:modified:forward"]);
    let first = open_drift(&w);
    // Flux's drift correction: a forced apply takes spec.replicas back
    w.live(&[flux_applied(3, 4)]);
    let events = block_on(w.scanner.scan()).expect("scan").events;
    assert_eq!(events.len(), 1);
    let ended = &events[0].drift;
    assert_eq!(ended.resolution, Some(Resolution::Reverted));
    assert_eq!(ended.resolved_by.as_deref(), Some("kustomize-controller"));
    assert_eq!(ended.who(), "kubectl", "who made the drift stays named");
    assert_eq!(
        ended.ended_how().as_deref(),
        Some("reverted by kustomize-controller")
    );

    // the same hand change again: the same episode, recurring
    w.clock.advance(Duration::minutes(10));
    w.live(&[scaled_by_hand(5, 4, 16)]);
    assert_eq!(w.scan(), vec!["recurred:Deployment/web:modified:forward"]);
    let again = open_drift(&w);
    assert_eq!(again.episode, first.episode);
    assert_eq!(again.recurrences, 1);
    assert_eq!(
        again.detected_at, first.detected_at,
        "since when: the first time"
    );
    let all = block_on(w.store.drifts(&DriftQuery {
        status: DriftStatus::All,
        ..DriftQuery::default()
    }))
    .expect("query");
    assert_eq!(all.total, 1, "one episode, not one per hand change");
    w.live(&[flux_applied(3, 20)]);
    assert_eq!(
        w.scan(),
        vec!["resolved:Deployment/web:modified:forward:reverted"]
    );
    w.live(&[scaled_by_hand(5, 20, 22)]);
    assert_eq!(w.scan(), vec!["recurred:Deployment/web:modified:forward"]);
    assert_eq!(open_drift(&w).recurrences, 2);
    w.live(&[flux_applied(3, 24)]);
    w.scan();

    // another field is another episode
    w.live(&[managed(
        web(3, "app:2"),
        &[(
            "kubectl-set",
            "Update",
            "",
            30,
            json!({"f:spec": {"f:template": {"f:spec": {
            "f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}}}}}}}),
        )],
    )]);
    assert_eq!(w.scan(), vec!["detected:Deployment/web:modified:forward"]);
    assert_ne!(open_drift(&w).episode, first.episode);
    w.live(&[flux_applied(3, 32)]);
    w.scan();

    // the first hand change, a day after its last revert: a new episode
    w.clock.advance(Duration::hours(25));
    w.live(&[scaled_by_hand(5, 32, 60 * 26)]);
    assert_eq!(w.scan(), vec!["detected:Deployment/web:modified:forward"]);
    let later = open_drift(&w);
    assert_ne!(later.episode, first.episode);
    assert_eq!(later.recurrences, 0);
}

#[test]
fn a_drift_reverted_without_managed_fields_names_nobody() {
    let w = World::new_with_git(&[web(3, "app:1")]);
    w.live(&[web(3, "app:1")]);
    w.scan();
    w.live(&[web(5, "app:1")]);
    w.scan();
    w.live(&[web(3, "app:1")]);
    let events = block_on(w.scanner.scan()).expect("scan").events;
    assert_eq!(events[0].drift.resolution, Some(Resolution::Reverted));
    assert_eq!(events[0].drift.resolved_by, None);
    assert_eq!(events[0].drift.ended_how().as_deref(), Some("reverted"));
}

/// The one open drift.
fn open_drift(w: &World) -> Drift {
    let open = block_on(w.store.drifts(&DriftQuery {
        status: DriftStatus::Open,
        ..DriftQuery::default()
    }))
    .expect("query");
    assert_eq!(open.items.len(), 1, "one open drift");
    open.items[0].clone()
}

impl World {
    fn new_with_git(objects: &[Value]) -> World {
        let mut w = World::new();
        w.git(objects);
        w
    }
}

#[test]
fn a_correction_seen_by_the_watch_names_the_tool() {
    use driftguard_core::ports::LiveChange;
    let w = World::new_with_git(&[web(3, "app:1")]);
    w.live(&[flux_applied(3, 0)]);
    w.scan();
    let change = |v: Value| LiveChange::Applied(RawLive::new(served(v)));
    let opened = block_on(
        w.scanner
            .apply_live_change(&change(scaled_by_hand(5, 0, 2))),
    )
    .expect("live change");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].kind, EventKind::Detected);
    let ended =
        block_on(w.scanner.apply_live_change(&change(flux_applied(3, 4)))).expect("live change");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].drift.resolution, Some(Resolution::Reverted));
    assert_eq!(
        ended[0].drift.resolved_by.as_deref(),
        Some("kustomize-controller")
    );
    let again = block_on(
        w.scanner
            .apply_live_change(&change(scaled_by_hand(5, 4, 6))),
    )
    .expect("live change");
    assert_eq!(again[0].kind, EventKind::Recurred);
    assert_eq!(again[0].drift.episode, opened[0].drift.episode);
    assert_eq!(again[0].drift.recurrences, 1);
}

#[test]
fn an_owner_from_before_the_drift_is_not_who_ended_it() {
    // a dump edited back by hand keeps the owners it had: Flux's apply predates the drift
    let w = World::new_with_git(&[web(3, "app:1")]);
    w.live(&[flux_applied(3, 0)]);
    w.scan();
    w.live(&[scaled_by_hand(5, 0, 1)]);
    w.scan();
    w.live(&[flux_applied(3, 0)]);
    let events = block_on(w.scanner.scan()).expect("scan").events;
    assert_eq!(events[0].drift.resolution, Some(Resolution::Reverted));
    assert_eq!(events[0].drift.resolved_by, None);
}
