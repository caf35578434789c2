//! Writes: a scan batch (`commit`), delivery marks and pruning.
//!
//! Writes are idempotent, so a retried batch changes nothing and several servers may share one
//! database: records are replaced by `_id`; events are inserted by `_id` (duplicates ignored);
//! an event moves its episode only when it was not stored yet (by the core's episode rule,
//! [`episode_replaces`]), and episodes (then the open-drift views) are written before the
//! events, so a batch cut short by a crash is completed by its retry.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use driftguard_core::ack::Acknowledgement;
use driftguard_core::audit::AuditSnapshot;
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{PruneStats, ScanBatch, StoreError};
use driftguard_core::state::{episode_replaces, Drift, DriftEvent, DriftRecord, EpisodeStamp};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::ErrorKind;

use super::schema::{
    audit_id, episode_doc, event_doc, record_doc, scan_doc, to_json, ACKS, ACTIONS, AUDIT_CURSORS,
    AUDIT_WRITES, DELIVERIES, EPISODES, EVENTS, FENCES, RECORDS, SCANS,
};
use super::{is_duplicate, merr, MongoStore};
use crate::nanos;

impl MongoStore {
    /// Writes one batch: new events' episodes, the open-drift views, the events, the records,
    /// the summary (in that order).
    pub(super) async fn write_batch(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        // 1. which events are new
        let mut seen = HashSet::new();
        let fresh: Vec<&DriftEvent> = batch
            .events
            .iter()
            .filter(|e| seen.insert(e.event_id.as_str()))
            .collect();
        let mut stored: HashSet<String> = HashSet::new();
        if !fresh.is_empty() {
            let ids: Vec<&str> = fresh.iter().map(|e| e.event_id.as_str()).collect();
            let mut cur = self
                .coll(EVENTS)
                .find(doc! {"_id": {"$in": ids}})
                .projection(doc! {"_id": 1})
                .await
                .map_err(|e| merr("find events", e))?;
            while let Some(d) = cur.try_next().await.map_err(|e| merr("read events", e))? {
                if let Ok(id) = d.get_str("_id") {
                    stored.insert(id.to_owned());
                }
            }
        }
        let new_events: Vec<&DriftEvent> = fresh
            .into_iter()
            .filter(|e| !stored.contains(&e.event_id))
            .collect();
        // 2. episodes moved by the new events, written before the events themselves
        if !new_events.is_empty() {
            let touched: Vec<&str> = new_events
                .iter()
                .map(|e| e.drift.episode.as_str())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let mut episodes: BTreeMap<String, Drift> = BTreeMap::new();
            for d in self
                .find_all::<Drift>(EPISODES, doc! {"_id": {"$in": touched}}, doc! {}, 0, None)
                .await?
            {
                episodes.insert(d.episode.clone(), d);
            }
            let before = episodes.clone();
            for e in &new_events {
                let stored = episodes.get(&e.drift.episode).map(EpisodeStamp::of);
                if episode_replaces(stored, &e.drift) {
                    episodes.insert(e.drift.episode.clone(), e.drift.clone());
                }
            }
            let changed: Vec<Document> = episodes
                .values()
                .filter(|d| before.get(&d.episode) != Some(*d))
                .map(episode_doc)
                .collect::<Result<_, _>>()?;
            self.replace_all(EPISODES, changed).await?;
            // the open-drift views, from the final state of every touched episode
            let mut by_env: BTreeMap<&str, Vec<&Drift>> = BTreeMap::new();
            for d in episodes.values() {
                by_env.entry(d.id.environment.as_str()).or_default().push(d);
            }
            for (env, drifts) in by_env {
                self.update_view(env, &drifts).await?;
            }
            let docs: Vec<Document> = new_events
                .iter()
                .map(|e| event_doc(e))
                .collect::<Result<_, StoreError>>()?;
            match self.coll(EVENTS).insert_many(docs).ordered(false).await {
                Ok(_) => {}
                Err(e) => {
                    let only_duplicates = match e.kind.as_ref() {
                        ErrorKind::InsertMany(im) => {
                            im.write_concern_error.is_none()
                                && im
                                    .write_errors
                                    .as_ref()
                                    .is_some_and(|w| w.iter().all(|x| x.code == 11000))
                        }
                        _ => false,
                    };
                    if !only_duplicates {
                        return Err(merr("insert events", e));
                    }
                }
            }
        }
        // 3. records (the last upsert of an object wins)
        let mut last: BTreeMap<String, &DriftRecord> = BTreeMap::new();
        for r in &batch.upserts {
            last.insert(r.id.key(), r);
        }
        let docs: Vec<Document> = last
            .into_values()
            .map(record_doc)
            .collect::<Result<_, StoreError>>()?;
        self.replace_all(RECORDS, docs).await?;
        if !batch.deletes.is_empty() {
            let keys: Vec<String> = batch.deletes.iter().map(ResourceId::key).collect();
            self.coll(RECORDS)
                .delete_many(doc! {"_id": {"$in": keys}})
                .await
                .map_err(|e| merr("delete records", e))?;
        }
        // 4. the summary
        if let Some(s) = &batch.summary {
            self.replace_all(SCANS, vec![scan_doc(s)?]).await?;
        }
        Ok(())
    }

