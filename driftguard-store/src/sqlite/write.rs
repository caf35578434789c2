//! Writes: a scan batch (one transaction, fenced), delivery marks, the audit index,
//! acknowledgements, pruning.
//!
//! Writes are idempotent, so a retried batch changes nothing: records are replaced by key;
//! events are inserted by id (duplicates ignored), and only a newly written event moves its
//! episode (by the core's episode rule, [`episode_replaces`]).

use chrono::DateTime;
use driftguard_core::ack::Acknowledgement;
use driftguard_core::audit::AuditSnapshot;
use driftguard_core::ports::{PruneStats, ScanBatch, StoreError};
use driftguard_core::state::{episode_replaces, Drift, EpisodeStamp};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::schema::to_json;
use super::sql;
use crate::{backend, nanos, severity_rank};

/// Writes an event's episode unless the stored version wins ([`episode_replaces`]).
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

/// Saves changes to the audit index: an object without writes is removed, cursors replaced.
pub(super) fn write_audit(
    conn: &mut Connection,
    env: &str,
    changes: &AuditSnapshot,
) -> Result<(), StoreError> {
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

/// Saves acknowledgements in one transaction, each replacing the one of its episode.
pub(super) fn write_acks(
    conn: &mut Connection,
    acks: &[Acknowledgement],
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    {
        let mut put = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO acks (env, episode, lapsed_at, body) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sql)?;
        for a in acks {
            put.execute(params![
                a.environment(),
                a.episode,
                a.lapsed.as_ref().map(|l| nanos(l.at)),
                to_json(a)?
            ])
            .map_err(sql)?;
        }
    }
    tx.commit().map_err(sql)
}

/// Records people's actions (one with an id already kept replaces it).
pub(super) fn write_actions(
    conn: &mut Connection,
    actions: &[driftguard_core::actions::PersonAction],
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    {
        let mut put = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO actions (id, env, at, body) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sql)?;
        for a in actions {
            put.execute(params![a.id, a.environment, nanos(a.at), to_json(a)?])
                .map_err(sql)?;
        }
    }
    tx.commit().map_err(sql)
}

/// Writes one batch in one `BEGIN IMMEDIATE` transaction, after its epoch passed the fence:
/// records, new events and their episodes, the summary.
pub(super) fn write_batch(conn: &mut Connection, batch: &ScanBatch) -> Result<(), StoreError> {
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

/// Deletes events and scans older than `t` (nanoseconds), and episodes resolved before it.
pub(super) fn prune_before(conn: &mut Connection, t: i64) -> Result<PruneStats, StoreError> {
    let tx = conn
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
    tx.execute("DELETE FROM actions WHERE at < ?1", [t])
        .map_err(sql)?;
    // the rule of `ack::pruned`: acknowledgements whose lapse was recorded before `t`
    tx.execute(
        "DELETE FROM acks WHERE lapsed_at IS NOT NULL AND lapsed_at < ?1",
        [t],
    )
    .map_err(sql)?;
    tx.commit().map_err(sql)?;
    Ok(PruneStats {
        events: events as u64,
        scans: scans as u64,
        episodes: episodes as u64,
    })
}

/// Moves a notifier's delivery mark forward (never back).
pub(super) fn write_delivered_until(
    conn: &Connection,
    notifier: &str,
    until: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO deliveries (notifier, until_at) VALUES (?1, ?2)
         ON CONFLICT (notifier) DO UPDATE SET until_at = max(until_at, excluded.until_at)",
        params![notifier, until],
    )
    .map(|_| ())
    .map_err(sql)
}
