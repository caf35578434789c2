//! What a caller whose roles cover only some environments sees: [`VisibleStore`], the store
//! seen through [`Caller::may_in`] (`read`), and [`crate::state::AppState::for_caller`], the
//! state every frontend reads through ([`Visible`], the extractor of the API's and the
//! dashboard's handlers; MCP and the event stream ask the same check). A caller who reads
//! every environment gets the state as it is.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use driftguard_core::ack::Acknowledgement;
use driftguard_core::audit::AuditSnapshot;
use driftguard_core::id::ResourceId;
use driftguard_core::ports::{DriftStore, PruneStats, ScanBatch, ScanSummary, StoreError};
use driftguard_core::query::{DriftQuery, EventQuery, OpenTally, Page};
use driftguard_core::state::{Drift, DriftEvent, DriftRecord};

use super::Caller;
use crate::config::TokenScope;
use crate::error::AppError;
use crate::state::AppState;

/// The store as a caller may read it: only the environments [`Caller::may_in`] lets it read
/// (among `environments`, the server's); writes go through unchanged (the actions check the
/// caller themselves).
pub struct VisibleStore {
    inner: Arc<dyn DriftStore>,
    caller: Caller,
    environments: Vec<String>,
}

impl VisibleStore {
    /// `inner` as `caller` sees it, the server watching `environments`.
    pub fn new(inner: Arc<dyn DriftStore>, caller: Caller, environments: Vec<String>) -> Self {
        VisibleStore {
            inner,
            caller,
            environments,
        }
    }

    fn sees(&self, environment: &str) -> bool {
        self.caller.may_in(TokenScope::Read, environment)
    }

    /// The environments a query over `asked` (`None`: all) reads.
    fn readable(&self, asked: Option<&str>) -> Vec<String> {
        match asked {
            Some(e) if self.sees(e) => vec![e.to_owned()],
            Some(_) => Vec::new(),
            None => self
                .environments
                .iter()
                .filter(|e| self.sees(e))
                .cloned()
                .collect(),
        }
    }
}

/// One page cut from the pages of several environments, each read from its start to
/// `offset + limit`, merged by `sort`.
fn merged<T>(
    pages: Vec<Page<T>>,
    offset: usize,
    limit: usize,
    sort: impl FnOnce(&mut [T]),
) -> Page<T> {
    let total = pages.iter().map(|p| p.total).sum();
    let mut items: Vec<T> = pages.into_iter().flat_map(|p| p.items).collect();
    sort(&mut items);
    let items: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    let end = offset + items.len();
    Page {
        items,
        total,
        next_offset: (end < total).then_some(end),
    }
}

#[async_trait]
impl DriftStore for VisibleStore {
    async fn records(&self, environment: &str) -> Result<Vec<DriftRecord>, StoreError> {
        if !self.sees(environment) {
            return Ok(Vec::new());
        }
        self.inner.records(environment).await
    }

    async fn commit(&self, batch: &ScanBatch) -> Result<(), StoreError> {
        self.inner.commit(batch).await
    }

