//! The MongoDB store (official `mongodb` driver).
//!
//! Collections (created with their indexes at start): `records` (`_id` = object key, unique
//! compound index on the identity per environment), `events` (`_id` = the deterministic event
//! id), `episodes` (`_id` = episode id), `scans` (`_id` = scan id). Every document holds the
//! indexed fields at top level and the serde JSON form in `body`. Times are stored as integer
//! nanoseconds (the sort key, exact like the other stores) and, for TTL retention, as BSON dates
//! (`at_date`, `started_date`, `resolved_date`).
//!
//! Writes are idempotent, so a retried batch changes nothing and several servers may share one
//! database: records are replaced by `_id`; events are inserted by `_id` (duplicates ignored);
//! an event moves its episode only when it was not stored yet, and episodes are written before
//! the events, so a batch cut short by a crash is completed by its retry.
//!
//! **Open drifts of one environment** (the dashboard's query) are answered from a small view
//! kept on write in `open_drifts`: one document per environment (`_id` = `env:<name>`) holding
//! every open episode's body, spilling into chunk documents past 8 MB. Reading it is one `_id`
//! lookup; filtering, sorting and paging are then done by [`DriftQuery::apply`], the reference
//! semantics. The view is written after the episodes and before the events, from the final
//! state of every episode a batch touches (so a retried batch repairs it), with an optimistic
//! version check against concurrent writers; when it is missing it is rebuilt from `episodes`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::id::ResourceId;
use driftguard_core::memory::apply_event_to_episode;
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, DriftSort, DriftStatus, EventQuery, Page};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};
use futures_util::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, DateTime as BsonDate, Document};
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, IndexOptions, WriteConcern};
use mongodb::{Client, Collection, Database, IndexModel};
use tokio::sync::OnceCell;

use crate::{corrupt, nanos, severity_rank};

/// Settings of the MongoDB store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MongoOptions {
    /// Connection string (TLS and auth options pass through, e.g. `?tls=true&tlsCAFile=...`).
    pub uri: String,
    /// Database name.
    pub database: String,
    /// Age after which events, scans and resolved episodes expire (TTL indexes). `None`: kept.
    pub retention: Option<Duration>,
    /// How long an operation waits for a reachable server before failing as unavailable.
    pub server_selection_timeout: Duration,
}

impl MongoOptions {
    /// Options for `uri` and `database`, no retention, 5 s server selection timeout.
    pub fn new(uri: impl Into<String>, database: impl Into<String>) -> Self {
        MongoOptions {
            uri: uri.into(),
            database: database.into(),
            retention: None,
            server_selection_timeout: Duration::from_secs(5),
        }
    }
}

/// A DriftStore in MongoDB.
#[derive(Clone, Debug)]
pub struct MongoStore {
    db: Database,
    options: MongoOptions,
    ready: std::sync::Arc<OnceCell<()>>,
}

fn is_unavailable(e: &mongodb::error::Error) -> bool {
    matches!(
        e.kind.as_ref(),
        ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
    ) || e.contains_label("RetryableWriteError")
        || e.contains_label("TransientTransactionError")
        || matches!(e.kind.as_ref(), ErrorKind::Command(c)
            if matches!(c.code, 91 | 189 | 10107 | 11600 | 11602 | 13435 | 13436))
}

fn is_duplicate(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

fn merr(context: &str, e: mongodb::error::Error) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable { source: e.into() }
    } else {
        StoreError::Backend {
            context: format!("mongodb: {context}"),
            source: e.into(),
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| crate::backend("serialize", e))
}

