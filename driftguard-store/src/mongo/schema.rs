//! What is stored where: the collections, the documents written to them, their indexes and
//! the TTL indexes of retention.
//!
//! Every document holds the indexed fields at top level and the serde JSON form of the value
//! in `body`. Times are integer nanoseconds (the sort key, exact like the other stores) and,
//! where retention applies, also BSON dates (`at_date`, `started_date`, `resolved_date`) for
//! the TTL indexes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use driftguard_core::ports::{ScanSummary, StoreError};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};
use futures_util::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, DateTime as BsonDate, Document};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;

use super::{merr, MongoStore};
use crate::{corrupt, nanos, severity_rank};

/// Current records: `_id` = object key, unique identity per environment.
pub(super) const RECORDS: &str = "records";
/// The event log: `_id` = the deterministic event id.
pub(super) const EVENTS: &str = "events";
/// Drift episodes: `_id` = episode id.
pub(super) const EPISODES: &str = "episodes";
/// Scan summaries: `_id` = scan id.
pub(super) const SCANS: &str = "scans";
/// Delivery marks: `_id` = notifier name, `until` = nanoseconds.
pub(super) const DELIVERIES: &str = "deliveries";
/// The highest leadership epoch written per environment: `_id` = environment, `epoch`.
pub(super) const FENCES: &str = "fences";
/// The open-drift views (see [`super::view`]).
pub(super) const OPEN_DRIFTS: &str = "open_drifts";
/// The audit index: `_id` = environment and object key, `env`, `body` = the object's writes.
pub(super) const AUDIT_WRITES: &str = "audit_writes";
/// How far audit log files were read: `_id` = environment and file, `env`, `body` = cursor.
pub(super) const AUDIT_CURSORS: &str = "audit_cursors";

/// Acknowledged drift: `_id` = environment and episode, `env`, `episode`, `lapsed_at` =
/// nanoseconds when its lapse was recorded (absent while it may hold), `body`.
pub(super) const ACKS: &str = "acks";
/// People's actions: `_id` = the action's id, `env` (absent: none), `at` = nanoseconds,
/// `body`.
pub(super) const ACTIONS: &str = "actions";

/// The `_id` of an audit document: the environment, `|`, and a key (an environment's name has
/// no `|`).
pub(super) fn audit_id(env: &str, key: &str) -> String {
    format!("{env}|{key}")
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| crate::backend("serialize", e))
}

/// The value in a document's `body`.
pub(super) fn body_of<T: serde::de::DeserializeOwned>(
    what: &str,
    d: &Document,
) -> Result<T, StoreError> {
    let s = d
        .get_str("body")
        .map_err(|e| corrupt(format!("{what} {:?}", d.get("_id")), e))?;
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

fn date(t: DateTime<Utc>) -> BsonDate {
    BsonDate::from_millis(t.timestamp_millis())
}

fn opt_str(s: Option<&str>) -> Bson {
    s.map_or(Bson::Null, |s| Bson::String(s.to_owned()))
}

/// An `episodes` document.
pub(super) fn episode_doc(d: &Drift) -> Result<Document, StoreError> {
    let mut doc = doc! {
        "_id": &d.episode,
        "env": &d.id.environment,
        "group": &d.id.group,
        "kind": &d.id.kind,
        "namespace": opt_str(d.id.namespace.as_deref()),
        "name": &d.id.name,
        "drift_kind": d.kind.as_str(),
        "direction": d.direction.as_str(),
        "severity": severity_rank(d.severity),
        "open": d.is_open(),
        "detected_at": nanos(d.detected_at),
        "updated_at": nanos(d.updated_at),
        "resolved_at": d.resolved_at.map_or(Bson::Null, |t| Bson::Int64(nanos(t))),
        "body": to_json(d)?,
    };
    if let Some(t) = d.resolved_at {
        doc.insert("resolved_date", date(t));
    }
    Ok(doc)
}

/// An `events` document.
pub(super) fn event_doc(e: &DriftEvent) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": &e.event_id,
        "env": &e.drift.id.environment,
        "object_key": e.drift.id.key(),
        "kind": e.kind.as_str(),
        "at": nanos(e.at),
        "at_date": date(e.at),
        "scan_id": &e.scan_id,
        "body": to_json(e)?,
    })
}

/// A `records` document.
pub(super) fn record_doc(r: &DriftRecord) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": r.id.key(),
        "env": &r.id.environment,
        "group": &r.id.group,
        "kind": &r.id.kind,
        "namespace": opt_str(r.id.namespace.as_deref()),
        "name": &r.id.name,
        "body": to_json(r)?,
    })
}

