//! `state::transition` on its own: a table of single steps (previous record + observation in,
//! record and events out), and properties over random walks of observations of one object.
//!
//! Observations are made by the real engine from small ConfigMaps, so that every comparison,
//! hash and baseline is what a scan would see.

use chrono::{DateTime, Duration, TimeZone, Utc};
use driftguard_core::audit::AuditEvidence;
use driftguard_core::engine::{Engine, EnvState, EnvironmentSpec, Histories};
use driftguard_core::id::ResourceId;
use driftguard_core::model::{Provenance, RawLive, RawManifest, RawObject};
use driftguard_core::normalize::{Normalizer, SecretKey};
use driftguard_core::ports::{DesiredSet, KindError, LiveSnapshot};
use driftguard_core::state::{
    episode_replaces, transition, DriftEvent, DriftRecord, EpisodeStamp, EventKind, Observation,
    Tick,
};
use driftguard_core::testkit::configmap;
use proptest::prelude::*;
use serde_json::{json, Value};

fn t(i: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .expect("valid time")
        + Duration::minutes(i)
}

fn engine() -> Engine {
    Engine::new(
        EnvironmentSpec::new("prod"),
        Normalizer::new(SecretKey::new(b"k".to_vec())),
    )
}

fn id() -> ResourceId {
    ResourceId::new("prod", "", "ConfigMap", Some("shop"), "cfg")
}

/// The ConfigMap `shop/cfg` with `LEVEL: v`, tracked or not.
fn cfg(v: &str, tracked: bool) -> Value {
    let c = configmap("cfg").label("app", "shop");
    let c = if tracked {
        c.label(driftguard_core::normalize::TRACKING_LABEL, "true")
    } else {
        c
    };
    c.data("LEVEL", v).build()
}

/// What one side holds in one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// Absent.
    No,
    /// Present with this value of `data.LEVEL`.
    V(u8),
}

/// One step of a walk: Git's side and the cluster's side (`None`: the cluster cannot be read).
#[derive(Clone, Copy, Debug)]
struct Step {
    git: Side,
    live: Option<Side>,
}

fn observe(step: Step) -> Observation {
    let (e, st) = index_step(step);
    e.observe(&st, &id())
}

/// The engine and the index of one step.
fn index_step(step: Step) -> (Engine, EnvState) {
    let e = engine();
    let desired = DesiredSet {
        objects: match step.git {
            Side::No => vec![],
            Side::V(v) => vec![RawManifest {
                object: RawObject::new(cfg(&format!("v{v}"), true)),
                provenance: Provenance::default(),
            }],
        },
        ..DesiredSet::default()
    };
    let live = match step.live {
        None => LiveSnapshot {
            served: Vec::new(),
            objects: Default::default(),
            errors: vec![KindError {
                kind: id().group_kind(),
                message: "forbidden".into(),
            }],
        },
        Some(Side::No) => LiveSnapshot::default(),
        Some(Side::V(v)) => {
            let mut o = cfg(&format!("v{v}"), true);
            o["metadata"]["uid"] = json!("u1");
            LiveSnapshot {
                served: Vec::new(),
                objects: vec![RawLive::new(o)].into(),
                errors: vec![],
            }
        }
    };
    // the ConfigMap kind stays an orphan kind even when Git holds none
    let mut spec = EnvironmentSpec::new("prod");
    spec.orphan_kinds = Some(vec![id().group_kind()]);
    let e = Engine::new(spec, e.normalizer.clone());
    let st = e.index(&desired, &live);
    (e, st)
}

fn tick(i: i64, first_scan: bool) -> Tick {
    Tick {
        now: t(i),
        scan_id: format!("scan-{i}"),
        revision: Some(format!("rev-{i}")),
        first_scan,
    }
}

/// Runs a walk from no record; returns every step's events and the final record.
fn walk(steps: &[Step]) -> (Vec<Vec<DriftEvent>>, Option<DriftRecord>) {
    let mut record: Option<DriftRecord> = None;
    let mut all = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let tr = transition(record.as_ref(), &observe(*s), &tick(i as i64, i == 0));
        all.push(tr.events);
        record = tr.record;
    }
    (all, record)
}

