//! Acknowledged drift: acknowledging, withdrawing, the acknowledgement beside each drift a
//! frontend shows, the `acknowledged` filter, and recording lapses. Whether an
//! acknowledgement holds is the core's rule (`driftguard_core::ack`); this module reads and
//! writes the store around it. Acknowledging needs the `scan` scope (the operator's).

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use driftguard_core::ack::{self, AckError, AckRequest, Acknowledgement, Lapse};
use driftguard_core::ports::ScanBatch;
use driftguard_core::query::{DriftQuery, DriftStatus, Page};
use driftguard_core::state::{Drift, DriftEvent};
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::config::TokenScope;
use crate::dto::{AcknowledgementDto, DriftSummary};
use crate::error::AppError;
use crate::state::AppState;

/// The most drifts one request acknowledges (an environment's baseline included).
pub const MAX_AT_ONCE: usize = 10_000;

/// What to acknowledge: episodes, or every open drift of an environment matching a query
/// (the baseline at onboarding).
#[derive(Clone, Debug)]
pub enum Selection {
    /// These episodes.
    Episodes(Vec<String>),
    /// The open drifts a query finds (its environment set).
    Open(DriftQuery),
}

/// Acknowledges the drifts `selection` names for `caller`, with `reason` and `until`: each
/// acknowledgement saved and its `acknowledged` event stored (never announced). A drift whose
/// acknowledgement already holds is acknowledged again (the newer reason and expiry win).
/// 404 for an unknown episode, 409 for a resolved one, 400 for a missing reason or a past
/// expiry; nothing is saved unless every drift can be acknowledged.
pub async fn acknowledge(
    state: &AppState,
    caller: &Caller,
    selection: &Selection,
    reason: &str,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<AcknowledgementDto>, AppError> {
    caller.may(TokenScope::Scan)?;
    let drifts = selected(state, selection).await?;
    let now = state.clock.now();
    let req = AckRequest {
        by: caller.name.clone(),
        reason: reason.to_owned(),
        until,
    };
    let mut acks = Vec::with_capacity(drifts.len());
    let mut events: Vec<DriftEvent> = Vec::with_capacity(drifts.len());
    for d in &drifts {
        caller.may_in_env(TokenScope::Scan, &d.id.environment)?;
        let (a, e) = ack::acknowledge(d, &req, now).map_err(refused)?;
        acks.push(a);
        events.push(e);
    }
    state.store.save_acknowledgements(&acks).await?;
    store_events(state, events).await?;
    let mut by_env: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for a in &acks {
        by_env
            .entry(a.environment())
            .or_default()
            .push(a.episode.clone());
    }
    for (env, episodes) in by_env {
        crate::queries::actions::did(
            state,
            driftguard_core::actions::ActionKind::Acknowledge,
            &caller.name,
            Some(env),
            episodes,
            reason.trim(),
        )
        .await;
    }
    state.cache.invalidate();
    tracing::info!(by = %caller.name, drifts = acks.len(), "drift acknowledged");
    Ok(acks
        .iter()
        .zip(&drifts)
        .map(|(a, d)| AcknowledgementDto::of(a, d, now))
        .collect())
}

/// Withdraws the acknowledgement of `episode` for `caller`: its lapse recorded (`withdrawn`,
/// by whom) and announced, so the drift is announced again. 404 when it has none that holds.
pub async fn withdraw(
    state: &AppState,
    caller: &Caller,
    episode: &str,
) -> Result<AcknowledgementDto, AppError> {
    caller.may(TokenScope::Scan)?;
    let drift = state
        .store
        .drift(episode)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no drift episode `{episode}`")))?;
    caller.may_in_env(TokenScope::Scan, &drift.id.environment)?;
    let now = state.clock.now();
    let acks = state
        .store
        .acknowledgements(Some(&drift.id.environment))
        .await?;
    let Some(current) = acks
        .iter()
        .find(|a| a.episode == episode && ack::standing(a, &drift, now) == ack::Standing::Holds)
    else {
        return Err(AppError::not_found(format!(
            "drift `{episode}` has no acknowledgement that holds"
        )));
    };
    let (lapsed, event) = ack::lapse(
        current,
        &drift,
        Lapse::Withdrawn,
        Some(caller.name.clone()),
        now,
    );
    state
        .store
        .save_acknowledgements(std::slice::from_ref(&lapsed))
        .await?;
    announce(state, &drift.id.environment, event).await?;
    crate::queries::actions::did(
        state,
        driftguard_core::actions::ActionKind::Withdraw,
        &caller.name,
        Some(&drift.id.environment),
        vec![episode.to_owned()],
        "",
    )
    .await;
    state.cache.invalidate();
    tracing::info!(by = %caller.name, episode, "acknowledgement withdrawn");
    Ok(AcknowledgementDto::of(&lapsed, &drift, now))
}

/// The acknowledgements of `environment` (of all for `None`), each as it stands for its
/// drift now; those of episodes no longer stored are left out.
pub async fn list(
    state: &AppState,
    environment: Option<&str>,
) -> Result<Vec<AcknowledgementDto>, AppError> {
    crate::queries::known_env(state, &environment.map(str::to_owned))?;
    list_unchecked(state, environment).await
}

/// [`list`] for any environment name, known to `state` or not (the CLI reads a store whose
/// environments it does not run).
pub async fn list_unchecked(
    state: &AppState,
    environment: Option<&str>,
) -> Result<Vec<AcknowledgementDto>, AppError> {
    let acks = state.store.acknowledgements(environment).await?;
    let now = state.clock.now();
    let mut out = Vec::with_capacity(acks.len());
    for a in &acks {
        if let Some(d) = state.store.drift(&a.episode).await? {
            out.push(AcknowledgementDto::of(a, &d, now));
        }
    }
    Ok(out)
}

/// Sets the acknowledgement of each drift in `items` (the summaries of `drifts`, in the same
/// order), as it stands now.
pub async fn annotate(
    state: &AppState,
    drifts: &[Drift],
    items: &mut [DriftSummary],
) -> Result<(), AppError> {
    if drifts.is_empty() {
        return Ok(());
    }
    let mut envs: Vec<&str> = drifts.iter().map(|d| d.id.environment.as_str()).collect();
    envs.sort_unstable();
    envs.dedup();
    let acks = match envs.as_slice() {
        [one] => state.store.acknowledgements(Some(one)).await?,
        _ => state.store.acknowledgements(None).await?,
    };
    if acks.is_empty() {
        return Ok(());
    }
    let by_episode: HashMap<&str, &Acknowledgement> =
        acks.iter().map(|a| (a.episode.as_str(), a)).collect();
    let now = state.clock.now();
    for (d, item) in drifts.iter().zip(items.iter_mut()) {
        if let Some(a) = by_episode.get(d.episode.as_str()) {
            item.acknowledgement = Some(AcknowledgementDto::of(a, d, now));
        }
    }
    Ok(())
}

/// A page of drifts for `query`, keeping only those whose acknowledgement holds now
/// (`acknowledged: Some(true)`) or only the others (`Some(false)`); `None` asks the store
/// alone. The held ones are few (a person acknowledged each): they are read one by one, and
/// the others' page is the store's with them taken out.
pub async fn drifts(
    state: &AppState,
    query: &DriftQuery,
    acknowledged: Option<bool>,
) -> Result<Page<Drift>, AppError> {
    let Some(want) = acknowledged else {
        return Ok(state.store.drifts(query).await?);
    };
    let now = state.clock.now();
    let acks = state
        .store
        .acknowledgements(query.environment.as_deref())
        .await?;
    let mut held: Vec<Drift> = Vec::new();
    for a in acks.iter().filter(|a| a.lapsed.is_none()) {
        if let Some(d) = state.store.drift(&a.episode).await? {
            if ack::standing(a, &d, now) == ack::Standing::Holds && query.matches(&d) {
                held.push(d);
            }
        }
    }
    if want {
        return Ok(query.apply(held));
    }
    // the store's page without the held ones: read enough to fill the page after taking
    // them out
    let wide = DriftQuery {
        offset: 0,
        limit: query
            .offset
            .saturating_add(query.limit)
            .saturating_add(held.len()),
        ..query.clone()
    };
    let page = state.store.drifts(&wide).await?;
    let held_ids: std::collections::HashSet<&str> =
        held.iter().map(|d| d.episode.as_str()).collect();
    let rest: Vec<Drift> = page
        .items
        .into_iter()
        .filter(|d| !held_ids.contains(d.episode.as_str()))
        .collect();
    let total = page.total.saturating_sub(held.len());
    let items: Vec<Drift> = rest
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .collect();
    let end = query.offset + items.len();
    Ok(Page {
        items,
        total,
        next_offset: (end < total).then_some(end),
    })
}

/// Records the lapses due now in the environments this replica leads (an acknowledgement
/// whose drift changed, ended or whose expiry passed: [`ack::due`]): each saved as lapsed and
/// its `unacknowledged` event stored and announced (an expiry is announced again). Returns
/// how many were recorded.
pub async fn record_lapses(state: &AppState) -> Result<usize, AppError> {
    let acks = state.store.acknowledgements(None).await?;
    let open: Vec<&Acknowledgement> = acks.iter().filter(|a| a.lapsed.is_none()).collect();
    if open.is_empty() {
        return Ok(0);
    }
    let mut drifts: HashMap<String, Drift> = HashMap::new();
    for a in &open {
        if let Some(d) = state.store.drift(&a.episode).await? {
            drifts.insert(a.episode.clone(), d);
        }
    }
    let now = state.clock.now();
    let mut n = 0;
    for (a, d, why) in ack::due(&acks, |e| drifts.get(e).cloned(), now) {
        let Some(env) = state.environment(a.environment()) else {
            continue;
        };
        if !env.leads() {
            continue;
        }
        match d {
            Some(drift) => {
                let (lapsed, event) = ack::lapse(a, &drift, why, None, now);
                state
                    .store
                    .save_acknowledgements(std::slice::from_ref(&lapsed))
                    .await?;
                announce(state, a.environment(), event).await?;
            }
            // a drift no longer stored: its lapse is saved, with no event to carry
            None => {
                let lapsed = Acknowledgement {
                    lapsed: Some(ack::Lapsed {
                        at: now,
                        why,
                        by: None,
                    }),
                    ..(*a).clone()
                };
                state
                    .store
                    .save_acknowledgements(std::slice::from_ref(&lapsed))
                    .await?;
            }
        }
        n += 1;
    }
    if n > 0 {
        state.cache.invalidate();
    }
    Ok(n)
}

/// How often `serve` looks for lapsed acknowledgements.
pub const LAPSE_EVERY: Duration = Duration::from_secs(10);

/// Runs [`record_lapses`] every `every` until `cancel`.
pub fn spawn_lapses(
    state: AppState,
    every: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match record_lapses(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(lapses = n, "acknowledgements lapsed"),
                Err(e) => {
                    tracing::warn!(error = %e.message, "cannot record lapsed acknowledgements; will retry")
                }
            }
        }
    })
}