    async fn drifts(&self, query: &DriftQuery) -> Result<Page<Drift>, StoreError> {
        let envs = self.readable(query.environment.as_deref());
        if query.environment.is_some() && envs.len() == 1 {
            return self.inner.drifts(query).await;
        }
        let mut pages = Vec::with_capacity(envs.len());
        for e in envs {
            let q = DriftQuery {
                environment: Some(e),
                offset: 0,
                limit: query.offset.saturating_add(query.limit),
                ..query.clone()
            };
            pages.push(self.inner.drifts(&q).await?);
        }
        Ok(merged(pages, query.offset, query.limit, |items| {
            query.sort(items)
        }))
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<DriftEvent>, StoreError> {
        let envs = self.readable(query.environment.as_deref());
        if query.environment.is_some() && envs.len() == 1 {
            return self.inner.events(query).await;
        }
        let mut pages = Vec::with_capacity(envs.len());
        for e in envs {
            let q = EventQuery {
                environment: Some(e),
                offset: 0,
                limit: query.offset.saturating_add(query.limit),
                ..query.clone()
            };
            pages.push(self.inner.events(&q).await?);
        }
        Ok(merged(pages, query.offset, query.limit, |items| {
            items.sort_by(|a, b| a.at.cmp(&b.at).then(a.event_id.cmp(&b.event_id)))
        }))
    }

    async fn scans(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScanSummary>, StoreError> {
        let mut out = Vec::new();
        for e in self.readable(environment) {
            out.extend(self.inner.scans(Some(&e), limit).await?);
        }
        out.sort_by(driftguard_core::query::newest_scan_first);
        out.truncate(limit);
        Ok(out)
    }

    async fn scans_at(
        &self,
        environments: &[String],
        times: &[DateTime<Utc>],
    ) -> Result<Vec<ScanSummary>, StoreError> {
        let seen: Vec<String> = environments
            .iter()
            .filter(|e| self.sees(e))
            .cloned()
            .collect();
        self.inner.scans_at(&seen, times).await
    }

    async fn open_tallies(&self, environments: &[String]) -> Result<Vec<OpenTally>, StoreError> {
        let seen: Vec<String> = environments
            .iter()
            .filter(|e| self.sees(e))
            .cloned()
            .collect();
        self.inner.open_tallies(&seen).await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        self.inner.prune(before).await
    }

    async fn record(&self, id: &ResourceId) -> Result<Option<DriftRecord>, StoreError> {
        if !self.sees(&id.environment) {
            return Ok(None);
        }
        self.inner.record(id).await
    }

    async fn drift(&self, episode: &str) -> Result<Option<Drift>, StoreError> {
        Ok(self
            .inner
            .drift(episode)
            .await?
            .filter(|d| self.sees(&d.id.environment)))
    }

    async fn history(&self, id: &ResourceId, limit: usize) -> Result<Vec<DriftEvent>, StoreError> {
        if !self.sees(&id.environment) {
            return Ok(Vec::new());
        }
        self.inner.history(id, limit).await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.inner.health().await
    }

    async fn delivered_until(&self, notifier: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.delivered_until(notifier).await
    }

    async fn epoch(&self, environment: &str) -> Result<Option<u64>, StoreError> {
        self.inner.epoch(environment).await
    }

    async fn set_delivered_until(
        &self,
        notifier: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.set_delivered_until(notifier, until).await
    }

    async fn audit_index(&self, environment: &str) -> Result<AuditSnapshot, StoreError> {
        if !self.sees(environment) {
            return Ok(AuditSnapshot::default());
        }
        self.inner.audit_index(environment).await
    }

    async fn save_audit_index(
        &self,
        environment: &str,
        changes: &AuditSnapshot,
    ) -> Result<(), StoreError> {
        self.inner.save_audit_index(environment, changes).await
    }

    async fn acknowledgements(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<Acknowledgement>, StoreError> {
        Ok(self
            .inner
            .acknowledgements(environment)
            .await?
            .into_iter()
            .filter(|a| self.sees(a.environment()))
            .collect())
    }

    async fn save_acknowledgements(&self, acks: &[Acknowledgement]) -> Result<(), StoreError> {
        self.inner.save_acknowledgements(acks).await
    }

    /// Only the actions in environments the caller reads (failed sign-ins concern none: they
    /// are for callers who read everything).
    async fn actions(
        &self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<driftguard_core::actions::PersonAction>, StoreError> {
        let mut out = Vec::new();
        for e in self.readable(environment) {
            out.extend(self.inner.actions(Some(&e), limit).await?);
        }
        Ok(driftguard_core::actions::newest(out, None, limit))
    }

    async fn record_actions(
        &self,
        actions: &[driftguard_core::actions::PersonAction],
    ) -> Result<(), StoreError> {
        self.inner.record_actions(actions).await
    }
}

/// The state as the request's caller sees it ([`AppState::for_caller`]): the extractor of
/// the handlers that read. A request without a caller (not behind the authentication) is
/// refused.
pub struct Visible(pub AppState);

impl FromRequestParts<AppState> for Visible {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .or_else(|| {
                parts
                    .extensions
                    .get::<crate::web::Viewer>()
                    .map(|v| v.caller.clone())
            })
            .ok_or_else(|| AppError::unauthorized("missing bearer token"))?;
        Ok(Visible(state.for_caller(&caller)))
    }
}
