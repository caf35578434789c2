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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use driftguard_core::audit::{AuditCursor, AuditSnapshot, ObjectWrites};
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, DriftSort, DriftStatus, EventQuery, Page};
use driftguard_core::state::{episode_replaces, Drift, DriftEvent, DriftRecord, EpisodeStamp};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Transaction};

use crate::{backend, corrupt, nanos, severity_rank};

/// Schema migrations; `MIGRATIONS[i]` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: records, events, episodes, scans
    "
    CREATE TABLE records (
        key TEXT PRIMARY KEY,
        env TEXT NOT NULL,
        body TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX records_env ON records(env);

    CREATE TABLE events (
        event_id TEXT PRIMARY KEY,
        env TEXT NOT NULL,
        object_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        at INTEGER NOT NULL,
        scan_id TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX events_env_at ON events(env, at, event_id);
    CREATE INDEX events_object_at ON events(object_key, at, event_id);
    CREATE INDEX events_at ON events(at, event_id);

    CREATE TABLE episodes (
        episode TEXT PRIMARY KEY,
        env TEXT NOT NULL,
        grp TEXT NOT NULL,
        kind TEXT NOT NULL,
        namespace TEXT,
        name TEXT NOT NULL,
        drift_kind TEXT NOT NULL,
        direction TEXT NOT NULL,
        severity INTEGER NOT NULL,
        open INTEGER NOT NULL,
        detected_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        resolved_at INTEGER,
        body TEXT NOT NULL
    );
    CREATE INDEX episodes_env_open_sev ON episodes(env, open, severity DESC, detected_at, episode);
    CREATE INDEX episodes_open_sev ON episodes(open, severity DESC, detected_at, episode);
    CREATE INDEX episodes_env_detected ON episodes(env, open, detected_at, episode);
    CREATE INDEX episodes_env_updated ON episodes(env, open, updated_at DESC, episode);
    CREATE INDEX episodes_resolved ON episodes(resolved_at) WHERE resolved_at IS NOT NULL;

    CREATE TABLE scans (
        scan_id TEXT PRIMARY KEY,
        env TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX scans_env_started ON scans(env, started_at DESC, scan_id DESC);
    CREATE INDEX scans_started ON scans(started_at DESC, scan_id DESC);
    ",
    // 2: how far each notifier's deliveries went
    "
    CREATE TABLE deliveries (
        notifier TEXT PRIMARY KEY,
        until_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 3: the highest leadership epoch written per environment (fencing)
    "
    CREATE TABLE fences (
        env TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 4: the audit index: recent writes per object, how far audit log files were read
    "
    CREATE TABLE audit_writes (
        env TEXT NOT NULL,
        object_key TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (env, object_key)
    ) WITHOUT ROWID;
    CREATE TABLE audit_cursors (
        env TEXT NOT NULL,
        source TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (env, source)
    ) WITHOUT ROWID;
    ",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

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
        migrate(&mut conn).map_err(|e| match e {
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

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt {
            what: format!(
                "schema version {version} is newer than this DriftGuard understands \
                 ({SCHEMA_VERSION}); upgrade DriftGuard"
            ),
        });
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(m).map_err(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(sql)?;
    }
    tx.commit().map_err(sql)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| backend("serialize", e))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

fn put_episode(tx: &Transaction<'_>, d: &Drift) -> Result<(), StoreError> {
    let stored: Option<EpisodeStamp> = tx
        .query_row(
            "SELECT updated_at, open FROM episodes WHERE episode = ?1",
            [&d.episode],
            |r| {
                Ok(EpisodeStamp {
                    updated_at: DateTime::from_timestamp_nanos(r.get(0)?),
                    open: r.get(1)?,
                })
            },
        )
        .optional()
        .map_err(sql)?;
    if !episode_replaces(stored, d) {
        return Ok(());
    }
    tx.execute(
        "INSERT OR REPLACE INTO episodes (episode, env, grp, kind, namespace, name, drift_kind,
             direction, severity, open, detected_at, updated_at, resolved_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            d.episode,
            d.id.environment,
            d.id.group,
            d.id.kind,
            d.id.namespace,
            d.id.name,
            d.kind.as_str(),
            d.direction.as_str(),
            severity_rank(d.severity),
            d.is_open(),
            nanos(d.detected_at),
            nanos(d.updated_at),
            d.resolved_at.map(nanos),
            to_json(d)?,
        ],
    )
    .map_err(sql)?;
    Ok(())
}

/// Checks the batch's epoch against the one kept for its environment and records it, inside
/// the batch's transaction (the rule: [`driftguard_core::fence::check`]).
fn fence(tx: &Transaction<'_>, batch: &ScanBatch) -> Result<(), StoreError> {
    if batch.epoch.is_none() {
        return Ok(());
    }
    let stored: Option<i64> = tx
        .query_row(
            "SELECT epoch FROM fences WHERE env = ?1",
            [&batch.environment],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?;
    let stored = stored.map(|e| e.max(0) as u64);
    if let Some(epoch) = driftguard_core::fence::check(&batch.environment, stored, batch.epoch)? {
        let epoch = i64::try_from(epoch).map_err(|e| backend("leadership epoch", e))?;
        tx.execute(
            "INSERT OR REPLACE INTO fences (env, epoch) VALUES (?1, ?2)",
            params![batch.environment, epoch],
        )
        .map_err(sql)?;
    }
    Ok(())
}

fn read_audit(conn: &Connection, env: &str) -> Result<AuditSnapshot, StoreError> {
    let mut snap = AuditSnapshot::default();
    let mut stmt = conn
        .prepare_cached("SELECT body FROM audit_writes WHERE env = ?1")
        .map_err(sql)?;
    for body in stmt
        .query_map([env], |r| r.get::<_, String>(0))
        .map_err(sql)?
    {
        snap.objects.push(from_json::<ObjectWrites>(
            "audit writes",
            &body.map_err(sql)?,
        )?);
    }
    let mut stmt = conn
        .prepare_cached("SELECT body FROM audit_cursors WHERE env = ?1")
        .map_err(sql)?;
    for body in stmt
        .query_map([env], |r| r.get::<_, String>(0))
        .map_err(sql)?
    {
        snap.cursors.push(from_json::<AuditCursor>(
            "audit cursor",
            &body.map_err(sql)?,
        )?);
    }
    snap.objects.sort_by(|a, b| a.object.cmp(&b.object));
    snap.cursors.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(snap)
}

fn save_audit(conn: &mut Connection, env: &str, changes: &AuditSnapshot) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    {
        let mut put = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO audit_writes (env, object_key, body) VALUES (?1, ?2, ?3)",
            )
            .map_err(sql)?;
        let mut del = tx
            .prepare_cached("DELETE FROM audit_writes WHERE env = ?1 AND object_key = ?2")
            .map_err(sql)?;
        for o in &changes.objects {
            if o.writes.is_empty() {
                del.execute(params![env, o.object.key()]).map_err(sql)?;
            } else {
                put.execute(params![env, o.object.key(), to_json(o)?])
                    .map_err(sql)?;
            }
        }
        let mut cur = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO audit_cursors (env, source, body) VALUES (?1, ?2, ?3)",
            )
            .map_err(sql)?;
        for c in &changes.cursors {
            cur.execute(params![env, c.source, to_json(c)?])
                .map_err(sql)?;
        }
    }
    tx.commit().map_err(sql)
}

fn commit_batch(conn: &mut Connection, batch: &ScanBatch) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    fence(&tx, batch)?;
    {
        let mut up = tx
            .prepare_cached("INSERT OR REPLACE INTO records (key, env, body) VALUES (?1, ?2, ?3)")
            .map_err(sql)?;
        for r in &batch.upserts {
            up.execute(params![r.id.key(), r.id.environment, to_json(r)?])
                .map_err(sql)?;
        }
        let mut del = tx
            .prepare_cached("DELETE FROM records WHERE key = ?1")
            .map_err(sql)?;
        for id in &batch.deletes {
            del.execute([id.key()]).map_err(sql)?;
        }
        let mut ins = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO events (event_id, env, object_key, kind, at, scan_id, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(sql)?;
        for e in &batch.events {
            let n = ins
                .execute(params![
                    e.event_id,
                    e.drift.id.environment,
                    e.drift.id.key(),
                    e.kind.as_str(),
                    nanos(e.at),
                    e.scan_id,
                    to_json(e)?,
                ])
                .map_err(sql)?;
            // only a newly written event moves its episode (a retried batch changes nothing)
            if n == 1 {
                put_episode(&tx, &e.drift)?;
            }
        }
        if let Some(s) = &batch.summary {
            tx.execute(
                "INSERT OR REPLACE INTO scans (scan_id, env, started_at, body)
                 VALUES (?1, ?2, ?3, ?4)",
                params![s.scan_id, s.environment, nanos(s.started_at), to_json(s)?],
            )
            .map_err(sql)?;
        }
    }
    tx.commit().map_err(sql)
}

/// Escapes a DriftGuard name glob (`*` only) for SQLite's GLOB (which also knows `?` and `[`).
fn sqlite_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

fn drift_where(q: &DriftQuery) -> (String, Vec<SqlValue>) {
    let mut clauses: Vec<&str> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(e) = &q.environment {
        clauses.push("env = ?");
        args.push(e.clone().into());
    }
    match q.status {
        DriftStatus::Open => clauses.push("open = 1"),
        DriftStatus::Resolved => clauses.push("open = 0"),
        DriftStatus::All => {}
    }
    if let Some(g) = &q.group {
        clauses.push("grp = ?");
        args.push(g.clone().into());
    }
    if let Some(k) = &q.kind {
        clauses.push("kind = ?");
        args.push(k.clone().into());
    }
    if let Some(n) = &q.namespace {
        clauses.push("namespace = ?");
        args.push(n.clone().into());
    }
    if let Some(n) = &q.name {
        clauses.push("name GLOB ?");
        args.push(sqlite_glob(n).into());
    }
    if let Some(k) = q.drift {
        clauses.push("drift_kind = ?");
        args.push(k.as_str().to_owned().into());
    }
    if let Some(d) = q.direction {
        clauses.push("direction = ?");
        args.push(d.as_str().to_owned().into());
    }
    if let Some(s) = q.min_severity {
        clauses.push("severity >= ?");
        args.push(severity_rank(s).into());
    }
    if let Some(t) = q.detected_before {
        clauses.push("detected_at < ?");
        args.push(nanos(t).into());
    }
    let w = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (w, args)
}

fn drift_order(s: DriftSort) -> &'static str {
    match s {
        DriftSort::Severity => "severity DESC, detected_at ASC, episode ASC",
        DriftSort::Detected => "detected_at ASC, episode ASC",
        DriftSort::Updated => "updated_at DESC, episode ASC",
        DriftSort::Object => {
            "env ASC, grp ASC, kind ASC, namespace IS NOT NULL, namespace ASC, name ASC, episode ASC"
        }
    }
}

fn limit_args(limit: usize, offset: usize) -> (i64, i64) {
    (
        i64::try_from(limit).unwrap_or(i64::MAX),
        i64::try_from(offset).unwrap_or(i64::MAX),
    )
}

fn page<T>(items: Vec<T>, total: usize, offset: usize) -> Page<T> {
    let end = offset + items.len();
    Page {
        next_offset: (end < total).then_some(end),
        items,
        total,
    }
}

fn query_drifts(conn: &Connection, q: &DriftQuery) -> Result<Page<Drift>, StoreError> {
    let (w, mut args) = drift_where(q);
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM episodes{w}"))
        .map_err(sql)?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))
        .map_err(sql)?;
    let (limit, offset) = limit_args(q.limit, q.offset);
    args.push(limit.into());
    args.push(offset.into());
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT body FROM episodes{w} ORDER BY {} LIMIT ? OFFSET ?",
            drift_order(q.sort)
        ))
        .map_err(sql)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(0))
        .map_err(sql)?;
    let mut items = Vec::new();
    for body in rows {
        items.push(from_json("episode", &body.map_err(sql)?)?);
    }
    Ok(page(items, total as usize, q.offset))
}

