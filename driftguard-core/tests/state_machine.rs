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
