//! Reads: records, drift episodes, events, scans, the fence, delivery marks and the audit
//! index, with the filters of [`DriftQuery`] and [`EventQuery`] turned into SQL (the meaning of
//! each filter is `driftguard_core::query`'s).

use chrono::DateTime;
use driftguard_core::ack::Acknowledgement;
use driftguard_core::audit::{AuditCursor, AuditSnapshot, ObjectWrites};
use driftguard_core::ports::{ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, DriftSort, DriftStatus, EventQuery, OpenTally, Page};
use driftguard_core::state::Direction;
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::schema::from_json;
use super::sql;
use crate::{corrupt, nanos, severity_of_rank, severity_rank};

/// The current records of one environment, by key.
pub(super) fn read_records(conn: &Connection, env: &str) -> Result<Vec<DriftRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT body FROM records WHERE env = ?1 ORDER BY key")
        .map_err(sql)?;
    let rows = stmt
        .query_map([env], |r| r.get::<_, String>(0))
        .map_err(sql)?;
    let mut out = Vec::new();
    for body in rows {
        out.push(from_json("record", &body.map_err(sql)?)?);
    }
    Ok(out)
}

/// The record of one object (by its key).
pub(super) fn read_record(conn: &Connection, key: &str) -> Result<Option<DriftRecord>, StoreError> {
    let body: Option<String> = conn
        .query_row("SELECT body FROM records WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sql)?;
    body.map(|b| from_json("record", &b)).transpose()
}

/// One drift episode.
pub(super) fn read_drift(conn: &Connection, episode: &str) -> Result<Option<Drift>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM episodes WHERE episode = ?1")
        .map_err(sql)?
        .query_row(params![episode], |r| r.get(0))
        .optional()
        .map_err(sql)?;
    body.map(|b| from_json("episode", &b)).transpose()
}