fn body_of<T: serde::de::DeserializeOwned>(what: &str, d: &Document) -> Result<T, StoreError> {
    let s = d
        .get_str("body")
        .map_err(|e| corrupt(format!("{what} {:?}", d.get("_id")), e))?;
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

fn date(t: DateTime<Utc>) -> BsonDate {
    BsonDate::from_millis(t.timestamp_millis())
}

fn i64_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A DriftGuard name glob (`*` = any run) as an anchored regular expression.
fn glob_regex(pattern: &str) -> String {
    let mut out = String::from("^");
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
    out.push('$');
    out
}

/// The collection holding the open-drift views.
const OPEN_VIEW: &str = "open_drifts";
/// Bytes of drift bodies per view document, at most (a BSON document holds 16 MB).
const VIEW_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Attempts at updating a view that other writers keep changing.
const VIEW_ATTEMPTS: usize = 8;

/// The open episodes of one environment as stored in `open_drifts`.
struct OpenView {
    /// Bumped by every write.
    version: i64,
    /// Ids of the chunk documents past the head document.
    chunks: Vec<String>,
    /// Episode id to the drift's JSON body.
    items: BTreeMap<String, String>,
}

fn view_head_id(env: &str) -> String {
    format!("env:{env}")
}

fn view_chunk_id(env: &str, version: i64, n: usize) -> String {
    format!("chunk:{version}:{n}:{env}")
}

/// Reads the `items` array of a view document into `into`.
fn view_items(d: &Document, into: &mut BTreeMap<String, String>) -> Result<(), StoreError> {
    let items = d
        .get_array("items")
        .map_err(|e| corrupt("open-drift view", e))?;
    for item in items {
        let Bson::Document(item) = item else {
            return Err(StoreError::Corrupt {
                what: "open-drift view item".into(),
            });
        };
        let episode = item
            .get_str("e")
            .map_err(|e| corrupt("open-drift view", e))?;
        let body = item
            .get_str("b")
            .map_err(|e| corrupt("open-drift view", e))?;
        into.insert(episode.to_owned(), body.to_owned());
    }
    Ok(())
}

fn episode_doc(d: &Drift) -> Result<Document, StoreError> {
    let mut doc = doc! {
        "_id": &d.episode,
        "env": &d.id.environment,
        "group": &d.id.group,
        "kind": &d.id.kind,
        "namespace": d.id.namespace.as_deref().map_or(Bson::Null, |n| Bson::String(n.to_owned())),
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

impl MongoStore {
    /// Connects to `uri`, using `database`, and creates collections and indexes.
    pub async fn connect(uri: &str, database: &str) -> Result<Self, StoreError> {
        Self::connect_with(MongoOptions::new(uri, database)).await
    }

    /// Connects with `MONGODB_URI` (required) and `MONGODB_DATABASE` (default `driftguard`).
    pub async fn from_env() -> Result<Self, StoreError> {
        let uri = std::env::var("MONGODB_URI").map_err(|_| StoreError::Backend {
            context: "MONGODB_URI is not set".into(),
            source: "missing environment variable MONGODB_URI".into(),
        })?;
        let db = std::env::var("MONGODB_DATABASE").unwrap_or_else(|_| "driftguard".into());
        Self::connect(&uri, &db).await
    }

    /// Connects with options and creates collections and indexes now (fails when unreachable).
    pub async fn connect_with(options: MongoOptions) -> Result<Self, StoreError> {
        let store = Self::connect_lazy(options).await?;
        store.ready().await?;
        Ok(store)
    }

    /// Prepares a client without contacting the server; indexes are created on first use (a
    /// server may start while its database is down).
    pub async fn connect_lazy(options: MongoOptions) -> Result<Self, StoreError> {
        let mut co = ClientOptions::parse(&options.uri)
            .await
            .map_err(|e| StoreError::Backend {
                context: "invalid MongoDB connection string".into(),
                source: e.into(),
            })?;
        if co.server_selection_timeout.is_none() {
            co.server_selection_timeout = Some(options.server_selection_timeout);
        }
        if co.connect_timeout.is_none() {
            co.connect_timeout = Some(options.server_selection_timeout);
        }
        if co.write_concern.is_none() {
            // acknowledged means journaled: a crash of the database loses nothing acknowledged
            co.write_concern = Some(WriteConcern::builder().journal(true).build());
        }
        if co.app_name.is_none() {
            co.app_name = Some("driftguard".into());
        }
        let client = Client::with_options(co).map_err(|e| merr("client", e))?;
        Ok(MongoStore {
            db: client.database(&options.database),
            options,
            ready: std::sync::Arc::new(OnceCell::new()),
        })
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The options in use.
    pub fn options(&self) -> &MongoOptions {
        &self.options
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.ready
            .get_or_try_init(|| self.create_indexes())
            .await
            .map(|_| ())
    }

    async fn create_indexes(&self) -> Result<(), StoreError> {
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
            ("records", records),
            ("events", events),
            ("episodes", episodes),
            ("scans", scans),
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
            ("events", "at_date"),
            ("scans", "started_date"),
            ("episodes", "resolved_date"),
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

    async fn find_all<T: serde::de::DeserializeOwned>(
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
    async fn by_id(&self, coll: &str, id: String) -> Result<Option<Document>, StoreError> {
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

    /// The stored view of `env`'s open drifts, if there is one.
    async fn read_view(&self, env: &str) -> Result<Option<OpenView>, StoreError> {
        'attempt: for _ in 0..VIEW_ATTEMPTS {
            let Some(head) = self.by_id(OPEN_VIEW, view_head_id(env)).await? else {
                return Ok(None);
            };
            let version = head
                .get_i64("version")
                .map_err(|e| corrupt("open-drift view", e))?;
            let mut items = BTreeMap::new();
            view_items(&head, &mut items)?;
            let chunks: Vec<String> = head
                .get_array("chunks")
                .map_err(|e| corrupt("open-drift view", e))?
                .iter()
                .filter_map(|b| b.as_str().map(str::to_owned))
                .collect();
            for id in &chunks {
                match self.by_id(OPEN_VIEW, id.clone()).await? {
                    Some(chunk) => view_items(&chunk, &mut items)?,
                    // replaced by a newer version meanwhile: read the new head
                    None => continue 'attempt,
                }
            }
            return Ok(Some(OpenView {
                version,
                chunks,
                items,
            }));
        }
        Err(StoreError::Conflict {
            what: format!("open-drift view of {env} keeps changing"),
        })
    }

    /// `env`'s open episodes, read from `episodes` (to build the view).
    async fn open_from_episodes(&self, env: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let docs: Vec<Document> = self
            .coll("episodes")
            .find(doc! {"env": env, "open": true})
            .projection(doc! {"body": 1})
            .await
            .map_err(|e| merr("find open episodes", e))?
            .try_collect()
            .await
            .map_err(|e| merr("read episodes", e))?;
        let mut items = BTreeMap::new();
        for d in docs {
            let id = d
                .get_str("_id")
                .map_err(|e| corrupt("episode", e))?
                .to_owned();
            let body = d.get_str("body").map_err(|e| corrupt("episode", e))?;
            items.insert(id, body.to_owned());
        }
        Ok(items)
    }

    /// Writes `items` as the next version of `env`'s view. `Ok(false)`: another writer
    /// changed the view since `old` was read (nothing of ours is left behind).
    async fn write_view(
        &self,
        env: &str,
        old: Option<&OpenView>,
        items: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError> {
        let c = self.coll(OPEN_VIEW);
        let version = old.map_or(1, |o| o.version + 1);
        let mut groups: Vec<Vec<Document>> = vec![Vec::new()];
        let mut bytes = 0;
        for (episode, body) in items {
            if bytes + body.len() > VIEW_CHUNK_BYTES && !groups[groups.len() - 1].is_empty() {
                groups.push(Vec::new());
                bytes = 0;
            }
            bytes += body.len();
            let last = groups.len() - 1;
            groups[last].push(doc! {"e": episode, "b": body});
        }
        let first = groups.remove(0);
        let chunk_ids: Vec<String> = (0..groups.len())
            .map(|n| view_chunk_id(env, version, n))
            .collect();
        let chunk_docs: Vec<Document> = groups
            .into_iter()
            .zip(&chunk_ids)
            .map(|(items, id)| doc! {"_id": id, "items": items})
            .collect();
        self.replace_all(OPEN_VIEW, chunk_docs).await?;
        let head = doc! {
            "_id": view_head_id(env),
            "version": version,
            "total": i64_of(items.len()),
            "chunks": &chunk_ids,
            "items": first,
        };
        let written = match old {
            None => match c.insert_one(head).await {
                Ok(_) => true,
                Err(e) if is_duplicate(&e) => false,
                Err(e) => return Err(merr("write open-drift view", e)),
            },
            Some(o) => {
                c.replace_one(doc! {"_id": view_head_id(env), "version": o.version}, head)
                    .await
                    .map_err(|e| merr("write open-drift view", e))?
                    .matched_count
                    == 1
            }
        };
        let stale: Vec<&String> = if written {
            old.map(|o| o.chunks.iter().collect()).unwrap_or_default()
        } else {
            chunk_ids.iter().collect()
        };
        if !stale.is_empty() {
            c.delete_many(doc! {"_id": {"$in": stale}})
                .await
                .map_err(|e| merr("delete open-drift view chunks", e))?;
        }
        Ok(written)
    }

    /// Brings `env`'s view up to date with the current state of `drifts` (idempotent).
    async fn update_view(&self, env: &str, drifts: &[&Drift]) -> Result<(), StoreError> {
        for _ in 0..VIEW_ATTEMPTS {
            let old = self.read_view(env).await?;
            let (mut items, mut changed) = match &old {
                Some(v) => (v.items.clone(), false),
                None => (self.open_from_episodes(env).await?, true),
            };
            for d in drifts {
                if d.is_open() {
                    let body = to_json(*d)?;
                    if items.get(&d.episode) != Some(&body) {
                        items.insert(d.episode.clone(), body);
                        changed = true;
                    }
                } else if items.remove(&d.episode).is_some() {
                    changed = true;
                }
            }
            if !changed || self.write_view(env, old.as_ref(), &items).await? {
                return Ok(());
            }
        }
        Err(StoreError::Conflict {
            what: format!("open-drift view of {env} keeps changing"),
        })
    }

    /// `env`'s open drifts, from the view (built when missing).
    async fn open_drifts(&self, env: &str) -> Result<Vec<Drift>, StoreError> {
        let items = match self.read_view(env).await? {
            Some(v) => v.items,
            None => {
                let items = self.open_from_episodes(env).await?;
                // best effort: a writer may have built it meanwhile, which is as good
                let _ = self.write_view(env, None, &items).await;
                items
            }
        };
        items
            .values()
            .map(|b| serde_json::from_str(b).map_err(|e| corrupt("open-drift view", e)))
            .collect()
    }

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

    async fn write_batch(&self, batch: &ScanBatch) -> Result<(), StoreError> {
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
                .coll("events")
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
                .find_all::<Drift>("episodes", doc! {"_id": {"$in": touched}}, doc! {}, 0, None)
                .await?
            {
                episodes.insert(d.episode.clone(), d);
            }
            let before = episodes.clone();
            for e in &new_events {
                apply_event_to_episode(&mut episodes, e);
            }
            let changed: Vec<Document> = episodes
                .values()
                .filter(|d| before.get(&d.episode) != Some(*d))
                .map(episode_doc)
                .collect::<Result<_, _>>()?;
            self.replace_all("episodes", changed).await?;
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
                .map(|e| {
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
                })
                .collect::<Result<_, StoreError>>()?;
            match self.coll("events").insert_many(docs).ordered(false).await {
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
        // 3. records
        let mut last: BTreeMap<String, &DriftRecord> = BTreeMap::new();
        for r in &batch.upserts {
            last.insert(r.id.key(), r);
        }
        let docs: Vec<Document> = last
            .into_iter()
            .map(|(key, r)| {
                Ok(doc! {
                    "_id": key,
                    "env": &r.id.environment,
                    "group": &r.id.group,
                    "kind": &r.id.kind,
                    "namespace": r.id.namespace.as_deref().map_or(Bson::Null, |n| Bson::String(n.to_owned())),
                    "name": &r.id.name,
                    "body": to_json(r)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        self.replace_all("records", docs).await?;
        if !batch.deletes.is_empty() {
            let keys: Vec<String> = batch.deletes.iter().map(ResourceId::key).collect();
            self.coll("records")
                .delete_many(doc! {"_id": {"$in": keys}})
                .await
                .map_err(|e| merr("delete records", e))?;
        }
        // 4. the summary
        if let Some(s) = &batch.summary {
            let d = doc! {
                "_id": &s.scan_id,
                "env": &s.environment,
                "started_at": nanos(s.started_at),
                "started_date": date(s.started_at),
                "body": to_json(s)?,
            };
            self.replace_all("scans", vec![d]).await?;
        }
        Ok(())
    }

    /// Replaces (upserting) documents by `_id`, with one `update` command per 500 documents
    /// (one round trip each; a retry rewrites the same documents).
    async fn replace_all(&self, coll: &str, docs: Vec<Document>) -> Result<(), StoreError> {
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
    if let Some(n) = &q.name {
        f.insert("name", doc! {"$regex": glob_regex(n)});
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

#[async_trait]
impl DriftStore for MongoStore {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        self.ready().await?;
        self.find_all(
            "records",
            doc! {"env": environment},
            doc! {"_id": 1},
            0,
            None,
        )
        .await
    }

    async fn record(&self, id: &ResourceId) -> Result<Option<DriftRecord>, StoreError> {
        self.ready().await?;
        let d = self
            .coll("records")
            .find_one(doc! {"_id": id.key()})
            .await
            .map_err(|e| merr("find record", e))?;
        d.map(|d| body_of("record", &d)).transpose()
    }

    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.ready().await?;
        self.write_batch(batch).await
    }

    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        self.ready().await?;
        if let (DriftStatus::Open, Some(env)) = (query.status, &query.environment) {
            return Ok(query.apply(self.open_drifts(env).await?));
        }
        self.page(
            "episodes",
            drift_filter(query),
            drift_sort(query.sort),
            query.offset,
            query.limit,
        )
        .await
    }

    async fn events(&self, q: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        self.ready().await?;
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
        self.page("events", f, doc! {"at": 1, "_id": 1}, q.offset, q.limit)
            .await
    }

    async fn scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        self.ready().await?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let f = environment.map_or_else(Document::new, |e| doc! {"env": e});
        self.find_all(
            "scans",
            f,
            doc! {"started_at": -1, "_id": -1},
            0,
            Some(limit),
        )
        .await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        self.ready().await?;
        let t = nanos(before);
        let events = self
            .coll("events")
            .delete_many(doc! {"at": {"$lt": t}})
            .await
            .map_err(|e| merr("prune events", e))?
            .deleted_count;
        let scans = self
            .coll("scans")
            .delete_many(doc! {"started_at": {"$lt": t}})
            .await
            .map_err(|e| merr("prune scans", e))?
            .deleted_count;
        let episodes = self
            .coll("episodes")
            .delete_many(doc! {"open": false, "resolved_at": {"$lt": t}})
            .await
            .map_err(|e| merr("prune episodes", e))?
            .deleted_count;
        Ok(PruneStats {
            events,
            scans,
            episodes,
        })
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(|e| merr("ping", e))?;
        self.ready().await
    }

    async fn delivered_until(&self, notifier: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let d = self
            .coll("deliveries")
            .find_one(doc! {"_id": notifier})
            .await
            .map_err(|e| merr("find delivery mark", e))?;
        Ok(d.and_then(|d| d.get_i64("until").ok())
            .map(DateTime::from_timestamp_nanos))
    }

    async fn set_delivered_until(
        &self,
        notifier: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let until = nanos(until);
        // moves only forward: a mark already at or past `until` does not match, and the upsert
        // then collides with it on `_id`
        let r = self
            .coll("deliveries")
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_anchored_regexes() {
        assert_eq!(glob_regex("web-*"), "^web-.*$");
        assert_eq!(glob_regex("a.b(c)"), "^a\\.b\\(c\\)$");
    }
}
