//! Reads: records, drift episodes, events, scans, delivery marks and the audit index, with the query filters
//! of [`DriftQuery`] and [`EventQuery`] turned into MongoDB filters and sorts (the meaning of
//! each filter is `driftguard_core::query`'s).

use chrono::{DateTime, Utc};
use driftguard_core::ack::Acknowledgement;
use driftguard_core::audit::{AuditCursor, AuditSnapshot, ObjectWrites};
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, DriftSort, DriftStatus, EventQuery, OpenTally, Page};
use driftguard_core::state::{Direction, Drift, DriftEvent, DriftRecord};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};

use super::schema::{
    body_of, ACKS, ACTIONS, AUDIT_CURSORS, AUDIT_WRITES, DELIVERIES, EPISODES, EVENTS, RECORDS,
    SCANS,
};
use super::{merr, MongoStore};
use crate::{corrupt, nanos, severity_of_rank, severity_rank};

pub(super) fn i64_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A DriftGuard name glob (`*` = any run) as an anchored regular expression.
fn glob_regex(pattern: &str) -> String {
    let mut out = String::from("^");
    push_escaped(&mut out, pattern);
    out.push('$');
    out
}

/// Whether the database may match `pattern` itself: a regular expression of a glob with many
/// `*` backtracks (`^.*a.*a.*a.*a.*b$` takes time to the power of the stars in a backtracking
/// engine), so such a glob is matched by [`driftguard_core::path::glob_match`], in linear
/// time, on the drifts whose name starts with its literal prefix.
fn regex_safe(pattern: &str) -> bool {
    pattern.matches('*').count() <= 1
}

/// The anchored regular expression of the literal prefix of `pattern` (before its first `*`).
fn prefix_regex(pattern: &str) -> String {
    let mut out = String::from("^");
    push_escaped(&mut out, pattern.split('*').next().unwrap_or(""));
    out
}

