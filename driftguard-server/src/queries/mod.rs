//! The read and scan operations behind the API, the MCP server and the dashboard: each is one
//! function over [`AppState`], answering the API's DTOs or its one error shape. The REST
//! handlers (`api`), the MCP tools (`mcp`) and the dashboard's pages (`web`) are thin views
//! over these; none holds a rule of its own (filters are read by [`filter`] into the core's
//! `DriftQuery`, references into its `ObjectRef`, plans come from
//! `driftguard_core::remediation`).

pub mod ack;
pub mod actions;
pub mod filter;
pub mod preview;

pub use filter::{DriftFilter, MAX_LIMIT};

use axum::http::StatusCode;
use driftguard_core::id::{ObjectRef as CoreObjectRef, ObjectRefError, ResourceId};
use driftguard_core::query::{DriftQuery, DriftSort, DriftStatus, EventQuery};
use driftguard_core::remediate::advice::{plan, RemediationAction};
use driftguard_core::state::Drift;

use crate::auth::Caller;
use crate::config::TokenScope;
use crate::dto::*;
use crate::environment::{Environment, RunScanError, SourceState};
use crate::error::AppError;
use crate::state::AppState;

/// The environment called `name`, or a 404.
pub fn environment(state: &AppState, name: &str) -> Result<std::sync::Arc<Environment>, AppError> {
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

fn status_word(last_error: bool, scanned: bool, open_drifts: usize) -> &'static str {
    if last_error {
        "error"
    } else if !scanned {
        "pending"
    } else if open_drifts > 0 {
        "drifted"
    } else {
        "in_sync"
    }
}

/// One environment with its status and score, as this replica sees it: its own status when
/// it runs the environment (always without leader election); with leader election
/// (`server.ha`) the `leader`, and for an environment another replica leads, its leader's last
/// scan and the open drifts, read from the store.
pub async fn environment_dto(
    state: &AppState,
    env: &Environment,
) -> Result<EnvironmentDto, AppError> {
    environment_dto_from(state, env, None).await
}

/// What the store says of environments other replicas lead: the last scan of each and its
/// open drifts, read for many at once ([`environments`]).
struct LedElsewhere {
    last: std::collections::HashMap<String, driftguard_core::ports::ScanSummary>,
    open: std::collections::HashMap<String, usize>,
}

/// [`environment_dto`], with what the store says of the environments led elsewhere when it
/// was read for many at once.
async fn environment_dto_from(
    state: &AppState,
    env: &Environment,
    elsewhere: Option<&LedElsewhere>,
) -> Result<EnvironmentDto, AppError> {
    let s = env.status();
    let sources = vec![
        source_dto("git", env.scanner.describe_git(), &s.git),
        source_dto("live", env.scanner.describe_live(), &s.live),
    ];
    let tool = state.verdicts.get(&env.name).as_ref().map(ToolDto::from);
    let own = |leader: Option<LeaderDto>| EnvironmentDto {
        name: env.name.clone(),
        status: status_word(s.last_error.is_some(), s.last_scan.is_some(), s.open_drifts).into(),
        score: s.last_scan.as_ref().map(|l| l.score),
        open_drifts: s.open_drifts,
        scanning: s.scanning,
        watching: s.watching,
        last_scan: s.last_scan.as_ref().map(ScanDto::from),
        last_error: s.last_error.clone(),
        sources: sources.clone(),
        leader,
        tool: tool.clone(),
        iac_coverage: s.iac_coverage.as_ref().map(IacCoverageDto::from),
    };
    let Some(leadership) = env.leadership() else {
        return Ok(own(None));
    };
    let view = leadership.view(&env.name);
    let leader = LeaderDto {
        replica: view.holder.clone(),
        this_replica: view.leading,
        epoch: view.epoch,
        // informational: a store that cannot say leaves it out
        store_epoch: state.store.epoch(&env.name).await.ok().flatten(),
    };
    if view.leading {
        return Ok(own(Some(leader)));
    }
    // led elsewhere: what its leader wrote
    let (last, open) = match elsewhere {
        Some(e) => (
            e.last.get(&env.name).cloned(),
            e.open.get(&env.name).copied().unwrap_or(0),
        ),
        None => {
            let last = state
                .store
                .scans(Some(&env.name), 1)
                .await?
                .into_iter()
                .next();
            let open = state
                .store
                .drifts(&DriftQuery {
                    environment: Some(env.name.clone()),
                    status: DriftStatus::Open,
                    limit: 1,
                    ..DriftQuery::default()
                })
                .await?
                .total;
            (last, open)
        }
    };
    Ok(EnvironmentDto {
        name: env.name.clone(),
        status: status_word(false, last.is_some(), open).into(),
        score: last.as_ref().map(|l| l.score),
        open_drifts: open,
        scanning: false,
        watching: false,
        last_scan: last.as_ref().map(ScanDto::from),
        last_error: None,
        sources: sources
            .into_iter()
            .map(|d| SourceDto {
                up: None,
                last_ok: None,
                error: None,
                ..d
            })
            .collect(),
        leader: Some(leader),
        tool,
        // counted by the replica that checks it
        iac_coverage: None,
    })
}

