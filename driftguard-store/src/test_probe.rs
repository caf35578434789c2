//! A store for the wrappers' unit tests: every method answers something the trait's provided
//! default would not, and logs its name, so a test can tell that a wrapper forwarded a call
//! to the same method of the store it wraps.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::audit::{
    AuditCursor, AuditObject, AuditSnapshot, AuditUser, AuditWrite, ObjectWrites, UserClass,
};
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, EventQuery, OpenTally, Page};
use driftguard_core::severity::Severity;
use driftguard_core::state::{Direction, Drift, DriftEvent, DriftKind, DriftRecord, EventKind};
use driftguard_test_support::build;

/// The probe.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    calls: Mutex<Vec<&'static str>>,
}

impl Probe {
    fn log(&self, name: &'static str) {
        self.calls.lock().expect("lock").push(name);
    }

    /// The methods called since the last call of `take_calls`.
    pub(crate) fn take_calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().expect("lock"))
    }
}

pub(crate) fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("valid time")
}

pub(crate) fn id() -> ResourceId {
    ResourceId::new("prod", "", "ConfigMap", Some("ns"), "probe")
}

pub(crate) fn drift() -> Drift {
    build::drift()
        .episode("probe-episode")
        .id(id())
        .kind(DriftKind::Orphan)
        .direction(Direction::Unknown)
        .severity(Severity::Low)
        .at(at())
        .build()
}

pub(crate) fn record() -> DriftRecord {
    build::record(&id(), Some(drift()), at())
}

pub(crate) fn event() -> DriftEvent {
    DriftEvent {
        event_id: "probe-event".into(),
        ..build::event(EventKind::Detected, &drift(), at(), "probe-scan")
    }
}

pub(crate) fn scan() -> ScanSummary {
    ScanSummary {
        scan_id: "probe-scan".into(),
        environment: "prod".into(),
        started_at: at(),
        duration_ms: 1,
        revision: None,
        counts: Default::default(),
        score: 0.0,
        errors: Vec::new(),
        events: 0,
    }
}

pub(crate) fn tally() -> OpenTally {
    OpenTally::of("prod", &[drift()])
}

/// An audit index with one object and one cursor.
pub(crate) fn audit() -> AuditSnapshot {
    AuditSnapshot {
        objects: vec![ObjectWrites {
            object: AuditObject::of(&id()),
            writes: vec![AuditWrite {
                audit_id: "probe-audit".into(),
                at: at(),
                verb: "patch".into(),
                subresource: String::new(),
                user: AuditUser {
                    name: Some("probe".into()),
                    class: UserClass::Person,
                    groups: Vec::new(),
                    acting_as: None,
                },
                manager: "kubectl-patch".into(),
                user_agent: String::new(),
                source_ip: None,
            }],
        }],
        cursors: vec![AuditCursor {
            source: "/probe.log".into(),
            device: 1,
            inode: 2,
            offset: 3,
            head: 4,
        }],
    }
}

pub(crate) const PRUNED: PruneStats = PruneStats {
    events: 7,
    scans: 8,
    episodes: 9,
};

#[async_trait]
impl DriftStore for Probe {
    /// None: so the default `record` would find nothing.
    async fn records(&self, _: &str) -> Result<Vec<DriftRecord>, StoreError> {
        self.log("records");
        Ok(Vec::new())
    }

    async fn commit(&self, _: &ScanBatch) -> Result<(), StoreError> {
        self.log("commit");
        Ok(())
    }

    /// Empty: so the default `drift` would find nothing.
    async fn drifts(&self, _: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        self.log("drifts");
        Ok(Page {
            items: Vec::new(),
            total: 0,
            next_offset: None,
        })
    }

    /// Empty: so the default `history` would find nothing.
    async fn events(&self, _: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        self.log("events");
        Ok(Page {
            items: Vec::new(),
            total: 0,
            next_offset: None,
        })
    }

    /// Answers: so the default `health` would pass.
    async fn scans(&self, _: Option<&str>, _: usize) -> Result<Vec<ScanSummary>, StoreError> {
        self.log("scans");
        Ok(Vec::new())
    }

    /// Not empty: so the default (over `scans`, empty) would not answer it.
    async fn scans_at(
        &self,
        _: &[String],
        _: &[DateTime<Utc>],
    ) -> Result<Vec<ScanSummary>, StoreError> {
        self.log("scans_at");
        Ok(vec![scan()])
    }

    /// Not empty: so the default (over `drifts`, empty) would not answer it.
    async fn open_tallies(&self, _: &[String]) -> Result<Vec<OpenTally>, StoreError> {
        self.log("open_tallies");
        Ok(vec![tally()])
    }

    async fn prune(&self, _: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        self.log("prune");
        Ok(PRUNED)
    }

    async fn record(&self, _: &ResourceId) -> Result<Option<DriftRecord>, StoreError> {
        self.log("record");
        Ok(Some(record()))
    }

    async fn drift(&self, _: &str) -> Result<Option<Drift>, StoreError> {
        self.log("drift");
        Ok(Some(drift()))
    }

    async fn history(&self, _: &ResourceId, _: usize) -> Result<Vec<DriftEvent>, StoreError> {
        self.log("history");
        Ok(vec![event()])
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.log("health");
        Err(StoreError::Conflict {
            what: "probe health".into(),
        })
    }

    async fn delivered_until(&self, _: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.log("delivered_until");
        Ok(Some(at()))
    }

    async fn set_delivered_until(&self, _: &str, _: DateTime<Utc>) -> Result<(), StoreError> {
        self.log("set_delivered_until");
        Ok(())
    }