fn push_escaped(out: &mut String, pattern: &str) {
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(".*"),
            c if "\\.^$|?+()[]{}/".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

fn drift_filter(q: &DriftQuery) -> Document {
    let mut f = Document::new();
    if let Some(e) = &q.environment {
        f.insert("env", e);
    }
    match q.status {
        DriftStatus::Open => {
            f.insert("open", true);
        }
        DriftStatus::Resolved => {
            f.insert("open", false);
        }
        DriftStatus::All => {}
    }
    if let Some(g) = &q.group {
        f.insert("group", g);
    }
    if let Some(k) = &q.kind {
        f.insert("kind", k);
    }
    if let Some(n) = &q.namespace {
        f.insert("namespace", n);
    }
    match &q.name {
        Some(n) if regex_safe(n) => {
            f.insert("name", doc! {"$regex": glob_regex(n)});
        }
        Some(n) => {
            f.insert("name", doc! {"$regex": prefix_regex(n)});
        }
        None => {}
    }
    if let Some(k) = q.drift {
        f.insert("drift_kind", k.as_str());
    }
    if let Some(d) = q.direction {
        f.insert("direction", d.as_str());
    }
    if let Some(s) = q.min_severity {
        // `$in` rather than `$gte`: exact matches only (SecantusDB 0.7 drops 0 from `$gte: 0`)
        let ranks: Vec<i64> = (severity_rank(s)..=3).collect();
        f.insert("severity", doc! {"$in": ranks});
    }
    if let Some(t) = q.detected_before {
        f.insert("detected_at", doc! {"$lt": nanos(t)});
    }
    f
}

fn drift_sort(s: DriftSort) -> Document {
    match s {
        DriftSort::Severity => doc! {"severity": -1, "detected_at": 1, "_id": 1},
        DriftSort::Detected => doc! {"detected_at": 1, "_id": 1},
        DriftSort::Updated => doc! {"updated_at": -1, "_id": 1},
        DriftSort::Object => {
            doc! {"env": 1, "group": 1, "kind": 1, "namespace": 1, "name": 1, "_id": 1}
        }
    }
}

fn event_filter(q: &EventQuery) -> Document {
    let mut f = Document::new();
    if let Some(e) = &q.environment {
        f.insert("env", e);
    }
    if let Some(o) = &q.object {
        f.insert("object_key", o.key());
    }
    if let Some(k) = q.kind {
        f.insert("kind", k.as_str());
    }
    let mut at = Document::new();
    if let Some(s) = q.since {
        at.insert("$gte", nanos(s));
    }
    if let Some(u) = q.until {
        at.insert("$lt", nanos(u));
    }
    if !at.is_empty() {
        f.insert("at", at);
    }
    f
}

impl MongoStore {
    /// The bodies of the documents of `coll` matching `filter`, in `sort` order.
    pub(super) async fn find_all<T: serde::de::DeserializeOwned>(
        &self,
        coll: &str,
        filter: Document,
        sort: Document,
        skip: usize,
        limit: Option<usize>,
    ) -> Result<Vec<T>, StoreError> {
        let c = self.coll(coll);
        let mut find = c.find(filter).sort(sort).projection(doc! {"body": 1});
        if skip > 0 {
            find = find.skip(skip as u64);
        }
        if let Some(l) = limit {
            find = find.limit(i64_of(l));
        }
        let docs: Vec<Document> = find
            .await
            .map_err(|e| merr(&format!("find in {coll}"), e))?
            .try_collect()
            .await
            .map_err(|e| merr(&format!("read {coll}"), e))?;
        docs.iter().map(|d| body_of(coll, d)).collect()
    }

    /// One document by `_id`: a single `find` command answered in its first batch (no cursor
    /// left open, no `killCursors` round trip).
    pub(super) async fn by_id(
        &self,
        coll: &str,
        id: String,
    ) -> Result<Option<Document>, StoreError> {
        let reply = self
            .db
            .run_command(doc! {
                "find": coll,
                "filter": {"_id": id},
                "limit": 1_i64,
                "singleBatch": true,
            })
            .await
            .map_err(|e| merr(&format!("read {coll}"), e))?;
        let batch = reply
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .map_err(|e| corrupt(format!("find reply of {coll}"), e))?;
        Ok(batch.first().and_then(Bson::as_document).cloned())
    }

    /// One page of the bodies of `coll` matching `filter`, with the total count.
    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        coll: &str,
        filter: Document,
        sort: Document,
        offset: usize,
        limit: usize,
    ) -> Result<Page<T>, StoreError> {
        let total = self
            .coll(coll)
            .count_documents(filter.clone())
            .await
            .map_err(|e| merr(&format!("count {coll}"), e))? as usize;
        let items = if limit == 0 || offset >= total {
            Vec::new()
        } else {
            self.find_all(coll, filter, sort, offset, Some(limit))
                .await?
        };
        let end = offset + items.len();
        Ok(Page {
            next_offset: (end < total).then_some(end),
            items,
            total,
        })
    }

    pub(super) async fn read_records(&self, env: &str) -> Result<Vec<DriftRecord>, StoreError> {
        self.find_all(RECORDS, doc! {"env": env}, doc! {"_id": 1}, 0, None)
            .await
    }

    pub(super) async fn read_record(
        &self,
        id: &ResourceId,
    ) -> Result<Option<DriftRecord>, StoreError> {
        let d = self
            .coll(RECORDS)
            .find_one(doc! {"_id": id.key()})
            .await
            .map_err(|e| merr("find record", e))?;
        d.map(|d| body_of("record", &d)).transpose()
    }

    pub(super) async fn read_drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        if let (DriftStatus::Open, Some(env)) = (query.status, &query.environment) {
            return Ok(query.apply(self.open_drifts(env).await?));
        }
        if query.name.as_deref().is_some_and(|n| !regex_safe(n)) {
            // the database narrows by the literal prefix; the glob is matched here
            let all = self
                .find_all(
                    EPISODES,
                    drift_filter(query),
                    drift_sort(query.sort),
                    0,
                    None,
                )
                .await?;
            return Ok(query.apply(all));
        }
        self.page(
            EPISODES,
            drift_filter(query),
            drift_sort(query.sort),
            query.offset,
            query.limit,
        )
        .await
    }

    pub(super) async fn read_drift(&self, episode: &str) -> Result<Option<Drift>, StoreError> {
        self.by_id(EPISODES, episode.to_owned())
            .await?
            .map(|d| body_of("episode", &d))
            .transpose()
    }

    pub(super) async fn read_events(&self, q: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        self.page(
            EVENTS,
            event_filter(q),
            doc! {"at": 1, "_id": 1},
            q.offset,
            q.limit,
        )
        .await
    }

    pub(super) async fn read_scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let f = environment.map_or_else(Document::new, |e| doc! {"env": e});
        self.find_all(SCANS, f, doc! {"started_at": -1, "_id": -1}, 0, Some(limit))
            .await
    }

    /// The scans that tell each environment's state at each of `times`, each once, newest
    /// first: one aggregation, a branch per time (`$unionWith`), each the latest scan of each
    /// environment at or before that time (`$sort` on the `env_started` index, `$group` by
    /// environment with `$first`), then each scan once.
    pub(super) async fn read_scans_at(
        &self,
        environments: &[String],
        times: &[DateTime<Utc>],
    ) -> Result<Vec<ScanSummary>, StoreError> {
        if environments.is_empty() || times.is_empty() {
            return Ok(Vec::new());
        }
        let latest_at = |t: DateTime<Utc>| {
            vec![
                doc! {"$match": {"env": {"$in": environments}, "started_at": {"$lte": nanos(t)}}},
                doc! {"$sort": {"env": 1, "started_at": -1, "_id": -1}},
                doc! {"$group": {"_id": "$env", "scan": {"$first": "$_id"}, "body": {"$first": "$body"}}},
            ]
        };
        let mut pipeline = latest_at(times[0]);
        for t in &times[1..] {
            pipeline.push(doc! {"$unionWith": {"coll": SCANS, "pipeline": latest_at(*t)}});
        }
        pipeline.push(doc! {"$group": {"_id": "$scan", "body": {"$first": "$body"}}});
        let docs: Vec<Document> = self
            .coll(SCANS)
            .aggregate(pipeline)
            .await
            .map_err(|e| merr("aggregate scans", e))?
            .try_collect()
            .await
            .map_err(|e| merr("read scans", e))?;
        let mut out = docs
            .iter()
            .map(|d| body_of(SCANS, d))
            .collect::<Result<Vec<ScanSummary>, StoreError>>()?;
        out.sort_by(driftguard_core::query::newest_scan_first);
        Ok(out)
    }

    /// The open drifts of each environment counted (by severity and direction) and the
    /// oldest: two aggregations over the indexed fields, no drift's body is read.
    pub(super) async fn read_open_tallies(
        &self,
        environments: &[String],
    ) -> Result<Vec<OpenTally>, StoreError> {
        let mut envs: Vec<&String> = environments.iter().collect();
        envs.sort_unstable();
        envs.dedup();
        let mut out: Vec<OpenTally> = envs
            .iter()
            .map(|e| OpenTally {
                environment: (*e).clone(),
                ..OpenTally::default()
            })
            .collect();
        if out.is_empty() {
            return Ok(out);
        }
        let at = |env: &str| envs.binary_search_by(|e| e.as_str().cmp(env)).ok();
        let open = doc! {"$match": {"env": {"$in": environments}, "open": true}};
        let run = |pipeline: Vec<Document>| async move {
            let docs: Vec<Document> = self
                .coll(EPISODES)
                .aggregate(pipeline)
                .await
                .map_err(|e| merr("aggregate episodes", e))?
                .try_collect()
                .await
                .map_err(|e| merr("read episodes", e))?;
            Ok::<_, StoreError>(docs)
        };
        let counted = run(vec![
            open.clone(),
            doc! {"$group": {
                "_id": {"env": "$env", "severity": "$severity", "direction": "$direction"},
                "n": {"$sum": 1},
            }},
        ])
        .await?;
        for d in &counted {
            let key = d
                .get_document("_id")
                .map_err(|e| corrupt("open drift count", e))?;
            let env = key
                .get_str("env")
                .map_err(|e| corrupt("open drift count", e))?;
            let rank = match key.get("severity") {
                Some(Bson::Int64(n)) => *n,
                Some(Bson::Int32(n)) => i64::from(*n),
                other => return Err(corrupt("open drift count", format!("severity {other:?}"))),
            };
            let severity = severity_of_rank(rank)
                .ok_or_else(|| corrupt("open drift count", format!("severity rank {rank}")))?;
            let direction: Direction = key
                .get_str("direction")
                .map_err(|e| corrupt("open drift count", e))?
                .parse()
                .map_err(|e| corrupt("open drift count", e))?;
            let n = match d.get("n") {
                Some(Bson::Int64(n)) => *n,
                Some(Bson::Int32(n)) => i64::from(*n),
                other => return Err(corrupt("open drift count", format!("count {other:?}"))),
            };
            if let Some(i) = at(env) {
                *out[i].counts.entry((severity, direction)).or_default() += n.max(0) as usize;
            }
        }
        let oldest = run(vec![
            open,
            doc! {"$sort": {"env": 1, "detected_at": 1, "_id": 1}},
            doc! {"$group": {"_id": "$env", "at": {"$first": "$detected_at"}, "episode": {"$first": "$_id"}}},
        ])
        .await?;
        for d in &oldest {
            let env = d
                .get_str("_id")
                .map_err(|e| corrupt("oldest open drift", e))?;
            let when = d
                .get_i64("at")
                .map_err(|e| corrupt("oldest open drift", e))?;
            let episode = d
                .get_str("episode")
                .map_err(|e| corrupt("oldest open drift", e))?;
            if let Some(i) = at(env) {
                out[i].oldest = Some((DateTime::from_timestamp_nanos(when), episode.to_owned()));
            }
        }
        Ok(out)
    }

    pub(super) async fn read_fence(&self, environment: &str) -> Result<Option<u64>, StoreError> {
        let d = self
            .coll(super::schema::FENCES)
            .find_one(doc! {"_id": environment})
            .await
            .map_err(|e| merr("read the leadership fence", e))?;
        Ok(d.and_then(|d| d.get_i64("epoch").ok())
            .map(|e| e.max(0) as u64))
    }

    pub(super) async fn read_delivered_until(
        &self,
        notifier: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let d = self
            .coll(DELIVERIES)
            .find_one(doc! {"_id": notifier})
            .await
            .map_err(|e| merr("find delivery mark", e))?;
        Ok(d.and_then(|d| d.get_i64("until").ok())
            .map(DateTime::from_timestamp_nanos))
    }

    pub(super) async fn read_acks(
        &self,
        env: Option<&str>,
    ) -> Result<Vec<Acknowledgement>, StoreError> {
        let filter = match env {
            Some(e) => doc! {"env": e},
            None => doc! {},
        };
        self.find_all(ACKS, filter, doc! {"env": 1, "episode": 1}, 0, None)
            .await
    }

    pub(super) async fn read_actions(
        &self,
        env: Option<&str>,
        limit: usize,
    ) -> Result<Vec<driftguard_core::actions::PersonAction>, StoreError> {
        let filter = match env {
            Some(e) => doc! {"env": e},
            None => doc! {},
        };
        self.find_all(ACTIONS, filter, doc! {"at": -1, "_id": -1}, 0, Some(limit))
            .await
    }

    pub(super) async fn read_audit(&self, env: &str) -> Result<AuditSnapshot, StoreError> {
        let mut snap = AuditSnapshot {
            objects: self
                .find_all::<ObjectWrites>(AUDIT_WRITES, doc! {"env": env}, doc! {"_id": 1}, 0, None)
                .await?,
            cursors: self
                .find_all::<AuditCursor>(AUDIT_CURSORS, doc! {"env": env}, doc! {"_id": 1}, 0, None)
                .await?,
        };
        snap.objects.sort_by(|a, b| a.object.cmp(&b.object));
        snap.cursors.sort_by(|a, b| a.source.cmp(&b.source));
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_star_globs_are_not_given_to_the_database() {
        assert!(regex_safe("web-*"));
        assert!(!regex_safe("*a*a*a*a*a*b"));
        assert_eq!(prefix_regex("we.b*a*b"), "^we\\.b");
        assert_eq!(prefix_regex("*a*b"), "^");
    }

    #[test]
    fn globs_become_anchored_regexes() {
        assert_eq!(glob_regex("web-*"), "^web-.*$");
        assert_eq!(glob_regex("a.b(c)"), "^a\\.b\\(c\\)$");
    }
}