    /// Replaces (upserting) documents by `_id`, with one `update` command per 500 documents
    /// (one round trip each; a retry rewrites the same documents).
    pub(super) async fn replace_all(
        &self,
        coll: &str,
        docs: Vec<Document>,
    ) -> Result<(), StoreError> {
        for chunk in docs.chunks(500) {
            let updates: Vec<Document> = chunk
                .iter()
                .map(|d| {
                    let id = d.get("_id").cloned().unwrap_or(Bson::Null);
                    doc! {"q": {"_id": id}, "u": d.clone(), "upsert": true}
                })
                .collect();
            let reply = self
                .db
                .run_command(doc! {
                    "update": coll,
                    "updates": updates,
                    "ordered": false,
                    "writeConcern": {"j": true},
                })
                .await
                .map_err(|e| merr(&format!("write {coll}"), e))?;
            if let Ok(errors) = reply.get_array("writeErrors") {
                if !errors.is_empty() {
                    return Err(StoreError::Backend {
                        context: format!("mongodb: write {coll}"),
                        source: format!("{} write errors, first: {:?}", errors.len(), errors[0])
                            .into(),
                    });
                }
            }
            if let Ok(wce) = reply.get_document("writeConcernError") {
                return Err(StoreError::Unavailable {
                    source: format!("write concern error: {wce}").into(),
                });
            }
        }
        Ok(())
    }

    /// Removes events, scans and resolved episodes older than `before`.
    pub(super) async fn prune_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<PruneStats, StoreError> {
        let t = nanos(before);
        let events = self
            .coll(EVENTS)
            .delete_many(doc! {"at": {"$lt": t}})
            .await
            .map_err(|e| merr("prune events", e))?
            .deleted_count;
        let scans = self
            .coll(SCANS)
            .delete_many(doc! {"started_at": {"$lt": t}})
            .await
            .map_err(|e| merr("prune scans", e))?
            .deleted_count;
        let episodes = self
            .coll(EPISODES)
            .delete_many(doc! {"open": false, "resolved_at": {"$lt": t}})
            .await
            .map_err(|e| merr("prune episodes", e))?
            .deleted_count;
        self.coll(ACTIONS)
            .delete_many(doc! {"at": {"$lt": t}})
            .await
            .map_err(|e| merr("prune actions", e))?;
        // the rule of `ack::pruned`: acknowledgements whose lapse was recorded before `t`
        // (`$lt` a number never matches an absent field)
        self.coll(ACKS)
            .delete_many(doc! {"lapsed_at": {"$lt": t}})
            .await
            .map_err(|e| merr("prune acknowledgements", e))?;
        Ok(PruneStats {
            events,
            scans,
            episodes,
        })
    }

