//! # driftguard-store
//!
//! Durable implementations of [`driftguard_core::ports::DriftStore`]:
//!
//! - `sqlite::SqliteStore` (feature `sqlite`, default): one file, no set-up; the default for
//!   the CLI and a single server.
//! - [`mongo::MongoStore`] (feature `mongodb`): the official `mongodb` driver; several servers
//!   may share a database. In a build without the feature, `mongo` keeps its names
//!   ([`MongoOptions`], `MongoStore`) and every `MongoStore` constructor fails with an error
//!   saying this build has no MongoDB, so code that picks its store from a configuration
//!   builds either way and a configuration naming MongoDB gets that error.
//! - [`buffered::BufferedStore`]: wraps any store; when it is unavailable, batches are queued in
//!   order (bounded) and retried with backoff in the background, and health reports degraded.
//! - [`deferred::DeferredStore`]: wraps any store and holds writes back until the caller takes
//!   them (a one-shot scan writes nothing unless it succeeds).
//!
//! Both wrappers forward every [`DriftStore`](driftguard_core::ports::DriftStore) method, the
//! provided ones included, so they answer like the store they wrap.
//!
//! Every store keeps, per environment, the current record of each tracked object, the
//! append-only event log, scan summaries and drift episodes (derived from events by one rule,
//! [`driftguard_core::state::episode_replaces`], which every store calls). Records, events, episodes and scans are
//! stored as their serde JSON form plus indexed columns for the filters; none of them holds a
//! Secret value (the core hashes Secret data and redacts it in field diffs).
//!
//! Features: `sqlite` (default) and `mongodb` each compile one store and its driver; an
//! embedder takes what it needs (`default-features = false, features = ["sqlite"]`). The
//! driftguard CLI and driftguard-server have both. `conformance`: the suite.

pub mod buffered;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod deferred;
#[cfg(feature = "mongodb")]
pub mod mongo;
#[cfg(not(feature = "mongodb"))]
#[path = "mongo/absent.rs"]
pub mod mongo;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(test)]
mod test_probe;

pub use buffered::{BufferHealth, BufferedStore};
pub use deferred::DeferredStore;
pub use mongo::{MongoOptions, MongoStore};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

#[cfg(any(feature = "sqlite", feature = "mongodb"))]
pub(crate) use shared::{backend, corrupt, nanos, severity_of_rank, severity_rank};

/// What the stores share: sort keys and error constructors.
#[cfg(any(feature = "sqlite", feature = "mongodb"))]
mod shared {
    use chrono::{DateTime, Utc};
    use driftguard_core::ports::{BoxError, StoreError};
    use driftguard_core::severity::Severity;

    /// A time as integer nanoseconds since the epoch (saturating outside 1677..2262), the sort and
    /// filter key every store uses so that order matches the in-memory store exactly.
    pub(crate) fn nanos(t: DateTime<Utc>) -> i64 {
        t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
    }

    /// Severity as a number that sorts like [`Severity`].
    pub(crate) fn severity_rank(s: Severity) -> i64 {
        match s {
            Severity::Low => 0,
            Severity::Medium => 1,
            Severity::High => 2,
            Severity::Critical => 3,
        }
    }

    /// The severity of a stored rank ([`severity_rank`]).
    pub(crate) fn severity_of_rank(rank: i64) -> Option<Severity> {
        [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|s| severity_rank(*s) == rank)
    }

    pub(crate) fn backend(context: impl Into<String>, e: impl Into<BoxError>) -> StoreError {
        StoreError::Backend {
            context: context.into(),
            source: e.into(),
        }
    }

    pub(crate) fn corrupt(what: impl std::fmt::Display, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            what: format!("{what}: {e}"),
        }
    }
}