/// The drifts a selection names: each episode (404 for an unknown one), or the open drifts
/// a query finds, at most [`MAX_AT_ONCE`].
async fn selected(state: &AppState, selection: &Selection) -> Result<Vec<Drift>, AppError> {
    match selection {
        Selection::Episodes(episodes) => {
            if episodes.is_empty() {
                return Err(AppError::bad_request("no drift named"));
            }
            if episodes.len() > MAX_AT_ONCE {
                return Err(AppError::bad_request(format!(
                    "at most {MAX_AT_ONCE} drifts at once"
                )));
            }
            let mut out = Vec::with_capacity(episodes.len());
            for e in episodes {
                match state.store.drift(e).await? {
                    Some(d) => out.push(d),
                    None => return Err(AppError::not_found(format!("no drift episode `{e}`"))),
                }
            }
            Ok(out)
        }
        Selection::Open(query) => {
            let mut out = Vec::new();
            let mut q = DriftQuery {
                status: DriftStatus::Open,
                limit: 1000,
                offset: 0,
                ..query.clone()
            };
            loop {
                let page = state.store.drifts(&q).await?;
                out.extend(page.items);
                if out.len() > MAX_AT_ONCE {
                    return Err(AppError::bad_request(format!(
                        "at most {MAX_AT_ONCE} drifts at once; narrow the selection"
                    )));
                }
                match page.next_offset {
                    Some(n) => q.offset = n,
                    None => break,
                }
            }
            if out.is_empty() {
                return Err(AppError::not_found("no open drift matches"));
            }
            Ok(out)
        }
    }
}

