//! The read and scan operations behind the API and the MCP server: each is one function over
//! [`AppState`], answering the API's DTOs or its one error shape. The REST handlers
//! ([`crate::api`]) and the MCP tools ([`crate::mcp`]) are thin views over these; neither holds
//! a rule of its own (filters parse into the core's `DriftQuery`, references into its
//! `ObjectRef`, plans come from `driftguard_core::remediation`).

use axum::http::StatusCode;
use driftguard_core::id::{ObjectRef as CoreObjectRef, ObjectRefError, ResourceId};
use driftguard_core::query::{DriftQuery, DriftSort, DriftStatus};
use driftguard_core::remediation::{plan, RemediationAction};

use crate::dto::*;
use crate::environment::{Environment, RunScanError, SourceState};
use crate::error::AppError;
use crate::state::AppState;

/// The environment called `name`, or a 404.
pub fn environment<'a>(
    state: &'a AppState,
    name: &str,
) -> Result<&'a std::sync::Arc<Environment>, AppError> {
    state
        .environment(name)
        .ok_or_else(|| AppError::not_found(format!("no environment `{name}`")))
}

/// A 404 when `env` names an environment that does not exist (absent or empty: any).
pub fn known_env(state: &AppState, env: &Option<String>) -> Result<(), AppError> {
    match env.as_deref() {
        Some(e) if !e.is_empty() => environment(state, e).map(|_| ()),
        _ => Ok(()),
    }
}

fn source_dto(source: &str, description: String, s: &SourceState) -> SourceDto {
    SourceDto {
        source: source.into(),
        description,
        up: s.up,
        last_ok: s.last_ok,
        error: s.error.clone(),
    }
}

/// One environment with its status and score.
pub fn environment_dto(env: &Environment) -> EnvironmentDto {
    let s = env.status();
    let status = if s.last_error.is_some() {
        "error"
    } else if s.last_scan.is_none() {
        "pending"
    } else if s.open_drifts > 0 {
        "drifted"
    } else {
        "in_sync"
    };
    EnvironmentDto {
        name: env.name.clone(),
        status: status.into(),
        score: s.last_scan.as_ref().map(|l| l.score),
        open_drifts: s.open_drifts,
        scanning: s.scanning,
        watching: s.watching,
        last_scan: s.last_scan.as_ref().map(ScanDto::from),
        last_error: s.last_error.clone(),
        sources: vec![
            source_dto("git", env.scanner.describe_git(), &s.git),
            source_dto("live", env.scanner.describe_live(), &s.live),
        ],
    }
}

/// Every environment.
pub fn environments(state: &AppState) -> EnvironmentList {
    EnvironmentList {
        items: state
            .environments
            .iter()
            .map(|e| environment_dto(e))
            .collect(),
    }
}

/// A page of drift episodes (the query is checked: an unknown environment is a 404).
pub async fn drifts(state: &AppState, query: &DriftQuery) -> Result<DriftPage, AppError> {
    known_env(state, &query.environment)?;
    let page = state.store.drifts(query).await?;
    Ok(DriftPage {
        items: page.items.iter().map(DriftSummary::from).collect(),
        total: page.total,
        limit: query.limit,
        offset: query.offset,
        next_offset: page.next_offset,
    })
}

/// One drift episode with its field diff, attribution and findings.
pub async fn drift(state: &AppState, episode: &str) -> Result<DriftDetail, AppError> {
    match state.store.drift(episode).await? {
        Some(d) => Ok(DriftDetail::from(&d)),
        None => Err(AppError::not_found(format!("no drift episode `{episode}`"))),
    }
}

/// The remediation plan of a drift episode: `action`, or the suggested one. Never applied.
pub async fn remediation(
    state: &AppState,
    episode: &str,
    action: Option<RemediationAction>,
) -> Result<RemediationDto, AppError> {
    match state.store.drift(episode).await? {
        Some(d) => Ok(RemediationDto::from(&plan(&d, action))),
        None => Err(AppError::not_found(format!("no drift episode `{episode}`"))),
    }
}

