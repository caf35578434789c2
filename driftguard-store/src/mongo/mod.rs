//! The MongoDB store (official `mongodb` driver).
//!
//! Where things are:
//!
//! - `options`: [`MongoOptions`] (also in a build without the `mongodb` feature, whose
//!   `MongoStore` only says so: `absent.rs`);
//! - this module: [`MongoStore`] (connecting, set-up on first use, error
//!   mapping) and its [`DriftStore`] implementation, which hands each call to the modules below;
//! - `schema`: the collections (`records`, `events`, `episodes`, `scans`, `deliveries`,
//!   `fences`, `open_drifts`, `audit_writes`, `audit_cursors`), their documents, indexes and TTL
//!   indexes (retention);
//! - `view`: the open-drift view, which answers the open drifts of one environment;
//! - `write`: committing a batch (after its leadership epoch passed the fence), delivery
//!   marks, the audit index, pruning;
//! - `query`: reading records, drifts, events, scans and the audit index.
//!
//! **The database may be down when the store is made.** [`MongoStore::connect_lazy`] does not
//! contact the server: the driver connects when a call needs it, and the indexes are created
//! by the first call that reaches the server (a call made while it is down fails, and the next
//! call tries the set-up again). While no server is reachable every call fails with
//! [`StoreError::Unavailable`], which [`crate::BufferedStore`] buffers, after about the server
//! selection timeout ([`MongoOptions::server_selection_timeout`]; at most twice it for a call
//! that waited for another call's set-up attempt, however many calls wait).
//! [`MongoStore::connect_with`] instead creates the indexes at once and fails when the
//! server cannot be reached.
//!
//! **Fencing** ([`driftguard_core::fence`]): a batch that carries a leadership epoch first
//! moves the environment's document in `fences` with one conditional update (`epoch` set where
//! it is not higher; an upsert that collides with a higher one is the refusal), then writes
//! the batch. This is a check, then a write, not one transaction: a writer paused *between*
//! the two (after its epoch passed, before its last document is written) can still land that
//! one batch after a newer leader has claimed the environment. The window is the length of one
//! batch's writes (milliseconds), and leaders stop writing on their own before their lease
//! can move (the server's local fence), so reaching it takes a pause that starts inside it.
//! Transactions would close it on a MongoDB replica set; SecantusDB, the server the tests run
//! against, accepts transactions but does not detect write conflicts between them, so they
//! would not fence there.

mod options;
mod query;
mod schema;
mod view;
mod write;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::audit::AuditSnapshot;
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, EventQuery, OpenTally, Page};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};
use mongodb::bson::{doc, Document};
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, WriteConcern};
use mongodb::{Client, Collection, Database};

pub use options::MongoOptions;

/// A DriftStore in MongoDB. Clones share the client and the set-up state.
#[derive(Clone, Debug)]
pub struct MongoStore {
    db: Database,
    options: MongoOptions,
    setup: Arc<Setup>,
}

/// Whether the indexes are in place. One set-up attempt runs at a time; calls that waited for
/// an attempt that failed fail with it at once, rather than each waiting out another server
/// selection timeout.
#[derive(Debug, Default)]
struct Setup {
    done: AtomicBool,
    /// Failed attempts so far.
    failures: AtomicU64,
    /// Held while an attempt runs; the last failure (whether it was `Unavailable`, its text).
    attempt: tokio::sync::Mutex<Option<(bool, String)>>,
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

/// A driver error as a store error: `Unavailable` when a retry may succeed.
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

    /// Makes a store without contacting the server (a server may start while its database is
    /// down): the driver connects when a call needs it, and the indexes are created by the
    /// first call that reaches the server, retried by later calls until one does. Fails only
    /// on a malformed connection string. Must be called inside a tokio runtime.
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
            setup: Arc::new(Setup::default()),
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

