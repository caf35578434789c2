//! A store of your own: the whole history in one JSON file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::ack::Acknowledgement;
use driftguard_core::audit::AuditSnapshot;
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, EventQuery, Page};
use driftguard_core::state::{episode_replaces, Drift, DriftEvent, DriftRecord, EpisodeStamp};
use serde_json::{json, Value};

/// Everything the store holds.
#[derive(Default)]
struct Data {
    records: BTreeMap<ResourceId, DriftRecord>,
    events: BTreeMap<String, DriftEvent>,
    episodes: BTreeMap<String, Drift>,
    scans: BTreeMap<String, ScanSummary>,
    delivered: BTreeMap<String, DateTime<Utc>>,
    /// The highest leadership epoch written per environment (fencing).
    epochs: BTreeMap<String, u64>,
    audit: BTreeMap<String, AuditSnapshot>,
    /// Acknowledgements by environment and episode.
    acks: BTreeMap<(String, String), Acknowledgement>,
    /// People's actions by id.
    actions: BTreeMap<String, driftguard_core::actions::PersonAction>,
}

/// A [`DriftStore`] kept in memory and written whole to one JSON file after every change
/// (fine for a few thousand events; use SQLite or MongoDB beyond). It keeps the meanings every
/// store shares by calling the core: the query filters ([`DriftQuery::apply`],
/// [`EventQuery::apply`]), which version of an episode wins ([`episode_replaces`]) and which
/// leadership epochs may write ([`driftguard_core::fence::check`]). The
/// store conformance suite runs against it in `tests/custom_store.rs`.
pub struct JsonFileStore {
    path: PathBuf,
    data: Mutex<Data>,
}

fn backend(context: &str, e: impl Into<driftguard_core::ports::BoxError>) -> StoreError {
    StoreError::Backend {
        context: context.into(),
        source: e.into(),
    }
}

impl JsonFileStore {
    /// Opens `path`, reading what it holds (a missing file is an empty store).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let mut data = Data::default();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let v: Value = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                    what: format!("{}: {e}", path.display()),
                })?;
                let list = |k: &str| v.get(k).cloned().unwrap_or(Value::Array(Vec::new()));
                let corrupt = |e: serde_json::Error| StoreError::Corrupt {
                    what: format!("{}: {e}", path.display()),
                };
                for r in
                    serde_json::from_value::<Vec<DriftRecord>>(list("records")).map_err(corrupt)?
                {
                    data.records.insert(r.id.clone(), r);
                }
                for e in
                    serde_json::from_value::<Vec<DriftEvent>>(list("events")).map_err(corrupt)?
                {
                    data.events.insert(e.event_id.clone(), e);
                }
                for d in serde_json::from_value::<Vec<Drift>>(list("episodes")).map_err(corrupt)? {
                    data.episodes.insert(d.episode.clone(), d);
                }
                for s in
                    serde_json::from_value::<Vec<ScanSummary>>(list("scans")).map_err(corrupt)?
                {
                    data.scans.insert(s.scan_id.clone(), s);
                }
                data.delivered =
                    serde_json::from_value(v.get("delivered").cloned().unwrap_or(json!({})))
                        .map_err(corrupt)?;
                data.epochs = serde_json::from_value(v.get("epochs").cloned().unwrap_or(json!({})))
                    .map_err(corrupt)?;
                data.audit = serde_json::from_value(v.get("audit").cloned().unwrap_or(json!({})))
                    .map_err(corrupt)?;
                for a in serde_json::from_value::<Vec<driftguard_core::actions::PersonAction>>(
                    list("actions"),
                )
                .map_err(corrupt)?
                {
                    data.actions.insert(a.id.clone(), a);
                }
                for a in
                    serde_json::from_value::<Vec<Acknowledgement>>(list("acks")).map_err(corrupt)?
                {
                    data.acks
                        .insert((a.environment().to_owned(), a.episode.clone()), a);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(backend("cannot read the store file", e)),
        }
        Ok(JsonFileStore {
            path,
            data: Mutex::new(data),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Data>, StoreError> {
        self.data
            .lock()
            .map_err(|_| backend("the store's lock is poisoned", "poisoned"))
    }

    /// Writes everything to the file (to a temporary file first, then renamed: a crash leaves
    /// the old file or the new one).
    fn save(&self, data: &Data) -> Result<(), StoreError> {
        let v = json!({
            "records": data.records.values().collect::<Vec<_>>(),
            "events": data.events.values().collect::<Vec<_>>(),
            "episodes": data.episodes.values().collect::<Vec<_>>(),
            "scans": data.scans.values().collect::<Vec<_>>(),
            "delivered": data.delivered,
            "epochs": data.epochs,
            "audit": data.audit,
            "acks": data.acks.values().collect::<Vec<_>>(),
            "actions": data.actions.values().collect::<Vec<_>>(),
        });
        let text = serde_json::to_vec(&v).map_err(|e| backend("cannot encode the store", e))?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| StoreError::Unavailable { source: e.into() })
    }
}