fn query_events(conn: &Connection, q: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
    let mut clauses: Vec<&str> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(e) = &q.environment {
        clauses.push("env = ?");
        args.push(e.clone().into());
    }
    if let Some(o) = &q.object {
        clauses.push("object_key = ?");
        args.push(o.key().into());
    }
    if let Some(k) = q.kind {
        clauses.push("kind = ?");
        args.push(k.as_str().to_owned().into());
    }
    if let Some(s) = q.since {
        clauses.push("at >= ?");
        args.push(nanos(s).into());
    }
    if let Some(u) = q.until {
        clauses.push("at < ?");
        args.push(nanos(u).into());
    }
    let w = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM events{w}"))
        .map_err(sql)?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))
        .map_err(sql)?;
    let (limit, offset) = limit_args(q.limit, q.offset);
    args.push(limit.into());
    args.push(offset.into());
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT body FROM events{w} ORDER BY at ASC, event_id ASC LIMIT ? OFFSET ?"
        ))
        .map_err(sql)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(0))
        .map_err(sql)?;
    let mut items = Vec::new();
    for body in rows {
        items.push(from_json("event", &body.map_err(sql)?)?);
    }
    Ok(page(items, total as usize, q.offset))
}

#[async_trait]
impl DriftStore for SqliteStore {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        let env = environment.to_owned();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT body FROM records WHERE env = ?1 ORDER BY key")
                .map_err(sql)?;
            let rows = stmt
                .query_map([&env], |r| r.get::<_, String>(0))
                .map_err(sql)?;
            let mut out = Vec::new();
            for body in rows {
                out.push(from_json("record", &body.map_err(sql)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn record(&self, id: &ResourceId) -> Result<Option<DriftRecord>, StoreError> {
        let key = id.key();
        self.with(move |c| {
            let body: Option<String> = c
                .query_row("SELECT body FROM records WHERE key = ?1", [&key], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql)?;
            body.map(|b| from_json("record", &b)).transpose()
        })
        .await
    }

    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        if batch.writes_nothing() {
            return Ok(());
        }
        let batch = batch.clone();
        self.with(move |c| commit_batch(c, &batch)).await
    }

    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        let q = query.clone();
        self.with(move |c| query_drifts(c, &q)).await
    }

    async fn drift(&self, episode: &str) -> Result<Option<Drift>, StoreError> {
        let episode = episode.to_owned();
        self.with(move |c| {
            let body: Option<String> = c
                .prepare_cached("SELECT body FROM episodes WHERE episode = ?1")
                .map_err(sql)?
                .query_row(params![episode], |r| r.get(0))
                .optional()
                .map_err(sql)?;
            body.map(|b| from_json("episode", &b)).transpose()
        })
        .await
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        let q = query.clone();
        self.with(move |c| query_events(c, &q)).await
    }

    async fn scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        let env = environment.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |c| {
            let mut out = Vec::new();
            let mut push = |body: rusqlite::Result<String>| -> Result<(), StoreError> {
                out.push(from_json("scan", &body.map_err(sql)?)?);
                Ok(())
            };
            match env {
                Some(env) => {
                    let mut stmt = c
                        .prepare_cached(
                            "SELECT body FROM scans WHERE env = ?1
                             ORDER BY started_at DESC, scan_id DESC LIMIT ?2",
                        )
                        .map_err(sql)?;
                    for b in stmt
                        .query_map(params![env, limit], |r| r.get::<_, String>(0))
                        .map_err(sql)?
                    {
                        push(b)?;
                    }
                }
                None => {
                    let mut stmt = c
                        .prepare_cached(
                            "SELECT body FROM scans ORDER BY started_at DESC, scan_id DESC LIMIT ?1",
                        )
                        .map_err(sql)?;
                    for b in stmt
                        .query_map(params![limit], |r| r.get::<_, String>(0))
                        .map_err(sql)?
                    {
                        push(b)?;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        let t = nanos(before);
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql)?;
            let events = tx
                .execute("DELETE FROM events WHERE at < ?1", [t])
                .map_err(sql)?;
            let scans = tx
                .execute("DELETE FROM scans WHERE started_at < ?1", [t])
                .map_err(sql)?;
            let episodes = tx
                .execute(
                    "DELETE FROM episodes WHERE resolved_at IS NOT NULL AND resolved_at < ?1",
                    [t],
                )
                .map_err(sql)?;
            tx.commit().map_err(sql)?;
            Ok(PruneStats {
                events: events as u64,
                scans: scans as u64,
                episodes: episodes as u64,
            })
        })
        .await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(sql))
            .await
    }