    /// Whether the indexes have been created (always, for a store from
    /// [`MongoStore::connect_with`]; after the first call that reached the server, for one from
    /// [`MongoStore::connect_lazy`]).
    pub fn is_set_up(&self) -> bool {
        self.setup.done.load(Ordering::Acquire)
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    /// Creates the indexes unless done: the gate of every call.
    async fn ready(&self) -> Result<(), StoreError> {
        let s = &self.setup;
        if s.done.load(Ordering::Acquire) {
            return Ok(());
        }
        let seen = s.failures.load(Ordering::Acquire);
        let mut last = s.attempt.lock().await;
        if s.done.load(Ordering::Acquire) {
            return Ok(());
        }
        if s.failures.load(Ordering::Acquire) != seen {
            // the attempt this call waited for failed just now: fail alike, without waiting
            // out another server selection
            if let Some((unavailable, why)) = last.as_ref() {
                let source = format!("setting up the MongoDB store failed: {why}").into();
                return Err(if *unavailable {
                    StoreError::Unavailable { source }
                } else {
                    StoreError::Backend {
                        context: "mongodb: set-up".into(),
                        source,
                    }
                });
            }
        }
        match self.create_indexes().await {
            Ok(()) => {
                s.done.store(true, Ordering::Release);
                *last = None;
                Ok(())
            }
            Err(e) => {
                let unavailable = matches!(e, StoreError::Unavailable { .. });
                *last = Some((unavailable, driftguard_core::error::chain(&e)));
                s.failures.fetch_add(1, Ordering::AcqRel);
                Err(e)
            }
        }
    }
}

#[async_trait]
impl DriftStore for MongoStore {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        self.ready().await?;
        self.read_records(environment).await
    }

    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        if batch.writes_nothing() {
            return Ok(());
        }
        self.ready().await?;
        if let Some(epoch) = batch.epoch {
            self.write_fence(&batch.environment, epoch).await?;
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.write_batch(batch).await
    }

    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        self.ready().await?;
        self.read_drifts(query).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        self.ready().await?;
        self.read_events(query).await
    }

    async fn scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        self.ready().await?;
        self.read_scans(environment, limit).await
    }

    async fn scans_at(
        &self,
        environments: &[String],
        times: &[DateTime<Utc>],
    ) -> Result<Vec<ScanSummary>, StoreError> {
        self.ready().await?;
        self.read_scans_at(environments, times).await
    }

    async fn open_tallies(&self, environments: &[String]) -> Result<Vec<OpenTally>, StoreError> {
        self.ready().await?;
        self.read_open_tallies(environments).await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        self.ready().await?;
        self.prune_before(before).await
    }

    async fn record(&self, id: &ResourceId) -> Result<Option<DriftRecord>, StoreError> {
        self.ready().await?;
        self.read_record(id).await
    }

    async fn drift(&self, episode: &str) -> Result<Option<Drift>, StoreError> {
        self.ready().await?;
        self.read_drift(episode).await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(|e| merr("ping", e))?;
        self.ready().await
    }

    async fn epoch(&self, environment: &str) -> Result<Option<u64>, StoreError> {
        self.ready().await?;
        self.read_fence(environment).await
    }

    async fn delivered_until(&self, notifier: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.ready().await?;
        self.read_delivered_until(notifier).await
    }

    async fn set_delivered_until(
        &self,
        notifier: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.ready().await?;
        self.write_delivered_until(notifier, until).await
    }

    async fn audit_index(&self, environment: &str) -> Result<AuditSnapshot, StoreError> {
        self.ready().await?;
        self.read_audit(environment).await
    }

    async fn save_audit_index(
        &self,
        environment: &str,
        changes: &AuditSnapshot,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.ready().await?;
        self.write_audit(environment, changes).await
    }

    async fn acknowledgements(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<driftguard_core::ack::Acknowledgement>, StoreError> {
        self.ready().await?;
        self.read_acks(environment).await
    }

    async fn actions(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<driftguard_core::actions::PersonAction>, StoreError> {
        self.ready().await?;
        self.read_actions(environment, limit).await
    }

    async fn record_actions(
        &self,
        actions: &[driftguard_core::actions::PersonAction],
    ) -> Result<(), StoreError> {
        if actions.is_empty() {
            return Ok(());
        }
        self.ready().await?;
        self.write_actions(actions).await
    }

    async fn save_acknowledgements(
        &self,
        acks: &[driftguard_core::ack::Acknowledgement],
    ) -> Result<(), StoreError> {
        if acks.is_empty() {
            return Ok(());
        }
        self.ready().await?;
        self.write_acks(acks).await
    }
}