/// The record and events (oldest first, at most `limit`) of the object `reference` names in
/// `env`.
pub async fn object_history(
    state: &AppState,
    env: &str,
    reference: &str,
    limit: usize,
) -> Result<ObjectHistory, AppError> {
    environment(state, env)?;
    let Some(id) = find_object(state, env, reference).await? else {
        return Err(AppError::not_found(format!(
            "nothing known about {env}:{reference}"
        )));
    };
    let record = state.store.record(&id).await?;
    let events = state.store.history(&id, limit).await?;
    if record.is_none() && events.is_empty() {
        return Err(AppError::not_found(format!("nothing known about {id}")));
    }
    Ok(ObjectHistory {
        object: ObjectRef::from(&id),
        record: record.as_ref().map(RecordDto::from),
        events: events.iter().map(EventDto::from).collect(),
    })
}

/// Scans an environment now (the scan goes on even if the caller goes away) and answers its
/// summary: 502 `scan_failed` when a source cannot be read, 503 `store_unavailable` when the
/// store cannot be written.
pub async fn scan_now(state: &AppState, env: &str) -> Result<ScanDto, AppError> {
    let e = environment(state, env)?.clone();
    let ctx = state.scan_context();
    let handle = tokio::spawn(async move { e.run_scan(&ctx).await });
    match handle.await {
        Ok(Ok(summary)) => Ok(ScanDto::from(&summary)),
        Ok(Err(RunScanError::Source(msg))) => {
            Err(AppError::new(StatusCode::BAD_GATEWAY, "scan_failed", msg))
        }
        Ok(Err(RunScanError::Store(msg))) => Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            msg,
        )),
        Err(_) => Err(AppError::internal()),
    }
}

/// The object a reference (`Kind[.group]/[namespace/]name`, see [`CoreObjectRef`]) names in
/// `env`, as the CLI's `history` and `explain` find it: an absent group or namespace means
/// any. A reference that gives every part is taken as it is; otherwise the object is looked
/// for among the drift episodes, then among the tracked objects. `None`: nothing matches.
pub async fn find_object(
    state: &AppState,
    env: &str,
    text: &str,
) -> Result<Option<ResourceId>, AppError> {
    let bad = |e: ObjectRefError| AppError::bad_request(e.to_string());
    let r = CoreObjectRef::parse_in(env, text).map_err(bad)?;
    if let Some(id) = r.exact_id() {
        return Ok(Some(id));
    }
    let drifts = state.store.drifts(&r.drift_query()).await?;
    if let Some(id) = r.pick(drifts.items.iter().map(|d| &d.id)).map_err(bad)? {
        return Ok(Some(id));
    }
    let records = state.store.records(env).await?;
    r.pick(records.iter().map(|rec| &rec.id)).map_err(bad)
}

/// The drift of the object `reference` names in `env`: its open episode, else its latest one.
pub async fn object_drift(
    state: &AppState,
    env: &str,
    reference: &str,
) -> Result<DriftDetail, AppError> {
    environment(state, env)?;
    let Some(id) = find_object(state, env, reference).await? else {
        return Err(AppError::not_found(format!(
            "nothing known about {env}:{reference}"
        )));
    };
    let query = DriftQuery {
        environment: Some(id.environment.clone()),
        group: Some(id.group.clone()),
        kind: Some(id.kind.clone()),
        namespace: id.namespace.clone(),
        name: Some(id.name.clone()),
        status: DriftStatus::All,
        sort: DriftSort::Updated,
        limit: 1000,
        ..DriftQuery::default()
    };
    let page = state.store.drifts(&query).await?;
    // the name is a glob in queries: keep the object itself; open first, then the newest
    let mut items: Vec<_> = page.items.into_iter().filter(|d| d.id == id).collect();
    items.sort_by(|a, b| {
        b.is_open()
            .cmp(&a.is_open())
            .then(b.updated_at.cmp(&a.updated_at))
    });
    match items.first() {
        Some(d) => Ok(DriftDetail::from(d)),
        None => Err(AppError::not_found(format!("{id} never drifted"))),
    }
}

/// The open drifts of `env` with their details (highest severity first, at most `limit`),
/// and how many are open in all.
pub async fn open_drift_details(
    state: &AppState,
    env: &str,
    limit: usize,
) -> Result<(Vec<DriftDetail>, usize), AppError> {
    environment(state, env)?;
    let query = DriftQuery {
        environment: Some(env.to_owned()),
        limit,
        ..DriftQuery::default()
    };
    let page = state.store.drifts(&query).await?;
    Ok((
        page.items.iter().map(DriftDetail::from).collect(),
        page.total,
    ))
}
