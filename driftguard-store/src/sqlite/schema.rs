//! What is stored where: the tables, their indexes and the schema migrations.
//!
//! Every row holds the indexed columns the filters use and the serde JSON form of the value in
//! `body`. Times are integer nanoseconds ([`crate::nanos`]), severities their rank
//! ([`crate::severity_rank`]), so that order matches the in-memory store exactly.
//!
//! The schema version is SQLite's `PRAGMA user_version`; [`migrate`] applies the missing
//! [`MIGRATIONS`] at open, in one transaction.

use rusqlite::Connection;

use super::sql;
use crate::{backend, corrupt};
use driftguard_core::ports::StoreError;

/// Schema migrations; `MIGRATIONS[i]` brings the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 5: acknowledged drift, one per episode (lapsed_at: when its lapse was recorded)
    "
    CREATE TABLE acks (
        env TEXT NOT NULL,
        episode TEXT NOT NULL,
        lapsed_at INTEGER,
        body TEXT NOT NULL,
        PRIMARY KEY (env, episode)
    ) WITHOUT ROWID;
    CREATE INDEX acks_lapsed ON acks(lapsed_at) WHERE lapsed_at IS NOT NULL;
    ",
    // 6: what people did (scan now, acknowledge, remediate, failed sign-ins)
    "
    CREATE TABLE actions (
        id TEXT PRIMARY KEY,
        env TEXT,
        at INTEGER NOT NULL,
        body TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX actions_at ON actions(at DESC, id DESC);
    CREATE INDEX actions_env_at ON actions(env, at DESC, id DESC);
    ",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to date in one `BEGIN IMMEDIATE` transaction; refuses a file written
/// by a newer schema.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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

/// A value's serde JSON form: the `body` column.
pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| backend("serialize", e))
}

/// A `body` column read back.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use driftguard_core::audit::AuditSnapshot;
    use driftguard_core::ports::DriftStore;
    use rusqlite::Connection;

    use super::{MIGRATIONS, SCHEMA_VERSION};
    use crate::sqlite::tests::batch;
    use crate::sqlite::write::write_batch;
    use crate::sqlite::SqliteStore;

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
            write_batch(&mut c, &batch("old", 3)).expect("old data");
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
