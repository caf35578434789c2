//! The REST API (axum): its routes, each with the scope it needs, the webhooks, health and
//! metrics, and the OpenAPI document. Who a caller is and what a scope allows are `auth`'s;
//! the limits every request passes are the composed router's (`router`).

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use driftguard_core::audit::parse_event_list;
use driftguard_core::error::chain;
use driftguard_core::query::{DriftSort, DriftStatus, EventQuery};
use driftguard_core::remediate::advice::RemediationAction;
use driftguard_core::severity::Severity;
use driftguard_core::state::{Direction, DriftKind, EventKind};
use driftguard_store::BufferHealth;
use futures_util::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::session::SessionEnd;
use crate::auth::visible::Visible;
use crate::auth::{authenticate, same_secret, Authorization, Caller, Needs};
use crate::config::TokenScope::{Read, Remediate, Scan};
use crate::dto::*;
use crate::error::{AppError, ErrorBody, ErrorDetail};
use crate::queries;
use crate::queries::filter::{parse, parse_limit, parse_offset, parse_time, DriftFilter};
use crate::state::AppState;

mod drifts;
mod environments;
mod events;
mod health;
mod preview;
mod webhooks;

use drifts::*;
use environments::*;
use events::*;
use health::*;
use preview::*;
use webhooks::*;

/// The API's routes: `/api/v1` behind the API's authentication, each route with the scope it
/// needs ([`Needs`]), beside the webhooks that authenticate themselves; health and metrics.
pub fn routes(state: AppState) -> Router<AppState> {
    let api = Router::new()
        .route(
            "/environments",
            get(list_environments).route_layer(Needs(Read)),
        )
        .route(
            "/environments/{env}",
            get(get_environment).route_layer(Needs(Read)),
        )
        .route(
            "/environments/{env}/scan",
            post(scan_now).route_layer(Needs(Scan)),
        )
        .route(
            "/environments/{env}/objects/{*object}",
            get(object_history).route_layer(Needs(Read)),
        )
        .route("/drifts", get(list_drifts).route_layer(Needs(Read)))
        .route("/drifts/{episode}", get(get_drift).route_layer(Needs(Read)))
        .route(
            "/drifts/{episode}/remediation",
            get(get_remediation).route_layer(Needs(Read)),
        )
        .route(
            "/drifts/{episode}/remediate",
            post(remediate).route_layer(Needs(Remediate)),
        )
        .route(
            "/acknowledgements",
            get(list_acknowledgements)
                .route_layer(Needs(Read))
                .merge(post(acknowledge).route_layer(Needs(Scan))),
        )
        .route(
            "/drifts/{episode}/acknowledgement",
            delete(withdraw_acknowledgement).route_layer(Needs(Scan)),
        )
        .route(
            "/remediation/pause",
            post(pause_remediation).route_layer(Needs(Remediate)),
        )
        .route(
            "/remediation/resume",
            post(resume_remediation).route_layer(Needs(Remediate)),
        )
        .route("/events", get(list_events).route_layer(Needs(Read)))
        .route("/actions", get(list_actions).route_layer(Needs(Read)))
        .route("/events/stream", get(event_stream).route_layer(Needs(Read)))
        .route("/scans", get(list_scans).route_layer(Needs(Read)))
        .route("/preview", post(preview).route_layer(Needs(Scan)))
        .route("/openapi.json", get(openapi_json).route_layer(Needs(Read)))
        .route_layer(middleware::from_fn_with_state(state, authenticate));
    // their own authentication: a push signature, the API server's audit token
    let hooks = Router::new()
        .route("/webhooks/git", post(git_webhook))
        .route("/environments/{env}/audit", post(audit_webhook));
    Router::new()
        .nest(
            "/api/v1",
            api.merge(hooks).layer(middleware::from_fn(no_store)),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// API answers hold drifts, events and plans: no browser or proxy keeps them
/// (`Cache-Control: no-store`, unless a route set its own).
async fn no_store(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    resp
}

pub(super) fn query_error(e: QueryRejection) -> AppError {
    AppError::bad_request(format!("invalid query: {}", e.body_text()))
}

pub(super) fn json_bytes(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // the environment's own audit token (audit.webhook.tokenEnv), not the API's
        components.add_security_scheme(
            "audit_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The query parameters whose values are names of a core enum: the document gives each the
/// pattern of those names (any ASCII case, or empty for "any"), taken from the enum itself.
struct NamedParams;

/// `(parameter, names)` of the query parameters read with [`parse`].
pub(super) fn named_params() -> [(&'static str, &'static [&'static str]); 7] {
    use driftguard_core::names::Named;
    [
        ("drift", DriftKind::NAMES),
        ("direction", Direction::NAMES),
        ("severity", Severity::NAMES),
        ("status", DriftStatus::NAMES),
        ("sort", DriftSort::NAMES),
        ("event", EventKind::NAMES),
        ("action", RemediationAction::NAMES),
    ]
}

/// A regular expression (ECMA 262, as JSON Schema reads it) matching `names` in any ASCII
/// case, or the empty string.
pub(super) fn names_pattern(names: &[&str]) -> String {
    let alternatives: Vec<String> = names
        .iter()
        .map(|n| {
            n.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                    } else if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c.to_string()
                    } else {
                        format!("\\{c}")
                    }
                })
                .collect()
        })
        .collect();
    format!("^(|{})$", alternatives.join("|"))
}

/// The grammar of an object reference in the API, as [`driftguard_core::id::ObjectRef::parse`]
/// reads it: `[env:]Kind[.group]/[namespace/]name`, every part non-empty; before the first `/`
/// a `:` ends the environment.
/// Empty stands for "any object".
pub const OBJECT_REF_PATTERN: &str =
    "^(?:(?:[^:/]+:[^/.]+(?:\\.[^/]+)?|[^:/.]+(?:\\.[^:/]+)?)/(?:[^/]+/)?[^/]+)?$";

/// The same without the environment: a path that already names it
/// (`/environments/{env}/objects/{object}`).
pub const OBJECT_IN_ENV_PATTERN: &str = "^[^:/.]+(?:\\.[^:/]+)?/(?:[^/]+/)?[^/]+$";

impl utoipa::Modify for NamedParams {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{RefOr, Schema};
        let named = named_params();
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                for p in op.parameters.iter_mut().flatten() {
                    if p.name == "object" {
                        let pattern = match p.parameter_in {
                            ParameterIn::Path => OBJECT_IN_ENV_PATTERN,
                            _ => OBJECT_REF_PATTERN,
                        };
                        if let Some(RefOr::T(Schema::Object(o))) = p.schema.as_mut() {
                            o.pattern = Some(pattern.to_owned());
                        }
                        continue;
                    }
                    if !matches!(p.parameter_in, ParameterIn::Query) {
                        continue;
                    }
                    let Some((_, names)) = named.iter().find(|(n, _)| *n == p.name) else {
                        continue;
                    };
                    if let Some(RefOr::T(Schema::Object(o))) = p.schema.as_mut() {
                        o.pattern = Some(names_pattern(names));
                    }
                }
            }
        }
    }
}