/// Every environment (see [`environment_dto`]). With leader election, what the store says
/// of the environments other replicas lead is read in two calls for all of them (their last
/// scans, [`driftguard_core::ports::DriftStore::scans_at`]; their open drifts,
/// [`driftguard_core::ports::DriftStore::open_tallies`]), not three per environment.
pub async fn environments(state: &AppState) -> Result<EnvironmentList, AppError> {
    let environments = state.environments();
    let led_elsewhere: Vec<String> = environments
        .iter()
        .filter(|e| e.leadership().is_some_and(|l| !l.view(&e.name).leading))
        .map(|e| e.name.clone())
        .collect();
    let elsewhere = if led_elsewhere.is_empty() {
        None
    } else {
        // the newest scan of each, with room for another replica's clock being ahead
        let until = state.clock.now() + chrono::TimeDelta::days(1);
        let last = state
            .store
            .scans_at(&led_elsewhere, &[until])
            .await?
            .into_iter()
            .map(|s| (s.environment.clone(), s))
            .collect();
        let open = state
            .store
            .open_tallies(&led_elsewhere)
            .await?
            .into_iter()
            .map(|t| (t.environment.clone(), t.counts.values().sum()))
            .collect();
        Some(LedElsewhere { last, open })
    };
    let mut items = Vec::with_capacity(environments.len());
    for e in environments.iter() {
        items.push(environment_dto_from(state, e, elsewhere.as_ref()).await?);
    }
    Ok(EnvironmentList { items })
}

/// A page of drift episodes (the query is checked: an unknown environment is a 404), each
/// with its acknowledgement; `acknowledged` keeps only the drifts whose acknowledgement holds
/// (`Some(true)`) or only the others (`Some(false)`).
pub async fn drifts(
    state: &AppState,
    query: &DriftQuery,
    acknowledged: Option<bool>,
) -> Result<DriftPage, AppError> {
    known_env(state, &query.environment)?;
    let page = ack::drifts(state, query, acknowledged).await?;
    let mut items: Vec<DriftSummary> = page.items.iter().map(DriftSummary::from).collect();
    ack::annotate(state, &page.items, &mut items).await?;
    Ok(DriftPage {
        items,
        total: page.total,
        limit: query.limit,
        offset: query.offset,
        next_offset: page.next_offset,
    })
}

/// A drift's detail, with the link to its file on the repository's web page when its
/// environment has one.
fn detail(state: &AppState, d: &Drift) -> DriftDetail {
    let mut detail = DriftDetail::from(d);
    if let (Some(p), Some(dto)) = (&d.provenance, detail.provenance.as_mut()) {
        dto.web_url = state
            .environment(&d.id.environment)
            .and_then(|e| e.file_link(p));
    }
    detail
}

/// The details of `drifts`, each with its acknowledgement.
async fn details(state: &AppState, drifts: &[Drift]) -> Result<Vec<DriftDetail>, AppError> {
    let mut out: Vec<DriftDetail> = drifts.iter().map(|d| detail(state, d)).collect();
    let mut summaries: Vec<DriftSummary> = out.iter().map(|d| d.drift.clone()).collect();
    ack::annotate(state, drifts, &mut summaries).await?;
    for (d, s) in out.iter_mut().zip(summaries) {
        d.drift.acknowledgement = s.acknowledgement;
    }
    Ok(out)
}

/// One drift episode with its field diff, attribution, findings and acknowledgement.
pub async fn drift(state: &AppState, episode: &str) -> Result<DriftDetail, AppError> {
    match state.store.drift(episode).await? {
        Some(d) => Ok(details(state, std::slice::from_ref(&d)).await?.remove(0)),
        None => Err(AppError::not_found(format!("no drift episode `{episode}`"))),
    }
}

