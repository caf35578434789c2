//! The embedded store: one SQLite file.
//!
//! - WAL journal with `synchronous=FULL`: a commit returns only after the WAL is synced, so a
//!   killed process (or a power cut) loses nothing that was acknowledged, and readers never block
//!   the writer. (`NORMAL` would be safe against a killed process but may lose the last commits
//!   on power loss; FULL costs one fsync per batch, and a batch is a whole scan.)
//! - One batch is one `BEGIN IMMEDIATE` transaction: all or nothing. A batch's leadership
//!   epoch is checked against the highest one kept for its environment (table `fences`) and
//!   recorded in the same transaction ([`driftguard_core::fence`]).
//! - A schema version (`PRAGMA user_version`) with forward migrations, applied at open.
//! - Blocking calls run on tokio's blocking pool, never on the async threads.
//!
//! Where things are:
//!
//! - this module: [`SqliteStore`] (opening, pragmas, the connection on the blocking pool, error
//!   mapping) and its [`DriftStore`] implementation, which hands each call to the modules below;
//! - `schema`: the tables (`records`, `events`, `episodes`, `scans`, `deliveries`, `fences`,
//!   `audit_writes`, `audit_cursors`), their indexes and the migrations;
//! - `write`: committing a batch (fenced, in one transaction), delivery marks, the audit index,
//!   pruning;
//! - `query`: reading records, drifts, events, scans, marks and the audit index.

mod query;
mod schema;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::ack::Acknowledgement;
use driftguard_core::audit::AuditSnapshot;
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, EventQuery, OpenTally, Page};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};
use rusqlite::{Connection, OpenFlags};

use crate::{backend, nanos};

pub use schema::SCHEMA_VERSION;

/// A DriftStore in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({:?})", self.path)
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| backend(format!("cannot create the folder {}", dir.display()), e))?;
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sql_in(format!("cannot open {}", path.display()), e))?;
        Self::init(conn, Some(path))
    }

    /// A store in memory (for tests and one-shot CLI runs).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(|e| backend("cannot open memory", e))?;
        Self::init(conn, None)
    }

    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> Result<Self, StoreError> {
        let what = path
            .as_ref()
            .map_or_else(|| "memory".to_owned(), |p| p.display().to_string());
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| sql_in("busy_timeout", e))?;
        if path.is_some() {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(|e| sql_in(format!("cannot set WAL mode on {what}"), e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(backend(
                    format!("cannot set WAL mode on {what}"),
                    format!("journal_mode is {mode}"),
                ));
            }
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(|e| sql_in("pragmas", e))?;
        schema::migrate(&mut conn).map_err(|e| match e {
            e @ (StoreError::Corrupt { .. } | StoreError::Unavailable { .. }) => e,
            e => backend(format!("cannot migrate {what}"), e),
        })?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| backend("sqlite", "connection lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| backend("sqlite task", e))?
    }

    /// The schema version of the open file.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|c| {
            c.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(sql)
        })
        .await
    }

    /// Copies the WAL into the main file (for backups; not needed for safety).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.with(|c| {
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(sql)
        })
        .await
    }
}

/// What was being done when an SQLite error happened (kept as the cause of `Unavailable`,
/// whose message has no context of its own).
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
struct SqlContext {
    context: String,
    #[source]
    source: rusqlite::Error,
}

/// Whether a retry may cure an SQLite error: a full disk, a file or folder that cannot be
/// written or opened now (read-only, permissions, a volume not mounted yet), an I/O error, or
/// another writer holding the lock past the busy timeout.
fn retryable(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if matches!(
            f.code,
            ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
        )
    )
}

/// An SQLite error as a store error: `Unavailable` when a retry may cure it (see
/// [`retryable`]), `Corrupt` for a damaged file, else `Backend`; the cause is kept as source.
fn sql_in(context: impl Into<String>, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &e {
        _ if retryable(&e) => StoreError::Unavailable {
            source: Box::new(SqlContext {
                context: context.into(),
                source: e,
            }),
        },
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) =>
        {
            StoreError::Corrupt {
                what: e.to_string(),
            }
        }
        _ => backend(context, e),
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    sql_in("sqlite", e)
}