    /// Passes the fence of `environment` with `epoch` (see the module documentation of
    /// [`super`]): moves its highest epoch up to `epoch`, or refuses when it is higher
    /// ([`driftguard_core::fence::refused`]).
    pub(super) async fn write_fence(
        &self,
        environment: &str,
        epoch: u64,
    ) -> Result<(), StoreError> {
        let e = i64::try_from(epoch).map_err(|e| crate::backend("leadership epoch", e))?;
        // a document at or below `epoch` matches and moves up; a higher one does not match,
        // and the upsert then collides with it on `_id`
        let r = self
            .coll(FENCES)
            .update_one(
                doc! {"_id": environment, "epoch": {"$lte": e}},
                doc! {"$set": {"epoch": e}},
            )
            .upsert(true)
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(err) if is_duplicate(&err) => {
                let current = self
                    .coll(FENCES)
                    .find_one(doc! {"_id": environment})
                    .await
                    .ok()
                    .flatten()
                    .and_then(|d| d.get_i64("epoch").ok())
                    .map(|c| c.max(0) as u64);
                Err(driftguard_core::fence::refused(environment, epoch, current))
            }
            Err(err) => Err(merr("pass the leadership fence", err)),
        }
    }

    /// Moves the delivery mark of `notifier` forward to `until` (never back).
    pub(super) async fn write_delivered_until(
        &self,
        notifier: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let until = nanos(until);
        // moves only forward: a mark already at or past `until` does not match, and the upsert
        // then collides with it on `_id`
        let r = self
            .coll(DELIVERIES)
            .update_one(
                doc! {"_id": notifier, "until": {"$lt": until}},
                doc! {"$set": {"until": until}},
            )
            .upsert(true)
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => Ok(()),
            Err(e) => Err(merr("set delivery mark", e)),
        }
    }

    /// Records people's actions (one with an id already kept replaces it).
    pub(super) async fn write_actions(
        &self,
        actions: &[driftguard_core::actions::PersonAction],
    ) -> Result<(), StoreError> {
        let docs: Vec<Document> = actions
            .iter()
            .map(|a| {
                let env = a
                    .environment
                    .as_ref()
                    .map_or(Bson::Null, |e| Bson::String(e.clone()));
                Ok(doc! {"_id": &a.id, "env": env, "at": nanos(a.at), "body": to_json(a)?})
            })
            .collect::<Result<_, StoreError>>()?;
        self.replace_all(ACTIONS, docs).await
    }

    /// Saves acknowledgements, each replacing the one of its episode.
    pub(super) async fn write_acks(&self, acks: &[Acknowledgement]) -> Result<(), StoreError> {
        let docs: Vec<Document> = acks
            .iter()
            .map(|a| {
                let lapsed = a
                    .lapsed
                    .as_ref()
                    .map_or(Bson::Null, |l| Bson::Int64(nanos(l.at)));
                Ok(doc! {
                    "_id": audit_id(a.environment(), &a.episode),
                    "env": a.environment(),
                    "episode": &a.episode,
                    "lapsed_at": lapsed,
                    "body": to_json(a)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        self.replace_all(ACKS, docs).await
    }

    /// Saves changes to an environment's audit index: objects first (replaced, or deleted
    /// when they have no writes), cursors last, so that a save cut short never moves a cursor
    /// past writes it did not keep (its retry completes it).
    pub(super) async fn write_audit(
        &self,
        env: &str,
        changes: &AuditSnapshot,
    ) -> Result<(), StoreError> {
        let mut put = Vec::new();
        let mut gone = Vec::new();
        for o in &changes.objects {
            let id = audit_id(env, &o.object.key());
            if o.writes.is_empty() {
                gone.push(id);
            } else {
                put.push(doc! {"_id": id, "env": env, "body": to_json(o)?});
            }
        }
        self.replace_all(AUDIT_WRITES, put).await?;
        for chunk in gone.chunks(500) {
            self.coll(AUDIT_WRITES)
                .delete_many(doc! {"_id": {"$in": chunk.to_vec()}})
                .await
                .map_err(|e| merr("delete audit writes", e))?;
        }
        let cursors: Vec<Document> = changes
            .cursors
            .iter()
            .map(|c| Ok(doc! {"_id": audit_id(env, &c.source), "env": env, "body": to_json(c)?}))
            .collect::<Result<_, StoreError>>()?;
        self.replace_all(AUDIT_CURSORS, cursors).await
    }
}