/// Every episode of one object (open or resolved), newest first, at most `limit`.
pub async fn episodes(
    state: &AppState,
    object: &ObjectRef,
    limit: usize,
) -> Result<Vec<DriftSummary>, AppError> {
    let query = DriftQuery {
        environment: Some(object.environment.clone()),
        group: Some(object.group.clone()),
        kind: Some(object.kind.clone()),
        namespace: object.namespace.clone(),
        name: Some(object.name.clone()),
        status: DriftStatus::All,
        sort: DriftSort::Detected,
        limit,
        ..DriftQuery::default()
    };
    let page = state.store.drifts(&query).await?;
    // the name is a glob in queries: keep the object itself
    let mut items: Vec<DriftSummary> = page.items.iter().map(DriftSummary::from).collect();
    ack::annotate(state, &page.items, &mut items).await?;
    items.retain(|d| d.object == *object);
    items.sort_by_key(|d| std::cmp::Reverse(d.detected_at));
    Ok(items)
}

/// A page of events, oldest first (the query is checked: an unknown environment is a 404).
pub async fn events(state: &AppState, query: &EventQuery) -> Result<EventPage, AppError> {
    known_env(state, &query.environment)?;
    let page = state.store.events(query).await?;
    Ok(EventPage {
        items: page.items.iter().map(EventDto::from).collect(),
        total: page.total,
        limit: query.limit,
        offset: query.offset,
        next_offset: page.next_offset,
    })
}

/// The latest scans (newest first, at most `limit`) of one environment or of all.
pub async fn scans(
    state: &AppState,
    environment: Option<&str>,
    limit: usize,
) -> Result<ScanList, AppError> {
    known_env(state, &environment.map(str::to_owned))?;
    let scans = state.store.scans(environment, limit).await?;
    Ok(ScanList {
        items: scans.iter().map(ScanDto::from).collect(),
    })
}

/// The scans that tell each environment's state at each of `times` (a chart's points), read in
/// one store call ([`DriftStore::scans_at`](driftguard_core::ports::DriftStore::scans_at)): one
/// list per environment of this server, in its order, each newest first.
pub async fn scans_at(
    state: &AppState,
    times: &[chrono::DateTime<chrono::Utc>],
) -> Result<Vec<Vec<ScanDto>>, AppError> {
    let names: Vec<String> = state
        .environments()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    let found = state.store.scans_at(&names, times).await?;
    let mut out: Vec<Vec<ScanDto>> = vec![Vec::new(); names.len()];
    let index: std::collections::HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    for s in &found {
        if let Some(&i) = index.get(s.environment.as_str()) {
            out[i].push(ScanDto::from(s));
        }
    }
    Ok(out)
}

/// Every environment's open drifts counted, by severity and direction, with the oldest
/// ([`OpenTally`](driftguard_core::query::OpenTally)), read in one store call; by name.
pub async fn open_tallies(
    state: &AppState,
) -> Result<std::collections::HashMap<String, driftguard_core::query::OpenTally>, AppError> {
    let names: Vec<String> = state
        .environments()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    Ok(state
        .store
        .open_tallies(&names)
        .await?
        .into_iter()
        .map(|t| (t.environment.clone(), t))
        .collect())
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

/// Most drifts one remediation request may name (the dashboard's selection of a page).
pub const MAX_REMEDIATE: usize = 100;

/// One drift of a remediation request: its plan and preview, what was done, or why not.
#[derive(Debug)]
pub struct RemediationItem {
    /// The drift episode asked for.
    pub episode: String,
    /// The object (`env:Kind.group/namespace/name`), empty when the episode is unknown.
    pub object: String,
    /// The plan or result, or the error in the API's shape.
    pub answer: Result<RemediateAnswer, AppError>,
}

fn change_dto(c: &driftguard_core::remediate::advice::FieldChange) -> FieldChangeDto {
    FieldChangeDto {
        path: c.path.clone(),
        from: c.from.clone(),
        to: c.to.clone(),
    }
}

fn refused(e: &crate::remediate::RemediateError) -> AppError {
    AppError::new(
        StatusCode::CONFLICT,
        "refused",
        driftguard_core::error::chain(e),
    )
}

fn object_of(d: &Drift) -> String {
    format!(
        "{}:{}/{}",
        d.id.environment,
        d.id.group_kind(),
        d.id.namespaced_name()
    )
}

/// The remediation service, and the distinct episodes of a request (at least one, at most
/// [`MAX_REMEDIATE`]).
fn remediation_request<'a>(
    state: &AppState,
    episodes: impl IntoIterator<Item = &'a str>,
) -> Result<
    (
        std::sync::Arc<crate::remediate::RemediationService>,
        Vec<&'a str>,
    ),
    AppError,