#[async_trait]
impl DriftStore for JsonFileStore {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        Ok(self
            .lock()?
            .records
            .values()
            .filter(|r| r.id.environment == environment)
            .cloned()
            .collect())
    }

    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        let mut data = self.lock()?;
        // a batch of an older leadership term is refused before anything changes
        let stored = data.epochs.get(&batch.environment).copied();
        if let Some(epoch) = driftguard_core::fence::check(&batch.environment, stored, batch.epoch)?
        {
            data.epochs.insert(batch.environment.clone(), epoch);
        }
        for r in &batch.upserts {
            data.records.insert(r.id.clone(), r.clone());
        }
        for id in &batch.deletes {
            data.records.remove(id);
        }
        for e in &batch.events {
            // event ids are deterministic: a retried batch adds nothing
            if data.events.contains_key(&e.event_id) {
                continue;
            }
            data.events.insert(e.event_id.clone(), e.clone());
            let stored = data.episodes.get(&e.drift.episode).map(|d| EpisodeStamp {
                updated_at: d.updated_at,
                open: d.is_open(),
            });
            if episode_replaces(stored, &e.drift) {
                data.episodes
                    .insert(e.drift.episode.clone(), e.drift.clone());
            }
        }
        if let Some(s) = &batch.summary {
            data.scans.insert(s.scan_id.clone(), s.clone());
        }
        self.save(&data)
    }

    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        Ok(query.apply(self.lock()?.episodes.values().cloned()))
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        Ok(query.apply(self.lock()?.events.values().cloned()))
    }

    async fn scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        let mut v: Vec<ScanSummary> = self
            .lock()?
            .scans
            .values()
            .filter(|s| environment.is_none_or(|e| s.environment == e))
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then(b.scan_id.cmp(&a.scan_id))
        });
        v.truncate(limit);
        Ok(v)
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        let mut data = self.lock()?;
        let (e, s, d) = (data.events.len(), data.scans.len(), data.episodes.len());
        data.events.retain(|_, e| e.at >= before);
        data.scans.retain(|_, s| s.started_at >= before);
        data.episodes
            .retain(|_, d| d.resolved_at.is_none_or(|t| t >= before));
        // which acknowledgements go is the core's rule
        data.acks
            .retain(|_, a| !driftguard_core::ack::pruned(a, before));
        data.actions.retain(|_, a| a.at >= before);
        let stats = PruneStats {
            events: (e - data.events.len()) as u64,
            scans: (s - data.scans.len()) as u64,
            episodes: (d - data.episodes.len()) as u64,
        };
        self.save(&data)?;
        Ok(stats)
    }

    async fn epoch(&self, environment: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.lock()?.epochs.get(environment).copied())
    }

    async fn delivered_until(&self, notifier: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.lock()?.delivered.get(notifier).copied())
    }

    async fn set_delivered_until(
        &self,
        notifier: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut data = self.lock()?;
        let mark = data.delivered.entry(notifier.to_owned()).or_insert(until);
        *mark = (*mark).max(until);
        self.save(&data)
    }

    async fn audit_index(&self, environment: &str) -> Result<AuditSnapshot, StoreError> {
        Ok(self
            .lock()?
            .audit
            .get(environment)
            .cloned()
            .unwrap_or_default())
    }

    async fn save_audit_index(
        &self,
        environment: &str,
        changes: &AuditSnapshot,
    ) -> Result<(), StoreError> {
        let mut data = self.lock()?;
        // what a save means is the core's: `AuditSnapshot::apply`
        data.audit
            .entry(environment.to_owned())
            .or_default()
            .apply(changes);
        self.save(&data)
    }

    async fn acknowledgements(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<Acknowledgement>, StoreError> {
        Ok(self
            .lock()?
            .acks
            .values()
            .filter(|a| environment.is_none_or(|e| a.environment() == e))
            .cloned()
            .collect())
    }

    async fn save_acknowledgements(&self, acks: &[Acknowledgement]) -> Result<(), StoreError> {
        let mut data = self.lock()?;
        for a in acks {
            data.acks
                .insert((a.environment().to_owned(), a.episode.clone()), a.clone());
        }
        self.save(&data)
    }

    async fn actions(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<driftguard_core::actions::PersonAction>, StoreError> {
        let all: Vec<_> = self.lock()?.actions.values().cloned().collect();
        // the order and filter every store gives are the core's
        Ok(driftguard_core::actions::newest(all, environment, limit))
    }

    async fn record_actions(
        &self,
        actions: &[driftguard_core::actions::PersonAction],
    ) -> Result<(), StoreError> {
        let mut data = self.lock()?;
        for a in actions {
            data.actions
                .entry(a.id.clone())
                .or_insert_with(|| a.clone());
        }
        self.save(&data)
    }
}