#[async_trait]
impl DriftStore for SqliteStore {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        let env = environment.to_owned();
        self.with(move |c| query::read_records(c, &env)).await
    }

    async fn record(&self, id: &ResourceId) -> Result<Option<DriftRecord>, StoreError> {
        let key = id.key();
        self.with(move |c| query::read_record(c, &key)).await
    }

    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        if batch.writes_nothing() {
            return Ok(());
        }
        let batch = batch.clone();
        self.with(move |c| write::write_batch(c, &batch)).await
    }

    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        let q = query.clone();
        self.with(move |c| query::read_drifts(c, &q)).await
    }

    async fn drift(&self, episode: &str) -> Result<Option<Drift>, StoreError> {
        let episode = episode.to_owned();
        self.with(move |c| query::read_drift(c, &episode)).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        let q = query.clone();
        self.with(move |c| query::read_events(c, &q)).await
    }

    async fn scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        let env = environment.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |c| query::read_scans(c, env.as_deref(), limit))
            .await
    }

    async fn scans_at(
        &self,
        environments: &[String],
        times: &[DateTime<Utc>],
    ) -> Result<Vec<ScanSummary>, StoreError> {
        let envs = environments.to_vec();
        let times: Vec<i64> = times.iter().map(|t| nanos(*t)).collect();
        self.with(move |c| query::read_scans_at(c, &envs, &times))
            .await
    }

    async fn open_tallies(&self, environments: &[String]) -> Result<Vec<OpenTally>, StoreError> {
        let envs = environments.to_vec();
        self.with(move |c| query::read_open_tallies(c, &envs)).await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        let t = nanos(before);
        self.with(move |c| write::prune_before(c, t)).await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(sql))
            .await
    }

    async fn epoch(&self, environment: &str) -> Result<Option<u64>, StoreError> {
        let env = environment.to_owned();
        self.with(move |c| query::read_fence(c, &env)).await
    }

    async fn delivered_until(&self, notifier: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let notifier = notifier.to_owned();
        let until = self
            .with(move |c| query::read_delivered_until(c, &notifier))
            .await?;
        Ok(until.map(DateTime::from_timestamp_nanos))
    }

    async fn set_delivered_until(
        &self,
        notifier: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (notifier, until) = (notifier.to_owned(), nanos(until));
        self.with(move |c| write::write_delivered_until(c, &notifier, until))
            .await
    }

    async fn audit_index(&self, environment: &str) -> Result<AuditSnapshot, StoreError> {
        let env = environment.to_owned();
        self.with(move |c| query::read_audit(c, &env)).await
    }

    async fn save_audit_index(
        &self,
        environment: &str,
        changes: &AuditSnapshot,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let (env, changes) = (environment.to_owned(), changes.clone());
        self.with(move |c| write::write_audit(c, &env, &changes))
            .await
    }

    async fn acknowledgements(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<Acknowledgement>, StoreError> {
        let env = environment.map(str::to_owned);
        self.with(move |c| query::read_acks(c, env.as_deref()))
            .await
    }

    async fn actions(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<driftguard_core::actions::PersonAction>, StoreError> {
        let env = environment.map(str::to_owned);
        self.with(move |c| query::read_actions(c, env.as_deref(), limit))
            .await
    }

    async fn record_actions(
        &self,
        actions: &[driftguard_core::actions::PersonAction],
    ) -> Result<(), StoreError> {
        if actions.is_empty() {
            return Ok(());
        }
        let actions = actions.to_vec();
        self.with(move |c| write::write_actions(c, &actions)).await
    }

    async fn save_acknowledgements(&self, acks: &[Acknowledgement]) -> Result<(), StoreError> {
        if acks.is_empty() {
            return Ok(());
        }
        let acks = acks.to_vec();
        self.with(move |c| write::write_acks(c, &acks)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffered::{BufferHealth, BufferedStore};
    use driftguard_core::state::EventKind;
    use driftguard_test_support::build;

    /// A batch of `n` objects with an open drift each (bodies padded so that a few hundred
    /// objects take many pages).
    pub(super) fn batch(scan: &str, n: usize) -> ScanBatch {
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("valid time");
        let mut b = ScanBatch {
            environment: "prod".into(),
            ..ScanBatch::default()
        };
        for i in 0..n {
            let id = ResourceId::new("prod", "", "ConfigMap", Some("ns"), format!("cm-{i}"));
            let drift = build::drift()
                .episode(format!("{scan}-{i}"))
                .id(id.clone())
                .severity(driftguard_core::severity::Severity::Low)
                .at(at)
                .revision("x".repeat(2000))
                .build();
            b.events.push(DriftEvent {
                event_id: format!("{scan}-{i}-detected"),
                revision: None,
                ..build::event(EventKind::Detected, &drift, at, scan)
            });
            b.upserts.push(build::record(&id, Some(drift), at));
        }
        b
    }

    /// Test hook: runs `f` on the store's connection (page limits, timeouts).
    fn on_conn<T>(s: &SqliteStore, f: impl FnOnce(&Connection) -> T) -> T {
        f(&s.conn.lock().expect("lock"))
    }

    /// Caps the file at its current size (`PRAGMA max_page_count`): the next write that needs
    /// a new page fails with SQLITE_FULL, exactly like a full disk, whoever runs the test.
    fn fill_up(s: &SqliteStore) {
        on_conn(s, |c| {
            let pages: i64 = c
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .expect("page_count");
            let max: i64 = c
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                    r.get(0)
                })
                .expect("max_page_count");
            assert_eq!(max, pages);
        });
    }

    fn make_room(s: &SqliteStore) {
        on_conn(s, |c| {
            c.query_row("PRAGMA max_page_count = 1073741823", [], |_| Ok(()))
                .expect("max_page_count");
        });
    }

    fn chain(e: &StoreError) -> String {
        driftguard_core::error::chain(e)
    }

    #[tokio::test]
    async fn a_full_disk_is_unavailable_and_a_retry_succeeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SqliteStore::open(dir.path().join("full.db")).expect("opens");
        s.commit(&batch("a", 5))
            .await
            .expect("room for the first batch");
        fill_up(&s);
        let err = s.commit(&batch("b", 300)).await.expect_err("disk full");
        assert!(
            matches!(err, StoreError::Unavailable { .. }),
            "{err:?} is Unavailable"
        );
        assert!(chain(&err).contains("full"), "cause kept: {}", chain(&err));
        // all or nothing, and the store still answers
        assert_eq!(s.records("prod").await.expect("reads").len(), 5);
        make_room(&s);
        s.commit(&batch("b", 300)).await.expect("the retry passes");
        assert_eq!(s.records("prod").await.expect("reads").len(), 300);
    }

    #[tokio::test]
    async fn a_read_only_file_is_unavailable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ro.db");
        SqliteStore::open(&path)
            .expect("creates the file")
            .commit(&batch("a", 3))
            .await
            .expect("commits");
        // test hook: the same file opened read-only (as a file whose permissions were taken
        // away would be, for anyone but root, who runs these tests)
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("opens read-only");
        let ro = SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: Some(path),
        };
        assert_eq!(ro.records("prod").await.expect("reads").len(), 3);
        let err = ro.commit(&batch("b", 1)).await.expect_err("read-only");
        assert!(
            matches!(err, StoreError::Unavailable { .. }),
            "{err:?} is Unavailable"
        );
        assert!(chain(&err).contains("readonly"), "{}", chain(&err));
        let err = ro
            .set_delivered_until("webhook", DateTime::from_timestamp_nanos(1))
            .await
            .expect_err("read-only");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_locked_database_is_unavailable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("locked.db");
        let s = SqliteStore::open(&path).expect("opens");
        on_conn(&s, |c| {
            c.busy_timeout(Duration::from_millis(20)).expect("timeout")
        });
        let other = Connection::open(&path).expect("second connection");
        other
            .execute_batch("BEGIN IMMEDIATE")
            .expect("holds the lock");
        let err = s.commit(&batch("a", 1)).await.expect_err("locked");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        other.execute_batch("COMMIT").expect("releases");
        s.commit(&batch("a", 1)).await.expect("the retry passes");
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_unavailable() {
        // a folder where the file should be: SQLITE_CANTOPEN
        let dir = tempfile::tempdir().expect("tempdir");
        let err = SqliteStore::open(dir.path()).expect_err("a folder is no database");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        let text = chain(&err);
        assert!(text.contains("cannot open"), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
    }

    #[test]
    fn other_errors_are_not_unavailable() {
        let e = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert!(matches!(sql(e), StoreError::Backend { .. }));
        let e = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        );
        assert!(matches!(sql(e), StoreError::Corrupt { .. }));
        assert!(matches!(
            sql(rusqlite::Error::InvalidQuery),
            StoreError::Backend { .. }
        ));
    }

    /// The buffering wrapper keeps acknowledging while the disk is full, says why it is
    /// degraded, and drains once there is room again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buffered_sqlite_rides_out_a_full_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SqliteStore::open(dir.path().join("full.db")).expect("opens");
        s.commit(&batch("a", 5)).await.expect("commits");
        fill_up(&s);
        let b = BufferedStore::new(Arc::new(s.clone()), 10, Duration::from_millis(20));
        b.commit(&batch("b", 300))
            .await
            .expect("acknowledged while the disk is full");
        match b.status() {
            BufferHealth::Degraded { queued, last_error } => {
                assert_eq!(queued, 1);
                assert!(
                    last_error.contains("store unavailable") && last_error.contains("full"),
                    "the cause a person can act on: {last_error}"
                );
            }
            BufferHealth::Healthy => panic!("degraded while the disk is full"),
        }
        assert_eq!(b.records("prod").await.expect("reads").len(), 300);
        let health = b.health().await.expect_err("degraded");
        assert!(chain(&health).contains("full"), "{}", chain(&health));
        make_room(&s);
        assert!(b.flush(Duration::from_secs(30)).await, "drains");
        assert_eq!(b.status(), BufferHealth::Healthy);
        assert_eq!(s.records("prod").await.expect("reads").len(), 300);
    }
}