> {
    let Some(service) = state.remediation.clone() else {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "not_available",
            "remediation is not available on this server (no token has the `remediate` scope \
             and no environment has a remediation policy)",
        ));
    };
    let mut distinct: Vec<&str> = Vec::new();
    for e in episodes {
        if !distinct.contains(&e) {
            distinct.push(e);
        }
    }
    if distinct.is_empty() {
        return Err(AppError::bad_request("select at least one drift"));
    }
    if distinct.len() > MAX_REMEDIATE {
        return Err(AppError::bad_request(format!(
            "{} drifts selected: at most {MAX_REMEDIATE} at once",
            distinct.len()
        )));
    }
    Ok((service, distinct))
}

/// The drifts of `episodes` that can be remediated here; the others get their item (unknown
/// episode, or another replica leads the environment).
async fn remediable(
    state: &AppState,
    caller: &Caller,
    episodes: &[&str],
    items: &mut [Option<RemediationItem>],
) -> Result<Vec<(usize, Drift)>, AppError> {
    let mut found = Vec::new();
    for (i, episode) in episodes.iter().enumerate() {
        let Some(d) = state.store.drift(episode).await? else {
            items[i] = Some(RemediationItem {
                episode: (*episode).to_owned(),
                object: String::new(),
                answer: Err(AppError::not_found(format!("no drift episode {episode}"))),
            });
            continue;
        };
        // roles per environment: the one check
        if let Err(e) = caller.may_in_env(TokenScope::Remediate, &d.id.environment) {
            items[i] = Some(RemediationItem {
                episode: (*episode).to_owned(),
                object: object_of(&d),
                answer: Err(e),
            });
            continue;
        }
        // with leader election only the leader acts on an environment
        if let Some(env) = state.environment(&d.id.environment) {
            if !env.leads() {
                items[i] = Some(RemediationItem {
                    episode: (*episode).to_owned(),
                    object: object_of(&d),
                    answer: Err(AppError::new(
                        StatusCode::CONFLICT,
                        "not_leader",
                        format!("{}: ask the replica that leads it", env.not_leader()),
                    )),
                });
                continue;
            }
        }
        found.push((i, d));
    }
    Ok(found)
}

/// Plans `action` for each of `episodes` and previews it (a server-side dry run on the
/// cluster; the fields to write for adopt); nothing changes. Each plan waits for its
/// confirmation ([`confirm_remediations`]) for [`crate::remediate::PLAN_TTL`].
pub async fn plan_remediations(
    state: &AppState,
    episodes: &[String],
    action: RemediationAction,
    prune: bool,
    caller: &Caller,
) -> Result<Vec<RemediationItem>, AppError> {
    let (service, episodes) = remediation_request(state, episodes.iter().map(String::as_str))?;
    let mut items: Vec<Option<RemediationItem>> = episodes.iter().map(|_| None).collect();
    let found = remediable(state, caller, &episodes, &mut items).await?;
    let (order, drifts): (Vec<usize>, Vec<Drift>) = found.into_iter().unzip();
    let proposed = service.plan_many(drifts, action, prune, &caller.name).await;
    for (i, p) in order.into_iter().zip(proposed) {
        items[i] = Some(RemediationItem {
            episode: p.drift.episode.clone(),
            object: object_of(&p.drift),
            answer: p.result.as_ref().map_err(refused).map(|p| RemediateAnswer {
                plan: p.plan.id.clone(),
                episode: p.drift.episode.clone(),
                object: p.plan.object.clone(),
                operation: p.plan.operation.to_string(),
                preview: p.preview.iter().map(change_dto).collect(),
                left_alone: p.plan.left_alone.clone(),
                applied: false,
                result: None,
            }),
        });
    }
    Ok(items.into_iter().flatten().collect())
}