    async fn epoch(&self, environment: &str) -> Result<Option<u64>, StoreError> {
        let env = environment.to_owned();
        self.with(move |c| {
            c.query_row("SELECT epoch FROM fences WHERE env = ?1", [&env], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|e| e.map(|e| e.max(0) as u64))
            .map_err(sql)
        })
        .await
    }

    async fn delivered_until(&self, notifier: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let notifier = notifier.to_owned();
        let until: Option<i64> = self
            .with(move |c| {
                c.query_row(
                    "SELECT until_at FROM deliveries WHERE notifier = ?1",
                    [&notifier],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)
            })
            .await?;
        Ok(until.map(DateTime::from_timestamp_nanos))
    }

    async fn set_delivered_until(
        &self,
        notifier: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (notifier, until) = (notifier.to_owned(), nanos(until));
        self.with(move |c| {
            c.execute(
                "INSERT INTO deliveries (notifier, until_at) VALUES (?1, ?2)
                 ON CONFLICT (notifier) DO UPDATE SET until_at = max(until_at, excluded.until_at)",
                params![notifier, until],
            )
            .map(|_| ())
            .map_err(sql)
        })
        .await
    }

    async fn audit_index(&self, environment: &str) -> Result<AuditSnapshot, StoreError> {
        let env = environment.to_owned();
        self.with(move |c| read_audit(c, &env)).await
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
        self.with(move |c| save_audit(c, &env, &changes)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffered::{BufferHealth, BufferedStore};
    use driftguard_core::state::{Direction, DriftKind, EventKind};

    /// A batch of `n` objects with an open drift each (bodies padded so that a few hundred
    /// objects take many pages).
    fn batch(scan: &str, n: usize) -> ScanBatch {
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("valid time");
        let mut b = ScanBatch {
            environment: "prod".into(),
            ..ScanBatch::default()
        };
        for i in 0..n {
            let id = ResourceId::new("prod", "", "ConfigMap", Some("ns"), format!("cm-{i}"));
            let drift = Drift {
                episode: format!("{scan}-{i}"),
                id: id.clone(),
                api_version: "v1".into(),
                kind: DriftKind::Modified,
                direction: Direction::Forward,
                severity: driftguard_core::severity::Severity::Low,
                fields: Vec::new(),
                attribution: Default::default(),
                detected_at: at,
                updated_at: at,
                resolved_at: None,
                resolution: None,
                resolved_by: None,
                revision: Some("x".repeat(2000)),
                provenance: None,
                findings: Vec::new(),
            };
            b.events.push(DriftEvent {
                remediation: None,
                event_id: format!("{scan}-{i}-detected"),
                kind: EventKind::Detected,
                at,
                scan_id: scan.into(),
                revision: None,
                drift: drift.clone(),
            });
            b.upserts.push(DriftRecord {
                id,
                api_version: "v1".into(),
                desired_hash: None,
                live_hash: None,
                baseline: None,
                drift: Some(drift),
                applied_mark: None,
                updated_at: at,
            });
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

    #[test]
    fn globs_escape_sqlite_specials() {
        assert_eq!(sqlite_glob("web-*"), "web-*");
        assert_eq!(sqlite_glob("a?[b]"), "a[?][[]b]");
    }

    /// A file written by the previous schema (2) is brought to 3: what it held is kept, and
    /// the audit index can be saved and read.
    #[tokio::test]
    async fn migrates_a_version_2_file_to_the_audit_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v2.db");
        {
            let mut c = Connection::open(&path).expect("raw open");
            let tx = c.transaction().expect("tx");
            for (i, m) in MIGRATIONS.iter().take(2).enumerate() {
                tx.execute_batch(m).expect("old migration");
                tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                    .expect("version");
            }
            tx.commit().expect("commit");
            commit_batch(&mut c, &batch("old", 3)).expect("old data");
            c.execute_batch("INSERT INTO deliveries VALUES ('webhook', 42)")
                .expect("a mark");
        }
        let s = SqliteStore::open(&path).expect("migrates");
        assert_eq!(s.schema_version().await.expect("version"), SCHEMA_VERSION);
        assert_eq!(s.records("prod").await.expect("records").len(), 3);
        assert_eq!(
            s.delivered_until("webhook").await.expect("mark"),
            Some(DateTime::from_timestamp_nanos(42))
        );
        let saves = crate::test_probe::audit();
        s.save_audit_index("prod", &saves).await.expect("saves");
        let mut want = AuditSnapshot::default();
        want.apply(&saves);
        assert_eq!(s.audit_index("prod").await.expect("reads"), want);
        assert!(s.audit_index("dev").await.expect("reads").is_empty());
    }

    #[tokio::test]
    async fn migrates_once_and_refuses_newer_schemas() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let s = SqliteStore::open(&path).expect("opens");
        assert_eq!(s.schema_version().await.expect("version"), SCHEMA_VERSION);
        drop(s);
        let s = SqliteStore::open(&path).expect("reopens");
        assert_eq!(s.schema_version().await.expect("version"), SCHEMA_VERSION);
        drop(s);
        let c = Connection::open(&path).expect("raw open");
        c.execute_batch("PRAGMA user_version = 99").expect("bump");
        drop(c);
        let err = SqliteStore::open(&path).expect_err("newer schema refused");
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