fn refused(e: AckError) -> AppError {
    match e {
        AckError::Resolved { .. } => AppError::new(StatusCode::CONFLICT, "resolved", e.to_string()),
        _ => AppError::bad_request(e.to_string()),
    }
}

/// Stores events that are not announced (acknowledgements), a batch per environment.
async fn store_events(state: &AppState, events: Vec<DriftEvent>) -> Result<(), AppError> {
    let mut by_env: HashMap<String, Vec<DriftEvent>> = HashMap::new();
    for e in events {
        by_env
            .entry(e.drift.id.environment.clone())
            .or_default()
            .push(e);
    }
    for (environment, events) in by_env {
        state
            .store
            .commit(&ScanBatch {
                environment,
                events,
                ..ScanBatch::default()
            })
            .await?;
    }
    Ok(())
}

/// Stores an event and announces it through the environment's notifiers (which leave out
/// what [`ack::announced`] says), or only stores it for an environment not running here.
async fn announce(state: &AppState, environment: &str, event: DriftEvent) -> Result<(), AppError> {
    match state.environment(environment) {
        Some(env) => {
            let errors = env.scanner.record_remediation(event).await?;
            for e in errors {
                tracing::warn!(environment, error = %e, "notification failed");
            }
            Ok(())
        }
        None => store_events(state, vec![event]).await,
    }
}

/// Reads `until` as an RFC 3339 time or a duration from `now` (`3d`, `12h`): 400 otherwise.
pub fn parse_until(v: Option<&str>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, AppError> {
    let Some(s) = v.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    let d = driftguard_core::duration::HumanDuration::parse(s).map_err(|_| {
        AppError::bad_request(format!(
            "until: `{s}` is neither an RFC 3339 time nor a duration such as 3d or 12h"
        ))
    })?;
    chrono::TimeDelta::from_std(d.get())
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .map(Some)
        .ok_or_else(|| AppError::bad_request(format!("until: `{s}` is too far")))
}