/// Carries out the plans `(episode, plan id)` made by [`plan_remediations`], each only if
/// planning it again gives the same plan; `caller` is named as who asked in each
/// `remediated` event. Then scans each environment acted on, so that its drifts resolve.
pub async fn confirm_remediations(
    state: &AppState,
    plans: &[(String, String)],
    prune: bool,
    caller: &Caller,
) -> Result<Vec<RemediationItem>, AppError> {
    let (service, episodes) = remediation_request(state, plans.iter().map(|(e, _)| e.as_str()))?;
    let mut items: Vec<Option<RemediationItem>> = episodes.iter().map(|_| None).collect();
    let found = remediable(state, caller, &episodes, &mut items).await?;
    let plan_of = |episode: &str| {
        plans
            .iter()
            .find(|(e, _)| e == episode)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    };
    let mut asked_of = Vec::new();
    let asked: Vec<(Drift, String)> = found
        .into_iter()
        .map(|(i, d)| {
            asked_of.push((i, object_of(&d), d.id.environment.clone()));
            let plan = plan_of(&d.episode);
            (d, plan)
        })
        .collect();
    let done = service.confirm_many(asked, prune, &caller.name).await;
    let mut acted: Vec<String> = Vec::new();
    for ((i, object, env), (episode, result)) in asked_of.into_iter().zip(done) {
        if let Ok(record) = &result {
            actions::did(
                state,
                driftguard_core::actions::ActionKind::Remediate,
                &caller.name,
                Some(&env),
                vec![episode.clone()],
                format!(
                    "{} {}",
                    record.action,
                    if record.ok { "done" } else { "failed" }
                ),
            )
            .await;
        }
        if result.is_ok() && !acted.contains(&env) {
            acted.push(env);
        }
        items[i] = Some(RemediationItem {
            episode: episode.clone(),
            answer: result
                .as_ref()
                .map_err(refused)
                .map(|record| RemediateAnswer {
                    plan: record.plan_id.clone(),
                    episode: episode.clone(),
                    object: object.clone(),
                    operation: record.operation.to_string(),
                    preview: record.changes.iter().map(change_dto).collect(),
                    left_alone: Vec::new(),
                    applied: record.ok,
                    result: Some(record.result.clone()),
                }),
            object,
        });
    }
    // scan now, so that the drifts resolve
    for env in acted {
        if let Some(e) = state.environment(&env) {
            let e = e.clone();
            let ctx = state.scan_context();
            tokio::spawn(async move {
                let _ = e.run_scan(&ctx).await;
            });
        }
    }
    Ok(items.into_iter().flatten().collect())
}

/// The API's remediation of one episode, plan then confirm: without `confirm`, the plan and
/// its preview; with it, the result of carrying out that plan.
pub async fn remediate(
    state: &AppState,
    episode: &str,
    req: &RemediateRequest,
    caller: &Caller,
) -> Result<RemediateAnswer, AppError> {
    let action = match req.action.as_deref().filter(|a| !a.is_empty()) {
        None => RemediationAction::Revert,
        Some(a) => a
            .parse::<RemediationAction>()
            .map_err(|e| AppError::bad_request(format!("action: {e}")))?,
    };
    let mut items = match &req.confirm {
        None => plan_remediations(state, &[episode.to_owned()], action, req.prune, caller).await?,
        Some(id) => {
            confirm_remediations(
                state,
                &[(episode.to_owned(), id.clone())],
                req.prune,
                caller,
            )
            .await?
        }
    };
    match items.pop() {
        Some(item) => item.answer,
        None => Err(AppError::internal()),
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

/// Scans an environment now (the scan goes on even if the caller goes away; requests made while
/// one runs share it) and answers its
/// summary: 502 `scan_failed` when a source cannot be read, 503 `store_unavailable` when the
/// store cannot be written, 409 `not_leader` when another replica leads the environment
/// (leader election; also when the store refused this replica's write).
pub async fn scan_now(state: &AppState, caller: &Caller, env: &str) -> Result<ScanDto, AppError> {
    caller.may_in_env(TokenScope::Scan, env)?;
    environment(state, env)?;
    actions::did(
        state,
        driftguard_core::actions::ActionKind::Scan,
        &caller.name,
        Some(env),
        Vec::new(),
        "",
    )
    .await;
    let scan = environment(state, env)?.requested_scan(&state.scan_context());
    match scan.await {
        Ok(summary) => Ok(ScanDto::from(&summary)),
        Err(RunScanError::Source(msg)) => {
            Err(AppError::new(StatusCode::BAD_GATEWAY, "scan_failed", msg))
        }
        Err(RunScanError::Store(msg)) => Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            msg,
        )),
        Err(RunScanError::NotLeader(msg)) => {
            Err(AppError::new(StatusCode::CONFLICT, "not_leader", msg))
        }
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
        Some(d) => Ok(details(state, std::slice::from_ref(d)).await?.remove(0)),
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
    Ok((details(state, &page.items).await?, page.total))
}