/// A `scans` document.
pub(super) fn scan_doc(s: &ScanSummary) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": &s.scan_id,
        "env": &s.environment,
        "started_at": nanos(s.started_at),
        "started_date": date(s.started_at),
        "body": to_json(s)?,
    })
}

impl MongoStore {
    /// Creates the indexes of every collection and the TTL indexes of the configured
    /// retention (idempotent: existing indexes are left as they are).
    pub(super) async fn create_indexes(&self) -> Result<(), StoreError> {
        let idx = |keys: Document, name: &str| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().name(name.to_owned()).build())
                .build()
        };
        let records = vec![IndexModel::builder()
            .keys(doc! {"env": 1, "group": 1, "kind": 1, "namespace": 1, "name": 1})
            .options(
                IndexOptions::builder()
                    .name("identity".to_owned())
                    .unique(true)
                    .build(),
            )
            .build()];
        let events = vec![
            idx(doc! {"env": 1, "at": 1, "_id": 1}, "env_at"),
            idx(doc! {"object_key": 1, "at": 1, "_id": 1}, "object_at"),
            idx(doc! {"at": 1, "_id": 1}, "at"),
        ];
        let episodes = vec![
            idx(
                doc! {"env": 1, "open": 1, "severity": -1, "detected_at": 1, "_id": 1},
                "env_open_severity",
            ),
            idx(
                doc! {"open": 1, "severity": -1, "detected_at": 1, "_id": 1},
                "open_severity",
            ),
            idx(
                doc! {"env": 1, "open": 1, "detected_at": 1, "_id": 1},
                "env_detected",
            ),
            idx(
                doc! {"env": 1, "open": 1, "updated_at": -1, "_id": 1},
                "env_updated",
            ),
            idx(doc! {"open": 1, "resolved_at": 1}, "resolved"),
        ];
        let scans = vec![
            idx(doc! {"env": 1, "started_at": -1, "_id": -1}, "env_started"),
            idx(doc! {"started_at": -1, "_id": -1}, "started"),
        ];
        for (name, models) in [
            (RECORDS, records),
            (EVENTS, events),
            (EPISODES, episodes),
            (SCANS, scans),
            (AUDIT_WRITES, vec![idx(doc! {"env": 1}, "env")]),
            (AUDIT_CURSORS, vec![idx(doc! {"env": 1}, "env")]),
            (
                ACTIONS,
                vec![
                    idx(doc! {"at": -1, "_id": -1}, "at"),
                    idx(doc! {"env": 1, "at": -1, "_id": -1}, "env_at"),
                ],
            ),
            (
                ACKS,
                vec![
                    idx(doc! {"env": 1, "episode": 1}, "env_episode"),
                    idx(doc! {"lapsed_at": 1}, "lapsed"),
                ],
            ),
        ] {
            self.coll(name)
                .create_indexes(models)
                .await
                .map_err(|e| merr(&format!("create indexes on {name}"), e))?;
        }
        self.set_retention(self.options.retention).await
    }

    /// Creates (or replaces, or drops) the TTL indexes for `retention`.
    pub async fn set_retention(&self, retention: Option<Duration>) -> Result<(), StoreError> {
        for (coll, field) in [
            (EVENTS, "at_date"),
            (SCANS, "started_date"),
            (EPISODES, "resolved_date"),
        ] {
            let c = self.coll(coll);
            let name = format!("ttl_{field}");
            let existing: Vec<Document> = c
                .list_indexes()
                .await
                .map_err(|e| merr("list indexes", e))?
                .map(|r| {
                    r.map(|m| {
                        doc! {
                            "name": m.options.as_ref().and_then(|o| o.name.clone()).unwrap_or_default(),
                            "ttl": m.options.as_ref().and_then(|o| o.expire_after).map(|d| d.as_secs() as i64),
                        }
                    })
                })
                .try_collect()
                .await
                .map_err(|e| merr("list indexes", e))?;
            let current = existing
                .iter()
                .find(|d| d.get_str("name").ok() == Some(name.as_str()));
            let want = retention.map(|d| d.as_secs().max(1) as i64);
            let have = current.map(|d| d.get_i64("ttl").ok());
            if have == Some(want) {
                continue;
            }
            if current.is_some() {
                c.drop_index(name.clone())
                    .await
                    .map_err(|e| merr("drop TTL index", e))?;
            }
            if let Some(secs) = want {
                let model = IndexModel::builder()
                    .keys(doc! { field: 1 })
                    .options(
                        IndexOptions::builder()
                            .name(name.clone())
                            .expire_after(Duration::from_secs(secs as u64))
                            .build(),
                    )
                    .build();
                c.create_index(model)
                    .await
                    .map_err(|e| merr("create TTL index", e))?;
            }
        }
        Ok(())
    }
}
