//! The open-drift view: the open drifts of one environment (the dashboard's query) answered
//! from one small document instead of the `episodes` collection.
//!
//! `open_drifts` holds one document per environment (`_id` = `env:<name>`) with every open
//! episode's body, spilling into chunk documents past 8 MB. Reading it is one `_id` lookup;
//! filtering, sorting and paging are then done by [`DriftQuery::apply`], the reference
//! semantics. The view is written after the episodes and before the events, from the final
//! state of every episode a batch touches (so a retried batch repairs it), with an optimistic
//! version check against concurrent writers; when it is missing it is rebuilt from `episodes`.
//!
//! [`DriftQuery::apply`]: driftguard_core::query::DriftQuery::apply

use std::collections::BTreeMap;

use driftguard_core::ports::StoreError;
use driftguard_core::state::Drift;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};

use super::schema::{to_json, EPISODES, OPEN_DRIFTS};
use super::{is_duplicate, merr, MongoStore};
use crate::corrupt;

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

impl MongoStore {
    /// The stored view of `env`'s open drifts, if there is one.
    async fn read_view(&self, env: &str) -> Result<Option<OpenView>, StoreError> {
        'attempt: for _ in 0..VIEW_ATTEMPTS {
            let Some(head) = self.by_id(OPEN_DRIFTS, view_head_id(env)).await? else {
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
                match self.by_id(OPEN_DRIFTS, id.clone()).await? {
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
            .coll(EPISODES)
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
        let c = self.coll(OPEN_DRIFTS);
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
        self.replace_all(OPEN_DRIFTS, chunk_docs).await?;
        let head = doc! {
            "_id": view_head_id(env),
            "version": version,
            "total": super::query::i64_of(items.len()),
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
    pub(super) async fn update_view(&self, env: &str, drifts: &[&Drift]) -> Result<(), StoreError> {
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
    pub(super) async fn open_drifts(&self, env: &str) -> Result<Vec<Drift>, StoreError> {
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
}