    async fn epoch(&self, _: &str) -> Result<Option<u64>, StoreError> {
        self.log("epoch");
        Ok(Some(7))
    }

    /// Not empty: so the default would not answer it.
    async fn audit_index(&self, _: &str) -> Result<AuditSnapshot, StoreError> {
        self.log("audit_index");
        Ok(audit())
    }

    async fn save_audit_index(&self, _: &str, _: &AuditSnapshot) -> Result<(), StoreError> {
        self.log("save_audit_index");
        Ok(())
    }

    /// Not empty: so the default would not answer it.
    async fn actions(
        &self,
        _: Option<&str>,
        _: usize,
    ) -> Result<Vec<driftguard_core::actions::PersonAction>, StoreError> {
        self.log("actions");
        Ok(vec![action()])
    }

    async fn record_actions(
        &self,
        _: &[driftguard_core::actions::PersonAction],
    ) -> Result<(), StoreError> {
        self.log("record_actions");
        Ok(())
    }

    /// Not empty: so the default would not answer it.
    async fn acknowledgements(
        &self,
        _: Option<&str>,
    ) -> Result<Vec<driftguard_core::ack::Acknowledgement>, StoreError> {
        self.log("acknowledgements");
        Ok(vec![ack()])
    }

    async fn save_acknowledgements(
        &self,
        _: &[driftguard_core::ack::Acknowledgement],
    ) -> Result<(), StoreError> {
        self.log("save_acknowledgements");
        Ok(())
    }
}

/// The probe's action.
pub(crate) fn action() -> driftguard_core::actions::PersonAction {
    driftguard_core::actions::PersonAction::new(
        driftguard_core::actions::ActionKind::Scan,
        "token:probe",
        at(),
        Some("prod".into()),
        Vec::new(),
        "",
    )
}

/// The probe's acknowledgement of [`drift`].
pub(crate) fn ack() -> driftguard_core::ack::Acknowledgement {
    let req = driftguard_core::ack::AckRequest {
        by: "token:probe".into(),
        reason: "probe".into(),
        until: None,
    };
    driftguard_core::ack::acknowledge(&drift(), &req, at())
        .expect("the probe's drift is open")
        .0
}

/// Calls every method of `store` (a wrapper over `probe`) and checks that each went to the
/// same method of the probe and brought back its answer.
pub(crate) async fn check_forwards_everything(store: &dyn DriftStore, probe: &Probe) {
    probe.take_calls();
    let one = |name: &'static str| vec![name];
    assert_eq!(store.records("prod").await.expect("records"), vec![]);
    assert_eq!(probe.take_calls(), one("records"));
    assert_eq!(store.record(&id()).await.expect("record"), Some(record()));
    assert_eq!(probe.take_calls(), one("record"));
    assert_eq!(
        store
            .drifts(&DriftQuery::default())
            .await
            .expect("drifts")
            .total,
        0
    );
    assert_eq!(probe.take_calls(), one("drifts"));
    assert_eq!(
        store.drift("probe-episode").await.expect("drift"),
        Some(drift())
    );
    assert_eq!(probe.take_calls(), one("drift"));
    assert_eq!(
        store
            .events(&EventQuery::default())
            .await
            .expect("events")
            .total,
        0
    );
    assert_eq!(probe.take_calls(), one("events"));
    assert_eq!(
        store.history(&id(), 10).await.expect("history"),
        vec![event()]
    );
    assert_eq!(probe.take_calls(), one("history"));
    assert_eq!(store.scans(None, 5).await.expect("scans"), vec![]);
    assert_eq!(probe.take_calls(), one("scans"));
    assert_eq!(
        store
            .scans_at(&["prod".to_owned()], &[at()])
            .await
            .expect("scans_at"),
        vec![scan()]
    );
    assert_eq!(probe.take_calls(), one("scans_at"));
    assert_eq!(
        store
            .open_tallies(&["prod".to_owned()])
            .await
            .expect("open_tallies"),
        vec![tally()]
    );
    assert_eq!(probe.take_calls(), one("open_tallies"));
    assert_eq!(store.prune(at()).await.expect("prune"), PRUNED);
    assert_eq!(probe.take_calls(), one("prune"));
    let health = store.health().await.expect_err("the probe's health fails");
    assert!(health.to_string().contains("probe health"), "{health}");
    assert_eq!(probe.take_calls(), one("health"));
    assert_eq!(store.delivered_until("n").await.expect("mark"), Some(at()));
    assert_eq!(probe.take_calls(), one("delivered_until"));
    store.set_delivered_until("n", at()).await.expect("sets");
    assert_eq!(probe.take_calls(), one("set_delivered_until"));
    assert_eq!(store.epoch("prod").await.expect("epoch"), Some(7));
    assert_eq!(probe.take_calls(), one("epoch"));
    assert_eq!(store.audit_index("prod").await.expect("index"), audit());
    assert_eq!(probe.take_calls(), one("audit_index"));
    assert_eq!(
        store.acknowledgements(None).await.expect("acks"),
        vec![ack()]
    );
    assert_eq!(probe.take_calls(), one("acknowledgements"));
    store.save_acknowledgements(&[ack()]).await.expect("saves");
    assert_eq!(probe.take_calls(), one("save_acknowledgements"));
    assert_eq!(
        store.actions(None, 10).await.expect("actions"),
        vec![action()]
    );
    assert_eq!(probe.take_calls(), one("actions"));
    store.record_actions(&[action()]).await.expect("records");
    assert_eq!(probe.take_calls(), one("record_actions"));
}