/// The latest scans, of one environment or of all, newest first.
pub(super) fn read_scans(
    conn: &Connection,
    env: Option<&str>,
    limit: i64,
) -> Result<Vec<ScanSummary>, StoreError> {
    let mut out = Vec::new();
    let mut push = |body: rusqlite::Result<String>| -> Result<(), StoreError> {
        out.push(from_json("scan", &body.map_err(sql)?)?);
        Ok(())
    };
    match env {
        Some(env) => {
            let mut stmt = conn
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
            let mut stmt = conn
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
}

/// The scans that tell each environment's state at each time (`times` in nanoseconds), each
/// once, newest first: per environment, one seek on `scans_env_started` per scan answered,
/// from the latest time back (every time between a scan and the time that found it is
/// answered by that scan).
pub(super) fn read_scans_at(
    conn: &Connection,
    envs: &[String],
    times: &[i64],
) -> Result<Vec<ScanSummary>, StoreError> {
    let mut times = times.to_vec();
    times.sort_unstable_by(|a, b| b.cmp(a));
    let mut envs: Vec<&String> = envs.iter().collect();
    envs.sort_unstable();
    envs.dedup();
    let mut stmt = conn
        .prepare_cached(
            "SELECT started_at, body FROM scans WHERE env = ?1 AND started_at <= ?2
             ORDER BY started_at DESC, scan_id DESC LIMIT 1",
        )
        .map_err(sql)?;
    let mut out = Vec::new();
    for env in envs {
        let mut rest = times.as_slice();
        while let Some(&t) = rest.first() {
            let found: Option<(i64, String)> = stmt
                .query_row(params![env, t], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(sql)?;
            let Some((started, body)) = found else {
                break; // nothing this early, so nothing earlier
            };
            out.push(from_json::<ScanSummary>("scan", &body)?);
            let next = rest.iter().position(|&u| u < started).unwrap_or(rest.len());
            rest = &rest[next..];
        }
    }
    out.sort_by(driftguard_core::query::newest_scan_first);
    Ok(out)
}

/// The open drifts of each environment counted (by severity and direction) and the oldest,
/// from the indexed columns: no drift's body is read.
pub(super) fn read_open_tallies(
    conn: &Connection,
    envs: &[String],
) -> Result<Vec<OpenTally>, StoreError> {
    let mut envs: Vec<&String> = envs.iter().collect();
    envs.sort_unstable();
    envs.dedup();
    let mut counts = conn
        .prepare_cached(
            "SELECT severity, direction, COUNT(*) FROM episodes WHERE env = ?1 AND open = 1
             GROUP BY severity, direction",
        )
        .map_err(sql)?;
    let mut oldest = conn
        .prepare_cached(
            "SELECT detected_at, episode FROM episodes WHERE env = ?1 AND open = 1
             ORDER BY detected_at ASC, episode ASC LIMIT 1",
        )
        .map_err(sql)?;
    let mut out = Vec::with_capacity(envs.len());
    for env in envs {
        let mut t = OpenTally {
            environment: env.clone(),
            ..OpenTally::default()
        };
        let rows = counts
            .query_map([env], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(sql)?;
        for row in rows {
            let (rank, direction, n) = row.map_err(sql)?;
            let severity = severity_of_rank(rank)
                .ok_or_else(|| corrupt("episode", format!("severity rank {rank}")))?;
            let direction: Direction = direction.parse().map_err(|e| corrupt("episode", e))?;
            t.counts.insert((severity, direction), n.max(0) as usize);
        }
        t.oldest = oldest
            .query_row([env], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .optional()
            .map_err(sql)?
            .map(|(at, ep)| (DateTime::from_timestamp_nanos(at), ep));
        out.push(t);
    }
    Ok(out)
}

/// The highest leadership epoch written for an environment.
pub(super) fn read_fence(conn: &Connection, env: &str) -> Result<Option<u64>, StoreError> {
    conn.query_row("SELECT epoch FROM fences WHERE env = ?1", [env], |r| {
        r.get::<_, i64>(0)
    })
    .optional()
    .map(|e| e.map(|e| e.max(0) as u64))
    .map_err(sql)
}

/// How far a notifier's deliveries went (nanoseconds).
pub(super) fn read_delivered_until(
    conn: &Connection,
    notifier: &str,
) -> Result<Option<i64>, StoreError> {
    conn.query_row(
        "SELECT until_at FROM deliveries WHERE notifier = ?1",
        [notifier],
        |r| r.get(0),
    )
    .optional()
    .map_err(sql)
}

/// The audit index of one environment, objects and cursors in order.
pub(super) fn read_audit(conn: &Connection, env: &str) -> Result<AuditSnapshot, StoreError> {
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

/// The acknowledgements of one environment (of all for `None`), by environment and episode.
pub(super) fn read_acks(
    conn: &Connection,
    env: Option<&str>,
) -> Result<Vec<Acknowledgement>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT body FROM acks WHERE ?1 IS NULL OR env = ?1 ORDER BY env, episode")
        .map_err(sql)?;
    let rows = stmt
        .query_map([env], |r| r.get::<_, String>(0))
        .map_err(sql)?;
    let mut out = Vec::new();
    for body in rows {
        out.push(from_json("acknowledgement", &body.map_err(sql)?)?);
    }
    Ok(out)
}

/// People's actions, newest first, of one environment (of all for `None`), at most `limit`.
pub(super) fn read_actions(
    conn: &Connection,
    env: Option<&str>,
    limit: usize,
) -> Result<Vec<driftguard_core::actions::PersonAction>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT body FROM actions WHERE ?1 IS NULL OR env = ?1
             ORDER BY at DESC, id DESC LIMIT ?2",
        )
        .map_err(sql)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(rusqlite::params![env, limit], |r| r.get::<_, String>(0))
        .map_err(sql)?;
    let mut out = Vec::new();
    for body in rows {
        out.push(from_json("action", &body.map_err(sql)?)?);
    }
    Ok(out)
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

/// The `WHERE` clause of a drift query and its arguments.
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

/// The `ORDER BY` of a drift sort.
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

/// A page of drift episodes.
pub(super) fn read_drifts(conn: &Connection, q: &DriftQuery) -> Result<Page<Drift>, StoreError> {
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

/// A page of events.
pub(super) fn read_events(
    conn: &Connection,
    q: &EventQuery,
) -> Result<Page<DriftEvent>, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_escape_sqlite_specials() {
        assert_eq!(sqlite_glob("web-*"), "web-*");
        assert_eq!(sqlite_glob("a?[b]"), "a[?][[]b]");
    }
}