/// The OpenAPI description of the API, generated from the handlers and DTOs.
#[derive(OpenApi)]
#[openapi(
    info(title = "DriftGuard API", description = "Configuration drift between Git and Kubernetes clusters. Every error is answered as `{\"error\": {\"code\", \"message\"}}`."),
    paths(list_environments, get_environment, scan_now, object_history, list_drifts, get_drift,
        get_remediation, remediate, acknowledge, list_acknowledgements, withdraw_acknowledgement,
        pause_remediation, resume_remediation, list_events, list_actions,
        event_stream, list_scans, preview, git_webhook, audit_webhook, healthz, readyz, metrics, openapi_json),
    components(schemas(ErrorBody, ErrorDetail, ObjectRef, DriftSummary, DriftDetail, FieldDiffDto,
        FindingDto, RemediationDto, PlanStepDto, FieldChangeDto, RemediateRequest, RemediateAnswer, RemediationEventDto,
        AcknowledgementDto, AcknowledgementList, AcknowledgeRequest, ActionDto, ActionList, RemediationSwitch,
        CommitDto, FieldOwnerDto, WriterDto, AttributionDto, ProvenanceDto, RenderingDto, DriftPage, EventDto, EventPage,
        CountsDto, ScanDto, ScanList, SourceDto, EnvironmentDto, EnvironmentList, LeaderDto, ToolDto, IacCoverageDto, KindCoverageDto, RecordDto,
        ObjectHistory, Health, Check, Ready, WebhookAccepted, AuditAccepted, PreviewBody, PreviewAnswer,
        crate::preview::FailOn)),
    modifiers(&BearerAuth, &NamedParams),
)]
pub struct ApiDoc;