fn render(events: &[DriftEvent]) -> String {
    events
        .iter()
        .map(|e| {
            let d = &e.drift;
            let mut s = format!("{} {} {}", e.kind, d.kind, d.direction);
            if !d.fields.is_empty() {
                s.push_str(&format!(" [{}]", d.paths().join(",")));
            }
            if let Some(r) = d.resolution {
                s.push_str(&format!(" {r}"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The events of the last step of a walk.
fn check(steps: &[Step]) -> String {
    let (all, _) = walk(steps);
    all.last().map(|e| render(e)).unwrap_or_default()
}

const fn s(git: Side, live: Side) -> Step {
    Step {
        git,
        live: Some(live),
    }
}
const fn unknown(git: Side) -> Step {
    Step { git, live: None }
}
use Side::{No, V};

#[test]
fn table_of_single_steps() {
    // (walk, events of its last step)
    let cases: &[(&[Step], &str)] = &[
        // in sync from the start: nothing to say
        (&[s(V(1), V(1))], ""),
        // first scan with a difference and no evidence: direction unknown
        (&[s(V(1), V(2))], "detected modified unknown [data.LEVEL]"),
        // live moved away from an agreed baseline: forward
        (
            &[s(V(1), V(1)), s(V(1), V(2))],
            "detected modified forward [data.LEVEL]",
        ),
        // Git moved: reverse
        (
            &[s(V(1), V(1)), s(V(2), V(1))],
            "detected modified reverse [data.LEVEL]",
        ),
        // both moved, differently: conflict
        (
            &[s(V(1), V(1)), s(V(2), V(3))],
            "detected modified conflict [data.LEVEL]",
        ),
        // live went back: reverted
        (
            &[s(V(1), V(1)), s(V(1), V(2)), s(V(1), V(1))],
            "resolved modified forward [data.LEVEL] reverted",
        ),
        // Git took live's value: adopted
        (
            &[s(V(1), V(1)), s(V(1), V(2)), s(V(2), V(2))],
            "resolved modified forward [data.LEVEL] adopted",
        ),
        // a reverse drift applied
        (
            &[s(V(1), V(1)), s(V(2), V(1)), s(V(2), V(2))],
            "resolved modified reverse [data.LEVEL] applied",
        ),
        // deleted by hand: missing, forward
        (&[s(V(1), V(1)), s(V(1), No)], "detected missing forward"),
        // recreated: the missing drift is reverted
        (
            &[s(V(1), V(1)), s(V(1), No), s(V(1), V(1))],
            "resolved missing forward reverted",
        ),
        // new in Git, never applied: missing, reverse
        (&[s(No, No), s(V(1), No)], "detected missing reverse"),
        // made by hand (tracked): orphan, forward
        (&[s(No, No), s(No, V(1))], "detected orphan forward"),
        // removed from Git, not pruned: orphan, reverse
        (&[s(V(1), V(1)), s(No, V(1))], "detected orphan reverse"),
        // the orphan deleted: removed
        (
            &[s(No, No), s(No, V(1)), s(No, No)],
            "resolved orphan forward removed",
        ),
        // the same difference seen again: no event
        (&[s(V(1), V(1)), s(V(1), V(2)), s(V(1), V(2))], ""),
        // the drifted value changes: changed
        (
            &[s(V(1), V(1)), s(V(1), V(2)), s(V(1), V(3))],
            "changed modified forward [data.LEVEL]",
        ),
        // the cluster cannot be read: nothing resolves, nothing is detected
        (&[s(V(1), V(1)), s(V(1), V(2)), unknown(V(1))], ""),
        (&[s(V(1), V(1)), unknown(V(2))], ""),
    ];
    let mut failures = Vec::new();
    for (steps, want) in cases {
        let got = check(steps);
        if got != *want {
            failures.push(format!("{steps:?}\n  want: {want}\n  got:  {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_unknown_step_keeps_the_record_as_it_is() {
    let steps = [s(V(1), V(1)), s(V(1), V(2))];
    let (_, before) = walk(&steps);
    let before = before.expect("a record");
    let tr = transition(Some(&before), &observe(unknown(V(1))), &tick(9, false));
    assert!(tr.events.is_empty());
    assert!(!tr.changed);
    assert_eq!(tr.record.as_ref(), Some(&before));
    // and with no record, none is made
    let tr = transition(None, &observe(unknown(V(1))), &tick(9, true));
    assert!(tr.record.is_none() && tr.events.is_empty() && !tr.changed);
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(No), (1u8..4).prop_map(V)]
}

fn step() -> impl Strategy<Value = Step> {
    (side(), prop::option::weighted(0.85, side())).prop_map(|(git, live)| Step { git, live })
}

/// Whether both sides agree (or neither holds the object).
fn agree(s: Step) -> bool {
    matches!(s.live, Some(l) if l == s.git)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A full scan's evaluation, which takes the stored records and puts the new ones in
    /// their place, gives what the evaluation that reads them gives, step after step.
    #[test]
    fn evaluating_taking_the_records_is_evaluating_reading_them(
        steps in prop::collection::vec(step(), 1..8)
    ) {
        let mut records = driftguard_core::state::Records::new();
        for (i, s) in steps.iter().enumerate() {
            let (e, st) = index_step(*s);
            let observations = e.observe_each(&st, e.scan_ids(&st, &records));
            let tick = tick(i as i64, i == 0);
            let (histories, audit) = (Histories::default(), AuditEvidence::default());
            let read = e.evaluate_audited(
                &st, &records, observations.clone(), &histories, &audit, &tick,
            );
            let taken = e.evaluate_taking(
                &st, records, observations, &histories, &audit, &tick,
            );
            prop_assert_eq!(&taken, &read);
            records = taken.records;
        }
    }

    /// The same observation twice in a row emits nothing the second time.
    #[test]
    fn the_same_observation_twice_emits_no_event(steps in prop::collection::vec(step(), 1..8)) {
        let mut record: Option<DriftRecord> = None;
        for (i, s) in steps.iter().enumerate() {
            let obs = observe(*s);
            let first = transition(record.as_ref(), &obs, &tick(2 * i as i64, i == 0));
            let again = transition(first.record.as_ref(), &obs, &tick(2 * i as i64 + 1, false));
            prop_assert!(again.events.is_empty(), "{:?} then {:?}: {:?}", steps, s, again.events);
            prop_assert!(!again.changed);
            record = first.record;
        }
    }

    /// An open drift resolves exactly once when both sides come to agree, and nothing
    /// resolves (or happens at all) while the cluster cannot be read.
    #[test]
    fn a_drift_resolves_once_and_only_when_both_sides_agree(steps in prop::collection::vec(step(), 1..10)) {
        let mut record: Option<DriftRecord> = None;
        for (i, s) in steps.iter().enumerate() {
            let was_open = record.as_ref().is_some_and(|r| r.drift.is_some());
            let tr = transition(record.as_ref(), &observe(*s), &tick(i as i64, i == 0));
            let resolved = tr.events.iter().filter(|e| e.kind == EventKind::Resolved).count();
            prop_assert!(resolved <= 1, "step {}: {:?}", i, tr.events);
            if s.live.is_none() {
                prop_assert!(tr.events.is_empty(), "an unreadable side emitted {:?}", tr.events);
                prop_assert_eq!(&tr.record, &record);
            }
            if agree(*s) {
                prop_assert_eq!(resolved, usize::from(was_open), "{:?} step {}", steps, i);
                prop_assert_eq!(tr.events.len(), resolved);
                prop_assert!(tr.record.as_ref().is_none_or(|r| r.drift.is_none()));
            }
            record = tr.record;
        }
    }

    /// Replaying the events of a walk through the store's episode rule gives, for the open
    /// episode, exactly the drift the final record holds; every other episode ends resolved.
    #[test]
    fn replaying_the_events_rebuilds_the_record(steps in prop::collection::vec(step(), 1..10)) {
        let (all, record) = walk(&steps);
        let mut episodes: std::collections::BTreeMap<String, driftguard_core::state::Drift> =
            Default::default();
        for e in all.iter().flatten() {
            let stored = episodes.get(&e.drift.episode).map(|d| EpisodeStamp {
                updated_at: d.updated_at,
                open: d.is_open(),
            });
            if episode_replaces(stored, &e.drift) {
                episodes.insert(e.drift.episode.clone(), e.drift.clone());
            }
        }
        let open: Vec<_> = episodes.values().filter(|d| d.is_open()).collect();
        match record.as_ref().and_then(|r| r.drift.as_ref()) {
            Some(d) => {
                prop_assert_eq!(open.len(), 1);
                let replayed = open[0];
                prop_assert_eq!(&replayed.episode, &d.episode);
                prop_assert_eq!(replayed.kind, d.kind);
                prop_assert_eq!(replayed.direction, d.direction);
                prop_assert_eq!(replayed.severity, d.severity);
                prop_assert_eq!(&replayed.fields, &d.fields);
                prop_assert_eq!(replayed.detected_at, d.detected_at);
                prop_assert_eq!(replayed.updated_at, d.updated_at);
            }
            None => prop_assert!(open.is_empty(), "open episodes without an open record: {:?}", open),
        }
    }
}

/// A step and the source's apply mark at that step.
type Marked = (Step, Option<u64>);

/// A walk where each step also carries the source's apply mark (`None`: the source knows
/// none); returns the events of the last step.
fn check_marked(steps: &[Marked]) -> (String, Option<DriftRecord>) {
    let mut record: Option<DriftRecord> = None;
    let mut last = Vec::new();
    for (i, (s, mark)) in steps.iter().enumerate() {
        let mut obs = observe(*s);
        obs.applied_mark = *mark;
        let tr = transition(record.as_ref(), &obs, &tick(i as i64, i == 0));
        last = tr.events;
        record = tr.record;
    }
    (render(&last), record)
}

#[test]
fn a_drift_that_ends_while_the_apply_mark_moved_was_applied() {
    let cases: &[(&[Marked], &str)] = &[
        // changed by hand, then an apply put it back: applied, not reverted
        (
            &[
                (s(V(1), V(1)), Some(1)),
                (s(V(1), V(2)), Some(1)),
                (s(V(1), V(1)), Some(2)),
            ],
            "resolved modified forward [data.LEVEL] applied",
        ),
        // put back by hand (no apply): reverted
        (
            &[
                (s(V(1), V(1)), Some(1)),
                (s(V(1), V(2)), Some(1)),
                (s(V(1), V(1)), Some(1)),
            ],
            "resolved modified forward [data.LEVEL] reverted",
        ),
        // deleted by hand, recreated by an apply
        (
            &[
                (s(V(1), V(1)), Some(1)),
                (s(V(1), No), Some(1)),
                (s(V(1), V(1)), Some(2)),
            ],
            "resolved missing forward applied",
        ),
        // the code took the value changed by hand (no apply): adopted
        (
            &[
                (s(V(1), V(1)), Some(1)),
                (s(V(1), V(2)), Some(1)),
                (s(V(2), V(2)), Some(1)),
            ],
            "resolved modified forward [data.LEVEL] adopted",
        ),
        // a source without marks: as before
        (
            &[
                (s(V(1), V(1)), None),
                (s(V(1), V(2)), None),
                (s(V(1), V(1)), Some(5)),
            ],
            "resolved modified forward [data.LEVEL] reverted",
        ),
        // an orphan deleted by an apply is removed
        (
            &[
                (s(No, No), Some(1)),
                (s(No, V(1)), Some(1)),
                (s(No, No), Some(2)),
            ],
            "resolved orphan forward removed",
        ),
    ];
    let mut failures = Vec::new();
    for (steps, want) in cases {
        let (got, _) = check_marked(steps);
        if got != *want {
            failures.push(format!("{steps:?}\n  want: {want}\n  got:  {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn only_records_of_open_drifts_keep_the_apply_mark() {
    let (_, open) = check_marked(&[(s(V(1), V(1)), Some(7)), (s(V(1), V(2)), Some(7))]);
    let open = open.expect("a record");
    assert_eq!(open.applied_mark.map(|h| h.0), Some(7));
    // a record in sync does not keep it, so that an apply does not rewrite every record
    let (_, in_sync) = check_marked(&[(s(V(1), V(1)), Some(7))]);
    assert_eq!(in_sync.expect("a record").applied_mark, None);
    // the mark moving while the drift stays open rewrites the record, with no event
    let mut obs = observe(s(V(1), V(2)));
    obs.applied_mark = Some(8);
    let tr = transition(Some(&open), &obs, &tick(10, false));
    assert!(tr.events.is_empty());
    assert!(tr.changed);
    assert_eq!(tr.record.and_then(|r| r.applied_mark).map(|h| h.0), Some(8));
    // and the record reads back from its JSON (stores keep records as JSON bodies)
    let text = serde_json::to_string(&open).expect("serializes");
    let back: DriftRecord = serde_json::from_str(&text).expect("reads back");
    assert_eq!(back, open);
    let without: DriftRecord =
        serde_json::from_str(&text.replace(",\"applied_mark\":\"0000000000000007\"", ""))
            .expect("a record written before the mark existed still reads");
    assert_eq!(without.applied_mark, None);
}
