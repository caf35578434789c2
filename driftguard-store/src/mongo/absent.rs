//! The MongoDB store in a build without it (feature `mongodb` off): the same names, so that
//! code choosing its store from a configuration builds either way, and a [`MongoStore`] that
//! cannot be made: every constructor fails with a [`StoreError::Backend`] that says this build
//! has no MongoDB and what to do. A configuration naming MongoDB gets that error when its store
//! is opened.

mod options;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, EventQuery, Page};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};

pub use options::MongoOptions;

/// The error of every constructor in a build without MongoDB.
fn not_built() -> StoreError {
    StoreError::Backend {
        context: "this build of DriftGuard has no MongoDB store".into(),
        source: "build driftguard-store with its `mongodb` feature (on by default in the \
                 driftguard CLI and driftguard-server), or use `store.sqlite`"
            .into(),
    }
}

/// The MongoDB store, absent from this build: no value of this type exists.
#[derive(Clone, Debug)]
pub enum MongoStore {}

impl MongoStore {
    /// Fails: this build has no MongoDB store.
    pub async fn connect(uri: &str, database: &str) -> Result<Self, StoreError> {
        let _ = (uri, database);
        Err(not_built())
    }

    /// Fails: this build has no MongoDB store.
    pub async fn from_env() -> Result<Self, StoreError> {
        Err(not_built())
    }

    /// Fails: this build has no MongoDB store.
    pub async fn connect_with(options: MongoOptions) -> Result<Self, StoreError> {
        let _ = options;
        Err(not_built())
    }

    /// Fails: this build has no MongoDB store.
    pub async fn connect_lazy(options: MongoOptions) -> Result<Self, StoreError> {
        let _ = options;
        Err(not_built())
    }

    /// The options in use.
    pub fn options(&self) -> &MongoOptions {
        match *self {}
    }

    /// Whether the indexes have been created.
    pub fn is_set_up(&self) -> bool {
        match *self {}
    }
}

#[async_trait]
impl DriftStore for MongoStore {
    async fn records(&self, _: &str) -> Result<Vec<DriftRecord>, StoreError> {
        match *self {}
    }

    async fn commit(&self, _: &ScanBatch) -> Result<(), StoreError> {
        match *self {}
    }

    async fn drifts(&self, _: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        match *self {}
    }

    async fn events(&self, _: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        match *self {}
    }

    async fn scans(&self, _: Option<&str>, _: usize) -> Result<Vec<ScanSummary>, StoreError> {
        match *self {}
    }

    async fn prune(&self, _: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        match *self {}
    }
}
